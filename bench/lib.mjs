// Shared by the benchmarks: scratch space, the machine line, workload files, warming, statistics and
// aligned tables. Benchmarks print ratios against baselines measured in the same run; never timed tests.
import { closeSync, createWriteStream, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';

import { capabilitiesSync } from 'zerocopy';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** A scratch directory under `base`, removed on exit and on Ctrl-C. */
export function scratch(base) {
  const dir = mkdtempSync(join(base, 'zerocopy-bench-'));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  process.on('exit', cleanup);
  return { dir, path: (name) => join(dir, name), cleanup };
}

/** Prints the machine: cores, kernel, Node, and the filesystem holding `dir`. */
export function printMachine(dir) {
  const caps = capabilitiesSync(dir);
  console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model.trim()}), Linux ${release()}, Node ${process.version}`);
  console.log(`filesystem: ${caps.filesystem?.type} at ${dir} (reflink: ${caps.filesystem?.reflink})`);
}

/** Writes `sizeMiB` MiB of incompressible-looking data (each MiB stamped with its index). */
export async function writeWorkload(path, sizeMiB) {
  const block = Buffer.alloc(MiB);
  for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((i * 2654435761) >>> 0, i);
  const out = createWriteStream(path);
  for (let i = 0; i < sizeMiB; i++) {
    block.writeUInt32LE(i, 0);
    if (!out.write(Buffer.from(block))) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r) => out.end(r));
}

/** Pulls a file into the page cache through one reused buffer (no big allocation for the GC to free later). */
export function warm(path) {
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(MiB);
  try {
    while (readSync(fd, buf, 0, buf.length, null) > 0);
  } finally {
    closeSync(fd);
  }
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
export const best = (xs) => Math.min(...xs);

/** The variants in a rotated order for run `run`, so no variant always follows the same neighbour. */
export function rotated(variants, run) {
  const k = run % variants.length;
  return [...variants.slice(k), ...variants.slice(0, k)];
}

/** A progress line on a terminal (nothing when piped). */
export function progress(text) {
  if (process.stdout.isTTY) process.stdout.write(`\r${text}`.padEnd(79));
}

export function clearProgress() {
  if (process.stdout.isTTY) process.stdout.write(`\r${''.padEnd(79)}\r`);
}

/** CPU seconds and context switches of this process (all threads) since `since`, or a snapshot. */
export function resources(since) {
  const r = process.resourceUsage();
  const now = { cpu: (r.userCPUTime + r.systemCPUTime) / 1e6, nvcsw: r.voluntaryContextSwitches, nivcsw: r.involuntaryContextSwitches };
  return since ? { cpu: now.cpu - since.cpu, nvcsw: now.nvcsw - since.nvcsw, nivcsw: now.nivcsw - since.nivcsw } : now;
}

/** Prints an aligned table: first column left-aligned, the others right-aligned. */
export function printTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => String(row[i]).length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}

/**
 * Runs every `[name, fn]` variant `runs` times, interleaved in rotating order, with `beforeEach()`
 * before each run and a progress line. Resolves to the results of each variant's runs, by name.
 */
export async function interleave(variants, runs, beforeEach = () => {}) {
  const results = new Map(variants.map(([name]) => [name, []]));
  for (let run = 0; run < runs; run++) {
    for (const [name, fn] of rotated(variants, run)) {
      beforeEach();
      progress(`run ${run + 1}/${runs}: ${name}`);
      results.get(name).push(await fn());
    }
  }
  clearProgress();
  return results;
}

/**
 * One table row from a variant's runs (`{ wall, cpu, nvcsw, nivcsw, mechanism }` each) moving `bytes`:
 * median and best wall time, CPU seconds per GiB and context switches (medians).
 */
export function summarize(name, runs, bytes) {
  return {
    name,
    mechanism: runs[0]?.mechanism || '-',
    wall: median(runs.map((x) => x.wall)),
    best: best(runs.map((x) => x.wall)),
    cpuPerGiB: (median(runs.map((x) => x.cpu)) * GiB) / bytes,
    nvcsw: median(runs.map((x) => x.nvcsw)),
    nivcsw: median(runs.map((x) => x.nivcsw)),
  };
}

/**
 * Prints the rows of {@link summarize} as a table, with a throughput ratio column against each
 * `[label, row]` of `against`.
 */
export function printVariants(rows, sizeMiB, against) {
  printTable(
    ['variant', 'mechanism', 'median s', 'best s', 'MiB/s', 'CPU s/GiB', 'vol. cs', 'invol. cs', ...against.map(([label]) => label)],
    rows.map((r) => [
      r.name,
      r.mechanism,
      r.wall.toFixed(3),
      r.best.toFixed(3),
      (sizeMiB / r.wall).toFixed(0),
      r.cpuPerGiB.toFixed(3),
      r.nvcsw,
      r.nivcsw,
      ...against.map(([, base]) => `${(base.wall / r.wall).toFixed(2)}x`),
    ]),
  );
}

/** Prints each `[what, ratio, ok]` target with the ratio measured and whether it is met. */
export function printTargets(checks) {
  console.log('');
  for (const [what, value, ok] of checks) console.log(`target: ${what} (medians): ${value.toFixed(2)}x — ${ok(value) ? 'met' : 'NOT met'}`);
}

export const NOISE_NOTE = 'Medians move with neighbours on shared machines; the best runs show what each path costs undisturbed.';
