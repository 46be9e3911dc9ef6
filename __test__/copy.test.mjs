// copyFile / copyFileSync on real files: content, mechanism, ranges, positions, progress, abort.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { open, stat, writeFile, readFile } from 'node:fs/promises';
import { existsSync, openSync, closeSync, readSync, statSync, writeFileSync } from 'node:fs';

import { copyFile, copyFileSync, capabilitiesSync, AbortError } from 'zerocopy';
import { scratch, makeFile, sha256, sha256Range, MiB, rejection, thrown } from './helpers.mjs';

const s = scratch();
const onExt4 = capabilitiesSync(s.dir).filesystem?.type === 'ext4';

test.after(() => s.cleanup());

for (const size of [0, 1, 4095, 4096, 4097, MiB + 1]) {
  test(`copies ${size} bytes with identical content, async and sync`, async () => {
    const src = makeFile(s.path(`src-${size}`), size);
    const res = await copyFile(src, s.path(`dst-${size}`));
    assert.is(res.bytes, size);
    assert.is(sha256(s.path(`dst-${size}`)), sha256(src));
    const resSync = copyFileSync(src, s.path(`dst-sync-${size}`));
    assert.equal(resSync, res);
    assert.is(sha256(s.path(`dst-sync-${size}`)), sha256(src));
    if (onExt4) assert.is(res.mechanism, size === 0 ? 'readwrite' : 'copy_file_range');
  });
}

test('reflink: never writes real copies with sendfile; always fails with EOPNOTSUPP on ext4', async () => {
  const src = makeFile(s.path('r-src'), 100_000);
  const never = await copyFile(src, s.path('r-never'), { reflink: 'never' });
  assert.equal(never, { bytes: 100_000, mechanism: 'sendfile' });
  assert.is(sha256(s.path('r-never')), sha256(src));
  if (!onExt4) return;
  const err = await rejection(() => copyFile(src, s.path('r-always'), { reflink: 'always' }));
  assert.is(err.code, 'EOPNOTSUPP');
  assert.is(err.syscall, 'ioctl_ficlonerange');
  assert.is(err.path, src);
  assert.is(err.dest, s.path('r-always'));
  assert.is(err.bytesTransferred, 0);
});

test('mechanism forces one path, with no fallback', async () => {
  const src = makeFile(s.path('m-src'), 3 * MiB + 1);
  for (const mechanism of ['copy_file_range', 'sendfile', 'readwrite']) {
    const res = await copyFile(src, s.path(`m-${mechanism}`), { mechanism });
    assert.equal(res, { bytes: 3 * MiB + 1, mechanism });
    assert.is(sha256(s.path(`m-${mechanism}`)), sha256(src));
  }
  if (onExt4) {
    const err = await rejection(() => copyFile(src, s.path('m-reflink'), { mechanism: 'reflink' }));
    assert.is(err.code, 'EOPNOTSUPP');
  }
  const bad = await rejection(() => copyFile(src, s.path('m-bad'), { mechanism: 'teleport' }));
  assert.is(bad.code, 'ERR_INVALID_ARG_VALUE');
});

test('across filesystems (disk to tmpfs) falls back to sendfile', async () => {
  if (!existsSync('/dev/shm')) return;
  const shm = scratch('/dev/shm');
  try {
    const src = makeFile(s.path('x-src'), 3 * MiB + 5);
    const res = await copyFile(src, shm.path('dst'));
    assert.equal(res, { bytes: 3 * MiB + 5, mechanism: 'sendfile' });
    assert.is(sha256(shm.path('dst')), sha256(src));
  } finally {
    shm.cleanup();
  }
});

test('offset, length and dstOffset select exact ranges', async () => {
  const n = 100_003;
  const src = makeFile(s.path('range-src'), n);
  const cases = [
    [undefined, undefined],
    [0, n - 1],
    [1, n / 2 | 0],
    [n / 2 | 0, undefined],
    [n - 1, 10],
    [0, n + 7],
    [n, 5],
    [n + 10, undefined],
    [10, 0],
  ];
  for (const reflink of ['auto', 'never']) {
    for (const [offset, length] of cases) {
      const dst = s.path('range-dst');
      const res = await copyFile(src, dst, { offset, length, reflink });
      const start = Math.min(offset ?? 0, n);
      const end = length === undefined ? n : Math.min(start + length, n);
      assert.is(res.bytes, end - start, `offset ${offset} length ${length}`);
      assert.is(sha256(dst), sha256Range(src, start, end), `offset ${offset} length ${length}`);
    }
  }
  // Nothing in range: no in-kernel mechanism is started for zero bytes.
  assert.equal(await copyFile(src, s.path('range-none'), { offset: n + 1 }), { bytes: 0, mechanism: 'readwrite' });
  // dstOffset writes into the existing file without truncating it.
  const dst = makeFile(s.path('range-into'), 5000);
  const before = await readFile(dst);
  await copyFile(src, dst, { offset: 10, length: 100, dstOffset: 1000 });
  const after = await readFile(dst);
  assert.is(after.length, 5000);
  assert.ok(after.subarray(0, 1000).equals(before.subarray(0, 1000)));
  assert.ok(after.subarray(1000, 1100).equals((await readFile(src)).subarray(10, 110)));
  assert.ok(after.subarray(1100).equals(before.subarray(1100)));
});

