//! Damage is found and named, the index is rebuilt from the packs alone, a
//! wrong passphrase is a clear error, and a snapshot killed at any instant
//! leaves every earlier snapshot intact.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use coffre_tests::{
    assert_same_tree, capture, describe, json_string_fields, run, run_ok, sample_day, Coffre,
    Fixture,
};

fn packs(repo: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(repo.join("data")).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let f = f.unwrap();
            out.push((f.path(), f.metadata().unwrap().len()));
        }
    }
    out.sort_by_key(|p| p.1);
    out
}

/// Flips a bit in the middle of the repository's largest pack.
fn flip_middle_of_largest_pack(repo: &Path) {
    let (biggest, size) = packs(repo).pop().unwrap();
    let mut bytes = std::fs::read(&biggest).unwrap();
    bytes[size as usize / 2] ^= 0x10;
    std::fs::write(&biggest, &bytes).unwrap();
}

/// A flipped byte in a data pack: `check` (structure) cannot see it,
/// `check --read-data` does, exits non-zero and names the damaged file; that
/// file then fails to restore while the others restore fine.
#[test]
fn flipped_byte_is_caught_and_named() {
    let Fixture { tmp, src, coffre } = Fixture::new(4);
    coffre.snapshot(&src);
    coffre.ok(["check", "--read-data"]);

    flip_middle_of_largest_pack(&coffre.repo);

    let out = run(&mut coffre.cmd(["--json", "check", "--read-data"]));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    let damaged = json_string_fields(&report, "path");
    assert!(!damaged.is_empty(), "no damaged file named: {report}");
    for path in &damaged {
        assert!(
            src.join(path).is_file(),
            "named file {path} is not a file of the source"
        );
        let target = tmp.path().join("one");
        let out = run(&mut coffre.cmd([
            OsStr::new("restore"),
            "latest".as_ref(),
            target.as_os_str(),
            "--path".as_ref(),
            path.as_ref(),
        ]));
        assert_eq!(
            out.status.code(),
            Some(1),
            "damaged {path} restored without error"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));
    }
    // The human form names it too.
    let out = run(&mut coffre.cmd(["check", "--read-data"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&damaged[0]));
    // An undamaged file still restores.
    let target = tmp.path().join("ok");
    coffre.ok([
        OsStr::new("restore"),
        "latest".as_ref(),
        target.as_os_str(),
        "--path".as_ref(),
        "config".as_ref(),
    ]);
    assert_same_tree(
        &capture(&src.join("config")),
        &capture(&target.join("config")),
    );
}

