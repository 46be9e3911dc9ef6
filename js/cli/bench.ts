/**
 * `zerocopy bench`: the seed's story measured on this machine. Each data path that exists here moves
 * the same bytes — file → socket, file → file, socket → socket — and the table shows what each costs:
 * throughput, CPU per GiB, the system calls the native layer counted, context switches, and beside
 * them the seed's model of CPU copies and user/kernel switches per chunk.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, createReadStream, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

import { alignedBuffer, capabilities, copyFile, mmap, openDirect, pipe, sendFile, type Capabilities, type CopyMechanism } from 'zerocopy';

import { renderHtml } from './bench-html.js';
import { benchBinding } from './peer.js';
import { formatBytes, intOption, parse, ProgressBar, str, UsageError } from './util.js';

/** Replaced by the package version at build time (scripts/build-js.mjs). */
declare const ZEROCOPY_VERSION: string;
/** The URL of the running CLI bundle (dist/cli.mjs), set by its banner (scripts/build-js.mjs). */
declare const ZEROCOPY_CLI_URL: string;

const HELP = `Usage: zerocopy bench [--size MiB] [--runs N] [--quick] [--json] [--html FILE] [--dir DIR]

Measures, on this machine, what each zero-copy path saves against the traditional read() + write():
file -> socket (Node streams, a native read/write loop, mmap + write, sendfile, splice, O_DIRECT),
file -> file (read/write, copy_file_range, reflink) and socket -> socket (Node pipe, splice), over
loopback TCP to a sink in another process. Prints a table; the last lines say which path wins here and why.

Options:
  --size MiB   bytes per path and run (default 256)
  --runs N     runs per path; the median is reported (default 3)
  --quick      16 MiB, one run: a smoke test
  --json       print the results as JSON (schema in the README) instead of the table
  --html FILE  also write a self-contained report with charts to FILE
  --dir DIR    where the temporary files go (default: the system temp directory)
  --verbose    print stack traces on errors
  -h, --help   show this help
`;

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export type Group = 'file → socket' | 'file → file' | 'socket → socket';

/** The seed's model of one chunk's trip along a path. */
export interface Model {
  syscallsPerChunk: number;
  userKernelSwitchesPerChunk: number;
  cpuCopies: number;
  dmaCopies: number;
}

/** One path's results: the `paths[]` entries of the JSON output. */
export interface PathResult {
  id: string;
  group: Group;
  name: string;
  mechanism: string;
  baseline: boolean;
  available: boolean;
  reason?: string;
  model: Model;
  runs: number[];
  medianSeconds: number | null;
  bestSeconds: number | null;
  mibPerSecond: number | null;
  cpuSecondsPerGiB: number | null;
  syscalls: number | null;
  syscallsEstimated: boolean;
  voluntaryContextSwitches: number | null;
  involuntaryContextSwitches: number | null;
  /** Throughput against the group's baseline (Node streams, read/write, Node pipe). */
  speedup: number | null;
}

/** The whole JSON document `--json` prints. */
export interface BenchReport {
  schema: 'zerocopy-bench/1';
  version: string;
  machine: { cores: number; cpu: string; kernel: string; node: string; filesystem: string; dir: string };
  workload: { bytes: number; runs: number; quick: boolean };
  paths: PathResult[];
  winners: { group: Group; id: string; line: string }[];
}

