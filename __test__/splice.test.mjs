// splice, tee and vmsplice: pipe(), proxy() and teeTo() over real loopback sockets, and the sys calls.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import tls from 'node:tls';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, fstatSync, openSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';

import { pipe, proxy, teeTo, sys, AbortError } from 'zerocopy';
import { MiB, connection as loopback, nativeBinding, receive, rejection, scratch, settledFds, thrown, settled, throttledRead, unanswered, until } from './helpers.mjs';

const s = scratch();
test.after(() => s.cleanup());
const GiB = 1024 * MiB;

/** A loopback connection whose ends allow half-open: `ours` is what the relay gets, `peer` the other end. */
async function connection({ pauseOnConnect = false } = {}) {
  const { ours, client } = await loopback('tcp', undefined, { allowHalfOpen: true, pauseOnConnect });
  return { ours, peer: client };
}

/** The bytes of stream `seed`: a 1 MiB pseudo-random block repeated, each MiB stamped with its index. */
const blocks = new Map();
function chunkOf(seed, index, size) {
  let block = blocks.get(seed);
  if (!block) blocks.set(seed, (block = randomBytes(MiB)));
  const len = Math.min(MiB, size - index * MiB);
  const chunk = Buffer.from(block.subarray(0, len));
  if (len >= 8) chunk.writeDoubleLE(index, 0);
  return chunk;
}

const digests = new Map();
function expected(size, seed) {
  const key = `${seed}:${size}`;
  if (!digests.has(key)) {
    const h = createHash('sha256');
    for (let i = 0; i * MiB < size; i++) h.update(chunkOf(seed, i, size));
    digests.set(key, h.digest('hex'));
  }
  return digests.get(key);
}

/** Writes stream `seed` of `size` bytes to `sock` with backpressure, then ends it (unless `end: false`). */
async function produce(sock, size, seed, { end = true } = {}) {
  for (let i = 0; i * MiB < size; i++) {
    if (!sock.write(chunkOf(seed, i, size))) await once(sock, 'drain');
  }
  if (end) sock.end();
}

/** Reads `sock` to its end: sha256 and length. */
function consume(sock) {
  const h = createHash('sha256');
  let length = 0;
  sock.on('data', (d) => {
    h.update(d);
    length += d.length;
  });
  return new Promise((resolve, reject) => {
    sock.once('end', () => resolve({ digest: h.digest('hex'), length }));
    sock.once('close', () => reject(new Error(`closed before the end, after ${length} bytes`)));
  });
}

const closed = (sock) => (sock.closed ? Promise.resolve() : once(sock, 'close').then(() => {}));
/** Resolves once the peer has seen its connection end: end of stream (peers allow half-open) or close. */
function hungUp(peer) {
  if (peer.closed || peer.readableEnded) return Promise.resolve();
  peer.resume();
  return new Promise((resolve) => {
    for (const event of ['end', 'close', 'error']) peer.once(event, () => resolve());
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const hash = (buf) => createHash('sha256').update(buf).digest('hex');

/** A socket whose peer has sent `parts` and ended, all of it read by Node (end of stream too) and held, paused. */
async function endedSource(parts, options) {
  const c = await loopback('tcp', undefined, options);
  const [first, ...rest] = parts;
  c.client.write(first);
  const [data] = await once(c.ours, 'data');
  c.ours.pause();
  c.ours.unshift(data);
  c.client.end(rest.join(''));
  await until(() => c.ours._readableState.ended, "Node read the source's end of stream");
  return c;
}

/** Pipes of this process, by /proc/self/fd. */
function pipeFds() {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith('pipe:');
    } catch {
      return false;
    }
  }).length;
}

const SIZES = [0, 1, 64 * 1024 + 1, 16 * MiB, GiB];
const label = (n) => (n >= MiB ? `${n / MiB} MiB` : `${n} B`);

for (const size of SIZES) {
  test(`pipe: ${label(size)} arrive intact and the sink is ended`, async () => {
    const src = await connection();
    const dst = await connection();
    const got = consume(dst.peer);
    const relaying = pipe(src.ours, dst.ours);
    await produce(src.peer, size, 1);
    const res = await relaying;
    assert.equal(res, { bytes: size, mechanism: 'splice' });
    const { digest, length } = await got;
    assert.is(length, size);
    assert.is(digest, expected(size, 1));
    // Both sockets end as if Node had moved the bytes itself.
    await Promise.all([closed(src.ours), closed(dst.ours)].map((p) => Promise.race([p, sleep(2000)])));
    assert.ok(src.ours.readableEnded, "src emitted 'end'");
    assert.ok(dst.ours.writableFinished, 'dst was ended');
    src.peer.destroy();
    dst.peer.destroy();
  });

  test(`proxy: ${label(size)} each way at once arrive intact`, async () => {
    const a = await connection();
    const b = await connection();
    const atB = consume(b.peer);
    const atA = consume(a.peer);
    const relaying = proxy(a.ours, b.ours);
    await Promise.all([produce(a.peer, size, 2), produce(b.peer, size, 3)]);
    const res = await relaying;
    assert.equal(res, { aToB: size, bToA: size, mechanism: 'splice' });
    const [down, up] = await Promise.all([atA, atB]);
    assert.is(up.digest, expected(size, 2));
    assert.is(down.digest, expected(size, 3));
    await Promise.all([closed(a.ours), closed(b.ours)]);
    a.peer.destroy();
    b.peer.destroy();
  });
}

