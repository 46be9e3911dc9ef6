//! The truncation guard: a `SIGBUS` handler that keeps our own file mappings from killing the process.
//!
//! When another process truncates a mapped file, touching a mapped page that now lies wholly past the
//! new end of file raises `SIGBUS` (`BUS_ADRERR`); the default action kills the process. Every Node
//! mmap package, and Bun, dies this way. This module installs — once, chained to whatever handler was
//! there before — a handler that, for faults inside a mapping registered here and only there, maps
//! anonymous zero pages (`MAP_FIXED`) over the faulting page and everything after it in that
//! mapping, marks the mapping stale and returns. The faulting instruction then runs again, reads
//! zeros, and the process lives. Every other `SIGBUS` goes to the previous handler, or gets the
//! default action, exactly as if this handler did not exist.
//!
//! ## Why the rest of the mapping, not just one page
//!
//! A page faults because it lies past the file's current end. Every later page of the mapping lies
//! further past that end, so it would fault too: replacing them all in one `mmap` call takes one
//! signal per truncation instead of one per page (a scan over a 1 GiB mapping of a file truncated to
//! zero would otherwise take 262,144 signals).
//!
//! ## Async-signal safety
//!
//! A signal handler may interrupt any code on any thread, including code that holds the allocator's
//! lock or a `Mutex` protecting a registry. So the handler neither allocates nor takes a lock: the
//! registry is a fixed-size, statically allocated table of slots made of atomics, and the handler
//! only does atomic loads and stores plus raw system calls (`mmap`, `sigaction`, `raise`, which are
//! plain syscalls on Linux). It saves and restores `errno`, which its `mmap` may overwrite under the
//! interrupted code's feet.
//!
//! A slot goes `FREE → CLAIMED` (compare-and-swap, so two registering threads never share it), then
//! `LIVE`. Its fields are guarded by a per-slot sequence counter (a seqlock): [`register`] makes it
//! odd, writes `start`/`len`, publishes `LIVE` and makes it even again (`Release`). The handler reads
//! the counter (`Acquire`), the state and the fields, then the counter again after an `Acquire`
//! fence, and skips the slot unless both reads are the same even number and the state was `LIVE`.
//! Without the counter, a slot freed and taken again by two other threads while the handler reads it
//! could hand it the `start` of one mapping and the `len` of the next: a range that belongs to no one,
//! over which it would paste zero pages. A slot that changes while the handler reads it can never be
//! the one the fault is in: the faulting thread is touching that mapping right now, a mapping is
//! registered before anyone can touch it, and it is unregistered only once nothing can (below).
//!
//! Unregistering stores `FREE` *before* the caller unmaps, and callers unregister only when no thread
//! can touch the range any more: a mapping is never unmapped while the handler could still claim its
//! address range, so the handler cannot paste zero pages over memory someone maps there later. (The
//! Node binding keeps that promise even for views that escaped `close()` through
//! `ArrayBuffer.prototype.transfer()` or a transfer list: it replaces the range with zero pages and
//! keeps it registered and reserved until the last backing store is freed.) Code that touches a
//! mapping on one thread while another thread unmaps it is a use-after-free in that code, which no
//! handler can make safe.
//!
//! ## Limits
//!
//! - [`MAX_MAPPINGS`] mappings can be guarded at once (more than the kernel's default
//!   `vm.max_map_count` of 65,530 allows anyway); [`register`] fails with `ENOMEM` beyond that.
//! - If some other code replaces the `SIGBUS` handler after ours is installed (for instance
//!   `process.on('SIGBUS')` in Node, which installs libuv's), the guard is gone.
//! - The previous handler is called as the kernel would have called it, except that its `sa_mask`
//!   and `SA_NODEFER`/`SA_RESETHAND` flags are not re-applied.

