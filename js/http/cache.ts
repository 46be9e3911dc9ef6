/**
 * A small-file content cache: bodies under INLINE_BODY_LIMIT kept in memory, so a request for a
 * warm small file costs no thread-pool round trip (open, fstat, read, close).
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
 * Bounded in entries and bytes; eviction takes the oldest entry not hit since eviction last passed it (second chance).
 */
import { statSync, type Stats } from 'node:fs';
import { join } from 'node:path';

import type { Opened } from './target.js';
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
}

export interface CacheLimits {
  /** Most files held. Default 1024. */
  entries: number;
  /** Most body bytes held. Default 32 MiB. */
  bytes: number;
}

export const DEFAULT_CACHE: CacheLimits = { entries: 1024, bytes: 32 * 1024 * 1024 };

const entries = new Map<string, Entry>();
let bytesHeld = 0;

const STAT_OPTIONS = { throwIfNoEntry: false } as const;

const keyOf = (root: string | undefined, path: string): string => (root === undefined ? `\0${path}` : `${root}\0${path}`);

function drop(key: string, e: Entry): void {
  if (entries.get(key) === e) {
    entries.delete(key);
    bytesHeld -= e.size;
  }
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
    return { opened: e.opened };
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
  return { opened: e.opened };
}

/** Keeps a freshly read small file, if it is settled and fits. */
export function store(root: string | undefined, path: string, opened: Opened, limits: CacheLimits): void {
  const body = opened.body;
  if (!body || opened.kind !== 'file' || body.length !== opened.size) return;
  if (Date.now() - opened.stats.ctimeMs < SETTLE_MS || Date.now() - opened.stats.mtimeMs < SETTLE_MS) return;
  if (body.length > limits.bytes || limits.entries < 1) return;
  const key = keyOf(root, path);
  const old = entries.get(key);
  if (old) drop(key, old);
  const st = opened.stats;
  const full = root === undefined ? path : join(root, path);
  const e: Entry = { key, opened: { ...opened, cached: true, memo: {} }, watched: false, full, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, used: false };
  if (watchFile(full, e)) {
    e.watched = true;
    // Still the file that was read, now that changes make events.
    const now = statOf(full);
    if (!now || !same(now, e) || !now.isFile()) {
      unwatch(e);
      return;
    }
  }
  entries.set(key, e);
  bytesHeld += body.length;
  // Oldest first; one used since the last pass goes to the back once. Two passes at most: the second finds every flag cleared.
  for (const [k, e] of entries) {
    if (entries.size <= limits.entries && bytesHeld <= limits.bytes) break;
    if (k === key) continue;
    if (e.used) {
      e.used = false;
      entries.delete(k);
      entries.set(k, e);
    } else {
      drop(k, e);
    }
  }
}

/** What the small-file cache holds: see {@link fileCacheStats}. */
export interface FileCacheStats {
  /** Files held. */
  entries: number;
  /** Body bytes held. */
  bytes: number;
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
  return { entries: entries.size, bytes: bytesHeld, watched };
}

/** Empties the small-file cache of this thread (and gives up its watches). Never needed for freshness. */
export function clearFileCache(): void {
  for (const e of [...entries.values()]) drop(e.key, e);
  entries.clear();
  bytesHeld = 0;
}

function statOf(path: string): Stats | undefined {
  try {
    return statSync(path, STAT_OPTIONS);
  } catch {
    return undefined;
  }
}