test('proxy: half-close — a FIN is forwarded while the other direction goes on', async () => {
  const client = await connection();
  const backend = await connection();
  const order = [];
  // The backend answers only after it has seen the client's end of stream.
  const request = receive(backend.peer).then((body) => {
    order.push('backend saw end');
    backend.peer.write('response to ');
    backend.peer.end(body);
    return body;
  });
  const response = receive(client.peer);
  const relaying = proxy(client.ours, backend.ours);
  client.peer.end('GET /');
  const res = await relaying;
  order.push('proxy settled');
  assert.is((await request).toString(), 'GET /');
  assert.is((await response).toString(), 'response to GET /');
  assert.equal(res, { aToB: 5, bToA: 17, mechanism: 'splice' });
  assert.equal(order, ['backend saw end', 'proxy settled']);
  await Promise.all([closed(client.ours), closed(backend.ours)]);
  client.peer.destroy();
  backend.peer.destroy();
});

for (const side of ['a', 'b']) {
  test(`proxy: a reset of ${side}'s peer mid-stream rejects with the error and the bytes each way`, async () => {
    const a = await connection();
    const b = await connection();
    const victim = side === 'a' ? a.peer : b.peer;
    const survivor = side === 'a' ? b.peer : a.peer;
    let received = 0;
    b.peer.on('data', (d) => {
      received += d.length;
      if (received > 4 * MiB && !victim.destroyed) victim.resetAndDestroy();
    });
    a.peer.on('data', () => {});
    const relaying = proxy(a.ours, b.ours);
    produce(a.peer, 256 * MiB, 4).catch(() => {});
    b.peer.write('some bytes back');
    const err = await rejection(() => relaying);
    assert.ok(['ECONNRESET', 'EPIPE'].includes(err.code), err.code);
    assert.ok(err.aToB >= 4 * MiB && err.aToB < 256 * MiB, `aToB ${err.aToB}`);
    assert.is(err.bToA, 15);
    assert.is(err.bytesTransferred, err.aToB + err.bToA);
    assert.ok(a.ours.destroyed && b.ours.destroyed, 'both relayed sockets are destroyed');
    await hungUp(survivor); // our duplicates did not keep the surviving connection open
  });
}

test('pipe: a slow consumer holds the relay back (bounded memory)', async () => {
  const src = await connection();
  const dst = await connection();
  dst.peer.pause();
  let relayed = 0;
  const relaying = pipe(src.ours, dst.ours, { onProgress: (n) => (relayed = n) });
  const size = 512 * MiB;
  const producing = produce(src.peer, size, 5);
  const rss0 = process.memoryUsage().rss;
  await sleep(1000);
  const stalledAt = relayed;
  const rss = process.memoryUsage().rss - rss0;
  // Socket buffers on loopback and one 1 MiB pipe; nothing piles up in this process.
  assert.ok(stalledAt < 64 * MiB, `${stalledAt / MiB} MiB relayed while the consumer read nothing`);
  assert.ok(rss < 64 * MiB, `RSS grew by ${rss / MiB} MiB`);
  const got = consume(dst.peer);
  dst.peer.resume();
  await producing;
  assert.is((await relaying).bytes, size);
  assert.is((await got).digest, expected(size, 5));
  src.peer.destroy();
  dst.peer.destroy();
});

test("pipe: bytes Node wrote to dst before the call go first, writes made during it follow, then the end", async () => {
  const src = await connection();
  const dst = await connection();
  const got = receive(dst.peer);
  dst.ours.write('HEAD|');
  dst.ours.cork();
  dst.ours.write('CORKED|');
  const relaying = pipe(src.ours, dst.ours);
  dst.ours.write('|DURING');
  const body = Buffer.concat([chunkOf(6, 0, 3 * MiB), chunkOf(6, 1, 3 * MiB), chunkOf(6, 2, 3 * MiB)]);
  src.peer.end(body);
  const res = await relaying;
  const received = await got;
  assert.is(res.bytes, body.length);
  assert.ok(received.equals(Buffer.concat([Buffer.from('HEAD|CORKED|'), body, Buffer.from('|DURING')])), 'byte order kept');
  src.peer.destroy();
  dst.peer.destroy();
});

test('pipe: bytes Node had already read from src are forwarded first, and no data event fires for them', async () => {
  const src = await connection();
  const dst = await connection();
  // A protocol sniffer: read the first line, give the rest back with unshift, then relay.
  const line = 'PROXY TCP4 1.2.3.4\n';
  const body = randomBytes(200_000);
  src.peer.write(line);
  src.peer.write(body.subarray(0, 100_000));
  const [first] = await once(src.ours, 'data');
  src.ours.pause();
  const at = first.indexOf('\n') + 1;
  assert.is(first.subarray(0, at).toString(), line);
  src.ours.unshift(first.subarray(at));
  await sleep(50); // Node reads and buffers what arrives meanwhile
  let seenByListener = 0;
  src.ours.on('data', (d) => (seenByListener += d.length));
  src.ours.pause();
  assert.ok(src.ours.readableLength > 0, 'Node holds buffered bytes');
  const got = receive(dst.peer);
  const relaying = pipe(src.ours, dst.ours);
  src.peer.end(body.subarray(100_000));
  const res = await relaying;
  const received = await got;
  assert.is(res.bytes, body.length);
  assert.ok(received.equals(body), 'no loss, no reordering');
  assert.is(seenByListener, 0, 'the relay took the buffered bytes, listeners did not see them');
  assert.is(src.ours.bytesRead, line.length + body.length, 'bytesRead counts what Node read and what the relay read, once');
  src.peer.destroy();
  dst.peer.destroy();
});

