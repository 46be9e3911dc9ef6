/**
 * Copying files: `copyFile` and `copyFileSync`.
 */
import { abortError, withBytes } from './errors.js';
import { resolveFile, type FileArg } from './fd.js';
import { copyPortable, copyPortableSync, type CopyPlan } from './copy-portable.js';
import { linuxPaths, native, type CopyProgress, type CopySpec } from './native.js';
import * as check from './validate.js';

/** How the bytes were moved, cheapest first. */
export type CopyMechanism = 'reflink' | 'copy_file_range' | 'sendfile' | 'readwrite';

/** Whether to share blocks with the source instead of copying them (copy-on-write filesystems). */
export type ReflinkMode = 'auto' | 'always' | 'never';

/** Options of {@link copyFile} and {@link copyFileSync}. */
export interface CopyOptions {
  /**
   * `'auto'` (default): share blocks where the filesystem can (XFS, btrfs…), copy otherwise.
   * `'always'`: share or fail (`EOPNOTSUPP` on ext4, `EXDEV` across filesystems, `EINVAL` for a range
   * not aligned to the filesystem block). `'never'`: always write real copies of the data.
   */
  reflink?: ReflinkMode;
  /**
   * Where to start reading. Default: 0 for a path; for an fd or FileHandle, its file position, which
   * then advances by the bytes copied. With an explicit offset the fd's position is left alone.
   */
  offset?: number;
  /** The most bytes to copy. Default: to the end of the source. A shorter source ends the copy early. */
  length?: number;
  /**
   * Where to start writing. Default: 0 for a path (the file is truncated first); for an fd, its file
   * position, which then advances. With a path destination, `dstOffset` means "write into the existing
   * file at this offset" — nothing is truncated.
   */
  dstOffset?: number;
  /** Path destinations only: `false` fails with `EEXIST` if the destination exists (`COPYFILE_EXCL`). Default `true`. */
  overwrite?: boolean;
  /**
   * Path destinations only: permission bits. Default: a new file gets the source's permission bits
   * (less the umask), as `cp` does, and an existing file keeps its own. An explicit mode is applied
   * exactly, to new and existing files.
   */
  mode?: number;
  /**
   * Forces one mechanism instead of the chain, with no fallback (for benchmarks and debugging): the
   * copy fails if that mechanism cannot copy these files (e.g. `'reflink'` on ext4: `EOPNOTSUPP`).
   * Overrides `reflink`.
   */
  mechanism?: CopyMechanism;
  /** Stops the copy between chunks; the promise rejects with an `AbortError`. */
  signal?: AbortSignal;
  /**
   * Called after each chunk with the bytes copied so far and the expected total (from the source's
   * size). The last call reports `(bytes, bytes)`: its total is the exact amount copied. Throwing from it
   * stops the copy with that error.
   */
  onProgress?: (bytesDone: number, total: number) => void;
}

/** What a copy did. */
export interface CopyResult {
  /** Bytes written to the destination. */
  bytes: number;
  /** The mechanism that moved them. */
  mechanism: CopyMechanism;
}

/**
 * Bytes per step when someone is watching (signal or progress): at disk speeds this keeps abort
 * latency and progress granularity in the tens of milliseconds. Unwatched copies run in one step.
 */
const WATCHED_STEP = 64 * 1024 * 1024;

const REFLINK_MODES = ['auto', 'always', 'never'] as const;
const MECHANISMS = ['reflink', 'copy_file_range', 'sendfile', 'readwrite'] as const;

