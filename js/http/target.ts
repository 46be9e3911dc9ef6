/**
 * Request target and root safety: from `req.url` to a path beneath root, and from a path to an open
 * file (openat2 RESOLVE_BENEATH on Linux). Nothing here speaks HTTP beyond status codes.
 */
import { constants as fsConstants, fstat, open } from 'node:fs';
import { posix } from 'node:path';

import { closeQuietly } from '../fdio.js';
import type { ErrnoError } from '../errors.js';
import { linuxPaths, native } from '../native.js';
import { requireLinux } from '../platform.js';

/** A response the engine gives instead of a file: 400/403/404/…, with a short reason. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /**
     * The absolute path behind a 404 (send hands next(err) the fs error for it; made only then), or
     * headers the status goes with.
     */
    readonly detail?: { missingPath?: string; headers?: Record<string, string> },
  ) {
    super(message);
  }
}

export const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  412: 'Precondition Failed',
  416: 'Range Not Satisfiable',
  500: 'Internal Server Error',
};

/** Maps a failed open to a status: never reveal more than "not found" / "forbidden". */
export function openStatus(err: unknown): number {
  switch ((err as ErrnoError).code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'ENAMETOOLONG':
    case 'ELOOP':
      return 404;
    case 'EXDEV': // a symlink or path leading outside root
    case 'EACCES':
    case 'EPERM':
      return 403;
    default:
      return 500;
  }
}

/** Whether a failed open means "nothing there" (so an `extensions` fallback may be tried). */
export function isMissing(err: unknown): boolean {
  const code = (err as ErrnoError).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG';
}

export interface Target {
  /** Filesystem path relative to root (with root), or the trusted path (without). */
  readonly path: string;
  /** The URL path ends with '/'. */
  readonly directoryUrl: boolean;
}

/**
 * The path of a request target as sent, without query: not normalised by a URL parser, so that
 * `..` and `%2e%2e` are seen (and refused) rather than silently resolved.
 */
export function rawPathname(url: string | undefined): string {
  const target = url ?? '/';
  const end = target.search(/[?#]/);
  return end < 0 ? target : target.slice(0, end);
}

export type Dotfiles = 'ignore' | 'deny' | 'allow';

/**
 * Decodes and checks a URL path for serving beneath root. A `..` segment is refused (403), or with
 * `resolveDots` (send's rule, serveStatic's) resolved when it stays beneath root.
 */
export function urlTarget(urlPath: string, dotfiles: Dotfiles, resolveDots = false): Target {
  if (urlPath.length > MEMO_PATH_LIMIT) return decodeTarget(urlPath, dotfiles, resolveDots);
  const memo = (resolveDots ? resolvedTargets : targets)[dotfiles];
  let known = memo.get(urlPath);
  if (known === undefined) {
    known = decodeTarget(urlPath, dotfiles, resolveDots);
    if (memo.size >= MEMO_ENTRIES) memo.clear();
    memo.set(urlPath, known);
  }
  return known;
}

/**
 * Decoded targets by URL path (a pure function of its arguments and the two options), bounded in
 * entries and key length. Shared: a Target is never modified (serve() makes its own when it differs).
 */
const memoOf = (): Record<Dotfiles, Map<string, Target>> => ({ ignore: new Map(), deny: new Map(), allow: new Map() });
const targets = memoOf();
const resolvedTargets = memoOf();
const MEMO_ENTRIES = 1024;
const MEMO_PATH_LIMIT = 512;

function decodeTarget(urlPath: string, dotfiles: Dotfiles, resolveDots: boolean): Target {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    throw new HttpError(400, 'Bad Request');
  }
  if (decoded.includes('\0')) throw new HttpError(400, 'Bad Request');
  if (resolveDots) {
    const inside = posix.normalize(`./${decoded}`);
    if (inside === '..' || inside.startsWith('../')) throw new HttpError(403, 'Forbidden');
  } else if (decoded.split('/').includes('..')) {
    throw new HttpError(403, 'Forbidden');
  }
  const normalized = posix.normalize(`/${decoded}`);
  // After normalisation the path is absolute and free of '..': make it relative to root.
  const relative = normalized.replace(/^\/+/, '');
  if (dotfiles !== 'allow' && relative.split('/').some((seg) => seg.startsWith('.') && seg.length > 1)) {
    throw dotfiles === 'deny' ? new HttpError(403, 'Forbidden') : new HttpError(404, 'Not Found');
  }
  return { path: relative === '' ? '.' : relative, directoryUrl: decoded.endsWith('/') };
}

/** A file's identity and times, as validators and the cache need them. */
export interface FileStat {
  size: number;
  dev: number;
  ino: number;
  mtime: Date;
  mtimeMs: number;
  /** mtime as "seconds.nanoseconds" digits, exact (for strong ETags). */
  mtimeNs: string;
  ctimeMs: number;
  ctimeNs: string;
}

/** What `openTarget` found: the file's stat, and its fd or (under INLINE_BODY_LIMIT) its whole body. */
export interface Opened {
  /** The open fd, or -1 when `body` holds the whole file. */
  fd: number;
  kind: string;
  size: number;
  stats: FileStat;
  body: Buffer | undefined;
  /** The body came from the small-file cache. */
  cached?: true;
  /** Header values derived from `stats`, kept with a cache entry (whose stats never change). */
  memo?: Record<string, string>;
  /** The fd is the open-file cache's: this request's hold on it, given back by {@link release}. */
  lease?: Lease;
}

/**
 * An fd the open-file cache keeps open (cache.ts), shared by the requests sending from it. Closed
 * once, when the cache has let it go (`dropped`) and no request holds it any more.
 */
export interface SharedFd {
  readonly fd: number;
  users: number;
  dropped: boolean;
}

/** One request's hold on a {@link SharedFd}: given back once, however often release() is called. */
export interface Lease {
  readonly shared: SharedFd;
  released: boolean;
}

/** Takes a hold on `shared` for one request. */
export function lease(shared: SharedFd): Lease {
  shared.users++;
  return { shared, released: false };
}

/** Lets the cache's hold go: the fd closes now if no request holds it, else when the last one lets go. */
export function dropShared(shared: SharedFd): void {
  if (shared.dropped) return;
  shared.dropped = true;
  if (shared.users === 0) closeQuietly(shared.fd);
}

/** Read-only and non-blocking: a FIFO without a writer must not hang the open (it is then a 404). */
const PORTABLE_OPEN = fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0);

