//! Incremental snapshots through the library: an unchanged tree is not read
//! again, and a one-page change in a large file stores a page and a piece of
//! its chunk list, not the whole list.

mod common;
use common::{pseudo_random, set_xattr, CHEAP};

use std::os::unix::fs::FileExt;

use snapshots_format::ops::backup::{take_snapshot, SnapshotOptions};
use snapshots_format::progress::NoProgress;
use snapshots_format::Repository;

fn opts(src: &std::path::Path) -> SnapshotOptions {
    SnapshotOptions {
        label: Some("t".into()),
        tags: vec![],
        time: None,
        ..SnapshotOptions::new(src.to_path_buf())
    }
}

/// A second snapshot of an unchanged tree reads no file contents and adds
/// no blob: every file and directory is recognised as unchanged.
#[test]
fn unchanged_tree_is_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    for i in 0..50 {
        std::fs::write(
            src.join(format!("a/b/f{i}")),
            pseudo_random(10_000 + i * 977, i as u64),
        )
        .unwrap();
    }
    std::fs::write(src.join("big"), pseudo_random(3 << 20, 7)).unwrap();
    let repo = Repository::init(dir.path().join("repo"), b"pw", CHEAP).unwrap();
    let (_, first) = take_snapshot(&repo, &opts(&src), &NoProgress).unwrap();
    assert!(first.summary.bytes_read > 3 << 20);
    let (_, second) = take_snapshot(&repo, &opts(&src), &NoProgress).unwrap();
    let s = &second.summary;
    assert_eq!(s.bytes_read, 0, "an unchanged tree was read again");
    assert_eq!(s.blobs_added, 0);
    assert_eq!(
        (s.files_new, s.files_changed, s.files_unchanged),
        (0, 0, 51)
    );
    assert_eq!(s.dirs_changed + s.dirs_new, 0);
    assert_eq!(second.tree, first.tree);
}

/// A 1-page change in a large file adds one page and about one chunk-list
/// piece: far less than the file's whole chunk list.
#[test]
fn one_page_change_stores_far_less_than_the_chunk_list() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // 64 MiB of 8 KiB pages: 8192 pages, a chunk list of ~330 KiB.
    let db = src.join("officine.fdb");
    std::fs::write(&db, pseudo_random(64 << 20, 3)).unwrap();
    let repo = Repository::init(dir.path().join("repo"), b"pw", CHEAP).unwrap();
    take_snapshot(&repo, &opts(&src), &NoProgress).unwrap();
    let list_size = (64 << 20) / 8192 * 40;

    let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.write_all_at(&pseudo_random(8192, 99), 4000 * 8192)
        .unwrap();
    drop(f);
    let (_, next) = take_snapshot(&repo, &opts(&src), &NoProgress).unwrap();
    let s = &next.summary;
    assert_eq!(s.files_changed, 1);
    // One page, a chunk-list piece or two, the file's tree: a few KiB.
    assert!(
        s.bytes_added < 8192 + 3 * 256 * 40 + 4096,
        "added {} bytes",
        s.bytes_added
    );
    assert!(
        s.bytes_added * 5 < list_size as u64,
        "added {} of a {list_size}-byte list",
        s.bytes_added
    );
}

/// A folder of many receipts that gains a few a day stores the new
/// receipts and a piece or two of its listing, not the whole listing
/// again (format 3 tree pieces).
#[test]
fn receipts_added_to_a_large_folder_store_far_less_than_its_listing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let arl = src.join("ARL");
    std::fs::create_dir_all(&arl).unwrap();
    let receipt = |i: usize| format!("ARL|20260901|{i:05}|OK|{:016x}\r\n", i * 7919);
    for i in 0..6000 {
        std::fs::write(arl.join(format!("arl_20260901_{i:05}.xml")), receipt(i)).unwrap();
    }
    let repo = Repository::init(dir.path().join("repo"), b"pw", CHEAP).unwrap();
    let (_, first) = take_snapshot(&repo, &opts(&src), &NoProgress).unwrap();
    let listing = repo.find_path(&first.tree, b"ARL").unwrap().0;
    let (tree, pieces) = repo.load_tree_pieces(&listing).unwrap();
    assert_eq!(tree.nodes.len(), 6000);
    assert!(pieces.len() > 20, "{} pieces", pieces.len());
    let whole = tree.encode().len() as u64;

    for i in 6000..6030 {
        std::fs::write(arl.join(format!("arl_20260902_{i:05}.xml")), receipt(i)).unwrap();
    }
    let (_, next) = take_snapshot(&repo, &opts(&src), &NoProgress).unwrap();
    let s = &next.summary;
    assert_eq!((s.files_new, s.files_unchanged), (30, 6000));
    assert!(
        s.bytes_added * 10 < whole,
        "added {} bytes for a {whole}-byte listing",
        s.bytes_added
    );
    let listing = repo.find_path(&next.tree, b"ARL").unwrap().0;
    assert_eq!(repo.load_tree(&listing).unwrap().nodes.len(), 6030);

    // Entries gone and entries new all through the listing, in the first
    // piece, the last and between: the parent's listing is read piece by
    // piece beside the walk, and the listing saved piece by piece while
    // the folder is walked. Neither may change what is stored: a snapshot
    // without a parent gives the same listing.
    for i in (0..6030).step_by(97) {
        std::fs::remove_file(arl.join(format!("arl_20260901_{i:05}.xml"))).ok();
    }
    for name in ["0_first.xml", "arl_20260901_03000b.xml", "zz_last.xml"] {
        std::fs::write(arl.join(name), "ARL|added\r\n").unwrap();
    }
    let (_, day3) = take_snapshot(&repo, &opts(&src), &NoProgress).unwrap();
    let s = &day3.summary;
    assert_eq!((s.files_new, s.files_unchanged), (3, 6030 - 62));
    let alone = SnapshotOptions {
        label: Some("no parent".into()),
        ..opts(&src)
    };
    let (_, fresh) = take_snapshot(&repo, &alone, &NoProgress).unwrap();
    assert_eq!(fresh.summary.files_unchanged, 0);
    assert_eq!(
        repo.find_path(&fresh.tree, b"ARL").unwrap().0,
        repo.find_path(&day3.tree, b"ARL").unwrap().0
    );
    assert_eq!(fresh.tree, day3.tree);
}

