//! `sys.splice`, `sys.tee`, `sys.vmsplice`, `sys.pipe` and their `Sync` twins.

use std::os::fd::{AsFd, IntoRawFd, OwnedFd};

use napi::bindgen_prelude::{AsyncTask, Buffer};
use napi_derive::napi;
use nix::fcntl::OFlag;

use super::error::to_napi;
use super::task::{to_js_number, to_u64, Blocking};
use crate::relay::PipePool;
use crate::sys::file;
use crate::sys::splice::{self as sys, SpliceCopy, SpliceFlags};

/// Options of one `splice` call, as the TS layer validated them.
#[napi(object)]
pub struct SpliceCall {
    pub offset_in: Option<i64>,
    pub offset_out: Option<i64>,
    pub length: i64,
    /// SPLICE_F_MORE
    pub more: Option<bool>,
    /// SPLICE_F_NONBLOCK
    pub nonblock: Option<bool>,
    /// SPLICE_F_MOVE
    #[napi(js_name = "move")]
    pub move_pages: Option<bool>,
}

fn flags(nonblock: Option<bool>, more: Option<bool>, move_pages: Option<bool>) -> SpliceFlags {
    let mut flags = SpliceFlags::empty();
    flags.set(SpliceFlags::SPLICE_F_NONBLOCK, nonblock == Some(true));
    flags.set(SpliceFlags::SPLICE_F_MORE, more == Some(true));
    flags.set(SpliceFlags::SPLICE_F_MOVE, move_pages == Some(true));
    flags
}

fn len_of(length: i64) -> napi::Result<usize> {
    Ok(usize::try_from(to_u64(length, "length")?).unwrap_or(usize::MAX))
}

fn offset_of(offset: Option<i64>, what: &'static str) -> napi::Result<Option<i64>> {
    offset
        .map(|o| to_u64(o, what).map(|v| v as i64))
        .transpose()
}

fn prepare_splice(
    fd_in: i32,
    fd_out: i32,
    call: SpliceCall,
) -> napi::Result<impl FnOnce() -> crate::Result<f64> + Send + 'static> {
    let fd_in = file::dup_raw(fd_in).map_err(to_napi)?;
    let fd_out = file::dup_raw(fd_out).map_err(to_napi)?;
    let mut off_in = offset_of(call.offset_in, "offsetIn")?;
    let mut off_out = offset_of(call.offset_out, "offsetOut")?;
    let len = len_of(call.length)?;
    let flags = flags(call.nonblock, call.more, call.move_pages);
    Ok(move || {
        sys::splice(
            &fd_in,
            off_in.as_mut(),
            &fd_out,
            off_out.as_mut(),
            len,
            flags,
        )
        .map(|n| to_js_number(n as u64))
    })
}

/// One `splice(2)` call on the thread pool. Resolves to the bytes moved (0 at end of input).
#[napi(ts_return_type = "Promise<number>")]
pub fn splice(fd_in: i32, fd_out: i32, call: SpliceCall) -> napi::Result<AsyncTask<Blocking<f64>>> {
    Ok(AsyncTask::new(Blocking::new(prepare_splice(
        fd_in, fd_out, call,
    )?)))
}

/// One `splice(2)` call on the calling thread.
#[napi(js_name = "spliceSync")]
pub fn splice_sync(fd_in: i32, fd_out: i32, call: SpliceCall) -> napi::Result<f64> {
    prepare_splice(fd_in, fd_out, call)?().map_err(to_napi)
}

fn prepare_tee(
    fd_in: i32,
    fd_out: i32,
    length: i64,
    nonblock: Option<bool>,
) -> napi::Result<impl FnOnce() -> crate::Result<f64> + Send + 'static> {
    let fd_in = file::dup_raw(fd_in).map_err(to_napi)?;
    let fd_out = file::dup_raw(fd_out).map_err(to_napi)?;
    let len = len_of(length)?;
    let flags = flags(nonblock, None, None);
    Ok(move || sys::tee(&fd_in, &fd_out, len, flags).map(|n| to_js_number(n as u64)))
}

/// One `tee(2)` call on the thread pool. Resolves to the bytes duplicated.
#[napi(ts_return_type = "Promise<number>")]
pub fn tee(
    fd_in: i32,
    fd_out: i32,
    length: i64,
    nonblock: Option<bool>,
) -> napi::Result<AsyncTask<Blocking<f64>>> {
    Ok(AsyncTask::new(Blocking::new(prepare_tee(
        fd_in, fd_out, length, nonblock,
    )?)))
}

