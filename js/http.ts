/**
 * Serving files over node:http with sendfile: `serveFile`.
 *
 * HTTP semantics follow the `send` package (what express.static uses), built from the same pillarjs
 * helpers: range-parser, fresh, etag and mime-types.
 */
import { constants as fsConstants, fstat, open } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, posix } from 'node:path';
import { finished } from 'node:stream/promises';

import etag from 'etag';
import fresh from 'fresh';
import { contentType as mimeContentType } from 'mime-types';
import parseRange from 'range-parser';

import { closeQuietly, readAt } from './fdio.js';
import { fromNative, invalidArgType, invalidArgValue, withBytes, type ErrnoError } from './errors.js';
import { linuxPaths, native } from './native.js';
import { requireLinux } from './portable.js';
import { sendFile, type SendMechanism } from './socket.js';
import * as check from './validate.js';

/** Options of {@link serveFile}. */
export interface ServeFileOptions {
  /**
   * Serve only files below this directory. `path` is then a URL path (percent-encoded, as in
   * `req.url`), resolved beneath `root`: `..`, encoded traversal, NUL bytes and symlinks leading outside
   * are refused and never a byte from outside `root` is sent. Without `root`, `path` is a trusted
   * filesystem path.
   */
  root?: string;
  /** Send a weak ETag (from size and mtime) and honour If-None-Match / If-Match. Default true. */
  etag?: boolean;
  /** Send Last-Modified and honour If-Modified-Since / If-Unmodified-Since. Default true. */
  lastModified?: boolean;
  /** Cache-Control max-age in seconds (`public, max-age=N`). Default 0. Ignored when `cacheControl` is given. */
  maxAge?: number;
  /** The Cache-Control header, verbatim; `false` sends none. */
  cacheControl?: string | false;
  /** Content-Type override. Default: from the file extension (mime-types), else application/octet-stream. */
  contentType?: string;
  /** Files and directories whose name starts with a dot: 'ignore' (404, default), 'deny' (403) or 'allow'. */
  dotfiles?: 'ignore' | 'deny' | 'allow';
  /** Files tried for a directory URL ending in '/'. Default ['index.html']; `false` for none. */
  index?: string | string[] | false;
  /** Redirect a directory URL without its trailing slash to the URL with it (301). Default true. */
  redirect?: boolean;
  /** Extra response headers. */
  headers?: Record<string, string | number | readonly string[]>;
  /** Stops the transfer; the promise rejects with an AbortError and the connection is destroyed. */
  signal?: AbortSignal;
}

/** What a response was. */
export interface ServeResult {
  /** The status code sent. */
  status: number;
  /** File bytes sent in the body (0 for HEAD, 304, errors). */
  bytes: number;
  /** How the body travelled, or 'none' without a file body. */
  mechanism: SendMechanism | 'none';
}

const DOTFILES = ['ignore', 'deny', 'allow'] as const;

/**
 * Bodies below this size are read into memory and leave in one write with the headers (one packet,
 * one syscall); larger ones go out by sendfile after the headers. Measured with bench/http.mjs.
 */
export const INLINE_BODY_LIMIT = 64 * 1024;
const NO_BODY: ServeResult['mechanism'] = 'none';

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Maps a failed open to a status: never reveal more than "not found" / "forbidden". */
function openStatus(err: unknown): number {
  switch ((err as ErrnoError).code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'ENAMETOOLONG':
    case 'ELOOP':
      return 404;
    case 'EXDEV': // a symlink or path leading outside root
    case 'EACCES':
    case 'EPERM':
      return 403;
    default:
      return 500;
  }
}

interface Target {
  /** Filesystem path relative to root (with root), or the trusted path (without). */
  path: string;
  /** The URL path ends with '/'. */
  directoryUrl: boolean;
}

/**
 * The path of a request target as sent, without query: not normalised by a URL parser, so that
 * `..` and `%2e%2e` are seen (and refused) rather than silently resolved.
 */
