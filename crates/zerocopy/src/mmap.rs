//! Mapping a window of a file: open it (or take an fd), check that it is a regular file, check the
//! window against its size, map it ([`sys::mmap`](crate::sys::mmap), with the truncation guard),
//! advise and populate. The Node binding's `mmap` is this plus the hand-over of the memory to a
//! JavaScript Buffer.
//!
//! ```no_run
//! use zerocopy_io::copy::Source;
//! use zerocopy_io::mmap::{map_file, Fit, MapOptions};
//!
//! let mapped = map_file(Source::path("data.bin"), &MapOptions::default())?;
//! assert_eq!(mapped.fit, Fit::Ok);
//! if let Some(region) = &mapped.region {
//!     // SAFETY: nothing writes to the file while the slice lives.
//!     let bytes = unsafe { region.as_slice() };
//!     println!("{} of {} bytes", bytes.len(), mapped.file_size);
//! }
//! # Ok::<(), zerocopy_io::Error>(())
//! ```

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode as FileMode, SFlag};

pub use crate::copy::Source;
use crate::error::{Error, Result};
use crate::sys::file;
use crate::sys::mmap::{self, Advice, Mmap, MmapOptions, Mode, Residency};

/// What to map: a window of `length` bytes (default: to the end of the file) from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapOptions {
    /// How to map; a path is opened read-write for [`Mode::Write`], read-only otherwise.
    pub mode: Mode,
    /// The file offset of the window's first byte; any value.
    pub offset: u64,
    /// The window's length; `None` for "to the end of the file".
    pub length: Option<u64>,
    /// The longest window to map; a longer one is reported as [`Fit::TooLong`], not mapped.
    pub max_length: u64,
    /// Read the window's pages in before returning (after the advice).
    pub populate: bool,
    /// `madvise` the whole window after mapping.
    pub advice: Option<Advice>,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            mode: Mode::Read,
            offset: 0,
            length: None,
            max_length: u64::MAX,
            populate: false,
            advice: None,
        }
    }
}

/// Whether the requested window could be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    Ok,
    /// The offset is past the end of the file.
    Offset,
    /// The window runs past the end of the file.
    Length,
    /// The window is longer than [`MapOptions::max_length`].
    TooLong,
}

/// A mapped window, or why nothing was mapped.
#[derive(Debug)]
pub struct Mapped {
    /// `None` for an empty window (nothing to map) or one that does not [`Fit`].
    pub region: Option<Mmap>,
    /// The file's size when it was mapped.
    pub file_size: u64,
    pub fit: Fit,
}

impl Mapped {
    fn unmapped(file_size: u64, fit: Fit) -> Mapped {
        Mapped {
            region: None,
            file_size,
            fit,
        }
    }
}

/// Opens (or takes) the file, checks the window against its size and maps it.
///
/// Errors: `EISDIR` for a directory, `ENODEV` for anything else but a regular file (FIFOs, sockets,
/// devices: checked before anything reads or maps), and what opening and [`MmapOptions::map`] report.
/// Errors carry the path, if there is one.
pub fn map_file(source: Source, options: &MapOptions) -> Result<Mapped> {
    let path = match &source {
        Source::Path(p) => Some(p.clone()),
        Source::Fd(_) => None,
    };
    let with_path = |e: Error| match &path {
        Some(p) => e.with_path(p),
        None => e,
    };
    let fd = match source {
        Source::Path(p) => {
            let access = if options.mode == Mode::Write {
                OFlag::O_RDWR
            } else {
                OFlag::O_RDONLY
            };
            open_path(&p, access)?
        }
        Source::Fd(fd) => fd,
    };
    let file_size = regular_size(&fd, "mmap").map_err(with_path)?;
    let Some(len) = mmap::window(file_size, options.offset, options.length) else {
        let fit = if options.offset > file_size {
            Fit::Offset
        } else {
            Fit::Length
        };
        return Ok(Mapped::unmapped(file_size, fit));
    };
    if len > options.max_length {
        return Ok(Mapped::unmapped(file_size, Fit::TooLong));
    }
    if len == 0 {
        return Ok(Mapped::unmapped(file_size, Fit::Ok));
    }
    let len = usize::try_from(len).map_err(|_| Error::new(Errno::ENOMEM, "mmap"))?;
    let region = MmapOptions {
        mode: options.mode,
        offset: options.offset,
        len,
        populate: false,
    }
    .map(&fd)
    .map_err(with_path)?;
    if let Some(advice) = options.advice {
        region.advise(advice, 0, len).map_err(with_path)?;
    }
    // After the advice, so that the pages are read in as it says: with 'hugepage', readahead fills
    // the page cache with 2 MiB folios (where the filesystem has large folios) and they are mapped
    // as huge pages; with 'random', without readahead beyond the window.
    if options.populate {
        region.populate();
    }
    Ok(Mapped {
        region: Some(region),
        file_size,
        fit: Fit::Ok,
    })
}

/// How much of a file is in the page cache (`mincore` over a temporary, untouched mapping). Refuses
/// what [`map_file`] refuses, with the same errors.
pub fn file_residency(source: Source) -> Result<Residency> {
    match source {
        Source::Path(p) => {
            let fd = open_path(&p, OFlag::O_RDONLY)?;
            regular_size(&fd, "mmap")
                .and_then(|_| mmap::file_residency(&fd))
                .map_err(|e| e.with_path(&p))
        }
        Source::Fd(fd) => regular_size(&fd, "mmap").and_then(|_| mmap::file_residency(&fd)),
    }
}

/// Opens a path for mapping: non-blocking, so that a FIFO without a writer (or a device that waits for
/// a carrier) cannot hang the open, nor the pool thread it runs on.
fn open_path(path: &Path, access: OFlag) -> Result<OwnedFd> {
    file::open_nonblocking(path, access | OFlag::O_NOCTTY, FileMode::empty())
}

/// Only regular files can be mapped: `EISDIR` for a directory, `ENODEV` for the rest (FIFOs, sockets,
/// devices), checked with `fstat` before anything reads or maps. Returns the file's size.
fn regular_size(fd: &OwnedFd, syscall: &'static str) -> Result<u64> {
    let st = file::fstat(fd)?;
    match file::file_type(&st) {
        SFlag::S_IFREG => Ok(st.st_size.max(0) as u64),
        SFlag::S_IFDIR => Err(Error::new(Errno::EISDIR, syscall)),
        _ => {
            Err(Error::new(Errno::ENODEV, syscall).with_detail("only regular files can be mapped"))
        }
    }
}
