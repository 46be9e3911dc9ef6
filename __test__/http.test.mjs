// serveFile over real node:http servers on loopback: statuses, headers, ranges, conditionals,
// traversal, keep-alive, failures mid-body, TLS.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync, symlinkSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { truncate } from 'node:fs/promises';
import { once } from 'node:events';

import { serveFile } from 'zerocopy';
import { scratch, makeFile, sha256, MiB, throttledRead } from './helpers.mjs';

const s = scratch();
const root = s.path('www');
mkdirSync(`${root}/sub`, { recursive: true });
mkdirSync(`${root}/empty`);
mkdirSync(`${root}/site`);
writeFileSync(`${root}/site/index.html`, '<h1>home</h1>');
writeFileSync(`${root}/hello.txt`, 'hello world');
// Older than a second: its Last-Modified is a strong validator (RFC 9110 §8.8.2.2), as If-Range needs.
utimesSync(`${root}/hello.txt`, new Date('2024-05-01T10:00:00.250Z'), new Date('2024-05-01T10:00:00.250Z'));
writeFileSync(`${root}/.hidden`, 'dot');
writeFileSync(`${root}/empty.bin`, '');
writeFileSync(s.path('secret.txt'), 'TOP SECRET');
symlinkSync('../secret.txt', `${root}/escape`);
symlinkSync('hello.txt', `${root}/alias.txt`);
const big = makeFile(`${root}/big.bin`, 3 * MiB + 11);
const bigData = readFileSync(big);

/** Results of serveFile calls, by request path, for assertions on what the server saw. */
const results = new Map();
let options = { root };

