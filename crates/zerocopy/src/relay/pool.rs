//! The process-wide pool of empty pipes the relays share: relay policy, built on [`Pipe`].

use std::sync::{Mutex, OnceLock};

use crate::error::Result;
use crate::sys::splice::Pipe;

/// A bounded set of empty pipes kept for reuse: making a pipe and sizing it costs three system calls
/// and, for short connections, more than the bytes they relay.
///
/// A pipe goes back into the pool only if it is empty ([`Pipe::queued`] is 0) and the pool holds fewer
/// than its bound; otherwise it is closed. A relay that failed mid-stream may leave bytes in its pipes:
/// those pipes are closed, never handed to another relay.
#[derive(Debug)]
pub struct PipePool {
    idle: Mutex<Vec<Pipe>>,
    max_idle: usize,
}

/// How many empty pipes the process-wide pool keeps: enough for bursts of short connections, few
/// enough to hold under a hundred fds while idle.
pub const POOL_MAX_IDLE: usize = 32;

impl PipePool {
    /// An empty pool keeping at most `max_idle` pipes.
    pub const fn new(max_idle: usize) -> PipePool {
        PipePool {
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// The process-wide pool the relays use.
    pub fn global() -> &'static PipePool {
        static POOL: OnceLock<PipePool> = OnceLock::new();
        POOL.get_or_init(|| PipePool::new(POOL_MAX_IDLE))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pipe>> {
        crate::sync::lock(&self.idle)
    }

    /// An empty pipe of about `size` bytes: a pooled one (resized if needed) or a new one.
    pub fn take(&self, size: usize) -> Result<Pipe> {
        let pooled = self.lock().pop();
        match pooled {
            Some(mut pipe) => {
                pipe.resize(size)?;
                Ok(pipe)
            }
            None => Pipe::new(size),
        }
    }

    /// Returns a pipe: kept if it is empty and there is room, closed otherwise.
    pub fn give(&self, pipe: Pipe) {
        if !matches!(pipe.queued(), Ok(0)) {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            idle.push(pipe);
        }
    }

    /// Pipes waiting in the pool.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    /// The most pipes the pool keeps.
    pub fn max_idle(&self) -> usize {
        self.max_idle
    }

    /// Closes every idle pipe.
    pub fn clear(&self) {
        self.lock().clear();
    }
}
