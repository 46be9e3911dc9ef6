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
import type { Writable } from 'node:stream';

import { abortError, codedError, type CodedError } from './errors.js';
import {
  clearDecoder,
  countMoved,
  decoderPending,
  endOfStreamRead,
  idleTimeout,
  replaceWriteHooks,
  restartIdleTimer,
  resumeReading,
  stopReading,
  type Chunk,
  type WriteHooks,
} from './internals.js';
import { onAbort } from './signal.js';

/** The socket, held for one transfer. */
export interface Hold {
  /** Writes through the held socket (bypassing the hold), resolving once the bytes are in the kernel. */
  write(chunk: Buffer): Promise<void>;
  /** Gives the socket back: data written behind the transfer flows again, in order. Idempotent. */
  release(): void;
}

type Callback = (err?: Error | null) => void;

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

const gates = new WeakMap<Writable, Gate>();

class Gate {
  private readonly tickets = new Map<Buffer, Ticket>();
  private own!: WriteHooks;
  private restore!: () => void;

  private constructor(private readonly socket: Writable) {}

  /** A gate on `socket`'s write hooks; `undefined` if it has none to wrap. */
  static install(socket: Writable): Gate | undefined {
    const gate = new Gate(socket);
    const restore = replaceWriteHooks(socket, (own) => {
      gate.own = own;
      return { write: (chunk, encoding, cb) => gate.run([{ chunk, encoding }], cb), writev: (chunks, cb) => gate.run(chunks, cb) };
    });
    if (!restore) return undefined;
    gate.restore = restore;
    return gate;
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
    const { write, writev } = this.own;
    if (chunks.length === 1 && only) return write(only.chunk, only.encoding, cb);
    if (!writev) {
      // No _writev: one chunk at a time.
      const [first, ...rest] = chunks as [Chunk, ...Chunk[]];
      return write(first.chunk, first.encoding, (err) => (err ? cb(err) : this.forward(rest, cb)));
    }
    const batch = chunks as Chunk[] & { allBuffers?: boolean };
    batch.allBuffers = chunks.every((c) => Buffer.isBuffer(c.chunk));
    writev(batch, cb);
  }

  /** With no transfer outstanding, gives the socket its own hooks back. */
  private retireIfIdle(): void {
    if (this.tickets.size > 0 || gates.get(this.socket) !== this) return;
    gates.delete(this.socket);
    this.restore();
  }
}

/**
 * Whether nothing written to `socket` is still on its way to the kernel — no queued or in-flight
 * write, no `cork()`, no transfer holding or waiting for it — so a native write made now, on this
 * thread, lands exactly in write order.
 */
export function writeIdle(socket: Socket): boolean {
  return socket.writableLength === 0 && socket.writableCorked === 0 && !gates.has(socket) && !socket.connecting;
}

/** The error for a socket that closed before its connection was established (Node's own code for it). */
function closedBeforeConnect(): CodedError {
  return codedError('ERR_SOCKET_CLOSED_BEFORE_CONNECTION', 'Socket closed before the connection was established');
}

/**
 * Reserves the socket's current place in its write order — synchronously, at call time — and resolves
 * once every byte written before this call is in the kernel; Node then writes nothing more until
 * {@link Hold.release}. Rejects if the socket fails or closes first, or with an AbortError if `signal`
 * fires while earlier writes are still waiting (the reserved place is then skipped).
 *
 * A stream without `_write` to wrap (no Node stream) gets a hold that writes through `write()`: its
 * bytes follow earlier writes, but writes made meanwhile are not held back.
 */
