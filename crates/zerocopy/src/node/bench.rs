//! Helpers for the `zerocopy bench` command (reached through the package's private `#native` import,
//! not part of the public API): syscall counts and a socket sink.

use std::collections::HashMap;
use std::os::fd::AsFd;

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;

use super::error::to_napi;
use super::task::to_js_number;
use crate::ready::Registered;
use crate::sys::{counters, file};

/// How many data-moving system calls (read, write, sendfile, copy_file_range, reflink, splice, tee,
/// vmsplice, mmap) this process has made through zerocopy, by family.
#[napi(js_name = "syscallCounts")]
pub fn syscall_counts() -> HashMap<String, f64> {
    counters::snapshot()
        .into_iter()
        .map(|(name, n)| (name.to_owned(), to_js_number(n)))
        .collect()
}

/// Reads the socket (or pipe) `fd` to end of file into a reused 1 MiB buffer and throws the bytes
/// away, waiting on readiness: a sink that costs the process under test nothing. Resolves to the
/// bytes read.
#[napi(ts_return_type = "Promise<number>")]
pub fn drain<'env>(env: &'env Env, fd: i32) -> napi::Result<PromiseRaw<'env, f64>> {
    let fd = file::dup_raw(fd).map_err(to_napi)?;
    env.spawn_future(async move {
        let fd = Registered::new(fd).map_err(to_napi)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = fd
                .read_with(|f| file::read_at(f.as_fd(), &mut buf, None))
                .await
                .map_err(to_napi)?;
            if n == 0 {
                return Ok(to_js_number(total));
            }
            total += n as u64;
        }
    })
}
