/**
 * Serving files over HTTP with sendfile: `serveFile` (one request, one file) and `serveStatic` (a
 * directory, as express.static). RFC 9110 semantics, built on pillarjs helpers where they exist:
 * range-parser, negotiator, etag and mime-types.
 *
 * - target.ts: request target and root safety; opening the file
 * - conditional.ts: validators and preconditions
 * - ranges.ts: single and multipart ranges
 * - negotiate.ts: precompressed variants
 * - body.ts: inline, sendfile and multipart bodies
 * - engine.ts: one request, from options to response
 * - cache.ts, watch.ts: the small-file cache and the watches that keep it fresh
 */
export { serveFile } from './serve-file.js';
export type { ServeFileOptions } from './serve-file.js';
export { serveStatic } from './static.js';
export type { FoundFile, ServeStaticOptions, StaticHandler } from './static.js';
export { INLINE_BODY_LIMIT } from './engine.js';
export { clearFileCache, fileCacheStats } from './cache.js';
export type { FileCacheStats } from './cache.js';
export type { ServeResult } from './engine.js';
export type { FileStat } from './target.js';