const server = http.createServer(async (req, res) => {
  try {
    results.set(req.url, await serveFile(req, res, undefined, options));
  } catch (err) {
    results.set(req.url, err);
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const port = server.address().port;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

test.after(() => {
  agent.destroy();
  server.close();
  s.cleanup();
});

function request(path, { method = 'GET', headers = {}, useAgent = agent } = {}) {
  // The client can have the whole body before serveFile's promise settles: resultFor() waits for this request's.
  results.delete(path);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: useAgent }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A raw request line, for paths Node's client would refuse to send. */
async function raw(path) {
  const sock = net.connect(port, '127.0.0.1');
  sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  const chunks = [];
  sock.on('data', (d) => chunks.push(d));
  await once(sock, 'end');
  const text = Buffer.concat(chunks).toString('latin1');
  return { status: Number(text.split(' ')[1]), text };
}

/** What serveFile returned (or threw) for `path`, waiting for it (bounded). */
async function resultFor(path) {
  for (let i = 0; i < 500 && !results.has(path); i++) await new Promise((r) => setTimeout(r, 20));
  return results.get(path);
}

const hash = (buf) => createHash('sha256').update(buf).digest('hex');

test('200 with the whole file and the expected headers; sendfile for big files', async () => {
  const r = await request('/big.bin');
  assert.is(r.status, 200);
  assert.is(hash(r.body), sha256(big));
  assert.is(r.headers['content-length'], String(3 * MiB + 11));
  assert.is(r.headers['content-type'], 'application/octet-stream');
  assert.is(r.headers['accept-ranges'], 'bytes');
  assert.match(r.headers.etag, /^W\/"/);
  assert.is(r.headers['last-modified'], statSync(big).mtime.toUTCString());
  assert.is(r.headers['cache-control'], 'public, max-age=0');
  assert.equal(await resultFor('/big.bin'), { status: 200, bytes: 3 * MiB + 11, mechanism: 'sendfile' });

  const small = await request('/hello.txt');
  assert.is(small.body.toString(), 'hello world');
  assert.is(small.headers['content-type'], 'text/plain; charset=utf-8');
  // (On a slow machine hello.txt may already be settled enough to be cached: `cached` aside.)
  const { cached, ...smallResult } = await resultFor('/hello.txt');
  assert.equal(smallResult, { status: 200, bytes: 11, mechanism: 'readwrite' });

  const empty = await request('/empty.bin');
  assert.is(empty.status, 200);
  assert.is(empty.headers['content-length'], '0');
  assert.is(empty.body.length, 0);
});

test('HEAD sends headers only', async () => {
  const r = await request('/big.bin', { method: 'HEAD' });
  assert.is(r.status, 200);
  assert.is(r.headers['content-length'], String(3 * MiB + 11));
  assert.is(r.body.length, 0);
  assert.equal(await resultFor('/big.bin'), { status: 200, bytes: 0, mechanism: 'none' });
});

test('byte ranges: at the edges, suffixes, clamps, past EOF, multiple, malformed', async () => {
  const size = bigData.length;
  const cases = [
    ['bytes=0-0', 206, 0, 0],
    ['bytes=-1', 206, size - 1, size - 1],
    ['bytes=5-9', 206, 5, 9],
    ['bytes=100-', 206, 100, size - 1],
    ['bytes=0-', 206, 0, size - 1],
    [`bytes=${size - 10}-${size + 1000}`, 206, size - 10, size - 1],
    ['bytes=1000000-2000000', 206, 1000000, 2000000],
  ];
  for (const [range, status, start, end] of cases) {
    const r = await request('/big.bin', { headers: { range } });
    assert.is(r.status, status, range);
    assert.is(r.headers['content-range'], `bytes ${start}-${end}/${size}`, range);
    assert.is(r.headers['content-length'], String(end - start + 1), range);
    assert.ok(r.body.equals(bigData.subarray(start, end + 1)), range);
  }
  for (const range of [`bytes=${size}-`, `bytes=${size + 5}-${size + 10}`]) {
    const r = await request('/big.bin', { headers: { range } });
    assert.is(r.status, 416, range);
    assert.is(r.headers['content-range'], `bytes */${size}`);
  }
  const empty = await request('/empty.bin', { headers: { range: 'bytes=0-0' } });
  assert.is(empty.status, 416);
  const multi = await request('/big.bin', { headers: { range: 'bytes=0-1,100-200' } });
  assert.is(multi.status, 206, 'several ranges answer with multipart/byteranges');
  assert.match(multi.headers['content-type'], /^multipart\/byteranges; boundary=/);
  const malformed = await request('/big.bin', { headers: { range: 'bytes=abc' } });
  assert.is(malformed.status, 200);
  // RFC 9110 §14.2: range handling is defined for GET only.
  const head = await request('/big.bin', { method: 'HEAD', headers: { range: 'bytes=0-99' } });
  assert.is(head.status, 200);
  assert.is(head.body.length, 0);
});

test('conditional requests: 304, 412 and If-Range', async () => {
  const first = await request('/hello.txt');
  const { etag, 'last-modified': lastModified } = first.headers;
  const notModified = await request('/hello.txt', { headers: { 'if-none-match': etag } });
  assert.is(notModified.status, 304);
  assert.is(notModified.body.length, 0);
  assert.is(notModified.headers['content-length'], undefined);
  const since = await request('/hello.txt', { headers: { 'if-modified-since': new Date(Date.now() + 60_000).toUTCString() } });
  assert.is(since.status, 304);
  const changed = await request('/hello.txt', { headers: { 'if-none-match': 'W/"other"' } });
  assert.is(changed.status, 200);

  assert.is((await request('/hello.txt', { headers: { 'if-match': 'W/"other"' } })).status, 412);
  // If-Match compares strongly: the default weak ETag never matches it (RFC 9110 §13.1.1), '*' does.
  assert.is((await request('/hello.txt', { headers: { 'if-match': etag } })).status, 412);
  assert.is((await request('/hello.txt', { headers: { 'if-match': '*' } })).status, 200);
  assert.is((await request('/hello.txt', { headers: { 'if-unmodified-since': 'Mon, 01 Jan 1990 00:00:00 GMT' } })).status, 412);
  assert.is((await request('/hello.txt', { headers: { 'if-unmodified-since': lastModified } })).status, 200);

  // If-Range needs a strong match: a weak ETag never matches, the whole file is sent.
  const ranged = await request('/hello.txt', { headers: { range: 'bytes=0-4', 'if-range': etag } });
  assert.is(ranged.status, 200);
  assert.is(ranged.body.toString(), 'hello world');
  const stale = await request('/hello.txt', { headers: { range: 'bytes=0-4', 'if-range': 'W/"stale"' } });
  assert.is(stale.status, 200);
  assert.is(stale.body.toString(), 'hello world');
  const byDate = await request('/hello.txt', { headers: { range: 'bytes=0-4', 'if-range': lastModified } });
  assert.is(byDate.status, 206);
});

test('methods other than GET and HEAD get 405', async () => {
  const r = await request('/hello.txt', { method: 'POST' });
  assert.is(r.status, 405);
  assert.is(r.headers.allow, 'GET, HEAD');
});

test('traversal table: never a byte from outside root', async () => {
  const table = [
    ['/../secret.txt', 403],
    ['/%2e%2e/secret.txt', 403],
    ['/..%2fsecret.txt', 403],
    ['/sub/%2e%2e/%2e%2e/secret.txt', 403],
    ['/sub/..%5c..%5csecret.txt', 404],
    ['/%00', 400],
    ['/hello.txt%00.png', 400],
    ['/%E0%A4%A', 400],
    ['//etc/passwd', 404],
    ['/escape', 403],
    ['/missing', 404],
    ['/.hidden', 404],
    ['/sub/../hello.txt', 403],
  ];
  for (const [path, status] of table) {
    const r = await raw(path);
    assert.is(r.status, status, path);
    assert.not.match(r.text, /TOP SECRET|root:x:0/, path);
  }
  const alias = await request('/alias.txt');
  assert.is(alias.body.toString(), 'hello world', 'symlinks inside root are followed');
});

test('dotfiles policy, directories, index and redirects', async () => {
  options = { root, dotfiles: 'deny' };
  assert.is((await request('/.hidden')).status, 403);
  options = { root, dotfiles: 'allow' };
  assert.is((await request('/.hidden')).body.toString(), 'dot');
  options = { root };
  const redirect = await request('/site?x=1');
  assert.is(redirect.status, 301);
  assert.is(redirect.headers.location, '/site/?x=1');
  const collapsed = await raw('//site');
  assert.is(collapsed.status, 301);
  assert.match(collapsed.text, /\r\nLocation: \/site\/\r\n/, 'no protocol-relative redirect to another host');
  const index = await request('/site/');
  assert.is(index.status, 200);
  assert.is(index.body.toString(), '<h1>home</h1>');
  assert.is(index.headers['content-type'], 'text/html; charset=utf-8');
  assert.is((await request('/empty/')).status, 404);
  assert.is((await request('/sub/')).status, 404);
  options = { root, index: false };
  assert.is((await request('/site/')).status, 404);
  options = { root, cacheControl: 'no-store', contentType: 'application/x-test', etag: false, lastModified: false, headers: { 'X-Extra': 'yes' } };
  const r = await request('/hello.txt');
  assert.is(r.headers['cache-control'], 'no-store');
  assert.is(r.headers['content-type'], 'application/x-test');
  assert.is(r.headers.etag, undefined);
  assert.is(r.headers['last-modified'], undefined);
  assert.is(r.headers['x-extra'], 'yes');
  options = { root, maxAge: 3600 };
  assert.is((await request('/hello.txt')).headers['cache-control'], 'public, max-age=3600');
  options = { root };
});

test('keep-alive: the next request on the connection is answered after a sendfile response', async () => {
  const a = await request('/big.bin');
  const b = await request('/hello.txt');
  const c = await request('/big.bin', { headers: { range: 'bytes=10-19' } });
  assert.ok(b.reused && c.reused, 'one connection');
  assert.is(hash(a.body), sha256(big));
  assert.is(b.body.toString(), 'hello world');
  assert.ok(c.body.equals(bigData.subarray(10, 20)));
  // Pipelined on one raw connection.
  const sock = net.connect(port, '127.0.0.1');
  sock.write('GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const chunks = [];
  sock.on('data', (d) => chunks.push(d));
  await once(sock, 'end');
  const all = Buffer.concat(chunks);
  const second = all.lastIndexOf('HTTP/1.1 200 OK');
  assert.ok(second > 3 * MiB, 'second response after the whole first body');
  assert.match(all.subarray(second).toString(), /\r\n\r\nhello world$/);
});

test('a file truncated mid-body destroys the connection and rejects with ERR_FILE_TRUNCATED', async () => {
  const victim = makeFile(`${root}/victim.bin`, 64 * MiB);
  const fresh = new http.Agent({ keepAlive: false });
  const got = new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/victim.bin', agent: fresh }, (res) => {
      res.pause();
      setTimeout(async () => {
        await truncate(victim, MiB);
        let n = 0;
        res.on('data', (d) => (n += d.length));
        res.on('error', () => {});
        res.on('close', () => resolve({ n, complete: res.complete }));
        res.resume();
      }, 100);
    });
    req.on('error', () => resolve({ n: -1, complete: false }));
  });
  const r = await got;
  assert.is(r.complete, false, 'the client sees an incomplete body, not a short "complete" one');
  const result = await resultFor('/victim.bin');
  assert.instance(result, Error);
  assert.is(result.code, 'ERR_FILE_TRUNCATED');
  assert.ok(result.bytesTransferred < 64 * MiB);
  fresh.destroy();
});

test('a client that goes away mid-body rejects serveFile with the socket error', async () => {
  makeFile(`${root}/gone.bin`, 64 * MiB);
  const fresh = new http.Agent({ keepAlive: false });
  await new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/gone.bin', agent: fresh }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', () => {});
  });
  const result = await resultFor('/gone.bin');
  assert.instance(result, Error);
  assert.ok(['EPIPE', 'ECONNRESET', 'ERR_STREAM_DESTROYED'].includes(result.code), result.code);
  assert.ok(result.bytesTransferred >= 0 && result.bytesTransferred < 64 * MiB);
  fresh.destroy();
});

