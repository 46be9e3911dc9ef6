/**
 * Taking a net.Socket's fd away from Node for the length of a native transfer, in write order.
 *
 * The kernel sees one byte stream per socket, so a native transfer must happen exactly where the
 * caller asked for it in the socket's write order: after everything written before the call (even
 * bytes still queued in Node or held by `cork()`), before everything written after it (including
 * `end()`), and in call order with other transfers.
 *
 * The mechanism: each transfer writes a unique empty Buffer (its *marker*) to the socket at call time,
 * so Writable queues it exactly in write order. A per-socket {@link Gate} wraps the socket's `_write`
 * and `_writev` — the hooks Writable calls, one at a time, to hand data to the handle — and forwards
 * chunks unchanged until it meets a marker. There it stops (Writable queues everything behind it),
 * starts that transfer, and forwards again only once the transfer releases the socket. A `_writev`
 * batch is split around its markers. `end()` needs no hook: Writable calls `_final` only after every
 * write callback, and the gate calls back for a marker only after its transfer is done.
 *
 * A write hold leaves reading untouched: the socket keeps delivering incoming data (keep-alive, the
 * next request). Relays that read the socket themselves take a {@link holdReading} as well: Node stops
 * reading the fd, and the bytes it had read but not yet delivered are handed to the relay to forward
 * first.
 */
import type { Socket } from 'node:net';

import { abortError, type ErrnoError } from './errors.js';
import { onAbort } from './signal.js';

/** The socket, held for one transfer. */
export interface Hold {
  /** Writes through the held socket (bypassing the hold), resolving once the bytes are in the kernel. */
  write(chunk: Buffer): Promise<void>;
  /** Gives the socket back: data written behind the transfer flows again, in order. Idempotent. */
  release(): void;
}

interface Chunk {
  chunk: unknown;
  encoding: BufferEncoding | 'buffer';
}
type Callback = (err?: Error | null) => void;
type WriteHook = (chunk: unknown, encoding: BufferEncoding | 'buffer', cb: Callback) => void;
type WritevHook = (chunks: Chunk[] & { allBuffers?: boolean }, cb: Callback) => void;

interface Ticket {
  marker: Buffer;
  /** Called when the gate reaches the marker: everything before it is in the kernel. */
  start: () => void;
  /** Called if the socket failed before the marker was reached. */
  fail: (err: Error) => void;
  /** Resolves when the transfer releases the socket. */
  released: Promise<void>;
  release: () => void;
}

const gates = new WeakMap<Socket, Gate>();

class Gate {
  private readonly tickets = new Map<Buffer, Ticket>();
  private readonly write: WriteHook;
  private readonly writev: WritevHook | undefined;
  private readonly own: Map<'_write' | '_writev', PropertyDescriptor | undefined>;

  constructor(private readonly socket: Socket) {
    const target = socket as unknown as { _write: WriteHook; _writev?: WritevHook };
    this.own = new Map([
      ['_write', Object.getOwnPropertyDescriptor(socket, '_write')],
      ['_writev', Object.getOwnPropertyDescriptor(socket, '_writev')],
    ]);
    this.write = target._write.bind(socket);
    this.writev = target._writev?.bind(socket);
    target._write = (chunk, encoding, cb) => this.run([{ chunk, encoding }], cb);
    if (this.writev) target._writev = (chunks, cb) => this.run(chunks, cb);
  }

  add(ticket: Ticket): void {
    this.tickets.set(ticket.marker, ticket);
  }

  remove(ticket: Ticket): void {
    this.tickets.delete(ticket.marker);
    this.retireIfIdle();
  }

  /** Writes straight to the handle, past the hold: for the transfer that holds the socket. */
  writeThrough(chunk: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.forward([{ chunk, encoding: 'buffer' }], (err) => (err ? reject(err) : resolve())));
  }

  /** Forwards `chunks` up to the next marker, runs that transfer, and continues; then calls back. */
  private run(chunks: Chunk[], cb: Callback): void {
    const at = chunks.findIndex((c) => Buffer.isBuffer(c.chunk) && this.tickets.has(c.chunk));
    if (at < 0) {
      this.forward(chunks, cb);
      this.retireIfIdle();
      return;
    }
    const ticket = this.tickets.get(chunks[at]?.chunk as Buffer) as Ticket;
    this.forward(chunks.slice(0, at), (err) => {
      if (err) {
        ticket.fail(err);
        return cb(err);
      }
      ticket.start();
      void ticket.released.then(() => {
        this.tickets.delete(ticket.marker);
        this.run(chunks.slice(at + 1), cb);
      });
    });
  }

  forward(chunks: Chunk[], cb: Callback): void {
    if (chunks.length === 0) return cb();
    const [only] = chunks;
    if (chunks.length === 1 && only) return this.write(only.chunk, only.encoding, cb);
    if (!this.writev) {
      // No _writev: one chunk at a time.
      const [first, ...rest] = chunks as [Chunk, ...Chunk[]];
      return this.write(first.chunk, first.encoding, (err) => (err ? cb(err) : this.forward(rest, cb)));
    }
    const batch = chunks as Chunk[] & { allBuffers?: boolean };
    batch.allBuffers = chunks.every((c) => Buffer.isBuffer(c.chunk));
    this.writev(batch, cb);
  }

  /** With no transfer outstanding, gives the socket its own hooks back. */
  private retireIfIdle(): void {
    if (this.tickets.size > 0 || gates.get(this.socket) !== this) return;
    gates.delete(this.socket);
    const target = this.socket as unknown as Record<string, unknown>;
    for (const [name, descriptor] of this.own) {
      if (descriptor) Object.defineProperty(this.socket, name, descriptor);
      else delete target[name];
    }
  }
}

