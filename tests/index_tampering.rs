//! The index is only ever a hint: whatever is done to the local SQLite cache
//! or to the index files on the drive, Coffre never restores wrong bytes and
//! prune never deletes data a kept snapshot needs. `check` names the damage,
//! `rebuild-index` (or deleting the cache folder) repairs it from the packs,
//! and every kept snapshot then restores bit-exact.
//!
//! Covered: cache rows moved to another pack or deleted with plain SQL, an
//! index file deleted or with one flipped byte, a decoy pack carrying a real
//! pack's trailer over garbage, that prune's refusals say nothing was
//! changed, and the permissions of everything Coffre writes (repository and
//! cache) under a umask of 022.
//!
//! The source trees are generated here (deterministic, a few dozen files of
//! a few KB to ~2 MB in subfolders, changed between snapshots), so the file
//! needs nothing outside the workspace.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use coffre_tests::{
    assert_same_tree, capture, describe, run, run_ok, text, Coffre, Kind, Rng, TreeImage,
};

// ---------------------------------------------------------------------------
// Deterministic source trees.
/// File contents: 4 KiB blocks, most random (incompressible, so packs
/// have real sizes), some text (so compression has work too).
fn contents(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let n = (len - out.len()).min(4096);
        if rng.below(10) < 7 {
            let start = out.len();
            out.resize(start + n, 0);
            rng.fill(&mut out[start..]);
        } else {
            let line = format!("ligne {:08} lot {:04}\n", rng.below(1 << 20), n % 97);
            out.extend(line.bytes().cycle().take(n));
        }
    }
    out
}

const FOLDERS: [&str; 7] = [
    "",
    "ventes",
    "ventes/2026",
    "stock",
    "stock/archives",
    "ordonnances",
    "ordonnances/scans",
];

/// Modification times far from "now", one second apart for every write, so
/// that a changed file never looks unchanged to the snapshot.
const BASE_MTIME: u64 = 1_780_000_000;

fn write_file(root: &Path, rel: &str, data: &[u8], mtime: u64) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, data).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))
        .unwrap();
}

