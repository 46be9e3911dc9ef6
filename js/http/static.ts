/** `serveStatic`: a request handler serving a directory, with serve-static's (express.static's) behaviour. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resolve } from 'node:path';

import ms from 'ms';

import { invalidArgType, invalidArgValue } from '../errors.js';
import * as check from '../validate.js';
import { serve, statusError, type Config, type ServeResult } from './engine.js';
import { commonConfig, type ServeFileOptions } from './serve-file.js';
import type { HttpError } from './target.js';
import { rawPathname, type FileStat } from './target.js';

/** Options of {@link serveStatic}: those of serveFile (but `root`, given first), with serve-static's units and hooks. */
export interface ServeStaticOptions extends Omit<ServeFileOptions, 'root' | 'maxAge' | 'signal' | 'contentType' | 'cacheControl' | 'redirect'> {
  /**
   * A directory URL without its trailing slash: `true` (default) redirects (301) to add it, `false`
   * is a 404, `'index'` answers with the directory's index file (koa-send's `format`, Hono's serveStatic).
   */
  redirect?: boolean | 'index';
  /** `false` sends no Cache-Control; a string is sent verbatim; `true` (default) builds it from `maxAge` and `immutable`. */
  cacheControl?: boolean | string;
  /**
   * Cache-Control max-age, in milliseconds or as a string like '1d' (the `ms` package), as
   * serve-static takes it; at most a year. Default 0. `cacheControl: false` sends no Cache-Control.
   */
  maxAge?: number | string;
  /**
   * With `next`: pass requests that find no file (4xx) and methods other than GET/HEAD on to
   * `next()` (true, default), or to `next(err)` with `err.status` (false; other methods then get
   * 405). Server errors (5xx) always go to `next(err)`. Without `next`, the handler answers itself.
   */
  fallthrough?: boolean;
  /**
   * Called before the headers are set, with the response, the file's absolute path and its stat,
   * so it can set or override headers (what it sets wins over the defaults).
   */
  setHeaders?: (res: ServerResponse, path: string, stat: FileStat) => void;
  /**
   * Awaited once a file is found, before any header is set, with its absolute path, its stat, the
   * request (Hono's `onFound`; the framework adapters hang their per-request work on it) and the open
   * file: its `fd` (-1 when `body` holds the whole file, as it does for small ones) and `body`, both
   * valid until the returned promise settles (`body` may be the small-file cache's: never modify it).
   * Resolving to `false` takes the request over: the handler sends nothing, closes the file and
   * resolves with undefined (zerocopy/fastify sends the file through Fastify's reply this way).
   */
  onFound?: (path: string, stat: FileStat, req: IncomingMessage, file: FoundFile) => void | false | Promise<void | false>;
}

/** The open file `onFound` receives. */
export interface FoundFile {
  /**
   * The open fd, or -1 when `body` holds the whole file. It may be the file cache's, shared with
   * other requests: read it at positions, never close it or move its offset.
   */
  readonly fd: number;
  /** The whole file, for files under INLINE_BODY_LIMIT; undefined otherwise. */
  readonly body: Buffer | undefined;
}

/** A request handler for node:http and connect/Express (`next` optional). */
export type StaticHandler = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => Promise<ServeResult | undefined>;

const MAX_MAX_AGE = 60 * 60 * 24 * 365 * 1000;

function maxAgeMs(value: unknown): number {
  if (value === undefined) return 0;
  const n = typeof value === 'string' ? ms(value as ms.StringValue) : value;
  // Infinity is a year, as with send.
  if (typeof n !== 'number' || Number.isNaN(n) || n < 0) throw invalidArgValue('options.maxAge', value, "must be a non-negative number of milliseconds or a string like '1d'");
  return Math.min(n, MAX_MAX_AGE);
}

/**
 * A handler serving the files below `root`, as serve-static does (express.static): index files,
 * a 301 redirect adding the trailing slash to directories, dotfiles ignored, `extensions`
 * fallback, `setHeaders`, Cache-Control from `maxAge`/`immutable`, ETag and Last-Modified,
 * preconditions and ranges (RFC 9110), and precompressed variants — with serveFile's sendfile
 * bodies and root safety (openat2 RESOLVE_BENEATH: nothing outside `root` is ever sent).
 *
 * It serves `req.url`, which Express rewrites beneath a mount path; redirects use `req.originalUrl`
 * when present. Only GET and HEAD are served. The returned promise resolves with what was sent, or
 * undefined when the request went to `next`; it never rejects (a failure after the headers went
 * out destroys the connection, as serveFile does).
 *
 * @example
 * http.createServer(serveStatic('./public', { maxAge: '1h' })).listen(8080);
 * app.use('/static', serveStatic('./public'));   // Express
 */
export function serveStatic(root: string, options?: ServeStaticOptions): StaticHandler {
  if (typeof root !== 'string') throw invalidArgType('root', 'of type string', root);
  const o = check.options<ServeStaticOptions>(options);
  const fallthrough = check.optionalBoolean(o.fallthrough, 'options.fallthrough') ?? true;
  const setHeaders = check.optionalFunction<NonNullable<ServeStaticOptions['setHeaders']>>(o.setHeaders, 'options.setHeaders');
  const cc = o.cacheControl as unknown;
  if (cc !== undefined && typeof cc !== 'boolean' && typeof cc !== 'string') throw invalidArgType('options.cacheControl', 'of type boolean or string', cc);
  const immutable = check.optionalBoolean(o.immutable, 'options.immutable') ?? false;
  const cacheControl = cc === false ? undefined : typeof cc === 'string' ? cc : `public, max-age=${Math.floor(maxAgeMs(o.maxAge) / 1000)}${immutable ? ', immutable' : ''}`;
  const onFound = check.optionalFunction<NonNullable<ServeStaticOptions['onFound']>>(o.onFound, 'options.onFound');
  const redirect = o.redirect === 'index' ? 'index' : (check.optionalBoolean(o.redirect, 'options.redirect') ?? true);
  const cfg: Config = {
    ...commonConfig({ ...o, root: resolve(root), cacheControl: undefined, maxAge: undefined, redirect: redirect === true }, cacheControl),
    setHeaders,
    html: true,
    resolveDots: true,
    indexWithoutSlash: redirect === 'index',
  };

  return async (req, res, next) => {
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        if (fallthrough && next) {
          next();
          return undefined;
        }
        res.statusCode = 405;
        res.setHeader('Allow', 'GET, HEAD');
        res.setHeader('Content-Length', '0');
        res.end();
        return { status: 405, bytes: 0, mechanism: 'none' };
      }
      const pathname = rawPathname(req.url);
      // Mounted at /dir, Express hands over '/' for both '/dir' and '/dir/': only the latter is the directory URL.
      const original = (req as { originalUrl?: string }).originalUrl;
      const mountRoot = pathname === '/' && original !== undefined && !rawPathname(original).endsWith('/');
      const hooks = {
        onFound: onFound && ((path: string, stat: FileStat, file: FoundFile) => onFound(path, stat, req, file)),
        onError: (status: number, err: HttpError, found: boolean): boolean => {
          if (!next) return false;
          // serve-static: once a file is found (412, 416), errors always go to next(err).
          if (fallthrough && status < 500 && !found) next();
          else next(statusError(err));
          return true;
        },
      };
      return await serve(req, res, pathname, cfg, hooks, undefined, mountRoot ? false : undefined);
    } catch (err) {
      if (!res.headersSent && next) next(err);
      else res.destroy();
      return undefined;
    }
  };
}
