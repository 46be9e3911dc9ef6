//! Direct I/O plumbing: `O_DIRECT` opens, alignment discovery per file, aligned memory,
//! `sync_file_range` (and [`fadvise`](super::fadvise)) to leave the page cache alone.
//!
//! With `O_DIRECT` the kernel moves data by DMA straight between the device and the caller's memory,
//! bypassing the page cache — provided the memory address, the file offset and the length are all
//! aligned as the filesystem demands ([`alignment`]). Anything else is `EINVAL`. The engine that makes
//! unaligned requests work anyway lives in [`crate::direct`].

use std::alloc::Layout;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use crate::error::{retry_eintr, Error, Result, SyscallExt};
use crate::sys::file;
use crate::sys::probe::{self, DirectIoAlignment};

/// `open(path, flags | O_DIRECT | O_CLOEXEC, mode)`.
///
/// A filesystem that cannot do Direct I/O (ramfs, some FUSE and overlay setups, procfs) refuses the
/// open with `EINVAL` — after creating the file if `O_CREAT` asked for it.
pub fn open(path: &Path, flags: OFlag, mode: Mode) -> Result<OwnedFd> {
    file::open(path, flags | OFlag::O_DIRECT, mode)
}

/// The O_DIRECT alignment of the open file `fd`: `statx(STATX_DIOALIGN)` where the kernel (6.1+) and
/// the filesystem answer; else the logical block size of the block device behind it (of the device
/// itself when `fd` is a block device); else 4096 for both, which every Linux block device accepts.
pub fn alignment(fd: impl AsFd) -> Result<DirectIoAlignment> {
    let fd = fd.as_fd();
    if let Some(found) = probe::statx_dio_alignment(fd) {
        return Ok(found);
    }
    let st = file::fstat(fd)?;
    let dev = if file::file_type(&st) == SFlag::S_IFBLK {
        st.st_rdev
    } else {
        st.st_dev
    };
    Ok(probe::block_device_alignment(dev))
}

/// The O_DIRECT alignment of the file at `path`, when it is a regular file or a block device (`None`
/// for directories and the rest): as [`alignment`], through an `O_PATH` descriptor, so it needs no
/// permission to read the file.
pub fn path_alignment(path: &Path) -> Result<Option<DirectIoAlignment>> {
    let fd = file::open(path, OFlag::O_PATH, Mode::empty())?;
    let kind = file::file_type(&file::fstat(&fd).map_err(|e| e.with_path(path))?);
    if kind != SFlag::S_IFREG && kind != SFlag::S_IFBLK {
        return Ok(None);
    }
    alignment(&fd).map(Some).map_err(|e| e.with_path(path))
}

/// Whether `value` is a multiple of `align` (a power of two; 0 and 1 accept everything).
#[inline]
pub fn is_aligned(value: u64, align: u32) -> bool {
    align <= 1 || value % u64::from(align) == 0
}

/// The address of `buf`'s first byte modulo `align`: 0 when the memory suits O_DIRECT.
#[inline]
pub fn misalignment(buf: &[u8], align: u32) -> u32 {
    if align <= 1 {
        return 0;
    }
    // The remainder is below `align`, a u32.
    (buf.as_ptr() as usize % align as usize) as u32
}

/// `sync_file_range(fd, offset, len, WAIT_BEFORE | WRITE | WAIT_AFTER)`: writes the range's dirty pages
/// back and waits for them, so that [`fadvise`](super::fadvise::fadvise)`(DONTNEED)` can drop them afterwards.
///
/// Not a durability guarantee: no metadata, no device cache flush (that is `fdatasync`).
pub fn sync_range(fd: impl AsFd, offset: u64, len: u64) -> Result<()> {
    let offset = i64::try_from(offset).map_err(|_| Error::new(Errno::EINVAL, "sync_file_range"))?;
    let len = i64::try_from(len).unwrap_or(0);
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    let fd = fd.as_fd().as_raw_fd();
    retry_eintr(|| {
        // SAFETY: plain integers; the kernel validates the fd and the range.
        let ret = unsafe { libc::sync_file_range(fd, offset, len, flags) };
        Errno::result(ret).map(drop)
    })
    .syscall("sync_file_range")
}

