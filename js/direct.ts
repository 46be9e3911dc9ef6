/**
 * Direct I/O: `openDirect`, `DirectFile` and `alignedBuffer`.
 *
 * `O_DIRECT` moves data by DMA between the disk and your memory without the page cache, if the
 * buffer's address, the file position and the length are aligned as the filesystem demands. Node has
 * the flag but no aligned memory, so `fs.read` on an `O_DIRECT` fd fails with `EINVAL` for nearly
 * every Buffer. Here the rules are known per file (`file.alignment`), checked before any system call
 * (a RangeError that names the alignment), and either met with {@link alignedBuffer} or waived with
 * `unaligned: 'bounce'`.
 */
import { constants as fsConstants } from 'node:fs';

import { abortError, invalidArgType, invalidArgValue, misaligned, outOfRange, withBytes } from './errors.js';
import { resolveFile } from './fd.js';
import { native, type DirectHandle, type DirectStep } from './native.js';
import { requireLinux } from './platform.js';
import * as check from './validate.js';

/** How a {@link DirectFile} moves bytes: `'direct'` (O_DIRECT) or `'buffered'` (the fallback). */
export type DirectMechanism = 'direct' | 'buffered';

/** What to do with a request that breaks the alignment rules: fail (`'error'`) or `'bounce'` it. */
export type UnalignedMode = 'error' | 'bounce';

/** What to do when the filesystem refuses O_DIRECT: fail (`'error'`) or use `'buffered'` I/O. */
export type FallbackMode = 'error' | 'buffered';

/** O_DIRECT alignment of one open file, in bytes. */
export interface DirectFileAlignment {
  /** Buffers must start at a memory address that is a multiple of this. */
  memory: number;
  /** Positions must be multiples of this. */
  offset: number;
  /** Lengths must be multiples of this (the same as `offset` on Linux). */
  length: number;
  /** Where the figures came from: statx STATX_DIOALIGN, the block device's logical block size, or a safe default (4096). */
  source: 'statx' | 'blockdev' | 'default';
}

/** Options of {@link openDirect}. */
export interface OpenDirectOptions {
  /** Default for this file's reads and writes (each can override it). Default `'error'`. */
  unaligned?: UnalignedMode;
  /**
   * `'error'` (default): a filesystem that refuses O_DIRECT fails the open with code
   * 'ERR_DIRECT_IO_UNSUPPORTED'. `'buffered'`: use buffered I/O instead, writing each chunk back and
   * dropping it from the page cache (`posix_fadvise(DONTNEED)`); `file.mechanism` is then `'buffered'`.
   */
  fallback?: FallbackMode;
}

/** Options of one read or write. */
export interface DirectIoOptions {
  /** Overrides the file's `unaligned` mode for this call. */
  unaligned?: UnalignedMode;
  /** Stops the transfer between chunks; rejects with an `AbortError` carrying `bytesTransferred`. */
  signal?: AbortSignal;
}

/** Open flags: the strings `fs.open` takes (except the append ones), or a number of `fs.constants` bits. */
export type DirectFlags = 'r' | 'rs' | 'sr' | 'r+' | 'rs+' | 'sr+' | 'w' | 'wx' | 'xw' | 'w+' | 'wx+' | 'xw+' | number;

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_SYNC, O_DSYNC, O_APPEND, O_NOATIME, O_NOFOLLOW, O_DIRECT, O_NOCTTY } =
  fsConstants as Required<typeof fsConstants>;

const FLAGS: Record<string, number> = {
  r: O_RDONLY,
  rs: O_RDONLY | O_SYNC,
  sr: O_RDONLY | O_SYNC,
  'r+': O_RDWR,
  'rs+': O_RDWR | O_SYNC,
  'sr+': O_RDWR | O_SYNC,
  w: O_TRUNC | O_CREAT | O_WRONLY,
  wx: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  xw: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  'w+': O_TRUNC | O_CREAT | O_RDWR,
  'wx+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
  'xw+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
};

const ALLOWED_FLAG_BITS =
  O_RDONLY | O_WRONLY | O_RDWR | O_CREAT | O_EXCL | O_TRUNC | O_SYNC | O_DSYNC | O_NOATIME | O_NOFOLLOW | O_DIRECT | O_NOCTTY;

const UNALIGNED_MODES = ['error', 'bounce'] as const;
const FALLBACK_MODES = ['error', 'buffered'] as const;