/// The regular files under `root`, relative, sorted.
fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_owned();
                out.push(rel.to_str().unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

/// Day 0: 36 files, about 8 MB (3 files of 1-2 MB, a dozen of 100-400 KB,
/// the rest 2-50 KB) in 7 folders.
fn make_day0(root: &Path) {
    let mut rng = Rng(0xC0FF_4E00);
    for i in 0..36u64 {
        let size = match i % 12 {
            0 => 1_000_000 + rng.below(1_000_000),
            1 | 5 | 9 | 11 => 100_000 + rng.below(300_000),
            _ => 2_000 + rng.below(48_000),
        };
        let folder = FOLDERS[(i % 7) as usize];
        let rel = if folder.is_empty() {
            format!("f{i:02}.dat")
        } else {
            format!("{folder}/f{i:02}.dat")
        };
        write_file(
            root,
            &rel,
            &contents(&mut rng, size as usize),
            BASE_MTIME + i,
        );
    }
}

/// Day `day` (1, 2, ...): 5 files modified (the large ones in place, so most
/// of their chunks stay shared), 3 removed, 4 added (two in a new folder).
fn change_day(root: &Path, day: u64) {
    let mut rng = Rng(0xD4E5 + day);
    let mut stamp = BASE_MTIME + day * 86_400;
    let mut tick = || {
        stamp += 1;
        stamp
    };
    let files = files_under(root);
    for _ in 0..5 {
        let rel = &files[rng.below(files.len() as u64) as usize];
        let path = root.join(rel);
        let mut data = std::fs::read(&path).unwrap();
        if data.len() > 200_000 {
            let at = rng.below(data.len() as u64 - 70_000) as usize;
            let patch = contents(&mut rng, 64 * 1024);
            data[at..at + patch.len()].copy_from_slice(&patch);
            data.extend(contents(&mut rng, 10_000));
        } else {
            let len = 2_000 + rng.below(60_000) as usize;
            data = contents(&mut rng, len);
        }
        write_file(root, rel, &data, tick());
    }
    let files = files_under(root);
    let mut removed = BTreeSet::new();
    while removed.len() < 3 {
        removed.insert(files[rng.below(files.len() as u64) as usize].clone());
    }
    for rel in &removed {
        std::fs::remove_file(root.join(rel)).unwrap();
    }
    for i in 0..4 {
        let folder = if i < 2 {
            format!("nouveau-{day}")
        } else {
            FOLDERS[1 + rng.below(6) as usize].to_owned()
        };
        let size = if i == 0 {
            300_000 + rng.below(900_000)
        } else {
            3_000 + rng.below(100_000)
        };
        let rel = format!("{folder}/jour{day}-{i}.dat");
        write_file(root, &rel, &contents(&mut rng, size as usize), tick());
    }
}

// ---------------------------------------------------------------------------
// A repository with a few days of snapshots.

/// One snapshot and what it must restore to.
struct Day {
    /// Full snapshot id.
    id: String,
    /// The source as it was (contents as digests, metadata).
    image: TreeImage,
    /// Index files this snapshot wrote.
    index_files: Vec<PathBuf>,
    /// Packs this snapshot wrote.
    packs: Vec<PathBuf>,
}

struct World {
    tmp: tempfile::TempDir,
    src: PathBuf,
    coffre: Coffre,
    days: Vec<Day>,
}

impl World {
    /// A repository with snapshots of days 0..n.
    fn new(n: u64) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("officine");
        let coffre = Coffre::new(tmp.path().join("repo"));
        coffre.init();
        make_day0(&src);
        let mut w = Self {
            tmp,
            src,
            coffre,
            days: Vec::new(),
        };
        for _ in 0..n {
            w.take_day();
        }
        w
    }

    /// Changes the source (unless it is day 0) and snapshots it.
    fn take_day(&mut self) {
        let day = self.days.len() as u64;
        if day > 0 {
            change_day(&self.src, day);
        }
        let (packs0, index0) = (
            pack_files(&self.coffre.repo),
            index_files(&self.coffre.repo),
        );
        let image = capture(&self.src);
        let id = self.coffre.snapshot(&self.src);
        let packs = pack_files(&self.coffre.repo)
            .difference(&packs0)
            .cloned()
            .collect();
        let index_files = index_files(&self.coffre.repo)
            .difference(&index0)
            .cloned()
            .collect();
        self.days.push(Day {
            id,
            image,
            index_files,
            packs,
        });
    }

    fn repo(&self) -> &Path {
        &self.coffre.repo
    }

    /// Restores day `d` and requires it bit-exact.
    fn restore_exact(&self, d: usize) {
        let t = self.tmp.path().join(format!("exact-{d}"));
        self.coffre.restore(&self.days[d].id[..12], &t);
        assert_same_tree(&self.days[d].image, &capture(&t));
        std::fs::remove_dir_all(&t).unwrap();
    }

    /// Restores day `d`, which may fail, but only clearly: non-zero exit, a
    /// message, and every restored file that is not bit-exact is named in
    /// it (a file cut short by a failed read). Returns whether it worked.
    fn restore_never_wrong(&self, d: usize) -> bool {
        let day = &self.days[d];
        let t = self.tmp.path().join(format!("maybe-{d}"));
        let out = run(&mut self.coffre.cmd([
            OsStr::new("restore"),
            day.id[..12].as_ref(),
            t.as_os_str(),
        ]));
        if out.status.success() {
            assert_same_tree(&day.image, &capture(&t));
            std::fs::remove_dir_all(&t).unwrap();
            return true;
        }
        let err = text(&out.stderr);
        assert!(
            err.contains("error") && !err.contains("internal error"),
            "restore of day {d} failed without a clear message:\n{}",
            describe(&out)
        );
        if t.exists() {
            let got = capture(&t);
            for (path, e) in got.entries() {
                if e.kind != Kind::File {
                    continue;
                }
                let rel = String::from_utf8_lossy(path);
                let want = day.image.get(OsStr::from_bytes(path));
                let exact = want.is_some_and(|w| w.digest == e.digest && w.size == e.size);
                assert!(
                    exact || err.contains(rel.as_ref()),
                    "day {d}: {rel} restored with wrong bytes and not named as failed:\n{}",
                    describe(&out)
                );
            }
            std::fs::remove_dir_all(&t).unwrap();
        }
        eprintln!("day {d}: restore refused: {}", err.trim());
        false
    }

    /// The one folder of this repository's cache.
    fn cache_folder(&self) -> PathBuf {
        let dirs: Vec<PathBuf> = std::fs::read_dir(self.coffre.cache_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        assert_eq!(dirs.len(), 1, "cache folders: {dirs:?}");
        dirs.into_iter().next().unwrap()
    }

    /// The cache database, opened with plain SQLite (what anyone with
    /// access to this machine's files can do, without the key).
    fn open_cache(&self) -> rusqlite::Connection {
        let db = self.cache_folder().join("index-v2.db");
        assert!(db.is_file(), "no cache database at {}", db.display());
        rusqlite::Connection::open(db).unwrap()
    }

    /// `forget` day `d`, then a prune that removes as much as it can, with
    /// the index in whatever state the test left it: prune either refuses
    /// before deleting anything or succeeds (the final restores then prove
    /// it kept what the kept snapshots need). Returns whether it ran.
    fn forget_and_prune(&self, d: usize) -> bool {
        self.coffre
            .ok([OsStr::new("forget"), self.days[d].id[..12].as_ref()]);
        let before = pack_files(self.repo());
        let out = run(&mut self.coffre.cmd(["prune", "--max-unused", "0%"]));
        let after = pack_files(self.repo());
        if out.status.success() {
            eprintln!(
                "prune ran: {} -> {} packs\n{}",
                before.len(),
                after.len(),
                describe(&out)
            );
            return true;
        }
        let err = text(&out.stderr);
        assert!(
            err.contains("stopped before") || err.contains("rebuild-index"),
            "prune failed without saying it stopped in time:\n{}",
            describe(&out)
        );
        let deleted: Vec<_> = before.difference(&after).collect();
        assert!(
            deleted.is_empty(),
            "a refused prune deleted packs {deleted:?}:\n{}",
            describe(&out)
        );
        eprintln!("prune refused: {}", err.trim());
        false
    }

    /// The repair is complete: `check` passes, a prune runs, and
    /// `check --read-data` and every kept snapshot restore bit-exact.
    fn all_good_after_repair(&self, kept: &[usize]) {
        let out = run_ok(&mut self.coffre.cmd(["check"]));
        let report = text(&out.stdout);
        assert!(
            !report.contains("in no index file"),
            "packs still unindexed after the repair: {report}"
        );
        for &d in kept {
            self.restore_exact(d);
        }
        self.coffre.ok(["prune", "--max-unused", "0%"]);
        self.coffre.ok(["check", "--read-data"]);
        for &d in kept {
            self.restore_exact(d);
        }
    }
}

/// Every pack file on the drive.
fn pack_files(repo: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for sub in std::fs::read_dir(repo.join("data")).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            out.insert(f.unwrap().path());
        }
    }
    out
}

