/**
 * `zerocopy/express`: a drop-in for `express.static` / serve-static 2.x whose file bodies go by
 * sendfile(2).
 *
 * ```js
 * const serveStatic = require('zerocopy/express'); // or: import serveStatic from 'zerocopy/express'
 * app.use(serveStatic('public', { maxAge: '1d' }));
 * ```
 *
 * Works with any connect-style stack (Express 4 and 5, connect, node:http with a `next`); nothing is
 * imported from Express. The behaviour is serveStatic's (the package root's), which follows send's
 * rules; this module adds serve-static's option handling: its TypeErrors, and its lenient units.
 *
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import ms from 'ms';

import { serveStatic as handler, type ServeStaticOptions as CoreOptions } from './index.js';
import type { FileStat } from './index.js';

/** serve-static's options (send's, plus fallthrough, redirect and setHeaders), and `precompressed`. */
export interface ServeStaticOptions {
  /** Honour Range requests and send Accept-Ranges. Default true. */
  acceptRanges?: boolean;
  /** Send Cache-Control. Default true. */
  cacheControl?: boolean;
  /** Dotfiles (a path segment starting with '.'): 'allow', 'deny' (403) or 'ignore' (404, the default). */
  dotfiles?: 'allow' | 'deny' | 'ignore';
  /** Send an ETag and honour If-None-Match / If-Match. Default true. */
  etag?: boolean;
  /** Extensions tried, in order, for a path that is not found: `['html', 'htm']`. Default false. */
  extensions?: string | string[] | false;
  /** On 400/403/404 (and, for non-GET/HEAD, 405), call next() instead of next(err). Default true. */
  fallthrough?: boolean;
  /** Add `immutable` to Cache-Control. Default false. */
  immutable?: boolean;
  /** Files tried for a directory URL; false for none. Default 'index.html'. */
  index?: string | string[] | false;
  /** Send Last-Modified and honour If-Modified-Since / If-Unmodified-Since. Default true. */
  lastModified?: boolean;
  /** Cache-Control max-age in milliseconds, or a string in the `ms` package's format ('1d'). Default 0; at most a year. */
  maxAge?: number | string;
  /** serve-static's and send's lower-case spelling of maxAge. */
  maxage?: number | string;
  /** Redirect a directory URL without its trailing slash (301). Default true. */
  redirect?: boolean;
  /** Called with (res, path, stat) before the headers are set, to set custom ones (they win). */
  setHeaders?: (res: ServerResponse, path: string, stat: FileStat) => void;
  /** Serve `file.br`, `file.zst` or `file.gz` beside a file when Accept-Encoding allows it (serveFile's). Default false. */
  precompressed?: boolean | Array<'br' | 'zstd' | 'gzip'>;
}

/** The options under serve-static's type name of earlier versions of this module. */
export type StaticOptions = ServeStaticOptions;

/** What next(err) gets, as from send: an Error (for a missing file the fs error itself) with an HTTP status. */
export interface HttpError extends Error {
  status: number;
  statusCode: number;
  expose: boolean;
  /** Headers the status goes with (416: Content-Range). */
  headers?: Record<string, string>;
}

/** A connect/Express middleware. */
export type StaticMiddleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

const MAX_MAXAGE = 60 * 60 * 24 * 365 * 1000; // send's cap: one year

/** send's reading of maxAge: an `ms` string or a number; NaN is 0; clamped to [0, one year]. */
function maxAgeOf(o: ServeStaticOptions): number {
  const raw = o.maxage ?? o.maxAge ?? 0;
  const n = typeof raw === 'string' ? ms(raw as ms.StringValue) : Number(raw);
  return Number.isNaN(n) ? 0 : Math.min(Math.max(0, n), MAX_MAXAGE);
}

/**
 * Returns middleware serving files beneath `root`, as serve-static does: GET and HEAD only (other
 * methods fall through, or get 405 with `fallthrough: false`), the 301 to add a directory's trailing
 * slash at the mount point (`req.originalUrl`), a 404 that calls `next()` (or `next(err)` with
 * `fallthrough: false`), and every other error to `next(err)`.
 *
 * @throws TypeError 'root path required', 'root path must be a string', 'option setHeaders must be function'
 */
export function serveStatic(root: string, options?: ServeStaticOptions): StaticMiddleware {
  if (!root) throw new TypeError('root path required');
  if (typeof root !== 'string') throw new TypeError('root path must be a string');
  const o: ServeStaticOptions = options ?? {};
  if (o.setHeaders && typeof o.setHeaders !== 'function') throw new TypeError('option setHeaders must be function');
  const dotfiles = o.dotfiles ?? 'ignore';
  if (dotfiles !== 'allow' && dotfiles !== 'deny' && dotfiles !== 'ignore') throw new TypeError('dotfiles option must be "allow", "deny", or "ignore"');
  const core: CoreOptions = {
    acceptRanges: o.acceptRanges !== false,
    cacheControl: o.cacheControl === undefined ? true : Boolean(o.cacheControl),
    dotfiles,
    etag: o.etag !== false,
    extensions: o.extensions ? ([] as string[]).concat(o.extensions) : false,
    fallthrough: o.fallthrough !== false,
    immutable: Boolean(o.immutable),
    index: o.index,
    lastModified: o.lastModified !== false,
    maxAge: maxAgeOf(o),
    redirect: o.redirect !== false,
    precompressed: o.precompressed ?? false,
    ...(o.setHeaders ? { setHeaders: o.setHeaders } : {}),
  };
  const serve = handler(root, core);
  return function serveStatic(req, res, next) {
    // The handler's promise never rejects: failures go to next(err) or destroy the connection.
    void serve(req, res, next);
  };
}

export default serveStatic;
