//! Internal file helpers for the TS layer (not part of the `sys` namespace).

use std::ffi::OsStr;
use std::os::fd::IntoRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use napi::bindgen_prelude::{AsyncTask, Buffer};
use napi::{Env, Task};
use napi_derive::napi;
use nix::sys::stat::SFlag;

use super::error::to_napi;
use super::task::{to_js_number, Blocking};
use crate::serve;
use crate::sys::file;

/// An opened file, as `serveFile` needs it: its stat, and either the fd or (small files) the body.
#[napi(object)]
pub struct OpenedFile {
    /// The open fd (the caller closes it), or -1 when `body` holds the whole file.
    pub fd: i32,
    /// "file" | "directory" | "other"
    pub kind: String,
    pub size: f64,
    pub mtime_ms: f64,
    pub ctime_ms: f64,
    pub dev: f64,
    pub ino: f64,
    /// mtime's nanoseconds within its second, for strong ETags (mtimeMs cannot hold them exactly).
    pub mtime_nsec: u32,
    /// mtime's whole seconds.
    pub mtime_sec: f64,
    /// ctime's nanoseconds within its second.
    pub ctime_nsec: u32,
    /// ctime's whole seconds.
    pub ctime_sec: f64,
    /// The whole file, read at once because it was smaller than the inline limit.
    pub body: Option<Buffer>,
}

/// Opens, stats and (when small) reads a file on the thread pool: one round trip instead of three.
pub struct OpenTask {
    root: Option<PathBuf>,
    path: PathBuf,
    inline_limit: u64,
}

impl Task for OpenTask {
    type Output = serve::OpenedFile;
    type JsValue = OpenedFile;

    fn compute(&mut self) -> napi::Result<serve::OpenedFile> {
        serve::open_file(self.root.as_deref(), &self.path, self.inline_limit).map_err(to_napi)
    }

    fn resolve(&mut self, _env: Env, out: serve::OpenedFile) -> napi::Result<OpenedFile> {
        let ms = |t: serve::Timestamp| t.sec as f64 * 1e3 + t.nsec as f64 / 1e6;
        Ok(OpenedFile {
            fd: out.fd.map_or(-1, IntoRawFd::into_raw_fd),
            kind: out.kind.as_str().to_owned(),
            size: to_js_number(out.size),
            mtime_ms: ms(out.mtime),
            ctime_ms: ms(out.ctime),
            dev: to_js_number(out.dev),
            ino: to_js_number(out.ino),
            mtime_sec: out.mtime.sec as f64,
            mtime_nsec: out.mtime.nsec.clamp(0, 999_999_999) as u32,
            ctime_sec: out.ctime.sec as f64,
            ctime_nsec: out.ctime.nsec.clamp(0, 999_999_999) as u32,
            body: out.body.map(Buffer::from),
        })
    }
}

/// On the thread pool: opens `path` (beneath the directory `root` with openat2 RESOLVE_BENEATH when
/// given), stats it, and reads it whole when it is a regular file under `inlineLimit` bytes.
#[napi(js_name = "openFile", ts_return_type = "Promise<OpenedFile>")]
pub fn open_file(root: Option<Buffer>, path: Buffer, inline_limit: f64) -> AsyncTask<OpenTask> {
    AsyncTask::new(OpenTask {
        root: root.map(|r| PathBuf::from(OsStr::from_bytes(&r))),
        path: PathBuf::from(OsStr::from_bytes(&path)),
        inline_limit: if inline_limit.is_finite() && inline_limit > 0.0 {
            inline_limit as u64
        } else {
            0
        },
    })
}

/// An fd's kind and size, as the stream fallbacks need them.
#[napi(object)]
pub struct FdInfo {
    /// "file" | "directory" | "other"
    pub kind: String,
    pub size: f64,
}

/// `fstat(2)` of an fd, for the stream fallbacks. They read fds this addon opened, and some runtimes'
/// `fs` refuses fds it did not open itself (Deno's keeps a table of its own).
#[napi(js_name = "fdInfo")]
pub fn fd_info(fd: i32) -> napi::Result<FdInfo> {
    let fd = file::dup_raw(fd).map_err(to_napi)?;
    let st = file::fstat(&fd).map_err(to_napi)?;
    Ok(FdInfo {
        kind: match file::file_type(&st) {
            SFlag::S_IFREG => "file",
            SFlag::S_IFDIR => "directory",
            _ => "other",
        }
        .to_owned(),
        size: to_js_number(st.st_size.max(0) as u64),
    })
}

/// Closes an fd `openFile` handed to JavaScript, which gives up the number with this call. As with
/// `fdInfo`: Deno's `fs.close` refuses fds it did not open, and would leak this one.
#[napi(js_name = "closeFd")]
pub fn close_fd(fd: i32) -> napi::Result<()> {
    // SAFETY: the TS layer calls this once, for an fd it received from `openFile` and owns, and
    // forgets the number afterwards.
    unsafe { file::close_raw(fd) }.map_err(to_napi)
}

/// `pread(2)` (`read(2)` without a position) into `buffer[offset..offset + length]`, on the thread
/// pool, for the same reason as `fdInfo`. Works on a duplicate of `fd`, so closing it meanwhile is
/// safe. Resolves with the bytes read: 0 at end of file.
#[napi(js_name = "readAt", ts_return_type = "Promise<number>")]
pub fn read_at(
    fd: i32,
    mut buffer: Buffer,
    offset: u32,
    length: u32,
    position: Option<i64>,
) -> napi::Result<AsyncTask<Blocking<u32>>> {
    let (start, len) = (offset as usize, length as usize);
    if start
        .checked_add(len)
        .map_or(true, |end| end > buffer.len())
    {
        return Err(super::error::invalid("length"));
    }
    let fd = file::dup_raw(fd).map_err(to_napi)?;
    Ok(AsyncTask::new(Blocking::new(move || {
        let n = file::read_at(&fd, &mut buffer[start..start + len], position)?;
        // At most `length` (a u32) bytes were asked for.
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    })))
}
