//! Sending a file into a socket (or pipe): `sendfile(2)`, tried at once and then driven by readiness.
//!
//! The socket is non-blocking (libuv's, or made so for the duration of the send), so a `sendfile`
//! call never waits: it moves what fits in the socket buffer and answers `EAGAIN` when it is full.
//! [`SendFile::try_step`] makes such calls on the caller's thread and stops at the first `EAGAIN` —
//! most small and medium sends finish there with no thread hop at all. [`SendFile::step`] goes on
//! from there: it sleeps on a tokio reactor until the peer has read some, and a [`Cancel`]
//! interrupts the sleep. Files whose `stat` size is 0 (procfs, sysfs) cannot be sent by `sendfile`
//! reliably, so they go through a buffer (`read` + `write`).

use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use crate::copy::Source;
use crate::endpoint::{
    nonblocking_while_used, open_nonblocking, restore_blocking, settle, start_of, End,
};
use crate::error::{Code, Error, Result};
use crate::ready::{Cancel, CancelReason, Pacer, Registered};
use crate::sys::{file, sendfile, socket};

const SYSCALL: &str = "sendfile";

/// Buffer size of the read/write path (size-0 files).
const RW_BUFFER: usize = 64 * 1024;

/// How the bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMechanism {
    /// `sendfile(2)`: page cache to socket, no user-space copy.
    Sendfile,
    /// `read(2)` into a buffer, `write(2)` to the socket: files whose size `stat` cannot tell.
    ReadWrite,
}

impl SendMechanism {
    /// `"sendfile"` or `"readwrite"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SendMechanism::Sendfile => "sendfile",
            SendMechanism::ReadWrite => "readwrite",
        }
    }
}

/// Where a send stands after [`SendFile::try_step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Everything was sent.
    Done,
    /// The socket buffer is full: [`SendFile::step`] will wait for the peer.
    Blocked,
    /// The budget was used up; more to send.
    Budget,
}

/// The fds and buffers that move bytes; separate from the waiting machinery so both can be borrowed.
#[derive(Debug)]
struct Io {
    socket: OwnedFd,
    file: End,
    mechanism: SendMechanism,
    /// Read/write path: bytes read from the file and not yet written, `buffer[pending.0..pending.1]`.
    buffer: Vec<u8>,
    pending: (usize, usize),
    /// Bytes written before the file (an HTTP response's headers), `head[head_sent..]` still to go.
    head: Vec<u8>,
    head_sent: usize,
}

/// What one [`Io::write_once`] moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrote {
    /// Bytes of the head (none of the file yet).
    Head,
    /// Bytes of the file; 0 when `sendfile` found end of file.
    File(u64),
    /// End of a file of unknown size.
    End,
}

impl Io {
    /// One non-blocking write to the socket: the head's bytes while some are left, then the file's:
    /// the bytes it moved, [`Wrote::End`] at the end of a file of unknown size, `Err(EAGAIN)` when the
    /// socket buffer is full, `Wrote::File(0)` if `sendfile` found end of file.
    fn write_once(&mut self, moved: u64, want: u64) -> Result<Wrote> {
        if self.head_sent < self.head.len() {
            // MSG_MORE only where sendfile's bytes follow for sure (they push the packet out).
            let more = want > 0 && self.mechanism == SendMechanism::Sendfile;
            self.head_sent += socket::send_more(&self.socket, &self.head[self.head_sent..], more)?;
            return Ok(Wrote::Head);
        }
        self.write_file(moved, want).map(|n| n.map_or(Wrote::End, Wrote::File))
    }

