/**
 * The engine behind serveFile and serveStatic: from a request and a resolved configuration to a
 * response. Validation of options happens once, in `configure`; per request there is only work.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, posix } from 'node:path';

import { contentType as mimeContentType } from 'mime-types';

import type { ErrnoError } from '../errors.js';
import { headerStore, type HeaderStore } from '../internals.js';
import type { SendMechanism } from '../send.js';
import { sendBody, sendMultipart } from './body.js';
import { lookup, store, type CacheLimits } from './cache.js';
import { entityTag, evaluatePreconditions, ifRangeAllows, validators, type EtagMode } from './conditional.js';
import { acceptable, CODING_SUFFIX, type Coding } from './negotiate.js';
import { multipart, planRange, type ByteRange } from './ranges.js';
import { HttpError, isMissing, openStatus, openTarget, rawPathname, release, STATUS_TEXT, urlTarget, type Dotfiles, type FileStat, type Opened, type Target } from './target.js';

/**
 * Bodies below this size are read into memory and leave in one write with the headers (one packet,
 * one syscall); larger ones go out by sendfile after the headers. Measured with bench/http.mjs.
 */
export const INLINE_BODY_LIMIT = 64 * 1024;

/** What a response was. */
export interface ServeResult {
  /** The status code sent. */
  status: number;
  /** File bytes sent in the body (0 for HEAD, 304, errors). */
  bytes: number;
  /** How the body travelled, or 'none' without a file body. */
  mechanism: SendMechanism | 'none';
  /** The Content-Encoding of a precompressed variant that was sent, if one was. */
  encoding?: string;
  /** Present when the body came from the small-file cache (revalidated by a stat). */
  cached?: true;
}

const NO_BODY: ServeResult['mechanism'] = 'none';

/** Options, validated and defaulted once. */
export interface Config {
  root: string | undefined;
  etag: EtagMode;
  lastModified: boolean;
  /** The Cache-Control value, or undefined for none. */
  cacheControl: string | undefined;
  contentType: string | undefined;
  dotfiles: Dotfiles;
  index: string[];
  redirect: boolean;
  /** Extensions tried, in order, for a path that names nothing ('html' → 'page' then 'page.html'). */
  extensions: string[];
  acceptRanges: boolean;
  maxRanges: number;
  precompressed: Coding[];
  headers: Record<string, string | number | readonly string[]> | undefined;
  setHeaders: ((res: ServerResponse, path: string, stat: FileStat) => void) | undefined;
  /** HTML error and redirect bodies (serveStatic, as send's) instead of text/plain. */
  html: boolean;
  /** Resolve `..` segments that stay beneath root, as send does (serveStatic), instead of refusing them. */
  resolveDots: boolean;
  /** A directory URL without its trailing slash answers with its index file (koa-send, Hono) instead of a redirect. */
  indexWithoutSlash: boolean;
  /** The small-file cache's limits, or undefined without it. */
  cache: CacheLimits | undefined;
}

function missing(path: string): ErrnoError {
  const err = new Error(`ENOENT: no such file or directory, stat '${path}'`) as ErrnoError;
  err.code = 'ENOENT';
  err.errno = -2;
  err.syscall = 'stat';
  err.path = path;
  return err;
}

/** openTarget through the small-file cache (cache.ts): a warm small file costs one stat, no pool hop. */
async function openFile(cfg: Config, path: string): Promise<Opened> {
  return cachedFile(cfg, path) ?? (await openUncached(cfg, path));
}

/**
 * The cache hit, synchronously (throws ENOENT when stat finds nothing), or undefined. The request
 * path takes it without an await, so a cached body is written from the request's own callback, as
 * node:http's own handlers do: a write deferred to a later microtask measured ~2-3 µs dearer.
 */
function cachedFile(cfg: Config, path: string): Opened | undefined {
  if (!cfg.cache) return undefined;
  const hit = lookup(cfg.root, path);
  if (hit && 'missing' in hit) throw missing(path);
  return hit?.opened;
}

