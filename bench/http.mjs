#!/usr/bin/env node
// Benchmark: serving static files, side by side in one run: zerocopy's serveFile and serveStatic,
// node:http answering from memory (node:http's ceiling), the `send` package (what express.static
// uses), nginx (1 worker, sendfile on) and Bun.serve + Bun.file.
//
//   node bench/http.mjs [--duration S] [--connections N] [--runs N] [--only a,b]
//
// Each server runs in its own process (bench/http-server.mjs, bench/http-bun.mjs, nginx); wrk (a C
// load generator: apt-get install wrk) drives it with keep-alive connections, for a 16 KiB and a
// 1 MiB file. Without wrk, autocannon is used — a JavaScript client that itself tops out near
// 100 MiB/s of responses. nginx is installed with apt-get (nginx-light) when missing and the bench
// runs as root; Bun comes from the npm registry (scripts/runtimes.mjs, pinned). A peer that cannot be
// had is left out, and the bench says so. Per server: requests/s, throughput, latency and the
// server's CPU seconds per 1,000 requests (from /proc/PID/stat, with its child processes), medians of
// several runs, interleaved, and ratios. Not a test: the load generator shares the machine.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import { cpuSeconds, load as drive, loadGenerator, writeFiles } from './http-load.mjs';
import { MiB, NOISE_NOTE, best, clearProgress, median, printMachine, printTable, progress, rotated, scratch } from './lib.mjs';
import { ensureRuntime } from '../scripts/runtimes.mjs';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '16' },
    runs: { type: 'string', default: '3' },
    dir: { type: 'string', default: tmpdir() },
    only: { type: 'string' },
  },
});
const duration = Number(values.duration);
const connections = Number(values.connections);
const runs = Number(values.runs);

const s = scratch(values.dir);
printMachine(s.dir);
const files = [
  ['16 KiB', 'small.bin', 16 * 1024],
  ['1 MiB', 'large.bin', MiB],
];
writeFiles(s, files);
console.log(`workload: GET of one warm file, ${connections} keep-alive connections, ${duration} s per run, ${runs} runs per server, interleaved; servers in their own process; load from ${loadGenerator}\n`);

async function firstLinePort(child) {
  const [line] = await once(child.stdout, 'data');
  return Number(String(line).trim().split('\n')[0]);
}

async function startServer(kind) {
  const script = fileURLToPath(new URL('./http-server.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, kind, s.dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  return { child, port: await firstLinePort(child) };
}

function haveNginx() {
  return spawnSync('nginx', ['-v'], { stdio: 'ignore' }).status === 0;
}

/** nginx from Debian's packages when missing (as root), like wrk's note above. */
function ensureNginx() {
  if (haveNginx()) return true;
  if (process.getuid?.() !== 0) return false;
  const install = () => spawnSync('apt-get', ['install', '-y', '-q', 'nginx-light'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
  if (!install()) {
    spawnSync('apt-get', ['update', '-q'], { stdio: 'ignore' });
    install();
  }
  return haveNginx();
}

async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

async function startNginx() {
  const port = await freePort();
  const dir = s.path('nginx');
  mkdirSync(`${dir}/tmp`, { recursive: true });
  const conf = `${dir}/nginx.conf`;
  writeFileSync(
    conf,
    `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  default_type application/octet-stream;
  client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp; fastcgi_temp_path ${dir}/tmp; uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp;
  server { listen 127.0.0.1:${port}; root ${s.dir}; }
}
`,
  );
  const child = spawn('nginx', ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => {
        sock.destroy();
        resolve(true);
      });
      sock.on('error', () => resolve(false));
    });
    if (up) return { child, port };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill();
  throw new Error('nginx did not start');
}

async function startBun() {
  const bun = ensureRuntime('bun');
  const script = fileURLToPath(new URL('./http-bun.mjs', import.meta.url));
  const child = spawn(bun, [script, s.dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  return { child, port: await firstLinePort(child) };
}


/** Drives `path` on `port` for the run's duration (or `seconds`). */
const load = (port, path, size, seconds = duration) => drive({ port, path, size, connections, seconds });

const wanted = values.only ? values.only.split(',') : ['serveFile', 'serveStatic', 'memory', 'send', 'nginx', 'bun'];
const servers = {};
const missing = [];
for (const kind of wanted) {
  try {
    if (kind === 'nginx') {
      if (!ensureNginx()) throw new Error('not installed (apt-get install nginx-light)');
      servers[kind] = await startNginx();
    } else if (kind === 'bun') servers[kind] = await startBun();
    else servers[kind] = await startServer(kind);
  } catch (err) {
    missing.push(`${kind}: ${err.message}`);
  }
}
const kinds = Object.keys(servers);
const LABEL = { serveFile: 'serveFile', serveStatic: 'serveStatic', memory: 'node:http from memory', send: 'send', nginx: 'nginx (1 worker)', bun: 'Bun.serve+Bun.file' };
try {
  // Warm-up, not measured: JIT, page cache, and files settled past serveFile's cache window (1 s).
  await new Promise((r) => setTimeout(r, 1100));
  for (const kind of kinds) {
    for (const [label, name, size] of files) {
      progress(`warm-up: ${kind} ${label}`);
      await load(servers[kind].port, `/${name}`, size, 1);
    }
  }
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
    const rows = {};
    for (const kind of kinds) {
      const v = samples[kind];
      const m = (key) => median(v.map((x) => x[key]));
      rows[kind] = { kind, rps: m('rps'), best: -best(v.map((x) => -x.rps)), mbps: m('mbps'), p50: m('p50'), p99: m('p99'), cpu: m('cpuPer1k') };
    }
    const ours = rows.serveFile;
    const vs = (k) => (rows[k] && ours ? `${(ours.rps / rows[k].rps).toFixed(2)}x` : '-');
    for (const r of Object.values(rows)) {
      table.push([`${label} ${LABEL[r.kind]}`, r.rps.toFixed(0), r.best.toFixed(0), r.mbps.toFixed(0), r.p50.toFixed(2), r.p99.toFixed(2), r.cpu.toFixed(3)]);
    }
    if (ours) {
      for (const k of kinds.filter((k) => k !== 'serveFile')) table.push([`  ${label} serveFile vs ${LABEL[k]}`, vs(k), '', '', '', '', '']);
    }
    const goals = label === '16 KiB' ? [['memory', 0.8], ['send', 3]] : [['nginx', 1.0], ['send', 2.5]];
    for (const [k, goal] of goals) if (rows[k] && ours) targets.push([label, LABEL[k], ours.rps / rows[k].rps, goal]);
  }
  clearProgress();
  printTable(['file / server', 'req/s', 'best req/s', 'MiB/s', 'p50 ms', 'p99 ms', 'server CPU s/1k req'], table);
  console.log('');
  for (const [label, peer, ratio, goal] of targets) console.log(`target: serveFile >= ${goal}x ${peer} requests/s at ${label} (medians): ${ratio.toFixed(2)}x — ${ratio >= goal ? 'met' : 'NOT met'}`);
  for (const m of missing) console.log(`left out: ${m}`);
  console.log('The load generator shares the machine with the server under test.');
  console.log(NOISE_NOTE);
} finally {
  for (const { child } of Object.values(servers)) child.kill();
}
