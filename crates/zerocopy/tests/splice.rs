//! splice, tee, vmsplice and pipes (src/sys/splice.rs) on real sockets: Unix socket pairs and TCP on
//! loopback. The relay engine built on them is tested in tests/relay.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::io::{IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use common::*;
use zerocopy_io::sys::file;
use zerocopy_io::sys::splice::{self, Pipe, SpliceFlags};
use zerocopy_io::Errno;

const NONBLOCK: SpliceFlags = SpliceFlags::SPLICE_F_NONBLOCK;

/// The tests of this file run one at a time: one of them fills the user's pipe quota, which the
/// others need.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn splice_moves_socket_bytes_through_a_pipe_and_tee_duplicates_them() {
    let _serial = serial();
    let (mut a, a_peer) = UnixStream::pair().unwrap();
    let (b, mut b_peer) = UnixStream::pair().unwrap();
    let data = pattern(100_000, 1);
    a.write_all(&data).unwrap();
    let pipe = Pipe::new(1 << 20).unwrap();
    let copy = Pipe::new(1 << 20).unwrap();
    let mut moved = 0;
    while moved < data.len() {
        moved += splice::splice(&a_peer, None, pipe.writer(), None, 1 << 20, NONBLOCK).unwrap();
    }
    assert_eq!(pipe.queued().unwrap(), data.len());
    // tee leaves the source pipe as it was.
    assert_eq!(
        splice::tee(pipe.reader(), copy.writer(), usize::MAX, NONBLOCK).unwrap(),
        data.len()
    );
    assert_eq!(pipe.queued().unwrap(), data.len());
    assert_eq!(copy.queued().unwrap(), data.len());
    let mut out = 0;
    while out < data.len() {
        out += splice::splice(
            pipe.reader(),
            None,
            &b,
            None,
            data.len(),
            SpliceFlags::empty(),
        )
        .unwrap();
    }
    let mut got = vec![0; data.len()];
    b_peer.read_exact(&mut got).unwrap();
    assert_eq!(got, data);
    let mut teed = vec![0; data.len()];
    let mut r = std::fs::File::from(dup(copy.reader()));
    r.read_exact(&mut teed).unwrap();
    assert_eq!(teed, data);
    // An empty non-blocking pipe answers EAGAIN; with offsets a file end reads where it is told.
    let err = splice::splice(pipe.reader(), None, &b, None, 10, NONBLOCK).unwrap_err();
    assert_eq!(err.errno(), Errno::EAGAIN);
    let dir = disk_dir();
    let (path, bytes) = make_file(dir.path(), "f", 5000, 2);
    let f = open_read(&path);
    let mut off = 1000i64;
    let n = splice::splice(&f, Some(&mut off), pipe.writer(), None, 3000, NONBLOCK).unwrap();
    assert_eq!((n, off), (3000, 4000));
    let mut back = vec![0; 3000];
    std::fs::File::from(dup(pipe.reader()))
        .read_exact(&mut back)
        .unwrap();
    assert_eq!(back, bytes[1000..4000]);
}

#[test]
fn vmsplice_copy_is_immune_to_later_changes_of_the_buffer_and_raw_vmsplice_is_not() {
    let _serial = serial();
    let (b, mut b_peer) = UnixStream::pair().unwrap();
    let original = pattern(3 * 4096 + 5, 3);
    // The safe form: change the buffer while the bytes sit in the pipe, and again after they have
    // moved on into a socket the peer has not read yet.
    let mut buf = original.clone();
    let pipe = Pipe::new(1 << 20).unwrap();
    assert_eq!(
        splice::vmsplice_copy(pipe.writer(), &buf, NONBLOCK).unwrap(),
        buf.len()
    );
    buf.iter_mut().for_each(|x| *x = 0xAA);
    assert_eq!(
        splice::splice(pipe.reader(), None, &b, None, buf.len(), NONBLOCK).unwrap(),
        buf.len()
    );
    buf.iter_mut().for_each(|x| *x = 0xBB);
    let mut got = vec![0; original.len()];
    b_peer.read_exact(&mut got).unwrap();
    assert_eq!(got, original);

    // Why the copy: the raw call hands the pipe references to the buffer's own pages, and a change
    // made after the bytes left the pipe still reaches the peer.
    let mut raw = original.clone();
    // SAFETY: deliberately broken below, to show the hazard; the bytes are only compared.
    let n = unsafe { splice::vmsplice(pipe.writer(), &[IoSlice::new(&raw)], NONBLOCK) }.unwrap();
    assert_eq!(n, raw.len());
    splice::splice(pipe.reader(), None, &b, None, n, NONBLOCK).unwrap();
    raw[0] ^= 0xFF;
    b_peer.read_exact(&mut got).unwrap();
    assert_eq!(got[0], original[0] ^ 0xFF, "the peer read the later change");

    // A pipe takes at most its capacity per call; the copy is cut to fit.
    let small = Pipe::new(4096).unwrap();
    let big = pattern(small.size() * 3, 4);
    assert_eq!(
        splice::vmsplice_copy(small.writer(), &big, NONBLOCK).unwrap(),
        small.size()
    );
    let err = splice::vmsplice_copy(small.writer(), &big, NONBLOCK).unwrap_err();
    assert_eq!(err.errno(), Errno::EAGAIN);
    // A non-blocking pipe answers EAGAIN without the flag too (the kernel alone would wait).
    let empty = SpliceFlags::empty();
    assert_eq!(
        splice::vmsplice_copy(small.writer(), &big, empty)
            .unwrap_err()
            .errno(),
        Errno::EAGAIN
    );
    assert_eq!(
        splice::vmsplice_copy(small.writer(), &[], NONBLOCK).unwrap(),
        0
    );
}

