//! Relaying streams through kernel pipes: `splice` in, `splice` out, and no byte in user space.
//!
//! A [`Relay`] moves bytes between *ends* (sockets, pipes, FIFOs — fds that `splice(2)` accepts;
//! regular files too) along *chains*. A chain reads one source until end of stream and writes what
//! it reads to one or more sinks:
//!
//! - `pipe(src, dst)` is one chain with one sink;
//! - `proxy(a, b)` is two chains between the same two sockets, `a → b` and `b → a`;
//! - `tee(src, [d1, d2, …])` is one chain with several sinks.
//!
//! A chain's bytes travel through pipes of its own, taken from the [`PipePool`]: `splice(src → P₁)`,
//! then `splice(P₁ → d₁)`. With several sinks the pipes form a cascade: `tee(P₁ → P₂)` duplicates the
//! bytes at the head of `P₁` into `P₂` (page references, not copies), and only bytes already
//! duplicated are spliced out of `P₁` to `d₁`; `P₂` does the same for `P₃`, and the last pipe drains
//! to the last sink. Memory stays bounded by one pipe per sink: a sink that does not read stops the
//! chain once its pipe is full.
//!
//! ## Waiting, and which side `EAGAIN` came from
//!
//! Every fd is non-blocking (sockets and pipes the caller passed in blocking mode are switched for the
//! relay's length and switched back afterwards). `splice(src → pipe)` answers `EAGAIN` both when the
//! source has nothing to read and when the pipe is full, so a chain only reads into an *empty* pipe:
//! there, `EAGAIN` can only mean "nothing to read", and the chain sleeps until the source is readable.
//! Splicing out of a non-empty pipe, `EAGAIN` can only mean the sink is full, and the chain sleeps until
//! the sink is writable. The sleeping happens on tokio's epoll reactor ([`Registered`](crate::ready::Registered)): no thread is
//! held and nothing spins; [`Cancel`] wakes it.
//!
//! ## End of stream and half-close
//!
//! When a chain's source reports end of stream and its pipes are empty, the chain is done. With
//! [`ChainSpec::shutdown`], each sink that is a socket is then shut down for writing (`shutdown(SHUT_WR)`):
//! its peer reads end of stream, while the other direction of a proxy goes on.
//!
//! ## Errors
//!
//! The first failure of any chain (`ECONNRESET` reading, `EPIPE` writing, …) ends the whole relay with
//! that error; the bytes each chain delivered stay readable through [`Relay::bytes`]. A relay that
//! ended mid-stream may leave bytes in its pipes; those pipes are closed, never pooled.

mod chain;
mod pool;
mod wait;

use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::errno::Errno;

use self::chain::{check_access, Chain, End, Op, Pump, Stage};
pub use self::pool::{PipePool, POOL_MAX_IDLE};
use self::wait::{wait_first, Woken};
use crate::endpoint::restore_blocking;
use crate::error::{Code, Error, Result};
use crate::ready::{Cancel, CancelReason, Pacer};
use crate::sys::socket;
use crate::sys::splice::{Pipe, RELAY_PIPE_SIZE};

const SYSCALL: &str = "splice";

/// One chain of a relay: the end it reads, the ends it writes to.
#[derive(Debug, Clone, Default)]
pub struct ChainSpec {
    /// Index of the source in the relay's ends; `None` for a source that has already reached end of
    /// stream (its last bytes, read by someone else, are the `head`): the chain delivers the head,
    /// ends as at end of stream, and reads nothing.
    pub src: Option<usize>,
    /// Indexes of the sinks (at least one).
    pub sinks: Vec<usize>,
    /// Bytes that came from the source before the relay (e.g. read and buffered by Node): written to
    /// every sink before the first spliced byte.
    pub head: Vec<u8>,
    /// At end of stream, shut down every sink that is a socket for writing (`SHUT_WR`).
    pub shutdown: bool,
}

/// The error for using a relay (or one of its stages) after it has let go of its fds and pipes.
pub(crate) fn closed() -> Error {
    Error::custom(Code::Closed, Errno::EBADF, SYSCALL, "the relay was closed")
}

/// Streams relayed through kernel pipes; see the [module documentation](self).
///
/// ```no_run
/// # async fn demo(a: std::os::fd::OwnedFd, b: std::os::fd::OwnedFd) -> zerocopy_io::Result<()> {
/// use zerocopy_io::ready::Cancel;
/// use zerocopy_io::relay::Relay;
///
/// let mut relay = Relay::proxy(a, b)?; // inside a tokio runtime
/// while !relay.step(u64::MAX, &Cancel::new()).await? {}
/// println!("a→b {:?}, b→a {:?}", relay.bytes(0), relay.bytes(1));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Relay {
    ends: Vec<End>,
    chains: Vec<Chain>,
    pool: &'static PipePool,
    registered: bool,
    finished: bool,
}

