/**
 * Every Node internal zerocopy touches, in one place, each checked before it is used.
 *
 * A native transfer takes a socket's fd away from Node for its length, which Node's public API does
 * not offer. It relies on these parts of `net.Socket` and its streams:
 *
 * | internal                                        | what for                                                  |
 * | ----------------------------------------------- | --------------------------------------------------------- |
 * | `_handle.fd`                                    | the OS fd that sendfile and splice use                    |
 * | `_write`, `_writev`                             | the gate that keeps the socket's write order (takeover.ts) |
 * | `_handle.reading`, `_handle.readStop()`, `_read` | stopping Node reading a relay's source, and keeping it so  |
 * | `_readableState.ended`                          | Node has already read the source's end of stream           |
 * | `_readableState.decoder` (`lastChar`, `lastNeed`, `lastTotal`, `end()`) | bytes of an incomplete character after `setEncoding()` |
 * | `timeout`, `_unrefTimer()`                      | the `setTimeout()` idle timer, restarted for bytes moved natively |
 * | `_bytesDispatched`, `bytesRead` (prototype getters) | counting those bytes in `bytesWritten` and `bytesRead`  |
 * | `ServerResponse[kOutHeaders]`                   | serveFile's own headers without setHeader's checks (speed only; see headerStore) |
 * | `ServerResponse`: `_header`, `_headerSent`, `_implicitHeader()`, `outputData` | a large body's headers sent natively with it (serveFile) |
 *
 * {@link missingInternal} checks all a transfer needs at once, before it starts. Where one is missing
 * or not what it is on Node 20–26 (Deno's sockets have no `_handle.fd`; Bun's handles no `readStop`),
 * the operation takes the stream path before any byte moves — never half-way: a relay that spliced
 * while Node still read the same fd would split the bytes between them. __test__/internals.test.mjs
 * checks on the running Node that each exists and behaves as relied on.
 */