/// A database changed in scattered pages, and grown, is stored with its
/// unchanged pages recognised from the parent snapshot's list rather than
/// looked up, and read around the page cache; its folder waits for it
/// while the walk goes on. None of that may change what is stored: a
/// snapshot of the same files without a parent (every page looked up)
/// gives the very same tree, and the folders are counted as before.
#[test]
fn a_changed_database_stores_the_same_tree_with_or_without_a_parent() {
    let dir = tempfile::tempdir_in("/var/tmp")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let src = dir.path().join("src");
    for sub in ["db", "docs", "a/b/c"] {
        std::fs::create_dir_all(src.join(sub)).unwrap();
    }
    // 24 MiB: large enough to be read directly and to be waited for.
    let db = src.join("db/officine.fdb");
    std::fs::write(&db, pseudo_random(24 << 20, 5)).unwrap();
    for i in 0..200 {
        std::fs::write(
            src.join(format!("docs/d{i:03}")),
            pseudo_random(3000 + i, i as u64),
        )
        .unwrap();
        std::fs::write(
            src.join(format!("a/b/c/f{i:03}")),
            pseudo_random(500 + i, 1000 + i as u64),
        )
        .unwrap();
    }
    let repo = Repository::init(dir.path().join("repo"), b"pw", CHEAP).unwrap();
    let (_, first) = take_snapshot(&repo, &opts(&src), &NoProgress).unwrap();
    // db, docs, a, a/b, a/b/c.
    assert_eq!(first.summary.dirs_new, 5);

    let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    for page in [10u64, 1000, 2999] {
        f.write_all_at(&pseudo_random(8192, 50 + page), page * 8192)
            .unwrap();
    }
    // Three pages more at the end.
    f.write_all_at(&pseudo_random(3 * 8192, 77), 24 << 20)
        .unwrap();
    drop(f);
    let (_, next) = take_snapshot(&repo, &opts(&src), &NoProgress).unwrap();
    let s = &next.summary;
    assert_eq!((s.files_changed, s.files_unchanged), (1, 400));
    assert_eq!((s.dirs_changed, s.dirs_unchanged, s.dirs_new), (1, 4, 0));
    // Six pages, a few chunk-list pieces, two trees.
    assert!(
        s.bytes_added < 6 * 8192 + 8 * 256 * 40 + 8192,
        "added {}",
        s.bytes_added
    );

    let alone = SnapshotOptions {
        label: Some("no parent".into()),
        ..opts(&src)
    };
    let (_, fresh) = take_snapshot(&repo, &alone, &NoProgress).unwrap();
    assert_eq!(fresh.summary.blobs_added, 0);
    assert_eq!(fresh.tree, next.tree);
}

fn remove_xattr(path: &std::path::Path, name: &str) {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: NUL-terminated strings.
    assert_eq!(unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) }, 0);
}

/// The extended attributes of `name` at the root of snapshot tree `tree`.
fn xattrs_of(
    repo: &Repository,
    tree: &snapshots_format::BlobId,
    name: &str,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let t = repo.load_tree(tree).unwrap();
    t.get(name.as_bytes()).unwrap().xattrs.clone()
}

/// An unchanged entry takes its attributes from the parent snapshot without
/// listing them; one whose attributes were set or removed since is seen
/// (the attribute moved its ctime).
#[test]
fn attributes_set_or_removed_on_unchanged_entries_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("a"), b"unchanged content a").unwrap();
    std::fs::write(src.join("b"), b"unchanged content b").unwrap();
    if !set_xattr(&src.join("b"), "user.kept", b"1") {
        eprintln!("skipped: the temporary folder takes no user xattrs");
        return;
    }
    let repo = Repository::init(dir.path().join("repo"), b"pw", CHEAP).unwrap();
    let (_, first) = take_snapshot(&repo, &opts(&src), &NoProgress).unwrap();
    let kept = vec![(b"user.kept".to_vec(), b"1".to_vec())];
    assert_eq!(xattrs_of(&repo, &first.tree, "b"), kept);
    assert!(xattrs_of(&repo, &first.tree, "a").is_empty());

    assert!(set_xattr(&src.join("a"), "user.added", b"yes"));
    assert!(set_xattr(&src.join("d"), "user.folder", b"f"));
    let (_, second) = take_snapshot(&repo, &opts(&src), &NoProgress).unwrap();
    assert_eq!(
        xattrs_of(&repo, &second.tree, "a"),
        vec![(b"user.added".to_vec(), b"yes".to_vec())]
    );
    assert_eq!(
        xattrs_of(&repo, &second.tree, "d"),
        vec![(b"user.folder".to_vec(), b"f".to_vec())]
    );
    assert_eq!(xattrs_of(&repo, &second.tree, "b"), kept);

    remove_xattr(&src.join("a"), "user.added");
    let (_, third) = take_snapshot(&repo, &opts(&src), &NoProgress).unwrap();
    assert!(xattrs_of(&repo, &third.tree, "a").is_empty());
    assert_eq!(xattrs_of(&repo, &third.tree, "b"), kept);
}
