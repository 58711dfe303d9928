//! Proves that the tree comparison accepts identical trees and catches each kind of
//! difference a faulty restore could introduce.

use super::*;
use std::ffi::CString;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use tempfile::TempDir;

/// A fixed mtime so that two independently built trees can be identical.
const T: i64 = 1_780_000_000;
const SPARSE_LEN: u64 = 1 << 20;
const DATA_AT: u64 = 512 << 10;

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("test paths have no NUL")
}

fn set_mtime(p: &Path, sec: i64, nsec: i64) {
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
    ];
    // SAFETY: valid NUL-terminated path and a two-element timespec array.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            cpath(p).as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(
        rc,
        0,
        "utimensat {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// Sets an xattr; false if the filesystem does not support user xattrs.
fn set_xattr(p: &Path, name: &str, value: &[u8]) -> bool {
    let name = CString::new(name).expect("no NUL");
    // SAFETY: valid path and name, and a value pointer/length pair from one slice.
    let rc = unsafe {
        libc::lsetxattr(
            cpath(p).as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        return true;
    }
    let err = std::io::Error::last_os_error();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ENOTSUP),
        "lsetxattr {}: {err}",
        p.display()
    );
    false
}

/// Gives every entry the same mtime: building or mutating a tree changes mtimes,
/// and the tests must isolate the one property they alter. One value for all keeps
/// hard-linked names (one inode, one mtime) consistent however they were made.
fn fix_times(root: &Path) {
    let image = capture(root);
    for (rel, _) in image.entries() {
        let p = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(std::ffi::OsStr::from_bytes(rel))
        };
        set_mtime(&p, T, 1);
    }
}

/// Builds the small test tree; returns whether xattrs are supported here.
fn build(root: &Path) -> bool {
    fs::write(root.join("a.txt"), b"hello world\n").expect("write a.txt");
    let xattrs = set_xattr(&root.join("a.txt"), "user.test", b"v1");
    fs::create_dir(root.join("d")).expect("mkdir d");
    let pattern: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(root.join("d/b.bin"), pattern).expect("write b.bin");
    fs::create_dir(root.join("e")).expect("mkdir e");
    symlink("a.txt", root.join("lnk")).expect("symlink");
    fs::write(root.join("h1"), b"linked\n").expect("write h1");
    fs::hard_link(root.join("h1"), root.join("d/h2")).expect("hard link");
    let mut sparse = fs::File::create(root.join("sparse")).expect("create sparse");
    sparse.set_len(SPARSE_LEN).expect("set_len");
    sparse.seek(SeekFrom::Start(DATA_AT)).expect("seek");
    sparse.write_all(&[b'x'; 4096]).expect("write sparse data");
    fs::write(root.join("s.sh"), b"#!/bin/sh\n").expect("write s.sh");
    fs::set_permissions(root.join("s.sh"), fs::Permissions::from_mode(0o4755)).expect("chmod s.sh");
    // SAFETY: valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(cpath(&root.join("p")).as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
    fix_times(root);
    xattrs
}

/// Two identical trees; the second is the one the tests damage.
fn pair() -> (TempDir, TempDir, bool) {
    let (a, b) = (
        TempDir::new().expect("tempdir"),
        TempDir::new().expect("tempdir"),
    );
    let xattrs = build(a.path());
    build(b.path());
    (a, b, xattrs)
}

fn diffs(a: &TempDir, b: &TempDir) -> Vec<String> {
    diff_trees(&capture(a.path()), &capture(b.path()))
}

fn assert_only(diffs: &[String], needle: &str) {
    assert!(
        diffs.len() == 1 && diffs[0].contains(needle),
        "expected one difference containing {needle:?}, got {diffs:#?}"
    );
}

