/** `zerocopy serve [DIR]`: a static file server on node:http using serveFile. */
import http from 'node:http';
import { resolve } from 'node:path';
import { statSync } from 'node:fs';

import { serveFile } from 'zerocopy';

import { intOption, parse, str, UsageError } from './util.js';

const HELP = `Usage: zerocopy serve [DIR] [--port N] [--host H]

Serves the files below DIR (default: the current directory) over HTTP with serveFile: sendfile for
bodies, ranges, conditional requests, and nothing from outside DIR. Logs one line per request.
SIGINT or SIGTERM stops accepting, lets responses in progress finish (up to 10 s), and exits.

Options:
  --port N     port to listen on (default 8080; 0 picks a free one)
  --host H     address to listen on (default 127.0.0.1)
  --max-age S  Cache-Control max-age in seconds (default 0)
  --verbose    print stack traces on errors
  -h, --help   show this help
`;

export async function serve(args: string[]): Promise<void> {
  const parsed = parse(
    args,
    { port: { type: 'string' }, host: { type: 'string' }, 'max-age': { type: 'string' } },
    HELP,
    true,
  );
  if (!parsed) return;
  if (parsed.positionals.length > 1) throw new UsageError('serve takes at most one DIR');
  const root = resolve(parsed.positionals[0] ?? '.');
  if (!statSync(root).isDirectory()) throw new UsageError(`'${root}' is not a directory`);
  const port = intOption(str(parsed, 'port'), 'port', 8080);
  if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
  const host = str(parsed, 'host') ?? '127.0.0.1';
  const maxAge = intOption(str(parsed, 'max-age'), 'max-age', 0);

  const server = http.createServer((req, res) => {
    const started = process.hrtime.bigint();
    const log = (status: number | string, bytes: number, mechanism: string): void => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      process.stdout.write(
        `${req.socket.remoteAddress ?? '-'} - [${new Date().toISOString()}] "${req.method} ${req.url} HTTP/${req.httpVersion}" ${status} ${bytes} ${mechanism} ${ms.toFixed(1)}ms\n`,
      );
    };
    serveFile(req, res, undefined, { root, maxAge }).then(
      (r) => log(r.status, r.bytes, r.mechanism),
      (err: NodeJS.ErrnoException & { bytesTransferred?: number }) => log(`error:${err.code ?? err.message}`, err.bytesTransferred ?? 0, '-'),
    );
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => ok());
  });
  const address = server.address();
  const shown = typeof address === 'object' && address ? `${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}` : String(address);
  process.stdout.write(`serving ${root} on http://${shown}/ (Ctrl-C to stop)\n`);

  await new Promise<void>((done) => {
    const stop = (signal: string): void => {
      process.stdout.write(`${signal}: closing\n`);
      server.close(() => done());
      server.closeIdleConnections();
      // Responses still running get 10 s; then their connections are cut.
      setTimeout(() => server.closeAllConnections(), 10_000).unref();
      process.once(signal, () => process.exit(130));
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}
