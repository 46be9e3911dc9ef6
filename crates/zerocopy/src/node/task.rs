//! Running blocking work on the libuv thread pool.

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

/// A step budget from JavaScript: a byte count, or anything else (Infinity) for "no limit".
pub(crate) fn budget_of(budget: f64) -> u64 {
    if budget.is_finite() && budget >= 1.0 {
        budget as u64
    } else {
        u64::MAX
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
