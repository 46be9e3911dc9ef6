//! The copy engine (src/copy.rs) on real files: every mechanism, sizes, ranges, positions, odd sources
//! and destinations, and the errors a user can provoke.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;

use common::*;
use zerocopy_io::copy::{copy, Copied, CopyJob, CopyOptions, Dest, Mechanism, Reflink, Source};
use zerocopy_io::Errno;

const SIZES: [usize; 6] = [0, 1, 4095, 4096, 4097, (1 << 20) + 1];
const FORCED: [Mechanism; 3] = [
    Mechanism::CopyFileRange,
    Mechanism::Sendfile,
    Mechanism::ReadWrite,
];

fn forced(mechanism: Mechanism) -> CopyOptions {
    CopyOptions {
        mechanisms: Some(vec![mechanism]),
        ..CopyOptions::default()
    }
}

fn copy_paths(src: &Path, dst: &Path, options: &CopyOptions) -> zerocopy_io::Result<Copied> {
    copy(Source::path(src), Dest::path(dst), options)
}

#[test]
fn every_size_by_every_mechanism() {
    let dir = disk_dir();
    for (i, &size) in SIZES.iter().enumerate() {
        let (src, data) = make_file(dir.path(), &format!("src-{size}"), size, i as u64);
        for mechanism in FORCED {
            let dst = dir.path().join(format!("dst-{size}-{mechanism}"));
            let done = copy_paths(&src, &dst, &forced(mechanism)).unwrap();
            assert_eq!(done.bytes, size as u64, "{mechanism} size {size}");
            assert_eq!(read(&dst), data, "{mechanism} size {size}");
            if size > 0 {
                assert_eq!(done.mechanism, mechanism);
            }
        }
        let dst = dir.path().join(format!("dst-{size}-auto"));
        let done = copy_paths(&src, &dst, &CopyOptions::default()).unwrap();
        assert_eq!(read(&dst), data);
        // ext4 cannot reflink; an empty source goes straight to read/write (procfs also reports size 0).
        let expected = if size == 0 {
            Mechanism::ReadWrite
        } else {
            Mechanism::CopyFileRange
        };
        if fs_type(dir.path()) == "ext4" {
            assert_eq!(done.mechanism, expected, "size {size}");
        }
    }
}

fn fs_type(path: &Path) -> String {
    zerocopy_io::sys::probe::filesystem(path).unwrap().fs_type
}

#[test]
fn offsets_and_lengths() {
    let dir = disk_dir();
    let n = (64 << 10) + 123;
    let (src, data) = make_file(dir.path(), "src", n, 7);
    let offsets = [
        None,
        Some(0),
        Some(1),
        Some(n / 2),
        Some(n - 1),
        Some(n),
        Some(n + 5),
    ];
    let lengths = [None, Some(0), Some(n - 1), Some(n / 2), Some(n + 7)];
    for mechanism in FORCED {
        for offset in offsets {
            for length in lengths {
                let dst = dir.path().join("dst");
                let options = CopyOptions {
                    offset: offset.map(|o| o as u64),
                    length: length.map(|l| l as u64),
                    ..forced(mechanism)
                };
                let done = copy_paths(&src, &dst, &options).unwrap();
                let start = offset.unwrap_or(0).min(n);
                let end = length.map_or(n, |l| (start + l).min(n));
                let label = format!("{mechanism} offset {offset:?} length {length:?}");
                assert_eq!(done.bytes, (end - start) as u64, "{label}");
                assert_eq!(read(&dst), data[start..end], "{label}");
            }
        }
    }
}

#[test]
fn dst_offset_writes_into_the_existing_file() {
    let dir = disk_dir();
    let (src, data) = make_file(dir.path(), "src", 10, 1);
    for mechanism in FORCED {
        let (dst, before) = make_file(dir.path(), "dst", 100, 2);
        let options = CopyOptions {
            dst_offset: Some(50),
            ..forced(mechanism)
        };
        copy_paths(&src, &dst, &options).unwrap();
        let mut expected = before.clone();
        expected[50..60].copy_from_slice(&data);
        assert_eq!(read(&dst), expected, "{mechanism}");
        // Past the end: the gap reads as zeros.
        let options = CopyOptions {
            dst_offset: Some(200),
            ..forced(mechanism)
        };
        copy_paths(&src, &dst, &options).unwrap();
        let after = read(&dst);
        assert_eq!(after.len(), 210);
        assert!(after[100..200].iter().all(|&b| b == 0));
        assert_eq!(after[200..], data[..]);
    }
}

