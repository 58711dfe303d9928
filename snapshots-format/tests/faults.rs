//! The repository survives what drives do to it, through the library alone.
//!
//! What this file proves, on an in-memory drive wrapped in
//! [`FaultyBackend`]:
//!
//! - A snapshot interrupted at any of its writes (a crash, an unplugged
//!   drive) loses nothing: after the reboot, with the cache the crashed
//!   process left and with an empty one, `check --read-data` finds at worst
//!   leftover packs, the earlier snapshot restores bit-exact, the
//!   interrupted one is absent or whole, and the next snapshot and a prune
//!   work and leave everything restorable.
//! - A prune interrupted at any of its writes never loses a kept snapshot,
//!   and the next prune finishes the job, leaving a repository that a
//!   machine with no cache also finds clean.
//! - A single failed write, or a full drive, fails the snapshot plainly
//!   (`Error::DriveFull` for the latter) and the next one succeeds.
//! - Damaged or short reads of packs, snapshot records, index files and key
//!   files give errors, never a panic and never wrong bytes; the errors name
//!   the object (except a bit flipped inside the wrapped master key, which
//!   cannot be told from a wrong passphrase). Passing read failures give
//!   errors that say so.
//! - Opening a repository with an empty cache reads index files, never a
//!   pack.
//!
//! Every "for each N" loop runs all its cases even when one fails, then
//! fails naming every case that broke, so one run tells the whole story.

mod common;
use common::{pseudo_random, CHEAP};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::FileExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use snapshots_format::backend::{
    Backend, FaultPlan, FaultyBackend, FileKind, MemBackend, ObjectName, Upload,
};
use snapshots_format::format::snapshot::Snapshot;
use snapshots_format::format::tree::Timestamp;
use snapshots_format::ops::adopt::{adopt_leftover_packs, AdoptReport};
use snapshots_format::ops::backup::{take_snapshot, SnapshotOptions};
use snapshots_format::ops::check::{check, CheckOptions, CheckReport};
use snapshots_format::ops::prune::{prune, PruneOptions};
use snapshots_format::ops::rebuild::rebuild_index;
use snapshots_format::ops::restore::{restore, RestoreOptions, RestoreSummary};
use snapshots_format::progress::NoProgress;
use snapshots_format::repo::lock::{self, LockKind};
use snapshots_format::{Error, Repository, Result, SnapshotId};

const PASSPHRASE: &[u8] = b"correct horse battery staple";

/// Midnight UTC, 2026-01-01: day `d` of the history is this plus `d` days.
const EPOCH: i64 = 1_767_225_600;
const DAY: i64 = 86_400;

// ---------------------------------------------------------------------------
// Source trees and their evolution.

/// One entry of a folder, as a restore must give it back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// A whole folder: every entry by its path below the root.
type Tree = BTreeMap<PathBuf, Entry>;

/// Reads a folder as a [`Tree`] (symlinks not followed).
fn read_tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(root.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let path = rel.join(entry.file_name());
            let kind = entry.file_type().unwrap();
            let e = if kind.is_dir() {
                stack.push(path.clone());
                Entry::Dir
            } else if kind.is_symlink() {
                Entry::Link(std::fs::read_link(entry.path()).unwrap())
            } else {
                Entry::File(std::fs::read(entry.path()).unwrap())
            };
            out.insert(path, e);
        }
    }
    out
}

