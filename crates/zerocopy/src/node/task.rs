//! What the bindings share: blocking work on the libuv thread pool, the state of a job opened by its
//! first step, and the conversions of JavaScript values (paths, byte counts, budgets, paces).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use napi::bindgen_prelude::{ToNapiValue, TypeName};
use napi::{Env, Task};

/// A closure run on a libuv pool thread by `AsyncTask`, its value handed back to JavaScript.
pub struct Blocking<T> {
    work: Option<Box<dyn FnOnce() -> crate::Result<T> + Send>>,
}

impl<T> Blocking<T> {
    pub(crate) fn new(work: impl FnOnce() -> crate::Result<T> + Send + 'static) -> Self {
        Blocking {
            work: Some(Box::new(work)),
        }
    }
}

impl<T: ToNapiValue + TypeName + Send + 'static> Task for Blocking<T> {
    type Output = T;
    type JsValue = T;

    fn compute(&mut self) -> napi::Result<T> {
        match self.work.take() {
            Some(work) => work().map_err(super::error::to_napi),
            None => Err(super::error::invalid("task")),
        }
    }

    fn resolve(&mut self, _env: Env, output: T) -> napi::Result<T> {
        Ok(output)
    }
}

/// A JS number (validated as a safe integer ≥ 0 by the TS layer) as a byte count or offset.
pub(crate) fn to_u64(value: i64, what: &'static str) -> napi::Result<u64> {
    u64::try_from(value).map_err(|_| super::error::invalid(what))
}

/// A byte count as a JS number: exact below 2^53, which every real file is.
pub(crate) fn to_js_number(value: u64) -> f64 {
    value as f64
}

/// Where a job (a copy, a send) stands. Opening paths is blocking I/O, so a job given paths is created
/// `Pending` and opened by its first step, on a pool thread.
pub(crate) enum JobState<P, R> {
    /// Not opened yet.
    Pending(Box<P>),
    Running(Box<R>),
    /// Opening failed, the job finished or failed, or it was closed: its fds are closed.
    Ended,
}

impl<P, R> JobState<P, R> {
    /// The running job, opening a pending one with `open` first (the job ends if that fails);
    /// `None` once the job has ended.
    pub(crate) fn open_with(
        &mut self,
        open: impl FnOnce(P) -> crate::Result<R>,
    ) -> crate::Result<Option<&mut R>> {
        if let JobState::Pending(_) = self {
            if let JobState::Pending(spec) = std::mem::replace(self, JobState::Ended) {
                *self = JobState::Running(Box::new(open(*spec)?));
            }
        }
        Ok(self.running_mut())
    }

    pub(crate) fn running(&self) -> Option<&R> {
        match self {
            JobState::Running(job) => Some(job),
            _ => None,
        }
    }

    pub(crate) fn running_mut(&mut self) -> Option<&mut R> {
        match self {
            JobState::Running(job) => Some(job),
            _ => None,
        }
    }
}

/// A path from JavaScript: the TS layer passes paths as Buffers, so no byte of a non-UTF-8 name is lost.
pub(crate) fn path_of(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// A step budget from JavaScript, in bytes. Infinity (or anything past `u64::MAX`) means "no limit";
/// NaN, zero and negatives (which the TS layer never sends) ask for the smallest step, one byte, so a
/// bad number can neither stall a job nor lift its limit.
pub(crate) fn budget_of(budget: f64) -> u64 {
    if budget >= 1.0 {
        // Saturates: +Infinity and anything too large become u64::MAX.
        budget as u64
    } else {
        1
    }
}

/// A step's pace from JavaScript, in milliseconds: none for `undefined`, zero, or anything not finite.
pub(crate) fn pace_of(pace_ms: Option<f64>) -> Option<std::time::Duration> {
    pace_ms
        .filter(|ms| ms.is_finite() && *ms > 0.0)
        .map(|ms| std::time::Duration::from_secs_f64(ms / 1000.0))
}

/// Why JavaScript cancels a job: "destroyed" (a socket was destroyed), anything else an abort.
pub(crate) fn cancel_reason(reason: &str) -> crate::ready::CancelReason {
    match reason {
        "destroyed" => crate::ready::CancelReason::Destroyed,
        _ => crate::ready::CancelReason::Aborted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_of_keeps_infinity_unlimited_and_bad_numbers_small() {
        assert_eq!(budget_of(f64::INFINITY), u64::MAX);
        assert_eq!(budget_of(1e30), u64::MAX);
        assert_eq!(budget_of(65_536.0), 65_536);
        assert_eq!(budget_of(4096.7), 4096);
        for bad in [f64::NAN, 0.0, 0.5, -1.0, f64::NEG_INFINITY] {
            assert_eq!(budget_of(bad), 1, "{bad}");
        }
    }

    #[test]
    fn a_job_whose_open_fails_has_ended() {
        let mut state: JobState<u8, u8> = JobState::Pending(Box::new(1));
        let failed = state.open_with(|_| Err(crate::Error::new(nix::errno::Errno::ENOENT, "open")));
        assert!(failed.is_err());
        assert!(matches!(state, JobState::Ended));
        let mut state: JobState<u8, u8> = JobState::Pending(Box::new(1));
        assert_eq!(
            state.open_with(|p| Ok(p + 1)).ok().flatten().copied(),
            Some(2)
        );
        assert_eq!(state.running().copied(), Some(2));
    }
}
