//! Retention and prune through the real binary: 30 simulated days kept by
//! policy, prune killed at each of its phases, and locks between commands.

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use coffre_tests::{
    assert_same_tree, capture, json_string_fields, json_u64, run, sample_day, Coffre, Fixture,
    TreeImage,
};

/// 2026-09-01 20:00 in Paris (UTC+2), the first simulated evening.
const FIRST_EVENING: i64 = 1_788_285_600;

fn at_day(coffre: &Coffre, day: i64, args: &[&OsStr]) -> std::process::Command {
    coffre.cmd_at(FIRST_EVENING + day * 86_400, args)
}

fn du(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() { du(&e.path()) } else { m.len() };
    }
    total
}

fn snapshot_ids(coffre: &Coffre) -> Vec<String> {
    json_string_fields(&coffre.ok(["--json", "snapshots"]), "id")
}

/// 30 evenings (2026-09-01..30), then `forget --keep-daily 7 --keep-weekly 4
/// --prune`: the 7 last days (09-24..30) and the newest of the last 4 ISO
/// weeks (Sundays 09-13, 09-20, 09-27 and Wednesday 09-30) remain, each
/// restores bit-exact, `check --read-data` passes, the repository shrank.
#[test]
fn thirty_days_forget_and_prune() {
    let Fixture { tmp, src, coffre } = Fixture::new(4);
    let mut days: Vec<(String, TreeImage)> = Vec::new();
    for day in 0..30 {
        if day > 0 {
            sample_day(&src, day as u32);
        }
        let image = capture(&src);
        let out = coffre_tests::run_ok(&mut at_day(
            &coffre,
            day,
            &["--json".as_ref(), "snapshot".as_ref(), src.as_os_str()],
        ));
        let id =
            coffre_tests::json_string_field(&String::from_utf8_lossy(&out.stdout), "id").unwrap();
        days.push((id, image));
    }
    let before = du(&coffre.repo);
    let dry = String::from_utf8_lossy(
        &coffre_tests::run_ok(&mut at_day(
            &coffre,
            29,
            &[
                "--json".as_ref(),
                "forget".as_ref(),
                "--keep-daily".as_ref(),
                "7".as_ref(),
                "--keep-weekly".as_ref(),
                "4".as_ref(),
                "--dry-run".as_ref(),
            ],
        ))
        .stdout,
    )
    .into_owned();
    assert_eq!(
        snapshot_ids(&coffre).len(),
        30,
        "dry run changed something: {dry}"
    );

    coffre_tests::run_ok(&mut at_day(
        &coffre,
        29,
        &[
            "forget".as_ref(),
            "--keep-daily".as_ref(),
            "7".as_ref(),
            "--keep-weekly".as_ref(),
            "4".as_ref(),
            "--prune".as_ref(),
        ],
    ));
    // Day k is 2026-09-(k+1); ISO weeks start on Mondays 09-07, 09-14, 09-21, 09-28.
    let kept_days = [12usize, 19, 23, 24, 25, 26, 27, 28, 29];
    let mut remaining = snapshot_ids(&coffre);
    remaining.sort();
    let mut expected: Vec<String> = kept_days.iter().map(|&d| days[d].0.clone()).collect();
    expected.sort();
    assert_eq!(remaining, expected);
    // The default --max-unused 5% leaves at most 5 % of the repository unused.
    let after = du(&coffre.repo);
    assert!(
        after < before,
        "repository did not shrink: {before} -> {after}"
    );
    let plan = coffre.ok(["--json", "prune", "--dry-run"]);
    let unused_left = json_u64(&plan, "bytes_unused_left");
    assert!(
        unused_left * 20 <= after,
        "{unused_left} unused bytes left in {after}: {plan}"
    );
    // With 0%, nothing unused remains: the repository holds exactly what the
    // kept snapshots need.
    coffre.ok(["prune", "--max-unused", "0%"]);
    let tight = du(&coffre.repo);
    let plan = coffre.ok(["--json", "prune", "--dry-run", "--max-unused", "0%"]);
    assert_eq!(json_u64(&plan, "bytes_freed"), 0, "{plan}");
    assert!(tight <= after);
    eprintln!(
        "30 days, keep-daily 7 + keep-weekly 4: {before} -> {after} (5%) -> {tight} (0%) bytes"
    );
    coffre.ok(["check", "--read-data"]);
    for &d in &kept_days {
        let t = tmp.path().join(format!("r{d}"));
        coffre.ok([
            OsStr::new("restore"),
            days[d].0[..12].as_ref(),
            t.as_os_str(),
        ]);
        assert_same_tree(&days[d].1, &capture(&t));
        std::fs::remove_dir_all(&t).unwrap();
    }
}

