//! Safe wrappers over the system calls, one family per module.
//!
//! Each wrapper does one call (retrying on `EINTR`), takes `impl AsFd` so it cannot outlive the
//! descriptors it uses, and reports failure as [`crate::Error`] naming the syscall.
//!
//! Linux only, except [`probe`], which elsewhere reports every mechanism unavailable.

#[cfg(target_os = "linux")]
pub mod copy_range;
#[cfg(target_os = "linux")]
pub mod counters;
#[cfg(target_os = "linux")]
pub mod direct;
#[cfg(target_os = "linux")]
pub mod file;
#[cfg(target_os = "linux")]
pub mod mmap;
pub mod probe;
#[cfg(target_os = "linux")]
pub mod reflink;
#[cfg(target_os = "linux")]
pub mod sendfile;
#[cfg(target_os = "linux")]
pub mod sigbus;
#[cfg(target_os = "linux")]
pub mod socket;
#[cfg(target_os = "linux")]
pub mod splice;
