//! `mmap` / `mmapSync`, the `Mapping` class behind `MappedFile`, and `residency`.
//!
//! The JavaScript Buffer over a mapping is an external buffer: V8 sees the mapped memory itself, no
//! copy. Who unmaps, and when, is what keeps it safe. The rule: the file's pages are unmapped only
//! when no JavaScript value can reach them, and no JavaScript operation ever reaches unmapped memory.
//!
//! - `close()` detaches the ArrayBuffer — every Buffer and TypedArray view over it becomes
//!   zero-length at once — and then unmaps. A V8 backing store belongs to exactly one ArrayBuffer, so
//!   once ours is detached nothing in JavaScript can reach the memory.
//! - But the backing store can leave our ArrayBuffer without us: `ArrayBuffer.prototype.transfer()`
//!   and `transferToFixedLength()` (Node 22+), `structuredClone(x, { transfer })` or a worker's
//!   `postMessage` with a transfer list of such a transferred buffer move it to a new ArrayBuffer,
//!   possibly in another isolate, and leave ours detached (data pointer null). `close()` then cannot
//!   reach the views, so it *retires* the range instead: it replaces it with anonymous zero pages
//!   (`MAP_FIXED`), so that escaped views read zeros and their writes land in private memory (never in
//!   the file), and keeps the range reserved and guarded. It is unmapped when the backing store is
//!   freed, which Node reports through the Buffer's finalizer.
//! - The finalizer runs when V8 frees the backing store (Node calls it from an immediate; nothing can
//!   reach the memory then: unmap), or when the environment that made the Buffer is torn down (a
//!   worker exiting, the process ending). Then Node calls it even though the backing store may still
//!   live in another isolate — a worker's mapping, transferred to the main thread, is the everyday
//!   case — and, from Node 22, only after it has detached our ArrayBuffer itself, so whether the
//!   memory escaped earlier can no longer be seen. The two calls differ in one observable way: a torn
//!   down environment no longer runs JavaScript (Node turns that off before it runs its cleanup), and
//!   napi calls that may run it fail. So the finalizer asks (see `js_can_run`): if not, the range is
//!   retired and kept reserved for the rest of the process (abandoned), because nothing will ever say
//!   when the other holder lets go. Mappings closed before the environment ends are not affected.
//! - A runtime that forbids external buffers (`napi_no_external_buffers_allowed`, e.g. Electron's V8
//!   sandbox) gets an error. napi-rs's own Buffer types would silently copy the file instead, and
//!   writes to the copy would never reach it.
//!
//! Not covered (as with any Buffer whose memory is freed): native code that kept a raw pointer to the
//! Buffer's bytes past `close()`, e.g. an asynchronous zlib or crypto job still running on the thread
//! pool. Do not close a mapping while such a job reads it.

use std::ffi::c_void;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::{AsyncTask, Buffer, ToNapiValue, Unknown};
use napi::{sys, Env, JsValue};
use napi_derive::napi;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode as FileMode, SFlag};

use super::error::{invalid, to_napi};
use super::task::{path_of, to_js_number, to_u64, Blocking};
use crate::error::Error;
use crate::sync::lock;
use crate::sys::file;
use crate::sys::mmap::{self, Advice, Mmap, MmapOptions, Mode};

/// What to map, as the TS layer validated it.
#[napi(object)]
pub struct MmapSpec {
    /// Path bytes, or…
    pub path: Option<Buffer>,
    /// …an fd (duplicated while mapping; only an 'rw' mapping keeps a duplicate, for sync).
    pub fd: Option<i32>,
    /// "r" | "rw" | "cow"
    pub mode: String,
    pub offset: i64,
    /// Default: to the end of the file.
    pub length: Option<i64>,
    /// The longest window a Buffer can hold (`buffer.constants.MAX_LENGTH`); longer ones are not mapped.
    pub max_length: i64,
    pub populate: Option<bool>,
    /// An advice name, applied to the whole window after mapping.
    pub advice: Option<String>,
}

/// `mincore` counts.
#[napi(object)]
pub struct NativeResidency {
    pub pages: f64,
    pub resident: f64,
}

/// What a sync wrote back (`mmap::Synced`).
#[napi(object)]
pub struct NativeSynced {
    /// Bytes of the range written back to the file (0 for private mappings).
    pub bytes: f64,
    /// Bytes of the range the file no longer backs (past its end, or zero pages after a truncation).
    pub lost: f64,
    /// 'rw': the file's size when synced.
    pub file_size: Option<f64>,
}

