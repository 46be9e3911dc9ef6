/**
 * Reading an fd in the stream fallbacks (TLS, sockets without an fd, other Writables).
 *
 * The fds may be the addon's own — serveFile opens files natively — and some runtimes' `fs` accepts
 * only fds it opened itself: Deno keeps a table of them and answers EBADF for any other. So where the
 * Linux paths exist, reads go through the addon (`pread(2)` on the thread pool); elsewhere (other
 * OSes, `ZEROCOPY_PORTABLE=1`) through `fs`.
 */
import { close, fstat, read } from 'node:fs';

import { linuxPaths, native } from './native.js';

/** What the fallbacks need to know of an fd. */
export interface FdStat {
  kind: 'file' | 'directory' | 'other';
  size: number;
}

/** `fstat(2)` of `fd`. */
export function fdStat(fd: number): Promise<FdStat> {
  if (linuxPaths) {
    try {
      return Promise.resolve(native.fdInfo(fd) as FdStat);
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return new Promise((resolve, reject) =>
    fstat(fd, (err, st) => (err ? reject(err) : resolve({ kind: st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'other', size: st.size }))),
  );
}

/** Reads up to `length` bytes into `buffer` at `offset`, from `position` (or the fd's position: `null`); 0 at end of file. */
export function readAt(fd: number, buffer: Buffer, offset: number, length: number, position: number | null): Promise<number> {
  if (linuxPaths) {
    try {
      return native.readAt(fd, buffer, offset, length, position ?? undefined);
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return new Promise((resolve, reject) => read(fd, buffer, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/** Closes an fd opened by the addon (`linuxPaths`) or by `fs` (elsewhere), ignoring errors. */
export function closeQuietly(fd: number): void {
  if (linuxPaths) {
    try {
      native.closeFd(fd);
    } catch {
      // Already closed: nothing to release.
    }
  } else close(fd, () => {});
}
