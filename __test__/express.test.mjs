// zerocopy/express against real Express 4 and 5 apps on loopback: serve-static's test suite, ported
// (mount paths, req.originalUrl, the trailing-slash redirect, fall-through to next() and next(err), options).
// The same assertions run against serve-static itself, so that they state its behaviour, not ours.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

import express5 from 'express';
import express4 from 'express4';
import serveStaticOriginal from 'serve-static';
import serveStatic from 'zerocopy/express';
import * as named from 'zerocopy/express';

import { fixtures, listen, request } from './frameworks-helpers.mjs';

const require = createRequire(import.meta.url);
const { root, big } = fixtures();

test('CommonJS: require() is the middleware factory; also by name and as default; ESM default is the same', () => {
  const cjs = require('zerocopy/express');
  assert.type(cjs, 'function');
  assert.is(cjs.serveStatic, cjs);
  assert.is(cjs.default, cjs);
  assert.is(serveStatic, cjs);
  assert.is(named.serveStatic, cjs);
});

test("bad options throw serve-static's TypeErrors", () => {
  assert.throws(() => serveStatic(), (e) => e instanceof TypeError && e.message === 'root path required');
  assert.throws(() => serveStatic(42), (e) => e instanceof TypeError && e.message === 'root path must be a string');
  assert.throws(() => serveStatic(root, { setHeaders: 'bogus' }), (e) => e instanceof TypeError && e.message === 'option setHeaders must be function');
});

/** An app with `mw` at `mount`, then what a fall-through or an error reaches. */
async function app(express, mw, mount) {
  const a = express();
  if (mount) a.use(mount, mw);
  else a.use(mw);
  a.use((req, res) => res.status(404).type('text').send(`next: ${req.method} ${req.url}`));
  a.use((err, req, res, next) => res.status(err.status ?? 500).type('text').send(`next(err): ${err.status} ${err.name}: ${err.message}`));
  return listen(a);
}

