// Views that escape close(): from Node 22, ArrayBuffer.prototype.transfer() (and transferToFixedLength,
// or a transfer list of a buffer made that way) moves a mapping's memory into an ArrayBuffer that
// close() cannot detach, possibly in another thread. No JavaScript operation may reach unmapped memory:
// after close() those views read zeros and their writes go nowhere (never to the file), and the range
// is unmapped once the last of them is collected. Every sequence runs in a child process, so a crash
// is a failed assertion here, not a dead test runner.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { truncateSync } from 'node:fs';

import { scratch, makeFile, childModule, MiB } from './helpers.mjs';

const s = scratch();
test.after(() => s.cleanup());
const PAGE = 4096;
const major = Number(process.versions.node.split('.')[0]);
const hasTransfer = typeof ArrayBuffer.prototype.transfer === 'function';

/** Runs `code` in a child with --expose-gc; returns its JSON output after asserting it exited cleanly. */
function run(code, args) {
  const r = childModule(code, args, { nodeFlags: ['--expose-gc'], timeout: 60_000 });
  assert.equal([r.status, r.signal, r.timedOut], [0, null, false], `child died: ${r.signal ?? r.status}\n${r.err}`);
  return JSON.parse(r.out);
}

const GC = `
  import { setImmediate as tick } from 'node:timers/promises';
  async function settle() { for (let i = 0; i < 4; i++) { globalThis.gc(); await tick(); } }
  const out = (v) => process.stdout.write(JSON.stringify(v));`;

test('transfer() exists from Node 22 on, and moves the mapping out of its Buffer', () => {
  assert.is(hasTransfer, major >= 22, `Node ${process.version}`);
});

for (const how of ['transfer', 'transferToFixedLength', 'structuredClone']) {
  for (const mode of ['r', 'rw', 'cow']) {
    test(`${how}: after close() the escaped view reads zeros, its writes go nowhere, GC is safe ('${mode}')`, () => {
      if (!hasTransfer) return; // Node 20: nothing can move the memory out (asserted above).
      const path = makeFile(s.path(`escape-${how}-${mode}`), 5 * PAGE + 77);
      const res = run(
        `import { mmapSync } from 'zerocopy';
         import { readFileSync } from 'node:fs';
         ${GC}
         const [file, mode, how] = process.argv.slice(1);
         const before = readFileSync(file);
         const m = mmapSync(file, { mode });
         const own = m.buffer.buffer;
         let escaped;
         if (how === 'transfer') escaped = own.transfer();
         else if (how === 'transferToFixedLength') escaped = own.transferToFixedLength();
         else { const moved = own.transfer(); escaped = structuredClone(moved, { transfer: [moved] }); }
         const view = new Uint8Array(escaped);
         const live = { same: Buffer.from(escaped).equals(before), ownDetached: own.detached, ownLength: m.buffer.length };
         view[1] ^= 0xff; // before close: a write to the mapping ('rw': to the file)
         const expected = Buffer.from(before);
         if (mode === 'rw') expected[1] ^= 0xff;
         m.close();
         const closed = { length: escaped.byteLength, zeros: view.every((b) => b === 0), closed: m.closed };
         view[2] = 0x5a;
         view.fill(7, 100, 4200);
         const readBack = [view[2], view[150], view[4199]];
         await settle();
         const afterGc = { length: view.length, readBack: view[150] };
         out({ live, closed, readBack, afterGc, fileAsExpected: readFileSync(file).equals(expected) });`,
        [path, mode, how],
      );
      assert.equal(res.live, { same: true, ownDetached: true, ownLength: 0 }, 'the memory moved out of the Buffer');
      assert.equal(res.closed, { length: 5 * PAGE + 77, zeros: true, closed: true }, 'zeros after close');
      assert.equal(res.readBack, [0x5a, 7, 7], 'writes land in private memory');
      assert.equal(res.afterGc, { length: 5 * PAGE + 77, readBack: 7 }, 'GC does not take the memory from a live view');
      assert.ok(res.fileAsExpected, mode === 'rw' ? 'the write before close reached the file; none after did' : 'file unchanged');
    });
  }
}

