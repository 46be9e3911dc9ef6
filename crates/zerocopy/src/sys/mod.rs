//! Safe wrappers over the system calls, one family per module.
//!
//! Each wrapper does one call (retrying on `EINTR`), takes `impl AsFd` so it cannot outlive the
//! descriptors it uses, and reports failure as [`crate::Error`] naming the syscall.
//!
//! Linux only, except [`probe`], which elsewhere reports every mechanism unavailable.

linux_only! {
    pub(crate) mod chain;
    pub mod copy_range;
    pub mod counters;
    pub mod direct;
    pub mod fadvise;
    pub mod file;
    pub mod mmap;
    pub mod reflink;
    pub mod sendfile;
    pub mod sigbus;
    pub mod watch;
    pub mod socket;
    pub mod splice;
}
pub mod probe;