    fn write_file(&mut self, moved: u64, want: u64) -> Result<Option<u64>> {
        match self.mechanism {
            SendMechanism::Sendfile => {
                let chunk = usize::try_from(want)
                    .map_or(sendfile::MAX_CHUNK, |w| w.min(sendfile::MAX_CHUNK));
                let mut offset = self.file.at(moved);
                let n = sendfile::sendfile(&self.socket, &self.file.fd, offset.as_mut(), chunk)?;
                Ok(Some(n as u64))
            }
            SendMechanism::ReadWrite => {
                if self.pending.0 == self.pending.1 {
                    if self.buffer.is_empty() {
                        self.buffer = vec![0; RW_BUFFER];
                    }
                    let len = usize::try_from(want).map_or(RW_BUFFER, |w| w.min(RW_BUFFER));
                    let n =
                        file::read_at(&self.file.fd, &mut self.buffer[..len], self.file.at(moved))?;
                    if n == 0 {
                        return Ok(None);
                    }
                    self.pending = (0, n);
                }
                let n = file::write_at(
                    &self.socket,
                    &self.buffer[self.pending.0..self.pending.1],
                    None,
                )?;
                self.pending.0 += n;
                Ok(Some(n as u64))
            }
        }
    }
}

/// A file being sent into a socket.
#[derive(Debug)]
pub struct SendFile {
    io: Io,
    /// A duplicate of the socket registered with the tokio reactor, made the first time a send must
    /// wait for the peer.
    waiter: Option<Registered>,
    /// The socket was blocking; it is non-blocking while we send and put back afterwards.
    restore_blocking: bool,
    /// Bytes to send in all; `None` for size-0 files, sent until end of file.
    limit: Option<u64>,
    moved: u64,
    finished: bool,
}

impl SendFile {
    /// Prepares to send `file` (from `offset`, at most `length` bytes) into `socket`, which the send
    /// owns (pass a duplicate). Opening a path is blocking I/O; with an fd nothing here touches the disk.
    ///
    /// Fails on: a regular file as `socket` (`EINVAL`: use a copy), a directory as `file` (`EISDIR`),
    /// a `file` that is not a regular file (`EINVAL`: streams belong to `splice`), an offset on a
    /// stream (`ESPIPE`), and whatever `open` reports.
    pub fn open(
        socket: OwnedFd,
        file: Source,
        offset: Option<u64>,
        length: Option<u64>,
    ) -> Result<SendFile> {
        let (file_fd, path) = match file {
            Source::Path(path) => (
                open_nonblocking(&path, OFlag::O_RDONLY, Mode::empty())?,
                Some(path),
            ),
            Source::Fd(fd) => (fd, None),
        };
        let with_path = |e: Error| match &path {
            Some(p) => e.with_path(p),
            None => e,
        };
        let st = file::fstat(&file_fd).map_err(with_path)?;
        match file::file_type(&st) {
            SFlag::S_IFDIR => return Err(with_path(Error::new(Errno::EISDIR, SYSCALL))),
            SFlag::S_IFREG => {}
            _ => {
                return Err(with_path(Error::new(Errno::EINVAL, SYSCALL).with_detail(
                    "the file to send must be a regular file (relay streams with relay::Relay)",
                )))
            }
        }
        if file::file_type(&file::fstat(&socket)?) == SFlag::S_IFREG {
            return Err(Error::new(Errno::EINVAL, SYSCALL).with_detail(
                "the destination is a regular file, not a socket or pipe (copy files with copy::copy)",
            ));
        }
        let owned = path.is_some();
        let (start, position) = start_of(&file_fd, offset, owned, SYSCALL).map_err(with_path)?;
        let restore_blocking = nonblocking_while_used(&socket)?;
        let known = st.st_size > 0;
        let limit = if known {
            let available = (st.st_size as u64).saturating_sub(start.unwrap_or(0) as u64);
            Some(length.map_or(available, |l| l.min(available)))
        } else {
            length
        };
        let mut send = SendFile {
            io: Io {
                socket,
                file: End {
                    fd: file_fd,
                    path,
                    start,
                    position,
                },
                mechanism: if known {
                    SendMechanism::Sendfile
                } else {
                    SendMechanism::ReadWrite
                },
                buffer: Vec::new(),
                pending: (0, 0),
                head: Vec::new(),
                head_sent: 0,
            },
            waiter: None,
            restore_blocking,
            limit,
            moved: 0,
            finished: false,
        };
        if send.limit == Some(0) {
            send.finish();
        }
        Ok(send)
    }