/// Every index file on the drive.
fn index_files(repo: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(repo.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// The 12-digit form Coffre prints for a pack or index file.
fn short(path: &Path) -> String {
    path.file_name().unwrap().to_str().unwrap()[..12].to_owned()
}

/// Runs a command that must fail with exit code 1; returns its output.
fn fails(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a failure from {cmd:?}:\n{}",
        describe(&out)
    );
    assert!(
        !text(&out.stderr).contains("internal error"),
        "{}",
        describe(&out)
    );
    out
}

// ---------------------------------------------------------------------------
// The local cache edited with plain SQL.

/// Points about a quarter of the cache's blob rows, from every pack, at
/// the next pack (the sealed location stays the one made for the real
/// pack); returns how many rows moved.
fn redirect_rows(w: &World) -> usize {
    let conn = w.open_cache();
    let packs: Vec<i64> = conn
        .prepare("SELECT pack_no FROM packs ORDER BY pack_no")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(packs.len() >= 4, "too few packs: {packs:?}");
    // About a quarter of the blobs, from every pack, each moved to the
    // next pack: reads there would find other bytes at that offset.
    let rows: Vec<(Vec<u8>, i64)> = conn
        .prepare("SELECT blob_id, pack_no FROM blobs WHERE hex(blob_id) < '4'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(rows.len() > 10, "only {} rows picked", rows.len());
    for (blob, pack) in &rows {
        let i = packs.iter().position(|p| p == pack).unwrap();
        let other = packs[(i + 1) % packs.len()];
        conn.execute(
            "UPDATE blobs SET pack_no = ?1 WHERE blob_id = ?2",
            rusqlite::params![other, blob],
        )
        .unwrap();
    }
    rows.len()
}

/// Rows of the `blobs` table redirected to another pack (the location stays
/// the one sealed for the real pack): `check` fails naming the tampering,
/// restores fail clearly or are exact, prune deletes nothing needed; deleting
/// the cache folder, then (after the same tampering again) `rebuild-index`,
/// each bring everything back.
#[test]
fn cache_rows_redirected_to_another_pack() {
    let w = World::new(3);
    let moved = redirect_rows(&w);
    eprintln!("{moved} cache rows redirected");

    let out = fails(&mut w.coffre.cmd(["check"]));
    let err = text(&out.stderr);
    assert!(
        err.contains("fails authentication") && err.contains("rebuild-index"),
        "check does not say the cache was changed:\n{}",
        describe(&out)
    );
    for d in 0..3 {
        w.restore_never_wrong(d);
    }
    w.forget_and_prune(0);

    // Deleting the cache folder is enough: the index files on the drive
    // are intact and the next command reads them again.
    std::fs::remove_dir_all(w.cache_folder()).unwrap();
    w.coffre.ok(["check"]);
    for d in 1..3 {
        w.restore_exact(d);
    }

    // The same tampering again, repaired by rebuild-index this time.
    redirect_rows(&w);
    fails(&mut w.coffre.cmd(["check"]));
    w.coffre.ok(["rebuild-index"]);
    w.all_good_after_repair(&[1, 2]);
}

/// Deletes every cache row of the blobs in the pack file `pack`; returns
/// how many.
fn delete_pack_rows(conn: &rusqlite::Connection, pack: &Path) -> usize {
    conn.execute(
        "DELETE FROM blobs WHERE pack_no = (SELECT pack_no FROM packs WHERE hex(pack_id) = upper(?1))",
        [pack.file_name().unwrap().to_str().unwrap()],
    )
    .unwrap()
}

/// Rows deleted from the `blobs` table (every row of one data pack and a
/// quarter of the others): `check` names the missing blobs, restores fail
/// clearly or are exact, prune refuses; a snapshot taken meanwhile stores
/// what it cannot find again and restores exact; `rebuild-index` refills
/// the cache and everything restores bit-exact.
#[test]
fn cache_rows_deleted() {
    let mut w = World::new(3);
    {
        let conn = w.open_cache();
        // The biggest pack of day 1: data days 1 and 2 both use.
        let biggest = w.days[1]
            .packs
            .iter()
            .max_by_key(|p| p.metadata().unwrap().len())
            .expect("day 1 wrote packs");
        let whole = delete_pack_rows(&conn, biggest);
        let some = conn
            .execute("DELETE FROM blobs WHERE hex(blob_id) < '4'", [])
            .unwrap();
        assert!(whole > 0 && some > 0, "deleted {whole} + {some} rows");
        eprintln!(
            "deleted {whole} rows of pack {} and {some} others",
            short(biggest)
        );
    }

    let out = fails(&mut w.coffre.cmd(["check"]));
    assert!(
        text(&out.stderr).contains("missing from the index"),
        "check does not name the missing blobs:\n{}",
        describe(&out)
    );
    for d in 0..3 {
        w.restore_never_wrong(d);
    }
    assert!(
        !w.forget_and_prune(0),
        "prune ran although blobs that kept snapshots use are missing from the index"
    );

    // A snapshot with the rows missing succeeds: changed files whose chunks
    // the cache forgot are stored again, unchanged files keep the parent's
    // references (their blobs are still on the drive, in packs the index
    // files list). Until the cache is repaired its restore may fail, but
    // only clearly.
    w.take_day();
    w.restore_never_wrong(3);

    w.coffre.ok(["rebuild-index"]);
    w.all_good_after_repair(&[1, 2, 3]);
}

// ---------------------------------------------------------------------------
// Index files on the drive.

/// Day 1's index file deleted from the drive: its packs are no longer
/// indexed. `check` says so, restores needing them fail clearly, prune
/// refuses (it would otherwise take those packs for leftovers);
/// `rebuild-index` lists them again.
#[test]
fn index_file_deleted() {
    let w = World::new(3);
    assert!(!w.days[1].index_files.is_empty());
    for f in &w.days[1].index_files {
        std::fs::remove_file(f).unwrap();
    }

    let out = fails(&mut w.coffre.cmd(["check"]));
    let (report, err) = (text(&out.stdout), text(&out.stderr));
    assert!(
        report.contains("in no index file") && err.contains("missing from the index"),
        "check does not name the unindexed packs and missing blobs:\n{}",
        describe(&out)
    );
    for p in &w.days[1].packs {
        assert!(report.contains(&short(p)), "pack {} not named", short(p));
    }
    // Day 0 needs nothing from day 1's packs.
    assert!(
        w.restore_never_wrong(0),
        "day 0 does not need day 1's packs"
    );
    for d in 1..3 {
        w.restore_never_wrong(d);
    }
    assert!(
        !w.forget_and_prune(0),
        "prune ran although blobs that kept snapshots use are not indexed"
    );
    for p in &w.days[1].packs {
        assert!(p.is_file(), "unindexed pack {} deleted", short(p));
    }

    let out = w.coffre.ok(["--json", "rebuild-index"]);
    assert!(out.contains("\"unreadable\": []"), "{out}");
    w.all_good_after_repair(&[1, 2]);
}

/// Flips one byte in the middle of day 1's index file.
fn flip_index_file(w: &World) -> PathBuf {
    let file = w.days[1].index_files[0].clone();
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x04;
    std::fs::write(&file, &bytes).unwrap();
    file
}

/// One flipped byte in an index file, on a machine whose cache already read
/// that file: `check` (whose job is to find damage on the drive) must still
/// report it, since any other machine, or this one once its cache is gone,
/// cannot use the file.
#[test]
fn index_file_flipped_byte_is_reported_with_a_warm_cache() {
    let w = World::new(3);
    let file = flip_index_file(&w);
    let mut silent = Vec::new();
    for args in [&["check"][..], &["check", "--read-data"][..]] {
        let out = run(&mut w.coffre.cmd(args));
        if out.status.success() || !text(&out.stderr).contains(&short(&file)) {
            silent.push(format!("`coffre {}`:\n{}", args.join(" "), describe(&out)));
        }
    }
    // The repair works all the same; the missing report fails the test last.
    w.coffre.ok(["rebuild-index"]);
    assert!(!file.exists(), "rebuild-index kept the damaged index file");
    w.all_good_after_repair(&[0, 1, 2]);
    assert!(
        silent.is_empty(),
        "index file {} has a flipped byte and these do not report it:\n{}",
        short(&file),
        silent.join("\n")
    );
}

/// One flipped byte in an index file read by a fresh cache (a new machine,
/// or the cache deleted): `check` names the file, restores needing its packs
/// fail clearly, prune refuses; `rebuild-index` replaces the file.
#[test]
fn index_file_flipped_byte_is_repaired() {
    let w = World::new(3);
    let file = flip_index_file(&w);
    std::fs::remove_dir_all(w.cache_folder()).unwrap();

    let out = fails(&mut w.coffre.cmd(["check"]));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("index file {}", short(&file))) && err.contains("rebuild-index"),
        "check does not name the damaged index file:\n{}",
        describe(&out)
    );
    for d in 0..3 {
        w.restore_never_wrong(d);
    }
    assert!(
        !w.forget_and_prune(0),
        "prune ran although an index file is damaged and its packs' blobs are in use"
    );
    for p in &w.days[1].packs {
        assert!(
            p.is_file(),
            "pack {} of the damaged index file deleted",
            short(p)
        );
    }

    let out = w.coffre.ok(["--json", "rebuild-index"]);
    assert!(out.contains("\"unreadable\": []"), "{out}");
    assert!(!file.exists(), "rebuild-index kept the damaged index file");
    w.all_good_after_repair(&[1, 2]);
}

