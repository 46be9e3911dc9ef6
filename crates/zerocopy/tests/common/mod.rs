//! Helpers shared by the integration tests: real files in real directories.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use tempfile::TempDir;

/// A scratch directory on the main (disk) filesystem.
pub fn disk_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("zerocopy-test-")
        .tempdir()
        .unwrap()
}

/// A scratch directory on tmpfs, a different filesystem from [`disk_dir`] when /dev/shm exists.
pub fn tmpfs_dir() -> Option<TempDir> {
    let shm = Path::new("/dev/shm");
    shm.is_dir().then(|| {
        tempfile::Builder::new()
            .prefix("zerocopy-test-")
            .tempdir_in(shm)
            .unwrap()
    })
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes `len` pattern bytes to `dir/name`, returning the path and the bytes.
pub fn make_file(dir: &Path, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let data = pattern(len, seed);
    fs::write(&path, &data).unwrap();
    (path, data)
}

pub fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap()
}

pub fn open_read(path: &Path) -> File {
    File::open(path).unwrap()
}

pub fn open_write(path: &Path) -> File {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

pub fn open_append(path: &Path) -> File {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap()
}

pub fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .unwrap()
}

pub fn position(file: &mut File) -> u64 {
    file.stream_position().unwrap()
}

pub fn seek(file: &mut File, to: u64) {
    file.seek(SeekFrom::Start(to)).unwrap();
}

/// A sparse file of `size` bytes holding `marker` at each of `at`.
pub fn sparse_file(path: &Path, size: u64, marks: &[(u64, &[u8])]) {
    let mut f = File::create(path).unwrap();
    f.set_len(size).unwrap();
    for (at, bytes) in marks {
        f.seek(SeekFrom::Start(*at)).unwrap();
        f.write_all(bytes).unwrap();
    }
}

/// `len` bytes of `path` at `at`.
pub fn read_at(path: &Path, at: u64, len: usize) -> Vec<u8> {
    let mut f = File::open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    let mut buf = vec![0; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

/// The number of open fds of this process.
pub fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A filesystem mounted on a fresh scratch directory for one test, unmounted when dropped.
/// Needs root; [`Mount::new`] returns `None` (after saying why) elsewhere.
pub struct Mount {
    dir: TempDir,
}

impl Mount {
    /// `mount -t fstype -o options none <scratch dir>`.
    pub fn new(fstype: &str, options: &str) -> Option<Mount> {
        if !is_root() {
            eprintln!("skipped: mounting {fstype} needs root");
            return None;
        }
        let dir = disk_dir();
        let status = std::process::Command::new("mount")
            .args(["-t", fstype, "-o", options, "none"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount -t {fstype} failed");
        Some(Mount { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Whether this process runs with effective uid 0 (from /proc/self/status: `Uid: real effective …`).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

/// A current-thread tokio runtime with the reactor, for the engines that wait on readiness.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A close-on-exec duplicate of `fd`, for the engines that own the fds they are given.
#[cfg(target_os = "linux")]
pub fn dup(fd: impl std::os::fd::AsFd) -> std::os::fd::OwnedFd {
    zerocopy_io::sys::file::dup_cloexec(fd.as_fd()).unwrap()
}

/// One byte of a mapping's window, read as the hardware does (a truncated page reads as zero instead
/// of faulting, thanks to the guard).
pub fn read_byte(m: &zerocopy_io::sys::mmap::Mmap, at: usize) -> u8 {
    assert!(at < m.len());
    // SAFETY: inside the window, which stays mapped while `m` lives.
    unsafe { m.as_ptr().add(at).read_volatile() }
}
