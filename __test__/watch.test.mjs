// The file-change watches (crates/zerocopy/src/node/watch.rs) through js/native.ts's wrapped binding:
// a change is flagged by the time the writer's system call returns (same thread), by the time a
// child process that wrote has been waited for, and by the time a message sent after the write is
// received on another thread; each worker thread has a watcher of its own.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, mkdirSync, readdirSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { build } from 'esbuild';

import { scratch } from './helpers.mjs';

const s = scratch();
test.after(() => s.cleanup());

// js/native.ts bundled as dist/ bundles it, loading the binary built into native/ by path.
const nativeDir = fileURLToPath(new URL('../native/', import.meta.url));
process.env.ZEROCOPY_NATIVE_LIBRARY_PATH = join(nativeDir, readdirSync(nativeDir).find((f) => f.endsWith('.node')));
const bundle = s.path('native.cjs');
await build({
  entryPoints: [fileURLToPath(new URL('../js/native.ts', import.meta.url))],
  bundle: true,
  outfile: bundle,
  format: 'cjs',
  platform: 'node',
  define: { ZEROCOPY_VERSION: '"test"', ZEROCOPY_TARGETS: '[]' },
  external: ['#native'],
  logLevel: 'warning',
});
const { native } = createRequire(import.meta.url)(bundle);

const onLinux = process.platform === 'linux';

test('a write on this thread is flagged when writeFileSync returns; events name the watch', () => {
  if (!onLinux) return;
  const file = s.path('a.txt');
  const dir = s.path('d');
  writeFileSync(file, 'one');
  mkdirSync(dir);
  assert.is(native.watchStart(), true);
  assert.is(native.watchStart(), true, 'idempotent');
  const fileWd = native.watchAdd(file, false);
  const dirWd = native.watchAdd(dir, true);
  assert.ok(fileWd >= 0 && dirWd >= 0 && fileWd !== dirWd, `${fileWd} ${dirWd}`);
  native.watchEvents();
  assert.is(native.watchPending(), false);

  writeFileSync(file, 'two');
  assert.is(native.watchPending(), true);
  let events = native.watchEvents();
  assert.ok(events.some((e) => e.wd === fileWd && e.mask & native.IN_MODIFY && e.name === ''), JSON.stringify(events));
  assert.is(native.watchPending(), false, 'watchEvents clears the flag');
  assert.equal(native.watchEvents(), []);

  writeFileSync(join(dir, 'new'), 'x');
  assert.is(native.watchPending(), true);
  events = native.watchEvents();
  assert.ok(events.some((e) => e.wd === dirWd && e.mask & native.IN_CREATE && e.name === 'new'), JSON.stringify(events));

  renameSync(join(dir, 'new'), join(dir, 'renamed'));
  assert.is(native.watchPending(), true);
  events = native.watchEvents();
  assert.ok(events.some((e) => e.wd === dirWd && e.mask & native.IN_MOVED_FROM && e.name === 'new'));
  assert.ok(events.some((e) => e.wd === dirWd && e.mask & native.IN_MOVED_TO && e.name === 'renamed'));

  native.watchRemove(fileWd);
  native.watchRemove(fileWd); // already gone: ignored
  assert.ok(native.watchEvents().some((e) => e.wd === fileWd && e.mask & native.IN_IGNORED));
  writeFileSync(file, 'three');
  assert.is(native.watchPending(), false, 'a removed watch raises nothing');
  native.watchRemove(dirWd);
  native.watchEvents();
});

test('a write by a child process is flagged when spawnSync returns', () => {
  if (!onLinux) return;
  const file = s.path('child.txt');
  writeFileSync(file, '');
  assert.is(native.watchStart(), true);
  const wd = native.watchAdd(file, false);
  native.watchEvents();
  for (let round = 0; round < 3; round++) {
    assert.is(native.watchPending(), false);
    const r = spawnSync(process.execPath, ['-e', `require('fs').appendFileSync(${JSON.stringify(file)}, 'x')`]);
    assert.is(r.status, 0, String(r.stderr));
    assert.is(native.watchPending(), true, `round ${round}`);
    assert.ok(native.watchEvents().some((e) => e.wd === wd && e.mask & native.IN_MODIFY));
  }
  native.watchRemove(wd);
  native.watchEvents();
});

