//! direct (and sys::direct): O_DIRECT reads and writes on real files, the alignment rules, the bounce
//! buffer, the buffered fallback on a filesystem that refuses O_DIRECT (ramfs), page-cache residency.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use common::*;
use nix::fcntl::{OFlag, PosixFadviseAdvice};
use zerocopy_io::direct::{DirectFile, Fallback, Mechanism, OpenOptions, Step, Unaligned};
use zerocopy_io::sys::direct::{self as sys, AlignedBuf};
use zerocopy_io::sys::probe::AlignmentSource;
use zerocopy_io::Errno;

const MIB: usize = 1 << 20;

/// `no_descriptor_outlives_its_file` counts the process's fds, which the other tests, running on
/// other threads, open and close: it runs alone (write), they run together (read).
static FDS: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn sharing_fds() -> std::sync::RwLockReadGuard<'static, ()> {
    FDS.read().unwrap_or_else(|p| p.into_inner())
}

fn options(flags: OFlag) -> OpenOptions {
    OpenOptions {
        flags,
        ..OpenOptions::default()
    }
}

fn rw_create() -> OpenOptions {
    options(OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_TRUNC)
}

/// Reads `len` bytes at `at` step by step (small budgets, to cross step boundaries).
fn read_all(file: &DirectFile, buf: &mut [u8], at: u64, unaligned: Unaligned) -> usize {
    let mut done = 0;
    while done < buf.len() {
        let step = file
            .read_step(&mut buf[done..], at + done as u64, 3 * MIB, unaligned)
            .unwrap();
        done += step.bytes;
        if step.eof {
            break;
        }
    }
    done
}

fn write_all(file: &DirectFile, buf: &[u8], at: u64, unaligned: Unaligned) {
    let mut done = 0;
    while done < buf.len() {
        let step = file
            .write_step(&buf[done..], at + done as u64, 3 * MIB, unaligned)
            .unwrap();
        assert!(step.bytes > 0);
        done += step.bytes;
    }
}

fn aligned_copy(data: &[u8], align: usize) -> AlignedBuf {
    let mut buf = AlignedBuf::zeroed(data.len(), align).unwrap();
    buf.copy_from_slice(data);
    buf
}

/// Writes dirty pages back and asks the kernel to drop the file from the page cache.
fn make_cold(path: &Path) {
    let f = File::open(path).unwrap();
    f.sync_all().unwrap();
    zerocopy_io::sys::fadvise::fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
}

fn resident_fraction(path: &Path) -> f64 {
    let r = zerocopy_io::sys::mmap::file_residency(File::open(path).unwrap()).unwrap();
    if r.pages == 0 {
        0.0
    } else {
        r.resident as f64 / r.pages as f64
    }
}

#[test]
fn files_on_disk_open_direct_with_the_filesystems_alignment() {
    let _fds = sharing_fds();
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 10_000, 1);
    let file = DirectFile::open(&path, &OpenOptions::default()).unwrap();
    assert_eq!(file.mechanism(), Mechanism::Direct);
    assert_eq!(file.path(), Some(path.as_path()));
    assert_eq!(file.size().unwrap(), 10_000);
    let a = file.alignment();
    assert!(
        a.offset.is_power_of_two() && a.offset >= 512 && a.offset <= 65536,
        "{a:?}"
    );
    assert!(
        a.memory.is_power_of_two() && a.memory <= a.offset.max(4096),
        "{a:?}"
    );
    let flags = nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
    assert!(OFlag::from_bits_truncate(flags).contains(OFlag::O_DIRECT));
    // The same figures as the per-fd and per-path helpers and, on ext4 with Linux 6.1+, from statx.
    assert_eq!(sys::alignment(file.as_fd()).unwrap(), a);
    assert_eq!(sys::path_alignment(&path).unwrap(), Some(a));
    assert_eq!(
        sys::path_alignment(dir.path()).unwrap(),
        None,
        "a directory"
    );
    if zerocopy_io::sys::probe::filesystem(dir.path())
        .unwrap()
        .fs_type
        == "ext4"
    {
        assert_eq!(a.source, AlignmentSource::Statx);
    }
}

