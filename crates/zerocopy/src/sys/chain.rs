//! Passing a signal on to the disposition one of our handlers replaced (the SIGBUS guard, the
//! file watchers' signals), so installing ours never silences a handler the process already had.

use std::cell::UnsafeCell;

/// A signal's disposition found when our handler was installed.
///
/// Written exactly once, under the installing module's lock, before the handler that reads it is
/// installed; only read afterwards, so the reads never race the write.
pub(crate) struct Previous(UnsafeCell<Option<libc::sigaction>>);

// SAFETY: the cell is written once, before the handler that reads it is installed (see `set`);
// after that it is only read. `libc::sigaction` is plain data.
unsafe impl Sync for Previous {}

impl Previous {
    pub(crate) const fn new() -> Self {
        Previous(UnsafeCell::new(None))
    }

    /// Records the disposition found.
    ///
    /// # Safety
    /// Called once, under the installer's lock, before the handler that calls [`Previous::get`]
    /// is installed.
    pub(crate) unsafe fn set(&self, old: libc::sigaction) {
        // SAFETY: the caller guarantees no reader or other writer exists yet.
        unsafe { *self.0.get() = Some(old) };
    }

    /// The disposition recorded, if any (async-signal-safe: a plain copy).
    pub(crate) fn get(&self) -> Option<libc::sigaction> {
        // SAFETY: written once before any reader could exist (see `set`), read-only since.
        unsafe { *self.0.get() }
    }
}

/// Calls the handler function of `previous`, which is neither `SIG_DFL` nor `SIG_IGN`, with the
/// arguments its flags say it takes.
///
/// # Safety
/// `previous.sa_sigaction` must be a handler function (not `SIG_DFL`/`SIG_IGN`) and `info`/`ctx`
/// what the kernel passed to the calling handler.
pub(crate) unsafe fn call(previous: &libc::sigaction, sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let handler = previous.sa_sigaction;
    if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous disposition was installed with SA_SIGINFO, so `handler` is a
        // function with this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = unsafe { std::mem::transmute(handler) };
        f(sig, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO the previous disposition is a one-argument handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(sig);
    }
}
