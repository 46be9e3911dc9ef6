// The runtime suite: every mechanism once, end to end, on whatever runtime runs this file — Node, Bun
// or Deno (`deno run -A`). It uses only what all three implement (node:* modules, no test framework),
// imports the built package by its own name, as users do, and checks bytes by sha256 and the mechanism
// that moved them. scripts/test-runtimes.mjs runs it on Bun and Deno; the uvu suites cover Node in depth.
//
// Prints one line per check, then `RESULT {json}` with the runtime, its version and each check's
// outcome (the README's runtime table is made from these). Exits 1 if any check failed.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { alignedBuffer, clearFileCache, copyFile, mmapSync, openDirect, pipe, proxy, sendFile, serveFile } from 'zerocopy';

const runtime = globalThis.Deno ? 'deno' : globalThis.Bun ? 'bun' : 'node';
const version = globalThis.Deno ? Deno.version.deno : globalThis.Bun ? Bun.version : process.versions.node;

/**
 * What each runtime is expected to use. Files work the same everywhere. Sockets:
 * - Deno's net.Socket has no OS fd to hand to the kernel (`_handle.fd` is undefined): every socket
 *   path falls back to Node streams.
 * - Bun's net.Socket has its fd, so sendFile uses sendfile; but Bun's HTTP server hands out sockets
 *   without a handle (serveFile falls back to the stream), and its handle cannot stop reading
 *   (no `readStop`), so relays, which must own the source's reads, go through streams too.
 */
const expected = {
  copyFile: ['copy_file_range', 'reflink'],
  sendFile: [runtime === 'deno' ? 'stream' : 'sendfile'],
  serveFile: [runtime === 'node' ? 'sendfile' : 'stream'],
  proxy: [runtime === 'node' ? 'splice' : 'stream'],
  pipe: [runtime === 'node' ? 'splice' : 'stream'],
  openDirect: ['direct'],
};

const dir = mkdtempSync(join(tmpdir(), 'zerocopy-runtime-'));
const path = (name) => join(dir, name);
const sha = (buf) => createHash('sha256').update(buf).digest('hex');
const SIZE = 8 * 1024 * 1024 + 12345; // not a multiple of any page or pipe size
const data = randomBytes(SIZE);
const src = path('src.bin');
writeFileSync(src, data);

/** Starts a loopback TCP server; resolves with it and its port. */
async function listen(onConnection, allowHalfOpen = false) {
  // allowHalfOpen: the server may answer after the client has ended its side (the proxy check's backend).
  const server = net.createServer({ allowHalfOpen }, onConnection);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: server.address().port };
}

/** A promise's outcome, caught at once (an unhandled rejection would end Deno before the check reports it). */
function settled(promise) {
  const p = promise.then((value) => ({ value }), (error) => ({ error }));
  return { get: async () => { const r = await p; if ('error' in r) throw r.error; return r.value; } };
}

/** Reads a socket to its end; resolves with everything it received. */
async function drain(socket) {
  const chunks = [];
  socket.on('data', (c) => chunks.push(c));
  await once(socket, 'end');
  return Buffer.concat(chunks);
}

function mechanismIs(check, mechanism) {
  if (!expected[check].includes(mechanism)) throw new Error(`${check}: mechanism ${mechanism}, expected ${expected[check].join(' or ')}`);
}

function equal(actual, wanted, what) {
  if (actual !== wanted) throw new Error(`${what}: got ${actual}, expected ${wanted}`);
}

