//! `watchStart` / `watchAdd` / `watchRemove` / `watchPending` / `watchEvents` and the `IN_*` masks:
//! [`crate::sys::watch`], one watcher per JS thread (main thread and each worker).
//!
//! The watcher lives in a thread-local, created by `watchStart` on the calling thread and dropped
//! (descriptor closed, table slot freed) by an env cleanup hook when that thread's environment is
//! torn down. `watchPending` is a thread-local read and an atomic load: no system call, no allocation.
//!
//! Outside Linux the functions exist and fail softly (`watchStart` → false, `watchAdd` → -ENOSYS,
//! `watchPending` → false, `watchEvents` → []), so the TypeScript layer needs no platform check.

use napi::Env;
use napi_derive::napi;

/// One inotify event: `wd` -1 for `IN_Q_OVERFLOW`; `name` is the entry's name for an event inside a
/// watched directory (lossily decoded if not UTF-8), else empty.
#[napi(object)]
pub struct WatchEvent {
    pub wd: i32,
    pub mask: u32,
    pub name: String,
}

/// inotify's event bits (the Linux ABI; the same numbers on every architecture).
#[napi]
pub const IN_MODIFY: u32 = 0x2;
#[napi]
pub const IN_ATTRIB: u32 = 0x4;
#[napi]
pub const IN_MOVED_FROM: u32 = 0x40;
#[napi]
pub const IN_MOVED_TO: u32 = 0x80;
#[napi]
pub const IN_CREATE: u32 = 0x100;
#[napi]
pub const IN_DELETE: u32 = 0x200;
#[napi]
pub const IN_DELETE_SELF: u32 = 0x400;
#[napi]
pub const IN_MOVE_SELF: u32 = 0x800;
#[napi]
pub const IN_Q_OVERFLOW: u32 = 0x4000;
#[napi]
pub const IN_IGNORED: u32 = 0x8000;
#[napi]
pub const IN_ISDIR: u32 = 0x4000_0000;

/// Starts this thread's watcher: an inotify instance whose events set a flag before the writer's
/// system call returns. Idempotent per thread. False where that cannot be guaranteed: not Linux, no
/// free realtime signal, the signal blocked on this thread or handled by someone else, no descriptor,
/// or 64 threads watching already.
#[napi(js_name = "watchStart")]
pub fn watch_start(env: Env) -> bool {
    imp::start(&env)
}

/// Watches `path` (a directory when `directory`: entries created, deleted, renamed; the directory
/// itself deleted, moved, chmod-ed. A file: written, truncated, chmod-ed, deleted, moved). Symlinks
/// are not followed. Returns the watch descriptor (>= 0) or -errno: -EBADF (9) without `watchStart`
/// on this thread, -ENOENT, -ENOTDIR, -ENOSPC (the watch limit), -ENOSYS outside Linux.
#[napi(js_name = "watchAdd")]
pub fn watch_add(path: String, directory: bool) -> i32 {
    imp::add(&path, directory)
}

/// Removes a watch; one already gone (its file deleted) is ignored.
#[napi(js_name = "watchRemove")]
pub fn watch_remove(wd: i32) {
    imp::remove(wd)
}

/// Whether an event may have arrived since the last `watchEvents()` on this thread. No system call.
#[napi(js_name = "watchPending")]
pub fn watch_pending() -> bool {
    imp::pending()
}

/// Clears the flag, then drains this thread's queued events ([] if none or no watcher).
#[napi(js_name = "watchEvents")]
pub fn watch_events() -> Vec<WatchEvent> {
    imp::events()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::cell::RefCell;
    use std::path::Path;

    use napi::Env;

    use super::WatchEvent;
    use crate::sys::watch::Watcher;

    thread_local! {
        static WATCHER: RefCell<Option<Watcher>> = const { RefCell::new(None) };
    }

    pub(super) fn start(env: &Env) -> bool {
        if WATCHER.with_borrow(Option::is_some) {
            return true;
        }
        let Ok(watcher) = Watcher::new() else {
            return false;
        };
        // Worker exit: close the descriptor and free the slot with the environment, not later.
        if env
            .add_env_cleanup_hook((), |()| {
                let _ = WATCHER.try_with(|w| w.borrow_mut().take());
            })
            .is_err()
        {
            return false;
        }
        WATCHER.with_borrow_mut(|w| *w = Some(watcher));
        true
    }

    pub(super) fn add(path: &str, directory: bool) -> i32 {
        WATCHER.with_borrow(|w| match w {
            None => -libc::EBADF,
            Some(w) => match w.add(Path::new(path), directory) {
                Ok(wd) => wd,
                Err(e) => -(e.errno() as i32),
            },
        })
    }

    pub(super) fn remove(wd: i32) {
        WATCHER.with_borrow(|w| {
            if let Some(w) = w {
                let _ = w.remove(wd);
            }
        })
    }

    #[inline]
    pub(super) fn pending() -> bool {
        WATCHER.with_borrow(|w| w.as_ref().is_some_and(Watcher::pending))
    }

    pub(super) fn events() -> Vec<WatchEvent> {
        let events = WATCHER.with_borrow(|w| w.as_ref().map(Watcher::events));
        match events {
            Some(Ok(events)) => events
                .into_iter()
                .map(|e| WatchEvent {
                    wd: e.wd,
                    mask: e.mask,
                    name: e.name.to_string_lossy().into_owned(),
                })
                .collect(),
            // A read error on an inotify descriptor we own has no cause to report (EFAULT/EINVAL
            // would be our bug); say "something changed" with an overflow record instead.
            Some(Err(_)) => vec![WatchEvent {
                wd: -1,
                mask: super::IN_Q_OVERFLOW,
                name: String::new(),
            }],
            None => Vec::new(),
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used, clippy::expect_used)]

        use crate::sys::watch;

        #[test]
        fn the_exported_masks_are_the_kernel_abi() {
            let ours = [
                (super::super::IN_MODIFY, watch::IN_MODIFY),
                (super::super::IN_ATTRIB, watch::IN_ATTRIB),
                (super::super::IN_MOVED_FROM, watch::IN_MOVED_FROM),
                (super::super::IN_MOVED_TO, watch::IN_MOVED_TO),
                (super::super::IN_CREATE, watch::IN_CREATE),
                (super::super::IN_DELETE, watch::IN_DELETE),
                (super::super::IN_DELETE_SELF, watch::IN_DELETE_SELF),
                (super::super::IN_MOVE_SELF, watch::IN_MOVE_SELF),
                (super::super::IN_Q_OVERFLOW, watch::IN_Q_OVERFLOW),
                (super::super::IN_IGNORED, watch::IN_IGNORED),
                (super::super::IN_ISDIR, watch::IN_ISDIR),
            ];
            for (exported, kernel) in ours {
                assert_eq!(exported, kernel);
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use napi::Env;

    use super::WatchEvent;

    /// Linux's ENOSYS, whatever this platform numbers it: the TS layer only tests for < 0.
    const ENOSYS: i32 = 38;

    pub(super) fn start(_env: &Env) -> bool {
        false
    }
    pub(super) fn add(_path: &str, _directory: bool) -> i32 {
        -ENOSYS
    }
    pub(super) fn remove(_wd: i32) {}
    pub(super) fn pending() -> bool {
        false
    }
    pub(super) fn events() -> Vec<WatchEvent> {
        Vec::new()
    }
}