test('1,000 short proxied connections leave fds and pipes at their baseline', async () => {
  const backend = net.createServer({ allowHalfOpen: true }, (sock) => {
    sock.on('error', () => {});
    receive(sock).then((body) => sock.end(Buffer.concat([Buffer.from('echo:'), body])));
  });
  await new Promise((r) => backend.listen(0, '127.0.0.1', r));
  const results = [];
  const front = net.createServer((client) => {
    client.on('error', () => {});
    const upstream = net.connect(backend.address().port, '127.0.0.1');
    upstream.on('error', () => {});
    results.push(proxy(client, upstream).catch((e) => e));
  });
  await new Promise((r) => front.listen(0, '127.0.0.1', r));
  const one = async (i) => {
    const c = net.connect({ port: front.address().port, host: '127.0.0.1', allowHalfOpen: true });
    c.on('error', () => {});
    const reply = receive(c);
    c.end(`hello ${i}`);
    const text = (await reply).toString();
    c.destroy();
    await closed(c);
    return text;
  };
  const wave = async (from, n) => Promise.all(Array.from({ length: n }, (_, k) => one(from + k)));
  await wave(0, 50); // warm up: tokio, the pool (filled to its bound by 50 at once)
  await Promise.all(results.splice(0));
  const fds = await settledFds();
  const pipes = pipeFds();
  const pool = nativeBinding().pipePoolStats();
  for (let i = 0; i < 1000; i += 50) {
    const replies = await wave(i, 50);
    replies.forEach((text, k) => assert.is(text, `echo:hello ${i + k}`));
  }
  const outcomes = await Promise.all(results);
  assert.is(outcomes.length, 1000);
  for (const [k, r] of outcomes.entries()) {
    assert.ok(!(r instanceof Error), `${k}: ${r}`);
  }
  assert.ok(outcomes.every((r) => r.aToB === r.bToA - 5 && r.mechanism === 'splice'));
  // Every fd is back, except the empty pipes the bounded pool keeps for the next relays (two fds each).
  const stats = nativeBinding().pipePoolStats();
  assert.ok(stats.idle <= stats.maxIdle, `${stats.idle} idle pipes, bound ${stats.maxIdle}`);
  const pooled = 2 * (stats.idle - pool.idle);
  assert.is(await settledFds(), fds + pooled);
  assert.is(pipeFds(), pipes + pooled);
  front.close();
  backend.close();
});

test('teeTo: two sinks get equal bytes, the slower one sets the pace', async () => {
  const src = await connection();
  const fast = await connection();
  const slow = await connection();
  slow.peer.pause();
  const gotFast = consume(fast.peer);
  const gotSlow = consume(slow.peer);
  const size = 64 * MiB + 3;
  const relaying = teeTo(src.ours, [fast.ours, slow.ours]);
  const producing = produce(src.peer, size, 7);
  await sleep(300);
  slow.peer.resume();
  await producing;
  const res = await relaying;
  assert.equal(res, { bytes: size, mechanism: 'splice' });
  assert.is(src.ours.bytesRead, size, 'read once, whatever the number of sinks');
  const [f, sl] = await Promise.all([gotFast, gotSlow]);
  assert.is(f.digest, expected(size, 7));
  assert.is(sl.digest, f.digest);
  for (const c of [src, fast, slow]) c.peer.destroy();
});

test('sys.vmsplice copies: changing the Buffer after the call never changes bytes already sent', async () => {
  const { ours, peer } = await connection();
  const fd = ours._handle.fd;
  const p = sys.pipeSync();
  try {
    const original = randomBytes(3 * 4096 + 7);
    const buf = Buffer.from(original);
    // Async: change the buffer after the promise settles, once while the bytes sit in the pipe and
    // once after they moved on into the socket (where a plain vmsplice would still see the change).
    assert.is(await sys.vmsplice(p.writeFd, buf), buf.length);
    buf.fill(0xaa);
    assert.is(await sys.splice(p.readFd, fd, { length: buf.length }), buf.length);
    buf.fill(0xbb);
    // Sync, with a Uint8Array view.
    const view = new Uint8Array(original.buffer.slice(0), original.byteOffset, original.length);
    assert.is(sys.vmspliceSync(p.writeFd, view), view.length);
    view.fill(0xcc);
    assert.is(sys.spliceSync(p.readFd, fd, { length: view.length }), view.length);
    view.fill(0xdd);
    const got = await new Promise((resolve) => {
      const chunks = [];
      peer.on('data', (d) => {
        chunks.push(d);
        if (Buffer.concat(chunks).length >= 2 * original.length) resolve(Buffer.concat(chunks));
      });
    });
    assert.ok(got.equals(Buffer.concat([original, original])), 'the peer read the bytes as they were at the call');
    // The pipe takes at most its capacity per call.
    const small = sys.pipeSync({ size: 4096, nonblock: true });
    assert.is(small.size, 4096);
    assert.is(sys.vmspliceSync(small.writeFd, Buffer.alloc(10_000)), 4096);
    assert.is(thrown(() => sys.vmspliceSync(small.writeFd, Buffer.alloc(1))).code, 'EAGAIN');
    closeSync(small.readFd);
    closeSync(small.writeFd);
  } finally {
    closeSync(p.readFd);
    closeSync(p.writeFd);
    ours.destroy();
    peer.destroy();
  }
});

