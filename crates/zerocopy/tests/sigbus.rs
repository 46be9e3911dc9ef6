//! sys::sigbus: truncation faults inside our mappings are absorbed; every other SIGBUS behaves as if
//! the guard did not exist.
//!
//! The "dies" cases run in a child process: this test binary started again with one scenario named in
//! an environment variable (see `child`), so a death kills only the child.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use common::*;
use zerocopy_io::sys::mmap::{Mmap, MmapOptions, Mode};
use zerocopy_io::sys::probe::page_size;
use zerocopy_io::sys::sigbus;

const SCENARIO: &str = "ZEROCOPY_SIGBUS_SCENARIO";

fn map(file: &std::fs::File, mode: Mode, len: usize) -> Mmap {
    MmapOptions {
        mode,
        len,
        ..Default::default()
    }
    .map(file)
    .unwrap()
}

#[test]
fn a_truncated_file_reads_zeros_past_its_new_end_and_the_mapping_turns_stale() {
    let dir = disk_dir();
    let page = page_size();
    let (path, data) = make_file(dir.path(), "f", 4 * page, 21);
    for mode in [Mode::Read, Mode::Write, Mode::CopyOnWrite] {
        std::fs::write(&path, &data).unwrap();
        let mut m = map(&open_rw(&path), mode, 4 * page);
        assert_eq!(read_byte(&m, 3 * page), data[3 * page]);
        assert!(!m.is_stale());
        open_rw(&path).set_len(page as u64 + 10).unwrap();
        assert_eq!(
            read_byte(&m, 3 * page + 1),
            0,
            "{mode:?}: past the new end: zero, not a crash"
        );
        assert!(m.is_stale(), "{mode:?}");
        assert_eq!(
            read_byte(&m, 2 * page),
            0,
            "{mode:?}: later and earlier pages past the end too"
        );
        assert_eq!(
            read_byte(&m, page + 5),
            data[page + 5],
            "{mode:?}: the page holding the new end keeps its bytes"
        );
        assert_eq!(read_byte(&m, 7), data[7]);
        // SAFETY: inside the window; the page is now private anonymous memory.
        unsafe { m.as_mut_ptr().add(3 * page).write_volatile(1) };
        drop(m);
    }
    assert!(sigbus::is_installed());
}

#[test]
fn a_mapping_that_never_faulted_is_not_stale_after_release() {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 2 * page_size(), 22);
    let mut m = map(&open_read(&path), Mode::Read, 2 * page_size());
    open_rw(&path).set_len(0).unwrap();
    m.release();
    assert!(!m.is_stale(), "no access, no fault");
}

#[test]
fn the_stale_flag_survives_release() {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 2 * page_size(), 23);
    let mut m = map(&open_read(&path), Mode::Read, 2 * page_size());
    open_rw(&path).set_len(0).unwrap();
    assert_eq!(read_byte(&m, 0), 0);
    m.release();
    assert!(m.is_stale());
}

/// Runs this test binary again with `scenario`, returning how the child ended.
fn child(scenario: &str) -> ExitStatus {
    child_output(scenario).status
}

fn child_output(scenario: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--test-threads=1", "--nocapture"])
        .env(SCENARIO, scenario)
        .output()
        .unwrap()
}

/// Truncation faults on several threads while others map, unmap and read: every thread's slot
/// reads race other threads' registering and unregistering (see the seqlock in sys::sigbus). Bounded
/// by iteration counts. Panics (in the child) on any wrong byte; a handler that pasted zero pages over
/// a range it does not own would show in the canary, or kill the child.
fn stress() {
    const WORKERS: usize = 3;
    const ROUNDS: usize = 300;
    const CHURN: usize = 3000;
    let dir = disk_dir();
    let page = page_size();
    let (canary_path, canary_data) = make_file(dir.path(), "canary", 16 * page, 31);
    let canary = map(&open_read(&canary_path), Mode::Read, 16 * page);
    let done = AtomicUsize::new(0);
    let faults = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (canary_rounds, churned) = thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut rounds = 0usize;
            while !stop.load(Ordering::Relaxed) {
                for at in (0..16 * page).step_by(61) {
                    assert_eq!(read_byte(&canary, at), canary_data[at], "canary byte {at}");
                }
                rounds += 1;
            }
            rounds
        });
        // Mappings made and dropped without a touch: slots freed and taken again all the time.
        let churn = s.spawn(|| {
            let (path, _) = make_file(dir.path(), "churn", 4 * page, 32);
            let file = open_read(&path);
            let mut n = 0;
            while n < CHURN || done.load(Ordering::Relaxed) < WORKERS {
                let held: Vec<Mmap> = (0..8)
                    .map(|i| map(&file, Mode::Read, (1 + i % 4) * page))
                    .collect();
                drop(held);
                n += 1;
            }
            n
        });
        for w in 0..WORKERS {
            let (dir, done, faults) = (dir.path(), &done, &faults);
            s.spawn(move || {
                for round in 0..ROUNDS {
                    truncate_and_read(dir, w, round, faults);
                }
                done.fetch_add(1, Ordering::Relaxed);
            });
        }
        let churned = churn.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        (reader.join().unwrap(), churned)
    });
    assert!(!canary.is_stale(), "the canary never faulted");
    println!(
        "stress ok: {} truncation faults absorbed, {canary_rounds} canary scans, {churned} churn rounds",
        faults.load(Ordering::Relaxed)
    );
}

