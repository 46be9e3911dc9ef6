/**
 * The file cache: small files' bodies (under INLINE_BODY_LIMIT) kept in memory, and large files kept
 * open (an fd, as nginx's open_file_cache), so a request for a warm file costs no thread-pool round
 * trip (open, fstat, read, close). A kept fd is shared: each request takes a lease (target.ts), and
 * an fd the cache drops closes when its last lease is given back, never under a request.
 *
 * It never serves bytes the file does not hold when the request arrives. Each entry is kept fresh
 * one of two ways:
 *
 * - watched (watch.ts): inotify watches on the file and every directory above it, which the kernel
 *   signals synchronously; a request checks a flag, with no syscall, and drops what changed. Used
 *   where every change makes an event: an absolute path without symlinks, on local filesystems,
 *   on Linux where the signal can be had;
 * - otherwise revalidated: every request stats the path and uses the entry only if (dev, ino, size,
 *   mtime, ctime) are unchanged: a file rewritten in place, truncated, renamed over or deleted misses
 *   (a rename gives another inode; any write or truncate moves mtime and ctime).
 *
 * Either way a file whose ctime or mtime is less than {@link SETTLE_MS} old is served but not cached:
 * filesystem timestamps have a coarse granularity (a jiffy), so a write in the same tick as the read
 * could leave equal times behind. For a watched entry, the stat after the watches are placed must
 * still match the read's: a change between the read and the watches makes no event, but moves the
 * times of a file that had settled.
 *
 * Entries were read through openat2 RESOLVE_BENEATH, so only bytes from beneath root are held. The
 * revalidating stat follows the path as it is now: if it leads elsewhere, the identity differs and
 * the request takes the normal (safe) open. Writes through a shared mmap update mtime only when the
 * kernel notices them (page fault or writeback); such a writer is not covered.
 *
 * Bounded in entries, body bytes and open fds; eviction takes the oldest entry not hit since eviction last passed it (second chance).
 */
import { statSync, type Stats } from 'node:fs';
import { join } from 'node:path';

import { dropShared, lease, type Opened, type SharedFd } from './target.js';
import { changes, unwatch, watchFile, type Owner } from './watch.js';

/** Files changed more recently than this are not cached (see the module comment). */
export const SETTLE_MS = 1000;

interface Entry {
  key: string;
  opened: Opened;
  /** Kept fresh by watches (no stat per request). */
  watched: boolean;
  /** The path stat revalidates: root joined with the path. */
  full: string;
  /** dev, ino, size, mtimeMs, ctimeMs as stat gives them. */
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  /** Hit since eviction last passed it (second-chance eviction, instead of reordering on every hit). */
  used: boolean;
  /** A large file's fd, kept open (no body): each request takes a lease on it. */
  shared: SharedFd | undefined;
}

export interface CacheLimits {
  /** Most files held. Default 1024. */
  entries: number;
  /** Most body bytes held. Default 32 MiB. */
  bytes: number;
  /** Most large files held open (their fds; no bytes). Default 64; 0 turns the open-file cache off. */
  fds: number;
}

export const DEFAULT_CACHE: CacheLimits = { entries: 1024, bytes: 32 * 1024 * 1024, fds: 64 };

const entries = new Map<string, Entry>();
let bytesHeld = 0;
let fdsHeld = 0;
let hits = 0;

const STAT_OPTIONS = { throwIfNoEntry: false } as const;

const keyOf = (root: string | undefined, path: string): string => (root === undefined ? `\0${path}` : `${root}\0${path}`);

function drop(key: string, e: Entry): void {
  if (entries.get(key) === e) {
    entries.delete(key);
    if (e.shared) fdsHeld--;
    else bytesHeld -= e.size;
  }
  if (e.shared) dropShared(e.shared);
  if (e.watched) unwatch(e);
}

const dropChanged = (owner: Owner): void => {
  const e = owner as Entry;
  drop(e.key, e);
};

const same = (st: { dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number }, e: Entry): boolean =>
  st.ino === e.ino && st.dev === e.dev && st.size === e.size && st.mtimeMs === e.mtimeMs && st.ctimeMs === e.ctimeMs;

export type Lookup = { opened: Opened } | { missing: true } | undefined;

/**
 * The cached file at `path` if it is still the same file; `{ missing: true }` if nothing is there
 * now (stat says ENOENT); undefined to open it the normal way.
 */
