//! `mmap(2)` and friends (`munmap`, `msync`, `madvise`, `mincore`): files mapped into memory, guarded
//! against truncation.
//!
//! [`MmapOptions::map`] maps a window of a file — at any offset, not only page multiples: the mapping
//! starts at the page below and [`Mmap::as_ptr`] points at the exact first byte — and registers it
//! with the [`sigbus`] guard, so another process truncating the file turns the pages
//! past its new end into zero pages instead of killing this process.
//!
//! ## Safety
//!
//! Creating and dropping a mapping is safe; reading or writing through it is not something Rust can
//! check. The memory is shared with the file: in [`Mode::Write`] other processes (and this one, through
//! `write(2)`) may change it at any time, which breaks the guarantees behind `&[u8]`. That is why
//! [`Mmap::as_slice`] is `unsafe` (as in `memmap2`) and the Node binding only hands out raw memory to
//! JavaScript, where shared mutable bytes are normal.
//!
//! What cannot happen, whatever other processes do: a fault killing the process. Pages past a
//! truncated end read as zeros and [`Mmap::is_stale`] turns true. Stray writes in [`Mode::Read`] land
//! in private copies of pages and never reach the file.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::ptr::NonNull;

use nix::errno::Errno;

use super::probe::page_size;
use super::sigbus::{self, Registration};
use crate::error::{Error, Result};
use crate::sys::counters::{counted, record, Syscall};

/// How a file is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Read-only intent, mapped `MAP_PRIVATE` with `PROT_READ | PROT_WRITE` and `MAP_NORESERVE`.
    ///
    /// JavaScript buffers are always writable, so a `PROT_READ` mapping would turn a stray write into
    /// a segfault. Privately writable, a write copies that one page into private memory: the file
    /// never changes. `MAP_NORESERVE` keeps the kernel from reserving swap for a copy of the whole
    /// file that will almost never be made.
    #[default]
    Read,
    /// `MAP_SHARED`, `PROT_READ | PROT_WRITE`: writes go to the file (after [`Mmap::sync`], or when
    /// the kernel writes dirty pages back). The file must be open for reading and writing. The
    /// mapping keeps a duplicate of the descriptor, so that [`Mmap::sync`] can find the file's
    /// current end after a truncation.
    Write,
    /// `MAP_PRIVATE`, `PROT_READ | PROT_WRITE`: a private copy-on-write view. Writes are kept in this
    /// process only. Unlike [`Mode::Read`], memory for the copies is reserved up front, so under
    /// strict overcommit a large copy-on-write mapping fails at `mmap` instead of at a later write.
    CopyOnWrite,
}

impl Mode {
    fn flags(self) -> libc::c_int {
        match self {
            Mode::Read => libc::MAP_PRIVATE | libc::MAP_NORESERVE,
            Mode::Write => libc::MAP_SHARED,
            Mode::CopyOnWrite => libc::MAP_PRIVATE,
        }
    }
}

/// `madvise(2)` advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(alias = "madvise")]
pub enum Advice {
    /// `MADV_NORMAL`: the default readahead.
    Normal,
    /// `MADV_SEQUENTIAL`: aggressive readahead; pages may be dropped soon after they are read.
    Sequential,
    /// `MADV_RANDOM`: no readahead.
    Random,
    /// `MADV_WILLNEED`: start reading the range into the page cache now (returns at once).
    WillNeed,
    /// `MADV_DONTNEED`: drop this process's page table entries. Shared mappings keep their data in the
    /// file and page cache; private mappings lose their private copies (the file's bytes show again).
    DontNeed,
    /// `MADV_HUGEPAGE`: allow transparent huge pages where the kernel supports them for files.
    HugePage,
    /// `MADV_NOHUGEPAGE`.
    NoHugePage,
    /// `MADV_COLD` (Linux 5.4+): these pages may be reclaimed first.
    Cold,
    /// `MADV_PAGEOUT` (Linux 5.4+): reclaim these pages now.
    PageOut,
    /// `MADV_POPULATE_READ` (Linux 5.14+): fault the range in now, read-only, waiting for the disk.
    PopulateRead,
}

