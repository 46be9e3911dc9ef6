//! Waiting for sockets without holding a thread: readiness through tokio's reactor, and cancellation.
//!
//! libuv owns every socket Node hands us and keeps it non-blocking. A transfer that meets `EAGAIN`
//! (the peer is not reading) registers a duplicate of the fd with tokio's epoll reactor and sleeps
//! until the kernel reports it writable (or readable), so thousands of stalled transfers cost no
//! thread — in particular none of libuv's four pool threads, which every `fs` call in the process
//! shares. A [`Cancel`] wakes a sleeping transfer at once (AbortSignal, or the socket destroyed).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use tokio::io::Interest;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{Code, Error, Result};

/// Why a transfer was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The caller's AbortSignal fired.
    Aborted,
    /// The socket was destroyed on the JavaScript side while the transfer ran.
    Destroyed,
}

impl CancelReason {
    /// The error a transfer cancelled for this reason ends with: `ABORT_ERR` for an abort. For a
    /// destroyed socket, the connection's own error if `connection` finds one (a peer that reset or
    /// closed it is the real story), else [`Code::SocketDestroyed`](crate::error::Code) with `detail`:
    /// the application destroyed a connection that was still fine.
    pub(crate) fn error(
        self,
        syscall: &'static str,
        connection: impl FnOnce() -> Result<()>,
        detail: &'static str,
    ) -> Error {
        match self {
            CancelReason::Aborted => Error::aborted(syscall),
            CancelReason::Destroyed => match connection() {
                Err(e) => e,
                Ok(()) => Error::custom(Code::SocketDestroyed, Errno::EPIPE, syscall, detail),
            },
        }
    }
}

/// A cancellation flag that wakes waiting transfers. Cheap to clone; all clones share one flag.
#[derive(Debug, Clone)]
pub struct Cancel {
    tx: watch::Sender<Option<CancelReason>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel {
            tx: watch::Sender::new(None),
        }
    }
}

impl Cancel {
    /// A fresh, uncancelled flag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels (the first reason wins) and wakes every waiter.
    pub fn cancel(&self, reason: CancelReason) {
        self.tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// The reason, if cancelled.
    pub fn reason(&self) -> Option<CancelReason> {
        *self.tx.borrow()
    }

    /// Resolves once cancelled.
    pub async fn cancelled(&self) -> CancelReason {
        let mut rx = self.tx.subscribe();
        loop {
            if let Some(reason) = *rx.borrow_and_update() {
                return reason;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`, so this cannot happen; wait forever rather than spin.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// When a step ends early to report progress: once its pace has passed since it began and bytes have
/// moved. A caller that restarts an idle timer after each step then hears of every byte in time,
/// and a transfer that moves nothing costs no wakeup at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pacer {
    due: Option<Instant>,
}

impl Pacer {
    /// A pacer for a step beginning now; `None` (or a pace too long to represent) never reports early.
    pub fn new(pace: Option<Duration>) -> Pacer {
        Pacer {
            due: pace.and_then(|p| Instant::now().checked_add(p)),
        }
    }

    /// When to report, given whether bytes have moved since the step began: never if none have.
    pub fn due(&self, moved: bool) -> Option<Instant> {
        self.due.filter(|_| moved)
    }

    /// Whether the step should report now.
    pub fn passed(&self, moved: bool) -> bool {
        self.due(moved).is_some_and(|at| at <= Instant::now())
    }

    /// Sleeps until `at` (from [`Pacer::due`]); without one, forever.
    pub async fn sleep(at: Option<Instant>) {
        match at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

/// A file descriptor registered with the reactor of the tokio runtime it was created in.
#[derive(Debug)]
pub struct Registered {
    inner: AsyncFd<OwnedFd>,
}

impl Registered {
    /// Registers `fd` for read and write readiness with the current tokio runtime's reactor.
    /// Outside a runtime it fails with `EINVAL` instead of panicking.
    pub fn new(fd: OwnedFd) -> Result<Self> {
        Self::try_new(fd).map_err(|(e, _)| e)
    }

    /// [`Registered::new`], handing `fd` back on failure — e.g. `EPERM` for a regular file, which
    /// epoll refuses because it is always ready.
    pub fn try_new(fd: OwnedFd) -> std::result::Result<Self, (Error, OwnedFd)> {
        if tokio::runtime::Handle::try_current().is_err() {
            let err =
                Error::new(Errno::EINVAL, "epoll_ctl").with_detail("no async runtime to wait in");
            return Err((err, fd));
        }
        // SAFETY: the AsyncFd owns the OwnedFd, so the fd stays open and refers to the same file
        // description for the AsyncFd's whole life, and OwnedFd::as_raw_fd always returns it.
        match unsafe {
            AsyncFd::register_with_interest(fd, Interest::READABLE | Interest::WRITABLE)
        } {
            Ok(inner) => Ok(Registered { inner }),
            Err(e) => {
                let (fd, cause) = e.into_parts();
                Err((io_error(cause, "epoll_ctl"), fd))
            }
        }
    }

    /// The registered fd.
    pub fn fd(&self) -> &OwnedFd {
        self.inner.get_ref()
    }

    /// Runs `op` until it stops answering `EAGAIN`, sleeping on write readiness in between.
    pub async fn write_with<T>(&self, op: impl FnMut(&OwnedFd) -> Result<T>) -> Result<T> {
        self.when_ready(Interest::WRITABLE, op).await
    }

    /// Runs `op` until it stops answering `EAGAIN`, sleeping on read readiness in between.
    pub async fn read_with<T>(&self, op: impl FnMut(&OwnedFd) -> Result<T>) -> Result<T> {
        self.when_ready(Interest::READABLE, op).await
    }

    /// Resolves when the reactor reports `fd` readable. The report may be stale: run the operation
    /// that answered `EAGAIN` and, if it answers `EAGAIN` again, [`Ready::clear`] it.
    pub async fn readable(&self) -> Result<Ready<'_>> {
        self.ready(Interest::READABLE).await
    }

    /// Resolves when the reactor reports `fd` writable; see [`Registered::readable`].
    pub async fn writable(&self) -> Result<Ready<'_>> {
        self.ready(Interest::WRITABLE).await
    }

    async fn ready(&self, interest: Interest) -> Result<Ready<'_>> {
        let guard = self
            .inner
            .ready(interest)
            .await
            .map_err(|e| io_error(e, "epoll_wait"))?;
        Ok(Ready { guard })
    }

    async fn when_ready<T>(
        &self,
        interest: Interest,
        mut op: impl FnMut(&OwnedFd) -> Result<T>,
    ) -> Result<T> {
        loop {
            let ready = self.ready(interest).await?;
            match op(self.inner.get_ref()) {
                // The readiness was stale: forget it and sleep until the kernel reports it again.
                Err(e) if e.errno() == Errno::EAGAIN => ready.clear(),
                other => return other,
            }
        }
    }
}

/// A readiness report from the reactor (see [`Registered::readable`]).
#[derive(Debug)]
pub struct Ready<'a> {
    guard: AsyncFdReadyGuard<'a, OwnedFd>,
}

impl Ready<'_> {
    /// The operation answered `EAGAIN` after all: forget the report, so the next wait sleeps until
    /// the kernel reports readiness again instead of returning at once.
    pub fn clear(mut self) {
        self.guard.clear_ready();
    }
}

impl AsRawFd for Registered {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.get_ref().as_raw_fd()
    }
}

fn io_error(e: io::Error, syscall: &'static str) -> Error {
    Error::new(
        e.raw_os_error().map_or(Errno::EIO, Errno::from_raw),
        syscall,
    )
}
