/**
 * Errors, shaped like Node's own.
 *
 * - System call failures: an `Error` with `code` ('EBADF'), `errno` (negative, as in Node), `syscall`,
 *   and `path`/`dest` where there are paths, plus `bytesTransferred` for operations that move data.
 * - Bad arguments: `TypeError`/`RangeError` with `code` 'ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE' or
 *   'ERR_OUT_OF_RANGE', thrown before any system call.
 * - Cancellation: {@link AbortError}, `code` 'ABORT_ERR', with the signal's reason as `cause`.
 *
 * The native layer reports failures as a JSON record in the message (crates/zerocopy/src/node/error.rs
 * formats it); {@link fromNative} is the one place that parses it, and js/native.ts applies it to every
 * native call, so errors are converted once, where they leave the binding.
 */
import { inspect } from 'node:util';

/**
 * A failed system call. `errno` is negative, as in Node (`-9` for EBADF). Failures that are not one
 * errno are {@link CodedError}s instead, with a code of zerocopy's own and no `errno`:
 * 'ERR_FILE_TRUNCATED' (the file shrank while it was being sent), 'ERR_STREAM_DESTROYED' (the socket
 * was destroyed during a send), … — with `bytesTransferred` too where bytes moved.
 */
export interface ErrnoError extends Error {
  code: string;
  errno: number;
  syscall: string;
  /** The path the call worked on, if any. */
  path?: string;
  /** The destination path of a two-path operation (like `copyFile`), if any. */
  dest?: string;
  /** Bytes the operation moved before it failed. */
  bytesTransferred?: number;
}

/** Raised when an `AbortSignal` stops an operation. */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';
  /** Bytes the operation moved before it stopped. */
  bytesTransferred?: number;
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

interface NativeRecord {
  'zerocopy-error': 1;
  code: string;
  /** Absent for the crate's own codes (ERR_FILE_TRUNCATED, …). */
  errno?: number;
  syscall: string;
  message: string;
  path?: string;
  dest?: string;
}

/**
 * The core's messages name its own (Rust) API where they suggest what to do instead; these are the
 * JavaScript API's names for the same things.
 */
const VOCABULARY: readonly (readonly [core: string, js: string])[] = [
  ['(relay streams with relay::Relay)', '(move streams with pipe())'],
  ['(copy files with copy::copy)', '(use copyFile)'],
  ['CopyOptions::dst_offset', 'dstOffset'],
  ['(set OpenOptions::fallback to Fallback::Buffered for buffered I/O', "(pass fallback 'buffered' to use buffered I/O"],
];

function inJsTerms(message: string): string {
  for (const [core, js] of VOCABULARY) message = message.replace(core, js);
  return message;
}

function parseRecord(message: string): NativeRecord | undefined {
  if (!message.startsWith('{"zerocopy-error":1,')) return undefined;
  try {
    return JSON.parse(message) as NativeRecord;
  } catch {
    return undefined;
  }
}

/**
 * Turns an error thrown by the native binding into a Node-style {@link ErrnoError}; anything else
 * (already converted, or a JS error from a callback) is returned unchanged, so calling it twice is
 * harmless. js/native.ts calls it for every native call: other modules need not.
 */
export function fromNative(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const record = parseRecord(err.message);
  if (record === undefined) return err;
  if (record.code === 'ABORT_ERR') return new AbortError();
  const out = new Error(inJsTerms(record.message)) as ErrnoError;
  if (record.errno !== undefined) out.errno = -record.errno;
  out.code = record.code;
  out.syscall = record.syscall;
  if (record.path !== undefined) out.path = record.path;
  if (record.dest !== undefined) out.dest = record.dest;
  return out;
}

/** Records on `err` how many bytes moved before it, unless it already says. */
export function withBytes(err: unknown, bytesTransferred: number): unknown {
  if (err instanceof Error && (err as ErrnoError).bytesTransferred === undefined) {
    (err as ErrnoError).bytesTransferred = bytesTransferred;
  }
  return err;
}

/**
 * Turns a failure of an operation that moves data into the documented error: the signal's own
 * {@link AbortError} (with its reason as `cause`) for aborts, and `bytesTransferred` on everything.
 */
export function failure(err: unknown, bytes: number, signal: AbortSignal | undefined): unknown {
  const converted = withBytes(err, bytes);
  if (converted instanceof AbortError && signal?.aborted) {
    const abort = abortError(signal);
    abort.bytesTransferred = bytes;
    return abort;
  }
  return converted;
}

/** True for errors from a failed system call (have `code`, negative `errno` and `syscall`). */
export function isErrnoError(err: unknown): err is ErrnoError {
  return (
    err instanceof Error &&
    typeof (err as ErrnoError).code === 'string' &&
    typeof (err as ErrnoError).errno === 'number' &&
    typeof (err as ErrnoError).syscall === 'string'
  );
}

/** The AbortError for `signal`, carrying its reason as `cause`. */
export function abortError(signal: AbortSignal): AbortError {
  return new AbortError(undefined, { cause: signal.reason });
}

