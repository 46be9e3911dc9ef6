//! sys::reflink: FICLONE / FICLONERANGE on a filesystem without reflink (the main disk).
//! Sharing on a real reflink filesystem (loop-mounted XFS) is tested in __test__/reflink.test.mjs.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use common::*;
use zerocopy_io::sys::probe;
use zerocopy_io::sys::reflink::{ficlone, ficlonerange, CloneRange};
use zerocopy_io::Errno;

#[test]
fn unsupported_filesystems_answer_with_a_fallback_errno() {
    let dir = disk_dir();
    let caps = probe::filesystem(dir.path()).unwrap();
    if caps.reflink == Some(true) {
        eprintln!("{} supports reflink; nothing to check here", caps.fs_type);
        return;
    }
    let (src, _) = make_file(dir.path(), "src", 8192, 1);
    let (fin, fout) = (open_read(&src), open_rw(&dir.path().join("dst")));
    let err = ficlone(&fin, &fout).unwrap_err();
    assert!(
        matches!(
            err.errno(),
            Errno::EOPNOTSUPP | Errno::EINVAL | Errno::EXDEV
        ),
        "{err}"
    );
    assert_eq!(err.syscall(), "ioctl_ficlone");
    let range = CloneRange {
        src_offset: 0,
        length: 4096,
        dst_offset: 0,
    };
    let err = ficlonerange(&fin, &fout, range).unwrap_err();
    assert!(
        matches!(
            err.errno(),
            Errno::EOPNOTSUPP | Errno::EINVAL | Errno::EXDEV
        ),
        "{err}"
    );
    assert_eq!(err.syscall(), "ioctl_ficlonerange");
}

#[test]
fn bad_descriptors() {
    let dir = disk_dir();
    let (src, _) = make_file(dir.path(), "src", 10, 2);
    let fin = open_read(&src);
    let err = ficlone(&fin, &fin).unwrap_err();
    assert!(
        matches!(
            err.errno(),
            Errno::EBADF | Errno::EINVAL | Errno::EOPNOTSUPP
        ),
        "{err}"
    );
}
