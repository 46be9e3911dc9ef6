//! `mmap` / `mmapSync`, the `Mapping` class behind `MappedFile`, and `residency`: argument and error
//! conversion around [`crate::mmap`], which opens, checks and maps. How the mapped memory is handed to
//! JavaScript as a Buffer, and when it may be unmapped, is [`buffer`]'s business.

mod buffer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::{AsyncTask, Buffer, Unknown};
use napi::Env;
use napi_derive::napi;
use nix::errno::Errno;

use self::buffer::{BufferState, RawValue, Shared};
use super::error::{invalid, to_napi};
use super::task::{path_of, to_js_number, to_u64, Blocking};
use crate::error::Error;
use crate::mmap::{Fit, MapOptions, Mapped, Source};
use crate::sync::lock;
use crate::sys::file;
use crate::sys::mmap::{self, Advice, Mode};

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

/// A spec converted on the JS thread (fds duplicated there, so closing yours afterwards is safe).
struct Request {
    source: Source,
    options: MapOptions,
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
            options: MapOptions {
                mode: mode_of(&spec.mode)?,
                offset: to_u64(spec.offset, "offset")?,
                length: spec.length.map(|l| to_u64(l, "length")).transpose()?,
                max_length: to_u64(spec.max_length, "maxLength")?,
                populate: spec.populate.unwrap_or(false),
                advice: spec.advice.as_deref().map(advice_of).transpose()?,
            },
            source: source_of(spec.path, spec.fd)?,
        })
    }
}

fn open(req: Request) -> crate::Result<Mapping> {
    crate::mmap::map_file(req.source, &req.options).map(Mapping::new)
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
    fn new(mapped: Mapped) -> Self {
        Mapping {
            shared: mapped.region.map(|region| {
                Arc::new(Shared {
                    region: Mutex::new(region),
                })
            }),
            file_size: mapped.file_size,
            fit: mapped.fit,
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
        self.make_buffer(env)
    }

    /// Detaches the buffer (`view` is it, or any view over its ArrayBuffer), then unmaps. If the
    /// ArrayBuffer was already detached by someone else (its backing store transferred away), retires
    /// the range instead: escaped views then read zeros, and the range is unmapped when the backing
    /// store is freed. Idempotent. Returns whether the mapping had gone stale.
    #[napi]
    pub fn close(&self, env: Env, view: Option<Unknown>) -> napi::Result<bool> {
        self.close_buffer(env, view)
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
    let r = crate::mmap::file_residency(source_of(path, fd)?).map_err(to_napi)?;
    Ok(r.into())
}