test('sys.splice and sys.tee: socket → pipe, duplicated, → socket and file, with flags', async () => {
  const { ours, peer } = await connection({ pauseOnConnect: true });
  const fd = ours._handle.fd;
  const a = sys.pipeSync({ size: MiB });
  const b = sys.pipeSync();
  try {
    assert.ok(a.size >= MiB);
    const data = randomBytes(100_000);
    peer.write(data);
    let moved = 0;
    while (moved < data.length) {
      moved += await sys.splice(fd, a.writeFd, { length: data.length - moved, nonblock: true }).catch((e) => {
        if (e.code === 'EAGAIN') return 0;
        throw e;
      });
    }
    assert.is(await sys.tee(a.readFd, b.writeFd, 60_000), 60_000);
    assert.is(sys.teeSync(a.readFd, b.writeFd, 1, { nonblock: true }), 1, 'tee copies from the head again');
    // Pipe → file at an offset, and pipe → socket.
    const file = s.path('spliced');
    const out = openSync(file, 'w+');
    assert.is(sys.spliceSync(a.readFd, out, { length: data.length, offsetOut: 10, move: true }), data.length);
    assert.ok(readFileSync(file).subarray(10).equals(data));
    assert.is(fstatSync(out).size, 10 + data.length);
    closeSync(out);
    const back = receive(peer);
    assert.is(sys.spliceSync(b.readFd, fd, { length: 60_001, more: false }), 60_001);
    ours.end();
    const echoed = await back;
    assert.ok(echoed.equals(Buffer.concat([data.subarray(0, 60_000), data.subarray(0, 1)])));
    // An empty non-blocking pipe.
    const err = thrown(() => sys.spliceSync(a.readFd, fd, { length: 10, nonblock: true }));
    assert.is(err.code, 'EAGAIN');
  } finally {
    for (const f of [a.readFd, a.writeFd, b.readFd, b.writeFd]) closeSync(f);
    peer.destroy();
  }
});

test('sys: bad input fails before or at the call with a clear error', async () => {
  const { ours, peer } = await connection();
  const sock = ours._handle.fd;
  const p = sys.pipeSync();
  const gone = sys.pipeSync();
  closeSync(gone.readFd);
  closeSync(gone.writeFd);
  try {
    const cases = [
      // [what, fn, code, message fragment]
      ['splice between two sockets', () => sys.spliceSync(sock, sock, { length: 1 }), 'EINVAL', 'splice needs a pipe at one end: the input is a socket and the output is a socket'],
      ['tee from a socket', () => sys.teeSync(sock, p.writeFd, 1), 'EINVAL', 'tee needs a pipe at both ends: the input is a socket'],
      ['tee into a socket', () => sys.teeSync(p.readFd, sock, 1), 'EINVAL', 'the output is a socket'],
      ['tee into the same pipe', () => sys.teeSync(p.readFd, p.writeFd, 1), 'EINVAL', 'same pipe'],
      ['vmsplice into a socket', () => sys.vmspliceSync(sock, Buffer.from('x')), 'EINVAL', 'vmsplice writes into a pipe: the fd is a socket'],
      ['vmsplice into a read end', () => sys.vmspliceSync(p.readFd, Buffer.from('x')), 'EBADF', 'read end'],
      ['an offset for a pipe', () => sys.spliceSync(p.readFd, sock, { length: 1, offsetIn: 0 }), 'ESPIPE', 'cannot seek'],
      ['splice from a closed fd', () => sys.spliceSync(gone.readFd, p.writeFd, { length: 1 }), 'EBADF', 'bad file descriptor'],
      ['tee into a closed fd', () => sys.teeSync(p.readFd, gone.writeFd, 1), 'EBADF', 'bad file descriptor'],
      ['vmsplice into a closed fd', () => sys.vmspliceSync(gone.writeFd, Buffer.from('x')), 'EBADF', 'bad file descriptor'],
      ['a negative length', () => sys.spliceSync(sock, p.writeFd, { length: -1 }), 'ERR_OUT_OF_RANGE', '>= 0'],
      ['a negative tee length', () => sys.teeSync(p.readFd, p.writeFd, -5), 'ERR_OUT_OF_RANGE', '>= 0'],
      ['a fractional length', () => sys.spliceSync(sock, p.writeFd, { length: 1.5 }), 'ERR_OUT_OF_RANGE', 'integer'],
      ['a negative offset', () => sys.spliceSync(sock, p.writeFd, { length: 1, offsetOut: -1 }), 'ERR_OUT_OF_RANGE', 'offsetOut'],
      ['a negative fd', () => sys.spliceSync(-1, p.writeFd), 'ERR_OUT_OF_RANGE', 'fdIn'],
      ['a string fd', () => sys.teeSync('3', p.writeFd), 'ERR_INVALID_ARG_TYPE', 'pipeIn'],
      ['a non-buffer', () => sys.vmspliceSync(p.writeFd, 'text'), 'ERR_INVALID_ARG_TYPE', 'buffer'],
      ['a non-boolean flag', () => sys.spliceSync(sock, p.writeFd, { nonblock: 1 }), 'ERR_INVALID_ARG_TYPE', 'nonblock'],
      ['a zero pipe size', () => sys.pipeSync({ size: 0 }), 'ERR_OUT_OF_RANGE', 'size'],
    ];
    for (const [what, fn, code, fragment] of cases) {
      const err = thrown(fn);
      assert.is(err.code, code, what);
      assert.ok(err.message.includes(fragment), `${what}: ${err.message}`);
      if (code.startsWith('E') && !code.startsWith('ERR')) {
        assert.is(typeof err.errno, 'number', what);
        assert.ok(['splice', 'tee', 'vmsplice', 'dup'].includes(err.syscall), `${what}: ${err.syscall}`);
      }
    }
    // The async forms report the same.
    const err = await rejection(() => sys.splice(sock, sock, { length: 1 }));
    assert.is(err.code, 'EINVAL');
    assert.match(err.message, /needs a pipe/);
    assert.is((await rejection(() => sys.tee(p.readFd, sock))).code, 'EINVAL');
    assert.is((await rejection(() => sys.vmsplice(gone.writeFd, Buffer.from('x')))).code, 'EBADF');
    assert.is((await rejection(() => sys.tee(p.readFd, p.writeFd, -1))).code, 'ERR_OUT_OF_RANGE');
  } finally {
    closeSync(p.readFd);
    closeSync(p.writeFd);
    ours.destroy();
    peer.destroy();
  }
});

