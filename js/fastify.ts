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
 * payload, and logging, `onResponse` and `reply.sent` see the response as Fastify sent it. The file
 * is opened once: serveStatic finds and opens it, then waits in its onFound hook while Fastify runs the
 * reply. When the payload reaches the Node response on a real socket, serveStatic sends that file (or
 * the 304/206 answer) with sendfile; when an `onSend` hook replaced the payload or the response has no
 * socket (`fastify.inject`), the payload reads the open file through a stream. Nothing is imported
 * from Fastify.
 *
 * @packageDocumentation
 */
import { createReadStream, read, type ReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { extname, isAbsolute, relative as relativePath, resolve } from 'node:path';
import { Readable } from 'node:stream';

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fresh from 'fresh';
import { contentType } from 'mime-types';
import ms from 'ms';
import parseRange from 'range-parser';

import { serveStatic, type FileStat, type FoundFile, type ServeResult, type ServeStaticOptions, type StaticHandler } from './index.js';

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

/** Options as this plugin uses them: serveStatic's handler, which finds the file and, once the reply lets it, sends it. */
interface Settings {
  root: string;
  acceptRanges: boolean;
  cacheControl: string | false;
  etag: boolean;
  lastModified: boolean;
  precompressed: false | Array<'br' | 'gzip'>;
  handle: StaticHandler;
}

const MAX_MAXAGE = 60 * 60 * 24 * 365 * 1000; // send's cap: one year

/** Where serveStatic's onFound finds the request's Pending: on the request it was handed. */
const PENDING = Symbol('zerocopy.fastify.pending');
type Tagged = IncomingMessage & { [PENDING]?: Pending };

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
  // One open per request: serveStatic opens the file (beneath root, openat2 RESOLVE_BENEATH) and
  // waits in onFound while Fastify runs the reply; the payload then lets it send that very file, or
  // reads it itself (the stream fallback), or lets it go.
  const handle = serveStatic(abs, {
    ...common,
    // @fastify/static serves dotfiles unless told otherwise.
    dotfiles: o.dotfiles ?? 'allow',
    extensions: o.extensions ?? false,
    index: o.index ?? 'index.html',
    redirect: (o as StaticOptions).redirect ? true : 'index',
    cacheControl,
    precompressed,
    fallthrough: false,
    onFound: (path, stat, req, file) => (req as Tagged)[PENDING]?.found(path, stat, file) ?? false,
  });
  return { root: abs, ...common, cacheControl, precompressed, handle };
}

type Resolution = { kind: 'file'; file: Pending } | { kind: 'answered' } | { kind: 'error'; error: Error & { status?: number } };

type State = 'finding' | 'held' | 'sending' | 'streaming' | 'done';

/**
 * One request's file, from serveStatic's find to the end of its send. serveStatic holds the file
 * open while it waits in onFound (state 'held'); the payload then resumes it to send on the socket
 * ('sending'), or reads the file itself ('streaming'), or the reply lets it go ('done'). The fd is
 * serveStatic's: it closes it once, when onFound's promise settles and the answer is done.
 */
class Pending {
  state: State = 'finding';
  path = '';
  stat: FileStat | undefined;
  file: FoundFile | undefined;
  payload: FilePayload | undefined;
  #proceed: ((go: void | false) => void) | undefined;
  #passed: unknown;
  /** The file stream of the fallback, while it reads the fd. */
  #reading: ReadStream | undefined;

  constructor(
    readonly res: ServerResponse,
    readonly resolved: (r: Resolution) => void,
  ) {}