function rawPathname(url: string | undefined): string {
  const target = url ?? '/';
  const end = target.search(/[?#]/);
  return end < 0 ? target : target.slice(0, end);
}

/** Decodes and checks a URL path for serving beneath root. */
function urlTarget(urlPath: string, dotfiles: 'ignore' | 'deny' | 'allow'): Target {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    throw new HttpError(400, 'Bad Request');
  }
  if (decoded.includes('\0')) throw new HttpError(400, 'Bad Request');
  const segments = decoded.split('/');
  if (segments.includes('..')) throw new HttpError(403, 'Forbidden');
  const normalized = posix.normalize(`/${decoded}`);
  // After normalisation the path is absolute and free of '..': make it relative to root.
  const relative = normalized.replace(/^\/+/, '');
  if (dotfiles !== 'allow' && relative.split('/').some((seg) => seg.startsWith('.') && seg.length > 1)) {
    throw dotfiles === 'deny' ? new HttpError(403, 'Forbidden') : new HttpError(404, 'Not Found');
  }
  return { path: relative === '' ? '.' : relative, directoryUrl: decoded.endsWith('/') };
}

/** What `openTarget` found: the file's stat, and its fd or (under INLINE_BODY_LIMIT) its whole body. */
interface Opened {
  /** The open fd, or -1 when `body` holds the whole file. */
  fd: number;
  kind: string;
  size: number;
  /** A Stats-like view for `etag` and Last-Modified. */
  stats: { size: number; mtime: Date; ctime: Date; ino: number };
  body: Buffer | undefined;
}

/** Where the native helpers are missing: fs.open and fs.fstat (small bodies are read later). */
/** Read-only and non-blocking: a FIFO without a writer must not hang the open (it is then a 404). */
const PORTABLE_OPEN = fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0);

