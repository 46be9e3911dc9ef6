// No operation leaves an fd open: successes, failures, aborts and bad arguments alike.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { open } from 'node:fs/promises';
import { openSync, closeSync, mkdirSync } from 'node:fs';

import { copyFile, copyFileSync, sys, capabilities } from 'zerocopy';
import { scratch, makeFile, settledFds, MiB } from './helpers.mjs';

const s = scratch();
test.after(() => s.cleanup());

test('fd count is unchanged after a batch of operations, including failing ones', async () => {
  const src = makeFile(s.path('src'), 3 * MiB);
  const big = makeFile(s.path('big'), 70 * MiB);
  mkdirSync(s.path('dir'));
  await capabilities(s.dir); // the first probe caches; its scratch files are closed too
  const before = await settledFds();
  const settle = (p) => p.then(() => 'ok', (e) => e.code ?? e.name);
  const outcomes = [];
  for (let i = 0; i < 5; i++) {
    outcomes.push(await settle(copyFile(src, s.path(`d${i}`))));
    outcomes.push(await settle(copyFile(src, s.path(`d${i}`), { reflink: 'never', onProgress() {} })));
    outcomes.push(await settle(copyFile(s.path('missing'), s.path('x'))));
    outcomes.push(await settle(copyFile(s.path('dir'), s.path('x'))));
    outcomes.push(await settle(copyFile(src, s.path('dir'))));
    outcomes.push(await settle(copyFile(src, s.path(`d${i}`), { overwrite: false })));
    outcomes.push(await settle(copyFile(src, s.path('x'), { offset: -1 })));
    outcomes.push(await settle(copyFile(src, src)));
    outcomes.push(await settle(copyFile(src, s.path('x'), { reflink: 'always' })));
    const ac = new AbortController();
    outcomes.push(await settle(copyFile(big, s.path('ab'), { signal: ac.signal, onProgress: () => ac.abort() })));
    outcomes.push(await settle(copyFile(src, s.path('cb'), { onProgress: () => { throw new Error('x'); } })));
    try { copyFileSync(s.path('missing'), s.path('x')); } catch { outcomes.push('sync-fail'); }
    const fh = await open(src, 'r');
    const out = openSync(s.path('fdout'), 'w');
    outcomes.push(await settle(copyFile(fh, out)));
    outcomes.push(await settle(sys.copyFileRange(fh.fd, out, { length: 10 })));
    outcomes.push(await settle(sys.sendfile(fh.fd, out, { length: 10 })));
    outcomes.push(await settle(sys.reflink(fh.fd, out)));
    await fh.close();
    closeSync(out);
  }
  assert.is(await settledFds(), before, `outcomes: ${[...new Set(outcomes)].join(', ')}`);
  for (const expected of ['ok', 'ENOENT', 'EISDIR', 'EEXIST', 'ERR_OUT_OF_RANGE', 'EINVAL', 'ABORT_ERR', 'EBADF']) {
    assert.ok(outcomes.includes(expected), `${expected} exercised`);
  }
});

test.run();
