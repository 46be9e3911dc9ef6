//! Copying a file with the cheapest mechanism that works.
//!
//! The chain, tried in order per copy: `FICLONERANGE` reflink (shares blocks, copies nothing) →
//! `copy_file_range` (in-kernel copy, server-side on NFS/SMB) → `sendfile` (in-kernel, works across
//! filesystems) → `read`/`write` through a user-space buffer. A mechanism is abandoned for the next one
//! only while no byte has moved, and only for the errors that mean "not here" (`EXDEV`, `ENOSYS`,
//! `EOPNOTSUPP`, `EPERM` from seccomp, `EINVAL`) or when it reports end of file at the very start of a
//! non-empty source (procfs, some overlayfs kernels). Any other error, or any error after progress, is
//! reported with the byte count reached.
//!
//! Positions follow `copy_file_range(2)`: an explicit offset leaves the fd's file position alone; without
//! one the copy starts at the fd's position and leaves it advanced by the bytes copied.
//!
//! A [`CopyJob`] moves data in steps of a caller-chosen size, so a caller (the Node binding) can check
//! for cancellation and report progress between steps; [`copy`] runs one to completion.

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::Whence;

use crate::endpoint::{open_nonblocking, settle, start_of, End, Position};
use crate::error::{Error, Result};
use crate::sys::reflink::CloneRange;
use crate::sys::{copy_range, file, reflink, sendfile};

/// The buffer size of the read/write fallback.
const RW_BUFFER: usize = 1 << 20;

/// The name copy-level errors (not tied to one syscall) report, as Node's `fs.copyFile` does.
const SYSCALL: &str = "copyfile";

/// How bytes were (or are being) moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `FICLONE`/`FICLONERANGE`: blocks shared, no data copied.
    Reflink,
    /// `copy_file_range(2)`.
    CopyFileRange,
    /// `sendfile(2)`.
    Sendfile,
    /// `read(2)` + `write(2)` through a user-space buffer.
    ReadWrite,
}

impl Mechanism {
    /// The name reported to users: `"reflink"`, `"copy_file_range"`, `"sendfile"` or `"readwrite"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Reflink => "reflink",
            Mechanism::CopyFileRange => "copy_file_range",
            Mechanism::Sendfile => "sendfile",
            Mechanism::ReadWrite => "readwrite",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether to share blocks instead of copying them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reflink {
    /// Reflink where the filesystem can, copy otherwise.
    #[default]
    Auto,
    /// Reflink or fail (e.g. `EOPNOTSUPP` on ext4, `EXDEV` across filesystems, `EINVAL` for a range
    /// not aligned to the filesystem block size).
    Always,
    /// Always copy the data. `copy_file_range` is skipped too, because on XFS, btrfs and NFS it may
    /// share blocks or copy server-side; the copy starts at `sendfile`.
    Never,
}

/// Where bytes come from.
#[derive(Debug)]
pub enum Source {
    /// A path, opened read-only by the copy.
    Path(PathBuf),
    /// A descriptor the copy owns (see [`Source::fd`]).
    Fd(OwnedFd),
}

impl Source {
    /// A path to open read-only.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Source::Path(path.into())
    }

    /// A private duplicate (`F_DUPFD_CLOEXEC`) of `fd`, so the caller may close its own at any time.
    pub fn fd(fd: impl AsFd) -> Result<Self> {
        Ok(Source::Fd(file::dup_cloexec(fd.as_fd())?))
    }
}

/// Where bytes go.
#[derive(Debug)]
pub enum Dest {
    /// A path, created if missing. Unless `dst_offset` is given, an existing file is truncated first
    /// (after checking it is not the source itself).
    Path {
        /// The file to write.
        path: PathBuf,
        /// `false` fails with `EEXIST` if the file exists (`COPYFILE_EXCL`).
        overwrite: bool,
        /// Permission bits. A new file gets `mode` (default: the source's `0o777` bits), less the
        /// umask, as `cp` does; an explicit `mode` is also applied, exactly, to an existing file.
        mode: Option<u32>,
    },
    /// A descriptor the copy owns (see [`Dest::fd`]).
    Fd(OwnedFd),
}

impl Dest {
    /// A path, overwritten if it exists, with the source's permission bits when created.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Dest::Path {
            path: path.into(),
            overwrite: true,
            mode: None,
        }
    }

    /// A private duplicate (`F_DUPFD_CLOEXEC`) of `fd`.
    pub fn fd(fd: impl AsFd) -> Result<Self> {
        Ok(Dest::Fd(file::dup_cloexec(fd.as_fd())?))
    }
}