/**
 * Bytes per step on the thread pool: bounded so that other pool work interleaves, and so that an
 * AbortSignal is seen within one step (tens of milliseconds at disk speeds).
 */
const STEP = 64 * 1024 * 1024;
const WATCHED_STEP = 16 * 1024 * 1024;

/** Pretends every filesystem refuses O_DIRECT, to exercise `fallback` handling (yours and ours) anywhere. */
const SIMULATE_ENV = 'ZEROCOPY_DIRECT_IO';

function parseFlags(value: unknown): number {
  if (value === undefined) return O_RDONLY;
  if (typeof value === 'string') {
    const bits = FLAGS[value];
    if (bits !== undefined) return bits;
    const reason = value.includes('a')
      ? 'is an append flag, which Direct I/O cannot use (O_APPEND makes the kernel ignore every position)'
      : 'is not a valid open flag';
    throw invalidArgValue('flags', value, reason);
  }
  if (typeof value === 'number') {
    check.integer(value, 'flags', 0, 0x7fffffff);
    if (value & O_APPEND) throw invalidArgValue('flags', value, 'includes O_APPEND, which Direct I/O cannot use (the kernel would ignore every position)');
    if (value & ~ALLOWED_FLAG_BITS) {
      throw invalidArgValue('flags', value, 'may only combine O_RDONLY/O_WRONLY/O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_SYNC, O_DSYNC, O_NOATIME, O_NOFOLLOW and O_DIRECT');
    }
    return value & ~O_DIRECT;
  }
  throw invalidArgType('flags', 'of type string or number', value);
}

function parseMode(value: unknown): number {
  if (value === undefined) return 0o666;
  if (typeof value === 'string') {
    if (!/^[0-7]+$/.test(value)) throw invalidArgValue('mode', value, 'must be a 32-bit unsigned integer or an octal string');
    return check.integer(parseInt(value, 8), 'mode', 0, 0o7777);
  }
  return check.integer(value, 'mode', 0, 0o7777);
}

/** Coerces any ArrayBufferView to a Buffer over the same memory (no copy). */
function bufferArg(value: unknown, name: string): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw invalidArgType(name, 'an instance of Buffer, TypedArray, or DataView', value);
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** How many bytes `view` starts past an address that is a multiple of `alignment`. */
function addressRemainder(view: Uint8Array, alignment: number): number {
  return alignment <= 1 || view.byteLength === 0 ? 0 : native.addressMisalignment(view, alignment);
}

// ---------------------------------------------------------------------------------------------
// Aligned memory

/** Size of a pool slab: small aligned buffers are carved out of one, as Buffer.allocUnsafe does. */
const POOL_SIZE = 1024 * 1024;
/** Largest request served from the pool; bigger ones get memory of their own. */
const POOL_MAX = POOL_SIZE >>> 3;
/** Alignment of a slab's start, and the largest alignment the pool serves. */
const POOL_ALIGN = 4096;

let slab: { memory: ArrayBuffer; start: number; used: number } | undefined;

let hugePageSize: number | undefined;
/** The transparent huge page size, or 0 where there are none (asked once). */
function hugePage(): number {
  hugePageSize ??= native.hugePageSize();
  return hugePageSize;
}

/** A zero-filled ArrayBuffer of `size + pad` bytes and the first offset in it aligned to `alignment`. */
function alignedRegion(size: number, alignment: number): { memory: ArrayBuffer; start: number } {
  // `new ArrayBuffer` memory lives inside V8's own allocator (never an external buffer, so this works
  // where those are forbidden, e.g. Electron's sandbox), is zero-filled, and never moves.
  const memory = new ArrayBuffer(size + alignment - 1);
  const start = (alignment - addressRemainder(new Uint8Array(memory), alignment)) % alignment;
  return { memory, start };
}

/**
 * A zero-filled Buffer of `size` bytes whose memory address is a multiple of `alignment` (a power of
 * two; default 4096, enough for any block device): what O_DIRECT reads and writes need.
 *
 * The memory is an ordinary V8 ArrayBuffer, over-allocated and handed out as the aligned subarray, so
 * this works where external buffers are forbidden. Requests up to 128 KiB with alignments up to 4096
 * are carved out of a shared 1 MiB slab, as `Buffer.allocUnsafe` does from its pool (so their
 * `.buffer` is shared: never transfer or detach it). Requests of a huge page (2 MiB) or more start on
 * a huge page and ask the kernel for transparent huge pages behind them (`MADV_HUGEPAGE`,
 * `MADV_COLLAPSE`): a device takes a bounded number of memory segments per request, so with 4 KiB
 * pages O_DIRECT requests are cut near 1 MiB. Allocate large buffers once and reuse them.
 *
 * @example
 * const file = await openDirect('data.bin');
 * const buf = alignedBuffer(8 << 20);
 * const n = await file.read(buf, 0);
 */
