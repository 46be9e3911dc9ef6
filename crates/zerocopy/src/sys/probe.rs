//! Capability probes: which zero-copy syscalls this kernel has, and what a given filesystem supports.
//!
//! Kernel-wide answers are probed once per process; per-filesystem answers once per device (`st_dev`).
//! Probes never leave anything behind: filesystem probes use unnamed `O_TMPFILE` files (or a named
//! temporary file unlinked at once where `O_TMPFILE` is missing).
//!
//! On other systems [`kernel`] reports every mechanism unavailable and there are no filesystem probes.

#[cfg(target_os = "linux")]
use std::collections::HashMap;
#[cfg(target_os = "linux")]
use std::ffi::CStr;
#[cfg(target_os = "linux")]
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
#[cfg(target_os = "linux")]
use std::path::{Path, PathBuf};
#[cfg(target_os = "linux")]
use std::sync::Mutex;
use std::sync::OnceLock;

#[cfg(target_os = "linux")]
use nix::errno::Errno;
#[cfg(target_os = "linux")]
use nix::fcntl::{FcntlArg, OFlag};
#[cfg(target_os = "linux")]
use nix::sys::stat::{Mode, SFlag};

#[cfg(target_os = "linux")]
use crate::error::{Result, SyscallExt};
#[cfg(target_os = "linux")]
use crate::sys::{copy_range, file, reflink};

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

/// The kernel's capabilities, probed on first use.
pub fn kernel() -> &'static KernelCapabilities {
    static CAPS: OnceLock<KernelCapabilities> = OnceLock::new();
    CAPS.get_or_init(probe_kernel)
}

/// The capabilities of the filesystem holding `path` (a file or a directory), cached per device.
///
/// Errors only when `path` itself cannot be examined (e.g. `ENOENT`).
#[cfg(target_os = "linux")]
pub fn filesystem(path: &Path) -> Result<FsCapabilities> {
    static CACHE: OnceLock<Mutex<HashMap<u64, FsCapabilities>>> = OnceLock::new();
    let st = nix::sys::stat::stat(path)
        .syscall("stat")
        .map_err(|e| e.with_path(path))?;
    let cache = CACHE.get_or_init(Default::default);
    let lock = || crate::sync::lock(cache);
    if let Some(hit) = lock().get(&st.st_dev) {
        return Ok(hit.clone());
    }
    let dir: PathBuf = if file::file_type(&st) == SFlag::S_IFDIR {
        path.to_path_buf()
    } else {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    };
    let caps = probe_filesystem(&dir, st.st_dev)?;
    lock().insert(st.st_dev, caps.clone());
    Ok(caps)
}

#[cfg(target_os = "linux")]
fn probe_kernel() -> KernelCapabilities {
    // Each probe passes invalid fds: a kernel that has the syscall answers EBADF (or EINVAL) without
    // doing anything; ENOSYS means missing, EPERM means a seccomp filter forbids it.
    let exists =
        |ret: libc::c_long| ret >= 0 || !matches!(Errno::last(), Errno::ENOSYS | Errno::EPERM);
    // SAFETY: every fd is -1 and every pointer null with a zero length, so the kernel rejects each
    // call before touching memory.
    let (cfr, sendfile, splice, tee, vmsplice) = unsafe {
        (
            libc::syscall(
                libc::SYS_copy_file_range,
                -1,
                0usize,
                -1,
                0usize,
                0usize,
                0u32,
            ),
            libc::syscall(libc::SYS_sendfile, -1, -1, 0usize, 0usize),
            libc::syscall(libc::SYS_splice, -1, 0usize, -1, 0usize, 0usize, 0u32),
            libc::syscall(libc::SYS_tee, -1, -1, 0usize, 0u32),
            libc::syscall(libc::SYS_vmsplice, -1, 0usize, 0usize, 0u32),
        )
    };
    let (cfr, sendfile, splice, tee, vmsplice) = (
        exists(cfr),
        exists(sendfile),
        exists(splice),
        exists(tee),
        exists(vmsplice),
    );
    KernelCapabilities {
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        page_size: page_size(),
        copy_file_range: cfr,
        sendfile,
        splice,
        tee,
        vmsplice,
        pipe_max_size: std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .ok()
            .and_then(|s| s.trim().parse().ok()),
    }
}