/// Prune killed (abort, like kill -9) at each of its phases: every kept
/// snapshot still restores bit-exact and `check` passes after each crash;
/// the next prune finishes the job and leaves no leftover.
#[test]
fn prune_killed_at_each_phase_loses_nothing() {
    let Fixture { tmp, src, coffre } = Fixture::new(4);
    let mut days: Vec<(String, TreeImage)> = Vec::new();
    for day in 0..6 {
        if day > 0 {
            sample_day(&src, day as u32);
        }
        days.push((coffre.snapshot(&src), capture(&src)));
    }
    let phases = ["marked", "repacked", "indexed", "deleting"];
    for (i, phase) in phases.iter().enumerate() {
        // Forget one more snapshot each round, so there is always work.
        coffre.ok([OsStr::new("forget"), days[i].0[..12].as_ref()]);
        let out = run(coffre
            .cmd(["prune", "--max-unused", "0%"])
            .env("COFFRE_TEST_PRUNE_ABORT", phase));
        assert!(!out.status.success(), "prune was not stopped at {phase}");
        coffre.ok(["check"]);
        for (id, image) in &days[i + 1..] {
            let t = tmp.path().join("r");
            coffre.restore(&id[..12], &t);
            assert_same_tree(image, &capture(&t));
            std::fs::remove_dir_all(&t).unwrap();
        }
    }
    let out = coffre.ok(["--json", "prune", "--max-unused", "0%"]);
    assert!(out.contains("\"bytes_freed\""), "{out}");
    let check = coffre.ok(["check", "--read-data"]);
    assert!(
        !check.contains("in no index file"),
        "leftovers after the final prune: {check}"
    );
    // Nothing left to do.
    let again = coffre.ok(["--json", "prune", "--max-unused", "0%"]);
    assert!(again.contains("\"bytes_freed\": 0"), "{again}");
}

/// A snapshot started while prune holds the exclusive lock waits; with a
/// short --lock-wait it gives up naming the holder; a lock left by a dead
/// process is cleared by the next command.
#[test]
fn locks_wait_name_the_holder_and_clear_stale_ones() {
    let Fixture {
        tmp: _tmp,
        src,
        coffre,
    } = Fixture::new(4);
    coffre.snapshot(&src);
    let locks = coffre.repo.join("locks");
    let mut prune = coffre
        .cmd(["prune"])
        .env("COFFRE_TEST_PRUNE_PAUSE", "marked")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&locks).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "prune took no lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = run(&mut coffre.cmd([
        OsStr::new("--lock-wait"),
        "1s".as_ref(),
        "snapshot".as_ref(),
        src.as_os_str(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("prune (pid"), "holder not named: {err}");
    // With a longer wait, it proceeds once prune is done.
    let started = Instant::now();
    coffre.ok([
        OsStr::new("--lock-wait"),
        "60s".as_ref(),
        "snapshot".as_ref(),
        src.as_os_str(),
    ]);
    assert!(started.elapsed() > Duration::from_millis(500));
    assert!(prune.wait().unwrap().success());

    // A prune that dies leaves its lock; the next command clears it.
    let out = run(coffre
        .cmd(["prune"])
        .env("COFFRE_TEST_PRUNE_ABORT", "marked"));
    assert!(!out.status.success());
    assert_eq!(
        std::fs::read_dir(&locks).unwrap().count(),
        1,
        "the dead prune's lock should remain"
    );
    coffre.ok([
        OsStr::new("--lock-wait"),
        "1s".as_ref(),
        "snapshot".as_ref(),
        src.as_os_str(),
    ]);
    assert_eq!(std::fs::read_dir(&locks).unwrap().count(), 0);
}
