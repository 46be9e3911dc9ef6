//! Opening a [`DirectFile`]: the flags it accepts, `O_DIRECT` tried first, a refusal told apart from
//! other `EINVAL`s, a file created by a refused open removed again, and the buffered fallback.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use super::{DirectFile, Fallback, Mechanism, OpenOptions};
use crate::error::{Code, Error, Result};
use crate::sys::direct as sys;
use crate::sys::file;

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

impl DirectFile {
    /// Opens `path` for Direct I/O.
    ///
    /// Fails with `EINVAL` for flags outside [`OpenOptions::flags`]' list, `EISDIR` for a directory,
    /// `EINVAL` for anything but a regular file or a block device, code [`UNSUPPORTED`](super::UNSUPPORTED) when the
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
