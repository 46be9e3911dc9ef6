//! Internal file helpers for the TS layer (not part of the `sys` namespace).

use std::ffi::OsStr;
use std::os::fd::IntoRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use napi::bindgen_prelude::{AsyncTask, Buffer};
use napi_derive::napi;

use super::task::Blocking;
use crate::sys::file;

/// Opens `path` read-only beneath the directory `root` (openat2 RESOLVE_BENEATH) on the thread pool.
/// Resolves to a raw fd that the caller must close.
#[napi(js_name = "openBeneath", ts_return_type = "Promise<number>")]
pub fn open_beneath(root: Buffer, path: Buffer) -> AsyncTask<Blocking<i32>> {
    let root = PathBuf::from(OsStr::from_bytes(&root));
    let path = PathBuf::from(OsStr::from_bytes(&path));
    AsyncTask::new(Blocking::new(move || {
        file::open_beneath(&root, &path).map(IntoRawFd::into_raw_fd)
    }))
}
