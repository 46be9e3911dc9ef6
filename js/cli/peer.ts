/**
 * The bench's helper processes (`zerocopy __bench-peer sink|source …`, not for users): a loopback TCP
 * sink that reads every connection to its end with the native drain (so reading costs the process
 * under test nothing and is never the bottleneck), and a source that sends a file into a socket.
 * They run in their own processes so their CPU is not counted against the path being measured.
 */
import net from 'node:net';
import { createRequire } from 'node:module';

import { sendFile } from 'zerocopy';

import { socketFd } from '../internals.js';
import { UsageError } from './util.js';

interface BenchBinding {
  drain(fd: number): Promise<number>;
  syscallCounts(): Record<string, number>;
}

/** The URL of the running CLI bundle (dist/cli.mjs), set by its banner (scripts/build-js.mjs). */
declare const ZEROCOPY_CLI_URL: string;

/** The package's private native helpers (syscall counts, drain), through its `#native` import. */
export function benchBinding(): BenchBinding {
  return createRequire(ZEROCOPY_CLI_URL)('#native') as BenchBinding;
}

function fdOf(socket: net.Socket): number {
  const fd = socketFd(socket);
  if (fd === undefined || fd < 0) throw new Error('socket without an fd');
  return fd;
}

/** Accepts connections on 127.0.0.1 and drains each; prints the port on the first line of stdout. */
async function sink(): Promise<void> {
  const { drain } = benchBinding();
  // pauseOnConnect: Node never reads these sockets; the native drain does.
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    socket.on('error', () => {});
    drain(fdOf(socket)).then(
      () => socket.destroy(),
      () => socket.destroy(),
    );
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', () => ok()));
  const address = server.address() as net.AddressInfo;
  process.stdout.write(`${address.port}\n`);
  // Lives until the bench kills it (or its stdin closes, if the bench died).
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

/** Connects to PORT and, once told "go" on stdin, sends FILE into the connection and ends it. */
async function source(port: number, file: string): Promise<void> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((ok, fail) => socket.once('connect', () => ok()).once('error', fail));
  await new Promise<void>((ok) => process.stdin.once('data', () => ok()));
  process.stdin.pause();
  await sendFile(socket, file);
  await new Promise<void>((ok) => socket.end(() => ok()));
  socket.destroy();
}

export async function peer(args: string[]): Promise<void> {
  const [role, ...rest] = args;
  if (role === 'sink') return sink();
  if (role === 'source' && rest.length === 2) return source(Number(rest[0]), String(rest[1]));
  throw new UsageError('__bench-peer sink | source PORT FILE');
}
