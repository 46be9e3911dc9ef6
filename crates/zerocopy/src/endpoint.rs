//! One end of a transfer: an fd (ours or a duplicate of the caller's), where the transfer starts on
//! it, and what happens to its file position afterwards. Shared by every engine (copy, send, …) so
//! they all follow one rule, `copy_file_range(2)`'s: an explicit offset leaves the fd's position
//! alone; without one the transfer starts at the position and leaves it advanced.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::unistd::Whence;

use crate::error::{Error, Result};
use crate::sys::{file, socket};

/// What happens to an fd's file position when the transfer ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Position {
    /// Nothing to do: our own fd, a stream, or an `O_APPEND` file.
    Leave,
    /// Set it to where the transfer ended (it started at the position).
    Advance,
    /// Put it back where it was (an explicit offset was given, and `sendfile` moves the position).
    Restore(i64),
}

#[derive(Debug)]
pub(crate) struct End {
    pub(crate) fd: OwnedFd,
    pub(crate) path: Option<PathBuf>,
    /// The offset the transfer starts at, or `None` for streams and `O_APPEND` (plain read/write).
    pub(crate) start: Option<i64>,
    pub(crate) position: Position,
}

impl End {
    pub(crate) fn at(&self, moved: u64) -> Option<i64> {
        self.start.map(|s| s + moved as i64)
    }
}

pub(crate) use crate::sys::file::open_nonblocking;

/// Where a transfer starts on one end, and what happens to that end's position afterwards.
pub(crate) fn start_of(
    fd: &OwnedFd,
    offset: Option<u64>,
    owned: bool,
    syscall: &'static str,
) -> Result<(Option<i64>, Position)> {
    let current = match file::lseek(fd, 0, Whence::SeekCur) {
        Ok(pos) => pos,
        Err(e) if e.errno() == Errno::ESPIPE => {
            // A pipe, socket or tty: no offsets, plain read/write in stream order.
            return match offset {
                Some(_) => Err(Error::new(Errno::ESPIPE, syscall)
                    .with_detail("an offset was given for a stream that cannot seek")),
                None => Ok((None, Position::Leave)),
            };
        }
        Err(e) => return Err(e),
    };
    let offset =
        offset.map(|o| i64::try_from(o).map_err(|_| Error::new(Errno::EOVERFLOW, syscall)));
    Ok(match (offset.transpose()?, owned) {
        (Some(at), true) => (Some(at), Position::Leave),
        (Some(at), false) => (Some(at), Position::Restore(current)),
        (None, true) => (Some(0), Position::Leave),
        (None, false) => (Some(current), Position::Advance),
    })
}

/// Leaves an fd's position as documented once the transfer has ended. Best effort: a seekable fd
/// cannot fail to seek to a valid offset, and the transfer's outcome matters more.
pub(crate) fn settle(end: &End, moved: u64) {
    let target = match end.position {
        Position::Leave => return,
        Position::Advance => end.at(moved),
        Position::Restore(pos) => Some(pos),
    };
    if let Some(pos) = target {
        let _ = file::lseek(&end.fd, pos, Whence::SeekSet);
    }
}

/// Makes a stream fd non-blocking for the length of a transfer, which then waits on readiness
/// instead. Returns whether it was blocking, for [`restore_blocking`]. `O_NONBLOCK` belongs to the open
/// file description, so the caller's fd (and its other duplicates) see the change meanwhile.
pub(crate) fn nonblocking_while_used(fd: &OwnedFd) -> Result<bool> {
    let blocking = !socket::is_nonblocking(fd)?;
    if blocking {
        file::set_nonblocking(fd, true)?;
    }
    Ok(blocking)
}

/// Gives an fd back the blocking mode [`nonblocking_while_used`] took away. Best effort: the fd is the
/// caller's again and the transfer's outcome matters more.
pub(crate) fn restore_blocking(fd: &OwnedFd, was_blocking: bool) {
    if was_blocking {
        let _ = file::set_nonblocking(fd, false);
    }
}
