//! A loopback TCP sink for the benchmarks: accepts connections, reads each to EOF into a reused
//! buffer, discards the bytes and closes. Prints its port on the first line of stdout.
//!
//! `cargo run --release --example sink`

use std::io::{Read, Write};
use std::net::TcpListener;

fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    for stream in listener.incoming() {
        let mut stream = stream?;
        std::thread::spawn(move || {
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
