//! The send engine (src/send.rs) on real sockets: Unix socket pairs and TCP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::*;
use zerocopy_io::copy::Source;
use zerocopy_io::ready::{Cancel, CancelReason};
use zerocopy_io::send::{Attempt, SendFile, SendMechanism};
use zerocopy_io::sys::{file, socket};
use zerocopy_io::Errno;

/// A reader thread that collects everything until EOF.
fn collect(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        stream.read_to_end(&mut out).unwrap();
        out
    })
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (server, client)
}

#[test]
fn sends_whole_files_and_windows_over_a_unix_socket() {
    let dir = disk_dir();
    let rt = runtime();
    for size in [1usize, 4095, 65_535, (1 << 20) + 1, 5 << 20] {
        let (path, data) = make_file(dir.path(), "f", size, size as u64);
        for (offset, length) in [
            (None, None),
            (Some(1), None),
            (Some(size as u64 / 2), Some(100)),
            (None, Some(size as u64 + 7)),
        ] {
            let (ours, theirs) = UnixStream::pair().unwrap();
            theirs.set_nonblocking(false).unwrap();
            let reader = collect(theirs);
            let sent = rt.block_on(async {
                let mut send =
                    SendFile::open(dup(&ours), Source::path(&path), offset, length).unwrap();
                assert_eq!(send.mechanism(), SendMechanism::Sendfile);
                while !send.step(u64::MAX, &Cancel::new()).await.unwrap() {}
                send.bytes()
            });
            drop(ours);
            let got = reader.join().unwrap();
            let start = offset.unwrap_or(0) as usize;
            let end = length.map_or(size, |l| (start + l as usize).min(size));
            assert_eq!(
                sent as usize,
                end - start,
                "size {size} offset {offset:?} length {length:?}"
            );
            assert_eq!(
                got,
                data[start..end],
                "size {size} offset {offset:?} length {length:?}"
            );
        }
    }
}

#[test]
fn waits_for_a_slow_tcp_reader_and_moves_in_bounded_steps() {
    let dir = disk_dir();
    let (path, data) = make_file(dir.path(), "f", 24 << 20, 3);
    let (server, client) = tcp_pair();
    let reader = std::thread::spawn(move || {
        let mut client = client;
        std::thread::sleep(Duration::from_millis(200)); // let the sender fill the socket and wait
        let mut out = Vec::new();
        client.read_to_end(&mut out).unwrap();
        out
    });
    let rt = runtime();
    let steps = rt.block_on(async {
        let mut send = SendFile::open(dup(&server), Source::path(&path), None, None).unwrap();
        let mut steps = 0;
        while !send.step(1 << 20, &Cancel::new()).await.unwrap() {
            steps += 1;
        }
        assert_eq!(send.bytes(), 24 << 20);
        steps
    });
    drop(server);
    assert!(steps >= 20, "{steps} steps of at most 1 MiB");
    assert_eq!(reader.join().unwrap(), data);
}

#[test]
fn a_paced_step_reports_a_slow_reader_in_time_and_sleeps_through_silence() {
    let dir = disk_dir();
    let (path, data) = make_file(dir.path(), "f", 4 << 20, 5);
    let (ours, theirs) = UnixStream::pair().unwrap();
    // Reads 64 KiB every 20 ms (about 3 MiB/s): the send takes more than a second, and no 8 MiB
    // budget would end a step before it is done.
    let reader = std::thread::spawn(move || {
        let mut theirs = theirs;
        let mut out = Vec::new();
        let mut buf = vec![0; 64 << 10];
        loop {
            std::thread::sleep(Duration::from_millis(20));
            match theirs.read(&mut buf).unwrap() {
                0 => return out,
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    });
    let rt = runtime();
    let steps = rt.block_on(async {
        let mut send = SendFile::open(dup(&ours), Source::path(&path), None, None).unwrap();
        let pace = Some(Duration::from_millis(100));
        let mut steps = 1;
        while !send
            .step_paced(u64::MAX, pace, &Cancel::new())
            .await
            .unwrap()
        {
            steps += 1;
        }
        steps
    });
    drop(ours);
    assert_eq!(reader.join().unwrap(), data);
    assert!(
        steps >= 3,
        "{steps} steps: a paced step returns while bytes move"
    );

    // A reader that never reads: once its window is full no byte moves, and a paced step never returns.
    let (ours, _theirs) = UnixStream::pair().unwrap();
    rt.block_on(async {
        let mut send = SendFile::open(dup(&ours), Source::path(&path), None, None).unwrap();
        let pace = Some(Duration::from_millis(20));
        // The first step fills the window and reports it; the next has nothing to report.
        assert!(!send
            .step_paced(u64::MAX, pace, &Cancel::new())
            .await
            .unwrap());
        let filled = send.bytes();
        assert!(filled > 0);
        let quiet = tokio::time::timeout(
            Duration::from_millis(300),
            send.step_paced(u64::MAX, pace, &Cancel::new()),
        )
        .await;
        assert!(quiet.is_err(), "a step with nothing to report sleeps on");
        assert_eq!(send.bytes(), filled);
    });
}

#[test]
fn cancel_wakes_a_send_waiting_on_a_reader_that_never_reads() {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 64 << 20, 4);
    let (server, _client) = tcp_pair();
    let rt = runtime();
    rt.block_on(async {
        let cancel = Cancel::new();
        let mut send = SendFile::open(dup(&server), Source::path(&path), None, None).unwrap();
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            canceller.cancel(CancelReason::Aborted);
        });
        let started = Instant::now();
        let err = send.step(u64::MAX, &cancel).await.unwrap_err();
        assert_eq!(err.code(), "ABORT_ERR");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            send.bytes() > 0 && send.bytes() < 64 << 20,
            "{} bytes before the reader's window filled",
            send.bytes()
        );
        assert!(send.is_finished());
    });
}

