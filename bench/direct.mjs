#!/usr/bin/env node
// Benchmark: Direct I/O (O_DIRECT) against buffered fs reads and writes, in one run.
//
//   node bench/direct.mjs [--size MiB] [--runs N] [--chunk MiB] [--dir DIR]
//
// Read: one file made cold before every run (fsync, then posix_fadvise(DONTNEED) — advice, so the
// residency before each run is checked and printed), read sequentially with DirectFile.read into one
// aligned buffer, with createDirectReadStream, with FileHandle.read into one reused Buffer of the same
// size, and with fs.createReadStream. Write: the same amount written with DirectFile.write, with
// createDirectWriteStream, and buffered with FileHandle.write + fsync (so the data is on disk in both
// cases). Per variant: median and best wall time, throughput, CPU seconds per GiB and the fraction of
// the file left in the page cache afterwards. Not a test: the figures move with the machine's load.
import { closeSync, createReadStream, fsyncSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';

import { alignedBuffer, capabilitiesSync, createDirectReadStream, createDirectWriteStream, openDirect, residency, sys } from 'zerocopy';
import { GiB, NOISE_NOTE, best as fastest, clearProgress, median, printMachine, printTable, progress, resources, rotated, scratch } from './lib.mjs';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '1024' },
    runs: { type: 'string', default: '3' },
    chunk: { type: 'string', default: '8' },
    dir: { type: 'string', default: tmpdir() },
  },
});
const sizeMiB = Number(values.size);
const runs = Number(values.runs);
const chunk = Number(values.chunk) * 1024 * 1024;
const size = sizeMiB * 1024 * 1024;

/** Fraction of the file's pages in the page cache (mincore). */
const resident = (path) => {
  const { pages, resident: r } = residency(path);
  return pages === 0 ? 0 : r / pages;
};

const s = scratch(values.dir);
const src = s.path('src');
const dst = s.path('dst');
printMachine(s.dir);
const align = capabilitiesSync(s.dir).filesystem?.directIoAlignment;
console.log(`O_DIRECT alignment: memory ${align?.memory} B, offset ${align?.offset} B (${align?.source})`);
console.log(
  `workload: one ${sizeMiB} MiB file, cold before every read run; ${values.chunk} MiB requests for DirectFile/FileHandle, ` +
    `stream defaults otherwise; ${runs} runs per variant, interleaved in rotating order\n`,
);

// Incompressible-ish content, written once and flushed.
const block = alignedBuffer(chunk);
for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((i * 2654435761) >>> 0, i);
{
  const fd = openSync(src, 'w');
  for (let at = 0; at < size; at += chunk) writeSync(fd, block, 0, Math.min(chunk, size - at), at);
  fsyncSync(fd);
  closeSync(fd);
}

/** Flushes and drops the source from the page cache (advisory: the next line reports what stayed). */
function makeCold() {
  const fd = openSync(src, 'r');
  try {
    fsyncSync(fd);
    sys.fadviseSync(fd, 'dontneed');
  } finally {
    closeSync(fd);
  }
  return resident(src);
}

async function drain(stream) {
  let n = 0;
  for await (const part of stream) n += part.length;
  return n;
}

function* chunks() {
  for (let at = 0; at < size; at += chunk) yield block.subarray(0, Math.min(chunk, size - at));
}

const readVariants = [
  [`DirectFile.read (O_DIRECT, ${values.chunk} MiB)`, async () => {
    const file = await openDirect(src);
    try {
      const buf = alignedBuffer(chunk); // page-aligned, which any device accepts
      let pos = 0;
      for (let n; (n = await file.read(buf, pos)) > 0; pos += n) if (n < buf.length) return pos + n;
      return pos;
    } finally {
      await file.close();
    }
  }],
  ['createDirectReadStream (O_DIRECT)', () => drain(createDirectReadStream(src))],
  [`FileHandle.read (buffered, ${values.chunk} MiB)`, async () => {
    const fh = await open(src, 'r');
    try {
      const buf = Buffer.allocUnsafe(chunk);
      let pos = 0;
      for (let n; (n = (await fh.read(buf, 0, buf.length, pos)).bytesRead) > 0; pos += n);
      return pos;
    } finally {
      await fh.close();
    }
  }],
  ['fs.createReadStream (buffered)', () => drain(createReadStream(src))],
];