/// What to copy and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// Reflink policy (default [`Reflink::Auto`]).
    pub reflink: Reflink,
    /// Where to start reading. Default: 0 for a path, the file position for an fd (which then advances).
    pub offset: Option<u64>,
    /// The most bytes to copy. Default: to the end of the source. The copy stops early at end of file.
    pub length: Option<u64>,
    /// Where to start writing. Default: 0 for a path, the file position for an fd (which then advances).
    /// With a path destination, an offset also means "do not truncate".
    pub dst_offset: Option<u64>,
    /// Restrict the copy to these mechanisms, in this order (for tests and benchmarks). `None`: the
    /// chain implied by `reflink`.
    pub mechanisms: Option<Vec<Mechanism>>,
}

/// The outcome of a finished copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Bytes written to the destination.
    pub bytes: u64,
    /// The mechanism that moved them.
    pub mechanism: Mechanism,
}

/// Copies `src` into `dst` to completion.
pub fn copy(src: Source, dst: Dest, options: &CopyOptions) -> Result<Copied> {
    let mut job = CopyJob::open(src, dst, options)?;
    while !job.step(u64::MAX)? {}
    Ok(Copied {
        bytes: job.bytes(),
        mechanism: job.mechanism(),
    })
}

/// A copy in progress: open files, the mechanism chain and the bytes moved so far.
///
/// Dropping a job closes its descriptors; an unfinished copy leaves the destination holding the bytes
/// written so far.
#[derive(Debug)]
pub struct CopyJob {
    /// `None` once finished or failed: the fds are closed as soon as the copy ends.
    ends: Option<(End, End)>,
    chain: Vec<Mechanism>,
    current: usize,
    /// The most bytes still allowed (the requested length, clamped to the source size when known).
    limit: Option<u64>,
    /// Whether the source should have bytes (a regular file with data in range), so that an immediate
    /// end of file means "mechanism not supported here" rather than "empty".
    expect_data: bool,
    moved: u64,
    /// The destination's file position has been moved to where `sendfile` must write.
    dst_positioned: bool,
    buffer: Vec<u8>,
}

impl CopyJob {
    /// Opens both ends and plans the copy; no data moves yet.
    ///
    /// Fails before any data moves on: a directory on either side (`EISDIR`), an existing destination
    /// with `overwrite: false` (`EEXIST`), the same file as source and destination with overlapping
    /// ranges (`EINVAL`), an offset on a stream (`ESPIPE`), an offset on an `O_APPEND` destination
    /// (`EINVAL`), and whatever `open` reports.
    pub fn open(src: Source, dst: Dest, options: &CopyOptions) -> Result<CopyJob> {
        let (src_fd, src_path) = match src {
            Source::Path(path) => (
                open_nonblocking(&path, OFlag::O_RDONLY, Mode::empty())?,
                Some(path),
            ),
            Source::Fd(fd) => (fd, None),
        };
        let decorate = |e: Error, dst_path: Option<&Path>| {
            let e = match &src_path {
                Some(p) => e.with_path(p),
                None => e,
            };
            match dst_path {
                Some(d) => e.with_dest(d),
                None => e,
            }
        };
        let src_stat = file::fstat(&src_fd).map_err(|e| decorate(e, None))?;
        if file::file_type(&src_stat) == SFlag::S_IFDIR {
            return Err(decorate(Error::new(Errno::EISDIR, SYSCALL), None));
        }

        let (dst_fd, dst_path, truncate, chmod) = match dst {
            Dest::Path {
                path,
                overwrite,
                mode,
            } => {
                let mut flags = OFlag::O_WRONLY | OFlag::O_CREAT;
                if !overwrite {
                    flags |= OFlag::O_EXCL;
                }
                let create_mode = mode.unwrap_or(src_stat.st_mode & 0o777);
                let fd = open_nonblocking(&path, flags, Mode::from_bits_truncate(create_mode))?;
                (fd, Some(path), options.dst_offset.is_none(), mode)
            }
            Dest::Fd(fd) => (fd, None, false, None),
        };
        let fail = |e: Error| decorate(e, dst_path.as_deref());
        let dst_stat = file::fstat(&dst_fd).map_err(fail)?;
        if file::file_type(&dst_stat) == SFlag::S_IFDIR {
            return Err(fail(Error::new(Errno::EISDIR, SYSCALL)));
        }
        let src_regular = file::file_type(&src_stat) == SFlag::S_IFREG;
        let dst_regular = file::file_type(&dst_stat) == SFlag::S_IFREG;
        let append = file::status_flags(&dst_fd)
            .map_err(fail)?
            .contains(OFlag::O_APPEND);
        if append && options.dst_offset.is_some() {
            return Err(fail(Error::new(Errno::EINVAL, SYSCALL).with_detail(
                "an O_APPEND destination cannot take CopyOptions::dst_offset",
            )));
        }

        let src_owned = src_path.is_some();
        let dst_owned = dst_path.is_some();
        let (src_start, src_position) =
            start_of(&src_fd, options.offset, src_owned, SYSCALL).map_err(fail)?;
        let (dst_start, dst_position) = if append {
            (None, Position::Leave)
        } else {
            start_of(&dst_fd, options.dst_offset, dst_owned, SYSCALL).map_err(fail)?
        };

        // Regular files have a known size: copy what is there now (a growing file, or a file appended
        // to itself, still ends). Other sources (procfs reports size 0, pipes) are read until EOF.
        let known_size = src_regular && src_stat.st_size > 0;
        let limit = if known_size {
            let available = (src_stat.st_size as u64).saturating_sub(src_start.unwrap_or(0) as u64);
            Some(options.length.map_or(available, |l| l.min(available)))
        } else {
            options.length
        };

        if same_file(&src_stat, &dst_stat) {
            if truncate {
                return Err(fail(
                    Error::new(Errno::EINVAL, SYSCALL)
                        .with_detail("source and destination are the same file"),
                ));
            }
            let len = limit.unwrap_or(0) as i64;
            let from = src_start.unwrap_or(0);
            let to = dst_start.unwrap_or(dst_stat.st_size);
            if len > 0 && from < to + len && to < from + len {
                return Err(fail(Error::new(Errno::EINVAL, SYSCALL).with_detail(
                    "source and destination ranges overlap in the same file",
                )));
            }
        }
        if truncate && dst_regular {
            file::ftruncate(&dst_fd, 0).map_err(fail)?;
        }
        if let (Some(mode), true) = (chmod, dst_regular) {
            file::fchmod(&dst_fd, mode).map_err(fail)?;
        }

        // With nothing in range (offset at or past the end, length 0) no in-kernel path has work to do.
        let in_kernel = known_size && limit != Some(0) && dst_regular && !append;
        let chain = options
            .mechanisms
            .clone()
            .unwrap_or_else(|| plan(options.reflink, in_kernel));
        Ok(CopyJob {
            ends: Some((
                End {
                    fd: src_fd,
                    path: src_path,
                    start: src_start,
                    position: src_position,
                },
                End {
                    fd: dst_fd,
                    path: dst_path,
                    start: dst_start,
                    position: dst_position,
                },
            )),
            chain,
            current: 0,
            limit,
            expect_data: known_size && limit.is_some_and(|l| l > 0),
            moved: 0,
            dst_positioned: false,
            buffer: Vec::new(),
        })
    }

