/**
 * Files as Buffers: `mmap`, `mmapSync`, `MappedFile` and `residency`.
 *
 * What no other Node mmap package guarantees, and this one does:
 * - `close()` cannot leave a dangling view: it detaches the Buffer's ArrayBuffer (every view over it
 *   becomes zero-length) before unmapping. Where the memory escaped to another ArrayBuffer first
 *   (`transfer()`, a transfer list, a worker), close replaces it with zeros instead and unmaps once
 *   that ArrayBuffer is gone: no JavaScript operation ever reaches unmapped memory. A mapping never
 *   closed is unmapped when its Buffer is garbage-collected.
 * - Another process truncating the file does not kill this one: pages past the new end read as zeros,
 *   `.stale` turns true, and `sync`/`advise`/`close` report `ERR_MAPPING_TRUNCATED` (an `'rw'` sync
 *   still writes what the file holds, and says what it could not).
 * - Stray writes cannot crash or corrupt: mode 'r' maps privately, so a write changes a private copy
 *   of one page, never the file.
 * - No silent copies: where the runtime forbids external buffers, mapping fails with
 *   `ERR_EXTERNAL_BUFFERS_NOT_ALLOWED` instead of handing out a copy whose writes would be lost.
 */
import { constants as bufferConstants } from 'node:buffer';

import { codedError, fromNative, invalidArgValue, outOfRange, type CodedError, type ErrnoError } from './errors.js';
import { resolveFile, type FileArg } from './fd.js';
import { native } from './native.js';
import { requireLinux } from './platform.js';
import * as check from './validate.js';

/** `'r'`: read (private; stray writes stay private), `'rw'`: shared and writable, `'cow'`: private copy-on-write. */
export type MmapMode = 'r' | 'rw' | 'cow';

/** `madvise(2)` advice. */
export type MmapAdvice =
  | 'normal'
  | 'sequential'
  | 'random'
  | 'willneed'
  | 'dontneed'
  | 'hugepage'
  | 'nohugepage'
  | 'cold'
  | 'pageout'
  | 'populate';

/** Options of {@link mmap} and {@link mmapSync}. */
export interface MmapOptions {
  /**
   * `'r'` (default): read. Mapped `MAP_PRIVATE` and writable, because a Buffer is always writable and
   * a read-only mapping would turn a stray write into a segfault; such a write changes a private copy
   * of that page and never reaches the file. `'rw'`: `MAP_SHARED`, writes go to the file (a path is
   * opened read-write; an fd must be open read-write). `'cow'`: private copy-on-write, with memory for
   * the copies reserved up front.
   */
  mode?: MmapMode;
  /** File offset of the first byte; any value (the mapping starts at the page below). Default 0. */
  offset?: number;
  /** Bytes to map. Default: from `offset` to the end of the file. */
  length?: number;
  /** Read the pages in before resolving (`MADV_POPULATE_READ`; never copies them). */
  populate?: boolean;
  /** Advice applied to the whole window once mapped (see {@link MappedFile.advise}). */
  advice?: MmapAdvice;
}

/** A range inside a mapping's window, in bytes from its start. */
export interface MappedRange {
  /** Default 0. */
  offset?: number;
  /** Default: to the end of the window. */
  length?: number;
}

/** Options of {@link MappedFile.sync}. */
export interface MmapSyncOptions {
  /** `true`: schedule the write-back and return (`MS_ASYNC`). Default `false`: wait for it (`MS_SYNC`). */
  async?: boolean;
  /** Only this part of the window. */
  range?: MappedRange;
}

/** What `mincore(2)` reports. */
export interface Residency {
  /** Pages covering the file or window. */
  pages: number;
  /** Of those, pages in memory (the page cache). */
  resident: number;
}

type NativeMapping = InstanceType<typeof native.Mapping>;

const MODES = ['r', 'rw', 'cow'] as const;
const ADVICE = ['normal', 'sequential', 'random', 'willneed', 'dontneed', 'hugepage', 'nohugepage', 'cold', 'pageout', 'populate'] as const;

/** `Symbol.dispose` where the runtime has it, else the symbol Node uses for it. */
const disposeSymbol: typeof Symbol.dispose = (Symbol.dispose ?? Symbol.for('nodejs.dispose')) as typeof Symbol.dispose;