#[test]
fn a_path_destination_is_truncated_and_keeps_or_takes_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = disk_dir();
    let (src, data) = make_file(dir.path(), "src", 100, 3);
    fs::set_permissions(&src, fs::Permissions::from_mode(0o640)).unwrap();
    let (dst, _) = make_file(dir.path(), "dst", 5000, 4);
    fs::set_permissions(&dst, fs::Permissions::from_mode(0o600)).unwrap();
    copy_paths(&src, &dst, &CopyOptions::default()).unwrap();
    assert_eq!(read(&dst), data, "longer destination truncated");
    assert_eq!(
        fs::metadata(&dst).unwrap().permissions().mode() & 0o777,
        0o600,
        "existing mode kept"
    );

    let fresh = dir.path().join("fresh");
    copy_paths(&src, &fresh, &CopyOptions::default()).unwrap();
    assert_eq!(
        fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
        0o640 & !umask()
    );

    let dest = Dest::Path {
        path: dst.clone(),
        overwrite: true,
        mode: Some(0o604),
    };
    copy(Source::path(&src), dest, &CopyOptions::default()).unwrap();
    assert_eq!(
        fs::metadata(&dst).unwrap().permissions().mode() & 0o777,
        0o604,
        "explicit mode applied"
    );
}

fn umask() -> u32 {
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    nix::sys::stat::umask(old);
    old.bits()
}

#[test]
fn overwrite_false_refuses_an_existing_file() {
    let dir = disk_dir();
    let (src, _) = make_file(dir.path(), "src", 10, 1);
    let (dst, before) = make_file(dir.path(), "dst", 20, 2);
    let dest = Dest::Path {
        path: dst.clone(),
        overwrite: false,
        mode: None,
    };
    let err = copy(Source::path(&src), dest, &CopyOptions::default()).unwrap_err();
    assert_eq!(err.errno(), Errno::EEXIST);
    assert_eq!(err.syscall(), "open");
    assert_eq!(err.path(), Some(dst.as_path()));
    assert_eq!(read(&dst), before, "untouched");
}

#[test]
fn an_o_append_destination_is_appended_to() {
    let dir = disk_dir();
    let (src, data) = make_file(dir.path(), "src", 70_000, 5);
    let dst = dir.path().join("log");
    fs::write(&dst, b"head").unwrap();
    let file = open_append(&dst);
    let done = copy(
        Source::path(&src),
        Dest::fd(&file).unwrap(),
        &CopyOptions::default(),
    )
    .unwrap();
    assert_eq!(
        done.mechanism,
        Mechanism::ReadWrite,
        "the in-kernel paths refuse O_APPEND"
    );
    let mut expected = b"head".to_vec();
    expected.extend_from_slice(&data);
    assert_eq!(read(&dst), expected);

    let options = CopyOptions {
        dst_offset: Some(0),
        ..CopyOptions::default()
    };
    let err = copy(Source::path(&src), Dest::fd(&file).unwrap(), &options).unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
    assert_eq!(read(&dst), expected, "nothing written");
}