    /// Moves the bytes through a user-space buffer (`read` + `write`, 64 KiB at a time) instead of
    /// `sendfile`: the traditional path, for comparisons. Only before anything was sent.
    pub fn use_read_write(&mut self) {
        if self.moved == 0 {
            self.io.mechanism = SendMechanism::ReadWrite;
        }
    }

    /// Writes `head` to the socket before the file (an HTTP response's headers: they share the body's
    /// first packet, `MSG_MORE`), in the same steps. Only before anything was sent; ignored once the
    /// send has ended (a window of 0 bytes ends it at [`open`](Self::open): nothing is written then).
    pub fn set_head(&mut self, head: Vec<u8>) {
        if self.moved == 0 && self.io.head_sent == 0 && !self.finished {
            self.io.head = head;
        }
    }

    /// Bytes of the head that reached the socket so far.
    pub fn head_bytes(&self) -> u64 {
        self.io.head_sent as u64
    }

    /// Bytes of the file that reached the socket so far.
    pub fn bytes(&self) -> u64 {
        self.moved
    }

    /// Bytes to send in all, when known.
    pub fn total(&self) -> Option<u64> {
        self.limit
    }

    /// How the bytes travel.
    pub fn mechanism(&self) -> SendMechanism {
        self.io.mechanism
    }

    /// Whether the send has ended (complete, failed or cancelled).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Sends up to about `budget` bytes without ever waiting: stops when done, when the budget is used,
    /// or at the first `EAGAIN`. Safe to call on an event loop thread.
    pub fn try_step(&mut self, budget: u64) -> Result<Attempt> {
        if self.finished {
            return Ok(Attempt::Done);
        }
        let result = self
            .try_step_inner(budget, &Pacer::new(None), self.moved)
            .map(|(attempt, _)| attempt);
        self.settle_if_ended(result)
    }

    /// Whether the next `budget` bytes to send are all in the page cache (`cachestat(2)`), so that
    /// [`try_step`](Self::try_step) cannot block on the disk. `false` when unknown (no cachestat, or
    /// a file of unknown size).
    pub fn is_cached(&self, budget: u64) -> bool {
        let (Some(_), Some(at)) = (self.limit, self.io.file.at(self.moved)) else {
            return false;
        };
        let len = self.remaining().min(budget);
        if len == 0 {
            return true;
        }
        let page = crate::sys::probe::page_size() as u64;
        let first = at as u64 / page;
        let last = (at as u64 + len - 1) / page;
        matches!(file::cached_pages(&self.io.file.fd, at as u64, len), Ok(Some(n)) if n > last - first)
    }

    /// Sends up to about `budget` more bytes, sleeping on readiness while the peer is not reading.
    /// Returns `Ok(true)` when everything was sent. Must run inside a tokio runtime.
    ///
    /// Errors: the socket's (`EPIPE`, `ECONNRESET`, …); `ERR_FILE_TRUNCATED` when the file ends before
    /// the bytes it had when the send started; `ABORT_ERR` when cancelled by abort;
    /// `ERR_STREAM_DESTROYED` when cancelled because the socket was destroyed while still connected.
    /// After an error or completion the file position is settled and the socket restored.
    pub async fn step(&mut self, budget: u64, cancel: &Cancel) -> Result<bool> {
        self.step_paced(budget, None, cancel).await
    }

