//! `FICLONE` / `FICLONERANGE`: share extents between files on copy-on-write filesystems.
//!
//! A reflink copies no data at all: both files point at the same blocks until one of them is written.
//! XFS (with `reflink=1`), btrfs, bcachefs and OCFS2 support it; ext4 and tmpfs answer `EOPNOTSUPP`
//! (or `EINVAL`), different filesystems `EXDEV`.

use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;

use crate::error::{Result, SyscallExt};
use crate::sys::counters::{counted, Syscall};

/// A byte range for [`ficlonerange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneRange {
    /// Where to start reading in the source.
    pub src_offset: u64,
    /// How many bytes to share; 0 means "to the end of the source".
    pub length: u64,
    /// Where the shared bytes start in the destination.
    pub dst_offset: u64,
}

/// `ioctl(dest_fd, FICLONE, src_fd)`
///
/// Makes the whole of `dst` share `src`'s blocks, as `cp --reflink=always` does. Needs the two files on
/// the same reflink-capable filesystem, `src` open for reading and `dst` for writing (not `O_APPEND`).
///
/// See [ioctl_ficlone(2)](https://man7.org/linux/man-pages/man2/ioctl_ficlone.2.html).
#[doc(alias = "FICLONE")]
pub fn ficlone(src: impl AsFd, dst: impl AsFd) -> Result<()> {
    let (src, dst) = (src.as_fd(), dst.as_fd());
    counted(Syscall::Reflink, || {
        // SAFETY: FICLONE takes the source fd as its integer argument and touches no user memory;
        // both fds are borrowed, so they stay open for the call.
        let ret = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
        Errno::result(ret).map(drop)
    })
    .syscall("ioctl_ficlone")
}

/// `ioctl(dest_fd, FICLONERANGE, &struct file_clone_range)`
///
/// Shares `range.length` bytes of `src` at `range.src_offset` into `dst` at `range.dst_offset`.
/// Offsets and length must be multiples of the filesystem block size, except that a range reaching
/// the end of the source may end anywhere; otherwise the kernel answers `EINVAL`.
///
/// See [ioctl_ficlonerange(2)](https://man7.org/linux/man-pages/man2/ioctl_ficlonerange.2.html).
#[doc(alias = "FICLONERANGE")]
pub fn ficlonerange(src: impl AsFd, dst: impl AsFd, range: CloneRange) -> Result<()> {
    let (src, dst) = (src.as_fd(), dst.as_fd());
    let arg = libc::file_clone_range {
        src_fd: i64::from(src.as_raw_fd()),
        src_offset: range.src_offset,
        src_length: range.length,
        dest_offset: range.dst_offset,
    };
    counted(Syscall::Reflink, || {
        // SAFETY: `arg` is a fully initialised file_clone_range that outlives the call; the kernel only
        // reads it. Both fds are borrowed, so they stay open for the call.
        let ret = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONERANGE, &arg) };
        Errno::result(ret).map(drop)
    })
    .syscall("ioctl_ficlonerange")
}
