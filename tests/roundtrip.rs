//! Snapshot → restore is bit-exact, day after day, on sample pharmacy data with
//! all its awkward cases; and nothing of the source is readable on the drive.

use std::path::Path;

use coffre_tests::{
    assert_same_tree, capture, json_string_fields, sample_day, sample_init, Coffre, Fixture,
    TreeImage,
};

/// Days 0, 1 and 2 are each snapshotted, then each restored and compared
/// with the tree as it was that day: contents, types, modes, owners, mtimes,
/// symlinks, hard links, xattrs, non-UTF-8 names, the fifo, sparse holes.
#[test]
fn three_days_restore_bit_exact() {
    let Fixture { tmp, src, coffre } = Fixture::new(16);

    let mut days: Vec<(String, TreeImage)> = Vec::new();
    for day in 0..3 {
        if day > 0 {
            sample_day(&src, day);
        }
        let image = capture(&src);
        let id = coffre.snapshot(&src);
        days.push((id, image));
    }

    let listing = coffre.ok(["--json", "snapshots"]);
    let ids = json_string_fields(&listing, "id");
    assert_eq!(ids, days.iter().map(|d| d.0.clone()).collect::<Vec<_>>());

    // Later days are incremental: unchanged files are not read again.
    let last = coffre.ok(["--json", "ls", "latest"]);
    assert!(last.contains("\"path\": \"divers\""));
    let snaps = listing.split("\"summary\"").skip(2).collect::<Vec<_>>();
    for s in snaps {
        assert!(
            !s.contains("\"files_unchanged\": 0,"),
            "a later day re-read everything: {s}"
        );
    }

    for (day, (id, image)) in days.iter().enumerate() {
        let target = tmp.path().join(format!("restore-{day}"));
        coffre.restore(&id[..12], &target);
        assert_same_tree(image, &capture(&target));
    }

    // `latest` and today's date name the last snapshot.
    let target = tmp.path().join("restore-latest");
    coffre.restore("latest", &target);
    assert_same_tree(&days[2].1, &capture(&target));

    // One folder alone, at its path under the target.
    let target = tmp.path().join("restore-divers");
    coffre.ok([
        std::ffi::OsStr::new("restore"),
        "latest".as_ref(),
        target.as_os_str(),
        "--path".as_ref(),
        "divers".as_ref(),
    ]);
    assert_same_tree(
        &capture(&src.join("divers")),
        &capture(&target.join("divers")),
    );
}

