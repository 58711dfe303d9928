//! Restore treats the repository as untrusted input, and the target as hostile
//! ground: whatever a repository holds (names with `..`, `/`, NUL, duplicates,
//! absolute paths) and whatever already sits in the target (symlinks, hard
//! links), `coffre restore` never creates, modifies or deletes anything outside
//! its target directory, and refuses damaged trees with a clear error.
//!
//! Malicious repositories are crafted with the library: `Tree::encode` does not
//! validate names, so a tree holding `../evil` can be written as a real,
//! correctly encrypted blob, exactly as an attacker holding the key could.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use coffre_tests::{
    assert_same_tree, assert_same_tree_with, capture, coffre_bin, run, run_ok, CompareOptions,
};
use snapshots_format::format::blob::BlobKind;
use snapshots_format::format::content::{Content, Extent};
use snapshots_format::format::keyfile::KdfParams;
use snapshots_format::format::snapshot::{Snapshot, Summary};
use snapshots_format::format::tree::{Node, NodeKind, Payload, Timestamp, Tree};
use snapshots_format::repo::saver::Saver;
use snapshots_format::{BlobId, Repository, SnapshotId};

const PASS: &str = "correct horse battery staple";

/// Every name the crafted entries carry starts with this, so a scan can prove that
/// none of them was created anywhere.
const EVIL: &str = "evil";

/// `coffre -r REPO` with the passphrase in the environment of this command only.
fn coffre(repo: &Path) -> Command {
    let mut c = Command::new(coffre_bin());
    without_machine_config(&mut c)
        .env("COFFRE_PASSWORD", PASS)
        .env_remove("COFFRE_REPO")
        .env_remove("COFFRE_PASSWORD_FILE")
        .arg("-r")
        .arg(repo);
    c
}

use coffre_tests::{describe, text, without_machine_config};

/// Asserts a clean failure: exit code 1 (not a crash, not a usage error), an
/// `error: ` line on stderr, and no panic.
fn assert_clean_failure(out: &Output, what: &str) {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: expected exit 1\n{}",
        describe(out)
    );
    assert!(
        err.contains("error: "),
        "{what}: no `error: ` message\n{}",
        describe(out)
    );
    for bad in ["panicked", "RUST_BACKTRACE", "internal error"] {
        assert!(
            !err.contains(bad),
            "{what}: stderr shows a crash ({bad})\n{}",
            describe(out)
        );
    }
}

/// A tree entry to craft. Names are raw bytes, used exactly as given.
#[derive(Clone)]
enum Spec {
    File(Vec<u8>, Vec<u8>),
    Dir(Vec<u8>, Vec<Spec>),
    Symlink(Vec<u8>, Vec<u8>),
}

fn file(name: impl AsRef<[u8]>, content: &str) -> Spec {
    Spec::File(name.as_ref().to_vec(), content.as_bytes().to_vec())
}

fn dir(name: impl AsRef<[u8]>, children: Vec<Spec>) -> Spec {
    Spec::Dir(name.as_ref().to_vec(), children)
}

fn link(name: impl AsRef<[u8]>, target: &Path) -> Spec {
    Spec::Symlink(
        name.as_ref().to_vec(),
        target.as_os_str().as_bytes().to_vec(),
    )
}

fn node(name: &[u8], kind: NodeKind, size: u64, payload: Payload) -> Node {
    let t = Timestamp {
        sec: 1_700_000_000,
        nsec: 0,
    };
    Node {
        name: name.to_vec(),
        kind,
        mode: if kind == NodeKind::Dir { 0o755 } else { 0o644 },
        uid: 0,
        gid: 0,
        mtime: t,
        ctime: t,
        size,
        dev: 1,
        inode: 0,
        nlink: 1,
        xattrs: vec![],
        payload,
    }
}

