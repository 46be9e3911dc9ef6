// Shared by the uvu tests: real files in real directories, hashes, fd counts.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, openSync, writeSync, closeSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { residency } from 'zerocopy';
import { createRequire } from 'node:module';
import net from 'node:net';
import { once } from 'node:events';

/** A fresh scratch directory; call the returned cleanup when done. */
export function scratch(base = tmpdir()) {
  const dir = mkdtempSync(join(base, 'zerocopy-test-'));
  return { dir, path: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes `size` bytes (a random 1 MiB block repeated, with the offset stamped in each block) to `path`. */
export function makeFile(path, size) {
  const block = randomBytes(Math.min(size, 1 << 20) || 1);
  const fd = openSync(path, 'w');
  try {
    for (let at = 0; at < size; at += block.length) {
      const chunk = block.subarray(0, Math.min(block.length, size - at));
      if (chunk.length >= 8) chunk.writeDoubleLE(at, 0);
      writeSync(fd, chunk, 0, chunk.length, at);
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

export function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function sha256Range(path, start, end) {
  return createHash('sha256').update(readFileSync(path).subarray(start, end)).digest('hex');
}

/** Open fds of this process. */
export function openFds() {
  return readdirSync('/proc/self/fd').length;
}

/**
 * Open fds once the count has stopped moving: sockets of earlier tests (in this process) close
 * asynchronously, so a baseline taken too early drifts.
 */
export async function settledFds() {
  let last = openFds();
  for (let i = 0; i < 40; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const now = openFds();
    if (now === last) return now;
    last = now;
  }
  return last;
}

/** Runs `fn` and returns what it threw (or rejected with); fails if it did not, or hung for `ms`. */
export async function rejection(fn, ms = 60_000) {
  const { error } = await settled(Promise.resolve().then(fn), ms);
  if (error === undefined) throw new Error('expected a rejection');
  return error;
}

export function thrown(fn) {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

export const MiB = 1 << 20;

/** Whether a loop-mounted XFS image can be made here (root, mkfs.xfs, loop devices). */
export function canMountXfs() {
  if (process.getuid?.() !== 0) return 'not running as root';
  try {
    execFileSync('mkfs.xfs', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'mkfs.xfs is not installed (apt-get install xfsprogs)';
  }
  if (!existsSync('/dev/loop-control')) return 'no loop device support';
  return true;
}

/** Whether filesystems can be mounted here (root with mount(8)); else the reason. */
export function canMount() {
  if (process.getuid?.() !== 0) return 'not running as root';
  return true;
}

/** Mounts a fresh `type` filesystem (e.g. ramfs, tmpfs) on a scratch directory; cleanup unmounts it. */
export function mountScratch(type, options = 'size=64m') {
  const s = scratch();
  execFileSync('mount', ['-t', type, '-o', options, 'none', s.dir]);
  return {
    ...s,
    cleanup: () => {
      execFileSync('umount', [s.dir]);
      s.cleanup();
    },
  };
}

/** Fraction of a file's pages in the page cache (mincore, through the public residency()). */
export function residentFraction(path) {
  const { pages, resident } = residency(path);
  return pages === 0 ? 0 : resident / pages;
}

/** The raw napi binding, for test-only helpers that are not part of the public API. */
export function nativeBinding() {
  return createRequire(import.meta.url)('../native/binding.js');
}

/**
 * A loopback connection: `ours` is our end (the one we send into), `client` the peer.
 * `kind`: 'tcp' | 'unix' (a socket file in `dir`). Options: `allowHalfOpen` for both ends, and
 * `pauseOnConnect` (Node never reads `ours`: for system calls on its fd).
 */
export async function connection(kind = 'tcp', dir = tmpdir(), { allowHalfOpen = false, pauseOnConnect = false } = {}) {
  const server = net.createServer({ allowHalfOpen, pauseOnConnect });
  const path = join(dir, `sock-${Math.random().toString(36).slice(2)}`);
  await new Promise((r) => (kind === 'unix' ? server.listen(path, r) : server.listen(0, '127.0.0.1', r)));
  const accepted = once(server, 'connection');
  const client = net.connect(kind === 'unix' ? { path, allowHalfOpen } : { port: server.address().port, host: '127.0.0.1', allowHalfOpen });
  const [ours] = await accepted;
  await once(client, 'connect').catch(() => {});
  server.close();
  ours.on('error', () => {});
  client.on('error', () => {});
  return { ours, client };
}

/**
 * Reads `sock` in bursts — `burst` bytes, then a pause of `gap` ms — until it ends: a consumer that
 * keeps a transfer moving yet makes it last at least (size / burst - 1) × gap ms on any machine.
 * Resolves to the bytes read.
 */
export function throttledRead(sock, { burst = 16 * 1024 * 1024, gap = 60 } = {}) {
  let length = 0;
  let inBurst = 0;
  sock.on('data', (d) => {
    length += d.length;
    inBurst += d.length;
    if (inBurst >= burst) {
      inBurst = 0;
      sock.pause();
      setTimeout(() => sock.resume(), gap);
    }
  });
  return new Promise((resolve) => {
    sock.once('end', () => resolve(length));
    sock.once('close', () => resolve(length));
  });
}

/** Everything the peer receives until EOF. */
export function receive(client) {
  const chunks = [];
  client.on('data', (d) => chunks.push(d));
  return new Promise((resolve) => client.on('end', () => resolve(Buffer.concat(chunks))));
}

/**
 * Runs an ES module snippet in a child of this same Node (from the package root, so `import 'zerocopy'`
 * resolves), bounded by `timeout` ms: a crash or a hang shows as the child's status, signal and
 * output instead of taking the test runner down.
 */
export function childModule(code, args = [], { nodeFlags = [], timeout = 120_000, env = {} } = {}) {
  const r = spawnSync(process.execPath, [...nodeFlags, '--input-type=module', '-e', code, ...args], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    encoding: 'utf8',
    timeout,
    env: { ...process.env, ...env },
  });
  return { status: r.status, signal: r.signal, out: r.stdout, err: r.stderr, timedOut: r.error?.code === 'ETIMEDOUT' };
}

/**
 * A port on 127.0.0.1 where a connection never completes, for sockets destroyed while still
 * connecting: a listener in a child process that never accepts (its event loop is blocked), with its
 * accept queue filled, so the kernel drops further SYNs. `connect(options)` returns such a socket;
 * `close()` ends it all. The child gives up by itself after two minutes.
 */
export async function unanswered() {
  const code = `const net = require('node:net');
    const server = net.createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => setTimeout(() => {
      process.stdout.write(server.address().port + '\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120000);
      process.exit(0);
    }, 0));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = await once(child.stdout, 'data');
  const port = Number(String(line).trim());
  const sockets = [];
  const connect = (options = {}) => {
    const sock = net.connect({ port, host: '127.0.0.1', ...options });
    sock.on('error', () => {});
    sockets.push(sock);
    return sock;
  };
  // A backlog of 1 queues two connections; the kernel completes those without the child accepting.
  for (let completed = 0; ; ) {
    const sock = connect();
    const done = once(sock, 'connect').then(() => true);
    if (await Promise.race([done, new Promise((r) => setTimeout(() => r(false), 300))])) completed++;
    else if (completed >= 2) break;
    else if (await Promise.race([done, new Promise((r) => setTimeout(() => r(false), 10_000))])) completed++;
    else throw new Error('the unanswered listener completed fewer connections than its backlog');
    if (completed > 16) throw new Error('the unanswered listener keeps accepting');
  }
  return {
    connect,
    close() {
      for (const sock of sockets) sock.destroy();
      child.kill();
    },
  };
}

/** What `promise` settled with: `{ value }` or `{ error }`. Rejects if it is still pending after `ms` (a hang). */
export async function settled(promise, ms = 15_000) {
  let timer;
  const hang = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise.then((value) => ({ value }), (error) => ({ error })), hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `predicate()` holds, for at most 10 s; then throws, saying `what` did not happen. */
export async function until(predicate, what) {
  for (let i = 0; i < 500 && !predicate(); i++) await new Promise((r) => setTimeout(r, 20));
  if (!predicate()) throw new Error(`not within 10 s: ${what}`);
}