#[test]
fn round_trips_of_every_awkward_size() {
    let _fds = sharing_fds();
    let dir = disk_dir();
    for (i, &size) in [0usize, 1, 511, 4096, 4097, MIB + 1].iter().enumerate() {
        let data = pattern(size, i as u64 + 10);
        let path = dir.path().join(format!("rt-{size}"));
        let file = DirectFile::open(&path, &rw_create()).unwrap();
        write_all(&file, &data, 0, Unaligned::Bounce);
        assert_eq!(
            file.size().unwrap(),
            size as u64,
            "exact length after the padded last block"
        );
        drop(file);
        assert_eq!(read(&path), data, "size {size} as written");
        make_cold(&path);
        let file = DirectFile::open(&path, &OpenOptions::default()).unwrap();
        let mut back = vec![0u8; size + 100];
        assert_eq!(read_all(&file, &mut back, 0, Unaligned::Bounce), size);
        assert_eq!(&back[..size], &data[..], "size {size} read back");
    }
}

#[test]
fn aligned_requests_go_straight_through_and_short_reads_mean_end_of_file() {
    let _fds = sharing_fds();
    let dir = disk_dir();
    let (path, data) = make_file(dir.path(), "f", 3 * 4096 + 100, 2);
    let file = DirectFile::open(&path, &OpenOptions::default()).unwrap();
    let mut buf = AlignedBuf::zeroed(4 * 4096, 4096).unwrap();
    let step = file
        .read_step(&mut buf, 4096, usize::MAX, Unaligned::Error)
        .unwrap();
    assert_eq!(
        step,
        Step {
            bytes: 2 * 4096 + 100,
            eof: true
        }
    );
    assert_eq!(&buf[..step.bytes], &data[4096..]);
    let step = file
        .read_step(&mut buf, 16 * 4096, usize::MAX, Unaligned::Error)
        .unwrap();
    assert_eq!(
        step,
        Step {
            bytes: 0,
            eof: true
        },
        "past the end"
    );
    let step = file
        .read_step(&mut buf[..0], 0, usize::MAX, Unaligned::Error)
        .unwrap();
    assert_eq!(step.bytes, 0, "empty buffer");

    // A budget below the request moves whole blocks and leaves the rest to the next step.
    let block = file.alignment().offset as usize;
    let step = file.read_step(&mut buf, 0, 5000, Unaligned::Error).unwrap();
    assert_eq!(
        step,
        Step {
            bytes: 5000 - 5000 % block,
            eof: false
        }
    );

    let out = dir.path().join("out");
    let file = DirectFile::open(&out, &rw_create()).unwrap();
    let src = aligned_copy(&pattern(8192, 3), 4096);
    let step = file
        .write_step(&src, 4096, usize::MAX, Unaligned::Error)
        .unwrap();
    assert_eq!(
        step,
        Step {
            bytes: 8192,
            eof: false
        }
    );
    assert_eq!(file.size().unwrap(), 3 * 4096);
    assert_eq!(read_at(&out, 4096, 8192), src.to_vec());
    file.truncate(5000).unwrap();
    assert_eq!(file.size().unwrap(), 5000);
}

