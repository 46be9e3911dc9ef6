//! sys::file: descriptor plumbing used by every operation.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::os::fd::{AsFd, AsRawFd};

use common::*;
use nix::fcntl::{FcntlArg, FdFlag, OFlag};
use nix::sys::stat::Mode;
use zerocopy_io::sys::file;
use zerocopy_io::Errno;

#[test]
fn duplicates_are_private_and_close_on_exec() {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 10, 1);
    let original = open_read(&path);
    let dup = file::dup_cloexec(original.as_fd()).unwrap();
    assert!(dup.as_raw_fd() >= 3);
    assert_ne!(dup.as_raw_fd(), original.as_raw_fd());
    let flags =
        FdFlag::from_bits_truncate(nix::fcntl::fcntl(dup.as_fd(), FcntlArg::F_GETFD).unwrap());
    assert!(flags.contains(FdFlag::FD_CLOEXEC));
    drop(original);
    let mut buf = [0u8; 10];
    assert_eq!(
        file::read_at(&dup, &mut buf, Some(0)).unwrap(),
        10,
        "the duplicate outlives the original"
    );
}

#[test]
fn raw_numbers_that_are_not_open_give_ebadf() {
    for fd in [-1, 1 << 30] {
        let err = file::dup_raw(fd).unwrap_err();
        assert_eq!((err.errno(), err.syscall()), (Errno::EBADF, "dup"));
    }
}

#[test]
fn open_reports_the_path_and_sets_cloexec() {
    let dir = disk_dir();
    let missing = dir.path().join("missing");
    let err = file::open(&missing, OFlag::O_RDONLY, Mode::empty()).unwrap_err();
    assert_eq!(err.errno(), Errno::ENOENT);
    assert_eq!(err.path(), Some(missing.as_path()));
    let (path, _) = make_file(dir.path(), "f", 1, 2);
    let fd = file::open(&path, OFlag::O_RDONLY, Mode::empty()).unwrap();
    let flags =
        FdFlag::from_bits_truncate(nix::fcntl::fcntl(fd.as_fd(), FcntlArg::F_GETFD).unwrap());
    assert!(flags.contains(FdFlag::FD_CLOEXEC));
}

#[test]
fn reads_and_writes_at_offsets_or_positions() {
    let dir = disk_dir();
    let path = dir.path().join("rw");
    let mut f = open_rw(&path);
    file::write_all_at(&f, b"hello", Some(10)).unwrap();
    assert_eq!(position(&mut f), 0, "pwrite leaves the position");
    file::write_all_at(&f, b"abc", None).unwrap();
    assert_eq!(position(&mut f), 3, "write advances it");
    let mut buf = [0u8; 5];
    assert_eq!(file::read_at(&f, &mut buf, Some(10)).unwrap(), 5);
    assert_eq!(&buf, b"hello");
    assert_eq!(
        file::read_at(&f, &mut buf, Some(100)).unwrap(),
        0,
        "0 past the end"
    );
    let st = file::fstat(&f).unwrap();
    assert_eq!(st.st_size, 15);
    assert!(file::status_flags(&f).unwrap().contains(OFlag::O_RDWR));
}

#[test]
fn a_short_write_reports_how_much_reached_the_file() {
    // A pipe whose reader is gone: the write fails with EPIPE having written nothing.
    // Ignore SIGPIPE so the failure is an error, as it is under Node (which ignores SIGPIPE).
    // SAFETY: installing SIG_IGN for SIGPIPE has no memory-safety implications.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    let (err, written) = file::write_all_at(&w, &[1u8; 100], None).unwrap_err();
    assert_eq!(err.errno(), Errno::EPIPE);
    assert_eq!(written, 0);
}

#[test]
fn open_beneath_never_leaves_the_root() {
    use std::os::unix::fs::symlink;
    let dir = disk_dir();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/inside.txt"), b"inside").unwrap();
    std::fs::write(dir.path().join("secret.txt"), b"secret").unwrap();
    symlink("../sub/inside.txt", root.join("sub/link-in")).unwrap();
    symlink(dir.path().join("secret.txt"), root.join("link-out-abs")).unwrap();
    symlink("../secret.txt", root.join("link-out-rel")).unwrap();

    let read_all = |fd: std::os::fd::OwnedFd| {
        let mut buf = [0u8; 64];
        let n = file::read_at(&fd, &mut buf, Some(0)).unwrap();
        buf[..n].to_vec()
    };
    let rel = std::path::Path::new;
    assert_eq!(
        read_all(file::open_beneath(&root, rel("sub/inside.txt")).unwrap()),
        b"inside"
    );
    assert_eq!(
        read_all(file::open_beneath(&root, rel("sub/link-in")).unwrap()),
        b"inside",
        "symlinks inside are followed"
    );
    assert_eq!(
        read_all(file::open_beneath(&root, rel("sub/../sub/inside.txt")).unwrap()),
        b"inside"
    );
    for escape in [
        "../secret.txt",
        "sub/../../secret.txt",
        "/etc/passwd",
        "link-out-abs",
        "link-out-rel",
        "/proc/self/root/etc/passwd",
    ] {
        let err = file::open_beneath(&root, rel(escape)).unwrap_err();
        assert_eq!(err.errno(), Errno::EXDEV, "{escape}: {err}");
        assert_eq!(err.path(), Some(rel(escape)));
    }
    let err = file::open_beneath(&root, rel("sub/missing")).unwrap_err();
    assert_eq!(err.errno(), Errno::ENOENT);
    let err = file::open_beneath(&dir.path().join("no-root"), rel("x")).unwrap_err();
    assert_eq!(err.errno(), Errno::ENOENT);
}

#[test]
fn cached_pages_follows_the_page_cache() {
    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 40_000, 3);
    let f = open_read(&path);
    let Some(cached) = file::cached_pages(&f, 0, 40_000).unwrap() else {
        eprintln!("cachestat(2) is not available on this kernel: nothing to check");
        return;
    };
    assert_eq!(
        cached, 10,
        "a file just written is cached: 40,000 bytes span 10 pages"
    );
    assert_eq!(file::cached_pages(&f, 4096, 4096).unwrap(), Some(1));
    f.sync_all().unwrap();
    posix_fadvise(f.as_fd(), 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
    assert_eq!(
        file::cached_pages(&f, 0, 40_000).unwrap(),
        Some(0),
        "dropped after fsync + DONTNEED"
    );
    let mut buf = [0u8; 10];
    file::read_at(&f, &mut buf, Some(8192)).unwrap();
    assert!(
        file::cached_pages(&f, 8192, 1).unwrap() >= Some(1),
        "a read brings its page back"
    );
}
