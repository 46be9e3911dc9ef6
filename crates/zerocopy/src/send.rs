//! Sending a file into a socket (or pipe): `sendfile(2)` driven by readiness.
//!
//! The socket is non-blocking (libuv's, or made so for the duration of the send). Each step calls
//! `sendfile` until the socket buffer is full (`EAGAIN`), then sleeps on the reactor until the peer
//! has read some; a [`Cancel`] interrupts the sleep. Files whose `stat` size is 0 (procfs, sysfs)
//! cannot be sent by `sendfile` reliably, so they go through a buffer (`read` + `write`).
//!
//! Must be used inside a tokio runtime (the reactor registration happens in [`SendFile::open`]).

use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use crate::copy::Source;
use crate::endpoint::{open_nonblocking, settle, start_of, End};
use crate::error::{Error, Result};
use crate::ready::{Cancel, CancelReason, Registered};
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

/// A file being sent into a socket.
#[derive(Debug)]
pub struct SendFile {
    socket: Registered,
    /// The socket was blocking; it is non-blocking while we send and put back afterwards.
    restore_blocking: bool,
    file: End,
    /// Bytes to send in all; `None` for size-0 files, sent until end of file.
    limit: Option<u64>,
    moved: u64,
    mechanism: SendMechanism,
    /// Read/write path: bytes read from the file and not yet written, `buffer[pending.0..pending.1]`.
    buffer: Vec<u8>,
    pending: (usize, usize),
    finished: bool,
}

