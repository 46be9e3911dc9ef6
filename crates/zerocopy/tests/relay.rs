//! The relay engine (src/relay/) and its pipe pool, on real sockets: Unix socket pairs and TCP on
//! loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use zerocopy_io::ready::{Cancel, CancelReason};
use zerocopy_io::relay::{ChainSpec, PipePool, Relay};
use zerocopy_io::sys::socket;
use zerocopy_io::sys::splice::Pipe;
use zerocopy_io::Errno;

/// The tests of this file run one at a time: two of them count the process's fds, which the others
/// open and close.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (server, client)
}

/// Writes `data` to `stream` (then shuts it down for writing) on a thread.
fn feed(mut stream: TcpStream, data: Vec<u8>) -> std::thread::JoinHandle<TcpStream> {
    std::thread::spawn(move || {
        stream.write_all(&data).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        stream
    })
}

/// Reads `stream` to EOF on a thread.
fn drain(mut stream: TcpStream) -> std::thread::JoinHandle<(Vec<u8>, TcpStream)> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        stream.read_to_end(&mut out).unwrap();
        (out, stream)
    })
}

fn run_to_end(relay: &mut Relay) {
    runtime().block_on(async { while !relay.step(u64::MAX, &Cancel::new()).await.unwrap() {} });
}

// ---- system calls ----------------------------------------------------------------------------

#[test]
fn the_pool_keeps_only_empty_pipes_and_no_more_than_its_bound() {
    let _serial = serial();
    let pool = PipePool::new(2);
    let before = open_fds();
    let (p1, p2, p3) = (
        pool.take(65536).unwrap(),
        pool.take(65536).unwrap(),
        pool.take(65536).unwrap(),
    );
    assert_eq!(open_fds(), before + 6);
    std::fs::File::from(dup(p1.writer()))
        .write_all(b"left over")
        .unwrap();
    pool.give(p1); // not empty: closed
    assert_eq!(pool.idle(), 0);
    pool.give(p2);
    pool.give(p3);
    assert_eq!(pool.idle(), 2);
    pool.give(pool.take(65536).unwrap());
    pool.give(Pipe::new(65536).unwrap()); // over the bound: closed
    assert_eq!(pool.idle(), 2);
    assert_eq!(open_fds(), before + 4);
    // A pooled pipe is resized to what the next taker asks for.
    let p = pool.take(4096).unwrap();
    assert_eq!(p.size(), 4096);
    pool.give(p);
    pool.clear();
    assert_eq!(open_fds(), before);
}

// ---- the relay -------------------------------------------------------------------------------

#[test]
fn pipe_relays_every_size_intact_and_shuts_the_sink_down() {
    let _serial = serial();
    for size in [0usize, 1, 65_537, 16 << 20] {
        let (src, src_peer) = tcp_pair();
        let (dst, dst_peer) = tcp_pair();
        let data = pattern(size, size as u64);
        let writer = feed(src_peer, data.clone());
        let reader = drain(dst_peer);
        let mut relay = Relay::pipe(dup(&src), dup(&dst)).unwrap();
        run_to_end(&mut relay);
        assert_eq!(relay.bytes(0), vec![size as u64]);
        assert!(relay.is_finished() && relay.is_chain_done(0));
        let (got, _) = reader.join().unwrap(); // EOF: the relay shut the sink down
        assert_eq!(got.len(), size);
        assert!(got == data, "size {size}");
        writer.join().unwrap();
    }
}