    /// Bytes written to the destination so far.
    pub fn bytes(&self) -> u64 {
        self.moved
    }

    /// The total the copy expects to move, when known (regular source, or an explicit length).
    pub fn total(&self) -> Option<u64> {
        self.limit
    }

    /// The mechanism in use (or that finished the copy).
    pub fn mechanism(&self) -> Mechanism {
        self.chain
            .get(self.current)
            .or(self.chain.last())
            .copied()
            .unwrap_or(Mechanism::ReadWrite)
    }

    /// Whether the copy has ended (finished, failed or been closed).
    pub fn is_finished(&self) -> bool {
        self.ends.is_none()
    }

    /// Moves up to about `budget` more bytes. Returns `Ok(true)` once the copy is complete.
    ///
    /// On completion or error the fds' positions are settled and the fds closed; an error carries the
    /// paths involved, and [`bytes`](Self::bytes) tells how far the copy got.
    pub fn step(&mut self, budget: u64) -> Result<bool> {
        let Some((src, dst)) = self.ends.take() else {
            return Ok(true);
        };
        let result = self.advance(&src, &dst, budget);
        let finished = !matches!(result, Ok(false));
        if finished {
            settle(&src, self.moved);
            settle(&dst, self.moved);
        } else {
            self.ends = Some((src, dst));
            return Ok(false);
        }
        result.map_err(|e| {
            let e = match &src.path {
                Some(p) => e.with_path(p),
                None => e,
            };
            match &dst.path {
                Some(p) => e.with_dest(p),
                None => e,
            }
        })
    }

    /// Ends the copy now: settles positions and closes the fds. Bytes written so far stay written.
    pub fn close(&mut self) {
        if let Some((src, dst)) = self.ends.take() {
            settle(&src, self.moved);
            settle(&dst, self.moved);
        }
    }

    fn remaining(&self) -> u64 {
        self.limit.map_or(u64::MAX, |l| l - self.moved)
    }