use std::sync::atomic::{fence, AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

use nix::errno::Errno;

use crate::error::{Error, Result};

use super::chain::{self, Previous};

/// How many mappings can be guarded at once.
pub const MAX_MAPPINGS: usize = 1 << 16;

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const LIVE: u8 = 2;

/// `cut` of a slot whose range the handler has not touched.
const UNCUT: usize = usize::MAX;

/// One guarded address range. All fields are atomics so the handler can read them without a lock.
struct Slot {
    state: AtomicU8,
    /// Odd while [`register`] writes `start`/`len`, even otherwise (see the module docs).
    seq: AtomicUsize,
    /// Page-aligned start address of the mapping.
    start: AtomicUsize,
    /// Length in bytes, a multiple of the page size.
    len: AtomicUsize,
    /// The lowest page address the handler has replaced with zero pages (it replaces from the
    /// faulting page to the end of the range), or [`UNCUT`].
    cut: AtomicUsize,
}

impl Slot {
    // Only used as the repeat operand initialising SLOTS, where a fresh copy per element is the point.
    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Slot = Slot {
        state: AtomicU8::new(FREE),
        seq: AtomicUsize::new(0),
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        cut: AtomicUsize::new(UNCUT),
    };

    /// The slot's range if it is `LIVE` and was not rewritten while being read; `between` runs
    /// between the two field loads (a no-op, except in the test that widens that window).
    fn read(&self, between: impl FnOnce()) -> Option<(usize, usize)> {
        let before = self.seq.load(Ordering::Acquire);
        if before & 1 != 0 {
            return None;
        }
        let live = self.state.load(Ordering::Relaxed) == LIVE;
        let start = self.start.load(Ordering::Relaxed);
        between();
        let len = self.len.load(Ordering::Relaxed);
        // Orders the field loads before the second counter load: if they saw any store of a later
        // `register`, this load sees that register's odd counter (its Release fence precedes them).
        fence(Ordering::Acquire);
        let after = self.seq.load(Ordering::Relaxed);
        (live && before == after).then_some((start, len))
    }
}

/// The registry. Static and zero-initialised, so it lives in untouched BSS pages until used.
static SLOTS: [Slot; MAX_MAPPINGS] = [Slot::EMPTY; MAX_MAPPINGS];
/// One past the highest slot ever used: the handler scans no further.
static HIGH_WATER: AtomicUsize = AtomicUsize::new(0);
/// Where [`register`] starts looking for a free slot (the last one freed or taken), so that
/// registering stays cheap while thousands of mappings are alive.
static HINT: AtomicUsize = AtomicUsize::new(0);
/// The page size, read once at install time: `sysconf` is not on the async-signal-safe list.
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);

/// The `SIGBUS` disposition found when the guard was installed.
static PREVIOUS: Previous = Previous::new();
/// Set once the handler is installed. A `Mutex` (not a `Once`) so a failed install can be retried.
static INSTALL: Mutex<bool> = Mutex::new(false);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the guard's `SIGBUS` handler, once per process; later calls return at once.
///
/// The handler found installed (usually the default action) is kept and receives every `SIGBUS`
/// that is not a fault inside a registered mapping.
pub fn install() -> Result<()> {
    if INSTALLED.load(Ordering::Acquire) {
        return Ok(());
    }
    let mut done = crate::sync::lock(&INSTALL);
    if *done {
        return Ok(());
    }
    PAGE_SIZE.store(super::probe::page_size(), Ordering::Relaxed);

    // SAFETY: an all-zero sigaction is a valid value of this plain C struct.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `old` is a valid, writable sigaction.
    if unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) } != 0 {
        return Err(Error::last("sigaction"));
    }
    // SAFETY: our handler is not installed yet, so nothing reads PREVIOUS concurrently; writers are
    // serialised by the INSTALL lock we hold.
    unsafe { PREVIOUS.set(old) };

    // SAFETY: as above, a zeroed sigaction is valid; every field we rely on is set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction =
        on_sigbus as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
    // SA_ONSTACK: run on an alternate signal stack where the thread has one (a fault on a nearly
    // exhausted stack must still be handled). SA_RESTART: a system call interrupted by a fault in
    // another part of the program is resumed, as with the default disposition.
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is fully initialised and `on_sigbus` has the SA_SIGINFO signature.
    if unsafe { libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) } != 0 {
        return Err(Error::last("sigaction"));
    }
    *done = true;
    INSTALLED.store(true, Ordering::Release);
    Ok(())
}

/// Whether the guard is installed in this process.
pub fn is_installed() -> bool {
    INSTALLED.load(Ordering::Acquire)
}

/// A registered mapping. Dropping it unregisters the range; do that before unmapping it.
#[derive(Debug)]
pub struct Registration {
    slot: usize,
}

