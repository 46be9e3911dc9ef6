// sendFile into real sockets on loopback: content, order with Node's own writes, failures, and no
// thread-pool starvation.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import tls from 'node:tls';
import { createHash } from 'node:crypto';
import { readFile, open, truncate } from 'node:fs/promises';
import { readFileSync, openSync, closeSync, writeFileSync, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { sendFile, AbortError } from 'zerocopy';
import { scratch, makeFile, sha256, sha256Range, MiB, settledFds, rejection, connection, receive, throttledRead, unanswered, until } from './helpers.mjs';

const s = scratch();
test.after(() => s.cleanup());


/** Resolves once the socket has closed (at once if it already has). */
const closed = (sock) => (sock.closed ? Promise.resolve() : once(sock, 'close').then(() => {}));

const hash = (buf) => createHash('sha256').update(buf).digest('hex');


for (const size of [0, 1, 64 * 1024 - 1, MiB + 1]) {
  test(`sends ${size} bytes with identical content (TCP)`, async () => {
    const file = makeFile(s.path(`f-${size}`), size);
    const { ours, client } = await connection();
    const got = receive(client);
    const res = await sendFile(ours, file);
    ours.end();
    assert.is(res.bytes, size);
    // Size 0 in stat may be procfs: such files are read, not sendfile'd.
    assert.is(res.mechanism, size === 0 ? 'readwrite' : 'sendfile');
    assert.is(hash(await got), sha256(file));
  });
}

test('an fd number naming a regular file is refused in the JS API\'s terms', async () => {
  const src = makeFile(s.path('to-regular-src'), 100);
  const fd = openSync(s.path('to-regular-dst'), 'w');
  try {
    const err = await rejection(() => sendFile(fd, src));
    assert.is(err.code, 'EINVAL');
    // The core names its own API ("copy::copy"); the JS layer says it in the JS API's terms.
    assert.match(err.message, /not a socket or pipe \(use copyFile\)/);
  } finally {
    closeSync(fd);
  }
});

test("mechanism: 'readwrite' sends through a user-space buffer instead", async () => {
  const file = makeFile(s.path('rw-forced'), 3 * MiB + 7);
  const { ours, client } = await connection();
  const got = receive(client);
  const res = await sendFile(ours, file, { mechanism: 'readwrite', offset: 5 });
  ours.end();
  assert.equal(res, { bytes: 3 * MiB + 2, mechanism: 'readwrite' });
  assert.is(hash(await got), sha256Range(file, 5, 3 * MiB + 7));
  const err = await rejection(() => sendFile(ours, file, { mechanism: 'splice' }));
  assert.is(err.code, 'ERR_INVALID_ARG_VALUE');
});

test('a sparse file over 2 GiB crosses the sendfile cap intact', async () => {
  const file = s.path('sparse');
  const size = 2 ** 31 + MiB + 3;
  const fd = openSync(file, 'w');
  writeFileSync(fd, 'start');
  closeSync(fd);
  await truncate(file, size);
  const fh = await open(file, 'r+');
  await fh.write('across-the-cap', 0x7ffff000 - 3);
  await fh.write('end', size - 3);
  await fh.close();
  const { ours, client } = await connection();
  const h = createHash('sha256');
  let n = 0;
  client.on('data', (d) => {
    h.update(d);
    n += d.length;
  });
  const ended = once(client, 'end');
  const res = await sendFile(ours, file);
  ours.end();
  await ended;
  assert.equal(res, { bytes: size, mechanism: 'sendfile' });
  assert.is(n, size);
  const expected = createHash('sha256');
  const block = Buffer.alloc(16 * MiB);
  const fh2 = await open(file, 'r');
  for (let at = 0; at < size; ) {
    const { bytesRead } = await fh2.read(block, 0, block.length, at);
    expected.update(block.subarray(0, bytesRead));
    at += bytesRead;
  }
  await fh2.close();
  assert.is(h.digest('hex'), expected.digest('hex'));
});

test('offset/length windows, fds and FileHandles, over a Unix domain socket', async () => {
  const file = makeFile(s.path('win'), 3 * MiB + 17);
  for (const [offset, length] of [[0, 100], [1, 2 * MiB], [3 * MiB, undefined], [MiB + 1, 5 * MiB], [3 * MiB + 17, undefined]]) {
    const { ours, client } = await connection('unix');
    const got = receive(client);
    const res = await sendFile(ours, file, { offset, length });
    ours.end();
    const end = Math.min(offset + (length ?? Infinity), 3 * MiB + 17);
    assert.is(res.bytes, end - offset);
    assert.is(hash(await got), sha256Range(file, offset, end), `offset ${offset} length ${length}`);
  }
  // An fd without offset starts at its position and advances it; a FileHandle likewise.
  const { ours, client } = await connection('unix');
  const got = receive(client);
  const fh = await open(file, 'r');
  await fh.read(Buffer.alloc(10), 0, 10, null);
  const a = await sendFile(ours, fh, { length: MiB });
  const b = await sendFile(ours, fh.fd, { length: MiB });
  await fh.close();
  ours.end();
  assert.is(a.bytes + b.bytes, 2 * MiB);
  assert.is(hash(await got), sha256Range(file, 10, 10 + 2 * MiB));
});

test("Node's own writes keep their order around sends: before, during, corked, between, end()", async () => {
  const big = makeFile(s.path('order-big'), 20 * MiB);
  const small = makeFile(s.path('order-small'), 1000);
  const { ours, client } = await connection();
  const got = receive(client);
  ours.write('HEAD');
  ours.cork();
  ours.write('CORKED');
  const first = sendFile(ours, big);
  ours.write('MIDDLE');
  const second = sendFile(ours, small);
  const third = sendFile(ours, big, { offset: 5, length: 3 * MiB });
  ours.write('AFTER');
  ours.end('END');
  const results = await Promise.all([first, second, third]);
  const expected = Buffer.concat([
    Buffer.from('HEADCORKED'),
    readFileSync(big),
    Buffer.from('MIDDLE'),
    readFileSync(small),
    readFileSync(big).subarray(5, 5 + 3 * MiB),
    Buffer.from('AFTEREND'),
  ]);
  const received = await got;
  assert.is(received.length, expected.length);
  assert.ok(received.equals(expected), 'byte order kept');
  assert.equal(results.map((r) => r.mechanism), ['sendfile', 'sendfile', 'sendfile']);
});

test('reading the socket keeps working during a send (a request/response exchange meanwhile)', async () => {
  const big = makeFile(s.path('duplex'), 32 * MiB);
  const { ours, client } = await connection();
  const echoed = once(ours, 'data');
  const sending = sendFile(ours, big);
  client.write('ping');
  const [data] = await echoed;
  assert.is(data.toString(), 'ping');
  const got = receive(client);
  await sending;
  ours.end();
  assert.is((await got).length, 32 * MiB);
});

test('a peer reset mid-send rejects with EPIPE/ECONNRESET and bytesTransferred', async () => {
  const big = makeFile(s.path('reset'), 256 * MiB);
  const { ours, client } = await connection();
  let got = 0;
  client.on('data', (d) => {
    got += d.length;
    if (got > 4 * MiB) client.resetAndDestroy();
  });
  const err = await rejection(() => sendFile(ours, big));
  assert.ok(['EPIPE', 'ECONNRESET'].includes(err.code), err.code);
  assert.ok(err.bytesTransferred >= 4 * MiB && err.bytesTransferred < 256 * MiB, `${err.bytesTransferred}`);
  ours.destroy();
});

test('a file truncated mid-send rejects with ERR_FILE_TRUNCATED after the bytes it had', async () => {
  const file = makeFile(s.path('shrink'), 64 * MiB);
  const { ours, client } = await connection();
  client.pause();
  const sending = sendFile(ours, file);
  await new Promise((r) => setTimeout(r, 100)); // the socket buffers fill; the send waits
  await truncate(file, 8 * MiB);
  client.resume();
  const got = receive(client);
  const err = await rejection(() => sending);
  assert.is(err.code, 'ERR_FILE_TRUNCATED');
  assert.match(err.message, /truncated/);
  assert.is(err.path, file);
  ours.end();
  assert.is((await got).length, err.bytesTransferred, 'every counted byte reached the peer');
  assert.ok(err.bytesTransferred >= 0 && err.bytesTransferred <= 8 * MiB + 8 * MiB);
});

test('abort stops a send waiting on a peer that never reads', async () => {
  const big = makeFile(s.path('abort'), 128 * MiB);
  const { ours, client } = await connection();
  client.pause();
  const ac = new AbortController();
  const reason = new Error('enough');
  setTimeout(() => ac.abort(reason), 100);
  const t0 = Date.now();
  const err = await rejection(() => sendFile(ours, big, { signal: ac.signal }));
  assert.instance(err, AbortError);
  assert.is(err.cause, reason);
  assert.ok(Date.now() - t0 < 5000);
  assert.ok(err.bytesTransferred > 0 && err.bytesTransferred < 128 * MiB);
  assert.not.ok(ours.destroyed, 'the socket is left open');
  // Already aborted: nothing is sent.
  const err2 = await rejection(() => sendFile(ours, big, { signal: AbortSignal.abort() }));
  assert.instance(err2, AbortError);
  assert.is(err2.bytesTransferred, 0);
  client.destroy();
  ours.destroy();
});

test('destroying the socket mid-send rejects with ERR_STREAM_DESTROYED and closes the connection', async () => {
  const big = makeFile(s.path('destroy'), 128 * MiB);
  const { ours, client } = await connection();
  client.pause();
  const sending = sendFile(ours, big);
  setTimeout(() => ours.destroy(), 100);
  const err = await rejection(() => sending);
  assert.is(err.code, 'ERR_STREAM_DESTROYED');
  client.resume();
  await closed(client); // our duplicate did not keep the connection alive
});

test('progress is monotonic and ends at the total', async () => {
  const file = makeFile(s.path('progress'), 40 * MiB);
  const { ours, client } = await connection();
  const got = receive(client);
  const calls = [];
  const res = await sendFile(ours, file, { onProgress: (done, total) => calls.push([done, total]) });
  ours.end();
  await got;
  assert.ok(calls.length >= 4, `${calls.length} calls`);
  for (let i = 1; i < calls.length; i++) assert.ok(calls[i][0] > calls[i - 1][0]);
  assert.equal(calls.at(-1), [res.bytes, res.bytes]);
});

test('TLS sockets fall back to a stream, content intact', async () => {
  const key = readFileSync(new URL('./fixtures/tls-key.pem', import.meta.url));
  const cert = readFileSync(new URL('./fixtures/tls-cert.pem', import.meta.url));
  const file = makeFile(s.path('tls'), 3 * MiB + 5);
  const server = tls.createServer({ key, cert });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const accepted = once(server, 'secureConnection');
  const client = tls.connect({ port: server.address().port, host: '127.0.0.1', ca: cert, servername: 'localhost' });
  const [ours] = await accepted;
  const got = receive(client);
  ours.write('hi');
  const res = await sendFile(ours, file);
  ours.end();
  const received = await got;
  server.close();
  assert.is(res.mechanism, 'stream');
  assert.is(res.bytes, 3 * MiB + 5);
  assert.is(hash(received), hash(Buffer.concat([Buffer.from('hi'), readFileSync(file)])));
});

test('1,000 stalled sends hold no thread-pool thread: fs.promises.readFile still completes', async () => {
  const file = makeFile(s.path('stall'), 32 * MiB);
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const ac = new AbortController();
  const sends = [];
  server.on('connection', (sock) => {
    sock.on('error', () => {});
    sends.push(sendFile(sock, file, { signal: ac.signal }).catch((e) => e));
  });
  const clients = [];
  try {
    for (let i = 0; i < 1000; i++) {
      const c = net.connect(server.address().port, '127.0.0.1');
      c.on('error', () => {});
      c.pause();
      clients.push(c);
    }
    for (let i = 0; sends.length < 1000 && i < 500; i++) await new Promise((r) => setTimeout(r, 20));
    assert.is(sends.length, 1000);
    await new Promise((r) => setTimeout(r, 300)); // let every send fill its socket and wait
    const t0 = Date.now();
    const reads = await Promise.all(Array.from({ length: 16 }, () => readFile(file)));
    assert.ok(reads.every((b) => b.length === 32 * MiB));
    assert.ok(Date.now() - t0 < 20_000, 'readFile calls completed while 1,000 sends were stalled');
  } finally {
    ac.abort();
    const results = await Promise.all(sends);
    for (const c of clients) c.destroy();
    server.close();
    assert.ok(results.every((r) => r instanceof AbortError), 'every stalled send was aborted');
  }
});

test('bad arguments and bad ends', async () => {
  const file = makeFile(s.path('bad'), 10);
  const { ours, client } = await connection();
  for (const [socket, f, opts, code] of [
    [{}, file, undefined, 'ERR_INVALID_ARG_TYPE'],
    [{ write() {}, destroy() {}, writableLength: 0 }, file, undefined, 'ERR_INVALID_ARG_TYPE'],
    ['sock', file, undefined, 'ERR_INVALID_ARG_TYPE'],
    [-1, file, undefined, 'ERR_OUT_OF_RANGE'],
    [ours, 42.5, undefined, 'ERR_OUT_OF_RANGE'],
    [ours, file, { offset: -1 }, 'ERR_OUT_OF_RANGE'],
    [ours, file, { length: '1' }, 'ERR_INVALID_ARG_TYPE'],
    [ours, file, { signal: 'x' }, 'ERR_INVALID_ARG_TYPE'],
    [ours, s.path('missing'), undefined, 'ENOENT'],
    [ours, s.dir, undefined, 'EISDIR'],
  ]) {
    const err = await rejection(() => sendFile(socket, f, opts));
    assert.is(err.code, code, `${code}`);
  }
  const missing = await rejection(() => sendFile(ours, s.path('missing')));
  assert.is(missing.path, s.path('missing'));
  assert.is(missing.bytesTransferred, 0);
  ours.end();
  const ended = await rejection(() => sendFile(ours, file));
  assert.is(ended.code, 'ERR_STREAM_WRITE_AFTER_END');
  client.destroy();
  ours.destroy();
  await closed(ours);
  const destroyed = await rejection(() => sendFile(ours, file));
  assert.is(destroyed.code, 'ERR_STREAM_DESTROYED');
});

test('no fd is left open after successes, failures and aborts', async () => {
  const big = makeFile(s.path('leak-big'), 16 * MiB);
  const small = makeFile(s.path('leak-small'), 100);
  // Warm up lazily created resources (the tokio runtime, its epoll fd and threads).
  {
    const { ours, client } = await connection();
    const got = receive(client);
    await sendFile(ours, big);
    ours.end();
    await got;
    client.end();
    await Promise.all([closed(ours), closed(client)]);
  }
  const before = await settledFds();
  for (let i = 0; i < 5; i++) {
    const { ours, client } = await connection(i % 2 ? 'unix' : 'tcp');
    const got = receive(client);
    await sendFile(ours, big);
    await sendFile(ours, small);
    await sendFile(ours, s.path('missing')).catch(() => {});
    const fh = await open(big, 'r');
    await sendFile(ours, fh, { length: 1000 });
    await fh.close();
    ours.end();
    await got;
    client.end();
    await closed(ours);
    const c2 = await connection();
    c2.client.pause();
    await sendFile(c2.ours, big, { signal: AbortSignal.timeout(50) }).catch(() => {});
    c2.client.destroy();
    c2.ours.destroy();
    await closed(c2.ours);
    await closed(client);
  }
  assert.is(await settledFds(), before);
});

test('a moving send keeps setTimeout() quiet and counts in bytesWritten; a stalled one still times out', async () => {
  // Fast bursts over TCP, and a slow steady reader over a Unix socket, whose ~200 KiB of buffers make
  // the send last as long as the reader (~2 MiB/s for ~3 s): only steps paced by the timeout keep
  // that one quiet.
  for (const { kind, size, timeout, read } of [
    { kind: 'tcp', size: 256 * MiB, timeout: 300, read: {} },
    { kind: 'unix', size: 6 * MiB, timeout: 1000, read: { burst: 64 * 1024, gap: 30 } },
  ]) {
    const file = makeFile(s.path(`idle-${kind}`), size);
    const { ours, client } = await connection(kind, s.dir);
    let timeouts = 0;
    let timedOutAt = 0;
    ours.on('timeout', () => {
      timeouts++;
      timedOutAt ||= Date.now();
    });
    ours.setTimeout(timeout);
    const reading = throttledRead(client, read);
    const before = ours.bytesWritten;
    const t0 = Date.now();
    const r = await sendFile(ours, file);
    const end = Date.now();
    assert.is(r.bytes, size);
    assert.is(timeouts, 0, `no 'timeout' while bytes kept moving (${kind})`);
    assert.ok(end - t0 > timeout * 1.5, `the send took ${end - t0} ms: longer than the timeout, or the test proves nothing`);
    assert.is(ours.bytesWritten - before, size);
    // Nothing moves any more: the timer fires, no sooner than a timeout after the last byte was sent.
    await until(() => timedOutAt, "'timeout' fired once nothing moved");
    assert.ok(timedOutAt - end >= timeout * 0.9, `'timeout' ${timedOutAt - end} ms after the last byte was sent`);
    ours.end();
    assert.is(await reading, size);
  }

  // A peer that reads nothing: the send stalls, the idle timer fires, destroying the socket ends it.
  const stalled = await connection();
  stalled.client.pause();
  stalled.ours.setTimeout(200);
  stalled.ours.once('timeout', () => stalled.ours.destroy());
  const err = await rejection(() => sendFile(stalled.ours, s.path('idle-tcp')));
  assert.is(err.code, 'ERR_STREAM_DESTROYED');
  assert.ok(err.bytesTransferred > 0 && err.bytesTransferred < 256 * MiB);
  stalled.client.destroy();
});

test('a socket destroyed while still connecting settles the send; so does a later abort', async () => {
  const file = makeFile(s.path('connecting'), 256 * 1024);
  const nowhere = await unanswered();
  try {
    // The everyday case: net.connect({ timeout }) and destroy() in its 'timeout' handler.
    const timedOut = nowhere.connect({ timeout: 100 });
    timedOut.on('timeout', () => timedOut.destroy());
    const e1 = await rejection(() => sendFile(timedOut, file));
    assert.is(e1.code, 'ERR_SOCKET_CLOSED_BEFORE_CONNECTION');
    assert.is(e1.bytesTransferred, 0);
    // destroy() soon after connect(), with and without a write queued before the send.
    for (const queued of [false, true]) {
      const sock = nowhere.connect();
      if (queued) sock.write('first');
      const sending = sendFile(sock, file);
      setTimeout(() => sock.destroy(), 20);
      const err = await rejection(() => sending);
      assert.ok(['ERR_SOCKET_CLOSED_BEFORE_CONNECTION', 'ERR_STREAM_DESTROYED'].includes(err.code), err.code);
      assert.is(err.bytesTransferred, 0);
    }
    // A signal fired while the socket still connects frees the send, and leaves the socket alone.
    const waiting = nowhere.connect();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const e3 = await rejection(() => sendFile(waiting, file, { signal: ac.signal }));
    assert.instance(e3, AbortError);
    assert.is(e3.bytesTransferred, 0);
    assert.ok(waiting.connecting && !waiting.destroyed);
  } finally {
    nowhere.close();
  }
});

test('a failed connect rejects with its error and bytesTransferred 0', async () => {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  const err = await rejection(() => sendFile(sock, makeFile(s.path('refused'), 100)));
  assert.is(err.code, 'ECONNREFUSED');
  assert.is(err.bytesTransferred, 0);
});

test('a Writable that is not a socket gets the file through its stream, in write order', async () => {
  const file = makeFile(s.path('to-stream'), 3 * MiB + 5);
  const out = s.path('written-by-stream');
  const ws = createWriteStream(out);
  ws.write('head|');
  const sending = sendFile(ws, file, { offset: 5, length: 2 * MiB });
  ws.write('|tail');
  const res = await sending;
  ws.end();
  await once(ws, 'close');
  assert.equal(res, { bytes: 2 * MiB, mechanism: 'stream' });
  const got = readFileSync(out);
  assert.is(got.subarray(0, 5).toString(), 'head|');
  assert.is(hash(got.subarray(5, 5 + 2 * MiB)), sha256Range(file, 5, 5 + 2 * MiB));
  assert.is(got.subarray(5 + 2 * MiB).toString(), '|tail');

  // process.stdout: a file when redirected to one (a stream in Node), a pipe (a net.Socket) when piped.
  const repo = fileURLToPath(new URL('..', import.meta.url));
  const script = `import { sendFile } from 'zerocopy'; const r = await sendFile(process.stdout, ${JSON.stringify(file)}); process.stderr.write(r.mechanism);`;
  const run = (stdout) => execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repo, stdio: ['ignore', stdout, 'pipe'], maxBuffer: 16 * MiB });
  const redirected = s.path('stdout-file');
  const fd = openSync(redirected, 'w');
  let mechanism;
  try {
    mechanism = String(run(fd) ?? '');
  } catch (err) {
    assert.unreachable(String(err.stderr));
  } finally {
    closeSync(fd);
  }
  assert.is(sha256(redirected), sha256(file));
  const child = await import('node:child_process');
  const piped = child.spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repo, maxBuffer: 16 * MiB });
  assert.is(piped.status, 0, String(piped.stderr));
  assert.is(hash(piped.stdout), sha256(file));
  assert.is(String(piped.stderr), 'sendfile');
  assert.is(mechanism, '', 'stderr went to the test, not stdout');
});

test.run();
