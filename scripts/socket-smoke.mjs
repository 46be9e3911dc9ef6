#!/usr/bin/env node
// sendFile, pipe, proxy and teeTo over loopback with the built package (dist/), on whatever runtime
// runs this script: `node scripts/socket-smoke.mjs`, `bun scripts/socket-smoke.mjs`,
// `deno run -A scripts/socket-smoke.mjs`. Each check compares sha256 and prints the mechanism the
// runtime got (Node: sendfile/splice; Deno, whose sockets have no fd, and Bun, whose handles cannot
// stop reading, fall back to 'stream' where they must). Exits 1 if any check fails or hangs.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { pipe, proxy, sendFile, teeTo } from '../dist/index.mjs';

const runtime = globalThis.Deno ? `deno ${globalThis.Deno.version.deno}` : globalThis.Bun ? `bun ${globalThis.Bun.version}` : `node ${process.version}`;
const dir = mkdtempSync(join(tmpdir(), 'zerocopy-smoke-'));
const data = randomBytes(3 * 1024 * 1024 + 7);
const file = join(dir, 'data.bin');
writeFileSync(file, data);
const sha = (buf) => createHash('sha256').update(buf).digest('hex');

const server = net.createServer({ allowHalfOpen: true });
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();

/** A loopback connection: `ours` (the server's end) and `peer`. */
async function connection() {
  const accepted = once(server, 'connection');
  const peer = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const [ours] = await accepted;
  if (peer.connecting) await once(peer, 'connect');
  for (const s of [ours, peer]) s.on('error', () => {});
  return { ours, peer };
}

/** Everything `sock` receives until its end. */
function receive(sock) {
  const chunks = [];
  sock.on('data', (d) => chunks.push(d));
  return new Promise((resolve) => sock.once('end', () => resolve(Buffer.concat(chunks))));
}

function bounded(promise, what, ms = 20_000) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

const checks = {
  async sendFile() {
    const { ours, peer } = await connection();
    const got = receive(peer);
    ours.write('head|');
    const res = await sendFile(ours, file);
    ours.end('|tail');
    const all = await got;
    const ok = all.subarray(0, 5).toString() === 'head|' && sha(all.subarray(5, -5)) === sha(data) && all.subarray(-5).toString() === '|tail';
    return { ok: ok && res.bytes === data.length, mechanism: res.mechanism };
  },
  async 'sendFile to a socket destroyed while connecting'() {
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.on('error', () => {});
    const sending = sendFile(sock, file).then(
      () => 'resolved',
      (err) => err.code,
    );
    sock.destroy();
    const code = await sending;
    return { ok: code !== 'resolved', code };
  },
  async pipe() {
    const src = await connection();
    const dst = await connection();
    const got = receive(dst.peer);
    const relaying = pipe(src.ours, dst.ours);
    src.peer.end(data);
    const res = await relaying;
    return { ok: res.bytes === data.length && sha(await got) === sha(data), mechanism: res.mechanism };
  },
  async proxy() {
    const a = await connection();
    const b = await connection();
    const atB = receive(b.peer);
    const atA = receive(a.peer);
    const relaying = proxy(a.ours, b.ours);
    a.peer.end(data);
    b.peer.end(data.subarray(0, 1000));
    const res = await relaying;
    const ok = res.aToB === data.length && res.bToA === 1000 && sha(await atB) === sha(data) && sha(await atA) === sha(data.subarray(0, 1000));
    return { ok, mechanism: res.mechanism };
  },
  async teeTo() {
    const src = await connection();
    const one = await connection();
    const two = await connection();
    const got = [receive(one.peer), receive(two.peer)];
    const relaying = teeTo(src.ours, [one.ours, two.ours]);
    src.peer.end(data);
    const res = await relaying;
    const [x, y] = await Promise.all(got);
    return { ok: res.bytes === data.length && sha(x) === sha(data) && sha(y) === sha(data), mechanism: res.mechanism };
  },
};

let failed = 0;
for (const [name, check] of Object.entries(checks)) {
  let result;
  try {
    result = await bounded(check(), name);
  } catch (err) {
    result = { ok: false, error: `${err.code ?? ''} ${err.message}` };
  }
  if (!result.ok) failed++;
  console.log(JSON.stringify({ runtime, check: name, ...result }));
}
server.close();
rmSync(dir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