    /// [`step`](Self::step) that also ends (`Ok(false)`) as a [`Pacer`] says: once `pace` has passed
    /// and bytes have moved. For idle timeouts, which must see every byte.
    pub async fn step_paced(
        &mut self,
        budget: u64,
        pace: Option<Duration>,
        cancel: &Cancel,
    ) -> Result<bool> {
        if self.finished {
            return Ok(true);
        }
        let result = self.advance(budget, Pacer::new(pace), cancel).await;
        self.settle_if_ended(result.map(|done| if done { Attempt::Done } else { Attempt::Budget }))
            .map(|a| a == Attempt::Done)
    }

    fn remaining(&self) -> u64 {
        self.limit.map_or(u64::MAX, |l| l - self.moved)
    }

    async fn advance(&mut self, budget: u64, pacer: Pacer, cancel: &Cancel) -> Result<bool> {
        let mut left = budget;
        let started = self.moved;
        loop {
            if let Some(reason) = cancel.reason() {
                return Err(self.cancelled(reason));
            }
            match self.try_step_inner(left, &pacer, started)? {
                (Attempt::Done, _) => return Ok(true),
                (Attempt::Budget, _) => return Ok(false),
                (Attempt::Blocked, sent) => left = left.saturating_sub(sent),
            }
            // Bytes moved earlier in this step and the pace has passed: report them before waiting.
            if pacer.passed(self.moved > started) {
                return Ok(false);
            }
            let report_at = pacer.due(self.moved > started);
            if self.waiter.is_none() {
                self.waiter = Some(Registered::new(file::dup_cloexec(
                    std::os::fd::AsFd::as_fd(&self.io.socket),
                )?)?);
            }
            let want = self.remaining().min(left.max(1));
            let moved = self.moved;
            let (io, waiter) = (&mut self.io, self.waiter.as_ref());
            let Some(waiter) = waiter else {
                return Err(Error::new(Errno::EINVAL, SYSCALL));
            };
            // Biased towards cancellation: an abort wins over a socket that is ready again. Cancelling
            // (or the pace's report) can only interrupt the wait, never a write, so `moved` stays exact.
            let sent = tokio::select! {
                biased;
                reason = cancel.cancelled() => return Err(self.cancelled(reason)),
                () = Pacer::sleep(report_at) => return Ok(false),
                sent = waiter.write_with(|_| io.write_once(moved, want)) => sent?,
            };
            match sent {
                Wrote::Head => {}
                Wrote::File(0) => return Err(self.truncated()),
                Wrote::File(n) => {
                    self.moved += n;
                    left = left.saturating_sub(n);
                }
                Wrote::End => return Ok(true),
            }
        }
    }

