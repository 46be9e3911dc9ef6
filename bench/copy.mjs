#!/usr/bin/env node
// Benchmark: copying one warm file with zerocopy's copyFile against Node's own ways, in one run.
//
//   node bench/copy.mjs [--size MiB] [--runs N] [--dir DIR]
//
// Variants: copyFile (auto chain), copyFile with reflink 'never' (sendfile), fs.promises.copyFile,
// and a stream pipeline. Each runs N times, interleaved in rotating order; every run starts from a
// synced disk and a warm source in the page cache. Prints medians, best runs, CPU seconds per GiB and
// ratios against the baselines. Not a test: the figures vary with the machine and its load.
import { createReadStream, createWriteStream, rmSync, statSync } from 'node:fs';
import { copyFile as fsCopyFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';

import { copyFile } from 'zerocopy';
import { GiB, MiB, NOISE_NOTE, best, clearProgress, median, printMachine, printTable, progress, resources, rotated, scratch, warm, writeWorkload } from './lib.mjs';

const { values } = parseArgs({
  options: { size: { type: 'string', default: '1024' }, runs: { type: 'string', default: '5' }, dir: { type: 'string', default: tmpdir() } },
});
const sizeMiB = Number(values.size);
const runs = Number(values.runs);
const size = sizeMiB * MiB;

const s = scratch(values.dir);
const src = s.path('src');
const dst = s.path('dst');
printMachine(s.dir);
console.log(`workload: one ${sizeMiB} MiB file, warm in the page cache; ${runs} runs per variant, interleaved in rotating order; sync before each run\n`);
await writeWorkload(src, sizeMiB);

const variants = [
  ['zerocopy copyFile (auto)', () => copyFile(src, dst)],
  ["zerocopy copyFile (reflink: 'never')", () => copyFile(src, dst, { reflink: 'never' })],
  ['fs.promises.copyFile', () => fsCopyFile(src, dst)],
  ['stream pipeline', () => pipeline(createReadStream(src), createWriteStream(dst))],
];
const results = new Map(variants.map(([name]) => [name, { wall: [], cpu: [], mechanism: '' }]));

for (let run = 0; run < runs; run++) {
  for (const [name, fn] of rotated(variants, run)) {
    rmSync(dst, { force: true });
    execFileSync('sync');
    warm(src);
    progress(`run ${run + 1}/${runs}: ${name}`);
    const before = resources();
    const t0 = process.hrtime.bigint();
    const res = await fn();
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const used = resources(before);
    if (statSync(dst).size !== size) throw new Error(`${name} copied ${statSync(dst).size} bytes`);
    const r = results.get(name);
    r.wall.push(wall);
    r.cpu.push(used.cpu);
    if (res && res.mechanism) r.mechanism = res.mechanism;
  }
}
clearProgress();

const rows = variants.map(([name]) => {
  const r = results.get(name);
  const wall = median(r.wall);
  return { name, mechanism: r.mechanism, wall, best: best(r.wall), cpuPerGiB: (median(r.cpu) * GiB) / size };
});
const [ours, , base, stream] = rows;
printTable(
  ['variant', 'mechanism', 'median s', 'best s', 'MiB/s', 'CPU s/GiB', 'vs fs.copyFile', '(best)', 'vs stream'],
  rows.map((r) => [
    r.name,
    r.mechanism || '-',
    r.wall.toFixed(3),
    r.best.toFixed(3),
    (sizeMiB / r.wall).toFixed(0),
    r.cpuPerGiB.toFixed(3),
    `${(base.wall / r.wall).toFixed(2)}x`,
    `${(base.best / r.best).toFixed(2)}x`,
    `${(stream.wall / r.wall).toFixed(2)}x`,
  ]),
);
const ratio = base.wall / ours.wall;
console.log(
  `\ntarget: copyFile >= 0.95x fs.promises.copyFile throughput (medians): ${ratio.toFixed(2)}x — ${ratio >= 0.95 ? 'met' : 'NOT met'}` +
    ` (best runs: ${(base.best / ours.best).toFixed(2)}x)`,
);
console.log(NOISE_NOTE);