test('pipe, proxy, teeTo: bad arguments and unusable sockets', async () => {
  const c = await connection();
  for (const [fn, code] of [
    [() => pipe({}, c.ours), 'ERR_INVALID_ARG_TYPE'],
    [() => pipe(c.ours, 'x'), 'ERR_INVALID_ARG_TYPE'],
    [() => pipe(-1, c.ours), 'ERR_OUT_OF_RANGE'],
    [() => pipe(c.ours, c.peer, { end: 'yes' }), 'ERR_INVALID_ARG_TYPE'],
    [() => pipe(c.ours, c.peer, { pipeSize: 0 }), 'ERR_OUT_OF_RANGE'],
    [() => proxy(c.ours, c.peer, { onProgress: 1 }), 'ERR_INVALID_ARG_TYPE'],
    [() => proxy(c.ours, c.peer, { signal: {} }), 'ERR_INVALID_ARG_TYPE'],
    [() => teeTo(c.ours, c.peer), 'ERR_INVALID_ARG_TYPE'],
    [() => teeTo(c.ours, []), 'ERR_INVALID_ARG_VALUE'],
    [() => teeTo(c.ours, [c.peer, c.peer]), 'ERR_INVALID_ARG_VALUE'],
  ]) {
    assert.is((await rejection(fn)).code, code);
  }
  // Already aborted: nothing happens to the sockets.
  const err = await rejection(() => proxy(c.ours, c.peer, { signal: AbortSignal.abort() }));
  assert.instance(err, AbortError);
  assert.equal([err.aToB, err.bToA, err.bytesTransferred], [0, 0, 0]);
  assert.not.ok(c.ours.destroyed || c.peer.destroyed);
  // fds the relay could take bytes from but not deliver them to fail before anything moves.
  const file = s.path('relay-sink');
  writeFileSync(file, 'kept');
  for (const [flags, code, fragment] of [
    ['a', 'EINVAL', 'O_APPEND'],
    ['r', 'EBADF', 'open for reading only'],
  ]) {
    // Part of the message is in Node's buffer when the relay starts; the rest comes after it failed.
    const src = await connection();
    src.peer.write('never lost ');
    await once(src.ours, 'readable');
    const fd = openSync(file, flags);
    const err = await rejection(() => pipe(src.ours, fd));
    closeSync(fd);
    assert.is(err.code, code, flags);
    assert.match(err.message, fragment);
    assert.is(err.bytesTransferred, 0);
    // The socket is handed back as it was: not destroyed, its bytes readable by Node in order.
    assert.not.ok(src.ours.destroyed, 'a relay refused before moving anything leaves the socket alone');
    const rest = receive(src.ours);
    src.peer.end('in a pipe');
    assert.is((await rest).toString(), 'never lost in a pipe');
    src.peer.destroy();
  }
  assert.is(readFileSync(file, 'utf8'), 'kept');
  const gone = openSync(file, 'r');
  closeSync(gone);
  const badFd = await rejection(() => pipe(gone, 1));
  assert.is(badFd.code, 'EBADF');
  assert.match(badFd.message, `fd ${gone}, is not an open file descriptor`);
  c.peer.end();
  const ended = await rejection(() => pipe(c.ours, c.peer));
  assert.is(ended.code, 'ERR_STREAM_WRITE_AFTER_END');
  c.ours.destroy();
  const destroyed = await rejection(() => pipe(c.ours, 1));
  assert.is(destroyed.code, 'ERR_STREAM_DESTROYED');
  assert.is(destroyed.bytesTransferred, 0);
  c.peer.destroy();
});

