/**
 * Response bodies: one buffer with the headers (small files), sendfile after the headers (large
 * ones; sendFile itself falls back to a stream over TLS and for sockets without an fd), and
 * multipart/byteranges, each part's bytes by the same paths.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { finished } from 'node:stream/promises';

import { readAt } from '../fdio.js';
import { withBytes, type ErrnoError } from '../errors.js';
import { sendFile, type SendMechanism } from '../socket.js';
import type { ByteRange, Multipart } from './ranges.js';
import type { Opened } from './target.js';

function truncated(at: number, start: number, end: number, sent: number): ErrnoError {
  const err = new Error(`the file ended at byte ${at} while sending bytes ${start}..${end} (was it truncated?)`) as ErrnoError;
  err.code = 'ERR_FILE_TRUNCATED';
  return withBytes(err, sent) as ErrnoError;
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
    return file.body.subarray(r.start, r.end + 1);
  }
  return readRange(file.fd, r.start, length);
}

function socketOf(res: ServerResponse): Socket {
  const socket = res.socket;
  if (!socket) {
    const err = new Error('Cannot serve a file: the response has no socket (the connection is gone)') as ErrnoError;
    err.code = 'ERR_STREAM_DESTROYED';
    throw err;
  }
  return socket;
}

export interface Sent {
  bytes: number;
  mechanism: SendMechanism;
}

/** Bodies under this size are copied into the response's one write (the headers' packet). */
export function sendBody(res: ServerResponse, file: Opened, range: ByteRange, inlineLimit: number, signal: AbortSignal | undefined): Promise<Sent> {
  return guarded(res, async () => {
    const length = range.end - range.start + 1;
    if (length < inlineLimit) {
      res.end(await bytesOf(file, range));
      await finished(res);
      return { bytes: length, mechanism: 'readwrite' };
    }
    const socket = socketOf(res);
    res.flushHeaders();
    const sent = await sendFile(socket, file.fd, { offset: range.start, length, signal });
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
      res.end(Buffer.concat(chunks));
      await finished(res);
      return { bytes: fileBytes, mechanism: 'readwrite' };
    }
    const socket = socketOf(res);
    res.flushHeaders();
    let sentBytes = 0;
    let mechanism: SendMechanism = 'sendfile';
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i] as ByteRange;
      const length = r.end - r.start + 1;
      socket.write(parts.heads[i] as Buffer);
      const sent = await sendFile(socket, file.fd, { offset: r.start, length, signal });
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
    res.destroy();
    throw withBytes(err, (err as ErrnoError).bytesTransferred ?? 0);
  }
}
