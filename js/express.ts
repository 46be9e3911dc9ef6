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
 * imported from Express.
 *
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import { deliver, pathnameOf, resolveRequest, sendRedirect, settings, type StaticOptions } from './static-core.js';

export type { HttpError, StaticOptions } from './static-core.js';

/** serve-static's options. */
export type ServeStaticOptions = StaticOptions;

/** A connect/Express middleware. */
export type StaticMiddleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/**
 * Returns middleware serving files beneath `root`, as serve-static does: GET and HEAD only (other
 * methods fall through, or get 405 with `fallthrough: false`), the 301 to add a directory's trailing
 * slash at the mount point (`req.originalUrl`), a 404 that calls `next()` (or `next(err)` with
 * `fallthrough: false`), and every other error to `next(err)`.
 *
 * @throws TypeError 'root path required', 'root path must be a string', 'option setHeaders must be function'
 */
export function serveStatic(root: string, options?: ServeStaticOptions): StaticMiddleware {
  const s = settings(root, options);
  return function serveStatic(req, res, next) {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      if (s.fallthrough) return next();
      res.statusCode = 405;
      res.setHeader('Allow', 'GET, HEAD');
      res.setHeader('Content-Length', '0');
      res.end();
      return;
    }
    const originalUrl = (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
    let path = pathnameOf(req.url);
    // At the mount point itself ('/static' mounted at '/static'), '' makes the directory redirect happen.
    if (path === '/' && !pathnameOf(originalUrl).endsWith('/')) path = '';
    resolveRequest(s, path, originalUrl).then(
      (r) => {
        if (r.kind === 'error') return r.status < 500 && s.fallthrough ? next() : next(r.error);
        if (r.kind === 'redirect') return sendRedirect(req, res, r.location);
        s.setHeaders?.(res, r.path, r.stat);
        deliver(req, res, s, r).then(
          () => undefined,
          (err: unknown) => {
            if (!res.headersSent) next(err);
          },
        );
      },
      (err: unknown) => next(err),
    );
  };
}

export default serveStatic;
