//! The hand-over of mapped memory to JavaScript, and its return: every unsafe napi call of `mmap`.
//!
//! The JavaScript Buffer over a mapping is an external buffer: V8 sees the mapped memory itself, no
//! copy. Who unmaps, and when, is what keeps it safe. The rule: the file's pages are unmapped only
//! when no JavaScript value can reach them, and no JavaScript operation ever reaches unmapped memory.
//!
//! - `close()` detaches the ArrayBuffer — every Buffer and TypedArray view over it becomes
//!   zero-length at once — and then unmaps. A V8 backing store belongs to exactly one ArrayBuffer, so
//!   once ours is detached nothing in JavaScript can reach the memory.
//! - But the backing store can leave our ArrayBuffer without us: `ArrayBuffer.prototype.transfer()`
//!   and `transferToFixedLength()` (Node 22+), `structuredClone(x, { transfer })` or a worker's
//!   `postMessage` with a transfer list of such a transferred buffer move it to a new ArrayBuffer,
//!   possibly in another isolate, and leave ours detached (data pointer null). `close()` then cannot
//!   reach the views, so it *retires* the range instead: it replaces it with anonymous zero pages
//!   (`MAP_FIXED`), so that escaped views read zeros and their writes land in private memory (never in
//!   the file), and keeps the range reserved and guarded. It is unmapped when the backing store is
//!   freed, which Node reports through the Buffer's finalizer.
//! - The finalizer runs when V8 frees the backing store (Node calls it from an immediate; nothing can
//!   reach the memory then: unmap), or when the environment that made the Buffer is torn down (a
//!   worker exiting, the process ending). Then Node calls it even though the backing store may still
//!   live in another isolate — a worker's mapping, transferred to the main thread, is the everyday
//!   case — and, from Node 22, only after it has detached our ArrayBuffer itself, so whether the
//!   memory escaped earlier can no longer be seen. The two calls differ in one observable way: a torn
//!   down environment no longer runs JavaScript (Node turns that off before it runs its cleanup), and
//!   napi calls that may run it fail. So the finalizer asks (see `js_can_run`): if not, the range is
//!   retired and kept reserved for the rest of the process (abandoned), because nothing will ever say
//!   when the other holder lets go. Mappings closed before the environment ends are not affected.
//! - A runtime that forbids external buffers (`napi_no_external_buffers_allowed`, e.g. Electron's V8
//!   sandbox) gets an error. napi-rs's own Buffer types would silently copy the file instead, and
//!   writes to the copy would never reach it.
//!
//! Not covered (as with any Buffer whose memory is freed): native code that kept a raw pointer to the
//! Buffer's bytes past `close()`, e.g. an asynchronous zlib or crypto job still running on the thread
//! pool. Do not close a mapping while such a job reads it.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::{ToNapiValue, Unknown};
use napi::{sys, Env, JsValue};
use nix::errno::Errno;

use super::Mapping;
use crate::error::Error;
use crate::node::error::{invalid, to_napi};
use crate::sync::lock;
use crate::sys::mmap::Mmap;

/// The mapping, shared by the `Mapping` object and the Buffer's finalizer; the last one to let go
/// unmaps (`Mmap`'s Drop), unless `close()` or the finalizer did already.
pub(super) struct Shared {
    pub(super) region: Mutex<Mmap>,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Mmap> {
        lock(&self.region)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum BufferState {
    NotMade,
    /// Made over this address; `close()` must be handed a view of it.
    Made,
}

/// A raw JS value handed back as it is.
pub struct RawValue(sys::napi_value);

impl ToNapiValue for RawValue {
    unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        Ok(val.0)
    }
}

fn napi_call(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            napi::Status::from(status),
            format!("{what} failed"),
        ))
    }
}

/// A runtime that forbids external buffers (Electron's V8 sandbox) gets an EOPNOTSUPP error naming the
/// call, which the TypeScript layer turns into `ERR_EXTERNAL_BUFFERS_NOT_ALLOWED`: never a copy whose
/// writes would be lost. None for any other status.
fn forbidden_external_buffers(status: sys::napi_status) -> Option<Error> {
    (status == sys::Status::napi_no_external_buffers_allowed).then(|| {
        Error::new(Errno::ENOTSUP, "napi_create_external_buffer").with_detail(
            "this runtime forbids external buffers, so a mapping cannot be shared with JavaScript without copying it",
        )
    })
}

