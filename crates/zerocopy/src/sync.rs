//! The one way this crate takes a lock.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, ignoring poison. No code that can panic runs under this crate's locks (nothing in
/// sys/ panics), and were one to, the data is still consistent: every critical section leaves it
/// whole. Poison must never reach JavaScript as a panic either way.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
