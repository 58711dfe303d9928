//! Crash anywhere: `snapshot`, `prune`, `copy`, `forget` and
//! `rebuild-index` of the real binary killed with SIGKILL at random
//! instants of a run.
//!
//! Each command gets a small repository with three days of history (about
//! 6 MiB of sample data plus a new incompressible scan each day), copied
//! afresh for each trial. An unkilled run is timed first; each trial then
//! kills the command at an instant drawn uniformly over 110 % of that
//! time (seeded: `COFFRE_CRASH_SEED`, printed with the summary), so most
//! kills land mid-run and some after it finished. After each kill:
//!
//! - every snapshot that must be there is listed and restores bit-exact to
//!   its day's source, and any other one listed is one the command was
//!   making or removing, also whole;
//! - `coffre check` passes, at the latest after the next command ran (a
//!   tidy-up by the next run is allowed);
//! - the next command (the same one, run to completion) succeeds, and the
//!   repository then holds exactly what it should.
//!
//! `COFFRE_CRASH_TRIALS` sets the trials per command (20 by default). Each
//! test prints one `crash-summary:` line that `bench/reliability/crash-campaign`
//! collects.

#[path = "crash_support.rs"]
mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use coffre_tests::{describe, run, Coffre, Rng};
use support::{
    check, check_restores, cmd, run_and_kill, seed, time_of, timed_ok, trials, Base, Restores,
    DAYS, MARDI_PASSWORD,
};

/// A repository a scenario checks after each kill.
struct Target {
    /// Its folder in the trial folder.
    rel: &'static str,
    /// Its passphrase when not the test one.
    password: Option<&'static str>,
    /// Days that must be there after the kill.
    must: Vec<u32>,
    /// Days that may be there after the kill (what the command was making
    /// or removing).
    may: Vec<u32>,
    /// Exactly the days there after the next command.
    after_next: Vec<u32>,
    /// Days that may be there twice after the next command (a snapshot
    /// that completed just before its kill, and its rerun).
    twice: Vec<u32>,
}

/// A command to kill and how to judge what it leaves.
struct Scenario {
    name: &'static str,
    /// The killed command, for a trial folder.
    command: Box<dyn Fn(&Path) -> Command>,
    targets: Vec<Target>,
}

/// Counts of a campaign.
#[derive(Default, Debug)]
struct Tally {
    trials: u64,
    /// Kills that landed while the command ran.
    mid_run: u64,
    /// The command had finished before the kill.
    after_completion: u64,
    /// Right after the kill, `check` passed and everything restored.
    survived: u64,
    /// `check` only passed after the next command (a tidy-up).
    tidied: u64,
    /// A command after the kill failed with a clear error, and the next run
    /// put everything right.
    detected: u64,
    /// A snapshot missing or restored wrong, or no recovery.
    lost: u64,
}

/// What one trial ended as.
enum Outcome {
    Survived,
    Tidied,
    Detected,
}

/// Runs the checks of one trial folder after a kill.
fn judge(base: &Base, s: &Scenario, dir: &Path) -> Result<Outcome, String> {
    let scratch = dir.join("scratch");
    let mut check_ok = true;
    let mut restore_error = false;
    // Days restored bit-exact after the kill, per target: not restored again.
    let mut verified = Vec::new();
    for t in &s.targets {
        let coffre = Coffre::new(dir.join(t.rel));
        match check_restores(
            base,
            &coffre,
            t.password,
            &t.must,
            &t.may,
            &[],
            &[],
            &scratch,
        ) {
            Restores::Exact(days) => verified.push(days),
            Restores::Error(e) => {
                verified.push(Vec::new());
                eprintln!("[{}] after the kill, on {}: {e}", s.name, t.rel);
                restore_error = true;
            }
            Restores::Lost(e) => return Err(format!("after the kill, on {}: {e}", t.rel)),
        }
        check_ok &= check(&coffre, t.password).is_ok();
    }
    let out = run(&mut (s.command)(dir));
    if !out.status.success() {
        return Err(format!("the next {} fails: {}", s.name, describe(&out)));
    }
    for (t, verified) in s.targets.iter().zip(&verified) {
        let coffre = Coffre::new(dir.join(t.rel));
        if let Err(e) = check(&coffre, t.password) {
            return Err(format!("check of {} after the next run: {e}", t.rel));
        }
        match check_restores(
            base,
            &coffre,
            t.password,
            &t.after_next,
            &[],
            &t.twice,
            verified,
            &scratch,
        ) {
            Restores::Exact(_) => {}
            Restores::Error(e) | Restores::Lost(e) => {
                return Err(format!("after the next run, on {}: {e}", t.rel))
            }
        }
    }
    Ok(if restore_error {
        Outcome::Detected
    } else if check_ok {
        Outcome::Survived
    } else {
        Outcome::Tidied
    })
}