async function openPortable(path: string): Promise<Opened> {
  const fd = await new Promise<number>((ok, fail) => open(path, PORTABLE_OPEN, (err, n) => (err ? fail(err) : ok(n))));
  try {
    const st = await new Promise<import('node:fs').Stats>((ok, fail) => fstat(fd, (err, s) => (err ? fail(err) : ok(s))));
    return {
      fd,
      kind: st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'other',
      size: st.size,
      stats: { size: st.size, mtime: st.mtime, ctime: st.ctime, ino: st.ino },
      body: undefined,
    };
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
}

/**
 * Opens, stats and (small files) reads the file in one pool round trip: beneath root with openat2
 * RESOLVE_BENEATH, or the trusted path as is.
 */
async function openTarget(root: string | undefined, path: string): Promise<Opened> {
  try {
    if (!linuxPaths) {
      // No portable equivalent of openat2's RESOLVE_BENEATH: a path check alone would race symlink swaps.
      if (root !== undefined) requireLinux('serveFile with root (openat2 RESOLVE_BENEATH)');
      return await openPortable(path);
    }
    const o = await native.openFile(root === undefined ? undefined : Buffer.from(root), Buffer.from(path), INLINE_BODY_LIMIT);
    return {
      fd: o.fd,
      kind: o.kind,
      size: o.size,
      stats: { size: o.size, mtime: new Date(o.mtimeMs), ctime: new Date(o.ctimeMs), ino: o.ino },
      body: o.body,
    };
  } catch (err) {
    throw fromNative(err);
  }
}

function release(opened: Opened | undefined): void {
  if (opened && opened.fd >= 0) closeQuietly(opened.fd);
}

function setHeader(res: ServerResponse, name: string, value: string | number | readonly string[]): void {
  res.setHeader(name, value as string | number | string[]);
}

/** A short text response for an error status. */
function answer(res: ServerResponse, req: IncomingMessage, status: number, message: string, extra?: Record<string, string>): ServeResult {
  const body = `${message}\n`;
  res.statusCode = status;
  for (const name of res.getHeaderNames()) {
    if (name.startsWith('content-') || name === 'etag' || name === 'last-modified' || name === 'accept-ranges') res.removeHeader(name);
  }
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('X-Content-Type-Options', 'nosniff');
  for (const [k, v] of Object.entries(extra ?? {})) res.setHeader(k, v);
  res.end(req.method === 'HEAD' ? undefined : body);
  return { status, bytes: 0, mechanism: NO_BODY };
}

function parseHttpDate(value: string | undefined): number {
  const t = value ? Date.parse(value) : NaN;
  return Number.isNaN(t) ? NaN : t;
}

/** The `send` package's precondition check: If-Match and If-Unmodified-Since. */
function preconditionFailed(req: IncomingMessage, res: ServerResponse): boolean {
  const match = req.headers['if-match'];
  if (match) {
    const tag = res.getHeader('ETag');
    if (!tag) return true;
    if (match.trim() !== '*') {
      const strip = (t: string): string => t.trim().replace(/^W\//, '');
      const ok = match.split(',').some((t) => strip(t) === strip(String(tag)));
      if (!ok) return true;
    }
  }
  const unmodifiedSince = parseHttpDate(req.headers['if-unmodified-since']);
  if (!Number.isNaN(unmodifiedSince)) {
    const lastModified = parseHttpDate(res.getHeader('Last-Modified') as string | undefined);
    if (Number.isNaN(lastModified) || lastModified > unmodifiedSince) return true;
  }
  return false;
}

/** Whether If-Range allows the Range header to apply. */
function rangeFresh(req: IncomingMessage, res: ServerResponse): boolean {
  const raw = req.headers['if-range'];
  const ifRange = Array.isArray(raw) ? raw[0] : raw;
  if (!ifRange) return true;
  if (ifRange.includes('"')) {
    const tag = res.getHeader('ETag');
    return Boolean(tag && ifRange.includes(String(tag)));
  }
  const lastModified = parseHttpDate(res.getHeader('Last-Modified') as string | undefined);
  return !Number.isNaN(lastModified) && lastModified <= parseHttpDate(ifRange);
}

/**
 * Answers a GET or HEAD request with a file: status 200, 206 (a single byte range), 304 (not
 * modified), 412 (precondition failed), 416 (range not satisfiable), or 400/403/404/405 — with ETag,
 * Last-Modified, Cache-Control, Content-Type, Accept-Ranges and Content-Length. The body travels by
 * `sendFile` (sendfile(2)), through one buffer for small files, or as a stream over TLS.
 *
 * Resolves with what was sent. If the transfer fails after the headers went out (peer gone, file
 * truncated, abort), the connection is destroyed — Content-Length can no longer be honoured — and the
 * promise rejects with the error (with `bytesTransferred`). Keep-alive connections go on serving the
 * next request after a successful response.
 *
 * @example
 * http.createServer((req, res) => serveFile(req, res, new URL(req.url!, 'http://x').pathname, { root: './public' }));
 */
export async function serveFile(req: IncomingMessage, res: ServerResponse, path?: string, options?: ServeFileOptions): Promise<ServeResult> {
  const o = check.options<ServeFileOptions>(options);
  const root = o.root;
  if (root !== undefined && typeof root !== 'string') throw invalidArgType('options.root', 'of type string', root);
  if (path !== undefined && typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
  const dotfiles = check.optionalOneOf(o.dotfiles, 'options.dotfiles', DOTFILES) ?? 'ignore';
  const maxAge = check.optionalInteger(o.maxAge, 'options.maxAge') ?? 0;
  const signal = check.optionalSignal(o.signal, 'options.signal');
  if (o.cacheControl !== undefined && o.cacheControl !== false && typeof o.cacheControl !== 'string') {
    throw invalidArgType('options.cacheControl', 'of type string or false', o.cacheControl);
  }
  const index = o.index === undefined ? ['index.html'] : o.index === false ? [] : Array.isArray(o.index) ? o.index : [o.index];
  if (!index.every((i) => typeof i === 'string')) throw invalidArgValue('options.index', o.index, 'must be a string, an array of strings or false');
  if (res.headersSent) {
    const err = new Error('Cannot serve a file: the response headers were already sent') as ErrnoError;
    err.code = 'ERR_HTTP_HEADERS_SENT';
    throw err;
  }

  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return answer(res, req, 405, 'Method Not Allowed', { Allow: 'GET, HEAD' });
  }

  let target: Target;
  try {
    if (root !== undefined) target = urlTarget(path ?? rawPathname(req.url), dotfiles);
    else if (path === undefined) throw invalidArgType('path', 'a string when options.root is not given', path);
    else target = { path, directoryUrl: path.endsWith('/') };
  } catch (err) {
    if (err instanceof HttpError) return answer(res, req, err.status, err.message);
    throw err;
  }

  let opened: Opened;
  try {
    opened = await openTarget(root, target.path);
  } catch (err) {
    const status = openStatus(err);
    return answer(res, req, status, status === 404 ? 'Not Found' : status === 403 ? 'Forbidden' : 'Internal Server Error');
  }
  try {
    if (opened.kind === 'directory') {
      if (root !== undefined && !target.directoryUrl && o.redirect !== false) {
        const pathname = rawPathname(req.url);
        // Collapse leading slashes: '//host/dir' must not become a redirect to another host.
        const location = `${pathname.replace(/^\/+/, '/')}/${(req.url ?? '').slice(pathname.length)}`;
        return answer(res, req, 301, `Redirecting to ${location}`, { Location: location });
      }
      let found: Opened | undefined;
      if (target.directoryUrl) {
        for (const name of index) {
          const candidate = await openTarget(root, root === undefined ? join(target.path, name) : posix.join(target.path, name)).catch(() => undefined);
          if (candidate?.kind === 'file') {
            found = candidate;
            target = { path: posix.join(target.path, name), directoryUrl: false };
            break;
          }
          release(candidate);
        }
      }
      if (found === undefined) return answer(res, req, 404, 'Not Found');
      release(opened);
      opened = found;
    }
    if (opened.kind !== 'file') return answer(res, req, 404, 'Not Found');
    return await respond(req, res, opened, target.path, o, maxAge, signal);
  } finally {
    release(opened);
  }
}

async function respond(
  req: IncomingMessage,
  res: ServerResponse,
  file: Opened,
  path: string,
  o: Partial<ServeFileOptions>,
  maxAge: number,
  signal: AbortSignal | undefined,
): Promise<ServeResult> {
  for (const [name, value] of Object.entries(o.headers ?? {})) setHeader(res, name, value);
  if (!res.hasHeader('Accept-Ranges')) res.setHeader('Accept-Ranges', 'bytes');
  if (o.cacheControl !== false && !res.hasHeader('Cache-Control')) {
    res.setHeader('Cache-Control', o.cacheControl ?? `public, max-age=${maxAge}`);
  }
  if (o.lastModified !== false && !res.hasHeader('Last-Modified')) res.setHeader('Last-Modified', file.stats.mtime.toUTCString());
  if (o.etag !== false && !res.hasHeader('ETag')) res.setHeader('ETag', etag(file.stats));
  if (!res.hasHeader('Content-Type')) {
    res.setHeader('Content-Type', o.contentType ?? (mimeContentType(extname(path)) || 'application/octet-stream'));
  }

  if (preconditionFailed(req, res)) return answer(res, req, 412, 'Precondition Failed');
  if (fresh(req.headers, { etag: res.getHeader('ETag') as string | undefined, 'last-modified': res.getHeader('Last-Modified') as string | undefined })) {
    for (const name of ['Content-Type', 'Content-Length', 'Content-Range']) res.removeHeader(name);
    res.statusCode = 304;
    res.end();
    return { status: 304, bytes: 0, mechanism: NO_BODY };
  }

  const size = file.size;
  let start = 0;
  let length = size;
  res.statusCode = 200;
  const rangeHeader = req.headers.range;
  if (rangeHeader && rangeFresh(req, res)) {
    const ranges = parseRange(size, rangeHeader, { combine: true });
    if (ranges === -1) {
      return answer(res, req, 416, 'Range Not Satisfiable', { 'Content-Range': `bytes */${size}` });
    }
    // -2 (malformed) is ignored, as RFC 9110 allows; several ranges get the whole file (200).
    if (ranges !== -2 && ranges.type === 'bytes' && ranges.length === 1 && ranges[0]) {
      start = ranges[0].start;
      length = ranges[0].end - start + 1;
      res.statusCode = 206;
      res.setHeader('Content-Range', `bytes ${start}-${ranges[0].end}/${size}`);
    }
  }
  res.setHeader('Content-Length', length);
  const status = res.statusCode;

  if (req.method === 'HEAD' || length === 0) {
    res.end();
    return { status, bytes: 0, mechanism: NO_BODY };
  }
  const socket = res.socket;
  try {
    if (length < INLINE_BODY_LIMIT) {
      // One buffer: headers and body leave in one write.
      const body = file.body ? file.body.subarray(start, start + length) : await readRange(file.fd, start, length);
      res.end(body);
      await finished(res);
      return { status, bytes: length, mechanism: 'readwrite' };
    }
    if (!socket) {
      const err = new Error('Cannot serve a file: the response has no socket (the connection is gone)') as ErrnoError;
      err.code = 'ERR_STREAM_DESTROYED';
      throw err;
    }
    // Straight into the socket after the headers: sendFile falls back to its stream for TLS, and for
    // sockets without an fd (Deno's, Bun's HTTP server's).
    res.flushHeaders();
    const sent = await sendFile(socket, file.fd, { offset: start, length, signal });
    if (sent.bytes !== length) {
      const err = new Error(`the file ended at byte ${start + sent.bytes} while sending bytes ${start}..${start + length} (was it truncated?)`) as ErrnoError;
      err.code = 'ERR_FILE_TRUNCATED';
      throw withBytes(err, sent.bytes);
    }
    res.end();
    return { status, bytes: length, mechanism: sent.mechanism };
  } catch (err) {
    // The headers promised Content-Length bytes: a short body must not look complete.
    res.destroy();
    throw withBytes(err, (err as ErrnoError).bytesTransferred ?? 0);
  }
}

async function readRange(fd: number, start: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = await readAt(fd, buf, got, length - got, start + got);
    if (n === 0) {
      const err = new Error(`the file ended at byte ${start + got} while sending bytes ${start}..${start + length} (was it truncated?)`) as ErrnoError;
      err.code = 'ERR_FILE_TRUNCATED';
      throw err;
    }
    got += n;
  }
  return buf;
}
