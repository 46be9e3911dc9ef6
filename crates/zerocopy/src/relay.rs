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
//! the sink is writable. The sleeping happens on tokio's epoll reactor ([`Registered`]): no thread is
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

use std::future::Future;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;

use crate::endpoint::{nonblocking_while_used, restore_blocking};
use crate::error::{Code, Error, Result};
use crate::ready::{Cancel, CancelReason, Pacer, Ready, Registered};
use crate::sys::splice::{self, Pipe, PipePool, SpliceFlags, RELAY_PIPE_SIZE};
use crate::sys::{file, socket};

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

/// What an end's fd is, as far as waiting goes.
#[derive(Debug)]
enum Fd {
    /// Not (yet) registered with the reactor: before the first step, and for fds epoll refuses
    /// (regular files, which are always ready).
    Plain(OwnedFd),
    Registered(Registered),
}

#[derive(Debug)]
struct End {
    fd: Fd,
    kind: SFlag,
    /// It was blocking before the relay; restored at the end.
    was_blocking: bool,
}

/// Refuses, before any byte moves, an end the relay could read from but not deliver to (or the
/// reverse): otherwise the first splice into it would fail with bytes already taken from the source.
fn check_access(fd: &OwnedFd, kind: SFlag, read: bool, written: bool) -> Result<()> {
    let flags = file::status_flags(fd)?;
    let mode = flags & OFlag::O_ACCMODE;
    let refuse = |errno, detail: &'static str| Err(Error::new(errno, SYSCALL).with_detail(detail));
    if written && mode == OFlag::O_RDONLY {
        return refuse(
            Errno::EBADF,
            "a destination of the relay is open for reading only",
        );
    }
    if read && mode == OFlag::O_WRONLY {
        return refuse(
            Errno::EBADF,
            "a source of the relay is open for writing only",
        );
    }
    if written && kind == SFlag::S_IFREG && flags.contains(OFlag::O_APPEND) {
        return refuse(
            Errno::EINVAL,
            "a destination of the relay is a file opened with O_APPEND ('a'): the kernel does not \
             splice into appending files; open it without O_APPEND",
        );
    }
    Ok(())
}

impl End {
    fn new(fd: OwnedFd) -> Result<End> {
        let kind = file::file_type(&file::fstat(&fd)?);
        if kind == SFlag::S_IFDIR {
            return Err(Error::new(Errno::EISDIR, SYSCALL));
        }
        let was_blocking = if kind == SFlag::S_IFREG {
            // Regular files are read and written in blocking mode: O_NONBLOCK would make splice answer
            // EAGAIN for pages not in the cache, and epoll cannot wait for those.
            false
        } else {
            nonblocking_while_used(&fd)?
        };
        Ok(End {
            fd: Fd::Plain(fd),
            kind,
            was_blocking,
        })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match &self.fd {
            Fd::Plain(fd) => fd.as_fd(),
            Fd::Registered(r) => r.fd().as_fd(),
        }
    }

    fn owned(&self) -> &OwnedFd {
        match &self.fd {
            Fd::Plain(fd) => fd,
            Fd::Registered(r) => r.fd(),
        }
    }

    /// Registers the fd with the reactor (inside a runtime); fds epoll refuses stay plain.
    fn register(self) -> End {
        let fd = match self.fd {
            Fd::Plain(fd) if self.kind != SFlag::S_IFREG => match Registered::try_new(fd) {
                Ok(r) => Fd::Registered(r),
                Err((_, fd)) => Fd::Plain(fd),
            },
            other => other,
        };
        End { fd, ..self }
    }

    fn is_socket(&self) -> bool {
        self.kind == SFlag::S_IFSOCK
    }
}

/// One sink of a chain, with the pipe that feeds it.
#[derive(Debug)]
struct Stage {
    dst: usize,
    pipe: Option<Pipe>,
    /// Bytes in `pipe`, counted by us: the pipe changes only through this stage's calls.
    queued: usize,
    /// Bytes at the head of `pipe` already duplicated into the next stage's pipe (cascades only):
    /// only these may leave for `dst`, and the next `tee` waits until they have.
    teed: usize,
    head: Vec<u8>,
    head_at: usize,
    /// Bytes that reached `dst`.
    moved: u64,
}

impl Stage {
    fn pipe(&self) -> Result<&Pipe> {
        self.pipe.as_ref().ok_or_else(closed)
    }

