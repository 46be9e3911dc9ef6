/**
 * `zerocopy/fastify`: a Fastify 5 plugin serving static files like @fastify/static, whose file
 * bodies go by sendfile(2), and `reply.sendFile(path)`.
 *
 * ```js
 * import zerocopyStatic from 'zerocopy/fastify';
 * await fastify.register(zerocopyStatic, { root: '/srv/public', prefix: '/static/' });
 * fastify.get('/', (req, reply) => reply.sendFile('index.html'));
 * ```
 *
 * The file goes through Fastify's reply: the headers known from the file (Content-Type, ETag,
 * Last-Modified, Cache-Control) are on the reply before `onSend` hooks run, the body is a stream
 * payload, and logging, `onResponse` and `reply.sent` see the response as Fastify sent it. When the
 * payload reaches the Node response on a real socket, the body (or the 304/206/416 answer) is
 * served by serveFile with sendfile; when an `onSend` hook replaced the payload or the response has no
 * socket (`fastify.inject`), the file is read through a stream. Nothing is imported from Fastify.
 *
 * @packageDocumentation
 */
import { createReadStream, type Stats } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { extname, isAbsolute, relative as relativePath, resolve } from 'node:path';
import { Readable } from 'node:stream';

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import etag from 'etag';
import fresh from 'fresh';
import { contentType } from 'mime-types';
import parseRange from 'range-parser';

import { deliver, pathnameOf, resolveRequest, settings, type Settings, type StaticOptions } from './static-core.js';

export type { HttpError } from './static-core.js';

/** @fastify/static's options that this plugin has. */
export interface FastifyStaticOptions extends Omit<StaticOptions, 'fallthrough' | 'setHeaders'> {
  /** The directory served (absolute, or relative to the working directory). */
  root: string;
  /** The URL prefix of the static route. Default '/'. */
  prefix?: string;
  /** Register the static route. Default true; false to only decorate `reply.sendFile`. */
  serve?: boolean;
  /** Decorate `reply.sendFile(path, [root], [options])`. Default true. */
  decorateReply?: boolean;
  /** Called as `(res, path, stat)` with the Node response before the headers go out. */
  setHeaders?: (res: ServerResponse, path: string, stat: Stats) => void;
  /**
   * Serve `file.br` or `file.gz` from beside a file when Accept-Encoding allows it (br first), with
   * Content-Encoding, Vary and the variant's own ETag and length. Default false.
   */
  preCompressed?: boolean;
}

/** Options of `reply.sendFile`: serve-static's, per call. */
export type SendFileReplyOptions = Omit<StaticOptions, 'fallthrough' | 'redirect' | 'setHeaders'> & { root?: string };

declare module 'fastify' {
  interface FastifyReply {
    /** Sends `path` (beneath the plugin's root, or `root`) as the reply, by sendfile where the socket allows. */
    sendFile(path: string, root?: string | SendFileReplyOptions, options?: SendFileReplyOptions): FastifyReply;
  }
}

/** The file headers known before the body: what `onSend` hooks can see. */
function fileHeaders(reply: FastifyReply, s: Settings, file: { path: string; stat: Stats }): void {
  const has = (name: string): boolean => reply.hasHeader(name) || reply.raw.hasHeader(name);
  if (!has('content-type')) reply.header('content-type', contentType(extname(file.path)) || 'application/octet-stream');
  if (s.acceptRanges && !has('accept-ranges')) reply.header('accept-ranges', 'bytes');
  if (s.cacheControl !== false && !has('cache-control')) reply.header('cache-control', s.cacheControl);
  if (s.lastModified && !has('last-modified')) reply.header('last-modified', file.stat.mtime.toUTCString());
  // A precompressed variant has its own ETag: serveFile sets it once it has chosen.
  if (s.etag && s.precompressed === false && !has('etag')) reply.header('etag', etag(file.stat));
}

/**
 * The reply's payload: a Readable for Fastify (it pipes it into the response, watches its end and
 * errors), whose `pipe` into a Node response on a real socket hands that response to serveFile.
 */
class FilePayload extends Readable {
  #req: IncomingMessage;
  #s: Settings;
  #file: { path: string; relative: string; stat: Stats };
  #streaming = false;

  constructor(req: IncomingMessage, s: Settings, file: { path: string; relative: string; stat: Stats }) {
    super();
    this.#req = req;
    this.#s = s;
    this.#file = file;
  }

  override _read(): void {
    // Only read when consumed as a stream: fed by the file stream started in #stream.
  }

  override pipe<T extends NodeJS.WritableStream>(dest: T, options?: { end?: boolean }): T {
    const res = dest as unknown as ServerResponse;
    if (typeof res.setHeader === 'function' && res.socket instanceof Socket && !res.headersSent && options?.end !== false) {
      deliver(this.#req, res, this.#s, this.#file).then(
        () => {
          this.push(null);
          this.resume();
        },
        (err: unknown) => this.destroy(err as Error),
      );
      return dest;
    }
    if (typeof res.setHeader === 'function' && !res.headersSent) this.#validators(res);
    if (!this.destroyed && !this.readableEnded) this.#stream();
    return super.pipe(dest, options);
  }

