//! The file side of serving static files: open a request's file (beneath a root, safely), take its
//! stat, and read a small one whole — in one call, so a server pays one thread-pool round trip per
//! request instead of three (open, fstat, read).
//!
//! The HTTP side (validators, ranges, negotiation) lives in the TypeScript layer; this module only
//! answers "what is at this path, and, if it is small, what does it hold".

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use crate::sys::file;

/// What a path names, as far as serving goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory (a server then looks for an index file or redirects).
    Directory,
    /// Anything else (FIFO, socket, device): never served.
    Other,
}

impl Kind {
    /// The name the JavaScript layer sees.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Directory => "directory",
            Kind::Other => "other",
        }
    }
}

/// A timestamp as the kernel keeps it: seconds and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds within the second.
    pub nsec: i64,
}

/// An opened file: its identity and stat, and either its fd or (small files) its whole body.
#[derive(Debug)]
pub struct OpenedFile {
    /// The open file, or `None` when `body` holds all of it.
    pub fd: Option<OwnedFd>,
    /// What the path names.
    pub kind: Kind,
    /// Its size: for an inline body, the bytes actually read.
    pub size: u64,
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_mtime`.
    pub mtime: Timestamp,
    /// `st_ctime`.
    pub ctime: Timestamp,
    /// The whole file, for a regular file smaller than the inline limit.
    pub body: Option<Vec<u8>>,
}

/// Opens `path` — beneath the directory `root` with `openat2(RESOLVE_BENEATH)` when given (see
/// [`file::open_beneath`]: `..`, absolute paths and symlinks leading outside are refused with
/// `EXDEV`), else as a trusted path — without blocking on a FIFO, takes its `fstat`, and reads a
/// regular file under `inline_limit` bytes whole, closing it.
///
/// A file that shrinks while it is read is returned as it was read (`size` is the bytes read): the
/// body is always bytes the file held, never padding.
pub fn open_file(root: Option<&Path>, path: &Path, inline_limit: u64) -> crate::Result<OpenedFile> {
    let fd = match root {
        Some(root) => file::open_beneath(root, path)?,
        // Non-blocking, as open_beneath does: a FIFO without a writer must not hang the thread.
        None => file::open_nonblocking(path, OFlag::O_RDONLY | OFlag::O_NOCTTY, Mode::empty())?,
    };
    let st = file::fstat(&fd).map_err(|e| e.with_path(path))?;
    let kind = match file::file_type(&st) {
        SFlag::S_IFREG => Kind::File,
        SFlag::S_IFDIR => Kind::Directory,
        _ => Kind::Other,
    };
    let size = st.st_size.max(0) as u64;
    let mut opened = OpenedFile {
        fd: None,
        kind,
        size,
        dev: st.st_dev,
        ino: st.st_ino,
        mtime: Timestamp {
            sec: st.st_mtime,
            nsec: st.st_mtime_nsec,
        },
        ctime: Timestamp {
            sec: st.st_ctime,
            nsec: st.st_ctime_nsec,
        },
        body: None,
    };
    if kind == Kind::File && size < inline_limit {
        let body = read_whole(&fd, size as usize).map_err(|e| e.with_path(path))?;
        opened.size = body.len() as u64;
        opened.body = Some(body);
    } else {
        opened.fd = Some(fd);
    }
    Ok(opened)
}

/// Reads up to `size` bytes from offset 0, stopping early at end of file.
fn read_whole(fd: &OwnedFd, size: usize) -> crate::Result<Vec<u8>> {
    let mut body = vec![0; size];
    let mut got = 0;
    while got < body.len() {
        // `got` is below `size`, itself from a non-negative i64.
        match file::read_at(fd, &mut body[got..], Some(got as i64))? {
            0 => break,
            n => got += n,
        }
    }
    body.truncate(got);
    Ok(body)
}