#[test]
fn copying_a_file_onto_itself() {
    let dir = disk_dir();
    let (path, data) = make_file(dir.path(), "self", 200, 6);
    let err = copy_paths(&path, &path, &CopyOptions::default()).unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL);
    assert!(err.to_string().contains("same file"), "{err}");
    assert_eq!(read(&path), data, "never truncated");

    for mechanism in FORCED {
        // Non-overlapping ranges of one file are fine…
        let file = open_rw(&path);
        let options = CopyOptions {
            offset: Some(0),
            length: Some(50),
            dst_offset: Some(100),
            ..forced(mechanism)
        };
        copy(
            Source::fd(&file).unwrap(),
            Dest::fd(&file).unwrap(),
            &options,
        )
        .unwrap();
        let mut expected = data.clone();
        expected.copy_within(0..50, 100);
        assert_eq!(read(&path), expected, "{mechanism}");
        fs::write(&path, &data).unwrap();
        // …overlapping ones are refused before anything is written.
        let options = CopyOptions {
            offset: Some(0),
            length: Some(50),
            dst_offset: Some(25),
            ..forced(mechanism)
        };
        let err = copy(
            Source::fd(&file).unwrap(),
            Dest::fd(&file).unwrap(),
            &options,
        )
        .unwrap_err();
        assert_eq!(err.errno(), Errno::EINVAL);
        assert_eq!(read(&path), data);
    }

    // Appending a file to itself copies what was there when the copy started, then stops.
    let reader = open_read(&path);
    let appender = open_append(&path);
    let done = copy(
        Source::fd(&reader).unwrap(),
        Dest::fd(&appender).unwrap(),
        &CopyOptions::default(),
    )
    .unwrap();
    assert_eq!(done.bytes, 200);
    assert_eq!(read(&path), [data.clone(), data].concat());
}

#[test]
fn proc_self_status_copies_its_real_content() {
    let dir = disk_dir();
    let dst = dir.path().join("status");
    let done = copy_paths(
        Path::new("/proc/self/status"),
        &dst,
        &CopyOptions::default(),
    )
    .unwrap();
    let text = String::from_utf8(read(&dst)).unwrap();
    assert_eq!(done.bytes as usize, text.len());
    assert!(done.bytes > 100, "copied {} bytes", done.bytes);
    assert!(
        text.starts_with("Name:") && text.contains("\nPid:"),
        "{text}"
    );
    assert_eq!(done.mechanism, Mechanism::ReadWrite);

    // Even when copy_file_range is asked for first, its "0 bytes at the start" makes it fall back.
    let options = CopyOptions {
        mechanisms: Some(vec![
            Mechanism::CopyFileRange,
            Mechanism::Sendfile,
            Mechanism::ReadWrite,
        ]),
        ..CopyOptions::default()
    };
    let done = copy_paths(Path::new("/proc/self/status"), &dst, &options).unwrap();
    assert!(read(&dst).starts_with(b"Name:"));
    assert_ne!(done.mechanism, Mechanism::CopyFileRange);
}

#[test]
fn fd_positions_after_the_copy() {
    let dir = disk_dir();
    let (src_path, data) = make_file(dir.path(), "src", 10_000, 8);
    let dst_path = dir.path().join("dst");
    for mechanism in FORCED {
        fs::write(&dst_path, b"").unwrap();
        let mut src = open_read(&src_path);
        let mut dst = open_rw(&dst_path);
        seek(&mut src, 100);
        seek(&mut dst, 7);
        // Without offsets: start at each position and advance it.
        let done = copy(
            Source::fd(&src).unwrap(),
            Dest::fd(&dst).unwrap(),
            &forced(mechanism),
        )
        .unwrap();
        assert_eq!(done.bytes, 9_900, "{mechanism}");
        assert_eq!(position(&mut src), 10_000, "{mechanism} src advanced");
        assert_eq!(position(&mut dst), 7 + 9_900, "{mechanism} dst advanced");
        assert_eq!(read(&dst_path)[7..], data[100..], "{mechanism}");

        // With offsets: positions untouched (sendfile moves the destination's internally and restores it).
        let options = CopyOptions {
            offset: Some(0),
            length: Some(500),
            dst_offset: Some(20_000),
            ..forced(mechanism)
        };
        let done = copy(Source::fd(&src).unwrap(), Dest::fd(&dst).unwrap(), &options).unwrap();
        assert_eq!(done.bytes, 500);
        assert_eq!(position(&mut src), 10_000, "{mechanism} src kept");
        assert_eq!(position(&mut dst), 7 + 9_900, "{mechanism} dst kept");
        assert_eq!(read(&dst_path)[20_000..], data[..500], "{mechanism}");
    }
}

