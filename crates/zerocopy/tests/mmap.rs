//! sys::mmap: windows at any offset, the three modes, msync/madvise/mincore, unmapping.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::fs;

use common::*;
use zerocopy_io::sys::mmap::{self, Advice, Mmap, MmapOptions, Mode, Synced};
use zerocopy_io::sys::probe::page_size;
use zerocopy_io::Errno;

fn map(file: &fs::File, mode: Mode, offset: u64, len: usize) -> Mmap {
    MmapOptions {
        mode,
        offset,
        len,
        populate: false,
    }
    .map(file)
    .unwrap()
}

/// A copy of the window's bytes.
fn bytes(m: &Mmap) -> Vec<u8> {
    // SAFETY: nothing writes to these mappings while the copy is made.
    unsafe { m.as_slice() }.to_vec()
}

fn write_byte(m: &mut Mmap, at: usize, value: u8) {
    assert!(at < m.len());
    // SAFETY: `at` is inside the window; no slice over it is alive.
    unsafe { m.as_mut_ptr().add(at).write_volatile(value) };
}

/// Lines of /proc/self/maps: one per mapping of this process.
fn maps_count() -> usize {
    fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

/// The resident anonymous memory of this process, in KiB (private copies of file pages count here).
fn rss_anon_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn window_checks_ranges_against_the_file_size() {
    assert_eq!(mmap::window(100, 0, None), Some(100));
    assert_eq!(mmap::window(100, 30, None), Some(70));
    assert_eq!(mmap::window(100, 100, None), Some(0));
    assert_eq!(mmap::window(100, 30, Some(70)), Some(70));
    assert_eq!(mmap::window(100, 30, Some(71)), None);
    assert_eq!(mmap::window(100, 101, None), None);
    assert_eq!(mmap::window(100, 101, Some(0)), None);
    assert_eq!(mmap::window(0, 0, None), Some(0));
    assert_eq!(mmap::window(u64::MAX, u64::MAX - 1, Some(1)), Some(1));
}

#[test]
fn windows_at_odd_offsets_hold_exactly_the_files_bytes() {
    let dir = disk_dir();
    let page = page_size();
    let size = 5 * page + 123;
    let (path, data) = make_file(dir.path(), "f", size, 7);
    let file = open_read(&path);
    let cases = [
        (0, size),
        (1, 1),
        (1, size - 1),
        (page - 1, 2),
        (page, page),
        (page + 1, 3 * page),
        (3 * page - 7, 2 * page + 130),
        (size - 1, 1),
        (4095, 4097),
    ];
    for (offset, len) in cases {
        let m = map(&file, Mode::Read, offset as u64, len);
        assert_eq!(m.len(), len);
        assert_eq!(
            bytes(&m),
            &data[offset..offset + len],
            "offset {offset} len {len}"
        );
        assert_eq!(
            m.as_ptr() as usize % page,
            offset % page,
            "mapped from the page below"
        );
    }
}

#[test]
fn write_mode_reaches_the_file_after_sync() {
    let dir = disk_dir();
    let (path, mut data) = make_file(dir.path(), "f", 3 * page_size() + 5, 8);
    let file = open_rw(&path);
    let mut m = map(&file, Mode::Write, 17, 2 * page_size());
    for (i, at) in [0usize, 1, page_size(), 2 * page_size() - 1]
        .into_iter()
        .enumerate()
    {
        write_byte(&mut m, at, 0xA0 + i as u8);
        data[17 + at] = 0xA0 + i as u8;
    }
    m.sync(true, 0, m.len()).unwrap();
    assert_eq!(read(&path), data);
    m.sync(false, 1, 10).unwrap();
    let err = m.sync(true, 1, m.len()).unwrap_err();
    assert_eq!((err.errno(), err.syscall()), (Errno::EINVAL, "msync"));
}

/// Dirty pages of `file` in the page cache (`cachestat(2)`, Linux 6.5+); `None` without it.
fn dirty_pages(file: &fs::File) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let range = [0u64, 0]; // offset 0, length 0: the whole file
    let mut stat = [0u64; 5]; // nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted
                              // SAFETY: cachestat reads `range` and writes `stat`, both laid out as the kernel expects.
    let ret = unsafe {
        libc::syscall(
            451,
            file.as_raw_fd(),
            range.as_ptr(),
            stat.as_mut_ptr(),
            0u32,
        )
    };
    (ret == 0).then_some(stat[1])
}