/// Deleting the index files loses nothing: commands say to rebuild them,
/// `rebuild-index` recreates them from the pack trailers, and every snapshot
/// then restores bit-exact and passes `check --read-data`. A garbage local
/// cache is simply rebuilt from the index files.
#[test]
fn index_is_rebuilt_from_the_packs() {
    let Fixture { tmp, src, coffre } = Fixture::new(4);
    let day0 = capture(&src);
    let id0 = coffre.snapshot(&src);
    sample_day(&src, 1);
    let day1 = capture(&src);
    coffre.snapshot(&src);

    for f in std::fs::read_dir(coffre.repo.join("index")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let out = run(&mut coffre.cmd([
        OsStr::new("restore"),
        "latest".as_ref(),
        tmp.path().join("x").as_os_str(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rebuild-index"));

    let out = coffre.ok(["--json", "rebuild-index"]);
    assert!(out.contains("\"unreadable\": []"), "{out}");
    coffre.ok(["check", "--read-data"]);
    let t0 = tmp.path().join("r0");
    coffre.restore(&id0[..12], &t0);
    assert_same_tree(&day0, &capture(&t0));
    let t1 = tmp.path().join("r1");
    coffre.restore("latest", &t1);
    assert_same_tree(&day1, &capture(&t1));

    // A garbage cache database is discarded and filled again from the
    // index files, without being asked.
    // (The cache folder also holds this machine's record of runs.)
    let caches: Vec<_> = std::fs::read_dir(coffre.cache_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.join("index-v2.db"))
        .collect();
    assert_eq!(caches.len(), 1, "one cache for one repository");
    std::fs::write(&caches[0], b"not a database at all, just junk bytes").unwrap();
    coffre.ok(["check"]);
    let t2 = tmp.path().join("r2");
    coffre.restore("latest", &t2);
    assert_same_tree(&day1, &capture(&t2));
}

/// A wrong passphrase says so (exit 1), never garbage or a panic.
#[test]
fn wrong_passphrase_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let coffre = Coffre::new(tmp.path().join("repo"));
    coffre.init();
    let out = run(coffre
        .cmd(["snapshots"])
        .env("COFFRE_PASSWORD", "not the passphrase"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert!(!err.contains("panicked"));
    // Through a passphrase file too.
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "still wrong\n").unwrap();
    let out = run(coffre
        .cmd(["snapshots"])
        .env_remove("COFFRE_PASSWORD")
        .env("COFFRE_PASSWORD_FILE", &pw));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    std::fs::write(&pw, format!("{}\n", coffre_tests::TEST_PASSWORD)).unwrap();
    let out = run(coffre
        .cmd(["snapshots"])
        .env_remove("COFFRE_PASSWORD")
        .env("COFFRE_PASSWORD_FILE", &pw));
    assert!(out.status.success());
}

/// `kill -9` of a snapshot at several instants: every earlier snapshot still
/// restores bit-exact, `check` passes, and the next snapshot succeeds and
/// tidies the half-written temporary files.
#[test]
fn kill_9_mid_snapshot_loses_nothing() {
    let Fixture { tmp, src, coffre } = Fixture::new(4);
    let day0 = capture(&src);
    coffre.snapshot(&src);
    // Enough new incompressible data that the snapshot runs for a while.
    sample_day(&src, 1);
    write_random(&src.join("big.bin"), 192 << 20);

    let mut killed_mid_run = 0;
    for delay_ms in [30, 100, 200, 300] {
        let before = json_string_fields(&coffre.ok(["--json", "snapshots"]), "id").len();
        let mut child = coffre
            .cmd([OsStr::new("snapshot"), src.as_os_str()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        if json_string_fields(&coffre.ok(["--json", "snapshots"]), "id").len() == before {
            killed_mid_run += 1;
        }

        let t = tmp.path().join(format!("after-{delay_ms}"));
        coffre.ok([
            OsStr::new("restore"),
            json_string_fields(&coffre.ok(["--json", "snapshots"]), "id")[0][..12].as_ref(),
            t.as_os_str(),
        ]);
        assert_same_tree(&day0, &capture(&t));
        std::fs::remove_dir_all(&t).unwrap();
        coffre.ok(["check"]);
    }
    assert!(
        killed_mid_run >= 2,
        "only {killed_mid_run} kills landed during a snapshot"
    );
    let today = capture(&src);
    coffre.snapshot(&src);
    let t = tmp.path().join("final");
    coffre.restore("latest", &t);
    assert_same_tree(&today, &capture(&t));
    coffre.ok(["check", "--read-data"]);
    let leftovers: Vec<_> = std::fs::read_dir(coffre.repo.join("tmp"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn write_random(path: &Path, len: usize) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..len / 8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.write_all(&x.to_le_bytes()).unwrap();
    }
    out.flush().unwrap();
}

/// Bytes of the packs on the drive.
fn packed_bytes(repo: &std::path::Path) -> u64 {
    let Ok(subs) = std::fs::read_dir(repo.join("data")) else {
        return 0;
    };
    subs.filter_map(|s| std::fs::read_dir(s.ok()?.path()).ok())
        .flatten()
        .filter_map(|p| p.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// A first snapshot killed half-way: the next run reuses every pack made
/// durable before the kill and writes only the remainder (plus at most a
/// pack), then everything restores and checks.
#[test]
fn a_first_snapshot_killed_half_way_resumes() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).expect("src");
    let mut rng = coffre_tests::Rng::derive(3, "resume", &[]);
    const FILES: usize = 24;
    const SIZE: usize = 4 << 20;
    for i in 0..FILES {
        let mut bytes = vec![0u8; SIZE];
        rng.fill(&mut bytes);
        std::fs::write(src.join(format!("scan-{i:02}.pdf")), bytes).expect("write");
    }
    let total = (FILES * SIZE) as u64;
    let coffre = Coffre::new(tmp.path().join("repo"));
    coffre.init();
    let mut child = coffre
        .cmd(["snapshot".as_ref(), src.as_os_str()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the snapshot");
    let mut at_kill = 0;
    loop {
        at_kill = at_kill.max(packed_bytes(&coffre.repo));
        if at_kill >= total * 2 / 5 {
            break;
        }
        if child.try_wait().expect("poll").is_some() {
            panic!("the snapshot finished before half-way: use more data");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().expect("reap");
    let durable = packed_bytes(&coffre.repo);
    assert!(durable >= at_kill, "packs vanished");

    let out = run(&mut coffre.cmd(["--json".as_ref(), "snapshot".as_ref(), src.as_os_str()]));
    assert!(out.status.success(), "{}", describe(&out));
    let v: serde_json::Value =
        serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).expect("JSON");
    let stored = v["summary"]["bytes_stored"].as_u64().expect("bytes_stored");
    let one_pack = 17 << 20;
    assert!(
        stored <= total - durable + one_pack,
        "the resumed run stored {stored} bytes; {durable} of {total} were on the drive already"
    );
    let check = run(&mut coffre.cmd(["check", "--read-data"]));
    assert!(check.status.success(), "{}", describe(&check));
    let target = tmp.path().join("restored");
    coffre.restore("latest", &target);
    assert_same_tree(&capture(&src), &capture(&target));
}

/// A record cut short (a power cut on a drive that ignores flushes) is
/// named by `check` with the command that removes it; a retention policy
/// never removes it, `forget ID` does; then `check` passes and the other
/// snapshot restores.
#[test]
fn a_damaged_record_is_removed_only_by_name() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).expect("src");
    std::fs::write(src.join("ordonnance.txt"), b"jour 1\n").expect("write");
    let coffre = Coffre::new(tmp.path().join("repo"));
    coffre.init();
    let first = coffre.snapshot(&src);
    std::fs::write(src.join("ordonnance.txt"), b"jour 2\n").expect("write");
    let second = coffre.snapshot(&src);
    let record = coffre.repo.join("snapshots").join(&first);
    let len = std::fs::metadata(&record).expect("record").len();
    std::fs::File::options()
        .write(true)
        .open(&record)
        .and_then(|f| f.set_len(len / 2))
        .expect("cut the record");

    let out = run(&mut coffre.cmd(["check"]));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let short = &first[..12];
    assert!(
        describe(&out).contains(&format!("coffre forget {short}")),
        "check does not say how to remove it: {}",
        describe(&out)
    );
    run_ok(&mut coffre.cmd(["forget", "--keep-last", "5"]));
    assert!(record.exists(), "a policy removed a damaged record");
    let out = run(&mut coffre.cmd(["forget", &first[..4]]));
    assert!(
        !out.status.success(),
        "a short prefix must not remove a record"
    );
    run_ok(&mut coffre.cmd(["forget", short]));
    assert!(!record.exists());
    run_ok(&mut coffre.cmd(["check", "--read-data"]));
    let target = tmp.path().join("restored");
    coffre.restore(&second, &target);
    assert_eq!(
        std::fs::read(target.join("ordonnance.txt")).expect("restored"),
        b"jour 2\n"
    );
}

/// An index file cut short by a power cut (the last file a killed run
/// wrote): `check` names it; the next snapshot indexes its packs again
/// from their trailers, deletes it and says so; then `check` passes
/// without `rebuild-index` and both days restore.
#[test]
fn a_cut_index_file_is_removed_by_the_next_snapshot() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).expect("src");
    write_random(&src.join("scan-1.pdf"), 1 << 20);
    let coffre = Coffre::new(tmp.path().join("repo"));
    coffre.init();
    coffre.snapshot(&src);
    let before: Vec<_> = index_files(&coffre.repo);
    write_random(&src.join("scan-2.pdf"), 3 << 20);
    let day1 = capture(&src);
    let second = coffre.snapshot(&src);
    let new: Vec<_> = index_files(&coffre.repo)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert!(!new.is_empty(), "the second snapshot wrote no index file");
    let cut = &new[0];
    let len = std::fs::metadata(cut).expect("index file").len();
    std::fs::File::options()
        .write(true)
        .open(cut)
        .and_then(|f| f.set_len(len / 2))
        .expect("cut the index file");
    let name = cut.file_name().expect("name").to_string_lossy()[..12].to_owned();

    // A machine that never read it (an empty cache) finds it damaged.
    let fresh = tmp.path().join("fresh-cache");
    let out = run(coffre.cmd(["check"]).env("COFFRE_CACHE_DIR", &fresh));
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(describe(&out).contains(&name), "{}", describe(&out));

    let out = run(coffre
        .cmd([OsStr::new("snapshot"), src.as_os_str()])
        .env("COFFRE_CACHE_DIR", &fresh));
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        describe(&out).contains("removed 1 damaged index file") && describe(&out).contains(&name),
        "{}",
        describe(&out)
    );
    assert!(!cut.exists());
    run_ok(
        coffre
            .cmd(["check", "--read-data"])
            .env("COFFRE_CACHE_DIR", &fresh),
    );
    let target = tmp.path().join("restored");
    coffre.restore(&second, &target);
    assert_same_tree(&day1, &capture(&target));
}

fn index_files(repo: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo.join("index"))
        .expect("index folder")
        .map(|e| e.expect("entry").path())
        .collect();
    out.sort();
    out
}

/// `check` reads a chunk-list piece that two snapshots share once, and
/// skips it for the second; a damaged chunk under it must still be named in
/// both snapshots.
#[test]
fn damage_under_a_shared_chunk_list_piece_is_named_in_every_snapshot() {
    const PAGE: usize = 4096;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // A database of 512 pages: cut into pages, its list held in pieces.
    let mut db = vec![0u8; 512 * PAGE];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in db.iter_mut() {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        *b = (x >> 56) as u8;
    }
    db[..16].copy_from_slice(b"SQLite format 3\0");
    db[16..18].copy_from_slice(&(PAGE as u16).to_be_bytes());
    let path = src.join("officine.sqlite");
    std::fs::write(&path, &db).unwrap();
    let coffre = Coffre::new(tmp.path().join("repo"));
    coffre.init();
    let first = coffre.snapshot(&src);
    // One page changes: the second snapshot shares every other piece.
    db[7 * PAGE + 100] ^= 1;
    std::fs::write(&path, &db).unwrap();
    let second = coffre.snapshot(&src);
    coffre.ok(["check", "--read-data"]);

    // The pages are most of the only large pack: its middle is a page
    // both snapshots hold.
    flip_middle_of_largest_pack(&coffre.repo);

    let out = run(&mut coffre.cmd(["--json", "check", "--read-data"]));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        json_string_fields(&report, "path"),
        ["officine.sqlite", "officine.sqlite"],
        "{report}"
    );
    let mut named = json_string_fields(&report, "snapshot");
    named.sort();
    let mut taken = vec![first[..12].to_owned(), second[..12].to_owned()];
    taken.sort();
    assert_eq!(named, taken, "{report}");
}
