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
use std::sync::{Mutex, MutexGuard};

use nix::errno::Errno;
use nix::fcntl::{OFlag, PosixFadviseAdvice};
use nix::sys::stat::{Mode, SFlag};

use crate::error::{Code, Error, Result};
use crate::sys::direct::{self as sys, AlignedBuf};
use crate::sys::file;
use crate::sys::probe::{self, DirectIoAlignment};

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

/// The open flags a [`DirectFile`] accepts; the rest make no sense for positioned block I/O.
fn allowed_flags() -> OFlag {
    OFlag::O_ACCMODE
        | OFlag::O_CREAT
        | OFlag::O_EXCL
        | OFlag::O_TRUNC
        | OFlag::O_SYNC
        | OFlag::O_DSYNC
        | OFlag::O_NOATIME
        | OFlag::O_NOFOLLOW
        | OFlag::O_NOCTTY
        | OFlag::O_LARGEFILE
        | OFlag::O_CLOEXEC
        | OFlag::O_DIRECT
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
    /// Opens `path` for Direct I/O.
    ///
    /// Fails with `EINVAL` for flags outside [`OpenOptions::flags`]' list, `EISDIR` for a directory,
    /// `EINVAL` for anything but a regular file or a block device, code [`UNSUPPORTED`] when the
    /// filesystem refuses `O_DIRECT` (unless [`Fallback::Buffered`]), and whatever `open` reports.
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<DirectFile> {
        let path = path.as_ref();
        let flags = options.flags - OFlag::O_DIRECT - OFlag::O_CLOEXEC;
        if flags.contains(OFlag::O_APPEND) {
            return Err(Error::new(Errno::EINVAL, "open")
                .with_detail("O_APPEND cannot be used: the kernel would ignore every position")
                .with_path(path));
        }
        if !allowed_flags().contains(flags) {
            return Err(Error::new(Errno::EINVAL, "open")
                .with_detail("unsupported open flag for Direct I/O")
                .with_path(path));
        }
        let mode = Mode::from_bits_truncate(options.mode);
        let (attempt, created) = if options.simulate_unsupported {
            (Err(Error::new(Errno::EINVAL, "open")), false)
        } else {
            open_tracked(path, flags, mode, true)
        };
        let fd = match attempt {
            Ok(fd) => return DirectFile::new(fd, Some(path), Mechanism::Direct, flags),
            // With the flags restricted as above, EINVAL from open means "O_DIRECT refused".
            Err(e) if e.errno() == Errno::EINVAL => {
                if is_directory(path) {
                    return Err(Error::new(Errno::EISDIR, "open").with_path(path));
                }
                match options.fallback {
                    Fallback::Error => {
                        if created {
                            // Our own O_EXCL open made it a moment ago; leave no trace of the failure.
                            let _ = file::unlink(path);
                        }
                        return Err(unsupported(path));
                    }
                    Fallback::Buffered => {
                        let flags = if created {
                            flags - OFlag::O_CREAT - OFlag::O_EXCL
                        } else {
                            flags
                        };
                        open_tracked(path, flags, mode, false).0?
                    }
                }
            }
            Err(e) => return Err(e),
        };
        DirectFile::new(fd, Some(path), Mechanism::Buffered, flags)
    }

    fn new(
        fd: OwnedFd,
        path: Option<&Path>,
        mechanism: Mechanism,
        flags: OFlag,
    ) -> Result<DirectFile> {
        let decorate = |e: Error| match path {
            Some(p) => e.with_path(p),
            None => e,
        };
        // The open was non-blocking so that a FIFO could not hang it; I/O must block.
        file::set_nonblocking(&fd, false).map_err(decorate)?;
        let st = file::fstat(&fd).map_err(decorate)?;
        let kind = file::file_type(&st);
        if kind == SFlag::S_IFDIR {
            return Err(decorate(Error::new(Errno::EISDIR, "open")));
        }
        if kind != SFlag::S_IFREG && kind != SFlag::S_IFBLK {
            return Err(decorate(
                Error::new(Errno::EINVAL, "open")
                    .with_detail("Direct I/O needs a regular file or a block device"),
            ));
        }
        let alignment = sys::alignment(&fd).map_err(decorate)?;
        Ok(DirectFile {
            fd,
            path: path.map(Path::to_path_buf),
            alignment,
            mechanism,
            block_device: kind == SFlag::S_IFBLK,
            readable: (flags & OFlag::O_ACCMODE) != OFlag::O_WRONLY,
            bounce: Mutex::new(None),
        })
    }

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
        sys::fadvise(
            &self.fd,
            start,
            end - start,
            PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
    }

    /// The span a bounced piece covers: `(span_start, head, take, span_len)`, where `head` is the gap
    /// between the span's aligned start and `at`, and `take` the caller's bytes in it. One block when
    /// the caller's memory is aligned from the next block boundary on (the head or tail of a request),
    /// else up to [`BOUNCE_SPAN`] (misaligned memory: everything goes through the bounce buffer).
    fn bounce_span(&self, user: &[u8], at: u64) -> (u64, usize, usize, usize) {
        let block = self.block();
        let head = (at % block as u64) as usize;
        let to_boundary = block - head;
        let aligned_after = user.len() > to_boundary
            && sys::misalignment(&user[to_boundary..], self.alignment.memory) == 0;
        let take = if aligned_after || user.len() <= to_boundary {
            user.len().min(to_boundary)
        } else {
            user.len().min(BOUNCE_SPAN.max(block) - head)
        };
        let span_len = (head + take).div_ceil(block) * block;
        (at - head as u64, head, take, span_len)
    }

    /// Whether the next piece at `at` can go straight between the device and `user`.
    fn direct_ok(&self, user: &[u8], at: u64) -> bool {
        let block = self.block();
        at % block as u64 == 0
            && user.len() >= block
            && sys::misalignment(user, self.alignment.memory) == 0
    }

    fn read_bounced(
        &self,
        dst: &mut [u8],
        at: u64,
        scratch: &mut Option<AlignedBuf>,
    ) -> Result<(usize, bool)> {
        if self.direct_ok(dst, at) {
            let whole = dst.len() - dst.len() % self.block();
            return self.read_direct(&mut dst[..whole], at);
        }
        let (start, head, take, span_len) = self.bounce_span(dst, at);
        let bounce = self.bounce_buffer(scratch, span_len)?;
        let n = file::read_at(&self.fd, &mut bounce[..span_len], Some(to_off(start)?))?;
        let got = n.saturating_sub(head).min(take);
        dst[..got].copy_from_slice(&bounce[head..head + got]);
        Ok((got, got < take))
    }

    fn write_bounced(
        &self,
        src: &[u8],
        at: u64,
        scratch: &mut Option<AlignedBuf>,
    ) -> Result<usize> {
        if self.direct_ok(src, at) {
            let whole = src.len() - src.len() % self.block();
            return self.write_direct(&src[..whole], at);
        }
        let block = self.block();
        let (start, head, take, span_len) = self.bounce_span(src, at);
        let size = self.size()?;
        let bounce = self.bounce_buffer(scratch, span_len)?;
        let span = &mut bounce[..span_len];
        span.fill(0);
        // Blocks only partly covered by the caller's bytes keep the file's existing bytes around them.
        let end = at + take as u64;
        let tail_start = end - end % block as u64;
        let mut partial = Vec::with_capacity(2);
        if head > 0 {
            partial.push(start);
        }
        if end % block as u64 != 0 && (tail_start != start || head == 0) {
            partial.push(tail_start);
        }
        for block_start in partial.into_iter().filter(|&b| b < size) {
            if !self.readable {
                return Err(Error::new(Errno::EBADF, "read").with_detail(
                    "a partial-block write over existing data must read that block first: open the file read-write",
                ));
            }
            let from = (block_start - start) as usize;
            file::read_at(
                &self.fd,
                &mut span[from..from + block],
                Some(to_off(block_start)?),
            )?;
        }
        span[head..head + take].copy_from_slice(&src[..take]);
        let n = nonzero(file::write_at(&self.fd, span, Some(to_off(start)?))?)?;
        let written = n.saturating_sub(head).min(take);
        // The padding of a block past the old end made the file longer than intended: trim it.
        let intended = size.max(at + written as u64);
        if start + n as u64 > intended {
            file::ftruncate(&self.fd, to_off(intended)?)?;
        }
        nonzero(written)
    }

    /// A bounce buffer of at least `len` bytes: the one already taken by this step, the file's cached
    /// one, or a new one.
    fn bounce_buffer<'a>(
        &self,
        scratch: &'a mut Option<AlignedBuf>,
        len: usize,
    ) -> Result<&'a mut AlignedBuf> {
        if scratch.is_none() {
            *scratch = self.lock_bounce().take();
        }
        // Page-aligned at least: a buffer straddling pages needs twice the DMA segments.
        let align = (self.alignment.memory.max(self.alignment.offset) as usize)
            .max(probe::page_size())
            .next_power_of_two();
        match scratch {
            Some(buf) if buf.len() >= len && buf.align() >= align => {}
            _ => *scratch = Some(AlignedBuf::zeroed(len.max(self.block()), align)?),
        }
        scratch
            .as_mut()
            .ok_or_else(|| Error::new(Errno::ENOMEM, "alloc"))
    }

    /// Keeps the larger of the step's bounce buffer and the cached one for the next step.
    fn give_back(&self, scratch: Option<AlignedBuf>) {
        let Some(buf) = scratch else { return };
        let mut cached = self.lock_bounce();
        if cached.as_ref().map_or(true, |c| c.len() < buf.len()) {
            *cached = Some(buf);
        }
    }

    fn lock_bounce(&self) -> MutexGuard<'_, Option<AlignedBuf>> {
        crate::sync::lock(&self.bounce)
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