#[test]
fn misaligned_requests_fail_with_einval_before_any_system_call() {
    let _fds = sharing_fds();
    let dir = disk_dir();
    let (path, data) = make_file(dir.path(), "f", 8192, 4);
    let opts = options(OFlag::O_RDWR);
    let file = DirectFile::open(&path, &opts).unwrap();
    let block = file.alignment().offset as usize;
    let mem = file.alignment().memory as usize;
    let mut buf = AlignedBuf::zeroed(2 * block + 4096, 4096).unwrap();
    let cases: [(&str, usize, usize, u64); 3] = [
        ("position", 0, block, 1),
        ("length", 0, block - 1, 0),
        ("buffer address", mem.max(2) / 2, block, 0),
    ];
    for (what, skip, len, at) in cases {
        if what == "buffer address" && mem <= 1 {
            continue;
        }
        let err = file
            .read_step(&mut buf[skip..skip + len], at, usize::MAX, Unaligned::Error)
            .unwrap_err();
        assert_eq!(
            (err.errno(), err.syscall()),
            (Errno::EINVAL, "read"),
            "{err}"
        );
        assert!(err.to_string().contains(what), "{what}: {err}");
        assert_eq!(err.path(), Some(path.as_path()));
        let err = file
            .write_step(&buf[skip..skip + len], at, usize::MAX, Unaligned::Error)
            .unwrap_err();
        assert_eq!(
            (err.errno(), err.syscall()),
            (Errno::EINVAL, "write"),
            "{err}"
        );
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
    assert_eq!(read(&path), data, "nothing was written");
}

#[test]
fn bounce_reads_any_window_into_any_memory() {
    let _fds = sharing_fds();
    let dir = disk_dir();
    let size = 3 * MIB + 777;
    let (path, data) = make_file(dir.path(), "f", size, 5);
    make_cold(&path);
    let file = DirectFile::open(&path, &OpenOptions::default()).unwrap();
    let mut buf = AlignedBuf::zeroed(4 * MIB, 4096).unwrap();
    // (memory skew, position, length): head only, tail only, both, misaligned memory, past the end.
    let windows = [
        (0, 1, 10),
        (0, 511, 2),
        (0, 4095, 4098),
        (0, 513, MIB + 1),
        (1, 0, 4096),
        (3, 7, 2 * MIB + 5),
        (0, size as u64 - 5, 100),
        (0, size as u64 + 10, 100),
        (4096 - 7, 4096 - 7, MIB),
    ];
    for (skew, at, len) in windows {
        let dst = &mut buf[skew..skew + len];
        let n = read_all(&file, dst, at, Unaligned::Bounce);
        let start = (at as usize).min(size);
        let end = (at as usize + len).min(size);
        assert_eq!(n, end - start, "skew {skew} at {at} len {len}");
        assert!(
            buf[skew..skew + n] == data[start..end],
            "skew {skew} at {at} len {len}"
        );
    }
    assert!(
        resident_fraction(&path) < 0.01,
        "bounced reads still bypass the cache: {}",
        resident_fraction(&path)
    );
}

#[test]
fn bounce_writes_at_odd_positions_keep_their_neighbours() {
    let _fds = sharing_fds();
    let dir = disk_dir();
    let size = 2 * MIB + 300;
    let (path, mut expected) = make_file(dir.path(), "f", size, 6);
    let file = DirectFile::open(&path, &options(OFlag::O_RDWR)).unwrap();
    let edits: [(u64, usize, usize); 6] = [
        (1, 10, 0),                 // inside the first block
        (4000, 200, 0),             // across a block boundary
        (513, MIB, 0),              // head, aligned middle, tail
        (77, 3 * 4096 + 5, 3),      // misaligned memory: all through the bounce buffer
        (size as u64 - 10, 50, 0),  // over the end: the file grows by exactly 40
        (size as u64 + 4000, 3, 1), // past the end: a hole, then 3 bytes
    ];
    let mut mem = AlignedBuf::zeroed(2 * MIB, 4096).unwrap();
    for (i, (at, len, skew)) in edits.into_iter().enumerate() {
        let bytes = pattern(len, 100 + i as u64);
        mem[skew..skew + len].copy_from_slice(&bytes);
        write_all(&file, &mem[skew..skew + len], at, Unaligned::Bounce);
        let end = at as usize + len;
        if expected.len() < end {
            expected.resize(end, 0);
        }
        expected[at as usize..end].copy_from_slice(&bytes);
        assert_eq!(file.size().unwrap(), expected.len() as u64, "edit {i}");
        assert!(read(&path) == expected, "edit {i}: at {at} len {len}");
    }
}

#[test]
fn a_partial_block_over_existing_data_needs_read_access() {
    let _fds = sharing_fds();
    let dir = disk_dir();
    let (path, data) = make_file(dir.path(), "f", 10_000, 7);
    let file = DirectFile::open(&path, &options(OFlag::O_WRONLY)).unwrap();
    let err = file
        .write_step(b"xyz", 100, usize::MAX, Unaligned::Bounce)
        .unwrap_err();
    assert_eq!(err.errno(), Errno::EBADF, "{err}");
    assert!(err.to_string().contains("read-write"), "{err}");
    assert_eq!(read(&path), data);
    // Past the end there is nothing to preserve: padding is written and trimmed.
    let at = 4 * 4096;
    let step = file
        .write_step(b"tail", at, usize::MAX, Unaligned::Bounce)
        .unwrap();
    assert_eq!(step.bytes, 4);
    assert_eq!(file.size().unwrap(), at + 4);
    assert_eq!(read_at(&path, at, 4), b"tail");
}

#[test]
fn direct_reads_leave_the_page_cache_alone_and_buffered_reads_do_not() {
    let _fds = sharing_fds();
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 16 * MIB, 8);
    make_cold(&path);
    assert!(resident_fraction(&path) < 0.01, "made cold");
    let file = DirectFile::open(&path, &OpenOptions::default()).unwrap();
    let mut buf = AlignedBuf::zeroed(16 * MIB, 4096).unwrap();
    assert_eq!(read_all(&file, &mut buf, 0, Unaligned::Error), 16 * MIB);
    let after_direct = resident_fraction(&path);
    assert!(
        after_direct < 0.01,
        "{after_direct} resident after a direct read"
    );
    // The contrast: a plain read pulls the whole file in.
    std::io::copy(&mut File::open(&path).unwrap(), &mut std::io::sink()).unwrap();
    assert!(
        resident_fraction(&path) > 0.9,
        "buffered read caches the file"
    );
    // Cross-check the mincore helper against util-linux fincore where it exists.
    if let Ok(out) = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--raw", "--output", "RES"])
        .arg(&path)
        .output()
    {
        if out.status.success() {
            let res: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            let mine = zerocopy_io::sys::mmap::file_residency(File::open(&path).unwrap()).unwrap();
            assert_eq!(res, mine.resident * 4096, "fincore agrees");
        }
    }
}

