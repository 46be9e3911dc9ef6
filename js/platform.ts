/**
 * Which platform paths this process has: where the Linux mechanisms are not available (a binary built
 * for another OS, which only reports capabilities, or `ZEROCOPY_PORTABLE=1`; see js/native.ts), what
 * has no portable equivalent (mmap, O_DIRECT, the `sys` calls, fd-number sockets, serving beneath a
 * root) throws `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`. The portable copy is js/copy-portable.ts.
 */
import { codedError, type CodedError } from './errors.js';
import { linuxPaths, PORTABLE_VARIABLE } from './native.js';

/** The error for a feature that only exists on Linux. */
export function unavailable(what: string): CodedError {
  const why = process.env[PORTABLE_VARIABLE] === '1' ? ` (${PORTABLE_VARIABLE}=1)` : '';
  return codedError(
    'ERR_FEATURE_UNAVAILABLE_ON_PLATFORM',
    `${what} is not available on ${process.platform} ${process.arch}${why}: zerocopy implements it with Linux system calls only`,
  );
}

/** Throws {@link unavailable} unless the Linux paths are there. */
export function requireLinux(what: string): void {
  if (!linuxPaths) throw unavailable(what);
}