/** The OS fd behind a connected net.Socket, or undefined (not connected, TLS, or destroyed). */
export function socketFd(socket: Socket): number | undefined {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * Reserves the socket's current place in its write order — synchronously, at call time — and resolves
 * once every byte written before this call is in the kernel; Node then writes nothing more until
 * {@link Hold.release}. Rejects if the socket fails first, or with an AbortError if `signal` fires
 * while earlier writes are still waiting for the peer (the reserved place is then skipped).
 */
export function takeOver(socket: Socket, signal?: AbortSignal): Promise<Hold> {
  let gate = gates.get(socket);
  if (!gate) {
    gate = new Gate(socket);
    gates.set(socket, gate);
  }
  const theGate = gate;
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let settled = false;
  return new Promise<Hold>((resolve, reject) => {
    const unsubscribe = onAbort(signal, () => {
      if (settled) return;
      settled = true;
      reject(abortError(signal as AbortSignal));
    });
    const ticket: Ticket = {
      marker: Buffer.alloc(0),
      start: () => {
        unsubscribe();
        if (settled) return release(); // aborted while waiting: skip this place
        settled = true;
        resolve({ write: (chunk) => theGate.writeThrough(chunk), release });
      },
      fail: (err) => {
        unsubscribe();
        theGate.remove(ticket);
        if (settled) return;
        settled = true;
        reject(err);
      },
      released,
      release,
    };
    theGate.add(ticket);
    socket.write(ticket.marker, (err) => {
      if (err) ticket.fail(err);
    });
    // Bytes written under cork() were written before this call: they go first.
    while (socket.writableCorked > 0) socket.uncork();
  });
}

/** Whether `value` looks like a net.Socket (or a TLS socket). */
export function isSocket(value: unknown): value is Socket {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Socket).write === 'function' &&
    typeof (value as Socket).destroy === 'function' &&
    'writableLength' in value
  );
}

/** Resolves once a connecting socket has connected; rejects with its error if it fails first. */
export function connected(socket: Socket): Promise<void> {
  if (!socket.connecting) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onConnect = (): void => {
      socket.off('error', onError);
      resolve();
    };
    const onError = (err: Error): void => {
      socket.off('connect', onConnect);
      reject(err);
    };
    socket.once('connect', onConnect);
    socket.once('error', onError);
  });
}

/** What Node keeps on a socket about its activity: the idle timeout and its timer. */
interface ActivityInternals {
  timeout?: number;
  _unrefTimer?: () => void;
}

/** Bytes each socket moved around Node, which Node's own counts (its handle's) cannot include; by getter. */
const natively = { _bytesDispatched: new WeakMap<Socket, number>(), bytesRead: new WeakMap<Socket, number>() };

/**
 * Adds `n` bytes moved around Node to one of its counts: `bytesRead` (a getter over the libuv handle's
 * count) or `_bytesDispatched` (the same for writes, from which Node computes `bytesWritten`). The
 * socket gets its own getter, adding the bytes to Node's. Should a Node version lack the getter, the
 * count simply stays Node's own.
 */
function addCount(socket: Socket, getter: keyof typeof natively, n: number): void {
  const counts = natively[getter];
  if (!counts.has(socket)) {
    let proto: object | null = Object.getPrototypeOf(socket);
    let base: (() => number) | undefined;
    for (; proto && !base; proto = Object.getPrototypeOf(proto)) base = Object.getOwnPropertyDescriptor(proto, getter)?.get;
    if (!base) return;
    const nodeCount = base;
    Object.defineProperty(socket, getter, {
      configurable: true,
      get(this: Socket): number {
        return nodeCount.call(this) + (counts.get(this) ?? 0);
      },
    });
  }
  counts.set(socket, (counts.get(socket) ?? 0) + n);
}

/** Whether `socket.setTimeout(ms)` armed an idle timeout: native transfers must then report progress. */
export function hasIdleTimeout(socket: Socket): boolean {
  return ((socket as ActivityInternals).timeout ?? 0) > 0;
}

/**
 * Tells Node about bytes moved natively on `socket`, which it cannot see: the `setTimeout()` idle
 * timer restarts as after a read or write of Node's own (a transfer that keeps moving never times out;
 * a stalled one still does), `written` bytes are added to `socket.bytesWritten` and `read` bytes to
 * `socket.bytesRead`.
 */
