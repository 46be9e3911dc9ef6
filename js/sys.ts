/**
 * The system calls themselves, one call each, on fd numbers — the `sys` namespace export. It mirrors
 * the crate's `src/sys/`; task-level functions (`copyFile`, …) are the top-level exports.
 *
 * Every function has an async form (runs on the libuv thread pool, on private duplicates of the fds,
 * so closing yours meanwhile is safe) and a `Sync` twin. Offsets follow the C calls: given, the call
 * reads/writes there and leaves the fd's position alone; omitted, it uses and advances the position.
 * Counts may be short, as in C: loop until you have what you need, and treat 0 as end of file.
 */
import { invalidArgType, withBytes } from './errors.js';
import { native } from './native.js';
import { requireLinux } from './platform.js';
import * as check from './validate.js';

/** The most one call of `copy_file_range` or `sendfile` moves (the kernel's `MAX_RW_COUNT`). */
export const MAX_RW_COUNT = 0x7ffff000;

/** Options of {@link copyFileRange}. */
export interface CopyFileRangeOptions {
  /** Read here instead of at `fdIn`'s position. */
  offsetIn?: number;
  /** Write here instead of at `fdOut`'s position. */
  offsetOut?: number;
  /** Bytes to copy at most. Default {@link MAX_RW_COUNT}. */
  length?: number;
}

/** Options of {@link sendfile}. */
export interface SendfileOptions {
  /** Read here instead of at `inFd`'s position. */
  offset?: number;
  /** Bytes to move at most. Default {@link MAX_RW_COUNT}. */
  length?: number;
}

/** A `FICLONERANGE` range. Offsets and length must be multiples of the filesystem block size (a range ending at the source's end may end anywhere). */
export interface ReflinkRange {
  /** Default 0. */
  srcOffset?: number;
  /** Bytes to share; 0 (the default) means "to the end of the source". */
  length?: number;
  /** Default 0. */
  dstOffset?: number;
}

/** `posix_fadvise` advice: how the range will be used. */
export type FadviseAdvice = 'normal' | 'sequential' | 'random' | 'noreuse' | 'willneed' | 'dontneed';

/** Options of {@link fadvise}. */
export interface FadviseOptions {
  /** Start of the range. Default 0. */
  offset?: number;
  /** Bytes in the range; 0 (the default) means "to the end of the file". */
  length?: number;
}

/** Options of {@link splice}. */
export interface SpliceOptions {
  /** Bytes to move at most. Default {@link MAX_RW_COUNT}; a pipe gives at most what it holds. */
  length?: number;
  /** Read here instead of at `fdIn`'s position (only when `fdIn` is a file, not the pipe). */
  offsetIn?: number;
  /** Write here instead of at `fdOut`'s position (only when `fdOut` is a file). */
  offsetOut?: number;
  /** `SPLICE_F_MORE`: more data follows (a socket may hold back a partial packet). */
  more?: boolean;
  /** `SPLICE_F_NONBLOCK`: do not block on the pipe (the other fd blocks or not by its own `O_NONBLOCK`). */
  nonblock?: boolean;
  /** `SPLICE_F_MOVE`: a hint to move pages rather than copy them. */
  move?: boolean;
}

/** Options of {@link tee} and {@link vmsplice}. */
export interface PipeCallOptions {
  /** `SPLICE_F_NONBLOCK`: answer `EAGAIN` instead of waiting for the pipe. */
  nonblock?: boolean;
}

/** Options of {@link pipe}. */
export interface NewPipeOptions {
  /** `F_SETPIPE_SZ`: the capacity to ask for (rounded up to a power-of-two number of pages). */
  size?: number;
  /** `O_NONBLOCK` on both ends. */
  nonblock?: boolean;
}

/** A pipe made by {@link pipe}: two fds to close with `fs.close` when done. */
export interface PipeEnds {
  readFd: number;
  writeFd: number;
  /** Its capacity in bytes (`F_GETPIPE_SZ`). */
  size: number;
}