#[test]
fn a_sparse_file_over_2_gib_crosses_the_sendfile_cap() {
    let Some(shm) = tmpfs_dir() else {
        eprintln!("no /dev/shm: copying 2 GiB to disk instead");
        return sparse_over_2gib(&disk_dir());
    };
    sparse_over_2gib(&shm);
}

fn sparse_over_2gib(dst_dir: &TempDir) {
    let dir = disk_dir();
    let cap = zerocopy_io::sys::sendfile::MAX_CHUNK as u64;
    let size = (2u64 << 30) + (1 << 20) + 3;
    let marks: [(u64, &[u8]); 3] = [
        (0, b"start"),
        (cap - 2, b"across-the-cap"),
        (size - 3, b"end"),
    ];
    let src = dir.path().join("sparse");
    sparse_file(&src, size, &marks);
    let dst = dst_dir.path().join("copy");
    let done = copy_paths(&src, &dst, &forced(Mechanism::Sendfile)).unwrap();
    assert_eq!(done.bytes, size);
    assert_eq!(fs::metadata(&dst).unwrap().len(), size);
    for (at, bytes) in marks {
        assert_eq!(read_at(&dst, at, bytes.len()), bytes, "at {at}");
    }
    assert_eq!(read_at(&dst, cap + 20, 4096), vec![0; 4096]);
}

#[test]
fn across_filesystems_falls_back_to_sendfile() {
    let Some(shm) = tmpfs_dir() else { return };
    let dir = disk_dir();
    let (src, data) = make_file(dir.path(), "src", 300_000, 9);
    let dst = shm.path().join("dst");
    let done = copy_paths(&src, &dst, &CopyOptions::default()).unwrap();
    assert_eq!(read(&dst), data);
    // Since Linux 5.19 copy_file_range refuses (EXDEV) between different filesystem types.
    assert_eq!(done.mechanism, Mechanism::Sendfile);
}

#[test]
fn reflink_never_copies_the_data_and_always_fails_where_it_cannot_share() {
    let dir = disk_dir();
    let (src, data) = make_file(dir.path(), "src", 8192, 10);
    let dst = dir.path().join("dst");
    let never = CopyOptions {
        reflink: Reflink::Never,
        ..CopyOptions::default()
    };
    let done = copy_paths(&src, &dst, &never).unwrap();
    assert_eq!(done.mechanism, Mechanism::Sendfile);
    assert_eq!(read(&dst), data);

    if fs_type(dir.path()) == "ext4" {
        let always = CopyOptions {
            reflink: Reflink::Always,
            ..CopyOptions::default()
        };
        let err = copy_paths(&src, &dst, &always).unwrap_err();
        assert_eq!(err.errno(), Errno::EOPNOTSUPP);
        assert_eq!(err.syscall(), "ioctl_ficlonerange");
        assert_eq!(err.path(), Some(src.as_path()));
        assert_eq!(err.dest(), Some(dst.as_path()));
    }
}

#[test]
fn streams_as_source_and_destination() {
    let dir = disk_dir();
    let data = pattern(300_000, 11);
    let (reader, writer) = nix::unistd::pipe().unwrap();
    let feed = data.clone();
    let producer = std::thread::spawn(move || {
        let mut w = fs::File::from(writer);
        w.write_all(&feed).unwrap();
    });
    let dst = dir.path().join("from-pipe");
    let done = copy(
        Source::Fd(reader),
        Dest::path(&dst),
        &CopyOptions::default(),
    )
    .unwrap();
    producer.join().unwrap();
    assert_eq!(done.bytes, data.len() as u64);
    assert_eq!(done.mechanism, Mechanism::ReadWrite);
    assert_eq!(read(&dst), data);

    // An offset on a stream is refused before anything is read.
    let (reader, _writer) = nix::unistd::pipe().unwrap();
    let options = CopyOptions {
        offset: Some(10),
        ..CopyOptions::default()
    };
    let err = copy(Source::Fd(reader), Dest::path(&dst), &options).unwrap_err();
    assert_eq!(err.errno(), Errno::ESPIPE);

    // A file into a pipe.
    let (src, data) = make_file(dir.path(), "src", 50_000, 12);
    let (reader, writer) = nix::unistd::pipe().unwrap();
    let consumer = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut fs::File::from(reader), &mut out).unwrap();
        out
    });
    let done = copy(
        Source::path(&src),
        Dest::Fd(writer),
        &CopyOptions::default(),
    )
    .unwrap();
    assert_eq!(done.bytes, 50_000);
    assert_eq!(consumer.join().unwrap(), data);
}