/// Whatever makes prune refuse, its message must say that it stopped
/// before changing or deleting anything: after a prune that failed, a user
/// must not have to wonder whether backups were lost (the generic hint
/// "copy from another backup drive" suggests they were). Each tampering is
/// repaired with `rebuild-index` before the next; prune must refuse each
/// time, delete nothing, and finally run and leave every kept snapshot
/// bit-exact.
#[test]
fn prune_refusals_say_nothing_was_changed() {
    let w = World::new(3);
    w.coffre
        .ok([OsStr::new("forget"), w.days[0].id[..12].as_ref()]);
    let mut unclear = Vec::new();
    let mut refused = |what: &str| {
        let before = pack_files(w.repo());
        let out = fails(&mut w.coffre.cmd(["prune", "--max-unused", "0%"]));
        let deleted: Vec<_> = before.difference(&pack_files(w.repo())).cloned().collect();
        assert!(deleted.is_empty(), "{what}: prune deleted {deleted:?}");
        let err = text(&out.stderr);
        if !err.contains("stopped before") {
            unclear.push(format!("{what}: {}", err.trim()));
        }
        w.coffre.ok(["rebuild-index"]);
    };

    for f in &w.days[1].index_files {
        std::fs::remove_file(f).unwrap();
    }
    refused("day 1's index file deleted");
    redirect_rows(&w);
    refused("cache rows moved to another pack");
    w.open_cache()
        .execute("DELETE FROM blobs WHERE hex(blob_id) < '4'", [])
        .unwrap();
    refused("a quarter of the cache rows deleted");
    // Only data blobs missing (every tree still indexed): this one reaches
    // prune's own check of the marked blobs.
    let biggest = w.days[1]
        .packs
        .iter()
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    assert!(delete_pack_rows(&w.open_cache(), biggest) > 0);
    refused("the rows of one data pack deleted");

    w.all_good_after_repair(&[1, 2]);
    assert!(
        unclear.is_empty(),
        "prune refused without saying that nothing was changed or deleted:\n{}",
        unclear.join("\n")
    );
}

