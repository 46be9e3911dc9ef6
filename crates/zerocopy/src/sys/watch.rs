//! File-change watches whose events are known before the writer's system call returns: inotify with
//! `O_ASYNC`, and a flag in memory that a signal handler raises.
//!
//! A [`Watcher`] is an inotify instance owned by one thread. Its descriptor is set to `O_ASYNC`, with
//! `F_SETSIG` naming a realtime signal and `F_SETOWN_EX` naming the creating thread, so that when the
//! kernel queues an inotify event (inside the writer's `write`/`rename`/`unlink`…, in
//! `fsnotify_insert_event` → `kill_fasync`) it also queues that signal to the watcher's thread. The
//! handler only sets the watcher's `pending` flag. A pending, unblocked signal is delivered whenever
//! its thread returns to user mode, so:
//!
//! - a write made by the watcher's own thread has set the flag by the time the write returns;
//! - a thread that receives anything sent after a write elsewhere (a request on a socket, a message
//!   through a channel) must make a system call to receive it, and that call's return delivers the
//!   signal first: the flag is set before the thread sees the message.
//!
//! [`Watcher::pending`] is therefore a plain atomic load — no system call — and only when it says
//! true does the caller need [`Watcher::events`], which clears the flag *before* draining the
//! descriptor (an event queued during the drain either is read by it or raises the flag again; one
//! the kernel merges into the last queued event raises no signal, but that event is still unread).
//!
//! ## Signals used
//!
//! Once per process, [`install`] picks a realtime signal nobody handles (the first, scanning down
//! from `SIGRTMAX - 1`, whose disposition is `SIG_DFL`) and installs the handler. It also installs a
//! `SIGIO` handler: when the realtime signal cannot be queued (the `RLIMIT_SIGPENDING` queue is full)
//! the kernel sends a plain `SIGIO` instead, without saying which descriptor; our handler marks every
//! watcher pending (and `SIGIO`'s default action, killing the process, no longer applies).
//!
//! ## Async-signal safety
//!
//! As in [`super::sigbus`]: the handlers neither allocate nor lock. The registry is a fixed table of
//! [`MAX_WATCHERS`] slots of atomics (descriptor, pending flag), and the handlers only load and store
//! atomics, apart from forwarding to the previous disposition.
//!
//! ## Limits
//!
//! - [`MAX_WATCHERS`] watchers (threads) at once.
//! - Code that later replaces the realtime signal's or `SIGIO`'s handler (for instance
//!   `process.on('SIGIO')` in Node) silences the watchers; a thread that blocks the signal does too.
//!   [`Watcher::new`] checks both at creation (it sends itself the signal and fails if the flag does
//!   not rise), not afterwards.
//! - A realtime signal for a descriptor that is no longer ours (queued just before its watcher was
//!   closed) is dropped; one sent by a process (`kill`, `sigqueue`) gets the default action, as if
//!   the handler did not exist. `SIGIO` goes to the previous handler if there was one, else nowhere.
//! - `F_SETSIG`, `F_SETOWN_EX` and `siginfo_t`'s `si_fd` are declared here with the values of the
//!   generic Linux ABI (libc does not export them for every target).

use std::ffi::{CString, OsString};
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;

use nix::errno::Errno;

use crate::error::{Error, Result};

use super::chain::{self, Previous};

/// How many watchers (one per thread) can exist at once.
pub const MAX_WATCHERS: usize = 64;

pub use libc::{
    IN_ATTRIB, IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_IGNORED, IN_ISDIR, IN_MODIFY,
    IN_MOVED_FROM, IN_MOVED_TO, IN_MOVE_SELF, IN_Q_OVERFLOW,
};

/// What a directory watch reports: entries appearing, disappearing or renamed, and the directory
/// itself deleted, moved or changing permissions.
pub const DIRECTORY_MASK: u32 = libc::IN_ONLYDIR
    | libc::IN_DONT_FOLLOW
    | IN_CREATE
    | IN_DELETE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ATTRIB;

/// What a file watch reports: content written or truncated, metadata changed, the file deleted or
/// moved.
pub const FILE_MASK: u32 =
    libc::IN_DONT_FOLLOW | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

