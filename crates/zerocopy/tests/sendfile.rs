//! sys::sendfile: the sendfile(2) wrapper.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use std::io::Read;

use common::*;
use zerocopy_io::sys::sendfile::sendfile;
use zerocopy_io::Errno;

#[test]
fn file_to_file_at_the_destination_position() {
    let dir = disk_dir();
    let (src, data) = make_file(dir.path(), "src", 5000, 1);
    let dst = dir.path().join("dst");
    let (mut fin, mut fout) = (open_read(&src), open_rw(&dst));
    seek(&mut fout, 3);
    let mut offset = 1000i64;
    assert_eq!(
        sendfile(&fout, &fin, Some(&mut offset), 10_000).unwrap(),
        4000
    );
    assert_eq!(offset, 5000);
    assert_eq!(
        position(&mut fin),
        0,
        "explicit offset leaves the source position"
    );
    assert_eq!(
        position(&mut fout),
        4003,
        "the destination position advances"
    );
    assert_eq!(read(&dst)[3..], data[1000..]);
    assert_eq!(sendfile(&fout, &fin, None, 100).unwrap(), 100);
    assert_eq!(
        position(&mut fin),
        100,
        "no offset: the source position advances"
    );
}

#[test]
fn file_to_pipe() {
    let dir = disk_dir();
    let (src, data) = make_file(dir.path(), "src", 4096, 2);
    let (r, w) = nix::unistd::pipe().unwrap();
    let fin = open_read(&src);
    assert_eq!(sendfile(&w, &fin, Some(&mut 0), 4096).unwrap(), 4096);
    drop(w);
    let mut got = Vec::new();
    std::fs::File::from(r).read_to_end(&mut got).unwrap();
    assert_eq!(got, data);
}

#[test]
fn errors() {
    let dir = disk_dir();
    let (src, _) = make_file(dir.path(), "src", 10, 3);
    let fin = open_read(&src);
    let err = sendfile(&fin, &fin, None, 10).unwrap_err();
    assert_eq!(err.errno(), Errno::EBADF);
    assert_eq!(err.syscall(), "sendfile");
    let append = open_append(&dir.path().join("log"));
    let err = sendfile(&append, &fin, None, 10).unwrap_err();
    assert_eq!(err.errno(), Errno::EINVAL, "O_APPEND destination");
}
