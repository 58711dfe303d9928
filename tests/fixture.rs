//! Repositories written by earlier versions of Coffre stay readable: the
//! committed fixtures of each format version restore bit-exact and pass a
//! full check.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use coffre_tests::{run, run_ok, Coffre};

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

/// A copy of a committed fixture (opening a repository may create files,
/// such as the index journal).
fn fixture(name: &str) -> (tempfile::TempDir, std::path::PathBuf, Coffre) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
        &repo,
    );
    let coffre = Coffre::new(&repo);
    (tmp, repo, coffre)
}

/// Runs a command with the fixtures' passphrase; returns its stdout.
fn with_passphrase(coffre: &Coffre, args: &[&OsStr]) -> String {
    let mut cmd = coffre.cmd(args);
    cmd.env("COFFRE_PASSWORD", "fixture-passphrase");
    String::from_utf8_lossy(&run_ok(&mut cmd).stdout).into_owned()
}

/// Format version 1, as committed in `tests/fixtures/repo-v1` (passphrase
/// `fixture-passphrase`): restore, check --read-data, and a new snapshot.
#[test]
fn version_1_repository_is_read() {
    let (tmp, repo, coffre) = fixture("repo-v1");
    let with_pass = |args: &[&OsStr]| with_passphrase(&coffre, args);
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
    assert_eq!(
        format_version(&repo),
        7,
        "the first write moves an older repository to index files, record v2, a key check and bound key labels"
    );
    assert_index_files_only(&repo);

    // Enough small files to train a dictionary: the repository gets one;
    // every snapshot still reads back.
    let many = tmp.path().join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..150 {
        std::fs::write(many.join(format!("{i}.txt")), receipt(i)).unwrap();
    }
    with_pass(&["snapshot".as_ref(), many.as_os_str()]);
    assert!(repo.join("dictionary").is_file());
    assert_eq!(
        std::fs::read(repo.join("dictionary.copy")).unwrap(),
        std::fs::read(repo.join("dictionary")).unwrap(),
        "a dictionary is written twice"
    );
    assert_eq!(format_version(&repo), 7);
    with_pass(&["check".as_ref(), "--read-data".as_ref()]);
    let again = tmp.path().join("again");
    with_pass(&["restore".as_ref(), "latest".as_ref(), again.as_os_str()]);
    assert_eq!(std::fs::read(again.join("42.txt")).unwrap(), receipt(42));
}

fn receipt(i: usize) -> Vec<u8> {
    format!("FSE|{i:06}|CPAM|DOLIPRANE 1000|{}\n", i * 7)
        .repeat(30)
        .into_bytes()
}

/// A repository of format 4 holds index files and no SQLite database.
fn assert_index_files_only(repo: &Path) {
    let names: Vec<String> = std::fs::read_dir(repo.join("index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.is_empty(), "no index file");
    for n in &names {
        assert!(
            n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()),
            "unexpected {n} in index/"
        );
    }
}

/// The format version in a repository's plaintext header.
fn format_version(repo: &Path) -> u32 {
    let config = std::fs::read(repo.join("config")).unwrap();
    u32::from_le_bytes(config[8..12].try_into().unwrap())
}

/// Format version 2, as committed in `tests/fixtures/repo-v2`: blobs
/// compressed with the repository's dictionary.
#[test]
fn version_2_repository_with_a_dictionary_is_read() {
    let (tmp, repo, coffre) = fixture("repo-v2");
    assert_eq!(format_version(&repo), 2);
    let with_pass = |args: &[&OsStr]| with_passphrase(&coffre, args);
    with_pass(&["check".as_ref(), "--read-data".as_ref()]);
    let out = tmp.path().join("out");
    with_pass(&["restore".as_ref(), "latest".as_ref(), out.as_os_str()]);
    for i in 0..150 {
        let path = out.join(format!("recus/recu-{i:03}.txt"));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            receipt(i),
            "{}",
            path.display()
        );
    }

    // Its files need the dictionary: a damaged one is named by check.
    let dict = repo.join("dictionary");
    let mut bytes = std::fs::read(&dict).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&dict, bytes).unwrap();
    let mut cmd = coffre.cmd(["check", "--read-data"]);
    cmd.env("COFFRE_PASSWORD", "fixture-passphrase");
    let out = run(&mut cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("dictionary is damaged"), "{text}");
    assert!(
        text.contains("recus/recu-000.txt"),
        "damaged files named: {text}"
    );
}

/// What `tests/fixtures/repo-v3/ARL/` holds: 1500 receipts.
fn acknowledgement(i: usize) -> String {
    format!("ARL|20261125|{i:05}|OK|{:016x}\r\n", i * 7919)
}

