//! Shared by the benchmark examples that measure themselves.

/// CPU seconds, voluntary and involuntary context switches of this process so far.
#[cfg(target_os = "linux")]
pub fn usage_now() -> (f64, i64, i64) {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage for the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        secs(ru.ru_utime) + secs(ru.ru_stime),
        ru.ru_nvcsw,
        ru.ru_nivcsw,
    )
}

/// Prints the one JSON line the benchmarks read: bytes, wall seconds, and the usage since `before`.
#[cfg(target_os = "linux")]
pub fn report(bytes: u64, wall: f64, before: (f64, i64, i64)) {
    let after = usage_now();
    println!(
        "{{\"bytes\":{bytes},\"wall\":{wall},\"cpu\":{},\"nvcsw\":{},\"nivcsw\":{}}}",
        after.0 - before.0,
        after.1 - before.1,
        after.2 - before.2
    );
}