/// Stores a directory listing exactly as specified (stable sort by name, so
/// duplicates keep the given order) and returns its tree id.
fn store_tree(saver: &Saver<'_>, specs: &[Spec]) -> snapshots_format::Result<BlobId> {
    let mut tree = Tree::default();
    for spec in specs {
        tree.nodes.push(match spec {
            Spec::File(name, content) => {
                let id = saver.save(BlobKind::Data, content)?;
                let len = content.len() as u32;
                let payload = Payload::File(Content::Inline(vec![Extent::chunk(id, len)]));
                node(name, NodeKind::File, u64::from(len), payload)
            }
            Spec::Dir(name, children) => {
                let sub = store_tree(saver, children)?;
                node(name, NodeKind::Dir, 0, Payload::Dir(sub))
            }
            Spec::Symlink(name, target) => node(
                name,
                NodeKind::Symlink,
                target.len() as u64,
                Payload::Symlink(target.clone()),
            ),
        });
    }
    tree.sort();
    saver.save(BlobKind::Tree, &tree.encode())
}

/// Creates a repository at `repo` (cheap KDF) holding one snapshot per root
/// listing, oldest first; returns their ids. One repository for many cases keeps
/// the number of fsyncs, hence the test's runtime, low.
fn craft_repo_many(repo: &Path, roots: &[Vec<Spec>]) -> Vec<SnapshotId> {
    let r =
        Repository::init(repo, PASS.as_bytes(), cheap_kdf()).expect("init the crafted repository");
    let (trees, _) = Saver::run(&r, |s| {
        roots
            .iter()
            .map(|root| store_tree(s, root))
            .collect::<Result<Vec<_>, _>>()
    })
    .expect("store the crafted trees");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    trees
        .into_iter()
        .enumerate()
        .map(|(i, tree)| {
            r.write_snapshot(&Snapshot {
                time: Timestamp {
                    sec: now.as_secs() as i64 - 1000 + i as i64,
                    nsec: 0,
                },
                hostname: b"h".to_vec(),
                sources: vec![b"/src".to_vec()],
                label: "crafted".into(),
                tags: vec![],
                parent: None,
                tree,
                root: None,
                summary: Summary::default(),
                excludes: vec![],
                hooks: vec![],
            })
            .expect("write the crafted snapshot")
        })
        .collect()
}

/// Creates a repository at `repo` (cheap KDF) holding one snapshot of `root`.
fn craft_repo(repo: &Path, root: &[Spec]) {
    craft_repo_many(repo, &[root.to_vec()]);
}

/// Argon2 parameters cheap enough for tests; the CLI reads them from the key file.
fn cheap_kdf() -> KdfParams {
    KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    }
}

/// An empty repository, for snapshots taken by the CLI.
fn empty_repo(repo: &Path) {
    drop(Repository::init(repo, PASS.as_bytes(), cheap_kdf()).expect("init repository"));
}

/// Every path below `root` (relative, not following symlinks), skipping the
/// subtree `skip` if given.
fn walk(root: &Path, skip: Option<&Path>) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display())) {
            let p = e.unwrap().path();
            if Some(p.as_path()) == skip {
                continue;
            }
            let meta = fs::symlink_metadata(&p).unwrap();
            out.insert(p.strip_prefix(root).unwrap().to_path_buf());
            if meta.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// Paths below `root` (repository excluded) whose last component starts with [`EVIL`].
fn evil_entries(root: &Path, repo: &Path) -> Vec<PathBuf> {
    walk(root, Some(repo))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.as_bytes().starts_with(EVIL.as_bytes()))
        })
        .collect()
}

/// Top-level entries of a directory, as strings.
fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The restore of a snapshot whose root tree holds a file named `../evil` fails
/// with a clear error, and nothing at all is created outside the target (nor
/// inside it: the damaged root listing is refused as a whole).
#[test]
fn restore_refuses_dotdot_entry_and_writes_nothing_outside_target() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    craft_repo(&repo, &[file("../evil", "pwned"), file("ok.txt", "fine")]);
    let target = tmp.path().join("sub/target");

    let out = run(coffre(&repo).arg("restore").arg("latest").arg(&target));
    assert_clean_failure(&out, "restore of a tree holding `../evil`");
    let err = text(&out.stderr);
    assert!(
        ["damaged", "unsafe", "refused"]
            .iter()
            .any(|w| err.contains(w)),
        "the error does not say the repository content is bad:\n{}",
        describe(&out)
    );

    assert_eq!(
        names(tmp.path()),
        set(&["repo", "sub"]),
        "something was created next to the repository"
    );
    assert_eq!(
        names(&tmp.path().join("sub")),
        set(&["target"]),
        "something was created next to the target"
    );
    assert_eq!(
        names(&target),
        set(&[]),
        "the refused listing was partly restored"
    );
    assert_eq!(evil_entries(tmp.path(), &repo), Vec::<PathBuf>::new());
}