import { ServerResponse, type IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';

type Callback = (err?: Error | null) => void;

/** One chunk as Writable hands it to `_writev`. */
export interface Chunk {
  chunk: unknown;
  encoding: BufferEncoding | 'buffer';
}
export type WriteHook = (chunk: unknown, encoding: BufferEncoding | 'buffer', cb: Callback) => void;
export type WritevHook = (chunks: Chunk[] & { allBuffers?: boolean }, cb: Callback) => void;

/** What zerocopy reads of a socket's internals; each field is checked before use. */
interface Internals {
  _handle?: { fd?: unknown; reading?: unknown; readStop?: unknown } | null;
  _write?: unknown;
  _writev?: unknown;
  _read?: unknown;
  _readableState?: { ended?: unknown; decoder?: unknown } | null;
  _unrefTimer?: unknown;
  timeout?: unknown;
}

const inside = (socket: object): Internals => socket as Internals;

/** Whether `value` is a `net.Socket` (TCP, Unix domain, pipe, TTY, or TLS). */
export function isNetSocket(value: unknown): value is Socket {
  return value instanceof Socket;
}

/** The getters {@link countMoved} puts on sockets, over Node's. */
const ours = new WeakSet<() => unknown>();

/**
 * Node's getter for `name` as the socket sees it: the first property found from the socket up its
 * prototype chain (past a getter of ours), if that is a getter; `undefined` if it is a plain value.
 */
function nodeGetter(socket: object, name: string): (() => unknown) | undefined {
  for (let at: object | null = socket; at; at = Object.getPrototypeOf(at)) {
    const d = Object.getOwnPropertyDescriptor(at, name);
    if (d && !(d.get && ours.has(d.get))) return d.get;
  }
  return undefined;
}

/**
 * The OS fd behind a net.Socket: ≥ 0 once connected, -1 (Node) while still connecting; `undefined`
 * without a handle (destroyed) or where the runtime keeps no fd there (Deno).
 */
export function socketFd(socket: Socket): number | undefined {
  const fd = inside(socket)._handle?.fd;
  return typeof fd === 'number' ? fd : undefined;
}

/** How a transfer uses a socket. */
export interface Roles {
  /** The transfer reads the socket (a relay's source). */
  read?: boolean;
  /** The transfer writes the socket (sendFile, a relay's sink). */
  write?: boolean;
}

/**
 * The first internal a native transfer on `socket` would use and not find as expected, or `undefined`
 * when everything is there. Call it when the transfer starts and again once the socket has connected
 * (its handle, and the fd, may only exist from then on); a connected socket must also have an fd ≥ 0.
 */
export function missingInternal(socket: Socket, roles: Roles): string | undefined {
  const s = inside(socket);
  const handle = s._handle;
  // Connected and alive, yet no handle: not a socket libuv runs (Bun's HTTP server sockets).
  if (handle == null && !socket.connecting && !socket.destroyed) return '_handle';
  if (handle != null && typeof handle.fd !== 'number') return '_handle.fd';
  if (handle != null && !socket.connecting && (handle.fd as number) < 0) return '_handle.fd';
  if (typeof s._unrefTimer !== 'function') return '_unrefTimer';
  if (s.timeout !== undefined && typeof s.timeout !== 'number') return 'timeout';
  if (roles.write && !nodeGetter(socket, '_bytesDispatched')) return '_bytesDispatched';
  if (roles.read) {
    if (typeof s._read !== 'function') return '_read';
    if (handle != null && (typeof handle.reading !== 'boolean' || typeof handle.readStop !== 'function')) return '_handle.readStop';
    if (!nodeGetter(socket, 'bytesRead')) return 'bytesRead';
    if (typeof s._readableState?.ended !== 'boolean') return '_readableState.ended';
    if (decoderPending(socket) === undefined) return '_readableState.decoder';
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Writing: the gate's hooks

/** Node's own write hooks of a socket, bound to it. */
export interface WriteHooks {
  write: WriteHook;
  writev: WritevHook | undefined;
}

/**
 * Puts `hooks(own)` in place of the socket's `_write`/`_writev` — the implementer hooks Writable
 * looks up on the instance each time it hands chunks to the handle, one call at a time — and returns
 * the function that gives the socket its own back. `undefined` (nothing replaced) if the socket has no
 * `_write` to wrap.
 */
export function replaceWriteHooks(socket: object, hooks: (own: WriteHooks) => Partial<WriteHooks>): (() => void) | undefined {
  const s = inside(socket);
  if (typeof s._write !== 'function') return undefined;
  const saved = new Map([
    ['_write', Object.getOwnPropertyDescriptor(socket, '_write')],
    ['_writev', Object.getOwnPropertyDescriptor(socket, '_writev')],
  ]);
  const own: WriteHooks = {
    write: (s._write as WriteHook).bind(socket),
    writev: typeof s._writev === 'function' ? (s._writev as WritevHook).bind(socket) : undefined,
  };
  const ours = hooks(own);
  if (ours.write) s._write = ours.write;
  if (own.writev && ours.writev) s._writev = ours.writev;
  return () => {
    for (const [name, descriptor] of saved) {
      if (descriptor) Object.defineProperty(socket, name, descriptor);
      else delete (s as Record<string, unknown>)[name];
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Reading: a relay's source

/**
 * Stops Node reading the socket's fd (libuv's `readStop()`) and keeps it stopped — `_read` becomes a
 * no-op, so a `resume()` or a late `read(0)` cannot start it again — until the returned function puts
 * `_read` back. Only after {@link missingInternal} found `_read` and `_handle.readStop`.
 */
export function stopReading(socket: Socket): () => void {
  const s = inside(socket);
  const own = Object.getOwnPropertyDescriptor(socket, '_read');
  s._read = () => {};
  const handle = s._handle;
  if (handle?.reading === true) {
    handle.reading = false;
    (handle.readStop as () => number).call(handle);
  }
  return () => {
    if (own) Object.defineProperty(socket, '_read', own);
    else delete s._read;
  };
}

/**
 * Lets Node read the fd again, after `stopReading`'s undo: net's own `_read` starts libuv reading
 * (Node may still count a read as pending, since it was stopped behind its back) and stops it as
 * usual once the buffer is full.
 */
export function resumeReading(socket: Socket): void {
  (inside(socket)._read as (n: number) => void).call(socket, socket.readableHighWaterMark);
}

/** Whether Node has read the end of stream already (bytes before it may still be in its buffer). */
export function endOfStreamRead(socket: Socket): boolean {
  return inside(socket)._readableState?.ended === true;
}

interface DecoderInternals {
  lastChar?: unknown;
  lastNeed?: unknown;
  lastTotal?: unknown;
  end?: unknown;
}

/** The bytes a decoder holds: the start of a character (or base64 group) still incomplete. */
function held(decoder: DecoderInternals): Buffer | undefined {
  const { lastChar, lastNeed, lastTotal } = decoder;
  if (!(lastChar instanceof Uint8Array) || !Number.isInteger(lastNeed) || !Number.isInteger(lastTotal)) return undefined;
  const need = lastNeed as number;
  const n = need > 0 ? (lastTotal as number) - need : 0;
  if (n < 0 || n > lastChar.length) return undefined;
  return Buffer.from(lastChar.subarray(0, n));
}

const decoderChecked = new Map<string, boolean>();

/**
 * Whether this runtime's StringDecoder, for `encoding`, shows the bytes it holds as relied on and
 * forgets them on `end()`: tried once per encoding on a decoder of our own, given the first byte of
 * a multi-byte unit.
 */
function decoderBehaves(encoding: string): boolean {
  let ok = decoderChecked.get(encoding);
  if (ok === undefined) {
    try {
      const d = new StringDecoder(encoding as BufferEncoding);
      d.write(Buffer.from([0xe2]));
      const first = held(d as unknown as DecoderInternals);
      // utf8 (a 3-byte character), utf16le (a 2-byte unit) and base64 (a 3-byte group) hold the byte;
      // single-byte encodings hold nothing.
      const holds = ['utf8', 'utf-8', 'utf16le', 'utf-16le', 'ucs2', 'ucs-2', 'base64', 'base64url'].includes(encoding.toLowerCase());
      d.end();
      const after = held(d as unknown as DecoderInternals);
      ok = first !== undefined && first.length === (holds ? 1 : 0) && (!holds || first[0] === 0xe2) && after?.length === 0;
    } catch {
      ok = false;
    }
    decoderChecked.set(encoding, ok);
  }
  return ok;
}

/**
 * The bytes a `setEncoding()` socket's decoder holds (an empty Buffer without a decoder), or
 * `undefined` if the decoder is not one zerocopy knows how to read.
 */
export function decoderPending(socket: Socket): Buffer | undefined {
  const decoder = inside(socket)._readableState?.decoder;
  if (decoder == null) return Buffer.alloc(0);
  const encoding = socket.readableEncoding;
  if (!(decoder instanceof StringDecoder) || !encoding || !decoderBehaves(encoding)) return undefined;
  return held(decoder as unknown as DecoderInternals);
}

/** Makes the decoder forget the bytes it held, once they have been taken (by {@link decoderPending}). */
export function clearDecoder(socket: Socket): void {
  const decoder = inside(socket)._readableState?.decoder as DecoderInternals | null | undefined;
  if (typeof decoder?.end === 'function') (decoder.end as () => string).call(decoder);
}

// ---------------------------------------------------------------------------------------------
// Activity: the idle timer and the byte counts

/** The idle timeout `socket.setTimeout(ms)` armed, in ms; 0 for none. */
export function idleTimeout(socket: Socket): number {
  const t = inside(socket).timeout;
  return typeof t === 'number' && t > 0 ? t : 0;
}

/** Restarts the `setTimeout()` idle timer (a TLS socket's parent's too) as a read or write of Node's own does. */
export function restartIdleTimer(socket: Socket): void {
  const s = inside(socket);
  if (typeof s._unrefTimer === 'function') (s._unrefTimer as () => void).call(socket);
}

/** Bytes each socket moved around Node, which Node's own counts (its handle's) cannot include; by getter. */
const natively = { _bytesDispatched: new WeakMap<Socket, number>(), bytesRead: new WeakMap<Socket, number>() };

/**
 * Adds `n` bytes moved around Node to one of its counts: `bytesRead` (a getter over the libuv handle's
 * count) or `_bytesDispatched` (the same for writes, from which Node computes `bytesWritten`). The
 * socket gets its own getter, adding the bytes to Node's.
 */
function addCount(socket: Socket, getter: keyof typeof natively, n: number): void {
  const counts = natively[getter];
  if (!counts.has(socket)) {
    const nodeCount = nodeGetter(socket, getter);
    if (!nodeCount) return;
    const get = function (this: Socket): number {
      return (nodeCount.call(this) as number) + (counts.get(this) ?? 0);
    };
    ours.add(get);
    Object.defineProperty(socket, getter, { configurable: true, get });
  }
  counts.set(socket, (counts.get(socket) ?? 0) + n);
}

/** Counts bytes moved natively in `socket.bytesWritten` (`written`) and `socket.bytesRead` (`read`). */
export function countMoved(socket: Socket, written: number, read: number): void {
  if (written > 0) addCount(socket, '_bytesDispatched', written);
  if (read > 0) addCount(socket, 'bytesRead', read);
}

/** node:http's header store on a response: lower-case name → [name as given, value]. */
export type HeaderStore = Record<string, [string, unknown] | undefined>;

/** The key of node:http's header store (`kOutHeaders`), null where it is not what is relied on. */
let outHeadersKey: symbol | null | undefined;

/**
 * Finds node:http's `kOutHeaders` symbol on a probe response and checks that it behaves as
 * {@link headerStore} relies on: `setHeader(name, v)` stores `[name, v]` under the lower-case name,
 * and an entry put there directly is what `getHeader`, `hasHeader` and `getHeaderNames` see.
 */
function findOutHeadersKey(): symbol | null {
  try {
    const res = new ServerResponse({ method: 'GET', httpVersionMajor: 1, httpVersionMinor: 1, headers: {} } as IncomingMessage);
    const own = res as unknown as Record<symbol, unknown>;
    const key = Object.getOwnPropertySymbols(res).find((s) => s.description === 'kOutHeaders');
    if (key === undefined || own[key] !== null) return null;
    res.setHeader('X-Probe', 'a');
    const store = own[key] as HeaderStore | null;
    const entry = store?.['x-probe'];
    if (!store || !Array.isArray(entry) || entry.length !== 2 || entry[0] !== 'X-Probe' || entry[1] !== 'a') return null;
    store['x-direct'] = ['X-Direct', 'b'];
    if (res.getHeader('x-direct') !== 'b' || !res.hasHeader('X-Direct') || res.getHeaderNames().join() !== 'x-probe,x-direct') return null;
    return key;
  } catch {
    return null;
  }
}

/**
 * The response's header store, for setting headers whose names and values are known to be valid
 * without `setHeader`'s per-call validation (measured: a visible share of a small file's response
 * CPU). `undefined` once the headers are sent, for objects that are not node:http responses, and on
 * runtimes whose responses do not keep headers this way (then use setHeader).
 */
export function headerStore(res: ServerResponse): HeaderStore | undefined {
  if (outHeadersKey === undefined) outHeadersKey = findOutHeadersKey();
  if (outHeadersKey === null || res.headersSent) return undefined;
  const own = res as unknown as Record<symbol, unknown>;
  let store = own[outHeadersKey];
  if (store === null) {
    store = Object.create(null) as HeaderStore;
    own[outHeadersKey] = store;
  }
  return typeof store === 'object' && store !== null ? (store as HeaderStore) : undefined;
}

// ---------------------------------------------------------------------------------------------
// node:http: a response's headers, sent natively with its body

interface ResponseInternals {
  _header?: unknown;
  _headerSent?: unknown;
  _implicitHeader?: unknown;
  outputData?: unknown;
}

/**
 * Takes a `ServerResponse`'s status line and headers to be written natively, in front of its body:
 * node:http then counts them as sent and writes only what follows (`end()` adds nothing to a body of
 * known length). `undefined` — and the response as it was, its headers still to be written by Node —
 * when they are already sent or queued, or the response is not what it is on Node 20–26 (a string
 * `_header` made by `_implicitHeader()`, `_headerSent` false, an empty `outputData` queue).
 */
export function takeResponseHead(res: object): Buffer | undefined {
  const r = res as ResponseInternals;
  if (r._headerSent !== false || !Array.isArray(r.outputData) || r.outputData.length !== 0) return undefined;
  if (r._header == null) {
    if (typeof r._implicitHeader !== 'function') return undefined;
    (r._implicitHeader as () => void).call(res);
  }
  if (typeof r._header !== 'string' || r._headerSent !== false) return undefined;
  const head = Buffer.from(r._header, 'latin1');
  r._headerSent = true;
  return head;
}