// The generic Linux values (include/uapi/asm-generic/fcntl.h).
const F_SETSIG: libc::c_int = 10;
const F_SETOWN_EX: libc::c_int = 15;
const F_OWNER_TID: libc::c_int = 0;
const POLL_IN: libc::c_int = 1;

#[repr(C)]
struct FOwnerEx {
    kind: libc::c_int,
    pid: libc::pid_t,
}

/// The head of a kernel `siginfo_t` as filled for `SIGIO`-style signals (`_sigpoll`): `repr(C)`
/// places `band` where the kernel's union starts (after padding on 64-bit) and `fd` after it.
#[repr(C)]
struct SigPoll {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    band: libc::c_long,
    fd: libc::c_int,
}

const _: () = assert!(std::mem::size_of::<SigPoll>() <= std::mem::size_of::<libc::siginfo_t>());

const FREE: RawFd = -1;

/// One watcher: its inotify descriptor (or [`FREE`]) and its flag.
struct Slot {
    fd: AtomicI32,
    pending: AtomicBool,
}

impl Slot {
    // Only used as the repeat operand initialising SLOTS, where a fresh copy per element is the point.
    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Slot = Slot {
        fd: AtomicI32::new(FREE),
        pending: AtomicBool::new(false),
    };
}

static SLOTS: [Slot; MAX_WATCHERS] = [Slot::EMPTY; MAX_WATCHERS];

/// The dispositions found when the handlers were installed, for forwarding.
static PREVIOUS_RT: Previous = Previous::new();
static PREVIOUS_IO: Previous = Previous::new();
/// The realtime signal chosen, 0 until installed. Set once, under `INSTALL`.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static INSTALL: Mutex<()> = Mutex::new(());

/// This thread's kernel id. By raw syscall: glibc's `gettid()` wrapper appeared only in 2.30, and
/// the prebuilt binaries promise glibc 2.17.
fn current_tid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
}

/// The realtime signal the watchers use, once [`install`] has chosen it.
pub fn signal() -> Option<libc::c_int> {
    match SIGNAL.load(Ordering::Acquire) {
        0 => None,
        sig => Some(sig),
    }
}

fn query(sig: libc::c_int) -> Result<libc::sigaction> {
    // SAFETY: an all-zero sigaction is a valid value of this plain C struct.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `old` is a valid, writable sigaction.
    if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
        return Err(Error::last("sigaction"));
    }
    Ok(old)
}

fn set_handler(
    sig: libc::c_int,
    handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void),
) -> Result<()> {
    // SAFETY: as in `query`, a zeroed sigaction is valid; every field we rely on is set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as usize;
    // SA_RESTART: the JS thread's blocking calls (reads of files, futex waits) interrupted by a
    // change notification resume instead of failing with EINTR.
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is fully initialised and `handler` has the SA_SIGINFO signature.
    if unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) } != 0 {
        return Err(Error::last("sigaction"));
    }
    Ok(())
}

/// Chooses the realtime signal and installs both handlers, once per process; returns the signal.
///
/// Fails with `EAGAIN` when every realtime signal from `SIGRTMIN` to `SIGRTMAX - 1` is taken.
pub fn install() -> Result<libc::c_int> {
    if let Some(sig) = signal() {
        return Ok(sig);
    }
    let _guard = crate::sync::lock(&INSTALL);
    if let Some(sig) = signal() {
        return Ok(sig);
    }
    let mut chosen = None;
    for sig in (libc::SIGRTMIN()..libc::SIGRTMAX()).rev() {
        let old = query(sig)?;
        if old.sa_sigaction == libc::SIG_DFL {
            chosen = Some((sig, old));
            break;
        }
    }
    let Some((sig, old)) = chosen else {
        return Err(Error::new(Errno::EAGAIN, "sigaction")
            .with_detail("no free realtime signal for file watches"));
    };
    let old_io = query(libc::SIGIO)?;
    // SAFETY: our handlers are not installed yet, so nothing reads the cells concurrently; writers
    // are serialised by the INSTALL lock we hold.
    unsafe {
        PREVIOUS_RT.set(old);
        PREVIOUS_IO.set(old_io);
    }
    set_handler(libc::SIGIO, on_sigio)?;
    set_handler(sig, on_signal)?;
    SIGNAL.store(sig, Ordering::Release);
    Ok(sig)
}