#[test]
fn a_filesystem_that_refuses_o_direct_fails_clearly_or_falls_back() {
    let _fds = sharing_fds();
    let Some(ramfs) = Mount::new("ramfs", "size=64m") else {
        return;
    };
    let (path, data) = make_file(ramfs.path(), "f", 5000, 9);
    let err = DirectFile::open(&path, &OpenOptions::default()).unwrap_err();
    assert_eq!(err.code(), "ERR_DIRECT_IO_UNSUPPORTED");
    assert_eq!((err.errno(), err.syscall()), (Errno::EINVAL, "open"));
    assert_eq!(err.path(), Some(path.as_path()));
    assert!(
        err.to_string().contains("does not support O_DIRECT"),
        "{err}"
    );

    // The refused open created nothing, with and without O_EXCL.
    for flags in [OFlag::O_CREAT, OFlag::O_CREAT | OFlag::O_EXCL] {
        let new = ramfs.path().join("new");
        let err = DirectFile::open(&new, &options(OFlag::O_RDWR | flags)).unwrap_err();
        assert_eq!(err.code(), "ERR_DIRECT_IO_UNSUPPORTED");
        assert!(!new.exists(), "{flags:?} left a file behind");
    }

    let fallback = OpenOptions {
        fallback: Fallback::Buffered,
        ..OpenOptions::default()
    };
    let file = DirectFile::open(&path, &fallback).unwrap();
    assert_eq!(file.mechanism(), Mechanism::Buffered);
    let mut back = vec![0u8; 6000];
    assert_eq!(read_all(&file, &mut back, 0, Unaligned::Bounce), 5000);
    assert_eq!(&back[..5000], &data[..]);

    let new = ramfs.path().join("created");
    let file = DirectFile::open(
        &new,
        &OpenOptions {
            fallback: Fallback::Buffered,
            ..options(OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL)
        },
    )
    .unwrap();
    assert_eq!(file.mechanism(), Mechanism::Buffered);
    write_all(&file, &data[..4097], 3, Unaligned::Bounce);
    assert_eq!(read_at(&new, 3, 4097), &data[..4097]);
    assert_eq!(file.size().unwrap(), 4100);
}

