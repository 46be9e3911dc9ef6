/**
 * `zerocopy bench`: the seed's story measured on this machine. Each data path that exists here moves
 * the same bytes — file → socket, file → file, socket → socket — and the table shows what each costs:
 * throughput, CPU per GiB, the system calls the native layer counted, context switches, and beside
 * them the seed's model of CPU copies and user/kernel switches per chunk.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { capabilities } from 'zerocopy';
import { renderHtml } from './bench-html.js';
import type { BenchReport, Group, PathResult } from './bench-report.js';
import { cacheLine, cacheShares, share } from './pictures.js';
import { formatBytes, intOption, parse, ProgressBar, str, UsageError } from './util.js';
import { eviction, judge, measure, sees, writeWorkload } from './bench-measure.js';
import { PATHS, startSink, type Context } from './bench-paths.js';

/** Replaced by the package version at build time (scripts/build-js.mjs). */
declare const ZEROCOPY_VERSION: string;

const MiB = 1024 * 1024;

const HELP = `Usage: zerocopy bench [--size MiB] [--runs N] [--quick] [--cold] [--json] [--html FILE] [--dir DIR]

Measures, on this machine, what each zero-copy path saves against the traditional read() + write():
file -> socket (Node streams, a native read/write loop, mmap + write, sendfile, splice, O_DIRECT),
file -> file (read/write, copy_file_range, reflink) and socket -> socket (Node pipe, splice), over
loopback TCP to a sink in another process. Prints a table; the last lines say which path wins here and why.
Each path's picture (where its bytes go, which hops the CPU copies) is in the --html report and in
'zerocopy explain'.

Options:
  --size MiB   bytes per path and run (default 256)
  --runs N     runs per path; the median is reported (default 3)
  --quick      16 MiB, one run: a smoke test
  --cold       evict the file from the page cache before each run (fsync + posix_fadvise DONTNEED),
               instead of reading it in; says how much was left, and says so when eviction fails
  --json       print the results as JSON (schema in the README) instead of the table
  --html FILE  also write a self-contained report to FILE: each path's picture with its figures,
               charts and the table
  --dir DIR    where the temporary files go (default: the system temp directory)
  --verbose    print stack traces on errors
  -h, --help   show this help
`;

/** The table printed on a terminal. */
export function formatTable(report: BenchReport): string {
  const header = ['path', 'MiB/s', 'CPU s/GiB', 'syscalls', 'vol cs', 'invol cs', 'cached', 'copies', 'switches', 'vs baseline'];
  const rows: string[][] = [];
  let group: Group | undefined;
  for (const p of report.paths) {
    if (p.group !== group) {
      group = p.group;
      rows.push([`${group}`]);
    }
    const cache = cacheShares(p);
    const n = (v: number | null, digits = 0): string => (v === null ? '-' : v.toFixed(digits));
    rows.push(
      p.available
        ? [
            `  ${p.name}`,
            n(p.mibPerSecond),
            n(p.cpuSecondsPerGiB, 3),
            `${p.syscallsEstimated ? '≈' : ''}${n(p.syscalls)}`,
            n(p.voluntaryContextSwitches),
            n(p.involuntaryContextSwitches),
            cache ? `${share(cache.before)}→${share(cache.after)}` : '-',
            String(p.model.cpuCopies),
            String(p.model.userKernelSwitchesPerChunk),
            p.baseline ? 'baseline' : p.speedup === null ? '-' : `${p.speedup.toFixed(2)}x`,
          ]
        : [`  ${p.name}`, `not here: ${p.reason ?? ''}`],
    );
  }
  // Group rows and the reasons of paths not taken span the columns after the first.
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r.length < header.length && i > 0 ? 0 : (r[i] ?? '').length))));
  const line = (cells: string[]): string =>
    cells.length < header.length
      ? `${(cells[0] ?? '').padEnd(cells.length > 1 ? (widths[0] as number) : 0)}${cells.length > 1 ? `  ${cells[1]}` : ''}`
      : cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  const m = report.machine;
  return [
    `zerocopy bench: ${formatBytes(report.workload.bytes)} per path, median of ${report.workload.runs} run${report.workload.runs === 1 ? '' : 's'}`,
    `machine: ${m.cores} cores (${m.cpu}), Linux ${m.kernel}, Node ${m.node}, ${m.filesystem} at ${m.dir}`,
    cacheLine(report),
    '',
    line(header),
    ...rows.map(line),
    '',
    'copies, switches: the seed\'s model per chunk (CPU copies; user/kernel switches). syscalls: counted by',
    'the native layer (≈: Node\'s own reads and writes estimated from its chunks). cs: context switches.',
    'cached: the file in the page cache before → after a run (residency). `zerocopy explain PATH` draws a path.',
    '',
    ...report.winners.map((w) => w.line),
  ].join('\n');
}

export async function bench(args: string[]): Promise<void> {
  const parsed = parse(
    args,
    {
      size: { type: 'string' },
      runs: { type: 'string' },
      quick: { type: 'boolean' },
      cold: { type: 'boolean' },
      json: { type: 'boolean' },
      html: { type: 'string' },
      dir: { type: 'string' },
    },
    HELP,
  );
  if (!parsed) return;
  const quick = Boolean(parsed.values.quick);
  const size = intOption(str(parsed, 'size'), 'size', quick ? 16 : 256, 1) * MiB;
  const runs = intOption(str(parsed, 'runs'), 'runs', quick ? 1 : 3, 1);
  const cold = Boolean(parsed.values.cold);
  const html = str(parsed, 'html');
  if (html === '') throw new UsageError('--html needs a FILE');

  const dir = mkdtempSync(join(str(parsed, 'dir') ?? tmpdir(), 'zerocopy-bench-'));
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  const onSignal = (): void => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const bar = new ProgressBar('bench');
  let sink: { child: ChildProcess; port: number } | undefined;
  try {
    const file = join(dir, 'workload');
    bar.status(`bench: writing a ${formatBytes(size)} file in ${dir}`);
    writeWorkload(file, size);
    const caps = await capabilities(dir);
    sink = await startSink();
    const seesCache = sees(file);
    if (cold && !seesCache) throw new Error('--cold checks the eviction with residency(), which zerocopy has on Linux only');
    const ctx: Context = { cold, seesCache, file, dir, size, sinkPort: sink.port };
    const paths: PathResult[] = [];
    for (const spec of PATHS) paths.push(await measure(spec, ctx, runs, caps, bar));
    bar.clear();
    const report: BenchReport = {
      schema: 'zerocopy-bench/2',
      version: ZEROCOPY_VERSION,
      machine: {
        cores: cpus().length,
        cpu: cpus()[0]?.model.trim() ?? 'unknown',
        kernel: release(),
        node: process.version,
        filesystem: caps.filesystem?.type ?? 'unknown',
        dir,
      },
      workload: { bytes: size, runs, quick, cold },
      eviction: cold ? eviction(paths) : null,
      paths,
      winners: [],
    };
    report.winners = judge(paths);
    if (html !== undefined) writeFileSync(html, renderHtml(report));
    process.stdout.write(parsed.values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatTable(report)}\n`);
    if (html !== undefined && !parsed.values.json) process.stdout.write(`report: ${html}\n`);
  } finally {
    bar.clear();
    sink?.child.kill();
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
