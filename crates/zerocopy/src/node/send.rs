//! `SendJob`: the engine behind `sendFile`. Steps run on napi-rs's tokio runtime, so a send waiting
//! for a slow reader holds no libuv pool thread; `cancel()` wakes it from JavaScript.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{Buffer, PromiseRaw};
use napi::Env;
use napi_derive::napi;

use super::error::{invalid, to_napi};
use super::task::{to_js_number, to_u64};
use crate::copy::Source;
use crate::ready::{Cancel, CancelReason};
use crate::send::SendFile;
use crate::sys::file;

/// The socket and file of a send, as the TS layer resolved them.
#[napi(object)]
pub struct SendSpec {
    /// The socket (or pipe) fd; duplicated when the job is created.
    pub socket_fd: i32,
    pub file_path: Option<Buffer>,
    pub file_fd: Option<i32>,
    pub offset: Option<i64>,
    pub length: Option<i64>,
}

/// Where a send stands after a step.
#[napi(object)]
pub struct SendProgress {
    pub bytes: f64,
    pub total: Option<f64>,
    pub done: bool,
    /// "sendfile" | "readwrite"
    pub mechanism: String,
}

enum State {
    Pending(Box<(std::os::fd::OwnedFd, Source, Option<u64>, Option<u64>)>),
    Running(Box<SendFile>),
    Ended,
}

/// A file being sent into a socket.
#[napi]
pub struct SendJob {
    state: Arc<tokio::sync::Mutex<State>>,
    cancel: Cancel,
    bytes: Arc<AtomicU64>,
}

async fn step(
    state: &tokio::sync::Mutex<State>,
    cancel: &Cancel,
    bytes: &AtomicU64,
    budget: u64,
) -> crate::Result<SendProgress> {
    let mut guard = state.lock().await;
    if let State::Pending(_) = &*guard {
        let State::Pending(spec) = std::mem::replace(&mut *guard, State::Ended) else {
            return Err(crate::Error::new(nix::errno::Errno::EINVAL, "sendfile"));
        };
        let (socket, source, offset, length) = *spec;
        *guard = State::Running(Box::new(SendFile::open(socket, source, offset, length)?));
    }
    let State::Running(send) = &mut *guard else {
        return Err(crate::Error::custom(
            "ERR_STREAM_DESTROYED",
            nix::errno::Errno::EBADF,
            "sendfile",
            "the send was closed",
        ));
    };
    let result = send.step(budget, cancel).await;
    bytes.store(send.bytes(), Ordering::Relaxed);
    let progress = SendProgress {
        bytes: to_js_number(send.bytes()),
        total: send.total().map(to_js_number),
        done: matches!(result, Ok(true)),
        mechanism: send.mechanism().as_str().to_owned(),
    };
    if !matches!(result, Ok(false)) {
        // Finished or failed: close our duplicates now, not at garbage collection.
        *guard = State::Ended;
    }
    result.map(|_| progress)
}

#[napi]
impl SendJob {
    /// Duplicates the socket fd (and a file fd) now; a file path is opened by the first step.
    #[napi(constructor)]
    pub fn new(spec: SendSpec) -> napi::Result<Self> {
        let socket = file::dup_raw(spec.socket_fd).map_err(to_napi)?;
        let source = match (spec.file_path, spec.file_fd) {
            (Some(path), None) => Source::Path(PathBuf::from(OsStr::from_bytes(&path))),
            (None, Some(fd)) => Source::Fd(file::dup_raw(fd).map_err(to_napi)?),
            _ => return Err(invalid("file")),
        };
        let offset = spec.offset.map(|v| to_u64(v, "offset")).transpose()?;
        let length = spec.length.map(|v| to_u64(v, "length")).transpose()?;
        Ok(SendJob {
            state: Arc::new(tokio::sync::Mutex::new(State::Pending(Box::new((
                socket, source, offset, length,
            ))))),
            cancel: Cancel::new(),
            bytes: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Sends up to `budget` bytes (Infinity: to the end), waiting on readiness as needed.
    #[napi(ts_return_type = "Promise<SendProgress>")]
    pub fn step<'env>(
        &self,
        env: &'env Env,
        budget: f64,
    ) -> napi::Result<PromiseRaw<'env, SendProgress>> {
        let (state, cancel, bytes) = (
            Arc::clone(&self.state),
            self.cancel.clone(),
            Arc::clone(&self.bytes),
        );
        let budget = if budget.is_finite() && budget >= 1.0 {
            budget as u64
        } else {
            u64::MAX
        };
        env.spawn_future(
            async move { step(&state, &cancel, &bytes, budget).await.map_err(to_napi) },
        )
    }

    /// Wakes and ends a waiting or running step: "abort" (AbortSignal) or "destroyed" (the socket was
    /// destroyed in JavaScript). The first reason wins.
    #[napi]
    pub fn cancel(&self, reason: String) {
        self.cancel.cancel(match reason.as_str() {
            "destroyed" => CancelReason::Destroyed,
            _ => CancelReason::Aborted,
        });
    }

    /// Bytes that reached the socket so far (also after a failure).
    #[napi(getter)]
    pub fn bytes(&self) -> f64 {
        to_js_number(self.bytes.load(Ordering::Relaxed))
    }

    /// Closes the job's fds if no step is running (a running step closes them when it ends).
    #[napi]
    pub fn close(&self) {
        if let Ok(mut guard) = self.state.try_lock() {
            *guard = State::Ended;
        } else {
            self.cancel.cancel(CancelReason::Aborted);
        }
    }
}
