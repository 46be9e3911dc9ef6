// zerocopy/hono with real Hono on @hono/node-server (loopback): the Node response through
// c.env.outgoing, by sendfile; and through app.request(), with no Node socket, Hono's own serveStatic.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';

import { Hono } from 'hono';
import { serve as honoServe } from '@hono/node-server';
import { serveStatic } from 'zerocopy/hono';

import { fixtures, leaveEarly, request } from './frameworks-helpers.mjs';
import { until } from './helpers.mjs';

const { root, big } = fixtures();
// Sparse: more than loopback's socket buffers hold, so that the body is still going when the client leaves.
writeFileSync(`${root}/huge.bin`, '');
truncateSync(`${root}/huge.bin`, 256 * 1024 * 1024);

function makeApp(options) {
  const app = new Hono();
  const seen = [];
  app.use('*', async (c, next) => {
    await next();
    seen.push([c.req.path, c.res.status]);
  });
  app.use('/static/*', serveStatic({ root, rewriteRequestPath: (p) => p.replace(/^\/static/, ''), onNotFound: (p) => seen.push(['notFound', p]), ...options }));
  app.get('*', (c) => c.text(`hono ${c.req.path}`, 404));
  return { app, seen };
}

async function listen(app) {
  const server = honoServe({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await once(server, 'listening');
  return { port: server.address().port, close: () => new Promise((r) => server.close(r)) };
}

test('on @hono/node-server: files, directories, ranges, validators; missing files go to next()', async () => {
  const { app, seen } = makeApp();
  const { port, close } = await listen(app);
  try {
    const r = await request(port, '/static/todo.txt');
    assert.is(r.status, 200);
    assert.is(r.text, '- groceries');
    assert.is(r.headers['content-type'], 'text/plain; charset=utf-8');
    assert.ok(r.headers.etag && r.headers['last-modified'], 'validators, which Hono\'s serveStatic does not send');
    assert.is((await request(port, '/static/todo.txt', { headers: { 'if-none-match': r.headers.etag } })).status, 304);
    const part = await request(port, '/static/nums.txt', { headers: { range: 'bytes=-2' } });
    assert.is(part.status, 206);
    assert.is(part.text, '89');
    assert.is((await request(port, '/static/users/')).text, '<p>tobi, loki, jane</p>');
    assert.is((await request(port, '/static/users')).text, '<p>tobi, loki, jane</p>');
    assert.ok((await request(port, '/static/big.bin')).body.equals(readFileSync(big)));
    const missing = await request(port, '/static/nope.txt');
    assert.is(missing.status, 404);
    assert.is(missing.text, 'hono /static/nope.txt');
    assert.is((await request(port, '/static/.hidden')).text, 'hono /static/.hidden');
    assert.is((await request(port, '/static/%2e%2e/secret.txt')).status, 404);
    assert.ok(seen.some(([p, status]) => p === '/static/todo.txt' && status === 200), "Hono's middleware around us sees the request");
    assert.ok(seen.some(([p, status]) => p === '/static/todo.txt' && status === 304), '… and the status that went out');
    assert.ok(seen.some(([what, p]) => what === 'notFound' && p === '/nope.txt'));
  } finally {
    await close();
  }
});

test("without a Node socket (app.request): Hono's own serveStatic answers", async () => {
  // @hono/node-server's serveStatic takes a root relative to the working directory.
  const { app } = makeApp({ root: relative(process.cwd(), root) });
  const r = await app.request('/static/todo.txt');
  assert.is(r.status, 200);
  assert.is(await r.text(), '- groceries');
  assert.is((await app.request('/static/nope.txt')).status, 404);
});

test("a client leaving mid-body reaches neither Hono's error handler nor a second writeHead", async () => {
  const app = new Hono();
  const errors = [];
  let settled;
  app.onError((err, c) => (errors.push(err), c.text('failed', 500)));
  app.use('*', (c, next) => (settled = next()));
  app.use('*', serveStatic({ root }));
  const { port, close } = await listen(app);
  try {
    await leaveEarly(port, '/huge.bin');
    await until(() => settled, 'the request reached the middleware');
    await settled; // after serveStatic and, had it thrown, Hono's error handler
    assert.equal(errors.map((e) => e.code), []);
    assert.is((await request(port, '/todo.txt')).text, '- groceries');
  } finally {
    await close();
  }
});

test('precompressed: true serves the .br beside the file', async () => {
  const app = new Hono();
  app.use('*', serveStatic({ root, precompressed: true }));
  const { port, close } = await listen(app);
  try {
    const r = await request(port, '/todo.txt', { headers: { 'accept-encoding': 'br' } });
    assert.is(r.text, 'brotli bytes');
    assert.is(r.headers['content-encoding'], 'br');
  } finally {
    await close();
  }
});

test('412 and 416 are answered; onFound is awaited with the absolute path and the context', async () => {
  const found = [];
  const app = new Hono();
  app.use('*', serveStatic({ root, precompressed: true, onFound: async (path, c) => (await new Promise((r) => setImmediate(r)), found.push([path, c.req.path])) }));
  app.get('*', (c) => c.text('hono', 404));
  const { port, close } = await listen(app);
  try {
    const failed = await request(port, '/nums.txt', { headers: { 'if-match': '"other"' } });
    assert.is(failed.status, 412);
    assert.is(failed.text, 'Precondition Failed\n');
    const past = await request(port, '/todo.txt', { headers: { range: 'bytes=500-', 'accept-encoding': 'br' } });
    assert.is(past.status, 416);
    assert.is(past.headers['content-range'], `bytes */${readFileSync(`${root}/todo.txt.br`).length}`);
    assert.is(past.headers['content-encoding'], undefined, 'the body is not the variant');
    assert.equal(found, [
      [`${root}/nums.txt`, '/nums.txt'],
      [`${root}/todo.txt`, '/todo.txt'],
    ]);
  } finally {
    await close();
  }
});

test("onFound's return value is ignored, as in Hono: even false still serves the file", async () => {
  const app = new Hono();
  app.use('*', serveStatic({ root, onFound: () => false }));
  app.use('/async/*', serveStatic({ root, rewriteRequestPath: (p) => p.replace(/^\/async/, ''), onFound: async () => false }));
  app.get('*', (c) => c.text('hono', 404));
  const { port, close } = await listen(app);
  try {
    const res = await request(port, '/nums.txt');
    assert.is(res.status, 200);
    assert.is(res.text, readFileSync(`${root}/nums.txt`, 'utf8'));
  } finally {
    await close();
  }
});

test('bad options', () => {
  assert.throws(() => serveStatic({ root: 1 }), /root path must be a string/);
  assert.throws(() => serveStatic({ root, setHeaders: 1 }), /setHeaders must be function/);
});

test.run();
