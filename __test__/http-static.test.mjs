// serveStatic over real node:http on loopback: serve-static's options and behaviours (index,
// redirect, mount paths, dotfiles, extensions, fallthrough, setHeaders, cache headers, methods).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';

import { serveStatic } from 'zerocopy';
import { scratch, makeFile, MiB } from './helpers.mjs';
import { httpServer, curl } from './http-helpers.mjs';

const s = scratch();
const root = s.path('www');
mkdirSync(`${root}/docs`, { recursive: true });
mkdirSync(`${root}/bare`);
writeFileSync(`${root}/index.html`, '<p>root</p>');
writeFileSync(`${root}/docs/index.html`, '<p>docs</p>');
writeFileSync(`${root}/docs/default.htm`, '<p>default</p>');
writeFileSync(`${root}/about.html`, '<p>about</p>');
writeFileSync(`${root}/.env`, 'SECRET=1');
writeFileSync(`${root}/a.css`, 'body{}');
writeFileSync(s.path('outside.txt'), 'TOP SECRET');
const big = makeFile(`${root}/big.bin`, 2 * MiB + 3);

/** A server whose handler calls `current` with a next() that records what it got and answers 599/598. */
let current = serveStatic(root);
let nextCalls = [];
const srv = await httpServer((req, res) => {
  current(req, res, (err) => {
    nextCalls.push(err === undefined ? 'next()' : err);
    res.statusCode = err ? 598 : 599;
    res.end('from next');
  });
});
/** A server without next: serveStatic answers everything itself. */
let alone = serveStatic(root);
const plain = await httpServer((req, res) => alone(req, res));

test.after(async () => {
  await srv.close();
  await plain.close();
  s.cleanup();
});