/** Largest `F_SETPIPE_SZ` value (`INT_MAX`); the kernel caps it at `/proc/sys/fs/pipe-max-size` for unprivileged processes. */
const MAX_PIPE_SIZE = 0x7fffffff;

function spliceArgs(fdIn: unknown, fdOut: unknown, options: unknown): [number, number, { length: number; offsetIn?: number; offsetOut?: number; more?: boolean; nonblock?: boolean; move?: boolean }] {
  const o = check.options<SpliceOptions>(options);
  return [
    check.fd(fdIn, 'fdIn'),
    check.fd(fdOut, 'fdOut'),
    {
      length: check.optionalInteger(o.length, 'options.length') ?? MAX_RW_COUNT,
      offsetIn: check.optionalInteger(o.offsetIn, 'options.offsetIn'),
      offsetOut: check.optionalInteger(o.offsetOut, 'options.offsetOut'),
      more: check.optionalBoolean(o.more, 'options.more'),
      nonblock: check.optionalBoolean(o.nonblock, 'options.nonblock'),
      move: check.optionalBoolean(o.move, 'options.move'),
    },
  ];
}

function teeArgs(pipeIn: unknown, pipeOut: unknown, length: unknown, options: unknown): [number, number, number, boolean | undefined] {
  const o = check.options<PipeCallOptions>(options);
  return [check.fd(pipeIn, 'pipeIn'), check.fd(pipeOut, 'pipeOut'), check.optionalInteger(length, 'length') ?? MAX_RW_COUNT, check.optionalBoolean(o.nonblock, 'options.nonblock')];
}

function vmspliceArgs(pipeFd: unknown, buffer: unknown, options: unknown): [number, Buffer, boolean | undefined] {
  const o = check.options<PipeCallOptions>(options);
  const fd = check.fd(pipeFd, 'pipeFd');
  if (!(buffer instanceof Uint8Array)) throw invalidArgType('buffer', 'an instance of Buffer or Uint8Array', buffer);
  const bytes = Buffer.isBuffer(buffer) ? buffer : Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  return [fd, bytes, check.optionalBoolean(o.nonblock, 'options.nonblock')];
}

function pipeArgs(options: unknown): [number | undefined, boolean | undefined] {
  const o = check.options<NewPipeOptions>(options);
  return [check.optionalInteger(o.size, 'options.size', 1, MAX_PIPE_SIZE), check.optionalBoolean(o.nonblock, 'options.nonblock')];
}

const ADVICE = ['normal', 'sequential', 'random', 'noreuse', 'willneed', 'dontneed'] as const;

function fadviseArgs(fd: unknown, advice: unknown, options: unknown): [number, number, number, string] {
  const o = check.options<FadviseOptions>(options);
  const a = check.optionalOneOf(advice, 'advice', ADVICE);
  if (a === undefined) throw invalidArgType('advice', `one of ${ADVICE.map((x) => `'${x}'`).join(', ')}`, advice);
  return [check.fd(fd, 'fd'), check.optionalInteger(o.offset, 'options.offset') ?? 0, check.optionalInteger(o.length, 'options.length') ?? 0, a];
}

function copyFileRangeArgs(fdIn: unknown, fdOut: unknown, options: unknown): [number, number, number | undefined, number | undefined, number] {
  const o = check.options<CopyFileRangeOptions>(options);
  return [
    check.fd(fdIn, 'fdIn'),
    check.fd(fdOut, 'fdOut'),
    check.optionalInteger(o.offsetIn, 'options.offsetIn'),
    check.optionalInteger(o.offsetOut, 'options.offsetOut'),
    check.optionalInteger(o.length, 'options.length') ?? MAX_RW_COUNT,
  ];
}

function sendfileArgs(outFd: unknown, inFd: unknown, options: unknown): [number, number, number | undefined, number] {
  const o = check.options<SendfileOptions>(options);
  return [
    check.fd(outFd, 'outFd'),
    check.fd(inFd, 'inFd'),
    check.optionalInteger(o.offset, 'options.offset'),
    check.optionalInteger(o.length, 'options.length') ?? MAX_RW_COUNT,
  ];
}