#[test]
fn bad_ends_fail_before_copying() {
    let dir = disk_dir();
    let (src, _) = make_file(dir.path(), "src", 10, 1);
    let missing = dir.path().join("missing");
    let err = copy_paths(&missing, &dir.path().join("x"), &CopyOptions::default()).unwrap_err();
    assert_eq!((err.errno(), err.syscall()), (Errno::ENOENT, "open"));
    assert_eq!(err.path(), Some(missing.as_path()));
    assert!(!dir.path().join("x").exists(), "no destination created");

    let err = copy_paths(dir.path(), &dir.path().join("y"), &CopyOptions::default()).unwrap_err();
    assert_eq!(err.errno(), Errno::EISDIR);
    assert!(!dir.path().join("y").exists());

    let err = copy_paths(&src, dir.path(), &CopyOptions::default()).unwrap_err();
    assert_eq!(err.errno(), Errno::EISDIR);

    let err = copy_paths(&src, &missing.join("sub"), &CopyOptions::default()).unwrap_err();
    assert_eq!(err.errno(), Errno::ENOENT);
    assert_eq!(err.path(), Some(missing.join("sub").as_path()));

    // A write-only source: the kernel's EBADF, named after the mechanism that met it.
    let wronly = open_write(&src);
    let err = copy(
        Source::fd(&wronly).unwrap(),
        Dest::path(dir.path().join("z")),
        &CopyOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.errno(), Errno::EBADF);
}

#[test]
fn a_job_moves_data_in_bounded_steps() {
    let dir = disk_dir();
    let (src, data) = make_file(dir.path(), "src", 1 << 20, 13);
    for mechanism in FORCED {
        let dst = dir.path().join("dst");
        let mut job =
            CopyJob::open(Source::path(&src), Dest::path(&dst), &forced(mechanism)).unwrap();
        assert_eq!(job.total(), Some(1 << 20));
        let mut steps = 0;
        let mut last = 0;
        while !job.step(100_000).unwrap() {
            assert!(
                job.bytes() > last && job.bytes() - last <= 100_000,
                "{mechanism}"
            );
            last = job.bytes();
            steps += 1;
        }
        assert!(steps >= 10, "{mechanism}: {steps} steps");
        assert!(job.is_finished());
        assert_eq!(job.bytes(), 1 << 20);
        assert_eq!(read(&dst), data);
    }
}

#[test]
fn closing_a_job_midway_keeps_what_was_written_and_closes_the_fds() {
    let dir = disk_dir();
    let (src, data) = make_file(dir.path(), "src", 1 << 20, 14);
    let dst = dir.path().join("dst");
    let mut job = CopyJob::open(
        Source::path(&src),
        Dest::path(&dst),
        &forced(Mechanism::ReadWrite),
    )
    .unwrap();
    assert!(!job.step(300_000).unwrap());
    job.close();
    assert!(job.is_finished());
    let written = job.bytes() as usize;
    assert_eq!(read(&dst), data[..written]);
    assert!(job.step(1).unwrap(), "a closed job is finished");
}

#[test]
fn source_fd_given_by_borrow_is_duplicated() {
    let dir = disk_dir();
    let (src, data) = make_file(dir.path(), "src", 1000, 15);
    let file = open_read(&src);
    let source = Source::fd(file.as_fd()).unwrap();
    drop(file); // the caller closes its fd; the job's duplicate still works
    let dst = dir.path().join("dst");
    copy(source, Dest::path(&dst), &CopyOptions::default()).unwrap();
    assert_eq!(read(&dst), data);
}