/// The unsafe listings a crafted tree may hold, each with a description: names a
/// naive restorer would resolve outside the target (through `..`, a `/`, an
/// absolute path, or a symlink of the same listing), and invalid or duplicate
/// names. `outside` is an existing, empty directory outside the target.
fn unsafe_cases(outside: &Path) -> Vec<(&'static str, Vec<Spec>)> {
    let abs_name = outside.join("evil_abs").into_os_string().into_vec();
    vec![
        ("file `../evil`", vec![file("../evil", "pwned")]),
        (
            "directory `..` holding `evil`",
            vec![dir("..", vec![file("evil_up", "pwned")])],
        ),
        (
            "directory `.` holding `evil`",
            vec![dir(".", vec![file("evil_dot", "pwned")])],
        ),
        ("file `..`", vec![file("..", "pwned")]),
        ("file `.`", vec![file(".", "pwned")]),
        (
            "symlink `link` to outside, then file `link/evil`",
            vec![link("link", outside), file("link/evil_slash", "pwned")],
        ),
        (
            "file `a/b`",
            vec![dir("a", vec![]), file("a/evil_ab", "pwned")],
        ),
        (
            "absolute file name inside `outside`",
            vec![Spec::File(abs_name, b"pwned".to_vec())],
        ),
        (
            "absolute file name `/abs_evil`",
            vec![file("/abs_evil", "pwned")],
        ),
        ("name with a NUL byte", vec![file("evil_nul\0x", "pwned")]),
        ("empty name", vec![file("", "pwned")]),
        (
            "symlink `link` to outside, then directory `link` holding `evil`",
            vec![
                link("link", outside),
                dir("link", vec![file("evil_dup", "pwned")]),
            ],
        ),
        (
            "directory `link` holding `evil`, then symlink `link` to outside",
            vec![
                dir("link", vec![file("evil_dup2", "pwned")]),
                link("link", outside),
            ],
        ),
        (
            "two files `evil`",
            vec![file("evil_twice", "one"), file("evil_twice", "two")],
        ),
    ]
}

/// Every crafted case, at the root of the snapshot and one level down (in a
/// directory `d` next to a good file), with a description.
fn all_cases(outside: &Path) -> Vec<(String, Vec<Spec>)> {
    let mut out = Vec::new();
    for nested in [false, true] {
        for (what, specs) in unsafe_cases(outside) {
            let root = if nested {
                vec![dir("d", specs), file("ok.txt", "fine")]
            } else {
                specs
            };
            out.push((format!("{what} (nested: {nested})"), root));
        }
    }
    out
}

/// Every unsafe or duplicate name (`..`, `.`, `a/b`, absolute, NUL, empty, and a
/// name used twice for a symlink to outside and a directory), at the root of the
/// snapshot or one level down, with and without `--overwrite`: restore exits 1
/// with an error, the directory `outside` (the symlinks' target) stays empty, no
/// crafted entry is created anywhere, and nothing appears next to the target.
#[test]
fn restore_refuses_every_unsafe_or_duplicate_name() {
    assert!(
        !Path::new("/abs_evil").exists(),
        "/abs_evil exists before the test; remove it"
    );
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let repo = tmp.path().join("repo");
    let cases = all_cases(&outside);
    let roots: Vec<Vec<Spec>> = cases.iter().map(|(_, r)| r.clone()).collect();
    let ids = craft_repo_many(&repo, &roots);
    let mut checked = 0;
    for ((what, _), id) in cases.iter().zip(&ids) {
        for overwrite in [false, true] {
            let what = format!("{what}, --overwrite: {overwrite}");
            let case = tmp.path().join(format!("case{checked}"));
            fs::create_dir_all(case.join("sub")).unwrap();
            let target = case.join("sub/target");
            let mut cmd = coffre(&repo);
            cmd.arg("restore").arg(id.to_hex()).arg(&target);
            if overwrite {
                cmd.arg("--overwrite");
            }
            let out = run(&mut cmd);
            assert_clean_failure(&out, &what);
            let err = text(&out.stderr);
            assert!(
                ["damaged", "unsafe", "refused"]
                    .iter()
                    .any(|w| err.contains(w)),
                "{what}: the error does not say the repository content is bad:\n{}",
                describe(&out)
            );
            assert_eq!(
                names(&outside),
                set(&[]),
                "{what}: restore wrote into the outside directory"
            );
            assert_eq!(
                evil_entries(tmp.path(), &repo),
                Vec::<PathBuf>::new(),
                "{what}: a crafted entry was created"
            );
            assert_eq!(
                names(&case),
                set(&["sub"]),
                "{what}: something was created next to `sub`"
            );
            assert_eq!(
                names(&case.join("sub")),
                set(&["target"]),
                "{what}: something was created next to the target"
            );
            assert!(
                !Path::new("/abs_evil").exists(),
                "{what}: restore created /abs_evil"
            );
            checked += 1;
        }
    }
    let top = names(tmp.path());
    assert!(
        top.iter()
            .all(|n| n == "outside" || n == "repo" || n.starts_with("case")),
        "restore created {top:?} next to the cases"
    );
    assert_eq!(checked, 4 * unsafe_cases(&outside).len());
}