const checks = {
  async copyFile() {
    const dst = path('copy.bin');
    const r = await copyFile(src, dst);
    equal(r.bytes, SIZE, 'bytes');
    equal(sha(readFileSync(dst)), sha(data), 'sha256');
    mechanismIs('copyFile', r.mechanism);
    return r.mechanism;
  },

  async sendFile() {
    let result;
    const { server, port } = await listen((socket) => {
      result = settled(sendFile(socket, src).finally(() => socket.end()));
    });
    try {
      const client = net.connect(port, '127.0.0.1');
      const got = await drain(client);
      const r = await result.get();
      equal(r.bytes, SIZE, 'bytes');
      equal(got.length, SIZE, 'bytes received');
      equal(sha(got), sha(data), 'sha256');
      mechanismIs('sendFile', r.mechanism);
      return r.mechanism;
    } finally {
      server.close();
    }
  },

  async serveFile() {
    let result;
    const server = http.createServer((req, res) => {
      result = settled(serveFile(req, res, src));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const get = (headers) =>
        new Promise((resolve, reject) => {
          const req = http.get({ host: '127.0.0.1', port: server.address().port, path: '/', headers, agent: false }, async (res) => {
            try {
              resolve({ status: res.statusCode, headers: res.headers, body: await drainHttp(res) });
            } catch (err) {
              reject(err);
            }
          });
          req.on('error', reject);
        });
      const full = await get({});
      equal(full.status, 200, 'status');
      equal(sha(full.body), sha(data), 'sha256');
      const r = await result.get();
      equal(r.bytes, SIZE, 'bytes');
      mechanismIs('serveFile', r.mechanism);
      const part = await get({ range: 'bytes=1000000-2999999' });
      equal(part.status, 206, 'range status');
      equal(part.headers['content-range'], `bytes 1000000-2999999/${SIZE}`, 'content-range');
      equal(sha(part.body), sha(data.subarray(1000000, 3000000)), 'range sha256');
      // A small range of a large file is read into memory and sent with the headers.
      const small = await get({ range: 'bytes=5000-9999' });
      equal(small.status, 206, 'small range status');
      equal(sha(small.body), sha(data.subarray(5000, 10000)), 'small range sha256');
      return r.mechanism;
    } finally {
      server.close();
    }
  },

  async proxy() {
    // client <-> proxy(client, upstream) <-> backend: the client sends a request and half-closes; the
    // backend reads all of it, then answers with the file. Both directions are hashed.
    const request = randomBytes(3 * 1024 * 1024 + 7);
    let backendGot;
    const backend = await listen(async (socket) => {
      backendGot = await drain(socket);
      socket.end(data);
    }, true);
    let result;
    const front = await listen((client) => {
      const upstream = net.connect(backend.port, '127.0.0.1');
      result = settled(proxy(client, upstream));
    });
    try {
      const client = net.connect(front.port, '127.0.0.1');
      await once(client, 'connect');
      const answer = drain(client);
      client.end(request);
      const got = await answer;
      const r = await result.get();
      equal(sha(backendGot), sha(request), 'request sha256');
      equal(sha(got), sha(data), 'answer sha256');
      equal(r.aToB, request.length, 'aToB');
      equal(r.bToA, SIZE, 'bToA');
      mechanismIs('proxy', r.mechanism);
      return r.mechanism;
    } finally {
      front.server.close();
      backend.server.close();
    }
  },

  async pipe() {
    let sink;
    const sinkServer = await listen((socket) => {
      sink = drain(socket);
    });
    let result;
    const front = await listen((client) => {
      const out = net.connect(sinkServer.port, '127.0.0.1');
      result = settled(pipe(client, out));
    });
    try {
      const client = net.connect(front.port, '127.0.0.1');
      await once(client, 'connect');
      client.end(data);
      const r = await result.get();
      while (!sink) await new Promise((resolve) => setTimeout(resolve, 10));
      const got = await sink;
      equal(r.bytes, SIZE, 'bytes');
      equal(sha(got), sha(data), 'sha256');
      mechanismIs('pipe', r.mechanism);
      client.destroy();
      return r.mechanism;
    } finally {
      front.server.close();
      sinkServer.server.close();
    }
  },

  async mmapTruncation() {
    // Map 4 MiB, truncate the file to 1 MiB under the mapping, read across the cut: the pages past the
    // new end read as zeros instead of killing the process with SIGBUS.
    const file = path('map.bin');
    const bytes = randomBytes(4 * 1024 * 1024);
    writeFileSync(file, bytes);
    const m = mmapSync(file);
    try {
      equal(sha(m.buffer), sha(bytes), 'sha256 before truncation');
      const fd = openSync(file, 'r+');
      ftruncateSync(fd, 1024 * 1024);
      closeSync(fd);
      equal(sha(m.buffer.subarray(0, 1024 * 1024)), sha(bytes.subarray(0, 1024 * 1024)), 'sha256 of the part left');
      let nonzero = 0;
      for (let i = 1024 * 1024; i < m.buffer.length; i += 4096) nonzero += m.buffer[i];
      equal(nonzero, 0, 'sum of bytes past the cut');
      equal(m.stale, true, 'stale');
    } finally {
      // close() unmaps, then reports the truncation once (ERR_MAPPING_TRUNCATED), so it is never missed.
      let code;
      try {
        m.close();
      } catch (err) {
        code = err.code;
      }
      equal(code, 'ERR_MAPPING_TRUNCATED', 'close() of a stale mapping');
    }
    equal(m.buffer.length, 0, 'buffer length after close');
    return 'mmap';
  },

  async openDirect() {
    const file = path('direct.bin');
    const f = await openDirect(file, 'w+');
    try {
      const out = alignedBuffer(1024 * 1024);
      data.copy(out, 0, 0, out.length);
      equal(await f.write(out, 0), out.length, 'bytes written');
      const back = alignedBuffer(1024 * 1024);
      equal(await f.read(back, 0), back.length, 'bytes read');
      equal(sha(back), sha(out), 'sha256');
      mechanismIs('openDirect', f.mechanism);
      return f.mechanism;
    } finally {
      await f.close();
    }
  },
};

async function drainHttp(res) {
  const chunks = [];
  for await (const chunk of res) chunks.push(chunk);
  return Buffer.concat(chunks);
}

// Not counted: the file cache's watcher (one inotify fd per thread, made when a first file is cached,
// which only the second pass's settled files are). The cache's kept fds are let go before each count.
const isWatcher = (fd) => {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:inotify';
  } catch {
    return false;
  }
};
const fds = () => readdirSync('/proc/self/fd').filter((fd) => !isWatcher(fd)).length;
const fdList = () => readdirSync('/proc/self/fd').map((fd) => { try { return `${fd} ${readlinkSync(`/proc/self/fd/${fd}`)}`; } catch { return fd; } });
const only = (globalThis.Deno ? Deno.args : process.argv.slice(2)).filter((a) => !a.startsWith('-'));
const results = {};
let failed = 0;

