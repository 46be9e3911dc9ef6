//! `copy_file_range(2)`: an in-kernel copy between two files.

use std::os::fd::AsFd;

use crate::error::{Result, SyscallExt};
use crate::sys::counters::{counted, Syscall};

/// The most bytes this crate asks of one `copy_file_range` call (1 GiB).
///
/// The kernel caps a call at `MAX_RW_COUNT` (2 GiB − 4 KiB) anyway; a smaller cap keeps each call short
/// enough that cancellation between calls stays responsive.
pub const MAX_CHUNK: usize = 1 << 30;

/// `ssize_t copy_file_range(int fd_in, off64_t *off_in, int fd_out, off64_t *off_out, size_t len, unsigned flags)`
///
/// Copies up to `len` bytes from `fd_in` to `fd_out` inside the kernel. With `Some(offset)` the copy
/// reads (or writes) at that offset and advances the variable, leaving the fd's file position alone;
/// with `None` it uses and advances the file position, as `read(2)`/`write(2)` would. Returns the
/// number of bytes copied, which may be short; 0 means end of file — or, on procfs/sysfs and some
/// overlayfs kernels, "not supported here".
///
/// Typical errors: `EXDEV` (different filesystems before 5.3, or since 5.19 a filesystem pair that
/// cannot copy across), `EINVAL` (not regular files, overlapping ranges within one file, `O_APPEND`
/// destination gives `EBADF`), `ENOSYS` (kernel before 4.5), `EPERM` (seccomp filters).
///
/// See [copy_file_range(2)](https://man7.org/linux/man-pages/man2/copy_file_range.2.html).
pub fn copy_file_range(
    fd_in: impl AsFd,
    mut off_in: Option<&mut i64>,
    fd_out: impl AsFd,
    mut off_out: Option<&mut i64>,
    len: usize,
) -> Result<usize> {
    let (fd_in, fd_out) = (fd_in.as_fd(), fd_out.as_fd());
    counted(Syscall::CopyFileRange, || {
        nix::fcntl::copy_file_range(
            fd_in,
            off_in.as_deref_mut(),
            fd_out,
            off_out.as_deref_mut(),
            len,
        )
    })
    .syscall("copy_file_range")
}
