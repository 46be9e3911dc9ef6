//! `sys.sendfile` / `sys.sendfileSync`.

use napi::bindgen_prelude::AsyncTask;
use napi_derive::napi;

use super::error::to_napi;
use super::task::{to_js_number, to_u64, Blocking};
use crate::sys::{file, sendfile as sys};

fn prepare(
    out_fd: i32,
    in_fd: i32,
    offset: Option<i64>,
    length: i64,
) -> napi::Result<impl FnOnce() -> crate::Result<f64> + Send + 'static> {
    let out_fd = file::dup_raw(out_fd).map_err(to_napi)?;
    let in_fd = file::dup_raw(in_fd).map_err(to_napi)?;
    let mut offset = offset
        .map(|o| to_u64(o, "offset").map(|v| v as i64))
        .transpose()?;
    let len = usize::try_from(to_u64(length, "length")?).unwrap_or(usize::MAX);
    Ok(
        move || {
            sys::sendfile(&out_fd, &in_fd, offset.as_mut(), len).map(|n| to_js_number(n as u64))
        },
    )
}

/// One `sendfile(2)` call on the thread pool. Resolves to the bytes moved (0 at end of file).
#[napi(ts_return_type = "Promise<number>")]
pub fn sendfile(
    out_fd: i32,
    in_fd: i32,
    offset: Option<i64>,
    length: i64,
) -> napi::Result<AsyncTask<Blocking<f64>>> {
    let work = prepare(out_fd, in_fd, offset, length)?;
    Ok(AsyncTask::new(Blocking::new(work)))
}

/// One `sendfile(2)` call on the calling thread.
#[napi(js_name = "sendfileSync")]
pub fn sendfile_sync(
    out_fd: i32,
    in_fd: i32,
    offset: Option<i64>,
    length: i64,
) -> napi::Result<f64> {
    prepare(out_fd, in_fd, offset, length)?().map_err(to_napi)
}
