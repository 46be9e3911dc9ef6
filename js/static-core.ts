/**
 * The part of the framework adapters that decides what a request for a static file gets, with
 * serve-static's and send's rules (the ones users of express.static know), before a byte is written:
 * a file, a redirect to add the trailing slash, or a status to fall through on. Delivering the file is
 * serveFile's job (sendfile, validators, ranges). Bundled into each adapter; it holds no state.
 */
import { stat as statCallback, type Stats } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, posix, resolve, sep } from 'node:path';

import ms from 'ms';

import { serveFile, type ServeResult } from './index.js';

/** serve-static's options (send's, plus fallthrough, redirect and setHeaders). */
export interface StaticOptions {
  /** Honour Range requests and send Accept-Ranges. Default true. */
  acceptRanges?: boolean;
  /** Send Cache-Control. Default true. */
  cacheControl?: boolean;
  /** Dotfiles (a path segment starting with '.'): 'allow', 'deny' (403) or 'ignore' (404, the default). */
  dotfiles?: 'allow' | 'deny' | 'ignore';
  /** Send an ETag and honour If-None-Match / If-Match. Default true. */
  etag?: boolean;
  /** Extensions tried, in order, for a path without one that is not found: `['html', 'htm']`. Default false. */
  extensions?: string[] | false;
  /** On 404 (and, for non-GET/HEAD, 405), call next() instead of answering. Default true. */
  fallthrough?: boolean;
  /** Add `immutable` to Cache-Control. Default false. */
  immutable?: boolean;
  /** Files tried for a directory URL; false for none. Default 'index.html'. */
  index?: string | string[] | false;
  /** Send Last-Modified and honour If-Modified-Since / If-Unmodified-Since. Default true. */
  lastModified?: boolean;
  /** Cache-Control max-age in milliseconds, or a string in the `ms` package's format ('1d'). Default 0. */
  maxAge?: number | string;
  /** serve-static's and send's lower-case spelling of maxAge. */
  maxage?: number | string;
  /** Redirect a directory URL without its trailing slash (301). Default true. */
  redirect?: boolean;
  /** Called with (res, path, stat) before the headers are written, to set custom ones. */
  setHeaders?: (res: ServerResponse, path: string, stat: Stats) => void;
  /**
   * Serve `file.br`, `file.zst` or `file.gz` from beside a file when Accept-Encoding allows it
   * (serveFile's `precompressed`): `true` for br, zstd, gzip, or the codings in your order. Default false.
   */
  precompressed?: boolean | Array<'br' | 'zstd' | 'gzip'>;
}

/** An Error with an HTTP status, shaped like the http-errors that send hands to next(err). */
export interface HttpError extends Error {
  status: number;
  statusCode: number;
  expose: boolean;
}

const STATUS_NAMES: Record<number, [string, string]> = {
  400: ['BadRequestError', 'Bad Request'],
  403: ['ForbiddenError', 'Forbidden'],
  404: ['NotFoundError', 'Not Found'],
  500: ['InternalServerError', 'Internal Server Error'],
};

/** As http-errors' createError(status, cause): an fs error keeps its message and code and gains the status. */
export function httpError(status: number, cause?: unknown): HttpError {
  let err: HttpError;
  if (cause instanceof Error) {
    err = cause as HttpError;
  } else {
    const [name, message] = STATUS_NAMES[status] ?? ['Error', 'Error'];
    err = new Error(message) as HttpError;
    err.name = name;
  }
  err.status = status;
  err.statusCode = status;
  err.expose = status < 500;
  return err;
}

/** What a request resolves to. */
export type Resolution =
  | { kind: 'file'; path: string; relative: string; stat: Stats }
  | { kind: 'redirect'; location: string }
  | { kind: 'error'; status: number; error: HttpError };

/** Options after validation, in the form the core uses. */
export interface Settings {
  root: string;
  acceptRanges: boolean;
  cacheControl: string | false;
  dotfiles: 'allow' | 'deny' | 'ignore';
  etag: boolean;
  extensions: string[];
  fallthrough: boolean;
  index: string[];
  lastModified: boolean;
  /** A directory URL without its trailing slash: 301 to add it, answer with its index, or 404. */
  directory: 'redirect' | 'index' | '404';
  setHeaders: StaticOptions['setHeaders'] | undefined;
  precompressed: boolean | Array<'br' | 'zstd' | 'gzip'>;
}