async function openPortable(path: string): Promise<Opened> {
  const fd = await new Promise<number>((ok, fail) => open(path, PORTABLE_OPEN, (err, n) => (err ? fail(err) : ok(n))));
  try {
    const st = await new Promise<import('node:fs').BigIntStats>((ok, fail) =>
      fstat(fd, { bigint: true }, (err, s) => (err ? fail(err) : ok(s))),
    );
    const size = Number(st.size);
    return {
      fd,
      kind: st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'other',
      size,
      stats: {
        size,
        dev: Number(st.dev),
        ino: Number(st.ino),
        mtime: new Date(Number(st.mtimeMs)),
        mtimeMs: Number(st.mtimeNs) / 1e6,
        mtimeNs: String(st.mtimeNs),
        ctimeMs: Number(st.ctimeNs) / 1e6,
        ctimeNs: String(st.ctimeNs),
      },
      body: undefined,
    };
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
}

const ns = (sec: number, nsec: number): string => `${sec}${String(nsec).padStart(9, '0')}`;

/**
 * Opens, stats and (small files) reads the file in one pool round trip: beneath root with openat2
 * RESOLVE_BENEATH, or the trusted path as is.
 */
export async function openTarget(root: string | undefined, path: string, inlineLimit: number): Promise<Opened> {
  if (!linuxPaths) {
    // No portable equivalent of openat2's RESOLVE_BENEATH: a path check alone would race symlink swaps.
    if (root !== undefined) requireLinux('serveFile with root (openat2 RESOLVE_BENEATH)');
    return await openPortable(path);
  }
  const o = await native.openFile(root === undefined ? undefined : Buffer.from(root), Buffer.from(path), inlineLimit);
  return {
    fd: o.fd,
    kind: o.kind,
    size: o.size,
    stats: {
      size: o.size,
      dev: o.dev,
      ino: o.ino,
      mtime: new Date(o.mtimeMs),
      mtimeMs: o.mtimeMs,
      mtimeNs: ns(o.mtimeSec, o.mtimeNsec),
      ctimeMs: o.ctimeMs,
      ctimeNs: ns(o.ctimeSec, o.ctimeNsec),
    },
    body: o.body,
  };
}

/** Done with what openTarget (or the cache) gave: closes its fd, or gives back its lease on the cache's. */
export function release(opened: Opened | undefined): void {
  if (!opened) return;
  const held = opened.lease;
  if (held) {
    if (held.released) return;
    held.released = true;
    const shared = held.shared;
    shared.users--;
    if (shared.users === 0 && shared.dropped) closeQuietly(shared.fd);
    return;
  }
  if (opened.fd >= 0) closeQuietly(opened.fd);
}