/// Whether `env` may still run JavaScript: false once Node tears the environment down (it turns
/// JavaScript off before running its cleanup, which calls the finalizers of Buffers still alive).
/// Asked through `napi_coerce_to_bool` on `true`, which runs no user code but, like every napi call
/// that may run JavaScript, fails when the environment cannot (`napi_pending_exception`, or
/// `napi_cannot_run_js` for experimental modules). Any failure counts as "cannot": the caller then
/// keeps memory reserved rather than unmapping it, which is the safe mistake.
///
/// # Safety
/// `env` must be a live napi env on its own thread, inside a handle scope (finalizers run in one).
unsafe fn js_can_run(env: sys::napi_env) -> bool {
    let mut yes = ptr::null_mut();
    let mut coerced = ptr::null_mut();
    // SAFETY: the caller's promise; both out-pointers are valid.
    unsafe {
        sys::napi_get_boolean(env, true, &mut yes) == sys::Status::napi_ok
            && sys::napi_coerce_to_bool(env, yes, &mut coerced) == sys::Status::napi_ok
    }
}

/// Called by Node when V8 frees the Buffer's backing store (collected, detached by `close()`, or
/// freed by a transfer that copied it), or when the environment is torn down (see the module docs).
unsafe extern "C" fn finalize_buffer(env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the Box<Arc<Shared>> leaked in `create_buffer`, handed to exactly this one
    // finalizer call.
    let shared = unsafe { Box::from_raw(hint.cast::<Arc<Shared>>()) };
    // SAFETY: Node calls finalizers on the env's thread with a valid env, inside a handle scope.
    let freed = unsafe { js_can_run(env) };
    let len = {
        let mut region = shared.lock();
        if freed {
            region.release();
        } else {
            region.abandon();
        }
        region.len()
    };
    let mut adjusted = 0i64;
    // SAFETY: as above; this undoes the adjustment made when the Buffer was created.
    let _ = unsafe {
        sys::napi_adjust_external_memory(env, -(i64::try_from(len).unwrap_or(0)), &mut adjusted)
    };
}

/// The ArrayBuffer behind a Buffer or TypedArray `view`, and that ArrayBuffer's data pointer (null
/// once detached).
fn array_buffer_of(
    env: sys::napi_env,
    view: sys::napi_value,
) -> napi::Result<(sys::napi_value, *mut c_void)> {
    let mut is_typed = false;
    // SAFETY: `env` and `view` come from the current call.
    let status = unsafe { sys::napi_is_typedarray(env, view, &mut is_typed) };
    napi_call(status, "napi_is_typedarray")?;
    if !is_typed {
        return Err(invalid("buffer"));
    }
    let mut ab = ptr::null_mut();
    // SAFETY: `view` is a typed array; null out-pointers are allowed for fields we do not want.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            env,
            view,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut ab,
            ptr::null_mut(),
        )
    };
    napi_call(status, "napi_get_typedarray_info")?;
    let mut data = ptr::null_mut();
    let mut len = 0usize;
    // SAFETY: `ab` is the typed array's ArrayBuffer, just obtained.
    let status = unsafe { sys::napi_get_arraybuffer_info(env, ab, &mut data, &mut len) };
    napi_call(status, "napi_get_arraybuffer_info")?;
    Ok((ab, if len == 0 { ptr::null_mut() } else { data }))
}

