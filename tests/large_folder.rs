//! A folder of thousands of entries is stored as tree pieces (format 3,
//! FORMAT.md §7.3). Through the real binary: it restores and mounts
//! bit-exact, forget + prune keep every piece a snapshot still uses, and
//! `rebuild-index` finds them again.

use std::ffi::OsStr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use coffre_tests::mount::Mounted;
use coffre_tests::{assert_same_tree, capture, run, text, Coffre, TEST_PASSWORD};

/// The entry names of a tar archive, in order.
fn tar_names(archive: &[u8]) -> Vec<String> {
    tar::Archive::new(archive)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn receipt(day: u32, i: u32) -> String {
    format!(
        "ARL|2026090{day}|{i:05}|OK|{:016x}\r\n",
        u64::from(i) * 7919
    )
}

fn add_receipts(arl: &Path, day: u32, range: std::ops::Range<u32>) {
    for i in range {
        let name = format!("arl_2026090{day}_{i:05}.xml");
        std::fs::write(arl.join(name), receipt(day, i)).unwrap();
    }
}

/// A source holding 4000 receipts in `teletransmission/ARL`, and an empty
/// repository beside it.
fn receipts_and_repository(tmp: &Path) -> (PathBuf, PathBuf, Coffre) {
    let src = tmp.join("src");
    let arl = src.join("teletransmission/ARL");
    std::fs::create_dir_all(&arl).unwrap();
    add_receipts(&arl, 1, 0..4000);
    let coffre = Coffre::new(tmp.join("repo"));
    coffre.init();
    (src, arl, coffre)
}

#[test]
fn a_large_folder_restores_mounts_and_survives_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, arl, coffre) = receipts_and_repository(tmp.path());
    let first = coffre.snapshot(&src);

    // The next day: new receipts, one removed, one rewritten.
    add_receipts(&arl, 2, 0..40);
    std::fs::remove_file(arl.join("arl_20260901_01234.xml")).unwrap();
    std::fs::write(arl.join("arl_20260901_02000.xml"), "ARL|rejected\r\n").unwrap();
    let image = capture(&src);
    coffre.snapshot(&src);
    let listed = coffre.ok(["ls", "latest", "teletransmission/ARL"]);
    assert_eq!(listed.lines().count(), 4039, "{}", &listed[..200]);
    // `--json` is printed entry by entry too, and is still one array.
    let json = coffre.ok(["--json", "ls", "latest", "teletransmission/ARL"]);
    let entries: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(entries.len(), 4039);
    assert_eq!(
        entries[0]["path"],
        "teletransmission/ARL/arl_20260901_00000.xml",
        "{}",
        &json[..300]
    );
    assert_eq!(
        entries[4038]["path"],
        "teletransmission/ARL/arl_20260902_00039.xml"
    );
    assert_eq!(entries[4038]["size"], receipt(2, 39).len());

    // diff, find, history and dump walk the folder a piece at a time.
    let diff = coffre.ok([OsStr::new("diff"), first[..12].as_ref(), "latest".as_ref()]);
    assert!(
        diff.contains("40 added (+), 1 removed (-), 1 changed (M)"),
        "{diff}"
    );
    assert!(diff.contains("- teletransmission/ARL/arl_20260901_01234.xml"));
    assert!(diff.contains("M teletransmission/ARL/arl_20260901_02000.xml"));
    let found = coffre.ok(["find", "arl_20260902_*"]);
    let paths = found.lines().filter(|l| l.starts_with("teletransmission/"));
    assert!(
        paths
            .clone()
            .all(|p| p.starts_with("teletransmission/ARL/arl_20260902_")),
        "{found}"
    );
    assert_eq!(paths.count(), 40, "{found}");
    let history = coffre.ok(["history", "teletransmission/ARL/arl_20260901_02000.xml"]);
    assert!(
        history.contains("in 2 of 2 snapshots, 2 versions"),
        "{history}"
    );
    let tar = coffre
        .cmd(["dump", "latest", "teletransmission/ARL"])
        .output()
        .unwrap();
    assert!(tar.status.success(), "{}", text(&tar.stderr));
    let names = tar_names(&tar.stdout);
    assert_eq!(names.len(), 4040, "the folder and its 4039 files");
    assert!(
        names.windows(2).skip(1).all(|w| w[0] < w[1]),
        "in name order"
    );

    // A reader that stops early (`coffre find | head`) ends the command
    // quietly, with the shell's code for a closed pipe, not a panic.
    let mut child = coffre
        .cmd(["find", "arl_*"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_bytes = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first_bytes).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("internal error"),
        "{}",
        text(&out.stderr)
    );

    // The first snapshot's listing goes; the pieces the second shares with
    // it must stay.
    coffre.ok([OsStr::new("forget"), first[..12].as_ref()]);
    coffre.ok(["prune", "--max-unused", "0%"]);
    coffre.ok(["check", "--read-data"]);
    // The index rebuilt from the packs knows the pieces too.
    coffre.ok(["rebuild-index"]);
    coffre.ok(["check", "--read-data"]);
    let out = tmp.path().join("out");
    coffre.restore("latest", &out);
    assert_same_tree(&image, &capture(&out));

    let m = Mounted::start(&coffre, &tmp.path().join("mnt"), &[]);
    assert_same_tree(&image, &capture(&m.path.join("latest")));
    m.stop();
}

