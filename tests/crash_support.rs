//! Shared by `crash.rs` and `unplug.rs`: a small repository with a few days
//! of snapshots, copied afresh for each trial, and the checks that prove a
//! trial lost nothing (every snapshot that must be there is listed and
//! restores bit-exact to its day's source).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coffre_tests::{
    capture, describe, diff_trees, json_string_fields, run, sample_day, sample_init, Coffre, Rng,
    TreeImage,
};

/// 2026-09-01 20:00 in Paris, the first simulated evening: day `d` of the
/// history is taken at this plus `d` days, so its time names its day.
pub const FIRST_EVENING: i64 = 1_788_285_600;
const DAY: i64 = 86_400;

/// The passphrase of copy's target drive.
pub const MARDI_PASSWORD: &str = "mardi: another passphrase";

/// Days of history in the base repository (snapshots 0..DAYS-1).
pub const DAYS: u32 = 3;

/// A folder holding a template (`tpl/`: `repo/`, its cache `repo.cache/`
/// and whatever the scenario adds) copied for each trial, the source
/// (`src/`, now at day [`DAYS`]) and each day's image.
pub struct Base {
    pub tmp: tempfile::TempDir,
    pub src: PathBuf,
    /// Each day's source, by day.
    pub images: BTreeMap<u32, TreeImage>,
    /// Snapshot time (as `snapshots --json` prints it) to day.
    pub days_by_time: BTreeMap<String, u32>,
    /// Snapshot ids of the base days, by day.
    pub ids: BTreeMap<u32, String>,
}

/// `len` incompressible bytes, different for each seed.
pub fn random_file(path: &Path, seed: u64, len: usize) {
    let mut rng = Rng::derive(seed, "crash file", &[]);
    std::fs::create_dir_all(path.parent().expect("a file has a folder")).unwrap();
    std::fs::write(path, rng.bytes(len)).unwrap();
}

/// Moves the source to `day`: the sample's own changes, a new scan of
/// incompressible data, and the scan of two days ago removed (so that a
/// forgotten day frees space and prune has packs to drop or repack).
pub fn evolve(src: &Path, day: u32) {
    if day == 0 {
        sample_init(src, 4);
    } else {
        sample_day(src, day);
    }
    random_file(
        &src.join(format!("scans/day{day}.raw")),
        u64::from(day),
        512 << 10,
    );
    if day >= 2 {
        let _ = std::fs::remove_file(src.join(format!("scans/day{}.raw", day - 2)));
    }
}

impl Base {
    /// The template repository at `tpl/repo` with days 0..DAYS-1, the
    /// source left at day DAYS.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let src = tmp.path().join("src");
        let coffre = Coffre::new(tmp.path().join("tpl/repo"));
        coffre.init();
        let mut images = BTreeMap::new();
        let mut ids = BTreeMap::new();
        for day in 0..DAYS {
            evolve(&src, day);
            images.insert(day, capture(&src));
            let out = coffre.ok_at(
                time_of(day),
                [OsStr::new("--json"), "snapshot".as_ref(), src.as_os_str()],
            );
            let id = coffre_tests::json_string_field(&out, "id").expect("a snapshot id");
            ids.insert(day, id);
        }
        evolve(&src, DAYS);
        images.insert(DAYS, capture(&src));
        let mut base = Base {
            tmp,
            src,
            images,
            days_by_time: BTreeMap::new(),
            ids,
        };
        for (_, time) in listing(&coffre, None).expect("the base lists its snapshots") {
            let day = base.days_by_time.len() as u32;
            base.days_by_time.insert(time, day);
        }
        base
    }

    /// The template folder.
    pub fn tpl(&self) -> PathBuf {
        self.tmp.path().join("tpl")
    }

    /// The template's repository.
    pub fn tpl_repo(&self) -> Coffre {
        Coffre::new(self.tpl().join("repo"))
    }

    /// A fresh copy of the template in `trials/<n>` (removed first).
    pub fn trial(&self, n: u64) -> PathBuf {
        let dir = self.tmp.path().join("trials").join(n.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        let out = run(Command::new("cp").arg("-a").arg(self.tpl()).arg(&dir));
        assert!(
            out.status.success(),
            "copy the template: {}",
            describe(&out)
        );
        dir
    }

    /// Learns the time of the day-`day` snapshot from a repository that
    /// holds it (a run not killed).
    pub fn learn_time(&mut self, coffre: &Coffre, password: Option<&str>, day: u32) {
        for (_, time) in listing(coffre, password).expect("list snapshots") {
            self.days_by_time.entry(time).or_insert(day);
        }
    }
}

/// The simulated time of day `day`.
pub fn time_of(day: u32) -> i64 {
    FIRST_EVENING + i64::from(day) * DAY
}

/// `coffre` on `coffre`'s repository, with another passphrase if given.
pub fn cmd(coffre: &Coffre, password: Option<&str>, args: &[&OsStr]) -> Command {
    let mut c = coffre.cmd(args);
    if let Some(p) = password {
        c.env("COFFRE_PASSWORD", p);
    }
    c
}