export function noteActivity(socket: Socket, written: number, read = 0): void {
  (socket as ActivityInternals)._unrefTimer?.();
  if (written > 0) addCount(socket, '_bytesDispatched', written);
  if (read > 0) addCount(socket, 'bytesRead', read);
}

/** `ERR_STREAM_DESTROYED`: the socket has no fd any more. */
export function destroyedError(message = 'The socket has no file descriptor (destroyed?)'): ErrnoError {
  const err = new Error(message) as ErrnoError;
  err.code = 'ERR_STREAM_DESTROYED';
  return err;
}

/**
 * Cancels a native job when one of `sockets` closes (`'destroyed'`: the job's duplicate fds would
 * otherwise keep the connection open) or `signal` aborts (`'abort'`). Returns the unsubscriber.
 */
export function cancelOnEnd(job: { cancel(reason: string): void }, sockets: readonly Socket[], signal?: AbortSignal): () => void {
  const onClose = (): void => job.cancel('destroyed');
  const unsubscribe = onAbort(signal, () => job.cancel('abort'));
  for (const socket of sockets) socket.once('close', onClose);
  return () => {
    unsubscribe();
    for (const socket of sockets) socket.off('close', onClose);
  };
}

/** The socket, its reading taken away from Node for one relay. */
export interface ReadHold {
  /** Bytes Node had read from the socket and not yet delivered: the relay forwards them first. */
  head: Buffer;
  /**
   * Gives reading back to Node. With `eof` (the relay read the fd to its end) Node learns of the end
   * of stream as if it had read it itself, and the stream flows so that `'end'` is emitted, as after
   * `src.pipe(dst)`. Without it (the relay failed, and the caller destroys the socket) only Node's
   * hooks are put back. Idempotent.
   */
  release(eof: boolean): void;
  /**
   * Gives reading back as if the relay had never taken it (it failed before moving anything): the
   * bytes of `head` go back to the front of Node's buffer and reading resumes. Idempotent with release.
   */
  restore(): void;
}

interface ReadableInternals {
  _read: (n: number) => void;
  _handle?: { reading?: boolean; readStop?: () => number } | null;
  _readableState?: { ended?: boolean };
}

const readHeld = new WeakSet<Socket>();

/**
 * Stops Node reading `socket` — synchronously, at call time — so a native relay can read its fd.
 *
 * Node reads a socket through libuv whenever its buffer is below the high-water mark, and asks for
 * more through `_read`. Both are stopped: the handle's `readStop()` takes the fd out of libuv's
 * epoll set, and `_read` is replaced until {@link ReadHold.release} so that nothing (a `resume()`, a
 * late `read(0)` after connecting) starts it again. What Node had already read sits in the readable
 * buffer: it is taken out (without showing it to `'data'` listeners) and returned as `head`.
 *
 * Throws `ERR_INVALID_STATE` if another relay already reads the socket.
 */
export function holdReading(socket: Socket): ReadHold {
  if (readHeld.has(socket)) {
    const err = new Error('The socket is already being read by another relay') as ErrnoError;
    err.code = 'ERR_INVALID_STATE';
    throw err;
  }
  readHeld.add(socket);
  const target = socket as unknown as ReadableInternals;
  const own = Object.getOwnPropertyDescriptor(socket, '_read');
  target._read = () => {};
  const handle = target._handle;
  if (handle?.reading) {
    handle.reading = false;
    handle.readStop?.();
  }
  // read() emits each chunk it returns as 'data': detach the listeners while the buffer is emptied.
  const listeners = socket.rawListeners('data') as ((...args: unknown[]) => void)[];
  socket.removeAllListeners('data');
  const chunks: Buffer[] = [];
  try {
    for (let chunk: unknown = socket.read(); chunk !== null; chunk = socket.read()) {
      chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, socket.readableEncoding ?? 'utf8') : (chunk as Buffer));
    }
  } finally {
    for (const listener of listeners) socket.on('data', listener);
  }
  let released = false;
  const head = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
  const giveBack = (): void => {
    released = true;
    readHeld.delete(socket);
    if (own) Object.defineProperty(socket, '_read', own);
    else delete (target as Partial<ReadableInternals>)._read;
  };
  return {
    head,
    restore() {
      if (released) return;
      giveBack();
      if (socket.destroyed) return;
      if (head.length > 0) socket.unshift(head);
      // Reading from the fd was stopped behind Node's back, which may still count a read as pending:
      // net's own _read starts it again (and stops it as usual once the buffer is full).
      target._read(socket.readableHighWaterMark);
    },
    release(eof) {
      if (released) return;
      giveBack();
      if (!eof || socket.destroyed) return;
      // Node's own end of stream, unless it had already read it before the relay began.
      if (!target._readableState?.ended) socket.push(null);
      socket.resume();
    },
  };
}