/// One file, mapped, truncated to a random length and read page by page: bytes before the new end
/// intact, zeros after, stale iff a page past it was touched.
fn truncate_and_read(dir: &Path, worker: usize, round: usize, faults: &AtomicUsize) {
    let page = page_size();
    let seed = (worker * 1000 + round) as u64;
    let pages = 1 + round % 8;
    let (path, data) = make_file(dir, &format!("w{worker}-{round}"), pages * page, seed);
    let file = open_rw(&path);
    let mode = [Mode::Read, Mode::Write, Mode::CopyOnWrite][round % 3];
    let m = map(&file, mode, pages * page);
    let keep = (round * 7919 + worker * 131) % (pages * page);
    file.set_len(keep as u64).unwrap();
    for p in 0..pages {
        for at in [p * page, p * page + page - 1] {
            let want = if at < keep { data[at] } else { 0 };
            assert_eq!(
                read_byte(&m, at),
                want,
                "{mode:?} byte {at} of {} (kept {keep})",
                pages * page
            );
        }
    }
    let touched_past = keep.div_ceil(page) < pages;
    assert_eq!(
        m.is_stale(),
        touched_past,
        "{mode:?} kept {keep} of {pages} pages"
    );
    if touched_past {
        faults.fetch_add(1, Ordering::Relaxed);
    }
    drop(m);
    std::fs::remove_file(&path).unwrap();
}

/// Maps `len` bytes of a file with plain libc (not registered with the guard), truncates the file and
/// reads past the new end.
fn fault_outside_the_guard() {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 2 * page_size(), 24);
    let file = open_rw(&path);
    // SAFETY: a fresh shared read mapping at a kernel-chosen address.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            2 * page_size(),
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(ptr, libc::MAP_FAILED);
    file.set_len(0).unwrap();
    // SAFETY: inside the mapping; this is the fault the scenario is about.
    let byte = unsafe { ptr.cast::<u8>().add(page_size()).read_volatile() };
    println!("survived with {byte}");
}

/// A guarded mapping, so the guard is installed and holds one live range.
fn guarded() -> (TempDir, Mmap) {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "g", page_size(), 25);
    let m = map(&open_read(&path), Mode::Read, page_size());
    (dir, m)
}

extern "C" fn previous_handler(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(42) };
}

fn install(disposition: libc::sighandler_t) {
    // SAFETY: a zeroed sigaction with the handler set is a valid one-argument disposition.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = disposition;
    // SAFETY: `action` is valid; replacing SIGBUS's disposition in a child that exists for this.
    let ret = unsafe { libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) };
    assert_eq!(ret, 0);
}

/// Not a test by itself: the body of the child processes started by the tests below.
#[test]
fn child_entry() {
    let Ok(scenario) = std::env::var(SCENARIO) else {
        return;
    };
    match scenario.as_str() {
        "stress" => stress(),
        "fault-outside" => {
            let _guard = guarded();
            fault_outside_the_guard();
        }
        "raise" | "raise-unguarded" | "default-raise" => {
            if scenario == "default-raise" {
                // Rust's runtime installs a SIGBUS handler of its own (stack overflow detection);
                // this scenario starts from the plain default action instead, as Node does.
                install(libc::SIG_DFL);
            }
            let _guard = (scenario != "raise-unguarded").then(guarded);
            // SAFETY: raising a signal at ourselves.
            unsafe { libc::raise(libc::SIGBUS) };
            println!("survived");
        }
        "previous-handler-fault" | "previous-handler-raise" | "previous-handler-inside" => {
            install(previous_handler as extern "C" fn(libc::c_int) as libc::sighandler_t);
            let (dir, m) = guarded();
            match scenario.as_str() {
                "previous-handler-fault" => fault_outside_the_guard(),
                // SAFETY: raising a signal at ourselves.
                "previous-handler-raise" => unsafe {
                    libc::raise(libc::SIGBUS);
                },
                _ => {
                    open_rw(&dir.path().join("g")).set_len(0).unwrap();
                    assert_eq!(read_byte(&m, 0), 0);
                    assert!(m.is_stale());
                }
            }
        }
        "ignored-raise" | "ignored-fault" => {
            install(libc::SIG_IGN);
            let _guard = guarded();
            if scenario == "ignored-raise" {
                // SAFETY: raising a signal at ourselves.
                unsafe { libc::raise(libc::SIGBUS) };
            } else {
                fault_outside_the_guard();
            }
        }
        other => panic!("unknown scenario {other}"),
    }
    std::process::exit(0);
}

#[test]
fn a_fault_outside_our_mappings_still_kills_with_sigbus() {
    assert_eq!(child("fault-outside").signal(), Some(libc::SIGBUS));
}

#[test]
fn a_sigbus_sent_by_a_process_behaves_as_without_the_guard() {
    assert_eq!(child("default-raise").signal(), Some(libc::SIGBUS));
    // Under Rust's own handler a raised SIGBUS is survived once (it restores the default and returns);
    // with the guard in front of it, the same.
    let unguarded = child("raise-unguarded");
    assert_eq!(child("raise"), unguarded);
}

#[test]
fn the_previous_handler_receives_every_other_sigbus() {
    assert_eq!(child("previous-handler-fault").code(), Some(42));
    assert_eq!(child("previous-handler-raise").code(), Some(42));
    assert_eq!(
        child("previous-handler-inside").code(),
        Some(0),
        "faults inside our mappings never reach it"
    );
}

#[test]
fn an_ignored_sigbus_stays_ignored_but_a_fault_still_kills() {
    assert_eq!(child("ignored-raise").code(), Some(0));
    assert_eq!(child("ignored-fault").signal(), Some(libc::SIGBUS));
}

#[test]
fn truncation_faults_on_many_threads_while_others_map_and_unmap_are_all_absorbed() {
    let out = child_output("stress");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("stress ok"), "{stdout}");
}