#[test]
fn proxy_relays_both_directions_with_half_close() {
    let _serial = serial();
    let (a, a_peer) = tcp_pair();
    let (b, b_peer) = tcp_pair();
    let up = pattern(5 << 20, 7);
    let down = pattern(3 << 20, 8);
    // a's peer sends and half-closes at once; b's peer answers only after it has read everything.
    let a_side = {
        let up = up.clone();
        std::thread::spawn(move || {
            let mut s = a_peer;
            s.write_all(&up).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        })
    };
    let b_side = {
        let down = down.clone();
        std::thread::spawn(move || {
            let mut s = b_peer;
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.write_all(&down).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            got
        })
    };
    let mut relay = Relay::proxy(dup(&a), dup(&b)).unwrap();
    let rt = runtime();
    let mut first_done = None;
    rt.block_on(async {
        while !relay.step(u64::MAX, &Cancel::new()).await.unwrap() {
            if first_done.is_none() {
                first_done = (0..2).find(|&c| relay.is_chain_done(c));
            }
        }
    });
    assert_eq!(
        first_done,
        Some(0),
        "a → b ended first, while b → a went on"
    );
    assert_eq!(relay.bytes(0), vec![up.len() as u64]);
    assert_eq!(relay.bytes(1), vec![down.len() as u64]);
    assert!(b_side.join().unwrap() == up);
    assert!(a_side.join().unwrap() == down);
}

#[test]
fn head_bytes_reach_each_sink_before_spliced_bytes() {
    let _serial = serial();
    let (src, src_peer) = tcp_pair();
    let (d1, d1_peer) = tcp_pair();
    let (d2, d2_peer) = tcp_pair();
    let data = pattern(2 << 20, 9);
    let writer = feed(src_peer, data.clone());
    let (r1, r2) = (drain(d1_peer), drain(d2_peer));
    let chain = ChainSpec {
        src: Some(0),
        sinks: vec![1, 2],
        head: b"already read by Node|".to_vec(),
        shutdown: true,
    };
    let mut relay = Relay::new(
        vec![dup(&src), dup(&d1), dup(&d2)],
        vec![chain],
        Some(65536),
    )
    .unwrap();
    assert_eq!(relay.pipe_sizes(0), vec![65536, 65536]);
    run_to_end(&mut relay);
    let mut expected = b"already read by Node|".to_vec();
    expected.extend_from_slice(&data);
    assert!(r1.join().unwrap().0 == expected);
    assert!(r2.join().unwrap().0 == expected);
    assert_eq!(relay.bytes(0), vec![expected.len() as u64; 2]);
    writer.join().unwrap();
}

fn set_buffer(sock: &impl AsRawFd, option: libc::c_int, bytes: libc::c_int) {
    // SAFETY: a valid socket and an int option of the size passed.
    let ret = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            std::ptr::addr_of!(bytes).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    assert_eq!(ret, 0);
}

#[test]
fn tee_keeps_both_sinks_equal_when_one_reads_slowly_and_memory_stays_bounded() {
    let _serial = serial();
    let (src, src_peer) = tcp_pair();
    let (fast, fast_peer) = tcp_pair();
    let (slow, slow_peer) = tcp_pair();
    // Small socket buffers on the slow path, so a stalled reader stops the relay quickly.
    set_buffer(&slow, libc::SO_SNDBUF, 64 << 10);
    set_buffer(&slow_peer, libc::SO_RCVBUF, 64 << 10);
    let data = pattern(24 << 20, 10);
    let writer = feed(src_peer, data.clone());
    let fast_count = Arc::new(AtomicU64::new(0));
    let fast_reader = {
        let count = Arc::clone(&fast_count);
        std::thread::spawn(move || {
            let mut s = fast_peer;
            let (mut out, mut buf) = (Vec::new(), vec![0; 1 << 16]);
            loop {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    return out;
                }
                out.extend_from_slice(&buf[..n]);
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        })
    };
    let slow_reader = {
        let count = Arc::clone(&fast_count);
        std::thread::spawn(move || {
            let mut s = slow_peer;
            // Read nothing for a while: the relay must stop taking bytes from the source, so the fast
            // sink stops receiving too.
            std::thread::sleep(Duration::from_millis(500));
            let stalled_at = count.load(Ordering::Relaxed);
            let mut out = Vec::new();
            s.read_to_end(&mut out).unwrap();
            (out, stalled_at)
        })
    };
    let mut relay = Relay::tee(dup(&src), vec![dup(&fast), dup(&slow)]).unwrap();
    let pipes: usize = relay.pipe_sizes(0).iter().sum();
    run_to_end(&mut relay);
    let fast_got = fast_reader.join().unwrap();
    let (slow_got, stalled_at) = slow_reader.join().unwrap();
    writer.join().unwrap();
    assert!(fast_got == data);
    assert!(slow_got == data);
    // The slow path's socket buffers (a few hundred KiB) and the two pipes: nothing more was taken.
    let bound = pipes as u64 + (1 << 20);
    assert!(
        stalled_at <= bound,
        "{stalled_at} bytes relayed while the slow sink read nothing (bound {bound})"
    );
}