impl SendFile {
    /// Prepares to send `file` (from `offset`, at most `length` bytes) into `socket`, which the
    /// send owns (pass a duplicate). Registers the socket with the current tokio runtime.
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
                    "the file to send must be a regular file (move streams with pipe())",
                )))
            }
        }
        let sock_st = file::fstat(&socket)?;
        if file::file_type(&sock_st) == SFlag::S_IFREG {
            return Err(Error::new(Errno::EINVAL, SYSCALL).with_detail(
                "the destination is a regular file, not a socket or pipe (use copyFile)",
            ));
        }
        let restore_blocking = !socket::is_nonblocking(&socket)?;
        let registered = Registered::new(socket)?;
        if restore_blocking {
            file::set_nonblocking(registered.fd(), true)?;
        }

        let owned = path.is_some();
        let (start, position) = start_of(&file_fd, offset, owned, SYSCALL).map_err(with_path)?;
        let known = st.st_size > 0;
        let limit = if known {
            let available = (st.st_size as u64).saturating_sub(start.unwrap_or(0) as u64);
            Some(length.map_or(available, |l| l.min(available)))
        } else {
            length
        };
        let mut send = SendFile {
            socket: registered,
            restore_blocking,
            file: End {
                fd: file_fd,
                path,
                start,
                position,
            },
            limit,
            moved: 0,
            mechanism: if known {
                SendMechanism::Sendfile
            } else {
                SendMechanism::ReadWrite
            },
            buffer: Vec::new(),
            pending: (0, 0),
            finished: false,
        };
        if send.limit == Some(0) {
            send.finish();
        }
        Ok(send)
    }

    /// Bytes that reached the socket so far.
    pub fn bytes(&self) -> u64 {
        self.moved
    }

    /// Bytes to send in all, when known.
    pub fn total(&self) -> Option<u64> {
        self.limit
    }

    /// How the bytes travel.
    pub fn mechanism(&self) -> SendMechanism {
        self.mechanism
    }

    /// Whether the send has ended (complete, failed or cancelled).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Sends up to about `budget` more bytes, sleeping on readiness while the peer is not reading.
    /// Returns `Ok(true)` when everything was sent.
    ///
    /// Errors: the socket's (`EPIPE`, `ECONNRESET`, …); `ERR_FILE_TRUNCATED` when the file ends before
    /// the bytes it had when the send started; `ABORT_ERR` when cancelled by abort;
    /// `ERR_STREAM_DESTROYED` when cancelled because the socket was destroyed while still connected.
    /// After an error or completion the file position is settled and the socket restored.
    pub async fn step(&mut self, budget: u64, cancel: &Cancel) -> Result<bool> {
        if self.finished {
            return Ok(true);
        }
        let result = self.advance(budget, cancel).await;
        if !matches!(result, Ok(false)) {
            self.finish();
        }
        result.map_err(|e| match &self.file.path {
            Some(p) => e.with_path(p),
            None => e,
        })
    }

    fn remaining(&self) -> u64 {
        self.limit.map_or(u64::MAX, |l| l - self.moved)
    }

    async fn advance(&mut self, budget: u64, cancel: &Cancel) -> Result<bool> {
        let mut left = budget;
        loop {
            if self.remaining() == 0 {
                return Ok(true);
            }
            if left == 0 {
                return Ok(false);
            }
            let want = self.remaining().min(left);
            // Biased towards cancellation: an abort wins over a socket that is ready again.
            let sent = tokio::select! {
                biased;
                reason = cancel.cancelled() => return Err(self.cancelled(reason)),
                sent = self.send_some(want) => sent?,
            };
            match sent {
                Some(n) => {
                    self.moved += n;
                    left = left.saturating_sub(n);
                }
                None => return Ok(true),
            }
        }
    }

    /// One successful write to the socket (waiting for readiness first if needed): the bytes it
    /// moved, or `None` at the end of a file of unknown size. Cancelling this future can only
    /// interrupt the wait, never a write, so `moved` stays exact.
    async fn send_some(&mut self, want: u64) -> Result<Option<u64>> {
        match self.mechanism {
            SendMechanism::Sendfile => {
                let chunk = usize::try_from(want)
                    .map_or(sendfile::MAX_CHUNK, |w| w.min(sendfile::MAX_CHUNK));
                let mut offset = self.file.at(self.moved);
                let file = &self.file.fd;
                let n = self
                    .socket
                    .write_with(|sock| sendfile::sendfile(sock, file, offset.as_mut(), chunk))
                    .await?;
                if n == 0 {
                    return Err(self.truncated());
                }
                Ok(Some(n as u64))
            }
            SendMechanism::ReadWrite => {
                if self.pending.0 == self.pending.1 {
                    if self.buffer.is_empty() {
                        self.buffer = vec![0; RW_BUFFER];
                    }
                    let len = usize::try_from(want).map_or(RW_BUFFER, |w| w.min(RW_BUFFER));
                    let n = file::read_at(
                        &self.file.fd,
                        &mut self.buffer[..len],
                        self.file.at(self.moved),
                    )?;
                    if n == 0 {
                        return Ok(None);
                    }
                    self.pending = (0, n);
                }
                let data = &self.buffer[self.pending.0..self.pending.1];
                let n = self
                    .socket
                    .write_with(|sock| file::write_at(sock, data, None))
                    .await?;
                self.pending.0 += n;
                Ok(Some(n as u64))
            }
        }
    }

    fn truncated(&self) -> Error {
        let start = self.file.start.unwrap_or(0) as u64;
        let total = self.limit.unwrap_or(0);
        Error::custom(
            "ERR_FILE_TRUNCATED",
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
        match reason {
            CancelReason::Aborted => Error::custom(
                "ABORT_ERR",
                Errno::ECANCELED,
                SYSCALL,
                "The operation was aborted",
            ),
            // Destroyed on the JS side: if the peer reset or closed the connection, that is the real
            // story; only a connection that is still fine was destroyed by the application.
            CancelReason::Destroyed => match socket::probe_send(self.socket.fd()) {
                Err(e) => e,
                Ok(()) => Error::custom(
                    "ERR_STREAM_DESTROYED",
                    Errno::EPIPE,
                    SYSCALL,
                    "the socket was destroyed while a file was being sent",
                ),
            },
        }
    }

    /// Settles the file position and gives the socket back its blocking mode. Idempotent.
    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        settle(&self.file, self.moved);
        if self.restore_blocking {
            // Best effort: the fd is the caller's again and the send's outcome matters more.
            let _ = file::set_nonblocking(self.socket.fd(), false);
        }
    }
}

impl Drop for SendFile {
    fn drop(&mut self) {
        self.finish();
    }
}