/// None of Linux's mechanisms exist here.
#[cfg(not(target_os = "linux"))]
fn probe_kernel() -> KernelCapabilities {
    KernelCapabilities {
        kernel: String::new(),
        page_size: page_size(),
        copy_file_range: false,
        sendfile: false,
        splice: false,
        tee: false,
        vmsplice: false,
        pipe_max_size: None,
    }
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

#[cfg(target_os = "linux")]
fn probe_filesystem(dir: &Path, dev: u64) -> Result<FsCapabilities> {
    let sfs = nix::sys::statfs::statfs(dir)
        .syscall("statfs")
        .map_err(|e| e.with_path(dir))?;
    let magic = sfs.filesystem_type().0 as u64;
    let fs_type = fs_name(magic).map_or_else(|| format!("0x{magic:x}"), str::to_owned);
    let block_size = u64::try_from(sfs.block_size()).unwrap_or(0);

    let mut caps = FsCapabilities {
        fs_type,
        block_size,
        reflink: None,
        copy_file_range: None,
        direct_io: None,
        direct_io_alignment: None,
    };
    let (Ok(a), Ok(b)) = (scratch_file(dir), scratch_file(dir)) else {
        caps.direct_io_alignment = Some(block_device_alignment(dev));
        return Ok(caps);
    };
    // One block's worth of data so both probes move real bytes.
    let payload = [0x5au8; 1];
    if file::write_at(&a, &payload, Some(0)).is_ok() {
        caps.reflink = Some(reflink::ficlone(&a, &b).is_ok());
        let (mut off_in, mut off_out) = (0i64, 0i64);
        caps.copy_file_range = Some(matches!(
            copy_range::copy_file_range(&a, Some(&mut off_in), &b, Some(&mut off_out), 1),
            Ok(1)
        ));
    }
    let direct = set_direct(&a);
    caps.direct_io = Some(direct);
    if direct {
        caps.direct_io_alignment =
            Some(statx_dio_alignment(&a).unwrap_or_else(|| block_device_alignment(dev)));
    }
    Ok(caps)
}

/// An empty read-write file in `dir` that disappears when closed.
#[cfg(target_os = "linux")]
fn scratch_file(dir: &Path) -> Result<OwnedFd> {
    let mode = Mode::from_bits_truncate(0o600);
    match file::open(dir, OFlag::O_TMPFILE | OFlag::O_RDWR, mode) {
        Ok(fd) => Ok(fd),
        Err(e) if matches!(e.errno(), Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => {
            // No O_TMPFILE here: a named file, unlinked at once.
            let name = dir.join(format!(
                ".zerocopy-probe-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ));
            let fd = file::open(&name, OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL, mode)?;
            nix::unistd::unlink(&name).syscall("unlink")?;
            Ok(fd)
        }
        Err(e) => Err(e),
    }
}

/// Whether the filesystem accepts O_DIRECT for this file (`fcntl(F_SETFL)` refuses with EINVAL if not).
#[cfg(target_os = "linux")]
fn set_direct(fd: &OwnedFd) -> bool {
    let Ok(flags) = file::status_flags(fd) else {
        return false;
    };
    nix::fcntl::fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_DIRECT)).is_ok()
}

/// The filesystem's own O_DIRECT alignment for the open file `fd`: `statx(STATX_DIOALIGN)`, Linux 6.1+.
///
/// `None` when the kernel or the filesystem does not answer (older kernels, tmpfs, FUSE, …), or when
/// the filesystem reports that this file cannot do O_DIRECT at all (offset alignment 0).
#[cfg(target_os = "linux")]
#[doc(alias = "STATX_DIOALIGN")]
pub fn statx_dio_alignment(fd: impl AsFd) -> Option<DirectIoAlignment> {
    // SAFETY: an all-zero statx is a valid value of this plain C struct.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let empty: &CStr = c"";
    // The raw system call, not glibc's statx() wrapper: that wrapper exists only from glibc 2.28, and the
    // prebuilt binaries are linked against glibc 2.17 (see scripts/platforms.mjs), where a reference to
    // it would stop the whole addon from loading. Kernels before 4.11 answer ENOSYS, which is None here.
    // SAFETY: `empty` is a valid C string and `stx` a valid, writable statx buffer for the call; the
    // arguments are those of statx(2), in its order and with its C types.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_statx,
            fd.as_fd().as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut stx as *mut libc::statx,
        )
    };
    if ret != 0 || stx.stx_mask & libc::STATX_DIOALIGN == 0 || stx.stx_dio_offset_align == 0 {
        return None;
    }
    Some(DirectIoAlignment {
        memory: stx.stx_dio_mem_align,
        offset: stx.stx_dio_offset_align,
        source: AlignmentSource::Statx,
    })
}

/// The O_DIRECT alignment implied by block device `dev` (a `st_dev`, or a device node's `st_rdev`): its
/// logical block size, for both memory and offsets, or a conservative 4096 when sysfs has no answer
/// (no block device behind the filesystem, e.g. tmpfs or NFS).
#[cfg(target_os = "linux")]
pub fn block_device_alignment(dev: u64) -> DirectIoAlignment {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    // A partition's own sysfs node has no queue/; its disk (the parent) does.
    let candidates = [
        format!("/sys/dev/block/{major}:{minor}/queue/logical_block_size"),
        format!("/sys/dev/block/{major}:{minor}/../queue/logical_block_size"),
    ];
    candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u32>().ok())
        .filter(|&size| size > 0)
        .map_or(
            DirectIoAlignment {
                memory: 4096,
                offset: 4096,
                source: AlignmentSource::Default,
            },
            |size| DirectIoAlignment {
                memory: size,
                offset: size,
                source: AlignmentSource::BlockDevice,
            },
        )
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