impl Mapping {
    /// Creates the Buffer over the mapped memory: once, because `close()` detaches exactly one
    /// ArrayBuffer. Returns null for an empty window.
    pub(super) fn make_buffer(&self, env: Env) -> napi::Result<Option<RawValue>> {
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        let mut state = self.buffer_state();
        let mut region = shared.lock();
        if *state == BufferState::Made || region.is_released() {
            return Err(to_napi(Error::new(Errno::EINVAL, "mmap").with_detail(
                "the mapping's buffer was already made, or the mapping is closed",
            )));
        }
        let (ptr, len) = (region.as_mut_ptr(), region.len());
        drop(region);
        let hint = Box::into_raw(Box::new(Arc::clone(shared)));
        let mut value = ptr::null_mut();
        // SAFETY: [ptr, ptr + len) stays mapped (or, once retired, reserved as zero pages) until
        // `finalize_buffer` runs, and then stays reserved if something may still reach it. `hint` is
        // reclaimed by the finalizer, or below if creation fails.
        let status = unsafe {
            sys::napi_create_external_buffer(
                env.raw(),
                len,
                ptr.cast(),
                Some(finalize_buffer),
                hint.cast(),
                &mut value,
            )
        };
        if status != sys::Status::napi_ok {
            // SAFETY: creation failed, so the finalizer will never run and the hint is still ours.
            drop(unsafe { Box::from_raw(hint) });
            if let Some(err) = forbidden_external_buffers(status) {
                return Err(to_napi(err));
            }
            napi_call(status, "napi_create_external_buffer")?;
        }
        *state = BufferState::Made;
        let _ = env.adjust_external_memory(i64::try_from(len).unwrap_or(i64::MAX));
        Ok(Some(RawValue(value)))
    }

    /// Detaches the buffer (`view` is it, or any view over its ArrayBuffer), then unmaps. If the
    /// ArrayBuffer was already detached by someone else (its backing store transferred away), retires
    /// the range instead: escaped views then read zeros, and the range is unmapped when the backing
    /// store is freed. Idempotent. Returns whether the mapping had gone stale.
    pub(super) fn close_buffer(&self, env: Env, view: Option<Unknown>) -> napi::Result<bool> {
        let Some(shared) = &self.shared else {
            self.closed.store(true, Ordering::Release);
            return Ok(false);
        };
        let state = self.buffer_state();
        let base = {
            let region = shared.lock();
            if region.is_retired() {
                // Closed before, or unmapped by the finalizer (a transfer to another length copied
                // the memory and freed the backing store): nothing left to detach.
                self.closed.store(true, Ordering::Release);
                return Ok(region.is_stale());
            }
            region.as_ptr()
        };
        // The region lock is not held while detaching: should a runtime run the Buffer's finalizer
        // synchronously on detach, the finalizer takes that lock itself.
        let mut escaped = false;
        if *state == BufferState::Made {
            let Some(view) = view else {
                return Err(invalid("buffer"));
            };
            let (ab, data) = array_buffer_of(env.raw(), view.value().value)?;
            if data.is_null() {
                // Detached, not by us: by a transfer that moved the memory to another ArrayBuffer we
                // cannot reach, or by a runtime cleanup hook. Either way views may remain.
                escaped = true;
            } else if data.cast::<u8>().cast_const() != base {
                return Err(invalid("buffer"));
            } else {
                // SAFETY: `ab` is our external ArrayBuffer, attached; detaching it makes every view
                // over it zero-length, and since a backing store belongs to one ArrayBuffer, nothing
                // in JavaScript can reach the memory after this.
                let status = unsafe { sys::napi_detach_arraybuffer(env.raw(), ab) };
                napi_call(status, "napi_detach_arraybuffer")?;
            }
        }
        let mut region = shared.lock();
        self.closed.store(true, Ordering::Release);
        if escaped {
            // Waits for a sync() in progress (it holds this lock): changes reach the page cache first.
            region.retire().map_err(to_napi)?;
        } else {
            region.release();
        }
        Ok(region.is_stale())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No Node runtime at hand forbids external buffers, so this pins the record that
    /// `__test__/mmap.test.mjs` feeds the TypeScript layer for that case.
    #[test]
    fn forbidden_external_buffers_are_an_eopnotsupp_record_naming_the_call() {
        let err =
            forbidden_external_buffers(sys::Status::napi_no_external_buffers_allowed).unwrap();
        let record = crate::node::error::format_record(&err);
        assert!(
            record.starts_with(
                "{\"zerocopy-error\":1,\"code\":\"EOPNOTSUPP\",\"errno\":95,\"syscall\":\"napi_create_external_buffer\","
            ),
            "{record}"
        );
        assert!(forbidden_external_buffers(sys::Status::napi_generic_failure).is_none());
    }
}