    /// Bytes the pipe may still take. A pipe's size counts slots of a page, but a slot can hold a
    /// larger chunk of a socket's buffer (32 KiB pages on loopback), so the kernel would take several
    /// times the size; the relay keeps each pipe to its size in bytes, which bounds its memory.
    fn room(&self) -> usize {
        self.pipe
            .as_ref()
            .map_or(0, |p| p.size().saturating_sub(self.queued))
    }

    fn head_left(&self) -> bool {
        self.head_at < self.head.len()
    }
}

#[derive(Debug)]
struct Chain {
    src: Option<usize>,
    stages: Vec<Stage>,
    /// Bytes read from the source (spliced into the first pipe).
    read: u64,
    eof: bool,
    shutdown: bool,
    done: bool,
}

/// One system call a chain can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `splice(src → first pipe)`, into an empty pipe.
    Fill,
    /// `write(sink i, head bytes)`.
    Head(usize),
    /// `splice(pipe i → sink i)`.
    Drain(usize),
    /// `tee(pipe i → pipe i+1)`.
    Tee(usize),
}

/// A chain waiting for an end: `op` answered `EAGAIN` and is retried once the end is ready.
#[derive(Debug, Clone, Copy)]
struct Wait {
    chain: usize,
    end: usize,
    writable: bool,
    op: Op,
}

enum Pump {
    Done,
    Budget,
    Blocked,
}

const MOVE: SpliceFlags = SpliceFlags::SPLICE_F_MOVE.union(SpliceFlags::SPLICE_F_NONBLOCK);

impl Chain {
    /// Makes one call; `Err(EAGAIN)` changes nothing. Returns the bytes it moved into a sink
    /// (what the budget counts), or for `Fill`/`Tee` the bytes it moved between pipes.
    fn run(&mut self, ends: &[End], op: Op) -> Result<usize> {
        match op {
            Op::Fill => {
                let src = self.src.ok_or_else(closed)?;
                let stage = self.stages.first_mut().ok_or_else(closed)?;
                let pipe = stage.pipe()?;
                let n =
                    splice::splice(ends[src].fd(), None, pipe.writer(), None, pipe.size(), MOVE)?;
                if n == 0 {
                    self.eof = true;
                }
                stage.queued += n;
                self.read += n as u64;
                Ok(n)
            }
            Op::Head(i) => {
                let stage = &mut self.stages[i];
                let n = file::write_at(ends[stage.dst].fd(), &stage.head[stage.head_at..], None)?;
                stuck_if_zero(n)?;
                stage.head_at += n;
                stage.moved += n as u64;
                Ok(n)
            }
            Op::Drain(i) => {
                let last = i + 1 == self.stages.len();
                let stage = &mut self.stages[i];
                let want = if last { stage.queued } else { stage.teed };
                let pipe = stage.pipe()?;
                let n =
                    splice::splice(pipe.reader(), None, ends[stage.dst].fd(), None, want, MOVE)?;
                stuck_if_zero(n)?;
                stage.queued -= n;
                if !last {
                    stage.teed -= n;
                }
                stage.moved += n as u64;
                Ok(n)
            }
            Op::Tee(i) => {
                let (this, rest) = self.stages.split_at_mut(i + 1);
                let (stage, next) = (&mut this[i], rest.first_mut().ok_or_else(closed)?);
                let n = splice::tee(
                    stage.pipe()?.reader(),
                    next.pipe()?.writer(),
                    stage.queued.min(next.room()),
                    SpliceFlags::SPLICE_F_NONBLOCK,
                )?;
                stuck_if_zero(n)?;
                stage.teed = n;
                next.queued += n;
                Ok(n)
            }
        }
    }

