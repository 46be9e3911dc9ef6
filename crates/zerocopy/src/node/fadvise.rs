//! `sys.fadvise` / `sys.fadviseSync`.

use napi::bindgen_prelude::AsyncTask;
use napi_derive::napi;
use nix::fcntl::PosixFadviseAdvice;

use super::error::{invalid, to_napi};
use super::task::{to_u64, Blocking};
use crate::sys::fadvise as sys;
use crate::sys::file;

fn fadvise_work(
    fd: i32,
    offset: i64,
    length: i64,
    advice: String,
) -> napi::Result<impl FnOnce() -> crate::Result<()> + Send + 'static> {
    let advice = match advice.as_str() {
        "normal" => PosixFadviseAdvice::POSIX_FADV_NORMAL,
        "sequential" => PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL,
        "random" => PosixFadviseAdvice::POSIX_FADV_RANDOM,
        "noreuse" => PosixFadviseAdvice::POSIX_FADV_NOREUSE,
        "willneed" => PosixFadviseAdvice::POSIX_FADV_WILLNEED,
        "dontneed" => PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        _ => return Err(invalid("advice")),
    };
    let fd = file::dup_raw(fd).map_err(to_napi)?;
    let (offset, length) = (to_u64(offset, "offset")?, to_u64(length, "length")?);
    Ok(move || sys::fadvise(&fd, offset, length, advice))
}

/// `posix_fadvise(2)` on the thread pool. `length` 0 means "to the end of the file".
#[napi(ts_return_type = "Promise<void>")]
pub fn fadvise(
    fd: i32,
    offset: i64,
    length: i64,
    advice: String,
) -> napi::Result<AsyncTask<Blocking<()>>> {
    Ok(AsyncTask::new(Blocking::new(fadvise_work(
        fd, offset, length, advice,
    )?)))
}

/// `posix_fadvise(2)` on the calling thread.
#[napi(js_name = "fadviseSync")]
pub fn fadvise_sync(fd: i32, offset: i64, length: i64, advice: String) -> napi::Result<()> {
    fadvise_work(fd, offset, length, advice)?().map_err(to_napi)
}
