/**
 * Streams over Direct I/O: `createDirectReadStream` and `createDirectWriteStream`.
 *
 * Both read and write whole aligned blocks through {@link alignedBuffer} memory, so the data bypasses
 * the page cache while the caller sees an ordinary Readable/Writable of exact bytes.
 */
import { Readable, Writable } from 'node:stream';

import { outOfRange, type ErrnoError } from './errors.js';
import { alignedBuffer, directPath, openDirect, type DirectFile, type DirectMechanism, type FallbackMode } from './direct.js';
import * as check from './validate.js';

/** Default chunk: large requests are what make O_DIRECT fast (there is no readahead). */
const DEFAULT_CHUNK = 4 * 1024 * 1024;
/**
 * Reads in flight by default. Each holds a libuv pool thread (4 by default, shared with fs, dns and
 * crypto), so two leave the rest of the process room, at about a third less throughput than four
 * (2 x 4 MiB: 1020-1200 MiB/s, 4 x 4 MiB: 1430-1590 MiB/s on the development VM).
 */
const DEFAULT_READ_AHEAD = 2;
/** Read stream chunks come from slabs of at least a huge page. */
const SLAB_MIN = 2 * 1024 * 1024;
const FALLBACK_MODES = ['error', 'buffered'] as const;

/** Options of {@link createDirectReadStream}. */
export interface DirectReadStreamOptions {
  /** First byte to read. Default 0. Any value: the stream reads from the block below and drops the head. */
  start?: number;
  /** Last byte to read, inclusive (as in `fs.createReadStream`). Default: to the end of the file. */
  end?: number;
  /** Bytes per read, rounded up to a page and the file's alignment. Default 4 MiB. */
  highWaterMark?: number;
  /**
   * Reads kept in flight ahead of the consumer (O_DIRECT has no kernel readahead). Default 2. Each
   * occupies a libuv thread-pool thread while it runs (`UV_THREADPOOL_SIZE`, 4 by default).
   */
  readAhead?: number;
  /** What to do when the filesystem refuses O_DIRECT (see `openDirect`). Default `'error'`. */
  fallback?: FallbackMode;
  /** Destroys the stream with an `AbortError`. */
  signal?: AbortSignal;
}

/** Options of {@link createDirectWriteStream}. */
export interface DirectWriteStreamOptions {
  /** Open flags. Default `'w'` (create or truncate); `'r+'` writes into an existing file at `start`. */
  flags?: 'w' | 'wx' | 'w+' | 'wx+' | 'r+';
  /** Permission bits for a created file. Default `0o666` (less the umask). */
  mode?: number;
  /** Where to start writing. Default 0. */
  start?: number;
  /** Bytes per write, rounded up to a page and the file's alignment. Default 4 MiB; two are used in turn. */
  highWaterMark?: number;
  /** What to do when the filesystem refuses O_DIRECT (see `openDirect`). Default `'error'`. */
  fallback?: FallbackMode;
  /** Destroys the stream with an `AbortError`. */
  signal?: AbortSignal;
}

/**
 * Stream chunks are whole pages (and blocks) and start on a page even where the device accepts 512
 * bytes: a buffer straddling pages needs more DMA segments per request.
 */
