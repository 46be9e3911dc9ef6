//! The one formatter of errors crossing into JavaScript.
//!
//! A failed call rejects with an `Error` whose message is a JSON record; `js/errors.ts` (the one
//! parser) turns it into a Node-style error with `code`, `errno`, `syscall`, `path` and `dest`.
//! `__test__/errors.test.mjs` round-trips the two.

use std::fmt::Write as _;
use std::path::Path;

/// Marks a message as a zerocopy error record.
const TAG: &str = "zerocopy-error";

pub(crate) fn to_napi(err: crate::Error) -> napi::Error {
    napi::Error::from_reason(format_record(&err))
}

/// `{"zerocopy-error":1,"code":"EBADF","errno":9,"syscall":"sendfile","message":"…","path":…,"dest":…}`
pub(crate) fn format_record(err: &crate::Error) -> String {
    let mut out = format!("{{\"{TAG}\":1,\"code\":");
    push_str(&mut out, &err.code());
    if err.has_errno() {
        let _ = write!(out, ",\"errno\":{}", err.errno() as i32);
    }
    out.push_str(",\"syscall\":");
    push_str(&mut out, err.syscall());
    out.push_str(",\"message\":");
    push_str(&mut out, &err.to_string());
    push_path(&mut out, "path", err.path());
    push_path(&mut out, "dest", err.dest());
    out.push('}');
    out
}

/// An error for a value the TypeScript layer should have rejected; never expected in practice.
pub(crate) fn invalid(what: &'static str) -> napi::Error {
    to_napi(crate::Error::new(nix::errno::Errno::EINVAL, what))
}

fn push_path(out: &mut String, key: &str, path: Option<&Path>) {
    if let Some(path) = path {
        let _ = write!(out, ",\"{key}\":");
        push_str(out, &path.to_string_lossy());
    }
}

fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Errno;

    #[test]
    fn record_escapes_awkward_paths() {
        let err = crate::Error::new(Errno::ENOENT, "open").with_path("/tmp/a \"q\"\\\n");
        let record = format_record(&err);
        assert!(record.starts_with("{\"zerocopy-error\":1,\"code\":\"ENOENT\",\"errno\":2,"));
        assert!(record.contains("\"path\":\"/tmp/a \\\"q\\\"\\\\\\u000a\""));
    }
}
