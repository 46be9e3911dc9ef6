/**
 * The bench's paths: each data path it measures (file → socket, file → file, socket → socket), how
 * it is set up outside the measured time, and its peer processes (the sink, the source).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, createReadStream, openSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { alignedBuffer, copyFile, mmap, openDirect, pipe, sendFile, type Capabilities, type CopyMechanism } from 'zerocopy';
import type { Group } from './bench-report.js';

/** The URL of the running CLI bundle (dist/cli.mjs), set by its banner (scripts/build-js.mjs). */
declare const ZEROCOPY_CLI_URL: string;

const MiB = 1024 * 1024;

export interface Context {
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
export interface Moved {
  bytes: number;
  nodeCalls?: number;
}

export interface PathSpec {
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
export interface Prepared {
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

export const PATHS: PathSpec[] = [
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

export async function startSink(): Promise<{ child: ChildProcess; port: number }> {
  const child = startPeer(['sink']);
  const stdout = child.stdout;
  if (!stdout) throw new Error('sink has no stdout');
  const [line] = (await once(stdout, 'data')) as [Buffer];
  const port = Number(String(line).trim());
  if (!Number.isInteger(port) || port <= 0) throw new Error(`the sink did not start: ${String(line)}`);
  return { child, port };
}
