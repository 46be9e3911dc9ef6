//! `sys.copyFileRange` / `sys.copyFileRangeSync`.

use napi::bindgen_prelude::AsyncTask;
use napi_derive::napi;

use super::error::to_napi;
use super::task::{to_js_number, to_u64, Blocking};
use crate::sys::{copy_range, file};

fn prepare(
    fd_in: i32,
    fd_out: i32,
    offset_in: Option<i64>,
    offset_out: Option<i64>,
    length: i64,
) -> napi::Result<impl FnOnce() -> crate::Result<f64> + Send + 'static> {
    let fd_in = file::dup_raw(fd_in).map_err(to_napi)?;
    let fd_out = file::dup_raw(fd_out).map_err(to_napi)?;
    let mut off_in = offset_in
        .map(|o| to_u64(o, "offsetIn").map(|v| v as i64))
        .transpose()?;
    let mut off_out = offset_out
        .map(|o| to_u64(o, "offsetOut").map(|v| v as i64))
        .transpose()?;
    let len = usize::try_from(to_u64(length, "length")?).unwrap_or(usize::MAX);
    Ok(move || {
        copy_range::copy_file_range(&fd_in, off_in.as_mut(), &fd_out, off_out.as_mut(), len)
            .map(|n| to_js_number(n as u64))
    })
}

/// One `copy_file_range(2)` call on the thread pool. Resolves to the bytes copied (0 at end of file).
#[napi(js_name = "copyFileRange", ts_return_type = "Promise<number>")]
pub fn copy_file_range(
    fd_in: i32,
    fd_out: i32,
    offset_in: Option<i64>,
    offset_out: Option<i64>,
    length: i64,
) -> napi::Result<AsyncTask<Blocking<f64>>> {
    let work = prepare(fd_in, fd_out, offset_in, offset_out, length)?;
    Ok(AsyncTask::new(Blocking::new(work)))
}

/// One `copy_file_range(2)` call on the calling thread.
#[napi(js_name = "copyFileRangeSync")]
pub fn copy_file_range_sync(
    fd_in: i32,
    fd_out: i32,
    offset_in: Option<i64>,
    offset_out: Option<i64>,
    length: i64,
) -> napi::Result<f64> {
    prepare(fd_in, fd_out, offset_in, offset_out, length)?().map_err(to_napi)
}