/** A plain `{ pages, resident }`, whatever extra fields the native object grows. */
const counts = (r: Residency): Residency => ({ pages: r.pages, resident: r.resident });

/** `mincore` over a mapping's window; set by MappedFile's static block, which can reach its internals. */
let residencyOf: (m: MappedFile) => Residency;

/** `ERR_MAPPING_TRUNCATED`: `op` found the mapping stale. */
function truncated(op: string): CodedError {
  return codedError(
    'ERR_MAPPING_TRUNCATED',
    `The mapped file was truncated while mapped: part of the mapping now reads as zeros and writes there are lost (${op})`,
  );
}

/** The `ERR_MAPPING_TRUNCATED` of an `'rw'` sync that could write only part of its range. */
export interface TruncatedSyncError extends Error {
  code: 'ERR_MAPPING_TRUNCATED';
  /** Bytes of the range written to the file (from the range's start). */
  bytesTransferred: number;
  /** Bytes after those that the file no longer backs: what was written there is lost. */
  bytesLost: number;
  /** The file's size at the sync. */
  fileSize: number;
}

type NativeSynced = Awaited<ReturnType<NativeMapping['sync']>>;

/** What a sync of window bytes `[offset, …)` on a mapping at file offset `base` reported. */
function checkSynced(s: NativeSynced, offset: number, base: number, stale: boolean): void {
  if (s.lost > 0) {
    const lostFrom = offset + s.bytes;
    throw codedError(
      'ERR_MAPPING_TRUNCATED',
      `The mapped file was truncated while mapped: it now ends at byte ${s.fileSize ?? 0}. ` +
        `${s.bytes} bytes of the range were written to it; the ${s.lost} from window offset ${lostFrom} ` +
        `(file offset ${base + lostFrom}) on are past its end or no longer backed by it, and what was written there is lost (sync)`,
      { bytesTransferred: s.bytes, bytesLost: s.lost, fileSize: s.fileSize ?? 0 },
    ) satisfies TruncatedSyncError;
  }
  // A private mapping writes nothing to the file; its truncation is reported all the same.
  if (stale && s.fileSize == null) throw truncated('sync');
}

/** A `{ offset, length }` inside a window of `size` bytes, checked before any system call. */
function rangeIn(raw: unknown, size: number, name: string): [number, number] {
  const r = check.options<MappedRange>(raw, name);
  const offset = check.optionalInteger(r.offset, `${name}.offset`, 0, size) ?? 0;
  const length = check.optionalInteger(r.length, `${name}.length`, 0, size - offset) ?? size - offset;
  return [offset, length];
}

/**
 * A file mapped into memory. Get one from {@link mmap} or {@link mmapSync}.
 *
 * @example
 * using file = mmapSync('data.bin');
 * const header = file.buffer.readUInt32LE(0);
 */
export class MappedFile {
  /**
   * The mapped bytes, zero-copy. After {@link close} it (and every view over it) has length 0.
   * Never read it past `close()` expecting data: reads return `undefined`. Memory moved out of it
   * (`buffer.buffer.transfer()`, a transfer list) reads as zeros after `close()`, and writes to it
   * are discarded.
   */
  readonly buffer: Buffer;
  /** How the file was mapped. */
  readonly mode: MmapMode;
  /** The file offset of `buffer[0]`. */
  readonly offset: number;
  #native: NativeMapping;

  /** @internal Use {@link mmap} or {@link mmapSync}. */
  constructor(mapping: NativeMapping, mode: MmapMode, offset: number) {
    this.#native = mapping;
    this.mode = mode;
    this.offset = offset;
    let buffer: Buffer | null;
    try {
      buffer = mapping.createBuffer();
    } catch (err) {
      // `mapping` is the binding's (whose errors are converted already) or, in a test, a stand-in
      // that throws the native record itself: fromNative passes converted errors through.
      const converted = fromNative(err) as ErrnoError;
      mapping.close(undefined);
      if (converted.syscall === 'napi_create_external_buffer') {
        throw codedError(
          'ERR_EXTERNAL_BUFFERS_NOT_ALLOWED',
          'This runtime forbids external buffers (e.g. the V8 sandbox in Electron), so a file cannot be mapped without copying it',
          { cause: converted },
        );
      }
      throw converted;
    }
    this.buffer = buffer ?? Buffer.alloc(0);
  }