/// The transparent huge page size (2 MiB on x86-64), or `None` where transparent huge pages are
/// unavailable or switched off (`/sys/kernel/mm/transparent_hugepage/enabled` is `[never]`).
pub fn huge_page_size() -> Option<usize> {
    let base = Path::new("/sys/kernel/mm/transparent_hugepage");
    let enabled = std::fs::read_to_string(base.join("enabled")).ok()?;
    if enabled.contains("[never]") {
        return None;
    }
    std::fs::read_to_string(base.join("hpage_pmd_size"))
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&size: &usize| size.is_power_of_two() && size > probe::page_size())
}

/// `MADV_COLLAPSE` (Linux 6.1+), which the libc crate does not name yet.
const MADV_COLLAPSE: libc::c_int = 25;

/// Asks for the whole huge pages inside `buf` to be backed by transparent huge pages:
/// `madvise(MADV_HUGEPAGE)` for pages not yet touched, then `madvise(MADV_COLLAPSE)` to convert the
/// ones already there. Returns whether the collapse succeeded (best effort: older kernels, `never`
/// mode or fragmented memory just leave small pages).
///
/// Why Direct I/O cares: each request's memory is a list of physically contiguous segments, and a
/// device takes a bounded number (254 for virtio-blk). With 4 KiB pages that caps a request near
/// 1 MiB; with 2 MiB pages a request can be as large as the device allows. On a test VM this took
/// 8 MiB O_DIRECT reads from about 650 to 1800 MiB/s.
pub fn hugepage_hint(buf: &[u8]) -> bool {
    let Some(huge) = huge_page_size() else {
        return false;
    };
    let addr = buf.as_ptr() as usize;
    let start = addr.next_multiple_of(huge);
    let end = (addr + buf.len()) / huge * huge;
    if start >= end {
        return false;
    }
    let (ptr, len) = (start as *mut libc::c_void, end - start);
    // SAFETY: `ptr..ptr+len` lies inside `buf`, memory of this process that stays valid for the call;
    // neither advice changes the bytes (a collapse copies them into a huge page, and the kernel keeps
    // the mapping consistent for any other thread).
    unsafe {
        libc::madvise(ptr, len, libc::MADV_HUGEPAGE);
        libc::madvise(ptr, len, MADV_COLLAPSE) == 0
    }
}

/// Zero-filled heap memory whose address is a multiple of a chosen alignment: the bounce buffer of
/// unaligned Direct I/O.
///
/// A `Vec<u8>` only promises 1-byte alignment, and O_DIRECT wants the block size (512 or 4096).
#[derive(Debug)]
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
    len: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively (like Box<[u8]>); nothing about it is tied to a thread.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only hands out `&[u8]`, as `Box<[u8]>` does.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// `len` zero bytes at an address that is a multiple of `align` (a power of two).
    ///
    /// Fails with `EINVAL` for an alignment that is not a power of two, `ENOMEM` when the allocator
    /// has no memory.
    pub fn zeroed(len: usize, align: usize) -> Result<AlignedBuf> {
        // A zero-size allocation is not allowed; one aligned block keeps the pointer meaningful.
        let layout = Layout::from_size_align(len.max(align).max(1), align.max(1))
            .map_err(|_| Error::new(Errno::EINVAL, "alloc"))?;
        // SAFETY: the layout has a non-zero size (at least 1, see above).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| Error::new(Errno::ENOMEM, "alloc"))?;
        Ok(AlignedBuf { ptr, layout, len })
    }

    /// The alignment the buffer was made with.
    pub fn align(&self) -> usize {
        self.layout.align()
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` points to an allocation of at least `len` initialised (zeroed) bytes that
        // this value owns for its whole life.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with exactly this layout and is freed once, here.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// `ioctl(fd, BLKGETSIZE64)`: the size in bytes of the block device `fd` (whose `st_size` is 0).
#[doc(alias = "BLKGETSIZE64")]
pub fn block_device_size(fd: impl AsFd) -> Result<u64> {
    // BLKGETSIZE64 is _IOR(0x12, 114, size_t); the libc crate does not name it.
    const BLKGETSIZE64: libc::Ioctl =
        nix::request_code_read!(0x12, 114, std::mem::size_of::<u64>()) as libc::Ioctl;
    let fd = fd.as_fd().as_raw_fd();
    let mut size: u64 = 0;
    retry_eintr(|| {
        // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at `size` and
        // outlives the call.
        let ret = unsafe { libc::ioctl(fd, BLKGETSIZE64, &mut size as *mut u64) };
        Errno::result(ret).map(drop)
    })
    .syscall("ioctl_blkgetsize64")?;
    Ok(size)
}
