//! The one error type every wrapper returns.
//!
//! It carries what Node's fs errors carry (`code`, `errno`, `syscall`, `path`, `dest`), so the binding
//! can hand it to JavaScript without losing anything, and its `Display` reads like Node's messages:
//! `ENOENT: no such file or directory, open '/missing'`.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

pub use nix::errno::Errno;

/// A failed system call, or a request the kernel would refuse, described the way Node describes fs errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    errno: Errno,
    syscall: &'static str,
    path: Option<PathBuf>,
    dest: Option<PathBuf>,
    detail: Option<Cow<'static, str>>,
    /// A code of this crate's own replacing the errno name as `code`.
    own: Option<Code>,
}

/// The codes of this crate's own: failures that are not one errno, or an errno that means something
/// more precise here. [`Error::code`] names them; [`Error::own_code`] lets Rust callers match them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// `ABORT_ERR`: stopped by the caller (an AbortSignal on the JavaScript side).
    Aborted,
    /// `ERR_FILE_TRUNCATED`: the file ended, or shrank, while it was being sent.
    FileTruncated,
    /// `ERR_STREAM_DESTROYED`: the job (a send, a relay) was used after it was closed.
    Closed,
    /// `ERR_STREAM_DESTROYED`: a socket was destroyed (cancelled from outside) while its connection
    /// was still fine.
    SocketDestroyed,
    /// `ERR_DIRECT_IO_UNSUPPORTED`: the filesystem refused `O_DIRECT` (the kernel's `EINVAL`, kept).
    DirectIoUnsupported,
}

impl Code {
    /// The name the error's `code` shows, e.g. `"ERR_FILE_TRUNCATED"`. [`Code::Closed`] and
    /// [`Code::SocketDestroyed`] share Node's `ERR_STREAM_DESTROYED`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::Aborted => "ABORT_ERR",
            Code::FileTruncated => "ERR_FILE_TRUNCATED",
            Code::Closed | Code::SocketDestroyed => "ERR_STREAM_DESTROYED",
            Code::DirectIoUnsupported => "ERR_DIRECT_IO_UNSUPPORTED",
        }
    }

    /// Whether an error with this code still carries the kernel's errno. Only a code that renames a
    /// real failure does; the others are not one errno (JavaScript then sees no `errno`), and the
    /// error's errno is just the nearest one, for Rust callers (`io::Error` conversion).
    pub fn keeps_errno(self) -> bool {
        matches!(self, Code::DirectIoUnsupported)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result alias used by every function in this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error for `syscall` failing with `errno`.
    pub fn new(errno: Errno, syscall: &'static str) -> Self {
        Error {
            errno,
            syscall,
            path: None,
            dest: None,
            detail: None,
            own: None,
        }
    }

    /// A failure with a code of this crate's own, e.g.
    /// `Error::custom(Code::FileTruncated, Errno::ENODATA, "sendfile", "…")`. `errno` is the nearest
    /// errno, for Rust callers; unless [`Code::keeps_errno`], JavaScript sees only the code.
    pub fn custom(
        code: Code,
        errno: Errno,
        syscall: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Error::new(errno, syscall)
            .with_code(code)
            .with_detail(detail)
    }

    /// The error of a transfer stopped by the caller's AbortSignal: `ABORT_ERR`, which the TypeScript
    /// layer turns into the signal's own `AbortError`.
    pub fn aborted(syscall: &'static str) -> Self {
        Error::custom(
            Code::Aborted,
            Errno::ECANCELED,
            syscall,
            "The operation was aborted",
        )
    }

    /// Replaces the errno name as the error's `code` with a code of this crate's own, keeping the
    /// errno (e.g. [`Code::DirectIoUnsupported`] for the kernel's `EINVAL` at open).
    #[must_use]
    pub fn with_code(mut self, code: Code) -> Self {
        self.own = Some(code);
        self
    }

    /// The error the last failing libc call left in `errno`.
    pub fn last(syscall: &'static str) -> Self {
        Error::new(Errno::last(), syscall)
    }

    /// Attaches the path the failing call worked on (kept if one is already set).
    #[must_use]
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        if self.path.is_none() {
            self.path = Some(path.as_ref().to_path_buf());
        }
        self
    }

    /// Attaches the destination path of a two-path operation (kept if one is already set).
    #[must_use]
    pub fn with_dest(mut self, dest: impl AsRef<Path>) -> Self {
        if self.dest.is_none() {
            self.dest = Some(dest.as_ref().to_path_buf());
        }
        self
    }

    /// Replaces the kernel's generic description with a precise one, for errors this crate raises itself
    /// (e.g. `EINVAL: source and destination are the same file`).
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The errno value.
    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// The symbolic code, e.g. `"EBADF"`, or the crate's own code for [`Error::custom`] errors.
    pub fn code(&self) -> String {
        match self.own {
            Some(code) => code.as_str().to_owned(),
            None => format!("{:?}", self.errno),
        }
    }

    /// The crate's own code, if the error has one.
    pub fn own_code(&self) -> Option<Code> {
        self.own
    }

    /// Whether `errno` is what the kernel reported (false for most [`Error::custom`] failures).
    pub fn has_errno(&self) -> bool {
        !matches!(self.own, Some(code) if !code.keeps_errno())
    }

    /// The name of the failing system call, e.g. `"copy_file_range"`.
    pub fn syscall(&self) -> &'static str {
        self.syscall
    }

    /// The path the failing call worked on, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The destination path of a two-path operation, if any.
    pub fn dest(&self) -> Option<&Path> {
        self.dest.as_deref()
    }

    /// The human description: the crate's own detail if set, else the C library's text in Node's
    /// lower-case style ("bad file descriptor").
    pub fn description(&self) -> String {
        if let Some(detail) = &self.detail {
            return detail.to_string();
        }
        let desc = strerror(self.errno);
        let mut chars = desc.chars();
        match chars.next() {
            Some(first) => first.to_lowercase().chain(chars).collect(),
            None => String::new(),
        }
    }
}