  /** Without serveFile (no socket): 304 and a single range from the headers already set, as send does. */
  #validators(res: ServerResponse): void {
    const req = this.#req;
    const size = this.#file.stat.size;
    if (fresh(req.headers, { etag: res.getHeader('etag') as string | undefined, 'last-modified': res.getHeader('last-modified') as string | undefined })) {
      for (const name of ['content-type', 'content-length', 'content-range']) res.removeHeader(name);
      res.statusCode = 304;
      this.#range = [0, -1];
      return;
    }
    let start = 0;
    let end = size - 1;
    const header = this.#s.acceptRanges ? req.headers.range : undefined;
    if (header) {
      const ranges = parseRange(size, header, { combine: true });
      if (ranges === -1) {
        res.statusCode = 416;
        res.setHeader('content-range', `bytes */${size}`);
        this.#range = [0, -1];
        res.setHeader('content-length', 0);
        return;
      }
      if (ranges !== -2 && ranges.length === 1 && ranges[0]) {
        start = ranges[0].start;
        end = ranges[0].end;
        res.statusCode = 206;
        res.setHeader('content-range', `bytes ${start}-${end}/${size}`);
      }
    }
    res.setHeader('content-length', end - start + 1);
    if (req.method === 'HEAD') end = start - 1;
    this.#range = [start, end];
  }

  #range: [number, number] | undefined;

  #stream(): void {
    if (this.#streaming) return;
    this.#streaming = true;
    const [start, end] = this.#range ?? [0, this.#file.stat.size - 1];
    if (end < start) {
      this.push(null);
      return;
    }
    const file = createReadStream(this.#file.path, { start, end });
    file.on('data', (chunk) => {
      if (!this.push(chunk)) file.pause();
    });
    file.on('end', () => this.push(null));
    file.on('error', (err) => this.destroy(err));
    this.on('drain', () => file.resume());
    this._read = () => file.resume();
    this.once('close', () => file.destroy());
  }
}

function pluginSettings(root: unknown, o: Partial<FastifyStaticOptions> | SendFileReplyOptions): Settings {
  // @fastify/static serves dotfiles unless told otherwise.
  const precompressed = (o as FastifyStaticOptions).preCompressed ? (['br', 'gzip'] as Array<'br' | 'gzip'>) : false;
  return settings(root, { ...o, dotfiles: o.dotfiles ?? 'allow', setHeaders: undefined, fallthrough: true, precompressed } as StaticOptions, (o as StaticOptions).redirect ? 'redirect' : 'index');
}

async function sendResolved(request: FastifyRequest, reply: FastifyReply, s: Settings, setHeaders: FastifyStaticOptions['setHeaders'], r: Awaited<ReturnType<typeof resolveRequest>>): Promise<FastifyReply> {
  if (r.kind === 'error') {
    if (r.status !== 404) return reply.send(r.error);
    reply.callNotFound();
    return reply;
  }
  if (r.kind === 'redirect') return reply.redirect(r.location, 301);
  setHeaders?.(reply.raw, r.path, r.stat);
  fileHeaders(reply, s, r);
  return reply.send(new FilePayload(request.raw, s, r));
}

/**
 * The plugin. Registered without encapsulation (like fastify-plugin's), so `reply.sendFile` is
 * there for the routes of the instance that registered it.
 *
 * @throws TypeError for a missing or non-string root, a setHeaders that is not a function
 */
export async function zerocopyStatic(fastify: FastifyInstance, options: FastifyStaticOptions): Promise<void> {
  const o = options ?? ({} as FastifyStaticOptions);
  if (o.setHeaders !== undefined && typeof o.setHeaders !== 'function') throw new TypeError('setHeaders option must be a function');
  const s = pluginSettings(o.root, o);
  const setHeaders = o.setHeaders;

  if (o.decorateReply !== false) {
    fastify.decorateReply('sendFile', function sendFile(this: FastifyReply, path: string, rootOrOptions?: string | SendFileReplyOptions, maybeOptions?: SendFileReplyOptions) {
      const opts = typeof rootOrOptions === 'object' ? rootOrOptions : maybeOptions;
      const root = typeof rootOrOptions === 'string' ? rootOrOptions : (opts?.root ?? s.root);
      const callSettings = opts || root !== s.root ? pluginSettings(root, { ...o, ...opts }) : s;
      const reply = this;
      // An absolute path inside root is taken relative to it, as @fastify/send does.
      const urlPath = isAbsolute(path) && resolve(path).startsWith(callSettings.root) ? relativePath(callSettings.root, resolve(path)) : path;
      const encoded = `/${urlPath.replace(/^\/+/, '')}`.split('/').map(encodeURIComponent).join('/');
      resolveRequest(callSettings, encoded, this.request.raw.url ?? '/').then(
        (r) => sendResolved(this.request, reply, callSettings, setHeaders, r),
        (err: unknown) => reply.send(err),
      );
      return this;
    });
  }

  if (o.serve === false) return;
  let prefix = o.prefix ?? '/';
  if (!prefix.endsWith('/')) prefix += '/';
  fastify.route({
    method: ['GET', 'HEAD'],
    url: `${prefix}*`,
    schema: { hide: true } as object,
    handler(request, reply) {
      const raw = pathnameOf(request.raw.url);
      // The path as sent (still percent-encoded), so that resolveRequest decodes it once; the decoded
      // wildcard only where the router matched a URL not spelled like the prefix (case-insensitive routes).
      const rest = raw.startsWith(prefix) ? raw.slice(prefix.length - 1) : `/${encodeURI(String((request.params as Record<string, string>)['*'] ?? ''))}`;
      return resolveRequest(s, rest, request.raw.url ?? '/').then((r) => sendResolved(request, reply, s, setHeaders, r));
    },
  });
}

// fastify-plugin's markers, without depending on it: no encapsulation, and a name for logs and errors.
(zerocopyStatic as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')] = true;
(zerocopyStatic as unknown as Record<symbol, unknown>)[Symbol.for('fastify.display-name')] = 'zerocopy-static';
(zerocopyStatic as unknown as Record<symbol, unknown>)[Symbol.for('plugin-meta')] = { name: 'zerocopy-static', fastify: '5.x' };

export default zerocopyStatic;
