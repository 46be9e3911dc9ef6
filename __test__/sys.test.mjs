// The sys namespace: one syscall per call, on fd numbers, async with Sync twins.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openSync, closeSync, readFileSync, fsyncSync } from 'node:fs';

import { sys } from 'zerocopy';
import { scratch, makeFile, sha256Range, rejection, thrown, residentFraction } from './helpers.mjs';

const s = scratch();
test.after(() => s.cleanup());

test('copyFileRange: explicit offsets, then the file positions', async () => {
  const src = makeFile(s.path('cfr-src'), 10_000);
  const dst = s.path('cfr-dst');
  const fin = openSync(src, 'r');
  const fout = openSync(dst, 'w+');
  try {
    assert.is(await sys.copyFileRange(fin, fout, { offsetIn: 100, offsetOut: 0, length: 1000 }), 1000);
    assert.is(sha256Range(dst, 0, 1000), sha256Range(src, 100, 1100));
    // No offsets: reads at fin's position (0) and writes at fout's (0), advancing both.
    assert.is(sys.copyFileRangeSync(fin, fout, { length: 4000 }), 4000);
    assert.is(await sys.copyFileRange(fin, fout), 6000, 'default length: to end of file in one call');
    assert.is(await sys.copyFileRange(fin, fout), 0, '0 at end of file');
    assert.is(sha256Range(dst, 0, 10_000), sha256Range(src, 0, 10_000));
    const err = await rejection(() => sys.copyFileRange(fout, fin, { length: 1 }));
    assert.is(err.code, 'EBADF');
    assert.is(err.syscall, 'copy_file_range');
    assert.is(err.bytesTransferred, 0);
  } finally {
    closeSync(fin);
    closeSync(fout);
  }
});

test('sendfile: file to file at the destination position', async () => {
  const src = makeFile(s.path('sf-src'), 5000);
  const dst = s.path('sf-dst');
  const fin = openSync(src, 'r');
  const fout = openSync(dst, 'w');
  try {
    assert.is(await sys.sendfile(fout, fin, { offset: 1000, length: 100 }), 100);
    assert.is(sys.sendfileSync(fout, fin, { offset: 1100 }), 3900);
    assert.is(readFileSync(dst).length, 4000);
    assert.is(sha256Range(dst, 0, 4000), sha256Range(src, 1000, 5000));
    assert.is(await sys.sendfile(fout, fin, { length: 10 }), 10, 'from the source position (0)');
    const err = thrown(() => sys.sendfileSync(fin, fin));
    assert.is(err.code, 'EBADF');
    assert.is(err.syscall, 'sendfile');
  } finally {
    closeSync(fin);
    closeSync(fout);
  }
});

test('reflink: unsupported here gives a typed error, also with a range', async () => {
  const src = makeFile(s.path('rl-src'), 8192);
  const fin = openSync(src, 'r');
  const fout = openSync(s.path('rl-dst'), 'w');
  try {
    const err = await rejection(() => sys.reflink(fin, fout));
    assert.ok(['EOPNOTSUPP', 'EXDEV', 'EINVAL'].includes(err.code), err.code);
    assert.is(err.syscall, 'ioctl_ficlone');
    const err2 = thrown(() => sys.reflinkSync(fin, fout, { srcOffset: 0, length: 4096 }));
    assert.is(err2.syscall, 'ioctl_ficlonerange');
    const err3 = await rejection(() => sys.reflink(fin, 1 << 30));
    assert.is(err3.code, 'EBADF');
  } finally {
    closeSync(fin);
    closeSync(fout);
  }
});

test('async calls work on duplicates: closing the fd right after the call is safe', async () => {
  const src = makeFile(s.path('dup-src'), 4096);
  const fin = openSync(src, 'r');
  const fout = openSync(s.path('dup-dst'), 'w');
  const pending = sys.copyFileRange(fin, fout, { offsetIn: 0, offsetOut: 0, length: 4096 });
  closeSync(fin);
  closeSync(fout);
  assert.is(await pending, 4096);
  assert.is(sha256Range(s.path('dup-dst'), 0, 4096), sha256Range(src, 0, 4096));
});

test('fadvise: dontneed drops a range (or the whole file) from the page cache', async () => {
  const path = makeFile(s.path('fadv'), 4 * 1024 * 1024);
  const fd = openSync(path, 'r');
  try {
    readFileSync(path);
    assert.ok(residentFraction(path) > 0.9, 'read into the cache');
    fsyncSync(fd); // dirty pages are never dropped
    await sys.fadvise(fd, 'dontneed', { offset: 0, length: 2 * 1024 * 1024 });
    const half = residentFraction(path);
    assert.ok(half > 0.45 && half < 0.55, `first half dropped: ${half}`);
    sys.fadviseSync(fd, 'dontneed');
    assert.is(residentFraction(path), 0);
    await sys.fadvise(fd, 'willneed');
    await sys.fadvise(fd, 'sequential');
    const err = await rejection(() => sys.fadvise(fd, 'later'));
    assert.is(err.code, 'ERR_INVALID_ARG_VALUE');
    assert.is(thrown(() => sys.fadviseSync(fd, 'dontneed', { offset: -1 })).code, 'ERR_OUT_OF_RANGE');
    assert.is(thrown(() => sys.fadviseSync(fd)).code, 'ERR_INVALID_ARG_TYPE');
  } finally {
    closeSync(fd);
  }
  const err = await rejection(() => sys.fadvise(1 << 30, 'dontneed'));
  assert.is(err.code, 'EBADF');
  assert.is(err.bytesTransferred, 0);
});

test('MAX_RW_COUNT is the kernel cap', () => {
  assert.is(sys.MAX_RW_COUNT, 0x7ffff000);
});

test.run();