/// `coffre check` on repositories holding crafted trees reports the damage:
/// exit 1 and, on stderr, every snapshot holding an unsafe or duplicate name (at
/// the root or one level down), with or without `--read-data`; and the
/// repository of the `../evil` restore test alone is reported damaged too.
#[test]
fn check_reports_crafted_trees() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");

    let repo = tmp.path().join("repo-a");
    craft_repo(&repo, &[file("../evil", "pwned"), file("ok.txt", "fine")]);
    let out = run(coffre(&repo).arg("check"));
    assert_clean_failure(&out, "check of the `../evil` repository");
    assert!(
        text(&out.stderr).contains("damaged"),
        "damage not reported\n{}",
        describe(&out)
    );

    let repo = tmp.path().join("repo-all");
    let cases = all_cases(&outside);
    let roots: Vec<Vec<Spec>> = cases.iter().map(|(_, r)| r.clone()).collect();
    let ids = craft_repo_many(&repo, &roots);
    for read_data in [false, true] {
        let mut cmd = coffre(&repo);
        cmd.arg("check");
        if read_data {
            cmd.arg("--read-data");
        }
        let out = run(&mut cmd);
        let what = format!("check (--read-data: {read_data}) of all crafted trees");
        assert_clean_failure(&out, &what);
        let err = text(&out.stderr);
        let missed: Vec<&str> = cases
            .iter()
            .zip(&ids)
            .filter(|(_, id)| !err.contains(&format!("snapshot {}", id.short())))
            .map(|((w, _), _)| w.as_str())
            .collect();
        assert!(
            missed.is_empty(),
            "{what}: damage not reported for {missed:?}\n{}",
            describe(&out)
        );
    }
}

/// A small source tree with `sub/file.txt`, snapshotted by the CLI into `repo`.
fn legit_snapshot(tmp: &Path) -> (PathBuf, PathBuf) {
    let src = tmp.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/file.txt"), "content from the snapshot\n").unwrap();
    fs::write(src.join("sub/other.txt"), "another file\n").unwrap();
    fs::write(src.join("top.txt"), "top level\n").unwrap();
    let repo = tmp.join("repo");
    empty_repo(&repo);
    run_ok(coffre(&repo).arg("snapshot").arg(&src));
    (repo, src)
}

/// An outside directory with a few files, to be watched for any change.
fn make_outside(tmp: &Path) -> PathBuf {
    let outside = tmp.join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("file.txt"), "outside original\n").unwrap();
    fs::write(outside.join("keep.txt"), "must not change\n").unwrap();
    outside
}

/// Compares everything, the root directory's own mtime included, so that even a
/// file created then removed in `outside` is caught.
fn strict() -> CompareOptions {
    CompareOptions {
        root_mtime: true,
        ..CompareOptions::default()
    }
}