fn write_acknowledgements(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..1500 {
        let name = format!("arl_20261125_{i:05}.xml");
        std::fs::write(dir.join(name), acknowledgement(i)).unwrap();
    }
}

/// A format-2 repository moves to format 4 (index files) at its first
/// write; a large folder is then stored as tree pieces, and both old and
/// new snapshots read back.
#[test]
fn version_2_repository_moves_to_7_at_its_first_write() {
    let (tmp, repo, coffre) = fixture("repo-v2");
    let with_pass = |args: &[&OsStr]| with_passphrase(&coffre, args);
    let small = tmp.path().join("small");
    std::fs::create_dir(&small).unwrap();
    std::fs::write(small.join("a.txt"), receipt(1)).unwrap();
    with_pass(&["snapshot".as_ref(), small.as_os_str()]);
    assert_eq!(format_version(&repo), 7, "upgraded at the first write");
    assert_index_files_only(&repo);

    let src = tmp.path().join("src");
    write_acknowledgements(&src.join("ARL"));
    with_pass(&["snapshot".as_ref(), src.as_os_str()]);
    assert_eq!(format_version(&repo), 7);
    with_pass(&["check".as_ref(), "--read-data".as_ref()]);
    let out = tmp.path().join("out");
    with_pass(&["restore".as_ref(), "latest".as_ref(), out.as_os_str()]);
    assert_eq!(
        std::fs::read_to_string(out.join("ARL/arl_20261125_01499.xml")).unwrap(),
        acknowledgement(1499)
    );
}

/// Format version 3, as committed in `tests/fixtures/repo-v3`: a folder of
/// 1500 receipts stored as tree pieces.
#[test]
fn version_3_repository_with_tree_pieces_is_read() {
    let (tmp, repo, coffre) = fixture("repo-v3");
    assert_eq!(format_version(&repo), 3);
    let with_pass = |args: &[&OsStr]| with_passphrase(&coffre, args);
    with_pass(&["check".as_ref(), "--read-data".as_ref()]);
    let out = tmp.path().join("out");
    with_pass(&["restore".as_ref(), "latest".as_ref(), out.as_os_str()]);
    let restored = std::fs::read_dir(out.join("ARL")).unwrap().count();
    assert_eq!(restored, 1500);
    for i in 0..1500 {
        let path = out.join(format!("ARL/arl_20261125_{i:05}.xml"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), acknowledgement(i));
    }

    // The listing is held in pieces (what this fixture is for).
    let opened = snapshots_format::Repository::open(&repo, b"fixture-passphrase").unwrap();
    let (snaps, _) = opened.snapshots().unwrap();
    let root = snaps[0].1.tree;
    let (arl, _) = opened.find_path(&root, b"ARL").unwrap();
    let (tree, pieces) = opened.load_tree_pieces(&arl).unwrap();
    assert_eq!(tree.nodes.len(), 1500);
    assert!(pieces.len() > 5, "{} pieces", pieces.len());
    drop(opened);

    // Reading wrote nothing: still format 3, with its old database.
    assert_eq!(format_version(&repo), 3);
    assert!(repo.join("index/index.db").is_file());

    // The first write upgrades it (FORMAT.md §6.3): index files, no
    // database, and the old snapshot still restores bit-exact.
    let day = tmp.path().join("day");
    write_acknowledgements(&day.join("ARL"));
    with_pass(&["snapshot".as_ref(), day.as_os_str()]);
    assert_eq!(format_version(&repo), 7);
    assert_index_files_only(&repo);
    with_pass(&["check".as_ref(), "--read-data".as_ref()]);
    let old = tmp.path().join("old");
    let first = snaps[0].0.to_hex();
    with_pass(&["restore".as_ref(), first.as_ref(), old.as_os_str()]);
    for i in [0, 700, 1499] {
        let path = old.join(format!("ARL/arl_20261125_{i:05}.xml"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), acknowledgement(i));
    }
}

