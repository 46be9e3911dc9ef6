/**
 * `zerocopy/koa`: static files for Koa like koa-static / koa-send, with sendfile(2) bodies, byte
 * ranges and validators (ETag, Last-Modified, If-None-Match, If-Range…), which koa-send lacks.
 *
 * ```js
 * import serve from 'zerocopy/koa';
 * app.use(serve('public'));
 * ```
 *
 * Nothing is imported from Koa.
 *
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import { deliver, resolveRequest, settings, type Settings, type StaticOptions } from './static-core.js';

export type { HttpError, StaticOptions } from './static-core.js';

/** koa-static's options (and serve-static's, which these map to). */
export interface KoaStaticOptions extends Omit<StaticOptions, 'fallthrough' | 'redirect'> {
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

/** Answers ctx with the file; false when there is none (404), so the caller goes on. Other errors throw. */
async function serveKoa(s: Settings, ctx: KoaContext): Promise<boolean> {
  const r = await resolveRequest(s, ctx.path, ctx.originalUrl ?? ctx.req.url ?? '/');
  if (r.kind === 'error') {
    if (r.status === 404) return false;
    throw r.error;
  }
  if (r.kind === 'redirect') return false; // not reached: directories answer with their index or 404
  s.setHeaders?.(ctx.res, r.path, r.stat);
  // The response is ours from here: Koa must not write a body after us.
  ctx.respond = false;
  await deliver(ctx.req, ctx.res, s, r).catch((err: unknown) => {
    // After the headers, serveFile has destroyed the connection (a client that left, a truncated
    // file): nothing is left to answer, and koa-static's streams stay as quiet about it.
    if (!ctx.res.headersSent) throw err;
  });
  return true;
}

/**
 * Middleware serving files beneath `root` for GET and HEAD: a file found is answered (200, 206, 304,
 * 412 or 416); a missing one goes on to `next()`; a forbidden path (`..` above root, a denied
 * dotfile) throws a 403 HttpError for Koa's error handling.
 *
 * @throws TypeError 'root path required', 'root path must be a string', 'option setHeaders must be function'
 */
export function serve(root: string, options?: KoaStaticOptions): KoaMiddleware {
  const o = options ?? {};
  const codings = [...(o.brotli === false ? [] : (['br'] as const)), ...(o.gzip === false ? [] : (['gzip'] as const))];
  const precompressed = o.precompressed ?? (codings.length > 0 ? codings : false);
  const s = settings(root, { ...o, dotfiles: o.dotfiles ?? (o.hidden ? 'allow' : 'ignore'), precompressed }, o.format === false ? '404' : 'index');
  if (!o.defer) {
    return async function serve(ctx, next) {
      if ((ctx.method === 'GET' || ctx.method === 'HEAD') && (await serveKoa(s, ctx))) return;
      await next();
    };
  }
  return async function serve(ctx, next) {
    await next();
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return;
    if (ctx.body != null || ctx.status !== 404) return; // answered downstream
    await serveKoa(s, ctx);
  };
}

export { serve as serveStatic };
export default serve;
