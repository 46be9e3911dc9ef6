/**
 * `zerocopy bench`: the seed's story measured on this machine. Each data path that exists here moves
 * the same bytes — file → socket, file → file, socket → socket — and the table shows what each costs:
 * throughput, CPU per GiB, the system calls the native layer counted, context switches, and beside
 * them the seed's model of CPU copies and user/kernel switches per chunk.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, createReadStream, fsyncSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

import {
  alignedBuffer,
  capabilities,
  copyFile,
  mmap,
  openDirect,
  pipe,
  residency,
  sendFile,
  sys,
  type Capabilities,
  type CopyMechanism,
  type Residency,
} from 'zerocopy';

import { renderHtml } from './bench-html.js';
import { benchBinding } from './peer.js';
import type { BenchReport, Eviction, Group, Model, PathResidency, PathResult, Picture } from './bench-report.js';
import { cacheLine, cacheShares, counts, PICTURES, share } from './pictures.js';
import { formatBytes, intOption, parse, percent, ProgressBar, str, UsageError } from './util.js';

/** Replaced by the package version at build time (scripts/build-js.mjs). */
declare const ZEROCOPY_VERSION: string;
/** The URL of the running CLI bundle (dist/cli.mjs), set by its banner (scripts/build-js.mjs). */
declare const ZEROCOPY_CLI_URL: string;

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

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface Context {
  /** Evict the file before each run instead of warming it. */
  cold: boolean;
  /** Whether `residency()` works here (Linux): without it nothing is recorded about the page cache. */
  seesCache: boolean;
  file: string;
  dir: string;
  size: number;
  sinkPort: number;
}

/** What one run of a path reports: bytes moved, and system calls made by Node (not the native layer). */
interface Moved {
  bytes: number;
  nodeCalls?: number;
}

interface PathSpec {
  id: string;
  /** Set-up outside the measured time (e.g. starting a peer process); its result goes to `run`. */
  prepare?: (ctx: Context) => Promise<Prepared>;
  group: Group;
  name: string;
  mechanism: string;
  baseline?: boolean;
  /** Why the path cannot run here, or undefined when it can. */
  unavailable?: (caps: Capabilities) => string | undefined;
  run: (ctx: Context, prepared: Prepared) => Promise<Moved>;
}

/** What a path's `prepare` hands to its `run`; `release` undoes the set-up after the run. */
interface Prepared {
  a?: net.Socket;
  b?: net.Socket;
  go?: () => void;
  release?: () => Promise<void>;
}

const noSplice = (caps: Capabilities): string | undefined => (caps.splice ? undefined : 'this kernel or sandbox refuses splice(2)');

/** Connects to the sink, lets `send` write into the socket, ends it and waits until the sink has read all. */
async function toSink(ctx: Context, send: (socket: net.Socket) => Promise<Moved>): Promise<Moved> {
  const socket = net.connect(ctx.sinkPort, '127.0.0.1');
  await once(socket, 'connect');
  socket.resume();
  const closed = once(socket, 'close');
  const moved = await send(socket);
  socket.end();
  await closed;
  return moved;
}

function write(socket: net.Socket, chunk: Buffer): Promise<void> {
  return new Promise((ok, fail) => socket.write(chunk, (err) => (err ? fail(err) : ok())));
}

/** A file → file path: copyFile forced to one mechanism. */
function copyPath(spec: Omit<PathSpec, 'group' | 'run' | 'mechanism'> & { mechanism: CopyMechanism }): PathSpec {
  return {
    ...spec,
    group: 'file → file',
    run: async (ctx) => ({ bytes: (await copyFile(ctx.file, join(ctx.dir, 'copy'), { mechanism: spec.mechanism })).bytes }),
  };
}

/**
 * A socket → socket path: `move` relays from the source process (`a`) to the sink (`b`), set up before
 * the source is told to go; the run ends when the sink has closed `b` (every byte read).
 */
function relayPath(spec: Omit<PathSpec, 'group' | 'run' | 'prepare'> & { move: (a: net.Socket, b: net.Socket) => Promise<Moved> }): PathSpec {
  const { move, ...rest } = spec;
  return {
    ...rest,
    group: 'socket → socket',
    prepare: relay,
    run: async (_ctx, { a, b, go }) => {
      if (!a || !b || !go) throw new Error('relay not prepared');
      const closed = once(b, 'close');
      const moving = move(a, b);
      go();
      const [moved] = await Promise.all([moving, closed]);
      return moved;
    },
  };
}

