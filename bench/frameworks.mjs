#!/usr/bin/env node
// Benchmark: static files in Express, Fastify, Koa and Hono — each framework's own static serving
// against zerocopy's adapter in the same app, and the framework's ceiling (the same route answering
// from a Buffer in memory), in one run.
//
//   node bench/frameworks.mjs [--duration S] [--connections N] [--runs N] [--only express,koa]
//
// The load generator settings are bench/http.mjs's: keep-alive connections, wrk (1 thread) or, without
// it, autocannon, for a 16 KiB and a 1 MiB file; each server in its own process
// (bench/frameworks-server.mjs); medians of several runs, interleaved. Not a test: the load generator
// shares the machine.
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
    only: { type: 'string', default: 'express,fastify,koa,hono' },
  },
});
const duration = Number(values.duration);
const connections = Number(values.connections);
const runs = Number(values.runs);
const frameworks = values.only.split(',');

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
  ['16 KiB', 'small.bin', 16 * 1024, 1.5],
  ['1 MiB', 'large.bin', MiB, 2.5],
];
for (const [, name, size] of files) {
  const data = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(s.path(name), data);
}
console.log(`workload: GET of one warm file, ${connections} keep-alive connections, ${duration} s per run, ${runs} runs per server, interleaved; servers in their own process; load from ${haveWrk ? 'wrk (1 thread)' : 'autocannon (install wrk for a client that is not the bottleneck)'}\n`);

const ticks = 100; // USER_HZ
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticks;
}

async function startServer(framework, variant) {
  const script = fileURLToPath(new URL('./frameworks-server.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, framework, variant, s.dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = await once(child.stdout, 'data');
  return { child, port: Number(String(line).trim()) };
}

function ms(text) {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (!m) return NaN;
  return Number(m[1]) * { us: 1e-3, ms: 1, s: 1e3 }[m[2]];
}

/** bench/http.mjs's load: wrk -t1 -c N -d S, or autocannon with the same connections and duration. */
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

/** Checks that a server answers `path` with the file's bytes before it is measured. */
async function verify(port, path, size) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  const body = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200 || !body.equals(readFileSync(s.path(path.slice(1))))) throw new Error(`${path}: status ${res.status}, ${body.length} of ${size} bytes`);
}

const variants = ['zerocopy', 'own', 'buffer'];
const table = [];
const targets = [];
for (const framework of frameworks) {
  const servers = Object.fromEntries(await Promise.all(variants.map(async (v) => [v, await startServer(framework, v)])));
  try {
    for (const [label, name, size, goal] of files) {
      for (const v of variants) await verify(servers[v].port, `/${name}`, size);
      const samples = Object.fromEntries(variants.map((v) => [v, []]));
      for (let run = 0; run < runs; run++) {
        for (const v of rotated(variants, run)) {
          progress(`${framework} ${label}: ${v} run ${run + 1}/${runs}`);
          const { child, port } = servers[v];
          const cpu0 = cpuSeconds(child.pid);
          const r = await load(port, `/${name}`, size);
          samples[v].push({ ...r, cpuPer1k: ((cpuSeconds(child.pid) - cpu0) * 1000) / r.total });
        }
      }
      const row = (v) => {
        const xs = samples[v];
        const m = (key) => median(xs.map((x) => x[key]));
        return { v, rps: m('rps'), best: -best(xs.map((x) => -x.rps)), mbps: m('mbps'), p50: m('p50'), p99: m('p99'), cpu: m('cpuPer1k') };
      };
      const rows = Object.fromEntries(variants.map((v) => [v, row(v)]));
      for (const v of variants) {
        const r = rows[v];
        table.push([`${framework} ${label} ${v}`, r.rps.toFixed(0), r.best.toFixed(0), r.mbps.toFixed(0), r.p50.toFixed(2), r.p99.toFixed(2), r.cpu.toFixed(3), `${(r.rps / rows.own.rps).toFixed(2)}x`, `${(r.rps / rows.buffer.rps).toFixed(2)}x`]);
      }
      targets.push([framework, label, rows.zerocopy.rps / rows.own.rps, goal, rows.zerocopy.rps / rows.buffer.rps]);
    }
  } finally {
    for (const { child } of Object.values(servers)) child.kill();
  }
}
clearProgress();
printTable(['framework file / server', 'req/s', 'best req/s', 'MiB/s', 'p50 ms', 'p99 ms', 'server CPU s/1k req', 'vs own', 'vs buffer'], table);
console.log('');
for (const [framework, label, ratio, goal, ceiling] of targets) {
  console.log(`target: ${framework} zerocopy >= ${goal}x its own static serving at ${label} (medians): ${ratio.toFixed(2)}x — ${ratio >= goal ? 'met' : 'NOT met'}; ${ceiling.toFixed(2)}x the Buffer ceiling`);
}
console.log('The load generator shares the machine with the server under test.');
console.log(NOISE_NOTE);