export function alignedBuffer(size: number, alignment = POOL_ALIGN): Buffer {
  check.integer(size, 'size', 0, 2 ** 32);
  check.integer(alignment, 'alignment', 1, 2 ** 30);
  if (!isPowerOfTwo(alignment)) throw outOfRange('alignment', 'a power of two', alignment);
  requireLinux('alignedBuffer (memory for O_DIRECT)');
  if (size >= hugePage() && hugePage() > 0) {
    // Start on a huge page and ask for huge pages: O_DIRECT then needs few DMA segments per request.
    const { memory, start } = alignedRegion(size, Math.max(alignment, hugePage()));
    const buf = Buffer.from(memory, start, size);
    native.hugepageHint(buf);
    return buf;
  }
  if (size > POOL_MAX || alignment > POOL_ALIGN) {
    const { memory, start } = alignedRegion(size, alignment);
    return Buffer.from(memory, start, size);
  }
  let at = slab ? Math.ceil(slab.used / alignment) * alignment : 0;
  if (!slab || at + size > POOL_SIZE) {
    const { memory, start } = alignedRegion(POOL_SIZE, POOL_ALIGN);
    slab = { memory, start, used: 0 };
    at = 0;
  }
  slab.used = at + size;
  return Buffer.from(slab.memory, slab.start + at, size);
}

// ---------------------------------------------------------------------------------------------
// DirectFile

const kAsyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose');
const kDispose: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');

type Op = 'read' | 'write';

/** Where a read or write stands, shared by the async and sync drivers. */
class Transfer {
  done = 0;
  private eof = false;
  constructor(
    readonly buffer: Buffer,
    readonly position: number,
    readonly budget: number,
    readonly bounce: boolean,
    readonly signal: AbortSignal | undefined,
  ) {}

  /** Whether another step is needed; throws AbortError (with the bytes so far) if the signal fired. */
  more(): boolean {
    if (this.eof || this.done >= this.buffer.length) return false;
    if (this.signal?.aborted) throw withBytes(abortError(this.signal), this.done);
    return true;
  }

  /** The part of the buffer still to move. */
  rest(): Buffer {
    return this.done === 0 ? this.buffer : this.buffer.subarray(this.done);
  }

  record(step: DirectStep): void {
    this.done += step.bytes;
    this.eof = step.eof;
  }
}

/**
 * A file open for Direct I/O. Reads and writes are positioned (the fd's file position is never used
 * or moved) and may run concurrently. Close it with {@link DirectFile.close} or `await using`.
 */
export class DirectFile {
  readonly #handle: DirectHandle;
  readonly #unaligned: UnalignedMode;
  /** The path the file was opened with. */
  readonly path: string;
  /** The file's O_DIRECT alignment (also reported and enforced under the buffered fallback, so code behaves the same everywhere). */
  readonly alignment: Readonly<DirectFileAlignment>;
  /** `'direct'`, or `'buffered'` when the filesystem refused O_DIRECT and `fallback: 'buffered'` was given. */
  readonly mechanism: DirectMechanism;

  /** @internal Use {@link openDirect} or {@link openDirectSync}. */
  constructor(handle: DirectHandle, path: string, unaligned: UnalignedMode) {
    this.#handle = handle;
    this.#unaligned = unaligned;
    this.path = path;
    const a = handle.alignment;
    this.alignment = Object.freeze({ memory: a.memory, offset: a.offset, length: a.offset, source: a.source as DirectFileAlignment['source'] });
    this.mechanism = handle.mechanism as DirectMechanism;
  }

  /** The file descriptor, or -1 once closed. */
  get fd(): number {
    return this.#handle.fd;
  }

  /**
   * Reads into `buffer` from file `position` until the buffer is full or the file ends. Resolves to
   * the bytes read (fewer than `buffer.length` only at end of file).
   *
   * Without `unaligned: 'bounce'`, the buffer's address must be a multiple of `alignment.memory` and
   * `position` and `buffer.length` multiples of `alignment.offset`; otherwise this throws a RangeError
   * with code 'ERR_DIRECT_IO_MISALIGNED' before touching the file.
   */
  async read(buffer: NodeJS.ArrayBufferView, position: number, options?: DirectIoOptions): Promise<number> {
    return this.#transfer('read', buffer, position, options);
  }

