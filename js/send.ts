/**
 * Sending files into sockets: `sendFile`.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { Writable } from 'node:stream';

import { abortError, codedError, failure, fileTruncated, invalidArgType, type ErrnoError } from './errors.js';
import { resolveFile, type FileArg, type Resolved } from './fd.js';
import { fdStat, readAt } from './fdio.js';
import { linuxPaths, native, type SendProgress } from './native.js';
import { requireLinux } from './platform.js';
import { onAbort } from './signal.js';
import { isNetSocket, missingInternal, socketFd, takeResponseHead } from './internals.js';
import { cancelOnEnd, connected, destroyedError, idlePace, noteActivity, takeOver, writeIdle, type Hold } from './takeover.js';
import * as check from './validate.js';

/**
 * How the bytes travelled: `'sendfile'` (page cache to socket inside the kernel), `'readwrite'` (read
 * into memory and written: files whose size `stat` cannot tell, like procfs), or `'stream'` (Node
 * streams: TLS sockets, whose bytes must be encrypted in user space; Writables that are not sockets;
 * runtimes whose sockets do not expose what a native send needs, like Deno's).
 */
export type SendMechanism = 'sendfile' | 'readwrite' | 'stream';

/** Options of {@link sendFile}. */
export interface SendFileOptions {
  /** Where to start reading the file. Default: 0 for a path; an fd's or FileHandle's position (which then advances). */
  offset?: number;
  /** The most bytes to send. Default: to the end of the file (as large as it was when the send started). */
  length?: number;
  /**
   * `'readwrite'` sends through a 64 KiB user-space buffer (`read` + `write`) instead of `sendfile`:
   * the traditional path, for benchmarks and comparisons. Default `'sendfile'`.
   */
  mechanism?: 'sendfile' | 'readwrite';
  /** Stops the send; the promise rejects with an `AbortError`. Bytes already sent stay sent. */
  signal?: AbortSignal;
  /** Called as bytes reach the socket, with the bytes sent so far and the total; the last call is `(bytes, bytes)`. */
  onProgress?: (bytesSent: number, total: number) => void;
}

/** What a send did. */
export interface SendResult {
  /** Bytes that reached the socket. */
  bytes: number;
  mechanism: SendMechanism;
}

/**
 * The most bytes the first attempt pushes from a pool thread (the socket's buffer usually stops it
 * much earlier). Pool threads never wait on the network: a full socket hands over to the reactor.
 */
const FIRST_BUDGET = 8 * 1024 * 1024;

/** The most bytes sent from the event loop thread when they are all in the page cache. */
const CACHED_BUDGET = 4 * 1024 * 1024;

/** Bytes per step when someone is watching (signal or progress). */
const WATCHED_STEP = 8 * 1024 * 1024;

/** How long the stream fallback waits before reading a FIFO that had nothing to read again. */
const FIFO_POLL_MS = 10;

/** Chunk size of the stream fallback. */
const STREAM_CHUNK = 256 * 1024;

interface Plan {
  file: Resolved;
  mechanism: 'sendfile' | 'readwrite' | undefined;
  offset: number | undefined;
  length: number | undefined;
  signal: AbortSignal | undefined;
  onProgress: ((bytesSent: number, total: number) => void) | undefined;
}