// ---------------------------------------------------------------------------
// A decoy pack.

/// Plants a decoy of the biggest pack of the newest day (every blob in it
/// stays in use whatever is forgotten below, so no prune may remove or
/// rewrite it): the real pack's header, garbage in place of its blobs, and
/// its sealed trailer and footer copied unchanged (the trailer is sealed
/// without the pack's id, so it opens in any file), named by the BLAKE3 of
/// its own bytes like every pack. Its name is made to sort before the real
/// pack's, so that `rebuild-index` meets the decoy first and must replace
/// its claims. Then deletes the cache and runs `rebuild-index`, which must
/// warn that the decoy claims the real pack's blobs and keep the real
/// copies. Returns the real pack and the decoy.
fn plant_decoy_and_rebuild(w: &World) -> (PathBuf, PathBuf) {
    let real = w.days[2]
        .packs
        .iter()
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap()
        .clone();
    let bytes = std::fs::read(&real).unwrap();
    let n = bytes.len();
    assert_eq!(&bytes[..8], b"COFFREPK");
    assert_eq!(&bytes[n - 8..], b"COFFREPK");
    let trailer_len = u32::from_le_bytes(bytes[n - 12..n - 8].try_into().unwrap()) as usize;
    let blobs_end = n - 12 - trailer_len;
    assert!(
        blobs_end > 12 + 1000,
        "pack {} holds too little",
        short(&real)
    );
    let real_name = real.file_name().unwrap().to_str().unwrap().to_owned();
    let (decoy_name, decoy) = (0..)
        .map(|seed| {
            let mut decoy = bytes.clone();
            Rng(seed).fill(&mut decoy[12..blobs_end]);
            (blake3::hash(&decoy).to_hex().to_string(), decoy)
        })
        .find(|(name, _)| *name < real_name)
        .unwrap();
    let decoy_path = w
        .repo()
        .join("data")
        .join(&decoy_name[..2])
        .join(&decoy_name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&decoy_path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &decoy))
        .unwrap();
    let (real_short, decoy_short) = (short(&real), short(&decoy_path));

    std::fs::remove_dir_all(w.cache_folder()).unwrap();
    let out = run_ok(&mut w.coffre.cmd(["--json", "rebuild-index"]));
    let (report, err) = (text(&out.stdout), text(&out.stderr));
    assert!(
        err.contains("claimed by packs")
            && err.contains(&decoy_short)
            && err.contains(&format!("the copy in {real_short} verifies and is kept")),
        "rebuild-index does not warn that the decoy claims the real pack's blobs:\n{}",
        describe(&out)
    );
    assert!(
        !report.contains("\"duplicates\": []"),
        "no duplicates in the report: {report}"
    );
    (real, decoy_path)
}

