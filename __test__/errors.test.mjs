// The error model: argument errors before any syscall, Node-style system errors parsed from the
// native layer's records, bytesTransferred after partial progress.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, openSync, closeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { constants } from 'node:os';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { copyFile, copyFileSync, sys, isErrnoError } from 'zerocopy';
import { scratch, makeFile, rejection, thrown, MiB } from './helpers.mjs';

const s = scratch();
test.after(() => s.cleanup());
const src = makeFile(s.path('src'), 1000);
const dst = s.path('never-created');

// [description, src, dst, options, code, error class]
const BAD = [
  ['src of a wrong type', {}, dst, undefined, 'ERR_INVALID_ARG_TYPE', TypeError],
  ['src null', null, dst, undefined, 'ERR_INVALID_ARG_TYPE', TypeError],
  ['dst boolean', src, true, undefined, 'ERR_INVALID_ARG_TYPE', TypeError],
  ['negative fd', -1, dst, undefined, 'ERR_OUT_OF_RANGE', RangeError],
  ['fractional fd', 1.5, dst, undefined, 'ERR_OUT_OF_RANGE', RangeError],
  ['fd above INT_MAX', 2 ** 31, dst, undefined, 'ERR_OUT_OF_RANGE', RangeError],
  ['path with a NUL byte', 'a\0b', dst, undefined, 'ERR_INVALID_ARG_VALUE', TypeError],
  ['http URL', new URL('http://example.com/x'), dst, undefined, 'ERR_INVALID_URL_SCHEME', TypeError],
  ['options a string', src, dst, 'fast', 'ERR_INVALID_ARG_TYPE', TypeError],
  ['offset a string', src, dst, { offset: '5' }, 'ERR_INVALID_ARG_TYPE', TypeError],
  ['negative offset', src, dst, { offset: -1 }, 'ERR_OUT_OF_RANGE', RangeError],
  ['NaN offset', src, dst, { offset: NaN }, 'ERR_OUT_OF_RANGE', RangeError],
  ['fractional offset', src, dst, { offset: 0.5 }, 'ERR_OUT_OF_RANGE', RangeError],
  ['Infinity length', src, dst, { length: Infinity }, 'ERR_OUT_OF_RANGE', RangeError],
  ['length past MAX_SAFE_INTEGER', src, dst, { length: 2 ** 53 }, 'ERR_OUT_OF_RANGE', RangeError],
  ['negative dstOffset', src, dst, { dstOffset: -4096 }, 'ERR_OUT_OF_RANGE', RangeError],
  ['bigint offset', src, dst, { offset: 5n }, 'ERR_INVALID_ARG_TYPE', TypeError],
  ['unknown reflink mode', src, dst, { reflink: 'sometimes' }, 'ERR_INVALID_ARG_VALUE', TypeError],
  ['overwrite not a boolean', src, dst, { overwrite: 'yes' }, 'ERR_INVALID_ARG_TYPE', TypeError],
  ['mode out of range', src, dst, { mode: 0o10000 }, 'ERR_OUT_OF_RANGE', RangeError],
  ['signal not an AbortSignal', src, dst, { signal: {} }, 'ERR_INVALID_ARG_TYPE', TypeError],
  ['onProgress not a function', src, dst, { onProgress: 5 }, 'ERR_INVALID_ARG_TYPE', TypeError],
];

for (const [what, from, to, options, code, Class] of BAD) {
  test(`copyFile rejects ${what} with ${code} before any syscall`, async () => {
    const err = await rejection(() => copyFile(from, to, options));
    assert.instance(err, Class);
    assert.is(err.code, code);
    assert.not.ok(existsSync(dst), 'nothing created');
    const errSync = thrown(() => copyFileSync(from, to, options));
    assert.instance(errSync, Class);
    assert.is(errSync.code, code);
    assert.not.ok(existsSync(dst));
  });
}

test('argument messages read like Node\'s', async () => {
  const err = await rejection(() => copyFile(src, dst, { offset: -1 }));
  assert.is(err.message, 'The value of "options.offset" is out of range. It must be an integer >= 0. Received -1');
  const err2 = await rejection(() => copyFile(src, dst, { offset: '5' }));
  assert.is(err2.message, 'The "options.offset" property must be of type number. Received type string (\'5\')');
  const err3 = await rejection(() => copyFile(src, dst, { reflink: 'x' }));
  assert.is(err3.message, "The property 'options.reflink' must be one of: 'auto', 'always', 'never'. Received 'x'");
});

