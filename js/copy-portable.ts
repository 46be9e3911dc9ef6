/**
 * The portable copy, taken where the Linux mechanisms are not available (js/platform.ts): `read`/`write`
 * in 1 MiB chunks, with the semantics of the native engine.
 */
import * as fs from 'node:fs';
import { constants } from 'node:os';
import { promisify } from 'node:util';

import { abortError, withBytes, type ErrnoError } from './errors.js';
import type { CopySpec } from './native.js';

/**
 * A validated copy: what the native job (js/copy.ts) or the portable fallback runs.
 * @internal
 */
export interface CopyPlan {
  spec: CopySpec;
  budget: number;
  signal: AbortSignal | undefined;
  onProgress: ((bytesDone: number, total: number) => void) | undefined;
}

/** What the portable copy did (a `CopyResult` of js/copy.ts). */
interface PortableResult {
  bytes: number;
  mechanism: 'readwrite';
}

const CHUNK = 1024 * 1024;

/** One file system call of the portable copy, run by a sync or an async driver. */
type Op =
  | ['open', [path: Buffer, flags: number, mode: number]]
  | ['fstat', [fd: number]]
  | ['read' | 'write', [fd: number, buffer: Buffer, offset: number, length: number, position: number | null]]
  | ['ftruncate' | 'fchmod', [fd: number, value: number]]
  | ['close', [fd: number]];

const syncOps: Record<Op[0], (...args: never[]) => unknown> = {
  open: fs.openSync,
  fstat: fs.fstatSync,
  read: fs.readSync,
  write: fs.writeSync,
  ftruncate: fs.ftruncateSync,
  fchmod: fs.fchmodSync,
  close: fs.closeSync,
};

const asyncOps: Record<Op[0], (...args: never[]) => Promise<unknown>> = {
  open: promisify(fs.open),
  fstat: promisify(fs.fstat),
  read: (fd: number, buf: Buffer, offset: number, length: number, position: number | null) =>
    promisify(fs.read)(fd, buf, offset, length, position).then((r) => r.bytesRead),
  write: (fd: number, buf: Buffer, offset: number, length: number, position: number | null) =>
    promisify(fs.write)(fd, buf, offset, length, position).then((r) => r.bytesWritten),
  ftruncate: promisify(fs.ftruncate),
  fchmod: promisify(fs.fchmod),
  close: promisify(fs.close),
};

function errnoError(code: string, syscall: string, detail: string, plan: CopyPlan): ErrnoError {
  const err = new Error(`${code}: ${detail}, ${syscall}`) as ErrnoError;
  err.code = code;
  err.errno = -(constants.errno as Record<string, number>)[code]!;
  err.syscall = syscall;
  if (plan.spec.srcPath) err.path = plan.spec.srcPath.toString();
  if (plan.spec.dstPath) err.dest = plan.spec.dstPath.toString();
  return err;
}

/**
 * The copy as a sequence of file system calls, with the semantics of the native engine: positions
 * (a path from 0, an fd from and advancing its own position unless an offset is given), `overwrite`,
 * `mode`, the same-file check before any truncation, abort and progress between chunks.
 */
function* copySteps(plan: CopyPlan, moved: { bytes: number }): Generator<Op, PortableResult, unknown> {
  const { spec, signal, onProgress } = plan;
  if (spec.reflink === 'always') throw errnoError('EOPNOTSUPP', 'copyfile', "reflink: 'always' needs Linux's FICLONE", plan);
  const opened: number[] = [];
  try {
    const srcFd = spec.srcFd ?? ((yield ['open', [spec.srcPath!, fs.constants.O_RDONLY, 0]]) as number);
    if (spec.srcFd === undefined) opened.push(srcFd);
    const st = (yield ['fstat', [srcFd]]) as fs.Stats;
    let dstFd = spec.dstFd;
    if (dstFd === undefined) {
      const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | (spec.overwrite === false ? fs.constants.O_EXCL : 0);
      dstFd = (yield ['open', [spec.dstPath!, flags, st.mode & 0o7777]]) as number;
      opened.push(dstFd);
      const dt = (yield ['fstat', [dstFd]]) as fs.Stats;
      if (dt.dev === st.dev && dt.ino === st.ino) throw errnoError('EINVAL', 'copyfile', 'source and destination are the same file', plan);
      if (spec.dstOffset === undefined) yield ['ftruncate', [dstFd, 0]];
      if (spec.mode !== undefined) yield ['fchmod', [dstFd, spec.mode]];
    }
    const start = spec.offset ?? (spec.srcFd === undefined ? 0 : null);
    const dstStart = spec.dstOffset ?? (spec.dstFd === undefined ? 0 : null);
    const limit = spec.length ?? Infinity;
    const total = Math.min(limit, Math.max(0, st.size - (start ?? 0)));
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(CHUNK, limit)));
    let reported = 0;
    while (moved.bytes < limit) {
      if (signal?.aborted) throw abortError(signal);
      const at = moved.bytes;
      const n = (yield ['read', [srcFd, buf, 0, Math.min(buf.length, limit - at), start === null ? null : start + at]]) as number;
      if (n === 0) break;
      for (let w = 0; w < n; ) {
        w += (yield ['write', [dstFd, buf, w, n - w, dstStart === null ? null : dstStart + at + w]]) as number;
        moved.bytes = at + w;
      }
      if (onProgress && moved.bytes - reported >= plan.budget) {
        reported = moved.bytes;
        onProgress(moved.bytes, Math.max(total, moved.bytes));
      }
    }
    onProgress?.(moved.bytes, moved.bytes);
    return { bytes: moved.bytes, mechanism: 'readwrite' };
  } finally {
    for (const fd of opened.reverse()) yield ['close', [fd]];
  }
}

/** Runs the portable copy with synchronous calls. @internal */
export function copyPortableSync(plan: CopyPlan): PortableResult {
  const moved = { bytes: 0 };
  const steps = copySteps(plan, moved);
  try {
    let next = steps.next();
    while (!next.done) {
      const [name, args] = next.value;
      let result: unknown;
      try {
        result = syncOps[name](...(args as unknown as never[]));
      } catch (err) {
        next = steps.throw(err);
        continue;
      }
      next = steps.next(result);
    }
    return next.value;
  } catch (err) {
    throw withBytes(err, moved.bytes);
  }
}

/** Runs the portable copy on the thread pool, one call at a time. @internal */
export async function copyPortable(plan: CopyPlan): Promise<PortableResult> {
  const moved = { bytes: 0 };
  const steps = copySteps(plan, moved);
  try {
    let next = steps.next();
    while (!next.done) {
      const [name, args] = next.value;
      let result: unknown;
      try {
        result = await asyncOps[name](...(args as unknown as never[]));
      } catch (err) {
        next = steps.throw(err);
        continue;
      }
      next = steps.next(result);
    }
    return next.value;
  } catch (err) {
    throw withBytes(err, moved.bytes);
  }
}