impl Relay {
    /// A relay over `ends` (which it owns: pass duplicates) along `chains`, with pipes of about
    /// `pipe_size` bytes (default 1 MiB, capped at `/proc/sys/fs/pipe-max-size`).
    ///
    /// Fails with `EINVAL` for a chain without sinks or an index out of range, `EISDIR` for a
    /// directory, and whatever making pipes reports (`EMFILE`, …).
    pub fn new(
        ends: Vec<OwnedFd>,
        chains: Vec<ChainSpec>,
        pipe_size: Option<usize>,
    ) -> Result<Relay> {
        let invalid = |what: &str| Error::new(Errno::EINVAL, SYSCALL).with_detail(what.to_owned());
        for chain in &chains {
            if chain.sinks.is_empty() {
                return Err(invalid("a relay chain needs at least one sink"));
            }
            if chain.src.is_some_and(|s| s >= ends.len())
                || chain.sinks.iter().any(|&s| s >= ends.len())
            {
                return Err(invalid("a relay chain names an end that does not exist"));
            }
        }
        let mut relay = Relay {
            ends: Vec::with_capacity(ends.len()),
            chains: Vec::with_capacity(chains.len()),
            pool: PipePool::global(),
            registered: false,
            finished: false,
        };
        for (i, fd) in ends.into_iter().enumerate() {
            let read = chains.iter().any(|c| c.src == Some(i));
            let written = chains.iter().any(|c| c.sinks.contains(&i));
            // On failure `relay` is dropped, which gives the ends made so far their blocking mode back.
            relay.ends.push(End::new(fd)?);
            let end = &relay.ends[i];
            check_access(end.owned(), end.kind, read, written)?;
        }
        let size = pipe_size.unwrap_or(RELAY_PIPE_SIZE);
        for spec in chains {
            let mut stages = Vec::with_capacity(spec.sinks.len());
            for &dst in &spec.sinks {
                stages.push(Stage {
                    dst,
                    pipe: Some(relay.pool.take(size)?),
                    queued: 0,
                    teed: 0,
                    head: spec.head.clone(),
                    head_at: 0,
                    moved: 0,
                });
            }
            relay.chains.push(Chain {
                src: spec.src,
                stages,
                read: 0,
                eof: spec.src.is_none(),
                shutdown: spec.shutdown,
                done: false,
            });
        }
        Ok(relay)
    }

    /// `src → dst` until end of stream, then `dst` shut down for writing if it is a socket.
    pub fn pipe(src: OwnedFd, dst: OwnedFd) -> Result<Relay> {
        let chain = ChainSpec {
            src: Some(0),
            sinks: vec![1],
            head: Vec::new(),
            shutdown: true,
        };
        Relay::new(vec![src, dst], vec![chain], None)
    }

    /// Both directions between `a` and `b` (chain 0 is `a → b`, chain 1 `b → a`), each end of stream
    /// forwarded as `shutdown(SHUT_WR)` on the other socket.
    pub fn proxy(a: OwnedFd, b: OwnedFd) -> Result<Relay> {
        let chain = |src, dst| ChainSpec {
            src: Some(src),
            sinks: vec![dst],
            head: Vec::new(),
            shutdown: true,
        };
        Relay::new(vec![a, b], vec![chain(0, 1), chain(1, 0)], None)
    }

    /// `src` duplicated into every sink with `tee(2)`, each sink shut down at end of stream.
    pub fn tee(src: OwnedFd, sinks: Vec<OwnedFd>) -> Result<Relay> {
        let chain = ChainSpec {
            src: Some(0),
            sinks: (1..=sinks.len()).collect(),
            head: Vec::new(),
            shutdown: true,
        };
        let mut ends = vec![src];
        ends.extend(sinks);
        Relay::new(ends, vec![chain], None)
    }

    /// Bytes delivered to each sink of `chain` so far (also after a failure).
    pub fn bytes(&self, chain: usize) -> Vec<u64> {
        self.chains
            .get(chain)
            .map(|c| c.stages.iter().map(|s| s.moved).collect())
            .unwrap_or_default()
    }

    /// Bytes read from the source of `chain` so far: those delivered, and those still in its pipes.
    pub fn read(&self, chain: usize) -> u64 {
        self.chains.get(chain).map_or(0, |c| c.read)
    }

    /// Every byte the relay has read or delivered: grows whenever any end saw activity.
    fn activity(&self) -> u64 {
        self.chains
            .iter()
            .map(|c| c.read + c.stages.iter().map(|s| s.moved).sum::<u64>())
            .sum()
    }

    /// How many chains the relay has.
    pub fn chains(&self) -> usize {
        self.chains.len()
    }

    /// Whether `chain` has reached end of stream and delivered everything.
    pub fn is_chain_done(&self, chain: usize) -> bool {
        self.chains.get(chain).is_some_and(|c| c.done)
    }