#[test]
fn after_a_truncation_sync_writes_what_the_file_still_backs_and_reports_the_rest() {
    let page = page_size();
    let dir = disk_dir();
    let (path, mut data) = make_file(dir.path(), "f", 8 * page, 40);
    let file = open_rw(&path);
    let mut m = map(&file, Mode::Write, 0, 8 * page);
    // Two writes before the coming truncation point, one past it.
    for at in [10, 2 * page + 7, 5 * page] {
        write_byte(&mut m, at, 0xEE);
        data[at] = 0xEE;
    }
    let dirty_before = dirty_pages(&file);
    let keep = 3 * page + 100;
    file.set_len(keep as u64).unwrap();
    assert_eq!(
        read_byte(&m, 6 * page),
        0,
        "a page past the new end reads zero"
    );
    assert!(m.is_stale());

    let synced = m.sync(true, 0, m.len()).unwrap();
    let size = Some(keep as u64);
    assert_eq!(
        synced,
        Synced {
            bytes: keep,
            lost: 8 * page - keep,
            file_size: size
        }
    );
    if let Some(before) = dirty_before {
        assert!(before >= 3, "{before} dirty pages after three writes");
        assert_eq!(
            dirty_pages(&file),
            Some(0),
            "msync wrote the pages before the end back"
        );
    }
    assert_eq!(read(&path), &data[..keep]);

    let sync = |offset, len| m.sync(true, offset, len).unwrap();
    let synced = |bytes, lost, file_size| Synced {
        bytes,
        lost,
        file_size,
    };
    assert_eq!(sync(10, 100), synced(100, 0, size), "wholly before the end");
    assert_eq!(sync(keep - 1, 2), synced(1, 1, size), "across it");
    assert_eq!(sync(4 * page, 10), synced(0, 10, size), "wholly past it");
    // Grown back, the file backs the window again only up to the first page the guard replaced
    // with zeros (page 6): what is written there goes to private memory, not to the file.
    file.set_len(8 * page as u64).unwrap();
    assert_eq!(
        sync(0, 8 * page),
        synced(6 * page, 2 * page, Some(8 * page as u64))
    );
}

#[test]
fn private_mappings_sync_nothing_and_lose_nothing() {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 2 * page_size(), 41);
    for mode in [Mode::Read, Mode::CopyOnWrite] {
        let m = map(&open_read(&path), mode, 0, 2 * page_size());
        assert_eq!(m.sync(true, 0, m.len()).unwrap(), Synced::default());
    }
}

#[test]
fn read_and_copy_on_write_modes_never_change_the_file() {
    let dir = disk_dir();
    let (path, data) = make_file(dir.path(), "f", 2 * page_size(), 9);
    let file = open_read(&path);
    for mode in [Mode::Read, Mode::CopyOnWrite] {
        let mut m = map(&file, mode, 3, 2 * page_size() - 3);
        write_byte(&mut m, 0, !data[3]);
        write_byte(&mut m, page_size(), !data[3 + page_size()]);
        assert_eq!(
            bytes(&m)[0],
            !data[3],
            "{mode:?}: the write is visible here"
        );
        m.sync(true, 0, m.len()).unwrap();
        drop(m);
        assert_eq!(read(&path), data, "{mode:?}: the file is unchanged");
    }
}

#[test]
fn write_mode_needs_a_read_write_descriptor() {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 100, 10);
    let err = MmapOptions {
        mode: Mode::Write,
        len: 100,
        ..Default::default()
    }
    .map(open_read(&path))
    .unwrap_err();
    assert_eq!((err.errno(), err.syscall()), (Errno::EACCES, "mmap"));
    let err = MmapOptions {
        len: 100,
        ..Default::default()
    }
    .map(open_write(&path))
    .unwrap_err();
    assert_eq!(
        (err.errno(), err.syscall()),
        (Errno::EACCES, "mmap"),
        "write-only fd"
    );
    let err = MmapOptions::default().map(open_read(&path)).unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL, "zero length");
}

#[test]
fn offsets_above_4_gib_work_in_sparse_files() {
    let dir = disk_dir();
    let path = dir.path().join("sparse");
    let at = (5u64 << 30) + 12_345;
    sparse_file(&path, at + 100, &[(at, b"deep marker")]);
    let m = map(&open_read(&path), Mode::Read, at - 2, 13);
    assert_eq!(bytes(&m), b"\0\0deep marker");
}

#[test]
fn every_advice_is_accepted_and_ranges_are_checked() {
    let dir = disk_dir();
    let (path, data) = make_file(dir.path(), "f", 4 * page_size(), 11);
    let m = map(&open_read(&path), Mode::Read, 1, 4 * page_size() - 1);
    for advice in [
        Advice::Normal,
        Advice::Sequential,
        Advice::Random,
        Advice::WillNeed,
        Advice::Cold,
        Advice::PageOut,
        Advice::PopulateRead,
        Advice::NoHugePage,
        Advice::DontNeed,
    ] {
        m.advise(advice, 0, m.len())
            .unwrap_or_else(|e| panic!("{advice:?}: {e}"));
        m.advise(advice, 5, 10).unwrap();
    }
    assert_eq!(bytes(&m), &data[1..], "no advice changes the bytes");
    let err = m.advise(Advice::Normal, m.len(), 1).unwrap_err();
    assert_eq!((err.errno(), err.syscall()), (Errno::EINVAL, "madvise"));
    m.advise(Advice::Normal, m.len(), 0).unwrap();
}