#[test]
fn a_destroyed_but_live_socket_and_a_reset_peer_are_told_apart() {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 64 << 20, 5);
    let rt = runtime();
    // Live connection, destroyed on "the JS side": ERR_STREAM_DESTROYED.
    let (server, _client) = tcp_pair();
    rt.block_on(async {
        let cancel = Cancel::new();
        cancel.cancel(CancelReason::Destroyed);
        let mut send = SendFile::open(dup(&server), Source::path(&path), None, None).unwrap();
        let err = send.step(u64::MAX, &cancel).await.unwrap_err();
        assert_eq!(err.code(), "ERR_STREAM_DESTROYED");
    });
    // The peer went away: its error, not ours.
    let (server, client) = tcp_pair();
    drop(client);
    std::thread::sleep(Duration::from_millis(50));
    rt.block_on(async {
        let cancel = Cancel::new();
        let mut send = SendFile::open(dup(&server), Source::path(&path), None, None).unwrap();
        let err = send.step(u64::MAX, &cancel).await.unwrap_err();
        assert!(
            matches!(err.errno(), Errno::EPIPE | Errno::ECONNRESET),
            "{err}"
        );
        assert_eq!(err.syscall(), "sendfile");
    });
}

#[test]
fn a_peer_that_resets_mid_transfer_ends_the_send_with_its_error() {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 64 << 20, 6);
    let (server, client) = tcp_pair();
    let reader = std::thread::spawn(move || {
        let mut client = client;
        let mut buf = vec![0; 1 << 20];
        let mut got = 0;
        while got < 4 << 20 {
            got += client.read(&mut buf).unwrap();
        }
        // SO_LINGER 0: close sends RST instead of FIN.
        socket2_linger_zero(&client);
        drop(client);
        got
    });
    let rt = runtime();
    rt.block_on(async {
        let mut send = SendFile::open(dup(&server), Source::path(&path), None, None).unwrap();
        let err = send.step(u64::MAX, &Cancel::new()).await.unwrap_err();
        assert!(
            matches!(err.errno(), Errno::EPIPE | Errno::ECONNRESET),
            "{err}"
        );
        assert!(send.bytes() >= 4 << 20 && send.bytes() < 64 << 20);
    });
    reader.join().unwrap();
}

fn socket2_linger_zero(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized, initialised linger struct.
    let ret = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0);
}

#[test]
fn a_file_truncated_mid_send_is_reported_with_the_bytes_sent() {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 32 << 20, 7);
    let (server, client) = tcp_pair();
    let truncate_path = path.clone();
    let reader = std::thread::spawn(move || {
        let mut client = client;
        let mut buf = vec![0; 1 << 20];
        let mut got = 0;
        while got < 2 << 20 {
            got += client.read(&mut buf).unwrap();
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&truncate_path)
            .unwrap()
            .set_len(3 << 20)
            .unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        got + rest.len()
    });
    let rt = runtime();
    let sent = rt.block_on(async {
        let mut send = SendFile::open(dup(&server), Source::path(&path), None, None).unwrap();
        let err = send.step(u64::MAX, &Cancel::new()).await.unwrap_err();
        assert_eq!(err.code(), "ERR_FILE_TRUNCATED");
        assert!(err.to_string().contains("truncated"), "{err}");
        assert_eq!(err.path(), Some(path.as_path()));
        send.bytes()
    });
    drop(server);
    let received = reader.join().unwrap();
    assert_eq!(received as u64, sent, "every byte counted reached the peer");
    assert!((2 << 20..32 << 20).contains(&sent));
}

