//! The parts of a relay that make system calls: its ends, and its chains of stages (a sink and the
//! pipe that feeds it), each call retried or waited for as the [module documentation](super) says.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;

use super::{closed, SYSCALL};
use crate::endpoint::nonblocking_while_used;
use crate::error::{Error, Result};
use crate::ready::{Pacer, Registered};
use crate::sys::splice::{self, Pipe, SpliceFlags};
use crate::sys::{file, socket};

/// What an end's fd is, as far as waiting goes.
#[derive(Debug)]
pub(super) enum Fd {
    /// Not (yet) registered with the reactor: before the first step, and for fds epoll refuses
    /// (regular files, which are always ready).
    Plain(OwnedFd),
    Registered(Registered),
}

#[derive(Debug)]
pub(super) struct End {
    pub(super) fd: Fd,
    pub(super) kind: SFlag,
    /// It was blocking before the relay; restored at the end.
    pub(super) was_blocking: bool,
}

/// Refuses, before any byte moves, an end the relay could read from but not deliver to (or the
/// reverse): otherwise the first splice into it would fail with bytes already taken from the source.
pub(super) fn check_access(fd: &OwnedFd, kind: SFlag, read: bool, written: bool) -> Result<()> {
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
    pub(super) fn new(fd: OwnedFd) -> Result<End> {
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

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match &self.fd {
            Fd::Plain(fd) => fd.as_fd(),
            Fd::Registered(r) => r.fd().as_fd(),
        }
    }

    pub(super) fn owned(&self) -> &OwnedFd {
        match &self.fd {
            Fd::Plain(fd) => fd,
            Fd::Registered(r) => r.fd(),
        }
    }

    /// Registers the fd with the reactor (inside a runtime); fds epoll refuses stay plain.
    pub(super) fn register(self) -> End {
        let fd = match self.fd {
            Fd::Plain(fd) if self.kind != SFlag::S_IFREG => match Registered::try_new(fd) {
                Ok(r) => Fd::Registered(r),
                Err((_, fd)) => Fd::Plain(fd),
            },
            other => other,
        };
        End { fd, ..self }
    }

    pub(super) fn is_socket(&self) -> bool {
        self.kind == SFlag::S_IFSOCK
    }
}

/// One sink of a chain, with the pipe that feeds it.
#[derive(Debug)]
pub(super) struct Stage {
    pub(super) dst: usize,
    pub(super) pipe: Option<Pipe>,
    /// Bytes in `pipe`, counted by us: the pipe changes only through this stage's calls.
    pub(super) queued: usize,
    /// Bytes at the head of `pipe` already duplicated into the next stage's pipe (cascades only):
    /// only these may leave for `dst`, and the next `tee` waits until they have.
    pub(super) teed: usize,
    pub(super) head: Vec<u8>,
    pub(super) head_at: usize,
    /// Bytes that reached `dst`.
    pub(super) moved: u64,
}

impl Stage {
    pub(super) fn pipe(&self) -> Result<&Pipe> {
        self.pipe.as_ref().ok_or_else(closed)
    }

    /// Bytes the pipe may still take. A pipe's size counts slots of a page, but a slot can hold a
    /// larger chunk of a socket's buffer (32 KiB pages on loopback), so the kernel would take several
    /// times the size; the relay keeps each pipe to its size in bytes, which bounds its memory.
    pub(super) fn room(&self) -> usize {
        self.pipe
            .as_ref()
            .map_or(0, |p| p.size().saturating_sub(self.queued))
    }

    pub(super) fn head_left(&self) -> bool {
        self.head_at < self.head.len()
    }
}

#[derive(Debug)]
pub(super) struct Chain {
    pub(super) src: Option<usize>,
    pub(super) stages: Vec<Stage>,
    /// Bytes read from the source (spliced into the first pipe).
    pub(super) read: u64,
    pub(super) eof: bool,
    pub(super) shutdown: bool,
    pub(super) done: bool,
}

/// One system call a chain can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
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
pub(super) struct Wait {
    pub(super) chain: usize,
    pub(super) end: usize,
    pub(super) writable: bool,
    pub(super) op: Op,
}

pub(super) enum Pump {
    Done,
    Budget,
    Blocked,
}

const MOVE: SpliceFlags = SpliceFlags::SPLICE_F_MOVE.union(SpliceFlags::SPLICE_F_NONBLOCK);

impl Chain {
    /// Makes one call; `Err(EAGAIN)` changes nothing. Returns the bytes it moved into a sink
    /// (what the budget counts), or for `Fill`/`Tee` the bytes it moved between pipes.
    pub(super) fn run(&mut self, ends: &[End], op: Op) -> Result<usize> {
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
    pub(super) fn pump(
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

    pub(super) fn finish(&mut self, ends: &[End]) -> Result<()> {
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
