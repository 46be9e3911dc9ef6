//! `openDirect` and the `DirectHandle` class behind `js/direct.ts`, plus the two helpers the TS layer
//! needs for aligned memory (a Buffer's address modulo an alignment) and for measuring what a file
//! left in the page cache.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::{AsyncTask, Buffer, BufferSlice};
use napi_derive::napi;
use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::error::{invalid, to_napi};
use super::probe::NativeDirectIoAlignment;
use super::task::{budget_of, path_of, to_js_number, to_u64, Blocking};
use crate::direct::{self, DirectFile, Fallback, OpenOptions, Unaligned};
use crate::sync::lock;
use crate::sys::direct as sys;

/// How to open a file for Direct I/O, as the TS layer resolved it.
#[napi(object)]
pub struct DirectOpenSpec {
    /// Path bytes.
    pub path: Buffer,
    /// `open(2)` flags (access mode, O_CREAT, O_EXCL, O_TRUNC, O_SYNC, O_DSYNC, O_NOATIME, O_NOFOLLOW).
    pub flags: i32,
    /// Permission bits for a created file.
    pub mode: u32,
    /// "error" | "buffered"
    pub fallback: String,
    /// Behave as if the filesystem refused O_DIRECT (tests).
    pub simulate_unsupported: Option<bool>,
}

/// What one read or write step did.
#[napi(object)]
pub struct DirectStep {
    /// Bytes moved.
    pub bytes: f64,
    /// Reads: the file ended before the buffer was filled.
    pub eof: bool,
}

/// An open Direct I/O file. Steps run on the thread pool and hold the file until they finish, so
/// `close()` while one runs closes the descriptor only after it: the number cannot be reused under it.
#[napi]
pub struct DirectHandle {
    file: Mutex<Option<Arc<DirectFile>>>,
    fd: i32,
    alignment: crate::sys::probe::DirectIoAlignment,
    mechanism: direct::Mechanism,
}

fn open(spec: &DirectOpenSpec) -> napi::Result<impl FnOnce() -> crate::Result<DirectHandle>> {
    let flags = OFlag::from_bits(spec.flags).ok_or_else(|| invalid("flags"))?;
    let fallback = match spec.fallback.as_str() {
        "error" => Fallback::Error,
        "buffered" => Fallback::Buffered,
        _ => return Err(invalid("fallback")),
    };
    let options = OpenOptions {
        flags,
        mode: spec.mode,
        fallback,
        simulate_unsupported: spec.simulate_unsupported.unwrap_or(false),
    };
    let path = path_of(&spec.path);
    Ok(move || {
        let file = DirectFile::open(&path, &options)?;
        Ok(DirectHandle {
            fd: file.as_fd().as_raw_fd(),
            alignment: file.alignment(),
            mechanism: file.mechanism(),
            file: Mutex::new(Some(Arc::new(file))),
        })
    })
}

/// Opens a file for Direct I/O on the thread pool.
#[napi(js_name = "openDirect", ts_return_type = "Promise<DirectHandle>")]
pub fn open_direct(spec: DirectOpenSpec) -> napi::Result<AsyncTask<Blocking<DirectHandle>>> {
    Ok(AsyncTask::new(Blocking::new(open(&spec)?)))
}

/// Opens a file for Direct I/O on the calling thread.
#[napi(js_name = "openDirectSync")]
pub fn open_direct_sync(spec: DirectOpenSpec) -> napi::Result<DirectHandle> {
    open(&spec)?().map_err(to_napi)
}

fn mode_of(bounce: bool) -> Unaligned {
    if bounce {
        Unaligned::Bounce
    } else {
        Unaligned::Error
    }
}

/// A JS budget as a step limit in memory: [`budget_of`]'s rule.
fn mem_budget_of(budget: f64) -> usize {
    usize::try_from(budget_of(budget)).unwrap_or(usize::MAX)
}

fn step_of(step: direct::Step) -> DirectStep {
    DirectStep {
        bytes: to_js_number(step.bytes as u64),
        eof: step.eof,
    }
}

#[napi]
impl DirectHandle {
    /// The file descriptor (-1 once closed).
    #[napi(getter)]
    pub fn fd(&self) -> i32 {
        if self.lock().is_some() {
            self.fd
        } else {
            -1
        }
    }

    /// The file's O_DIRECT alignment.
    #[napi(getter)]
    pub fn alignment(&self) -> NativeDirectIoAlignment {
        self.alignment.into()
    }

    /// "direct" | "buffered"
    #[napi(getter)]
    pub fn mechanism(&self) -> String {
        self.mechanism.as_str().to_owned()
    }