#[test]
fn the_buffered_fallback_drops_what_it_moved_from_the_cache() {
    let _fds = sharing_fds();
    // Simulated refusal on the main disk, where (unlike ramfs) pages can be dropped.
    let dir = disk_dir();
    let size = 24 * MIB + 5;
    let data = pattern(size, 11);
    let path = dir.path().join("f");
    let simulated = OpenOptions {
        simulate_unsupported: true,
        ..rw_create()
    };
    let err = DirectFile::open(&path, &simulated).unwrap_err();
    assert_eq!(err.code(), "ERR_DIRECT_IO_UNSUPPORTED");
    assert!(!path.exists(), "a simulated refusal creates nothing");

    let file = DirectFile::open(
        &path,
        &OpenOptions {
            fallback: Fallback::Buffered,
            ..simulated
        },
    )
    .unwrap();
    assert_eq!(file.mechanism(), Mechanism::Buffered);
    write_all(&file, &data, 0, Unaligned::Bounce);
    assert!(
        resident_fraction(&path) < 0.05,
        "written chunks dropped: {}",
        resident_fraction(&path)
    );
    let mut back = vec![0u8; size];
    assert_eq!(read_all(&file, &mut back, 0, Unaligned::Bounce), size);
    assert!(back == data);
    assert!(
        resident_fraction(&path) < 0.05,
        "read chunks dropped: {}",
        resident_fraction(&path)
    );
    // The alignment rules still apply, so code behaves the same on every filesystem.
    let err = file
        .read_step(&mut back[..10], 1, usize::MAX, Unaligned::Error)
        .unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
}

#[test]
fn a_full_filesystem_reports_the_bytes_written_then_enospc() {
    let _fds = sharing_fds();
    // tmpfs accepts O_DIRECT on Linux 6.6+; a 1 MiB one fills up quickly.
    let Some(tmpfs) = Mount::new("tmpfs", "size=1m") else {
        return;
    };
    let path = tmpfs.path().join("f");
    let file = match DirectFile::open(&path, &rw_create()) {
        Err(e) if e.code() == "ERR_DIRECT_IO_UNSUPPORTED" => {
            eprintln!("skipped: this kernel's tmpfs refuses O_DIRECT");
            return;
        }
        other => other.unwrap(),
    };
    let src = aligned_copy(&pattern(2 * MIB, 12), 4096);
    let mut done = 0;
    let err = loop {
        match file.write_step(&src[done..], done as u64, 256 << 10, Unaligned::Error) {
            Ok(step) => done += step.bytes,
            Err(e) => break e,
        }
    };
    assert_eq!(err.errno(), Errno::ENOSPC, "{err}");
    assert!(done > 0 && done <= MIB, "{done} bytes before ENOSPC");
    assert_eq!(read_at(&path, 0, done), &src[..done]);
}

#[test]
fn block_devices_work_too() {
    let _fds = sharing_fds();
    if !is_root() || !Path::new("/dev/loop-control").exists() {
        eprintln!("skipped: loop devices need root");
        return;
    }
    let dir = disk_dir();
    let image = dir.path().join("img");
    File::create(&image)
        .unwrap()
        .set_len(8 * MIB as u64)
        .unwrap();
    let out = std::process::Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "losetup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dev = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let result = std::panic::catch_unwind(|| {
        let file = DirectFile::open(&dev, &options(OFlag::O_RDWR)).unwrap();
        assert_eq!(file.mechanism(), Mechanism::Direct);
        assert_eq!(file.size().unwrap(), 8 * MIB as u64, "BLKGETSIZE64");
        let a = file.alignment();
        assert!(a.offset >= 512 && a.offset.is_power_of_two(), "{a:?}");
        assert_eq!(sys::path_alignment(Path::new(&dev)).unwrap(), Some(a));
        let logical: u32 = std::fs::read_to_string(format!(
            "/sys/block/{}/queue/logical_block_size",
            dev.trim_start_matches("/dev/")
        ))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
        assert_eq!(a.offset, logical, "the device's own logical block size");
        let data = pattern(MIB + 3, 13);
        write_all(&file, &data, 1000, Unaligned::Bounce);
        let mut back = vec![0u8; data.len()];
        assert_eq!(
            read_all(&file, &mut back, 1000, Unaligned::Bounce),
            data.len()
        );
        assert!(back == data);
        assert_eq!(
            file.size().unwrap(),
            8 * MIB as u64,
            "a device is never truncated"
        );
    });
    let _ = std::process::Command::new("losetup")
        .args(["-d", &dev])
        .status();
    result.unwrap();
    assert_eq!(read_at(&image, 1000, 3), &pattern(MIB + 3, 13)[..3]);
}