/// A target where `sub` is a symlink to a directory outside the target: a
/// restore with `--overwrite` (whole snapshot, or `--path sub/file.txt`) never
/// writes through the symlink; the outside directory stays untouched. On success
/// the symlink has been replaced by a real directory and the target equals the
/// source. Without `--overwrite` the restore exits 1, says to use
/// `--overwrite`, and leaves the symlink in place.
#[test]
fn overwrite_replaces_symlinked_dir_without_writing_through_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = legit_snapshot(tmp.path());
    let outside = make_outside(tmp.path());
    let before = capture(&outside);

    for (n, path) in [None, Some("sub/file.txt"), Some("sub")]
        .into_iter()
        .enumerate()
    {
        let what = format!("restore --path {path:?}");
        let target = tmp.path().join(format!("target{n}"));
        fs::create_dir(&target).unwrap();
        symlink(&outside, target.join("sub")).unwrap();

        // Without --overwrite: refused, symlink and outside untouched.
        let mut cmd = coffre(&repo);
        cmd.arg("restore").arg("latest").arg(&target);
        if let Some(p) = path {
            cmd.arg("--path").arg(p);
        }
        let out = run(&mut cmd);
        assert_clean_failure(
            &out,
            &format!("{what} without --overwrite over a symlinked dir"),
        );
        assert!(
            text(&out.stderr).contains("--overwrite"),
            "{what}: no hint at --overwrite\n{}",
            describe(&out)
        );
        assert_same_tree_with(&before, &capture(&outside), &strict());
        assert_eq!(
            fs::read_link(target.join("sub")).unwrap(),
            outside,
            "{what}: the symlink was changed"
        );

        // With --overwrite: replaced by a real directory, or refused; never written through.
        let out = run(cmd.arg("--overwrite"));
        assert_same_tree_with(&before, &capture(&outside), &strict());
        if out.status.success() {
            let meta = fs::symlink_metadata(target.join("sub")).unwrap();
            assert!(
                meta.is_dir(),
                "{what}: exit 0 but `sub` is not a real directory"
            );
            assert_eq!(
                fs::read_to_string(target.join("sub/file.txt")).unwrap(),
                "content from the snapshot\n",
                "{what}: wrong restored content"
            );
            if path.is_none() {
                assert_same_tree(&capture(&src), &capture(&target));
            }
        } else {
            assert_clean_failure(&out, &format!("{what} --overwrite over a symlinked dir"));
        }
    }
    assert_same_tree_with(&before, &capture(&outside), &strict());
}

/// A target where `sub/file.txt` is a symlink to a file outside, and `top.txt`
/// is a hard link to a file outside: a restore with `--overwrite` replaces both
/// names with fresh files holding the snapshot's content, and neither outside
/// file changes (no write through a symlink, no truncation of a shared inode).
#[test]
fn overwrite_replaces_symlinked_and_hardlinked_files_without_writing_through_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, src) = legit_snapshot(tmp.path());
    let outside = make_outside(tmp.path());
    let target = tmp.path().join("target");
    fs::create_dir_all(target.join("sub")).unwrap();
    symlink(outside.join("file.txt"), target.join("sub/file.txt")).unwrap();
    fs::hard_link(outside.join("keep.txt"), target.join("top.txt")).unwrap();
    let before = capture(&outside);

    let out = run(coffre(&repo)
        .arg("restore")
        .arg("latest")
        .arg(&target)
        .arg("--overwrite"));
    assert_same_tree_with(&before, &capture(&outside), &strict());
    assert!(
        out.status.success(),
        "restore --overwrite failed\n{}",
        describe(&out)
    );
    assert!(fs::symlink_metadata(target.join("sub/file.txt"))
        .unwrap()
        .is_file());
    assert_same_tree(&capture(&src), &capture(&target));
}

/// Without `--overwrite`, a file already in the target is not replaced: restore
/// exits 1, names the file, mentions `--overwrite`, leaves its content as it was,
/// and still restores the other files.
#[test]
fn existing_file_is_kept_without_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _src) = legit_snapshot(tmp.path());
    let target = tmp.path().join("target");
    fs::create_dir_all(target.join("sub")).unwrap();
    fs::write(
        target.join("sub/file.txt"),
        "local edits, not in any backup\n",
    )
    .unwrap();

    let out = run(coffre(&repo).arg("restore").arg("latest").arg(&target));
    assert_clean_failure(&out, "restore over an existing file without --overwrite");
    let err = text(&out.stderr);
    assert!(
        err.contains("--overwrite"),
        "no hint at --overwrite\n{}",
        describe(&out)
    );
    assert!(
        err.contains("sub/file.txt"),
        "the file kept is not named\n{}",
        describe(&out)
    );
    assert_eq!(
        fs::read_to_string(target.join("sub/file.txt")).unwrap(),
        "local edits, not in any backup\n"
    );
    assert_eq!(
        fs::read_to_string(target.join("sub/other.txt")).unwrap(),
        "another file\n"
    );
    assert_eq!(
        fs::read_to_string(target.join("top.txt")).unwrap(),
        "top level\n"
    );
}

