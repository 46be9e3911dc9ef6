//! Direct I/O that just works: `O_DIRECT` reads and writes that bypass the page cache, with the
//! alignment rules checked up front, an optional bounce buffer for requests that break them, and an
//! optional buffered fallback for filesystems that refuse `O_DIRECT`.
//!
//! - [`DirectFile::open`] opens with `O_DIRECT` and learns the file's alignment
//!   ([`sys::direct::alignment`](crate::sys::direct::alignment)). A filesystem that refuses `O_DIRECT`
//!   (ramfs, some FUSE setups) fails with code `ERR_DIRECT_IO_UNSUPPORTED`, or, with
//!   [`Fallback::Buffered`], opens normally and reads and writes through the page cache, dropping each
//!   chunk from it afterwards (`sync_file_range` + `posix_fadvise(DONTNEED)`); [`DirectFile::mechanism`]
//!   says which one is in use.
//! - [`DirectFile::read_step`] / [`DirectFile::write_step`] move up to a budget of bytes. With
//!   [`Unaligned::Error`] a misaligned buffer address, position or length is `EINVAL` before any system
//!   call. With [`Unaligned::Bounce`] any request works: the aligned middle goes straight to the
//!   caller's memory, and only the partial blocks at either end (or everything, when the memory itself
//!   is misaligned) pass through an aligned bounce buffer. A partial-block write reads the block first
//!   and, past the end of the file, trims the padding off again with `ftruncate`.
//!
//! Steps are bounded so that a caller (the Node binding) can check for cancellation between them. A step
//! that fails after moving bytes returns those bytes; the error comes back from the next step.
//!
//! ```no_run
//! use zerocopy_io::direct::{DirectFile, OpenOptions, Unaligned};
//!
//! let file = DirectFile::open("data.bin", &OpenOptions::default())?;
//! let mut buf = vec![0u8; 12345]; // any address, any length
//! let step = file.read_step(&mut buf, 7, usize::MAX, Unaligned::Bounce)?;
//! println!("{} bytes, end of file: {}", step.bytes, step.eof);
//! # Ok::<(), zerocopy_io::Error>(())
//! ```

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::{OFlag, PosixFadviseAdvice};

use crate::error::{Code, Error, Result};
use crate::sys::direct::{self as sys, AlignedBuf};
use crate::sys::file;
use crate::sys::probe::{self, DirectIoAlignment};

mod bounce;
mod open;

/// The most bytes one `pread`/`pwrite` moves. Large direct requests are split by the block layer into
/// many concurrent device requests, which is what makes Direct I/O fast without readahead.
pub const MAX_IO: usize = 64 << 20;

/// The bounce buffer for requests whose memory is misaligned: everything passes through it, this much
/// at a time.
const BOUNCE_SPAN: usize = 1 << 20;

/// Chunk size of the buffered fallback: each chunk is dropped from the page cache before the next.
const BUFFERED_CHUNK: usize = 8 << 20;

/// The code of the error for a filesystem that refuses `O_DIRECT`.
pub const UNSUPPORTED: &str = Code::DirectIoUnsupported.as_str();

/// How the bytes of a [`DirectFile`] move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `O_DIRECT`: between the device and the caller's memory, bypassing the page cache.
    Direct,
    /// The filesystem refused `O_DIRECT`: buffered I/O, each chunk written back and dropped from the
    /// page cache with `posix_fadvise(DONTNEED)` ([`Fallback::Buffered`]).
    Buffered,
}

impl Mechanism {
    /// `"direct"` or `"buffered"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Direct => "direct",
            Mechanism::Buffered => "buffered",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do when the filesystem refuses `O_DIRECT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Fail with code [`UNSUPPORTED`] (`errno` `EINVAL`). A file the failed open created is removed.
    #[default]
    Error,
    /// Use buffered I/O, dropping each chunk from the page cache afterwards.
    Buffered,
}

/// What to do with a request whose buffer address, position or length breaks the alignment rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unaligned {
    /// Fail with `EINVAL` before any system call.
    #[default]
    Error,
    /// Handle it: the unaligned parts pass through an aligned bounce buffer.
    Bounce,
}

/// How to open a [`DirectFile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// Access mode plus any of `O_CREAT`, `O_EXCL`, `O_TRUNC`, `O_SYNC`, `O_DSYNC`, `O_NOATIME`,
    /// `O_NOFOLLOW` (`O_DIRECT` and `O_CLOEXEC` are added). Others are refused with `EINVAL`:
    /// `O_APPEND` would make the kernel ignore every position.
    pub flags: OFlag,
    /// Permission bits for a created file (less the umask). Default `0o666`.
    pub mode: u32,
    /// What to do when the filesystem refuses `O_DIRECT`.
    pub fallback: Fallback,
    /// Behave as if the filesystem refused `O_DIRECT`, so the refusal paths can be tested anywhere.
    #[doc(hidden)]
    pub simulate_unsupported: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            flags: OFlag::O_RDONLY,
            mode: 0o666,
            fallback: Fallback::Error,
            simulate_unsupported: false,
        }
    }
}

