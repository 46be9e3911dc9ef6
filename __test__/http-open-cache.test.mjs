// The open-file cache (js/http/cache.ts): large files' fds kept open between requests, as nginx's
// open_file_cache, kept fresh like the small-file cache (inotify watches, or a stat per request), and
// shared by concurrent requests through leases: an fd closes once, when the cache has let it go and
// the last request sending from it is done. Real files, real node:http on loopback.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { fstatSync, mkdirSync, realpathSync, renameSync, rmSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';

import { clearFileCache, fileCacheStats, serveFile, serveStatic } from 'zerocopy';
import { scratch, settledFds } from './helpers.mjs';
import { httpServer } from './http-helpers.mjs';

const KiB = 1024;
const s = scratch();
const base = realpathSync(s.dir);
const root = `${base}/www`;
mkdirSync(root);
// Below a symlink: entries there are revalidated by a stat per request rather than watched.
symlinkSync(root, `${base}/linked`);
const linkedRoot = `${base}/linked`;
const old = new Date(Date.now() - 60_000);
const pattern = (size, seed) => {
  const b = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE(((i + seed) * 2654435761) >>> 0, i);
  return b;
};
/** Writes a file and backdates it: files changed under a second ago are not cached. */
function put(path, data) {
  writeFileSync(path, data);
  utimesSync(path, old, old);
  return data;
}
const sha = (b) => createHash('sha256').update(b).digest('hex');
const files = {};
for (const n of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k']) files[n] = put(`${root}/${n}.bin`, pattern(256 * KiB, n.charCodeAt(0)));
files.huge = put(`${root}/huge.bin`, pattern(16 * 1024 * KiB, 7));
// ctime cannot be backdated: let it settle past the cache's one second.
await new Promise((r) => setTimeout(r, 1100));

let options = { root };
const results = [];
const srv = await httpServer(async (req, res) => {
  results.push(await serveFile(req, res, undefined, options).catch((err) => err));
});
test.after(async () => {
  await srv.close();
  clearFileCache();
  s.cleanup();
});

async function get(path, headers) {
  const r = await srv.request(path, { headers });
  return { ...r, result: results.at(-1) };
}

test('a large file is opened once: later requests send from the kept fd (a hit), byte for byte, ranges too', async () => {
  clearFileCache();
  const first = await get('/a.bin');
  assert.is(first.status, 200);
  assert.is(sha(first.body), sha(files.a));
  assert.equal({ fds: fileCacheStats().fds, hits: fileCacheStats().hits }, { fds: 1, hits: 0 });
  const second = await get('/a.bin');
  assert.is(sha(second.body), sha(files.a));
  assert.is(second.result.mechanism, 'sendfile');
  assert.is(second.result.cached, undefined, '`cached` speaks of bodies in memory only');
  assert.is(second.headers.etag, first.headers.etag);
  const range = await get('/a.bin', { range: 'bytes=1000-70999' });
  assert.is(range.status, 206);
  assert.ok(range.body.equals(files.a.subarray(1000, 71000)));
  assert.is(fileCacheStats().hits, 2);
  assert.is(fileCacheStats().fds, 1);
});

for (const [mode, prefix] of [
  ['watched', root],
  ['revalidated by stat (below a symlink)', linkedRoot],
]) {
  test(`${mode}: rewritten in place, renamed over, truncated, deleted: never the kept fd's stale view`, async () => {
    clearFileCache();
    options = { root: prefix };
    try {
      // Rewritten in place, same size: the same inode, new bytes and a new validator.
      const before = await get('/b.bin');
      await get('/b.bin');
      const rewritten = pattern(256 * KiB, 99);
      writeFileSync(`${root}/b.bin`, rewritten);
      const after = await get('/b.bin');
      assert.is(sha(after.body), sha(rewritten));
      assert.is.not(after.headers.etag, before.headers.etag);

      // Renamed over by another file: its bytes, not the open fd's.
      await get('/c.bin');
      await get('/c.bin');
      const replacement = pattern(300 * KiB, 5);
      writeFileSync(`${root}/c.new`, replacement);
      renameSync(`${root}/c.new`, `${root}/c.bin`);
      const renamed = await get('/c.bin');
      assert.is(renamed.headers['content-length'], String(300 * KiB));
      assert.is(sha(renamed.body), sha(replacement));

      // Truncated: the new length.
      await get('/d.bin');
      await get('/d.bin');
      truncateSync(`${root}/d.bin`, 100 * KiB);
      const truncated = await get('/d.bin');
      assert.is(truncated.headers['content-length'], String(100 * KiB));
      assert.ok(truncated.body.equals(files.d.subarray(0, 100 * KiB)));

      // Deleted: 404, and the kept fd is closed (only the files still cached stay open).
      await get('/e.bin');
      await get('/e.bin');
      rmSync(`${root}/e.bin`);
      assert.is((await get('/e.bin')).status, 404);
    } finally {
      options = { root };
      // Put the files back for the other mode.
      for (const n of ['b', 'c', 'd', 'e']) put(`${root}/${n}.bin`, files[n]);
    }
    await new Promise((r) => setTimeout(r, 1100));
  });
}

test('the fd stays open while a request holds it, even once the cache let it go, and closes after', async () => {
  clearFileCache();
  const fds = await settledFds();
  await get('/huge.bin');
  assert.is(fileCacheStats().fds, 1);
  assert.is(await settledFds(), fds + 1, 'one fd kept');
  // onFound holds the request between its lookup (a lease on the kept fd) and its send; the cache
  // lets the fd go meanwhile.
  let seen;
  const held = await httpServer(
    serveStatic(root, {
      async onFound(_path, _stat, _req, file) {
        clearFileCache();
        await new Promise((r) => setTimeout(r, 50));
        seen = fstatSync(file.fd).size;
      },
    }),
  );
  try {
    const r = await held.request('/huge.bin');
    assert.is(seen, files.huge.length, 'the leased fd was still the file');
    assert.is(sha(r.body), sha(files.huge), 'every byte of the file that was open');
    // A send under way when the cache lets go: a client that reads nothing yet.
    await get('/huge.bin');
    assert.is(fileCacheStats().fds, 1);
    const sock = net.connect(srv.port, '127.0.0.1');
    sock.write('GET /huge.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    sock.pause();
    await new Promise((r) => setTimeout(r, 200));
    clearFileCache();
    const chunks = [];
    sock.on('data', (d) => chunks.push(d));
    sock.resume();
    await new Promise((r) => sock.on('end', r));
    const all = Buffer.concat(chunks);
    assert.is(sha(all.subarray(all.indexOf('\r\n\r\n') + 4)), sha(files.huge));
  } finally {
    await held.close();
  }
  clearFileCache();
  assert.is(await settledFds(), fds, 'closed once the requests were done');
});

test('many concurrent requests while the file is renamed over: each response is one file, whole; no fd lost or closed twice', async () => {
  clearFileCache();
  const fds = await settledFds();
  await get('/f.bin');
  const replacement = put(`${root}/f.next`, pattern(256 * KiB, 1234));
  const hashes = new Set([sha(files.f), sha(replacement)]);
  const one = () =>
    new Promise((resolve, reject) => {
      const sock = net.connect(srv.port, '127.0.0.1');
      sock.write('GET /f.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      const chunks = [];
      sock.on('data', (d) => chunks.push(d));
      sock.on('error', reject);
      sock.on('end', () => resolve(Buffer.concat(chunks)));
    });
  const pending = [];
  for (let i = 0; i < 40; i++) {
    pending.push(one());
    if (i === 20) renameSync(`${root}/f.next`, `${root}/f.bin`);
  }
  for (const all of await Promise.all(pending)) {
    const head = all.subarray(0, all.indexOf('\r\n\r\n')).toString('latin1');
    assert.match(head, /^HTTP\/1\.1 200 /);
    const body = all.subarray(all.indexOf('\r\n\r\n') + 4);
    assert.is(body.length, Number(/content-length: (\d+)/i.exec(head)[1]));
    assert.ok(hashes.has(sha(body)), 'the old file or the new one, whole');
  }
  assert.is(sha((await get('/f.bin')).body), sha(replacement), 'after the rename: the new file');
  clearFileCache();
  assert.is(await settledFds(), fds, 'every fd closed, none twice (a second close would have hit a socket)');
  put(`${root}/f.bin`, files.f);
});

test('bounded: at most cache.fds large files held open; cache: false holds none', async () => {
  clearFileCache();
  const fds = await settledFds();
  options = { root, cache: { fds: 2 } };
  try {
    for (const n of ['g', 'h', 'i', 'j']) for (let i = 0; i < 2; i++) assert.is(sha((await get(`/${n}.bin`)).body), sha(files[n]));
    assert.is(fileCacheStats().fds, 2);
    assert.is(await settledFds(), fds + 2);
    clearFileCache();
    options = { root, cache: false };
    for (let i = 0; i < 3; i++) await get('/k.bin');
    assert.is(fileCacheStats().fds, 0);
    assert.is(await settledFds(), fds);
    options = { root, cache: { fds: 0 } };
    await get('/k.bin');
    assert.is(fileCacheStats().fds, 0, 'fds: 0 keeps no fd');
  } finally {
    options = { root };
  }
});

test('bad cache limits: a typed error, nothing served', async () => {
  const res = { headersSent: false };
  const req = { method: 'GET', url: '/a.bin', headers: {} };
  for (const [fds, code] of [
    [-1, 'ERR_OUT_OF_RANGE'],
    [1.5, 'ERR_OUT_OF_RANGE'],
    ['8', 'ERR_INVALID_ARG_TYPE'],
  ]) {
    const err = await serveFile(req, res, undefined, { root, cache: { fds } }).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(err, `cache.fds ${fds} rejected`);
    assert.is(err.code, code, `cache.fds ${JSON.stringify(fds)}`);
    assert.match(err.message, 'options.cache.fds');
  }
});

test.run();