/// `restore --path` with `..` components (`../../etc` and variants) fails with
/// a clear "no such path" error and writes nothing: no file anywhere, an existing
/// target stays empty, and a missing target is not even created.
#[test]
fn restore_path_with_dotdot_fails_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _src) = legit_snapshot(tmp.path());
    let work = tmp.path().join("a/b");
    fs::create_dir_all(&work).unwrap();
    let existing = work.join("existing");
    fs::create_dir(&existing).unwrap();
    let before = walk(tmp.path(), Some(&repo));

    for p in [
        "../../etc",
        "../../etc/passwd",
        "/../../etc",
        "sub/../../etc",
        "..",
        "sub/..",
        "sub/../../../../../tmp",
    ] {
        for target in [existing.clone(), work.join("missing")] {
            let out = run(coffre(&repo)
                .arg("restore")
                .arg("latest")
                .arg(&target)
                .arg("--path")
                .arg(p));
            let what = format!("restore --path {p} into {}", target.display());
            assert_clean_failure(&out, &what);
            assert!(
                text(&out.stderr).contains("no such path"),
                "{what}: unclear error\n{}",
                describe(&out)
            );
            let after = walk(tmp.path(), Some(&repo));
            let created: Vec<_> = after.difference(&before).collect();
            assert!(
                created.is_empty(),
                "{what}: a failed restore created {created:?}"
            );
        }
    }
}

/// A crafted snapshot nested 20 000 directories deep (valid names, impossible
/// from a real source, trivial for an attacker) does not crash `restore`,
/// `check` or `ls -R`: each exits 0 or 1 with no stack overflow, and the restore
/// writes nothing outside its target.
#[test]
fn deeply_nested_crafted_tree_does_not_crash() {
    const DEPTH: usize = 20_000;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let r =
        Repository::init(&repo, PASS.as_bytes(), cheap_kdf()).expect("init the crafted repository");
    let (tree, _) = Saver::run(&r, |s| {
        // Built bottom-up in a loop: no recursion on our side.
        let mut id = store_tree(s, &[file("leaf.txt", "at the bottom")])?;
        for _ in 0..DEPTH {
            let t = Tree {
                nodes: vec![node(b"d", NodeKind::Dir, 0, Payload::Dir(id))],
            };
            id = s.save(BlobKind::Tree, &t.encode())?;
        }
        Ok(id)
    })
    .expect("store the crafted trees");
    r.write_snapshot(&Snapshot {
        time: Timestamp {
            sec: 1_800_000_000,
            nsec: 0,
        },
        hostname: b"h".to_vec(),
        sources: vec![b"/src".to_vec()],
        label: "deep".into(),
        tags: vec![],
        parent: None,
        tree,
        root: None,
        summary: Summary::default(),
        excludes: vec![],
        hooks: vec![],
    })
    .expect("write the crafted snapshot");
    drop(r);
    let target = tmp.path().join("sub/target");
    let mut crashes = Vec::new();
    for args in [
        &["check"][..],
        &["ls", "latest", "-R"][..],
        &["restore", "latest"][..],
    ] {
        let mut cmd = coffre(&repo);
        cmd.args(args);
        if args[0] == "restore" {
            cmd.arg(&target);
        }
        let out = run(&mut cmd);
        let err = text(&out.stderr);
        if !matches!(out.status.code(), Some(0 | 1))
            || err.contains("overflow")
            || err.contains("panicked")
        {
            crashes.push(format!(
                "coffre {}: {}: {}",
                args.join(" "),
                out.status,
                err.trim()
            ));
        }
    }
    assert!(
        crashes.is_empty(),
        "on a {DEPTH}-deep crafted tree:\n{}",
        crashes.join("\n")
    );
    assert_eq!(
        names(tmp.path()),
        set(&["repo", "sub"]),
        "restore created something next to the repository"
    );
    assert_eq!(
        names(&tmp.path().join("sub")),
        set(&["target"]),
        "restore created something next to the target"
    );
}