/// Format version 4, as committed in `tests/fixtures/repo-v4`: index files,
/// no database on the drive; read with an empty cache (so from the index
/// files alone), restored bit-exact, checked, and pruned.
#[test]
fn version_4_repository_with_index_files_is_read() {
    let (tmp, repo, coffre) = fixture("repo-v4");
    assert_eq!(format_version(&repo), 4);
    assert_index_files_only(&repo);
    let with_pass = |args: &[&OsStr]| with_passphrase(&coffre, args);
    with_pass(&["check".as_ref(), "--read-data".as_ref()]);
    let listing = with_pass(&["--json".as_ref(), "snapshots".as_ref()]);
    assert_eq!(
        listing.matches("\"label\": \"fixture\"").count(),
        2,
        "{listing}"
    );

    let ordonnance = |i: usize| format!("ordonnance {i} du 2 decembre 2026\n").repeat(i + 1);
    let first = tmp.path().join("first");
    with_pass(&["restore".as_ref(), "2026-12-02".as_ref(), first.as_os_str()]);
    let latest = tmp.path().join("latest");
    with_pass(&["restore".as_ref(), "latest".as_ref(), latest.as_os_str()]);
    for i in 0..20 {
        let name = format!("dossier/ordonnance-{i}.txt");
        assert_eq!(
            std::fs::read_to_string(first.join(&name)).unwrap(),
            ordonnance(i)
        );
        let want = match i {
            3 => Some(ordonnance(3) + "changed on day 2\n"),
            19 => None,
            _ => Some(ordonnance(i)),
        };
        assert_eq!(
            std::fs::read_to_string(latest.join(&name)).ok(),
            want,
            "{name}"
        );
    }
    let mut x: u64 = 1;
    let mut scan = Vec::new();
    while scan.len() < 300_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        scan.extend_from_slice(&(x >> 24).to_le_bytes()[..5]);
    }
    scan.truncate(300_000);
    assert_eq!(
        std::fs::read(latest.join("dossier/scans/scan.bin")).unwrap(),
        scan
    );

    // Forgetting the first day and pruning rewrites index files; the
    // second day still restores.
    with_pass(&["forget".as_ref(), "2026-12-02".as_ref(), "--prune".as_ref()]);
    with_pass(&["check".as_ref(), "--read-data".as_ref()]);
    let again = tmp.path().join("again");
    with_pass(&["restore".as_ref(), "latest".as_ref(), again.as_os_str()]);
    assert_eq!(
        std::fs::read(again.join("dossier/scans/scan.bin")).unwrap(),
        scan
    );
}

/// Format version 5, as committed in `tests/fixtures/repo-v5`: a snapshot
/// record of version 2 with two sources, exclude rules and a command's
/// output stored as a file.
#[test]
fn version_5_repository_with_two_sources_and_a_command_output_is_read() {
    let (tmp, repo, coffre) = fixture("repo-v5");
    assert_eq!(format_version(&repo), 5);
    let with_pass = |args: &[&OsStr]| with_passphrase(&coffre, args);
    with_pass(&["check".as_ref(), "--read-data".as_ref()]);
    let listing = with_pass(&["--json".as_ref(), "snapshots".as_ref()]);
    for want in [
        "\"/tmp/fx5/officine\"",
        "\"/tmp/fx5/scans\"",
        "\"--exclude *.tmp\"",
        "\"--exclude *.lck\"",
        "\"kind\": \"from-command\"",
        "\"name\": \"export.csv\"",
        "\"excluded_count\": 2",
    ] {
        assert!(listing.contains(want), "{want} missing from {listing}");
    }

    let out = tmp.path().join("out");
    with_pass(&["restore".as_ref(), "latest".as_ref(), out.as_os_str()]);
    assert_eq!(
        std::fs::read_to_string(out.join("export.csv")).unwrap(),
        "1;DOLIPRANE 1000;2\n2;DOLIPRANE 1000;2\n3;DOLIPRANE 1000;2\n"
    );
    for i in 0..10 {
        let table =
            std::fs::read_to_string(out.join(format!("officine/db/table-{i}.dat"))).unwrap();
        // printf consumed two numbers a line (the second by `%.0s`).
        let want: String = (1..=i * 50 + 1)
            .step_by(2)
            .map(|k| format!("PAT|{k:08}|DURAND|Marie|\n"))
            .collect();
        assert_eq!(table, want);
    }
    let scan = std::fs::read(out.join("scans/ordonnance-001.jpg")).unwrap();
    assert_eq!(scan.len(), 200_000);
    assert_eq!(
        blake3::hash(&scan).to_hex().as_str(),
        "54fa0c346924150a1ac1b05aa11fa82bf133ef47a4597e2109d4c4b1ee714029",
        "the scan restores bit-exact"
    );
    assert!(out.join("officine/tmp").is_dir());
    assert!(!out.join("officine/tmp/sess.tmp").exists(), "excluded");
    assert!(!out.join("officine/db/officine.lck").exists(), "excluded");

    // The first write moves it to format 7: the key check in `config`,
    // the dictionary's second copy and bound key labels (FORMAT.md §2,
    // §17.1, §3).
    assert!(!repo.join("dictionary.copy").exists());
    with_pass(&["snapshot".as_ref(), out.join("officine").as_os_str()]);
    assert_eq!(format_version(&repo), 7);
    assert_eq!(std::fs::read(repo.join("config")).unwrap().len(), 76);
    assert!(!repo.join("dictionary").exists() && !repo.join("dictionary.copy").exists());
    with_pass(&["check".as_ref(), "--read-data".as_ref()]);
}

