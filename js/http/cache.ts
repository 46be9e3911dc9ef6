/**
 * A small-file content cache: bodies under INLINE_BODY_LIMIT kept in memory, so a request for a
 * warm small file costs one `stat(2)` on the JS thread instead of a thread-pool round trip (open,
 * fstat, read, close).
 *
 * It never serves bytes the file does not hold when the request arrives:
 *
 * - every request stats the path (synchronously, when it arrives) and uses the entry only if
 *   (dev, ino, size, mtime, ctime) are unchanged: a file rewritten in place, truncated, renamed over
 *   or deleted misses (a rename gives another inode; any write or truncate moves mtime and ctime);
 * - a file whose ctime is less than {@link SETTLE_MS} old is served but not cached: filesystem
 *   timestamps have a coarse granularity (a jiffy), so two writes within one tick could leave equal
 *   times behind — a file changed after it is cached has a ctime at least that much newer.
 *
 * Entries were read through openat2 RESOLVE_BENEATH, so only bytes from beneath root are held. The
 * revalidating stat follows the path as it is now: if it leads elsewhere, the identity differs and
 * the request takes the normal (safe) open. Writes through a shared mmap update mtime only when the
 * kernel notices them (page fault or writeback); such a writer is not covered.
 *
 * Bounded in entries and bytes; least recently used entries go first.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';

import type { Opened } from './target.js';

/** Files changed more recently than this are not cached (see the module comment). */
export const SETTLE_MS = 1000;

interface Entry {
  opened: Opened;
  /** dev, ino, size, mtimeMs, ctimeMs as stat gives them. */
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
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

const keyOf = (root: string | undefined, path: string): string => (root === undefined ? `\0${path}` : `${root}\0${path}`);

function drop(key: string, e: Entry): void {
  entries.delete(key);
  bytesHeld -= e.size;
}

export type Lookup = { opened: Opened } | { missing: true } | undefined;

/**
 * The cached file at `path` if it is still the same file; `{ missing: true }` if nothing is there
 * now (stat says ENOENT); undefined to open it the normal way.
 */
export function lookup(root: string | undefined, path: string): Lookup {
  const full = root === undefined ? path : join(root, path);
  let st;
  try {
    st = statSync(full, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
  const key = keyOf(root, path);
  const e = entries.get(key);
  if (st === undefined) {
    if (e) drop(key, e);
    return { missing: true };
  }
  if (!e) return undefined;
  if (st.ino !== e.ino || st.dev !== e.dev || st.size !== e.size || st.mtimeMs !== e.mtimeMs || st.ctimeMs !== e.ctimeMs || !st.isFile()) {
    drop(key, e);
    return undefined;
  }
  // Most recently used last.
  entries.delete(key);
  entries.set(key, e);
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
  entries.set(key, { opened: { ...opened, cached: true }, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs });
  bytesHeld += body.length;
  for (const [k, e] of entries) {
    if (entries.size <= limits.entries && bytesHeld <= limits.bytes) break;
    drop(k, e);
  }
}

/** For tests: entries and bytes held. */
export function cacheSize(): { entries: number; bytes: number } {
  return { entries: entries.size, bytes: bytesHeld };
}

/** Empties the cache. */
export function clearCache(): void {
  entries.clear();
  bytesHeld = 0;
}