const writeVariants = [
  [`DirectFile.write (O_DIRECT, ${values.chunk} MiB)`, async () => {
    const file = await openDirect(dst, 'w');
    try {
      let pos = 0;
      for (const part of chunks()) pos += await file.write(part, pos, { unaligned: 'bounce' });
      return pos;
    } finally {
      await file.close();
    }
  }],
  ['createDirectWriteStream (O_DIRECT)', async () => {
    const out = createDirectWriteStream(dst);
    await pipeline(Readable.from(chunks()), out);
    return out.bytesWritten;
  }],
  [`FileHandle.write + fsync (buffered, ${values.chunk} MiB)`, async () => {
    const fh = await open(dst, 'w');
    try {
      let pos = 0;
      for (const part of chunks()) pos += (await fh.write(part, 0, part.length, pos)).bytesWritten;
      await fh.sync();
      return pos;
    } finally {
      await fh.close();
    }
  }],
];

const results = new Map([...readVariants, ...writeVariants].map(([name]) => [name, { wall: [], cpu: [], resident: [], coldBefore: [] }]));

async function measure(name, fn, path, before) {
  const cpu0 = resources();
  const t0 = process.hrtime.bigint();
  const bytes = await fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = resources(cpu0).cpu;
  if (bytes !== size || statSync(path).size !== size) throw new Error(`${name} moved ${bytes} bytes`);
  const r = results.get(name);
  r.wall.push(wall);
  r.cpu.push(cpu);
  r.resident.push(resident(path));
  r.coldBefore.push(before);
}

for (let run = 0; run < runs; run++) {
  for (const [name, fn] of rotated(readVariants, run)) {
    const before = makeCold();
    progress(`run ${run + 1}/${runs}: ${name}`);
    await measure(name, fn, src, before);
  }
  for (const [name, fn] of rotated(writeVariants, run)) {
    rmSync(dst, { force: true });
    execFileSync('sync');
    progress(`run ${run + 1}/${runs}: ${name}`);
    await measure(name, fn, dst, 0);
  }
}
clearProgress();
s.cleanup();

const pct = (x) => `${(100 * x).toFixed(x < 0.1 ? 2 : 1)}%`;
const summarize = ([name]) => {
  const r = results.get(name);
  const wall = median(r.wall);
  const best = fastest(r.wall);
  return { name, wall, best, mibs: sizeMiB / wall, bestMibs: sizeMiB / best, cpuPerGiB: (median(r.cpu) * GiB) / size, resident: median(r.resident), coldBefore: Math.max(...r.coldBefore) };
};

function table(title, rows, base) {
  console.log(title);
  const header = ['variant', 'median s', 'best s', 'MiB/s', 'CPU s/GiB', 'resident after', `vs ${base.name.split(' (')[0]}`, '(best)'];
  const cells = rows.map((r) => [
    r.name,
    r.wall.toFixed(3),
    r.best.toFixed(3),
    r.mibs.toFixed(0),
    r.cpuPerGiB.toFixed(3),
    pct(r.resident),
    `${(r.mibs / base.mibs).toFixed(2)}x`,
    `${(r.bestMibs / base.bestMibs).toFixed(2)}x`,
  ]);
  printTable(header, cells);
  console.log('');
}

const reads = readVariants.map(summarize);
const writes = writeVariants.map(summarize);
table('sequential read of a cold file', reads, reads[2]);
table('sequential write (buffered includes fsync)', writes, writes[2]);

const coldest = Math.max(...reads.map((r) => r.coldBefore));
console.log(`page cache before each read run (after fsync + posix_fadvise DONTNEED): at most ${pct(coldest)} of the file resident`);
const ratio = reads[0].mibs / reads[2].mibs;
const bestRatio = reads[0].bestMibs / reads[2].bestMibs;
const met = ratio >= 0.9 && reads[0].resident < 0.01;
console.log(
  `target: DirectFile.read >= 0.9x buffered FileHandle.read throughput with < 1% resident: ${ratio.toFixed(2)}x (best runs ${bestRatio.toFixed(2)}x), ` +
    `${pct(reads[0].resident)} resident (buffered: ${pct(reads[2].resident)}) — ${met ? 'met' : 'NOT met'}`,
);
console.log(NOISE_NOTE);
