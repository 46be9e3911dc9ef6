//! `splice(2)`, `tee(2)`, `vmsplice(2)` and the kernel pipes they need.
//!
//! splice moves bytes between an fd and a pipe inside the kernel: a socket's received pages are
//! handed to the pipe, and from the pipe to another socket, without a copy through user space. One
//! end of every call must be a pipe, so moving socket to socket takes two calls through a pipe of our
//! own; [`Pipe`] makes such pipes (non-blocking, close-on-exec, as large as the system allows) and
//! the relays keep a bounded number of empty ones for reuse ([`crate::relay::PipePool`]).
//!
//! Failures that the kernel reports as a bare `EINVAL` — an fd that is not a pipe where one is needed,
//! a pipe spliced into itself — are named precisely in the error's description.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag};
use nix::sys::stat::SFlag;

pub use nix::fcntl::SpliceFFlags as SpliceFlags;

use super::probe;
use crate::error::{Error, Result, SyscallExt};
use crate::sys::counters::{counted, Syscall};
use crate::sys::file;

/// A pipe's capacity when nobody asked for more: 16 pages.
pub const DEFAULT_PIPE_SIZE: usize = 64 * 1024;

/// The pipe size relays ask for: 1 MiB, or `/proc/sys/fs/pipe-max-size` if that is lower. One
/// `splice` call moves at most a pipe's worth, so larger pipes mean fewer calls per byte.
pub const RELAY_PIPE_SIZE: usize = 1 << 20;

/// `ssize_t splice(int fd_in, off64_t *off_in, int fd_out, off64_t *off_out, size_t len, unsigned int flags)`
///
/// Moves up to `len` bytes from `fd_in` to `fd_out`, one of which must be a pipe. An offset may be
/// given for the end that is not a pipe (a file): it is read/written there and the variable advanced,
/// leaving the fd's position alone. Returns the bytes moved, possibly short; 0 means end of input.
///
/// `SPLICE_F_NONBLOCK` makes the pipe side non-blocking; the other side blocks or not according to its
/// own `O_NONBLOCK`. A non-blocking call answers `EAGAIN` both when the input has nothing to read and
/// when the output (or the pipe) is full — callers that must tell the two apart keep count of what
/// the pipe holds.
///
/// Splicing into a socket whose peer has gone raises `SIGPIPE`, as `sendfile` does, unless the signal
/// is ignored (Node and Rust binaries ignore it).
///
/// See [splice(2)](https://man7.org/linux/man-pages/man2/splice.2.html).
pub fn splice(
    fd_in: impl AsFd,
    mut off_in: Option<&mut i64>,
    fd_out: impl AsFd,
    mut off_out: Option<&mut i64>,
    len: usize,
    flags: SpliceFlags,
) -> Result<usize> {
    let (fd_in, fd_out) = (fd_in.as_fd(), fd_out.as_fd());
    counted(Syscall::Splice, || {
        nix::fcntl::splice(
            fd_in,
            off_in.as_deref_mut(),
            fd_out,
            off_out.as_deref_mut(),
            len,
            flags,
        )
    })
    .map_err(|errno| explain(errno, "splice", fd_in, fd_out))
}

/// `ssize_t tee(int fd_in, int fd_out, size_t len, unsigned int flags)`
///
/// Duplicates up to `len` bytes from the pipe `fd_in` into the pipe `fd_out` without consuming them:
/// both pipes then refer to the same pages. Returns the bytes duplicated; 0 when `fd_in` is empty
/// and has no writers left. With `SPLICE_F_NONBLOCK`, `EAGAIN` when `fd_in` is empty or `fd_out` full.
///
/// See [tee(2)](https://man7.org/linux/man-pages/man2/tee.2.html).
pub fn tee(fd_in: impl AsFd, fd_out: impl AsFd, len: usize, flags: SpliceFlags) -> Result<usize> {
    let (fd_in, fd_out) = (fd_in.as_fd(), fd_out.as_fd());
    counted(Syscall::Tee, || nix::fcntl::tee(fd_in, fd_out, len, flags))
        .map_err(|errno| explain(errno, "tee", fd_in, fd_out))
}

