//! # zerocopy-io
//!
//! The kernel's zero-copy data paths, wrapped safely: `copy_file_range`, `FICLONE` reflinks, `sendfile`,
//! `mmap` (guarded against truncation by other processes) and Direct I/O (`O_DIRECT`) today, with
//! splice to follow. This crate is the native core of the `zerocopy` npm package; with the `node`
//! feature it also builds the napi-rs addon.
//!
//! - [`sys`]: one module per syscall family. Thin wrappers: one call, `EINTR` retried, errors as [`Error`].
//! - [`copy`]: copying a file, choosing the cheapest mechanism that works
//!   (reflink → `copy_file_range` → `sendfile` → `read`/`write`).
//! - [`direct`]: Direct I/O that bypasses the page cache, with alignment checked up front, a bounce
//!   buffer for unaligned requests and a buffered fallback for filesystems that refuse `O_DIRECT`.
//!
//! ```no_run
//! use zerocopy_io::copy::{copy, CopyOptions, Dest, Source};
//!
//! let done = copy(Source::path("big.iso"), Dest::path("copy.iso"), &CopyOptions::default())?;
//! println!("{} bytes by {}", done.bytes, done.mechanism);
//! # Ok::<(), zerocopy_io::Error>(())
//! ```
//!
//! ## Platforms
//!
//! Every mechanism here is Linux's. On other systems the crate still builds, with [`sys::probe`]
//! alone, reporting each mechanism unavailable; the Node binding built from it exports only
//! `capabilities`, and the `zerocopy` package falls back to portable Node code (or says the feature is
//! unavailable). macOS would add `fcopyfile`/`clonefile` and its own `sendfile`, Windows `TransmitFile`.
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(target_os = "linux")]
pub mod copy;
#[cfg(target_os = "linux")]
pub mod direct;
#[cfg(target_os = "linux")]
mod endpoint;
#[cfg(target_os = "linux")]
pub mod error;
#[cfg(target_os = "linux")]
pub mod ready;
#[cfg(target_os = "linux")]
pub mod relay;
#[cfg(target_os = "linux")]
pub mod send;
#[cfg(target_os = "linux")]
pub mod serve;
pub mod sys;

#[cfg(feature = "node")]
mod node;

#[cfg(target_os = "linux")]
pub use error::{Errno, Error, Result};