/// The C library's text for `errno` ("Bad file descriptor"), the wording Node's messages use too.
fn strerror(errno: Errno) -> String {
    let mut buf = [0u8; 128];
    // SAFETY: `buf` is writable for its whole length, which is what we pass; the XSI strerror_r
    // (the one the libc crate binds) writes a NUL-terminated string into it and touches nothing else.
    let ret = unsafe { libc::strerror_r(errno as i32, buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match (ret, std::str::from_utf8(&buf[..end])) {
        (0, Ok(text)) if !text.is_empty() => text.to_owned(),
        _ => errno.desc().to_owned(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}, {}",
            self.code(),
            self.description(),
            self.syscall
        )?;
        if let Some(path) = &self.path {
            write!(f, " '{}'", path.display())?;
        }
        if let Some(dest) = &self.dest {
            write!(f, " -> '{}'", dest.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Keeps everything: the `io::Error`'s kind is the errno's, its message the whole [`Display`](fmt::Display)
/// (code, detail, syscall, paths), and [`std::io::Error::get_ref`] gives back the [`Error`] itself
/// (`raw_os_error()` is `None`, as for every `io::Error` built with a payload; ask the inner error's
/// [`errno`](Error::errno)).
impl From<Error> for std::io::Error {
    fn from(err: Error) -> Self {
        let kind = std::io::Error::from_raw_os_error(err.errno as i32).kind();
        std::io::Error::new(kind, err)
    }
}

/// Runs `f` again while it fails with EINTR: a signal landing mid-call is never an error to report.
pub(crate) fn retry_eintr<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Maps a nix result onto this crate's error, naming the system call.
pub(crate) trait SyscallExt<T> {
    fn syscall(self, name: &'static str) -> Result<T>;
}

impl<T> SyscallExt<T> for nix::Result<T> {
    fn syscall(self, name: &'static str) -> Result<T> {
        self.map_err(|errno| Error::new(errno, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_like_node() {
        let err = Error::new(Errno::ENOENT, "open").with_path("/missing");
        assert_eq!(
            err.to_string(),
            "ENOENT: no such file or directory, open '/missing'"
        );
        let err = Error::new(Errno::EXDEV, "copy_file_range")
            .with_path("/a")
            .with_dest("/b");
        assert_eq!(err.code(), "EXDEV");
        assert!(err.to_string().ends_with(", copy_file_range '/a' -> '/b'"));
        let err = Error::new(Errno::EINVAL, "copy")
            .with_detail("source and destination are the same file");
        assert_eq!(
            err.to_string(),
            "EINVAL: source and destination are the same file, copy"
        );
        let err = Error::new(Errno::EINVAL, "open")
            .with_code(Code::DirectIoUnsupported)
            .with_detail("O_DIRECT is not supported here")
            .with_path("/mnt/x");
        assert_eq!(err.errno(), Errno::EINVAL);
        assert_eq!(
            err.to_string(),
            "ERR_DIRECT_IO_UNSUPPORTED: O_DIRECT is not supported here, open '/mnt/x'"
        );
    }

    #[test]
    fn own_codes_say_whether_errno_is_the_kernels() {
        let err = Error::custom(Code::FileTruncated, Errno::ENODATA, "sendfile", "short");
        assert_eq!(
            (err.code(), err.has_errno()),
            ("ERR_FILE_TRUNCATED".into(), false)
        );
        assert_eq!(err.own_code(), Some(Code::FileTruncated));
        let err = Error::new(Errno::EINVAL, "open").with_code(Code::DirectIoUnsupported);
        assert!(err.has_errno());
        assert!(Error::new(Errno::EBADF, "read").has_errno());
        assert_eq!(Code::Closed.as_str(), Code::SocketDestroyed.as_str());
    }

    #[test]
    fn io_error_keeps_path_and_detail() {
        let err = Error::new(Errno::ENOENT, "open")
            .with_path("/missing")
            .with_detail("gone");
        let io: std::io::Error = err.clone().into();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(io.to_string(), "ENOENT: gone, open '/missing'");
        let inner = io.get_ref().and_then(|e| e.downcast_ref::<Error>());
        assert_eq!(inner, Some(&err));
    }

    #[test]
    fn with_path_keeps_the_first_path() {
        let err = Error::new(Errno::EIO, "read")
            .with_path("/first")
            .with_path("/second");
        assert_eq!(err.path(), Some(Path::new("/first")));
    }
}