/**
 * Sends a file (or a window of it) into a socket with `sendfile(2)`: no byte passes through
 * JavaScript. Waiting for a slow reader holds no thread (the socket is watched by an epoll reactor),
 * so thousands of stalled sends cost nothing and never block `fs` calls elsewhere in the process.
 *
 * With a `net.Socket` (TCP or Unix domain), everything already written to it — headers, earlier
 * `write()`s, a corked socket's buffer — reaches the wire first; writes (and `end()`) made during the
 * send are held and follow it in order; consecutive `sendFile` calls keep their order. Reading from
 * the socket goes on as usual. A socket still connecting is sent to once it has connected.
 *
 * The bytes go through Node streams instead (`mechanism: 'stream'`, same ordering) for TLS sockets,
 * for any other `stream.Writable` (a file stream, `process.stdout` redirected to a file), and where
 * the runtime's sockets lack an internal the native send relies on (Deno's have no fd; see "Node
 * internals" in the README) — decided before any byte moves.
 *
 * An idle timeout (`socket.setTimeout(ms)`) sees every byte the send moves: it fires only once no byte
 * has moved for `ms` (within a quarter of `ms` more), as for Node's own writes.
 *
 * Rejects with the socket's error (`EPIPE`, `ECONNRESET`) if the peer goes away, `ERR_FILE_TRUNCATED` if
 * the file shrinks while it is sent, `ERR_STREAM_DESTROYED` if the socket is destroyed meanwhile, the
 * connection's error (or `ERR_SOCKET_CLOSED_BEFORE_CONNECTION` when destroyed) if it fails while still
 * connecting, and `AbortError` on abort — each with `bytesTransferred`. The socket is left open in
 * every case. Anything but a `stream.Writable` or an fd number is a TypeError (`ERR_INVALID_ARG_TYPE`).
 *
 * @example
 * const { bytes } = await sendFile(socket, '/srv/video.mp4', { offset: 1024, length: 1 << 20 });
 */
export async function sendFile(socket: Socket | Writable | number, file: FileArg, options?: SendFileOptions): Promise<SendResult> {
  const o = check.options<SendFileOptions>(options);
  const plan: Plan = {
    file: resolveFile(file, 'file'),
    mechanism: check.optionalOneOf(o.mechanism, 'options.mechanism', ['sendfile', 'readwrite'] as const),
    offset: check.optionalInteger(o.offset, 'options.offset'),
    length: check.optionalInteger(o.length, 'options.length'),
    signal: check.optionalSignal(o.signal, 'options.signal'),
    onProgress: check.optionalFunction<(bytesSent: number, total: number) => void>(o.onProgress, 'options.onProgress'),
  };
  if (typeof socket === 'number') {
    const fd = check.fd(socket, 'socket');
    requireLinux('sendFile to an fd number');
    return sendNative(fd, undefined, plan);
  }
  if (!(socket instanceof Writable)) throw invalidArgType('socket', 'an instance of net.Socket or stream.Writable, or an fd number', socket);
  if (plan.signal?.aborted) throw failure(abortError(plan.signal), 0, plan.signal);
  if (socket.destroyed || socket.writableEnded) {
    const code = socket.destroyed ? 'ERR_STREAM_DESTROYED' : 'ERR_STREAM_WRITE_AFTER_END';
    throw failure(codedError(code, 'Cannot send to a socket that has been destroyed or ended'), 0, plan.signal);
  }
  // Reserve the socket's place in its write order now, before any await: writes made after this
  // call must follow the file, writes made before it precede it.
  const reserved = takeOver(socket, plan.signal);
  let hold: Hold;
  try {
    hold = await reserved;
  } catch (err) {
    throw failure(err, 0, plan.signal);
  }
  try {
    try {
      if (isNetSocket(socket)) await connected(socket, plan.signal);
    } catch (err) {
      throw failure(err, 0, plan.signal);
    }
    // TLS must encrypt in user space; outside Linux there is no sendfile(2) to use; other Writables
    // and sockets without the internals a native send needs go through their stream.
    if (!isNetSocket(socket) || (socket as { encrypted?: boolean }).encrypted || !linuxPaths || missingInternal(socket, { write: true })) {
      return await sendStream(hold, plan);
    }
    const fd = socketFd(socket);
    if (fd === undefined || fd < 0) throw failure(destroyedError(), 0, plan.signal);
    return await sendNative(fd, socket, plan);
  } finally {
    hold.release();
  }
}

type Job = InstanceType<typeof native.SendJob>;

