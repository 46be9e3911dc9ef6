//! Plain file descriptor plumbing: open, dup, stat, seek and the read/write fallback.
//!
//! Every function retries on EINTR and reports failures as [`Error`](crate::Error) naming the syscall.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{self, FcntlArg, OFlag};
use nix::sys::stat::{self, FileStat, Mode, SFlag};
use nix::unistd::{self, Whence};

use crate::error::{retry_eintr, Result, SyscallExt};
use crate::sys::counters::{counted, Syscall};

/// Lowest fd number [`dup_cloexec`] hands out; 0–2 stay reserved for stdio.
const MIN_DUP_FD: i32 = 3;

/// `open(2)` with `O_CLOEXEC` always added. Errors carry `path`.
pub fn open(path: &Path, flags: OFlag, mode: Mode) -> Result<OwnedFd> {
    retry_eintr(|| fcntl::open(path, flags | OFlag::O_CLOEXEC, mode))
        .syscall("open")
        .map_err(|e| e.with_path(path))
}

/// [`open`] without blocking on FIFOs (a FIFO with no peer would otherwise hang the open forever, and
/// a device may wait for a carrier), then back to blocking mode: sendfile and splice treat
/// `O_NONBLOCK` on a source as "do not wait". The caller checks the file type (`fstat`) before any
/// read.
pub fn open_nonblocking(path: &Path, flags: OFlag, mode: Mode) -> Result<OwnedFd> {
    let fd = open(path, flags | OFlag::O_NONBLOCK, mode)?;
    set_nonblocking(&fd, false).map_err(|e| e.with_path(path))?;
    Ok(fd)
}

/// Opens `path` read-only strictly beneath the directory `root`: `openat2(2)` with `RESOLVE_BENEATH |
/// RESOLVE_NO_MAGICLINKS`, so neither `..`, an absolute path nor a symlink can lead outside `root`
/// (symlinks that stay inside are followed). Escapes fail with `EXDEV`.
///
/// On kernels without `openat2` (before 5.6) the file is opened normally and its real path, read
/// back from `/proc/self/fd`, must lie under `root`'s real path, else `EXDEV`. A FIFO does not block
/// the open. Errors carry `path` (the relative path asked for).
#[doc(alias = "openat2")]
#[doc(alias = "RESOLVE_BENEATH")]
pub fn open_beneath(root: &Path, path: &Path) -> Result<OwnedFd> {
    use nix::fcntl::{OpenHow, ResolveFlag};
    let root_fd = open(root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())?;
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let how = OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match retry_eintr(|| fcntl::openat2(&root_fd, path, how)) {
        Ok(fd) => fd,
        Err(Errno::ENOSYS) => open_checked_beneath(root, path, flags)?,
        Err(e) => return Err(crate::Error::new(e, "openat2").with_path(path)),
    };
    set_nonblocking(&fd, false).map_err(|e| e.with_path(path))?;
    Ok(fd)
}