test('fds and FileHandles: positions start where they are and advance; explicit offsets leave them', async () => {
  const src = makeFile(s.path('fd-src'), 10_000);
  const fh = await open(src, 'r');
  const dstPath = s.path('fd-dst');
  const out = openSync(dstPath, 'w+');
  try {
    readSync(fh.fd, Buffer.alloc(100), 0, 100, null); // position 100
    const res = await copyFile(fh, out);
    assert.is(res.bytes, 9900);
    const probe = Buffer.alloc(1);
    assert.is(readSync(fh.fd, probe, 0, 1, null), 0, 'source position at end of file');
    assert.is(sha256(dstPath), sha256Range(src, 100, 10_000));
    // Explicit offsets: positions untouched, also through sendfile which moves the destination's internally.
    const res2 = await copyFile(fh, out, { offset: 0, length: 50, dstOffset: 20_000, reflink: 'never' });
    assert.equal(res2, { bytes: 50, mechanism: 'sendfile' });
    writeFileSync(out, 'Z'); // lands at the destination position, which must still be 9900
    const got = await readFile(dstPath);
    assert.is(got[9900], 'Z'.charCodeAt(0));
    assert.is(got.length, 20_050);
  } finally {
    await fh.close();
    closeSync(out);
  }
});

test('an O_APPEND destination is appended to with read/write', async () => {
  const src = makeFile(s.path('app-src'), 70_000);
  const log = s.path('app-log');
  await writeFile(log, 'head');
  const fh = await open(log, 'a');
  try {
    const res = await copyFile(src, fh);
    assert.equal(res, { bytes: 70_000, mechanism: 'readwrite' });
    const got = await readFile(log);
    assert.is(got.subarray(0, 4).toString(), 'head');
    assert.ok(got.subarray(4).equals(await readFile(src)));
    const err = await rejection(() => copyFile(src, fh, { dstOffset: 0 }));
    assert.is(err.code, 'EINVAL');
    // The core names its own API; the JS layer says it in the JS API's terms.
    assert.match(err.message, /an O_APPEND destination cannot take dstOffset, copyfile/);
  } finally {
    await fh.close();
  }
});

test('copying a file onto itself is refused and never truncates it', async () => {
  const src = makeFile(s.path('self'), 3000);
  const hash = sha256(src);
  for (const run of [() => copyFile(src, src), async () => copyFileSync(src, src)]) {
    const err = await rejection(run);
    assert.is(err.code, 'EINVAL');
    assert.match(err.message, /same file/);
    assert.is(err.errno, -22);
    assert.is(sha256(src), hash);
  }
  // Distinct ranges of one file are fine.
  const fd = openSync(src, 'r+');
  try {
    const res = await copyFile(fd, fd, { offset: 0, length: 100, dstOffset: 3000 });
    assert.is(res.bytes, 100);
    assert.is(sha256Range(src, 3000, 3100), sha256Range(src, 0, 100));
  } finally {
    closeSync(fd);
  }
});

test('/proc/self/status copies its real content', async () => {
  const dst = s.path('status');
  const res = await copyFile('/proc/self/status', dst);
  const text = await readFile(dst, 'utf8');
  assert.is(res.mechanism, 'readwrite');
  assert.is(res.bytes, Buffer.byteLength(text));
  assert.ok(res.bytes > 100);
  assert.match(text, /^Name:/);
  assert.match(text, new RegExp(`\\nPid:\\s+${process.pid}\\n`));
});

test('overwrite: false refuses an existing destination; mode sets permission bits', async () => {
  const src = makeFile(s.path('ow-src'), 10);
  const dst = makeFile(s.path('ow-dst'), 20);
  const err = await rejection(() => copyFile(src, dst, { overwrite: false }));
  assert.is(err.code, 'EEXIST');
  assert.is(err.path, dst);
  assert.is((await stat(dst)).size, 20);
  await copyFile(src, s.path('ow-new'), { overwrite: false, mode: 0o640 });
  assert.is((await stat(s.path('ow-new'))).mode & 0o777, 0o640);
});