#[test]
fn identical_trees_compare_equal_and_are_recorded_fully() {
    let (a, b, xattrs) = pair();
    let (ia, ib) = (capture(a.path()), capture(b.path()));
    assert_same_tree_with(
        &ia,
        &ib,
        &CompareOptions {
            root_mtime: true,
            ..Default::default()
        },
    );
    assert_eq!(
        ia.len(),
        11,
        "root, a.txt, d, d/b.bin, d/h2, e, lnk, h1, sparse, s.sh, p"
    );
    let sparse = ia.get("sparse").expect("sparse recorded");
    assert_eq!(
        sparse.holes,
        vec![(0, DATA_AT), (DATA_AT + 4096, SPARSE_LEN)]
    );
    assert_eq!(
        sparse.digest.expect("sparse digest").len,
        SPARSE_LEN,
        "the whole content is read"
    );
    let a_txt = ia.get("a.txt").expect("a.txt");
    assert_eq!(a_txt.digest, Some(digest_bytes(b"hello world\n")));
    assert_eq!(
        ia.hardlink_groups(),
        [vec![b"d/h2".to_vec(), b"h1".to_vec()]]
    );
    assert_eq!(ia.get("s.sh").expect("s.sh").mode, 0o4755);
    assert_eq!(
        ia.get("lnk").expect("lnk").target.as_deref(),
        Some(&b"a.txt"[..])
    );
    assert_eq!(
        ia.get("lnk").expect("lnk").mtime_nsec,
        1,
        "symlink mtimes are recorded"
    );
    assert_eq!(ia.get("p").expect("p").kind, Kind::Fifo);
    if xattrs {
        assert_eq!(
            ia.get("a.txt").expect("a.txt").xattrs,
            vec![(b"user.test".to_vec(), b"v1".to_vec())]
        );
    }
}

#[test]
fn one_changed_byte_is_caught() {
    let (a, b, _) = pair();
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(b.path().join("d/b.bin"))
        .expect("open");
    f.seek(SeekFrom::Start(5000)).expect("seek");
    f.write_all(&[0xFF]).expect("write");
    drop(f);
    fix_times(b.path());
    assert_only(&diffs(&a, &b), "d/b.bin: content differs");
}