#[test]
fn bad_input_gets_a_precise_error() {
    let _serial = serial();
    let (a, b) = UnixStream::pair().unwrap();
    let pipe = Pipe::new(65536).unwrap();
    // Neither end a pipe.
    let err = splice::splice(&a, None, &b, None, 10, NONBLOCK).unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
    assert!(
        err.to_string().contains("splice needs a pipe at one end"),
        "{err}"
    );
    assert!(err.to_string().contains("is a socket"), "{err}");
    // tee with a socket.
    let err = splice::tee(pipe.reader(), &a, 10, NONBLOCK).unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
    assert!(
        err.to_string()
            .contains("tee needs a pipe at both ends: the output is a socket"),
        "{err}"
    );
    // A pipe into itself.
    let err = splice::tee(pipe.reader(), pipe.writer(), 10, NONBLOCK).unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
    assert!(err.to_string().contains("same pipe"), "{err}");
    // An offset for a pipe.
    let mut off = 0;
    let err = splice::splice(pipe.reader(), Some(&mut off), &a, None, 10, NONBLOCK).unwrap_err();
    assert_eq!(err.errno(), Errno::ESPIPE);
    // vmsplice: not a pipe, and the read end.
    let err = splice::vmsplice_copy(&a, b"x", NONBLOCK).unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
    assert!(
        err.to_string().contains("vmsplice writes into a pipe"),
        "{err}"
    );
    let err = splice::vmsplice_copy(pipe.reader(), b"x", NONBLOCK).unwrap_err();
    assert_eq!(err.errno(), Errno::EBADF);
    assert!(err.to_string().contains("read end"), "{err}");
    // Closed fds.
    let closed = dup(&a);
    let raw = closed.as_raw_fd();
    drop(closed);
    // SAFETY: the number is closed; the kernel answers EBADF without touching anything.
    let gone = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    assert_eq!(
        splice::splice(gone, None, pipe.writer(), None, 1, NONBLOCK)
            .unwrap_err()
            .errno(),
        Errno::EBADF
    );
    assert_eq!(
        splice::tee(gone, pipe.writer(), 1, NONBLOCK)
            .unwrap_err()
            .errno(),
        Errno::EBADF
    );
    assert_eq!(
        splice::vmsplice_copy(gone, b"x", NONBLOCK)
            .unwrap_err()
            .errno(),
        Errno::EBADF
    );
    assert_eq!(splice::pipe_size(&a).unwrap_err().errno(), Errno::EINVAL);
}

#[test]
fn pipes_are_sized_up_to_pipe_max_size() {
    let _serial = serial();
    let max = splice::pipe_max_size();
    let pipe = Pipe::new(1 << 20).unwrap();
    assert_eq!(pipe.size(), (1 << 20).min(max));
    assert_eq!(splice::pipe_size(pipe.reader()).unwrap(), pipe.size());
    let mut pipe = Pipe::new(usize::MAX).unwrap();
    assert_eq!(pipe.size(), max, "capped at pipe-max-size");
    assert_eq!(pipe.resize(4096).unwrap(), 4096);
    assert!(file::status_flags(pipe.reader())
        .unwrap()
        .contains(nix::fcntl::OFlag::O_NONBLOCK));
    // A pipe holding more than the new size cannot shrink.
    let data = pattern(8192, 5);
    let mut pipe = Pipe::new(65536).unwrap();
    std::fs::File::from(dup(pipe.writer()))
        .write_all(&data)
        .unwrap();
    assert_eq!(pipe.resize(4096).unwrap_err().errno(), Errno::EBUSY);
}

/// Unprivileged users over `pipe-user-pages-soft` get EPERM from F_SETPIPE_SZ: the pipe keeps a
/// smaller size instead of failing. Runs itself as `nobody` in a child process when run as root.
#[test]
fn over_the_users_pipe_quota_pipes_shrink_instead_of_failing() {
    let _serial = serial();
    if std::env::var_os("ZEROCOPY_PIPE_QUOTA_CHILD").is_some() {
        let mut pipes = Vec::new();
        for _ in 0..200 {
            pipes.push(Pipe::new(1 << 20).unwrap());
        }
        let sizes: Vec<usize> = pipes.iter().map(Pipe::size).collect();
        assert_eq!(sizes[0], (1 << 20).min(splice::pipe_max_size()));
        assert!(
            sizes.iter().any(|&s| s < sizes[0]),
            "the quota was never reached: {sizes:?}"
        );
        return;
    }
    if !is_root() {
        eprintln!("skipped: needs root to run a child as nobody");
        return;
    }
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new(exe)
        .args([
            "--exact",
            "over_the_users_pipe_quota_pipes_shrink_instead_of_failing",
            "--nocapture",
        ])
        .env("ZEROCOPY_PIPE_QUOTA_CHILD", "1")
        .uid(65534)
        .gid(65534)
        .status()
        .unwrap();
    assert!(status.success(), "child as nobody: {status}");
}
