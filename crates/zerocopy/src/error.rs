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
    /// A code of this crate's own (e.g. `ERR_FILE_TRUNCATED`) replacing the errno name as `code`.
    custom: Option<&'static str>,
    /// Whether `errno` is what the kernel said (false for [`Error::custom`] failures, which are not
    /// one errno: JavaScript then sees no `errno`).
    has_errno: bool,
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
            custom: None,
            has_errno: true,
        }
    }

    /// A failure with a code of this crate's own rather than an errno, e.g.
    /// `Error::custom("ERR_FILE_TRUNCATED", "sendfile", "…")`. `errno` stays as the nearest errno
    /// for Rust callers (`io::Error` conversion); JavaScript sees only the code.
    pub fn custom(
        code: &'static str,
        errno: Errno,
        syscall: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Error {
            custom: Some(code),
            detail: Some(detail.into()),
            has_errno: false,
            ..Error::new(errno, syscall)
        }
    }

    /// The error of a transfer stopped by the caller's AbortSignal: `ABORT_ERR`, which the TypeScript
    /// layer turns into the signal's own `AbortError`.
    pub fn aborted(syscall: &'static str) -> Self {
        Error::custom(
            "ABORT_ERR",
            Errno::ECANCELED,
            syscall,
            "The operation was aborted",
        )
    }

    /// Replaces the errno name as the error's `code` with a name of this crate's own, keeping the
    /// errno (e.g. `ERR_DIRECT_IO_UNSUPPORTED` for the kernel's `EINVAL` at open).
    #[must_use]
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.custom = Some(code);
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
        match self.custom {
            Some(code) => code.to_owned(),
            None => format!("{:?}", self.errno),
        }
    }

    /// Whether `errno` is what the kernel reported (false for [`Error::custom`] failures).
    pub fn has_errno(&self) -> bool {
        self.has_errno
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

impl From<Error> for std::io::Error {
    fn from(err: Error) -> Self {
        std::io::Error::from_raw_os_error(err.errno as i32)
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
            .with_code("ERR_DIRECT_IO_UNSUPPORTED")
            .with_detail("O_DIRECT is not supported here")
            .with_path("/mnt/x");
        assert_eq!(err.errno(), Errno::EINVAL);
        assert_eq!(
            err.to_string(),
            "ERR_DIRECT_IO_UNSUPPORTED: O_DIRECT is not supported here, open '/mnt/x'"
        );
    }

    #[test]
    fn with_path_keeps_the_first_path() {
        let err = Error::new(Errno::EIO, "read")
            .with_path("/first")
            .with_path("/second");
        assert_eq!(err.path(), Some(Path::new("/first")));
    }
}