/// A decoy pack and a rebuilt index: the real copies are used (structure
/// check passes, every snapshot restores bit-exact), `check --read-data`
/// names the decoy, prune does not delete the real pack, and afterwards
/// every kept snapshot restores bit-exact.
#[test]
fn decoy_pack_does_not_replace_the_real_one() {
    let w = World::new(3);
    let (real, decoy) = plant_decoy_and_rebuild(&w);
    let (real_short, decoy_short) = (short(&real), short(&decoy));
    // Structure is fine: the cache points at the real pack only.
    w.coffre.ok(["check"]);
    for d in 0..3 {
        w.restore_exact(d);
    }
    // Reading every byte finds the decoy's garbage and says where it is.
    let out = fails(&mut w.coffre.cmd(["check", "--read-data"]));
    assert!(
        text(&out.stderr).contains(&format!("pack {decoy_short}")),
        "check --read-data does not name the decoy pack:\n{}",
        describe(&out)
    );

    w.forget_and_prune(0);
    assert!(real.is_file(), "prune deleted the real pack {real_short}");
    let out = run(&mut w.coffre.cmd(["check", "--read-data"]));
    if decoy.exists() {
        assert!(
            !out.status.success() && text(&out.stderr).contains(&decoy_short),
            "the decoy is still there and check --read-data does not say so:\n{}",
            describe(&out)
        );
    } else {
        assert!(out.status.success(), "{}", describe(&out));
    }
    for d in 1..3 {
        w.restore_exact(d);
    }
}

