// serveFile's large bodies (64 KiB and more) over real node:http servers on loopback: the headers go
// out with the body in one native send when nothing else is on the socket's way, and by Node's stream
// in write order when something is.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';

import { serveFile } from 'zerocopy';
import { scratch, makeFile, MiB } from './helpers.mjs';

const s = scratch();
const root = s.path('www');
mkdirSync(root);
const big = makeFile(`${root}/big.bin`, MiB + 3);
const bigData = readFileSync(big);
const hash = (buf) => createHash('sha256').update(buf).digest('hex');

/** What the handler saw for each request: socket.write() calls during serveFile, bytesWritten after. */
const seen = [];
let before = () => {};
const server = http.createServer(async (req, res) => {
  const socket = req.socket; // res.socket is null until a pipelined response's turn
  let writes = 0;
  const write = socket.write;
  socket.write = function (...args) {
    writes++;
    return write.apply(this, args);
  };
  // Counted as this response finishes: a pipelined one after it may be written at once, before this handler resumes.
  let atFinish;
  res.once('finish', () => (atFinish = socket.bytesWritten));
  await before(res, req);
  let result;
  try {
    result = await serveFile(req, res, undefined, { root });
  } catch (err) {
    result = err;
  }
  socket.write = write;
  // A failed response never finishes.
  if (!(result instanceof Error)) await new Promise((r) => (res.writableFinished ? r() : res.once('finish', r)));
  seen.push({ url: req.url, writes, result, bytesWritten: atFinish ?? socket.bytesWritten });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const port = server.address().port;
test.after(() => {
  server.close();
  s.cleanup();
});

/** Sends `requests` on one raw connection and resolves with everything the server sent until it closed. */
function exchange(requests) {
  const sock = net.connect(port, '127.0.0.1');
  sock.write(requests);
  const chunks = [];
  sock.on('data', (d) => chunks.push(d));
  return new Promise((resolve, reject) => {
    sock.on('end', () => resolve(Buffer.concat(chunks)));
    sock.on('error', reject);
  });
}

/** The responses in `all`, split by their Content-Length. */
function responses(all) {
  const out = [];
  for (let at = 0; at < all.length; ) {
    const end = all.indexOf('\r\n\r\n', at);
    const head = all.subarray(at, end).toString('latin1');
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1]);
    out.push({ head, body: all.subarray(end + 4, end + 4 + length) });
    at = end + 4 + length;
  }
  return out;
}

const native = process.platform === 'linux';

test('headers and body in one native send: nothing written through Node, every byte counted, keep-alive goes on', async () => {
  seen.length = 0;
  const all = await exchange('GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=7-70006\r\nConnection: close\r\n\r\n');
  const [a, b] = responses(all);
  assert.match(a.head, /^HTTP\/1\.1 200 OK\r\n/);
  assert.is(hash(a.body), hash(bigData));
  assert.match(b.head, /^HTTP\/1\.1 206 Partial Content\r\n/);
  assert.ok(b.body.equals(bigData.subarray(7, 70007)));
  assert.is(seen.length, 2);
  assert.equal(seen[0].result, { status: 200, bytes: MiB + 3, mechanism: 'sendfile' });
  assert.equal(seen[1].result, { status: 206, bytes: 70000, mechanism: 'sendfile' });
  if (native) assert.equal(seen.map((r) => r.writes), [0, 0], 'no header write, no hold through the stream');
  const firstLength = Buffer.byteLength(a.head) + 4 + a.body.length;
  assert.is(seen[0].bytesWritten, firstLength, "the socket's bytesWritten counts the headers and the body");
  assert.is(seen[1].bytesWritten, all.length);
});

test('a multipart body: the first part head goes with the headers, the parts byte for byte', async () => {
  seen.length = 0;
  const all = await exchange('GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99999,500000-599999\r\nConnection: close\r\n\r\n');
  const head = all.subarray(0, all.indexOf('\r\n\r\n')).toString('latin1');
  const boundary = /boundary=(\S+)/.exec(head)?.[1];
  assert.ok(boundary, head);
  const body = all.subarray(all.indexOf('\r\n\r\n') + 4);
  const parts = body.toString('latin1').split(`--${boundary}`);
  assert.is(parts.length, 4, 'two parts between the delimiters, the closing one last');
  const payload = (p) => Buffer.from(p.slice(p.indexOf('\r\n\r\n') + 4, -2), 'latin1');
  assert.ok(payload(parts[1]).equals(bigData.subarray(0, 100000)));
  assert.ok(payload(parts[2]).equals(bigData.subarray(500000, 600000)));
  assert.equal(seen[0].result, { status: 206, bytes: 200000, mechanism: 'sendfile' });
  assert.is(seen[0].bytesWritten, all.length);
});

test('with writes on their way (a corked socket) the headers go through Node, before the body', async () => {
  seen.length = 0;
  before = (res) => res.req.socket.cork();
  try {
    const all = await exchange('GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const [a] = responses(all);
    assert.match(a.head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.is(hash(a.body), hash(bigData));
    assert.is(all.length, Buffer.byteLength(a.head) + 4 + a.body.length);
    assert.ok(seen[0].writes >= 1, 'the stream path');
    assert.equal(seen[0].result, { status: 200, bytes: MiB + 3, mechanism: 'sendfile' });
  } finally {
    before = () => {};
  }
});

test('a pipelined response whose turn has not come: it waits for the socket (it has none yet), then goes out in order', async () => {
  // The first request is held back, so the second's serveFile runs while its response is queued
  // behind the first (res.socket is null): it must wait for the socket, not fail the connection.
  seen.length = 0;
  let first = true;
  before = (res, req) => {
    if (!first || req.url !== '/big.bin') return undefined;
    first = false;
    return new Promise((r) => setTimeout(r, 150));
  };
  try {
    const all = await exchange('GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=7-70006\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const parts = responses(all);
    assert.is(parts.length, 3, 'three responses');
    assert.match(parts[0].head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.is(hash(parts[0].body), hash(bigData));
    assert.match(parts[1].head, /^HTTP\/1\.1 206 Partial Content\r\n/);
    assert.ok(parts[1].body.equals(bigData.subarray(7, 70007)));
    assert.is(hash(parts[2].body), hash(bigData));
    assert.equal(seen.map((r) => r.result.status), [200, 206, 200]);
    for (const r of seen) assert.is(r.result.mechanism, 'sendfile');
  } finally {
    before = () => {};
  }
});

test('a queued pipelined response whose connection closes first: serveFile rejects, nothing leaks', async () => {
  seen.length = 0;
  let first = true;
  let release;
  before = (res, req) => {
    if (!first) return undefined;
    first = false;
    // The first response never comes: the client leaves while the second waits its turn.
    return new Promise((r) => (release = r));
  };
  try {
    const sock = net.connect(port, '127.0.0.1');
    sock.write('GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 100));
    sock.destroy();
    await new Promise((r) => setTimeout(r, 100));
    release();
    for (let i = 0; i < 50 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.is(seen.length, 2, 'both handlers returned');
    for (const r of seen) assert.ok(r.result instanceof Error, `rejected: ${r.result?.code ?? r.result?.status}`);
  } finally {
    before = () => {};
  }
});

test.run();