/// Every snapshot as (id, time), oldest first; the error text if listing
/// fails.
pub fn listing(coffre: &Coffre, password: Option<&str>) -> Result<Vec<(String, String)>, String> {
    let out = run(&mut cmd(
        coffre,
        password,
        &["--json".as_ref(), "snapshots".as_ref()],
    ));
    if !out.status.success() {
        return Err(describe(&out));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let ids = json_string_fields(&text, "id");
    let times = json_string_fields(&text, "time");
    assert_eq!(ids.len(), times.len(), "one time per snapshot: {text}");
    Ok(ids.into_iter().zip(times).collect())
}

/// What a check of the snapshots found.
#[derive(Debug, PartialEq, Eq)]
pub enum Restores {
    /// Every listed snapshot restored bit-exact (or had already) and every
    /// required day is there; the days listed.
    Exact(Vec<u32>),
    /// A command failed with an error (nothing wrong was returned).
    Error(String),
    /// A snapshot that must be there is missing, one is unknown, or one
    /// restored to other bytes than its day's source.
    Lost(String),
}

/// Lists the snapshots of `coffre`, requires every day of `must` and
/// nothing but days of `must` or `may` (once each, or twice for the days
/// of `twice`: a run that finished just before its kill, then its rerun),
/// and restores each but those of `verified` (into `scratch`, removed
/// afterwards) comparing it with its day's source.
#[allow(clippy::too_many_arguments)]
pub fn check_restores(
    base: &Base,
    coffre: &Coffre,
    password: Option<&str>,
    must: &[u32],
    may: &[u32],
    twice: &[u32],
    verified: &[u32],
    scratch: &Path,
) -> Restores {
    let list = match listing(coffre, password) {
        Ok(l) => l,
        Err(e) => return Restores::Error(format!("snapshots: {e}")),
    };
    let mut seen = Vec::new();
    for (id, time) in &list {
        let Some(&day) = base.days_by_time.get(time) else {
            return Restores::Lost(format!("a snapshot of unknown time {time} ({id})"));
        };
        if !must.contains(&day) && !may.contains(&day) {
            return Restores::Lost(format!("the snapshot of day {day} should be gone"));
        }
        let times = seen.iter().filter(|d| **d == day).count();
        if times > usize::from(twice.contains(&day)) {
            return Restores::Lost(format!("the snapshot of day {day} is there twice"));
        }
        seen.push(day);
        if verified.contains(&day) && !twice.contains(&day) {
            continue;
        }
        let target = scratch.join(format!("restore-{day}"));
        let _ = std::fs::remove_dir_all(&target);
        let out = run(&mut cmd(
            coffre,
            password,
            &["restore".as_ref(), id[..12].as_ref(), target.as_os_str()],
        ));
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&target);
            return Restores::Error(format!("restore of day {day}: {}", describe(&out)));
        }
        let diffs = diff_trees(&base.images[&day], &capture(&target));
        let _ = std::fs::remove_dir_all(&target);
        if !diffs.is_empty() {
            return Restores::Lost(format!(
                "day {day} does not restore bit-exact: {:?}",
                &diffs[..diffs.len().min(5)]
            ));
        }
    }
    for day in must {
        if !seen.contains(day) {
            return Restores::Lost(format!("the snapshot of day {day} is gone"));
        }
    }
    Restores::Exact(seen)
}

/// `coffre check` on a repository: Ok, or the failure's description.
pub fn check(coffre: &Coffre, password: Option<&str>) -> Result<(), String> {
    let out = run(&mut cmd(coffre, password, &["check".as_ref()]));
    if out.status.success() {
        Ok(())
    } else {
        Err(describe(&out))
    }
}

/// The seed of this run: `COFFRE_CRASH_SEED`, else one from the clock
/// (printed with every summary and failure, to replay it).
pub fn seed() -> u64 {
    match std::env::var("COFFRE_CRASH_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("COFFRE_CRASH_SEED={s} is not a number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000_007)
            .unwrap_or(1),
    }
}

/// Trials per command: `COFFRE_CRASH_TRIALS`, else `default`.
pub fn trials(default: u64) -> u64 {
    match std::env::var("COFFRE_CRASH_TRIALS") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("COFFRE_CRASH_TRIALS={s} is not a number")),
        Err(_) => default,
    }
}

/// Starts `cmd` (output discarded), waits `after`, and kills it with
/// SIGKILL if it still runs. Returns whether the kill landed while it ran,
/// and its exit status when it had finished by itself.
pub fn run_and_kill(
    cmd: &mut Command,
    after: Duration,
) -> (bool, Option<std::process::ExitStatus>) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start coffre");
    let deadline = Instant::now() + after;
    // Sleep in short steps so a run that ends early is seen as such.
    loop {
        if let Some(status) = child.try_wait().expect("poll coffre") {
            return (false, Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
    }
    // SAFETY: kill on our own child's pid, not yet reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let status = child.wait().expect("reap coffre");
    // It may have finished between the last poll and the signal.
    let by_signal = std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGKILL);
    if by_signal {
        (true, None)
    } else {
        (false, Some(status))
    }
}

/// How long `cmd` takes to run to completion; panics if it fails.
pub fn timed_ok(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = run(cmd);
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "the unkilled run fails: {}",
        describe(&out)
    );
    took
}