test('a second relay from a socket already being relayed is refused; the first goes on', async () => {
  const src = await connection();
  const one = await connection();
  const two = await connection();
  const got = receive(one.peer);
  const first = pipe(src.ours, one.ours);
  const err = await rejection(() => pipe(src.ours, two.ours));
  assert.is(err.code, 'ERR_INVALID_STATE');
  assert.is(err.bytesTransferred, 0);
  assert.not.ok(two.ours.destroyed, 'the refused relay left its destination alone');
  src.peer.end('only once');
  assert.equal(await first, { bytes: 9, mechanism: 'splice' });
  assert.is((await got).toString(), 'only once');
  for (const c of [src, one, two]) c.peer.destroy();
  two.ours.destroy();
});

test('abort stops a relay waiting on a silent peer; both sockets are destroyed', async () => {
  const a = await connection();
  const b = await connection();
  b.peer.pause();
  const ac = new AbortController();
  const reason = new Error('shutting down');
  const relaying = proxy(a.ours, b.ours, { signal: ac.signal });
  produce(a.peer, 256 * MiB, 8).catch(() => {});
  setTimeout(() => ac.abort(reason), 200);
  const t0 = Date.now();
  const err = await rejection(() => relaying);
  assert.instance(err, AbortError);
  assert.is(err.cause, reason);
  assert.ok(Date.now() - t0 < 5000);
  assert.ok(err.aToB > 0 && err.aToB < 256 * MiB, `${err.aToB}`);
  assert.is(err.bytesTransferred, err.aToB + err.bToA);
  assert.ok(a.ours.destroyed && b.ours.destroyed);
  await Promise.all([hungUp(a.peer), hungUp(b.peer)]);
});

test('destroying a relayed socket rejects with ERR_STREAM_DESTROYED and closes both connections', async () => {
  const src = await connection();
  const dst = await connection();
  dst.peer.pause();
  const relaying = pipe(src.ours, dst.ours);
  produce(src.peer, 128 * MiB, 9).catch(() => {});
  setTimeout(() => dst.ours.destroy(), 200);
  const err = await rejection(() => relaying);
  assert.is(err.code, 'ERR_STREAM_DESTROYED');
  assert.ok(err.bytesTransferred > 0);
  await Promise.all([hungUp(src.peer), hungUp(dst.peer)]);
});

test('pipe: a socket into a file fd, and progress that is monotonic and ends at the total', async () => {
  const src = await connection();
  const file = s.path('download');
  const fd = openSync(file, 'w');
  const calls = [];
  const relaying = pipe(src.ours, fd, { onProgress: (n) => calls.push(n) });
  const size = 40 * MiB + 1;
  await produce(src.peer, size, 10);
  const res = await relaying;
  closeSync(fd);
  assert.equal(res, { bytes: size, mechanism: 'splice' });
  assert.is(hash(readFileSync(file)), expected(size, 10));
  assert.ok(calls.length >= 4, `${calls.length} calls`);
  for (let i = 1; i < calls.length; i++) assert.ok(calls[i] >= calls[i - 1]);
  assert.is(calls.at(-1), size);
  src.peer.destroy();
});

/** A TLS connection on loopback (both ends allow half-open): `ours` is the server's end. */
async function tlsConnection() {
  const key = readFileSync(new URL('./fixtures/tls-key.pem', import.meta.url));
  const cert = readFileSync(new URL('./fixtures/tls-cert.pem', import.meta.url));
  const server = tls.createServer({ key, cert, allowHalfOpen: true });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const accepted = once(server, 'secureConnection');
  const client = tls.connect({ port: server.address().port, host: '127.0.0.1', ca: cert, servername: 'localhost', allowHalfOpen: true });
  const [ours] = await accepted;
  return { ours, client, server };
}

test('TLS sockets fall back to streams, both directions intact', async () => {
  const { ours, client, server } = await tlsConnection();
  const plain = await connection();
  const toPlain = consume(plain.peer);
  const toTls = consume(client);
  const relaying = proxy(ours, plain.ours);
  await Promise.all([produce(client, 3 * MiB + 5, 11), produce(plain.peer, MiB + 1, 12)]);
  const res = await relaying;
  server.close();
  assert.equal(res, { aToB: 3 * MiB + 5, bToA: MiB + 1, mechanism: 'stream' });
  assert.is((await toPlain).digest, expected(3 * MiB + 5, 11));
  assert.is((await toTls).digest, expected(MiB + 1, 12));
  client.destroy();
  plain.peer.destroy();
});

test('a moving relay keeps setTimeout() quiet on both sockets and counts in bytesWritten and bytesRead', async () => {
  const src = await connection();
  const dst = await connection();
  let timeouts = 0;
  for (const sock of [src.ours, dst.ours]) {
    sock.setTimeout(300);
    sock.on('timeout', () => timeouts++);
  }
  const reading = throttledRead(dst.peer);
  const size = 256 * MiB;
  const t0 = Date.now();
  const relaying = pipe(src.ours, dst.ours);
  await produce(src.peer, size, 13);
  const res = await relaying;
  const took = Date.now() - t0;
  assert.is(res.bytes, size);
  assert.ok(took > 300, `the relay took ${took} ms: longer than the timeout, or the test proves nothing`);
  assert.is(timeouts, 0, "no 'timeout' while bytes kept moving");
  assert.is(dst.ours.bytesWritten, size);
  assert.is(src.ours.bytesRead, size);
  assert.is(await reading, size);
  src.peer.destroy();
  dst.peer.destroy();
});