  /** Bytes in the window; 0 once closed. */
  get length(): number {
    return this.buffer.length;
  }

  /**
   * True once a truncation of the file by someone else has been absorbed: some page of the window (and
   * every later one) read as zeros instead of faulting. The bytes there are no longer the file's, and
   * writes there are lost. `advise` and `close` then throw `ERR_MAPPING_TRUNCATED`; `sync` of an
   * `'rw'` mapping still writes the part the file holds and rejects with it if some of its range was
   * lost (see {@link sync}).
   */
  get stale(): boolean {
    return this.#native.stale;
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.#native.closed;
  }

  /**
   * `madvise(2)` over the window, or `range` of it (widened to whole pages): tells the kernel how the
   * mapping will be used. `'dontneed'` on a private mapping drops its private copies (the file's bytes
   * show again). Throws `ERR_MAPPING_TRUNCATED` on a stale mapping, `EBADF` once closed.
   */
  advise(advice: MmapAdvice, range?: MappedRange): void {
    const name = check.optionalOneOf(advice, 'advice', ADVICE);
    if (name === undefined) throw invalidArgValue('advice', advice, `must be one of: ${ADVICE.map((a) => `'${a}'`).join(', ')}`);
    const [offset, length] = rangeIn(range, this.length, 'range');
    if (this.stale) throw truncated('advise');
    this.#native.advise(name, offset, length);
  }

  /**
   * `msync(2)`: writes changes of an `'rw'` mapping to the file, on the thread pool; write-back errors
   * (`EIO`, `ENOSPC`) surface here. A no-op for `'r'` and `'cow'`, whose changes never reach the file
   * (they reject with `ERR_MAPPING_TRUNCATED` once stale). `EBADF` once closed.
   *
   * After someone truncated the file, an `'rw'` sync still writes every byte of the range the file
   * holds (up to its current end, and before the first page that read as zeros), then rejects with
   * `ERR_MAPPING_TRUNCATED` if part of the range could not be written, carrying `bytesTransferred`
   * (written, from the range's start), `bytesLost` and `fileSize` ({@link TruncatedSyncError}).
   */
  async sync(options?: MmapSyncOptions): Promise<void> {
    const [wait, offset, length] = this.#syncArgs(options);
    const synced = await this.#native.sync(wait, offset, length);
    checkSynced(synced, offset, this.offset, this.stale);
  }

  /** The synchronous twin of {@link sync}. */
  syncSync(options?: MmapSyncOptions): void {
    const [wait, offset, length] = this.#syncArgs(options);
    const synced = this.#native.syncSync(wait, offset, length);
    checkSynced(synced, offset, this.offset, this.stale);
  }