test('HTTPS falls back to a stream with identical content', async () => {
  const key = readFileSync(new URL('./fixtures/tls-key.pem', import.meta.url));
  const cert = readFileSync(new URL('./fixtures/tls-cert.pem', import.meta.url));
  let served;
  const result = new Promise((resolve) => (served = resolve));
  const tlsServer = https.createServer({ key, cert }, (req, res) => {
    serveFile(req, res, undefined, { root }).then(served, served);
  });
  await new Promise((r) => tlsServer.listen(0, '127.0.0.1', r));
  const body = await new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: tlsServer.address().port, path: '/big.bin', ca: cert, servername: 'localhost' }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve(Buffer.concat(chunks)));
    }).on('error', reject);
  });
  // Closing the server destroys connections whose response has ended (res.end() called) even while
  // its last writes are still being flushed: wait for serveFile first (else a premature close).
  assert.equal(await result, { status: 200, bytes: 3 * MiB + 11, mechanism: 'stream' });
  tlsServer.close();
  assert.is(hash(body), sha256(big));
});

test('without root the path is used as given; bad arguments are typed errors', async () => {
  const plain = http.createServer(async (req, res) => {
    await serveFile(req, res, big);
  });
  await new Promise((r) => plain.listen(0, '127.0.0.1', r));
  const body = await new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port: plain.address().port, path: '/anything' }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve(Buffer.concat(chunks)));
    });
  });
  plain.close();
  assert.is(hash(body), sha256(big));
  const fakeReq = { method: 'GET', url: '/', headers: {} };
  const fakeRes = { headersSent: false };
  for (const [args, code] of [
    [[fakeReq, fakeRes, 5, { root }], 'ERR_INVALID_ARG_TYPE'],
    [[fakeReq, fakeRes, '/x', { root: 5 }], 'ERR_INVALID_ARG_TYPE'],
    [[fakeReq, fakeRes, '/x', { root, dotfiles: 'sometimes' }], 'ERR_INVALID_ARG_VALUE'],
    [[fakeReq, fakeRes, '/x', { root, maxAge: -1 }], 'ERR_OUT_OF_RANGE'],
    // Set without setHeader's checks later: refused up front, never a split header.
    [[fakeReq, fakeRes, '/x', { root, contentType: 'text/plain\r\nX-Injected: 1' }], 'ERR_INVALID_CHAR'],
    [[fakeReq, fakeRes, '/x', { root, cacheControl: 'no-store\nX-Injected: 1' }], 'ERR_INVALID_CHAR'],
    [[fakeReq, fakeRes, '/x', { root, contentType: 5 }], 'ERR_INVALID_ARG_TYPE'],
    [[fakeReq, fakeRes, undefined, {}], 'ERR_INVALID_ARG_TYPE'],
    [[fakeReq, { headersSent: true }, '/x', { root }], 'ERR_HTTP_HEADERS_SENT'],
  ]) {
    const err = await serveFile(...args).then(() => null, (e) => e);
    assert.is(err?.code, code, JSON.stringify(args.slice(2)));
  }
});

