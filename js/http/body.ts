/**
 * Response bodies: one buffer with the headers (small files), sendfile after the headers (large
 * ones; sendFile itself falls back to a stream over TLS and for sockets without an fd), and
 * multipart/byteranges, each part's bytes by the same paths.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

import { readAt } from '../fdio.js';
import { abortError, codedError, fileTruncated, withBytes, type ErrnoError } from '../errors.js';
import { sendFile, sendResponseBody, type SendMechanism } from '../send.js';
import type { ByteRange, Multipart } from './ranges.js';
import type { Opened } from './target.js';

function truncated(at: number, start: number, end: number, sent: number): Error {
  return withBytes(fileTruncated(at, start, end), sent) as Error;
}

async function readRange(fd: number, start: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = await readAt(fd, buf, got, length - got, start + got);
    if (n === 0) throw truncated(start + got, start, start + length, 0);
    got += n;
  }
  return buf;
}

/** The bytes of `range` of a file opened with its body in memory, or read now. */
function bytesOf(file: Opened, r: ByteRange): Buffer | Promise<Buffer> {
  const length = r.end - r.start + 1;
  if (file.body) {
    if (r.end >= file.body.length) throw truncated(file.body.length, r.start, r.end + 1, 0);
    return r.start === 0 && length === file.body.length ? file.body : file.body.subarray(r.start, r.end + 1);
  }
  return readRange(file.fd, r.start, length);
}

const gone = (): Error => codedError('ERR_STREAM_DESTROYED', 'Cannot serve a file: the response has no socket (the connection is gone)');

/**
 * The response's socket. A pipelined response whose turn has not come has none yet (node:http
 * assigns it when the responses before it have finished): wait for it, or for the connection (the
 * request's socket) to close, or for `signal`.
 */
function socketOf(res: ServerResponse, signal: AbortSignal | undefined): Socket | Promise<Socket> {
  if (res.socket) return res.socket;
  const connection = res.req?.socket;
  if (res.destroyed || res.writableEnded || !connection || connection.destroyed) throw gone();
  if (signal?.aborted) throw abortError(signal);
  return new Promise((resolve, reject) => {
    const done = (err: Error | undefined): void => {
      res.off('socket', onSocket);
      res.off('close', onClose);
      connection.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else if (res.socket) resolve(res.socket);
      else reject(gone());
    };
    const onSocket = (): void => done(undefined);
    const onClose = (): void => done(gone());
    const onAbort = (): void => done(abortError(signal as AbortSignal));
    res.on('socket', onSocket);
    res.on('close', onClose);
    connection.on('close', onClose);
    signal?.addEventListener('abort', onAbort);
  });
}

/**
 * Ends the response with `body` and waits for it to be handed to the kernel, or rejects if the
 * connection closes first. What stream.finished does, for the one case here, with one listener:
 * a response emits 'close' after 'finish' as well as when its connection goes first, and
 * `writableFinished` tells the two apart (stream.finished's dozen listeners per request measured a
 * visible share of a 16 KiB response's CPU).
 */
function endWith(res: ServerResponse, body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    // 'close' comes once; `on` spares once()'s wrapper.
    res.on('close', () => (res.writableFinished ? resolve() : reject(codedError('ERR_STREAM_PREMATURE_CLOSE', 'Premature close'))));
    res.end(body);
  });
}

export interface Sent {
  bytes: number;
  mechanism: SendMechanism;
}

/** Bodies under this size are copied into the response's one write (the headers' packet). */
export function sendBody(res: ServerResponse, file: Opened, range: ByteRange, inlineLimit: number, signal: AbortSignal | undefined): Promise<Sent> {
  const length = range.end - range.start + 1;
  if (length < inlineLimit && file.body) {
    // In memory (a small file, or the cache): no async layer between the request and its one write.
    try {
      const bytes = bytesOf(file, range) as Buffer;
      return endWith(res, bytes).then(
        (): Sent => ({ bytes: length, mechanism: 'readwrite' }),
        (err: unknown) => {
          throw failed(res, err);
        },
      );
    } catch (err) {
      return Promise.reject(failed(res, err));
    }
  }
  return guarded(res, async () => {
    if (length < inlineLimit) {
      await endWith(res, await bytesOf(file, range));
      return { bytes: length, mechanism: 'readwrite' };
    }
    const socket = await socketOf(res, signal);
    // The headers go with the body's first bytes: one native send, when nothing else is on its way.
    const sent = await sendResponseBody(res, socket, file.fd, { offset: range.start, length, signal });
    if (sent.bytes !== length) throw truncated(range.start + sent.bytes, range.start, range.end + 1, sent.bytes);
    res.end();
    return { bytes: length, mechanism: sent.mechanism };
  });
}

/** A multipart/byteranges body: part heads written to the socket, each part's bytes by sendfile. */
export function sendMultipart(res: ServerResponse, file: Opened, ranges: ByteRange[], parts: Multipart, inlineLimit: number, signal: AbortSignal | undefined): Promise<Sent> {
  return guarded(res, async () => {
    const fileBytes = ranges.reduce((n, r) => n + r.end - r.start + 1, 0);
    if (parts.length < inlineLimit) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < ranges.length; i++) chunks.push(parts.heads[i] as Buffer, await bytesOf(file, ranges[i] as ByteRange));
      chunks.push(parts.tail);
      await endWith(res, Buffer.concat(chunks));
      return { bytes: fileBytes, mechanism: 'readwrite' };
    }
    const socket = await socketOf(res, signal);
    let sentBytes = 0;
    let mechanism: SendMechanism = 'sendfile';
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i] as ByteRange;
      const length = r.end - r.start + 1;
      const options = { offset: r.start, length, signal };
      let sent;
      if (i === 0) {
        // The response's headers and the first part's head go with the part's first bytes.
        sent = await sendResponseBody(res, socket, file.fd, options, parts.heads[0] as Buffer);
      } else {
        socket.write(parts.heads[i] as Buffer);
        sent = await sendFile(socket, file.fd, options);
      }
      sentBytes += sent.bytes;
      if (sent.mechanism !== 'sendfile') mechanism = sent.mechanism;
      if (sent.bytes !== length) throw truncated(r.start + sent.bytes, r.start, r.end + 1, sentBytes);
    }
    socket.write(parts.tail);
    res.end();
    return { bytes: sentBytes, mechanism };
  });
}

/** The headers promised Content-Length bytes: after a failure, a short body must not look complete. */
async function guarded(res: ServerResponse, body: () => Promise<Sent>): Promise<Sent> {
  try {
    return await body();
  } catch (err) {
    throw failed(res, err);
  }
}

function failed(res: ServerResponse, err: unknown): unknown {
  res.destroy();
  return withBytes(err, (err as ErrnoError).bytesTransferred ?? 0);
}