/// Registers `[start, start + len)` (page-aligned start, length a multiple of the page size) so that
/// truncation faults inside it are absorbed. Installs the handler first if needed.
///
/// Fails with `ENOMEM` when [`MAX_MAPPINGS`] ranges are already registered.
pub fn register(start: usize, len: usize) -> Result<Registration> {
    install()?;
    let hint = HINT.load(Ordering::Relaxed) % MAX_MAPPINGS;
    for i in (hint..MAX_MAPPINGS).chain(0..hint) {
        let slot = &SLOTS[i];
        if slot
            .state
            .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        // The slot is ours until FREE is stored again: nobody else writes its counter meanwhile.
        let seq = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // Orders the odd counter before the field stores, for the handler's fence in `Slot::read`.
        fence(Ordering::Release);
        slot.start.store(start, Ordering::Relaxed);
        slot.len.store(len, Ordering::Relaxed);
        slot.cut.store(UNCUT, Ordering::Relaxed);
        slot.state.store(LIVE, Ordering::Relaxed);
        HIGH_WATER.fetch_max(i + 1, Ordering::Release);
        // Publishes the fields and LIVE to the handler's Acquire load of the counter.
        slot.seq.store(seq.wrapping_add(2), Ordering::Release);
        HINT.store(i + 1, Ordering::Relaxed);
        return Ok(Registration { slot: i });
    }
    Err(Error::new(Errno::ENOMEM, "mmap")
        .with_detail("too many mappings guarded against truncation at once"))
}

impl Registration {
    /// Whether a truncation fault inside this range has been absorbed (the range now holds zero pages
    /// from the first faulting page on).
    pub fn is_stale(&self) -> bool {
        self.cut().is_some()
    }

    /// The lowest address the handler has replaced with zero pages: from there to the end of the
    /// range nothing is backed by the file any more. `None` while no fault has been absorbed.
    pub fn cut(&self) -> Option<usize> {
        let cut = SLOTS[self.slot].cut.load(Ordering::Acquire);
        (cut != UNCUT).then_some(cut)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let slot = &SLOTS[self.slot];
        slot.state.store(FREE, Ordering::Release);
        HINT.store(self.slot, Ordering::Relaxed);
    }
}

/// Saves `errno` on creation and restores it on drop, so the handler is invisible to the interrupted
/// code even when its system calls fail.
struct SavedErrno(i32);

impl SavedErrno {
    fn save() -> Self {
        // SAFETY: __errno_location returns this thread's errno slot, valid for the thread's lifetime.
        SavedErrno(unsafe { *libc::__errno_location() })
    }
}