#[test]
fn file_positions_and_blocking_sockets_are_left_as_documented() {
    let dir = disk_dir();
    let (path, data) = make_file(dir.path(), "f", 10_000, 8);
    let rt = runtime();
    let (ours, theirs) = UnixStream::pair().unwrap();
    assert!(!socket::is_nonblocking(&ours).unwrap());
    let reader = collect(theirs);
    let mut f = open_read(&path);
    seek(&mut f, 100);
    rt.block_on(async {
        let mut send =
            SendFile::open(dup(&ours), Source::fd(&f).unwrap(), None, Some(900)).unwrap();
        assert!(send.step(u64::MAX, &Cancel::new()).await.unwrap());
        let mut send =
            SendFile::open(dup(&ours), Source::fd(&f).unwrap(), Some(0), Some(10)).unwrap();
        assert!(send.step(u64::MAX, &Cancel::new()).await.unwrap());
    });
    assert_eq!(position(&mut f), 1000, "advanced by the first send only");
    assert!(
        !socket::is_nonblocking(&ours).unwrap(),
        "blocking mode restored"
    );
    drop(ours);
    let got = reader.join().unwrap();
    assert_eq!(got[..900], data[100..1000]);
    assert_eq!(got[900..], data[..10]);
}

#[test]
fn procfs_files_go_through_a_buffer() {
    let rt = runtime();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let reader = collect(theirs);
    let sent = rt.block_on(async {
        let mut send =
            SendFile::open(dup(&ours), Source::path("/proc/self/status"), None, None).unwrap();
        assert_eq!(send.mechanism(), SendMechanism::ReadWrite);
        assert_eq!(send.total(), None);
        while !send.step(u64::MAX, &Cancel::new()).await.unwrap() {}
        send.bytes()
    });
    drop(ours);
    let got = reader.join().unwrap();
    assert_eq!(got.len() as u64, sent);
    assert!(got.starts_with(b"Name:"));
}

#[test]
fn bad_ends_are_refused_before_sending() {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 10, 9);
    let rt = runtime();
    rt.block_on(async {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let err = SendFile::open(dup(&ours), Source::path(dir.path()), None, None).unwrap_err();
        assert_eq!(err.errno(), Errno::EISDIR);
        let (r, _w) = nix::unistd::pipe().unwrap();
        let err = SendFile::open(dup(&ours), Source::Fd(r), None, None).unwrap_err();
        assert_eq!(err.errno(), Errno::EINVAL);
        assert!(err.to_string().contains("regular file"), "{err}");
        let regular = open_write(&dir.path().join("out"));
        let err = SendFile::open(dup(&regular), Source::path(&path), None, None).unwrap_err();
        assert_eq!(err.errno(), Errno::EINVAL);
        assert!(err.to_string().contains("copy::copy"), "{err}");
        let err = SendFile::open(
            dup(&ours),
            Source::path(dir.path().join("missing")),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(err.errno(), Errno::ENOENT);
    });
}

#[test]
fn try_step_sends_without_waiting_and_without_a_runtime() {
    let dir = disk_dir();
    let (small, data) = make_file(dir.path(), "small", 30_000, 11);
    let (ours, theirs) = UnixStream::pair().unwrap();
    let reader = collect(theirs);
    // No tokio runtime here: the non-blocking attempt needs none.
    let mut send = SendFile::open(dup(&ours), Source::path(&small), None, None).unwrap();
    assert_eq!(send.try_step(u64::MAX).unwrap(), Attempt::Done);
    assert!(send.is_finished());
    drop(send); // the send's duplicate of the socket closes with it
    drop(ours);
    assert_eq!(reader.join().unwrap(), data);

    // A peer that does not read: the attempt stops at EAGAIN, and step() finishes once it reads.
    let (big, data) = make_file(dir.path(), "big", 16 << 20, 12);
    let (server, mut client) = tcp_pair();
    let mut send = SendFile::open(dup(&server), Source::path(&big), None, None).unwrap();
    assert_eq!(send.try_step(u64::MAX).unwrap(), Attempt::Blocked);
    let sent_at_once = send.bytes();
    assert!(sent_at_once > 0 && sent_at_once < 16 << 20);
    assert_eq!(
        send.try_step(u64::MAX).unwrap(),
        Attempt::Blocked,
        "still full"
    );
    assert_eq!(send.bytes(), sent_at_once);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        client.read_to_end(&mut out).unwrap();
        out
    });
    runtime().block_on(async {
        assert!(send.step(u64::MAX, &Cancel::new()).await.unwrap());
    });
    drop(send);
    drop(server);
    assert_eq!(reader.join().unwrap(), data);
}

