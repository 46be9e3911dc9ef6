//! Counts of the data-moving system calls this process made through [`crate::sys`], so benchmarks
//! can show how many calls each path takes (the seed's "syscalls per chunk", measured).
//!
//! Every attempt counts, including ones that answered `EAGAIN` or were retried after `EINTR`: they
//! are system calls made all the same. Relaxed atomics: a counter costs a few nanoseconds.

use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;

/// The families counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syscall {
    /// `read`/`pread`.
    Read,
    /// `write`/`pwrite`.
    Write,
    /// `sendfile`.
    Sendfile,
    /// `copy_file_range`.
    CopyFileRange,
    /// `ioctl(FICLONE)`/`ioctl(FICLONERANGE)`.
    Reflink,
    /// `splice`.
    Splice,
    /// `tee`.
    Tee,
    /// `vmsplice`.
    Vmsplice,
    /// `mmap`/`munmap`/`msync`/`madvise`.
    Mmap,
}

const ALL: [Syscall; 9] = [
    Syscall::Read,
    Syscall::Write,
    Syscall::Sendfile,
    Syscall::CopyFileRange,
    Syscall::Reflink,
    Syscall::Splice,
    Syscall::Tee,
    Syscall::Vmsplice,
    Syscall::Mmap,
];

impl Syscall {
    /// The name reported: `"read"`, `"sendfile"`, `"copy_file_range"`, …
    pub fn name(self) -> &'static str {
        match self {
            Syscall::Read => "read",
            Syscall::Write => "write",
            Syscall::Sendfile => "sendfile",
            Syscall::CopyFileRange => "copy_file_range",
            Syscall::Reflink => "reflink",
            Syscall::Splice => "splice",
            Syscall::Tee => "tee",
            Syscall::Vmsplice => "vmsplice",
            Syscall::Mmap => "mmap",
        }
    }
}

static COUNTS: [AtomicU64; ALL.len()] = [const { AtomicU64::new(0) }; ALL.len()];

/// Records one call of `kind`.
#[inline]
pub fn record(kind: Syscall) {
    COUNTS[kind as usize].fetch_add(1, Ordering::Relaxed);
}

/// Every family with its count so far.
pub fn snapshot() -> Vec<(&'static str, u64)> {
    ALL.iter()
        .map(|&k| (k.name(), COUNTS[k as usize].load(Ordering::Relaxed)))
        .collect()
}

/// Runs `f` (one system call), counting it, again while it fails with `EINTR`.
pub(crate) fn counted<T>(kind: Syscall, mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        record(kind);
        match f() {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}