    /// Whether the relay has ended (every chain done, failed or cancelled).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The capacity of each pipe of `chain`.
    pub fn pipe_sizes(&self, chain: usize) -> Vec<usize> {
        self.chains
            .get(chain)
            .map(|c| {
                c.stages
                    .iter()
                    .filter_map(|s| s.pipe.as_ref().map(Pipe::size))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Relays until about `budget` more bytes have reached sinks, a chain finishes, or everything is
    /// done (`Ok(true)`), sleeping on readiness whenever every chain waits for an end. Must run inside a
    /// tokio runtime. Cancelling only interrupts a wait, never a call, so the counts stay exact.
    ///
    /// Errors: the ends' (`ECONNRESET`, `EPIPE`, …); `ABORT_ERR` when cancelled by abort;
    /// `ERR_STREAM_DESTROYED` when cancelled because a socket was destroyed while its connection was
    /// still fine (otherwise the connection's own error). After an error or completion the relay has
    /// let go of its pipes and given the fds back their blocking mode.
    pub async fn step(&mut self, budget: u64, cancel: &Cancel) -> Result<bool> {
        self.step_paced(budget, None, cancel).await
    }

    /// [`step`](Self::step) that also ends (`Ok(false)`) as a [`Pacer`] says: once `pace` has passed
    /// and bytes have moved (read from a source or delivered to a sink). For idle timeouts, which must see every byte.
    pub async fn step_paced(
        &mut self,
        budget: u64,
        pace: Option<Duration>,
        cancel: &Cancel,
    ) -> Result<bool> {
        if self.finished {
            return Ok(true);
        }
        let result = self.advance(budget.max(1), Pacer::new(pace), cancel).await;
        if !matches!(result, Ok(false)) {
            self.finish();
        }
        result
    }

    async fn advance(&mut self, budget: u64, pacer: Pacer, cancel: &Cancel) -> Result<bool> {
        if !self.registered {
            self.registered = true;
            self.ends = std::mem::take(&mut self.ends)
                .into_iter()
                .map(End::register)
                .collect();
        }
        let mut left = budget;
        let mut waits = Vec::new();
        let started = self.activity();
        loop {
            if let Some(reason) = cancel.reason() {
                return Err(self.cancelled(reason));
            }
            waits.clear();
            let mut finished_now = false;
            let moved = self.activity() > started;
            for (index, chain) in self.chains.iter_mut().enumerate() {
                if chain.done {
                    continue;
                }
                match chain.pump(index, &self.ends, &mut left, &mut waits, (&pacer, moved))? {
                    Pump::Done => finished_now = true,
                    Pump::Budget => return Ok(false),
                    Pump::Blocked => {}
                }
            }
            if self.chains.iter().all(|c| c.done) {
                return Ok(true);
            }
            if finished_now {
                return Ok(false);
            }
            // Every chain waits: sleep until one of the ends it waits for is ready, and retry that call;
            // or, if bytes moved in this step, until it is time to report them.
            let report_at = pacer.due(self.activity() > started);
            loop {
                let (which, ready) = match wait_first(&self.ends, &waits, cancel, report_at).await?
                {
                    Woken::Ready(which, ready) => (which, ready),
                    Woken::Cancelled(reason) => return Err(self.cancelled(reason)),
                    Woken::Due => return Ok(false),
                };
                let wait = waits[which];
                match self.chains[wait.chain].run(&self.ends, wait.op) {
                    Err(e) if e.errno() == Errno::EAGAIN => ready.clear(),
                    Err(e) => return Err(e),
                    Ok(n) => {
                        if matches!(wait.op, Op::Head(_) | Op::Drain(_)) {
                            left = left.saturating_sub(n as u64);
                        }
                        break;
                    }
                }
            }
        }
    }

    fn cancelled(&self, reason: CancelReason) -> Error {
        // Only sinks of unfinished chains are asked how their connection is: a finished chain shut
        // its sinks down, and a socket shut down for writing answers EPIPE however healthy it is.
        let connections = || {
            for chain in self.chains.iter().filter(|c| !c.done) {
                for stage in &chain.stages {
                    let end = &self.ends[stage.dst];
                    if end.is_socket() {
                        socket::probe_send(end.fd())?;
                    }
                }
            }
            Ok(())
        };
        reason.error(
            SYSCALL,
            connections,
            "a socket was destroyed while the relay was running",
        )
    }

    /// Returns empty pipes to the pool (closing the others) and restores blocking modes. Idempotent.
    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        for chain in &mut self.chains {
            for stage in &mut chain.stages {
                if let Some(pipe) = stage.pipe.take() {
                    self.pool.give(pipe);
                }
            }
        }
        for end in &self.ends {
            restore_blocking(end.owned(), end.was_blocking);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.finish();
    }
}
