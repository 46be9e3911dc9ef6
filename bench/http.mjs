#!/usr/bin/env node
// Benchmark: serving static files over node:http, zerocopy's serveFile against the `send` package
// (what express.static uses), in one run.
//
//   node bench/http.mjs [--duration S] [--connections N] [--runs N]
//
// Each server runs in its own process (bench/http-server.mjs); wrk (a C load generator: apt-get
// install wrk) drives it with keep-alive connections, for a 16 KiB and a 1 MiB file. Without wrk,
// autocannon is used — a JavaScript client that itself tops out near 100 MiB/s of responses. Per server: requests/s, throughput,
// latency and the server process's CPU seconds per 1,000 requests (from /proc/PID/stat), medians
// of several runs, interleaved, and ratios. Not a test: the load generator shares the machine.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import autocannon from 'autocannon';
import { MiB, NOISE_NOTE, best, clearProgress, median, printMachine, printTable, progress, rotated, scratch } from './lib.mjs';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '16' },
    runs: { type: 'string', default: '3' },
    dir: { type: 'string', default: tmpdir() },
  },
});
const duration = Number(values.duration);
const connections = Number(values.connections);
const runs = Number(values.runs);

const haveWrk = (() => {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    return err.status === 1; // wrk --version prints its usage and exits 1
  }
})();

const s = scratch(values.dir);
printMachine(s.dir);
const files = [
  ['16 KiB', 'small.bin', 16 * 1024],
  ['1 MiB', 'large.bin', MiB],
];
for (const [, name, size] of files) {
  const data = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(s.path(name), data);
}
console.log(`workload: GET of one warm file, ${connections} keep-alive connections, ${duration} s per run, ${runs} runs per server, interleaved; servers in their own process; load from ${haveWrk ? 'wrk (1 thread)' : 'autocannon (install wrk for a client that is not the bottleneck)'}\n`);

const ticks = 100; // USER_HZ: /proc/PID/stat counts CPU time in 1/100 s on Linux
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticks; // utime + stime
}

async function startServer(kind) {
  const script = fileURLToPath(new URL('./http-server.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, kind, s.dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = await once(child.stdout, 'data');
  return { child, port: Number(String(line).trim()) };
}


/** Milliseconds from a wrk latency figure like "1.23ms", "456.00us" or "1.02s". */
function ms(text) {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (!m) return NaN;
  return Number(m[1]) * { us: 1e-3, ms: 1, s: 1e3 }[m[2]];
}

/** Drives `path` (a file of `size` bytes) for the run's duration; throughput counts response bodies. */
async function load(port, path, size) {
  const url = `http://127.0.0.1:${port}${path}`;
  if (haveWrk) {
    const out = await new Promise((resolve, reject) => {
      const child = spawn('wrk', ['-t', '1', '-c', String(connections), '-d', `${duration}s`, '--latency', url], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.on('data', (d) => (text += d));
      child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}`))));
    });
    if (/Non-2xx|Socket errors/.test(out)) throw new Error(`${path}: wrk reported errors:\n${out}`);
    const total = Number(/(\d+) requests in/.exec(out)?.[1]);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
    return { rps, mbps: (rps * size) / MiB, p50: ms(/50%\s+(\S+)/.exec(out)?.[1] ?? ''), p99: ms(/99%\s+(\S+)/.exec(out)?.[1] ?? ''), total };
  }
  const result = await autocannon({ url, connections, duration, pipelining: 1 });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${path}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { rps: result.requests.average, mbps: (result.requests.average * size) / MiB, p50: result.latency.p50, p99: result.latency.p99, total: result.requests.total };
}

const kinds = ['serveFile', 'send'];
const servers = Object.fromEntries(await Promise.all(kinds.map(async (k) => [k, await startServer(k)])));
try {
  const table = [];
  const targets = [];
  for (const [label, name, size] of files) {
    const samples = Object.fromEntries(kinds.map((k) => [k, []]));
    for (let run = 0; run < runs; run++) {
      for (const kind of rotated(kinds, run)) {
        progress(`${label}: ${kind} run ${run + 1}/${runs}`);
        const { child, port } = servers[kind];
        const cpu0 = cpuSeconds(child.pid);
        const r = await load(port, `/${name}`, size);
        samples[kind].push({ ...r, cpuPer1k: ((cpuSeconds(child.pid) - cpu0) * 1000) / r.total });
      }
    }
    const row = (kind) => {
      const v = samples[kind];
      const m = (key) => median(v.map((x) => x[key]));
      return { kind, rps: m('rps'), best: -best(v.map((x) => -x.rps)), mbps: m('mbps'), p50: m('p50'), p99: m('p99'), cpu: m('cpuPer1k') };
    };
    const ours = row('serveFile');
    const theirs = row('send');
    for (const r of [ours, theirs]) {
      table.push([`${label} ${r.kind}`, r.rps.toFixed(0), r.best.toFixed(0), r.mbps.toFixed(0), r.p50.toFixed(1), r.p99.toFixed(1), r.cpu.toFixed(3), `${(r.rps / theirs.rps).toFixed(2)}x`]);
    }
    targets.push([label, ours.rps / theirs.rps, label === '1 MiB' ? 2 : 1]);
  }
  clearProgress();
  printTable(['file / server', 'req/s', 'best req/s', 'MiB/s', 'p50 ms', 'p99 ms', 'server CPU s/1k req', 'vs send'], table);
  console.log('');
  for (const [label, ratio, goal] of targets) console.log(`target: serveFile >= ${goal}x send requests/s at ${label} (medians): ${ratio.toFixed(2)}x — ${ratio >= goal ? 'met' : 'NOT met'}`);
  console.log('The load generator shares the machine with the server under test.');
  console.log(NOISE_NOTE);
} finally {
  for (const { child } of Object.values(servers)) child.kill();
}
