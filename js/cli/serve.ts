/** `zerocopy serve [DIR]`: a static file server on node:http using serveStatic. */
import http from 'node:http';
import { readdir, realpath } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { statSync } from 'node:fs';

import { serveFile, serveStatic, type ServeResult } from 'zerocopy';

import { intOption, parse, str, UsageError } from './util.js';

const HELP = `Usage: zerocopy serve [DIR] [--port N] [--host H] [--list] [--spa] [--precompressed]

Serves the files below DIR (default: the current directory) over HTTP with serveStatic: sendfile for
bodies, ranges (also multipart), conditional requests, index.html for directories, and nothing from
outside DIR. Logs one line per request. SIGINT or SIGTERM stops accepting, lets responses in progress
finish (up to 10 s), and exits.

Options:
  --port N         port to listen on (default 8080; 0 picks a free one)
  --host H         address to listen on (default 127.0.0.1)
  --max-age S      Cache-Control max-age in seconds (default 0)
  --list           list a directory that has no index.html (names escaped, dotfiles hidden)
  --spa            answer unknown paths with /index.html (a single-page app's client-side routes)
  --precompressed  serve file.br, file.zst or file.gz beside a file when Accept-Encoding allows
  --verbose        print stack traces on errors
  -h, --help       show this help
`;

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The directory a URL path names beneath root, or undefined: no NUL, no '..' segment, no dotfile
 * segment, and its real path still beneath root's. The listing shows names only, never file bytes.
 */
async function listedDirectory(root: string, url: string | undefined): Promise<string | undefined> {
  let path: string;
  try {
    path = decodeURIComponent((url ?? '/').split(/[?#]/)[0] ?? '/');
  } catch {
    return undefined;
  }
  const segments = path.split('/').filter((seg) => seg !== '');
  if (!path.endsWith('/') || path.includes('\0') || segments.some((seg) => seg === '..' || seg.startsWith('.'))) return undefined;
  try {
    const [realRoot, real] = await Promise.all([realpath(root), realpath(join(root, ...segments))]);
    return real === realRoot || real.startsWith(realRoot + sep) ? real : undefined;
  } catch {
    return undefined;
  }
}

async function listing(dir: string, urlPath: string): Promise<string> {
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith('.')).sort((a, b) => a.name.localeCompare(b.name));
  const items = entries.map((e) => {
    const name = e.isDirectory() ? `${e.name}/` : e.name;
    return `<li><a href="${escapeHtml(encodeURIComponent(e.name))}${e.isDirectory() ? '/' : ''}">${escapeHtml(name)}</a></li>`;
  });
  const title = `Index of ${escapeHtml(urlPath)}`;
  return `<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>${title}</title></head>\n<body>\n<h1>${title}</h1>\n<ul>\n${urlPath === '/' ? '' : '<li><a href="../">../</a></li>\n'}${items.join('\n')}\n</ul>\n</body>\n</html>\n`;
}

export async function serve(args: string[]): Promise<void> {
  const parsed = parse(
    args,
    {
      port: { type: 'string' },
      host: { type: 'string' },
      'max-age': { type: 'string' },
      list: { type: 'boolean' },
      spa: { type: 'boolean' },
      precompressed: { type: 'boolean' },
    },
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
  const list = parsed.values.list === true;
  const spa = parsed.values.spa === true;
  const precompressed = parsed.values.precompressed === true;
  // fallthrough: false: what serveStatic cannot serve comes to `next` with its status.
  const handler = serveStatic(root, { maxAge: maxAge * 1000, precompressed, fallthrough: false });

  const server = http.createServer((req, res) => {
    const started = process.hrtime.bigint();
    const log = (status: number | string, bytes: number, mechanism: string): void => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      process.stdout.write(
        `${req.socket.remoteAddress ?? '-'} - [${new Date().toISOString()}] "${req.method} ${req.url} HTTP/${req.httpVersion}" ${status} ${bytes} ${mechanism} ${ms.toFixed(1)}ms\n`,
      );
    };
    const done = (r: ServeResult): void => log(r.status, r.bytes, r.mechanism);
    const failed = (err: NodeJS.ErrnoException & { bytesTransferred?: number }): void => log(`error:${err.code ?? err.message}`, err.bytesTransferred ?? 0, '-');
    const text = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.statusCode = status;
      res.setHeader('Content-Type', type);
      res.setHeader('Content-Length', Buffer.byteLength(body));
      res.end(req.method === 'HEAD' ? undefined : body);
      log(status, 0, 'none');
    };
    const next = async (err?: unknown): Promise<void> => {
      const status = (err as { status?: number } | undefined)?.status ?? 500;
      if (status !== 404) return text(status, `${http.STATUS_CODES[status] ?? 'Error'}\n`);
      if (list) {
        const dir = await listedDirectory(root, req.url);
        if (dir !== undefined) return text(200, await listing(dir, (req.url ?? '/').split(/[?#]/)[0] ?? '/'), 'text/html; charset=utf-8');
      }
      if (spa) return serveFile(req, res, '/index.html', { root, maxAge }).then(done, failed);
      text(404, 'Not Found\n');
    };
    handler(req, res, (err) => {
      next(err).catch(failed);
    }).then((r) => r && done(r), failed);
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