test('serves files with serve-static headers; index.html for /', async () => {
  const r = await srv.request('/a.css');
  assert.is(r.status, 200);
  assert.is(r.body.toString(), 'body{}');
  assert.is(r.headers['content-type'], 'text/css; charset=utf-8');
  assert.is(r.headers['cache-control'], 'public, max-age=0');
  assert.match(r.headers.etag, /^W\/"/);
  assert.ok(r.headers['last-modified']);
  assert.is(r.headers['accept-ranges'], 'bytes');
  assert.is((await srv.request('/')).body.toString(), '<p>root</p>');
  const b = await srv.request('/big.bin');
  assert.ok(b.body.equals(readFileSync(big)));
});

test('directories without the slash get a 301 (HTML, escaped) keeping the query; redirect: false → 404', async () => {
  const r = await srv.request('/docs?x=<1>');
  assert.is(r.status, 301);
  assert.is(r.headers.location, '/docs/?x=%3C1%3E', 'encoded as serve-static does (encodeurl)');
  assert.is(r.headers['content-type'], 'text/html; charset=UTF-8', "serve-static's spelling");
  assert.is(r.headers['content-security-policy'], "default-src 'none'");
  assert.match(r.body.toString(), '<pre>Redirecting to /docs/?x=%3C1%3E</pre>');
  assert.is((await srv.request('/docs/')).body.toString(), '<p>docs</p>');
  current = serveStatic(root, { redirect: false });
  nextCalls = [];
  assert.is((await srv.request('/docs')).status, 599, 'falls through');
  assert.equal(nextCalls, ['next()']);
  current = serveStatic(root);
});

test('mount paths: req.url is served, the redirect uses req.originalUrl', async () => {
  const mounted = serveStatic(root);
  const m = await httpServer((req, res) => {
    // What Express does for app.use('/static', ...): strip the mount path from req.url.
    req.originalUrl = req.url;
    req.url = req.url.slice('/static'.length) || '/';
    if (!req.url.startsWith('/')) req.url = `/${req.url}`;
    mounted(req, res, () => {
      res.statusCode = 599;
      res.end();
    });
  });
  const file = await m.request('/static/a.css');
  assert.is(file.body.toString(), 'body{}');
  const dir = await m.request('/static/docs');
  assert.is(dir.headers.location, '/static/docs/');
  const mountRoot = await m.request('/static');
  assert.is(mountRoot.status, 301, 'the mount point itself, without its slash');
  assert.is(mountRoot.headers.location, '/static/');
  assert.is((await m.request('/static/')).body.toString(), '<p>root</p>');
  await m.close();
});

test('index option: other names, several, or none', async () => {
  current = serveStatic(root, { index: ['missing.html', 'default.htm'] });
  assert.is((await srv.request('/docs/')).body.toString(), '<p>default</p>');
  current = serveStatic(root, { index: false });
  nextCalls = [];
  assert.is((await srv.request('/docs/')).status, 599);
  current = serveStatic(root);
});

test('dotfiles: ignore (default, falls through), deny (403), allow', async () => {
  nextCalls = [];
  assert.is((await srv.request('/.env')).status, 599);
  assert.equal(nextCalls, ['next()']);
  alone = serveStatic(root);
  assert.is((await plain.request('/.env')).status, 404);
  alone = serveStatic(root, { dotfiles: 'deny' });
  const denied = await plain.request('/.env');
  assert.is(denied.status, 403);
  assert.not.match(denied.body.toString(), /SECRET/);
  alone = serveStatic(root, { dotfiles: 'allow' });
  assert.is((await plain.request('/.env')).body.toString(), 'SECRET=1');
  alone = serveStatic(root);
});

test('extensions: tried in order when the path names nothing; never for a directory URL', async () => {
  alone = serveStatic(root, { extensions: ['htm', 'html'] });
  const r = await plain.request('/about');
  assert.is(r.status, 200);
  assert.is(r.body.toString(), '<p>about</p>');
  assert.is(r.headers['content-type'], 'text/html; charset=utf-8');
  assert.is((await plain.request('/about/')).status, 404);
  alone = serveStatic(root);
  assert.is((await plain.request('/about')).status, 404);
});

test('fallthrough: false sends 404 to next(err) with a status; methods get 405 + Allow', async () => {
  current = serveStatic(root, { fallthrough: false });
  nextCalls = [];
  assert.is((await srv.request('/nope')).status, 598);
  assert.is(nextCalls[0].status, 404);
  assert.is(nextCalls[0].statusCode, 404);
  const post = await srv.request('/a.css', { method: 'POST' });
  assert.is(post.status, 405);
  assert.is(post.headers.allow, 'GET, HEAD');
  current = serveStatic(root);
  nextCalls = [];
  assert.is((await srv.request('/a.css', { method: 'DELETE' })).status, 599, 'fallthrough passes other methods on');
  assert.equal(nextCalls, ['next()']);
  const head = await srv.request('/a.css', { method: 'HEAD' });
  assert.is(head.status, 200);
  assert.is(head.headers['content-length'], '6');
  assert.is(head.body.length, 0);
  alone = serveStatic(root);
  assert.is((await plain.request('/a.css', { method: 'PUT' })).status, 405);
});

test('.. inside root is resolved, as send does; fallthrough: false hands next(err) the fs error with status 404', async () => {
  alone = serveStatic(root);
  const r = await plain.request('/docs/../a.css');
  assert.is(r.status, 200);
  assert.is(r.body.toString(), 'body{}');
  assert.is((await plain.request('/docs/%2e%2e/docs/index.html')).body.toString(), '<p>docs</p>');
  current = serveStatic(root, { fallthrough: false });
  nextCalls = [];
  await srv.request('/nope.txt');
  await srv.request('/bare/');
  const [missing, noIndex] = nextCalls;
  assert.is(missing.code, 'ENOENT');
  assert.is(missing.syscall, 'stat');
  assert.is(missing.path, `${root}/nope.txt`);
  assert.is(missing.message, `ENOENT: no such file or directory, stat '${root}/nope.txt'`);
  assert.is(missing.status, 404);
  assert.is(missing.expose, true);
  assert.is(noIndex.path, `${root}/bare/index.html`, 'a directory without index: the index file tried');
  current = serveStatic(root);
});

test('412 and 416 go to next(err) once a file is found, fallthrough or not (send\'s rule); without next they are answered', async () => {
  for (const fallthrough of [true, false]) {
    current = serveStatic(root, { fallthrough });
    nextCalls = [];
    assert.is((await srv.request('/a.css', { headers: { 'if-match': '"nope"' } })).status, 598);
    const r = await srv.request('/a.css', { headers: { range: 'bytes=50-' } });
    assert.is(r.status, 598);
    assert.is(r.headers['content-range'], 'bytes */6', 'set before next(err), as send does');
    assert.equal(nextCalls.map((e) => [e.status, e.name, e.message]), [
      [412, 'PreconditionFailedError', 'Precondition Failed'],
      [416, 'RangeNotSatisfiableError', 'Range Not Satisfiable'],
    ]);
    assert.equal(nextCalls[1].headers, { 'Content-Range': 'bytes */6' });
  }
  writeFileSync(`${root}/a.css.br`, 'br bytes');
  current = serveStatic(root, { precompressed: true });
  nextCalls = [];
  const variant = await srv.request('/a.css', { headers: { range: 'bytes=50-', 'accept-encoding': 'br' } });
  assert.is(variant.headers['content-range'], 'bytes */8', "the variant's length");
  assert.is(variant.headers['content-encoding'], undefined, 'what next(err) answers is not the variant');
  current = serveStatic(root);
  alone = serveStatic(root);
  assert.is((await plain.request('/a.css', { headers: { range: 'bytes=50-' } })).status, 416);
});

test('traversal stays refused, with or without next', async () => {
  nextCalls = [];
  for (const path of ['/../outside.txt', '/%2e%2e/outside.txt', '/docs/%2e%2e/%2e%2e/outside.txt']) {
    const r = await plain.request(path);
    assert.ok(r.status === 403 || r.status === 404, path);
    assert.not.match(r.body.toString(), /TOP SECRET/);
    assert.is((await srv.request(path)).status, 599, path);
  }
});

test('setHeaders(res, path, stat) runs first and wins; maxAge (ms or string), immutable, cacheControl: false', async () => {
  const seen = [];
  alone = serveStatic(root, {
    maxAge: '1d',
    immutable: true,
    setHeaders(res, path, stat) {
      seen.push([path, stat.size]);
      res.setHeader('X-Served', 'yes');
      res.setHeader('Content-Type', 'text/x-mine');
    },
  });
  const r = await plain.request('/a.css');
  assert.equal(seen, [[`${root}/a.css`, 6]]);
  assert.is(r.headers['x-served'], 'yes');
  assert.is(r.headers['content-type'], 'text/x-mine');
  assert.is(r.headers['cache-control'], 'public, max-age=86400, immutable');
  alone = serveStatic(root, { maxAge: Infinity });
  assert.is((await plain.request('/a.css')).headers['cache-control'], 'public, max-age=31536000', 'capped at a year, as send does');
  alone = serveStatic(root, { maxAge: 5500 });
  assert.is((await plain.request('/a.css')).headers['cache-control'], 'public, max-age=5');
  alone = serveStatic(root, { cacheControl: false, etag: false, lastModified: false, acceptRanges: false });
  const bare = await plain.request('/big.bin', { headers: { range: 'bytes=0-9' } });
  assert.is(bare.status, 200, 'acceptRanges: false ignores Range');
  for (const h of ['cache-control', 'etag', 'last-modified', 'accept-ranges']) assert.is(bare.headers[h], undefined, h);
  alone = serveStatic(root, { etag: 'strong' });
  assert.match((await plain.request('/a.css')).headers.etag, /^"[0-9a-f]+-[0-9a-f]+-6-[0-9a-f]+"$/);
  alone = serveStatic(root);
});

test('bad options are typed errors, thrown when the handler is made', () => {
  for (const [args, code] of [
    [[5], 'ERR_INVALID_ARG_TYPE'],
    [[root, { maxAge: -1 }], 'ERR_INVALID_ARG_VALUE'],
    [[root, { dotfiles: 'maybe' }], 'ERR_INVALID_ARG_VALUE'],
    [[root, { setHeaders: 'x' }], 'ERR_INVALID_ARG_TYPE'],
    [[root, { precompressed: ['lzma'] }], 'ERR_INVALID_ARG_VALUE'],
    [[root, { etag: 'medium' }], 'ERR_INVALID_ARG_VALUE'],
  ]) {
    let err;
    try {
      serveStatic(...args);
    } catch (e) {
      err = e;
    }
    assert.is(err?.code, code, JSON.stringify(args.slice(1)));
  }
});

test('curl sees the same answers', async () => {
  const r = await curl(plain.url('/a.css'));
  assert.is(r.status, 200);
  assert.is(r.body.toString(), 'body{}');
  const redirect = await curl(plain.url('/docs'));
  assert.is(redirect.status, 301);
  assert.is(redirect.headers.location, '/docs/');
  const range = await curl(plain.url('/big.bin'), ['-r', '10-19']);
  assert.is(range.status, 206);
  assert.ok(range.body.equals(readFileSync(big).subarray(10, 20)));
});

test.run();