/// `ssize_t vmsplice(int fd, const struct iovec *iov, size_t nr_segs, unsigned int flags)`, writing
/// user memory into the pipe `fd` by reference.
///
/// The pipe then holds references to the pages behind `iov`, and a later `splice` hands those same
/// references on — to a socket (which keeps them until the peer has read or acknowledged the bytes)
/// or a file. No call tells when the kernel is done with them.
///
/// # Safety
///
/// The bytes of `iov` must not change until every reader downstream has consumed them: a change
/// made meanwhile reaches the receiver. Nothing can observe that moment, so in practice the memory
/// must never be written again, nor freed and reused. [`vmsplice_copy`] is the safe form.
///
/// See [vmsplice(2)](https://man7.org/linux/man-pages/man2/vmsplice.2.html).
pub unsafe fn vmsplice(fd: impl AsFd, iov: &[IoSlice<'_>], flags: SpliceFlags) -> Result<usize> {
    let fd = fd.as_fd();
    // SAFETY: the caller upholds this function's contract, which is nix's.
    counted(Syscall::Vmsplice, || unsafe {
        nix::fcntl::vmsplice(fd, iov, flags)
    })
    .syscall("vmsplice")
}

/// `vmsplice(2)` of a copy of `data` into the write end of the pipe `fd`: the safe form of
/// [`vmsplice`]. Returns how many bytes of `data` the pipe took (at most its capacity).
///
/// The bytes are copied into freshly mapped pages, spliced into the pipe and unmapped at once, so
/// the pipe's references are the only ones left: nothing can change those bytes, and `data` may be
/// reused as soon as this returns. The copy costs what `write(2)` costs; what the pipe holds can
/// then be spliced onward like any other pipe contents.
///
/// Errors: `EINVAL` if `fd` is not a pipe, `EBADF` if it is a pipe's read end, `EAGAIN` if the
/// pipe is full and `SPLICE_F_NONBLOCK` was given or the fd is non-blocking (`O_NONBLOCK`, which the
/// kernel's own vmsplice ignores).
pub fn vmsplice_copy(fd: impl AsFd, data: &[u8], flags: SpliceFlags) -> Result<usize> {
    let fd = fd.as_fd();
    let room = vmsplice_room(fd)?;
    SpliceCopy::new(&data[..data.len().min(room)])?.vmsplice(fd, flags)
}

/// Checks that `fd` is the write end of a pipe, and returns its capacity: the most one `vmsplice`
/// call can take, and so the most worth copying for it.
pub fn vmsplice_room(fd: impl AsFd) -> Result<usize> {
    let fd = fd.as_fd();
    require_pipe(fd, "vmsplice", "vmsplice writes into a pipe")?;
    if !file::status_flags(fd)?.intersects(OFlag::O_WRONLY | OFlag::O_RDWR) {
        return Err(Error::new(Errno::EBADF, "vmsplice")
            .with_detail("the fd is the read end of a pipe; vmsplice writes into the write end"));
    }
    Ok(pipe_size(fd)?.max(1))
}

/// A copy of some bytes in fresh pages, ready for [`SpliceCopy::vmsplice`]: [`vmsplice_copy`] in two
/// halves, so the copy can be made where the bytes live (e.g. the JavaScript thread) and the call
/// elsewhere.
#[derive(Debug)]
pub struct SpliceCopy {
    pages: Option<Pages>,
    len: usize,
}

impl SpliceCopy {
    /// Copies `data` into freshly mapped pages.
    pub fn new(data: &[u8]) -> Result<SpliceCopy> {
        if data.is_empty() {
            return Ok(SpliceCopy {
                pages: None,
                len: 0,
            });
        }
        let mut pages = Pages::new(data.len())?;
        pages.as_mut_slice()[..data.len()].copy_from_slice(data);
        Ok(SpliceCopy {
            pages: Some(pages),
            len: data.len(),
        })
    }

    /// `vmsplice(2)` of the copy into `fd`, then unmaps it. Returns the bytes the pipe took.
    ///
    /// Unlike `splice` and `tee`, the kernel's vmsplice ignores `O_NONBLOCK` on the pipe and waits
    /// for room; here a non-blocking fd answers `EAGAIN` as it does for every other call.
    pub fn vmsplice(self, fd: impl AsFd, mut flags: SpliceFlags) -> Result<usize> {
        let Some(mut pages) = self.pages else {
            return Ok(0);
        };
        let fd = fd.as_fd();
        if file::status_flags(fd)?.contains(OFlag::O_NONBLOCK) {
            flags |= SpliceFlags::SPLICE_F_NONBLOCK;
        }
        let iov = [IoSlice::new(&pages.as_mut_slice()[..self.len])];
        // SAFETY: `pages` is a private anonymous mapping that nothing else refers to; it is unmapped
        // right after the call and never written again, so the pipe's references to its pages are
        // the only ones left and the bytes cannot change.
        let n = unsafe { vmsplice(fd, &iov, flags - SpliceFlags::SPLICE_F_GIFT) }?;
        drop(pages);
        Ok(n)
    }
}

/// Fresh private anonymous memory, unmapped on drop.
#[derive(Debug)]
struct Pages {
    ptr: NonNull<u8>,
    len: usize,
}

impl Pages {
    fn new(len: usize) -> Result<Pages> {
        let page = probe::page_size();
        let len = len.div_ceil(page) * page;
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing replaces nothing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::last("mmap"));
        }
        match NonNull::new(ptr.cast::<u8>()) {
            Some(ptr) => Ok(Pages { ptr, len }),
            None => Err(Error::new(Errno::ENOMEM, "mmap")),
        }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, readable and writable, owned by `self` alone until drop.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

// SAFETY: the mapping belongs to this value alone (no other pointer to it exists), so moving it to
// another thread moves its sole owner; `&Pages` gives no access to the memory.
unsafe impl Send for Pages {}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, which no slice outlives (they borrow self).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// `pipe2(O_CLOEXEC | flags)`: `(read end, write end)`.
#[doc(alias = "pipe")]
pub fn pipe2(flags: OFlag) -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(flags | OFlag::O_CLOEXEC).syscall("pipe2")
}

