//! `posix_fadvise(2)`: telling the kernel how a range of a file will be used.

use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::fcntl::PosixFadviseAdvice;

use crate::error::{Error, Result, SyscallExt};

/// `posix_fadvise(2)`. `len` 0 means "to the end of the file".
///
/// Advice is advisory: `DONTNEED` drops clean, unmapped pages in the range but skips dirty ones
/// (start writeback first: [`sync_range`](super::direct::sync_range)) and pages another process holds mapped.
#[doc(alias = "posix_fadvise64")]
pub fn fadvise(fd: impl AsFd, offset: u64, len: u64, advice: PosixFadviseAdvice) -> Result<()> {
    let offset = i64::try_from(offset).map_err(|_| Error::new(Errno::EINVAL, "posix_fadvise"))?;
    let len = i64::try_from(len).unwrap_or(0);
    nix::fcntl::posix_fadvise(fd.as_fd(), offset, len, advice).syscall("posix_fadvise")
}
