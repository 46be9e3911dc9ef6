//! sys::copy_range: the copy_file_range(2) wrapper.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use common::*;
use zerocopy_io::sys::copy_range::copy_file_range;
use zerocopy_io::Errno;

#[test]
fn explicit_offsets_leave_positions_alone() {
    let dir = disk_dir();
    let (src, data) = make_file(dir.path(), "src", 10_000, 1);
    let dst = dir.path().join("dst");
    let (mut fin, mut fout) = (open_read(&src), open_rw(&dst));
    let (mut off_in, mut off_out) = (100i64, 5i64);
    let n = copy_file_range(&fin, Some(&mut off_in), &fout, Some(&mut off_out), 1000).unwrap();
    assert_eq!(n, 1000);
    assert_eq!((off_in, off_out), (1100, 1005), "offsets advanced");
    assert_eq!(
        (position(&mut fin), position(&mut fout)),
        (0, 0),
        "positions untouched"
    );
    assert_eq!(read(&dst)[5..], data[100..1100]);
}

#[test]
fn without_offsets_positions_advance() {
    let dir = disk_dir();
    let (src, data) = make_file(dir.path(), "src", 10_000, 2);
    let dst = dir.path().join("dst");
    let (mut fin, mut fout) = (open_read(&src), open_rw(&dst));
    seek(&mut fin, 10);
    let n = copy_file_range(&fin, None, &fout, None, 20_000).unwrap();
    assert_eq!(n, 9_990, "short at end of file");
    assert_eq!((position(&mut fin), position(&mut fout)), (10_000, 9_990));
    assert_eq!(
        copy_file_range(&fin, None, &fout, None, 1).unwrap(),
        0,
        "0 at end of file"
    );
    assert_eq!(read(&dst), data[10..]);
}

#[test]
fn errors_name_the_syscall() {
    let dir = disk_dir();
    let (src, _) = make_file(dir.path(), "src", 10, 3);
    let fin = open_read(&src);
    let err = copy_file_range(&fin, None, &fin, None, 10).unwrap_err();
    assert_eq!(
        err.errno(),
        Errno::EBADF,
        "destination not open for writing"
    );
    assert_eq!(err.syscall(), "copy_file_range");
    let append = open_append(&dir.path().join("log"));
    let err = copy_file_range(&fin, None, &append, None, 10).unwrap_err();
    assert_eq!(err.errno(), Errno::EBADF, "O_APPEND destination");
    if let Some(shm) = tmpfs_dir() {
        let out = open_rw(&shm.path().join("x"));
        let err = copy_file_range(&fin, None, &out, None, 10).unwrap_err();
        assert_eq!(
            err.errno(),
            Errno::EXDEV,
            "across filesystem types (Linux 5.19+)"
        );
    }
}