/// `fcntl(fd, F_GETPIPE_SZ)`: the pipe's capacity in bytes.
#[doc(alias = "F_GETPIPE_SZ")]
pub fn pipe_size(fd: impl AsFd) -> Result<usize> {
    let fd = fd.as_fd();
    require_pipe(fd, "fcntl", "F_GETPIPE_SZ needs a pipe")?;
    let size = nix::fcntl::fcntl(fd, FcntlArg::F_GETPIPE_SZ).syscall("fcntl")?;
    Ok(usize::try_from(size).unwrap_or(0))
}

/// `fcntl(fd, F_SETPIPE_SZ, size)`: asks for a capacity of at least `size` bytes and returns the
/// capacity granted (a power-of-two number of pages).
///
/// `EPERM` when an unprivileged process asks for more than `/proc/sys/fs/pipe-max-size`, or its user
/// already holds more pipe memory than `/proc/sys/fs/pipe-user-pages-soft` allows; `EBUSY` when the
/// pipe holds more than `size` bytes.
#[doc(alias = "F_SETPIPE_SZ")]
pub fn set_pipe_size(fd: impl AsFd, size: usize) -> Result<usize> {
    let fd = fd.as_fd();
    require_pipe(fd, "fcntl", "F_SETPIPE_SZ needs a pipe")?;
    let want = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    let got = nix::fcntl::fcntl(fd, FcntlArg::F_SETPIPE_SZ(want)).syscall("fcntl")?;
    Ok(usize::try_from(got).unwrap_or(0))
}

/// `ioctl(fd, FIONREAD)`: bytes waiting to be read from a pipe (or socket).
#[doc(alias = "FIONREAD")]
pub fn queued(fd: impl AsFd) -> Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which points at `n`.
    let ret = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::FIONREAD, &mut n) };
    Errno::result(ret).syscall("ioctl")?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The largest pipe this process may make without privileges: `/proc/sys/fs/pipe-max-size`.
pub fn pipe_max_size() -> usize {
    probe::kernel().pipe_max_size.unwrap_or(RELAY_PIPE_SIZE)
}

/// A kernel pipe: close-on-exec, and non-blocking unless made with [`Pipe::with_flags`].
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    size: usize,
}

impl Pipe {
    /// A new pipe of about `size` bytes (rounded up by the kernel to a power-of-two number of pages).
    ///
    /// `size` is capped at [`pipe_max_size`]. When the kernel refuses the size with `EPERM` (the user's
    /// pipe memory is over `pipe-user-pages-soft`) it asks for half as much, down to the default
    /// 64 KiB, and finally keeps whatever the pipe was made with: a smaller pipe only means more calls.
    pub fn new(size: usize) -> Result<Pipe> {
        Pipe::with_flags(size, OFlag::O_NONBLOCK)
    }