impl From<mmap::Synced> for NativeSynced {
    fn from(s: mmap::Synced) -> Self {
        NativeSynced {
            bytes: to_js_number(s.bytes as u64),
            lost: to_js_number(s.lost as u64),
            file_size: s.file_size.map(to_js_number),
        }
    }
}

impl From<mmap::Residency> for NativeResidency {
    fn from(r: mmap::Residency) -> Self {
        NativeResidency {
            pages: to_js_number(r.pages),
            resident: to_js_number(r.resident),
        }
    }
}

enum Source {
    Path(PathBuf),
    Fd(OwnedFd),
}

/// A spec converted on the JS thread (fds duplicated there, so closing yours afterwards is safe).
struct Request {
    source: Source,
    mode: Mode,
    offset: u64,
    length: Option<u64>,
    max_length: u64,
    populate: bool,
    advice: Option<Advice>,
}

fn source_of(path: Option<Buffer>, fd: Option<i32>) -> napi::Result<Source> {
    match (path, fd) {
        (Some(path), None) => Ok(Source::Path(path_of(&path))),
        (None, Some(fd)) => Ok(Source::Fd(file::dup_raw(fd).map_err(to_napi)?)),
        _ => Err(invalid("file")),
    }
}

fn mode_of(mode: &str) -> napi::Result<Mode> {
    match mode {
        "r" => Ok(Mode::Read),
        "rw" => Ok(Mode::Write),
        "cow" => Ok(Mode::CopyOnWrite),
        _ => Err(invalid("mode")),
    }
}

fn advice_of(advice: &str) -> napi::Result<Advice> {
    Ok(match advice {
        "normal" => Advice::Normal,
        "sequential" => Advice::Sequential,
        "random" => Advice::Random,
        "willneed" => Advice::WillNeed,
        "dontneed" => Advice::DontNeed,
        "hugepage" => Advice::HugePage,
        "nohugepage" => Advice::NoHugePage,
        "cold" => Advice::Cold,
        "pageout" => Advice::PageOut,
        "populate" => Advice::PopulateRead,
        _ => return Err(invalid("advice")),
    })
}

impl Request {
    fn new(spec: MmapSpec) -> napi::Result<Self> {
        Ok(Request {
            mode: mode_of(&spec.mode)?,
            offset: to_u64(spec.offset, "offset")?,
            length: spec.length.map(|l| to_u64(l, "length")).transpose()?,
            max_length: to_u64(spec.max_length, "maxLength")?,
            populate: spec.populate.unwrap_or(false),
            advice: spec.advice.as_deref().map(advice_of).transpose()?,
            source: source_of(spec.path, spec.fd)?,
        })
    }
}

/// Opens a path for `mmap` or `residency`: non-blocking, so that a FIFO without a writer (or a
/// device that waits for a carrier) cannot hang the open, nor the pool thread it runs on.
fn open_path(path: &std::path::Path, access: OFlag) -> crate::Result<OwnedFd> {
    crate::sys::file::open_nonblocking(path, access | OFlag::O_NOCTTY, FileMode::empty())
}

/// Only regular files can be mapped: `EISDIR` for a directory, `ENODEV` for the rest (FIFOs, sockets,
/// devices), checked with `fstat` before anything reads or maps. Returns the file's size.
fn regular_size(fd: &OwnedFd, syscall: &'static str) -> crate::Result<u64> {
    let st = file::fstat(fd)?;
    match file::file_type(&st) {
        SFlag::S_IFREG => Ok(st.st_size.max(0) as u64),
        SFlag::S_IFDIR => Err(Error::new(Errno::EISDIR, syscall)),
        _ => {
            Err(Error::new(Errno::ENODEV, syscall).with_detail("only regular files can be mapped"))
        }
    }
}