test('bad paths give -errno, not an exception', () => {
  if (!onLinux) return;
  assert.is(native.watchStart(), true);
  assert.is(native.watchAdd(s.path('missing'), false), -2);
  assert.is(native.watchAdd(s.path('child.txt'), true), -20, 'ENOTDIR');
});

const workerCode = `
const { parentPort, workerData } = require('node:worker_threads');
const { appendFileSync } = require('node:fs');
const { native } = require(workerData.bundle);
const before = native.watchAdd(workerData.shared, false);
const started = native.watchStart();
const wd = native.watchAdd(workerData.shared, false);
native.watchEvents();
parentPort.postMessage({ before, started, wd });
parentPort.on('message', (msg) => {
  if (msg === 'check') {
    // The main thread wrote, then posted this message: the flag was raised before it arrived.
    const pending = native.watchPending();
    parentPort.postMessage({ pending, events: native.watchEvents() });
  } else if (msg === 'write') {
    appendFileSync(workerData.own, 'w');
    parentPort.postMessage({ pending: native.watchPending() });
  } else {
    parentPort.close();
  }
});
`;

test('a worker has its own watcher, flagged before a message sent after the write arrives', async () => {
  if (!onLinux) return;
  const shared = s.path('shared.txt');
  const own = s.path('own.txt');
  writeFileSync(shared, '');
  writeFileSync(own, '');
  assert.is(native.watchStart(), true);
  const mainWd = native.watchAdd(shared, false);
  native.watchEvents();

  const worker = new Worker(workerCode, { eval: true, workerData: { bundle, shared, own } });
  const next = async () => (await once(worker, 'message'))[0];
  const hello = await next();
  assert.is(hello.before, -9, 'watchAdd before watchStart on that thread: -EBADF');
  assert.is(hello.started, true);
  assert.ok(hello.wd >= 0);

  for (let round = 0; round < 20; round++) {
    appendFileSync(shared, 'm');
    assert.is(native.watchPending(), true, 'the main thread sees its own write');
    assert.ok(native.watchEvents().some((e) => e.wd === mainWd));
    worker.postMessage('check');
    const { pending, events } = await next();
    assert.is(pending, true, `round ${round}: the worker's flag was up when the message arrived`);
    assert.ok(events.some((e) => e.wd === hello.wd && e.mask & native.IN_MODIFY), JSON.stringify(events));
  }
  // The worker watches `own` only after this: its write stays the worker's business.
  worker.postMessage('write');
  assert.is((await next()).pending, false, 'the worker does not watch own.txt');
  assert.is(native.watchPending(), false, "nor does the main thread: no cross-talk");

  worker.postMessage('exit');
  await once(worker, 'exit');
  // The worker's watcher is gone with it; the main thread's still works.
  appendFileSync(shared, 'm');
  assert.is(native.watchPending(), true);
  native.watchEvents();
  native.watchRemove(mainWd);
});

/** How many inotify descriptors this process holds. */
const inotifyFds = () => readdirSync('/proc/self/fd').filter((fd) => {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:inotify';
  } catch {
    return false;
  }
}).length;

test('many workers come and go: the 64-slot table is freed and each descriptor closed as each exits', async () => {
  if (!onLinux) return;
  const shared = s.path('shared.txt');
  const before = inotifyFds();
  for (let i = 0; i < 70; i++) {
    const worker = new Worker(workerCode, { eval: true, workerData: { bundle, shared, own: s.path('own.txt') } });
    const [hello] = await once(worker, 'message');
    assert.is(hello.started, true, `worker ${i}`);
    worker.postMessage('exit');
    await once(worker, 'exit');
  }
  assert.is(inotifyFds(), before, 'no inotify descriptor left behind');
});

test.run();
