#!/usr/bin/env node
// Benchmark: sending one warm file into a loopback TCP socket, zerocopy's sendFile against Node's own
// ways and against a bare sendfile loop, in one run.
//
//   node bench/socket.mjs [--size MiB] [--runs N] [--dir DIR]
//   node bench/socket.mjs --small [--count N]     where sendfile starts to pay, by file size
//
// Every variant sends to the same sink: a separate process (crates/zerocopy/examples/sink.rs) that
// reads each connection to EOF and discards it, so its CPU is not counted. A send is timed from
// connect to the sink closing the connection (every byte read). Variants: sendFile; pipeline of
// createReadStream into the socket at the default and at a 1 MiB highWaterMark; and the reference,
// a bare blocking sendfile loop in Rust (examples/sendfile_loop.rs) measuring itself.
// Prints medians, best runs, CPU seconds per GiB (all threads), context switches and ratios.
import { spawn, execFileSync } from 'node:child_process';
import { createReadStream, openSync, closeSync, read } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import { sendFile } from 'zerocopy';
import { MiB, NOISE_NOTE, clearProgress, interleave, median, printMachine, printTable, printTargets, printVariants, progress, resources, scratch, summarize, warm, writeWorkload } from './lib.mjs';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '1024' },
    runs: { type: 'string', default: '5' },
    dir: { type: 'string', default: tmpdir() },
    small: { type: 'boolean', default: false },
    count: { type: 'string', default: '2000' },
  },
});
const sizeMiB = Number(values.size);
const runs = Number(values.runs);

const repo = fileURLToPath(new URL('..', import.meta.url));
console.log('building the reference binaries (cargo build --release --examples)…');
execFileSync('cargo', ['build', '--release', '--quiet', '--examples', '-p', 'zerocopy-io'], { cwd: repo, stdio: 'inherit' });
const examples = `${repo}/target/release/examples`;

const sink = spawn(`${examples}/sink`, [], { stdio: ['ignore', 'pipe', 'inherit'] });
const [portLine] = await once(sink.stdout, 'data');
const port = Number(String(portLine).trim());
process.on('exit', () => sink.kill());

const s = scratch(values.dir);
printMachine(s.dir);

function connect() {
  const socket = net.connect(port, '127.0.0.1');
  return once(socket, 'connect').then(() => socket);
}

/** Sends with `fn(socket)`, ends the socket and waits until the sink has read everything and closed. */
async function timed(fn) {
  const before = resources();
  const t0 = process.hrtime.bigint();
  const socket = await connect();
  const closed = once(socket, 'close');
  socket.resume();
  const result = await fn(socket);
  socket.end();
  await closed;
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  return { wall, ...resources(before), mechanism: result?.mechanism ?? '' };
}

function reference(file) {
  const out = execFileSync(`${examples}/sendfile_loop`, [String(port), file], { encoding: 'utf8' });
  const r = JSON.parse(out);
  return { wall: r.wall, cpu: r.cpu, nvcsw: r.nvcsw, nivcsw: r.nivcsw, mechanism: 'sendfile' };
}

async function large() {
  const file = s.path('data');
  console.log(`workload: one ${sizeMiB} MiB file, warm in the page cache, to a loopback TCP sink process; ${runs} runs per variant, interleaved in rotating order\n`);
  await writeWorkload(file, sizeMiB);
  const variants = [
    ['zerocopy sendFile', () => timed((sock) => sendFile(sock, file))],
    ['pipeline(createReadStream) 64 KiB', () => timed((sock) => pipeline(createReadStream(file), sock, { end: false }))],
    ['pipeline(createReadStream) 1 MiB', () => timed((sock) => pipeline(createReadStream(file, { highWaterMark: MiB }), sock, { end: false }))],
    ['raw sendfile loop (Rust, reference)', async () => reference(file)],
  ];
  const results = await interleave(variants, runs, () => warm(file));
  const rows = variants.map(([name]) => summarize(name, results.get(name), sizeMiB * MiB));
  const [ours, node64, node1m, raw] = rows;
  printVariants(rows, sizeMiB, [['vs Node 64K', node64], ['vs Node 1M', node1m], ['vs raw loop', raw]]);
  // The baseline is Node's default: pipeline(createReadStream(file), socket) at 64 KiB.
  const checks = [
    ['throughput >= 3x Node streams', node64.wall / ours.wall, (x) => x >= 3],
    ['CPU per GiB <= 0.25x Node streams', ours.cpuPerGiB / node64.cpuPerGiB, (x) => x <= 0.25],
    ['throughput >= 0.9x the raw sendfile loop', raw.wall / ours.wall, (x) => x >= 0.9],
  ];
  printTargets(checks);
  console.log(
    `best runs: ${(node64.best / ours.best).toFixed(2)}x Node streams, ${(raw.best / ours.best).toFixed(2)}x the raw loop; ` +
      `against streams tuned to 1 MiB chunks: ${(node1m.wall / ours.wall).toFixed(2)}x throughput, ${(ours.cpuPerGiB / node1m.cpuPerGiB).toFixed(2)}x CPU per GiB`,
  );
  console.log('CPU s/GiB counts every thread of the sending process (the tokio reactor included); the sink is a separate process.');
  console.log(NOISE_NOTE);
}

/**
 * Sends/s for `count` sends of one small file on one connection, by each path: where does sendfile
 * stop paying against reading the file into memory and writing it?
 */
async function small() {
  const count = Number(values.count);
  console.log(`workload: ${count} sends of one file per size over one loopback connection to the sink; median of ${runs} runs\n`);
  const sizes = [1024, 4096, 16 * 1024, 64 * 1024, 256 * 1024, MiB];
  const write = (sock, buf) => new Promise((res, rej) => sock.write(buf, (e) => (e ? rej(e) : res())));
  const rows = [];
  for (const size of sizes) {
    const file = s.path(`small-${size}`);
    await writeWorkload(file, 1);
    execFileSync('truncate', ['-s', String(size), file]);
    warm(file);
    const fd = openSync(file, 'r');
    const buf = Buffer.allocUnsafe(size);
    const paths = {
      'sendFile(fd)': (sock) => sendFile(sock, fd, { offset: 0 }),
      'fs.read + write': async (sock) => write(sock, buf.subarray(0, await new Promise((res, rej) => read(fd, buf, 0, size, 0, (e, n) => (e ? rej(e) : res(n)))))),
      'sendFile(path)': (sock) => sendFile(sock, file),
      'readFile + write': async (sock) => write(sock, await readFile(file)),
    };
    const rates = {};
    for (const [name, fn] of Object.entries(paths)) {
      const samples = [];
      for (let run = 0; run < runs; run++) {
        progress(`${size} bytes: ${name} run ${run + 1}`);
        const r = await timed(async (sock) => {
          for (let i = 0; i < count; i++) await fn(sock);
        });
        samples.push(count / r.wall);
      }
      rates[name] = median(samples);
    }
    closeSync(fd);
    const ratio = (a, b) => `${(rates[a] / rates[b]).toFixed(2)}x`;
    rows.push([`${size / 1024} KiB`, ...Object.values(rates).map((r) => r.toFixed(0)), ratio('sendFile(fd)', 'fs.read + write'), ratio('sendFile(path)', 'readFile + write')]);
  }
  clearProgress();
  printTable(['file size', 'sendFile(fd)/s', 'fs.read+write/s', 'sendFile(path)/s', 'readFile+write/s', 'fd: sendfile vs read', 'path: sendfile vs read'], rows);
}

try {
  await (values.small ? small() : large());
} finally {
  sink.kill();
}