#[test]
fn one_mode_bit_is_caught_including_setuid() {
    let (a, b, _) = pair();
    fs::set_permissions(b.path().join("a.txt"), fs::Permissions::from_mode(0o664)).expect("chmod");
    assert_only(&diffs(&a, &b), "a.txt: mode: expected 0644, actual 0664");
    fs::set_permissions(b.path().join("a.txt"), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::set_permissions(b.path().join("s.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_only(&diffs(&a, &b), "s.sh: mode: expected 4755, actual 0755");
}

#[test]
fn one_mtime_is_caught_for_files_and_symlinks() {
    let (a, b, _) = pair();
    set_mtime(&b.path().join("d/b.bin"), T, 2);
    assert_only(&diffs(&a, &b), "d/b.bin: mtime");
    set_mtime(&b.path().join("d/b.bin"), T, 1);
    set_mtime(&b.path().join("lnk"), T + 1, 1);
    assert_only(&diffs(&a, &b), "lnk: mtime");
}

#[test]
fn a_filled_hole_is_caught_though_content_is_equal() {
    let (a, b, _) = pair();
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(b.path().join("sparse"))
        .expect("open");
    f.write_all(&[0u8; 8192])
        .expect("fill the first blocks of the hole with zeros");
    drop(f);
    fix_times(b.path());
    let (ia, ib) = (capture(a.path()), capture(b.path()));
    assert_only(&diff_trees(&ia, &ib), "sparse: holes");
    let keep = CompareOptions {
        holes: HoleCheck::KeepSourceHoles,
        ..Default::default()
    };
    assert_only(&diff_trees_with(&ia, &ib, &keep), "sparse: holes");
    // More holes than the source is acceptable under KeepSourceHoles, not under Exact.
    assert!(diff_trees_with(&ib, &ia, &keep).is_empty());
    let ignore = CompareOptions {
        holes: HoleCheck::Ignore,
        ..Default::default()
    };
    assert!(diff_trees_with(&ia, &ib, &ignore).is_empty());
}

#[test]
fn a_changed_link_target_is_caught() {
    let (a, b, _) = pair();
    fs::remove_file(b.path().join("lnk")).expect("rm lnk");
    symlink("a.txx", b.path().join("lnk")).expect("symlink");
    fix_times(b.path());
    assert_only(
        &diffs(&a, &b),
        "lnk: link target: expected \"a.txt\", actual \"a.txx\"",
    );
}

#[test]
fn a_broken_hard_link_is_caught() {
    let (a, b, _) = pair();
    fs::remove_file(b.path().join("d/h2")).expect("rm h2");
    fs::copy(b.path().join("h1"), b.path().join("d/h2")).expect("copy h1");
    fix_times(b.path());
    assert_only(
        &diffs(&a, &b),
        "hard links: expected {d/h2, h1} to be one file",
    );
}

#[test]
fn a_changed_xattr_is_caught() {
    let (a, b, xattrs) = pair();
    if !xattrs {
        eprintln!("skipped: no user xattrs on this filesystem");
        return;
    }
    set_xattr(&b.path().join("a.txt"), "user.test", b"v2");
    assert_only(&diffs(&a, &b), "a.txt: xattrs: value of user.test differs");
    set_xattr(&b.path().join("a.txt"), "user.test", b"v1");
    set_xattr(&b.path().join("a.txt"), "user.more", b"");
    assert_only(&diffs(&a, &b), "a.txt: xattrs: extra user.more");
}

#[test]
fn missing_extra_and_retyped_entries_are_caught_and_can_be_excluded() {
    let (a, b, _) = pair();
    fs::remove_dir_all(b.path().join("d")).expect("rm d");
    fs::write(b.path().join("new"), b"").expect("write new");
    fs::remove_file(b.path().join("p")).expect("rm fifo");
    fs::write(b.path().join("p"), b"").expect("write p");
    fix_times(b.path());
    let (ia, ib) = (capture(a.path()), capture(b.path()));
    let d = diff_trees(&ia, &ib);
    assert_eq!(d.len(), 4, "{d:#?}");
    assert!(
        d[0].contains("d: missing (directory), with 2 entries below it"),
        "{d:#?}"
    );
    assert!(
        d[1].contains("d/h2: hard links: expected {d/h2, h1}"),
        "{d:#?}"
    );
    assert!(d[2].contains("new: extra (file)"), "{d:#?}");
    assert!(
        d[3].contains("p: type: expected fifo, actual file"),
        "{d:#?}"
    );
    let opts = CompareOptions::default()
        .excluding("d/")
        .excluding("./new")
        .excluding("p");
    assert_same_tree_with(&ia, &ib, &opts);
}

#[test]
fn the_root_mtime_is_only_compared_on_request() {
    let (a, b, _) = pair();
    set_mtime(b.path(), T + 60, 0);
    assert!(diffs(&a, &b).is_empty());
    let opts = CompareOptions {
        root_mtime: true,
        ..Default::default()
    };
    let d = diff_trees_with(&capture(a.path()), &capture(b.path()), &opts);
    assert_only(&d, ".: mtime");
}

#[test]
fn owners_are_compared_unless_disabled() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: changing owners needs root");
        return;
    }
    let (a, b, _) = pair();
    // SAFETY: valid NUL-terminated path.
    let rc = unsafe { libc::lchown(cpath(&b.path().join("lnk")).as_ptr(), 1234, 1234) };
    assert_eq!(rc, 0, "lchown: {}", std::io::Error::last_os_error());
    let (ia, ib) = (capture(a.path()), capture(b.path()));
    assert_only(
        &diff_trees(&ia, &ib),
        "lnk: owner: expected 0:0, actual 1234:1234",
    );
    assert_same_tree_with(
        &ia,
        &ib,
        &CompareOptions {
            owner: false,
            ..Default::default()
        },
    );
}

#[test]
#[should_panic(expected = "trees differ")]
fn assert_same_tree_panics_on_a_difference() {
    let (a, b, _) = pair();
    fs::set_permissions(b.path().join("a.txt"), fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_same_tree(&capture(a.path()), &capture(b.path()));
}

#[test]
fn a_sample_tree_is_captured_stably() {
    let dir = TempDir::new().expect("tempdir");
    sample_init(dir.path(), 16);
    let first = capture(dir.path());
    let second = capture(dir.path());
    assert_same_tree_with(
        &first,
        &second,
        &CompareOptions {
            root_mtime: true,
            ..Default::default()
        },
    );

    // The awkward cases of divers/ are all there, under the names the tests
    // use, and seen for what they are.
    let get = |p: &str| {
        first
            .get(p)
            .unwrap_or_else(|| panic!("{p} missing from the sample tree"))
    };
    assert_eq!(get("divers/canal.fifo").kind, Kind::Fifo);
    assert_eq!(get("divers/script.sh").mode, 0o4755);
    assert_eq!(get("divers/secret.key").mode, 0o400);
    assert_eq!(get("db/officine.fdb").mode, 0o600);
    assert_eq!(get("bin/sauvegarde.sh").mode, 0o755);
    assert_eq!(get("config/officine.ini").mode, 0o640);
    assert_eq!(get("divers/vide.txt").size, 0);
    assert_eq!(get("divers/dossier_vide").kind, Kind::Dir);
    assert_eq!(
        get("divers/CON.txt").size,
        25,
        "the Samba test finds it by size"
    );
    for name in [
        "Ordonnance  Mme Hélène Lefèvre (copie).pdf",
        "rapport: mars? <final>.txt",
        "notes.",
        "espace final ",
        "Lisez-moi.txt",
        "LISEZ-MOI.TXT",
    ] {
        assert_eq!(get(&format!("divers/{name}")).kind, Kind::File, "{name}");
    }
    assert!(
        first.contains(b"divers/Facture_\xe9t\xe9_2019.pdf"),
        "a Latin-1 name"
    );
    for (link, target) in [
        ("divers/base_courante", "../db/officine.fdb"),
        ("divers/lien_absolu_casse", "/srv/officine/absent"),
        ("divers/lien_casse", "n_existe_pas.txt"),
    ] {
        assert_eq!(get(link).kind, Kind::Symlink, "{link}");
        assert_eq!(
            get(link).target.as_deref(),
            Some(target.as_bytes()),
            "{link}"
        );
    }
    let sparse = get("divers/preallocation.dat");
    assert_eq!(sparse.holes.len(), 1, "one hole between head and tail");
    assert_eq!(sparse.holes[0].1 - sparse.holes[0].0, 4 << 20, "16 MiB / 4");
    let trio: Vec<Vec<u8>> = [
        "divers/autre/lien_dur_2.txt",
        "divers/lien_dur.txt",
        "divers/original.txt",
    ]
    .map(|p| p.as_bytes().to_vec())
    .into();
    assert!(
        first.hardlink_groups().contains(&trio),
        "{:?}",
        first.hardlink_groups()
    );
    let deep = first
        .entries()
        .map(|(p, _)| p)
        .find(|p| p.starts_with(b"divers/niveau_1") && p.ends_with(b".txt"))
        .expect("the deep file");
    let levels = deep.split(|&b| b == b'/').collect::<Vec<_>>();
    assert_eq!(levels.len(), 10, "divers, 8 levels, the file");
    assert!(
        (130..=150).contains(&levels[9].len()),
        "a ~140-character name"
    );
    let probe = TempDir::new().expect("tempdir");
    fs::write(probe.path().join("f"), b"").expect("write probe");
    if set_xattr(&probe.path().join("f"), "user.probe", b"1") {
        assert_eq!(
            get("divers/avec_xattr.txt").xattrs,
            vec![(
                b"user.coffre.test".to_vec(),
                b"valeur \0\xff binaire".to_vec()
            )]
        );
    }

    let line = sample_day(dir.path(), 1);
    let summary: sample::DaySummary = serde_json::from_str(&line).expect("a JSON summary");
    assert_eq!(summary.day, 1, "{line}");
    assert!(
        !diff_trees(&first, &capture(dir.path())).is_empty(),
        "day 1 changes the tree"
    );
}