fn is_directory(path: &Path) -> bool {
    file::stat(path).is_ok_and(|st| file::file_type(&st) == SFlag::S_IFDIR)
}

fn unsupported(path: &Path) -> Error {
    Error::new(Errno::EINVAL, "open")
        .with_code(Code::DirectIoUnsupported)
        .with_detail("this filesystem does not support O_DIRECT (set OpenOptions::fallback to Fallback::Buffered for buffered I/O that leaves the page cache alone)")
        .with_path(path)
}

/// Opens `path` (non-blocking, so a FIFO cannot hang the open), with `O_DIRECT` when `direct`.
///
/// Also returns whether this call created the file. An `O_DIRECT` open the filesystem refuses has
/// already created the file when it fails, so `O_CREAT` without `O_EXCL` is done as "open existing,
/// else create exclusively", which tells the two apart.
fn open_tracked(path: &Path, flags: OFlag, mode: Mode, direct: bool) -> (Result<OwnedFd>, bool) {
    let extra = if direct {
        OFlag::O_NONBLOCK | OFlag::O_DIRECT
    } else {
        OFlag::O_NONBLOCK
    };
    let refused = |r: &Result<OwnedFd>| direct && matches!(r, Err(e) if e.errno() == Errno::EINVAL);
    if !flags.contains(OFlag::O_CREAT) {
        return (file::open(path, flags | extra, mode), false);
    }
    if flags.contains(OFlag::O_EXCL) {
        let r = file::open(path, flags | extra, mode);
        let created = r.is_ok() || refused(&r);
        return (r, created);
    }
    // Bounded: a racing creator and deleter could otherwise keep us going round.
    for _ in 0..8 {
        match file::open(path, (flags - OFlag::O_CREAT) | extra, mode) {
            Err(e) if e.errno() == Errno::ENOENT => {}
            other => return (other, false),
        }
        let r = file::open(path, flags | OFlag::O_EXCL | extra, mode);
        if matches!(&r, Err(e) if e.errno() == Errno::EEXIST) {
            continue;
        }
        let created = r.is_ok() || refused(&r);
        return (r, created);
    }
    (file::open(path, flags | extra, mode), false)
}
