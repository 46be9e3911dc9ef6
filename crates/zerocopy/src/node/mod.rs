//! The napi-rs exports: argument conversion, a call into [`crate::sys`] or [`crate::copy`], error
//! conversion. No syscall is made here.
//!
//! Outside Linux only `capabilities` (every mechanism unavailable) and the `watch*` functions (which
//! fail softly) are exported: the TypeScript layer then uses its portable fallbacks.
//!
//! Arguments arrive already validated by the TypeScript layer (`js/`); the checks here only keep a
//! direct caller of the raw binding from reaching undefined behaviour or a panic.

// napi classes and objects hold JS handles (Buffer, Mutex of job state); Debug output would say nothing useful.
#![allow(missing_debug_implementations)]
// napi-derive registers exports only outside cfg(test), so a test build sees them as unused.
#![cfg_attr(test, allow(dead_code))]

// One cfg per module rather than the crate's `linux_only!`: napi-derive must see each struct before
// its `#[napi] impl`, which it does not when the modules are declared by a macro.
#[cfg(target_os = "linux")]
mod bench;
#[cfg(target_os = "linux")]
mod copy;
#[cfg(target_os = "linux")]
mod copy_range;
#[cfg(target_os = "linux")]
mod direct;
#[cfg(target_os = "linux")]
mod error;
#[cfg(target_os = "linux")]
mod fadvise;
#[cfg(target_os = "linux")]
mod file;
#[cfg(target_os = "linux")]
mod mmap;
mod probe;
#[cfg(target_os = "linux")]
mod reflink;
#[cfg(target_os = "linux")]
mod relay;
#[cfg(target_os = "linux")]
mod send;
#[cfg(target_os = "linux")]
mod sendfile;
#[cfg(target_os = "linux")]
mod splice;
#[cfg(target_os = "linux")]
mod task;
mod watch;
