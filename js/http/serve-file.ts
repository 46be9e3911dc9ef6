/** `serveFile`: answer one request with one file. */
import { validateHeaderValue, type IncomingMessage, type ServerResponse } from 'node:http';

import { codedError, invalidArgType, invalidArgValue } from '../errors.js';
import * as check from '../validate.js';
import { answer, serve, type Config, type ServeResult } from './engine.js';
import { precompressedOption } from './negotiate.js';
import { DEFAULT_MAX_RANGES } from './ranges.js';
import { DEFAULT_CACHE, type CacheLimits } from './cache.js';
import { rawPathname } from './target.js';

/** Options of {@link serveFile}. */
export interface ServeFileOptions {
  /**
   * Serve only files below this directory. `path` is then a URL path (percent-encoded, as in
   * `req.url`), resolved beneath `root`: `..`, encoded traversal, NUL bytes and symlinks leading outside
   * are refused and never a byte from outside `root` is sent. Without `root`, `path` is a trusted
   * filesystem path.
   */
  root?: string;
  /**
   * The ETag: `true` or `'weak'` (default) sends a weak one from size and mtime, as `send` does;
   * `'strong'` one from device, inode, size and mtime in nanoseconds, which If-Match and If-Range can
   * use (they take strong validators only); `false` none.
   */
  etag?: boolean | 'weak' | 'strong';
  /** Send Last-Modified and honour If-Modified-Since / If-Unmodified-Since. Default true. */
  lastModified?: boolean;
  /** Cache-Control max-age in seconds (`public, max-age=N`). Default 0. Ignored when `cacheControl` is given. */
  maxAge?: number;
  /** Add `immutable` to the Cache-Control built from `maxAge`. Default false. */
  immutable?: boolean;
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
  /** Extensions tried when the path names nothing: `['html']` serves `/about` from `about.html`. Default none. */
  extensions?: string[] | false;
  /** Answer Range requests (and send Accept-Ranges: bytes). Default true. */
  acceptRanges?: boolean;
  /**
   * Most parts of a multipart/byteranges answer, after overlapping and adjacent ranges are merged;
   * a request for more gets the whole file (200). Default 50; 1 allows single ranges only.
   */
  maxRanges?: number;
  /**
   * Serve `file.br`, `file.zst` or `file.gz` from beside the file when Accept-Encoding allows (q-values
   * honoured, `q=0` refuses): `true` for ['br', 'zstd', 'gzip'] in that order of preference, or the
   * codings to look for in your order. Content-Type stays the file's; Content-Encoding, Vary:
   * Accept-Encoding, and the variant's own ETag, Content-Length and ranges are sent. Default false.
   */
  precompressed?: boolean | Array<'br' | 'zstd' | 'gzip'>;
  /**
   * Keep small files (under INLINE_BODY_LIMIT) in memory, and large ones open (their fd: no open per
   * request, as nginx's open_file_cache), each kept fresh by inotify watches or revalidated on every
   * request by one stat of the path — (dev, ino, size, mtime, ctime) — so a changed, replaced,
   * truncated or deleted file is never served from it. `true` (default) for up to 1024 files, 32 MiB
   * of bodies and 64 open fds, or `{ entries, bytes, fds }`; `false` for none. The cache is shared by
   * all calls in the thread.
   */
  cache?: boolean | { entries?: number; bytes?: number; fds?: number };
  /** Extra response headers. */
  headers?: Record<string, string | number | readonly string[]>;
  /** Stops the transfer; the promise rejects with an AbortError and the connection is destroyed. */
  signal?: AbortSignal;
}

export type { ServeResult };

const DOTFILES = ['ignore', 'deny', 'allow'] as const;

/** Validates the options shared by serveFile and serveStatic (all but the cache-control units). */
export function commonConfig(o: Partial<ServeFileOptions>, cacheControl: string | undefined): Config {
  const root = o.root;
  if (root !== undefined && typeof root !== 'string') throw invalidArgType('options.root', 'of type string', root);
  const index = o.index === undefined ? ['index.html'] : o.index === false ? [] : Array.isArray(o.index) ? o.index : [o.index];
  if (!index.every((i) => typeof i === 'string')) throw invalidArgValue('options.index', o.index, 'must be a string, an array of strings or false');
  const extensions = o.extensions === undefined || o.extensions === false ? [] : o.extensions;
  if (!Array.isArray(extensions) || !extensions.every((e) => typeof e === 'string')) {
    throw invalidArgValue('options.extensions', o.extensions, 'must be an array of strings or false');
  }
  const etag = o.etag === undefined || o.etag === true ? 'weak' : o.etag;
  if (etag !== false && etag !== 'weak' && etag !== 'strong') throw invalidArgValue('options.etag', o.etag, "must be a boolean, 'weak' or 'strong'");
  if (o.headers !== undefined && (typeof o.headers !== 'object' || o.headers === null)) throw invalidArgType('options.headers', 'of type object', o.headers);
  // Set later without setHeader's checks (engine.ts): checked here, once.
  if (cacheControl !== undefined) validateHeaderValue('Cache-Control', cacheControl);
  if (o.contentType !== undefined) {
    if (typeof o.contentType !== 'string') throw invalidArgType('options.contentType', 'of type string', o.contentType);
    validateHeaderValue('Content-Type', o.contentType);
  }
  return {
    root,
    etag,
    lastModified: check.optionalBoolean(o.lastModified, 'options.lastModified') ?? true,
    cacheControl,
    contentType: o.contentType,
    dotfiles: check.optionalOneOf(o.dotfiles, 'options.dotfiles', DOTFILES) ?? 'ignore',
    index,
    redirect: check.optionalBoolean(o.redirect, 'options.redirect') ?? true,
    // Extensions given as '.html' or 'html' alike.
    extensions: extensions.map((e) => e.replace(/^\./, '')),
    acceptRanges: check.optionalBoolean(o.acceptRanges, 'options.acceptRanges') ?? true,
    maxRanges: check.optionalInteger(o.maxRanges, 'options.maxRanges', 1) ?? DEFAULT_MAX_RANGES,
    precompressed: precompressedOption(o.precompressed, 'options.precompressed'),
    headers: o.headers,
    setHeaders: undefined,
    html: false,
    resolveDots: false,
    indexWithoutSlash: false,
    cache: cacheOption(o.cache),
  };
}

