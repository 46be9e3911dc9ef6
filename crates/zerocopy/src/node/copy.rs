//! `CopyJob`: the engine behind `copyFile`, driven step by step from JavaScript so that abort checks
//! and progress callbacks happen between bounded chunks.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{AsyncTask, Buffer};
use napi_derive::napi;

use super::error::{invalid, to_napi};
use super::task::{budget_of, path_of, to_js_number, to_u64, Blocking, JobState};
use crate::copy::{self, CopyOptions, Dest, Mechanism, Reflink, Source};
use crate::sync::lock;
use crate::sys::file;

/// Both ends and the options of a copy, as the TS layer resolved them.
#[napi(object)]
pub struct CopySpec {
    /// Source path bytes, or…
    pub src_path: Option<Buffer>,
    /// …a source fd (duplicated when the job is created).
    pub src_fd: Option<i32>,
    pub dst_path: Option<Buffer>,
    pub dst_fd: Option<i32>,
    /// Path destinations: replace an existing file (default true).
    pub overwrite: Option<bool>,
    /// Path destinations: permission bits.
    pub mode: Option<u32>,
    /// "auto" | "always" | "never"
    pub reflink: Option<String>,
    pub offset: Option<i64>,
    pub length: Option<i64>,
    pub dst_offset: Option<i64>,
    /// Force one mechanism: "reflink" | "copy_file_range" | "sendfile" | "readwrite".
    pub mechanism: Option<String>,
}

/// Where a copy stands after a step.
#[napi(object)]
pub struct CopyProgress {
    /// Bytes written so far.
    pub bytes: f64,
    /// Bytes expected in all, when known.
    pub total: Option<f64>,
    /// The copy is complete.
    pub done: bool,
    /// "reflink" | "copy_file_range" | "sendfile" | "readwrite"
    pub mechanism: String,
}

/// Opening failed, or the job was closed before it started: `Ended`.
type State = JobState<(Source, Dest, CopyOptions), copy::CopyJob>;

/// A file copy in progress. Holds duplicates of any fds it was given until it ends.
#[napi]
pub struct CopyJob {
    state: Arc<Mutex<State>>,
}

fn step(state: &Mutex<State>, budget: u64) -> crate::Result<CopyProgress> {
    let mut guard = lock(state);
    let opened = guard.open_with(|(src, dst, options)| copy::CopyJob::open(src, dst, &options))?;
    let Some(job) = opened else {
        return Err(crate::Error::new(nix::errno::Errno::EBADF, "copyfile")
            .with_detail("the copy was closed"));
    };
    let done = job.step(budget)?;
    Ok(CopyProgress {
        bytes: to_js_number(job.bytes()),
        total: job.total().map(to_js_number),
        done,
        mechanism: job.mechanism().as_str().to_owned(),
    })
}

#[napi]
impl CopyJob {
    /// Resolves the ends: fds are duplicated now (F_DUPFD_CLOEXEC), paths are opened by the first step.
    #[napi(constructor)]
    pub fn new(spec: CopySpec) -> napi::Result<Self> {
        let src = match (spec.src_path, spec.src_fd) {
            (Some(path), None) => Source::Path(path_of(&path)),
            (None, Some(fd)) => Source::Fd(file::dup_raw(fd).map_err(to_napi)?),
            _ => return Err(invalid("src")),
        };
        let dst = match (spec.dst_path, spec.dst_fd) {
            (Some(path), None) => Dest::Path {
                path: path_of(&path),
                overwrite: spec.overwrite.unwrap_or(true),
                mode: spec.mode,
            },
            (None, Some(fd)) => Dest::Fd(file::dup_raw(fd).map_err(to_napi)?),
            _ => return Err(invalid("dst")),
        };
        let reflink = match spec.reflink.as_deref() {
            None | Some("auto") => Reflink::Auto,
            Some("always") => Reflink::Always,
            Some("never") => Reflink::Never,
            Some(_) => return Err(invalid("reflink")),
        };
        let options = CopyOptions {
            reflink,
            offset: spec.offset.map(|v| to_u64(v, "offset")).transpose()?,
            length: spec.length.map(|v| to_u64(v, "length")).transpose()?,
            dst_offset: spec
                .dst_offset
                .map(|v| to_u64(v, "dstOffset"))
                .transpose()?,
            mechanisms: match spec.mechanism.as_deref() {
                None => None,
                Some("reflink") => Some(vec![Mechanism::Reflink]),
                Some("copy_file_range") => Some(vec![Mechanism::CopyFileRange]),
                Some("sendfile") => Some(vec![Mechanism::Sendfile]),
                Some("readwrite") => Some(vec![Mechanism::ReadWrite]),
                Some(_) => return Err(invalid("mechanism")),
            },
        };
        Ok(CopyJob {
            state: Arc::new(Mutex::new(State::Pending(Box::new((src, dst, options))))),
        })
    }

    /// Moves up to `budget` bytes on the thread pool (the first step also opens the files).
    #[napi(ts_return_type = "Promise<CopyProgress>")]
    pub fn step(&self, budget: f64) -> AsyncTask<Blocking<CopyProgress>> {
        let state = Arc::clone(&self.state);
        let budget = budget_of(budget);
        AsyncTask::new(Blocking::new(move || step(&state, budget)))
    }

    /// Moves up to `budget` bytes on the calling thread.
    #[napi]
    pub fn step_sync(&self, budget: f64) -> napi::Result<CopyProgress> {
        step(&self.state, budget_of(budget)).map_err(to_napi)
    }

    /// Bytes written to the destination so far (also after a failure).
    #[napi(getter)]
    pub fn bytes(&self) -> f64 {
        lock(&self.state)
            .running()
            .map_or(0.0, |job| to_js_number(job.bytes()))
    }

    /// The mechanism in use, or that finished the copy; "" before the files are opened.
    #[napi(getter)]
    pub fn mechanism(&self) -> String {
        lock(&self.state)
            .running()
            .map_or_else(String::new, |job| job.mechanism().as_str().to_owned())
    }

    /// Ends the copy and closes its fds at once; written bytes stay. Idempotent.
    #[napi]
    pub fn close(&self) {
        let mut guard = lock(&self.state);
        match &mut *guard {
            State::Running(job) => job.close(),
            State::Pending(_) => *guard = State::Ended,
            State::Ended => {}
        }
    }
}