/// Opens (or takes) the file, checks the window against its size and maps it.
fn open(req: Request) -> crate::Result<Mapping> {
    let path = match &req.source {
        Source::Path(p) => Some(p.clone()),
        Source::Fd(_) => None,
    };
    let with_path = |e: Error| match &path {
        Some(p) => e.with_path(p),
        None => e,
    };
    let fd = match req.source {
        Source::Path(p) => {
            let access = if req.mode == Mode::Write {
                OFlag::O_RDWR
            } else {
                OFlag::O_RDONLY
            };
            open_path(&p, access)?
        }
        Source::Fd(fd) => fd,
    };
    let file_size = regular_size(&fd, "mmap").map_err(with_path)?;
    let Some(len) = mmap::window(file_size, req.offset, req.length) else {
        let fit = if req.offset > file_size {
            Fit::Offset
        } else {
            Fit::Length
        };
        return Ok(Mapping::unmapped(file_size, fit));
    };
    if len > req.max_length {
        return Ok(Mapping::unmapped(file_size, Fit::TooLong));
    }
    if len == 0 {
        return Ok(Mapping::unmapped(file_size, Fit::Ok));
    }
    let len = usize::try_from(len).map_err(|_| Error::new(Errno::ENOMEM, "mmap"))?;
    let region = MmapOptions {
        mode: req.mode,
        offset: req.offset,
        len,
        populate: false,
    }
    .map(&fd)
    .map_err(with_path)?;
    if let Some(advice) = req.advice {
        region.advise(advice, 0, len).map_err(with_path)?;
    }
    // After the advice, so that the pages are read in as it says: with 'hugepage', readahead fills
    // the page cache with 2 MiB folios (where the filesystem has large folios) and they are mapped
    // as huge pages; with 'random', without readahead beyond the window.
    if req.populate {
        region.populate();
    }
    Ok(Mapping {
        shared: Some(Arc::new(Shared {
            region: Mutex::new(region),
        })),
        file_size,
        fit: Fit::Ok,
        buffer: Mutex::new(BufferState::NotMade),
        closed: AtomicBool::new(false),
    })
}

/// Whether the requested window could be mapped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fit {
    Ok,
    /// The offset is past the end of the file.
    Offset,
    /// The window runs past the end of the file.
    Length,
    /// The window is longer than a Buffer can be.
    TooLong,
}

/// The mapping, shared by the `Mapping` object and the Buffer's finalizer; the last one to let go
/// unmaps (`Mmap`'s Drop), unless `close()` or the finalizer did already.
struct Shared {
    region: Mutex<Mmap>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Mmap> {
        lock(&self.region)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BufferState {
    NotMade,
    /// Made over this address; `close()` must be handed a view of it.
    Made,
}

/// A mapped window of a file (the native half of `MappedFile`).
#[napi]
pub struct Mapping {
    /// `None` for an empty window (nothing mapped) or a window outside the file.
    shared: Option<Arc<Shared>>,
    file_size: u64,
    fit: Fit,
    buffer: Mutex<BufferState>,
    closed: AtomicBool,
}

impl Mapping {
    fn unmapped(file_size: u64, fit: Fit) -> Self {
        Mapping {
            shared: None,
            file_size,
            fit,
            buffer: Mutex::new(BufferState::NotMade),
            closed: AtomicBool::new(false),
        }
    }

    /// The mapping for an operation named `syscall`: `None` for an empty window, EBADF once closed.
    fn live(&self, syscall: &'static str) -> napi::Result<Option<&Arc<Shared>>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(to_napi(
                Error::new(Errno::EBADF, syscall).with_detail("the mapping is closed"),
            ));
        }
        Ok(self.shared.as_ref())
    }

    fn buffer_state(&self) -> MutexGuard<'_, BufferState> {
        lock(&self.buffer)
    }
}

/// A raw JS value handed back as it is.
pub struct RawValue(sys::napi_value);

impl ToNapiValue for RawValue {
    unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        Ok(val.0)
    }
}

fn napi_call(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            napi::Status::from(status),
            format!("{what} failed"),
        ))
    }
}

/// A runtime that forbids external buffers (Electron's V8 sandbox) gets an EOPNOTSUPP error naming the
/// call, which the TypeScript layer turns into `ERR_EXTERNAL_BUFFERS_NOT_ALLOWED`: never a copy whose
/// writes would be lost. None for any other status.
fn forbidden_external_buffers(status: sys::napi_status) -> Option<Error> {
    (status == sys::Status::napi_no_external_buffers_allowed).then(|| {
        Error::new(Errno::ENOTSUP, "napi_create_external_buffer").with_detail(
            "this runtime forbids external buffers, so a mapping cannot be shared with JavaScript without copying it",
        )
    })
}