const relays = {
  pipe: (src, dst, o) => pipe(src, dst, o),
  proxy: (src, dst, o) => proxy(src, dst, o),
  teeTo: (src, dst, o) => teeTo(src, [dst], o),
};

test('a socket destroyed while still connecting settles pipe, proxy and teeTo; so does a later abort', async () => {
  const nowhere = await unanswered();
  try {
    for (const [name, relay] of Object.entries(relays)) {
      for (const side of ['sink', 'source']) {
        // The everyday case: net.connect({ timeout }) and destroy() in its 'timeout' handler.
        const other = await connection();
        const timedOut = nowhere.connect({ timeout: 100 });
        timedOut.on('timeout', () => timedOut.destroy());
        const r1 = await settled(side === 'sink' ? relay(other.ours, timedOut) : relay(timedOut, other.ours));
        assert.is(r1.error?.code, 'ERR_SOCKET_CLOSED_BEFORE_CONNECTION', `${name}, connecting ${side}`);
        assert.is(r1.error.bytesTransferred, 0);
        assert.ok(other.ours.destroyed, 'a failed relay destroys its sockets');
        other.peer.destroy();

        // A signal fired while a socket still connects frees the relay.
        const again = await connection();
        const waiting = nowhere.connect();
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 50);
        const r2 = await settled(side === 'sink' ? relay(again.ours, waiting, { signal: ac.signal }) : relay(waiting, again.ours, { signal: ac.signal }));
        assert.instance(r2.error, AbortError, `${name}, connecting ${side}, abort`);
        assert.is(r2.error.bytesTransferred, 0);
        again.peer.destroy();
      }
    }
  } finally {
    nowhere.close();
  }
});

for (const [name, relay] of Object.entries(relays)) {
  test(`${name}: an idle timeout never fires while a trickle keeps moving; it still fires after`, async () => {
    const src = await connection();
    const dst = await connection();
    let timedOut = 0;
    for (const sock of [src.ours, dst.ours]) {
      sock.setTimeout(1000);
      sock.on('timeout', () => (timedOut ||= Date.now()));
    }
    const got = [];
    dst.peer.on('data', (d) => got.push(d));
    const relaying = relay(src.ours, dst.ours).catch((err) => err);
    // An interactive session: a keystroke every 200 ms for 3 s, then silence.
    let lastKey = 0;
    for (let i = 0; i < 15 && !timedOut; i++) {
      src.peer.write('k');
      lastKey = Date.now();
      await sleep(200);
    }
    assert.is(timedOut, 0, "no 'timeout' while keystrokes kept coming");
    assert.is(Buffer.concat(got).toString(), 'k'.repeat(15));
    await until(() => timedOut, "'timeout' fired once nothing moved");
    assert.ok(timedOut - lastKey >= 900, `'timeout' ${timedOut - lastKey} ms after the last keystroke`);
    src.peer.end();
    if (name === 'proxy') dst.peer.end();
    const res = await settled(relaying);
    assert.is(res.value?.mechanism, 'splice', String(res.error));
    src.peer.destroy();
    dst.peer.destroy();
  });
}

for (const [name, relay] of [
  ['pipe', (src, dst) => pipe(src, dst)],
  ['teeTo', (src, dst) => teeTo(src, [dst]).then((r) => ({ bytes: r.bytes, mechanism: r.mechanism }))],
]) {
  for (const sink of ['connecting', 'draining earlier writes']) {
    test(`${name}: a source whose end of stream Node already read arrives whole, into a sink still ${sink}`, async () => {
      // net's default (allowHalfOpen false): the source ends and closes itself once its 'end' is out.
      const src = await endedSource(['HELLO ', 'WORLD END']);
      const server = net.createServer({ pauseOnConnect: sink !== 'connecting' });
      await new Promise((r) => server.listen(0, '127.0.0.1', r));
      const accepted = once(server, 'connection');
      const dst = net.connect(server.address().port, '127.0.0.1');
      dst.on('error', () => {});
      let earlier = 0;
      if (sink !== 'connecting') {
        await once(dst, 'connect');
        // 64 MiB the paused peer has not read: Node still holds most of it when the relay starts.
        const block = Buffer.alloc(MiB, 0x2e);
        for (let i = 0; i < 64; i++) dst.write(block);
        earlier = 64 * MiB;
        assert.ok(dst.writableLength > 0, 'earlier writes are still queued');
      }
      const relaying = relay(src.ours, dst);
      const [peer] = await accepted;
      const body = receive(peer);
      peer.resume();
      const res = await settled(relaying);
      assert.equal(res.value, { bytes: 15, mechanism: 'splice' });
      const all = await body;
      assert.is(all.length, earlier + 15);
      assert.is(all.subarray(earlier).toString(), 'HELLO WORLD END');
      await until(() => src.ours.readableEnded, "the source emitted 'end'");
      server.close();
      src.client.destroy();
      peer.destroy();
    });
  }
}

