//! The reference the proxy benchmark measures zerocopy against: a bare blocking `splice(2)` loop from
//! the core crate, relaying one accepted connection to a sink through one kernel pipe — socket →
//! pipe → socket — with no runtime, no readiness and no JavaScript.
//!
//! Prints its port on the first line of stdout, accepts one connection, connects to the sink at
//! SINK_PORT, relays until the client's end of stream, shuts the sink's side down, waits for the sink
//! to close (every byte read) and prints one JSON line: bytes, wall seconds (from accept), CPU seconds
//! and context switches of this process.
//!
//! `cargo run --release --example splice_relay -- SINK_PORT`

#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
    use std::io::Write;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::time::Instant;

    use nix::fcntl::OFlag;
    use zerocopy_io::sys::splice::{splice, Pipe, SpliceFlags, RELAY_PIPE_SIZE};

    let sink_port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| std::io::Error::other("usage: splice_relay SINK_PORT"))?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    let (client, _) = listener.accept()?;
    let before = common::usage_now();
    let started = Instant::now();
    let sink = TcpStream::connect(("127.0.0.1", sink_port))?;
    // Blocking ends: the loop sleeps in the kernel whenever a side is not ready.
    let pipe = Pipe::with_flags(RELAY_PIPE_SIZE, OFlag::empty())?;
    let flags = SpliceFlags::SPLICE_F_MOVE | SpliceFlags::SPLICE_F_MORE;
    let mut bytes = 0u64;
    loop {
        let n = splice(&client, None, pipe.writer(), None, pipe.size(), flags)?;
        if n == 0 {
            break;
        }
        let mut left = n;
        while left > 0 {
            left -= splice(pipe.reader(), None, &sink, None, left, flags)?;
        }
        bytes += n as u64;
    }
    sink.shutdown(Shutdown::Write)?;
    // Wait for the sink to close: every byte has been read by then.
    let _ = std::io::Read::read(&mut &sink, &mut [0u8; 1]);
    client.shutdown(Shutdown::Write)?;
    let wall = started.elapsed().as_secs_f64();
    common::report(bytes, wall, before);
    Ok(())
}

/// splice(2) is Linux's.
#[cfg(not(target_os = "linux"))]
fn main() -> std::io::Result<()> {
    Err(std::io::Error::other(
        "splice_relay measures Linux's splice(2): Linux only",
    ))
}