#[test]
fn bad_opens() {
    let _fds = sharing_fds();
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 10, 14);
    let err = DirectFile::open(&path, &options(OFlag::O_WRONLY | OFlag::O_APPEND)).unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
    assert!(err.to_string().contains("O_APPEND"), "{err}");
    let err = DirectFile::open(&path, &options(OFlag::O_RDONLY | OFlag::O_PATH)).unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
    let err = DirectFile::open(dir.path(), &OpenOptions::default()).unwrap_err();
    assert_eq!(err.errno(), Errno::EISDIR, "{err}");
    let missing = dir.path().join("missing");
    let err = DirectFile::open(&missing, &OpenOptions::default()).unwrap_err();
    assert_eq!(
        (err.errno(), err.path()),
        (Errno::ENOENT, Some(missing.as_path()))
    );
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let err = DirectFile::open(&fifo, &OpenOptions::default()).unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL, "{err}");
    let err = DirectFile::open(
        &path,
        &options(OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL),
    )
    .unwrap_err();
    assert_eq!(err.errno(), Errno::EEXIST);
}

#[test]
fn no_descriptor_outlives_its_file() {
    let _alone = FDS.write().unwrap_or_else(|p| p.into_inner());
    let dir = disk_dir();
    let (path, _) = make_file(dir.path(), "f", 5000, 15);
    let before = open_fds();
    for _ in 0..50 {
        let file = DirectFile::open(&path, &options(OFlag::O_RDWR)).unwrap();
        let mut buf = vec![0u8; 100];
        read_all(&file, &mut buf, 3, Unaligned::Bounce);
        let _ = DirectFile::open(dir.path().join("missing"), &OpenOptions::default());
        let _ = DirectFile::open(dir.path(), &OpenOptions::default());
        let _ = DirectFile::open(
            dir.path().join("sim"),
            &OpenOptions {
                simulate_unsupported: true,
                ..rw_create()
            },
        );
    }
    assert_eq!(open_fds(), before);
}

#[test]
fn aligned_buffers_are_aligned_and_zeroed() {
    let _fds = sharing_fds();
    for (len, align) in [(0, 512), (1, 512), (4097, 4096), (MIB, 65536)] {
        let buf = AlignedBuf::zeroed(len, align).unwrap();
        assert_eq!(buf.len(), len);
        assert_eq!(buf.as_ptr() as usize % align, 0);
        assert_eq!(sys::misalignment(&buf, align as u32), 0);
        assert!(buf.iter().all(|&b| b == 0));
    }
    assert_eq!(
        AlignedBuf::zeroed(10, 3).unwrap_err().errno(),
        Errno::EINVAL
    );
    let buf = AlignedBuf::zeroed(10, 64).unwrap();
    assert_eq!(sys::misalignment(&buf[1..], 64), 1);
    assert!(sys::is_aligned(4096, 512) && !sys::is_aligned(4097, 512) && sys::is_aligned(7, 1));
}

fn anon_huge_kib() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
        .unwrap_or(0)
}

#[test]
fn large_buffers_can_be_backed_by_huge_pages() {
    let _fds = sharing_fds();
    let Some(huge) = sys::huge_page_size() else {
        eprintln!("skipped: transparent huge pages are off here");
        return;
    };
    let mut buf = AlignedBuf::zeroed(8 * MIB, huge).unwrap();
    buf.fill(1); // touched: small pages now, so only a collapse can help
    let before = anon_huge_kib();
    assert!(sys::hugepage_hint(&buf), "MADV_COLLAPSE succeeded");
    assert!(
        anon_huge_kib() >= before + 4096,
        "at least 4 MiB now in huge pages"
    );
    assert!(buf.iter().all(|&b| b == 1), "the bytes are unchanged");
    assert!(
        !sys::hugepage_hint(&buf[1..huge]),
        "no whole huge page inside"
    );
}
