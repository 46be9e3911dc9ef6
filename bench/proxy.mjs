#!/usr/bin/env node
// Benchmark: relaying one loopback TCP connection to another — a TCP proxy — with zerocopy's proxy()
// against Node's a.pipe(b) and against a bare splice loop, in one run.
//
//   node bench/proxy.mjs [--size MiB] [--runs N] [--peers splice|copy]
//
// Every variant relays the same stream: a source process (crates/zerocopy/examples/source.rs) sends
// SIZE bytes into a connection to the relay and ends it; the relay connects to a sink process
// (examples/sink.rs) that takes everything and closes. Neither peer's CPU is counted, but on a small
// machine the three processes share the cores: by default the peers move their bytes with
// vmsplice/splice (no copy into or out of user space), so the relay is the bottleneck and the
// figures show the relay's own cost; `--peers copy` makes them write and read as ordinary programs do. A relay is timed
// in the relay's process from accepting the client to having relayed both directions to their end
// (the sink's close travels back to the source). Variants: zerocopy proxy(client, upstream); Node's
// client.pipe(upstream) + upstream.pipe(client); and the reference, a bare blocking splice loop in Rust
// (examples/splice_relay.rs) measuring itself.
import { spawn, execFileSync } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import { proxy } from 'zerocopy';
import { MiB, NOISE_NOTE, interleave, printTargets, printVariants, resources, summarize } from './lib.mjs';
import { cpus, release } from 'node:os';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '1024' },
    runs: { type: 'string', default: '5' },
    peers: { type: 'string', default: 'splice' },
  },
});
const sizeMiB = Number(values.size);
const runs = Number(values.runs);
const bytes = sizeMiB * MiB;
if (!['splice', 'copy'].includes(values.peers)) throw new Error('--peers is splice or copy');
const peerMode = values.peers === 'splice' ? ['splice'] : [];

const repo = fileURLToPath(new URL('..', import.meta.url));
console.log('building the reference binaries (cargo build --release --examples)…');
execFileSync('cargo', ['build', '--release', '--quiet', '--examples', '-p', 'zerocopy-io'], { cwd: repo, stdio: 'inherit' });
const examples = `${repo}/target/release/examples`;

/** Spawns an example that prints its port first; resolves with the child and the port. */
async function withPort(name, args) {
  const child = spawn(`${examples}/${name}`, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => (out += d));
  while (!out.includes('\n')) await once(child.stdout, 'data');
  return { child, port: Number(out.split('\n')[0]), output: () => out };
}

const sink = await withPort('sink', peerMode);
process.on('exit', () => sink.child.kill());

console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model.trim()}), Linux ${release()}, Node ${process.version}`);
console.log(`workload: ${sizeMiB} MiB from a source process through the relay to a sink process, loopback TCP, peers moving bytes by ${values.peers}; ${runs} runs per variant, interleaved in rotating order\n`);

/** Starts a source writing `bytes` to `port`; resolves when it exits. */
function source(port) {
  const child = spawn(`${examples}/source`, [String(port), String(bytes), ...peerMode], { stdio: 'inherit' });
  return new Promise((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`source exited with ${code}`)))));
}

/**
 * One relay in this process: listens, starts a source, and on its connection runs `relay(client,
 * upstream)` to the sink; measured from accept until `relay` resolves.
 */
async function inProcess(relay) {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const accepted = once(server, 'connection');
  const sourceDone = source(server.address().port);
  const [client] = await accepted;
  server.close();
  const before = resources();
  const t0 = process.hrtime.bigint();
  const upstream = net.connect(sink.port, '127.0.0.1');
  const result = await relay(client, upstream);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const usage = resources(before);
  await sourceDone;
  return { wall, ...usage, ...result };
}

const ours = () =>
  inProcess(async (client, upstream) => {
    const r = await proxy(client, upstream);
    if (r.aToB !== bytes) throw new Error(`proxy relayed ${r.aToB} of ${bytes} bytes`);
    return { mechanism: r.mechanism };
  });

const nodePipe = () =>
  inProcess(async (client, upstream) => {
    let relayed = 0;
    client.on('data', (d) => (relayed += d.length));
    const closed = Promise.all([once(client, 'close'), once(upstream, 'close')]);
    client.pipe(upstream);
    upstream.pipe(client);
    await closed;
    if (relayed !== bytes) throw new Error(`a.pipe(b) relayed ${relayed} of ${bytes} bytes`);
    return { mechanism: 'stream' };
  });

async function rawLoop() {
  const relay = await withPort('splice_relay', [String(sink.port)]);
  const exited = once(relay.child, 'exit');
  await source(relay.port);
  const [code] = await exited;
  if (code !== 0) throw new Error(`splice_relay exited with ${code}`);
  const r = JSON.parse(relay.output().trim().split('\n')[1]);
  if (r.bytes !== bytes) throw new Error(`the splice loop relayed ${r.bytes} of ${bytes} bytes`);
  return { wall: r.wall, cpu: r.cpu, nvcsw: r.nvcsw, nivcsw: r.nivcsw, mechanism: 'splice' };
}

const variants = [
  ['zerocopy proxy(a, b)', ours],
  ['Node a.pipe(b) + b.pipe(a)', nodePipe],
  ['raw splice loop (Rust, reference)', rawLoop],
];

try {
  const results = await interleave(variants, runs);
  const rows = variants.map(([name]) => summarize(name, results.get(name), bytes));
  const [zc, node, raw] = rows;
  printVariants(rows, sizeMiB, [['vs Node', node], ['vs raw loop', raw]]);
  const checks = [
    ['throughput >= 2x Node a.pipe(b)', node.wall / zc.wall, (x) => x >= 2],
    ['CPU per GiB <= 0.3x Node a.pipe(b)', zc.cpuPerGiB / node.cpuPerGiB, (x) => x <= 0.3],
    ['throughput >= 0.9x the raw splice loop', raw.wall / zc.wall, (x) => x >= 0.9],
  ];
  printTargets(checks);
  console.log(`best runs: ${(node.best / zc.best).toFixed(2)}x Node, ${(raw.best / zc.best).toFixed(2)}x the raw loop`);
  console.log('CPU s/GiB counts every thread of the relaying process (the tokio reactor included); source and sink are separate processes.');
  console.log(NOISE_NOTE);
} finally {
  sink.child.kill();
}