function chunkAlignment(file: DirectFile): number {
  return Math.max(4096, file.alignment.memory, file.alignment.offset);
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function chunkSize(value: unknown): number {
  return check.optionalInteger(value, 'options.highWaterMark', 1, 1024 * 1024 * 1024) ?? DEFAULT_CHUNK;
}

/** Adds the stream's total to an error, so the caller sees how far the stream got. */
function withStreamBytes(err: unknown, bytes: number): unknown {
  if (err instanceof Error) (err as ErrnoError).bytesTransferred = bytes;
  return err;
}

/** A Readable of a file's bytes, read with O_DIRECT in aligned chunks. */
export class DirectReadStream extends Readable {
  /** Bytes pushed so far. */
  bytesRead = 0;
  /** True until the file is open. */
  pending = true;
  /** `'direct'` or `'buffered'`, once open. */
  mechanism: DirectMechanism | undefined;
  readonly path: string;
  #file: DirectFile | undefined;
  readonly #fallback: FallbackMode | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #start: number;
  /** One past the last byte wanted. */
  readonly #end: number;
  readonly #readAhead: number;
  #chunk: number;
  /** Reads in flight, in file order. */
  #queue: { at: number; want: number; buffer: Buffer; result: Promise<number> }[] = [];
  /** The aligned file position of the next read to start. */
  #next = 0;
  /** End of file seen: start no more reads. */
  #eof = false;
  /** Bytes to drop from the front of the first chunk (an unaligned start). */
  #skip = 0;
  #slab: Buffer | undefined;
  #slabUsed = 0;

  constructor(path: string, options?: DirectReadStreamOptions) {
    // Everything is validated before super(): the stream schedules its open as soon as it exists.
    const o = check.options<DirectReadStreamOptions>(options);
    const chunk = chunkSize(o.highWaterMark);
    const readAhead = check.optionalInteger(o.readAhead, 'options.readAhead', 1, 64) ?? DEFAULT_READ_AHEAD;
    const signal = check.optionalSignal(o.signal, 'options.signal');
    const start = check.optionalInteger(o.start, 'options.start') ?? 0;
    const end = check.optionalInteger(o.end, 'options.end');
    if (end !== undefined && end < start) throw outOfRange('options.end', `>= ${start} (options.start)`, end);
    const fallback = check.optionalOneOf(o.fallback, 'options.fallback', FALLBACK_MODES);
    super({ highWaterMark: chunk, signal });
    this.path = path;
    this.#chunk = chunk;
    this.#readAhead = readAhead;
    this.#start = start;
    this.#end = end === undefined ? Infinity : end + 1;
    this.#fallback = fallback;
    this.#signal = signal;
  }

  /** The file descriptor once open (-1 after close). */
  get fd(): number | null {
    return this.#file ? this.#file.fd : null;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    openDirect(this.path, 'r', undefined, { fallback: this.#fallback }).then(
      (file) => {
        this.#file = file;
        this.mechanism = file.mechanism;
        const block = file.alignment.offset;
        this.#chunk = roundUp(this.#chunk, chunkAlignment(file));
        this.#next = this.#start - (this.#start % block);
        this.#skip = this.#start - this.#next;
        this.pending = false;
        this.emit('open', file.fd);
        this.emit('ready');
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  override _read(): void {
    const file = this.#file;
    if (!file) return;
    this.#startReads(file);
    const head = this.#queue[0];
    if (!head) {
      this.push(null);
      return;
    }
    head.result.then(
      (n) => {
        if (this.destroyed) return;
        this.#queue.shift();
        const data = head.buffer.subarray(Math.min(this.#skip, n), Math.min(n, this.#end - head.at));
        this.#skip = 0;
        this.bytesRead += data.length;
        if (n < head.want) {
          // End of file: the reads queued behind this one can only come back empty.
          this.#eof = true;
          this.#queue.length = 0;
        }
        if (data.length > 0) this.push(data);
        if (this.#queue.length === 0 && (this.#eof || this.#next >= this.#limit(file))) this.push(null);
      },
      (err: Error) => this.destroy(withStreamBytes(err, this.bytesRead) as Error),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // 'close' means the descriptor is closed: let the reads in flight (one chunk each) end first.
    const inflight = this.#queue.map((q) => q.result);
    this.#queue.length = 0;
    Promise.allSettled(inflight).then(() => {
      this.#file?.closeSync();
      callback(error);
    });
  }

  /**
   * Memory for one chunk, carved from a slab of `readAhead` chunks (at least 2 MiB, so it gets huge
   * pages: see alignedBuffer). A chunk still held downstream keeps its slab alive, as Buffer's pool does.
   */
  #buffer(want: number, file: DirectFile): Buffer {
    const step = roundUp(want, chunkAlignment(file));
    if (!this.#slab || this.#slabUsed + step > this.#slab.length) {
      this.#slab = alignedBuffer(Math.max(this.#readAhead * this.#chunk, SLAB_MIN), chunkAlignment(file));
      this.#slabUsed = 0;
    }
    const buffer = this.#slab.subarray(this.#slabUsed, this.#slabUsed + want);
    this.#slabUsed += step;
    return buffer;
  }

  /** The aligned end of the range: reads stop there. */
  #limit(file: DirectFile): number {
    return roundUp(this.#end, file.alignment.offset);
  }

  /**
   * Keeps `readAhead` chunks in flight. O_DIRECT has no kernel readahead, so without this the disk
   * would sit idle while each chunk travels to the consumer.
   */
  #startReads(file: DirectFile): void {
    const limit = this.#limit(file);
    while (!this.#eof && this.#queue.length < this.#readAhead && this.#next < limit) {
      const at = this.#next;
      const want = Math.min(this.#chunk, limit - at);
      const buffer = this.#buffer(want, file);
      const result = file.read(buffer, at, { signal: this.#signal, unaligned: 'error' });
      result.catch(() => {}); // reported when it reaches the front of the queue
      this.#queue.push({ at, want, buffer, result });
      this.#next = at + want;
    }
  }
}

/**
 * A Writable that stores its bytes with O_DIRECT: data is gathered into aligned chunks (two, used in
 * turn, so copying the next chunk overlaps writing the last), and the final partial block is written
 * padded and then trimmed, leaving the file exactly as long as what was written.
 */
export class DirectWriteStream extends Writable {
  /** Bytes written to the file so far. */
  bytesWritten = 0;
  /** True until the file is open. */
  pending = true;
  /** `'direct'` or `'buffered'`, once open. */
  mechanism: DirectMechanism | undefined;
  readonly path: string;
  #file: DirectFile | undefined;
  readonly #flags: NonNullable<DirectWriteStreamOptions['flags']>;
  readonly #mode: number | undefined;
  readonly #fallback: FallbackMode | undefined;
  readonly #signal: AbortSignal | undefined;
  #chunk: number;
  #staging: Buffer[] = [];
  #current = 0;
  /** Where the data starts in the current staging chunk: `start`'s offset into its block for the first, so
   * that memory and file stay congruent and everything past the first block goes straight to disk. */
  #base = 0;
  #fill = 0;
  /** Where the current staging chunk goes in the file. */
  #pos: number;
  /** Capacity of the current chunk: the first one ends at a block boundary when `start` is unaligned. */
  #capacity = 0;
  #inflight: Promise<void> | undefined;

  constructor(path: string, options?: DirectWriteStreamOptions) {
    // Everything is validated before super(): the stream schedules its open as soon as it exists.
    const o = check.options<DirectWriteStreamOptions>(options);
    const signal = check.optionalSignal(o.signal, 'options.signal');
    const chunk = chunkSize(o.highWaterMark);
    const flags = check.optionalOneOf(o.flags, 'options.flags', ['w', 'wx', 'w+', 'wx+', 'r+'] as const) ?? 'w';
    const mode = check.optionalInteger(o.mode, 'options.mode', 0, 0o7777);
    const start = check.optionalInteger(o.start, 'options.start') ?? 0;
    const fallback = check.optionalOneOf(o.fallback, 'options.fallback', FALLBACK_MODES);
    super({ signal, highWaterMark: chunk });
    this.path = path;
    this.#chunk = chunk;
    this.#flags = flags;
    this.#mode = mode;
    this.#pos = start;
    this.#fallback = fallback;
    this.#signal = signal;
  }

  /** The file descriptor once open (-1 after close). */
  get fd(): number | null {
    return this.#file ? this.#file.fd : null;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    openDirect(this.path, this.#flags, this.#mode, { fallback: this.#fallback, unaligned: 'bounce' }).then(
      (file) => {
        this.#file = file;
        this.mechanism = file.mechanism;
        this.#chunk = roundUp(this.#chunk, chunkAlignment(file));
        // One allocation for both chunks, so that it gets huge pages (see alignedBuffer).
        const both = alignedBuffer(2 * this.#chunk, chunkAlignment(file));
        this.#staging = [both.subarray(0, this.#chunk), both.subarray(this.#chunk)];
        this.#base = this.#pos % file.alignment.offset;
        this.#capacity = this.#chunk - this.#base;
        this.pending = false;
        this.emit('open', file.fd);
        this.emit('ready');
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#take(chunk).then(
      () => callback(),
      (err: Error) => callback(withStreamBytes(err, this.bytesWritten) as Error),
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#finish().then(
      () => callback(),
      (err: Error) => callback(withStreamBytes(err, this.bytesWritten) as Error),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const close = (): void => {
      this.#file?.closeSync();
      callback(error);
    };
    // Let a write in flight finish (its error, if any, is already reported or superseded).
    if (this.#inflight) this.#inflight.then(close, close);
    else close();
  }

  /** Copies `chunk` into the staging chunks, handing each full one to the disk. */
  async #take(chunk: Buffer): Promise<void> {
    let from = 0;
    while (from < chunk.length) {
      const n = Math.min(this.#capacity - this.#fill, chunk.length - from);
      chunk.copy(this.#staging[this.#current]!, this.#base + this.#fill, from, from + n);
      this.#fill += n;
      from += n;
      if (this.#fill === this.#capacity) await this.#flush();
    }
  }

  /** Starts writing the current chunk and switches to the other one (once its own write is done). */
  async #flush(): Promise<void> {
    await this.#inflight;
    const file = this.#file!;
    const data = this.#staging[this.#current]!.subarray(this.#base, this.#base + this.#fill);
    const at = this.#pos;
    this.#inflight = file.write(data, at, { signal: this.#signal }).then((n) => {
      this.bytesWritten += n;
    });
    // Reported by the next await; never as an unhandled rejection in between.
    this.#inflight.catch(() => {});
    this.#pos += this.#fill;
    this.#fill = 0;
    this.#base = 0;
    this.#capacity = this.#chunk;
    this.#current ^= 1;
  }

  /** Waits for the last full chunk, then writes the rest: the final partial block padded, then trimmed. */
  async #finish(): Promise<void> {
    await this.#inflight;
    this.#inflight = undefined;
    if (this.#fill === 0 || !this.#file) return;
    const data = this.#staging[this.#current]!.subarray(this.#base, this.#base + this.#fill);
    this.bytesWritten += await this.#file.write(data, this.#pos, { signal: this.#signal });
    this.#pos += this.#fill;
    this.#fill = 0;
  }
}

/**
 * A Readable stream of a file read with O_DIRECT: the page cache is neither used nor disturbed
 * (backups, scans, log shipping). `start`/`end` select a byte range (`end` inclusive), at any
 * alignment.
 *
 * @example
 * await pipeline(createDirectReadStream('/var/lib/db/table.dat'), createGzip(), createWriteStream('table.gz'));
 */
export function createDirectReadStream(path: string | Buffer | URL, options?: DirectReadStreamOptions): DirectReadStream {
  return new DirectReadStream(directPath(path), options);
}

/**
 * A Writable stream that writes a file with O_DIRECT. Any chunk sizes: data is gathered into aligned
 * chunks, and at the end the last partial block is written padded and the file trimmed to its exact
 * length.
 *
 * @example
 * await pipeline(source, createDirectWriteStream('/backup/big.img'));
 */
export function createDirectWriteStream(path: string | Buffer | URL, options?: DirectWriteStreamOptions): DirectWriteStream {
  return new DirectWriteStream(directPath(path), options);
}
