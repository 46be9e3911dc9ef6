//! `RelayJob`: the engine behind `pipe`, `proxy` and `teeTo`. Steps run on napi-rs's tokio runtime,
//! so a relay waiting for a quiet or slow peer holds no libuv pool thread; `cancel()` wakes it.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{Buffer, PromiseRaw};
use napi::Env;
use napi_derive::napi;

use super::error::to_napi;
use super::task::{budget_of, cancel_reason, pace_of, to_js_number};
use crate::ready::{Cancel, CancelReason};
use crate::relay::{ChainSpec, Relay};
use crate::sync::lock;
use crate::sys::file;

/// One chain of a relay: indexes into `RelaySpec.fds`.
#[napi(object)]
pub struct RelayChain {
    /// Absent for a source already at end of stream: the chain delivers `head` and ends.
    pub src: Option<u32>,
    pub sinks: Vec<u32>,
    /// Bytes Node had already read from `src`: written to every sink first.
    pub head: Option<Buffer>,
    /// At end of stream, shut down sinks that are sockets for writing.
    pub shutdown: bool,
}

/// The ends and chains of a relay, as the TS layer resolved them.
#[napi(object)]
pub struct RelaySpec {
    /// Socket, pipe or file fds; duplicated when the job is created.
    pub fds: Vec<i32>,
    pub chains: Vec<RelayChain>,
    pub pipe_size: Option<u32>,
}

/// Where a relay stands after a step.
#[napi(object)]
pub struct RelayProgress {
    /// Bytes delivered, per chain, per sink.
    pub bytes: Vec<Vec<f64>>,
    /// Bytes read from each chain's source (delivered, or still in the relay's pipes).
    pub read: Vec<f64>,
    /// Which chains have reached end of stream and delivered everything.
    pub chains_done: Vec<bool>,
    /// Every chain is done.
    pub done: bool,
}

/// Streams relayed through kernel pipes.
#[napi]
pub struct RelayJob {
    /// `None` once the relay has ended and let go of its fds and pipes.
    relay: Arc<tokio::sync::Mutex<Option<Relay>>>,
    cancel: Cancel,
    counts: Arc<Mutex<Counts>>,
}

/// What a relay has moved: delivered per chain and sink, and read per chain.
#[derive(Clone, Default)]
struct Counts {
    bytes: Vec<Vec<u64>>,
    read: Vec<u64>,
}

impl Counts {
    fn of(relay: &Relay) -> Counts {
        Counts {
            bytes: (0..relay.chains()).map(|c| relay.bytes(c)).collect(),
            read: (0..relay.chains()).map(|c| relay.read(c)).collect(),
        }
    }

    fn bytes_js(&self) -> Vec<Vec<f64>> {
        self.bytes
            .iter()
            .map(|c| c.iter().copied().map(to_js_number).collect())
            .collect()
    }

    fn read_js(&self) -> Vec<f64> {
        self.read.iter().copied().map(to_js_number).collect()
    }
}

async fn step(
    state: &tokio::sync::Mutex<Option<Relay>>,
    cancel: &Cancel,
    counts: &Mutex<Counts>,
    budget: u64,
    pace: Option<std::time::Duration>,
) -> crate::Result<RelayProgress> {
    let mut guard = state.lock().await;
    let Some(relay) = guard.as_mut() else {
        return Err(crate::relay::closed());
    };
    let result = relay.step_paced(budget, pace, cancel).await;
    let now = Counts::of(relay);
    let chains_done = (0..relay.chains())
        .map(|c| relay.is_chain_done(c))
        .collect();
    *lock(counts) = now.clone();
    if !matches!(result, Ok(false)) {
        // Finished or failed: close our duplicates and pipes now, not at garbage collection.
        *guard = None;
    }
    result.map(|done| RelayProgress {
        bytes: now.bytes_js(),
        read: now.read_js(),
        chains_done,
        done,
    })
}

#[napi]
impl RelayJob {
    /// Duplicates every fd now and takes the relay's pipes from the pool.
    #[napi(constructor)]
    pub fn new(spec: RelaySpec) -> napi::Result<Self> {
        let fds = spec
            .fds
            .iter()
            .enumerate()
            .map(|(i, &fd)| {
                file::dup_raw(fd).map_err(|e| match e.errno() {
                    nix::errno::Errno::EBADF => {
                        crate::Error::new(nix::errno::Errno::EBADF, "splice").with_detail(format!(
                            "end {i} of the relay, fd {fd}, is not an open file descriptor"
                        ))
                    }
                    _ => e,
                })
            })
            .collect::<crate::Result<Vec<_>>>()
            .map_err(to_napi)?;
        let chains = spec
            .chains
            .into_iter()
            .map(|c| ChainSpec {
                src: c.src.map(|s| s as usize),
                sinks: c.sinks.into_iter().map(|s| s as usize).collect(),
                head: c.head.map(|h| h.to_vec()).unwrap_or_default(),
                shutdown: c.shutdown,
            })
            .collect();
        let relay = Relay::new(fds, chains, spec.pipe_size.map(|s| s as usize)).map_err(to_napi)?;
        let counts = Counts::of(&relay);
        Ok(RelayJob {
            relay: Arc::new(tokio::sync::Mutex::new(Some(relay))),
            cancel: Cancel::new(),
            counts: Arc::new(Mutex::new(counts)),
        })
    }

    /// Relays until about `budget` more bytes are delivered (Infinity: no limit), a chain finishes,
    /// or everything is done, waiting on readiness as needed. With `paceMs`, also returns once that
    /// long has passed and bytes have moved (for idle timeouts: every byte is heard of in time).
    #[napi(ts_return_type = "Promise<RelayProgress>")]
    pub fn step<'env>(
        &self,
        env: &'env Env,
        budget: f64,
        pace_ms: Option<f64>,
    ) -> napi::Result<PromiseRaw<'env, RelayProgress>> {
        let (state, cancel, counts) = (
            Arc::clone(&self.relay),
            self.cancel.clone(),
            Arc::clone(&self.counts),
        );
        let (budget, pace) = (budget_of(budget), pace_of(pace_ms));
        env.spawn_future(async move {
            step(&state, &cancel, &counts, budget, pace)
                .await
                .map_err(to_napi)
        })
    }

    /// Wakes and ends a waiting or running step: "abort" (AbortSignal) or "destroyed" (a socket was
    /// destroyed in JavaScript). The first reason wins.
    #[napi]
    pub fn cancel(&self, reason: String) {
        self.cancel.cancel(cancel_reason(&reason));
    }

    /// Bytes delivered so far, per chain, per sink (also after a failure).
    #[napi(getter)]
    pub fn bytes(&self) -> Vec<Vec<f64>> {
        lock(&self.counts).bytes_js()
    }

    /// Bytes read from each chain's source so far (also after a failure).
    #[napi(getter)]
    pub fn read(&self) -> Vec<f64> {
        lock(&self.counts).read_js()
    }

    /// Closes the job's fds and pipes if no step is running (a running step is cancelled and closes
    /// them when it ends).
    #[napi]
    pub fn close(&self) {
        if let Ok(mut guard) = self.relay.try_lock() {
            *guard = None;
        } else {
            self.cancel.cancel(CancelReason::Aborted);
        }
    }
}