impl Advice {
    fn raw(self) -> libc::c_int {
        match self {
            Advice::Normal => libc::MADV_NORMAL,
            Advice::Sequential => libc::MADV_SEQUENTIAL,
            Advice::Random => libc::MADV_RANDOM,
            Advice::WillNeed => libc::MADV_WILLNEED,
            Advice::DontNeed => libc::MADV_DONTNEED,
            Advice::HugePage => libc::MADV_HUGEPAGE,
            Advice::NoHugePage => libc::MADV_NOHUGEPAGE,
            Advice::Cold => libc::MADV_COLD,
            Advice::PageOut => libc::MADV_PAGEOUT,
            Advice::PopulateRead => libc::MADV_POPULATE_READ,
        }
    }
}

/// What to map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MmapOptions {
    /// How to map (default [`Mode::Read`]).
    pub mode: Mode,
    /// The file offset of the window's first byte; any value.
    pub offset: u64,
    /// The window's length in bytes; must be > 0 (a zero-length window needs no mapping).
    pub len: usize,
    /// Read the window's pages in before returning (see [`Mmap::populate`]).
    pub populate: bool,
}

/// `offset`/`length` checked against a file of `size` bytes: the window's length, or `None` when the
/// window does not fit inside the file. `length: None` means "to the end of the file".
pub fn window(size: u64, offset: u64, length: Option<u64>) -> Option<u64> {
    let available = size.checked_sub(offset)?;
    match length {
        None => Some(available),
        Some(len) if len <= available => Some(len),
        Some(_) => None,
    }
}

impl MmapOptions {
    /// Maps the window of `fd`'s file described by these options and registers it with the
    /// truncation guard.
    ///
    /// The caller checks the window against the file's size first ([`window`]): `mmap` itself happily
    /// maps past the end of a file, and those pages would fault (and read as zeros) at once.
    ///
    /// Errors: `EINVAL` for a zero length; `EACCES` for [`Mode::Write`] on a descriptor not open for
    /// reading and writing (or any mode on one not open for reading); `ENODEV` for files that cannot
    /// be mapped (pipes, sockets); `ENOMEM` when out of address space or guard slots; `EMFILE` when
    /// no descriptor is left for the duplicate a [`Mode::Write`] mapping keeps.
    ///
    /// See [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html).
    pub fn map(&self, fd: impl AsFd) -> Result<Mmap> {
        if self.len == 0 {
            return Err(Error::new(Errno::EINVAL, "mmap").with_detail("cannot map zero bytes"));
        }
        let page = page_size() as u64;
        let lead = self.offset % page;
        let map_offset = self.offset - lead;
        let map_len = usize::try_from(lead)
            .ok()
            .and_then(|lead| lead.checked_add(self.len))
            .and_then(|len| len.checked_next_multiple_of(page as usize))
            .ok_or_else(|| Error::new(Errno::ENOMEM, "mmap"))?;
        let map_offset =
            libc::off_t::try_from(map_offset).map_err(|_| Error::new(Errno::EOVERFLOW, "mmap"))?;
        let file = match self.mode {
            Mode::Write => Some(super::file::dup_cloexec(fd.as_fd())?),
            Mode::Read | Mode::CopyOnWrite => None,
        };
        // The guard must be in place before the first access could fault.
        sigbus::install()?;
        record(Syscall::Mmap);
        // SAFETY: a fresh mapping at an address the kernel chooses (no MAP_FIXED), so no existing
        // memory is affected; the fd is borrowed for the duration of the call only.
        let ret = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                self.mode.flags(),
                fd.as_fd().as_raw_fd(),
                map_offset,
            )
        };
        if ret == libc::MAP_FAILED {
            return Err(Error::last("mmap"));
        }
        let base =
            NonNull::new(ret.cast::<u8>()).ok_or_else(|| Error::new(Errno::ENOMEM, "mmap"))?;
        let mut mapping = Mmap {
            base,
            map_len,
            lead: lead as usize,
            len: self.len,
            offset: self.offset,
            mode: self.mode,
            guard: None,
            retired: false,
            stale: false,
            file,
        };
        // On failure `mapping` is dropped here, which unmaps it.
        mapping.guard = Some(sigbus::register(base.as_ptr() as usize, map_len)?);
        if self.populate {
            mapping.populate();
        }
        Ok(mapping)
    }
}

