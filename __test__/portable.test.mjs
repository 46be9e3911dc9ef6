// The portable paths a build for macOS or Windows takes (js/platform.ts, js/copy-portable.ts), run here on Linux with
// ZEROCOPY_PORTABLE=1 (`npm run test:portable`; `npm run test:js` runs it): capabilities report
// nothing, copies go through read/write with the native engine's semantics, sends through the socket
// stream, and the Linux-only features fail with ERR_FEATURE_UNAVAILABLE_ON_PLATFORM.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync, writeFileSync, chmodSync } from 'node:fs';

import {
  alignedBuffer, capabilities, capabilitiesSync, copyFile, copyFileSync, mmap, mmapSync, openDirect, openDirectSync,
  residency, sendFile, sys, AbortError, pipe, proxy, teeTo,
} from 'zerocopy';
import { scratch, makeFile, sha256, sha256Range, MiB, rejection, thrown, connection, receive, settledFds } from './helpers.mjs';

if (process.env.ZEROCOPY_PORTABLE !== '1') throw new Error('run with ZEROCOPY_PORTABLE=1: npm run test:portable');

const s = scratch();
test.after(() => s.cleanup());
const UNAVAILABLE = 'ERR_FEATURE_UNAVAILABLE_ON_PLATFORM';

test('capabilities: every mechanism unavailable, the path still checked', async () => {
  for (const caps of [await capabilities(s.dir), capabilitiesSync(s.dir)]) {
    assert.is(caps.platform, process.platform);
    assert.ok(caps.kernel.length > 0);
    assert.ok(caps.pageSize >= 4096);
    for (const key of ['copyFileRange', 'sendfile', 'splice', 'tee', 'vmsplice']) assert.is(caps[key], false, key);
    assert.is(caps.pipeMaxSize, null);
    assert.equal(caps.filesystem, {
      path: s.dir, type: 'unknown', blockSize: statSync(s.dir).blksize, reflink: false, copyFileRange: false, directIo: false, directIoAlignment: null,
    });
  }
  assert.is((await rejection(() => capabilities(s.path('missing')))).code, 'ENOENT');
  assert.is(thrown(() => capabilitiesSync(s.path('missing'))).code, 'ENOENT');
});

test('copyFile and copyFileSync: whole files by read/write, sha256 equal', async () => {
  const src = makeFile(s.path('whole'), 5 * MiB + 123);
  const a = await copyFile(src, s.path('whole-a'));
  const b = copyFileSync(src, s.path('whole-b'));
  for (const [r, dst] of [[a, 'whole-a'], [b, 'whole-b']]) {
    assert.equal(r, { bytes: 5 * MiB + 123, mechanism: 'readwrite' });
    assert.is(sha256(s.path(dst)), sha256(src));
  }
  assert.equal(await copyFile(makeFile(s.path('empty'), 0), s.path('empty-a')), { bytes: 0, mechanism: 'readwrite' });
});

test('copyFile: ranges, destination offsets and fd positions as on Linux', async () => {
  const src = makeFile(s.path('range'), 3 * MiB);
  const r = await copyFile(src, s.path('range-a'), { offset: 1000, length: MiB + 7 });
  assert.is(r.bytes, MiB + 7);
  assert.is(sha256(s.path('range-a')), sha256Range(src, 1000, 1000 + MiB + 7));

  // dstOffset writes into the existing file without truncating it.
  writeFileSync(s.path('into'), Buffer.alloc(100, 1));
  await copyFile(src, s.path('into'), { length: 10, dstOffset: 50 });
  const into = readFileSync(s.path('into'));
  assert.is(into.length, 100);
  assert.ok(into.subarray(50, 60).equals(readFileSync(src).subarray(0, 10)));
  assert.is(into[49], 1);
  assert.is(into[60], 1);

  // An fd without offset is read from its position, which advances; with offset it stays put.
  const fd = openSync(src, 'r');
  try {
    readSync(fd, Buffer.alloc(100), 0, 100, null);
    copyFileSync(fd, s.path('fd-a'), { length: 200 });
    assert.is(sha256(s.path('fd-a')), sha256Range(src, 100, 300));
    copyFileSync(fd, s.path('fd-b'), { offset: 0, length: 10 });
    copyFileSync(fd, s.path('fd-c'), { length: 10 });
    assert.is(sha256(s.path('fd-c')), sha256Range(src, 300, 310));
  } finally {
    closeSync(fd);
  }
});

