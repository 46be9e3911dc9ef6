// The small-file cache over loopback: never stale bytes when files are rewritten in place, renamed
// over, truncated or deleted between requests; bounded; no fd leaks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, renameSync, truncateSync, unlinkSync, openSync, writeSync, closeSync, mkdirSync } from 'node:fs';

import { serveFile, serveStatic } from 'zerocopy';
import { scratch, settledFds } from './helpers.mjs';
import { httpServer } from './http-helpers.mjs';

const s = scratch();
const root = s.path('www');
mkdirSync(root);
const names = ['inplace', 'renamed', 'truncated', 'deleted', 'steady'];
const lru = ['lru1', 'lru2'];
const content = (name, v) => `${name}:${v}:`.padEnd(4000, v);
for (const n of [...names, ...lru]) writeFileSync(`${root}/${n}.txt`, content(n, 'a'));
// Files changed less than a second ago are not cached (timestamp granularity): let these settle.
await new Promise((r) => setTimeout(r, 1100));

let last;
let options = { root };
const srv = await httpServer(async (req, res) => {
  last = await serveFile(req, res, undefined, options).catch((err) => err);
});
test.after(async () => {
  await srv.close();
  s.cleanup();
});

const body = async (path) => (await srv.request(path)).body.toString();

test('a settled small file is served from the cache, revalidated per request', async () => {
  assert.is(await body('/steady.txt'), content('steady', 'a'));
  assert.is(last.cached, undefined, 'first read from the file');
  assert.is(await body('/steady.txt'), content('steady', 'a'));
  assert.is(last.cached, true, 'then from the cache');
  options = { root, cache: false };
  await body('/steady.txt');
  assert.is(last.cached, undefined, 'cache: false');
  options = { root };
});

test('rewritten in place (same size), renamed over, truncated, deleted: never the old bytes', async () => {
  for (const n of names) {
    await body(`/${n}.txt`);
    await body(`/${n}.txt`);
    assert.is(last.cached, true, `${n} cached before the change`);
  }
  // Same size, same inode: only mtime/ctime tell.
  const fd = openSync(`${root}/inplace.txt`, 'r+');
  writeSync(fd, content('inplace', 'b'), 0);
  closeSync(fd);
  writeFileSync(`${root}/renamed.new`, content('renamed', 'c'));
  renameSync(`${root}/renamed.new`, `${root}/renamed.txt`);
  truncateSync(`${root}/truncated.txt`, 10);
  unlinkSync(`${root}/deleted.txt`);

  assert.is(await body('/inplace.txt'), content('inplace', 'b'));
  assert.is(last.cached, undefined);
  assert.is(await body('/renamed.txt'), content('renamed', 'c'));
  assert.is(await body('/truncated.txt'), content('truncated', 'a').slice(0, 10));
  const gone = await srv.request('/deleted.txt');
  assert.is(gone.status, 404);
  assert.is(await body('/steady.txt'), content('steady', 'a'));
  assert.is(last.cached, true, 'untouched files stay cached');
  // Recreated under the same name: the new file.
  writeFileSync(`${root}/deleted.txt`, 'back');
  assert.is(await body('/deleted.txt'), 'back');
  // A directory where a cached file was.
  unlinkSync(`${root}/steady.txt`);
  mkdirSync(`${root}/steady.txt`);
  assert.is((await srv.request('/steady.txt')).status, 301);
});

test('bounded in entries and in bytes, least recently used first', async () => {
  const served = async (n) => {
    assert.is(await body(`/${n}.txt`), content(n, 'a'));
    return last.cached === true;
  };
  options = { root, cache: { entries: 1 } };
  await served('lru1');
  assert.ok(await served('lru1'));
  await served('lru2');
  assert.ok(await served('lru2'));
  assert.not.ok(await served('lru1'), 'one entry: lru1 was evicted by lru2');
  options = { root, cache: { entries: 100, bytes: 5000 } };
  await served('lru2');
  assert.ok(await served('lru2'));
  await served('lru1');
  assert.ok(await served('lru1'));
  assert.not.ok(await served('lru2'), '5000 bytes hold one 4000-byte file');
  options = { root };
});

test('no fd leaks: cached and uncached, hits, misses, errors, serveStatic', async () => {
  const handler = serveStatic(root);
  const st = await httpServer((req, res) => handler(req, res));
  for (let i = 0; i < 20; i++) await body('/inplace.txt');
  const before = await settledFds();
  for (let i = 0; i < 200; i++) {
    await body('/inplace.txt');
    await srv.request('/missing.txt');
    await st.request('/renamed.txt');
    await st.request('/nope');
  }
  await st.close();
  const after = await settledFds();
  assert.ok(after <= before + 2, `fds ${before} → ${after}`);
});

test.run();
