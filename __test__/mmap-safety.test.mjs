// The process-level guarantees of mmap: a file truncated by another process does not kill us; every
// other SIGBUS still does what it did; mappings nobody closes are unmapped when collected.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, truncateSync } from 'node:fs';
import { setImmediate as tick } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { mmap, mmapSync } from 'zerocopy';
import { scratch, makeFile, rejection, thrown, MiB } from './helpers.mjs';

const s = scratch();
test.after(() => s.cleanup());
const root = fileURLToPath(new URL('..', import.meta.url));
const PAGE = 4096;

/** Runs an ES module snippet in a child node (from the package root, so `import 'zerocopy'` resolves). */
function child(code, args = [], nodeFlags = []) {
  const r = spawnSync(process.execPath, [...nodeFlags, '--input-type=module', '-e', code, ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

/** Reads one byte of every page: what a scanning reader does. */
function scan(buf) {
  let sum = 0;
  for (let i = 0; i < buf.length; i += PAGE) sum += buf[i];
  return sum;
}

for (const mode of ['r', 'rw', 'cow']) {
  test(`'${mode}': another process truncates the file mid-scan; we live, read zeros past the new end, and every op says so`, async () => {
    const size = 64 * MiB;
    const newSize = MiB + 100;
    const path = makeFile(s.path(`trunc-${mode}`), size);
    const data = readFileSync(path);
    const m = await mmap(path, { mode });
    const view = m.buffer.subarray(PAGE);
    assert.is(scan(m.buffer), scan(data), 'intact before');

    const truncator = spawn(process.execPath, ['-e', `setTimeout(() => require('fs').truncateSync(process.argv[1], ${newSize}), 30)`, path]);
    let exit;
    truncator.on('exit', (code, signal) => (exit = { code, signal }));
    let passes = 0;
    // Keep scanning until the truncation is done, then once more over the whole window.
    for (let finished = false; !finished; passes++) {
      finished = exit !== undefined;
      scan(m.buffer);
      await tick();
    }
    assert.equal(exit, { code: 0, signal: null });
    assert.ok(passes >= 2, `scanned ${passes} times`);

    assert.ok(m.stale, 'stale after a page past the new end was touched');
    assert.is(m.length, size, 'the window keeps its length');
    assert.ok(m.buffer.subarray(0, newSize).equals(data.subarray(0, newSize)), 'bytes before the new end are intact');
    assert.ok(m.buffer.subarray(newSize).equals(Buffer.alloc(size - newSize)), 'zeros past the new end');
    assert.is(view[size - PAGE - 1], 0, 'views see the same zeros');
    m.buffer[size - 1] = 7; // writing past the new end does not crash either
    assert.is(m.buffer[size - 1], 7);
    assert.is(readFileSync(path).length, newSize, 'and reaches no file');

    assert.is((await rejection(() => m.sync())).code, 'ERR_MAPPING_TRUNCATED');
    assert.is(thrown(() => m.syncSync()).code, 'ERR_MAPPING_TRUNCATED');
    assert.is(thrown(() => m.advise('random')).code, 'ERR_MAPPING_TRUNCATED');
    const err = thrown(() => m.close());
    assert.is(err.code, 'ERR_MAPPING_TRUNCATED');
    assert.match(err.message, /truncated/);
    assert.ok(m.closed, 'close unmapped before reporting');
    assert.is(view.length, 0);
    m.close(); // reported once; a second close is a no-op
    assert.ok(m.stale, 'stale stays readable');
  });
}

test('a mapping never touched past the new end is not stale', () => {
  const path = makeFile(s.path('untouched'), 4 * PAGE);
  const m = mmapSync(path);
  truncateSync(path, PAGE);
  assert.is(m.buffer[10], readFileSync(path)[10]);
  assert.not.ok(m.stale);
  m.syncSync();
  m.close();
});

test('a SIGBUS sent to the process still kills it, guard installed or not', () => {
  const path = makeFile(s.path('sigbus'), 4 * PAGE);
  const raise = `setTimeout(() => {}, 5000); process.kill(process.pid, 'SIGBUS');`;
  const control = child(raise);
  assert.is(control.signal, 'SIGBUS', 'without zerocopy');
  const guarded = child(
    `import { mmapSync } from 'zerocopy';
     import { truncateSync } from 'node:fs';
     const m = mmapSync(process.argv[1]);
     truncateSync(process.argv[1], 0);
     process.stdout.write(JSON.stringify({ read: m.buffer[3 * 4096], stale: m.stale }));
     ${raise}`,
    [path],
  );
  assert.equal(JSON.parse(guarded.out), { read: 0, stale: true }, guarded.err);
  assert.is(guarded.signal, 'SIGBUS', 'with a guarded mapping that absorbed a truncation fault');
});

test('10,000 mappings dropped without close are unmapped by GC: /proc/self/maps back to baseline, RSS bounded', () => {
  const path = makeFile(s.path('gc'), MiB);
  const r = child(
    `import { mmapSync } from 'zerocopy';
     import { readFileSync } from 'node:fs';
     import { setImmediate as tick } from 'node:timers/promises';
     const file = process.argv[1];
     const maps = () => readFileSync('/proc/self/maps', 'utf8').trim().split('\\n');
     const ours = () => maps().filter((l) => l.endsWith(file)).length;
     // File-backed mappings (inode != 0): the ones a leaked mmap would add.
     const files = () => maps().filter((l) => l.split(' ').filter(Boolean)[4] !== '0').sort();
     let sum = 0;
     const cycle = () => { const m = mmapSync(file); sum += m.buffer[m.length - 1] + m.buffer[0]; };
     async function settle() { for (let i = 0; i < 4; i++) { globalThis.gc(); await tick(); } }
     for (let i = 0; i < 200; i++) cycle();
     await settle();
     const base = { files: files(), anonymous: maps().length - files().length, rss: process.memoryUsage().rss };
     let peak = 0;
     for (let i = 1; i <= 10000; i++) {
       cycle();
       if (i % 250 === 0) { peak = Math.max(peak, ours()); await tick(); }
     }
     const beforeGc = ours();
     await settle();
     const after = { files: files(), anonymous: maps().length - files().length, rss: process.memoryUsage().rss };
     process.stdout.write(JSON.stringify({ base, after, peak, beforeGc, ours: ours(), sum }));`,
    [path],
    ['--expose-gc'],
  );
  assert.is(r.status, 0, r.err);
  const res = JSON.parse(r.out);
  assert.ok(res.peak > 0, 'mappings were alive during the loop');
  assert.is(res.ours, 0, 'every mapping of the file is gone');
  assert.equal(res.after.files, res.base.files, 'file-backed mappings exactly as at the baseline');
  // Anonymous mappings may grow a little: V8 keeps the 256 KiB heap pages its heap grew into.
  assert.ok(res.after.anonymous <= res.base.anonymous + 64, `anonymous mappings ${res.base.anonymous} -> ${res.after.anonymous}`);
  const growth = res.after.rss - res.base.rss;
  assert.ok(growth < 96 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
});

test('10,000 map/close cycles leave nothing mapped, without waiting for GC', () => {
  const path = makeFile(s.path('close-cycles'), 64 * 1024);
  const r = child(
    `import { mmapSync } from 'zerocopy';
     import { readFileSync } from 'node:fs';
     const file = process.argv[1];
     const ours = () => readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.endsWith(file)).length;
     let sum = 0;
     for (let i = 0; i < 10000; i++) { const m = mmapSync(file, { offset: i % 4096 }); sum += m.buffer[0]; m.close(); }
     process.stdout.write(JSON.stringify({ ours: ours(), sum }));`,
    [path],
  );
  assert.is(r.status, 0, r.err);
  assert.is(JSON.parse(r.out).ours, 0);
});

test.run();
