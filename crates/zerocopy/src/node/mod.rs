//! The napi-rs exports: argument conversion, a call into [`crate::sys`] or [`crate::copy`], error
//! conversion. No syscall is made here.
//!
//! Arguments arrive already validated by the TypeScript layer (`js/`); the checks here only keep a
//! direct caller of the raw binding from reaching undefined behaviour or a panic.

// napi classes and objects hold JS handles (Buffer, Mutex of job state); Debug output would say nothing useful.
#![allow(missing_debug_implementations)]
// napi-derive registers exports only outside cfg(test), so a test build sees them as unused.
#![cfg_attr(test, allow(dead_code))]

mod bench;
mod copy;
mod copy_range;
mod direct;
mod error;
mod file;
mod mmap;
mod probe;
mod reflink;
mod send;
mod sendfile;
mod task;