/// Writes a file, making its folders.
fn put(src: &Path, rel: &str, bytes: &[u8]) {
    let path = src.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Compressible text, different for each seed.
fn text(seed: usize, lines: usize) -> Vec<u8> {
    (0..lines)
        .map(|l| {
            format!(
                "{seed:03} line {l:04}: invoice {} settled, balance {}\n",
                (l * 7919 + seed) % 10_007,
                (l * 104_729 + seed * 31) % 99_991
            )
        })
        .collect::<String>()
        .into_bytes()
}

/// Day 0: 41 small files in nested folders, two files of ~300 KB of
/// incompressible data, an empty file, an empty folder and a symlink.
fn make_day0(src: &Path) {
    for i in 0..16 {
        put(src, &format!("docs/letter{i:02}.txt"), &text(i, 20 + i * 7));
    }
    for (y, year) in (2023..2026).enumerate() {
        for m in 0..8 {
            let seed = 100 + y * 10 + m;
            put(src, &format!("ledger/{year}/m{m}.csv"), &text(seed, 30 + m));
        }
    }
    put(src, "big/archive.bin", &pseudo_random(300_000, 1));
    put(src, "big/photo.raw", &pseudo_random(310_000, 2));
    put(src, "empty", b"");
    std::fs::create_dir_all(src.join("empty-dir")).unwrap();
    std::os::unix::fs::symlink("docs/letter00.txt", src.join("link")).unwrap();
}

/// Overwrites `len` bytes of a file in place at `offset` (a database page).
fn patch(src: &Path, rel: &str, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(src.join(rel))
        .unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// Moves the source from day `day - 1` to day `day`: files changed, added
/// and removed, one page of a large file rewritten.
fn evolve(src: &Path, day: i64) {
    let rm = |rel: &str| std::fs::remove_file(src.join(rel)).unwrap();
    match day {
        1 => {
            put(src, "docs/letter03.txt", &text(503, 40));
            put(src, "docs/letter07.txt", &text(507, 12));
            put(src, "ledger/2025/m7.csv", &text(527, 50));
            for i in 0..5 {
                put(src, &format!("docs/new/memo{i}.txt"), &text(600 + i, 25));
            }
            put(src, "ledger/2026/m0.csv", &text(700, 33));
            rm("docs/letter15.txt");
            rm("ledger/2023/m0.csv");
            rm("ledger/2023/m1.csv");
            patch(src, "big/archive.bin", 150_000, &pseudo_random(4096, 11));
        }
        2 => {
            // Day 1's own data goes away, so that forgetting day 1 leaves
            // packs partly used (repacked) as well as unused ones.
            rm("docs/new/memo0.txt");
            rm("docs/new/memo1.txt");
            put(src, "docs/letter03.txt", &text(803, 44));
            patch(src, "big/archive.bin", 150_000, &pseudo_random(4096, 12));
            put(src, "big/scan.pdf", &pseudo_random(200_000, 13));
            put(src, "ledger/2026/m1.csv", &text(801, 21));
        }
        _ => unreachable!("no day {day}"),
    }
}

fn day_time(day: i64) -> Timestamp {
    Timestamp {
        sec: EPOCH + day * DAY,
        nsec: 0,
    }
}

fn day_of(snap: &Snapshot) -> i64 {
    (snap.time.sec - EPOCH) / DAY
}

fn opts(src: &Path, day: i64) -> SnapshotOptions {
    SnapshotOptions {
        label: Some("faults".into()),
        tags: vec![],
        time: Some(day_time(day)),
        ..SnapshotOptions::new(src.to_path_buf())
    }
}

// ---------------------------------------------------------------------------
// A repository with a history, and simulated processes on copies of it.

/// A repository in memory with the snapshots taken so far, the cache its
/// last process left, and what the source held on each day.
struct History {
    _dir: tempfile::TempDir,
    src: PathBuf,
    /// The drive: only ever changed by [`History`]'s own methods; every
    /// simulated process works on a copy ([`MemBackend::snapshot`]).
    mem: Arc<MemBackend>,
    cache: PathBuf,
    /// The source on each day.
    trees: BTreeMap<i64, Tree>,
    /// The snapshots kept, with their day.
    snaps: BTreeMap<SnapshotId, i64>,
}

impl History {
    /// The source at day 0 and an empty repository.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        make_day0(&src);
        let mem = Arc::new(MemBackend::new());
        let cache = dir.path().join("cache");
        Repository::init_with(mem.clone(), &cache, PASSPHRASE, CHEAP).unwrap();
        let trees = BTreeMap::from([(0, read_tree(&src))]);
        Self {
            _dir: dir,
            src,
            mem,
            cache,
            trees,
            snaps: BTreeMap::new(),
        }
    }

    /// Opens the repository itself (not a copy), with its cache.
    fn open(&self) -> Repository {
        Repository::open_with(self.mem.clone(), &self.cache, PASSPHRASE).unwrap()
    }

    /// Takes the snapshot of `day` of the source as it is now.
    fn snapshot(&mut self, day: i64) -> SnapshotId {
        let repo = self.open();
        let (id, _) = take_snapshot(&repo, &opts(&self.src, day), &NoProgress).unwrap();
        self.snaps.insert(id, day);
        id
    }

    /// Moves the source to `day`.
    fn evolve(&mut self, day: i64) {
        evolve(&self.src, day);
        self.trees.insert(day, read_tree(&self.src));
    }

    /// Forgets a snapshot.
    fn forget(&mut self, id: &SnapshotId) {
        self.open().delete_snapshot(id).unwrap();
        self.snaps.remove(id);
    }

    /// Starts a process on a copy of the drive, with a copy of the cache,
    /// in `work`; its faults are set later with `set_plan`, so that opening
    /// the repository is not counted.
    fn start(&self, work: &Path) -> (Arc<FaultyBackend<MemBackend>>, Repository, PathBuf) {
        let cache = work.join("cache");
        copy_dir(&self.cache, &cache);
        let faulty = Arc::new(FaultyBackend::new(
            self.mem.snapshot(),
            FaultPlan::default(),
        ));
        let repo = Repository::open_with(faulty.clone(), &cache, PASSPHRASE).unwrap();
        (faulty, repo, cache)
    }

    /// The source tree a snapshot must restore to.
    fn want(&self, snap: &Snapshot) -> &Tree {
        let day = day_of(snap);
        self.trees
            .get(&day)
            .unwrap_or_else(|| panic!("a snapshot of day {day}, which was never taken"))
    }
}

/// Copies a folder (the local cache) recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// What the machine finds after the crash: the drive holds only what was
/// committed, with no faults any more; the local cache survived (`cache`
/// is the crashed process's) or not (`cache` is a new folder).
fn reboot(crashed: &FaultyBackend<MemBackend>, cache: &Path) -> (Arc<MemBackend>, Repository) {
    let drive = Arc::new(crashed.inner().snapshot());
    let repo = Repository::open_with(drive.clone(), cache, PASSPHRASE)
        .unwrap_or_else(|e| panic!("the repository does not open after the reboot: {e}"));
    (drive, repo)
}

/// Bytes the drive holds, all objects together.
fn stored_bytes(b: &MemBackend) -> u64 {
    FileKind::ALL
        .iter()
        .flat_map(|&k| b.list(k).unwrap())
        .map(|(_, size)| size)
        .sum()
}

fn plan(set: impl FnOnce(&mut FaultPlan)) -> FaultPlan {
    let mut p = FaultPlan::default();
    set(&mut p);
    p
}

fn prune_opts() -> PruneOptions {
    PruneOptions {
        dry_run: false,
        max_unused: 0.0,
    }
}

fn run_prune(repo: &Repository) -> Result<()> {
    prune(repo, prune_opts(), &NoProgress, &|_| {}).map(|_| ())
}

// ---------------------------------------------------------------------------
// Checking and restoring.

/// `check --read-data` finds nothing wrong. With `leftovers`, warnings
/// about packs no index lists (what an interrupted run leaves) are allowed;
/// without, the repository must be spotless.
fn assert_sound(repo: &Repository, leftovers: bool, ctx: &str) {
    let report = check(
        repo,
        CheckOptions {
            read_data: true,
            subset: None,
        },
        &NoProgress,
    )
    .unwrap_or_else(|e| panic!("{ctx}: check failed: {e}"));
    assert!(
        report.is_ok(),
        "{ctx}: check finds errors: {:?}; damaged files: {:?}",
        report.errors,
        report.damaged_files
    );
    if leftovers {
        for w in &report.warnings {
            assert!(
                w.contains("is in no index file"),
                "{ctx}: unexpected check warning: {w}"
            );
        }
    } else {
        assert!(
            report.warnings.is_empty(),
            "{ctx}: check warns: {:?}",
            report.warnings
        );
    }
}

/// Restores a whole snapshot into a new folder and reads it back.
fn restore_tree(repo: &Repository, snap: &Snapshot) -> Result<(Tree, RestoreSummary)> {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let opts = RestoreOptions {
        target: target.clone(),
        path: None,
        overwrite: false,
    };
    let summary = restore(repo, snap, &opts, &NoProgress)?;
    let tree = if target.exists() {
        read_tree(&target)
    } else {
        Tree::new()
    };
    Ok((tree, summary))
}

/// The snapshot restores without an error and bit-exact.
fn assert_restores(repo: &Repository, snap: &Snapshot, want: &Tree, ctx: &str) {
    let (got, summary) = restore_tree(repo, snap)
        .unwrap_or_else(|e| panic!("{ctx}: restore of day {} failed: {e}", day_of(snap)));
    assert!(
        summary.errors.is_empty(),
        "{ctx}: restore of day {} reports {:?}",
        day_of(snap),
        summary.errors
    );
    assert_same(
        &got,
        want,
        &format!("{ctx}: restore of day {}", day_of(snap)),
    );
}

/// Compares two trees, naming the first few differences (not megabytes of
/// bytes).
fn assert_same(got: &Tree, want: &Tree, ctx: &str) {
    if got == want {
        return;
    }
    let paths: BTreeSet<&PathBuf> = got.keys().chain(want.keys()).collect();
    let diffs: Vec<String> = paths
        .into_iter()
        .filter(|p| got.get(*p) != want.get(*p))
        .take(8)
        .map(|p| {
            let show = |e: Option<&Entry>| match e {
                None => "absent".to_owned(),
                Some(Entry::Dir) => "folder".to_owned(),
                Some(Entry::Link(t)) => format!("link to {}", t.display()),
                Some(Entry::File(b)) => format!("{} bytes", b.len()),
            };
            format!(
                "{}: got {}, want {}",
                p.display(),
                show(got.get(p)),
                show(want.get(p))
            )
        })
        .collect();
    panic!("{ctx}: not bit-exact: {diffs:?}");
}

/// Every snapshot in the repository opens and restores bit-exact to its
/// day's source; every snapshot the history kept is there; the others are
/// of one of the `extra` days (a run that got as far as its record).
fn assert_history(repo: &Repository, h: &History, extra: &[i64], ctx: &str) {
    let (snaps, errors) = repo
        .snapshots()
        .unwrap_or_else(|e| panic!("{ctx}: snapshots cannot be listed: {e}"));
    assert!(errors.is_empty(), "{ctx}: unreadable snapshots: {errors:?}");
    let listed: BTreeSet<SnapshotId> = snaps.iter().map(|(id, _)| *id).collect();
    for (id, day) in &h.snaps {
        assert!(
            listed.contains(id),
            "{ctx}: the snapshot of day {day} is gone"
        );
    }
    for (id, snap) in &snaps {
        let day = day_of(snap);
        assert!(
            h.snaps.contains_key(id) || extra.contains(&day),
            "{ctx}: an unexpected snapshot of day {day}"
        );
        assert_restores(repo, snap, h.want(snap), ctx);
    }
}

/// Runs `case(point, same_cache)` for every point, once with the cache the
/// interrupted process left and once with an empty one (a reboot that lost
/// it), as [`run_cases`].
fn run_with_both_caches(
    points: impl IntoIterator<Item = u64>,
    name: &dyn Fn(u64) -> String,
    case: &dyn Fn(u64, bool),
) {
    let mut cases: Vec<(String, Box<dyn FnOnce() + '_>)> = Vec::new();
    for point in points {
        for same in [true, false] {
            cases.push((
                format!("{}, {}", name(point), cache_name(same)),
                Box::new(move || case(point, same)),
            ));
        }
    }
    run_cases(cases);
}

/// Runs every case, even after one fails, then fails naming all that broke.
fn run_cases(cases: Vec<(String, Box<dyn FnOnce() + '_>)>) {
    let total = cases.len();
    let mut failed = Vec::new();
    for (name, case) in cases {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(case)) {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failed.push(format!("[{name}] {msg}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {total} cases failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

fn cache_name(same: bool) -> &'static str {
    if same {
        "same cache"
    } else {
        "fresh cache"
    }
}

// ---------------------------------------------------------------------------
// 1. A snapshot interrupted at every write.

/// A repository holding the day-0 snapshot, its source now at day 1.
fn day0_history() -> History {
    let mut h = History::new();
    h.snapshot(0);
    h.evolve(1);
    h
}

/// Mutating operations and bytes written by a clean day-1 snapshot.
fn measure_day1(h: &History) -> (u64, u64) {
    let work = tempfile::tempdir().unwrap();
    let (faulty, repo, _) = h.start(work.path());
    faulty.set_plan(FaultPlan::default());
    take_snapshot(&repo, &opts(&h.src, 1), &NoProgress).unwrap();
    let writes = faulty.writes();
    let bytes = stored_bytes(faulty.inner()) - stored_bytes(&h.mem);
    (writes, bytes)
}

/// After a run that failed on `drive` (committed state only), with `cache`
/// as the machine has it: everything earlier is intact, a new day-1
/// snapshot and a prune work, and a machine with no cache agrees.
fn assert_recovers(h: &History, repo: Repository, drive: &Arc<MemBackend>, work: &Path, ctx: &str) {
    assert_sound(&repo, true, ctx);
    // The interrupted day-1 snapshot may be there if its record was written.
    assert_history(&repo, h, &[1], ctx);
    let (_, snap) = take_snapshot(&repo, &opts(&h.src, 1), &NoProgress)
        .unwrap_or_else(|e| panic!("{ctx}: the next snapshot fails: {e}"));
    assert_restores(
        &repo,
        &snap,
        h.want(&snap),
        &format!("{ctx}, next snapshot"),
    );
    run_prune(&repo).unwrap_or_else(|e| panic!("{ctx}: prune fails: {e}"));
    let ctx = format!("{ctx}, after prune");
    assert_sound(&repo, false, &ctx);
    assert_history(&repo, h, &[1], &ctx);
    drop(repo);
    // The drive alone must tell the same story (another machine, or this
    // one after its cache was deleted).
    let elsewhere = Repository::open_with(drive.clone(), &work.join("elsewhere"), PASSPHRASE)
        .unwrap_or_else(|e| panic!("{ctx}: does not open with no cache: {e}"));
    let ctx = format!("{ctx}, opened with no cache");
    // Restores first: a lost snapshot is worse than a check error.
    assert_history(&elsewhere, h, &[1], &ctx);
    assert_sound(&elsewhere, false, &ctx);
}

/// Crashes the day-1 snapshot at write `n` of `w`, reboots, and checks
/// that nothing was lost.
fn snapshot_crash_case(h: &History, n: u64, w: u64, same_cache: bool) {
    let ctx = format!(
        "snapshot crash at write {n} of {w}, {}",
        cache_name(same_cache)
    );
    let work = tempfile::tempdir().unwrap();
    let (faulty, repo, cache) = h.start(work.path());
    faulty.set_plan(plan(|p| p.crash_at = Some(n)));
    let result = take_snapshot(&repo, &opts(&h.src, 1), &NoProgress);
    match &result {
        Ok(_) if n <= w => panic!("{ctx}: the snapshot succeeded though the drive was gone"),
        Err(e) if n > w => panic!("{ctx}: the snapshot failed before the crash: {e}"),
        _ => {}
    }
    drop(repo);
    let cache = if same_cache {
        cache
    } else {
        work.path().join("fresh-cache")
    };
    let (drive, repo) = reboot(&faulty, &cache);
    assert_recovers(h, repo, &drive, work.path(), &ctx);
}

#[test]
fn snapshot_interrupted_at_every_write_loses_nothing() {
    let h = day0_history();
    let (w, bytes) = measure_day1(&h);
    eprintln!("a day-1 snapshot makes W = {w} mutating operations, {bytes} bytes");
    assert!(
        w >= 3,
        "a snapshot writes at least a pack, an index file and its record"
    );
    // N = W + 1: the crash point is never reached, the snapshot succeeds.
    run_with_both_caches(1..=w + 1, &|n| format!("crash_at {n}/{w}"), &|n, same| {
        snapshot_crash_case(&h, n, w, same)
    });
}

// ---------------------------------------------------------------------------
// 2. Prune interrupted at every write.

/// Three snapshots of an evolving source with the middle one forgotten:
/// prune has packs to drop and packs to repack.
fn pruneable_history() -> History {
    let mut h = History::new();
    h.snapshot(0);
    h.evolve(1);
    let middle = h.snapshot(1);
    h.evolve(2);
    h.snapshot(2);
    h.forget(&middle);
    h
}

/// Crashes prune at write `n` of `w`, reboots, and checks that no kept
/// snapshot was lost and that the next prune finishes the job.
fn prune_crash_case(h: &History, n: u64, w: u64, same_cache: bool) {
    let ctx = format!(
        "prune crash at write {n} of {w}, {}",
        cache_name(same_cache)
    );
    let work = tempfile::tempdir().unwrap();
    let (faulty, repo, cache) = h.start(work.path());
    faulty.set_plan(plan(|p| p.crash_at = Some(n)));
    let result = run_prune(&repo);
    match &result {
        Ok(()) if n <= w => panic!("{ctx}: prune succeeded though the drive was gone"),
        Err(e) if n > w => panic!("{ctx}: prune failed before the crash: {e}"),
        _ => {}
    }
    drop(repo);
    let cache = if same_cache {
        cache
    } else {
        work.path().join("fresh-cache")
    };
    let (drive, repo) = reboot(&faulty, &cache);
    // Kept snapshots first: they are what prune must never lose.
    assert_history(&repo, h, &[], &ctx);
    assert_sound(&repo, true, &ctx);
    run_prune(&repo).unwrap_or_else(|e| panic!("{ctx}: the next prune fails: {e}"));
    let ctx = format!("{ctx}, after the next prune");
    assert_sound(&repo, false, &ctx);
    assert_history(&repo, h, &[], &ctx);
    drop(repo);
    let elsewhere =
        Repository::open_with(drive.clone(), &work.path().join("elsewhere"), PASSPHRASE)
            .unwrap_or_else(|e| panic!("{ctx}: does not open with no cache: {e}"));
    let ctx = format!("{ctx}, opened with no cache");
    // Restores first: a lost snapshot is worse than a check error.
    assert_history(&elsewhere, h, &[], &ctx);
    assert_sound(&elsewhere, false, &ctx);
}

#[test]
fn prune_interrupted_at_every_write_keeps_every_kept_snapshot() {
    let h = pruneable_history();
    let w = {
        let work = tempfile::tempdir().unwrap();
        let (faulty, repo, _) = h.start(work.path());
        faulty.set_plan(FaultPlan::default());
        let report = prune(&repo, prune_opts(), &NoProgress, &|_| {}).unwrap();
        eprintln!("prune: {report:?}");
        assert!(
            report.packs_deleted + report.packs_repacked > 0,
            "the history must give prune work: {report:?}"
        );
        faulty.writes()
    };
    eprintln!("a prune makes W = {w} mutating operations");
    run_with_both_caches(1..=w + 1, &|n| format!("crash_at {n}/{w}"), &|n, same| {
        prune_crash_case(&h, n, w, same)
    });
}

// ---------------------------------------------------------------------------
// 3. One failed write.

/// One write fails and the drive goes on: the snapshot says so, the next
/// one (same process) succeeds, and nothing earlier is lost.
fn failed_write_case(h: &History, n: u64, w: u64) {
    let ctx = format!("fail_write_at {n} of {w}");
    let work = tempfile::tempdir().unwrap();
    let (faulty, repo, _) = h.start(work.path());
    faulty.set_plan(plan(|p| p.fail_write_at = Some(n)));
    if take_snapshot(&repo, &opts(&h.src, 1), &NoProgress).is_ok() {
        panic!("{ctx}: the snapshot succeeded though write {n} failed");
    }
    let (_, snap) = take_snapshot(&repo, &opts(&h.src, 1), &NoProgress)
        .unwrap_or_else(|e| panic!("{ctx}: the next snapshot fails: {e}"));
    assert_restores(&repo, &snap, h.want(&snap), &ctx);
    assert_sound(&repo, true, &ctx);
    assert_history(&repo, h, &[1], &ctx);
    drop(repo);
    let (drive, repo) = reboot(&faulty, &work.path().join("fresh-cache"));
    assert_recovers(h, repo, &drive, work.path(), &format!("{ctx}, rebooted"));
}

#[test]
fn one_failed_write_fails_the_snapshot_and_the_next_one_succeeds() {
    let h = day0_history();
    let (w, _) = measure_day1(&h);
    let mut cases: Vec<(String, Box<dyn FnOnce()>)> = Vec::new();
    for n in 1..=w {
        let h = &h;
        cases.push((
            format!("fail_write_at {n}/{w}"),
            Box::new(move || failed_write_case(h, n, w)),
        ));
    }
    run_cases(cases);
}

// ---------------------------------------------------------------------------
// 4. A full drive.

/// The drive fills after `space` of the `total` bytes a day-1 snapshot
/// writes: the snapshot fails with `DriveFull`, and after a reboot
/// (cache kept or not) nothing is lost and the next snapshot works.
fn drive_full_case(h: &History, space: u64, total: u64, same_cache: bool) {
    let ctx = format!(
        "drive full after {space} of {total} bytes, {}",
        cache_name(same_cache)
    );
    let work = tempfile::tempdir().unwrap();
    let (faulty, repo, cache) = h.start(work.path());
    faulty.set_plan(plan(|p| p.space = Some(space)));
    match take_snapshot(&repo, &opts(&h.src, 1), &NoProgress) {
        Err(Error::DriveFull { needed, free, .. }) => {
            // The message says how much more the run needed, and what was
            // left: at most the space given.
            assert!(needed.is_some_and(|n| n > 0), "{ctx}: needed {needed:?}");
            assert!(free.is_some_and(|f| f <= space), "{ctx}: free {free:?}");
        }
        Err(e) => panic!("{ctx}: failed with {e:?}, not DriveFull"),
        Ok(_) => panic!("{ctx}: the snapshot succeeded on a full drive"),
    }
    drop(repo);
    let cache = if same_cache {
        cache
    } else {
        work.path().join("fresh-cache")
    };
    let (drive, repo) = reboot(&faulty, &cache);
    assert_recovers(h, repo, &drive, work.path(), &ctx);
}

#[test]
fn full_drive_fails_with_drive_full_and_loses_nothing() {
    let h = day0_history();
    let (_, total) = measure_day1(&h);
    eprintln!("a day-1 snapshot writes {total} bytes");
    // Not `total - 1`: a run's byte count varies by a few hundred bytes (a
    // blob two worker batches race for may be stored twice, and packs are
    // cut where the batches fall), so the last point keeps a margin.
    run_with_both_caches(
        [64, total / 2, total - total / 20],
        &|space| format!("space {space}/{total}"),
        &|space, same| drive_full_case(&h, space, total, same),
    );
}

// ---------------------------------------------------------------------------
// 5. Damaged, short and passing reads.

/// A repository with the snapshots of days 0 and 1, all sound.
fn two_day_history() -> History {
    let mut h = History::new();
    h.snapshot(0);
    h.evolve(1);
    h.snapshot(1);
    h
}

/// Opens a copy of the repository through faults, with a copy of its cache
/// or (`fresh`) an empty one.
fn open_faulty(h: &History, work: &Path, faults: FaultPlan, fresh: bool) -> Result<Repository> {
    let cache = work.join("cache");
    if !fresh {
        copy_dir(&h.cache, &cache);
    }
    let faulty = Arc::new(FaultyBackend::new(h.mem.snapshot(), faults));
    Repository::open_with(faulty, &cache, PASSPHRASE)
}

/// A restore through damage errors or is bit-exact; what it does write and
/// does not name as failed is exact. Returns whether it reported an error.
fn restore_errs_or_exact(repo: &Repository, snap: &Snapshot, want: &Tree, ctx: &str) -> bool {
    let (got, summary) = match restore_tree(repo, snap) {
        Err(e) => {
            assert!(!e.to_string().is_empty(), "{ctx}: an empty error");
            return true;
        }
        Ok(r) => r,
    };
    if summary.errors.is_empty() {
        assert_same(&got, want, ctx);
        return false;
    }
    for (path, entry) in &got {
        if let Entry::File(_) = entry {
            if want.get(path) != Some(entry) {
                let name = path.to_string_lossy();
                assert!(
                    summary.errors.iter().any(|e| e.starts_with(&*name)),
                    "{ctx}: {name} restored with wrong bytes and no error; errors: {:?}",
                    summary.errors
                );
            }
        }
    }
    true
}

/// With every pack read damaged (`faults`), every restore and both kinds
/// of check report it, whether the cache is kept or empty.
fn assert_pack_damage_reported(h: &History, faults: FaultPlan, what: &str) {
    for fresh in [false, true] {
        let ctx = format!("{what}, {}", cache_name(!fresh));
        let work = tempfile::tempdir().unwrap();
        // Opening reads index files, not packs: it works.
        let repo = open_faulty(h, work.path(), faults.clone(), fresh)
            .unwrap_or_else(|e| panic!("{ctx}: open fails: {e}"));
        let (snaps, errors) = repo.snapshots().unwrap();
        assert!(errors.is_empty(), "{ctx}: {errors:?}");
        assert_eq!(snaps.len(), 2, "{ctx}");
        for (_, snap) in &snaps {
            let ctx = format!("{ctx}, restore of day {}", day_of(snap));
            assert!(
                restore_errs_or_exact(&repo, snap, h.want(snap), &ctx),
                "{ctx}: every pack read is damaged, yet the restore reports nothing"
            );
        }
        for read_data in [false, true] {
            match check(
                &repo,
                CheckOptions {
                    read_data,
                    subset: None,
                },
                &NoProgress,
            ) {
                Err(_) => {}
                Ok(report) => assert!(
                    !report.is_ok(),
                    "{ctx}: check (read_data {read_data}) finds every pack sound: {report:?}"
                ),
            }
        }
    }
}

#[test]
fn damaged_pack_reads_give_errors_never_wrong_bytes() {
    let h = two_day_history();
    assert_pack_damage_reported(
        &h,
        plan(|p| p.flip_on_read = Some(FileKind::Pack)),
        "flipped pack reads",
    );
    assert_pack_damage_reported(
        &h,
        plan(|p| p.truncate_on_read = Some(FileKind::Pack)),
        "truncated pack reads",
    );
}

/// Snapshot records read damaged: listing names each one, none is taken
/// for sound.
fn assert_snapshot_damage_named(h: &History, faults: FaultPlan, what: &str) {
    let work = tempfile::tempdir().unwrap();
    let repo = open_faulty(h, work.path(), faults, false)
        .unwrap_or_else(|e| panic!("{what}: open fails: {e}"));
    let names: Vec<String> = h.snaps.keys().map(SnapshotId::short).collect();
    let (snaps, errors) = repo.snapshots().unwrap();
    assert!(snaps.is_empty(), "{what}: damaged records were read");
    assert_eq!(errors.len(), names.len(), "{what}: {errors:?}");
    for name in &names {
        assert!(
            errors.iter().any(|e| e.to_string().contains(name.as_str())),
            "{what}: no error names snapshot {name}: {errors:?}"
        );
    }
    for id in h.snaps.keys() {
        let e = repo.load_snapshot(id).unwrap_err();
        assert!(e.to_string().contains(&id.short()), "{what}: {e}");
    }
    let report = check(
        &repo,
        CheckOptions {
            read_data: true,
            subset: None,
        },
        &NoProgress,
    )
    .unwrap();
    assert!(!report.is_ok(), "{what}: check finds nothing");
    for name in &names {
        assert!(
            report.errors.iter().any(|e| e.contains(name.as_str())),
            "{what}: check does not name snapshot {name}: {:?}",
            report.errors
        );
    }
}

/// Index files read damaged by a machine with no cache: the damage names
/// each file, check reports it, and restores error rather than guess.
fn assert_index_damage_named(h: &History, faults: FaultPlan, what: &str) {
    let work = tempfile::tempdir().unwrap();
    let repo = open_faulty(h, work.path(), faults, true)
        .unwrap_or_else(|e| panic!("{what}: open fails: {e}"));
    let files: Vec<String> = h
        .mem
        .list(FileKind::Index)
        .unwrap()
        .iter()
        .map(|(n, _)| n.short().to_owned())
        .collect();
    assert!(!files.is_empty());
    let damage = repo.index_damage();
    for f in &files {
        assert!(
            damage.iter().any(|d| d.contains(f.as_str())),
            "{what}: index file {f} not named: {damage:?}"
        );
    }
    let report = check(
        &repo,
        CheckOptions {
            read_data: true,
            subset: None,
        },
        &NoProgress,
    )
    .unwrap();
    assert!(!report.is_ok(), "{what}: check finds nothing");
    for f in &files {
        assert!(
            report.errors.iter().any(|e| e.contains(f.as_str())),
            "{what}: check does not name index file {f}: {:?}",
            report.errors
        );
    }
    let (snaps, _) = repo.snapshots().unwrap();
    for (_, snap) in &snaps {
        assert!(
            restore_errs_or_exact(&repo, snap, h.want(snap), what),
            "{what}: restored with no index at all"
        );
    }
}

/// Adopts leftovers under a shared lock, as `snapshot` does first.
fn adopt_under_lock(repo: &Repository) -> AdoptReport {
    let _lock =
        lock::acquire(repo, LockKind::Shared, "snapshot", Duration::ZERO, &|_| {}).expect("lock");
    adopt_leftover_packs(repo).expect("adopt")
}

/// An index file cut by a power cut: once its packs are indexed again from
/// their trailers, the next run deletes it, and `check` is clean again
/// (without `rebuild-index`). A fault in the reading itself (every index
/// file reads back wrong, the new ones too) deletes nothing.
#[test]
fn a_cut_index_file_goes_once_its_packs_are_adopted() {
    let h = two_day_history();
    let drive = Arc::new(h.mem.snapshot());
    let files = drive.list(FileKind::Index).unwrap();
    assert!(files.len() >= 2, "{files:?}");
    let (cut, _) = &files[files.len() - 1];
    let bytes = drive.raw_get(FileKind::Index, cut).unwrap();
    drive.raw_put(FileKind::Index, cut, &bytes[..bytes.len() / 2]);
    let work = tempfile::tempdir().unwrap();
    let repo =
        Repository::open_with(drive.clone(), &work.path().join("cache"), PASSPHRASE).unwrap();
    assert_eq!(repo.damaged_index_files(), vec![cut.clone()]);

    let report = adopt_under_lock(&repo);
    assert!(report.packs > 0, "{report:?}");
    assert_eq!(report.removed_index_files, vec![cut.short().to_owned()]);
    assert!(drive.raw_get(FileKind::Index, cut).is_none());
    assert!(repo.index_damage().is_empty());
    assert_sound(&repo, false, "after the cut index file went");
    assert_history(&repo, &h, &[], "after the cut index file went");

    // Every index file reads back with a flipped bit: all look damaged,
    // the packs are adopted, and nothing is deleted.
    let work = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyBackend::new(
        h.mem.snapshot(),
        plan(|p| p.flip_on_read = Some(FileKind::Index)),
    ));
    let repo =
        Repository::open_with(faulty.clone(), &work.path().join("cache"), PASSPHRASE).unwrap();
    assert_eq!(repo.damaged_index_files().len(), files.len());
    let report = adopt_under_lock(&repo);
    assert!(report.packs > 0, "{report:?}");
    assert!(report.removed_index_files.is_empty(), "{report:?}");
    for (name, _) in &files {
        assert!(faulty.inner().raw_get(FileKind::Index, name).is_some());
    }
}

/// The key file read damaged: the repository does not open, and the error
/// names the key file when the damage is visible without the passphrase.
fn assert_key_damage_refused(h: &History, faults: FaultPlan, what: &str, must_name: bool) {
    let work = tempfile::tempdir().unwrap();
    let keys = h.mem.list(FileKind::Key).unwrap();
    let name = keys[0].0.as_str().to_owned();
    let e = match open_faulty(h, work.path(), faults, true) {
        Ok(_) => panic!("{what}: opened with a damaged key file"),
        Err(e) => e,
    };
    if must_name {
        assert!(
            e.to_string().contains(&name),
            "{what}: the error does not name key file {name}: {e}"
        );
    } else {
        // A flipped bit inside the wrapped key fails its authentication,
        // which with a single key file looks exactly like a wrong
        // passphrase: AEAD cannot tell the two apart.
        assert!(
            matches!(e, Error::WrongPassphrase) || e.to_string().contains(&name),
            "{what}: {e:?}"
        );
    }
}

#[test]
fn damaged_metadata_reads_give_errors_that_name_the_object() {
    let h = two_day_history();
    for (faults, what) in [
        (
            plan(|p| p.flip_on_read = Some(FileKind::Snapshot)),
            "flipped snapshot reads",
        ),
        (
            plan(|p| p.truncate_on_read = Some(FileKind::Snapshot)),
            "truncated snapshot reads",
        ),
    ] {
        assert_snapshot_damage_named(&h, faults, what);
    }
    for (faults, what) in [
        (
            plan(|p| p.flip_on_read = Some(FileKind::Index)),
            "flipped index reads",
        ),
        (
            plan(|p| p.truncate_on_read = Some(FileKind::Index)),
            "truncated index reads",
        ),
    ] {
        assert_index_damage_named(&h, faults, what);
    }
    assert_key_damage_refused(
        &h,
        plan(|p| p.flip_on_read = Some(FileKind::Key)),
        "flipped key reads",
        false,
    );
    assert_key_damage_refused(
        &h,
        plan(|p| p.truncate_on_read = Some(FileKind::Key)),
        "truncated key reads",
        true,
    );
}

/// Passing read failures: every operation either succeeds or fails with an
/// error that says to try again (`is_transient`), and trying again works.
/// Restore and check go on past a failed read and list it; what they list
/// must say it was passing, not call the data damaged. Every problem is
/// gathered, so one run names them all.
#[test]
fn passing_read_failures_are_reported_as_passing() {
    let mut h = two_day_history();
    h.evolve(2);
    let ctx = "transient_reads 3";
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    copy_dir(&h.cache, &cache);
    let faults = || plan(|p| p.transient_reads = 3);
    let faulty = Arc::new(FaultyBackend::new(h.mem.snapshot(), faults()));
    let problems = Mutex::new(Vec::<String>::new());
    let problem = |m: String| problems.lock().unwrap().push(m);
    // Tries `op` until it succeeds; a failure that does not say it is
    // passing is a problem (retried anyway, to see whether it was).
    let retry = |what: &str, op: &mut dyn FnMut() -> Result<()>| {
        for _ in 0..6 {
            match op() {
                Ok(()) => return,
                Err(e) if e.is_transient() => {}
                Err(e) => problem(format!("{what}: fails with {e:?}, not a passing error")),
            }
        }
        panic!("{what}: still failing after 6 tries");
    };
    let passing = |m: &str| m.contains("temporary failure");

    // Opening: the header, the key, the index files.
    let mut repo = None;
    retry("open", &mut || {
        repo = Some(Repository::open_with(faulty.clone(), &cache, PASSPHRASE)?);
        Ok(())
    });
    let repo = repo.unwrap();

    faulty.set_plan(faults());
    let mut snaps = Vec::new();
    retry("listing", &mut || {
        let (listed, errors) = repo.snapshots()?;
        snaps = listed;
        // A record that could not be read is missing from the list: its
        // error must say it was passing.
        errors.into_iter().next().map_or(Ok(()), Err)
    });
    assert_eq!(snaps.len(), 2);

    for (_, snap) in &snaps {
        let what = format!("{ctx}, restore of day {}", day_of(snap));
        faulty.set_plan(faults());
        let mut restored = None;
        retry(&what, &mut || {
            restored = Some(restore_tree(&repo, snap)?);
            Ok(())
        });
        let (got, summary) = restored.unwrap();
        if summary.errors.is_empty() {
            assert_same(&got, h.want(snap), &what);
        } else {
            for e in summary.errors.iter().filter(|e| !passing(e)) {
                problem(format!("{what}: {e}"));
            }
            faulty.set_plan(FaultPlan::default());
            assert_restores(&repo, snap, h.want(snap), &format!("{what}, again"));
        }
    }

    for read_data in [false, true] {
        let what = format!("{ctx}, check (read_data {read_data})");
        faulty.set_plan(faults());
        let mut report: Option<CheckReport> = None;
        retry(&what, &mut || {
            report = Some(check(
                &repo,
                CheckOptions {
                    read_data,
                    subset: None,
                },
                &NoProgress,
            )?);
            Ok(())
        });
        let report = report.unwrap();
        for e in report.errors.iter().filter(|e| !passing(e)) {
            problem(format!("{what}: {e}"));
        }
        for d in report.damaged_files.iter().filter(|d| !passing(&d.reason)) {
            problem(format!(
                "{what}: a passing read failure reported as damage: {d:?}"
            ));
        }
    }

    faulty.set_plan(faults());
    let mut taken = None;
    retry("snapshot", &mut || {
        taken = Some(take_snapshot(&repo, &opts(&h.src, 2), &NoProgress)?.1);
        Ok(())
    });
    faulty.set_plan(FaultPlan::default());
    let snap = taken.unwrap();
    assert_restores(&repo, &snap, h.want(&snap), &format!("{ctx}, snapshot"));

    faulty.set_plan(faults());
    retry("prune", &mut || run_prune(&repo));
    faulty.set_plan(FaultPlan::default());
    assert_sound(&repo, false, &format!("{ctx}, after prune"));
    let (snaps, errors) = repo.snapshots().unwrap();
    assert!(errors.is_empty());
    assert_eq!(snaps.len(), 3);
    for (_, snap) in &snaps {
        assert_restores(&repo, snap, h.want(snap), &format!("{ctx}, after prune"));
    }
    let problems = problems.into_inner().unwrap();
    assert!(
        problems.is_empty(),
        "{ctx}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------
// 6. Opening with an empty cache reads index files, not packs.

/// A backend counting the reads of each kind, over a [`MemBackend`].
#[derive(Debug)]
struct CountingBackend {
    inner: MemBackend,
    reads: Mutex<HashMap<FileKind, u64>>,
}

impl CountingBackend {
    fn new(inner: MemBackend) -> Self {
        Self {
            inner,
            reads: Mutex::new(HashMap::new()),
        }
    }

    fn count(&self, kind: FileKind) {
        *self.reads.lock().unwrap().entry(kind).or_default() += 1;
    }

    fn reads(&self, kind: FileKind) -> u64 {
        self.reads.lock().unwrap().get(&kind).copied().unwrap_or(0)
    }
}

impl Backend for CountingBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(ObjectName, u64)>> {
        self.inner.list(kind)
    }

    fn size(&self, kind: FileKind, name: &ObjectName) -> Result<Option<u64>> {
        self.inner.size(kind, name)
    }

    fn read(&self, kind: FileKind, name: &ObjectName) -> Result<Option<Vec<u8>>> {
        self.count(kind);
        self.inner.read(kind, name)
    }

    fn read_at(
        &self,
        kind: FileKind,
        name: &ObjectName,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        self.count(kind);
        self.inner.read_at(kind, name, offset, len)
    }

    fn upload(&self, kind: FileKind) -> Result<Box<dyn Upload>> {
        self.inner.upload(kind)
    }

    fn delete(&self, kind: FileKind, name: &ObjectName) -> Result<()> {
        self.inner.delete(kind, name)
    }

    fn remove_leftovers(&self) -> Result<usize> {
        self.inner.remove_leftovers()
    }
}

#[test]
fn opening_with_an_empty_cache_reads_index_files_not_packs() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for i in 0..60 {
        put(
            &src,
            &format!("d{}/f{i:02}.dat", i % 6),
            &pseudo_random(2_000 + i * 311, 1000 + i as u64),
        );
    }
    let mem = Arc::new(MemBackend::new());
    let repo =
        Repository::init_with(mem.clone(), &dir.path().join("cache"), PASSPHRASE, CHEAP).unwrap();
    let (_, snap) = take_snapshot(&repo, &opts(&src, 0), &NoProgress).unwrap();
    drop(repo);
    assert!(!mem.list(FileKind::Pack).unwrap().is_empty());

    let counting = Arc::new(CountingBackend::new(mem.snapshot()));
    let repo = Repository::open_with(
        counting.clone(),
        &dir.path().join("empty-cache"),
        PASSPHRASE,
    )
    .unwrap();
    assert_eq!(
        counting.reads(FileKind::Pack),
        0,
        "opening with an empty cache read packs"
    );
    assert!(
        counting.reads(FileKind::Index) >= 1,
        "opening with an empty cache read no index file"
    );
    // The counter does see pack reads: restoring needs them.
    assert_restores(
        &repo,
        &snap,
        &read_tree(&src),
        "through the counting backend",
    );
    assert!(counting.reads(FileKind::Pack) > 0);
}

// ---------------------------------------------------------------------------
// 7. Forget interrupted at every write.

/// Days 0, 1 and 2 in the repository; the expectation already has days 0
/// and 1 forgotten (the drive still holds them), whose ids are returned.
fn forgettable_history() -> (History, Vec<SnapshotId>) {
    let mut h = History::new();
    let day0 = h.snapshot(0);
    h.evolve(1);
    let day1 = h.snapshot(1);
    h.evolve(2);
    h.snapshot(2);
    h.snaps.remove(&day0);
    h.snaps.remove(&day1);
    (h, vec![day0, day1])
}

/// What forget does in the library: each record deleted, in turn.
fn run_forget(repo: &Repository, ids: &[SnapshotId]) -> Result<()> {
    let present = repo.list_snapshots()?;
    for id in ids.iter().filter(|id| present.contains(id)) {
        repo.delete_snapshot(id)?;
    }
    Ok(())
}

/// Crashes forget at write `n` of `w`, reboots: the kept snapshot is
/// whole, a forgotten one is gone or whole, the next forget and a prune
/// finish the job.
fn forget_crash_case(h: &History, ids: &[SnapshotId], n: u64, w: u64, same_cache: bool) {
    let ctx = format!(
        "forget crash at write {n} of {w}, {}",
        cache_name(same_cache)
    );
    let work = tempfile::tempdir().unwrap();
    let (faulty, repo, cache) = h.start(work.path());
    faulty.set_plan(plan(|p| p.crash_at = Some(n)));
    match run_forget(&repo, ids) {
        Ok(()) if n <= w => panic!("{ctx}: forget succeeded though the drive was gone"),
        Err(e) if n > w => panic!("{ctx}: forget failed before the crash: {e}"),
        _ => {}
    }
    drop(repo);
    let cache = if same_cache {
        cache
    } else {
        work.path().join("fresh-cache")
    };
    let (drive, repo) = reboot(&faulty, &cache);
    assert_history(&repo, h, &[0, 1], &ctx);
    assert_sound(&repo, true, &ctx);
    run_forget(&repo, ids).unwrap_or_else(|e| panic!("{ctx}: the next forget fails: {e}"));
    run_prune(&repo).unwrap_or_else(|e| panic!("{ctx}: prune fails: {e}"));
    let ctx = format!("{ctx}, after the next forget and a prune");
    assert_history(&repo, h, &[], &ctx);
    assert_sound(&repo, false, &ctx);
    drop(repo);
    let elsewhere =
        Repository::open_with(drive.clone(), &work.path().join("elsewhere"), PASSPHRASE)
            .unwrap_or_else(|e| panic!("{ctx}: does not open with no cache: {e}"));
    let ctx = format!("{ctx}, opened with no cache");
    assert_history(&elsewhere, h, &[], &ctx);
    assert_sound(&elsewhere, false, &ctx);
}

#[test]
fn forget_interrupted_at_every_write_keeps_the_kept_snapshot() {
    let (h, ids) = forgettable_history();
    let w = {
        let work = tempfile::tempdir().unwrap();
        let (faulty, repo, _) = h.start(work.path());
        faulty.set_plan(FaultPlan::default());
        run_forget(&repo, &ids).unwrap();
        faulty.writes()
    };
    eprintln!("forgetting two snapshots makes W = {w} mutating operations");
    assert!(w >= 2, "one delete per forgotten snapshot");
    run_with_both_caches(1..=w + 1, &|n| format!("crash_at {n}/{w}"), &|n, same| {
        forget_crash_case(&h, &ids, n, w, same)
    });
}

// ---------------------------------------------------------------------------
// 8. Rebuild-index interrupted at every write.

/// Three days kept: several index files for rebuild-index to replace.
fn three_day_history() -> History {
    let mut h = History::new();
    h.snapshot(0);
    h.evolve(1);
    h.snapshot(1);
    h.evolve(2);
    h.snapshot(2);
    h
}

/// Crashes rebuild-index at write `n` of `w`, reboots: every snapshot
/// restores, check passes (leftover index files allowed), and the next
/// rebuild-index finishes.
fn rebuild_crash_case(h: &History, n: u64, w: u64, same_cache: bool) {
    let ctx = format!(
        "rebuild-index crash at write {n} of {w}, {}",
        cache_name(same_cache)
    );
    let work = tempfile::tempdir().unwrap();
    let (faulty, repo, cache) = h.start(work.path());
    faulty.set_plan(plan(|p| p.crash_at = Some(n)));
    match rebuild_index(&repo, &NoProgress) {
        Ok(_) if n <= w => panic!("{ctx}: rebuild-index succeeded though the drive was gone"),
        Err(e) if n > w => panic!("{ctx}: rebuild-index failed before the crash: {e}"),
        _ => {}
    }
    drop(repo);
    let cache = if same_cache {
        cache
    } else {
        work.path().join("fresh-cache")
    };
    let (drive, repo) = reboot(&faulty, &cache);
    assert_history(&repo, h, &[], &ctx);
    assert_sound(&repo, true, &ctx);
    rebuild_index(&repo, &NoProgress)
        .unwrap_or_else(|e| panic!("{ctx}: the next rebuild-index fails: {e}"));
    let ctx = format!("{ctx}, after the next rebuild-index");
    assert_history(&repo, h, &[], &ctx);
    assert_sound(&repo, false, &ctx);
    let (_, snap) = take_snapshot(&repo, &opts(&h.src, 2), &NoProgress)
        .unwrap_or_else(|e| panic!("{ctx}: the next snapshot fails: {e}"));
    assert_restores(&repo, &snap, h.want(&snap), &ctx);
    drop(repo);
    let elsewhere =
        Repository::open_with(drive.clone(), &work.path().join("elsewhere"), PASSPHRASE)
            .unwrap_or_else(|e| panic!("{ctx}: does not open with no cache: {e}"));
    let ctx = format!("{ctx}, opened with no cache");
    assert_history(&elsewhere, h, &[2], &ctx);
    assert_sound(&elsewhere, false, &ctx);
}

#[test]
fn rebuild_index_interrupted_at_every_write_loses_nothing() {
    let h = three_day_history();
    let w = {
        let work = tempfile::tempdir().unwrap();
        let (faulty, repo, _) = h.start(work.path());
        faulty.set_plan(FaultPlan::default());
        let report = rebuild_index(&repo, &NoProgress).unwrap();
        assert!(
            report.index_files_removed >= 2,
            "rebuild-index must replace several files: {report:?}"
        );
        faulty.writes()
    };
    eprintln!("rebuild-index makes W = {w} mutating operations");
    run_with_both_caches(1..=w + 1, &|n| format!("crash_at {n}/{w}"), &|n, same| {
        rebuild_crash_case(&h, n, w, same)
    });
}

// ---------------------------------------------------------------------------
// 9. A torn write: the last write cut short by a power cut.

/// Writes the day-1 snapshot with write `n` of `w` torn after `keep`
/// bytes, reboots with a fresh cache: the earlier snapshot restores
/// bit-exact, the damage is detected (never wrong bytes), and after
/// `rebuild-index` the next snapshot works.
fn torn_case(h: &History, n: u64, w: u64, keep: u64) -> String {
    let ctx = format!("write {n} of {w} torn after {keep} bytes");
    let work = tempfile::tempdir().unwrap();
    let (faulty, repo, _) = h.start(work.path());
    faulty.set_plan(plan(|p| p.torn_write_at = Some((n, keep))));
    if take_snapshot(&repo, &opts(&h.src, 1), &NoProgress).is_ok() {
        panic!("{ctx}: the snapshot succeeded though the drive was gone");
    }
    drop(repo);
    let (drive, repo) = reboot(&faulty, &work.path().join("fresh-cache"));
    let (snaps, unreadable) = repo
        .snapshots()
        .unwrap_or_else(|e| panic!("{ctx}: snapshots cannot be listed: {e}"));
    for (id, day) in &h.snaps {
        let snap = snaps
            .iter()
            .find(|(i, _)| i == id)
            .unwrap_or_else(|| panic!("{ctx}: the snapshot of day {day} is gone"));
        assert_restores(&repo, &snap.1, h.want(&snap.1), &ctx);
    }
    let report = check(
        &repo,
        CheckOptions {
            read_data: true,
            subset: None,
        },
        &NoProgress,
    )
    .unwrap_or_else(|e| panic!("{ctx}: check fails to run: {e}"));
    let outcome = if report.is_ok() && unreadable.is_empty() {
        "survived"
    } else {
        "detected"
    };
    // The torn object is what the interrupted run was writing: a pack
    // (left out of every index), an index file (the blobs it listed are
    // written again), or the new snapshot's record (reported unreadable
    // until removed).
    for err in &unreadable {
        eprintln!("{ctx}: unreadable record: {err}");
    }
    let readable: BTreeSet<SnapshotId> = snaps.iter().map(|(id, _)| *id).collect();
    for id in repo.list_snapshots().unwrap() {
        if !readable.contains(&id) {
            drive
                .delete(FileKind::Snapshot, &ObjectName::snapshot(&id))
                .unwrap();
        }
    }
    rebuild_index(&repo, &NoProgress).unwrap_or_else(|e| panic!("{ctx}: rebuild-index: {e}"));
    let (_, snap) = take_snapshot(&repo, &opts(&h.src, 1), &NoProgress)
        .unwrap_or_else(|e| panic!("{ctx}: the next snapshot fails: {e}"));
    assert_restores(
        &repo,
        &snap,
        h.want(&snap),
        &format!("{ctx}, next snapshot"),
    );
    assert_history(&repo, h, &[1], &ctx);
    outcome.to_owned()
}

#[test]
fn torn_write_is_detected_and_loses_nothing() {
    let h = day0_history();
    let (w, _) = measure_day1(&h);
    let seed = std::env::var("COFFRE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(17);
    let outcomes = Mutex::new(BTreeMap::<String, u64>::new());
    let mut cases: Vec<(String, Box<dyn FnOnce()>)> = Vec::new();
    for n in 1..=w {
        // A cut anywhere in the object: bytes of it pseudo-random.
        let r = pseudo_random(8, seed ^ n);
        let keep = u64::from_le_bytes(r[..8].try_into().unwrap()) % 600_000;
        let (h, outcomes) = (&h, &outcomes);
        cases.push((
            format!("torn {n}/{w} at {keep}"),
            Box::new(move || {
                let o = torn_case(h, n, w, keep);
                *outcomes.lock().unwrap().entry(o).or_default() += 1;
            }),
        ));
    }
    run_cases(cases);
    eprintln!(
        "torn-summary: writes={w} seed={seed} {:?}",
        outcomes.lock().unwrap()
    );
}