/// With a decoy beside the real pack, `check --read-data` may call the
/// decoy damaged, but must not list as "cannot be restored" files whose
/// every blob has a verified copy in the pack the index uses: those files
/// restore bit-exact.
#[test]
fn decoy_pack_does_not_make_check_condemn_restorable_files() {
    let w = World::new(3);
    let (_, decoy) = plant_decoy_and_rebuild(&w);
    let out = fails(&mut w.coffre.cmd(["--json", "check", "--read-data"]));
    let report = text(&out.stdout);
    assert!(
        report.contains(&short(&decoy)),
        "the decoy is not named: {report}"
    );
    for d in 0..3 {
        w.restore_exact(d);
    }
    let condemned = coffre_tests::json_string_fields(&report, "path");
    let err = text(&out.stderr);
    let listed = err.find("Damaged files").map_or("", |i| &err[i..]);
    assert!(
        condemned.is_empty(),
        "check --read-data lists {} file(s) that restore bit-exact as damaged:\n{listed}",
        condemned.len(),
    );
}

// ---------------------------------------------------------------------------
// Permissions.

/// `coffre <args>` run with umask 022, the usual default, which would let
/// group and others read whatever Coffre does not make private itself.
fn umask_022(coffre: &Coffre, args: &[&OsStr]) -> Command {
    let mut cmd = coffre.cmd(args);
    // SAFETY: umask is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    cmd
}