/**
 * An error with a `code` and no errno, as Node's own `ERR_*` errors: bad arguments (a `TypeError` or
 * `RangeError`: 'ERR_INVALID_ARG_TYPE', …) and failures of zerocopy's own ('ERR_FILE_TRUNCATED',
 * 'ERR_STREAM_DESTROYED', 'ERR_MAPPING_TRUNCATED', 'ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', …). Those of
 * operations that move data also carry `bytesTransferred`.
 */
export type CodedError<E extends Error = Error> = E & { code: string; bytesTransferred?: number };

function coded<E extends Error>(err: E, code: string): CodedError<E> {
  Object.defineProperty(err, 'code', { value: code, enumerable: true, writable: true, configurable: true });
  return err as CodedError<E>;
}

/**
 * The one factory of {@link CodedError}s that are plain `Error`s: `message`, `code`, and `props`
 * copied on (a `cause` among them becomes the standard `Error` cause).
 */
export function codedError<C extends string, P extends object = object>(code: C, message: string, props?: P & { cause?: unknown }): CodedError & { code: C } & P {
  type Made = CodedError & { code: C } & P;
  if (props === undefined) return coded(new Error(message), code) as Made;
  const { cause, ...rest } = props;
  const err = coded(new Error(message, 'cause' in props ? { cause } : undefined), code);
  return Object.assign(err, rest) as Made;
}

/**
 * `ERR_FILE_TRUNCATED`: a send of file bytes `start..end` found the file ending at byte `endedAt`
 * (it shrank while it was being sent). The native send reports the same case with the same words.
 */
export function fileTruncated(endedAt: number, start: number, end: number): CodedError {
  return codedError('ERR_FILE_TRUNCATED', `the file ended at byte ${endedAt} while sending bytes ${start}..${end} (was it truncated?)`);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return `function ${value.name || '<anonymous>'}`;
  if (typeof value === 'object') {
    const ctor = (value as object).constructor;
    return ctor && ctor.name ? `an instance of ${ctor.name}` : inspect(value, { depth: -1 });
  }
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return `type ${typeof value} (${shown})`;
}

/** `TypeError [ERR_INVALID_ARG_TYPE]: The "name" argument must be <expected>. Received <actual>` */
export function invalidArgType(name: string, expected: string, actual: unknown): CodedError<TypeError> {
  const kind = name.includes('.') ? 'property' : 'argument';
  return coded(
    new TypeError(`The "${name}" ${kind} must be ${expected}. Received ${describe(actual)}`),
    'ERR_INVALID_ARG_TYPE',
  );
}

/** `TypeError [ERR_INVALID_ARG_VALUE]: The argument 'name' <reason>. Received <value>` */
export function invalidArgValue(name: string, value: unknown, reason: string): CodedError<TypeError> {
  const kind = name.includes('.') ? 'property' : 'argument';
  return coded(
    new TypeError(`The ${kind} '${name}' ${reason}. Received ${inspect(value)}`),
    'ERR_INVALID_ARG_VALUE',
  );
}

/** `RangeError [ERR_OUT_OF_RANGE]: The value of "name" is out of range. It must be <range>. Received <value>` */
export function outOfRange(name: string, range: string, value: unknown): CodedError<RangeError> {
  return coded(
    new RangeError(`The value of "${name}" is out of range. It must be ${range}. Received ${inspect(value)}`),
    'ERR_OUT_OF_RANGE',
  );
}

/** A {@link misaligned} error: which rule was broken, the alignment it needs and the value received. */
export type MisalignedError = CodedError<RangeError> & { rule: 'memory' | 'offset' | 'length'; alignment: number; received: number };

/**
 * `RangeError [ERR_DIRECT_IO_MISALIGNED]`: a Direct I/O request breaks the file's alignment rules.
 * Carries `rule` ('memory' | 'offset' | 'length'), `alignment` (the required multiple, in bytes) and
 * `received` (the position or length, or how many bytes past an aligned address the buffer starts).
 */
export function misaligned(name: string, rule: MisalignedError['rule'], alignment: number, received: number): MisalignedError {
  const need = `for O_DIRECT on this file (alignment.${rule})`;
  const message =
    rule === 'memory'
      ? `The "${name}" argument must start at a memory address that is a multiple of ${alignment} ${need}; it starts ${received} bytes past one. Allocate it with alignedBuffer(), or pass { unaligned: 'bounce' }`
      : `The ${rule === 'length' ? `length of "${name}"` : `"${name}" argument`} must be a multiple of ${alignment} ${need}. Received ${received}. Pass { unaligned: 'bounce' } to allow any ${rule === 'length' ? 'length' : 'position'}`;
  const err = coded(new RangeError(message), 'ERR_DIRECT_IO_MISALIGNED') as MisalignedError;
  err.rule = rule;
  err.alignment = alignment;
  err.received = received;
  return err;
}