function reflinkArgs(fdIn: unknown, fdOut: unknown, range: unknown): [number, number, { srcOffset: number; length: number; dstOffset: number } | undefined] {
  const r = range === undefined ? undefined : check.options<ReflinkRange>(range, 'range');
  return [
    check.fd(fdIn, 'fdIn'),
    check.fd(fdOut, 'fdOut'),
    r && {
      srcOffset: check.optionalInteger(r.srcOffset, 'range.srcOffset') ?? 0,
      length: check.optionalInteger(r.length, 'range.length') ?? 0,
      dstOffset: check.optionalInteger(r.dstOffset, 'range.dstOffset') ?? 0,
    },
  ];
}

/** Runs a native call, converting its errors (a single call moves nothing when it fails). */
async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    requireLinux('sys (the Linux system calls)');
    return await fn();
  } catch (err) {
    throw withBytes(err, 0);
  }
}

function callSync<T>(fn: () => T): T {
  try {
    requireLinux('sys (the Linux system calls)');
    return fn();
  } catch (err) {
    throw withBytes(err, 0);
  }
}

/**
 * `copy_file_range(2)`: copies up to `length` bytes between two files inside the kernel.
 * Resolves to the bytes copied (0 at end of file).
 */
export async function copyFileRange(fdIn: number, fdOut: number, options?: CopyFileRangeOptions): Promise<number> {
  const args = copyFileRangeArgs(fdIn, fdOut, options);
  return call(() => native.copyFileRange(...args));
}

/** Synchronous {@link copyFileRange}. */
export function copyFileRangeSync(fdIn: number, fdOut: number, options?: CopyFileRangeOptions): number {
  const args = copyFileRangeArgs(fdIn, fdOut, options);
  return callSync(() => native.copyFileRangeSync(...args));
}

/**
 * `sendfile(2)`: moves up to `length` bytes from a file to `outFd` (a file, pipe or blocking socket) at
 * `outFd`'s position. Resolves to the bytes moved (0 at end of file).
 */
export async function sendfile(outFd: number, inFd: number, options?: SendfileOptions): Promise<number> {
  const args = sendfileArgs(outFd, inFd, options);
  return call(() => native.sendfile(...args));
}

/** Synchronous {@link sendfile}. */
export function sendfileSync(outFd: number, inFd: number, options?: SendfileOptions): number {
  const args = sendfileArgs(outFd, inFd, options);
  return callSync(() => native.sendfileSync(...args));
}

/**
 * `ioctl(FICLONE)`: makes `fdOut` share all of `fdIn`'s blocks; with a `range`, `ioctl(FICLONERANGE)`
 * shares just that range. Needs both files on one copy-on-write filesystem (XFS with reflink, btrfs…).
 */
export async function reflink(fdIn: number, fdOut: number, range?: ReflinkRange): Promise<void> {
  const args = reflinkArgs(fdIn, fdOut, range);
  return call(() => native.reflink(...args));
}

/** Synchronous {@link reflink}. */
export function reflinkSync(fdIn: number, fdOut: number, range?: ReflinkRange): void {
  const args = reflinkArgs(fdIn, fdOut, range);
  callSync(() => native.reflinkSync(...args));
}

/**
 * `posix_fadvise(2)`: tells the kernel how a range of the file will be used. `'dontneed'` drops the
 * range's clean pages from the page cache (write dirty ones back first, e.g. with `fsync`); it is
 * advice, and pages mapped by another process stay.
 *
 * @example
 * fs.fsyncSync(fd);
 * sys.fadviseSync(fd, 'dontneed'); // the file is now cold
 */
export async function fadvise(fd: number, advice: FadviseAdvice, options?: FadviseOptions): Promise<void> {
  const args = fadviseArgs(fd, advice, options);
  return call(() => native.fadvise(...args));
}

