/**
 * `zerocopy/koa`: static files for Koa like koa-static / koa-send, with sendfile(2) bodies, byte
 * ranges and validators (ETag, Last-Modified, If-None-Match, If-Range…), which koa-send lacks.
 *
 * ```js
 * import serve from 'zerocopy/koa';
 * app.use(serve('public'));
 * ```
 *
 * The work is serveStatic's (the package root's). Nothing is imported from Koa.
 *
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import { serveStatic, type ServeStaticOptions, type StaticHandler } from './index.js';

export type { HttpError, StaticOptions } from './express.js';

/** koa-static's options, and serveStatic's (which these map to). */
export interface KoaStaticOptions extends Omit<ServeStaticOptions, 'fallthrough' | 'redirect' | 'onFound'> {
  /** Serve after the downstream middleware, only if none of them answered. Default false. */
  defer?: boolean;
  /** Serve dotfiles (koa-send's `hidden`). Default false; `dotfiles` wins when given. */
  hidden?: boolean;
  /** A directory URL without its trailing slash serves its index file (koa-send's `format`). Default true. */
  format?: boolean;
  /** Serve `file.br` when Accept-Encoding allows it (koa-send's `brotli`). Default true. */
  brotli?: boolean;
  /** Serve `file.gz` when Accept-Encoding allows it (koa-send's `gzip`). Default true. */
  gzip?: boolean;
  /** koa-send's lower-case spelling of maxAge (milliseconds). */
  maxage?: number | string;
}

/** The part of Koa's context this middleware uses. */
export interface KoaContext {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  path: string;
  originalUrl?: string;
  body?: unknown;
  status: number;
  respond?: boolean;
}

export type KoaMiddleware = (ctx: KoaContext, next: () => Promise<unknown>) => Promise<void>;

const NOT_CALLED = Symbol('next not called');

/**
 * Answers ctx with the file; false when there is none (404), so the caller goes on. Other errors
 * (400, a 403 for `..` above root or a denied dotfile, 412, 416, 5xx) throw, with `status` (and
 * `headers` for 416) for Koa's error handling.
 */
async function serveKoa(handle: StaticHandler, ctx: KoaContext): Promise<boolean> {
  let passed: unknown = NOT_CALLED;
  await handle(ctx.req, ctx.res, (err) => {
    passed = err;
  });
  if (passed === NOT_CALLED) {
    // Answered — or, after the headers, the connection was destroyed (a client that left, a
    // truncated file), as koa-static's streams stay quiet about it. Koa must not write after us.
    ctx.respond = false;
    return true;
  }
  if (passed === undefined || (passed as { status?: number }).status === 404) return false;
  throw passed;
}

/**
 * Middleware serving files beneath `root` for GET and HEAD: a file found is answered (200, 206 or
 * 304); a missing one goes on to `next()`; a forbidden path (`..` above root, a denied dotfile), 412
 * and 416 throw an HttpError for Koa's error handling.
 *
 * @throws TypeError 'root path required', 'root path must be a string'
 */
export function serve(root: string, options?: KoaStaticOptions): KoaMiddleware {
  if (!root) throw new TypeError('root path required');
  if (typeof root !== 'string') throw new TypeError('root path must be a string');
  const { defer, hidden, format, brotli, gzip, maxage, ...rest } = options ?? {};
  const codings = [...(brotli === false ? [] : (['br'] as const)), ...(gzip === false ? [] : (['gzip'] as const))];
  const handle = serveStatic(root, {
    ...rest,
    maxAge: maxage ?? rest.maxAge,
    dotfiles: rest.dotfiles ?? (hidden ? 'allow' : 'ignore'),
    precompressed: rest.precompressed ?? (codings.length > 0 ? codings : false),
    redirect: format === false ? false : 'index',
    fallthrough: false,
  });
  if (!defer) {
    return async function serve(ctx, next) {
      if ((ctx.method === 'GET' || ctx.method === 'HEAD') && (await serveKoa(handle, ctx))) return;
      await next();
    };
  }
  return async function serve(ctx, next) {
    await next();
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return;
    if (ctx.body != null || ctx.status !== 404) return; // answered downstream
    await serveKoa(handle, ctx);
  };
}

export { serve as serveStatic };
export default serve;