  /** serveStatic's onFound: hold the file, hand it to the reply. */
  found(path: string, stat: FileStat, file: FoundFile): Promise<void | false> {
    return new Promise((proceed) => {
      this.state = 'held';
      this.path = path;
      this.stat = stat;
      this.file = file;
      this.#proceed = proceed;
      this.resolved({ kind: 'file', file: this });
      // Without onSend hooks the payload is already piped to the response, and serveStatic watches
      // it. Otherwise watch the response: a reply that ends without our payload (replaced, an
      // error, sent already), or one that closes while the fallback reads it through a hook's
      // stream (an onSend hook runs, and pipes the payload, before this line), lets the file go.
      if (this.state === 'held' || this.state === 'streaming') {
        if (this.res.destroyed || this.res.writableFinished) this.release();
        else this.res.once('close', () => this.#closed());
      }
    });
  }

  /** serveStatic's `next`: an error before the file was found, or after the send began (412, 416, a 5xx). */
  readonly next = (err?: unknown): void => {
    if (this.state === 'finding') this.#passed = err;
    else this.payload?.failed(err as Error);
  };

  /** serveStatic's promise settled: the answer is done. */
  readonly ended = (result: ServeResult | undefined): void => {
    if (this.state !== 'finding') {
      this.state = 'done';
      return;
    }
    this.state = 'done';
    if (result) this.resolved({ kind: 'answered' });
    else this.resolved({ kind: 'error', error: (this.#passed ?? new Error('file not served')) as Error & { status?: number } });
  };

  /** Let serveStatic send the file on the response it was given. */
  send(): boolean {
    if (this.state !== 'held') return false;
    this.state = 'sending';
    this.#proceed?.(undefined);
    return true;
  }

  /** The fallback reads the file: the fd stays open until `release`. */
  stream(): FoundFile | undefined {
    if (this.state !== 'held') return undefined;
    this.state = 'streaming';
    return this.file;
  }

  /** The fallback's file stream, which `release` waits for (a read in flight must not outlive the fd). */
  reading(stream: ReadStream): void {
    this.#reading = stream;
    stream.once('close', () => {
      this.#reading = undefined;
      this.release();
    });
  }

  /** Let serveStatic close the file and send nothing. */
  release(): void {
    if (this.state !== 'held' && this.state !== 'streaming') return;
    if (this.#reading) {
      this.#reading.destroy();
      return;
    }
    this.state = 'done';
    this.#proceed?.(false);
  }

  #closed(): void {
    if (this.state === 'held' || this.state === 'streaming') this.release();
  }
}

/** Finds what a URL path (percent-encoded, beneath root) names, with serveStatic's rules, sending nothing but a redirect. */
function resolveRequest(s: Settings, request: IncomingMessage, res: ServerResponse, urlPath: string, then: (r: Resolution) => void): void {
  // The request seen with the path beneath root as its URL (the redirect's Location still comes from
  // the real one), and as a GET: reply.sendFile may answer any method.
  const method = request.method === 'HEAD' ? 'HEAD' : 'GET';
  // The static route's usual request as it is: serveStatic would see nothing else.
  const same = method === request.method && urlPath === request.url;
  const req = (same ? request : Object.create(request, { url: { value: urlPath }, originalUrl: { value: request.url }, method: { value: method } })) as Tagged;
  const pending = new Pending(res, then);
  req[PENDING] = pending;
  void s.handle(req, res, pending.next).then(pending.ended);
}

/** The path of a request target, without query or fragment, as sent (still percent-encoded). */
function pathnameOf(url: string | undefined): string {
  const target = url ?? '/';
  const end = target.search(/[?#]/);
  return end < 0 ? target : target.slice(0, end);
}

/** Content types by extension, memoised (bounded: extensions come from request paths). */
const types = new Map<string, string>();
function typeOf(path: string): string {
  const ext = extname(path);
  let type = types.get(ext);
  if (type === undefined) {
    type = contentType(ext) || 'application/octet-stream';
    if (types.size >= 512) types.clear();
    types.set(ext, type);
  }
  return type;
}

/** The file headers known before the body: what `onSend` hooks can see. */
function fileHeaders(reply: FastifyReply, s: Settings, path: string, stat: FileStat): void {
  const raw = reply.raw;
  const has = (name: string): boolean => reply.hasHeader(name) || raw.hasHeader(name);
  if (!has('content-type')) reply.header('content-type', typeOf(path));
  if (s.acceptRanges && !has('accept-ranges')) reply.header('accept-ranges', 'bytes');
  if (s.cacheControl !== false && !has('cache-control')) reply.header('cache-control', s.cacheControl);
  if (s.lastModified && !has('last-modified')) reply.header('last-modified', stat.mtime.toUTCString());
  // A precompressed variant has its own ETag: serveStatic sets it once it has chosen.
  if (s.etag && s.precompressed === false && !has('etag')) reply.header('etag', `W/"${stat.size.toString(16)}-${stat.mtime.getTime().toString(16)}"`);
}

/** The headers of a file, not of an error answer in its place. */
const FILE_HEADERS = ['content-type', 'content-length', 'content-range', 'content-encoding', 'accept-ranges', 'cache-control', 'last-modified', 'etag', 'vary'];

/**
 * The reply's payload: a Readable for Fastify (it pipes it into the response, watches its end and
 * errors), whose `pipe` into the Node response on a real socket lets serveStatic send the file.
 */
class FilePayload extends Readable {
  #req: IncomingMessage;
  #reply: FastifyReply;
  #s: Settings;
  #file: Pending;
  #streaming = false;

  constructor(req: IncomingMessage, reply: FastifyReply, s: Settings, file: Pending) {
    super();
    this.#req = req;
    this.#reply = reply;
    this.#s = s;
    this.#file = file;
    file.payload = this;
  }

  override _read(): void {
    // Only read when consumed as a stream: fed by the file stream started in #stream.
  }

  override pipe<T extends NodeJS.WritableStream>(dest: T, options?: { end?: boolean }): T {
    const res = dest as unknown as ServerResponse;
    if (res === this.#file.res && res.socket instanceof Socket && !res.headersSent && options?.end !== false && this.#file.state === 'held') {
      // Ended already, so that Fastify's end-of-stream watch finds it done when the response finishes;
      // a failure of the send still destroys it (failed).
      this.push(null);
      this.#file.send();
      return dest;
    }
    if (typeof res.setHeader === 'function' && !res.headersSent) this.#validators(res);
    if (!this.destroyed && !this.readableEnded) this.#stream();
    return super.pipe(dest, options);
  }

  /** serveStatic could not send the file (412, 416, a 5xx before the headers): Fastify's error handling answers. */
  failed(err: Error): void {
    if (this.destroyed) return;
    const res = this.#file.res;
    if (!res.headersSent) {
      for (const name of FILE_HEADERS) {
        this.#reply.removeHeader(name);
        // The 416's Content-Range is in err.headers, which Fastify's error handler sets.
        res.removeHeader(name);
      }
    }
    this.destroy(err);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#file.release();
    callback(err);
  }

  /** Without serveStatic (no socket): 304 and a single range from the headers already set, as send does. */
  #validators(res: ServerResponse): void {
    const req = this.#req;
    const size = (this.#file.stat as FileStat).size;
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

  /** The fallback: the bytes of the file serveStatic opened (never the path again: it may be another file by now). */
  #stream(): void {
    if (this.#streaming) return;
    this.#streaming = true;
    const file = this.#file.stream();
    if (!file) {
      this.destroy(Object.assign(new Error('Premature close: the response closed before the file was read'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
      return;
    }
    const [start, end] = this.#range ?? [0, (this.#file.stat as FileStat).size - 1];
    if (end < start || file.body) {
      if (end >= start && file.body) this.push(file.body.subarray(start, end + 1));
      this.push(null);
      this.#file.release();
      return;
    }
    // The fd is serveStatic's, which closes it once release() lets it. fs.ReadStream closes its fd
    // on destroy() even with autoClose: false (Node 20-26), and that second close would hit whatever
    // took the number meanwhile (a socket accepted, a file opened on the pool): so it gets a close
    // that does nothing, and still waits, as it does before closing, for its read in flight.
    const stream = createReadStream('', { fd: file.fd, start, end, autoClose: false, fs: { read, open: unusedOpen, close: keepOpen } });
    this.#file.reading(stream);
    stream.on('data', (chunk) => {
      if (!this.push(chunk)) stream.pause();
    });
    stream.on('end', () => this.push(null));
    stream.on('error', (err) => this.destroy(err));
    this._read = () => stream.resume();
  }
}

/** The file stream's close: the fd stays open for serveStatic to close. */
function keepOpen(_fd: number, callback: (err: NodeJS.ErrnoException | null) => void): void {
  callback(null);
}

/** The file stream's open, never called: it is given the fd. */
function unusedOpen(_path: unknown, _flags: unknown, _mode: unknown, callback: (err: NodeJS.ErrnoException | null, fd?: number) => void): void {
  callback(Object.assign(new Error('zerocopy/fastify: the file stream opens nothing'), { code: 'EINVAL' }));
}

function sendResolved(request: FastifyRequest, reply: FastifyReply, s: Settings, setHeaders: FastifyStaticOptions['setHeaders'], r: Resolution): void {
  if (r.kind === 'error') {
    if (r.error.status !== 404) reply.send(r.error);
    else reply.callNotFound();
    return;
  }
  if (r.kind === 'answered') {
    // serveStatic sent the 301 adding a directory's trailing slash: the response is done.
    reply.hijack();
    return;
  }
  const file = r.file;
  try {
    setHeaders?.(reply.raw, file.path, file.stat as FileStat);
    fileHeaders(reply, s, file.path, file.stat as FileStat);
    reply.send(new FilePayload(request.raw, reply, s, file));
  } catch (err) {
    file.release();
    reply.send(err);
  }
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
      const request = this.request;
      resolveRequest(callSettings, request.raw, reply.raw, encoded, (r) => sendResolved(request, reply, callSettings, setHeaders, r));
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
      // Not a promise: Fastify would send its value once it settles, and the file is sent by then.
      resolveRequest(s, request.raw, reply.raw, rest, (r) => sendResolved(request, reply, s, setHeaders, r));
    },
  });
}

// fastify-plugin's markers, without depending on it: no encapsulation, and a name for logs and errors.
(zerocopyStatic as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')] = true;
(zerocopyStatic as unknown as Record<symbol, unknown>)[Symbol.for('fastify.display-name')] = 'zerocopy-static';
(zerocopyStatic as unknown as Record<symbol, unknown>)[Symbol.for('plugin-meta')] = { name: 'zerocopy-static', fastify: '5.x' };

export default zerocopyStatic;