export function takeOver(socket: Writable, signal?: AbortSignal): Promise<Hold> {
  let gate = gates.get(socket);
  if (!gate) {
    gate = Gate.install(socket);
    if (!gate) {
      const write = (chunk: Buffer): Promise<void> => new Promise((resolve, reject) => socket.write(chunk, (err) => (err ? reject(err) : resolve())));
      return Promise.resolve({ write, release: () => {} });
    }
    gates.set(socket, gate);
  }
  const theGate = gate;
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let settled = false;
  return new Promise<Hold>((resolve, reject) => {
    const onClose = (): void => ticket.fail(destroyedError('The socket was destroyed before the transfer could start'));
    const unsubscribe = onAbort(signal, () => {
      if (settled) return;
      settled = true;
      socket.off('close', onClose);
      reject(abortError(signal as AbortSignal));
    });
    const ticket: Ticket = {
      marker: Buffer.alloc(0),
      start: () => {
        unsubscribe();
        socket.off('close', onClose);
        if (settled) return release(); // aborted while waiting: skip this place
        settled = true;
        resolve({ write: (chunk) => theGate.writeThrough(chunk), release });
      },
      fail: (err) => {
        unsubscribe();
        socket.off('close', onClose);
        theGate.remove(ticket);
        if (settled) return;
        settled = true;
        reject(err);
      },
      released,
      release,
    };
    theGate.add(ticket);
    // Node fails queued writes when a socket is destroyed, but a runtime that does not would leave
    // the marker waiting forever: the socket's close fails the reservation as well.
    socket.once('close', onClose);
    socket.write(ticket.marker, (err) => {
      if (err) ticket.fail(err);
    });
    // Bytes written under cork() were written before this call: they go first.
    while (socket.writableCorked > 0) socket.uncork();
  });
}

/**
 * Resolves once a connecting socket has connected. Rejects with its error if it fails first,
 * `ERR_SOCKET_CLOSED_BEFORE_CONNECTION` if it is destroyed first (a `destroy()` in a `'timeout'`
 * handler emits no error), or an AbortError when `signal` fires first.
 */
export function connected(socket: Socket, signal?: AbortSignal): Promise<void> {
  if (!socket.connecting) return Promise.resolve();
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      socket.off('connect', onConnect);
      socket.off('error', onError);
      socket.off('close', onClose);
      unsubscribe();
      if (err) reject(err);
      else resolve();
    };
    const onConnect = (): void => done();
    const onError = (err: Error): void => done(err);
    const onClose = (): void => done(closedBeforeConnect());
    const unsubscribe = onAbort(signal, () => done(abortError(signal as AbortSignal)));
    socket.once('connect', onConnect);
    socket.once('error', onError);
    socket.once('close', onClose);
  });
}

/**
 * The step pace for a transfer on `sockets`, in ms, or `undefined` without an idle timeout: a native
 * step reports back this often while bytes move (never while none do), and the transfer restarts each
 * socket's idle timer for the bytes it moved. A quarter of the shortest timeout: every byte is heard
 * of before the timer could fire (a step begins right after the last report, so bytes moved in it are
 * reported at most a pace later), and a transfer that stops moving times out between 1 and 1.25
 * timeouts after its last byte. Polling byte counters on a timer would cost a wakeup per pace even
 * for a stalled transfer, and could still miss bytes moved just before the timer fires.
 */
export function idlePace(sockets: readonly Socket[]): number | undefined {
  const shortest = Math.min(...sockets.map(idleTimeout).filter((t) => t > 0));
  return Number.isFinite(shortest) ? shortest / 4 : undefined;
}

/**
 * Tells Node about bytes moved natively on `socket`, which it cannot see: the `setTimeout()` idle
 * timer restarts as after a read or write of Node's own (a transfer that keeps moving never times out;
 * a stalled one still does), `written` bytes are added to `socket.bytesWritten` and `read` bytes to
 * `socket.bytesRead`.
 */
export function noteActivity(socket: Socket, written: number, read = 0): void {
  restartIdleTimer(socket);
  countMoved(socket, written, read);
}

/** `ERR_STREAM_DESTROYED`: the socket has no fd any more. */
export function destroyedError(message = 'The socket has no file descriptor (destroyed?)'): CodedError {
  return codedError('ERR_STREAM_DESTROYED', message);
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
  /**
   * Bytes Node had read from the socket and not yet delivered, with those its `setEncoding()` decoder
   * held (an incomplete character): the relay forwards them first.
   */
  head: Buffer;
  /**
   * Node had already read the end of stream: `head` is all the source will give, and its fd must not
   * be read. Node keeps those bytes until {@link release}: a readable whose buffer empties after its
   * end of stream emits `'end'` (and may then close), which must follow their delivery.
   */
  ended: boolean;
  /**
   * Gives reading back to Node. With `eof` (the relay delivered everything to its end) Node learns of
   * the end of stream as if it had read it itself, and the stream flows so that `'end'` is emitted,
   * as after `src.pipe(dst)`. Without it (the relay failed, and the caller destroys the socket) only
   * Node's hooks are put back. Idempotent.
   */
  release(eof: boolean): void;
  /**
   * Gives reading back to Node for a relay that goes on through Node's stream after all (it found,
   * once the sockets connected, that it cannot splice), and returns the bytes it must forward before
   * what the stream yields (`head`, unless Node still has them). Idempotent with release.
   */
  resume(): Buffer;
  /**
   * Gives reading back as if the relay had never taken it (it failed before moving anything): the
   * bytes of `head` go back to the front of Node's buffer and reading resumes. Idempotent with release.
   */
  restore(): void;
}