test('proxy: a side whose end of stream Node already read is forwarded, and the other direction goes on', async () => {
  const a = await endedSource(['request ', 'and its end'], { allowHalfOpen: true });
  const b = await connection();
  const atB = receive(b.peer);
  const atA = receive(a.client);
  const relaying = proxy(a.ours, b.ours);
  assert.is((await atB).toString(), 'request and its end');
  b.peer.end('the response');
  const res = await settled(relaying);
  assert.equal(res.value, { aToB: 19, bToA: 12, mechanism: 'splice' });
  assert.is((await atA).toString(), 'the response');
  a.client.destroy();
  b.peer.destroy();
});

for (const [encoding, before, after] of [
  ['utf8', [0x41, 0xe2, 0x82], [0xac, 0x42]], // half of '€' in the decoder
  ['base64', [1, 2, 3, 4], [5, 6]], // one byte of a 3-byte group in the decoder
  ['utf16le', [0x41, 0x00, 0x3d], [0xd8, 0x00, 0xde]], // a high surrogate's first byte
  ['hex', [0xff], [0xfe]],
]) {
  test(`pipe: a source with setEncoding('${encoding}') loses no byte its decoder held`, async () => {
    const src = await connection();
    const dst = await connection();
    src.ours.setEncoding(encoding);
    src.ours.pause();
    src.peer.write(Buffer.from(before));
    // Node has read the bytes: decoded text in its buffer, the rest of a character in its decoder.
    await until(() => src.ours.bytesRead === before.length, 'Node read the first bytes');
    const body = receive(dst.peer);
    const relaying = pipe(src.ours, dst.ours);
    src.peer.end(Buffer.from(after));
    const res = await settled(relaying);
    assert.equal(res.value, { bytes: before.length + after.length, mechanism: 'splice' });
    assert.equal([...(await body)], [...before, ...after]);
    src.peer.destroy();
    dst.peer.destroy();
  });
}

test('pipe, proxy, teeTo: streams that are not sockets are refused by name', async () => {
  const c = await connection();
  const ws = createWriteStream(s.path('not-a-socket'));
  await once(ws, 'open');
  for (const fn of [() => pipe(c.ours, ws), () => proxy(ws, c.ours), () => teeTo(c.ours, [ws])]) {
    const err = await rejection(fn);
    assert.is(err.code, 'ERR_INVALID_ARG_TYPE');
    assert.match(err.message, 'Received an instance of WriteStream');
  }
  assert.not.ok(c.ours.destroyed);
  ws.destroy();
  await once(ws, 'close');
  c.peer.destroy();
  c.ours.destroy();
});

test("proxy: 'end' on a socket follows the delivery of its bytes (spliced, already read by Node, TLS)", async () => {
  /** proxy(a, b): what had been relayed (aToB, bToA) when `a` emitted 'end'. */
  const relayWatchingEnd = (a, b) => {
    const watched = { progress: [0, 0], atEnd: undefined };
    a.once('end', () => (watched.atEnd = [...watched.progress]));
    watched.relaying = proxy(a, b, { onProgress: (x, y) => (watched.progress = [x, y]) });
    return watched;
  };
  /** 64 MiB (more than the sockets and the pipe hold) written to `writer`, relayed from `a` into a sink that does not read for a while. */
  const intoSlowSink = async (a, writer, seed) => {
    const b = await connection();
    b.peer.pause();
    const watched = relayWatchingEnd(a, b.ours);
    const producing = produce(writer, 64 * MiB, seed);
    await sleep(300);
    assert.is(watched.atEnd, undefined, "no 'end' while bytes are still to deliver");
    const got = consume(b.peer);
    b.peer.resume();
    await producing;
    await until(() => watched.progress[0] === 64 * MiB, 'all relayed');
    b.peer.end();
    assert.is((await settled(watched.relaying)).value?.aToB, 64 * MiB);
    await until(() => watched.atEnd, "'end' emitted");
    assert.equal(watched.atEnd, [64 * MiB, 0]);
    assert.is((await got).digest, expected(64 * MiB, seed));
  };
  const spliced = await connection();
  await intoSlowSink(spliced.ours, spliced.peer, 20);
  spliced.peer.destroy();
  const overTls = await tlsConnection();
  await intoSlowSink(overTls.ours, overTls.client, 21);
  overTls.server.close();
  overTls.client.destroy();

  // Already read by Node, end of stream too, into a sink still connecting.
  const a = await endedSource(['request ', 'and its end'], { allowHalfOpen: true });
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const accepted = once(server, 'connection');
  const watched = relayWatchingEnd(a.ours, net.connect({ port: server.address().port, host: '127.0.0.1', allowHalfOpen: true }));
  const [peer] = await accepted;
  const body = receive(peer);
  await sleep(100);
  assert.is(watched.atEnd, undefined, "no 'end' before the bytes reached the sink");
  assert.is((await body).toString(), 'request and its end');
  peer.end();
  await settled(watched.relaying);
  await until(() => watched.atEnd, "'end' emitted");
  assert.equal(watched.atEnd, [19, 0]);
  server.close();
  a.client.destroy();
});

test.run();