    /// [`Pipe::new`] with other `pipe2` flags (`O_NONBLOCK`, `O_DIRECT`; `O_CLOEXEC` is always set).
    pub fn with_flags(size: usize, flags: OFlag) -> Result<Pipe> {
        let (read, write) = pipe2(flags)?;
        let mut pipe = Pipe {
            size: pipe_size(&read)?,
            read,
            write,
        };
        pipe.resize(size)?;
        Ok(pipe)
    }

    /// Asks for a capacity of about `size` bytes, as [`Pipe::new`] does. Fails only if the pipe holds
    /// more than the new size (`EBUSY`).
    pub fn resize(&mut self, size: usize) -> Result<usize> {
        let mut want = size.min(pipe_max_size()).max(1);
        loop {
            if want == self.size {
                return Ok(self.size);
            }
            match set_pipe_size(&self.read, want) {
                Ok(got) => {
                    self.size = got;
                    return Ok(got);
                }
                Err(e) if e.errno() == Errno::EPERM && want > DEFAULT_PIPE_SIZE => want /= 2,
                Err(e) if e.errno() == Errno::EPERM => return Ok(self.size),
                Err(e) => return Err(e),
            }
        }
    }

    /// The read end.
    pub fn reader(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// The write end.
    pub fn writer(&self) -> BorrowedFd<'_> {
        self.write.as_fd()
    }

    /// The capacity in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Bytes in the pipe, not yet read.
    pub fn queued(&self) -> Result<usize> {
        queued(&self.read)
    }

    /// Both ends, to close or keep separately.
    pub fn into_fds(self) -> (OwnedFd, OwnedFd) {
        (self.read, self.write)
    }
}

/// What kind of file an fd is, for error messages: "a socket", "a regular file", ….
pub fn describe(fd: impl AsFd) -> &'static str {
    match file::fstat(fd).map(|st| file::file_type(&st)) {
        Ok(SFlag::S_IFIFO) => "a pipe",
        Ok(SFlag::S_IFSOCK) => "a socket",
        Ok(SFlag::S_IFREG) => "a regular file",
        Ok(SFlag::S_IFDIR) => "a directory",
        Ok(SFlag::S_IFCHR) => "a character device",
        Ok(SFlag::S_IFBLK) => "a block device",
        Ok(_) => "not a pipe",
        Err(_) => "not open",
    }
}

fn is_pipe(fd: BorrowedFd<'_>) -> bool {
    matches!(
        file::fstat(fd).map(|st| file::file_type(&st)),
        Ok(SFlag::S_IFIFO)
    )
}

fn require_pipe(fd: BorrowedFd<'_>, syscall: &'static str, why: &str) -> Result<()> {
    if is_pipe(fd) {
        return Ok(());
    }
    // A closed fd is EBADF, as the kernel would say.
    file::fstat(fd).map_err(|e| Error::new(e.errno(), syscall))?;
    Err(Error::new(Errno::EINVAL, syscall)
        .with_detail(format!("{why}: the fd is {}", describe(fd))))
}

/// The kernel's bare `EINVAL`/`ESPIPE`, explained when the cause is the kind of fd passed. The ends
/// are named by role, not number: callers often pass duplicates of the fds they were given.
fn explain(
    errno: Errno,
    syscall: &'static str,
    fd_in: BorrowedFd<'_>,
    fd_out: BorrowedFd<'_>,
) -> Error {
    let err = Error::new(errno, syscall);
    match errno {
        Errno::EINVAL => {
            let (pin, pout) = (is_pipe(fd_in), is_pipe(fd_out));
            if pin && pout && same_file(fd_in, fd_out) {
                err.with_detail(format!(
                    "{syscall} cannot move a pipe's bytes into the same pipe"
                ))
            } else if syscall == "tee" && !(pin && pout) {
                let (role, fd) = if pin {
                    ("output", fd_out)
                } else {
                    ("input", fd_in)
                };
                err.with_detail(format!(
                    "tee needs a pipe at both ends: the {role} is {}",
                    describe(fd)
                ))
            } else if !pin && !pout {
                err.with_detail(format!(
                    "splice needs a pipe at one end: the input is {} and the output is {}",
                    describe(fd_in),
                    describe(fd_out)
                ))
            } else {
                err
            }
        }
        Errno::ESPIPE => {
            err.with_detail("an offset was given for a pipe or socket, which cannot seek")
        }
        _ => err,
    }
}

fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (file::fstat(a), file::fstat(b)) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}