async function openUncached(cfg: Config, path: string): Promise<Opened> {
  const opened = await openTarget(cfg.root, path, INLINE_BODY_LIMIT);
  // Once kept, a large file's fd is the cache's: the request goes on with the cache's lease on it.
  return (cfg.cache && store(cfg.root, path, opened, cfg.cache)) || opened;
}

/** How a request ends when the engine does not answer it itself (serveStatic's fallthrough). */
export interface Hooks {
  /**
   * Called instead of answering with an error status; returns true when it took the request over
   * (for example passed it to `next()`). `found` is true for 412 and 416, which come after a file was found.
   */
  onError?: (status: number, err: HttpError, found: boolean) => boolean;
  /**
   * Awaited once the file is found, before its headers are set, with its absolute path, its stat and
   * the open file (valid until the returned promise settles). Resolving to `false` takes the request
   * over: nothing is sent, the file is closed and serve resolves with undefined.
   */
  onFound?: (path: string, stat: FileStat, file: Opened) => void | false | Promise<void | false>;
}

/** The path the file is known by: absolute with root, as given without (for setHeaders and logs). */
function fullPath(cfg: Config, rel: string): string {
  return cfg.root === undefined ? rel : join(cfg.root, rel);
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A short response for an error status or a redirect. */
export function answer(res: ServerResponse, req: IncomingMessage, cfg: Pick<Config, 'html'>, status: number, message: string, extra?: Record<string, string>): ServeResult {
  const body = cfg.html
    ? `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>${status === 301 ? 'Redirecting' : 'Error'}</title>\n</head>\n<body>\n<pre>${message}</pre>\n</body>\n</html>\n`
    : `${message.replace(/<[^>]*>/g, '')}\n`;
  res.statusCode = status;
  for (const name of res.getHeaderNames()) {
    if (name.startsWith('content-') || name === 'etag' || name === 'last-modified' || name === 'accept-ranges' || name === 'vary') res.removeHeader(name);
  }
  res.setHeader('Content-Type', cfg.html ? 'text/html; charset=UTF-8' : 'text/plain; charset=utf-8'); // send's spellings
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Content-Security-Policy', "default-src 'none'");
  res.setHeader('X-Content-Type-Options', 'nosniff');
  for (const [k, v] of Object.entries(extra ?? {})) res.setHeader(k, v);
  res.end(req.method === 'HEAD' ? undefined : body);
  return { status, bytes: 0, mechanism: NO_BODY };
}

function fail(req: IncomingMessage, res: ServerResponse, cfg: Config, hooks: Hooks, err: HttpError, found = false): ServeResult | undefined {
  // A precompressed variant was chosen, but whatever answers the error does not send it.
  if (found) res.removeHeader('Content-Encoding');
  if (hooks.onError?.(err.status, err, found)) return undefined;
  return answer(res, req, cfg, err.status, err.message, err.detail?.headers);
}

/** The status for a failed open, carrying (for a 404) the absolute path, for an fs error like send's in next(err). */
function openFailure(cfg: Config, err: unknown, path: string): HttpError {
  const status = openStatus(err);
  return new HttpError(status, STATUS_TEXT[status] ?? 'Error', status === 404 ? { missingPath: fullPath(cfg, path) } : undefined);
}

/**
 * The `encodeurl` package's rule (serve-static's Location): encode what may not appear in a URL,
 * keep existing %XX escapes, replace lone surrogates.
 */
function encodeUrl(url: string): string {
  return url
    .replace(/(?:[^\x21\x25\x26-\x3B\x3D\x3F-\x5B\x5D\x5F\x61-\x7A\x7E]|%(?![0-9A-Fa-f]{2}))+/g, (m) => encodeURI(m))
    .replace(/(^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])/g, '$1\uFFFD');
}