const MAX_MAXAGE = 60 * 60 * 24 * 365 * 1000; // send's cap: one year

/**
 * Checks and normalises serve-static's options: the same TypeErrors, with the same messages, for a
 * missing root, a root that is not a string and a setHeaders that is not a function.
 */
export function settings(root: unknown, options: StaticOptions | undefined, directory?: Settings['directory']): Settings {
  if (!root) throw new TypeError('root path required');
  if (typeof root !== 'string') throw new TypeError('root path must be a string');
  const o: StaticOptions = options ?? {};
  if (o.setHeaders && typeof o.setHeaders !== 'function') throw new TypeError('option setHeaders must be function');
  const rawAge = o.maxage ?? o.maxAge ?? 0;
  let maxAge = typeof rawAge === 'string' ? ms(rawAge as ms.StringValue) : Number(rawAge);
  maxAge = Number.isNaN(maxAge) ? 0 : Math.min(Math.max(0, maxAge), MAX_MAXAGE);
  const dotfiles = o.dotfiles ?? 'ignore';
  if (dotfiles !== 'allow' && dotfiles !== 'deny' && dotfiles !== 'ignore') {
    throw new TypeError('dotfiles option must be "allow", "deny", or "ignore"');
  }
  const index = o.index === undefined ? ['index.html'] : o.index === false ? [] : ([] as string[]).concat(o.index);
  const extensions = o.extensions === undefined || o.extensions === false ? [] : ([] as string[]).concat(o.extensions);
  if (![...index, ...extensions].every((v) => typeof v === 'string')) throw new TypeError('index and extensions options must be strings');
  return {
    root: resolve(root),
    acceptRanges: o.acceptRanges !== false,
    cacheControl: o.cacheControl === false ? false : `public, max-age=${Math.floor(maxAge / 1000)}${o.immutable ? ', immutable' : ''}`,
    dotfiles,
    etag: o.etag !== false,
    extensions,
    fallthrough: o.fallthrough !== false,
    index,
    lastModified: o.lastModified !== false,
    directory: directory ?? (o.redirect === false ? '404' : 'redirect'),
    setHeaders: o.setHeaders,
    precompressed: o.precompressed ?? false,
  };
}

/** The path of a request target, without query or fragment, as sent (still percent-encoded). */
export function pathnameOf(url: string | undefined): string {
  const target = url ?? '/';
  const end = target.search(/[?#]/);
  return end < 0 ? target : target.slice(0, end);
}

function stat(path: string): Promise<Stats | NodeJS.ErrnoException> {
  return new Promise((done) => statCallback(path, (err, st) => done(err ?? st)));
}

function notFoundCode(err: NodeJS.ErrnoException): boolean {
  return err.code === 'ENOENT' || err.code === 'ENOTDIR' || err.code === 'ENAMETOOLONG';
}

function failed(status: number, cause?: unknown): Resolution {
  return { kind: 'error', status, error: httpError(status, cause) };
}

/**
 * Resolves a URL path (percent-encoded, relative to the mount point) as send does: decoding, `..`
 * (403 when it climbs above root; resolved otherwise), dotfiles, the directory redirect, index files
 * and extensions. `originalPath` (the URL path before the framework stripped a mount point, plus
 * its query) is where the redirect goes.
 */
export async function resolveRequest(s: Settings, urlPath: string, originalUrl: string): Promise<Resolution> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return failed(400);
  }
  if (decoded.includes('\0')) return failed(400);
  // send: normalize('.' + sep + path), then refuse what still climbs out.
  const normalized = posix.normalize(`./${decoded}`);
  if (normalized === '..' || normalized.startsWith('../')) return failed(403);
  const trimmed = normalized.replace(/\/+$/, '');
  const relative = trimmed === '.' ? '' : trimmed;
  if (s.dotfiles !== 'allow' && relative.split('/').some((seg) => seg.length > 1 && seg.startsWith('.'))) {
    return failed(s.dotfiles === 'deny' ? 403 : 404);
  }
  const trailingSlash = decoded.endsWith('/');
  const full = relative === '' ? s.root : `${s.root}${sep}${relative}`;

  if (trailingSlash && s.index.length > 0) return indexFile(s, full, relative);

  const st = await stat(full);
  if (st instanceof Error) {
    if (notFoundCode(st) && !trailingSlash && !extname(full) && s.extensions.length > 0) {
      for (const ext of s.extensions) {
        const candidate = await stat(`${full}.${ext}`);
        if (!(candidate instanceof Error) && !candidate.isDirectory()) return { kind: 'file', path: `${full}.${ext}`, relative: `${relative}.${ext}`, stat: candidate };
      }
    }
    return failed(notFoundCode(st) ? 404 : 500, st);
  }
  if (st.isDirectory()) {
    if (!trailingSlash && s.directory === 'index' && s.index.length > 0) return indexFile(s, full, relative);
    if (trailingSlash || s.directory !== 'redirect') return failed(404);
    return { kind: 'redirect', location: redirectLocation(originalUrl) };
  }
  if (trailingSlash) return failed(404); // 'file.txt/': ENOTDIR for send
  return { kind: 'file', path: full, relative, stat: st };
}

