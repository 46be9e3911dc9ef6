// capabilities(): what the kernel and a path's filesystem support, from real probes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { release } from 'node:os';

import { capabilities, capabilitiesSync } from 'zerocopy';
import { scratch, rejection } from './helpers.mjs';

const s = scratch();
test.after(() => s.cleanup());

test('kernel capabilities', async () => {
  const caps = await capabilities();
  assert.is(caps.platform, 'linux');
  assert.is(caps.kernel, release());
  assert.is(caps.pageSize, 4096);
  for (const key of ['copyFileRange', 'sendfile', 'splice', 'tee', 'vmsplice']) assert.is(caps[key], true, key);
  assert.is(caps.pipeMaxSize, Number(readFileSync('/proc/sys/fs/pipe-max-size', 'utf8')));
  assert.is(caps.filesystem, undefined);
  assert.equal(capabilitiesSync(), caps);
});

test('filesystem capabilities leave nothing behind', async () => {
  const caps = await capabilities(s.dir);
  const fs = caps.filesystem;
  assert.ok(fs);
  assert.is(fs.path, s.dir);
  assert.is(fs.copyFileRange, true);
  assert.is(readdirSync(s.dir).length, 0);
  if (fs.type === 'ext4') {
    assert.is(fs.reflink, false);
    assert.is(fs.directIo, true);
    assert.ok(fs.directIoAlignment.offset >= 512 && fs.directIoAlignment.memory >= 1);
    assert.is(fs.directIoAlignment.source, 'statx');
  }
  if (existsSync('/dev/shm')) assert.is((await capabilities('/dev/shm')).filesystem.type, 'tmpfs');
  assert.is(capabilitiesSync(new URL(`file://${s.dir}`)).filesystem.path, s.dir);
});

test('a missing path rejects with ENOENT', async () => {
  const err = await rejection(() => capabilities(s.path('missing')));
  assert.is(err.code, 'ENOENT');
  assert.is(err.path, s.path('missing'));
  const err2 = await rejection(() => capabilities(42.5));
  assert.is(err2.code, 'ERR_OUT_OF_RANGE');
});

test.run();
