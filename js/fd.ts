/**
 * What "a file" may be in this API, and how it reaches the native layer.
 */
import type { FileHandle } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

import { invalidArgType, invalidArgValue } from './errors.js';
import * as check from './validate.js';

/**
 * A file: a path (`string`, `Buffer` or `file:` `URL`), an open fd number, or an `fs.promises.FileHandle`.
 *
 * fds and FileHandles are used, not closed: the operation works on its own duplicate of the fd, so
 * closing yours while it runs is safe (it finishes on the duplicate).
 */
export type FileArg = string | Buffer | URL | number | FileHandle;

/** A file resolved for the binding: path bytes (any encoding the filesystem holds) or an fd number. */
export type Resolved = { path: Buffer; fd?: undefined } | { fd: number; path?: undefined };

function isFileHandle(value: unknown): value is FileHandle {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as FileHandle).fd === 'number' &&
    typeof (value as FileHandle).close === 'function'
  );
}

/** Validates and resolves a {@link FileArg}, throwing Node's argument errors. */
export function resolveFile(value: unknown, name: string): Resolved {
  if (typeof value === 'number') return { fd: check.fd(value, name) };
  if (isFileHandle(value)) {
    // A closed FileHandle reports fd -1: let the kernel's EBADF say so, as fs.promises does.
    return { fd: value.fd < 0 ? -1 : check.fd(value.fd, `${name}.fd`) };
  }
  let bytes: Buffer;
  if (typeof value === 'string') bytes = Buffer.from(value, 'utf8');
  else if (value instanceof URL) bytes = Buffer.from(fileURLToPath(value), 'utf8');
  else if (Buffer.isBuffer(value) || value instanceof Uint8Array) bytes = Buffer.from(value);
  else throw invalidArgType(name, 'of type string or an instance of Buffer, URL or FileHandle, or an fd number', value);
  if (bytes.includes(0)) {
    throw invalidArgValue(name, value, 'must be a string, Uint8Array, or URL without null bytes');
  }
  return { path: bytes };
}