/// The outcome of one [`DirectFile::read_step`] or [`DirectFile::write_step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Bytes moved.
    pub bytes: usize,
    /// Reads: the file ended before the buffer was filled.
    pub eof: bool,
}

/// A file opened for Direct I/O (or its buffered fallback), with its alignment rules.
///
/// All methods take `&self` and may run concurrently from several threads; each step is positioned
/// (`pread`/`pwrite`), so the file position is never used. Dropping the value closes the file.
#[derive(Debug)]
pub struct DirectFile {
    fd: OwnedFd,
    path: Option<PathBuf>,
    alignment: DirectIoAlignment,
    mechanism: Mechanism,
    block_device: bool,
    readable: bool,
    /// A cached bounce buffer, taken by the step that needs it (concurrent steps allocate their own).
    bounce: Mutex<Option<AlignedBuf>>,
}

impl DirectFile {
    /// The file's O_DIRECT alignment: buffers must start at a multiple of `memory`, positions and
    /// lengths must be multiples of `offset`. Also reported (and enforced) under the buffered
    /// fallback, so that code behaves the same on every filesystem.
    pub fn alignment(&self) -> DirectIoAlignment {
        self.alignment
    }

    /// Whether bytes move by `O_DIRECT` or through the buffered fallback.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The path the file was opened with.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The file's size in bytes (a block device's capacity).
    pub fn size(&self) -> Result<u64> {
        let size = if self.block_device {
            sys::block_device_size(&self.fd)
        } else {
            file::fstat(&self.fd).map(|st| st.st_size.max(0) as u64)
        };
        size.map_err(|e| self.decorate(e))
    }

    /// `ftruncate(2)`: sets the size to exactly `len` bytes. Needs no alignment.
    pub fn truncate(&self, len: u64) -> Result<()> {
        let len = i64::try_from(len).map_err(|_| Error::new(Errno::EFBIG, "ftruncate"));
        len.and_then(|len| file::ftruncate(&self.fd, len))
            .map_err(|e| self.decorate(e))
    }

    /// Reads into `buf` from `offset`, at most `budget` bytes (in bounded system calls).
    ///
    /// Stops early at end of file (`eof`). A failure after some bytes arrived returns those bytes.
    pub fn read_step(
        &self,
        buf: &mut [u8],
        offset: u64,
        budget: usize,
        unaligned: Unaligned,
    ) -> Result<Step> {
        let bounce = self.admit(buf, offset, unaligned, "read")?;
        let limit = self.limit(buf.len(), budget, bounce);
        self.step(limit, offset, |done, at, scratch| {
            let dst = &mut buf[done..limit];
            match self.mechanism {
                Mechanism::Buffered => self.read_buffered(dst, at),
                Mechanism::Direct if bounce => self.read_bounced(dst, at, scratch),
                Mechanism::Direct => self.read_direct(dst, at),
            }
        })
    }

    /// Writes `buf` at `offset`, at most `budget` bytes (in bounded system calls).
    ///
    /// A failure after some bytes were written returns those bytes (`Step::eof` is always false).
    pub fn write_step(
        &self,
        buf: &[u8],
        offset: u64,
        budget: usize,
        unaligned: Unaligned,
    ) -> Result<Step> {
        let bounce = self.admit(buf, offset, unaligned, "write")?;
        let limit = self.limit(buf.len(), budget, bounce);
        self.step(limit, offset, |done, at, scratch| {
            let src = &buf[done..limit];
            let n = match self.mechanism {
                Mechanism::Buffered => self.write_buffered(src, at)?,
                Mechanism::Direct if bounce => self.write_bounced(src, at, scratch)?,
                Mechanism::Direct => self.write_direct(src, at)?,
            };
            Ok((n, false))
        })
    }

    /// Checks the alignment rules unless bouncing; returns whether to bounce.
    fn admit(
        &self,
        buf: &[u8],
        offset: u64,
        unaligned: Unaligned,
        syscall: &'static str,
    ) -> Result<bool> {
        match unaligned {
            Unaligned::Bounce => Ok(true),
            Unaligned::Error => self
                .check(buf, offset, syscall)
                .map(|()| false)
                .map_err(|e| self.decorate(e)),
        }
    }

