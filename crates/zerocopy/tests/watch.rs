//! sys::watch: a change to a watched file or directory has raised the watcher's flag by the time the
//! writer's system call returns, or, for a writer on another thread, by the time the watcher's
//! thread returns from the system call through which it hears about the write.
//!
//! The test harness runs tests on parallel threads; each creates its own watcher, as each JS thread
//! would. The SIGIO case marks every watcher in the process, so it runs in a child process (this test
//! binary started again with the test named, see `in_child`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::process::Command;
use std::sync::mpsc;
use std::thread;

use common::*;
use zerocopy_io::sys::watch::{self, Event, Watcher};
use zerocopy_io::sys::watch::{
    IN_ATTRIB, IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_IGNORED, IN_MODIFY, IN_MOVED_FROM,
    IN_MOVED_TO, IN_Q_OVERFLOW,
};

fn has(events: &[Event], wd: i32, mask: u32, name: &str) -> bool {
    events
        .iter()
        .any(|e| e.wd == wd && e.mask & mask != 0 && e.name == name)
}

#[test]
fn a_write_on_the_same_thread_has_raised_the_flag_when_it_returns() {
    let dir = disk_dir();
    let path = dir.path().join("f");
    fs::write(&path, b"one").unwrap();
    let w = Watcher::new().unwrap();
    let wd = w.add(&path, false).unwrap();
    assert!(wd >= 0);
    assert!(!w.pending());
    assert_eq!(w.events().unwrap(), vec![]);

    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"two").unwrap();
    assert!(w.pending(), "flag raised inside the write");
    assert!(w.pending(), "reading the flag does not clear it");
    let events = w.events().unwrap();
    assert!(has(&events, wd, IN_MODIFY, ""), "{events:?}");
    assert!(!w.pending(), "events() clears the flag");
    assert_eq!(w.events().unwrap(), vec![], "and drains the queue");
}

#[test]
fn a_write_on_another_thread_has_raised_the_flag_when_the_message_after_it_arrives() {
    let dir = disk_dir();
    let path = dir.path().join("f");
    fs::write(&path, b"").unwrap();
    let w = Watcher::new().unwrap();
    let wd = w.add(&path, false).unwrap();
    let (go_tx, go_rx) = mpsc::channel::<bool>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let writer = {
        let path = path.clone();
        thread::spawn(move || {
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            while go_rx.recv().unwrap() {
                f.write_all(b"x").unwrap();
                done_tx.send(()).unwrap();
            }
        })
    };
    for round in 0..200 {
        assert!(!w.pending(), "round {round}: nothing written yet");
        go_tx.send(true).unwrap();
        done_rx.recv().unwrap();
        assert!(
            w.pending(),
            "round {round}: flag raised before recv returned"
        );
        let events = w.events().unwrap();
        assert!(has(&events, wd, IN_MODIFY, ""), "round {round}: {events:?}");
    }
    go_tx.send(false).unwrap();
    writer.join().unwrap();
}

#[test]
fn truncate_rename_over_and_unlink_of_a_watched_file_are_seen() {
    let dir = disk_dir();
    let w = Watcher::new().unwrap();

    let path = dir.path().join("t");
    fs::write(&path, b"contents").unwrap();
    let wd = w.add(&path, false).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(2)
        .unwrap();
    assert!(w.pending());
    assert!(has(&w.events().unwrap(), wd, IN_MODIFY, ""));

    let other = dir.path().join("other");
    fs::write(&other, b"new").unwrap();
    assert!(!w.pending(), "a file not watched raises nothing");
    fs::rename(&other, &path).unwrap();
    assert!(w.pending(), "rename over the watched file");
    let events = w.events().unwrap();
    assert!(
        has(&events, wd, IN_ATTRIB | IN_DELETE_SELF, ""),
        "{events:?}"
    );
    // The old inode is gone: its watch too.
    assert!(has(&events, wd, IN_IGNORED, "") || has(&events, wd, IN_DELETE_SELF, ""));

    let wd = w.add(&path, false).unwrap();
    fs::remove_file(&path).unwrap();
    assert!(w.pending(), "unlink");
    let events = w.events().unwrap();
    assert!(has(&events, wd, IN_DELETE_SELF, ""), "{events:?}");
    w.remove(wd).unwrap(); // already gone: EINVAL is not an error
}

#[test]
fn create_rename_and_delete_inside_a_watched_directory_name_the_entry() {
    let dir = disk_dir();
    let w = Watcher::new().unwrap();
    let wd = w.add(dir.path(), true).unwrap();
    fs::write(dir.path().join("a"), b"1").unwrap();
    assert!(w.pending(), "create");
    assert!(has(&w.events().unwrap(), wd, IN_CREATE, "a"));

    fs::rename(dir.path().join("a"), dir.path().join("b")).unwrap();
    assert!(w.pending(), "rename");
    let events = w.events().unwrap();
    let from = events
        .iter()
        .find(|e| e.mask & IN_MOVED_FROM != 0 && e.name == "a");
    let to = events
        .iter()
        .find(|e| e.mask & IN_MOVED_TO != 0 && e.name == "b");
    let (from, to) = (from.expect("MOVED_FROM a"), to.expect("MOVED_TO b"));
    assert_eq!((from.wd, to.wd), (wd, wd));
    assert_eq!(from.cookie, to.cookie);

    fs::remove_file(dir.path().join("b")).unwrap();
    assert!(w.pending(), "delete");
    assert!(has(&w.events().unwrap(), wd, IN_DELETE, "b"));

    w.remove(wd).unwrap();
    let events = w.events().unwrap();
    assert!(has(&events, wd, IN_IGNORED, ""), "{events:?}");
    fs::write(dir.path().join("c"), b"1").unwrap();
    assert!(!w.pending(), "nothing after the watch is removed");
}

