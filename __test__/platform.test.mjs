// What every prebuilt binary must do on its own platform, in one short file: the loader picked this
// platform's binary, and each mechanism moves real bytes — copy_file_range, sendfile over loopback, a
// splice relay between loopback sockets, mmap surviving a truncation, O_DIRECT. It runs in the normal
// suite and, with mmap-safety and sys, on every cross-built platform (scripts/platforms.mjs): under
// qemu-user for arm64, in a musl root for musl, where the whole suite would take too long.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { readFileSync, truncateSync } from 'node:fs';
import { basename } from 'node:path';

import { alignedBuffer, capabilities, copyFile, mmap, openDirect, pipe, sendFile } from 'zerocopy';
import { MiB, connection, makeFile, receive, scratch, sha256, thrown } from './helpers.mjs';

const s = scratch();
test.after(() => s.cleanup());
const hash = (buf) => createHash('sha256').update(buf).digest('hex');

/** Files this process has mapped (any runtime on Linux: no process.report needed). */
const mappedFiles = () => [...new Set(readFileSync('/proc/self/maps', 'utf8').split('\n').map((l) => l.split(/\s+/)[5]).filter(Boolean))];

test('the binary loaded is the one built for this platform', async () => {
  const mapped = mappedFiles();
  const libc = mapped.some((f) => /\/(ld-musl-|libc\.musl-)/.test(f)) ? 'musl' : 'gnu';
  const loaded = mapped.filter((f) => /zerocopy[.-].*\.node$/.test(f));
  assert.equal(loaded.map((f) => basename(f)), [`zerocopy.${process.platform}-${process.arch}-${libc}.node`], loaded.join(', '));
  const caps = await capabilities(s.dir);
  assert.equal(
    [caps.arch, caps.copyFileRange, caps.sendfile, caps.splice, caps.tee, caps.vmsplice],
    [process.arch, true, true, true, true, true],
  );
});

test('copyFile: copy_file_range, identical content', async () => {
  const src = makeFile(s.path('copy-src'), 8 * MiB + 3);
  const res = await copyFile(src, s.path('copy-dst'), { mechanism: 'copy_file_range' });
  assert.equal(res, { bytes: 8 * MiB + 3, mechanism: 'copy_file_range' });
  assert.is(sha256(s.path('copy-dst')), sha256(src));
});

test('sendFile: sendfile into a loopback TCP socket, identical content', async () => {
  const file = makeFile(s.path('send'), 8 * MiB + 5);
  const { ours, client } = await connection();
  const got = receive(client);
  const res = await sendFile(ours, file);
  ours.end();
  assert.equal(res, { bytes: 8 * MiB + 5, mechanism: 'sendfile' });
  assert.is(hash(await got), sha256(file));
});

test('pipe: a splice relay between loopback sockets, identical content', async () => {
  const data = readFileSync(makeFile(s.path('relay'), 8 * MiB + 7));
  const src = await connection('tcp', undefined, { allowHalfOpen: true });
  const dst = await connection('tcp', undefined, { allowHalfOpen: true });
  const got = receive(dst.client);
  const relaying = pipe(src.ours, dst.ours);
  src.client.end(data);
  assert.equal(await relaying, { bytes: data.length, mechanism: 'splice' });
  assert.is(hash(await got), hash(data));
  src.client.destroy();
  dst.client.destroy();
});

test('mmap: the mapping survives a truncation — zeros past the new end, the bytes before intact', async () => {
  const size = 4 * MiB;
  const newSize = MiB + 100;
  const path = makeFile(s.path('map'), size);
  const data = readFileSync(path);
  const m = await mmap(path);
  assert.is(hash(m.buffer), hash(data));
  truncateSync(path, newSize);
  // Without the SIGBUS guard this read kills the process.
  assert.ok(m.buffer.subarray(newSize).equals(Buffer.alloc(size - newSize)), 'zeros past the new end');
  assert.ok(m.buffer.subarray(0, newSize).equals(data.subarray(0, newSize)), 'bytes before the new end intact');
  assert.ok(m.stale);
  assert.is(thrown(() => m.close()).code, 'ERR_MAPPING_TRUNCATED');
  assert.is(m.buffer.length, 0, 'closed: the buffer is detached');
});

test('openDirect: O_DIRECT writes and reads back aligned blocks', async () => {
  const file = await openDirect(s.path('direct'), 'w+');
  let out;
  try {
    assert.is(file.mechanism, 'direct');
    const block = 64 * 1024;
    out = alignedBuffer(4 * block, file.alignment.memory);
    for (let i = 0; i < out.length; i++) out[i] = (i * 31 + 7) & 0xff;
    assert.is(await file.write(out, 0), out.length);
    const back = alignedBuffer(4 * block, file.alignment.memory);
    assert.is(await file.read(back, 0), back.length);
    assert.ok(back.equals(out));
  } finally {
    await file.close();
  }
  assert.ok(readFileSync(s.path('direct')).equals(out), 'the file holds what was written');
});

test.run();