    /// Runs `piece(done, file offset, bounce buffer)` until `limit` bytes moved (see [`run`]), lending
    /// the pieces one bounce buffer and keeping it for the next step.
    fn step(
        &self,
        limit: usize,
        offset: u64,
        mut piece: impl FnMut(usize, u64, &mut Option<AlignedBuf>) -> Result<(usize, bool)>,
    ) -> Result<Step> {
        let mut scratch = None;
        let result = run(limit, |done| {
            piece(done, offset_at(offset, done)?, &mut scratch)
        });
        self.give_back(scratch);
        result.map_err(|e| self.decorate(e))
    }

    fn decorate(&self, e: Error) -> Error {
        match &self.path {
            Some(p) => e.with_path(p),
            None => e,
        }
    }

    /// The bytes of this request one step may move: the budget, kept to whole blocks when the rest of
    /// the request must stay aligned.
    fn limit(&self, len: usize, budget: usize, bounce: bool) -> usize {
        if budget >= len {
            return len;
        }
        let block = self.block();
        if bounce || block <= 1 {
            budget.max(1)
        } else {
            (budget - budget % block).max(block)
        }
    }

    fn block(&self) -> usize {
        self.alignment.offset.max(1) as usize
    }

    /// The alignment rules, checked before any system call.
    fn check(&self, buf: &[u8], offset: u64, syscall: &'static str) -> Result<()> {
        let a = self.alignment;
        let detail = if !sys::is_aligned(offset, a.offset) {
            "position is not a multiple of the file's O_DIRECT offset alignment"
        } else if !sys::is_aligned(buf.len() as u64, a.offset) {
            "length is not a multiple of the file's O_DIRECT offset alignment"
        } else if !buf.is_empty() && sys::misalignment(buf, a.memory) != 0 {
            "buffer address is not a multiple of the file's O_DIRECT memory alignment"
        } else {
            return Ok(());
        };
        Err(Error::new(Errno::EINVAL, syscall).with_detail(detail))
    }

    fn read_direct(&self, dst: &mut [u8], at: u64) -> Result<(usize, bool)> {
        let want = dst.len().min(MAX_IO);
        let n = file::read_at(&self.fd, &mut dst[..want], Some(to_off(at)?))?;
        Ok((n, n < want))
    }

    fn write_direct(&self, src: &[u8], at: u64) -> Result<usize> {
        let want = src.len().min(MAX_IO);
        let n = file::write_at(&self.fd, &src[..want], Some(to_off(at)?))?;
        nonzero(n)
    }

    fn read_buffered(&self, dst: &mut [u8], at: u64) -> Result<(usize, bool)> {
        let want = dst.len().min(BUFFERED_CHUNK);
        let n = file::read_at(&self.fd, &mut dst[..want], Some(to_off(at)?))?;
        // Advisory: a refusal only means the pages stay cached, never that the read failed.
        let _ = self.drop_cached(at, n);
        Ok((n, n < want))
    }

    fn write_buffered(&self, src: &[u8], at: u64) -> Result<usize> {
        let want = src.len().min(BUFFERED_CHUNK);
        let n = nonzero(file::write_at(&self.fd, &src[..want], Some(to_off(at)?))?)?;
        // Write the chunk back now (an error here is a real write error), then drop it.
        sys::sync_range(&self.fd, at, n as u64)?;
        let _ = self.drop_cached(at, n);
        Ok(n)
    }

    /// `posix_fadvise(DONTNEED)` over the whole pages covering `at..at+len`.
    fn drop_cached(&self, at: u64, len: usize) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let page = probe::page_size() as u64;
        let start = at - at % page;
        let end = (at + len as u64).div_ceil(page) * page;
        crate::sys::fadvise::fadvise(
            &self.fd,
            start,
            end - start,
            PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
    }
}

impl AsFd for DirectFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Runs pieces until `limit` bytes moved or one reports end of file. An error after progress ends the
/// step with that progress: the caller reports the bytes, and the error recurs on the next step.
fn run(limit: usize, mut piece: impl FnMut(usize) -> Result<(usize, bool)>) -> Result<Step> {
    let mut done = 0;
    while done < limit {
        match piece(done) {
            Ok((n, eof)) => {
                done += n;
                if eof || n == 0 {
                    return Ok(Step {
                        bytes: done,
                        eof: true,
                    });
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(Step {
        bytes: done,
        eof: false,
    })
}

/// A write that moved nothing would loop forever; a regular file only does that when full.
fn nonzero(n: usize) -> Result<usize> {
    if n == 0 {
        Err(Error::new(Errno::ENOSPC, "write"))
    } else {
        Ok(n)
    }
}

fn offset_at(offset: u64, done: usize) -> Result<u64> {
    offset
        .checked_add(done as u64)
        .ok_or_else(|| Error::new(Errno::EFBIG, "lseek"))
}

/// A file offset as the kernel takes it; past `i64::MAX` no file can reach.
fn to_off(at: u64) -> Result<i64> {
    i64::try_from(at).map_err(|_| Error::new(Errno::EFBIG, "lseek"))
}