/** Where a request for a directory without its trailing slash is sent: the same URL with it. */
function redirectLocation(req: IncomingMessage): string {
  const original = (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
  const pathname = rawPathname(original);
  // Collapse leading slashes: '//host/dir' must not become a redirect to another host.
  return `${`${pathname}/`.replace(/^\/+/, '/')}${original.slice(pathname.length)}`;
}

/**
 * Serves one request. `path` is a URL path beneath root (with root) or a trusted filesystem path.
 * `directoryUrl` overrides whether the target counts as ending in '/' (a mount point's '/').
 * Resolves with undefined when a hook took the request over.
 */
export async function serve(req: IncomingMessage, res: ServerResponse, path: string, cfg: Config, hooks: Hooks, signal: AbortSignal | undefined, directoryUrl?: boolean): Promise<ServeResult | undefined> {
  let target: Target;
  try {
    target = cfg.root !== undefined ? urlTarget(path, cfg.dotfiles, cfg.resolveDots) : { path, directoryUrl: path.endsWith('/') };
  } catch (err) {
    if (err instanceof HttpError) return fail(req, res, cfg, hooks, err);
    throw err;
  }
  if (directoryUrl !== undefined && directoryUrl !== target.directoryUrl) target = { path: target.path, directoryUrl };

  let opened: Opened;
  try {
    opened = cachedFile(cfg, target.path) ?? (await openUncached(cfg, target.path));
  } catch (err) {
    const found = isMissing(err) && !target.directoryUrl ? await tryExtensions(cfg, target.path) : undefined;
    if (!found) return fail(req, res, cfg, hooks, openFailure(cfg, err, target.path));
    opened = found.opened;
    target = { path: found.path, directoryUrl: false };
  }
  try {
    if (opened.kind === 'directory') {
      if (cfg.root !== undefined && !target.directoryUrl && !cfg.indexWithoutSlash) {
        if (!cfg.redirect) return fail(req, res, cfg, hooks, new HttpError(404, 'Not Found'));
        // serveStatic: serve-static's document and encoded Location.
        const location = cfg.html ? encodeUrl(redirectLocation(req)) : redirectLocation(req);
        return answer(res, req, cfg, 301, `Redirecting to ${cfg.html ? escapeHtml(location) : location}`, { Location: location });
      }
      let found: Opened | undefined;
      let failure = new HttpError(404, 'Not Found');
      for (const name of target.directoryUrl || cfg.indexWithoutSlash ? cfg.index : []) {
        const indexPath = cfg.root === undefined ? join(target.path, name) : posix.join(target.path, name);
        const candidate = await openFile(cfg, indexPath).catch((err: unknown) => {
          failure = openFailure(cfg, err, indexPath);
          return undefined;
        });
        if (candidate?.kind === 'file') {
          found = candidate;
          target = { path: indexPath, directoryUrl: false };
          break;
        }
        release(candidate);
      }
      if (found === undefined) return fail(req, res, cfg, hooks, failure.status >= 500 ? failure : new HttpError(404, 'Not Found', failure.detail));
      release(opened);
      opened = found;
    }
    if (opened.kind !== 'file') return fail(req, res, cfg, hooks, new HttpError(404, 'Not Found'));
    // Only awaited when given: an await of nothing would still defer the response a microtask.
    if (hooks.onFound && (await hooks.onFound(fullPath(cfg, target.path), opened.stats, opened)) === false) return undefined;
    return await respond(req, res, opened, target.path, cfg, hooks, signal);
  } finally {
    release(opened);
  }
}

async function tryExtensions(cfg: Config, path: string): Promise<{ opened: Opened; path: string } | undefined> {
  for (const ext of cfg.extensions) {
    const candidate = `${path}.${ext}`;
    const opened = await openFile(cfg, candidate).catch(() => undefined);
    if (opened?.kind === 'file') return { opened, path: candidate };
    release(opened);
  }
  return undefined;
}

/** The best precompressed variant the client accepts, opened, or undefined for the file itself. */
async function variant(req: IncomingMessage, cfg: Config, path: string): Promise<{ coding: Coding; opened: Opened } | undefined> {
  for (const coding of acceptable(req, cfg.precompressed)) {
    if (coding === 'identity') return undefined;
    const opened = await openFile(cfg, `${path}${CODING_SUFFIX[coding as Coding]}`).catch(() => undefined);
    if (opened?.kind === 'file') return { coding: coding as Coding, opened };
    release(opened);
  }
  return undefined;
}

/** Content types by extension, memoised (bounded: extensions come from request paths). */
const types = new Map<string, string>();
function typeOf(path: string): string {
  const ext = extname(path);
  let type = types.get(ext);
  if (type === undefined) {
    type = mimeContentType(ext) || 'application/octet-stream';
    if (types.size >= 512) types.clear();
    types.set(ext, type);
  }
  return type;
}

type Answer = ServeResult | undefined | Promise<ServeResult | undefined>;

function respond(req: IncomingMessage, res: ServerResponse, file: Opened, path: string, cfg: Config, hooks: Hooks, signal: AbortSignal | undefined): Answer {
  // Without variants to look for, no await: a cached body leaves from the request's own callback.
  if (cfg.precompressed.length === 0) return respondWith(req, res, file, file, undefined, path, cfg, hooks, signal);
  return respondVariant(req, res, file, path, cfg, hooks, signal);
}

async function respondVariant(req: IncomingMessage, res: ServerResponse, file: Opened, path: string, cfg: Config, hooks: Hooks, signal: AbortSignal | undefined): Promise<ServeResult | undefined> {
  const v = await variant(req, cfg, path);
  if (!v) return await respondWith(req, res, file, file, undefined, path, cfg, hooks, signal);
  try {
    return await respondWith(req, res, file, v.opened, v.coding, path, cfg, hooks, signal);
  } finally {
    release(v.opened);
  }
}

/** Sets a header the response does not have yet (one the user set stays), through node:http's store when there is one. */
function putDefault(res: ServerResponse, store: HeaderStore | undefined, lower: string, name: string, value: string): void {
  if (store) {
    if (store[lower] === undefined) store[lower] = [name, value];
  } else if (!res.hasHeader(name)) {
    res.setHeader(name, value);
  }
}

/** A header value derived from a file's stats, computed once per cache entry. */
function memoised(file: Opened, key: string, make: () => string): string {
  const memo = file.memo;
  if (!memo) return make();
  return (memo[key] ??= make());
}

function respondWith(
  req: IncomingMessage,
  res: ServerResponse,
  file: Opened,
  sent: Opened,
  coding: Coding | undefined,
  path: string,
  cfg: Config,
  hooks: Hooks,
  signal: AbortSignal | undefined,
): Answer {
  if (cfg.headers) for (const [name, value] of Object.entries(cfg.headers)) res.setHeader(name, value as string | number | string[]);
  cfg.setHeaders?.(res, fullPath(cfg, path), file.stats);
  // Every value below is valid by construction (or validated with the options): set without setHeader's checks where node:http allows.
  const store = headerStore(res);
  if (cfg.acceptRanges) putDefault(res, store, 'accept-ranges', 'Accept-Ranges', 'bytes');
  if (cfg.cacheControl !== undefined) putDefault(res, store, 'cache-control', 'Cache-Control', cfg.cacheControl);
  if (cfg.lastModified) putDefault(res, store, 'last-modified', 'Last-Modified', memoised(sent, 'lm', () => sent.stats.mtime.toUTCString()));
  if (cfg.etag !== false) {
    const mode = cfg.etag;
    putDefault(res, store, 'etag', 'ETag', memoised(sent, `${mode}${coding ?? ''}`, () => entityTag(sent.stats, mode, coding)));
  }
  putDefault(res, store, 'content-type', 'Content-Type', cfg.contentType ?? typeOf(path));
  if (cfg.precompressed.length > 0) {
    const vary = res.getHeader('Vary');
    if (vary === undefined) res.setHeader('Vary', 'Accept-Encoding');
    else if (!/accept-encoding|\*/i.test(String(vary))) res.setHeader('Vary', `${String(vary)}, Accept-Encoding`);
  }
  if (coding) res.setHeader('Content-Encoding', coding);

  const h = req.headers;
  // Most requests carry no condition: then the validators need not be read back.
  const conditional = h['if-match'] !== undefined || h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined || h['if-unmodified-since'] !== undefined || h['if-range'] !== undefined;
  const v = conditional ? validators(res, sent.stats.mtimeMs) : { etag: undefined, lastModified: NaN, modifiedMs: NaN };
  const condition = conditional ? evaluatePreconditions(req, v) : undefined;
  if (condition === 412) return fail(req, res, cfg, hooks, new HttpError(412, 'Precondition Failed'), true);
  if (condition === 304) {
    for (const name of ['Content-Type', 'Content-Length', 'Content-Range', 'Content-Encoding']) res.removeHeader(name);
    res.statusCode = 304;
    res.end();
    return { status: 304, bytes: 0, mechanism: NO_BODY, ...(coding ? { encoding: coding } : {}) };
  }

  const size = sent.size;
  const result = (status: number, bytes: number, mechanism: ServeResult['mechanism']): ServeResult => {
    const r: ServeResult = { status, bytes, mechanism };
    if (coding) r.encoding = coding;
    if (sent.cached) r.cached = true;
    return r;
  };
  // §14.2: Range applies to GET only, and only when If-Range allows it.
  const plan = cfg.acceptRanges && req.method === 'GET' && req.headers.range && ifRangeAllows(req, v, Date.now()) ? planRange(req.headers.range, size, cfg.maxRanges) : { kind: 'full' as const };
  if (plan.kind === 'unsatisfiable') {
    // Set before a hook passes the error on, as send does: an error handler's answer carries it too.
    res.setHeader('Content-Range', `bytes */${size}`);
    return fail(req, res, cfg, hooks, new HttpError(416, 'Range Not Satisfiable', { headers: { 'Content-Range': `bytes */${size}` } }), true);
  }

  if (plan.kind === 'multi') {
    const type = String(res.getHeader('Content-Type'));
    const parts = multipart(plan.ranges, size, type, randomBytes(12).toString('hex'));
    res.statusCode = 206;
    res.setHeader('Content-Type', parts.contentType);
    res.setHeader('Content-Length', parts.length);
    return sendMultipart(res, sent, plan.ranges, parts, INLINE_BODY_LIMIT, signal).then((r) => result(206, r.bytes, r.mechanism));
  }
  let range: ByteRange = { start: 0, end: size - 1 };
  res.statusCode = 200;
  if (plan.kind === 'single') {
    range = plan.range;
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
  }
  const length = range.end - range.start + 1;
  if (store) store['content-length'] = ['Content-Length', length];
  else res.setHeader('Content-Length', length);
  const status = res.statusCode;
  if (req.method === 'HEAD' || length === 0) {
    res.end();
    return result(status, 0, NO_BODY);
  }
  return sendBody(res, sent, range, INLINE_BODY_LIMIT, signal).then((r) => result(status, r.bytes, r.mechanism));
}

/** An error with a status as `next(err)` gets it from serve-static (http-errors' createError). */
export type StatusError = ErrnoError & { status: number; statusCode: number; expose: boolean; headers?: Record<string, string> };

const ERROR_NAMES: Record<number, string> = {
  400: 'BadRequestError',
  403: 'ForbiddenError',
  404: 'NotFoundError',
  412: 'PreconditionFailedError',
  416: 'RangeNotSatisfiableError',
  500: 'InternalServerError',
};

/** For serveStatic's `next(err)`, as send makes it: the fs error itself with the status added, or a named http-errors error. */
export function statusError(err: HttpError): StatusError {
  const missingPath = err.detail?.missingPath;
  // send's: `ENOENT: no such file or directory, stat '<absolute path>'`, with code, errno, syscall, path.
  const e = (missingPath !== undefined ? missing(missingPath) : new Error(err.message)) as StatusError;
  if (missingPath === undefined) {
    e.name = ERROR_NAMES[err.status] ?? 'Error';
    e.code = `HTTP_${err.status}`;
  }
  e.status = err.status;
  e.statusCode = err.status;
  e.expose = err.status < 500;
  if (err.detail?.headers) e.headers = err.detail.headers;
  return e;
}
