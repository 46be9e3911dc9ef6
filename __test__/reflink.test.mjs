// Reflink on a real reflink filesystem: a loop-mounted XFS image (mkfs.xfs -m reflink=1).
// Needs root and xfsprogs; elsewhere the tests are reported as skipped, not passed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { statfsSync, mkdirSync, openSync, closeSync, writeSync } from 'node:fs';

import { copyFile, copyFileSync, capabilities, sys } from 'zerocopy';
import { scratch, makeFile, sha256, sha256Range, MiB, rejection, canMountXfs } from './helpers.mjs';

const available = canMountXfs();
const s = scratch();
const mnt = s.path('mnt');
let mounted = false;

test.before(() => {
  if (available !== true) return;
  const image = s.path('xfs.img');
  execFileSync('truncate', ['-s', '320M', image]);
  execFileSync('mkfs.xfs', ['-q', '-m', 'reflink=1', image]);
  mkdirSync(mnt);
  execFileSync('mount', ['-o', 'loop', image, mnt]);
  mounted = true;
});

test.after(() => {
  if (mounted) execFileSync('umount', [mnt]);
  s.cleanup();
});

const xfs = available === true ? test : test.skip;
if (available !== true) console.log(`  reflink tests skipped: ${available}`);

/** Bytes used on the mounted filesystem. */
function used() {
  const st = statfsSync(mnt);
  return (st.blocks - st.bfree) * st.bsize;
}

xfs('capabilities report reflink on XFS', async () => {
  const caps = await capabilities(mnt);
  assert.is(caps.filesystem.type, 'xfs');
  assert.is(caps.filesystem.reflink, true);
});

xfs('copyFile shares blocks: mechanism reflink, equal content, no new space used', async () => {
  const src = makeFile(`${mnt}/src`, 64 * MiB + 123);
  execFileSync('sync');
  const before = used();
  const res = await copyFile(src, `${mnt}/clone`);
  assert.equal(res, { bytes: 64 * MiB + 123, mechanism: 'reflink' });
  assert.is(sha256(`${mnt}/clone`), sha256(src));
  execFileSync('sync');
  assert.ok(used() - before < 4 * MiB, `reflink used ${used() - before} bytes`);

  const always = copyFileSync(src, `${mnt}/clone2`, { reflink: 'always' });
  assert.is(always.mechanism, 'reflink');
  assert.is(sha256(`${mnt}/clone2`), sha256(src));

  // Writing to the clone leaves the source alone (copy on write).
  const srcHash = sha256(src);
  const fd = openSync(`${mnt}/clone`, 'r+');
  writeSync(fd, 'changed', 0);
  closeSync(fd);
  assert.is(sha256(src), srcHash);
  assert.is.not(sha256(`${mnt}/clone`), srcHash);
});

xfs('reflink never writes a real copy that takes space', async () => {
  const src = `${mnt}/src`;
  execFileSync('sync');
  const before = used();
  const res = await copyFile(src, `${mnt}/real`, { reflink: 'never' });
  assert.is(res.mechanism, 'sendfile');
  execFileSync('sync');
  assert.ok(used() - before >= 64 * MiB, `real copy used ${used() - before} bytes`);
  assert.is(sha256(`${mnt}/real`), sha256(src));
});

xfs('block-aligned ranges reflink; unaligned ones fall back (auto) or fail (always)', async () => {
  const src = `${mnt}/src`;
  const aligned = await copyFile(src, `${mnt}/range`, { offset: 4096, length: 8 * 4096, dstOffset: 0 });
  assert.equal(aligned, { bytes: 8 * 4096, mechanism: 'reflink' });
  assert.is(sha256(`${mnt}/range`), sha256Range(src, 4096, 9 * 4096));

  const unaligned = await copyFile(src, `${mnt}/range2`, { offset: 100, length: 10_000 });
  assert.is(unaligned.mechanism, 'copy_file_range');
  assert.is(sha256(`${mnt}/range2`), sha256Range(src, 100, 10_100));

  const err = await rejection(() => copyFile(src, `${mnt}/range3`, { offset: 100, length: 10_000, reflink: 'always' }));
  assert.is(err.code, 'EINVAL');
  assert.is(err.syscall, 'ioctl_ficlonerange');
  assert.is(err.bytesTransferred, 0);
});

xfs('sys.reflink clones whole files and ranges', async () => {
  const src = `${mnt}/src`;
  const fin = openSync(src, 'r');
  const fout = openSync(`${mnt}/sys-clone`, 'w');
  try {
    await sys.reflink(fin, fout);
    assert.is(sha256(`${mnt}/sys-clone`), sha256(src));
    sys.reflinkSync(fin, fout, { srcOffset: 0, length: 4096, dstOffset: 64 * MiB + 4096 * 100 });
    assert.is(sha256Range(`${mnt}/sys-clone`, 64 * MiB + 4096 * 100, 64 * MiB + 4096 * 101), sha256Range(src, 0, 4096));
  } finally {
    closeSync(fin);
    closeSync(fout);
  }
});

xfs('from the main disk to XFS: different filesystems, no reflink, still a correct copy', async () => {
  const src = makeFile(s.path('disk-src'), 2 * MiB);
  const res = await copyFile(src, `${mnt}/from-disk`);
  assert.ok(['copy_file_range', 'sendfile'].includes(res.mechanism), res.mechanism);
  assert.is(sha256(`${mnt}/from-disk`), sha256(src));
});

test.run();