test('copyFile: overwrite, mode, the same file, reflink: always', async () => {
  const src = makeFile(s.path('meta'), 4096);
  chmodSync(src, 0o640);
  await copyFile(src, s.path('meta-a'));
  assert.is(statSync(s.path('meta-a')).mode & 0o777, 0o640 & ~process.umask());
  await copyFile(src, s.path('meta-b'), { mode: 0o600 });
  assert.is(statSync(s.path('meta-b')).mode & 0o777, 0o600);
  const exists = await rejection(() => copyFile(src, s.path('meta-a'), { overwrite: false }));
  assert.is(exists.code, 'EEXIST');
  assert.is(exists.bytesTransferred, 0);

  const same = await rejection(() => copyFile(src, src));
  assert.is(same.code, 'EINVAL');
  assert.is(same.errno, -22);
  assert.is(same.syscall, 'copyfile');
  assert.match(same.message, 'same file');
  assert.is(statSync(src).size, 4096, 'the source is not truncated');

  const always = await rejection(() => copyFile(src, s.path('meta-c'), { reflink: 'always' }));
  assert.is(always.code, 'EOPNOTSUPP');
  const missing = await rejection(() => copyFile(s.path('nope'), s.path('meta-d')));
  assert.is(missing.code, 'ENOENT');
  assert.is(missing.bytesTransferred, 0);
});

test('copyFile: progress ends with (bytes, bytes); abort keeps what was written; no fd leaks', async () => {
  const before = await settledFds();
  const src = makeFile(s.path('watched'), 70 * MiB);
  const calls = [];
  const r = await copyFile(src, s.path('watched-a'), { onProgress: (done, total) => calls.push([done, total]) });
  assert.equal(calls.at(-1), [r.bytes, r.bytes]);
  assert.ok(calls.length >= 2, 'a call per 64 MiB and the last');

  const ac = new AbortController();
  const err = await rejection(() =>
    copyFile(src, s.path('watched-b'), { signal: ac.signal, onProgress: () => ac.abort() }),
  );
  assert.instance(err, AbortError);
  assert.ok(err.bytesTransferred > 0);
  assert.is(statSync(s.path('watched-b')).size, err.bytesTransferred);
  const pre = await rejection(() => copyFile(src, s.path('watched-c'), { signal: AbortSignal.abort() }));
  assert.instance(pre, AbortError);
  assert.not.ok(existsSync(s.path('watched-c')), 'an aborted signal opens nothing');
  assert.is(await settledFds(), before);
});

test('sendFile: a net.Socket gets the file through the stream; an fd number is unavailable', async () => {
  const src = makeFile(s.path('send'), 3 * MiB + 5);
  const { ours, client } = await connection();
  const got = receive(client);
  const r = await sendFile(ours, src);
  ours.end();
  assert.equal(r, { bytes: 3 * MiB + 5, mechanism: 'stream' });
  assert.ok((await got).equals(readFileSync(src)));
  const err = await rejection(() => sendFile(1, src));
  assert.is(err.code, UNAVAILABLE);
});

test('pipe, proxy, teeTo: Node sockets relayed through streams; fd numbers unavailable', async () => {
  const a = await connection();
  const b = await connection();
  const atB = receive(b.client);
  const atA = receive(a.client);
  const relaying = proxy(a.ours, b.ours);
  const up = randomBytes(2 * MiB + 3);
  const down = randomBytes(MiB + 1);
  a.client.end(up);
  b.client.end(down);
  assert.equal(await relaying, { aToB: up.length, bToA: down.length, mechanism: 'stream' });
  assert.ok((await atB).equals(up));
  assert.ok((await atA).equals(down));

  const src = await connection();
  const sinks = [await connection(), await connection()];
  const got = sinks.map((c) => receive(c.client));
  const teeing = teeTo(src.ours, sinks.map((c) => c.ours));
  src.client.end(up);
  assert.equal(await teeing, { bytes: up.length, mechanism: 'stream' });
  for (const g of got) assert.ok((await g).equals(up));

  const c = await connection();
  const err = await rejection(() => pipe(c.ours, 1));
  assert.is(err.code, UNAVAILABLE);
  assert.is(err.bytesTransferred, 0);
  for (const x of [a, b, src, c, ...sinks]) x.client.destroy();
});

test('mmap, residency, O_DIRECT and sys: ERR_FEATURE_UNAVAILABLE_ON_PLATFORM, after argument checks', async () => {
  const file = makeFile(s.path('linux-only'), 4096);
  const failures = [
    await rejection(() => mmap(file)),
    thrown(() => mmapSync(file)),
    thrown(() => residency(file)),
    await rejection(() => openDirect(file)),
    thrown(() => openDirectSync(file)),
    thrown(() => alignedBuffer(4096)),
    await rejection(() => sys.copyFileRange(0, 1, { length: 1 })),
    thrown(() => sys.fadviseSync(0, 'dontneed')),
    thrown(() => sys.pipeSync()),
    await rejection(() => sys.splice(0, 1, { length: 1 })),
  ];
  for (const err of failures) {
    assert.is(err.code, UNAVAILABLE, err.message);
    assert.match(err.message, 'ZEROCOPY_PORTABLE=1');
  }
  assert.is(thrown(() => mmapSync(42n)).code, 'ERR_INVALID_ARG_TYPE');
});

test.run();
