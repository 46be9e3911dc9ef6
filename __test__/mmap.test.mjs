// mmap / mmapSync / MappedFile / residency on real files: windows, modes, close, bad input, fds.
// The process-level guarantees (truncation, SIGBUS, GC) are in mmap-safety.test.mjs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { open } from 'node:fs/promises';
import { closeSync, mkdirSync, statSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { constants } from 'node:os';

import { mmap, mmapSync, residency, MappedFile } from 'zerocopy';
import { scratch, makeFile, openFds, rejection, thrown, MiB } from './helpers.mjs';

const s = scratch();
test.after(() => s.cleanup());
const PAGE = 4096;

/** Both twins, so every case runs async and sync. */
const both = [
  ['mmap', (f, o) => mmap(f, o)],
  ['mmapSync', async (f, o) => mmapSync(f, o)],
];

test('windows at odd offsets hold exactly the file\'s bytes, async and sync', async () => {
  const size = 5 * PAGE + 123;
  const path = makeFile(s.path('odd'), size);
  const data = readFileSync(path);
  const cases = [
    [undefined, undefined],
    [0, size],
    [1, 1],
    [1, undefined],
    [PAGE - 1, 2],
    [PAGE, PAGE],
    [PAGE + 1, 3 * PAGE],
    [3 * PAGE - 7, 2 * PAGE + 130],
    [size - 1, undefined],
    [4095, 4097],
  ];
  for (const [name, map] of both) {
    for (const [offset, length] of cases) {
      const m = await map(path, { offset, length });
      const start = offset ?? 0;
      const end = length === undefined ? size : start + length;
      assert.instance(m, MappedFile);
      assert.ok(Buffer.isBuffer(m.buffer));
      assert.is(m.length, end - start, `${name} ${offset}/${length}`);
      assert.is(m.offset, start);
      assert.is(m.mode, 'r');
      assert.ok(m.buffer.equals(data.subarray(start, end)), `${name} ${offset}/${length}`);
      m.close();
    }
  }
});

test('path, fd, FileHandle, Buffer path and file: URL all map the same bytes; the fd is not kept', async () => {
  const path = makeFile(s.path('kinds'), 3 * PAGE);
  const data = readFileSync(path);
  const fd = openSync(path, 'r');
  const fh = await open(path, 'r');
  const maps = [
    mmapSync(path),
    mmapSync(Buffer.from(path)),
    mmapSync(new URL(`file://${path}`)),
    mmapSync(fd, { offset: 10 }),
    await mmap(fh, { offset: 20 }),
  ];
  closeSync(fd);
  await fh.close();
  assert.ok(maps[0].buffer.equals(data));
  assert.ok(maps[1].buffer.equals(data));
  assert.ok(maps[2].buffer.equals(data));
  assert.ok(maps[3].buffer.equals(data.subarray(10)), 'still readable after closing the fd');
  assert.ok(maps[4].buffer.equals(data.subarray(20)), 'still readable after closing the FileHandle');
  for (const m of maps) m.close();
});

test("'rw' writes reach the file after sync; syncSync, async and ranges too", async () => {
  const path = makeFile(s.path('rw'), 3 * PAGE + 5);
  const expected = Buffer.from(readFileSync(path));
  const m = await mmap(path, { mode: 'rw', offset: 17 });
  m.buffer.write('hello', 0);
  expected.write('hello', 17);
  await m.sync();
  assert.ok(readFileSync(path).equals(expected));
  m.buffer.writeUInt32LE(0xdeadbeef, 2 * PAGE);
  expected.writeUInt32LE(0xdeadbeef, 17 + 2 * PAGE);
  m.syncSync({ range: { offset: 2 * PAGE, length: 4 } });
  assert.ok(readFileSync(path).equals(expected));
  m.buffer[m.length - 1] = 0x42;
  expected[expected.length - 1] = 0x42;
  await m.sync({ async: true });
  m.close();
  assert.ok(readFileSync(path).equals(expected), 'MS_ASYNC writes are visible through the page cache');
  // An fd works when it is open read-write.
  const fd = openSync(path, 'r+');
  const m2 = mmapSync(fd, { mode: 'rw', length: 1 });
  m2.buffer[0] = 0x11;
  m2.syncSync();
  m2.close();
  closeSync(fd);
  assert.is(readFileSync(path)[0], 0x11);
});

test("'cow' and 'r' writes stay private: the file never changes", async () => {
  const path = makeFile(s.path('cow'), 2 * PAGE);
  const before = Buffer.from(readFileSync(path));
  for (const mode of ['cow', 'r']) {
    const m = await mmap(path, { mode });
    m.buffer.fill(0xee, 100, 5000);
    assert.is(m.buffer[4999], 0xee, `${mode}: the write is visible in the mapping`);
    await m.sync();
    m.close();
    assert.ok(readFileSync(path).equals(before), `${mode}: file unchanged`);
  }
  const other = mmapSync(path);
  assert.ok(other.buffer.equals(before), 'other mappings never saw the private writes');
  other.close();
});

test('close detaches every view: length 0, reads undefined; a second close is a no-op', () => {
  const path = makeFile(s.path('close'), 2 * PAGE);
  const m = mmapSync(path);
  const views = [m.buffer, m.buffer.subarray(10, 20), new Uint32Array(m.buffer.buffer), new Uint8Array(m.buffer.buffer, PAGE)];
  const ab = m.buffer.buffer;
  assert.is(views[1].length, 10);
  m.close();
  assert.ok(m.closed);
  for (const v of views) assert.is(v.length, 0);
  assert.is(ab.byteLength, 0);
  assert.is(m.buffer[0], undefined);
  assert.is(m.length, 0);
  m.close();
  assert.ok(m.closed);
  const viaDispose = mmapSync(path);
  const buf = viaDispose.buffer;
  viaDispose[Symbol.dispose]();
  assert.ok(viaDispose.closed);
  assert.is(buf.length, 0);
});

test('after close, sync/advise/residency fail with EBADF', async () => {
  const m = mmapSync(makeFile(s.path('closed-ops'), PAGE));
  m.close();
  for (const err of [
    await rejection(() => m.sync()),
    thrown(() => m.syncSync()),
    thrown(() => m.advise('random')),
    thrown(() => residency(m)),
  ]) {
    assert.is(err.code, 'EBADF');
    assert.is(err.errno, -constants.errno.EBADF);
    assert.match(err.message, /mapping is closed/);
  }
});

test('a transfer list cannot steal the mapped memory: a copy (Node 20) or DataCloneError (Node 22+)', () => {
  const m = mmapSync(makeFile(s.path('transfer'), PAGE));
  const ab = m.buffer.buffer;
  const major = Number(process.versions.node.split('.')[0]);
  let clone;
  try {
    clone = structuredClone(ab, { transfer: [ab] });
  } catch (err) {
    // From Node 22 an external ArrayBuffer in a transfer list is refused instead of copied.
    assert.ok(major >= 22, `Node ${process.version} threw ${err}`);
    assert.is(err.name, 'DataCloneError');
  }
  assert.is(m.length, PAGE, 'the mapping keeps its memory');
  if (clone !== undefined) {
    assert.ok(major < 22, `Node ${process.version} copied`);
    new Uint8Array(clone)[0] = m.buffer[0] ^ 0xff;
    assert.is.not(m.buffer[0], new Uint8Array(clone)[0], 'the clone is a copy');
  }
  m.close();
  assert.is(m.length, 0);
});

test('a runtime that forbids external buffers gets ERR_EXTERNAL_BUFFERS_NOT_ALLOWED, and the mapping is let go', () => {
  // No Node build forbids external buffers (Electron's V8 sandbox does), so the native half cannot fail
  // this way here. This feeds the TypeScript half the record the native half makes for that status
  // (pinned by the cargo test forbidden_external_buffers_are_an_eopnotsupp_record_naming_the_call).
  const record = {
    'zerocopy-error': 1,
    code: 'EOPNOTSUPP',
    errno: constants.errno.EOPNOTSUPP,
    syscall: 'napi_create_external_buffer',
    message: 'EOPNOTSUPP: this runtime forbids external buffers, so a mapping cannot be shared with JavaScript without copying it, napi_create_external_buffer',
  };
  let closes = 0;
  const native = {
    createBuffer() {
      throw new Error(JSON.stringify(record));
    },
    close() {
      closes++;
      return false;
    },
  };
  const err = thrown(() => new MappedFile(native, 'r', 0));
  assert.is(err.code, 'ERR_EXTERNAL_BUFFERS_NOT_ALLOWED');
  assert.match(err.message, /forbids external buffers/);
  assert.is(err.cause.code, 'EOPNOTSUPP');
  assert.is(err.cause.syscall, 'napi_create_external_buffer');
  assert.is(closes, 1, 'the native mapping is closed, not leaked');

  // Any other failure to make the buffer stays the system error it is.
  record.code = 'ENOMEM';
  record.syscall = 'mmap';
  const other = thrown(() => new MappedFile(native, 'r', 0));
  assert.is(other.code, 'ENOMEM');
  assert.is(closes, 2);
});

test('zero-length files and empty windows give empty buffers', async () => {
  const empty = s.path('empty');
  writeFileSync(empty, '');
  const small = makeFile(s.path('small'), 100);
  for (const [name, map] of both) {
    for (const [path, options] of [[empty, undefined], [empty, { offset: 0, length: 0 }], [small, { offset: 100 }], [small, { offset: 5, length: 0 }]]) {
      const m = await map(path, options);
      assert.is(m.length, 0, `${name} ${path} ${JSON.stringify(options)}`);
      assert.is(m.buffer.length, 0);
      assert.equal(residency(m), { pages: 0, resident: 0 });
      m.advise('random');
      await m.sync();
      m.close();
      assert.ok(m.closed);
      assert.is(thrown(() => m.advise('random')).code, 'EBADF');
    }
  }
});

test('offsets above 4 GiB work in a sparse file', async () => {
  const path = s.path('sparse');
  const at = 5 * 2 ** 30 + 12_345;
  const fd = openSync(path, 'w');
  writeSync(fd, Buffer.from('deep marker'), 0, 11, at);
  closeSync(fd);
  for (const [, map] of both) {
    const m = await map(path, { offset: at - 2, length: 13 });
    assert.is(m.buffer.toString('latin1'), '\0\0deep marker');
    m.close();
  }
  // The whole 5 GiB file does not fit in one Buffer here: a RangeError that says what to do.
  if (statSync(path).size > bufferConstants.MAX_LENGTH) {
    const err = thrown(() => mmapSync(path));
    assert.instance(err, RangeError);
    assert.is(err.code, 'ERR_OUT_OF_RANGE');
    assert.match(err.message, /MAX_LENGTH/);
  }
});

test('residency counts pages in memory, for files and for mappings', () => {
  const path = makeFile(s.path('resident'), 64 * PAGE + 1);
  const r = residency(path);
  assert.is(r.pages, 65);
  assert.ok(r.resident >= 0 && r.resident <= 65);
  const m = mmapSync(path, { offset: 5, length: 10 * PAGE, populate: true });
  assert.equal(residency(m), { pages: 11, resident: 11 }, 'populate reads the window in');
  m.advise('pageout');
  m.close();
  const fd = openSync(path, 'r');
  assert.is(residency(fd).pages, 65);
  closeSync(fd);
  const empty = s.path('resident-empty');
  writeFileSync(empty, '');
  assert.equal(residency(empty), { pages: 0, resident: 0 });
});

test('every advice is accepted, also at mapping time and on ranges', async () => {
  const path = makeFile(s.path('advice'), 8 * PAGE);
  const data = readFileSync(path);
  const advices = ['normal', 'sequential', 'random', 'willneed', 'dontneed', 'nohugepage', 'cold', 'pageout', 'populate'];
  for (const advice of advices) {
    const m = await mmap(path, { advice, offset: 1 });
    m.advise(advice);
    m.advise(advice, { offset: 3, length: PAGE });
    m.advise(advice, { offset: m.length });
    assert.ok(m.buffer.equals(data.subarray(1)), advice);
    m.close();
  }
});

test("'dontneed' on a private mapping drops stray writes: the file's bytes show again", () => {
  const path = makeFile(s.path('dontneed'), PAGE);
  const data = readFileSync(path);
  const m = mmapSync(path);
  m.buffer[10] ^= 0xff;
  m.advise('dontneed');
  assert.ok(m.buffer.equals(data));
  m.close();
});

const good = () => makeFile(s.path('good'), 1000);

// [description, file, options, code, class]
const BAD = [
  ['file of a wrong type', {}, undefined, 'ERR_INVALID_ARG_TYPE', TypeError],
  ['file null', null, undefined, 'ERR_INVALID_ARG_TYPE', TypeError],
  ['negative fd', -1, undefined, 'ERR_OUT_OF_RANGE', RangeError],
  ['fractional fd', 1.5, undefined, 'ERR_OUT_OF_RANGE', RangeError],
  ['path with a NUL byte', 'a\0b', undefined, 'ERR_INVALID_ARG_VALUE', TypeError],
  ['options a string', good, 'r', 'ERR_INVALID_ARG_TYPE', TypeError],
  ['unknown mode', good, { mode: 'w' }, 'ERR_INVALID_ARG_VALUE', TypeError],
  ['mode not a string', good, { mode: 1 }, 'ERR_INVALID_ARG_VALUE', TypeError],
  ['negative offset', good, { offset: -1 }, 'ERR_OUT_OF_RANGE', RangeError],
  ['NaN offset', good, { offset: NaN }, 'ERR_OUT_OF_RANGE', RangeError],
  ['fractional offset', good, { offset: 0.5 }, 'ERR_OUT_OF_RANGE', RangeError],
  ['offset a string', good, { offset: '5' }, 'ERR_INVALID_ARG_TYPE', TypeError],
  ['bigint offset', good, { offset: 5n }, 'ERR_INVALID_ARG_TYPE', TypeError],
  ['offset past the end of the file', good, { offset: 1001 }, 'ERR_OUT_OF_RANGE', RangeError],
  ['length past the end of the file', good, { length: 1001 }, 'ERR_OUT_OF_RANGE', RangeError],
  ['offset + length past the end', good, { offset: 500, length: 501 }, 'ERR_OUT_OF_RANGE', RangeError],
  ['length above buffer.constants.MAX_LENGTH', good, { length: bufferConstants.MAX_LENGTH + 1 }, 'ERR_OUT_OF_RANGE', RangeError],
  ['negative length', good, { length: -1 }, 'ERR_OUT_OF_RANGE', RangeError],
  ['populate not a boolean', good, { populate: 1 }, 'ERR_INVALID_ARG_TYPE', TypeError],
  ['unknown advice', good, { advice: 'soon' }, 'ERR_INVALID_ARG_VALUE', TypeError],
];

for (const [what, file, options, code, Class] of BAD) {
  test(`mmap rejects ${what} with ${code}`, async () => {
    const f = typeof file === 'function' ? file() : file;
    const err = await rejection(() => mmap(f, options));
    assert.instance(err, Class);
    assert.is(err.code, code);
    const errSync = thrown(() => mmapSync(f, options));
    assert.instance(errSync, Class);
    assert.is(errSync.code, code);
  });
}

test('range messages name the file size', () => {
  const err = thrown(() => mmapSync(good(), { offset: 1001 }));
  assert.is(err.message, 'The value of "options.offset" is out of range. It must be <= 1000 (the file\'s size). Received 1001');
  const err2 = thrown(() => mmapSync(good(), { offset: 500, length: 501 }));
  assert.is(err2.message, 'The value of "options.length" is out of range. It must be <= 500 (the bytes from offset to the end of the file). Received 501');
});

test('system errors: ENOENT, EISDIR, ENODEV, EBADF, EACCES, with paths', async () => {
  const missing = s.path('missing');
  const e1 = await rejection(() => mmap(missing));
  assert.equal([e1.code, e1.syscall, e1.path, e1.errno], ['ENOENT', 'open', missing, -constants.errno.ENOENT]);
  const dir = s.path('a-dir');
  mkdirSync(dir);
  const e2 = thrown(() => mmapSync(dir));
  assert.equal([e2.code, e2.path], ['EISDIR', dir]);
  const e3 = thrown(() => mmapSync('/dev/null'));
  assert.is(e3.code, 'ENODEV');
  assert.match(e3.message, /only regular files/);
  const e4 = await rejection(() => mmap(2 ** 30));
  assert.is(e4.code, 'EBADF');
  const path = good();
  const fd = openSync(path, 'r');
  const e5 = thrown(() => mmapSync(fd, { mode: 'rw' }));
  closeSync(fd);
  assert.equal([e5.code, e5.syscall], ['EACCES', 'mmap']);
});

test('bad arguments to advise, sync and residency', async () => {
  const m = mmapSync(makeFile(s.path('args'), 2 * PAGE));
  const cases = [
    [() => m.advise('later'), 'ERR_INVALID_ARG_VALUE', TypeError],
    [() => m.advise(), 'ERR_INVALID_ARG_VALUE', TypeError],
    [() => m.advise('random', 'all'), 'ERR_INVALID_ARG_TYPE', TypeError],
    [() => m.advise('random', { offset: 2 * PAGE + 1 }), 'ERR_OUT_OF_RANGE', RangeError],
    [() => m.advise('random', { offset: 10, length: 2 * PAGE - 9 }), 'ERR_OUT_OF_RANGE', RangeError],
    [() => m.syncSync({ async: 'yes' }), 'ERR_INVALID_ARG_TYPE', TypeError],
    [() => m.syncSync({ range: { length: -1 } }), 'ERR_OUT_OF_RANGE', RangeError],
    [() => m.syncSync(5), 'ERR_INVALID_ARG_TYPE', TypeError],
    [() => residency({}), 'ERR_INVALID_ARG_TYPE', TypeError],
    [() => residency(-3), 'ERR_OUT_OF_RANGE', RangeError],
  ];
  for (const [fn, code, Class] of cases) {
    const err = thrown(fn);
    assert.instance(err, Class, String(fn));
    assert.is(err.code, code, String(fn));
  }
  const err = await rejection(() => m.sync({ range: { offset: 0.5 } }));
  assert.is(err.code, 'ERR_OUT_OF_RANGE');
  assert.is(thrown(() => residency(s.path('nope'))).code, 'ENOENT');
  m.close();
});

test('no fd stays open: successes, failures and bad arguments alike', async () => {
  const path = makeFile(s.path('fds'), 3 * MiB);
  const before = openFds();
  const outcomes = [];
  const settle = (p) => p.then((m) => { m.close(); return 'ok'; }, (e) => e.code);
  for (let i = 0; i < 20; i++) {
    outcomes.push(await settle(mmap(path, { offset: i, populate: i % 2 === 0 })));
    outcomes.push(await settle(mmap(path, { mode: 'rw', length: 10 })));
    outcomes.push(await settle(mmap(s.path('missing'))));
    outcomes.push(await settle(mmap(path, { offset: 4 * MiB })));
    outcomes.push(await settle(mmap(s.dir)));
    outcomes.push(await settle(mmap(path, { mode: 'x' })));
    const fh = await open(path, 'r');
    outcomes.push(await settle(mmap(fh, { mode: 'rw' })));
    outcomes.push(await settle(mmap(fh)));
    await fh.close();
    residency(path);
  }
  assert.is(openFds(), before, `outcomes: ${[...new Set(outcomes)].join(', ')}`);
  for (const expected of ['ok', 'ENOENT', 'ERR_OUT_OF_RANGE', 'EISDIR', 'ERR_INVALID_ARG_VALUE', 'EACCES']) {
    assert.ok(outcomes.includes(expected), `${expected} exercised`);
  }
});

test.run();
