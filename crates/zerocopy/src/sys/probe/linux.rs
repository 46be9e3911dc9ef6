//! The Linux probes: the kernel's system calls, and real files on a filesystem.

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag};
use nix::sys::stat::{Mode, SFlag};

use super::{
    fs_name, page_size, AlignmentSource, DirectIoAlignment, FsCapabilities, KernelCapabilities,
};
use crate::error::{Result, SyscallExt};
use crate::sys::{copy_range, file, reflink};

/// The capabilities of the filesystem holding `path` (a file or a directory), cached per device.
///
/// Errors only when `path` itself cannot be examined (e.g. `ENOENT`).
pub fn filesystem(path: &Path) -> Result<FsCapabilities> {
    static CACHE: OnceLock<Mutex<HashMap<u64, FsCapabilities>>> = OnceLock::new();
    let st = file::stat(path)?;
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

pub(super) fn probe_kernel() -> KernelCapabilities {
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
            file::unlink(&name)?;
            Ok(fd)
        }
        Err(e) => Err(e),
    }
}

/// Whether the filesystem accepts O_DIRECT for this file (`fcntl(F_SETFL)` refuses with EINVAL if not).
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