#[test]
fn a_reset_peer_ends_the_relay_with_its_error_and_the_bytes_so_far() {
    let _serial = serial();
    for reset_source in [true, false] {
        let (a, a_peer) = tcp_pair();
        let (b, b_peer) = tcp_pair();
        let rt = runtime();
        let killer = std::thread::spawn(move || {
            let (mut a_peer, mut b_peer) = (a_peer, b_peer);
            let chunk = vec![7u8; 1 << 20];
            for _ in 0..4 {
                a_peer.write_all(&chunk).unwrap();
            }
            let mut got = vec![0; 1 << 20];
            b_peer.read_exact(&mut got).unwrap();
            // SO_LINGER 0 then close: an RST instead of a FIN.
            let victim = if reset_source { &a_peer } else { &b_peer };
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: a valid socket and a linger struct of the size passed.
            unsafe {
                libc::setsockopt(
                    victim.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    std::ptr::addr_of!(linger).cast(),
                    std::mem::size_of::<libc::linger>() as u32,
                )
            };
            drop((a_peer, b_peer));
        });
        let mut relay = Relay::proxy(dup(&a), dup(&b)).unwrap();
        let err = rt.block_on(async {
            loop {
                match relay.step(u64::MAX, &Cancel::new()).await {
                    Ok(true) => panic!("the relay should have failed"),
                    Ok(false) => continue,
                    Err(e) => break e,
                }
            }
        });
        killer.join().unwrap();
        assert!(
            matches!(err.errno(), Errno::ECONNRESET | Errno::EPIPE),
            "reset_source {reset_source}: {err}"
        );
        let ab = relay.bytes(0)[0];
        assert!((1 << 20..=4 << 20).contains(&ab), "{ab}");
        assert!(relay.is_finished());
    }
}

#[test]
fn cancel_wakes_a_relay_waiting_on_a_silent_source_and_names_the_cause() {
    let _serial = serial();
    let rt = runtime();
    let (a, _a_peer) = tcp_pair();
    let (b, _b_peer) = tcp_pair();
    let mut relay = Relay::proxy(dup(&a), dup(&b)).unwrap();
    let cancel = Cancel::new();
    let started = Instant::now();
    let err = rt.block_on(async {
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            canceller.cancel(CancelReason::Aborted);
        });
        relay.step(u64::MAX, &cancel).await.unwrap_err()
    });
    assert_eq!(err.code(), "ABORT_ERR");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Destroyed on the JS side while both connections are fine.
    let mut relay = Relay::proxy(dup(&a), dup(&b)).unwrap();
    let cancel = Cancel::new();
    cancel.cancel(CancelReason::Destroyed);
    let err = rt.block_on(relay.step(u64::MAX, &cancel)).unwrap_err();
    assert_eq!(err.code(), "ERR_STREAM_DESTROYED");
}

#[test]
fn a_paced_step_reports_a_trickle_in_time_and_sleeps_through_silence() {
    let _serial = serial();
    let rt = runtime();
    let (a, mut a_peer) = tcp_pair();
    let (b, b_peer) = tcp_pair();
    let mut relay = Relay::proxy(dup(&a), dup(&b)).unwrap();
    let reader = drain(b_peer);
    let pace = Some(Duration::from_millis(50));
    rt.block_on(async {
        for key in 0..3u8 {
            // One keystroke: an unpaced step would wait for the budget or the end of stream.
            a_peer.write_all(&[b'a' + key]).unwrap();
            assert!(!relay
                .step_paced(u64::MAX, pace, &Cancel::new())
                .await
                .unwrap());
            assert_eq!(relay.bytes(0), vec![u64::from(key) + 1]);
            assert_eq!(relay.read(0), u64::from(key) + 1);
        }
        let quiet = tokio::time::timeout(
            Duration::from_millis(300),
            relay.step_paced(u64::MAX, pace, &Cancel::new()),
        )
        .await;
        assert!(quiet.is_err(), "a step with nothing to report sleeps on");
    });
    // The keystrokes reached b's peer as they were typed.
    drop((relay, a, b));
    let (got, _) = reader.join().unwrap();
    assert_eq!(got, b"abc");
}