/// Whether `env` may still run JavaScript: false once Node tears the environment down (it turns
/// JavaScript off before running its cleanup, which calls the finalizers of Buffers still alive).
/// Asked through `napi_coerce_to_bool` on `true`, which runs no user code but, like every napi call
/// that may run JavaScript, fails when the environment cannot (`napi_pending_exception`, or
/// `napi_cannot_run_js` for experimental modules). Any failure counts as "cannot": the caller then
/// keeps memory reserved rather than unmapping it, which is the safe mistake.
///
/// # Safety
/// `env` must be a live napi env on its own thread, inside a handle scope (finalizers run in one).
unsafe fn js_can_run(env: sys::napi_env) -> bool {
    let mut yes = ptr::null_mut();
    let mut coerced = ptr::null_mut();
    // SAFETY: the caller's promise; both out-pointers are valid.
    unsafe {
        sys::napi_get_boolean(env, true, &mut yes) == sys::Status::napi_ok
            && sys::napi_coerce_to_bool(env, yes, &mut coerced) == sys::Status::napi_ok
    }
}

/// Called by Node when V8 frees the Buffer's backing store (collected, detached by `close()`, or
/// freed by a transfer that copied it), or when the environment is torn down (see the module docs).
unsafe extern "C" fn finalize_buffer(env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the Box<Arc<Shared>> leaked in `create_buffer`, handed to exactly this one
    // finalizer call.
    let shared = unsafe { Box::from_raw(hint.cast::<Arc<Shared>>()) };
    // SAFETY: Node calls finalizers on the env's thread with a valid env, inside a handle scope.
    let freed = unsafe { js_can_run(env) };
    let len = {
        let mut region = shared.lock();
        if freed {
            region.release();
        } else {
            region.abandon();
        }
        region.len()
    };
    let mut adjusted = 0i64;
    // SAFETY: as above; this undoes the adjustment made when the Buffer was created.
    let _ = unsafe {
        sys::napi_adjust_external_memory(env, -(i64::try_from(len).unwrap_or(0)), &mut adjusted)
    };
}

/// The ArrayBuffer behind a Buffer or TypedArray `view`, and that ArrayBuffer's data pointer (null
/// once detached).
fn array_buffer_of(
    env: sys::napi_env,
    view: sys::napi_value,
) -> napi::Result<(sys::napi_value, *mut c_void)> {
    let mut is_typed = false;
    // SAFETY: `env` and `view` come from the current call.
    let status = unsafe { sys::napi_is_typedarray(env, view, &mut is_typed) };
    napi_call(status, "napi_is_typedarray")?;
    if !is_typed {
        return Err(invalid("buffer"));
    }
    let mut ab = ptr::null_mut();
    // SAFETY: `view` is a typed array; null out-pointers are allowed for fields we do not want.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env,
            view,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut ab,
            ptr::null_mut(),
        )
    };
    napi_call(status, "napi_get_typedarray_info")?;
    let mut data = ptr::null_mut();
    let mut len = 0usize;
    // SAFETY: `ab` is the typed array's ArrayBuffer, just obtained.
    let status = unsafe { sys::napi_get_arraybuffer_info(env, ab, &mut data, &mut len) };
    napi_call(status, "napi_get_arraybuffer_info")?;
    Ok((ab, if len == 0 { ptr::null_mut() } else { data }))
}

#[napi]
impl Mapping {
    /// Bytes in the window (0 when nothing was mapped).
    #[napi(getter)]
    pub fn length(&self) -> f64 {
        self.shared
            .as_ref()
            .map_or(0.0, |s| to_js_number(s.lock().len() as u64))
    }

    /// The file's size when it was mapped.
    #[napi(getter)]
    pub fn file_size(&self) -> f64 {
        to_js_number(self.file_size)
    }

