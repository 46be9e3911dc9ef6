/** `zerocopy proxy --listen [HOST:]PORT --to HOST:PORT`: a TCP relay built on proxy(). */
import net from 'node:net';

import { proxy, type RelayError } from 'zerocopy';

import { intOption, parse, str, UsageError } from './util.js';

const HELP = `Usage: zerocopy proxy --listen [HOST:]PORT --to HOST:PORT

Relays every TCP connection accepted on --listen to --to with proxy(): the bytes move socket -> pipe
-> socket inside the kernel (splice), and a half-close on either side is forwarded to the other.
Logs one line per connection when it ends: client, bytes each way, duration, and the mechanism or
the error. SIGINT or SIGTERM stops accepting, lets open connections finish (up to 10 s), and exits.

Options:
  --listen [HOST:]PORT  where to accept connections (HOST default 127.0.0.1; [::1]:PORT for IPv6;
                        PORT 0 picks a free one)
  --to HOST:PORT        where to connect for each accepted connection
  --pipe-size BYTES     kernel pipe capacity per direction (default 1 MiB, capped by the kernel)
  --verbose             print stack traces on errors
  -h, --help            show this help
`;

/** How long open connections get after SIGINT/SIGTERM before they are cut. */
const GRACE_MS = 10_000;

interface Address {
  host: string;
  port: number;
}

/** `[::1]:8080`, `host:8080`, or (when `defaultHost` is given) `8080`. */
function parseAddress(value: string, option: string, defaultHost?: string): Address {
  const form = defaultHost === undefined ? 'HOST:PORT (e.g. db.internal:5432)' : '[HOST:]PORT (e.g. 8080 or 0.0.0.0:8080)';
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]+)):)?(\d+)$/.exec(value);
  const host = m?.[1] ?? m?.[2] ?? defaultHost;
  if (!m || host === undefined) throw new UsageError(`--${option} must be ${form}, got '${value}'`);
  const port = Number(m[3]);
  if (port > 65535 || (port === 0 && defaultHost === undefined)) throw new UsageError(`--${option}: the port must be 1-65535, got ${port}`);
  return { host, port };
}

const show = ({ host, port }: Address): string => `${host.includes(':') ? `[${host}]` : host}:${port}`;

export async function proxyCommand(args: string[]): Promise<void> {
  const parsed = parse(args, { listen: { type: 'string' }, to: { type: 'string' }, 'pipe-size': { type: 'string' } }, HELP);
  if (!parsed) return;
  const listenArg = str(parsed, 'listen');
  const toArg = str(parsed, 'to');
  if (listenArg === undefined || toArg === undefined) throw new UsageError('proxy needs --listen [HOST:]PORT and --to HOST:PORT');
  const listen = parseAddress(listenArg, 'listen', '127.0.0.1');
  const to = parseAddress(toArg, 'to');
  const pipeSizeArg = str(parsed, 'pipe-size');
  const pipeSize = pipeSizeArg === undefined ? undefined : intOption(pipeSizeArg, 'pipe-size', 0, 1);

  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const started = process.hrtime.bigint();
    const peer = `${client.remoteAddress ?? '-'}:${client.remotePort ?? '-'}`;
    const upstream = net.connect(to.port, to.host);
    open.add(client);
    open.add(upstream);
    const log = (outcome: string, up: number, down: number): void => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      process.stdout.write(`[${new Date().toISOString()}] ${peer} -> ${show(to)} ${up} up ${down} down ${ms.toFixed(1)}ms ${outcome}\n`);
    };
    proxy(client, upstream, { pipeSize })
      .then(
        (r) => log(r.mechanism, r.aToB, r.bToA),
        (err: RelayError) => log(`error:${err.code ?? err.message}`, err.aToB ?? 0, err.bToA ?? 0),
      )
      .finally(() => {
        open.delete(client);
        open.delete(upstream);
        if (stopping && open.size === 0) finished?.();
      });
  });
  let stopping = false;
  let finished: (() => void) | undefined;
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(listen.port, listen.host, () => ok());
  });
  server.on('error', (err) => process.stderr.write(`zerocopy: accept: ${err.message}\n`));
  const address = server.address() as net.AddressInfo;
  process.stdout.write(`proxying ${show({ host: address.address, port: address.port })} -> ${show(to)} (Ctrl-C to stop)\n`);

  await new Promise<void>((done) => {
    finished = done;
    const stop = (signal: string): void => {
      stopping = true;
      process.stdout.write(`${signal}: closing (${open.size / 2} connection${open.size === 2 ? '' : 's'} open)\n`);
      server.close();
      if (open.size === 0) done();
      // Connections still open get GRACE_MS; then they are cut (their proxies then log the error).
      setTimeout(() => {
        for (const socket of open) socket.destroy();
      }, GRACE_MS).unref();
      process.once(signal, () => process.exit(130));
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
