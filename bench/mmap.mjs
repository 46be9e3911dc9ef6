#!/usr/bin/env node
// Benchmark: reading one warm file through zerocopy's mmap against Node's own ways, in one run.
//
//   node --expose-gc bench/mmap.mjs [--size MiB] [--reads N] [--handle-reads N] [--runs N] [--dir DIR]
//
// (a) random reads: N reads of one 4 KiB block at a random block-aligned offset (the same offsets
//     for every variant), each consumed the same way (two 32-bit words read from the block):
//     mmap Buffer slices vs fs.readSync into one reused Buffer vs awaited FileHandle.read; and, for
//     comparison, the same words read from the mapping in place (no slice per read). FileHandle.read,
//     ~100 µs per read on a busy VM, does only the first --handle-reads reads (50,000) and its times
//     are scaled to N; the words it read are checked against the same reads made in place.
// (b) sequential checksum: every 32-bit word of the file XORed together, over an mmap Buffer vs a
//     Buffer from fs.readFile vs the chunks of fs.createReadStream.
// Each variant runs N times, interleaved in rotating order, on a file warm in the page cache. Prints
// medians, best runs, RSS growth (and the private, anonymous part of it) and ratios against the
// baselines measured in the same run. Not a test: the figures move with the machine and its load.
import { closeSync, createReadStream, fsyncSync, openSync, readFileSync, readSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';

import { mmap, sys } from 'zerocopy';
import { MiB, NOISE_NOTE, best, clearProgress, median, printMachine, printTable, progress, rotated, scratch, warm, writeWorkload } from './lib.mjs';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '1024' },
    reads: { type: 'string', default: '1000000' },
    'handle-reads': { type: 'string', default: '50000' },
    runs: { type: 'string', default: '3' },
    dir: { type: 'string', default: tmpdir() },
  },
});
const sizeMiB = Number(values.size);
const reads = Number(values.reads);
const handleReads = Math.min(reads, Number(values['handle-reads']));
const runs = Number(values.runs);
const size = sizeMiB * 1024 * 1024;
const BLOCK = 4096;

const s = scratch(values.dir);
const file = s.path('data');
const gc = globalThis.gc ?? (() => {});
printMachine(s.dir);
if (!globalThis.gc) console.log('(run with --expose-gc for steadier RSS figures)');
console.log(
  `workload: one ${sizeMiB} MiB file, warm in the page cache; (a) ${reads.toLocaleString('en')} random ${BLOCK}-byte reads, ` +
    `(b) a checksum of every 32-bit word; ${runs} runs per variant, interleaved in rotating order\n`,
);
await writeWorkload(file, sizeMiB);

// The same random block offsets for every variant.
const blocks = size / BLOCK;
const offsets = new Float64Array(reads);
{
  let x = 0x9e3779b9;
  for (let i = 0; i < reads; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    offsets[i] = ((x >>> 0) % blocks) * BLOCK;
  }
}

/** XOR of every 32-bit word (a trailing partial word byte by byte): touches every byte once. */
function checksum(buf, acc = 0) {
  let i = 0;
  const head = (4 - (buf.byteOffset % 4)) % 4;
  for (; i < Math.min(head, buf.length); i++) acc ^= buf[i];
  const words = new Int32Array(buf.buffer, buf.byteOffset + i, (buf.length - i) >> 2);
  for (let w = 0; w < words.length; w++) acc ^= words[w];
  for (i += words.length * 4; i < buf.length; i++) acc ^= buf[i];
  return acc;
}

/** KiB of file pages this process maps with 2 MiB page table entries. */
function filePmdMappedKiB() {
  const line = readFileSync('/proc/self/smaps_rollup', 'utf8').split('\n').find((l) => l.startsWith('FilePmdMapped:'));
  return Number(line?.split(/\s+/)[1] ?? 0);
}

// The file is made warm through a mapping advised 'hugepage': dropped from the page cache, then read
// back in by faults on that mapping, so readahead fills the cache with 2 MiB folios where the
// filesystem has large folios (XFS; ext4 since Linux 6.16) and transparent huge pages are enabled.
// Every variant then reads the same warm cache; mappings can use its folios as huge pages, which spares
// random reads most TLB misses (each a two-level page walk under a hypervisor's nested paging).
// This mapping, made before the runs, is how a long-lived reader uses mmap.
{
  const fd = openSync(file, 'r');
  fsyncSync(fd);
  sys.fadviseSync(fd, 'dontneed');
  closeSync(fd);
}
const pmd0 = filePmdMappedKiB();
const steady = await mmap(file, { advice: 'hugepage', populate: true });
const hugeMiB = (filePmdMappedKiB() - pmd0) / 1024;
console.log(
  hugeMiB > 0
    ? `page cache: ${hugeMiB.toFixed(0)} of ${sizeMiB} MiB mapped with 2 MiB pages`
    : 'page cache: no 2 MiB pages (THP disabled, or this filesystem/kernel keeps no large folios): mappings use 4 KiB pages',
);