    /// "ok"; else why nothing was mapped: "offset" (past the end of the file), "length" (the window
    /// runs past the end) or "too_long" (longer than `maxLength`).
    #[napi(getter)]
    pub fn fit(&self) -> &'static str {
        match self.fit {
            Fit::Ok => "ok",
            Fit::Offset => "offset",
            Fit::Length => "length",
            Fit::TooLong => "too_long",
        }
    }

    /// A truncation fault was absorbed: part of the window now reads as zeros.
    #[napi(getter)]
    pub fn stale(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| s.lock().is_stale())
    }

    /// `close()` has run.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Creates the Buffer over the mapped memory: once, because `close()` detaches exactly one
    /// ArrayBuffer. Returns null for an empty window.
    #[napi(ts_return_type = "Buffer | null")]
    pub fn create_buffer(&self, env: Env) -> napi::Result<Option<RawValue>> {
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        let mut state = self.buffer_state();
        let region = shared.lock();
        if *state == BufferState::Made || region.is_released() {
            return Err(to_napi(Error::new(Errno::EINVAL, "mmap").with_detail(
                "the mapping's buffer was already made, or the mapping is closed",
            )));
        }
        let (ptr, len) = (region.as_ptr(), region.len());
        drop(region);
        let hint = Box::into_raw(Box::new(Arc::clone(shared)));
        let mut value = ptr::null_mut();
        // SAFETY: [ptr, ptr + len) stays mapped (or, once retired, reserved as zero pages) until
        // `finalize_buffer` runs, and then stays reserved if something may still reach it. `hint` is
        // reclaimed by the finalizer, or below if creation fails.
        let status = unsafe {
            sys::napi_create_external_buffer(
                env.raw(),
                len,
                ptr.cast(),
                Some(finalize_buffer),
                hint.cast(),
                &mut value,
            )
        };
        if status != sys::Status::napi_ok {
            // SAFETY: creation failed, so the finalizer will never run and the hint is still ours.
            drop(unsafe { Box::from_raw(hint) });
            if let Some(err) = forbidden_external_buffers(status) {
                return Err(to_napi(err));
            }
            napi_call(status, "napi_create_external_buffer")?;
        }
        *state = BufferState::Made;
        let _ = env.adjust_external_memory(i64::try_from(len).unwrap_or(i64::MAX));
        Ok(Some(RawValue(value)))
    }

    /// Detaches the buffer (`view` is it, or any view over its ArrayBuffer), then unmaps. If the
    /// ArrayBuffer was already detached by someone else (its backing store transferred away), retires
    /// the range instead: escaped views then read zeros, and the range is unmapped when the backing
    /// store is freed. Idempotent. Returns whether the mapping had gone stale.
    #[napi]
    pub fn close(&self, env: Env, view: Option<Unknown>) -> napi::Result<bool> {
        let Some(shared) = &self.shared else {
            self.closed.store(true, Ordering::Release);
            return Ok(false);
        };
        let state = self.buffer_state();
        let base = {
            let region = shared.lock();
            if region.is_retired() {
                // Closed before, or unmapped by the finalizer (a transfer to another length copied
                // the memory and freed the backing store): nothing left to detach.
                self.closed.store(true, Ordering::Release);
                return Ok(region.is_stale());
            }
            region.as_ptr()
        };
        // The region lock is not held while detaching: should a runtime run the Buffer's finalizer
        // synchronously on detach, the finalizer takes that lock itself.
        let mut escaped = false;
        if *state == BufferState::Made {
            let Some(view) = view else {
                return Err(invalid("buffer"));
            };
            let (ab, data) = array_buffer_of(env.raw(), view.value().value)?;
            if data.is_null() {
                // Detached, not by us: by a transfer that moved the memory to another ArrayBuffer we
                // cannot reach, or by a runtime cleanup hook. Either way views may remain.
                escaped = true;
            } else if data.cast::<u8>() != base {
                return Err(invalid("buffer"));
            } else {
                // SAFETY: `ab` is our external ArrayBuffer, attached; detaching it makes every view
                // over it zero-length, and since a backing store belongs to one ArrayBuffer, nothing
                // in JavaScript can reach the memory after this.
                let status = unsafe { sys::napi_detach_arraybuffer(env.raw(), ab) };
                napi_call(status, "napi_detach_arraybuffer")?;
            }
        }
        let mut region = shared.lock();
        self.closed.store(true, Ordering::Release);
        if escaped {
            // Waits for a sync() in progress (it holds this lock): changes reach the page cache first.
            region.retire().map_err(to_napi)?;
        } else {
            region.release();
        }
        Ok(region.is_stale())
    }

    /// `madvise` on window bytes `[offset, offset + length)`.
    #[napi]
    pub fn advise(&self, advice: String, offset: i64, length: i64) -> napi::Result<()> {
        let advice = advice_of(&advice)?;
        let (offset, length) = (to_usize(offset, "offset")?, to_usize(length, "length")?);
        let Some(shared) = self.live("madvise")? else {
            return Ok(());
        };
        let region = shared.lock();
        region.advise(advice, offset, length).map_err(to_napi)
    }

    /// `msync` on the thread pool (MS_SYNC with `wait`, else MS_ASYNC). `close()` waits for it.
    /// For 'rw', only what the file still backs (see `NativeSynced`).
    #[napi(ts_return_type = "Promise<NativeSynced>")]
    pub fn sync(
        &self,
        wait: bool,
        offset: i64,
        length: i64,
    ) -> napi::Result<AsyncTask<Blocking<NativeSynced>>> {
        let (offset, length) = (to_usize(offset, "offset")?, to_usize(length, "length")?);
        let shared = self.live("msync")?.cloned();
        Ok(AsyncTask::new(Blocking::new(move || match shared {
            Some(shared) => shared.lock().sync(wait, offset, length).map(Into::into),
            None => Ok(mmap::Synced::default().into()),
        })))
    }

    /// `msync` on the calling thread.
    #[napi]
    pub fn sync_sync(&self, wait: bool, offset: i64, length: i64) -> napi::Result<NativeSynced> {
        let (offset, length) = (to_usize(offset, "offset")?, to_usize(length, "length")?);
        let Some(shared) = self.live("msync")? else {
            return Ok(mmap::Synced::default().into());
        };
        let region = shared.lock();
        region
            .sync(wait, offset, length)
            .map(Into::into)
            .map_err(to_napi)
    }

    /// `mincore` over the pages covering window bytes `[offset, offset + length)`.
    #[napi]
    pub fn residency(&self, offset: i64, length: i64) -> napi::Result<NativeResidency> {
        let (offset, length) = (to_usize(offset, "offset")?, to_usize(length, "length")?);
        let Some(shared) = self.live("mincore")? else {
            return Ok(mmap::Residency::default().into());
        };
        let r = shared.lock().residency(offset, length).map_err(to_napi)?;
        Ok(r.into())
    }
}