/// A mapped window of a file. Dropping it unregisters it from the truncation guard and unmaps it.
///
/// Its life: mapped; then, optionally, [retired](Mmap::retire) (the range holds zero pages, nothing
/// of the file, but stays reserved and guarded); then [released](Mmap::release) (unmapped) — or
/// [abandoned](Mmap::abandon) (retired and reserved for the rest of the process).
#[derive(Debug)]
pub struct Mmap {
    /// Page-aligned start of the whole mapping.
    base: NonNull<u8>,
    /// Length of the whole mapping, a multiple of the page size.
    map_len: usize,
    /// Bytes between `base` and the window's first byte (the offset's distance from the page below).
    lead: usize,
    /// The window's length.
    len: usize,
    /// The file offset of the window's first byte.
    offset: u64,
    mode: Mode,
    /// `None` only while the mapping is being created, or after [`Mmap::release`] / [`Mmap::abandon`].
    guard: Option<Registration>,
    /// [`Mmap::retire`] has replaced the range with anonymous zero pages.
    retired: bool,
    /// The guard's stale flag, kept once the file is no longer mapped.
    stale: bool,
    /// [`Mode::Write`]: a duplicate of the file's descriptor, for [`Mmap::sync`]; dropped on retire.
    file: Option<OwnedFd>,
}

/// What [`Mmap::sync`] wrote back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Synced {
    /// Bytes of the range written back to the file. 0 for private mappings, whose bytes never go to
    /// a file.
    pub bytes: usize,
    /// Bytes of the range the file no longer backs (past its current end, or replaced with zero pages
    /// by the truncation guard): what was written there is not in the file, and never will be.
    /// Always 0 for private mappings.
    pub lost: usize,
    /// [`Mode::Write`]: the file's size when the range was synced.
    pub file_size: Option<u64>,
}

