//! `sendfile(2)`: file pages handed to another fd (socket, pipe or file) without a user-space buffer.

use std::os::fd::AsFd;

use crate::error::{Result, SyscallExt};
use crate::sys::counters::{counted, Syscall};

/// The most bytes one `sendfile` call moves: the kernel's `MAX_RW_COUNT` (2 GiB − 4 KiB) on every
/// architecture. Asking for more silently returns this much, so loops cap their requests here.
pub const MAX_CHUNK: usize = 0x7fff_f000;

/// `ssize_t sendfile(int out_fd, int in_fd, off64_t *offset, size_t count)`
///
/// Copies up to `count` bytes from `in_fd` (which must support mmap-like reads: a regular file or
/// block device) to `out_fd`, at `out_fd`'s file position. With `Some(offset)` it reads from that offset
/// and advances the variable, leaving `in_fd`'s position alone; with `None` it reads at `in_fd`'s
/// position and advances it. Returns the bytes moved, possibly short; 0 means end of file.
///
/// A non-blocking socket as `out_fd` answers `EAGAIN` when its buffer is full.
///
/// See [sendfile(2)](https://man7.org/linux/man-pages/man2/sendfile.2.html).
#[doc(alias = "sendfile64")]
pub fn sendfile(
    out_fd: impl AsFd,
    in_fd: impl AsFd,
    mut offset: Option<&mut i64>,
    count: usize,
) -> Result<usize> {
    let (out_fd, in_fd) = (out_fd.as_fd(), in_fd.as_fd());
    counted(Syscall::Sendfile, || {
        nix::sys::sendfile::sendfile64(out_fd, in_fd, offset.as_deref_mut(), count)
    })
    .syscall("sendfile")
}
