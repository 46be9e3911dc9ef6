/**
 * How the bench measures a path: the workload file, warming or evicting it (`--cold`), the runs with
 * their CPU, system calls and context switches, and the judging of each group against its baseline.
 */
import { closeSync, fsyncSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { residency, sys, type Capabilities, type Residency } from 'zerocopy';
import { benchBinding } from './peer.js';
import type { BenchReport, Eviction, Group, PathResidency, PathResult, Picture } from './bench-report.js';
import { counts, PICTURES } from './pictures.js';
import { percent, ProgressBar } from './util.js';
import { PATHS, type Context, type PathSpec } from './bench-paths.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export function writeWorkload(path: string, size: number): void {
  const block = Buffer.alloc(Math.min(size, MiB));
  for (let i = 0; i + 4 <= block.length; i += 4) block.writeUInt32LE((i * 2654435761) >>> 0, i);
  const fd = openSync(path, 'w');
  try {
    for (let at = 0; at < size; at += block.length) {
      block.writeUInt32LE(at / MiB, 0);
      writeSync(fd, block, 0, Math.min(block.length, size - at), at);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * `--cold`: writes back what is dirty (fsync), asks the kernel to drop the file's pages
 * (posix_fadvise DONTNEED), and returns what stayed: on tmpfs everything does, the pages are the file.
 *
 * Pages that sendfile or splice gave to a socket can stay referenced after the transfer has ended,
 * and then cannot be dropped: the kernel defers freeing received socket buffers to the CPU that
 * allocated them, which frees them the next time it handles incoming network work (up to
 * net.core.skb_defer_max per CPU). On an idle machine that took over 10 s here; with busy threads
 * sending themselves loopback datagrams (network work on whichever core each runs), one per core,
 * mostly well under a second. So while pages stay, it asks again every 10 ms, for at most 3 s, with
 * those threads running.
 */
async function evict(path: string): Promise<Residency> {
  const fd = openSync(path, 'r');
  let nudges: Worker[] | undefined;
  try {
    fsyncSync(fd);
    sys.fadviseSync(fd, 'dontneed');
    let left = residency(fd);
    for (const deadline = Date.now() + 3000; left.resident > 0 && Date.now() < deadline; ) {
      nudges ??= cpus().map(() => new Worker(NUDGE, { eval: true }));
      await new Promise((ok) => setTimeout(ok, 10));
      sys.fadviseSync(fd, 'dontneed');
      left = residency(fd);
    }
    return left;
  } finally {
    closeSync(fd);
    await Promise.all((nudges ?? []).map((w) => w.terminate()));
  }
}

/** A thread of `evict`: loopback datagrams to itself, as fast as they go, until terminated. */
const NUDGE = `const socket = require('node:dgram').createSocket('udp4');
socket.on('message', () => {});
socket.bind(0, '127.0.0.1', function send() {
  socket.send('x', socket.address().port, '127.0.0.1', () => setImmediate(send));
});`;

/** Whether `residency()` works here: not where zerocopy runs its portable code (not Linux). */
export function sees(file: string): boolean {
  try {
    residency(file);
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_FEATURE_UNAVAILABLE_ON_PLATFORM') return false;
    throw err;
  }
}

/** Pulls the file into the page cache through one reused buffer. */
function warm(path: string): void {
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(MiB);
  try {
    while (readSync(fd, buf, 0, buf.length, null) > 0);
  } finally {
    closeSync(fd);
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;

function nativeCalls(): number {
  return Object.values(benchBinding().syscallCounts()).reduce((a, b) => a + b, 0);
}

/** A path's result before any run: its model, nothing measured. */
export function unmeasured(spec: PathSpec, reason?: string): PathResult {
  return {
    id: spec.id,
    group: spec.group,
    name: spec.name,
    mechanism: spec.mechanism,
    baseline: Boolean(spec.baseline),
    available: reason === undefined,
    ...(reason === undefined ? {} : { reason }),
    model: { ...counts(PICTURES[spec.id] as Picture), ...(PICTURES[spec.id] as Picture) },
    runs: [],
    medianSeconds: null,
    bestSeconds: null,
    mibPerSecond: null,
    cpuSecondsPerGiB: null,
    syscalls: null,
    syscallsEstimated: false,
    voluntaryContextSwitches: null,
    involuntaryContextSwitches: null,
    speedup: null,
    residency: null,
  };
}

/** Every path the bench knows, with its model and no figures: what `zerocopy explain` draws without results. */
export function models(): PathResult[] {
  return PATHS.map((spec) => unmeasured(spec));
}

export async function measure(spec: PathSpec, ctx: Context, runs: number, caps: Capabilities, bar: ProgressBar): Promise<PathResult> {
  const reason = spec.unavailable?.(caps);
  const copy = join(ctx.dir, 'copy');
  const base = unmeasured(spec, reason);
  if (reason !== undefined) return base;
  const cpu: number[] = [];
  const calls: number[] = [];
  const vcs: number[] = [];
  const ivcs: number[] = [];
  const cache: PathResidency = { pages: 0, before: [], after: [] };
  let estimated = false;
  for (let run = 0; run < runs; run++) {
    bar.status(`bench: ${spec.group}: ${spec.name} (run ${run + 1}/${runs})`);
    rmSync(copy, { force: true });
    if (ctx.cold) {
      const left = await evict(ctx.file);
      bar.status(`bench: ${spec.group}: ${spec.name} (run ${run + 1}/${runs}, ${percent(left.resident, left.pages)} left in the page cache)`);
    } else warm(ctx.file);
    if (ctx.seesCache) {
      const before = residency(ctx.file);
      cache.pages = before.pages;
      cache.before.push(before.resident);
    }
    const prepared = (await spec.prepare?.(ctx)) ?? {};
    const usage0 = process.resourceUsage();
    const calls0 = nativeCalls();
    const t0 = process.hrtime.bigint();
    const moved = await spec.run(ctx, prepared);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const usage = process.resourceUsage();
    if (ctx.seesCache) {
      cache.after.push(residency(ctx.file).resident);
      if (spec.group === 'file → file') (cache.copyAfter ??= []).push(residency(copy).resident);
    }
    await prepared.release?.();
    if (moved.bytes !== ctx.size) throw new Error(`${spec.name} moved ${moved.bytes} of ${ctx.size} bytes`);
    base.runs.push(seconds);
    cpu.push((usage.userCPUTime - usage0.userCPUTime + usage.systemCPUTime - usage0.systemCPUTime) / 1e6);
    calls.push(nativeCalls() - calls0 + (moved.nodeCalls ?? 0));
    estimated ||= moved.nodeCalls !== undefined;
    vcs.push(usage.voluntaryContextSwitches - usage0.voluntaryContextSwitches);
    ivcs.push(usage.involuntaryContextSwitches - usage0.involuntaryContextSwitches);
  }
  rmSync(copy, { force: true });
  const med = median(base.runs);
  return {
    ...base,
    medianSeconds: med,
    bestSeconds: Math.min(...base.runs),
    mibPerSecond: ctx.size / MiB / med,
    cpuSecondsPerGiB: (median(cpu) * GiB) / ctx.size,
    syscalls: median(calls),
    syscallsEstimated: estimated,
    voluntaryContextSwitches: median(vcs),
    involuntaryContextSwitches: median(ivcs),
    residency: ctx.seesCache ? cache : null,
  };
}

/** How well `--cold` evicted the file: the worst residency any run started with. */
export function eviction(paths: PathResult[]): Eviction {
  const ran = paths.flatMap((p) => (p.residency ? [p.residency] : []));
  const pages = Math.max(0, ...ran.map((r) => r.pages));
  const worstResident = Math.max(0, ...ran.flatMap((r) => r.before));
  return { method: 'fsync + posix_fadvise(DONTNEED)', evicted: worstResident <= pages / 100, pages, worstResident };
}

/** Fills `speedup` against each group's baseline and says, per group, which path wins and why. */
export function judge(paths: PathResult[]): BenchReport['winners'] {
  const winners: BenchReport['winners'] = [];
  for (const group of ['file → socket', 'file → file', 'socket → socket'] as Group[]) {
    const members = paths.filter((p) => p.group === group && p.available && p.mibPerSecond !== null);
    const baseline = members.find((p) => p.baseline);
    if (!baseline || baseline.mibPerSecond === null) continue;
    for (const p of members) p.speedup = (p.mibPerSecond as number) / (baseline.mibPerSecond as number);
    if (members.length === 1) {
      winners.push({ group, id: baseline.id, line: `${group}: only ${baseline.name} ran here.` });
      continue;
    }
    const best = members.reduce((a, b) => ((b.mibPerSecond as number) > (a.mibPerSecond as number) ? b : a));
    const cpuRatio = (best.cpuSecondsPerGiB as number) / (baseline.cpuSecondsPerGiB as number);
    const line =
      best === baseline
        ? `${group}: ${best.name} is fastest here — on this machine and size the kernel paths' fixed costs outweigh the copies they save.`
        : `${group}: ${best.name} wins — ${(best.speedup as number).toFixed(1)}x the throughput of ${baseline.name} at ${cpuRatio.toFixed(2)}x its CPU per GiB: ` +
          `${best.model.cpuCopies} CPU ${best.model.cpuCopies === 1 ? 'copy' : 'copies'} and ${best.model.userKernelSwitchesPerChunk} user/kernel switches per chunk ` +
          `against ${baseline.model.cpuCopies} and ${baseline.model.userKernelSwitchesPerChunk}.`;
    const frugal = members.reduce((a, b) => ((b.cpuSecondsPerGiB as number) < (a.cpuSecondsPerGiB as number) ? b : a));
    const cpuNote = frugal === best ? ' It also uses the least CPU.' : ` The least CPU per GiB: ${frugal.name} (${(frugal.cpuSecondsPerGiB as number).toFixed(3)} s).`;
    winners.push({ group, id: best.id, line: best === baseline ? line : line + cpuNote });
  }
  return winners;
}