/** Synchronous {@link fadvise}. */
export function fadviseSync(fd: number, advice: FadviseAdvice, options?: FadviseOptions): void {
  const args = fadviseArgs(fd, advice, options);
  callSync(() => native.fadviseSync(...args));
}

/**
 * `splice(2)`: moves up to `length` bytes from `fdIn` to `fdOut` inside the kernel; one of them must
 * be a pipe (else `EINVAL`, naming the fd that is not). Resolves to the bytes moved, 0 at end of input.
 *
 * The async form runs on the libuv thread pool: with blocking fds it holds a pool thread until the
 * call can proceed, so pass `nonblock` (and non-blocking fds) when the other side may be slow.
 *
 * @example
 * const { readFd, writeFd } = sys.pipeSync();
 * const n = sys.spliceSync(socketFd, writeFd, { length: 65536 }); // socket → pipe
 * sys.spliceSync(readFd, fileFd, { length: n, offsetOut: 0 });    // pipe → file
 */
export async function splice(fdIn: number, fdOut: number, options?: SpliceOptions): Promise<number> {
  const args = spliceArgs(fdIn, fdOut, options);
  return call(() => native.splice(...args));
}

/** Synchronous {@link splice}. */
export function spliceSync(fdIn: number, fdOut: number, options?: SpliceOptions): number {
  const args = spliceArgs(fdIn, fdOut, options);
  return callSync(() => native.spliceSync(...args));
}

/**
 * `tee(2)`: duplicates up to `length` bytes (default {@link MAX_RW_COUNT}) from the pipe `pipeIn`
 * into the pipe `pipeOut` without consuming them. Both must be pipes (else `EINVAL`). Resolves to the
 * bytes duplicated.
 */
export async function tee(pipeIn: number, pipeOut: number, length?: number, options?: PipeCallOptions): Promise<number> {
  const args = teeArgs(pipeIn, pipeOut, length, options);
  return call(() => native.tee(...args));
}

/** Synchronous {@link tee}. */
export function teeSync(pipeIn: number, pipeOut: number, length?: number, options?: PipeCallOptions): number {
  const args = teeArgs(pipeIn, pipeOut, length, options);
  return callSync(() => native.teeSync(...args));
}

/**
 * `vmsplice(2)`: puts the bytes of `buffer` into the pipe `pipeFd` (its write end). Resolves to how
 * many the pipe took (at most its capacity; loop for the rest, as with `write`).
 *
 * **The bytes are copied** — before this function returns — into fresh pages that are then spliced
 * into the pipe and unmapped, so `buffer` may be changed or reused at once. A plain vmsplice would
 * leave the pipe (and, once spliced on, a socket or file) holding references to the Buffer's own
 * memory, where any later change would still reach the reader, with no way to learn when the kernel
 * is done with it. The copy costs what `write(2)` costs.
 */
export async function vmsplice(pipeFd: number, buffer: Uint8Array, options?: PipeCallOptions): Promise<number> {
  const args = vmspliceArgs(pipeFd, buffer, options);
  return call(() => native.vmsplice(...args));
}

/** Synchronous {@link vmsplice}. */
export function vmspliceSync(pipeFd: number, buffer: Uint8Array, options?: PipeCallOptions): number {
  const args = vmspliceArgs(pipeFd, buffer, options);
  return callSync(() => native.vmspliceSync(...args));
}

/**
 * `pipe2(2)` (close-on-exec; `O_NONBLOCK` with `nonblock`), then `F_SETPIPE_SZ` when `size` is given:
 * the pipe that `splice`, `tee` and `vmsplice` need. The two fds are yours: close them with `fs.close`.
 * Asking for more than `/proc/sys/fs/pipe-max-size` fails with `EPERM` unless privileged.
 */
export async function pipe(options?: NewPipeOptions): Promise<PipeEnds> {
  const args = pipeArgs(options);
  return call(() => native.pipe(...args));
}

/** Synchronous {@link pipe}. */
export function pipeSync(options?: NewPipeOptions): PipeEnds {
  const args = pipeArgs(options);
  return callSync(() => native.pipeSync(...args));
}