/// One `tee(2)` call on the calling thread.
#[napi(js_name = "teeSync")]
pub fn tee_sync(fd_in: i32, fd_out: i32, length: i64, nonblock: Option<bool>) -> napi::Result<f64> {
    prepare_tee(fd_in, fd_out, length, nonblock)?().map_err(to_napi)
}

/// Copies the bytes now, on the calling thread: once this returns, the Buffer is the caller's again.
fn prepare_vmsplice(
    fd: i32,
    data: &[u8],
    nonblock: Option<bool>,
) -> napi::Result<impl FnOnce() -> crate::Result<f64> + Send + 'static> {
    let fd = file::dup_raw(fd).map_err(to_napi)?;
    let room = sys::vmsplice_room(&fd).map_err(to_napi)?;
    let copy = SpliceCopy::new(&data[..data.len().min(room)]).map_err(to_napi)?;
    let flags = flags(nonblock, None, None);
    Ok(move || copy.vmsplice(&fd, flags).map(|n| to_js_number(n as u64)))
}

/// `vmsplice(2)` of a copy of `buffer` (at most the pipe's capacity) into a pipe, on the thread pool.
/// The copy is made before this returns. Resolves to the bytes the pipe took.
#[napi(ts_return_type = "Promise<number>")]
pub fn vmsplice(
    fd: i32,
    buffer: Buffer,
    nonblock: Option<bool>,
) -> napi::Result<AsyncTask<Blocking<f64>>> {
    Ok(AsyncTask::new(Blocking::new(prepare_vmsplice(
        fd, &buffer, nonblock,
    )?)))
}

/// `vmsplice(2)` of a copy of `buffer` on the calling thread.
#[napi(js_name = "vmspliceSync")]
pub fn vmsplice_sync(fd: i32, buffer: Buffer, nonblock: Option<bool>) -> napi::Result<f64> {
    prepare_vmsplice(fd, &buffer, nonblock)?().map_err(to_napi)
}

/// A new pipe's two ends, owned by JavaScript from here on.
#[napi(object)]
pub struct PipeFds {
    pub read_fd: i32,
    pub write_fd: i32,
    /// The capacity in bytes (F_GETPIPE_SZ).
    pub size: u32,
}

fn make_pipe(size: Option<u32>, nonblock: Option<bool>) -> crate::Result<PipeFds> {
    let flags = if nonblock == Some(true) {
        OFlag::O_NONBLOCK
    } else {
        OFlag::empty()
    };
    let (read, write): (OwnedFd, OwnedFd) = sys::pipe2(flags)?;
    let size = match size {
        Some(size) => sys::set_pipe_size(read.as_fd(), size as usize)?,
        None => sys::pipe_size(read.as_fd())?,
    };
    Ok(PipeFds {
        read_fd: read.into_raw_fd(),
        write_fd: write.into_raw_fd(),
        size: u32::try_from(size).unwrap_or(u32::MAX),
    })
}

/// `pipe2(O_CLOEXEC [| O_NONBLOCK])`, then `F_SETPIPE_SZ` if a size is given, on the thread pool.
#[napi(ts_return_type = "Promise<PipeFds>")]
pub fn pipe(size: Option<u32>, nonblock: Option<bool>) -> AsyncTask<Blocking<PipeFds>> {
    AsyncTask::new(Blocking::new(move || make_pipe(size, nonblock)))
}

/// `pipe2` on the calling thread.
#[napi(js_name = "pipeSync")]
pub fn pipe_sync(size: Option<u32>, nonblock: Option<bool>) -> napi::Result<PipeFds> {
    make_pipe(size, nonblock).map_err(to_napi)
}

/// The relays' pipe pool, for tests and diagnostics.
#[napi(object)]
pub struct PipePoolStats {
    /// Empty pipes waiting for reuse.
    pub idle: u32,
    /// The most it keeps.
    pub max_idle: u32,
}

/// How many pipes the relays' pool holds.
#[napi]
pub fn pipe_pool_stats() -> PipePoolStats {
    let pool = PipePool::global();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    PipePoolStats {
        idle: count(pool.idle()),
        max_idle: count(pool.max_idle()),
    }
}