#[test]
fn dontneed_drops_private_copies_in_read_mode() {
    let dir = disk_dir();
    let (path, data) = make_file(dir.path(), "f", page_size(), 12);
    let mut m = map(&open_read(&path), Mode::Read, 0, page_size());
    write_byte(&mut m, 10, !data[10]);
    m.advise(Advice::DontNeed, 0, m.len()).unwrap();
    assert_eq!(
        bytes(&m),
        data,
        "the stray write is gone, the file's bytes are back"
    );
}

#[test]
fn populate_reads_pages_in_without_copying_them() {
    let dir = disk_dir();
    let size = 32 << 20;
    let (path, _) = make_file(dir.path(), "f", size, 13);
    for mode in [Mode::Read, Mode::CopyOnWrite] {
        let before = rss_anon_kib();
        let m = MmapOptions {
            mode,
            len: size,
            populate: true,
            ..Default::default()
        }
        .map(open_read(&path))
        .unwrap();
        let r = m.residency(0, m.len()).unwrap();
        assert_eq!(r.pages, (size / page_size()) as u64);
        assert_eq!(r.resident, r.pages, "{mode:?}: all in memory");
        let grown = rss_anon_kib().saturating_sub(before);
        assert!(
            grown < 8 << 10,
            "{mode:?}: populating copied {grown} KiB into private memory"
        );
    }
}

#[test]
fn residency_counts_pages_in_the_page_cache() {
    let dir = disk_dir();
    let page = page_size();
    let (path, _) = make_file(dir.path(), "f", 10 * page + 1, 14);
    let file = open_read(&path);
    file.sync_all().unwrap();
    // SAFETY: posix_fadvise only drops clean cached pages of this file.
    let ret = unsafe {
        libc::posix_fadvise(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
            0,
            libc::POSIX_FADV_DONTNEED,
        )
    };
    assert_eq!(ret, 0);
    assert_eq!(
        mmap::file_residency(&file).unwrap(),
        mmap::Residency {
            pages: 11,
            resident: 0
        }
    );
    let m = map(&file, Mode::Read, page as u64 + 5, 3 * page);
    let r = m.residency(0, m.len()).unwrap();
    assert_eq!(
        (r.pages, r.resident),
        (4, 0),
        "a window 5 bytes into a page spans 4 pages"
    );
    // No readahead, so faulting the window in reads exactly its pages.
    m.advise(Advice::Random, 0, m.len()).unwrap();
    let _ = bytes(&m);
    assert_eq!(m.residency(0, m.len()).unwrap().resident, 4);
    assert_eq!(m.residency(0, 1).unwrap().pages, 1);
    assert_eq!(mmap::file_residency(&file).unwrap().resident, 4);
    let empty = dir.path().join("empty");
    fs::write(&empty, b"").unwrap();
    assert_eq!(
        mmap::file_residency(open_read(&empty)).unwrap(),
        mmap::Residency::default()
    );
}

#[test]
fn release_unmaps_once_and_later_calls_fail_cleanly() {
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 3 * page_size(), 15);
    let file = open_read(&path);
    let before = maps_count();
    let mut m = map(&file, Mode::Read, 0, 3 * page_size());
    assert_eq!(maps_count(), before + 1);
    m.release();
    assert!(m.is_released());
    assert_eq!(maps_count(), before);
    m.release();
    for err in [
        m.sync(true, 0, 1).unwrap_err(),
        m.advise(Advice::Normal, 0, 1).unwrap_err(),
        m.residency(0, 1).unwrap_err(),
    ] {
        assert_eq!(err.errno(), Errno::EBADF);
    }
    assert!(!m.is_stale());
}

#[test]
fn thousands_of_mappings_come_and_go_without_leaking_maps_or_fds() {
    let dir = disk_dir();
    let (path, data) = make_file(dir.path(), "f", 3 * page_size(), 16);
    let maps_before = maps_count();
    let fds_before = open_fds();
    let mut alive = Vec::new();
    for i in 0..5000 {
        let file = open_read(&path);
        let m = map(&file, Mode::Read, (i % 100) as u64, 100);
        assert_eq!(bytes(&m)[0], data[i % 100]);
        alive.push(m);
        if alive.len() == 1000 {
            alive.clear();
        }
    }
    alive.clear();
    assert_eq!(maps_count(), maps_before);
    assert_eq!(open_fds(), fds_before, "a mapping keeps no fd open");
}