#[test]
fn bad_paths_fail_with_their_errno() {
    let dir = disk_dir();
    let w = Watcher::new().unwrap();
    let err = w.add(&dir.path().join("missing"), false).unwrap_err();
    assert_eq!(err.errno(), watch_errno(libc::ENOENT));
    fs::write(dir.path().join("f"), b"").unwrap();
    let err = w.add(&dir.path().join("f"), true).unwrap_err();
    assert_eq!(err.errno(), watch_errno(libc::ENOTDIR));
    // A symlink is not followed: the watch is on the link itself.
    std::os::unix::fs::symlink(dir.path().join("f"), dir.path().join("l")).unwrap();
    let wd = w.add(&dir.path().join("l"), false).unwrap();
    fs::write(dir.path().join("f"), b"changed").unwrap();
    assert!(!w.pending(), "writes to the target are not the link's");
    w.remove(wd).unwrap();
}

fn watch_errno(e: i32) -> zerocopy_io::Errno {
    zerocopy_io::Errno::from_raw(e)
}

#[test]
fn a_thread_that_blocks_the_signal_gets_no_watcher() {
    let sig = watch::install().unwrap();
    assert_eq!(watch::signal(), Some(sig));
    assert!(sig >= libc::SIGRTMIN() && sig < libc::SIGRTMAX());
    for blocked in [sig, libc::SIGIO] {
        let result = thread::spawn(move || {
            // SAFETY: test code; valid sigset on this thread only.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, blocked);
                assert_eq!(
                    libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
                    0
                );
            }
            Watcher::new().map(|_| ()).map_err(|e| e.errno())
        })
        .join()
        .unwrap();
        assert_eq!(result, Err(zerocopy_io::Errno::EINVAL), "blocked {blocked}");
    }
    // Unblocked threads still get one, and each thread its own.
    let a = Watcher::new().unwrap();
    thread::spawn(|| assert!(Watcher::new().is_ok()))
        .join()
        .unwrap();
    assert!(!a.pending());
}

#[test]
fn a_thread_gets_many_watchers_up_to_the_table_size() {
    // Alone in a child: filling the table would make other tests' watchers fail.
    if !in_child("a_thread_gets_many_watchers_up_to_the_table_size") {
        return;
    }
    let mut all = Vec::new();
    let err = loop {
        match Watcher::new() {
            Ok(w) => all.push(w),
            Err(e) => break e,
        }
        assert!(all.len() <= watch::MAX_WATCHERS);
    };
    assert_eq!(err.errno(), zerocopy_io::Errno::EMFILE);
    assert_eq!(all.len(), watch::MAX_WATCHERS);
    drop(all);
    assert!(Watcher::new().is_ok(), "slots are freed on drop");
}

/// Runs `name` alone in a child process; returns true when already in it.
fn in_child(name: &str) -> bool {
    const VAR: &str = "ZEROCOPY_WATCH_CHILD";
    if std::env::var_os(VAR).is_some() {
        return true;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(VAR, "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "child: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{out:?}"
    );
    false
}

#[test]
fn sigio_marks_every_watcher_pending_and_does_not_kill() {
    if !in_child("sigio_marks_every_watcher_pending_and_does_not_kill") {
        return;
    }
    let a = Watcher::new().unwrap();
    let b = Watcher::new().unwrap();
    assert!(!a.pending() && !b.pending());
    // SAFETY: test code; a signal to our own thread.
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::syscall(libc::SYS_gettid),
            libc::SIGIO,
        )
    };
    assert!(a.pending() && b.pending());
    assert_eq!(a.events().unwrap(), vec![]);
    assert!(!a.pending() && b.pending());
}

#[test]
fn a_full_queue_reports_overflow_with_wd_minus_one() {
    let max: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(usize::MAX);
    if max > 20_000 {
        eprintln!("skipped: max_queued_events is {max}");
        return;
    }
    let dir = disk_dir();
    let w = Watcher::new().unwrap();
    let wd = w.add(dir.path(), true).unwrap();
    for i in 0..max + 10 {
        fs::File::create(dir.path().join(i.to_string())).unwrap();
    }
    assert!(w.pending());
    let events = w.events().unwrap();
    assert!(events
        .iter()
        .any(|e| e.wd == -1 && e.mask & IN_Q_OVERFLOW != 0));
    assert!(has(&events, wd, IN_CREATE, "0"));
    assert!(!w.pending());
}