/// One inotify event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The watch descriptor, or -1 for `IN_Q_OVERFLOW`.
    pub wd: i32,
    pub mask: u32,
    /// Pairs `IN_MOVED_FROM` with its `IN_MOVED_TO`.
    pub cookie: u32,
    /// The entry's name for events inside a watched directory; empty otherwise.
    pub name: OsString,
}

/// An inotify instance whose events raise a flag before the writer's system call returns (see the
/// module docs). Owned by the thread that created it: the signal goes to that thread, so the type is
/// neither `Send` nor `Sync`.
#[derive(Debug)]
pub struct Watcher {
    fd: OwnedFd,
    slot: usize,
    _thread: PhantomData<*const ()>,
}

/// Stop reading after this many bytes in one [`Watcher::events`] call (the flag is raised again), so
/// that a writer that never stops cannot keep the caller draining forever.
const DRAIN_LIMIT: usize = 1 << 20;

impl Watcher {
    /// `inotify_init1(IN_NONBLOCK | IN_CLOEXEC)`, set to signal the calling thread, after [`install`].
    ///
    /// Then checks the whole path on this thread: it queues itself the signal as the kernel would
    /// (`rt_tgsigqueueinfo` naming the descriptor) and fails unless the flag is set when that call
    /// returns. Fails with `EINVAL` when this thread blocks the signal or `SIGIO`, `EMFILE` when
    /// [`MAX_WATCHERS`] watchers exist, or the errno of the failing call.
    pub fn new() -> Result<Watcher> {
        let sig = install()?;
        blocked_check(sig)?;
        // SAFETY: plain syscall; flags are valid.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(Error::last("inotify_init1"));
        }
        // SAFETY: inotify_init1 just returned this descriptor, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let Some(slot) = SLOTS.iter().position(|s| {
            s.fd.compare_exchange(FREE, raw, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        }) else {
            return Err(Error::new(Errno::EMFILE, "inotify_init1")
                .with_detail("too many file watchers (threads) at once"));
        };
        // No signal names `raw` before O_ASYNC is set below, so nothing races this store.
        SLOTS[slot].pending.store(false, Ordering::Relaxed);
        // From here on, dropping `watcher` frees the slot and closes the descriptor.
        let watcher = Watcher {
            fd,
            slot,
            _thread: PhantomData,
        };
        let owner = FOwnerEx {
            kind: F_OWNER_TID,
            pid: current_tid(),
        };
        // SAFETY: fcntl on a descriptor we own; F_SETSIG takes an int.
        if unsafe { libc::fcntl(raw, F_SETSIG, sig) } < 0 {
            return Err(Error::last("fcntl"));
        }
        // SAFETY: F_SETOWN_EX reads a struct f_owner_ex, which `owner` is laid out as.
        if unsafe { libc::fcntl(raw, F_SETOWN_EX, &owner as *const FOwnerEx) } < 0 {
            return Err(Error::last("fcntl"));
        }
        // SAFETY: fcntl on a descriptor we own.
        let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
        // SAFETY: as above; O_ASYNC makes inotify signal the owner set just before.
        if flags < 0 || unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_ASYNC) } < 0 {
            return Err(Error::last("fcntl"));
        }
        watcher.self_test(sig)?;
        Ok(watcher)
    }

    fn self_test(&self, sig: libc::c_int) -> Result<()> {
        // SAFETY: an all-zero siginfo_t is valid plain data.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let poll = &mut info as *mut libc::siginfo_t as *mut SigPoll;
        // SAFETY: `SigPoll` fits inside `siginfo_t` (checked at compile time) and has no stricter
        // alignment than it.
        unsafe {
            (*poll).signo = sig;
            (*poll).code = POLL_IN;
            (*poll).fd = self.fd.as_raw_fd();
        }
        // SAFETY: getpid has no preconditions; `info` is a valid siginfo_t the kernel copies.
        // Sending to our own thread allows a positive si_code (the kernel's own POLL_IN).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                libc::getpid(),
                current_tid(),
                sig,
                &info as *const libc::siginfo_t,
            )
        };
        if ret < 0 {
            return Err(Error::last("rt_tgsigqueueinfo"));
        }
        let slot = &SLOTS[self.slot];
        if !slot.pending.swap(false, Ordering::AcqRel) {
            return Err(Error::new(Errno::EINVAL, "rt_tgsigqueueinfo").with_detail(
                "the file-watch signal was not delivered to this thread (another handler installed?)",
            ));
        }
        Ok(())
    }

    /// `inotify_add_watch(2)` with [`DIRECTORY_MASK`] or [`FILE_MASK`]; returns the watch descriptor.
    /// Symlinks are not followed; a directory watch on a non-directory fails with `ENOTDIR`.
    pub fn add(&self, path: &Path, directory: bool) -> Result<i32> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| Error::new(Errno::EINVAL, "inotify_add_watch").with_path(path))?;
        let mask = if directory { DIRECTORY_MASK } else { FILE_MASK };
        // SAFETY: a descriptor we own and a NUL-terminated path that outlives the call.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) };
        if wd < 0 {
            return Err(Error::last("inotify_add_watch").with_path(path));
        }
        Ok(wd)
    }

    /// `inotify_rm_watch(2)`. A watch already gone (its file deleted, `EINVAL`) is not an error.
    pub fn remove(&self, wd: i32) -> Result<()> {
        // SAFETY: plain syscall on a descriptor we own.
        if unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) } < 0 {
            let err = Error::last("inotify_rm_watch");
            if err.errno() != Errno::EINVAL {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Whether an event may have been queued since the last [`Watcher::events`]. No system call.
    #[inline]
    pub fn pending(&self) -> bool {
        SLOTS[self.slot].pending.load(Ordering::Acquire)
    }

    /// Clears the flag, then reads every queued event (until `EAGAIN`, or [`DRAIN_LIMIT`] bytes,
    /// after which the flag is raised again so the caller comes back).
    pub fn events(&self) -> Result<Vec<Event>> {
        let slot = &SLOTS[self.slot];
        slot.pending.store(false, Ordering::SeqCst);
        let mut events = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            if total >= DRAIN_LIMIT {
                slot.pending.store(true, Ordering::SeqCst);
                break;
            }
            let n = match crate::error::retry_eintr(|| nix::unistd::read(&self.fd, &mut buf))
            {
                Ok(n) => n,
                Err(Errno::EAGAIN) => break,
                Err(errno) => return Err(Error::new(errno, "read")),
            };
            if n == 0 {
                break;
            }
            total += n;
            parse(&buf[..n], &mut events);
        }
        Ok(events)
    }
}