test('transfer(n) to another length copies: the copy keeps the bytes, close() after it is clean', () => {
  if (!hasTransfer) return;
  const path = makeFile(s.path('escape-resize'), 3 * PAGE);
  const res = run(
    `import { mmapSync } from 'zerocopy';
     import { readFileSync } from 'node:fs';
     ${GC}
     const file = process.argv[1];
     const m = mmapSync(file);
     const copy = m.buffer.buffer.transfer(100);
     await settle(); // the old backing store is freed, its finalizer unmaps
     m.close();
     await settle();
     out({ same: Buffer.from(copy).equals(readFileSync(file).subarray(0, 100)), closed: m.closed, length: m.length });`,
    [path],
  );
  assert.equal(res, { same: true, closed: true, length: 0 });
});

test("the mapping's own ArrayBuffer: a transfer list copies it (Node 20) or refuses it (22+), with and without a worker", () => {
  const path = makeFile(s.path('escape-own'), 2 * PAGE);
  const res = run(
    `import { mmapSync } from 'zerocopy';
     import { Worker } from 'node:worker_threads';
     import { once } from 'node:events';
     import { readFileSync } from 'node:fs';
     ${GC}
     const file = process.argv[1];
     const before = readFileSync(file);
     const m = mmapSync(file, { mode: 'rw' });
     const ab = m.buffer.buffer;
     const attempt = (fn) => { try { fn(); return 'copied'; } catch (e) { return e.name; } };
     let clone;
     const cloned = attempt(() => { clone = structuredClone(ab, { transfer: [ab] }); new Uint8Array(clone)[0] ^= 1; });
     const w = new Worker("require('worker_threads').parentPort.on('message', (x) => { new Uint8Array(x)[0] ^= 1; require('worker_threads').parentPort.postMessage(x.byteLength); })", { eval: true, execArgv: [] });
     let posted = attempt(() => w.postMessage(ab, [ab]));
     const got = posted === 'copied' ? (await once(w, 'message'))[0] : null;
     w.postMessage(ab); // no transfer list: always a copy
     const copied = (await once(w, 'message'))[0];
     await w.terminate();
     const intact = m.length === 2 * 4096 && m.buffer.equals(before) && readFileSync(file).equals(before);
     m.close();
     out({ cloned, posted, got, copied, intact });`,
    [path],
  );
  const refused = major >= 22 ? 'DataCloneError' : 'copied';
  assert.equal(res, { cloned: refused, posted: refused, got: major >= 22 ? null : 2 * PAGE, copied: 2 * PAGE, intact: true });
});

test('postMessage of a transferred mapping to a worker: the worker reads zeros after close(), also mid-scan', () => {
  if (!hasTransfer) return;
  const path = makeFile(s.path('escape-worker'), 64 * PAGE);
  const res = run(
    `import { mmapSync } from 'zerocopy';
     import { Worker } from 'node:worker_threads';
     import { once } from 'node:events';
     import { readFileSync } from 'node:fs';
     import { setTimeout as sleep } from 'node:timers/promises';
     ${GC}
     const file = process.argv[1];
     const before = readFileSync(file);
     const w = new Worker(\`
       const { parentPort } = require('worker_threads');
       let view;
       parentPort.on('message', (msg) => {
         if (msg.ab) {
           view = new Uint8Array(msg.ab);
           parentPort.postMessage({ length: view.length, same: Buffer.from(msg.ab).equals(Buffer.from(msg.expect)) });
           return;
         }
         // Scan until the main thread has closed the mapping: the range changes under this loop.
         const flag = new Int32Array(msg.flag);
         let scans = 0;
         while (Atomics.load(flag, 0) === 0) { for (let i = 0; i < view.length; i += 4096) view[i]; scans++; }
         const zeros = view.every((b) => b === 0);
         view[10] = 99;
         parentPort.postMessage({ scans, zeros, readBack: view[10], length: view.length });
       });\`, { eval: true, execArgv: [] });
     const m = mmapSync(file, { mode: 'rw' });
     const moved = m.buffer.buffer.transfer();
     w.postMessage({ ab: moved, expect: before }, [moved]);
     const received = (await once(w, 'message'))[0];
     const flag = new SharedArrayBuffer(4);
     w.postMessage({ flag });
     await sleep(30);
     m.close();
     Atomics.store(new Int32Array(flag), 0, 1);
     const after = (await once(w, 'message'))[0];
     await w.terminate();
     await settle();
     out({ movedDetached: moved.detached, received, after, file: readFileSync(file).equals(before) });`,
    [path],
  );
  assert.ok(res.movedDetached, 'the backing store left this thread');
  assert.equal(res.received, { length: 64 * PAGE, same: true });
  assert.is(res.after.zeros, true, 'zeros after close');
  assert.is(res.after.readBack, 99);
  assert.is(res.after.length, 64 * PAGE);
  assert.ok(res.file, 'writes after close never reached the file');
});

