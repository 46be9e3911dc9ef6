// Direct I/O on real files: where plain Node fails, round trips, alignment errors, bounce mode, streams,
// the buffered fallback (ramfs refuses O_DIRECT; also injected), page-cache residency, abort, fds.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, existsSync, openSync, readFileSync, readSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

import {
  AbortError,
  alignedBuffer,
  capabilities,
  createDirectReadStream,
  createDirectWriteStream,
  DirectFile,
  isErrnoError,
  openDirect,
  openDirectSync,
} from 'zerocopy';
import { canMount, makeFile, MiB, mountScratch, nativeBinding, openFds, rejection, residentFraction, scratch, sha256, thrown } from './helpers.mjs';

const s = scratch();
test.after(() => s.cleanup());
const native = nativeBinding();
const hash = (buf) => createHash('sha256').update(buf).digest('hex');
const misalignment = (buf, alignment) => native.addressMisalignment(buf, alignment);
const mountable = canMount();
const asRoot = mountable === true ? test : test.skip;
if (mountable !== true) console.log(`  ramfs/tmpfs tests skipped: ${mountable}`);

/** Collects a readable stream into one Buffer. */
async function collect(stream) {
  const parts = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

/** Writes `data` through a direct write stream in pieces of varying sizes. */
async function streamOut(path, data, options) {
  const sizes = [1, 4095, 7, 65536, 333, 1 << 20];
  let at = 0;
  let i = 0;
  const pieces = function* () {
    while (at < data.length) {
      const n = Math.min(sizes[i++ % sizes.length], data.length - at);
      yield data.subarray(at, at + n);
      at += n;
    }
  };
  const out = createDirectWriteStream(path, options);
  await pipeline(Readable.from(pieces()), out);
  return out;
}

test('plain Node gets EINVAL on O_DIRECT with fresh Buffers; zerocopy succeeds on every one', async () => {
  const size = 100 * 4096;
  const path = makeFile(s.path('contrast'), size);
  const content = readFileSync(path);
  const buffers = Array.from({ length: 100 }, () => Buffer.alloc(4096));

  // Plain Node: fs.readSync / fs.writeSync on an O_DIRECT fd with ordinary Buffers.
  const fd = openSync(path, constants.O_RDWR | constants.O_DIRECT);
  let nodeReadFailures = 0;
  let nodeWriteFailures = 0;
  try {
    buffers.forEach((buf, i) => {
      try {
        readSync(fd, buf, 0, buf.length, i * 4096);
      } catch (err) {
        assert.is(err.code, 'EINVAL');
        nodeReadFailures++;
      }
      // The same fresh Buffer (not a view of `content`, whose alignment depends on how it was read).
      buf.set(content.subarray(i * 4096, (i + 1) * 4096));
      try {
        writeSync(fd, buf, 0, 4096, i * 4096);
      } catch (err) {
        assert.is(err.code, 'EINVAL');
        nodeWriteFailures++;
      }
    });
  } finally {
    closeSync(fd);
  }
  assert.ok(nodeReadFailures >= 50, `plain Node failed ${nodeReadFailures}/100 reads`);
  assert.ok(nodeWriteFailures >= 50, `plain Node failed ${nodeWriteFailures}/100 writes`);

  // zerocopy with the same fresh Buffers (bounce), and with aligned ones (straight DMA).
  const file = await openDirect(path, 'r+', undefined, { unaligned: 'bounce' });
  try {
    let ok = 0;
    for (const [i, buf] of buffers.entries()) {
      buf.fill(0);
      assert.is(await file.read(buf, i * 4096), 4096);
      assert.ok(buf.equals(content.subarray(i * 4096, (i + 1) * 4096)), `block ${i}`);
      assert.is(await file.write(content.subarray(i * 4096, (i + 1) * 4096), i * 4096), 4096);
      ok++;
    }
    assert.is(ok, 100);
    let aligned = 0;
    for (let i = 0; i < 100; i++) {
      const buf = alignedBuffer(4096, file.alignment.memory);
      assert.is(misalignment(buf, file.alignment.memory), 0);
      assert.is(await file.read(buf, i * 4096, { unaligned: 'error' }), 4096);
      if (buf.equals(content.subarray(i * 4096, (i + 1) * 4096))) aligned++;
    }
    assert.is(aligned, 100);
  } finally {
    await file.close();
  }
  assert.is(sha256(path), hash(content));
});

for (const size of [0, 1, 511, 4096, 4097, MiB + 1]) {
  test(`sha256 round trip of ${size} bytes: write, read, streams, sync twins`, async () => {
    const data = randomBytes(size);
    const path = s.path(`rt-${size}`);
    const file = await openDirect(path, 'w+', 0o644, { unaligned: 'bounce' });
    try {
      assert.is(await file.write(data, 0), size);
      assert.is(await file.size(), size);
      const back = Buffer.alloc(size + 1000);
      assert.is(await file.read(back, 0), size);
      assert.is(hash(back.subarray(0, size)), hash(data));
    } finally {
      await file.close();
    }
    assert.is(sha256(path), hash(data));

    const viaStream = s.path(`rt-stream-${size}`);
    const out = await streamOut(viaStream, data);
    assert.is(out.bytesWritten, size);
    assert.is(statSync(viaStream).size, size, 'exact length after the final partial block');
    assert.is(sha256(viaStream), hash(data));
    const read = createDirectReadStream(viaStream, { highWaterMark: 64 * 1024 });
    assert.is(hash(await collect(read)), hash(data));
    assert.is(read.bytesRead, size);

    const sync = openDirectSync(s.path(`rt-sync-${size}`), 'w+', undefined, { unaligned: 'bounce' });
    try {
      assert.is(sync.writeSync(data, 0), size);
      const back = Buffer.alloc(size);
      assert.is(sync.readSync(back, 0), size);
      assert.ok(back.equals(data));
      assert.is(sync.sizeSync(), size);
    } finally {
      sync.closeSync();
    }
  });
}

test('file.alignment comes from the filesystem and matches capabilities(); mechanism is direct on disk', async () => {
  const path = makeFile(s.path('align'), 5000);
  const file = await openDirect(path);
  try {
    const a = file.alignment;
    assert.ok(Object.isFrozen(a));
    for (const v of [a.memory, a.offset, a.length]) assert.ok(v > 0 && (v & (v - 1)) === 0, `${v} is a power of two`);
    assert.is(a.length, a.offset);
    assert.is(file.mechanism, 'direct');
    assert.is(file.path, path);
    assert.ok(file.fd > 2);
    const own = { memory: a.memory, offset: a.offset, source: a.source };
    assert.equal((await capabilities(path)).filesystem.directIoAlignment, own, 'capabilities(file) asks the file');
    assert.equal((await capabilities(s.dir)).filesystem.directIoAlignment, own, 'the same filesystem');
  } finally {
    await file.close();
  }
});

// [what, buffer (given the file's alignment), position, broken rule]
const MISALIGNED = [
  ['an odd position', (a) => alignedBuffer(a.offset, a.memory), () => 1, 'offset'],
  ['a position one block and a byte in', (a) => alignedBuffer(a.offset, a.memory), (a) => a.offset + 1, 'offset'],
  ['an odd length', (a) => alignedBuffer(a.offset + 1, a.memory), () => 0, 'length'],
  ['a misaligned address', (a) => alignedBuffer(2 * a.offset, a.memory).subarray(8, 8 + a.offset), () => 0, 'memory'],
];

test('every misalignment is a RangeError naming the alignment, before any system call', async () => {
  const path = makeFile(s.path('mis'), 64 * 1024);
  const before = sha256(path);
  const file = await openDirect(path, 'r+');
  try {
    const a = file.alignment;
    for (const [what, makeBuffer, makePosition, rule] of MISALIGNED) {
      if (rule === 'memory' && a.memory <= 8) continue; // such a filesystem accepts this address
      const buffer = makeBuffer(a);
      const position = makePosition(a);
      const received = rule === 'offset' ? position : rule === 'length' ? buffer.length : misalignment(buffer, a.memory);
      const errors = [
        await rejection(() => file.read(buffer, position)),
        await rejection(() => file.write(buffer, position)),
        thrown(() => file.readSync(buffer, position)),
        thrown(() => file.writeSync(buffer, position)),
      ];
      for (const err of errors) {
        assert.instance(err, RangeError, what);
        assert.is(err.code, 'ERR_DIRECT_IO_MISALIGNED', what);
        assert.is(err.rule, rule, what);
        assert.is(err.alignment, a[rule], what);
        assert.is(err.received, received, what);
        assert.match(err.message, `multiple of ${a[rule]}`);
        assert.match(err.message, `alignment.${rule}`);
        assert.match(err.message, "unaligned: 'bounce'");
      }
    }
    // The messages, exactly.
    const err = await rejection(() => file.read(alignedBuffer(a.offset, a.memory), 3));
    assert.is(
      err.message,
      `The "position" argument must be a multiple of ${a.offset} for O_DIRECT on this file (alignment.offset). Received 3. Pass { unaligned: 'bounce' } to allow any position`,
    );
    const err2 = await rejection(() => file.write(alignedBuffer(100, a.memory), 0));
    assert.is(
      err2.message,
      `The length of "buffer" must be a multiple of ${a.offset} for O_DIRECT on this file (alignment.length). Received 100. Pass { unaligned: 'bounce' } to allow any length`,
    );
    // The same requests with bounce succeed.
    assert.is(await file.read(Buffer.alloc(100), 3, { unaligned: 'bounce' }), 100);
  } finally {
    await file.close();
  }
  assert.is(sha256(path), before, 'no misaligned write touched the file');
});

test('bad arguments: Node-style TypeError/RangeError codes before any system call', async () => {
  const path = makeFile(s.path('args'), 4096);
  const file = await openDirect(path, 'r+');
  const buf = alignedBuffer(4096);
  try {
    const cases = [
      [() => file.read('nope', 0), 'ERR_INVALID_ARG_TYPE', TypeError],
      [() => file.read(buf, -512), 'ERR_OUT_OF_RANGE', RangeError],
      [() => file.read(buf, 0.5), 'ERR_OUT_OF_RANGE', RangeError],
      [() => file.read(buf), 'ERR_INVALID_ARG_TYPE', TypeError],
      [() => file.read(buf, 0, { unaligned: 'sometimes' }), 'ERR_INVALID_ARG_VALUE', TypeError],
      [() => file.write(buf, 0, { signal: {} }), 'ERR_INVALID_ARG_TYPE', TypeError],
      [() => file.write(buf, 2 ** 53 - 1), 'ERR_OUT_OF_RANGE', RangeError],
      [() => openDirect(path, 'a'), 'ERR_INVALID_ARG_VALUE', TypeError],
      [() => openDirect(path, constants.O_WRONLY | constants.O_APPEND), 'ERR_INVALID_ARG_VALUE', TypeError],
      [() => openDirect(path, constants.O_RDONLY | constants.O_NONBLOCK), 'ERR_INVALID_ARG_VALUE', TypeError],
      [() => openDirect(path, 'q'), 'ERR_INVALID_ARG_VALUE', TypeError],
      [() => openDirect(path, {}), undefined, undefined],
      [() => openDirect(path, 'r', 0o10000), 'ERR_OUT_OF_RANGE', RangeError],
      [() => openDirect(path, 'r', undefined, { fallback: 'maybe' }), 'ERR_INVALID_ARG_VALUE', TypeError],
      [() => openDirect(3), 'ERR_INVALID_ARG_TYPE', TypeError],
      [() => openDirect('a\0b'), 'ERR_INVALID_ARG_VALUE', TypeError],
      [() => alignedBuffer(-1), 'ERR_OUT_OF_RANGE', RangeError],
      [() => alignedBuffer(10, 3), 'ERR_OUT_OF_RANGE', RangeError],
      [() => createDirectReadStream(path, { start: 10, end: 5 }), 'ERR_OUT_OF_RANGE', RangeError],
      [() => createDirectReadStream(path, { readAhead: 0 }), 'ERR_OUT_OF_RANGE', RangeError],
      [() => createDirectReadStream(path, { highWaterMark: '1m' }), 'ERR_INVALID_ARG_TYPE', TypeError],
      [() => createDirectWriteStream(s.path('never'), { flags: 'a' }), 'ERR_INVALID_ARG_VALUE', TypeError],
    ];
    for (const [run, code, Class] of cases) {
      let outcome;
      try {
        outcome = await run();
      } catch (err) {
        outcome = err;
      }
      if (code === undefined) {
        assert.instance(outcome, DirectFile, 'openDirect(path, {}) is the options form');
        await outcome.close();
        continue;
      }
      assert.instance(outcome, Class, `${run}`);
      assert.is(outcome.code, code, `${run}`);
    }
  } finally {
    await file.close();
  }
  assert.not.ok(existsSync(s.path('never')));
});

test('bounce mode: reads at odd positions and lengths into any memory match the file', async () => {
  const size = 3 * MiB + 777;
  const path = makeFile(s.path('bounce-read'), size);
  const content = readFileSync(path);
  const file = await openDirect(path, 'r', undefined, { unaligned: 'bounce' });
  try {
    for (const [skew, at, len] of [
      [0, 1, 10],
      [0, 511, 2],
      [0, 4095, 4098],
      [0, 513, MiB + 1],
      [1, 0, 4096],
      [3, 7, 2 * MiB + 5],
      [0, size - 5, 100],
      [0, size + 10, 100],
      [5, 12345, 0],
    ]) {
      const mem = Buffer.alloc(len + skew + 1, 0xee);
      const dst = mem.subarray(skew, skew + len);
      const n = await file.read(dst, at);
      const start = Math.min(at, size);
      const end = Math.min(at + len, size);
      assert.is(n, end - start, `skew ${skew} at ${at} len ${len}`);
      assert.ok(dst.subarray(0, n).equals(content.subarray(start, end)), `skew ${skew} at ${at} len ${len}`);
      assert.is(mem[skew + len], 0xee, 'nothing written past the buffer');
      assert.ok(mem.subarray(0, skew).every((b) => b === 0xee), 'nothing written before it');
      assert.is(file.readSync(Buffer.alloc(len), at), end - start);
    }
  } finally {
    await file.close();
  }
});

test('bounce mode: writes at odd positions keep their neighbours; past the end the file grows exactly', async () => {
  const size = 2 * MiB + 300;
  const path = makeFile(s.path('bounce-write'), size);
  const expected = Buffer.alloc(size + 8192);
  readFileSync(path).copy(expected);
  let length = size;
  const file = await openDirect(path, 'r+', undefined, { unaligned: 'bounce' });
  try {
    for (const [at, len, skew] of [
      [1, 10, 0],
      [4000, 200, 0],
      [513, MiB, 0],
      [77, 3 * 4096 + 5, 3],
      [size - 10, 50, 0],
      [size + 4000, 3, 1],
    ]) {
      const bytes = randomBytes(len);
      const src = Buffer.alloc(len + skew);
      bytes.copy(src, skew);
      assert.is(await file.write(src.subarray(skew), at), len);
      bytes.copy(expected, at);
      length = Math.max(length, at + len);
      assert.is(await file.size(), length, `at ${at} len ${len}`);
      assert.is(sha256(path), hash(expected.subarray(0, length)), `at ${at} len ${len}`);
    }
  } finally {
    await file.close();
  }
});

test('truncate sets an exact length; aligned writes need no bounce', async () => {
  const path = s.path('trunc');
  const file = openDirectSync(path, 'w+');
  try {
    const block = file.alignment.offset;
    const buf = alignedBuffer(2 * block, file.alignment.memory).fill(7);
    assert.is(file.writeSync(buf, block), 2 * block);
    assert.is(file.sizeSync(), 3 * block);
    await file.truncate(block + 5);
    assert.is(await file.size(), block + 5);
    file.truncateSync(0);
    assert.is(statSync(path).size, 0);
  } finally {
    file[Symbol.dispose]();
  }
  assert.is(file.fd, -1, 'Symbol.dispose closed it');
});

test('write stream: the final partial block is written aligned, then the file trimmed to its exact length', async () => {
  const data = randomBytes(3 * MiB + 123);
  const path = s.path('ws-final');
  const out = await streamOut(path, data, { highWaterMark: 256 * 1024 });
  assert.is(out.mechanism, 'direct');
  assert.is(out.bytesWritten, data.length);
  assert.ok(residentFraction(path) < 0.01, `direct writes stay out of the page cache: ${residentFraction(path)}`);
  assert.is(statSync(path).size, data.length);
  assert.is(sha256(path), hash(data));

  // Smaller than one block, and exactly one block.
  for (const n of [10, 4096]) {
    const p = s.path(`ws-${n}`);
    const d = randomBytes(n);
    await streamOut(p, d);
    assert.is(statSync(p).size, n);
    assert.is(sha256(p), hash(d));
  }

  // 'r+' with an unaligned start writes into the middle and keeps everything around it.
  const base = makeFile(s.path('ws-into'), 20_000);
  const model = readFileSync(base);
  const patch = randomBytes(9_001);
  await streamOut(base, patch, { flags: 'r+', start: 1234, highWaterMark: 4096 });
  patch.copy(model, 1234);
  assert.is(statSync(base).size, 20_000);
  assert.is(sha256(base), hash(model));
});

test('read stream: start/end at any alignment, like fs.createReadStream; events and fields', async () => {
  const size = 2 * MiB + 99;
  const path = makeFile(s.path('rs'), size);
  const content = readFileSync(path);
  for (const [start, end, readAhead] of [
    [undefined, undefined, undefined],
    [1, 1, 1],
    [511, 4096, 2],
    [4097, size - 2, 1],
    [size - 1, undefined, 8],
    [size + 5, undefined, undefined],
    [0, size + 100, 3],
  ]) {
    const stream = createDirectReadStream(path, { start, end, readAhead, highWaterMark: 100_000 });
    let opened;
    stream.on('open', (fd) => (opened = fd));
    const got = await collect(stream);
    const from = Math.min(start ?? 0, size);
    const to = Math.min(end === undefined ? size : end + 1, size);
    assert.ok(got.equals(content.subarray(from, to)), `start ${start} end ${end}`);
    assert.is(stream.bytesRead, to - from);
    assert.ok(opened > 2);
    assert.is(stream.mechanism, 'direct');
    assert.not.ok(stream.pending);
  }
  const missing = createDirectReadStream(s.path('missing'));
  const err = await rejection(() => collect(missing));
  assert.is(err.code, 'ENOENT');
  assert.is(err.path, s.path('missing'));
});

test('a direct read leaves the page cache alone; a plain read fills it', async () => {
  const data = randomBytes(32 * MiB);
  const path = s.path('cold');
  await streamOut(path, data); // written with O_DIRECT: never in the cache
  assert.ok(residentFraction(path) < 0.01, `cold before: ${residentFraction(path)}`);
  const file = await openDirect(path);
  try {
    const buf = alignedBuffer(data.length, file.alignment.memory);
    assert.is(await file.read(buf, 0), data.length);
    assert.is(hash(buf), hash(data));
  } finally {
    await file.close();
  }
  assert.is(hash(await collect(createDirectReadStream(path))), hash(data));
  const afterDirect = residentFraction(path);
  assert.ok(afterDirect < 0.01, `${(afterDirect * 100).toFixed(2)}% resident after direct reads`);
  readFileSync(path);
  assert.ok(residentFraction(path) > 0.9, 'fs.readFileSync caches the whole file');
});

test('the fallback, injected: ERR_DIRECT_IO_UNSUPPORTED, or buffered I/O that leaves the cache alone', async () => {
  process.env.ZEROCOPY_DIRECT_IO = 'unsupported';
  try {
    const path = s.path('sim');
    for (const open of [() => openDirect(path, 'w+'), async () => openDirectSync(path, 'w+')]) {
      const err = await rejection(open);
      assert.ok(isErrnoError(err));
      assert.is(err.code, 'ERR_DIRECT_IO_UNSUPPORTED');
      assert.is(err.errno, -osConstants.errno.EINVAL);
      assert.is(err.syscall, 'open');
      assert.is(err.path, path);
      assert.match(err.message, /^ERR_DIRECT_IO_UNSUPPORTED: this filesystem does not support O_DIRECT \(pass fallback 'buffered'/);
      assert.not.ok(existsSync(path), 'nothing created');
    }
    const data = randomBytes(24 * MiB + 5);
    const file = await openDirect(path, 'w+', undefined, { fallback: 'buffered', unaligned: 'bounce' });
    try {
      assert.is(file.mechanism, 'buffered');
      assert.is(await file.write(data, 0), data.length);
      assert.ok(residentFraction(path) < 0.05, `written chunks dropped: ${residentFraction(path)}`);
      const back = Buffer.alloc(data.length);
      assert.is(await file.read(back, 0), data.length);
      assert.is(hash(back), hash(data));
      assert.ok(residentFraction(path) < 0.05, `read chunks dropped: ${residentFraction(path)}`);
      // The alignment rules hold under the fallback too, so code behaves the same everywhere.
      const err = await rejection(() => file.read(Buffer.alloc(10), 1, { unaligned: 'error' }));
      assert.is(err.code, 'ERR_DIRECT_IO_MISALIGNED');
    } finally {
      await file.close();
    }
    const out = await streamOut(s.path('sim-stream'), data.subarray(0, 5000), { fallback: 'buffered' });
    assert.is(out.mechanism, 'buffered');
    assert.is(sha256(s.path('sim-stream')), hash(data.subarray(0, 5000)));
    const err = await rejection(() => collect(createDirectReadStream(s.path('sim-stream'))));
    assert.is(err.code, 'ERR_DIRECT_IO_UNSUPPORTED');
  } finally {
    delete process.env.ZEROCOPY_DIRECT_IO;
  }
  const file = await openDirect(s.path('sim'), 'r');
  assert.is(file.mechanism, 'direct', 'back to normal without the variable');
  await file.close();
});

asRoot('ramfs refuses O_DIRECT: a clear error, nothing created, or the buffered fallback', async () => {
  const ram = mountScratch('ramfs');
  try {
    const path = makeFile(ram.path('f'), 10_000);
    const err = await rejection(() => openDirect(path));
    assert.is(err.code, 'ERR_DIRECT_IO_UNSUPPORTED');
    assert.is(err.errno, -osConstants.errno.EINVAL);
    assert.is(err.path, path);
    for (const flags of ['w', 'wx', 'w+']) {
      const err = await rejection(() => openDirect(ram.path('new'), flags));
      assert.is(err.code, 'ERR_DIRECT_IO_UNSUPPORTED', flags);
      assert.not.ok(existsSync(ram.path('new')), `${flags} created nothing`);
    }
    const caps = await capabilities(ram.dir);
    assert.is(caps.filesystem.type, 'ramfs');
    assert.is(caps.filesystem.directIo, false);

    const file = await openDirect(path, 'r+', undefined, { fallback: 'buffered', unaligned: 'bounce' });
    try {
      assert.is(file.mechanism, 'buffered');
      const back = Buffer.alloc(10_000);
      assert.is(await file.read(back, 0), 10_000);
      assert.ok(back.equals(readFileSync(path)));
      assert.is(await file.write(Buffer.from('hello'), 9_998), 5);
      assert.is(await file.size(), 10_003);
    } finally {
      await file.close();
    }
    const data = randomBytes(MiB + 17);
    const out = await streamOut(ram.path('stream'), data, { fallback: 'buffered' });
    assert.is(out.mechanism, 'buffered');
    assert.is(sha256(ram.path('stream')), hash(data));
    const read = createDirectReadStream(ram.path('stream'), { fallback: 'buffered', start: 3 });
    assert.is(hash(await collect(read)), hash(data.subarray(3)));
    assert.is(read.mechanism, 'buffered');
  } finally {
    ram.cleanup();
  }
});

asRoot('a full filesystem rejects with ENOSPC and reports the bytes that did reach the file', async () => {
  const small = mountScratch('tmpfs', 'size=1m');
  try {
    const path = small.path('f');
    const file = await openDirect(path, 'w+');
    try {
      const data = alignedBuffer(2 * MiB, file.alignment.memory).fill(9);
      const err = await rejection(() => file.write(data, 0));
      assert.is(err.code, 'ENOSPC');
      assert.ok(err.bytesTransferred > 0 && err.bytesTransferred <= MiB, `${err.bytesTransferred}`);
      assert.is(statSync(path).size, err.bytesTransferred);
    } finally {
      await file.close();
    }
    const err = await rejection(() => streamOut(small.path('g'), randomBytes(2 * MiB)));
    assert.is(err.code, 'ENOSPC');
    assert.is(typeof err.bytesTransferred, 'number');
  } finally {
    small.cleanup();
  }
});

test('abort: reads and writes stop between chunks with AbortError and bytesTransferred', async () => {
  const size = 128 * MiB;
  const data = randomBytes(size);
  const path = s.path('abort');
  await streamOut(path, data);
  const file = await openDirect(path, 'r+');
  try {
    const buf = alignedBuffer(size, file.alignment.memory);
    const ac = new AbortController();
    const reason = new Error('enough');
    setImmediate(() => ac.abort(reason));
    const err = await rejection(() => file.read(buf, 0, { signal: ac.signal }));
    assert.instance(err, AbortError);
    assert.is(err.code, 'ABORT_ERR');
    assert.is(err.cause, reason);
    assert.ok(err.bytesTransferred > 0 && err.bytesTransferred < size, `${err.bytesTransferred}`);
    assert.is(hash(buf.subarray(0, err.bytesTransferred)), hash(data.subarray(0, err.bytesTransferred)));

    const ac2 = new AbortController();
    const zeros = alignedBuffer(size, file.alignment.memory);
    setImmediate(() => ac2.abort());
    const err2 = await rejection(() => file.write(zeros, 0, { signal: ac2.signal }));
    assert.instance(err2, AbortError);
    assert.ok(err2.bytesTransferred > 0 && err2.bytesTransferred < size, `${err2.bytesTransferred}`);
    const now = readFileSync(path);
    assert.ok(now.subarray(0, err2.bytesTransferred).every((b) => b === 0), 'the written part is zeros');
    assert.ok(now.subarray(err2.bytesTransferred).equals(data.subarray(err2.bytesTransferred)), 'the rest untouched');

    const err3 = await rejection(() => file.read(buf, 0, { signal: AbortSignal.abort() }));
    assert.instance(err3, AbortError);
    assert.is(err3.bytesTransferred, 0);
  } finally {
    await file.close();
  }

  const ac = new AbortController();
  const stream = createDirectReadStream(path, { signal: ac.signal });
  let seen = 0;
  const err = await rejection(async () => {
    for await (const chunk of stream) {
      seen += chunk.length;
      if (seen >= 4 * MiB) ac.abort();
    }
  });
  assert.is(err.name, 'AbortError');
  assert.ok(stream.destroyed);
  assert.ok(seen >= 4 * MiB && seen < size);
  if (!stream.closed) await once(stream, 'close');
  assert.is(stream.fd, -1, "'close' comes once the descriptor is closed");
});

test('close: idempotent; later calls fail with EBADF; a read in flight finishes first', async () => {
  const path = makeFile(s.path('close'), 8 * MiB);
  const content = readFileSync(path);
  const before = openFds();
  const file = await openDirect(path);
  const buf = alignedBuffer(8 * MiB, file.alignment.memory);
  const pending = file.read(buf, 0);
  await file.close();
  assert.is(file.fd, -1);
  assert.is(await pending, 8 * MiB, 'the running read completes');
  assert.ok(buf.equals(content));
  await file.close();
  file.closeSync();
  const err = await rejection(() => file.read(buf, 0));
  assert.is(err.code, 'EBADF');
  assert.is(err.syscall, 'read');
  assert.is(err.bytesTransferred, 0);
  assert.is(thrown(() => file.sizeSync()).code, 'EBADF');
  assert.is(openFds(), before, 'the descriptor closed once the read ended');

  const f2 = await openDirect(path);
  await f2[Symbol.asyncDispose]();
  assert.is(f2.fd, -1, 'Symbol.asyncDispose closes');
});

test('a DirectFile dropped without close() closes its descriptor when collected', () => {
  const path = makeFile(s.path('gc'), 4096);
  const script = `
    const { openDirectSync } = require(${JSON.stringify(createRequire(import.meta.url).resolve('zerocopy'))});
    const { readdirSync } = require('node:fs');
    const fds = () => readdirSync('/proc/self/fd').length;
    const use = () => openDirectSync(${JSON.stringify(path)}).readSync(Buffer.alloc(10), 1, { unaligned: 'bounce' });
    // napi finalizers run after a collection, from the event loop.
    const collect = async () => {
      for (let i = 0; i < 20; i++) {
        globalThis.gc();
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    (async () => {
      use(); // whatever is set up lazily
      await collect();
      const before = fds();
      for (let i = 0; i < 200; i++) use();
      const open = fds() - before;
      await collect();
      const result = JSON.stringify({ open, after: fds() - before });
      process.stdout.write(result); // process.stdout opens a descriptor of its own when first used
    })();`;
  const { open, after } = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' }));
  assert.ok(open >= 100, `${open} files were open before collection`);
  assert.is(after, 0, 'all closed by their finalizers');
});

test('alignedBuffer: aligned, zero-filled, pooled when small, its own memory when large', () => {
  for (const [size, alignment] of [
    [0, 512],
    [1, 512],
    [4096, undefined],
    [100_000, 4096],
    [MiB, 512],
    [3 * MiB + 1, 65536],
    [10, 1],
  ]) {
    const buf = alignedBuffer(size, alignment);
    assert.ok(Buffer.isBuffer(buf));
    assert.is(buf.length, size);
    if (size > 0) assert.is(misalignment(buf, alignment ?? 4096), 0, `${size}/${alignment}`);
    assert.ok(buf.every((b) => b === 0), 'zero-filled');
  }
  const a = alignedBuffer(1000, 512);
  const b = alignedBuffer(1000, 512);
  assert.is(a.buffer, b.buffer, 'small buffers share a slab');
  assert.ok(a.byteOffset + a.length <= b.byteOffset || b.byteOffset + b.length <= a.byteOffset, 'without overlapping');
  a.fill(1);
  assert.ok(b.every((x) => x === 0));
  assert.is.not(alignedBuffer(MiB).buffer, alignedBuffer(MiB).buffer, 'large buffers have their own memory');

  // From a huge page up: huge-page aligned and, once touched, backed by transparent huge pages
  // (measured in a fresh process, where nothing else frees huge pages meanwhile).
  const huge = native.hugePageSize();
  if (huge > 0) {
    const big = alignedBuffer(4 * huge + 5);
    assert.is(misalignment(big, huge), 0);
    const script = `
      const { alignedBuffer } = require(${JSON.stringify(createRequire(import.meta.url).resolve('zerocopy'))});
      const { readFileSync } = require('node:fs');
      const anonHuge = () => Number(/AnonHugePages:\\s+(\\d+)/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))[1]);
      const before = anonHuge();
      const buf = alignedBuffer(${4 * huge + 5});
      buf.fill(7);
      process.stdout.write(String(anonHuge() - before));`;
    const gained = Number(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
    assert.ok(gained >= (4 * huge) / 1024, `${gained} kB more in huge pages`);
  }
});

test('no fd leaks: successes, failures, aborts and streams alike', async () => {
  const path = makeFile(s.path('leak'), 4 * MiB);
  await openDirect(path).then((f) => f.close()); // warm up lazily opened things
  const before = openFds();
  const settle = (p) => p.then(() => 'ok', (e) => e.code ?? e.name);
  const outcomes = [];
  for (let i = 0; i < 5; i++) {
    const f = await openDirect(path, 'r+', undefined, { unaligned: 'bounce' });
    outcomes.push(await settle(f.read(Buffer.alloc(100), 3)));
    outcomes.push(await settle(f.read(Buffer.alloc(100), 3, { unaligned: 'error' })));
    outcomes.push(await settle(f.read(alignedBuffer(4 * MiB), 0, { signal: AbortSignal.abort() })));
    await f.close();
    outcomes.push(await settle(f.read(Buffer.alloc(100), 3)));
    outcomes.push(await settle(openDirect(s.path('missing'))));
    outcomes.push(await settle(openDirect(s.dir)));
    outcomes.push(await settle(collect(createDirectReadStream(path, { start: 5 }))));
    const stream = createDirectReadStream(path, { highWaterMark: 4096 });
    stream.once('data', () => stream.destroy());
    outcomes.push(await settle(collect(stream)));
    outcomes.push(await settle(streamOut(s.path('leak-out'), randomBytes(10_000))));
    openDirectSync(path).closeSync();
  }
  assert.is(openFds(), before, `outcomes: ${[...new Set(outcomes)].join(', ')}`);
  for (const expected of ['ok', 'ERR_DIRECT_IO_MISALIGNED', 'ABORT_ERR', 'EBADF', 'ENOENT', 'EISDIR', 'ERR_STREAM_PREMATURE_CLOSE']) {
    assert.ok(outcomes.includes(expected), `${expected} exercised (${[...new Set(outcomes)].join(', ')})`);
  }
});

test.run();