    fn advance(&mut self, src: &End, dst: &End, budget: u64) -> Result<bool> {
        let mut budget = budget;
        loop {
            if self.remaining() == 0 {
                return Ok(true);
            }
            if budget == 0 {
                return Ok(false);
            }
            let mechanism = self.mechanism();
            let want = self.remaining().min(budget);
            let attempt = match mechanism {
                Mechanism::Reflink => self.reflink(src, dst),
                Mechanism::CopyFileRange => self.copy_file_range(src, dst, want),
                Mechanism::Sendfile => self.sendfile(src, dst, want),
                Mechanism::ReadWrite => self.read_write(src, dst, want),
            };
            match attempt {
                Ok(0)
                    if self.moved == 0 && self.expect_data && mechanism != Mechanism::ReadWrite =>
                {
                    // End of file at the start of a non-empty source: this mechanism cannot read it.
                    if !self.fall_back() {
                        return Err(Error::new(Errno::EOPNOTSUPP, mechanism_syscall(mechanism)));
                    }
                }
                Ok(0) => return Ok(true),
                Ok(n) => {
                    self.moved += n;
                    budget = budget.saturating_sub(n);
                }
                Err(e) if self.moved == 0 && falls_back(e.errno()) && self.fall_back() => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves to the next mechanism; false if there is none.
    fn fall_back(&mut self) -> bool {
        if self.current + 1 < self.chain.len() {
            self.current += 1;
            true
        } else {
            false
        }
    }

    fn reflink(&mut self, src: &End, dst: &End) -> Result<u64> {
        let (Some(from), Some(to)) = (src.start, dst.start) else {
            return Err(Error::new(Errno::EINVAL, "ioctl_ficlonerange"));
        };
        // No known size (an empty file): 0 asks the kernel to share up to the source's end.
        let length = self.limit.unwrap_or(0);
        let range = CloneRange {
            src_offset: from as u64,
            length,
            dst_offset: to as u64,
        };
        reflink::ficlonerange(&src.fd, &dst.fd, range)?;
        Ok(length)
    }

    fn copy_file_range(&mut self, src: &End, dst: &End, want: u64) -> Result<u64> {
        let len = clamp(want, copy_range::MAX_CHUNK);
        let mut off_in = src.at(self.moved);
        let mut off_out = dst.at(self.moved);
        let n =
            copy_range::copy_file_range(&src.fd, off_in.as_mut(), &dst.fd, off_out.as_mut(), len)?;
        Ok(n as u64)
    }

    fn sendfile(&mut self, src: &End, dst: &End, want: u64) -> Result<u64> {
        // sendfile writes at the destination's file position: put it where this copy writes.
        if !self.dst_positioned {
            if let Some(at) = dst.at(self.moved) {
                file::lseek(&dst.fd, at, Whence::SeekSet)?;
            }
            self.dst_positioned = true;
        }
        let len = clamp(want, sendfile::MAX_CHUNK);
        let mut offset = src.at(self.moved);
        let n = sendfile::sendfile(&dst.fd, &src.fd, offset.as_mut(), len)?;
        Ok(n as u64)
    }

    fn read_write(&mut self, src: &End, dst: &End, want: u64) -> Result<u64> {
        if self.buffer.is_empty() {
            let size = clamp(self.remaining(), RW_BUFFER).max(1);
            self.buffer = vec![0; size];
        }
        let len = clamp(want, self.buffer.len());
        let n = file::read_at(&src.fd, &mut self.buffer[..len], src.at(self.moved))?;
        if n == 0 {
            return Ok(0);
        }
        if let Err((e, written)) =
            file::write_all_at(&dst.fd, &self.buffer[..n], dst.at(self.moved))
        {
            self.moved += written as u64;
            return Err(e);
        }
        Ok(n as u64)
    }
}

fn clamp(want: u64, cap: usize) -> usize {
    usize::try_from(want).map_or(cap, |w| w.min(cap))
}

/// The chain for a reflink policy. Without a regular file on both sides (and no `O_APPEND`), only
/// read/write can work — unless reflink is demanded, in which case its own error is the answer.
fn plan(policy: Reflink, regular: bool) -> Vec<Mechanism> {
    use Mechanism::{CopyFileRange, ReadWrite, Sendfile};
    match (policy, regular) {
        (Reflink::Always, _) => vec![Mechanism::Reflink],
        (Reflink::Auto, true) => vec![Mechanism::Reflink, CopyFileRange, Sendfile, ReadWrite],
        (Reflink::Never, true) => vec![Sendfile, ReadWrite],
        (_, false) => vec![ReadWrite],
    }
}

/// Errors that mean "this mechanism does not work for these files", so the next one should try.
fn falls_back(errno: Errno) -> bool {
    matches!(
        errno,
        Errno::EXDEV
            | Errno::ENOSYS
            | Errno::EOPNOTSUPP
            | Errno::EPERM
            | Errno::EINVAL
            | Errno::ENOTTY
    )
}

fn mechanism_syscall(mechanism: Mechanism) -> &'static str {
    match mechanism {
        Mechanism::Reflink => "ioctl_ficlonerange",
        Mechanism::CopyFileRange => "copy_file_range",
        Mechanism::Sendfile => "sendfile",
        Mechanism::ReadWrite => "read",
    }
}

fn same_file(a: &FileStat, b: &FileStat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}
