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
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import { cpuSeconds, load as drive, loadGenerator, writeFiles } from './http-load.mjs';
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

const s = scratch(values.dir);
printMachine(s.dir);
const files = [
  ['16 KiB', 'small.bin', 16 * 1024, 1.5],
  ['1 MiB', 'large.bin', MiB, 2.5],
];
writeFiles(s, files);
console.log(`workload: GET of one warm file, ${connections} keep-alive connections, ${duration} s per run, ${runs} runs per server, interleaved; servers in their own process; load from ${loadGenerator}\n`);

async function startServer(framework, variant) {
  const script = fileURLToPath(new URL('./frameworks-server.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, framework, variant, s.dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = await once(child.stdout, 'data');
  return { child, port: Number(String(line).trim()) };
}

/** bench/http.mjs's load: the same client, connections and duration. */
const load = (port, path, size) => drive({ port, path, size, connections, seconds: duration });

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
