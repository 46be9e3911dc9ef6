//! A loopback TCP sink for the benchmarks: accepts connections, reads each to EOF into a reused
//! buffer, discards the bytes and closes. Prints its port on the first line of stdout.
//!
//! `cargo run --release --example sink`

use std::io::{Read, Write};
use std::net::TcpListener;

fn main() -> std::io::Result<()> {
    // `sink splice`: move the bytes into /dev/null with splice(2) instead of reading them, so the
    // sink costs as little CPU as a receiver can (Linux only).
    let spliced = std::env::args().nth(1).as_deref() == Some("splice");
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    for stream in listener.incoming() {
        let mut stream = stream?;
        std::thread::spawn(move || {
            if spliced {
                #[cfg(target_os = "linux")]
                {
                    let _ = discard(&stream);
                    return;
                }
            }
            let mut buf = vec![0u8; 1 << 20];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
        });
    }
    Ok(())
}

/// Splices everything from `stream` into /dev/null through a 1 MiB pipe, until end of stream.
#[cfg(target_os = "linux")]
fn discard(stream: &std::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
    use nix::fcntl::OFlag;
    use zerocopy_io::sys::splice::{splice, Pipe, SpliceFlags, RELAY_PIPE_SIZE};

    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    let pipe = Pipe::with_flags(RELAY_PIPE_SIZE, OFlag::empty())?;
    loop {
        let n = splice(
            stream,
            None,
            pipe.writer(),
            None,
            pipe.size(),
            SpliceFlags::SPLICE_F_MOVE,
        )?;
        if n == 0 {
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            left -= splice(
                pipe.reader(),
                None,
                &null,
                None,
                left,
                SpliceFlags::SPLICE_F_MOVE,
            )?;
        }
    }
}
