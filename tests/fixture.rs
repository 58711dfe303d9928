//! Repositories written by earlier versions of Coffre stay readable: the
//! committed version-1 fixture restores bit-exact and passes a full check.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use coffre_tests::{run_ok, Coffre};

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Format version 1, as committed in `tests/fixtures/repo-v1` (passphrase
/// `fixture-passphrase`): restore, check --read-data, and a new snapshot.
#[test]
fn version_1_repository_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    // Work on a copy: opening a repository may create files (index journal).
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/repo-v1"),
        &repo,
    );
    let coffre = Coffre::new(&repo);
    let with_pass = |args: &[&OsStr]| {
        let mut cmd = coffre.cmd(args);
        cmd.env("COFFRE_PASSWORD", "fixture-passphrase");
        String::from_utf8_lossy(&run_ok(&mut cmd).stdout).into_owned()
    };
    let listing = with_pass(&["--json".as_ref(), "snapshots".as_ref()]);
    assert!(listing.contains("\"label\": \"fixture\""), "{listing}");
    with_pass(&["check".as_ref(), "--read-data".as_ref()]);

    let out = tmp.path().join("out");
    with_pass(&["restore".as_ref(), "latest".as_ref(), out.as_os_str()]);
    let ord = out.join("dossier/ordonnance.txt");
    assert_eq!(std::fs::read(&ord).unwrap(), b"ordonnance du 24 novembre\n");
    let meta = std::fs::metadata(&ord).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o4755);
    assert_eq!(meta.mtime_nsec(), 123_456_789);
    assert_eq!(
        std::fs::read(out.join("dossier/grand.txt")).unwrap(),
        vec![b'a'; 300_000]
    );
    assert!(out.join("dossier/vide").is_dir());
    assert_eq!(
        std::fs::read_link(out.join("lien"))
            .unwrap()
            .as_os_str()
            .as_bytes(),
        b"dossier/ordonnance.txt"
    );
    assert_eq!(
        std::fs::read(out.join(OsStr::from_bytes(b"nom_\xe9t\xe9.txt"))).unwrap(),
        b"x"
    );

    // The checkout lacks empty folders (tmp/, most data/xx/): a new snapshot
    // into it still works.
    with_pass(&["snapshot".as_ref(), out.as_os_str()]);
    with_pass(&["check".as_ref(), "--read-data".as_ref()]);
}