/** The first of the index files in the directory `full` that is not a directory itself. */
async function indexFile(s: Settings, full: string, relative: string): Promise<Resolution> {
  let last: unknown;
  for (const name of s.index) {
    const st = await stat(`${full}${sep}${name}`);
    if (!(st instanceof Error) && !st.isDirectory()) return { kind: 'file', path: `${full}${sep}${name}`, relative: posix.join(relative, name), stat: st };
    last = st;
  }
  if (last instanceof Error && !notFoundCode(last)) return failed(500, last);
  return failed(404, last);
}

/** serve-static's Location: the original URL with '/' added to its path, leading slashes collapsed, encoded. */
function redirectLocation(originalUrl: string): string {
  const pathname = pathnameOf(originalUrl);
  const location = `${pathname}/`.replace(/^\/{2,}/, '/') + originalUrl.slice(pathname.length);
  return encodeUrl(location);
}

/** The `encodeurl` package's rule: encode what is not allowed in a URL, keep existing %XX escapes. */
function encodeUrl(url: string): string {
  return url
    .replace(/(?:[^\x21\x25\x26-\x3B\x3D\x3F-\x5B\x5D\x5F\x61-\x7A\x7E]|%(?![0-9A-Fa-f]{2}))+/g, (m) => encodeURI(m))
    .replace(/(^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])/g, '$1\uFFFD');
}

function escapeHtml(text: string): string {
  const named: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  return text.replace(/[&<>"']/g, (c) => named[c] ?? c);
}

/** serve-static's 301 document and headers. */
export function redirectResponse(location: string): { body: string; headers: Record<string, string> } {
  const body =
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Redirecting</title>\n</head>\n<body>\n' +
    `<pre>Redirecting to ${escapeHtml(location)}</pre>\n</body>\n</html>\n`;
  return {
    body,
    headers: {
      'Content-Type': 'text/html; charset=UTF-8',
      'Content-Length': String(Buffer.byteLength(body)),
      'Content-Security-Policy': "default-src 'none'",
      'X-Content-Type-Options': 'nosniff',
      Location: location,
    },
  };
}

export function sendRedirect(req: IncomingMessage, res: ServerResponse, location: string): void {
  const { body, headers } = redirectResponse(location);
  res.statusCode = 301;
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * Sends a resolved file with serveFile: beneath root again (openat2 RESOLVE_BENEATH where there is
 * one), so that a path swapped for a symlink between the stat and the open still cannot leave root.
 */
export function deliver(req: IncomingMessage, res: ServerResponse, s: Settings, file: { path: string; relative: string }): Promise<ServeResult> {
  const urlPath = file.relative.split('/').map(encodeURIComponent).join('/');
  return serveFile(req, res, urlPath, {
    root: s.root,
    dotfiles: 'allow',
    index: false,
    redirect: false,
    etag: s.etag,
    lastModified: s.lastModified,
    cacheControl: s.cacheControl,
    acceptRanges: s.acceptRanges,
    precompressed: s.precompressed,
  });
}