test('a directory as source fails with EISDIR and creates nothing', async () => {
  const dir = s.path('a-dir');
  mkdirSync(dir);
  const err = await rejection(() => copyFile(dir, dst));
  assert.is(err.code, 'EISDIR');
  assert.is(err.errno, -constants.errno.EISDIR);
  assert.is(err.path, dir);
  assert.not.ok(existsSync(dst));
  const errSync = thrown(() => copyFileSync(src, dir));
  assert.is(errSync.code, 'EISDIR');
});

test('system errors round-trip every field from the native record, awkward paths included', async () => {
  for (const name of ["it's", 'quote"d', 'back\\slash', 'new\nline', 'ünïcødé ✓', 'tab\there']) {
    const missing = s.path(`missing ${name}`);
    const err = await rejection(() => copyFile(missing, dst));
    assert.ok(isErrnoError(err));
    assert.instance(err, Error);
    assert.is(err.code, 'ENOENT');
    assert.is(err.errno, -constants.errno.ENOENT);
    assert.is(err.syscall, 'open');
    assert.is(err.path, missing);
    assert.is(err.message, `ENOENT: no such file or directory, open '${missing}'`);
    assert.is(err.bytesTransferred, 0);
    assert.match(err.stack, /errors\.test\.mjs/, 'the stack points at the caller');
  }
  const err = await rejection(() => copyFile(src, s.path('no-dir/x')));
  assert.is(err.path, s.path('no-dir/x'));
  const closed = await open(src, 'r');
  await closed.close();
  const err2 = await rejection(() => copyFile(closed, dst));
  assert.is(err2.code, 'EBADF');
  assert.is(err2.errno, -constants.errno.EBADF);
  const fd = openSync(src, 'r');
  closeSync(fd);
  const err3 = thrown(() => copyFileSync(fd, dst));
  assert.is(err3.code, 'EBADF');
  assert.is(err3.message, 'EBADF: bad file descriptor, dup');
});

test('a failure after partial progress reports bytesTransferred exactly (file size limit)', () => {
  // In a child limited to 1 MiB files (Node ignores SIGXFSZ, so writes past it fail with EFBIG).
  const script = `
    const { copyFile, copyFileSync } = require('zerocopy');
    const fs = require('fs');
    const [src, a, b] = process.argv.slice(1);
    copyFile(src, a).then(() => console.log('{}'), (err) => {
      let sync;
      try { copyFileSync(src, b, { reflink: 'never' }) } catch (e) { sync = e }
      console.log(JSON.stringify({ code: err.code, syscall: err.syscall, bytes: err.bytesTransferred, size: fs.statSync(a).size,
        syncCode: sync && sync.code, syncBytes: sync && sync.bytesTransferred, syncSize: fs.statSync(b).size }));
    });`;
  const big = makeFile(s.path('big'), 3 * MiB);
  const out = execFileSync('bash', ['-c', 'ulimit -f 1024 && exec "$0" "$@"', process.execPath, '-e', script, big, s.path('lim-a'), s.path('lim-b')], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    encoding: 'utf8',
  });
  const r = JSON.parse(out);
  assert.is(r.code, 'EFBIG');
  assert.is(r.syscall, 'copy_file_range');
  assert.is(r.bytes, MiB);
  assert.is(r.size, MiB);
  assert.is(r.syncCode, 'EFBIG');
  assert.is(r.syncBytes, MiB);
  assert.is(r.syncSize, MiB);
});

test('sys functions validate their arguments too', async () => {
  for (const call of [
    () => sys.copyFileRange('3', 4),
    () => sys.sendfile(1, 2, { offset: -1 }),
    () => sys.reflink(1, 2, { length: 1.5 }),
  ]) {
    const err = await rejection(call);
    assert.ok(['ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE'].includes(err.code), err.code);
  }
  const err = thrown(() => sys.sendfileSync(1, 2, 'x'));
  assert.is(err.code, 'ERR_INVALID_ARG_TYPE');
});

test.run();