fn to_usize(value: i64, what: &'static str) -> napi::Result<usize> {
    usize::try_from(to_u64(value, what)?).map_err(|_| invalid(what))
}

/// Maps a file on the thread pool (opening it, and populating the pages when asked, are blocking).
#[napi(js_name = "mmap", ts_return_type = "Promise<Mapping>")]
pub fn mmap_async(spec: MmapSpec) -> napi::Result<AsyncTask<Blocking<Mapping>>> {
    let req = Request::new(spec)?;
    Ok(AsyncTask::new(Blocking::new(move || open(req))))
}

/// Maps a file on the calling thread.
#[napi(js_name = "mmapSync")]
pub fn mmap_sync(spec: MmapSpec) -> napi::Result<Mapping> {
    open(Request::new(spec)?).map_err(to_napi)
}

/// How much of a file is in the page cache (`mincore` over a temporary, untouched mapping).
#[napi(js_name = "fileResidency")]
pub fn file_residency(path: Option<Buffer>, fd: Option<i32>) -> napi::Result<NativeResidency> {
    let r = match source_of(path, fd)? {
        Source::Path(p) => {
            let fd = open_path(&p, OFlag::O_RDONLY).map_err(to_napi)?;
            regular_size(&fd, "mmap")
                .and_then(|_| mmap::file_residency(&fd))
                .map_err(|e| to_napi(e.with_path(&p)))?
        }
        Source::Fd(fd) => regular_size(&fd, "mmap")
            .and_then(|_| mmap::file_residency(&fd))
            .map_err(to_napi)?,
    };
    Ok(r.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No Node runtime at hand forbids external buffers, so this pins the record that
    /// `__test__/mmap.test.mjs` feeds the TypeScript layer for that case.
    #[test]
    fn forbidden_external_buffers_are_an_eopnotsupp_record_naming_the_call() {
        let err =
            forbidden_external_buffers(sys::Status::napi_no_external_buffers_allowed).unwrap();
        let record = crate::node::error::format_record(&err);
        assert!(
            record.starts_with(
                "{\"zerocopy-error\":1,\"code\":\"EOPNOTSUPP\",\"errno\":95,\"syscall\":\"napi_create_external_buffer\","
            ),
            "{record}"
        );
        assert!(forbidden_external_buffers(sys::Status::napi_generic_failure).is_none());
    }
}