/** Runs every check once, each bounded so that a hang fails it instead of the whole run. */
async function pass(label) {
  for (const [name, run] of Object.entries(checks)) {
    if (only.length > 0 && !only.includes(name)) continue;
    let timer;
    try {
      const mechanism = await Promise.race([
        run(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('did not settle within 60 s')), 60_000);
        }),
      ]);
      results[name] ??= { ok: true, mechanism };
      console.log(`ok   ${label} ${name} (${mechanism})`);
    } catch (err) {
      failed++;
      results[name] = { ok: false, error: String(err?.stack ?? err) };
      console.log(`FAIL ${label} ${name}: ${err?.stack ?? err}`);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The fd count once it has fallen to `floor` or stopped moving for a second: sockets close asynchronously. */
async function settledFds(floor = 0) {
  let now = fds();
  for (let i = 0, still = 0; i < 100 && now > floor && still < 10; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const next = fds();
    still = next === now ? still + 1 : 0;
    now = next;
  }
  return now;
}

// The first pass also creates what lives as long as the process: the runtime's own fds (stdout and
// stderr, which Node opens lazily), the native reactor's epoll fd and the relay's pool of idle pipes.
// The second pass must then leave the count exactly where the first left it.
process.stdout.write('');
process.stderr.write('');
await pass('1');
clearFileCache();
const baseline = await settledFds();
const before = process.env.ZEROCOPY_DEBUG_FDS ? fdList() : undefined;
await pass('2');
clearFileCache();
const leaked = (await settledFds(baseline)) - baseline;
if (before) console.log(fdList().filter((l) => !before.includes(l)));
if (leaked > 0) {
  failed++;
  console.log(`FAIL fds: the second pass left ${leaked} more open than the first`);
} else console.log('ok   fds: the second pass left as many open as the first');
rmSync(dir, { recursive: true, force: true });
console.log(`RESULT ${JSON.stringify({ runtime, version, results, leaked })}`);
process.exit(failed > 0 ? 1 : 0);