    /// Makes every call that can go ahead without waiting, until the chain is done, the budget (or
    /// the pace, once bytes have moved) is used, or every way forward answers `EAGAIN` (then `waits`
    /// holds what to wait for).
    fn pump(
        &mut self,
        index: usize,
        ends: &[End],
        left: &mut u64,
        waits: &mut Vec<Wait>,
        pace: (&Pacer, bool),
    ) -> Result<Pump> {
        let last = self.stages.len().saturating_sub(1);
        let (pacer, mut moved) = pace;
        loop {
            if *left == 0 || pacer.passed(moved) {
                return Ok(Pump::Budget);
            }
            let first_wait = waits.len();
            let mut progressed = false;
            for i in 0..self.stages.len() {
                let dst = self.stages[i].dst;
                let wait = |op| Wait {
                    chain: index,
                    end: dst,
                    writable: true,
                    op,
                };
                // A sink's head bytes go before anything spliced to it.
                if self.stages[i].head_left() {
                    match again(self.run(ends, Op::Head(i)))? {
                        Some(n) => {
                            progressed = true;
                            *left = left.saturating_sub(n as u64);
                        }
                        None => waits.push(wait(Op::Head(i))),
                    }
                    continue;
                }
                let stage = &self.stages[i];
                let drainable = if i == last { stage.queued } else { stage.teed };
                if drainable > 0 {
                    match again(self.run(ends, Op::Drain(i)))? {
                        Some(n) => {
                            progressed = true;
                            *left = left.saturating_sub(n as u64);
                        }
                        None => waits.push(wait(Op::Drain(i))),
                    }
                }
                // No room (or EAGAIN) means the next pipe is full: that stage's own sink is what to
                // wait for, and its turn in this loop records the wait.
                let stage = &self.stages[i];
                if i < last
                    && stage.teed == 0
                    && stage.queued > 0
                    && self.stages[i + 1].room() > 0
                    && again(self.run(ends, Op::Tee(i)))?.is_some()
                {
                    progressed = true;
                }
            }
            if let Some(src) = self.src.filter(|_| !self.eof) {
                if self.stages.first().is_some_and(|s| s.queued == 0) {
                    match again(self.run(ends, Op::Fill))? {
                        Some(_) => progressed = true,
                        None => waits.push(Wait {
                            chain: index,
                            end: src,
                            writable: false,
                            op: Op::Fill,
                        }),
                    }
                }
            }
            let empty = self.stages.iter().all(|s| !s.head_left() && s.queued == 0);
            if self.eof && empty {
                self.finish(ends)?;
                return Ok(Pump::Done);
            }
            if progressed {
                // Waits recorded in this round may be stale now; the next round records them afresh.
                waits.truncate(first_wait);
                moved = true;
                continue;
            }
            if waits.len() == first_wait {
                // Cannot happen while the counts match the pipes; fail rather than spin.
                return Err(Error::new(Errno::EIO, SYSCALL).with_detail("the relay stopped moving"));
            }
            return Ok(Pump::Blocked);
        }
    }

    fn finish(&mut self, ends: &[End]) -> Result<()> {
        self.done = true;
        if self.shutdown {
            for stage in &self.stages {
                let end = &ends[stage.dst];
                if end.is_socket() {
                    socket::shutdown_write(end.fd())?;
                }
            }
        }
        Ok(())
    }
}

/// `Ok(Some(n))` for progress, `Ok(None)` for `EAGAIN`.
fn again(result: Result<usize>) -> Result<Option<usize>> {
    match result {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.errno() == Errno::EAGAIN => Ok(None),
        Err(e) => Err(e),
    }
}

fn stuck_if_zero(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::new(Errno::EIO, SYSCALL).with_detail("a pipe moved no bytes"));
    }
    Ok(())
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
        match reason {
            CancelReason::Aborted => Error::aborted(SYSCALL),
            // A socket destroyed on the JS side: if a peer reset or closed its connection, that is the
            // real story. Only sinks of unfinished chains are asked: a finished chain shut its sinks
            // down, and a socket shut down for writing answers EPIPE however healthy it is.
            CancelReason::Destroyed => {
                for chain in self.chains.iter().filter(|c| !c.done) {
                    for stage in &chain.stages {
                        let end = &self.ends[stage.dst];
                        if end.is_socket() {
                            if let Err(e) = socket::probe_send(end.fd()) {
                                return e;
                            }
                        }
                    }
                }
                Error::custom(
                    Code::SocketDestroyed,
                    Errno::EPIPE,
                    SYSCALL,
                    "a socket was destroyed while the relay was running",
                )
            }
        }
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

enum Woken<'a> {
    Ready(usize, Ready<'a>),
    Cancelled(CancelReason),
    /// The pace's time to report came first.
    Due,
}

type ReadyFuture<'a> = Pin<Box<dyn Future<Output = Result<Ready<'a>>> + Send + 'a>>;

/// Sleeps until the end of one of `waits` is reported ready (its index and report), `cancel` fires,
/// or `report_at` (from [`Pacer::due`]) has come.
async fn wait_first<'a>(
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
