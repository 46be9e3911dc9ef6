/**
 * Argument checks, run before any system call. Each throws the TypeError/RangeError Node itself would.
 */
import { invalidArgType, invalidArgValue, outOfRange } from './errors.js';

/** Largest fd number the kernel can hand out (`INT_MAX`). */
const MAX_FD = 0x7fffffff;

/** An integer within [min, max] (at most `Number.MAX_SAFE_INTEGER`). */
export function integer(value: unknown, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer >= ${min} && <= ${max}`;
    throw outOfRange(name, range, value);
  }
  return value;
}

/** `undefined`, or an integer within [min, max]. */
export function optionalInteger(value: unknown, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  return value === undefined ? undefined : integer(value, name, min, max);
}

/** A file descriptor number. */
export function fd(value: unknown, name: string): number {
  return integer(value, name, 0, MAX_FD);
}

/** `undefined` or a plain options object. */
export function options<T extends object>(value: unknown, name = 'options'): Partial<T> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalidArgType(name, 'of type object', value);
  return value as Partial<T>;
}

/** `undefined` or a boolean. */
export function optionalBoolean(value: unknown, name: string): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  throw invalidArgType(name, 'of type boolean', value);
}

/** `undefined` or a function. */
export function optionalFunction<F extends (...args: never[]) => unknown>(value: unknown, name: string): F | undefined {
  if (value === undefined || typeof value === 'function') return value as F | undefined;
  throw invalidArgType(name, 'of type function', value);
}

/** `undefined` or an AbortSignal (duck-typed, as Node does, so signals from other realms work). */
export function optionalSignal(value: unknown, name: string): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || !('aborted' in value) || typeof (value as AbortSignal).addEventListener !== 'function') {
    throw invalidArgType(name, 'an instance of AbortSignal', value);
  }
  return value as AbortSignal;
}

/** `undefined` or one of `allowed`. */
export function optionalOneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw invalidArgValue(name, value, `must be one of: ${allowed.map((a) => `'${a}'`).join(', ')}`);
  }
  return value as T;
}