#[test]
fn an_empty_range_is_done_at_once() {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 10, 10);
    let rt = runtime();
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    rt.block_on(async {
        let mut send = SendFile::open(dup(&ours), Source::path(&path), Some(10), None).unwrap();
        assert!(send.is_finished());
        assert!(send.step(u64::MAX, &Cancel::new()).await.unwrap());
        assert_eq!(send.bytes(), 0);
    });
    drop(ours);
    theirs.write_all(b"").unwrap();
    let mut rest = Vec::new();
    theirs.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn is_cached_tells_whether_a_send_could_block_on_the_disk() {
    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 1 << 20, 13);
    if file::cached_pages(open_read(&path), 0, 1)
        .unwrap()
        .is_none()
    {
        eprintln!("cachestat(2) is not available: is_cached is always false here");
        return;
    }
    let (ours, _theirs) = UnixStream::pair().unwrap();
    let send = SendFile::open(dup(&ours), Source::path(&path), None, None).unwrap();
    assert!(
        send.is_cached(u64::MAX),
        "a file just written is in the page cache"
    );
    let f = open_read(&path);
    f.sync_all().unwrap();
    posix_fadvise(f.as_fd(), 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
    assert!(!send.is_cached(u64::MAX), "cold after DONTNEED");
    // No readahead on this descriptor, so reading page 0 brings back page 0 only.
    posix_fadvise(f.as_fd(), 0, 0, PosixFadviseAdvice::POSIX_FADV_RANDOM).unwrap();
    let mut buf = vec![0u8; 4096];
    file::read_at(&f, &mut buf, Some(0)).unwrap();
    assert!(send.is_cached(4096), "the first page is back");
    assert!(!send.is_cached(8192), "the second is not");
    // procfs files (size unknown) never count as cached.
    let proc_send =
        SendFile::open(dup(&ours), Source::path("/proc/self/status"), None, None).unwrap();
    assert!(!proc_send.is_cached(u64::MAX));
}

#[test]
fn a_head_goes_before_the_file_and_is_counted_apart() {
    let dir = disk_dir();
    let (path, data) = make_file(dir.path(), "f", 3 << 20, 9);
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n".to_vec();
    let rt = runtime();
    // TCP (MSG_MORE) with a reader that starts late, so the send waits for it; a Unix socket pair; a pipe.
    let (server, client) = tcp_pair();
    let reader = std::thread::spawn(move || {
        let mut client = client;
        std::thread::sleep(Duration::from_millis(100));
        let mut out = Vec::new();
        client.read_to_end(&mut out).unwrap();
        out
    });
    let (file_bytes, head_bytes) = rt.block_on(async {
        let mut send =
            SendFile::open(dup(&server), Source::path(&path), Some(5), Some(1 << 20)).unwrap();
        send.set_head(head.clone());
        while !send.step(u64::MAX, &Cancel::new()).await.unwrap() {}
        (send.bytes(), send.head_bytes())
    });
    drop(server);
    assert_eq!((file_bytes, head_bytes), (1 << 20, head.len() as u64));
    let got = reader.join().unwrap();
    assert_eq!(got[..head.len()], head[..]);
    assert_eq!(got[head.len()..], data[5..5 + (1 << 20)]);

    let (ours, theirs) = UnixStream::pair().unwrap();
    theirs.set_nonblocking(false).unwrap();
    let reader = collect(theirs);
    let mut send = SendFile::open(dup(&ours), Source::path(&path), None, Some(10)).unwrap();
    send.set_head(b"head".to_vec());
    assert_eq!(send.try_step(u64::MAX).unwrap(), Attempt::Done);
    assert_eq!((send.bytes(), send.head_bytes()), (10, 4));
    drop((send, ours));
    assert_eq!(reader.join().unwrap(), [b"head", &data[..10]].concat());

    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    let mut send = SendFile::open(write_end, Source::path(&path), Some(1), Some(3)).unwrap();
    send.set_head(b"pipe:".to_vec());
    assert_eq!(send.try_step(u64::MAX).unwrap(), Attempt::Done);
    drop(send);
    let mut out = Vec::new();
    std::fs::File::from(read_end).read_to_end(&mut out).unwrap();
    assert_eq!(out, [b"pipe:", &data[1..4]].concat());
}

#[test]
fn a_head_is_not_written_for_a_send_that_ended_at_open() {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 10, 10);
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let mut send = SendFile::open(dup(&ours), Source::path(&path), Some(10), None).unwrap();
    send.set_head(b"never".to_vec());
    assert_eq!(send.try_step(u64::MAX).unwrap(), Attempt::Done);
    assert_eq!((send.bytes(), send.head_bytes()), (0, 0));
    drop((send, ours));
    let mut rest = Vec::new();
    theirs.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}
