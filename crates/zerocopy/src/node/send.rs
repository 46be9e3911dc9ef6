//! `SendJob`: the engine behind `sendFile`. Steps run on napi-rs's tokio runtime, so a send waiting
//! for a slow reader holds no libuv pool thread; `cancel()` wakes it from JavaScript.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{AsyncTask, Buffer, PromiseRaw};
use napi::Env;
use napi_derive::napi;

use super::error::{invalid, to_napi};
use super::task::{
    budget_of, cancel_reason, pace_of, path_of, to_js_number, to_u64, Blocking, JobState,
};
use crate::copy::Source;
use crate::ready::{Cancel, CancelReason};
use crate::send::{Attempt, SendFile};
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
    /// "readwrite" forces the user-space path (for comparisons); default sendfile.
    pub mechanism: Option<String>,
    /// Bytes written before the file, sharing its first packet (an HTTP response's headers).
    pub head: Option<Buffer>,
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

/// A send whose file path is still to be opened.
struct PendingSend {
    socket: std::os::fd::OwnedFd,
    source: Source,
    offset: Option<u64>,
    length: Option<u64>,
    read_write: bool,
    head: Vec<u8>,
}

/// `Pending` for a path source: opening it is blocking I/O, done by `attempt()` on the thread pool.
type State = JobState<PendingSend, SendFile>;

/// A file being sent into a socket.
#[napi]
pub struct SendJob {
    state: Arc<tokio::sync::Mutex<State>>,
    cancel: Cancel,
    bytes: Arc<Counts>,
}

/// Bytes that reached the socket, kept past the job's end (for errors after partial progress).
#[derive(Default)]
struct Counts {
    file: AtomicU64,
    head: AtomicU64,
}

fn busy() -> crate::Error {
    crate::Error::new(nix::errno::Errno::EBUSY, "sendfile")
        .with_detail("a step of this send is already running")
}

fn ended() -> crate::Error {
    crate::Error::custom(
        crate::error::Code::Closed,
        nix::errno::Errno::EBADF,
        "sendfile",
        "the send was closed",
    )
}

/// Reports where `send` stands after `result`, closing the job's fds once the send has ended.
fn report(
    state: &mut State,
    bytes: &Counts,
    result: crate::Result<bool>,
) -> crate::Result<SendProgress> {
    let Some(send) = state.running() else {
        return Err(ended());
    };
    bytes.file.store(send.bytes(), Ordering::Relaxed);
    bytes.head.store(send.head_bytes(), Ordering::Relaxed);
    let progress = SendProgress {
        bytes: to_js_number(send.bytes()),
        total: send.total().map(to_js_number),
        done: matches!(result, Ok(true)),
        mechanism: send.mechanism().as_str().to_owned(),
    };
    if !matches!(result, Ok(false)) {
        // Finished or failed: close our duplicates now, not at garbage collection.
        *state = State::Ended;
    }
    result.map(|_| progress)
}

/// Opens a pending job (a path source) and sends what the socket takes without waiting.
fn open_and_try(state: &mut State, bytes: &Counts, budget: u64) -> crate::Result<SendProgress> {
    let Some(send) = state.open_with(open_send)? else {
        return Err(ended());
    };
    let result = send.try_step(budget).map(|a| a == Attempt::Done);
    report(state, bytes, result)
}

fn open_send(spec: PendingSend) -> crate::Result<SendFile> {
    let mut send = SendFile::open(spec.socket, spec.source, spec.offset, spec.length)?;
    if spec.read_write {
        send.use_read_write();
    }
    send.set_head(spec.head);
    Ok(send)
}

async fn step(
    state: &tokio::sync::Mutex<State>,
    cancel: &Cancel,
    bytes: &Counts,
    budget: u64,
    pace: Option<std::time::Duration>,
) -> crate::Result<SendProgress> {
    let mut guard = state.lock().await;
    let result = match &mut *guard {
        State::Running(send) => send.step_paced(budget, pace, cancel).await,
        State::Pending(_) => return open_and_try(&mut guard, bytes, budget),
        State::Ended => return Err(ended()),
    };
    report(&mut guard, bytes, result)
}

