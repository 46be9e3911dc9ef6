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
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { extname, isAbsolute, relative as relativePath, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fresh from 'fresh';
import { contentType } from 'mime-types';
import ms from 'ms';
import parseRange from 'range-parser';

import { serveFile, serveStatic, type FileStat, type ServeFileOptions, type ServeResult, type ServeStaticOptions, type StaticHandler } from './index.js';

/** The send options this plugin takes (serve-static's, as serveStatic has them). */
type StaticOptions = Omit<ServeStaticOptions, 'fallthrough' | 'setHeaders' | 'onFound' | 'redirect' | 'maxAge' | 'precompressed'> & {
  /** Redirect a directory URL without its trailing slash (301). Default false: it answers with its index. */
  redirect?: boolean;
  /** Cache-Control max-age in milliseconds, or an `ms` string ('1d'). Default 0; at most a year. */
  maxAge?: number | string;
};

/** @fastify/static's options that this plugin has. */
export interface FastifyStaticOptions extends StaticOptions {
  /** The directory served (absolute, or relative to the working directory). */
  root: string;
  /** The URL prefix of the static route. Default '/'. */
  prefix?: string;
  /** Register the static route. Default true; false to only decorate `reply.sendFile`. */
  serve?: boolean;
  /** Decorate `reply.sendFile(path, [root], [options])`. Default true. */
  decorateReply?: boolean;
  /** Called as `(res, path, stat)` with the Node response before the headers go out. */
  setHeaders?: (res: ServerResponse, path: string, stat: FileStat) => void;
  /**
   * Serve `file.br` or `file.gz` from beside a file when Accept-Encoding allows it (br first), with
   * Content-Encoding, Vary and the variant's own ETag and length. Default false.
   */
  preCompressed?: boolean;
}

/** Options of `reply.sendFile`: serve-static's, per call. */
export type SendFileReplyOptions = Omit<StaticOptions, 'redirect'> & { root?: string };

declare module 'fastify' {
  interface FastifyReply {
    /** Sends `path` (beneath the plugin's root, or `root`) as the reply, by sendfile where the socket allows. */
    sendFile(path: string, root?: string | SendFileReplyOptions, options?: SendFileReplyOptions): FastifyReply;
  }
}

/** A file found by serveStatic's rules, not yet sent. */
interface Found {
  path: string;
  relative: string;
  stat: FileStat;
}

/** Options as this plugin uses them: serveStatic's handler to find files, serveFile's options to send them. */
interface Settings {
  root: string;
  acceptRanges: boolean;
  cacheControl: string | false;
  etag: boolean;
  lastModified: boolean;
  precompressed: false | Array<'br' | 'gzip'>;
  find: StaticHandler;
  send: ServeFileOptions;
}

const MAX_MAXAGE = 60 * 60 * 24 * 365 * 1000; // send's cap: one year

/** Thrown from serveStatic's onFound to stop once the file is found: Fastify's reply sends it. */
class Located {
  constructor(readonly found: Found) {}
}

function pluginSettings(root: unknown, o: Partial<FastifyStaticOptions> | SendFileReplyOptions): Settings {
  if (!root) throw new TypeError('root path required');
  if (typeof root !== 'string') throw new TypeError('root path must be a string');
  const rawAge = o.maxAge ?? 0;
  const age = typeof rawAge === 'string' ? ms(rawAge as ms.StringValue) : Number(rawAge);
  const maxAge = Number.isNaN(age) ? 0 : Math.min(Math.max(0, age), MAX_MAXAGE);
  const cacheControl = o.cacheControl === false ? false : `public, max-age=${Math.floor(maxAge / 1000)}${o.immutable ? ', immutable' : ''}`;
  const precompressed = (o as FastifyStaticOptions).preCompressed ? (['br', 'gzip'] as Array<'br' | 'gzip'>) : false;
  const abs = resolve(root);
  const common = { acceptRanges: o.acceptRanges !== false, etag: o.etag !== false, lastModified: o.lastModified !== false };
  const find = serveStatic(abs, {
    ...common,
    // @fastify/static serves dotfiles unless told otherwise.
    dotfiles: o.dotfiles ?? 'allow',
    extensions: o.extensions ?? false,
    index: o.index ?? 'index.html',
    redirect: (o as StaticOptions).redirect ? true : 'index',
    fallthrough: false,
    onFound: (path, stat) => {
      throw new Located({ path, relative: relativePath(abs, path), stat });
    },
  });
  return {
    root: abs,
    ...common,
    cacheControl,
    precompressed,
    find,
    // The file is opened again beneath root (openat2 RESOLVE_BENEATH), so that a path swapped for a
    // symlink since it was found still cannot leave root.
    send: { root: abs, ...common, dotfiles: 'allow', index: false, redirect: false, cacheControl, precompressed },
  };
}

type Resolution = { kind: 'file'; file: Found } | { kind: 'answered' } | { kind: 'error'; error: Error & { status?: number } };

/** Finds what a URL path (percent-encoded, beneath root) names, with serveStatic's rules, sending nothing but a redirect. */
async function resolveRequest(s: Settings, request: IncomingMessage, res: ServerResponse, urlPath: string): Promise<Resolution> {
  // The request seen with the path beneath root as its URL (the redirect's Location still comes from
  // the real one), and as a GET: reply.sendFile may answer any method, and nothing is sent from here.
  const method = request.method === 'HEAD' ? 'HEAD' : 'GET';
  const req = Object.create(request, { url: { value: urlPath }, originalUrl: { value: request.url }, method: { value: method } }) as IncomingMessage;
  let passed: unknown;
  const result = await s.find(req, res, (err) => {
    passed = err;
  });
  if (passed instanceof Located) return { kind: 'file', file: passed.found };
  if (result) return { kind: 'answered' };
  return { kind: 'error', error: passed as Error & { status?: number } };
}

/** The path of a request target, without query or fragment, as sent (still percent-encoded). */
function pathnameOf(url: string | undefined): string {
  const target = url ?? '/';
  const end = target.search(/[?#]/);
  return end < 0 ? target : target.slice(0, end);
}

/** deliver: serveFile with the file's path beneath root. */
function deliver(req: IncomingMessage, res: ServerResponse, s: Settings, file: Found): Promise<ServeResult> {
  return serveFile(req, res, file.relative.split(sep).map(encodeURIComponent).join('/'), s.send);
}

/** The file headers known before the body: what `onSend` hooks can see. */
function fileHeaders(reply: FastifyReply, s: Settings, file: Found): void {
  const has = (name: string): boolean => reply.hasHeader(name) || reply.raw.hasHeader(name);
  if (!has('content-type')) reply.header('content-type', contentType(extname(file.path)) || 'application/octet-stream');
  if (s.acceptRanges && !has('accept-ranges')) reply.header('accept-ranges', 'bytes');
  if (s.cacheControl !== false && !has('cache-control')) reply.header('cache-control', s.cacheControl);
  if (s.lastModified && !has('last-modified')) reply.header('last-modified', file.stat.mtime.toUTCString());
  // A precompressed variant has its own ETag: serveFile sets it once it has chosen.
  if (s.etag && s.precompressed === false && !has('etag')) reply.header('etag', `W/"${file.stat.size.toString(16)}-${file.stat.mtime.getTime().toString(16)}"`);
}

/**
 * The reply's payload: a Readable for Fastify (it pipes it into the response, watches its end and
 * errors), whose `pipe` into a Node response on a real socket hands that response to serveFile.
 */
class FilePayload extends Readable {
  #req: IncomingMessage;
  #s: Settings;
  #file: Found;
  #streaming = false;

  constructor(req: IncomingMessage, s: Settings, file: Found) {
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

async function sendResolved(request: FastifyRequest, reply: FastifyReply, s: Settings, setHeaders: FastifyStaticOptions['setHeaders'], r: Resolution): Promise<FastifyReply> {
  if (r.kind === 'error') {
    if (r.error.status !== 404) return reply.send(r.error);
    reply.callNotFound();
    return reply;
  }
  if (r.kind === 'answered') {
    // serveStatic sent the 301 adding a directory's trailing slash: the response is done.
    reply.hijack();
    return reply;
  }
  setHeaders?.(reply.raw, r.file.path, r.file.stat);
  fileHeaders(reply, s, r.file);
  return reply.send(new FilePayload(request.raw, s, r.file));
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
      resolveRequest(callSettings, this.request.raw, reply.raw, encoded).then(
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
      return resolveRequest(s, request.raw, reply.raw, rest).then((r) => sendResolved(request, reply, s, setHeaders, r));
    },
  });
}

// fastify-plugin's markers, without depending on it: no encapsulation, and a name for logs and errors.
(zerocopyStatic as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')] = true;
(zerocopyStatic as unknown as Record<symbol, unknown>)[Symbol.for('fastify.display-name')] = 'zerocopy-static';
(zerocopyStatic as unknown as Record<symbol, unknown>)[Symbol.for('plugin-meta')] = { name: 'zerocopy-static', fastify: '5.x' };

export default zerocopyStatic;