  #syncArgs(options: unknown): [boolean, number, number] {
    const o = check.options<MmapSyncOptions>(options);
    const async = check.optionalBoolean(o.async, 'options.async') ?? false;
    const [offset, length] = rangeIn(o.range, this.length, 'options.range');
    if (this.stale && this.mode !== 'rw') throw truncated('sync');
    return [!async, offset, length];
  }

  /**
   * Detaches `buffer` — it and every view over it become zero-length — then unmaps the file. Waits for
   * a `sync()` in progress. Calling it again does nothing. Throws `ERR_MAPPING_TRUNCATED` (after
   * unmapping) if the mapping had gone stale, so a truncation is never missed.
   *
   * If the memory was moved out of `buffer` first (`buffer.buffer.transfer()`, or a transfer list of
   * such a buffer), the views over it cannot be detached: the window is replaced with zeros instead
   * (their writes go nowhere, and never to the file) and unmapped once they are collected. Writes made
   * to an `'rw'` mapping before `close()` are kept: the kernel writes them back as after `munmap`.
   */
  close(): void {
    if (this.#native.closed) return;
    if (this.#native.close(this.buffer)) throw truncated('close');
  }

  /** `using file = mmapSync(...)` closes it at the end of the block. */
  [disposeSymbol](): void {
    this.close();
  }

  static {
    residencyOf = (m) => counts(m.#native.residency(0, m.length));
  }
}

interface Prepared {
  spec: Parameters<typeof native.mmapSync>[0];
  mode: MmapMode;
  offset: number;
  length: number | undefined;
}

function prepare(file: unknown, rawOptions: unknown): Prepared {
  const o = check.options<MmapOptions>(rawOptions);
  const target = resolveFile(file, 'file');
  const mode = check.optionalOneOf(o.mode, 'options.mode', MODES) ?? 'r';
  const offset = check.optionalInteger(o.offset, 'options.offset') ?? 0;
  const length = check.optionalInteger(o.length, 'options.length', 0, bufferConstants.MAX_LENGTH);
  const spec = {
    path: target.path,
    fd: target.fd,
    mode,
    offset,
    length,
    maxLength: bufferConstants.MAX_LENGTH,
    populate: check.optionalBoolean(o.populate, 'options.populate'),
    advice: check.optionalOneOf(o.advice, 'options.advice', ADVICE),
  };
  return { spec, mode, offset, length };
}

/** Turns a native mapping into a MappedFile, or the range error its window calls for. */
function finish(mapping: NativeMapping, p: Prepared): MappedFile {
  const size = mapping.fileSize;
  switch (mapping.fit) {
    case 'ok':
      return new MappedFile(mapping, p.mode, p.offset);
    case 'offset':
      throw outOfRange('options.offset', `<= ${size} (the file's size)`, p.offset);
    case 'length':
      throw outOfRange('options.length', `<= ${size - p.offset} (the bytes from offset to the end of the file)`, p.length);
    default:
      throw outOfRange(
        'options.length',
        `<= ${bufferConstants.MAX_LENGTH} (buffer.constants.MAX_LENGTH); pass a length to map part of this ${size}-byte file`,
        p.length ?? size - p.offset,
      );
  }
}

/**
 * Maps a file (or a window of it) into memory and resolves to a {@link MappedFile} whose `buffer`
 * reads (and, in `'rw'` mode, writes) the file's pages directly, without copying. Opening the file and
 * populating run on the thread pool.
 *
 * `file` is a path, an fd or a FileHandle; close yours whenever you like (an `'rw'` mapping keeps a
 * duplicate of its own, for {@link MappedFile.sync}, until closed or collected). Only regular files can
 * be mapped: `EISDIR` for a directory, `ENODEV` for FIFOs and devices; a path is opened non-blocking,
 * so a FIFO without a writer cannot hang it. A zero-length file or window gives an empty buffer. `offset`/`length` past the end of the file reject with `RangeError`
 * (`ERR_OUT_OF_RANGE`) before anything is mapped.
 *
 * @example
 * const file = await mmap('index.bin', { advice: 'random' });
 * const entry = file.buffer.subarray(4096 * n, 4096 * (n + 1)); // no copy, no syscall
 */
export async function mmap(file: FileArg, options?: MmapOptions): Promise<MappedFile> {
  const p = prepare(file, options);
  requireLinux('mmap');
  return finish(await native.mmap(p.spec), p);
}

/** The synchronous twin of {@link mmap}. */
export function mmapSync(file: FileArg, options?: MmapOptions): MappedFile {
  const p = prepare(file, options);
  requireLinux('mmapSync');
  return finish(native.mmapSync(p.spec), p);
}

/**
 * How much of a file (path, fd or FileHandle), or of a {@link MappedFile}'s window, is in memory:
 * `mincore(2)`, counted in pages. Synchronous: it reads page tables and never waits for the disk.
 *
 * For a file, the kernel reports pages this process has not mapped only if the caller owns the file
 * or may write to it (Linux 5.0+); otherwise they count as not resident. Only regular files, as for
 * {@link mmap} (`EISDIR`, `ENODEV`); a path is opened non-blocking.
 *
 * @example
 * const { pages, resident } = residency('big.log');
 * console.log(`${((100 * resident) / pages).toFixed(1)}% cached`);
 */
export function residency(fileOrMapping: FileArg | MappedFile): Residency {
  if (fileOrMapping instanceof MappedFile) return residencyOf(fileOrMapping);
  const target = resolveFile(fileOrMapping, 'fileOrMapping');
  requireLinux('residency');
  return counts(native.fileResidency(target.path, target.fd));
}