    /// `try_step` without settling, returning what it sent too. The pace ends it like the budget
    /// once bytes have moved since `started` (a reader fast enough never lets it meet `EAGAIN`).
    fn try_step_inner(
        &mut self,
        budget: u64,
        pacer: &Pacer,
        started: u64,
    ) -> Result<(Attempt, u64)> {
        let before = self.moved;
        let mut left = budget;
        loop {
            let head_done = self.io.head_sent == self.io.head.len();
            if self.remaining() == 0 && head_done {
                return Ok((Attempt::Done, self.moved - before));
            }
            if head_done && (left == 0 || pacer.passed(self.moved > started)) {
                return Ok((Attempt::Budget, self.moved - before));
            }
            let want = self.remaining().min(left);
            match self.io.write_once(self.moved, want) {
                Ok(Wrote::Head) => {}
                Ok(Wrote::File(0)) => return Err(self.truncated()),
                Ok(Wrote::File(n)) => {
                    self.moved += n;
                    left = left.saturating_sub(n);
                }
                Ok(Wrote::End) => return Ok((Attempt::Done, self.moved - before)),
                Err(e) if e.errno() == Errno::EAGAIN => {
                    return Ok((Attempt::Blocked, self.moved - before))
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn settle_if_ended(&mut self, result: Result<Attempt>) -> Result<Attempt> {
        let result = match result {
            Ok(Attempt::Done) => self.shrank_under_send().map_or(Ok(Attempt::Done), Err),
            other => other,
        };
        if !matches!(result, Ok(Attempt::Blocked | Attempt::Budget)) {
            self.finish();
        }
        result.map_err(|e| match &self.io.file.path {
            Some(p) => e.with_path(p),
            None => e,
        })
    }

    /// After the last `sendfile`: whether the file now ends before the bytes it sent. `sendfile(2)`
    /// queues references to the file's pages, not copies, so truncating the file while those bytes
    /// are still in the socket buffers (on loopback: until the peer reads them) zeroes them there —
    /// the rest of the page, or large folio, that holds the new end. The bytes reached the socket,
    /// but the peer may receive zeros for some of them: that send is reported as truncated rather
    /// than complete. One `fstat`; a truncation after it, while bytes are still queued, is not seen
    /// (only copying could guard against that: replace files by renaming a new one over them).
    fn shrank_under_send(&self) -> Option<Error> {
        if self.io.mechanism != SendMechanism::Sendfile || self.moved == 0 {
            return None;
        }
        let end = self.io.file.at(self.moved)?;
        let size = file::fstat(&self.io.file.fd).ok()?.st_size;
        (size < end).then(|| {
            let start = self.io.file.start.unwrap_or(0);
            Error::custom(
                Code::FileTruncated,
                Errno::ENODATA,
                SYSCALL,
                format!(
                    "the file shrank to {size} bytes while bytes {start}..{end} were being sent: the \
                     peer may receive zeros past byte {size} (was it truncated?)"
                ),
            )
        })
    }

    fn truncated(&self) -> Error {
        let start = self.io.file.start.unwrap_or(0) as u64;
        let total = self.limit.unwrap_or(0);
        Error::custom(
            Code::FileTruncated,
            Errno::ENODATA,
            SYSCALL,
            format!(
                "the file ended at byte {} while sending bytes {}..{} (was it truncated?)",
                start + self.moved,
                start,
                start + total
            ),
        )
    }

    fn cancelled(&self, reason: CancelReason) -> Error {
        reason.error(
            SYSCALL,
            || socket::probe_send(&self.io.socket),
            "the socket was destroyed while a file was being sent",
        )
    }

    /// Settles the file position and gives the socket back its blocking mode. Idempotent.
    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        settle(&self.io.file, self.moved);
        restore_blocking(&self.io.socket, self.restore_blocking);
    }
}

impl Drop for SendFile {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::os::unix::net::UnixStream;

    use super::*;

    /// Sends all of a file into a socket nobody reads (it all fits in the buffers), stopping just
    /// before the completion check; `cut` truncates the file at that moment.
    fn sent_then(cut: Option<i64>) -> (Result<Attempt>, UnixStream) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 10_000]).unwrap();
        let (ours, peer) = UnixStream::pair().unwrap();
        let mut send =
            SendFile::open(OwnedFd::from(ours), Source::Path(path.clone()), None, None).unwrap();
        let (attempt, sent) = send.try_step_inner(u64::MAX, &Pacer::new(None), 0).unwrap();
        assert_eq!((attempt, sent), (Attempt::Done, 10_000));
        if let Some(at) = cut {
            file::ftruncate(
                std::fs::File::options().write(true).open(&path).unwrap(),
                at,
            )
            .unwrap();
        }
        (send.settle_if_ended(Ok(Attempt::Done)), peer)
    }

    #[test]
    fn a_file_that_shrank_under_its_queued_bytes_is_reported_truncated() {
        let (result, _peer) = sent_then(Some(4_321));
        let err = result.unwrap_err();
        assert_eq!(err.code(), "ERR_FILE_TRUNCATED");
        assert!(err.to_string().contains("shrank to 4321 bytes"), "{err}");
    }

    #[test]
    fn a_file_that_kept_its_size_completes() {
        assert_eq!(sent_then(None).0.unwrap(), Attempt::Done);
    }
}