/// Appends the `struct inotify_event` records in `buf` (the kernel returns whole records only).
fn parse(buf: &[u8], out: &mut Vec<Event>) {
    const HEAD: usize = 16;
    let word = |at: usize| -> [u8; 4] {
        let mut w = [0u8; 4];
        w.copy_from_slice(&buf[at..at + 4]);
        w
    };
    let mut at = 0;
    while at + HEAD <= buf.len() {
        let wd = i32::from_ne_bytes(word(at));
        let mask = u32::from_ne_bytes(word(at + 4));
        let cookie = u32::from_ne_bytes(word(at + 8));
        let len = u32::from_ne_bytes(word(at + 12)) as usize;
        let end = (at + HEAD + len).min(buf.len());
        let raw = &buf[at + HEAD..end];
        let name = raw.split(|&b| b == 0).next().unwrap_or_default();
        out.push(Event {
            wd,
            mask,
            cookie,
            name: OsString::from_vec(name.to_vec()),
        });
        at = end;
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Freed before the descriptor closes (the field drops after this): a signal still queued for
        // it finds no slot and is dropped (see `on_signal`).
        let slot = &SLOTS[self.slot];
        slot.fd.store(FREE, Ordering::Release);
        slot.pending.store(false, Ordering::Relaxed);
    }
}