/** A SendJob for `plan` on socket `fd`, writing `head` first; failures carry `bytesTransferred: 0`. */
function newJob(fd: number, plan: Plan, head?: Buffer): Job {
  try {
    return new native.SendJob({
      socketFd: fd,
      filePath: plan.file.path,
      fileFd: plan.file.fd,
      offset: plan.offset,
      length: plan.length,
      mechanism: plan.mechanism,
      head,
    });
  } catch (err) {
    throw failure(err, 0, plan.signal);
  }
}

/** The native path: a SendJob stepping on the tokio runtime; the socket's 'close' and the signal cancel it. */
async function sendNative(fd: number, socket: Socket | undefined, plan: Plan): Promise<SendResult> {
  if (plan.signal?.aborted) throw failure(abortError(plan.signal), 0, plan.signal);
  return drive(newJob(fd, plan), socket, plan);
}

/**
 * Runs `job` to its end (and closes it). `first`: where a first attempt already made on this thread
 * left it (`null`: not in the page cache, nothing sent), else that attempt is made here. `headLength`:
 * the bytes of the job's head, counted in the socket's `bytesWritten` with the file's.
 */
async function drive(job: Job, socket: Socket | undefined, plan: Plan, first?: SendProgress | null, headLength = 0): Promise<SendResult> {
  const { signal, onProgress } = plan;
  const unsubscribe = cancelOnEnd(job, socket ? [socket] : [], signal);
  const budget = signal || onProgress ? WATCHED_STEP : Infinity;
  // With an idle timeout armed, steps also return in time for the timer to hear of every byte.
  const pace = socket && idlePace([socket]);
  const firstBudget = Math.min(budget, FIRST_BUDGET);
  let told = 0;
  const tell = (bytes: number): void => {
    // File bytes move only once the head is all written.
    const moved = headLength === 0 ? bytes : bytes > 0 ? bytes + headLength : job.headBytes;
    if (socket && moved > told) noteActivity(socket, moved - told);
    told = Math.max(told, moved);
  };
  try {
    // What the socket takes at once goes out now, with no wait: on this thread when the range is in
    // the page cache (cachestat says so: sendfile cannot block on the disk then), else from a pool
    // thread (which also opens a path). Only a full socket buffer sends the rest to the reactor.
    let p: SendProgress = (first === undefined ? job.tryCached(Math.min(firstBudget, CACHED_BUDGET)) : first) ?? (await job.attempt(firstBudget));
    while (!p.done) {
      tell(p.bytes);
      onProgress?.(p.bytes, Math.max(p.total ?? p.bytes, p.bytes));
      if (signal?.aborted) throw abortError(signal);
      p = await job.step(budget, pace);
    }
    tell(p.bytes);
    onProgress?.(p.bytes, p.bytes);
    return { bytes: p.bytes, mechanism: p.mechanism as SendMechanism };
  } catch (err) {
    tell(job.bytes);
    throw failure(err, job.bytes, signal);
  } finally {
    unsubscribe();
    job.close();
  }
}

/** Options of {@link sendResponseBody}. */
export interface ResponseBodyOptions {
  offset: number;
  length: number;
  signal: AbortSignal | undefined;
}

/**
 * A `ServerResponse`'s headers, then `after` (a multipart body's first part head), then a window of
 * the file at `fd`, as `res.flushHeaders()`, `socket.write(after)` and {@link sendFile} would send
 * them — with the same guarantees — but, when the socket has nothing else on its way (see
 * takeover.ts: writeIdle) and the connection can be sent to natively, in one native send begun on
 * this thread: the headers share the body's first packet, and a body whose pages are cached and
 * that the socket takes at once costs no thread hop, no wait and no write through Node's stream.
 * The caller ends the response once it resolves. Resolves with the file's bytes sent.
 */
