/**
 * Change notification for the small-file cache (cache.ts): inotify watches on a cached file and on
 * every directory from '/' down to it, set up so that the kernel signals the JS thread inside the
 * writer's own syscall (crates/zerocopy/src/sys/watch.rs). The signal handler only raises a flag;
 * a request reads the flag — no syscall — and only when it is up are the events read and the
 * entries they touch dropped.
 *
 * Why that is exact: a signal pending for a thread is delivered whenever the thread returns from
 * the kernel, and the JS thread has to make a syscall (epoll_wait, read) to receive any request
 * sent after a write, a rename or an unlink completed. So the flag is up before such a request is
 * looked at.
 *
 * Used only where every change makes an event here:
 * - the path is absolute and has no symlink in it (each directory is the one its name says, and a
 *   rename of any of them is an event in its parent);
 * - every directory on the way, and the file, are on local filesystems (ext2/3/4, XFS, Btrfs, tmpfs,
 *   F2FS, ZFS, bcachefs, overlayfs, ramfs): a change another NFS client makes gives no event here;
 * - the runtime and thread allow it (watchStart's self-test: a free realtime signal, not blocked).
 *
 * Anywhere else the entry is revalidated by a stat of its path on every request, as before. Not
 * seen by either way: writes through a shared mmap until the kernel marks the file modified; by this
 * one also a filesystem mounted over a directory on the way (mounting makes no inotify event).
 */
import { realpathSync, statfsSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';

import { linuxPaths, native } from '../native.js';

/** Whatever holds watches (a cache entry); told apart by identity. */
export type Owner = object;

/** The watches one owner holds: its file's, then each directory's, with the name below it on the way. */
export interface Watched {
  wds: number[];
  /** For each directory's watch, the name of the entry on the way down (absent for the file's watch). */
  childOf: Map<number, string>;
}


/** statfs f_type of filesystems whose every change makes an inotify event on this machine. */
const LOCAL_FILESYSTEMS = new Set([
  0xef53, // ext2/3/4
  0x58465342, // XFS
  0x9123683e, // Btrfs
  0x01021994, // tmpfs
  0xf2f52010, // F2FS
  0x2fc12fc1, // ZFS
  0xca451a4e, // bcachefs
  0x794c7630, // overlayfs
  0x858458f6, // ramfs
]);

/** undefined: not tried yet; false: not available here (stat revalidation then). */
let started: boolean | undefined;

function start(): boolean {
  if (started === undefined) {
    started = false;
    if (linuxPaths && typeof statfsSync === 'function') {
      try {
        started = native.watchStart();
      } catch {
        started = false;
      }
    }
  }
  return started;
}

const byWd = new Map<number, Set<Owner>>();
const watchedBy = new Map<Owner, Watched>();

function localFilesystem(path: string): boolean {
  try {
    return LOCAL_FILESYSTEMS.has(Number(statfsSync(path).type));
  } catch {
    return false;
  }
}

function realpathIs(path: string): boolean {
  try {
    return realpathSync(path) === path;
  } catch {
    return false;
  }
}

/** '/a/b/c' → ['/a/b', '/a', '/']. */
function ancestors(path: string): string[] {
  const dirs: string[] = [];
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    dirs.push(dir);
    if (dirname(dir) === dir) return dirs;
  }
}

/**
 * Watches the file at `full` (and the directories above it) for `owner`. Returns false where
 * changes cannot all be seen (see the module comment): the owner must then revalidate by stat. The
 * caller checks afterwards that the file is still the one it read: a change between its read and
 * these watches makes no event.
 */
export function watchFile(full: string, owner: Owner): boolean {
  if (!isAbsolute(full) || resolve(full) !== full || !start()) return false;
  const dirs = ancestors(full);
  if (!realpathIs(full) || ![full, ...dirs].every(localFilesystem)) return false;
  const watched: Watched = { wds: [], childOf: new Map() };
  const undo = (): false => {
    for (const wd of watched.wds) release(wd, owner);
    return false;
  };
  const fileWd = native.watchAdd(full, false);
  if (fileWd < 0) return false;
  hold(fileWd, owner, watched);
  let below = full;
  for (const dir of dirs) {
    const wd = native.watchAdd(dir, true);
    // A directory met twice on the way (a bind mount inside itself) cannot say which entry an event is for.
    if (wd < 0 || watched.wds.includes(wd)) return undo();
    hold(wd, owner, watched);
    watched.childOf.set(wd, basename(below));
    below = dir;
  }
  // A symlink put in place before the watches were: not seen by them.
  if (!realpathIs(full)) return undo();
  watchedBy.set(owner, watched);
  return true;
}

function hold(wd: number, owner: Owner, watched: Watched): void {
  watched.wds.push(wd);
  let owners = byWd.get(wd);
  if (!owners) {
    owners = new Set();
    byWd.set(wd, owners);
  }
  owners.add(owner);
}

function release(wd: number, owner: Owner): void {
  const owners = byWd.get(wd);
  if (!owners) return;
  owners.delete(owner);
  if (owners.size === 0) {
    byWd.delete(wd);
    native.watchRemove(wd);
  }
}

/** Gives up the owner's watches (those no other owner holds are removed). */
export function unwatch(owner: Owner): void {
  const watched = watchedBy.get(owner);
  if (!watched) return;
  watchedBy.delete(owner);
  for (const wd of watched.wds) release(wd, owner);
}

/**
 * Calls `invalidate` for every owner a change since the last call touched (all of them if the
 * kernel's event queue overflowed). Costs one napi call and no syscall when nothing changed.
 */
export function changes(invalidate: (owner: Owner) => void): void {
  if (!started || !native.watchPending()) return;
  for (const ev of native.watchEvents()) {
    if (ev.wd < 0 || (ev.mask & native.IN_Q_OVERFLOW) !== 0) {
      for (const owner of [...watchedBy.keys()]) invalidate(owner);
      continue;
    }
    const owners = byWd.get(ev.wd);
    if (!owners) continue;
    for (const owner of [...owners]) {
      const child = watchedBy.get(owner)?.childOf.get(ev.wd);
      // The file's own watch, the directory itself (name ''), or the entry on the way down.
      if (child === undefined || ev.name === '' || ev.name === child) invalidate(owner);
    }
  }
}

/** For tests: how many owners rely on watches. */
export function watchedCount(): number {
  return watchedBy.size;
}
