#!/usr/bin/env node
// Benchmark: the per-request cost of knowing a cached file is unchanged, in one run.
//
//   node bench/watch.mjs [--calls N] [--runs N]
//
// watchPending() (an atomic load behind a napi call, no system call), through the raw binding and
// through js/native.ts's error-converting wrapper (what the package's own code calls), against the
// statSync the small-file cache uses per request today. N calls per variant per run (statSync does
// N / 20 and is scaled), interleaved in rotating order. Prints ns per call (median and best run) and
// ratios against statSync. Not a test: the figures move with the machine and its load.
import { statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

import { NOISE_NOTE, best, median, printMachine, printTable, rotated, scratch } from './lib.mjs';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '1000000' }, runs: { type: 'string', default: '5' } } });
const calls = Number(values.calls);
const runs = Number(values.runs);

const s = scratch(tmpdir());
const require = createRequire(import.meta.url);
const raw = require('../native/binding.js');
const bundle = join(s.dir, 'native.cjs');
process.env.ZEROCOPY_NATIVE_LIBRARY_PATH = require.resolve('../native/binding.js').replace(/binding\.js$/, 'zerocopy.linux-x64-gnu.node');
await build({
  entryPoints: [new URL('../js/native.ts', import.meta.url).pathname],
  bundle: true,
  outfile: bundle,
  format: 'cjs',
  platform: 'node',
  external: ['#native'],
  define: { ZEROCOPY_VERSION: '"bench"', ZEROCOPY_TARGETS: '[]' },
  logLevel: 'warning',
});
const { native } = require(bundle);

const file = join(s.dir, 'f');
writeFileSync(file, 'x'.repeat(16384));
if (!native.watchStart()) throw new Error('watchStart failed');
native.watchAdd(file, false);
native.watchEvents();

const variants = {
  'watchPending (raw binding)': () => {
    let n = 0;
    for (let i = 0; i < calls; i++) if (raw.watchPending()) n++;
    return n;
  },
  'watchPending (js/native.ts)': () => {
    let n = 0;
    for (let i = 0; i < calls; i++) if (native.watchPending()) n++;
    return n;
  },
  'statSync (today)': () => {
    let n = 0;
    for (let i = 0; i < calls / 20; i++) n += statSync(file).size;
    return n;
  },
};
const scale = { 'statSync (today)': 20 };
const times = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let run = 0; run < runs; run++) {
  for (const name of rotated(Object.keys(variants), run)) {
    const t0 = process.hrtime.bigint();
    variants[name]();
    times[name].push((Number(process.hrtime.bigint() - t0) * (scale[name] ?? 1)) / calls);
  }
}
printMachine(s.dir);
console.log(`workload: ${calls} calls per variant per run, ${runs} runs, one watched 16 KiB file, nothing changing`);
const base = median(times['statSync (today)']);
printTable(
  ['variant', 'median ns/call', 'best ns/call', 'vs statSync'],
  Object.keys(variants).map((k) => [k, median(times[k]).toFixed(1), best(times[k]).toFixed(1), `${(base / median(times[k])).toFixed(1)}x faster`]),
);
console.log(NOISE_NOTE);
s.cleanup();
