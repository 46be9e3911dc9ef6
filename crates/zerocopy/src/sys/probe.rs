//! Capability probes: which zero-copy syscalls this kernel has, and what a given filesystem supports.
//!
//! Kernel-wide answers are probed once per process; per-filesystem answers once per device (`st_dev`).
//! Probes never leave anything behind: filesystem probes use unnamed `O_TMPFILE` files (or a named
//! temporary file unlinked at once where `O_TMPFILE` is missing).
//!
//! On other systems [`kernel`] reports every mechanism unavailable and there are no filesystem probes.

use std::sync::OnceLock;

/// What the running kernel offers, independent of any filesystem. Outside Linux every mechanism is
/// `false`, `kernel` is empty and `pipe_max_size` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCapabilities {
    /// `uname -r`, e.g. `"6.18.44"`.
    pub kernel: String,
    /// The memory page size in bytes.
    pub page_size: usize,
    /// `copy_file_range(2)` exists (Linux 4.5+) and is not blocked by seccomp.
    pub copy_file_range: bool,
    /// `sendfile(2)` exists and is not blocked.
    pub sendfile: bool,
    /// `splice(2)` exists and is not blocked.
    pub splice: bool,
    /// `tee(2)` exists and is not blocked.
    pub tee: bool,
    /// `vmsplice(2)` exists and is not blocked.
    pub vmsplice: bool,
    /// `/proc/sys/fs/pipe-max-size`: the largest pipe an unprivileged process may ask for.
    pub pipe_max_size: Option<usize>,
}

/// Where an O_DIRECT alignment figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlignmentSource {
    /// `statx(STATX_DIOALIGN)`, Linux 6.1+: the filesystem's own answer.
    Statx,
    /// The logical block size of the backing block device (`/sys/dev/block/M:m/queue`).
    BlockDevice,
    /// Neither was available; a conservative 4096 bytes.
    Default,
}

/// O_DIRECT requirements for files on one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectIoAlignment {
    /// Required alignment of the memory buffer's address, in bytes.
    pub memory: u32,
    /// Required alignment of file offsets and transfer lengths, in bytes.
    pub offset: u32,
    /// Where the figures came from.
    pub source: AlignmentSource,
}

/// What one filesystem supports, probed with real files in the given directory.
///
/// `None` means "could not find out" (typically: no permission to create files there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsCapabilities {
    /// The filesystem type, e.g. `"ext4"`, `"xfs"`, `"tmpfs"`, or the magic number in hex.
    pub fs_type: String,
    /// The filesystem's preferred I/O block size (`statfs.f_bsize`).
    pub block_size: u64,
    /// `FICLONE` works between two files here.
    pub reflink: Option<bool>,
    /// `copy_file_range` copies between two files here (false on procfs-like filesystems).
    pub copy_file_range: Option<bool>,
    /// O_DIRECT is accepted here.
    pub direct_io: Option<bool>,
    /// The O_DIRECT alignment, when O_DIRECT is accepted (or could not be probed).
    pub direct_io_alignment: Option<DirectIoAlignment>,
}

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux::probe_kernel;
#[cfg(target_os = "linux")]
pub use linux::{block_device_alignment, filesystem, statx_dio_alignment};
#[cfg(not(target_os = "linux"))]
mod stub;
#[cfg(not(target_os = "linux"))]
use stub::probe_kernel;

/// The kernel's capabilities, probed on first use.
pub fn kernel() -> &'static KernelCapabilities {
    static CAPS: OnceLock<KernelCapabilities> = OnceLock::new();
    CAPS.get_or_init(probe_kernel)
}

/// The memory page size.
#[cfg(unix)]
pub fn page_size() -> usize {
    // SAFETY: sysconf reads a configuration value; it has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

/// The memory page size: 4 KiB on every Windows architecture Node supports (x64, arm64).
#[cfg(not(unix))]
pub fn page_size() -> usize {
    4096
}

/// The name of a filesystem magic number from `statfs(2)`, for the common ones.
pub fn fs_name(magic: u64) -> Option<&'static str> {
    Some(match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0xCA45_1A4E => "bcachefs",
        0x2FC1_2FC1 => "zfs",
        0xF2F5_2010 => "f2fs",
        0x7461_636F => "ocfs2",
        0x0102_1994 => "tmpfs",
        0x8584_58F6 => "ramfs",
        0x794C_7630 => "overlayfs",
        0x6969 => "nfs",
        0xFE53_4D42 | 0xFF53_4D42 => "cifs",
        0x6573_5546 => "fuse",
        0x00C3_6400 => "ceph",
        0x9FA0 => "proc",
        0x6265_6572 => "sysfs",
        0x4D44 => "vfat",
        0x2011_BAB0 => "exfat",
        0x7366_746E => "ntfs3",
        0x7371_7368 => "squashfs",
        0x0102_1997 => "9p",
        _ => return None,
    })
}