/// Times an unkilled run, then kills the command at `trials` random
/// instants, judging each; prints the summary and fails on any loss.
fn campaign(base: &Base, s: &Scenario, default_trials: u64) {
    let seed = seed();
    let n = trials(default_trials);
    let measure = base.trial(u64::MAX);
    let took = timed_ok(&mut (s.command)(&measure));
    let _ = std::fs::remove_dir_all(&measure);
    let span = took.mul_f64(1.1);
    let mut rng = Rng::derive(seed, s.name, &[]);
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for trial in 0..n {
        let dir = base.trial(trial);
        let at = span.mul_f64(rng.unit());
        let (mid_run, finished) = run_and_kill(&mut (s.command)(&dir), at);
        tally.trials += 1;
        if mid_run {
            tally.mid_run += 1;
        } else {
            tally.after_completion += 1;
        }
        let result = match finished {
            Some(status) if !status.success() => {
                Err(format!("the unkilled run exited with {status}"))
            }
            _ => judge(base, s, &dir),
        };
        match result {
            Ok(Outcome::Survived) => tally.survived += 1,
            Ok(Outcome::Tidied) => tally.tidied += 1,
            Ok(Outcome::Detected) => tally.detected += 1,
            Err(e) => {
                tally.lost += 1;
                failures.push(format!(
                    "trial {trial}, killed at {} ms ({}): {e}",
                    at.as_millis(),
                    if mid_run { "mid-run" } else { "after it ended" }
                ));
                // Keep the folders of the first few for a post-mortem.
                if failures.len() <= 3 {
                    let keep = std::env::temp_dir()
                        .join(format!("coffre-crash-{}-{seed}-{trial}", s.name));
                    let _ = std::fs::rename(&dir, &keep);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "crash-summary: command={} trials={} mid_run={} after_completion={} survived={} tidied={} detected={} lost={} run_ms={} seed={seed}",
        s.name,
        tally.trials,
        tally.mid_run,
        tally.after_completion,
        tally.survived,
        tally.tidied,
        tally.detected,
        tally.lost,
        took.as_millis()
    );
    if !failures.is_empty() {
        panic!(
            "{}: {} of {} trials lost something (replay with COFFRE_CRASH_SEED={seed}; the first folders kept as {}):\n{}",
            s.name,
            failures.len(),
            n,
            std::env::temp_dir().join(format!("coffre-crash-{}-{seed}-*", s.name)).display(),
            failures.join("\n")
        );
    }
    assert!(
        tally.mid_run > 0 || n < 5,
        "{}: no kill landed mid-run in {n} trials",
        s.name
    );
}

fn days(range: std::ops::Range<u32>) -> Vec<u32> {
    range.collect()
}

/// The command `args` on the trial's `repo`, at the simulated evening of
/// day `DAYS`.
fn on_repo(args: &'static [&'static str]) -> Box<dyn Fn(&Path) -> Command> {
    Box::new(move |dir: &Path| {
        Coffre::new(dir.join("repo")).cmd_at(time_of(DAYS), args.iter().map(OsStr::new))
    })
}

fn repo_target(must: Vec<u32>, may: Vec<u32>, after_next: Vec<u32>) -> Target {
    Target {
        rel: "repo",
        password: None,
        must,
        may,
        after_next,
        twice: Vec::new(),
    }
}

const CI_TRIALS: u64 = 20;

#[test]
fn snapshot_killed_anywhere() {
    let mut base = Base::new();
    let src = base.src.clone();
    let s = Scenario {
        name: "snapshot",
        command: Box::new(move |dir: &Path| {
            Coffre::new(dir.join("repo"))
                .cmd_at(time_of(DAYS), [OsStr::new("snapshot"), src.as_os_str()])
        }),
        targets: vec![Target {
            twice: vec![DAYS],
            ..repo_target(days(0..DAYS), vec![DAYS], days(0..DAYS + 1))
        }],
    };
    // The time of the new snapshot, to recognise it.
    let learn = base.trial(u64::MAX - 1);
    timed_ok(&mut (s.command)(&learn));
    base.learn_time(&Coffre::new(learn.join("repo")), None, DAYS);
    let _ = std::fs::remove_dir_all(&learn);
    campaign(&base, &s, CI_TRIALS);
}

#[test]
fn prune_killed_anywhere() {
    let base = Base::new();
    // Day 1 forgotten: its scan is in days 1 and 2, but the sample's own
    // changes of day 1 are in no other snapshot, so prune has data to drop.
    let tpl = base.tpl_repo();
    tpl.ok([OsStr::new("forget"), base.ids[&1][..12].as_ref()]);
    let plan = tpl.ok(["--json", "prune", "--dry-run", "--max-unused", "0%"]);
    assert!(
        coffre_tests::json_u64(&plan, "bytes_freed") > 0,
        "prune must have work: {plan}"
    );
    let s = Scenario {
        name: "prune",
        command: on_repo(&["prune", "--max-unused", "0%"]),
        targets: vec![repo_target(vec![0, 2], vec![], vec![0, 2])],
    };
    campaign(&base, &s, CI_TRIALS);
}

#[test]
fn forget_killed_anywhere() {
    let base = Base::new();
    let s = Scenario {
        name: "forget",
        command: on_repo(&["forget", "--keep-last", "1"]),
        targets: vec![repo_target(vec![2], vec![0, 1], vec![2])],
    };
    campaign(&base, &s, CI_TRIALS);
}

#[test]
fn rebuild_index_killed_anywhere() {
    let base = Base::new();
    let s = Scenario {
        name: "rebuild-index",
        command: on_repo(&["rebuild-index"]),
        targets: vec![repo_target(days(0..DAYS), vec![], days(0..DAYS))],
    };
    campaign(&base, &s, CI_TRIALS);
}

#[test]
fn copy_killed_anywhere() {
    let base = Base::new();
    // The target exists, holding day 0 (a copy killed while creating the
    // target leaves a folder to remove by hand, as `init` does).
    let tpl = base.tpl_repo();
    let mardi = base.tpl().join("mardi");
    let out = run(tpl
        .cmd([
            OsStr::new("copy"),
            "--to".as_ref(),
            mardi.as_os_str(),
            base.ids[&0][..12].as_ref(),
        ])
        .env("COFFRE_TO_PASSWORD", MARDI_PASSWORD));
    assert!(out.status.success(), "{}", describe(&out));
    let s = Scenario {
        name: "copy",
        command: Box::new(|dir: &Path| {
            let mut c = cmd(
                &Coffre::new(dir.join("repo")),
                None,
                &[
                    "copy".as_ref(),
                    "--to".as_ref(),
                    dir.join("mardi").as_os_str(),
                ],
            );
            c.env("COFFRE_TO_PASSWORD", MARDI_PASSWORD);
            c
        }),
        targets: vec![
            repo_target(days(0..DAYS), vec![], days(0..DAYS)),
            Target {
                rel: "mardi",
                password: Some(MARDI_PASSWORD),
                must: vec![0],
                may: days(1..DAYS),
                after_next: days(0..DAYS),
                twice: Vec::new(),
            },
        ],
    };
    campaign(&base, &s, CI_TRIALS);
}

/// The instants are spread over the whole run: a run this short would
/// make every kill land in start-up.
#[test]
fn kill_instants_cover_the_run() {
    let (mid, _) = run_and_kill(Command::new("sleep").arg("5"), Duration::from_millis(50));
    assert!(mid, "a kill of a running process is counted mid-run");
    let (mid, status) = run_and_kill(&mut Command::new("true"), Duration::from_millis(500));
    assert!(!mid && status.is_some_and(|s| s.success()));
}
