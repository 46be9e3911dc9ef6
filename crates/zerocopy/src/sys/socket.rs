//! Socket odds and ends the transfer engines need: what kind of fd this is, and whether a
//! connection is still alive.

use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::error::{Result, SyscallExt};
use crate::sys::file;

/// Whether `fd` is a socket (`fstat` reports `S_IFSOCK`).
pub fn is_socket(fd: impl AsFd) -> Result<bool> {
    let st = file::fstat(fd)?;
    Ok(file::file_type(&st) == nix::sys::stat::SFlag::S_IFSOCK)
}

/// Whether `fd` is in non-blocking mode (`O_NONBLOCK`), as libuv leaves every socket it owns.
pub fn is_nonblocking(fd: impl AsFd) -> Result<bool> {
    Ok(file::status_flags(fd)?.contains(OFlag::O_NONBLOCK))
}

/// `send(fd, "", 0, MSG_NOSIGNAL | MSG_DONTWAIT)`: asks a stream socket whether it can still send,
/// without sending anything or raising SIGPIPE.
///
/// Answers `Ok(())` for a live connection and the connection's error otherwise: `EPIPE` once it is
/// shut down or reset (the reset's own `ECONNRESET` is reported once, to whoever reads it first).
pub fn probe_send(fd: impl AsFd) -> Result<()> {
    let fd = fd.as_fd();
    // SAFETY: a zero-length send from a null pointer: the kernel reads no user memory.
    let ret = unsafe {
        libc::send(
            fd.as_raw_fd(),
            std::ptr::null(),
            0,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    match Errno::result(ret) {
        Ok(_) | Err(Errno::EAGAIN) => Ok(()),
        Err(e) => Err(e).syscall("send"),
    }
}

/// `shutdown(fd, SHUT_WR)`: sends a FIN after the bytes already queued; the peer reads end of stream,
/// and reading from `fd` goes on. A socket that is no longer connected (`ENOTCONN`) counts as done.
#[doc(alias = "shutdown")]
pub fn shutdown_write(fd: impl AsFd) -> Result<()> {
    // SAFETY: shutdown takes no pointers; a bad fd is reported as EBADF.
    let ret = unsafe { libc::shutdown(fd.as_fd().as_raw_fd(), libc::SHUT_WR) };
    match Errno::result(ret) {
        Ok(_) | Err(Errno::ENOTCONN) => Ok(()),
        Err(e) => Err(e).syscall("shutdown"),
    }
}

/// `send(fd, buf, len, MSG_MORE | MSG_NOSIGNAL | MSG_DONTWAIT)`: writes bytes that more will follow at
/// once (an HTTP response's headers before its body), so the kernel puts them in the same packet as
/// what comes next instead of pushing a small one of their own; without `more`, no `MSG_MORE`. A pipe
/// (`ENOTSOCK`) gets a plain `write`. Returns the bytes written; `EAGAIN` when the socket buffer is full.
#[doc(alias = "MSG_MORE")]
pub fn send_more(fd: impl AsFd, buf: &[u8], more: bool) -> Result<usize> {
    let fd = fd.as_fd();
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`, which is borrowed for the call.
    let ret = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            if more { libc::MSG_MORE } else { 0 } | libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    match Errno::result(ret) {
        Ok(n) => Ok(n as usize),
        Err(Errno::ENOTSOCK) => file::write_at(fd, buf, None),
        Err(e) => Err(e).syscall("send"),
    }
}