fn open_checked_beneath(root: &Path, path: &Path, flags: OFlag) -> Result<OwnedFd> {
    let escape = || crate::Error::new(Errno::EXDEV, "open").with_path(path);
    if path.is_absolute() {
        return Err(escape());
    }
    let fd = open(&root.join(path), flags, Mode::empty())?;
    let real_root = std::fs::canonicalize(root)
        .map_err(|_| crate::Error::new(Errno::ENOENT, "realpath").with_path(root))?;
    let real = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .map_err(|_| escape())?;
    if real.starts_with(&real_root) {
        Ok(fd)
    } else {
        Err(escape())
    }
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, 3)`: a private duplicate of `fd`.
///
/// Long operations run on a duplicate so that JavaScript closing its fd mid-operation cannot make
/// the kernel reuse that number for another file and have our bytes land there.
#[doc(alias = "F_DUPFD_CLOEXEC")]
pub fn dup_cloexec(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    let raw = fcntl::fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(MIN_DUP_FD)).syscall("dup")?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) })
}

/// Duplicates a raw fd number received from JavaScript. Negative or closed numbers give EBADF.
pub fn dup_raw(fd: i32) -> Result<OwnedFd> {
    if fd < 0 {
        return Err(crate::Error::new(Errno::EBADF, "dup"));
    }
    // SAFETY: the borrow lasts only for the fcntl call; if `fd` is not open the kernel answers EBADF
    // and nothing is dereferenced.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    dup_cloexec(borrowed)
}

/// `close(2)` of a raw fd number received from JavaScript, which hands its ownership over (the fds
/// `openFile` gave it). Negative numbers give EBADF; an error of `close` itself is reported, but
/// the number is released either way (Linux never leaves it open).
///
/// # Safety
/// `fd` must be an open descriptor the caller owns, and nothing may use the number afterwards.
pub unsafe fn close_raw(fd: i32) -> Result<()> {
    if fd < 0 {
        return Err(crate::Error::new(Errno::EBADF, "close"));
    }
    // SAFETY: the caller hands over ownership of the open descriptor `fd`.
    let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    unistd::close(owned).syscall("close")
}

/// `fstat(2)`.
pub fn fstat(fd: impl AsFd) -> Result<FileStat> {
    stat::fstat(fd.as_fd()).syscall("fstat")
}

/// `stat(2)` of a path (following symlinks). Errors carry `path`.
pub fn stat(path: &Path) -> Result<FileStat> {
    retry_eintr(|| stat::stat(path))
        .syscall("stat")
        .map_err(|e| e.with_path(path))
}

/// `unlink(2)`. Errors carry `path`.
pub fn unlink(path: &Path) -> Result<()> {
    retry_eintr(|| unistd::unlink(path))
        .syscall("unlink")
        .map_err(|e| e.with_path(path))
}

/// The file type bits of a stat result.
pub fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// `fcntl(fd, F_GETFL)`: the open flags (access mode, `O_APPEND`, `O_DIRECT`, ...).
pub fn status_flags(fd: impl AsFd) -> Result<OFlag> {
    let bits = fcntl::fcntl(fd.as_fd(), FcntlArg::F_GETFL).syscall("fcntl")?;
    Ok(OFlag::from_bits_truncate(bits))
}

/// Turns `O_NONBLOCK` on or off (`fcntl(F_SETFL)`), keeping the other status flags.
pub fn set_nonblocking(fd: impl AsFd, on: bool) -> Result<()> {
    let flags = status_flags(&fd)?;
    let flags = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags & !OFlag::O_NONBLOCK
    };
    fcntl::fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags))
        .map(drop)
        .syscall("fcntl")
}

/// `lseek(2)`. Returns the new offset.
pub fn lseek(fd: impl AsFd, offset: i64, whence: Whence) -> Result<i64> {
    unistd::lseek(fd.as_fd(), offset, whence).syscall("lseek")
}

/// `ftruncate(2)`.
pub fn ftruncate(fd: impl AsFd, len: i64) -> Result<()> {
    retry_eintr(|| unistd::ftruncate(fd.as_fd(), len)).syscall("ftruncate")
}

/// `fchmod(2)`.
pub fn fchmod(fd: impl AsFd, mode: u32) -> Result<()> {
    stat::fchmod(fd.as_fd(), Mode::from_bits_truncate(mode)).syscall("fchmod")
}

/// `pread(2)`, or `read(2)` when `offset` is `None` (streams, or reading at the file position).
pub fn read_at(fd: impl AsFd, buf: &mut [u8], offset: Option<i64>) -> Result<usize> {
    let fd = fd.as_fd();
    match offset {
        Some(off) => counted(Syscall::Read, || nix::sys::uio::pread(fd, buf, off)).syscall("read"),
        None => counted(Syscall::Read, || unistd::read(fd, buf)).syscall("read"),
    }
}

/// `pwrite(2)`, or `write(2)` when `offset` is `None`.
///
/// Returns what one call wrote, which may be short; see [`write_all_at`].
pub fn write_at(fd: impl AsFd, buf: &[u8], offset: Option<i64>) -> Result<usize> {
    let fd = fd.as_fd();
    match offset {
        Some(off) => {
            counted(Syscall::Write, || nix::sys::uio::pwrite(fd, buf, off)).syscall("write")
        }
        None => counted(Syscall::Write, || unistd::write(fd, buf)).syscall("write"),
    }
}

/// Writes all of `buf`, continuing after short writes. On failure returns the error together
/// with how many bytes did reach the file, so callers can report partial progress exactly.
pub fn write_all_at(
    fd: impl AsFd,
    buf: &[u8],
    offset: Option<i64>,
) -> std::result::Result<(), (crate::Error, usize)> {
    let fd = fd.as_fd();
    let mut done = 0;
    while done < buf.len() {
        let at = offset.map(|o| o + done as i64);
        match write_at(fd, &buf[done..], at) {
            // A regular file never accepts zero bytes of a non-empty write; treat it like a full disk.
            Ok(0) => return Err((crate::Error::new(Errno::ENOSPC, "write"), done)),
            Ok(n) => done += n,
            Err(e) => return Err((e, done)),
        }
    }
    Ok(())
}

/// `cachestat(2)` (Linux 6.5+): how many of the pages covering `[offset, offset + len)` are in the
/// page cache. `Ok(None)` where the kernel lacks the call (or a seccomp filter forbids it), so callers
/// can assume "unknown".
///
/// A read of cached pages cannot block on the disk: the send engine uses this to decide whether a
/// `sendfile` may run on the event loop thread.
///
/// See [cachestat(2)](https://man7.org/linux/man-pages/man2/cachestat.2.html).
#[doc(alias = "cachestat")]
pub fn cached_pages(fd: impl AsFd, offset: u64, len: u64) -> Result<Option<u64>> {
    /// The syscall number: the same on every architecture (numbers from 424 on are shared).
    const SYS_CACHESTAT: libc::c_long = 451;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    let range = Range { off: offset, len };
    let mut stat = Stat::default();
    let fd = fd.as_fd();
    // SAFETY: `range` and `stat` are valid, correctly laid out (repr(C), the kernel's field order)
    // and live for the call; the kernel reads the first and writes the second.
    let ret = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    match Errno::result(ret) {
        Ok(_) => Ok(Some(stat.nr_cache)),
        Err(Errno::ENOSYS | Errno::EPERM) => Ok(None),
        Err(e) => Err(crate::Error::new(e, "cachestat")),
    }
}