// SAFETY: an Mmap owns an address range of this process, which every thread may use; the struct
// hands out raw pointers only, and its methods are system calls on that range.
unsafe impl Send for Mmap {}
// SAFETY: as above; `&Mmap` methods only make system calls and read atomics.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// The window's first byte, for reading.
    pub fn as_ptr(&self) -> *const u8 {
        self.first_byte().cast_const()
    }

    /// The window's first byte, for writing (a [`Mode::Read`] mapping faults on writes). Takes
    /// `&mut self`, as memmap2's `MmapMut::as_mut_ptr` does: writes go through a handle nothing else
    /// is using.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.first_byte()
    }

    fn first_byte(&self) -> *mut u8 {
        // SAFETY: `lead` < page size <= `map_len`, so the result stays inside the mapping.
        unsafe { self.base.as_ptr().add(self.lead) }
    }

    /// The window's length in bytes (always > 0).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an `Mmap` is never empty (a zero-length window is not mapped).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// How the window was mapped.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The window as a byte slice.
    ///
    /// # Safety
    /// Nothing may change the bytes while the slice lives: no writes through this mapping, and, for
    /// [`Mode::Write`], no other writer to the file. (A truncation is absorbed: the bytes past the new
    /// end become zeros — also a change, so the same caveat applies.)
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the window lies inside a live mapping; the caller promises no concurrent change.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// Whether a truncation has been absorbed: some page of the window (and every page after it)
    /// now reads as zeros instead of the file's bytes, and writes there reach no file. Once retired or
    /// released, whether that had happened by then.
    pub fn is_stale(&self) -> bool {
        self.stale || (self.is_mapped() && self.guard.as_ref().is_some_and(Registration::is_stale))
    }

    /// The file is still mapped: neither retired nor released.
    fn is_mapped(&self) -> bool {
        self.guard.is_some() && !self.retired
    }

    /// The page-aligned range covering window bytes `[offset, offset + len)`, checked to fit.
    fn pages(&self, offset: usize, len: usize, syscall: &'static str) -> Result<(*mut u8, usize)> {
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= self.len)
            .ok_or_else(|| {
                Error::new(Errno::EINVAL, syscall).with_detail("range outside the mapping")
            })?;
        let page = page_size();
        let from = (self.lead + offset) / page * page;
        let to = (self.lead + end).next_multiple_of(page).min(self.map_len);
        // SAFETY: `from` <= `to` <= `map_len`: inside the mapping.
        Ok((unsafe { self.base.as_ptr().add(from) }, to - from))
    }

    fn live(&self, syscall: &'static str) -> Result<()> {
        if !self.is_mapped() {
            return Err(Error::new(Errno::EBADF, syscall).with_detail("the mapping is closed"));
        }
        Ok(())
    }

    /// `madvise(2)` on window bytes `[offset, offset + len)` (widened to whole pages).
    ///
    /// See [madvise(2)](https://man7.org/linux/man-pages/man2/madvise.2.html).
    pub fn advise(&self, advice: Advice, offset: usize, len: usize) -> Result<()> {
        self.live("madvise")?;
        let (addr, len) = self.pages(offset, len, "madvise")?;
        if len == 0 {
            return Ok(());
        }
        record(Syscall::Mmap);
        // SAFETY: [addr, addr + len) lies inside our mapping; the advice values we pass never
        // change its contents except as documented on `Advice` (no MADV_REMOVE or MADV_FREE).
        let ret = unsafe { libc::madvise(addr.cast(), len, advice.raw()) };
        if ret != 0 {
            return Err(Error::last("madvise"));
        }
        Ok(())
    }

    /// Reads the whole window's pages in now, without copying them: `MADV_POPULATE_READ` (Linux
    /// 5.14+), else `MADV_WILLNEED` readahead. Best effort: failures are ignored (a file truncated in
    /// the meantime answers `EFAULT`; the pages then fault later and read as zeros).
    ///
    /// Not `MAP_POPULATE`: on a private writable mapping (modes `Read` and `CopyOnWrite`) it faults
    /// every page for writing, which copies the whole file into private memory.
    pub fn populate(&self) {
        if self.advise(Advice::PopulateRead, 0, self.len).is_err() {
            let _ = self.advise(Advice::WillNeed, 0, self.len);
        }
    }

    /// `msync(2)` on window bytes `[offset, offset + len)`: with `wait`, `MS_SYNC` (returns once the
    /// pages are written), else `MS_ASYNC`. Errors from writing back (`EIO`, `ENOSPC`) surface here.
    /// A no-op for private mappings, whose writes never reach the file.
    ///
    /// For [`Mode::Write`] only the part of the range the file still backs is synced: up to the file's
    /// current end (`fstat` on the kept descriptor), and short of the first page the truncation guard
    /// replaced with zeros. The rest is reported in [`Synced::lost`]: after a truncation the bytes
    /// before the new end still reach the file, and the caller learns exactly which did not.
    ///
    /// See [msync(2)](https://man7.org/linux/man-pages/man2/msync.2.html).
    pub fn sync(&self, wait: bool, offset: usize, len: usize) -> Result<Synced> {
        self.live("msync")?;
        self.pages(offset, len, "msync")?;
        let Some(file) = &self.file else {
            return Ok(Synced::default());
        };
        let file_size = super::file::fstat(file)?.st_size.max(0) as u64;
        let backed = self.backed(file_size);
        let end = (offset + len).min(backed);
        let bytes = end.saturating_sub(offset);
        let synced = Synced {
            bytes,
            lost: len - bytes,
            file_size: Some(file_size),
        };
        let (addr, pages) = self.pages(offset, bytes, "msync")?;
        if bytes == 0 || pages == 0 {
            return Ok(synced);
        }
        let flags = if wait { libc::MS_SYNC } else { libc::MS_ASYNC };
        let ret = counted(Syscall::Mmap, || {
            // SAFETY: [addr, addr + pages) lies inside our mapping; msync only writes pages back.
            Errno::result(unsafe { libc::msync(addr.cast(), pages, flags) })
        });
        ret.map(|_| synced).map_err(|e| Error::new(e, "msync"))
    }

    /// How many window bytes, from the first, the file of `file_size` bytes still backs: short of its
    /// end, and short of the first page the guard replaced with zeros.
    fn backed(&self, file_size: u64) -> usize {
        let to_end = usize::try_from(file_size.saturating_sub(self.offset)).unwrap_or(usize::MAX);
        let to_cut = match self.guard.as_ref().and_then(Registration::cut) {
            Some(cut) => cut.saturating_sub(self.as_ptr() as usize),
            None => usize::MAX,
        };
        self.len.min(to_end).min(to_cut)
    }

    /// `mincore(2)`: how many of the pages covering window bytes `[offset, offset + len)` are resident
    /// in memory (for a file mapping: in the page cache).
    pub fn residency(&self, offset: usize, len: usize) -> Result<Residency> {
        self.live("mincore")?;
        let (addr, len) = self.pages(offset, len, "mincore")?;
        mincore(addr, len)
    }

    /// Replaces the whole range with anonymous zero pages (`mmap` `MAP_FIXED`) but keeps it reserved
    /// and registered with the guard: for a window that something may still read or write after its
    /// owner is done with it. From then on reads see zeros, writes land in private memory and never
    /// reach the file, and no access can fault. Then [`release`](Self::release) it once nothing can
    /// reach it any more, or [`abandon`](Self::abandon) it.
    ///
    /// For [`Mode::Write`] the changes made until now are not lost: replacing a shared mapping hands
    /// its dirty pages to the page cache, as `munmap` does, and the kernel writes them back.
    /// Idempotent; on failure (`ENOMEM`) the file stays mapped, as before the call.
    pub fn retire(&mut self) -> Result<()> {
        if !self.is_mapped() {
            return Ok(());
        }
        record(Syscall::Mmap);
        // SAFETY: [base, base + map_len) is the mapping we created and still own (it is registered and
        // not released). Replacing it keeps every address valid and readable/writable, as it was.
        let ret = unsafe {
            libc::mmap(
                self.base.as_ptr().cast(),
                self.map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ret == libc::MAP_FAILED {
            return Err(Error::last("mmap"));
        }
        // A fault taken before the replacement may still be in its handler on another thread; it
        // finds the range registered and pastes zero pages over zero pages. The stale flag it may set
        // now no longer counts.
        self.stale = self.is_stale();
        self.retired = true;
        self.file = None;
        Ok(())
    }

    /// Retires the range (if it can) and keeps it reserved and guarded for the rest of the process:
    /// for a window something may still reach when no one will say when it stops. Leaks the address
    /// range (zero pages, no memory until written) and one guard slot.
    pub fn abandon(&mut self) {
        if self.guard.is_none() {
            return;
        }
        // If the replacement fails the file stays mapped and guarded: still no fault can kill us.
        let _ = self.retire();
        if !self.retired {
            self.stale = self.is_stale();
        }
        self.file = None;
        if let Some(guard) = self.guard.take() {
            std::mem::forget(guard);
        }
    }

    /// Unregisters and unmaps the window now, leaving the stale flag readable. Idempotent. Whoever
    /// calls this must make sure nothing touches the memory any more (the Node binding detaches the
    /// JavaScript buffer first, or waits for its backing store to be freed).
    pub fn release(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        self.stale = self.is_stale() || (!self.retired && guard.is_stale());
        self.file = None;
        // Unregister before unmapping: the handler must never claim a range someone else may map next.
        drop(guard);
        record(Syscall::Mmap);
        // SAFETY: [base, base + map_len) is the mapping we created; nothing uses it any more (the
        // caller's promise, or Drop's exclusive access). munmap cannot fail for a range we mapped.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.map_len) };
    }

    /// Whether [`release`](Self::release) (or [`abandon`](Self::abandon)) has run.
    pub fn is_released(&self) -> bool {
        self.guard.is_none()
    }

    /// Whether the file is no longer mapped: retired, released or abandoned.
    pub fn is_retired(&self) -> bool {
        !self.is_mapped()
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        self.release();
    }
}

/// What `mincore(2)` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Residency {
    /// Pages in the range.
    pub pages: u64,
    /// Pages resident in memory (in the page cache, for files).
    pub resident: u64,
}

