//! serve: open + fstat + small read in one call, beneath a root.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use zerocopy_io::serve::{open_file, Kind};
use zerocopy_io::Errno;

#[test]
fn small_files_come_back_whole_and_closed_large_ones_open() {
    let dir = disk_dir();
    let small = pattern(1000, 1);
    std::fs::write(dir.path().join("s"), &small).unwrap();
    std::fs::write(dir.path().join("l"), pattern(5000, 2)).unwrap();
    let s = open_file(Some(dir.path()), Path::new("s"), 4096).unwrap();
    assert_eq!(s.kind, Kind::File);
    assert!(s.fd.is_none());
    assert_eq!(s.body.as_deref(), Some(&small[..]));
    let meta = std::fs::metadata(dir.path().join("s")).unwrap();
    assert_eq!((s.size, s.ino, s.dev), (1000, meta.ino(), meta.dev()));
    assert_eq!(
        (s.mtime.sec, s.mtime.nsec),
        (meta.mtime(), meta.mtime_nsec())
    );
    let l = open_file(Some(dir.path()), Path::new("l"), 4096).unwrap();
    assert!(l.fd.is_some() && l.body.is_none());
    assert_eq!(l.size, 5000);
    let d = open_file(None, dir.path(), 4096).unwrap();
    assert_eq!(d.kind, Kind::Directory);
    assert!(d.body.is_none());
}

#[test]
fn nothing_outside_root() {
    let dir = disk_dir();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(dir.path().join("secret"), b"x").unwrap();
    std::os::unix::fs::symlink("../secret", root.join("escape")).unwrap();
    for path in ["../secret", "escape", "/etc/passwd"] {
        let err = open_file(Some(&root), Path::new(path), 4096).unwrap_err();
        assert_eq!(err.errno(), Errno::EXDEV, "{path}");
    }
    let err = open_file(Some(&root), Path::new("missing"), 4096).unwrap_err();
    assert_eq!(err.errno(), Errno::ENOENT);
}
