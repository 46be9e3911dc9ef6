//! sys::probe: capability probes on this machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use common::*;
use zerocopy_io::sys::probe::{self, AlignmentSource};
use zerocopy_io::Errno;

#[test]
fn the_kernel_has_the_basic_syscalls() {
    let k = probe::kernel();
    assert!(
        k.copy_file_range && k.sendfile && k.splice && k.tee && k.vmsplice,
        "{k:?}"
    );
    assert!(k.kernel.chars().next().unwrap().is_ascii_digit(), "{k:?}");
    assert!(k.page_size >= 4096 && k.page_size.is_power_of_two());
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size").unwrap();
    assert_eq!(k.pipe_max_size, Some(max.trim().parse().unwrap()));
    assert!(std::ptr::eq(k, probe::kernel()), "probed once");
}

#[test]
fn filesystems_are_probed_with_real_files_and_leave_nothing_behind() {
    let dir = disk_dir();
    let caps = probe::filesystem(dir.path()).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no probe file left"
    );
    assert_eq!(caps.copy_file_range, Some(true), "{caps:?}");
    if caps.fs_type == "ext4" {
        assert_eq!(caps.reflink, Some(false));
        assert_eq!(caps.direct_io, Some(true));
        let align = caps.direct_io_alignment.unwrap();
        assert!(
            align.offset.is_power_of_two() && align.offset >= 512,
            "{align:?}"
        );
        assert!(align.memory.is_power_of_two(), "{align:?}");
        assert_ne!(
            align.source,
            AlignmentSource::Default,
            "ext4 on 6.1+ answers statx"
        );
    }
    // A file path probes its directory's filesystem, and the answer is cached per device.
    let (file, _) = make_file(dir.path(), "f", 1, 1);
    assert_eq!(probe::filesystem(&file).unwrap(), caps);
    if let Some(shm) = tmpfs_dir() {
        assert_eq!(probe::filesystem(shm.path()).unwrap().fs_type, "tmpfs");
    }
    let err = probe::filesystem(&dir.path().join("missing")).unwrap_err();
    assert_eq!(err.errno(), Errno::ENOENT);
}

#[test]
fn filesystem_names_come_from_statfs_magic() {
    assert_eq!(probe::fs_name(0x9FA0), Some("proc"));
    assert_eq!(probe::fs_name(0x5846_5342), Some("xfs"));
    assert_eq!(probe::fs_name(1), None);
}