  /** Synchronous {@link DirectFile.read}. */
  readSync(buffer: NodeJS.ArrayBufferView, position: number, options?: DirectIoOptions): number {
    return this.#transferSync('read', buffer, position, options);
  }

  /**
   * Writes all of `buffer` at file `position`. Resolves to the bytes written (`buffer.length`).
   *
   * Alignment rules as for {@link DirectFile.read}. With `unaligned: 'bounce'` partial blocks are read,
   * patched and rewritten (which needs the file open for reading too, where the block holds data), and
   * a write that ends past the end of the file leaves it exactly `position + buffer.length` long.
   */
  async write(buffer: NodeJS.ArrayBufferView, position: number, options?: DirectIoOptions): Promise<number> {
    return this.#transfer('write', buffer, position, options);
  }

  /** Synchronous {@link DirectFile.write}. */
  writeSync(buffer: NodeJS.ArrayBufferView, position: number, options?: DirectIoOptions): number {
    return this.#transferSync('write', buffer, position, options);
  }

  /** The file's size in bytes (a block device's capacity). */
  async size(): Promise<number> {
    return this.#handle.size();
  }

  /** Synchronous {@link DirectFile.size}. */
  sizeSync(): number {
    return this.#handle.sizeSync();
  }

  /** Sets the file's size to exactly `length` bytes (no alignment needed): how an aligned writer trims its padding. */
  async truncate(length = 0): Promise<void> {
    check.integer(length, 'length');
    await this.#handle.truncate(length);
  }

  /** Synchronous {@link DirectFile.truncate}. */
  truncateSync(length = 0): void {
    check.integer(length, 'length');
    this.#handle.truncateSync(length);
  }

  /**
   * Closes the file. Reads and writes already running finish first (the descriptor closes when the
   * last one ends, so its number cannot be reused under them); later ones fail with EBADF. Idempotent.
   */
  async close(): Promise<void> {
    this.#handle.close();
  }

  /** Synchronous {@link DirectFile.close}. */
  closeSync(): void {
    this.#handle.close();
  }

  /** `await using file = await openDirect(…)` closes it at the end of the block. */
  async [kAsyncDispose](): Promise<void> {
    this.#handle.close();
  }

  /** `using file = openDirectSync(…)` closes it at the end of the block. */
  [kDispose](): void {
    this.#handle.close();
  }

