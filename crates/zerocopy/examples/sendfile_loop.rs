//! The reference the socket benchmark measures zerocopy against: a bare `sendfile(2)` loop from the
//! core crate into a blocking TCP socket, with no runtime, no readiness and no JavaScript.
//! Prints one JSON line: wall seconds, CPU seconds and context switches of this process.
//!
//! `cargo run --release --example sendfile_loop -- PORT FILE`

#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
use std::net::{Shutdown, TcpStream};
#[cfg(target_os = "linux")]
use std::time::Instant;

#[cfg(target_os = "linux")]
use zerocopy_io::sys::sendfile::{sendfile, MAX_CHUNK};

#[cfg(target_os = "linux")]
fn usage() -> std::io::Error {
    std::io::Error::other("usage: sendfile_loop PORT FILE")
}

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).ok_or_else(usage)?;
    let path = args.next().ok_or_else(usage)?;
    let file = std::fs::File::open(&path)?;
    let size = file.metadata()?.len();
    let before = common::usage_now();
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    let mut offset = 0i64;
    while (offset as u64) < size {
        let want = usize::try_from(size - offset as u64)
            .unwrap_or(MAX_CHUNK)
            .min(MAX_CHUNK);
        if sendfile(&stream, &file, Some(&mut offset), want)? == 0 {
            break;
        }
    }
    stream.shutdown(Shutdown::Write)?;
    // Wait for the sink to close: every byte has been read by then.
    let _ = std::io::Read::read(&mut stream, &mut [0u8; 1]);
    let wall = started.elapsed().as_secs_f64();
    common::report(offset as u64, wall, before);
    Ok(())
}

/// sendfile(2) as measured here is Linux's.
#[cfg(not(target_os = "linux"))]
fn main() -> std::io::Result<()> {
    Err(std::io::Error::other(
        "sendfile_loop measures Linux's sendfile(2): Linux only",
    ))
}