#[test]
fn a_chain_without_a_source_delivers_its_head_and_ends() {
    let _serial = serial();
    let (d1, d1_peer) = tcp_pair();
    let (d2, d2_peer) = tcp_pair();
    let (r1, r2) = (drain(d1_peer), drain(d2_peer));
    let chain = ChainSpec {
        src: None,
        sinks: vec![0, 1],
        head: b"the last bytes, read by Node with the end of stream".to_vec(),
        shutdown: true,
    };
    let mut relay = Relay::new(vec![dup(&d1), dup(&d2)], vec![chain], None).unwrap();
    run_to_end(&mut relay);
    assert!(relay.is_chain_done(0));
    assert_eq!(relay.read(0), 0);
    assert_eq!(relay.bytes(0), vec![51, 51]);
    for reader in [r1, r2] {
        assert_eq!(
            reader.join().unwrap().0,
            b"the last bytes, read by Node with the end of stream"
        );
    }
}

#[test]
fn budgets_bound_each_step_and_blocking_fds_get_their_mode_back() {
    let _serial = serial();
    let (src, src_peer) = UnixStream::pair().unwrap();
    let (dst, mut dst_peer) = UnixStream::pair().unwrap();
    assert!(!socket::is_nonblocking(&src).unwrap());
    let data = pattern(8 << 20, 11);
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || {
            let mut s = src_peer;
            s.write_all(&data).unwrap();
        })
    };
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        dst_peer.read_to_end(&mut out).unwrap();
        out
    });
    let mut relay = Relay::pipe(dup(&src), dup(&dst)).unwrap();
    assert!(
        socket::is_nonblocking(&src).unwrap(),
        "non-blocking while relayed"
    );
    let rt = runtime();
    let mut steps = 0;
    rt.block_on(async {
        while !relay.step(1 << 20, &Cancel::new()).await.unwrap() {
            steps += 1;
        }
    });
    // A step ends once its budget is used: at most a pipe (1 MiB) past it.
    assert!(steps >= 4, "{steps} steps of about 1 MiB");
    assert!(!socket::is_nonblocking(&src).unwrap() && !socket::is_nonblocking(&dst).unwrap());
    drop((src, dst));
    writer.join().unwrap();
    assert!(reader.join().unwrap() == data);
}

#[test]
fn many_short_relays_leave_no_fd_behind() {
    let _serial = serial();
    // Fill the pool first, so its idle pipes are part of the baseline.
    let pool = PipePool::global();
    let warm: Vec<Pipe> = (0..pool.max_idle())
        .map(|_| pool.take(1 << 20).unwrap())
        .collect();
    warm.into_iter().for_each(|p| pool.give(p));
    let before = open_fds();
    for i in 0..200 {
        let (a, a_peer) = tcp_pair();
        let (b, b_peer) = tcp_pair();
        let msg = format!("hello {i}").into_bytes();
        let a_side = feed(a_peer, msg.clone());
        // b's peer closes once it has read everything: b → a ends too.
        let b_side = std::thread::spawn(move || drain(b_peer).join().unwrap().0);
        let mut relay = Relay::proxy(dup(&a), dup(&b)).unwrap();
        run_to_end(&mut relay);
        assert_eq!(b_side.join().unwrap(), msg);
        assert_eq!(relay.bytes(0), vec![msg.len() as u64]);
        drop(relay);
        a_side.join().unwrap();
    }
    assert_eq!(pool.idle(), pool.max_idle());
    assert_eq!(open_fds(), before);
}