const PATHS: PathSpec[] = [
  {
    id: 'node-streams',
    group: 'file → socket',
    name: 'Node streams: read() + write()',
    mechanism: 'readwrite',
    baseline: true,
    run: (ctx) =>
      toSink(ctx, async (socket) => {
        let chunks = 0;
        const stream = createReadStream(ctx.file);
        stream.on('data', () => chunks++);
        await pipeline(stream, socket, { end: false });
        // Each chunk is one read() and at least one write().
        return { bytes: ctx.size, nodeCalls: 2 * chunks };
      }),
  },
  {
    id: 'readwrite',
    group: 'file → socket',
    name: 'read() + write(), native 64 KiB loop',
    mechanism: 'readwrite',
    run: (ctx) => toSink(ctx, async (socket) => ({ bytes: (await sendFile(socket, ctx.file, { mechanism: 'readwrite' })).bytes })),
  },
  {
    id: 'mmap-write',
    group: 'file → socket',
    name: 'mmap + write()',
    mechanism: 'mmap',
    run: (ctx) =>
      toSink(ctx, async (socket) => {
        const mapped = await mmap(ctx.file);
        try {
          await write(socket, mapped.buffer);
          // libuv writes until the socket is full and goes on when it drains: at least one call.
          return { bytes: mapped.length, nodeCalls: 1 };
        } finally {
          mapped.close();
        }
      }),
  },
  {
    id: 'sendfile',
    group: 'file → socket',
    name: 'sendfile',
    mechanism: 'sendfile',
    run: (ctx) => toSink(ctx, async (socket) => ({ bytes: (await sendFile(socket, ctx.file)).bytes })),
  },
  {
    id: 'splice',
    group: 'file → socket',
    name: 'splice (file → pipe → socket)',
    mechanism: 'splice',
    unavailable: noSplice,
    run: (ctx) =>
      toSink(ctx, async (socket) => {
        const fd = openSync(ctx.file, 'r');
        try {
          return { bytes: (await pipe(fd, socket, { end: false })).bytes };
        } finally {
          closeSync(fd);
        }
      }),
  },
  {
    id: 'direct',
    group: 'file → socket',
    name: 'O_DIRECT read() + write()',
    mechanism: 'direct',
    unavailable: (caps) => (caps.filesystem?.directIo ? undefined : `${caps.filesystem?.type ?? 'this filesystem'} refuses O_DIRECT`),
    run: (ctx) =>
      toSink(ctx, async (socket) => {
        const file = await openDirect(ctx.file);
        const buffer = alignedBuffer(8 * MiB);
        let at = 0;
        let writes = 0;
        try {
          for (let n; (n = await file.read(buffer, at)) > 0; at += n) {
            await write(socket, buffer.subarray(0, n));
            writes++;
          }
        } finally {
          await file.close();
        }
        return { bytes: at, nodeCalls: writes };
      }),
  },
  copyPath({ id: 'copy-readwrite', name: 'read() + write()', mechanism: 'readwrite', baseline: true }),
  copyPath({
    id: 'copy_file_range',
    name: 'copy_file_range',
    mechanism: 'copy_file_range',
  }),
  copyPath({
    id: 'reflink',
    name: 'reflink (FICLONE)',
    mechanism: 'reflink',
    unavailable: (caps) =>
      caps.filesystem?.reflink ? undefined : `${caps.filesystem?.type ?? 'this filesystem'} cannot share blocks (XFS with reflink, btrfs can)`,
  }),
  relayPath({
    id: 'node-pipe',
    name: 'Node a.pipe(b)',
    mechanism: 'readwrite',
    baseline: true,
    move: async (a, b) => {
      let chunks = 0;
      let bytes = 0;
      a.on('data', (d: Buffer) => {
        chunks++;
        bytes += d.length;
      });
      a.pipe(b);
      await once(b, 'close');
      return { bytes, nodeCalls: 2 * chunks };
    },
  }),
  relayPath({
    id: 'splice-relay',
    name: 'splice (socket → pipe → socket)',
    mechanism: 'splice',
    unavailable: noSplice,
    move: async (a, b) => ({ bytes: (await pipe(a, b)).bytes }),
  }),
];

/**
 * Sets up a relay outside the measured time: a source process connected to us (`a`, waiting for
 * `go()` to start sending the file) and our connection to the sink (`b`).
 */
async function relay(ctx: Context): Promise<Prepared> {
  const server = net.createServer();
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()));
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const child = startPeer(['source', String((server.address() as net.AddressInfo).port), ctx.file]);
  try {
    const [a] = await accepted;
    const b = net.connect(ctx.sinkPort, '127.0.0.1');
    await once(b, 'connect');
    b.resume();
    return {
      a,
      b,
      go: () => child.stdin?.write('go\n'),
      release: async () => {
        a.destroy();
        b.destroy();
        await exited(child);
      },
    };
  } finally {
    server.close();
  }
}

function startPeer(args: string[]): ChildProcess {
  const cli = fileURLToPath(ZEROCOPY_CLI_URL);
  return spawn(process.execPath, [cli, '__bench-peer', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return once(child, 'exit').then(() => {});
}

async function startSink(): Promise<{ child: ChildProcess; port: number }> {
  const child = startPeer(['sink']);
  const stdout = child.stdout;
  if (!stdout) throw new Error('sink has no stdout');
  const [line] = (await once(stdout, 'data')) as [Buffer];
  const port = Number(String(line).trim());
  if (!Number.isInteger(port) || port <= 0) throw new Error(`the sink did not start: ${String(line)}`);
  return { child, port };
}

function writeWorkload(path: string, size: number): void {
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
function sees(file: string): boolean {
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
function unmeasured(spec: PathSpec, reason?: string): PathResult {
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

async function measure(spec: PathSpec, ctx: Context, runs: number, caps: Capabilities, bar: ProgressBar): Promise<PathResult> {
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
function eviction(paths: PathResult[]): Eviction {
  const ran = paths.flatMap((p) => (p.residency ? [p.residency] : []));
  const pages = Math.max(0, ...ran.map((r) => r.pages));
  const worstResident = Math.max(0, ...ran.flatMap((r) => r.before));
  return { method: 'fsync + posix_fadvise(DONTNEED)', evicted: worstResident <= pages / 100, pages, worstResident };
}

/** Fills `speedup` against each group's baseline and says, per group, which path wins and why. */
function judge(paths: PathResult[]): BenchReport['winners'] {
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