/** Validates the arguments; an already aborted signal fails here, before anything is opened. */
function plan(src: unknown, dst: unknown, rawOptions: unknown): CopyPlan {
  const o = check.options<CopyOptions>(rawOptions);
  const from = resolveFile(src, 'src');
  const to = resolveFile(dst, 'dest');
  const signal = check.optionalSignal(o.signal, 'options.signal');
  const onProgress = check.optionalFunction<(bytesDone: number, total: number) => void>(o.onProgress, 'options.onProgress');
  const spec: CopySpec = {
    srcPath: from.path,
    srcFd: from.fd,
    dstPath: to.path,
    dstFd: to.fd,
    reflink: check.optionalOneOf(o.reflink, 'options.reflink', REFLINK_MODES),
    offset: check.optionalInteger(o.offset, 'options.offset'),
    length: check.optionalInteger(o.length, 'options.length'),
    dstOffset: check.optionalInteger(o.dstOffset, 'options.dstOffset'),
    overwrite: check.optionalBoolean(o.overwrite, 'options.overwrite'),
    mode: check.optionalInteger(o.mode, 'options.mode', 0, 0o7777),
    mechanism: check.optionalOneOf(o.mechanism, 'options.mechanism', MECHANISMS),
  };
  if (signal?.aborted) throw withBytes(abortError(signal), 0);
  return { spec, budget: signal || onProgress ? WATCHED_STEP : Infinity, signal, onProgress };
}

/**
 * The copy loop, shared by the async and sync drivers: yields a byte budget, receives where the copy
 * stands, checks for abort and reports progress between chunks.
 */
function* drive({ budget, signal, onProgress }: CopyPlan): Generator<number, CopyResult, CopyProgress> {
  for (;;) {
    if (signal?.aborted) throw abortError(signal);
    const progress = yield budget;
    if (progress.done) {
      onProgress?.(progress.bytes, progress.bytes);
      return { bytes: progress.bytes, mechanism: progress.mechanism as CopyMechanism };
    }
    onProgress?.(progress.bytes, Math.max(progress.total ?? progress.bytes, progress.bytes));
  }
}

type Job = InstanceType<typeof native.CopyJob>;

/** Validates, then creates the job (duplicating any fds now) and its loop. */
function start(src: unknown, dest: unknown, options: unknown): { job: Job; loop: Generator<number, CopyResult, CopyProgress> } {
  const p = plan(src, dest, options);
  let job: Job;
  try {
    job = new native.CopyJob(p.spec);
  } catch (err) {
    throw withBytes(err, 0);
  }
  return { job, loop: drive(p) };
}

/**
 * Copies a file (or a range of it) with the cheapest mechanism this kernel and filesystem allow:
 * reflink → `copy_file_range` → `sendfile` → `read`/`write`, falling back only while no byte has moved.
 * Runs on the libuv thread pool in bounded chunks. Outside Linux it copies with `read`/`write`.
 *
 * On failure the promise rejects with a Node-style error (`code`, `errno`, `syscall`, `path`, `dest`)
 * carrying `bytesTransferred`; a partially written destination is left as it is.
 *
 * @example
 * const { bytes, mechanism } = await copyFile('disk.img', 'backup.img', { onProgress: (n, t) => bar(n / t) });
 */
export async function copyFile(src: FileArg, dest: FileArg, options?: CopyOptions): Promise<CopyResult> {
  if (!linuxPaths) return copyPortable(plan(src, dest, options));
  const { job, loop } = start(src, dest, options);
  try {
    let next = loop.next();
    while (!next.done) next = loop.next(await job.step(next.value));
    return next.value;
  } catch (err) {
    throw withBytes(err, job.bytes);
  } finally {
    job.close();
  }
}

/** The synchronous twin of {@link copyFile}: same options and results, on the calling thread. */
export function copyFileSync(src: FileArg, dest: FileArg, options?: CopyOptions): CopyResult {
  if (!linuxPaths) return copyPortableSync(plan(src, dest, options));
  const { job, loop } = start(src, dest, options);
  try {
    let next = loop.next();
    while (!next.done) next = loop.next(job.stepSync(next.value));
    return next.value;
  } catch (err) {
    throw withBytes(err, job.bytes);
  } finally {
    job.close();
  }
}
