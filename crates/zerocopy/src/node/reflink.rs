//! `sys.reflink` / `sys.reflinkSync`.

use napi::bindgen_prelude::AsyncTask;
use napi_derive::napi;

use super::error::to_napi;
use super::task::{to_u64, Blocking};
use crate::sys::file;
use crate::sys::reflink::{self as sys, CloneRange};

/// `FICLONERANGE` arguments; without one the whole file is cloned with `FICLONE`.
#[napi(object)]
pub struct ReflinkRange {
    pub src_offset: i64,
    /// 0 means "to the end of the source".
    pub length: i64,
    pub dst_offset: i64,
}

fn prepare(
    fd_in: i32,
    fd_out: i32,
    range: Option<ReflinkRange>,
) -> napi::Result<impl FnOnce() -> crate::Result<()> + Send + 'static> {
    let fd_in = file::dup_raw(fd_in).map_err(to_napi)?;
    let fd_out = file::dup_raw(fd_out).map_err(to_napi)?;
    let range = range
        .map(|r| -> napi::Result<CloneRange> {
            Ok(CloneRange {
                src_offset: to_u64(r.src_offset, "srcOffset")?,
                length: to_u64(r.length, "length")?,
                dst_offset: to_u64(r.dst_offset, "dstOffset")?,
            })
        })
        .transpose()?;
    Ok(move || match range {
        Some(range) => sys::ficlonerange(&fd_in, &fd_out, range),
        None => sys::ficlone(&fd_in, &fd_out),
    })
}

/// `FICLONE` (or `FICLONERANGE` with a range) on the thread pool.
#[napi(ts_return_type = "Promise<void>")]
pub fn reflink(
    fd_in: i32,
    fd_out: i32,
    range: Option<ReflinkRange>,
) -> napi::Result<AsyncTask<Blocking<()>>> {
    let work = prepare(fd_in, fd_out, range)?;
    Ok(AsyncTask::new(Blocking::new(work)))
}

/// `FICLONE` (or `FICLONERANGE` with a range) on the calling thread.
#[napi(js_name = "reflinkSync")]
pub fn reflink_sync(fd_in: i32, fd_out: i32, range: Option<ReflinkRange>) -> napi::Result<()> {
    prepare(fd_in, fd_out, range)?().map_err(to_napi)
}