for (const [version, express, serveStatic] of [
  ['Express 5', express5, named.serveStatic],
  ['Express 4', express4, named.serveStatic],
  ['serve-static 2 itself, Express 5', express5, serveStaticOriginal],
]) {
  const t = (name, fn) => test(`${version}: ${name}`, fn);

  t('serves files with the headers of send', async () => {
    const { port, close } = await app(express, serveStatic(root));
    try {
      const r = await request(port, '/todo.txt');
      assert.is(r.status, 200);
      assert.is(r.text, '- groceries');
      assert.is(r.headers['content-type'], 'text/plain; charset=utf-8');
      assert.is(r.headers['cache-control'], 'public, max-age=0');
      assert.is(r.headers['accept-ranges'], 'bytes');
      assert.ok(r.headers['last-modified']);
      assert.match(r.headers.etag, /^W\/"/);
      assert.is((await request(port, '/users/tobi.txt')).text, 'ferret');
      assert.is((await request(port, '/foo%20bar')).text, 'baz');
      assert.is((await request(port, '/users/')).text, '<p>tobi, loki, jane</p>');
      assert.is((await request(port, '/users/../todo.txt')).text, '- groceries', '.. inside root is resolved, as send does');
      assert.is((await request(port, '/empty.txt')).headers['content-length'], '0');
      const head = await request(port, '/todo.txt', { method: 'HEAD' });
      assert.is(head.status, 200);
      assert.is(head.headers['content-length'], '11');
      assert.is(head.body.length, 0);
      const large = await request(port, '/big.bin');
      assert.is(large.status, 200);
      assert.ok(large.body.equals(readFileSync(big)), '2 MiB body byte for byte');
    } finally {
      await close();
    }
  });

  t('validators and ranges', async () => {
    const { port, close } = await app(express, serveStatic(root));
    try {
      const first = await request(port, '/todo.txt');
      assert.is((await request(port, '/todo.txt', { headers: { 'if-none-match': first.headers.etag } })).status, 304);
      assert.is((await request(port, '/todo.txt', { headers: { 'if-match': '"nope"' } })).status, 412);
      const part = await request(port, '/nums.txt', { headers: { range: 'bytes=0-4' } });
      assert.is(part.status, 206);
      assert.is(part.text, '12345');
      assert.is(part.headers['content-range'], 'bytes 0-4/9');
      assert.is((await request(port, '/nums.txt', { headers: { range: 'bytes=-3' } })).text, '789');
      const past = await request(port, '/nums.txt', { headers: { range: 'bytes=9-50' } });
      assert.is(past.status, 416);
      assert.is(past.headers['content-range'], 'bytes */9');
      assert.is((await request(port, '/nums.txt', { headers: { range: 'asdf' } })).status, 200);
    } finally {
      await close();
    }
  });

  t('fallthrough (default): non-GET, missing, dotfiles, malformed and traversal go to next()', async () => {
    const { port, close } = await app(express, serveStatic(root));
    try {
      assert.is((await request(port, '/todo.txt', { method: 'POST' })).text, 'next: POST /todo.txt');
      assert.is((await request(port, '/todo.txt', { method: 'OPTIONS' })).text, 'next: OPTIONS /todo.txt');
      assert.is((await request(port, '/nope.txt')).text, 'next: GET /nope.txt');
      assert.is((await request(port, '/.hidden')).text, 'next: GET /.hidden');
      assert.is((await request(port, '/.git/config')).text, 'next: GET /.git/config');
      assert.is((await request(port, '/%ff')).text, 'next: GET /%ff');
      assert.is((await request(port, '/../secret.txt')).status, 404);
      assert.is((await request(port, '/%2e%2e/secret.txt')).text, 'next: GET /%2e%2e/secret.txt');
      assert.is((await request(port, `/${'a'.repeat(4000)}`)).status, 404);
      assert.is((await request(port, '/users/')).status, 200);
    } finally {
      await close();
    }
  });

  t('fallthrough: false answers 405 and hands 400/403/404 to next(err)', async () => {
    const { port, close } = await app(express, serveStatic(root, { fallthrough: false }));
    try {
      const opt = await request(port, '/todo.txt', { method: 'OPTIONS' });
      assert.is(opt.status, 405);
      assert.is(opt.headers.allow, 'GET, HEAD');
      assert.is(opt.headers['content-length'], '0');
      assert.match((await request(port, '/nope.txt')).text, /^next\(err\): 404 Error: ENOENT: no such file or directory, stat '.*nope.txt'$/);
      assert.is((await request(port, '/%ff')).text, 'next(err): 400 BadRequestError: Bad Request');
      assert.is((await request(port, '/%2e%2e/secret.txt')).text, 'next(err): 403 ForbiddenError: Forbidden');
      assert.is((await request(port, '/users/index.html/')).status, 404);
      assert.match((await request(port, '/pets/')).text, /^next\(err\): 404 Error: ENOENT: .*pets\/index.html'$/, 'a directory without index');
    } finally {
      await close();
    }
  });

  t('redirect: 301 to add the slash, with the query, relative to the mount point (req.originalUrl)', async () => {
    const top = await app(express, serveStatic(root));
    const mounted = await app(express, serveStatic(root), '/static');
    try {
      const r = await request(top.port, '/users');
      assert.is(r.status, 301);
      assert.is(r.headers.location, '/users/');
      assert.is(r.headers['content-security-policy'], "default-src 'none'");
      assert.is(r.headers['content-type'], 'text/html; charset=UTF-8');
      assert.match(r.text, '<pre>Redirecting to /users/</pre>');
      assert.is((await request(top.port, '/users?name=john')).headers.location, '/users/?name=john');
      assert.is((await request(top.port, '//users')).headers.location, '/users/', 'never a protocol-relative URL');
      assert.is((await request(top.port, '/snow%20%E2%98%83')).headers.location, '/snow%20%E2%98%83/');
      assert.is((await request(mounted.port, '/static/users')).headers.location, '/static/users/');
      assert.is((await request(mounted.port, '/static')).headers.location, '/static/', 'the mount point itself');
      assert.is((await request(mounted.port, '/static/users/tobi.txt')).text, 'ferret');
      assert.is((await request(mounted.port, '/static/')).status, 404);
      assert.is((await request(mounted.port, '/todo.txt')).text, 'next: GET /todo.txt');
    } finally {
      await top.close();
      await mounted.close();
    }
    const off = await app(express, serveStatic(root, { redirect: false }));
    try {
      assert.is((await request(off.port, '/users')).text, 'next: GET /users');
    } finally {
      await off.close();
    }
  });

  t('options: dotfiles, extensions, index, cacheControl, maxAge, immutable, lastModified, etag, acceptRanges, setHeaders', async () => {
    const calls = [];
    const mws = {
      '/allow': serveStatic(root, { dotfiles: 'allow' }),
      '/deny': serveStatic(root, { dotfiles: 'deny', fallthrough: false }),
      '/ext': serveStatic(root, { extensions: ['htm', 'html', 'txt'] }),
      '/noindex': serveStatic(root, { index: false }),
      '/nocache': serveStatic(root, { cacheControl: false, maxAge: 1000 }),
      '/age': serveStatic(root, { maxAge: '1d', immutable: true }),
      '/inf': serveStatic(root, { maxAge: Infinity }),
      '/bare': serveStatic(root, { lastModified: false, etag: false }),
      '/noranges': serveStatic(root, { acceptRanges: false }),
      '/headers': serveStatic(root, {
        setHeaders(res, path, stat) {
          calls.push([path, stat.size]);
          res.setHeader('x-custom', 'set');
          res.setHeader('cache-control', 'no-store');
        },
      }),
    };
    const a = express();
    for (const [mount, mw] of Object.entries(mws)) a.use(mount, mw);
    a.use((req, res) => res.status(404).send('next'));
    a.use((err, req, res, next) => res.status(err.status).send(`err ${err.status}`));
    const { port, close } = await listen(a);
    try {
      assert.is((await request(port, '/allow/.hidden')).text, 'I am hidden');
      assert.is((await request(port, '/deny/.hidden')).text, 'err 403');
      assert.is((await request(port, '/ext/todo')).text, '<li>groceries</li>', 'the first extension that exists (html before txt)');
      assert.is((await request(port, '/ext/todo.md')).text, 'next', 'a path with an extension is not extended');
      assert.is((await request(port, '/noindex/users/')).text, 'next');
      assert.is((await request(port, '/nocache/todo.txt')).headers['cache-control'], undefined);
      assert.is((await request(port, '/age/todo.txt')).headers['cache-control'], 'public, max-age=86400, immutable');
      assert.is((await request(port, '/inf/todo.txt')).headers['cache-control'], 'public, max-age=31536000');
      const bare = await request(port, '/bare/todo.txt');
      assert.is(bare.headers['last-modified'], undefined);
      assert.is(bare.headers.etag, undefined);
      const noranges = await request(port, '/noranges/nums.txt', { headers: { range: 'bytes=0-0' } });
      assert.is(noranges.status, 200);
      assert.is(noranges.text, '123456789');
      assert.is(noranges.headers['accept-ranges'], undefined);
      const h = await request(port, '/headers/todo.txt');
      assert.is(h.headers['x-custom'], 'set');
      assert.is(h.headers['cache-control'], 'no-store', 'setHeaders wins over the defaults');
      assert.equal(calls, [[`${root}/todo.txt`, 11]]);
      await request(port, '/headers/nope.txt');
      await request(port, '/headers/users');
      assert.is(calls.length, 1, 'not called on a 404 or a redirect');
    } finally {
      await close();
    }
  });
}

test.run();