/// Format version 6, as committed in `tests/fixtures/repo-v6`: two key
/// files (`fixture-passphrase`, and `prestataire-passphrase` named
/// `prestataire`) whose labels bind nothing. The first write binds both
/// labels (format 7); both passphrases still open it, and from then on
/// damage to the body of the key file nobody here can open is reported by
/// `check`, which a format-6 repository could not tell.
#[test]
fn version_6_repository_is_read_and_its_key_labels_are_bound() {
    let (tmp, repo, coffre) = fixture("repo-v6");
    assert_eq!(format_version(&repo), 6);
    let with_pass = |args: &[&OsStr]| with_passphrase(&coffre, args);
    with_pass(&["check".as_ref(), "--read-data".as_ref()]);
    let out = tmp.path().join("out");
    with_pass(&["restore".as_ref(), "latest".as_ref(), out.as_os_str()]);
    for i in 0..20 {
        assert_eq!(
            std::fs::read_to_string(out.join(format!("ordonnances/ord-{i}.txt"))).unwrap(),
            format!("ORD|{i:04}|DURAND|Marie|AMOXICILLINE 1g|x3\n")
        );
    }
    assert_eq!(
        std::fs::read_to_string(out.join("facture.txt")).unwrap(),
        "facture 2026-12-03\n"
    );
    let keys = |repo: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(repo.join("keys"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = keys(&repo);

    with_pass(&["snapshot".as_ref(), out.as_os_str()]);
    assert_eq!(format_version(&repo), 7);
    let after = keys(&repo);
    assert_eq!(after.len(), 2);
    for ((name, old), (name2, new)) in before.iter().zip(&after) {
        assert_eq!(name, name2);
        assert_eq!(new.len(), old.len() + 32, "{name}: the label binds a hash");
        assert_eq!(new[..101], old[..101], "{name}: the body is untouched");
    }
    let mut other = coffre.cmd(["snapshots"]);
    other.env("COFFRE_PASSWORD", "prestataire-passphrase");
    run_ok(&mut other);
    with_pass(&["check".as_ref(), "--read-data".as_ref()]);

    // One bit of the salt of the IT provider's key file (which the
    // pharmacist's passphrase does not open) is now reported.
    let listing = with_pass(&["--json".as_ref(), "key".as_ref(), "list".as_ref()]);
    let theirs = after
        .iter()
        .map(|(name, _)| name)
        .find(|name| {
            let at = listing.find(name.as_str()).unwrap();
            listing[at..]
                .split('}')
                .next()
                .unwrap()
                .contains("prestataire")
        })
        .unwrap();
    let path = repo.join("keys").join(theirs);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[30] ^= 0x04;
    std::fs::write(&path, bytes).unwrap();
    let mut check = coffre.cmd(["check"]);
    check.env("COFFRE_PASSWORD", "fixture-passphrase");
    let out = coffre_tests::run(&mut check);
    assert!(!out.status.success(), "check missed a damaged key file");
    let text = coffre_tests::describe(&out);
    assert!(
        text.contains(theirs.as_str()) && text.contains("damaged"),
        "{text}"
    );
}

/// The stock export of `tests/fixtures/repo-v8` on `day` (0 or 1).
fn v8_stock(day: u32) -> String {
    (0..6000u32)
        .map(|i| {
            let stock = (i * 7) % 500 + if i % 20 == 0 { day } else { 0 };
            format!("{i:05};DOLIPRANE 1000 MG CPR;{stock}\n")
        })
        .collect()
}

/// Format version 8, as committed in `tests/fixtures/repo-v8`: a stock
/// export on two days, the second stored as deltas against the first
/// (FORMAT.md §4.5). Both days restore bit-exact, `check --read-data`
/// passes, and the second day took a small share of the first's bytes.
#[test]
fn version_8_repository_with_deltas_is_read() {
    let (tmp, repo, coffre) = fixture("repo-v8");
    assert_eq!(format_version(&repo), 8);
    let with_pass = |args: &[&OsStr]| with_passphrase(&coffre, args);
    with_pass(&["check".as_ref(), "--read-data".as_ref()]);
    for (day, date) in [(0, "2026-12-02"), (1, "2026-12-03")] {
        let out = tmp.path().join(format!("out-{day}"));
        with_pass(&["restore".as_ref(), date.as_ref(), out.as_os_str()]);
        assert_eq!(
            std::fs::read_to_string(out.join("stock_complet.csv")).unwrap(),
            v8_stock(day),
            "day {day}"
        );
    }
    // Day 1's data pack holds the deltas: a small share of day 0's.
    let mut packs: Vec<u64> = std::fs::read_dir(repo.join("data"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().metadata().unwrap().len())
        .collect();
    packs.sort_unstable();
    assert_eq!(packs.len(), 4, "a data and a metadata pack a day");
    assert!(packs[2] * 4 < packs[3], "{packs:?}");
}