/**
 * The first `n` random reads made in place: the same two words per block read through one Uint32Array
 * over the mapping, no slice per read, so consecutive cache misses can overlap.
 */
function readInPlace(n) {
  const buf = steady.buffer;
  const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >> 2);
  const last = BLOCK / 4 - 1;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const w = offsets[i] / 4;
    sum += words[w] + words[w + last];
  }
  return sum;
}

/** The random reads over a mapping's Buffer: one slice per block, two words read from it. */
function readSlices(buf) {
  let sum = 0;
  for (let i = 0; i < reads; i++) {
    const o = offsets[i];
    const block = buf.subarray(o, o + BLOCK);
    sum += block.readUInt32LE(0) + block.readUInt32LE(BLOCK - 4);
  }
  mark();
  return sum;
}

/**
 * The two costs a slice read is made of, each the median over the runs in ns per read: (1) the same
 * slice and word reads over a Buffer that stays in cache (V8's cost alone), (2) one random 32-bit read
 * from the mapping whose address depends on the word read before it (a dependent chain: the memory
 * latency, which a slice between reads exposes, since its hundreds of instructions keep the CPU from
 * starting the next read's cache miss before the last one is over).
 */
function sliceReadCosts(buf) {
  const cached = Buffer.alloc(4 * BLOCK, 1);
  const zero = new Int32Array(1); // always 0, but the JIT cannot know: keeps the chain's dependency real
  const time = (fn) => {
    fn(); // compiled before it is timed
    const ns = [];
    for (let run = 0; run < runs; run++) {
      const t0 = process.hrtime.bigint();
      fn();
      ns.push(Number(process.hrtime.bigint() - t0) / reads);
    }
    return median(ns);
  };
  const slice = time(() => {
    let sum = 0;
    for (let i = 0; i < reads; i++) {
      const o = (i & 3) * BLOCK;
      const block = cached.subarray(o, o + BLOCK);
      sum += block.readUInt32LE(0) + block.readUInt32LE(BLOCK - 4);
    }
    return sum;
  });
  const latency = time(() => {
    let word = 0;
    const z = zero[0];
    for (let i = 0; i < reads; i++) word = buf.readUInt32LE(offsets[i] + (word & z));
    return word;
  });
  return { slice, latency };
}

const random = [
  ['mmap slices, mapped beforehand', async () => readSlices(steady.buffer)],
  [
    'mmap + slices (map in the run)',
    async () => {
      const m = await mmap(file, { advice: 'random' });
      const sum = readSlices(m.buffer);
      m.close();
      return sum;
    },
  ],
  [
    'mmap in place (one Uint32Array)',
    async () => {
      const sum = readInPlace(reads);
      mark();
      return sum;
    },
  ],
  [
    'fs.readSync, reused Buffer',
    async () => {
      const fd = openSync(file, 'r');
      const block = Buffer.allocUnsafe(BLOCK);
      let sum = 0;
      for (let i = 0; i < reads; i++) {
        readSync(fd, block, 0, BLOCK, offsets[i]);
        sum += block.readUInt32LE(0) + block.readUInt32LE(BLOCK - 4);
      }
      closeSync(fd);
      return sum;
    },
  ],
  [
    handleReads < reads ? 'FileHandle.read*' : 'FileHandle.read',
    async () => {
      const fh = await open(file, 'r');
      const block = Buffer.allocUnsafe(BLOCK);
      let sum = 0;
      for (let i = 0; i < handleReads; i++) {
        await fh.read(block, 0, BLOCK, offsets[i]);
        sum += block.readUInt32LE(0) + block.readUInt32LE(BLOCK - 4);
      }
      await fh.close();
      return sum;
    },
    handleReads,
  ],
];

const READSYNC = random.findIndex(([name]) => name.startsWith('fs.readSync'));

const sequential = [
  [
    'mmap checksum',
    async () => {
      const m = await mmap(file, { advice: 'sequential' });
      const sum = checksum(m.buffer);
      mark();
      m.close();
      return sum;
    },
  ],
  [
    'fs.readFile checksum',
    async () => {
      const data = await readFile(file);
      mark();
      return checksum(data);
    },
  ],
  [
    'createReadStream checksum',
    async () => {
      // Chunk boundaries fall on multiples of 4 (64 KiB chunks), so XORing per chunk equals XORing the whole.
      let acc = 0;
      for await (const chunk of createReadStream(file)) acc = checksum(chunk, acc);
      return acc;
    },
  ],
];

/** The footprint at the variant's fullest moment (before it lets go of its memory); by default at its end. */
let marked;
function mark() {
  marked = { rss: process.memoryUsage().rss, anonKiB: rssAnonKiB() };
}

function rssAnonKiB() {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('RssAnon:'));
  return Number(line?.split(/\s+/)[1] ?? 0);
}

