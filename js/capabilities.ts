/**
 * What this machine supports: `capabilities(path?)`.
 */
import { stat, statSync, type Stats } from 'node:fs';
import { release } from 'node:os';

import { resolveFile } from './fd.js';
import { linuxPaths, native, type NativeCapabilities } from './native.js';

/** O_DIRECT alignment requirements for files on one filesystem. */
export interface DirectIoAlignment {
  /** Required alignment of a buffer's memory address, in bytes. */
  memory: number;
  /** Required alignment of file offsets and lengths, in bytes. */
  offset: number;
  /** Where the figures came from: `statx` STATX_DIOALIGN (Linux 6.1+), the block device's logical block size, or a safe default (4096). */
  source: 'statx' | 'blockdev' | 'default';
}

/** What the filesystem holding a path supports; `null` means it could not be probed (e.g. no write permission there). */
export interface FilesystemCapabilities {
  /** The path that was probed. */
  path: string;
  /** Filesystem type: 'ext4', 'xfs', 'btrfs', 'tmpfs', … or the statfs magic number in hex. */
  type: string;
  /** Preferred I/O block size. */
  blockSize: number;
  /** FICLONE works here: `copyFile` will share blocks instead of copying. */
  reflink: boolean | null;
  /** copy_file_range works between two files here. */
  copyFileRange: boolean | null;
  /** O_DIRECT is accepted here. */
  directIo: boolean | null;
  /** O_DIRECT alignment, when O_DIRECT is accepted. */
  directIoAlignment: DirectIoAlignment | null;
}

/** What the kernel offers (and, given a path, its filesystem). Probed once per process (per filesystem), then cached. */
export interface Capabilities {
  platform: NodeJS.Platform;
  arch: string;
  /** Kernel release, e.g. '6.18.44'. */
  kernel: string;
  pageSize: number;
  /** The syscalls exist and are not blocked by seccomp. */
  copyFileRange: boolean;
  sendfile: boolean;
  splice: boolean;
  tee: boolean;
  vmsplice: boolean;
  /** /proc/sys/fs/pipe-max-size: the largest pipe buffer an unprivileged process may request. */
  pipeMaxSize: number | null;
  /** Present when a path was given. */
  filesystem?: FilesystemCapabilities;
}

function convert(raw: NativeCapabilities, path: string | undefined): Capabilities {
  const caps: Capabilities = {
    platform: process.platform,
    arch: process.arch,
    kernel: raw.kernel,
    pageSize: raw.pageSize,
    copyFileRange: raw.copyFileRange,
    sendfile: raw.sendfile,
    splice: raw.splice,
    tee: raw.tee,
    vmsplice: raw.vmsplice,
    pipeMaxSize: raw.pipeMaxSize ?? null,
  };
  const fs = raw.filesystem;
  if (fs && path !== undefined) {
    const align = fs.directIoAlignment;
    caps.filesystem = {
      path,
      type: fs.fsType,
      blockSize: fs.blockSize,
      reflink: fs.reflink ?? null,
      copyFileRange: fs.copyFileRange ?? null,
      directIo: fs.directIo ?? null,
      directIoAlignment: align ? { memory: align.memory, offset: align.offset, source: align.source as DirectIoAlignment['source'] } : null,
    };
  }
  return caps;
}

/**
 * Without the Linux paths every mechanism is unavailable: a build for another OS reports so itself;
 * under ZEROCOPY_PORTABLE=1 the Linux binary's answers are overridden, as the API does not use them.
 */
function portable(raw: NativeCapabilities, path: string | undefined, st: Stats | undefined): Capabilities {
  const caps: Capabilities = {
    platform: process.platform,
    arch: process.arch,
    kernel: raw.kernel || release(),
    pageSize: raw.pageSize,
    copyFileRange: false,
    sendfile: false,
    splice: false,
    tee: false,
    vmsplice: false,
    pipeMaxSize: null,
  };
  if (path !== undefined && st !== undefined) {
    caps.filesystem = {
      path,
      type: 'unknown',
      blockSize: st.blksize || 0,
      reflink: false,
      copyFileRange: false,
      directIo: false,
      directIoAlignment: null,
    };
  }
  return caps;
}

function pathArg(path: unknown): { bytes: Buffer | undefined; shown: string | undefined } {
  if (path === undefined) return { bytes: undefined, shown: undefined };
  const resolved = resolveFile(path, 'path');
  if (resolved.path === undefined) return { bytes: Buffer.from(`/proc/self/fd/${resolved.fd}`), shown: `/proc/self/fd/${resolved.fd}` };
  return { bytes: resolved.path, shown: resolved.path.toString() };
}

/**
 * Reports which zero-copy mechanisms this kernel supports and, given a path (file or directory), what
 * its filesystem supports: reflink, copy_file_range, O_DIRECT and its alignment. Filesystem probes use
 * unnamed temporary files (O_TMPFILE) and leave nothing behind. Outside Linux every mechanism is
 * reported unavailable (`false`), and a path's filesystem type as 'unknown'.
 *
 * @example
 * const caps = await capabilities('/var/lib/data');
 * if (caps.filesystem?.reflink) console.log('copies here are instant');
 */
export async function capabilities(path?: string | Buffer | URL): Promise<Capabilities> {
  const { bytes, shown } = pathArg(path);
  if (!linuxPaths) {
    const st = bytes && (await new Promise<Stats>((res, rej) => stat(bytes, (e, s) => (e ? rej(e) : res(s)))));
    return portable(native.capabilitiesSync(undefined), shown, st);
  }
  return convert(await native.capabilities(bytes), shown);
}

/** Synchronous {@link capabilities}. */
export function capabilitiesSync(path?: string | Buffer | URL): Capabilities {
  const { bytes, shown } = pathArg(path);
  if (!linuxPaths) return portable(native.capabilitiesSync(undefined), shown, bytes && statSync(bytes));
  return convert(native.capabilitiesSync(bytes), shown);
}