interface Context {
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
  model: Model;
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

const COPY2: Model = { syscallsPerChunk: 2, userKernelSwitchesPerChunk: 4, cpuCopies: 2, dmaCopies: 2 };
/** Two splice calls per chunk (into the pipe, out of it); the pages move by reference. */
const SPLICE: Model = { syscallsPerChunk: 2, userKernelSwitchesPerChunk: 4, cpuCopies: 0, dmaCopies: 2 };

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
    model: COPY2,
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
    model: COPY2,
    run: (ctx) => toSink(ctx, async (socket) => ({ bytes: (await sendFile(socket, ctx.file, { mechanism: 'readwrite' })).bytes })),
  },
  {
    id: 'mmap-write',
    group: 'file → socket',
    name: 'mmap + write()',
    mechanism: 'mmap',
    model: { syscallsPerChunk: 2, userKernelSwitchesPerChunk: 4, cpuCopies: 1, dmaCopies: 2 },
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
    model: { syscallsPerChunk: 1, userKernelSwitchesPerChunk: 2, cpuCopies: 0, dmaCopies: 2 },
    run: (ctx) => toSink(ctx, async (socket) => ({ bytes: (await sendFile(socket, ctx.file)).bytes })),
  },
  {
    id: 'splice',
    group: 'file → socket',
    name: 'splice (file → pipe → socket)',
    mechanism: 'splice',
    model: SPLICE,
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
    model: { syscallsPerChunk: 2, userKernelSwitchesPerChunk: 4, cpuCopies: 1, dmaCopies: 2 },
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
  copyPath({ id: 'copy-readwrite', name: 'read() + write()', mechanism: 'readwrite', baseline: true, model: COPY2 }),
  copyPath({
    id: 'copy_file_range',
    name: 'copy_file_range',
    mechanism: 'copy_file_range',
    model: { syscallsPerChunk: 1, userKernelSwitchesPerChunk: 2, cpuCopies: 1, dmaCopies: 2 },
  }),
  copyPath({
    id: 'reflink',
    name: 'reflink (FICLONE)',
    mechanism: 'reflink',
    model: { syscallsPerChunk: 1, userKernelSwitchesPerChunk: 2, cpuCopies: 0, dmaCopies: 0 },
    unavailable: (caps) =>
      caps.filesystem?.reflink ? undefined : `${caps.filesystem?.type ?? 'this filesystem'} cannot share blocks (XFS with reflink, btrfs can)`,
  }),
  relayPath({
    id: 'node-pipe',
    name: 'Node a.pipe(b)',
    mechanism: 'readwrite',
    baseline: true,
    model: COPY2,
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
    model: SPLICE,
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

async function measure(spec: PathSpec, ctx: Context, runs: number, caps: Capabilities, bar: ProgressBar): Promise<PathResult> {
  const reason = spec.unavailable?.(caps);
  const base: PathResult = {
    id: spec.id,
    group: spec.group,
    name: spec.name,
    mechanism: spec.mechanism,
    baseline: Boolean(spec.baseline),
    available: reason === undefined,
    model: spec.model,
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
  };
  if (reason !== undefined) return { ...base, reason };
  const cpu: number[] = [];
  const calls: number[] = [];
  const vcs: number[] = [];
  const ivcs: number[] = [];
  let estimated = false;
  for (let run = 0; run < runs; run++) {
    bar.status(`bench: ${spec.group}: ${spec.name} (run ${run + 1}/${runs})`);
    warm(ctx.file);
    rmSync(join(ctx.dir, 'copy'), { force: true });
    const prepared = (await spec.prepare?.(ctx)) ?? {};
    const usage0 = process.resourceUsage();
    const calls0 = nativeCalls();
    const t0 = process.hrtime.bigint();
    const moved = await spec.run(ctx, prepared);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const usage = process.resourceUsage();
    await prepared.release?.();
    if (moved.bytes !== ctx.size) throw new Error(`${spec.name} moved ${moved.bytes} of ${ctx.size} bytes`);
    base.runs.push(seconds);
    cpu.push((usage.userCPUTime - usage0.userCPUTime + usage.systemCPUTime - usage0.systemCPUTime) / 1e6);
    calls.push(nativeCalls() - calls0 + (moved.nodeCalls ?? 0));
    estimated ||= moved.nodeCalls !== undefined;
    vcs.push(usage.voluntaryContextSwitches - usage0.voluntaryContextSwitches);
    ivcs.push(usage.involuntaryContextSwitches - usage0.involuntaryContextSwitches);
  }
  rmSync(join(ctx.dir, 'copy'), { force: true });
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
  };
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
  const header = ['path', 'MiB/s', 'CPU s/GiB', 'syscalls', 'vol cs', 'invol cs', 'copies', 'switches', 'vs baseline'];
  const rows: string[][] = [];
  let group: Group | undefined;
  for (const p of report.paths) {
    if (p.group !== group) {
      group = p.group;
      rows.push([`${group}`, '', '', '', '', '', '', '', '']);
    }
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
            String(p.model.cpuCopies),
            String(p.model.userKernelSwitchesPerChunk),
            p.baseline ? 'baseline' : p.speedup === null ? '-' : `${p.speedup.toFixed(2)}x`,
          ]
        : [`  ${p.name}`, `not here: ${p.reason ?? ''}`, '', '', '', '', String(p.model.cpuCopies), String(p.model.userKernelSwitchesPerChunk), ''],
    );
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[1]?.startsWith('not here') && i > 0 && i < 6 ? 0 : (r[i] ?? '').length))));
  const line = (cells: string[]): string =>
    cells[1]?.startsWith('not here')
      ? `${(cells[0] ?? '').padEnd(widths[0] as number)}  ${cells[1]}`
      : cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  const m = report.machine;
  return [
    `zerocopy bench: ${formatBytes(report.workload.bytes)} per path, median of ${report.workload.runs} run${report.workload.runs === 1 ? '' : 's'}`,
    `machine: ${m.cores} cores (${m.cpu}), Linux ${m.kernel}, Node ${m.node}, ${m.filesystem} at ${m.dir}`,
    '',
    line(header),
    ...rows.map(line),
    '',
    'copies, switches: the seed\'s model per chunk (CPU copies; user/kernel switches). syscalls: counted by',
    'the native layer (≈: Node\'s own reads and writes estimated from its chunks). cs: context switches.',
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
    const ctx: Context = { file, dir, size, sinkPort: sink.port };
    const paths: PathResult[] = [];
    for (const spec of PATHS) paths.push(await measure(spec, ctx, runs, caps, bar));
    bar.clear();
    const report: BenchReport = {
      schema: 'zerocopy-bench/1',
      version: ZEROCOPY_VERSION,
      machine: {
        cores: cpus().length,
        cpu: cpus()[0]?.model.trim() ?? 'unknown',
        kernel: release(),
        node: process.version,
        filesystem: caps.filesystem?.type ?? 'unknown',
        dir,
      },
      workload: { bytes: size, runs, quick },
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
