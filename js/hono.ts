/**
 * `zerocopy/hono`: `serveStatic` for Hono on @hono/node-server, whose file bodies go by sendfile(2)
 * straight to the Node response (`c.env.outgoing`), with byte ranges and validators (ETag,
 * Last-Modified), which @hono/node-server's serveStatic lacks.
 *
 * ```js
 * import { serveStatic } from 'zerocopy/hono';
 * app.use('/static/*', serveStatic({ root: './' }));
 * ```
 *
 * Where the request did not come through @hono/node-server (`app.request()` in tests, another
 * runtime), there is no Node socket: the middleware hands the request to @hono/node-server's own
 * serveStatic, imported then and only then.
 *
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import { serveStatic as handler, type ServeStaticOptions } from './index.js';

export type { HttpError, StaticOptions } from './express.js';

/** The part of Hono's context this middleware uses. */
export interface HonoContext {
  req: { url: string; method: string; path: string };
  env?: { incoming?: IncomingMessage; outgoing?: ServerResponse } | unknown;
}

/** @hono/node-server serveStatic's options, and serve-static's. */
export interface HonoStaticOptions<C extends HonoContext = HonoContext> extends Omit<ServeStaticOptions, 'fallthrough' | 'redirect' | 'index' | 'onFound'> {
  /** The directory served (relative to the working directory). Default '.'. */
  root?: string;
  /** Serve this file for every request, instead of the request's path. */
  path?: string;
  /** The index file of a directory. Default 'index.html'. */
  index?: string;
  /** Maps the request's path (percent-encoded) to the path beneath root: `(p) => p.replace(/^\/static/, '')`. */
  rewriteRequestPath?: (path: string, c: C) => string;
  /** Serve `file.br`, `file.zst` or `file.gz` when Accept-Encoding allows it. Default false. */
  precompressed?: boolean;
  /** Called with the file's absolute path once it is found, and awaited before anything is sent. */
  onFound?: (path: string, c: C) => void | Promise<void>;
  /** Called with the path tried when nothing is found, before next(). */
  onNotFound?: (path: string, c: C) => void | Promise<void>;
}

/** The path of a request target, without query or fragment. */
function pathnameOf(url: string): string {
  const end = url.search(/[?#]/);
  return end < 0 ? url : url.slice(0, end);
}

const NOT_CALLED = Symbol('next not called');

export type HonoMiddleware<C extends HonoContext = HonoContext> = (c: C, next: () => Promise<void>) => Promise<Response | void>;

// @hono/node-server's RESPONSE_ALREADY_SENT is a Response with this header: its listener then leaves
// the Node response alone. Made here so that loading this module does not load @hono/node-server.
const ALREADY_SENT_HEADER = 'x-hono-already-sent';

/**
 * The runtime's own Response class. @hono/node-server replaces globalThis.Response with a lighter
 * subclass whose bodiless instances its listener writes out as they are, already-sent header or not.
 */
function platformResponse(): typeof Response {
  let R = globalThis.Response;
  for (let up = Object.getPrototypeOf(R); typeof up === 'function' && up !== Function.prototype; up = Object.getPrototypeOf(R)) R = up;
  return R;
}

type HonoServeStatic = (options: object) => (c: unknown, next: () => Promise<void>) => Promise<Response | void>;
let honoServeStatic: Promise<HonoServeStatic> | undefined;

function nodeBindings(c: HonoContext): { incoming: IncomingMessage; outgoing: ServerResponse } | undefined {
  const env = c.env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined;
  const incoming = env?.incoming;
  const outgoing = env?.outgoing;
  if (!incoming || !outgoing || typeof outgoing.setHeader !== 'function' || outgoing.headersSent || !outgoing.socket) return undefined;
  return { incoming, outgoing };
}

/**
 * Middleware serving files beneath `options.root` for GET and HEAD; anything not found goes on to
 * `next()`. A directory answers with its index file.
 *
 * @throws TypeError 'root path must be a string', 'option setHeaders must be function'
 */
export function serveStatic<C extends HonoContext = HonoContext>(options?: HonoStaticOptions<C>): HonoMiddleware<C> {
  const o = options ?? {};
  if (o.root !== undefined && typeof o.root !== 'string') throw new TypeError('root path must be a string');
  if (o.setHeaders && typeof o.setHeaders !== 'function') throw new TypeError('option setHeaders must be function');
  const { root, path: fixedPath, rewriteRequestPath, onFound, onNotFound, ...rest } = o;
  // The context of each request in flight, for onFound (serveStatic hands it the request).
  const contexts = new WeakMap<IncomingMessage, C>();
  const handle = handler(root ?? '.', {
    ...rest,
    redirect: 'index',
    fallthrough: false,
    // Hono's onFound returns nothing: whatever it does return must not read as serveStatic's `false` (stop).
    ...(onFound
      ? {
          onFound: (path: string, _stat: unknown, req: IncomingMessage): void | Promise<void> => {
            const r: unknown = onFound(path, contexts.get(req) as C);
            return r instanceof Promise ? r.then(() => undefined) : undefined;
          },
        }
      : {}),
  });
  let fallback: ReturnType<HonoServeStatic> | undefined;
  return async function serveStatic(c, next) {
    const node = nodeBindings(c);
    if (!node) {
      honoServeStatic ??= import('@hono/node-server/serve-static').then((m) => m.serveStatic as unknown as HonoServeStatic);
      fallback ??= (await honoServeStatic)(options ?? {});
      return fallback(c, next);
    }
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') return next();
    const url = c.req.url;
    const requestPath = pathnameOf(url.slice(url.indexOf('/', url.indexOf('//') + 2)));
    const path = fixedPath ?? (rewriteRequestPath ? rewriteRequestPath(requestPath, c) : requestPath);
    // The Node request, seen with the path to serve as its URL.
    const req = Object.create(node.incoming, { url: { value: path } }) as IncomingMessage;
    contexts.set(req, c);
    let passed: unknown = NOT_CALLED;
    const result = await handle(req, node.outgoing, (err) => {
      passed = err;
    });
    const res = node.outgoing;
    if (passed !== NOT_CALLED) {
      const err = passed as { status?: number; message?: string; headers?: Record<string, string> } | undefined;
      const status = err?.status ?? 500;
      if (status >= 500) throw passed;
      if (status !== 412 && status !== 416) {
        await onNotFound?.(path, c);
        return next();
      }
      // A file was found but its preconditions or range fail: answered here, as serveFile does.
      const body = `${err?.message ?? ''}\n`;
      res.statusCode = status;
      res.removeHeader('Content-Encoding'); // a precompressed variant was chosen, but is not what is sent
      for (const [name, value] of Object.entries(err?.headers ?? {})) res.setHeader(name, value);
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.setHeader('Content-Length', Buffer.byteLength(body));
      res.end(req.method === 'HEAD' ? undefined : body);
    }
    // The status is what went out, for Hono's middleware that look at c.res (loggers). After the
    // headers a failure has destroyed the connection (a client that left, a truncated file).
    return new (platformResponse())(null, { status: result?.status ?? res.statusCode, headers: { [ALREADY_SENT_HEADER]: 'true' } });
  };
}

export default serveStatic;
