//! # zerocopy-io
//!
//! The kernel's zero-copy data paths, wrapped safely: `copy_file_range`, `FICLONE` reflinks, `sendfile`
//! and `mmap` (guarded against truncation by other processes) today, with splice and O_DIRECT to follow. This crate is the native core of the
//! `zerocopy` npm package; with the `node` feature it also builds the napi-rs addon.
//!
//! - [`sys`]: one module per syscall family. Thin wrappers: one call, `EINTR` retried, errors as [`Error`].
//! - [`copy`]: copying a file, choosing the cheapest mechanism that works
//!   (reflink → `copy_file_range` → `sendfile` → `read`/`write`).
//!
//! ```no_run
//! use zerocopy_io::copy::{copy, CopyOptions, Dest, Source};
//!
//! let done = copy(Source::path("big.iso"), Dest::path("copy.iso"), &CopyOptions::default())?;
//! println!("{} bytes by {}", done.bytes, done.mechanism);
//! # Ok::<(), zerocopy_io::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![cfg(target_os = "linux")]

pub mod copy;
mod endpoint;
pub mod error;
pub mod ready;
pub mod send;
pub mod sys;

#[cfg(feature = "node")]
mod node;

pub use error::{Errno, Error, Result};