function cacheOption(value: unknown): CacheLimits | undefined {
  if (value === undefined || value === true) return DEFAULT_CACHE;
  if (value === false) return undefined;
  if (typeof value !== 'object' || value === null) throw invalidArgType('options.cache', 'of type boolean or object', value);
  const v = value as { entries?: unknown; bytes?: unknown; fds?: unknown };
  return {
    entries: check.optionalInteger(v.entries, 'options.cache.entries') ?? DEFAULT_CACHE.entries,
    bytes: check.optionalInteger(v.bytes, 'options.cache.bytes') ?? DEFAULT_CACHE.bytes,
    fds: check.optionalInteger(v.fds, 'options.cache.fds') ?? DEFAULT_CACHE.fds,
  };
}

function cacheControlOf(o: Partial<ServeFileOptions>): string | undefined {
  if (o.cacheControl === false) return undefined;
  if (o.cacheControl !== undefined && typeof o.cacheControl !== 'string') throw invalidArgType('options.cacheControl', 'of type string or false', o.cacheControl);
  if (typeof o.cacheControl === 'string') return o.cacheControl;
  const maxAge = check.optionalInteger(o.maxAge, 'options.maxAge') ?? 0;
  const immutable = check.optionalBoolean(o.immutable, 'options.immutable') ?? false;
  return `public, max-age=${maxAge}${immutable ? ', immutable' : ''}`;
}

/**
 * The config for serveFile's options. The usual call passes a fresh `{ root }` (or nothing) each
 * time: that config is a function of root alone, so it is made once per root (bounded) instead of
 * validating every option per request.
 */
const rootOnly = new Map<string | undefined, Config>();
function configOf(o: Partial<ServeFileOptions>): Config {
  for (const key in o) if (key !== 'root') return commonConfig(o, cacheControlOf(o));
  const root = o.root;
  let cfg = rootOnly.get(root);
  if (cfg === undefined) {
    cfg = commonConfig(o, cacheControlOf(o));
    if (rootOnly.size >= 64) rootOnly.clear();
    rootOnly.set(root, cfg);
  }
  return cfg;
}

/**
 * Answers a GET or HEAD request with a file, following RFC 9110: 200; 206 with one range or
 * multipart/byteranges for several; 304 and 412 from the preconditions in §13.2.2's order; 416 with
 * `Content-Range: bytes *\/size`; 400/403/404/405 — with ETag, Last-Modified, Cache-Control,
 * Content-Type, Accept-Ranges and Content-Length. The body travels by `sendFile` (sendfile(2)),
 * through one buffer for small files, or as a stream over TLS.
 *
 * Resolves with what was sent. If the transfer fails after the headers went out (peer gone, file
 * truncated, abort), the connection is destroyed — Content-Length can no longer be honoured — and the
 * promise rejects with the error (with `bytesTransferred`). Keep-alive connections go on serving the
 * next request after a successful response. For a whole directory with the behaviour of
 * express.static, see {@link serveStatic}.
 *
 * @example
 * http.createServer((req, res) => serveFile(req, res, undefined, { root: './public' }));
 */
export async function serveFile(req: IncomingMessage, res: ServerResponse, path?: string, options?: ServeFileOptions): Promise<ServeResult> {
  const o = check.options<ServeFileOptions>(options);
  if (path !== undefined && typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
  const cfg = configOf(o);
  const signal = check.optionalSignal(o.signal, 'options.signal');
  if (res.headersSent) {
    throw codedError('ERR_HTTP_HEADERS_SENT', 'Cannot serve a file: the response headers were already sent');
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') return answer(res, req, cfg, 405, 'Method Not Allowed', { Allow: 'GET, HEAD' });
  if (cfg.root === undefined && path === undefined) throw invalidArgType('path', 'a string when options.root is not given', path);
  const result = await serve(req, res, path ?? rawPathname(req.url), cfg, {}, signal);
  // Without hooks the engine answers every request itself.
  return result as ServeResult;
}
