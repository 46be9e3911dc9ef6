//! Sleeping until one of the ends a relay waits for is ready, the caller cancels, or it is time to
//! report progress.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use nix::errno::Errno;

use super::chain::{End, Fd, Wait};
use super::SYSCALL;
use crate::error::{Error, Result};
use crate::ready::{Cancel, CancelReason, Pacer, Ready};

pub(super) enum Woken<'a> {
    Ready(usize, Ready<'a>),
    Cancelled(CancelReason),
    /// The pace's time to report came first.
    Due,
}

type ReadyFuture<'a> = Pin<Box<dyn Future<Output = Result<Ready<'a>>> + Send + 'a>>;

/// Sleeps until the end of one of `waits` is reported ready (its index and report), `cancel` fires,
/// or `report_at` (from [`Pacer::due`]) has come.
pub(super) async fn wait_first<'a>(
    ends: &'a [End],
    waits: &[Wait],
    cancel: &Cancel,
    report_at: Option<tokio::time::Instant>,
) -> Result<Woken<'a>> {
    let mut futures = Vec::with_capacity(waits.len());
    for wait in waits {
        let Fd::Registered(reg) = &ends[wait.end].fd else {
            // epoll refused this fd (it is always ready), yet it answered EAGAIN: nothing to wait on.
            return Err(Error::new(Errno::EAGAIN, SYSCALL)
                .with_detail("an fd that cannot be waited for is not ready"));
        };
        let future: ReadyFuture<'a> = if wait.writable {
            Box::pin(reg.writable())
        } else {
            Box::pin(reg.readable())
        };
        futures.push(future);
    }
    let first = std::future::poll_fn(|cx| {
        for (i, future) in futures.iter_mut().enumerate() {
            if let Poll::Ready(result) = future.as_mut().poll(cx) {
                return Poll::Ready(result.map(|ready| Woken::Ready(i, ready)));
            }
        }
        Poll::Pending
    });
    // Biased towards cancellation: an abort wins over an end that is ready again. Only the wait is
    // interrupted, never a call.
    tokio::select! {
        biased;
        reason = cancel.cancelled() => Ok(Woken::Cancelled(reason)),
        () = Pacer::sleep(report_at) => Ok(Woken::Due),
        woken = first => woken,
    }
}