test('progress is monotonic and ends at the total, for each mechanism', async () => {
  const size = 150 * MiB + 3;
  const src = makeFile(s.path('p-src'), size);
  for (const reflink of ['auto', 'never']) {
    const calls = [];
    const res = await copyFile(src, s.path('p-dst'), { reflink, onProgress: (done, total) => calls.push([done, total]) });
    assert.is(res.bytes, size);
    assert.ok(calls.length >= 3, `${calls.length} progress calls`);
    for (let i = 1; i < calls.length; i++) assert.ok(calls[i][0] > calls[i - 1][0], 'monotonic');
    for (const [done, total] of calls) assert.ok(done <= total && total === size);
    assert.equal(calls.at(-1), [size, size]);
  }
  // The read/write path too (an O_APPEND destination forces it).
  const fh = await open(s.path('p-app'), 'a');
  const calls = [];
  try {
    const res = await copyFile(src, fh, { onProgress: (done, total) => calls.push([done, total]) });
    assert.is(res.mechanism, 'readwrite');
  } finally {
    await fh.close();
  }
  assert.ok(calls.length >= 3);
  assert.equal(calls.at(-1), [size, size]);
  assert.is(sha256(s.path('p-app')), sha256(src));
});

test('abort mid-copy rejects with AbortError and bytesTransferred; the partial destination stays', async () => {
  const size = 200 * MiB;
  const src = makeFile(s.path('a-src'), size);
  const ac = new AbortController();
  const reason = new Error('user cancelled');
  const err = await rejection(() =>
    copyFile(src, s.path('a-dst'), { signal: ac.signal, onProgress: (done) => done > 0 && ac.abort(reason) }),
  );
  assert.instance(err, AbortError);
  assert.is(err.name, 'AbortError');
  assert.is(err.code, 'ABORT_ERR');
  assert.is(err.cause, reason);
  assert.ok(err.bytesTransferred > 0 && err.bytesTransferred < size, `${err.bytesTransferred}`);
  assert.is((await stat(s.path('a-dst'))).size, err.bytesTransferred);
  assert.is(sha256(s.path('a-dst')), sha256Range(src, 0, err.bytesTransferred));

  // A signal that fires while a chunk is in flight stops the copy after that chunk.
  const ac2 = new AbortController();
  setImmediate(() => ac2.abort());
  const err2 = await rejection(() => copyFile(src, s.path('a-dst2'), { signal: ac2.signal }));
  assert.instance(err2, AbortError);
  assert.ok(err2.bytesTransferred < size);

  // Already aborted: nothing is opened or created.
  const err3 = await rejection(() => copyFile(src, s.path('a-never'), { signal: AbortSignal.abort() }));
  assert.instance(err3, AbortError);
  assert.is(err3.bytesTransferred, 0);
  assert.not.ok(existsSync(s.path('a-never')));

  // The sync twin honours a signal aborted from its progress callback.
  const ac4 = new AbortController();
  const err4 = thrown(() => copyFileSync(src, s.path('a-sync'), { signal: ac4.signal, onProgress: () => ac4.abort() }));
  assert.instance(err4, AbortError);
  assert.is(err4.bytesTransferred, statSync(s.path('a-sync')).size);
});

test('an error thrown by onProgress stops the copy with that error', async () => {
  const src = makeFile(s.path('cb-src'), 70 * MiB);
  const boom = new Error('boom');
  const err = await rejection(() => copyFile(src, s.path('cb-dst'), { onProgress: () => { throw boom; } }));
  assert.is(err, boom);
  assert.is(err.bytesTransferred, 64 * MiB);
});

test('closing the caller\'s fd mid-copy cannot redirect bytes: the copy owns duplicates', async () => {
  const src = makeFile(s.path('dup-src'), 130 * MiB);
  const dst = s.path('dup-dst');
  const fd = openSync(dst, 'w');
  let reused;
  const res = await copyFile(src, fd, {
    onProgress: (done) => {
      if (done > 0 && reused === undefined) {
        closeSync(fd);
        reused = openSync(s.path('dup-victim'), 'w'); // likely gets the same number
      }
    },
  });
  closeSync(reused);
  assert.is(res.bytes, 130 * MiB);
  assert.is(sha256(dst), sha256(src));
  assert.is((await stat(s.path('dup-victim'))).size, 0);
});

test.run();