impl Drop for SavedErrno {
    fn drop(&mut self) {
        // SAFETY: as in `save`.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

/// The handler. Async-signal-safe: atomics and raw system calls only (see the module docs).
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let _errno = SavedErrno::save();
    // SAFETY: the kernel passes a valid siginfo_t for an SA_SIGINFO handler (null is checked anyway).
    if unsafe { absorb(info) } {
        return;
    }
    // SAFETY: `info` and `ctx` are what the kernel gave us, passed on unchanged.
    unsafe { forward(sig, info, ctx) };
}

/// Absorbs a truncation fault inside a registered mapping. Returns false for anything else.
///
/// # Safety
/// `info` must be null or point to the siginfo_t the kernel passed to the handler.
unsafe fn absorb(info: *const libc::siginfo_t) -> bool {
    if info.is_null() {
        return false;
    }
    // SAFETY: checked non-null; the kernel's siginfo_t is valid for the handler's duration.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // si_code <= 0 means a process sent the signal (kill, tgkill, sigqueue): not a fault. Only
    // BUS_ADRERR is a page past the end of a file (or a page the disk failed to read); hardware
    // memory errors (BUS_MCEERR_*) and alignment faults stay the kernel's business.
    if code != libc::BUS_ADRERR {
        return false;
    }
    let Some((slot, start, len)) = find(addr, |_| {}) else {
        return false;
    };
    let page_size = PAGE_SIZE.load(Ordering::Relaxed);
    let page = addr & !(page_size - 1);
    let end = start + len;
    // SAFETY: [page, end) lies inside a mapping we created and still own (it is LIVE in the
    // registry, read consistently, and owners unregister only once nothing touches the range, before
    // unmapping it). Replacing it with private anonymous zero pages keeps the addresses valid: readers
    // see zeros, writers write to private pages.
    let ret = unsafe {
        libc::mmap(
            page as *mut libc::c_void,
            end - page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ret == libc::MAP_FAILED {
        // Out of memory for page tables: nothing we can do; let the previous handler decide.
        return false;
    }
    SLOTS[slot].cut.fetch_min(page, Ordering::Release);
    true
}

/// The registered range holding `addr`, as `(slot, start, len)`. `between(slot)` runs inside each
/// slot's read (see [`Slot::read`]); the handler passes a no-op.
fn find(addr: usize, mut between: impl FnMut(usize)) -> Option<(usize, usize, usize)> {
    let high = HIGH_WATER.load(Ordering::Acquire);
    for (i, slot) in SLOTS[..high.min(MAX_MAPPINGS)].iter().enumerate() {
        let Some((start, len)) = slot.read(|| between(i)) else {
            continue;
        };
        if addr >= start && addr - start < len {
            return Some((i, start, len));
        }
    }
    None
}

/// Hands a signal we do not handle to the disposition that was there before us.
///
/// # Safety
/// `info` and `ctx` must be what the kernel passed to the handler.
unsafe fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let Some(previous) = PREVIOUS.get() else {
        return default_action(sig, info);
    };
    let fault = !info.is_null() && {
        // SAFETY: checked non-null; valid for the handler's duration.
        unsafe { (*info).si_code > 0 }
    };
    match previous.sa_sigaction {
        libc::SIG_DFL => default_action(sig, info),
        // An ignored SIGBUS sent by a process stays ignored. A fault cannot be ignored: the kernel
        // forces the default action when the faulting instruction runs again, so give it that now
        // (returning with our handler still installed would fault again forever).
        libc::SIG_IGN if !fault => {}
        libc::SIG_IGN => default_action(sig, info),
        // SAFETY: neither SIG_DFL nor SIG_IGN: a handler; `info`/`ctx` are the kernel's (our caller's contract).
        _ => unsafe { chain::call(&previous, sig, info, ctx) },
    }
}

/// The default action: restore `SIG_DFL`, then let the signal kill the process as it would have.
///
/// For a fault, returning re-runs the faulting instruction, which faults again and now gets the
/// default action (death by `SIGBUS`, with a core dump where enabled). A signal sent by a process is
/// raised again; it is blocked while this handler runs and is delivered as soon as it returns.
fn default_action(sig: libc::c_int, info: *const libc::siginfo_t) {
    // SAFETY: a zeroed sigaction with sa_sigaction = SIG_DFL (0) is the default disposition.
    let dfl: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `dfl` is a valid sigaction; sigaction is async-signal-safe.
    unsafe { libc::sigaction(sig, &dfl, std::ptr::null_mut()) };
    // SAFETY: `info` is null or the kernel's siginfo_t.
    let sent = info.is_null() || unsafe { (*info).si_code <= 0 };
    if sent {
        // SAFETY: raise is async-signal-safe.
        unsafe { libc::raise(sig) };
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// The window the seqlock closes, replayed deterministically: while the handler is between
    /// reading a slot's `start` and its `len`, another thread unregisters that mapping and a third
    /// registers a longer one, which takes the same slot. A handler reading the fields without the
    /// counter would see `[A.start, A.start + C.len)`, a range covering the faulting mapping B and
    /// more, and paste zero pages over all of it.
    #[test]
    fn a_slot_rewritten_while_the_handler_reads_it_is_skipped() {
        // Addresses only: `find` compares numbers, and nothing here is mapped or touched.
        let page = 4096;
        let base = 0x6a00_0000_0000usize;
        let mut a = Some(register(base, page).unwrap());
        let b = register(base + 8 * page, page).unwrap();
        let a_slot = a.as_ref().unwrap().slot;
        assert!(a_slot < b.slot, "A is scanned before B");
        let fault = base + 8 * page + 10;
        assert_eq!(find(fault, |_| {}), Some((b.slot, base + 8 * page, page)));

        let mut c = None;
        let found = find(fault, |i| {
            if i == a_slot && c.is_none() {
                drop(a.take());
                c = Some(register(base + 32 * page, 16 * page).unwrap());
            }
        });
        assert_eq!(c.as_ref().unwrap().slot, a_slot, "C took A's slot");
        assert_eq!(
            found,
            Some((b.slot, base + 8 * page, page)),
            "the torn slot is skipped and the fault found in B's range only"
        );
        // Read again once nothing moves: C's own range is found consistently.
        assert_eq!(
            find(base + 40 * page, |_| {}),
            Some((a_slot, base + 32 * page, 16 * page))
        );
    }
}