    /// Reads into `buffer` from `position`, up to `budget` bytes, on the thread pool.
    #[napi(ts_return_type = "Promise<DirectStep>")]
    pub fn read(
        &self,
        mut buffer: Buffer,
        position: i64,
        budget: f64,
        bounce: bool,
    ) -> napi::Result<AsyncTask<Blocking<DirectStep>>> {
        let (file, at, budget, mode) = self.request("read", position, budget, bounce)?;
        Ok(AsyncTask::new(Blocking::new(move || {
            file.read_step(&mut buffer, at, budget, mode).map(step_of)
        })))
    }

    /// Reads into `buffer` from `position`, up to `budget` bytes, on the calling thread.
    #[napi]
    pub fn read_sync(
        &self,
        mut buffer: BufferSlice,
        position: i64,
        budget: f64,
        bounce: bool,
    ) -> napi::Result<DirectStep> {
        let (file, at, budget, mode) = self.request("read", position, budget, bounce)?;
        file.read_step(&mut buffer, at, budget, mode)
            .map(step_of)
            .map_err(to_napi)
    }

    /// Writes `buffer` at `position`, up to `budget` bytes, on the thread pool.
    #[napi(ts_return_type = "Promise<DirectStep>")]
    pub fn write(
        &self,
        buffer: Buffer,
        position: i64,
        budget: f64,
        bounce: bool,
    ) -> napi::Result<AsyncTask<Blocking<DirectStep>>> {
        let (file, at, budget, mode) = self.request("write", position, budget, bounce)?;
        Ok(AsyncTask::new(Blocking::new(move || {
            file.write_step(&buffer, at, budget, mode).map(step_of)
        })))
    }

    /// Writes `buffer` at `position`, up to `budget` bytes, on the calling thread.
    #[napi]
    pub fn write_sync(
        &self,
        buffer: &[u8],
        position: i64,
        budget: f64,
        bounce: bool,
    ) -> napi::Result<DirectStep> {
        let (file, at, budget, mode) = self.request("write", position, budget, bounce)?;
        file.write_step(buffer, at, budget, mode)
            .map(step_of)
            .map_err(to_napi)
    }

    /// The file's size in bytes, on the thread pool.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn size(&self) -> napi::Result<AsyncTask<Blocking<f64>>> {
        let file = self.file("fstat")?;
        Ok(AsyncTask::new(Blocking::new(move || {
            file.size().map(to_js_number)
        })))
    }

    /// The file's size in bytes.
    #[napi]
    pub fn size_sync(&self) -> napi::Result<f64> {
        let file = self.file("fstat")?;
        file.size().map(to_js_number).map_err(to_napi)
    }

    /// Sets the file's size to `length` bytes, on the thread pool.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn truncate(&self, length: i64) -> napi::Result<AsyncTask<Blocking<()>>> {
        let file = self.file("ftruncate")?;
        let len = to_u64(length, "length")?;
        Ok(AsyncTask::new(Blocking::new(move || file.truncate(len))))
    }

    /// Sets the file's size to `length` bytes.
    #[napi]
    pub fn truncate_sync(&self, length: i64) -> napi::Result<()> {
        let file = self.file("ftruncate")?;
        file.truncate(to_u64(length, "length")?).map_err(to_napi)
    }

    /// Closes the file: at once when idle, else when the last running step ends. Idempotent.
    #[napi]
    pub fn close(&self) {
        self.lock().take();
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<DirectFile>>> {
        lock(&self.file)
    }

    /// The file and converted arguments of a read or write.
    fn request(
        &self,
        syscall: &'static str,
        position: i64,
        budget: f64,
        bounce: bool,
    ) -> napi::Result<(Arc<DirectFile>, u64, usize, Unaligned)> {
        let file = self.file(syscall)?;
        let at = to_u64(position, "position")?;
        Ok((file, at, mem_budget_of(budget), mode_of(bounce)))
    }

    fn file(&self, syscall: &'static str) -> napi::Result<Arc<DirectFile>> {
        self.lock().as_ref().map(Arc::clone).ok_or_else(|| {
            to_napi(crate::Error::new(Errno::EBADF, syscall).with_detail("the file is closed"))
        })
    }
}

/// The address of `buffer`'s first byte modulo `alignment`: 0 when it suits O_DIRECT.
#[napi(js_name = "addressMisalignment")]
pub fn address_misalignment(buffer: &[u8], alignment: u32) -> u32 {
    sys::misalignment(buffer, alignment)
}

/// The transparent huge page size in bytes, or 0 where they are unavailable or switched off.
#[napi(js_name = "hugePageSize")]
pub fn huge_page_size() -> u32 {
    sys::huge_page_size()
        .and_then(|size| u32::try_from(size).ok())
        .unwrap_or(0)
}

/// Asks for transparent huge pages behind the whole huge pages inside `buffer` (see
/// `sys::direct::hugepage_hint`); true when they are in place.
#[napi(js_name = "hugepageHint")]
pub fn hugepage_hint(buffer: &[u8]) -> bool {
    sys::hugepage_hint(buffer)
}