export function lookup(root: string | undefined, path: string): Lookup {
  // What changed since the last request (a flag read; events are read only when it is up).
  changes(dropChanged);
  const key = keyOf(root, path);
  const e = entries.get(key);
  // Nothing cached: the normal open finds out what is there.
  if (!e) return undefined;
  if (e.watched) {
    e.used = true;
    return { opened: hit(e) };
  }
  let st;
  try {
    st = statSync(e.full, STAT_OPTIONS);
  } catch {
    drop(key, e);
    return undefined;
  }
  if (st === undefined) {
    drop(key, e);
    return { missing: true };
  }
  if (!same(st, e) || !st.isFile()) {
    drop(key, e);
    return undefined;
  }
  e.used = true;
  return { opened: hit(e) };
}

/** A request's view of an entry: a body entry as it is; a large file's with a lease on its fd. */
const forRequest = (e: Entry): Opened => (e.shared ? { ...e.opened, lease: lease(e.shared) } : e.opened);

function hit(e: Entry): Opened {
  hits++;
  return forRequest(e);
}

/**
 * Keeps a freshly opened file, if it is settled and fits: a small one's body, a large one's fd.
 * Returns what the request goes on with (for a large file, the cache's, with a lease: the fd is the
 * cache's from now on), or undefined when nothing was kept and `opened` is still the request's own.
 */
export function store(root: string | undefined, path: string, opened: Opened, limits: CacheLimits): Opened | undefined {
  if (opened.kind !== 'file') return undefined;
  const body = opened.body;
  const large = !body;
  if (large ? opened.fd < 0 || limits.fds < 1 : body.length !== opened.size || body.length > limits.bytes) return undefined;
  if (Date.now() - opened.stats.ctimeMs < SETTLE_MS || Date.now() - opened.stats.mtimeMs < SETTLE_MS) return undefined;
  if (limits.entries < 1) return undefined;
  const key = keyOf(root, path);
  const old = entries.get(key);
  if (old) drop(key, old);
  const st = opened.stats;
  const full = root === undefined ? path : join(root, path);
  const shared: SharedFd | undefined = large ? { fd: opened.fd, users: 0, dropped: false } : undefined;
  const e: Entry = {
    key,
    opened: large ? { ...opened, memo: {} } : { ...opened, cached: true, memo: {} },
    watched: false,
    full,
    dev: st.dev,
    ino: st.ino,
    size: st.size,
    mtimeMs: st.mtimeMs,
    ctimeMs: st.ctimeMs,
    used: false,
    shared,
  };
  if (watchFile(full, e)) {
    e.watched = true;
    // Still the file that was read, now that changes make events.
    const now = statOf(full);
    if (!now || !same(now, e) || !now.isFile()) {
      unwatch(e);
      // Not kept: the fd is still the request's alone.
      return undefined;
    }
  }
  entries.set(key, e);
  if (shared) fdsHeld++;
  else bytesHeld += (body as Buffer).length;
  // The request's hold, taken before eviction could drop the entry (it never drops this one).
  const mine = shared ? forRequest(e) : undefined;
  // Oldest first; one used since the last pass goes to the back once. Two passes at most: the second
  // finds every flag cleared. Too many fds evicts large files only.
  for (const [k, v] of entries) {
    const over = entries.size > limits.entries || bytesHeld > limits.bytes;
    if (!over && fdsHeld <= limits.fds) break;
    if (k === key || (!over && !v.shared)) continue;
    if (v.used) {
      v.used = false;
      entries.delete(k);
      entries.set(k, v);
    } else {
      drop(k, v);
    }
  }
  return mine;
}

/** What the small-file cache holds: see {@link fileCacheStats}. */
export interface FileCacheStats {
  /** Files held. */
  entries: number;
  /** Body bytes held. */
  bytes: number;
  /** Of the entries, large files held open (an fd each, no bytes). */
  fds: number;
  /** Requests answered from an entry (a body or an open fd) since the process started or the cache was cleared. */
  hits: number;
  /** Of the entries, those kept fresh by inotify watches; the others are revalidated by a stat per request. */
  watched: number;
}

/**
 * What serveFile's and serveStatic's small-file cache holds in this thread: entries, bytes, and how
 * many are kept fresh by watches (no syscall per request) rather than a stat of the path.
 */
export function fileCacheStats(): FileCacheStats {
  let watched = 0;
  for (const e of entries.values()) if (e.watched) watched++;
  return { entries: entries.size, bytes: bytesHeld, fds: fdsHeld, watched, hits };
}

/** Empties the small-file cache of this thread (and gives up its watches). Never needed for freshness. */
export function clearFileCache(): void {
  for (const e of [...entries.values()]) drop(e.key, e);
  entries.clear();
  bytesHeld = 0;
  fdsHeld = 0;
  hits = 0;
}

function statOf(path: string): Stats | undefined {
  try {
    return statSync(path, STAT_OPTIONS);
  } catch {
    return undefined;
  }
}