for (const close of [false, true]) {
  test(`a worker maps, transfers the memory to the main thread and exits ${close ? 'after close()' : 'without closing'}: main reads zeros`, () => {
    if (!hasTransfer) return;
    const path = makeFile(s.path(`escape-from-worker-${close}`), 256 * PAGE);
    const res = run(
      `import { Worker } from 'node:worker_threads';
       import { once } from 'node:events';
       import { readFileSync } from 'node:fs';
       ${GC}
       const [file, close] = process.argv.slice(1);
       const w = new Worker(\`
         const { parentPort, workerData } = require('worker_threads');
         const { mmapSync } = require('zerocopy');
         const m = mmapSync(workerData.file);
         const moved = m.buffer.buffer.transfer();
         parentPort.postMessage(moved, [moved]);
         if (workerData.close) m.close();\`, { eval: true, execArgv: [], workerData: { file, close: close === 'true' } });
       const [ab] = await once(w, 'message');
       await once(w, 'exit');
       const view = new Uint8Array(ab);
       const zeros = view.every((b) => b === 0);
       view.fill(3);
       await settle();
       const mapped = readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.endsWith(file)).length;
       out({ length: ab.byteLength, zeros, readBack: view[12345], mapped });`,
      [path, String(close)],
    );
    assert.equal(res, { length: 256 * PAGE, zeros: true, readBack: 3, mapped: 0 });
  });
}

test('an escaped view keeps the range reserved (not mapped to the file) until it is collected, then it is unmapped', () => {
  if (!hasTransfer) return;
  const path = s.path('escape-vmsize');
  makeFile(path, PAGE);
  truncateSync(path, 256 * MiB); // sparse: a large, cheap window
  const res = run(
    `import { mmapSync } from 'zerocopy';
     import { readFileSync } from 'node:fs';
     ${GC}
     const file = process.argv[1];
     const vm = () => Number(/VmSize:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
     const mapped = () => readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.endsWith(file)).length;
     const m = mmapSync(file);
     let escaped = m.buffer.buffer.transfer();
     m.close();
     const fileMapped = mapped();
     await settle();
     const reserved = vm();
     const zero = new Uint8Array(escaped)[200 * 1024 * 1024];
     escaped = null;
     await settle();
     out({ fileMapped, zero, released: reserved - vm() });`,
    [path],
  );
  assert.is(res.fileMapped, 0, 'close() unmapped the file itself');
  assert.is(res.zero, 0);
  assert.ok(res.released >= 240 * MiB, `collecting the view released ${(res.released / MiB).toFixed(1)} MiB of address space`);
});

test("resize/detached states: not resizable, detached once closed, and a closed mapping's buffer cannot be transferred", () => {
  const path = makeFile(s.path('escape-states'), 2 * PAGE);
  const res = run(
    `import { mmapSync } from 'zerocopy';
     ${GC}
     const m = mmapSync(process.argv[1]);
     const ab = m.buffer.buffer;
     const attempt = (fn) => { try { fn(); return 'ok'; } catch (e) { return e.name; } };
     const open = { resizable: ab.resizable ?? false, maxByteLength: ab.maxByteLength ?? ab.byteLength, detached: ab.detached ?? false, resize: typeof ab.resize === 'function' ? attempt(() => ab.resize(10)) : 'none' };
     m.close();
     const closed = { detached: ab.detached ?? ab.byteLength === 0, byteLength: ab.byteLength, transfer: typeof ab.transfer === 'function' ? attempt(() => ab.transfer()) : 'none', resize: typeof ab.resize === 'function' ? attempt(() => ab.resize(0)) : 'none' };
     await settle();
     out({ open, closed, closedTwice: attempt(() => m.close()) });`,
    [path],
  );
  assert.equal(res.open, { resizable: false, maxByteLength: 2 * PAGE, detached: false, resize: typeof ArrayBuffer.prototype.resize === 'function' ? 'TypeError' : 'none' });
  assert.equal(res.closed, { detached: true, byteLength: 0, transfer: hasTransfer ? 'TypeError' : 'none', resize: typeof ArrayBuffer.prototype.resize === 'function' ? 'TypeError' : 'none' });
  assert.is(res.closedTwice, 'ok');
});

test.run();