const readHeld = new WeakSet<Socket>();

/** Empties the readable buffer without showing the chunks to `'data'` listeners. */
function drain(socket: Socket, then?: (chunks: (Buffer | string)[]) => void): (Buffer | string)[] {
  // read() emits each chunk it returns as 'data': detach the listeners while the buffer is emptied.
  const listeners = socket.rawListeners('data') as ((...args: unknown[]) => void)[];
  socket.removeAllListeners('data');
  const chunks: (Buffer | string)[] = [];
  try {
    for (let chunk: unknown = socket.read(); chunk !== null; chunk = socket.read()) chunks.push(chunk as Buffer | string);
    then?.(chunks);
  } finally {
    for (const listener of listeners) socket.on('data', listener);
  }
  return chunks;
}

/** Puts chunks read from the socket back at the front of its buffer, as they were (text stays text). */
function putBack(socket: Socket, chunks: readonly (Buffer | string)[]): void {
  const encoding = socket.readableEncoding ?? undefined;
  for (const chunk of [...chunks].reverse()) socket.unshift(chunk, typeof chunk === 'string' ? encoding : undefined);
}

/**
 * Stops Node reading `socket` — synchronously, at call time — so a native relay can read its fd.
 *
 * Node reads a socket through libuv whenever its buffer is below the high-water mark, and asks for
 * more through `_read`; both are stopped (internals.ts: stopReading). What Node had already read sits
 * in the readable buffer: it is taken out (without showing it to `'data'` listeners) and returned as
 * `head`, with the bytes a `setEncoding()` decoder holds — or, if Node had read the end of stream
 * too, copied and left there (see {@link ReadHold.ended}). Only for a socket {@link missingInternal}
 * passed for reading.
 *
 * Throws `ERR_INVALID_STATE` if another relay already reads the socket.
 */
export function holdReading(socket: Socket): ReadHold {
  if (readHeld.has(socket)) {
    throw codedError('ERR_INVALID_STATE', 'The socket is already being read by another relay');
  }
  readHeld.add(socket);
  const giveReadBack = stopReading(socket);
  const ended = endOfStreamRead(socket);
  // Put back in the same synchronous run: the 'end' the emptied buffer scheduled then finds it full.
  const chunks = drain(socket, ended ? (taken) => putBack(socket, taken) : undefined);
  const encoding = socket.readableEncoding ?? undefined;
  const parts = chunks.map((c) => (typeof c === 'string' ? Buffer.from(c, encoding ?? 'utf8') : c));
  // After the decoded text, the bytes of the character the decoder has only begun (after an end of
  // stream Node has flushed its decoder already).
  const pending = decoderPending(socket) ?? Buffer.alloc(0);
  if (pending.length > 0) parts.push(pending);
  const head = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  let released = false;
  const giveBack = (): boolean => {
    if (released) return false;
    released = true;
    readHeld.delete(socket);
    giveReadBack();
    return true;
  };
  return {
    head,
    ended,
    restore() {
      if (!giveBack() || socket.destroyed || ended) return;
      // As they were: decoded text stays text, and the decoder still holds its incomplete character.
      putBack(socket, chunks);
      resumeReading(socket);
    },
    resume() {
      if (!giveBack() || ended) return Buffer.alloc(0);
      clearDecoder(socket);
      if (!socket.destroyed) resumeReading(socket);
      return head;
    },
    release(eof) {
      if (!giveBack()) return;
      clearDecoder(socket);
      if (!eof || socket.destroyed) return;
      // The bytes Node kept are delivered: take them for good, and Node emits 'end'.
      if (ended) drain(socket);
      // Node's own end of stream, unless it had already read it before the relay began.
      if (!endOfStreamRead(socket)) socket.push(null);
      socket.resume();
    },
  };
}
