//! Metadata that restore must not lose as root: file capabilities survive
//! the change of owner (which makes the kernel drop them), and setuid bits
//! too. Skipped, saying so, when not root or where the filesystem refuses
//! the capability attribute.

mod common;
use common::{set_xattr, CHEAP};

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use snapshots_format::ops::backup::{take_snapshot, SnapshotOptions};
use snapshots_format::ops::restore::{restore, RestoreOptions};
use snapshots_format::progress::NoProgress;
use snapshots_format::Repository;

const CAP: &str = "security.capability";

/// vfs_cap_data revision 2: cap_net_bind_service (10), permitted and
/// effective.
fn net_bind_service() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    v.extend_from_slice(&(1u32 << 10).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: as above; buf is valid for its length.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| {
        buf.truncate(len as usize);
        buf
    })
}

#[test]
fn file_capabilities_and_setuid_survive_a_restore_as_root() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED file_capabilities_and_setuid_survive_a_restore_as_root: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let tool = src.join("lecteur-carte-vitale");
    std::fs::write(&tool, b"#!/bin/sh\n").unwrap();
    // Owned by someone else than root, so that restore must chown it.
    std::os::unix::fs::lchown(&tool, Some(1000), Some(1000)).unwrap();
    if !set_xattr(&tool, CAP, &net_bind_service()) {
        eprintln!("SKIPPED file_capabilities_and_setuid_survive_a_restore_as_root: the filesystem refuses {CAP}");
        return;
    }
    let suid = src.join("suid");
    std::fs::write(&suid, b"x").unwrap();
    std::os::unix::fs::lchown(&suid, Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(&suid, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();

    let repo = Repository::init(dir.path().join("repo"), b"pw", CHEAP).unwrap();
    let (_, snap) = take_snapshot(&repo, &SnapshotOptions::new(&src), &NoProgress).unwrap();
    let out = dir.path().join("out");
    let opts = RestoreOptions {
        target: out.clone(),
        path: None,
        overwrite: false,
    };
    restore(&repo, &snap, &opts, &NoProgress).unwrap();

    let restored = out.join("lecteur-carte-vitale");
    assert_eq!(std::fs::metadata(&restored).unwrap().uid(), 1000);
    assert_eq!(
        get_xattr(&restored, CAP),
        Some(net_bind_service()),
        "the capability was dropped by the change of owner"
    );
    let meta = std::fs::metadata(out.join("suid")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (1000, 0o4755));
}