#[napi]
impl SendJob {
    /// Duplicates the socket fd (and a file fd) now. An fd source is examined at once (fstat, no disk
    /// I/O); a path source is opened by `attempt()`.
    #[napi(constructor)]
    pub fn new(spec: SendSpec) -> napi::Result<Self> {
        let socket = file::dup_raw(spec.socket_fd).map_err(to_napi)?;
        let offset = spec.offset.map(|v| to_u64(v, "offset")).transpose()?;
        let length = spec.length.map(|v| to_u64(v, "length")).transpose()?;
        let read_write = match spec.mechanism.as_deref() {
            None | Some("sendfile") => false,
            Some("readwrite") => true,
            Some(_) => return Err(invalid("mechanism")),
        };
        let head = spec.head.map(|b| b.to_vec()).unwrap_or_default();
        let state = match (spec.file_path, spec.file_fd) {
            (Some(path), None) => {
                let source = Source::Path(path_of(&path));
                State::Pending(Box::new(PendingSend {
                    socket,
                    source,
                    offset,
                    length,
                    read_write,
                    head,
                }))
            }
            (None, Some(fd)) => {
                let source = Source::Fd(file::dup_raw(fd).map_err(to_napi)?);
                State::Running(Box::new(
                    open_send(PendingSend {
                        socket,
                        source,
                        offset,
                        length,
                        read_write,
                        head,
                    })
                    .map_err(to_napi)?,
                ))
            }
            _ => return Err(invalid("file")),
        };
        Ok(SendJob {
            state: Arc::new(tokio::sync::Mutex::new(state)),
            cancel: Cancel::new(),
            bytes: Arc::new(Counts::default()),
        })
    }

    /// On the thread pool: opens a path source if needed, then sends what the socket takes right now
    /// without waiting. Never on the event loop thread: `sendfile` may block reading a cold file.
    #[napi(ts_return_type = "Promise<SendProgress>")]
    pub fn attempt(&self, budget: f64) -> AsyncTask<Blocking<SendProgress>> {
        let (state, bytes) = (Arc::clone(&self.state), Arc::clone(&self.bytes));
        let budget = budget_of(budget);
        AsyncTask::new(Blocking::new(move || {
            let mut guard = state.try_lock().map_err(|_| busy())?;
            open_and_try(&mut guard, &bytes, budget)
        }))
    }

    /// On the calling thread: when the next `budget` bytes are all in the page cache (so `sendfile`
    /// cannot block on the disk), sends what the socket takes right now without waiting and returns
    /// where the send stands; otherwise returns `null` and sends nothing (use `attempt()`).
    #[napi]
    pub fn try_cached(&self, budget: f64) -> napi::Result<Option<SendProgress>> {
        let mut guard = self.state.try_lock().map_err(|_| to_napi(busy()))?;
        let budget = budget_of(budget);
        let result = match &mut *guard {
            State::Running(send) if send.is_cached(budget) => {
                send.try_step(budget).map(|a| a == Attempt::Done)
            }
            _ => return Ok(None),
        };
        report(&mut guard, &self.bytes, result)
            .map(Some)
            .map_err(to_napi)
    }

    /// Sends up to `budget` bytes (Infinity: to the end), waiting on readiness as needed. With
    /// `paceMs`, also returns once that long has passed and bytes have moved (for idle timeouts:
    /// every byte is heard of in time).
    #[napi(ts_return_type = "Promise<SendProgress>")]
    pub fn step<'env>(
        &self,
        env: &'env Env,
        budget: f64,
        pace_ms: Option<f64>,
    ) -> napi::Result<PromiseRaw<'env, SendProgress>> {
        let (state, cancel, bytes) = (
            Arc::clone(&self.state),
            self.cancel.clone(),
            Arc::clone(&self.bytes),
        );
        let (budget, pace) = (budget_of(budget), pace_of(pace_ms));
        env.spawn_future(async move {
            step(&state, &cancel, &bytes, budget, pace)
                .await
                .map_err(to_napi)
        })
    }

    /// Wakes and ends a waiting or running step: "abort" (AbortSignal) or "destroyed" (the socket was
    /// destroyed in JavaScript). The first reason wins.
    #[napi]
    pub fn cancel(&self, reason: String) {
        self.cancel.cancel(cancel_reason(&reason));
    }

    /// Bytes of the file that reached the socket so far (also after a failure).
    #[napi(getter)]
    pub fn bytes(&self) -> f64 {
        to_js_number(self.bytes.file.load(Ordering::Relaxed))
    }

    /// Bytes of the spec's `head` that reached the socket so far (also after a failure).
    #[napi(getter)]
    pub fn head_bytes(&self) -> f64 {
        to_js_number(self.bytes.head.load(Ordering::Relaxed))
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