/// A restore spreads files over several threads: many folders of many
/// files still come back bit-exact, folder mtimes and modes included (a
/// folder's own metadata waits for its last file), read-only folders
/// included, and hard links across folders (first name in a read-only
/// folder) still link.
#[test]
fn many_folders_restore_bit_exact() {
    use std::os::unix::fs::PermissionsExt;
    let Fixture { tmp, src, coffre } = Fixture::new(4);
    let tree = src.join("arbre");
    let stamp = |path: &Path, secs: u64| {
        let when = std::time::UNIX_EPOCH + std::time::Duration::new(secs, 123_456_789);
        std::fs::File::open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    };
    let mut folders = Vec::new();
    for a in 0..6 {
        for b in 0..5 {
            let dir = tree.join(format!("lot_{a}")).join(format!("sous_{b}"));
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..40 {
                let file = dir.join(format!("f{f:03}.txt"));
                std::fs::write(&file, format!("{a}/{b}/{f} ").repeat(f * 7 + 1)).unwrap();
                stamp(&file, 1_700_000_000 + f as u64);
            }
            folders.push(dir);
        }
        folders.push(tree.join(format!("lot_{a}")));
    }
    // The first name of the linked file is in a folder that ends read-only.
    std::fs::hard_link(
        tree.join("lot_0/sous_0/f001.txt"),
        tree.join("lot_5/sous_4/lien.txt"),
    )
    .unwrap();
    folders.push(tree.clone());
    for (i, dir) in folders.iter().enumerate() {
        stamp(dir, 1_600_000_000 + i as u64);
    }
    for ro in ["lot_0/sous_0", "lot_3"] {
        std::fs::set_permissions(tree.join(ro), std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let image = capture(&src);
    coffre.snapshot(&src);
    let target = tmp.path().join("t");
    coffre.restore("latest", &target);
    assert_same_tree(&image, &capture(&target));
    // Let the temporary folder be removed.
    for dir in [&src, &target] {
        for ro in ["lot_0/sous_0", "lot_3"] {
            let path = dir.join("arbre").join(ro);
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

/// Restoring over an existing tree without --overwrite changes nothing and
/// says what to do; with --overwrite, the tree comes back as it was.
#[test]
fn restore_refuses_to_overwrite_unless_asked() {
    let Fixture { tmp, src, coffre } = Fixture::new(4);
    let image = capture(&src);
    coffre.snapshot(&src);
    let target = tmp.path().join("t");
    coffre.restore("latest", &target);
    let victim = target.join("config/officine.ini");
    std::fs::write(&victim, b"changed by the user").unwrap();

    let out = coffre_tests::run(&mut coffre.cmd([
        std::ffi::OsStr::new("restore"),
        "latest".as_ref(),
        target.as_os_str(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overwrite"));
    assert_eq!(std::fs::read(&victim).unwrap(), b"changed by the user");

    coffre.ok([
        std::ffi::OsStr::new("restore"),
        "latest".as_ref(),
        target.as_os_str(),
        "--overwrite".as_ref(),
    ]);
    assert_same_tree(&image, &capture(&target));
}

/// Names, the source path, the label, tags and file contents are found in no
/// file of the repository.
#[test]
fn no_plaintext_on_the_drive() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("source-officine-Kq7Zp");
    let coffre = Coffre::new(tmp.path().join("repo"));
    coffre.init();
    sample_init(&src, 4);
    coffre.ok([
        std::ffi::OsStr::new("snapshot"),
        src.as_os_str(),
        "--label".as_ref(),
        "pharmacie-du-centre".as_ref(),
        "--tag".as_ref(),
        "quotidien-soir".as_ref(),
    ]);
    sample_day(&src, 1);
    coffre.ok([
        std::ffi::OsStr::new("snapshot"),
        src.as_os_str(),
        "--label".as_ref(),
        "pharmacie-du-centre".as_ref(),
    ]);

    let mut needles: Vec<Vec<u8>> = vec![
        b"source-officine-Kq7Zp".to_vec(),
        b"pharmacie-du-centre".to_vec(),
        b"quotidien-soir".to_vec(),
    ];
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    if host.trim().len() >= 6 {
        needles.push(host.trim().as_bytes().to_vec());
    }
    collect_needles(&src, &mut needles);
    assert!(needles.len() > 50, "too few needles: {}", needles.len());

    // Index the needles by their first 6 bytes so each repository file is
    // scanned once, not once per needle.
    let mut by_prefix: std::collections::HashMap<&[u8], Vec<&[u8]>> =
        std::collections::HashMap::new();
    for n in &needles {
        assert!(n.len() >= 6);
        by_prefix.entry(&n[..6]).or_default().push(n);
    }
    let mut files = Vec::new();
    walk_files(&coffre.repo, &mut files);
    assert!(files.len() > 5);
    for f in files {
        let data = std::fs::read(&f).unwrap();
        for i in 0..data.len().saturating_sub(5) {
            if let Some(candidates) = by_prefix.get(&data[i..i + 6]) {
                for n in candidates {
                    assert!(
                        !data[i..].starts_with(n),
                        "{:?} found in plain text in {}",
                        String::from_utf8_lossy(n),
                        f.display()
                    );
                }
            }
        }
    }
}

/// Names of 6 bytes or more, and 24-byte windows from the start and middle
/// of text-like files.
fn collect_needles(dir: &Path, out: &mut Vec<Vec<u8>>) {
    use std::os::unix::ffi::OsStrExt;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        let ft = e.file_type().unwrap();
        if name.as_bytes().len() >= 6 && name.as_bytes() != b"config" {
            out.push(name.as_bytes().to_vec());
        }
        if ft.is_dir() {
            collect_needles(&e.path(), out);
        } else if ft.is_file() {
            let p = e.path();
            let ext = p
                .extension()
                .map(|x| x.as_bytes().to_vec())
                .unwrap_or_default();
            if [&b"csv"[..], b"ini", b"xml", b"log", b"txt", b"json"].contains(&&ext[..]) {
                let data = std::fs::read(&p).unwrap();
                for start in [0, data.len() / 2] {
                    if data.len() >= start + 24 {
                        out.push(data[start..start + 24].to_vec());
                    }
                }
            }
        }
    }
}

fn walk_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            walk_files(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}