/// Fails with `EINVAL` if this thread blocks `sig` or `SIGIO`.
fn blocked_check(sig: libc::c_int) -> Result<()> {
    // SAFETY: an all-zero sigset_t is valid plain data; sigemptyset initialises it anyway.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: a null new set only queries the calling thread's mask into `set`.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set) };
    if ret != 0 {
        return Err(Error::new(Errno::from_raw(ret), "pthread_sigmask"));
    }
    for s in [sig, libc::SIGIO] {
        // SAFETY: `set` was filled by pthread_sigmask.
        if unsafe { libc::sigismember(&set, s) } == 1 {
            return Err(Error::new(Errno::EINVAL, "pthread_sigmask")
                .with_detail("this thread blocks the file-watch signal"));
        }
    }
    Ok(())
}

/// The realtime signal's handler: raise the flag of the watcher whose descriptor sent it.
extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    if info.is_null() {
        return;
    }
    // SAFETY: checked non-null; the kernel's siginfo_t is valid for the handler's duration.
    let code = unsafe { (*info).si_code };
    if code > 0 {
        // SAFETY: a positive si_code on this signal is the kernel's (or our self-test's) SIGIO-style
        // notification, whose siginfo carries si_fd where `SigPoll` reads it.
        let fd = unsafe { (*(info as *const SigPoll)).fd };
        if let Some(slot) = SLOTS.iter().find(|s| s.fd.load(Ordering::Acquire) == fd) {
            slot.pending.store(true, Ordering::Release);
        }
        // Not ours: a descriptor closed while its signal was queued. Dropped.
        return;
    }
    // SAFETY: `info` and `ctx` are what the kernel gave us; PREVIOUS_RT was written before install.
    unsafe { forward(&PREVIOUS_RT, sig, info, ctx, true) };
}

/// `SIGIO`: the realtime signal could not be queued, so any watcher may have missed an event.
extern "C" fn on_sigio(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    for slot in &SLOTS {
        if slot.fd.load(Ordering::Acquire) != FREE {
            slot.pending.store(true, Ordering::Release);
        }
    }
    // SAFETY: as in `on_signal`.
    unsafe { forward(&PREVIOUS_IO, sig, info, ctx, false) };
}

/// Hands a signal to the disposition found at install time. `default` says whether `SIG_DFL` gets
/// the default action (restored and raised again) or nothing.
///
/// # Safety
/// `info` and `ctx` must be what the kernel passed to the handler.
unsafe fn forward(
    previous: &Previous,
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
    default: bool,
) {
    let Some(previous) = previous.get() else {
        return;
    };
    match previous.sa_sigaction {
        libc::SIG_DFL if default => {
            // SAFETY: a zeroed sigaction with sa_sigaction = SIG_DFL (0) is the default disposition.
            let dfl: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: `dfl` is valid; sigaction and raise are async-signal-safe. The raised signal
            // is blocked while this handler runs and delivered when it returns.
            unsafe {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
                libc::raise(sig);
            }
        }
        libc::SIG_DFL | libc::SIG_IGN => {}
        // SAFETY: neither SIG_DFL nor SIG_IGN: a handler; `info`/`ctx` are the kernel's (our caller's contract).
        _ => unsafe { chain::call(&previous, sig, info, ctx) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_with_and_without_names() {
        let mut buf = Vec::new();
        for (wd, mask, name) in [(3i32, IN_MODIFY, &b""[..]), (-1, IN_Q_OVERFLOW, b""), (4, IN_CREATE, b"abc\0\0\0\0\0\0\0\0\0\0\0\0\0")] {
            buf.extend_from_slice(&wd.to_ne_bytes());
            buf.extend_from_slice(&mask.to_ne_bytes());
            buf.extend_from_slice(&7u32.to_ne_bytes());
            buf.extend_from_slice(&(name.len() as u32).to_ne_bytes());
            buf.extend_from_slice(name);
        }
        let mut out = Vec::new();
        parse(&buf, &mut out);
        let got: Vec<_> = out.iter().map(|e| (e.wd, e.mask, e.name.clone())).collect();
        assert_eq!(
            got,
            vec![
                (3, IN_MODIFY, OsString::new()),
                (-1, IN_Q_OVERFLOW, OsString::new()),
                (4, IN_CREATE, OsString::from("abc")),
            ]
        );
    }
}