/// A large folder holding names that are not UTF-8, mounted with
/// `--windows-names` (a Samba share): its listing, read a piece at a time,
/// shows them decoded (with a suffix where the decoded name is taken),
/// every entry is found by the name listed, and reads back right.
#[test]
fn a_large_folder_shows_windows_names_across_its_pieces() {
    use std::os::unix::ffi::OsStrExt;

    let tmp = tempfile::tempdir().unwrap();
    let (src, arl, coffre) = receipts_and_repository(tmp.path());
    let odd: [(&[u8], &[u8]); 4] = [
        (b"Facture_\xe9t\xe9.pdf", b"latin-1 first"),
        ("Facture_été.pdf".as_bytes(), b"utf-8 first"),
        (b"zz_d\xe9j\xe0.txt", b"latin-1 last"),
        ("zz_déjà.txt".as_bytes(), b"utf-8 last"),
    ];
    for (name, body) in odd {
        std::fs::write(arl.join(OsStr::from_bytes(name)), body).unwrap();
    }
    coffre.snapshot(&src);
    let m = Mounted::start(&coffre, &tmp.path().join("mnt"), &["--windows-names"]);
    let shown = m.path.join("latest/teletransmission/ARL");
    let mut names: Vec<String> = std::fs::read_dir(&shown)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().expect("UTF-8"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 4004);
    let read = |n: &str| std::fs::read(shown.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
    let pairs: [(&str, &[u8], &[u8]); 2] = [
        ("Facture_été", b"latin-1 first", b"utf-8 first"),
        ("zz_déjà", b"latin-1 last", b"utf-8 last"),
    ];
    for (valid, decoded_body, plain_body) in pairs {
        let both: Vec<&String> = names.iter().filter(|n| n.starts_with(valid)).collect();
        assert_eq!(both.len(), 2, "{both:?}");
        for n in both {
            let want: &[u8] = if n.contains('~') {
                decoded_body
            } else {
                plain_body
            };
            assert_eq!(read(n), want, "{n}");
        }
    }
    for n in names.iter().filter(|n| n.starts_with("arl_")).step_by(397) {
        assert!(read(n).starts_with(b"ARL|"), "{n}");
    }
    m.stop();
}

/// A flipped byte in one tree piece: `check` fails and names the folder
/// whose listing cannot be read; the other folders still restore.
#[test]
fn a_damaged_tree_piece_is_named_by_check() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, _, coffre) = receipts_and_repository(tmp.path());
    std::fs::create_dir_all(src.join("db")).unwrap();
    std::fs::write(src.join("db/notes.txt"), "ordonnance\n").unwrap();
    coffre.snapshot(&src);

    // Find a piece of the receipts' listing and flip a byte of it in its pack.
    {
        let repo =
            snapshots_format::Repository::open(&coffre.repo, TEST_PASSWORD.as_bytes()).unwrap();
        let (snaps, _) = repo.snapshots().unwrap();
        let (listing, _) = repo
            .find_path(&snaps[0].1.tree, b"teletransmission/ARL")
            .unwrap();
        let (_, pieces) = repo.load_tree_pieces(&listing).unwrap();
        assert!(pieces.len() > 10);
        let loc = repo
            .index()
            .lookup(repo.keys(), &pieces[pieces.len() / 2])
            .unwrap()
            .unwrap();
        let hex = loc.pack.to_hex();
        let path = coffre.repo.join("data").join(&hex[..2]).join(&hex);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let at = u64::from(loc.offset) + u64::from(loc.length) / 2;
        let mut byte = [0u8];
        f.read_exact_at(&mut byte, at).unwrap();
        f.write_all_at(&[byte[0] ^ 0x10], at).unwrap();
    }

    let out = run(&mut coffre.cmd(["check", "--read-data"]));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("teletransmission/ARL"), "{said}");
    let restored = tmp.path().join("out");
    coffre.ok([
        OsStr::new("restore"),
        "latest".as_ref(),
        restored.as_os_str(),
        "--path".as_ref(),
        "db".as_ref(),
    ]);
    assert_eq!(
        std::fs::read_to_string(restored.join("db/notes.txt")).unwrap(),
        "ordonnance\n"
    );
}
