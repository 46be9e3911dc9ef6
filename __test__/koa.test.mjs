// zerocopy/koa with real Koa 3 on loopback: koa-static's behaviour (next() when nothing is found,
// defer, hidden, format) plus what koa-send lacks: byte ranges and validators.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';

import Koa from 'koa';
import serve from 'zerocopy/koa';

import { fixtures, leaveEarly, listen, request } from './frameworks-helpers.mjs';
import { once } from 'node:events';

const { root, big } = fixtures();
// Sparse: more than loopback's socket buffers hold, so that the body is still going when the client leaves.
writeFileSync(`${root}/huge.bin`, '');
truncateSync(`${root}/huge.bin`, 256 * 1024 * 1024);

async function app(...middleware) {
  const k = new Koa();
  k.use(async (ctx, next) => {
    await next();
    ctx.set('x-after', 'seen'); // headers from upstream, after the file went out, are harmless
  });
  for (const m of middleware) k.use(m);
  k.use((ctx) => {
    ctx.body = `downstream ${ctx.path}`;
  });
  return listen(k.callback());
}

test('serves files; what is missing goes downstream; ranges and validators', async () => {
  const { port, close } = await app(serve(root));
  try {
    const r = await request(port, '/todo.txt');
    assert.is(r.status, 200);
    assert.is(r.text, '- groceries');
    assert.is(r.headers['content-type'], 'text/plain; charset=utf-8');
    assert.is((await request(port, '/nope')).text, 'downstream /nope');
    assert.is((await request(port, '/todo.txt', { method: 'POST' })).text, 'downstream /todo.txt');
    assert.is((await request(port, '/users')).text, '<p>tobi, loki, jane</p>', "format: a directory answers with its index");
    assert.is((await request(port, '/.hidden')).text, 'downstream /.hidden');
    assert.is((await request(port, '/todo.txt', { headers: { 'if-none-match': r.headers.etag } })).status, 304);
    assert.is((await request(port, '/todo.txt', { headers: { 'if-modified-since': r.headers['last-modified'] } })).status, 304);
    const part = await request(port, '/nums.txt', { headers: { range: 'bytes=3-5' } });
    assert.is(part.status, 206);
    assert.is(part.text, '456');
    const ifRange = await request(port, '/nums.txt', { headers: { range: 'bytes=3-5', 'if-range': '"stale"' } });
    assert.is(ifRange.status, 200, 'If-Range with another validator: the whole file');
    assert.is((await request(port, '/nums.txt', { headers: { range: 'bytes=30-' } })).status, 416);
    assert.ok((await request(port, '/big.bin')).body.equals(readFileSync(big)));
    assert.is((await request(port, '/%2e%2e/secret.txt')).status, 403, "climbing out of root is Koa's 403 error");
  } finally {
    await close();
  }
});

test('options: defer, hidden, format: false, setHeaders, maxage', async () => {
  const deferred = await app(
    async (ctx, next) => {
      if (ctx.path === '/todo.txt') ctx.body = 'answered first';
      await next();
    },
    serve(root, { defer: true, hidden: true, format: false, maxage: 60_000, setHeaders: (res) => res.setHeader('x-static', '1') }),
  );
  try {
    const k = new Koa();
    k.use(serve(root, { defer: true }));
    const { port, close } = await listen(k.callback());
    try {
      assert.is((await request(port, '/todo.txt')).text, '- groceries', 'defer: served when nothing downstream answered');
    } finally {
      await close();
    }
    assert.is((await request(deferred.port, '/todo.txt')).text, 'downstream /todo.txt', 'defer: downstream answered');
    const hidden = await request(deferred.port, '/.hidden');
    assert.is(hidden.text, 'downstream /.hidden', 'defer: the catch-all downstream answered first');
  } finally {
    await deferred.close();
  }
  const opts = await app(serve(root, { hidden: true, format: false, maxage: 60_000, setHeaders: (res) => res.setHeader('x-static', '1') }));
  try {
    const h = await request(opts.port, '/.hidden');
    assert.is(h.text, 'I am hidden');
    assert.is(h.headers['x-static'], '1');
    assert.is(h.headers['cache-control'], 'public, max-age=60');
    assert.is((await request(opts.port, '/users')).text, 'downstream /users', 'format: false');
  } finally {
    await opts.close();
  }
  assert.throws(() => serve(), /root path required/);
});

test("precompressed variants, as koa-send's brotli and gzip (on by default)", async () => {
  const on = await app(serve(root));
  const off = await app(serve(root, { brotli: false, gzip: false }));
  try {
    const br = await request(on.port, '/todo.txt', { headers: { 'accept-encoding': 'br, gzip' } });
    assert.is(br.text, 'brotli bytes');
    assert.is(br.headers['content-encoding'], 'br');
    assert.is((await request(on.port, '/todo.txt', { headers: { 'accept-encoding': 'gzip' } })).text, 'gzip bytes');
    assert.is((await request(off.port, '/todo.txt', { headers: { 'accept-encoding': 'br, gzip' } })).text, '- groceries');
  } finally {
    await on.close();
    await off.close();
  }
});

test('a client leaving mid-body is not an application error', async () => {
  const k = new Koa();
  const errors = [];
  k.on('error', (err) => errors.push(err));
  let closed;
  k.use(async (ctx, next) => {
    closed = once(ctx.res, 'close');
    await next();
  });
  k.use(serve(root));
  const { port, close } = await listen(k.callback());
  try {
    await leaveEarly(port, '/huge.bin');
    await closed;
    await new Promise((r) => setImmediate(r));
    // Koa itself may report the reset socket (on-finished, whatever the body was): nothing else.
    assert.equal(errors.map((e) => e.code).filter((code) => code !== 'ECONNRESET'), []);
    assert.is((await request(port, '/todo.txt')).text, '- groceries', 'the server goes on');
  } finally {
    await close();
  }
});

test.run();