  /** Steps on the thread pool until the transfer is done, checking the signal between steps. */
  async #transfer(op: Op, buffer: unknown, position: unknown, options: unknown): Promise<number> {
    const t = this.#start(op, buffer, position, options);
    const step = op === 'read' ? this.#handle.read : this.#handle.write;
    try {
      while (t.more()) t.record(await step.call(this.#handle, t.rest(), t.position + t.done, t.budget, t.bounce));
      return t.done;
    } catch (err) {
      throw withBytes(err, t.done);
    }
  }

  /** The same on the calling thread. */
  #transferSync(op: Op, buffer: unknown, position: unknown, options: unknown): number {
    const t = this.#start(op, buffer, position, options);
    const step = op === 'read' ? this.#handle.readSync : this.#handle.writeSync;
    try {
      while (t.more()) t.record(step.call(this.#handle, t.rest(), t.position + t.done, t.budget, t.bounce));
      return t.done;
    } catch (err) {
      throw withBytes(err, t.done);
    }
  }

  /** Validates a read or write and checks the alignment rules, all before any system call. */
  #start(op: Op, rawBuffer: unknown, rawPosition: unknown, rawOptions: unknown): Transfer {
    const buffer = bufferArg(rawBuffer, 'buffer');
    const position = check.integer(rawPosition, 'position');
    const o = check.options<DirectIoOptions>(rawOptions);
    const unaligned = check.optionalOneOf(o.unaligned, 'options.unaligned', UNALIGNED_MODES) ?? this.#unaligned;
    const signal = check.optionalSignal(o.signal, 'options.signal');
    if (position + buffer.length > Number.MAX_SAFE_INTEGER) {
      throw outOfRange('position', `<= ${Number.MAX_SAFE_INTEGER - buffer.length} for a ${op} of ${buffer.length} bytes`, position);
    }
    if (unaligned === 'error') {
      const { memory, offset, length } = this.alignment;
      if (position % offset !== 0) throw misaligned('position', 'offset', offset, position);
      if (buffer.length % length !== 0) throw misaligned('buffer', 'length', length, buffer.length);
      const skew = addressRemainder(buffer, memory);
      if (skew !== 0) throw misaligned('buffer', 'memory', memory, skew);
    }
    if (signal?.aborted) throw withBytes(abortError(signal), 0);
    return new Transfer(buffer, position, signal ? WATCHED_STEP : STEP, unaligned === 'bounce', signal);
  }
}

// ---------------------------------------------------------------------------------------------
// Opening

/** A path argument (string, Buffer or file: URL) as a string; Direct I/O opens paths, not fds. */
export function directPath(value: unknown, name = 'path'): string {
  const resolved = resolveFile(value, name);
  if (resolved.path === undefined) throw invalidArgType(name, 'of type string or an instance of Buffer or URL', value);
  return resolved.path.toString();
}

interface OpenPlan {
  spec: Parameters<typeof native.openDirect>[0];
  path: string;
  unaligned: UnalignedMode;
}

function planOpen(path: unknown, flags: unknown, mode: unknown, rawOptions: unknown): OpenPlan {
  const resolved = resolveFile(path, 'path');
  if (resolved.path === undefined) throw invalidArgType('path', 'of type string or an instance of Buffer or URL', path);
  const o = check.options<OpenDirectOptions>(rawOptions);
  const fallback = check.optionalOneOf(o.fallback, 'options.fallback', FALLBACK_MODES) ?? 'error';
  return {
    spec: {
      path: resolved.path,
      flags: parseFlags(flags),
      mode: parseMode(mode),
      fallback,
      simulateUnsupported: process.env[SIMULATE_ENV] === 'unsupported',
    },
    path: resolved.path.toString(),
    unaligned: check.optionalOneOf(o.unaligned, 'options.unaligned', UNALIGNED_MODES) ?? 'error',
  };
}

/**
 * Opens a file for Direct I/O (O_DIRECT) and learns its alignment rules.
 *
 * `flags` as for `fs.open` (default `'r'`; the append flags are refused because O_APPEND would make
 * the kernel ignore every position), `mode` for a created file (default `0o666`, less the umask).
 * A filesystem that refuses O_DIRECT rejects with code 'ERR_DIRECT_IO_UNSUPPORTED' (and a file the
 * open would have created is not left behind), unless `fallback: 'buffered'`.
 *
 * @example
 * await using file = await openDirect('/data/log.bin', 'r', undefined, { unaligned: 'bounce' });
 * const head = Buffer.alloc(100);
 * await file.read(head, 7); // any buffer, any position: the bounce buffer handles it
 */
export async function openDirect(path: string | Buffer | URL, flags?: DirectFlags, mode?: number | string, options?: OpenDirectOptions): Promise<DirectFile>;
export async function openDirect(path: string | Buffer | URL, options?: OpenDirectOptions & { flags?: DirectFlags; mode?: number | string }): Promise<DirectFile>;
export async function openDirect(path: unknown, flags?: unknown, mode?: unknown, options?: unknown): Promise<DirectFile> {
  const plan = planFromArgs(path, flags, mode, options);
  requireLinux('openDirect (O_DIRECT)');
  return new DirectFile(await native.openDirect(plan.spec), plan.path, plan.unaligned);
}

/** Synchronous {@link openDirect}. */
export function openDirectSync(path: string | Buffer | URL, flags?: DirectFlags, mode?: number | string, options?: OpenDirectOptions): DirectFile;
export function openDirectSync(path: string | Buffer | URL, options?: OpenDirectOptions & { flags?: DirectFlags; mode?: number | string }): DirectFile;
export function openDirectSync(path: unknown, flags?: unknown, mode?: unknown, options?: unknown): DirectFile {
  const plan = planFromArgs(path, flags, mode, options);
  requireLinux('openDirectSync (O_DIRECT)');
  return new DirectFile(native.openDirectSync(plan.spec), plan.path, plan.unaligned);
}

/** `(path, flags?, mode?, options?)`, or `(path, { flags, mode, ...options })`. */
function planFromArgs(path: unknown, flags: unknown, mode: unknown, options: unknown): OpenPlan {
  if (typeof flags === 'object' && flags !== null && mode === undefined && options === undefined) {
    const o = flags as { flags?: unknown; mode?: unknown };
    return planOpen(path, o.flags, o.mode, flags);
  }
  return planOpen(path, flags, mode, options);
}