test('server.setTimeout() does not cut a response a slow client keeps reading', async () => {
  const file = makeFile(s.path('slow.bin'), 6 * MiB);
  let result;
  const slow = http.createServer(async (req, res) => {
    result = await serveFile(req, res, file).catch((err) => err);
  });
  // Without a 'timeout' listener the server destroys a socket idle for 1 s. Over a Unix socket
  // (~200 KiB of buffers) the ~2 MiB/s reader makes the response last ~3 s.
  slow.setTimeout(1000);
  const path = s.path('slow.sock');
  await new Promise((r) => slow.listen(path, r));
  const res = await new Promise((resolve, reject) => http.get({ socketPath: path, path: '/' }, resolve).on('error', reject));
  const hasher = createHash('sha256');
  res.on('data', (d) => hasher.update(d));
  const t0 = Date.now();
  const length = await throttledRead(res, { burst: 64 * 1024, gap: 30 });
  const took = Date.now() - t0;
  slow.close();
  assert.is(length, 6 * MiB, 'the whole body arrived: the server did not time the connection out');
  assert.is(hasher.digest('hex'), sha256(file));
  assert.equal(result, { status: 200, bytes: 6 * MiB, mechanism: 'sendfile' });
  assert.ok(took > 1500, `the response took ${took} ms: longer than the timeout, or the test proves nothing`);
});

test.run();