export async function sendResponseBody(res: ServerResponse, socket: Socket, fd: number, options: ResponseBodyOptions, after?: Buffer): Promise<SendResult> {
  const { offset, length, signal } = options;
  const sockFd = socketFd(socket);
  const native_ =
    !signal?.aborted && linuxPaths && !socket.destroyed && !(socket as { encrypted?: boolean }).encrypted && sockFd !== undefined && sockFd >= 0 && writeIdle(socket) && !missingInternal(socket, { write: true });
  const responseHead = native_ ? takeResponseHead(res) : undefined;
  if (!responseHead) {
    res.flushHeaders();
    if (after) socket.write(after);
    return sendFile(socket, fd, { offset, length, signal });
  }
  const head = after ? Buffer.concat([responseHead, after]) : responseHead;
  const plan: Plan = { file: resolveFile(fd, 'file'), mechanism: undefined, offset, length, signal, onProgress: undefined };
  const job = newJob(sockFd as number, plan, head);
  let p: SendProgress | null;
  try {
    p = job.tryCached(Math.min(signal ? WATCHED_STEP : Infinity, FIRST_BUDGET, CACHED_BUDGET));
  } catch (err) {
    const moved = job.headBytes + job.bytes;
    if (moved > 0) noteActivity(socket, moved);
    job.close();
    throw failure(err, job.bytes, signal);
  }
  if (p?.done) {
    noteActivity(socket, head.length + p.bytes);
    job.close();
    return { bytes: p.bytes, mechanism: p.mechanism as SendMechanism };
  }
  // The rest waits for the socket (or a pool thread): writes made meanwhile must follow it. Nothing
  // is on its way, so the hold starts at once.
  let hold: Hold;
  try {
    hold = await takeOver(socket, signal);
  } catch (err) {
    const moved = job.headBytes + job.bytes;
    if (moved > 0) noteActivity(socket, moved);
    job.close();
    throw failure(err, job.bytes, signal);
  }
  try {
    return await drive(job, socket, plan, p, head.length);
  } finally {
    hold.release();
  }
}

/**
 * TLS and other sockets without a usable fd: read chunks and write them through the stream, with
 * backpressure. Positions follow the native path: a path starts at `offset ?? 0`; an fd without
 * `offset` is read from (and advances) its own position. A path is opened non-blocking, as the
 * native path does, so a FIFO without a writer cannot hang the open (its reads then wait in
 * {@link FIFO_POLL_MS} steps); fds are read through the addon where it can (see fdio.ts).
 */
async function sendStream(hold: Hold, plan: Plan): Promise<SendResult> {
  const { signal, onProgress } = plan;
  let handle: FileHandle | undefined;
  let sent = 0;
  try {
    if (plan.file.path !== undefined) handle = await open(plan.file.path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    const fd = handle ? handle.fd : (plan.file.fd as number);
    const st = await fdStat(fd);
    // With a known start (a path, or an explicit offset) the regular file's size bounds the send.
    const start = plan.offset ?? (handle ? 0 : undefined);
    const bounded = st.kind === 'file' && st.size > 0 && start !== undefined;
    const total = bounded ? Math.max(0, Math.min(plan.length ?? Infinity, st.size - start)) : (plan.length ?? Infinity);
    const buf = Buffer.allocUnsafe(Math.min(STREAM_CHUNK, Math.max(1, total)));
    while (sent < total) {
      if (signal?.aborted) throw abortError(signal);
      const want = Math.min(buf.length, total - sent);
      const position = start === undefined ? null : start + sent;
      let bytesRead: number;
      try {
        bytesRead = await readAt(fd, buf, 0, want, position);
      } catch (err) {
        // A FIFO (or other stream) opened non-blocking with nothing to read yet.
        if ((err as ErrnoError).code !== 'EAGAIN') throw err;
        await new Promise((resolve) => setTimeout(resolve, FIFO_POLL_MS));
        continue;
      }
      if (bytesRead === 0) {
        if (!bounded) break;
        throw fileTruncated(start + sent, start, start + total);
      }
      await hold.write(Buffer.from(buf.subarray(0, bytesRead)));
      sent += bytesRead;
      onProgress?.(sent, Math.max(bounded ? total : sent, sent));
    }
    if (sent === 0) onProgress?.(0, 0);
    return { bytes: sent, mechanism: 'stream' };
  } catch (err) {
    throw failure(err, sent, signal);
  } finally {
    await handle?.close();
  }
}
