//! A loopback TCP source for the benchmarks: connects to PORT, sends BYTES from one reused 1 MiB
//! buffer, shuts its side down and reads until the other side closes, discarding what comes back.
//!
//! With `splice` (Linux), the buffer's pages go into the socket by reference (`vmsplice` into a pipe,
//! `splice` into the socket) instead of being copied by `write`, so the source costs as little CPU as
//! a sender can and the process under test is the bottleneck. The buffer never changes, which is what
//! makes handing its pages to the kernel over and over safe.
//!
//! `cargo run --release --example source -- PORT BYTES [splice]`

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = || std::io::Error::other("usage: source PORT BYTES [splice]");
    let port: u16 = args.next().and_then(|p| p.parse().ok()).ok_or_else(usage)?;
    let bytes: u64 = args.next().and_then(|b| b.parse().ok()).ok_or_else(usage)?;
    let spliced = args.next().as_deref() == Some("splice");
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    let block: Vec<u8> = (0..1u32 << 20)
        .map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()[0])
        .collect();
    if spliced {
        send_spliced(&stream, &block, bytes)?;
    } else {
        let mut sent = 0u64;
        while sent < bytes {
            let n = (bytes - sent).min(block.len() as u64) as usize;
            stream.write_all(&block[..n])?;
            sent += n as u64;
        }
    }
    stream.shutdown(Shutdown::Write)?;
    let mut buf = [0u8; 65536];
    while stream.read(&mut buf)? > 0 {}
    Ok(())
}

/// Sends `bytes` of `block`, repeated, with vmsplice + splice through one 1 MiB pipe.
#[cfg(target_os = "linux")]
fn send_spliced(stream: &TcpStream, block: &[u8], bytes: u64) -> std::io::Result<()> {
    use nix::fcntl::OFlag;
    use std::io::IoSlice;
    use zerocopy_io::sys::splice::{splice, vmsplice, Pipe, SpliceFlags};

    let io = |e: zerocopy_io::Error| std::io::Error::other(e.to_string());
    let pipe = Pipe::with_flags(block.len(), OFlag::empty()).map_err(io)?;
    let mut sent = 0u64;
    while sent < bytes {
        let want = (bytes - sent).min(block.len().min(pipe.size()) as u64) as usize;
        let iov = [IoSlice::new(&block[..want])];
        // SAFETY: `block` is never written and outlives every reader: it lives until main returns,
        // after the socket is shut down and the peer has closed.
        let n = unsafe { vmsplice(pipe.writer(), &iov, SpliceFlags::empty()) }.map_err(io)?;
        let mut left = n;
        while left > 0 {
            left -= splice(
                pipe.reader(),
                None,
                stream,
                None,
                left,
                SpliceFlags::SPLICE_F_MORE,
            )
            .map_err(io)?;
        }
        sent += n as u64;
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn send_spliced(_: &TcpStream, _: &[u8], _: u64) -> std::io::Result<()> {
    Err(std::io::Error::other("splice mode is Linux only"))
}
