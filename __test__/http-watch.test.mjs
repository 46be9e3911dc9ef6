// The small-file cache kept fresh by inotify watches (js/http/watch.ts): on Linux, entries under an
// absolute, symlink-free path on a local filesystem need no stat per request, and still never serve
// bytes the file no longer holds — whatever changes it: this process, another process, a write
// through a hard link, a directory on the way renamed, replaced, or swapped for a symlink.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { realpathSync } from 'node:fs';

import { clearFileCache, fileCacheStats, serveFile } from 'zerocopy';
import { scratch } from './helpers.mjs';
import { httpServer } from './http-helpers.mjs';

const s = scratch();
// realpath: the scratch directory itself may sit below a symlink (then nothing would be watched).
const base = realpathSync(s.dir);
const root = `${base}/www`;
const outside = `${base}/outside`;
mkdirSync(`${root}/sub/deeper`, { recursive: true });
mkdirSync(outside);
const content = (name, v) => `${name}:${v}:`.padEnd(3000, v);
const old = new Date(Date.now() - 60_000);
/** Writes a file and backdates it: files changed under a second ago are not cached. */
function put(path, text) {
  writeFileSync(path, text);
  utimesSync(path, old, old);
}
// One file per test: a file changed by a test has not settled for the next.
for (const n of ['a', 'r', 'd', 'e']) put(`${root}/${n}.txt`, content(n, '1'));
put(`${root}/sub/b.txt`, content('b', '1'));
put(`${root}/sub/deeper/c.txt`, content('c', '1'));
put(`${outside}/linked.txt`, content('linked', '1'));
linkSync(`${outside}/linked.txt`, `${root}/linked.txt`);
mkdirSync(`${root}/sub2`);
put(`${root}/sub2/b.txt`, content('b', 'symlinked'));
// ctime cannot be backdated: let it settle past the cache's one second.
await new Promise((r) => setTimeout(r, 1100));

let last;
const srv = await httpServer(async (req, res) => {
  last = await serveFile(req, res, undefined, { root }).catch((err) => err);
});
test.after(async () => {
  await srv.close();
  clearFileCache();
  s.cleanup();
});

const body = async (path) => (await srv.request(path)).body.toString();
/** Serves `path` twice; the second must come from a watched cache entry. */
async function cached(path, expected) {
  assert.is(await body(path), expected);
  assert.is(await body(path), expected);
  assert.is(last.cached, true, `${path} from the cache`);
}

test('entries under an absolute, symlink-free local path are watched, not stat-ed per request', async () => {
  clearFileCache();
  await cached('/a.txt', content('a', '1'));
  await cached('/sub/deeper/c.txt', content('c', '1'));
  assert.is(fileCacheStats().watched, 2, JSON.stringify(fileCacheStats()));
});

test('a write from this thread, then at once a request: the new bytes', async () => {
  await cached('/a.txt', content('a', '1'));
  writeFileSync(`${root}/a.txt`, content('a', '2'));
  assert.is(await body('/a.txt'), content('a', '2'));
});

test('a write by another process, then at once a request: the new bytes', async () => {
  await cached('/sub/deeper/c.txt', content('c', '1'));
  const w = spawnSync(process.execPath, ['-e', `require('fs').writeFileSync(${JSON.stringify(`${root}/sub/deeper/c.txt`)}, ${JSON.stringify(content('c', '2'))})`]);
  assert.is(w.status, 0, String(w.stderr));
  assert.is(await body('/sub/deeper/c.txt'), content('c', '2'));
});

test('a write through another hard link of the file (a path outside root)', async () => {
  await cached('/linked.txt', content('linked', '1'));
  writeFileSync(`${outside}/linked.txt`, content('linked', '2'));
  assert.is(await body('/linked.txt'), content('linked', '2'));
});

test('a directory on the way renamed and replaced by another with a file of the same name and size', async () => {
  await cached('/sub/b.txt', content('b', '1'));
  renameSync(`${root}/sub`, `${root}/sub.old`);
  mkdirSync(`${root}/sub`);
  writeFileSync(`${root}/sub/b.txt`, content('b', '2'));
  assert.is(await body('/sub/b.txt'), content('b', '2'));
  rmSync(`${root}/sub`, { recursive: true });
  renameSync(`${root}/sub.old`, `${root}/sub`);
});

test('a directory on the way swapped for a symlink to another directory in root: its file, never the old', async () => {
  await cached('/sub/b.txt', content('b', '1'));
  renameSync(`${root}/sub`, `${base}/sub.moved`);
  // Within root (a symlink leading out of root is refused anyway).
  symlinkSync('sub2', `${root}/sub`);
  assert.is(await body('/sub/b.txt'), content('b', 'symlinked'));
  assert.is(await body('/sub/b.txt'), content('b', 'symlinked'));
  // Below a symlink now: cached, but revalidated by stat rather than watched.
  const { watched, entries } = fileCacheStats();
  assert.ok(watched < entries, JSON.stringify(fileCacheStats()));
  rmSync(`${root}/sub`);
  renameSync(`${base}/sub.moved`, `${root}/sub`);
});

test('the root directory itself renamed away and another put in its place', async () => {
  await cached('/r.txt', content('r', '1'));
  renameSync(root, `${base}/www.old`);
  mkdirSync(root);
  writeFileSync(`${root}/r.txt`, content('r', '2'));
  assert.is(await body('/r.txt'), content('r', '2'));
  rmSync(root, { recursive: true });
  renameSync(`${base}/www.old`, root);
});

test('deleted, then recreated: 404, then the new file', async () => {
  await cached('/d.txt', content('d', '1'));
  rmSync(`${root}/d.txt`);
  assert.is((await srv.request('/d.txt')).status, 404);
  writeFileSync(`${root}/d.txt`, 'back');
  assert.is(await body('/d.txt'), 'back');
});

test('clearFileCache gives up every entry and watch', async () => {
  await cached('/e.txt', content('e', '1'));
  clearFileCache();
  assert.equal(fileCacheStats(), { entries: 0, bytes: 0, fds: 0, watched: 0, hits: 0 });
});

test.run();