/// Everything under `root` (itself included) that is not private: a
/// folder not exactly 0700, a file with any group or other bit.
fn not_private(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            if mode != 0o700 {
                out.push(format!("folder {} is {mode:o}", p.display()));
            }
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if mode & 0o077 != 0 {
            out.push(format!("file {} is {mode:o}", p.display()));
        }
    }
    out.sort();
    out
}

/// Runs init, two snapshots, a prune caught while it holds the cache open
/// (SQLite's `-wal` and `-shm` files exist only then), a forget with prune
/// and a rebuild-index, all under umask 022; returns what `inspect` finds
/// after each step, labelled with the step.
fn private_steps(inspect: &dyn Fn(&World) -> Vec<String>) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("officine");
    let coffre = Coffre::new(tmp.path().join("repo"));
    make_day0(&src);
    let w = World {
        tmp,
        src,
        coffre,
        days: Vec::new(),
    };
    let mut found = Vec::new();
    let mut after = |step: &str, w: &World| {
        found.extend(inspect(w).into_iter().map(|b| format!("after {step}: {b}")));
    };
    run_ok(&mut umask_022(&w.coffre, &["init".as_ref()]));
    after("init", &w);
    let snap = |w: &World| {
        run_ok(&mut umask_022(
            &w.coffre,
            &["snapshot".as_ref(), w.src.as_os_str()],
        ));
    };
    snap(&w);
    after("snapshot", &w);
    change_day(&w.src, 1);
    snap(&w);
    after("second snapshot", &w);

    // Prune pauses 4 s after marking (a test hook), the cache open.
    let mut prune = umask_022(&w.coffre, &["prune".as_ref()]);
    let mut child = prune
        .env("COFFRE_TEST_PRUNE_PAUSE", "marked")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = ["index-v2.db-wal", "index-v2.db-shm"].map(|f| w.cache_folder().join(f));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !journal.iter().all(|f| f.exists()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        journal.iter().all(|f| f.exists()),
        "no {journal:?} while prune runs"
    );
    after("prune started (cache open)", &w);
    assert!(child.wait().unwrap().success(), "paused prune failed");

    run_ok(&mut umask_022(
        &w.coffre,
        &["forget", "--keep-last", "1", "--prune"].map(OsStr::new),
    ));
    after("forget --prune", &w);
    run_ok(&mut umask_022(&w.coffre, &["rebuild-index".as_ref()]));
    after("rebuild-index", &w);
    found
}

/// Under umask 022, every file of the repository has no group or other
/// bit and every folder is 0700, after each kind of command that writes.
#[test]
fn repository_is_private_under_umask_022() {
    let bad = private_steps(&|w| not_private(w.repo()));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Under umask 022, this repository's cache folder is 0700 and every file
/// in it, the SQLite database and the `-wal`/`-shm` files SQLite makes
/// itself included, has no group or other bit: the cache names every blob
/// of the repository, its pack and its size.
#[test]
fn cache_is_private_under_umask_022() {
    let told = std::sync::Once::new();
    let bad = private_steps(&|w| {
        // Coffre makes COFFRE_CACHE_DIR itself with the umask's mode; only
        // the repository's folder inside is private. Told, not asserted: it
        // holds nothing but that folder, whose name is the repository id.
        told.call_once(|| {
            let mode = std::fs::metadata(w.coffre.cache_dir())
                .unwrap()
                .permissions()
                .mode();
            eprintln!("COFFRE_CACHE_DIR made with mode {:o}", mode & 0o7777);
        });
        not_private(&w.cache_folder())
    });
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