async function measure(variants) {
  const results = new Map(variants.map(([name]) => [name, { wall: [], rss: [], anon: [], sums: new Set() }]));
  for (let run = 0; run < runs; run++) {
    for (const [name, fn, done = undefined] of rotated(variants, run)) {
      warm(file);
      gc();
      progress(`run ${run + 1}/${runs}: ${name}`);
      const rss0 = process.memoryUsage().rss;
      const anon0 = rssAnonKiB();
      marked = undefined;
      const t0 = process.hrtime.bigint();
      const sum = await fn();
      // A variant that does only `done` of the reads has its time scaled to all of them.
      const wall = (Number(process.hrtime.bigint() - t0) / 1e9) * (done ? reads / done : 1);
      if (!marked) mark();
      const r = results.get(name);
      r.wall.push(wall);
      r.rss.push((marked.rss - rss0) / MiB);
      r.anon.push((marked.anonKiB - anon0) / 1024);
      r.sums.add(sum);
    }
  }
  clearProgress();
  return results;
}

function report(title, variants, results, unit, perOp, baseIndex = 1, otherIndex = 2) {
  const rows = variants.map(([name]) => {
    const r = results.get(name);
    return { name, wall: median(r.wall), best: best(r.wall), rss: median(r.rss), anon: median(r.anon) };
  });
  // Variants that did every read must agree; one that did fewer must match the same reads made in place.
  const checks = new Set(variants.filter(([, , done]) => done === undefined).map(([name]) => [...results.get(name).sums].join()));
  for (const [name, , done] of variants) {
    if (done === undefined) continue;
    const got = [...results.get(name).sums].join();
    if (got !== String(readInPlace(done))) throw new Error(`${title}: ${name} read other data than the file's: ${got} / ${readInPlace(done)}`);
  }
  if (checks.size !== 1) throw new Error(`${title}: variants disagree on the data read: ${[...checks].join(' / ')}`);
  const base = rows[baseIndex];
  const other = rows[otherIndex];
  const header = ['variant', 'median s', 'best s', unit, 'RSS +MiB', 'anon +MiB', `vs ${base.name}`, '(best)', `vs ${other.name}`];
  const table = rows.map((r) => [
    r.name,
    r.wall.toFixed(3),
    r.best.toFixed(3),
    perOp(r.wall),
    r.rss.toFixed(0),
    r.anon.toFixed(0),
    `${(base.wall / r.wall).toFixed(2)}x`,
    `${(base.best / r.best).toFixed(2)}x`,
    `${(other.wall / r.wall).toFixed(2)}x`,
  ]);
  console.log(title);
  printTable(header, table);
  console.log('');
  return rows;
}

try {
  const a = report('(a) random 4 KiB reads', random, await measure(random), 'µs/read', (s) => ((s * 1e6) / reads).toFixed(2), READSYNC, READSYNC + 1);
  if (handleReads < reads) {
    console.log(`* FileHandle.read did the first ${handleReads.toLocaleString('en')} reads; its times are scaled to ${reads.toLocaleString('en')} (--handle-reads)\n`);
  }
  const floor = sliceReadCosts(steady.buffer);
  steady.close();
  const needed = (a[READSYNC].wall * 1e9) / reads / 10;
  console.log(
    `what a slice read is made of (ns per read, medians): a slice + the two word reads over a Buffer in cache ${floor.slice.toFixed(0)}; ` +
      `one random read from the mapping that waits for the one before (memory latency) ${floor.latency.toFixed(0)}`,
  );
  console.log(
    `10x fs.readSync needs <= ${needed.toFixed(0)} ns per read. A slice made between reads keeps the CPU from starting one read's cache miss ` +
      `before the last one is over, so each read waits for memory about once: ${
        floor.latency > needed ? 'the target is below the memory latency of this machine' : 'the memory latency of this machine leaves room for the target'
      }\n`,
  );
  const b = report('(b) sequential checksum', sequential, await measure(sequential), 'MiB/s', (s) => (sizeMiB / s).toFixed(0));
  const ratio = a[READSYNC].wall / a[0].wall;
  const bestRatio = a[READSYNC].best / a[0].best;
  console.log(
    `target: mmap slices >= 10x fs.readSync on random reads (medians): ${ratio.toFixed(1)}x — ${ratio >= 10 ? 'met' : 'NOT met'} (best runs: ${bestRatio.toFixed(1)}x)`,
  );
  const inPlace = a.find((r) => r.name.startsWith('mmap in place'));
  if (inPlace) console.log(`read in place instead of sliced: ${(a[READSYNC].wall / inPlace.wall).toFixed(1)}x fs.readSync (medians)`);
  console.log(`sequential: mmap ${(b[1].wall / b[0].wall).toFixed(2)}x fs.readFile, ${(b[2].wall / b[0].wall).toFixed(2)}x streams (medians)`);
  console.log(
    "RSS +MiB is measured at each variant's fullest moment and counts the file's pages mapped into this process (shared page cache, reclaimable); anon +MiB is the private memory in it.",
  );
  console.log(NOISE_NOTE);
} finally {
  s.cleanup();
}