/// Counts the resident pages of `[addr, addr + len)` (page-aligned `addr`), in bounded chunks.
fn mincore(addr: *mut u8, len: usize) -> Result<Residency> {
    /// Pages asked about per call: bounds the vector to 64 KiB whatever the range.
    const CHUNK_PAGES: usize = 1 << 16;
    let page = page_size();
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages.min(CHUNK_PAGES)];
    let mut out = Residency {
        pages: pages as u64,
        resident: 0,
    };
    let mut done = 0;
    while done < pages {
        let n = (pages - done).min(CHUNK_PAGES);
        // SAFETY: the caller passes a range inside one of our mappings; `vec` holds >= n bytes, one per
        // page asked about. mincore only reads page tables and writes `vec`.
        let ret =
            unsafe { libc::mincore(addr.add(done * page).cast(), n * page, vec.as_mut_ptr()) };
        if ret != 0 {
            return Err(Error::last("mincore"));
        }
        out.resident += vec[..n].iter().filter(|&&b| b & 1 != 0).count() as u64;
        done += n;
    }
    Ok(out)
}

/// How much of a file is in the page cache: maps it (read-only, never touched, in 1 GiB pieces),
/// asks `mincore(2)`, unmaps.
///
/// Since Linux 5.0 the kernel answers for pages not mapped by this process only if the caller owns
/// the file or could open it for writing; otherwise those pages count as not resident.
///
/// See [mincore(2)](https://man7.org/linux/man-pages/man2/mincore.2.html).
pub fn file_residency(fd: impl AsFd) -> Result<Residency> {
    /// Bytes mapped at once: bounds the address space used, whatever the file's size.
    const PIECE: u64 = 1 << 30;
    let fd = fd.as_fd();
    let size = super::file::fstat(fd)?.st_size.max(0) as u64;
    let mut out = Residency::default();
    let mut at = 0u64;
    while at < size {
        let len = (size - at).min(PIECE) as usize;
        let off = libc::off_t::try_from(at).map_err(|_| Error::new(Errno::EOVERFLOW, "mmap"))?;
        // SAFETY: a fresh read-only mapping at a kernel-chosen address; it is never accessed (mincore
        // reads page tables and the page cache, not the pages), so it cannot fault.
        let ret = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                off,
            )
        };
        if ret == libc::MAP_FAILED {
            return Err(Error::last("mmap"));
        }
        let piece = mincore(ret.cast(), len);
        // SAFETY: unmaps exactly the mapping created above, which nothing else knows of.
        unsafe { libc::munmap(ret, len) };
        let piece = piece?;
        out.pages += piece.pages;
        out.resident += piece.resident;
        at += len as u64;
    }
    Ok(out)
}
