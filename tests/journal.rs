//! The repository's journal through the real binary over simulated days:
//! every snapshot (one failing), restore, check, forget, prune and copy is
//! listed in order with its result and who ran it; removing or swapping
//! journal objects on the drive is reported.

use std::path::Path;

use coffre_tests::{describe, json_string_fields, run, sample_day, Coffre, Fixture};

/// Midnight UTC, 2026-11-02, a Monday.
const MONDAY: i64 = 1_793_577_600;

fn evening(day: i64) -> i64 {
    MONDAY + day * 86_400 + 20 * 3600
}

fn ok_at(c: &Coffre, day: i64, args: &[&str]) -> String {
    c.ok_at(evening(day), args)
}

fn journal(c: &Coffre, cache: Option<&Path>) -> (bool, String, String) {
    let mut cmd = c.cmd(["--json", "journal"]);
    if let Some(cache) = cache {
        cmd.env("COFFRE_CACHE_DIR", cache);
    }
    let out = run(&mut cmd);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_journal_lists_every_command_in_order_and_shows_tampering() {
    let f = Fixture::new(4);
    let c = &f.coffre;
    let src = f.src.to_str().expect("UTF-8").to_owned();
    let mut expected = vec![("init", "ok")];
    for day in 0..12i64 {
        if day > 0 {
            sample_day(&f.src, day as u32);
        }
        if day == 4 {
            // The data disk was not mounted that evening.
            let away = f.tmp.path().join("away");
            std::fs::rename(&f.src, &away).expect("hide the source");
            let out = run(&mut c.cmd_at(evening(day), ["snapshot", &src]));
            assert!(
                !out.status.success(),
                "a snapshot of a missing folder succeeded"
            );
            std::fs::rename(&away, &f.src).expect("bring it back");
            expected.push(("snapshot", "failed"));
            continue;
        }
        ok_at(c, day, &["snapshot", &src]);
        expected.push(("snapshot", "ok"));
        match day {
            6 => {
                let target = f.tmp.path().join("restored");
                ok_at(
                    c,
                    day,
                    &["restore", "latest", target.to_str().expect("UTF-8")],
                );
                expected.push(("restore", "ok"));
            }
            8 => {
                ok_at(c, day, &["check", "--read-data"]);
                expected.push(("check", "ok"));
            }
            10 => {
                ok_at(c, day, &["forget", "--keep-last", "5", "--prune"]);
                expected.push(("forget", "ok"));
                expected.push(("prune", "ok"));
            }
            11 => {
                let mardi = f.tmp.path().join("mardi");
                let out = run(c
                    .cmd_at(
                        evening(day),
                        ["copy".as_ref(), "--to".as_ref(), mardi.as_os_str()],
                    )
                    .env("COFFRE_TO_PASSWORD", "mardi: its own passphrase"));
                assert!(out.status.success(), "{}", describe(&out));
                expected.push(("copy-out", "ok"));
            }
            _ => {}
        }
    }

    let (ok, json, err) = journal(c, None);
    assert!(ok, "{err}");
    let kinds = json_string_fields(&json, "kind");
    let outcomes = json_string_fields(&json, "outcome");
    assert_eq!(kinds.len(), outcomes.len(), "{json}");
    let got: Vec<(&str, &str)> = kinds
        .iter()
        .map(String::as_str)
        .zip(outcomes.iter().map(String::as_str))
        .collect();
    assert_eq!(got, expected, "{json}");
    assert!(
        json.contains("does not exist or is not a folder"),
        "the failure says why: {json}"
    );
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let entries = parsed["entries"].as_array().expect("entries");
    // After the init (at the real time), the simulated evenings, in order.
    let times: Vec<&str> = entries[1..]
        .iter()
        .map(|e| e["time"].as_str().expect("time"))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "in time order: {times:?}"
    );
    assert!(entries
        .iter()
        .all(|e| e["user"].as_str().is_some_and(|u| !u.is_empty())));
    assert!(json.contains("\"problems\": []"), "{json}");
    // The human table names who ran each command.
    let table = String::from_utf8_lossy(&run(&mut c.cmd(["journal", "--kind", "snapshot"])).stdout)
        .into_owned();
    assert_eq!(table.lines().count(), 12, "{table}");

    // An entry removed from the drive (one in the middle: a successor
    // names it): this machine and a new one both see it.
    let dir = c.repo.join("journal");
    let middle = dir.join(entries[3]["id"].as_str().expect("id"));
    let kept = std::fs::read(&middle).expect("read an entry");
    std::fs::remove_file(&middle).expect("remove an entry");
    let (ok, _, err) = journal(c, None);
    assert!(!ok, "a removed entry went unnoticed");
    assert!(err.contains("an entry was removed"), "{err}");
    let fresh = f.tmp.path().join("fresh-cache");
    let (ok, _, err) = journal(c, Some(&fresh));
    assert!(!ok, "a removed entry went unnoticed on a new machine");
    assert!(err.contains("an entry was removed"), "{err}");
    std::fs::write(&middle, kept).expect("put it back");
    let (ok, _, err) = journal(c, Some(&fresh));
    assert!(ok, "{err}");

    // Two entries swapped on the drive.
    let (a, b) = (
        dir.join(entries[1]["id"].as_str().expect("id")),
        dir.join(entries[2]["id"].as_str().expect("id")),
    );
    let tmp = dir.join("swap");
    std::fs::rename(&a, &tmp).expect("swap");
    std::fs::rename(&b, &a).expect("swap");
    std::fs::rename(&tmp, &b).expect("swap");
    let (ok, _, err) = journal(c, Some(&f.tmp.path().join("third-cache")));
    assert!(!ok, "swapped entries went unnoticed");
    assert!(err.contains("do not match its name"), "{err}");
}

#[test]
fn a_protected_snapshot_survives_forget_until_its_hold_is_lifted() {
    let f = Fixture::new(4);
    let c = &f.coffre;
    let src = f.src.to_str().expect("UTF-8").to_owned();
    for day in 0..4i64 {
        if day > 0 {
            sample_day(&f.src, day as u32);
        }
        ok_at(c, day, &["snapshot", &src]);
    }
    let ids = json_string_fields(&ok_at(c, 4, &["--json", "snapshots"]), "id");
    assert_eq!(ids.len(), 4);
    let day1 = &ids[1][..12];
    ok_at(
        c,
        4,
        &[
            "protect",
            day1,
            "--until",
            "2036-11-30",
            "--reason",
            "clôture annuelle",
        ],
    );
    let list = ok_at(c, 4, &["protect", "--list"]);
    assert!(
        list.contains("clôture annuelle") && list.contains("until 2036-11-30"),
        "{list}"
    );

    // Neither the policy nor a name removes it; the output says why.
    let out = ok_at(c, 5, &["forget", "--keep-last", "1", "--prune"]);
    assert!(
        out.contains("protected until 2036-11-30: clôture annuelle"),
        "{out}"
    );
    let out = ok_at(c, 5, &["forget", day1]);
    assert!(out.contains("Remove 0 snapshot(s)"), "{out}");
    let left = json_string_fields(&ok_at(c, 5, &["--json", "snapshots"]), "id");
    assert_eq!(left, vec![ids[1].clone(), ids[3].clone()]);
    let target = f.tmp.path().join("day1");
    ok_at(c, 5, &["restore", day1, target.to_str().expect("UTF-8")]);

    // Lifted (and journalled), it goes with the next forget.
    ok_at(c, 6, &["unprotect", day1, "--reason", "période close"]);
    ok_at(c, 6, &["forget", "--keep-last", "1"]);
    let left = json_string_fields(&ok_at(c, 6, &["--json", "snapshots"]), "id");
    assert_eq!(left, vec![ids[3].clone()]);
    let journal = ok_at(c, 6, &["journal", "--kind", "protect"]);
    assert_eq!(journal.lines().count(), 2, "{journal}");
    assert!(journal.contains("période close"), "{journal}");

    // A damaged journal stops forget: a removed hold could go unnoticed.
    ok_at(c, 7, &["protect", "latest", "--reason", "contrôle"]);
    let dir = c.repo.join("journal");
    let newest = std::fs::read_dir(&dir)
        .expect("journal")
        .map(|e| e.expect("entry").path())
        .max_by_key(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .expect("mtime")
        })
        .expect("an entry");
    std::fs::remove_file(newest).expect("remove the hold");
    let out = run(&mut c.cmd_at(evening(8), ["forget", "--keep-last", "1"]));
    assert!(!out.status.success(), "forget ran on a damaged journal");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("journal is damaged"),
        "{}",
        describe(&out)
    );
}

#[test]
fn check_read_data_subset_reads_every_pack_once_per_cycle() {
    let f = Fixture::new(24);
    let c = &f.coffre;
    let src = f.src.to_str().expect("UTF-8").to_owned();
    for day in 0..3i64 {
        if day > 0 {
            sample_day(&f.src, day as u32);
        }
        ok_at(c, day, &["snapshot", &src]);
    }
    let mut all: Vec<String> = Vec::new();
    for sub in std::fs::read_dir(c.repo.join("data")).expect("data") {
        for p in std::fs::read_dir(sub.expect("sub").path()).expect("packs") {
            all.push(p.expect("pack").file_name().to_string_lossy().into_owned());
        }
    }
    all.sort();
    assert!(all.len() >= 3, "too few packs to split: {}", all.len());
    let mut seen: Vec<String> = Vec::new();
    let mut parts = Vec::new();
    for run_no in 0..3 {
        let out = ok_at(
            c,
            3 + run_no,
            &["--json", "check", "--read-data-subset", "1/3"],
        );
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        let read: Vec<String> = v["report"]["packs_read"]
            .as_array()
            .expect("packs_read")
            .iter()
            .map(|p| p.as_str().expect("id").to_owned())
            .collect();
        parts.push(read.len());
        seen.extend(read);
    }
    seen.sort();
    assert_eq!(
        seen, all,
        "three runs of a third read each pack exactly once ({parts:?})"
    );
    // The fourth starts the cycle again; the journal says which part ran.
    let out = ok_at(c, 6, &["--json", "check", "--read-data-subset", "33%"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        v["report"]["packs_read"].as_array().expect("read").len(),
        parts[0]
    );
    let journal = ok_at(c, 6, &["journal", "--kind", "check"]);
    assert!(
        journal.contains("part 1 of 3") && journal.contains("part 3 of 3"),
        "{journal}"
    );
}

#[test]
fn verify_restores_a_sample_and_catches_a_damaged_pack() {
    let f = Fixture::new(8);
    let c = &f.coffre;
    let src = f.src.to_str().expect("UTF-8").to_owned();
    ok_at(c, 0, &["snapshot", &src]);
    let scratch = f.tmp.path().join("scratch");
    let scratch_s = scratch.to_str().expect("UTF-8");

    let out = ok_at(
        c,
        1,
        &[
            "--json",
            "verify",
            "--sample",
            "10%",
            "--include",
            "db",
            "--scratch",
            scratch_s,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let tested: Vec<&str> = v["report"]["tested"]
        .as_array()
        .expect("tested")
        .iter()
        .map(|p| p.as_str().expect("path"))
        .collect();
    assert!(
        tested.iter().any(|p| p.starts_with("db/")),
        "the database is always tested: {tested:?}"
    );
    let all = v["report"]["files_in_snapshot"].as_u64().expect("count");
    assert!(
        (tested.len() as u64) < all,
        "a sample, not everything: {} of {all}",
        tested.len()
    );
    assert!(!scratch.exists(), "the scratch folder is removed");

    // The database's own check runs on the restored copy.
    let out = run(&mut c.cmd_at(
        evening(2),
        [
            "verify",
            "--sample",
            "0%",
            "--include",
            "db",
            "--check-cmd",
            "false {}",
            "--scratch",
            scratch_s,
        ],
    ));
    assert!(
        !out.status.success(),
        "a failing --check-cmd passed: {}",
        describe(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`false '"),
        "{}",
        describe(&out)
    );

    // A damaged data pack: the files in it do not come back; the test
    // says which and the journal records the failure.
    let mut packs: Vec<std::path::PathBuf> = Vec::new();
    for sub in std::fs::read_dir(c.repo.join("data")).expect("data") {
        for p in std::fs::read_dir(sub.expect("sub").path()).expect("packs") {
            packs.push(p.expect("pack").path());
        }
    }
    let biggest = packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).expect("size").len())
        .expect("a pack");
    let mut bytes = std::fs::read(biggest).expect("read pack");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(biggest, bytes).expect("damage the pack");
    let out = run(&mut c.cmd_at(
        evening(3),
        ["verify", "--sample", "100%", "--scratch", scratch_s],
    ));
    assert!(
        !out.status.success(),
        "a damaged pack went unnoticed: {}",
        describe(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error: "),
        "{}",
        describe(&out)
    );
    let journal = ok_at(c, 3, &["--json", "journal", "--kind", "verify"]);
    let outcomes = json_string_fields(&journal, "outcome");
    assert_eq!(outcomes, ["ok", "failed", "failed"], "{journal}");
}

#[test]
fn drives_shows_each_drive_and_names_the_stale_one() {
    let f = Fixture::new(4);
    let cache = f.tmp.path().join("shared-cache");
    let names = ["lundi", "mardi", "mercredi"];
    let mut config = String::new();
    for n in names {
        config += &format!(
            "[[repository]]\nname = \"{n}\"\npath = \"{}\"\n\n",
            f.tmp.path().join(n).display()
        );
    }
    let config_path = f.tmp.path().join("coffre.toml");
    std::fs::write(&config_path, config).expect("config");
    let src = f.src.to_str().expect("UTF-8").to_owned();
    // mercredi's only snapshot is three weeks old; lundi and mardi are recent.
    for (n, day) in [("mercredi", -20i64), ("lundi", 0), ("mardi", 1)] {
        let c = Coffre::new(f.tmp.path().join(n));
        let mut init = c.cmd(["init"]);
        init.env("COFFRE_CACHE_DIR", &cache);
        assert!(run(&mut init).status.success());
        let mut snap = c.cmd_at(
            evening(day),
            [
                "--config",
                config_path.to_str().expect("UTF-8"),
                "snapshot",
                &src,
            ],
        );
        snap.env("COFFRE_CACHE_DIR", &cache);
        let out = run(&mut snap);
        assert!(out.status.success(), "{}", describe(&out));
    }
    // `drives` works on the configuration, not on -r.
    let mut cmd = std::process::Command::new(coffre_tests::coffre_bin());
    coffre_tests::without_machine_config(&mut cmd)
        .args([
            "--json",
            "--config",
            config_path.to_str().expect("UTF-8"),
            "drives",
        ])
        .env("COFFRE_CACHE_DIR", &cache)
        .env("COFFRE_FAKE_NOW", evening(2).to_string())
        .env("COFFRE_PASSWORD", coffre_tests::TEST_PASSWORD)
        .env_remove("COFFRE_REPO")
        .stdin(std::process::Stdio::null());
    let out = run(&mut cmd);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a stale drive is a warning: {}",
        describe(&out)
    );
    let v: serde_json::Value =
        serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).expect("JSON");
    let drives = v["drives"].as_array().expect("drives");
    assert_eq!(drives.len(), 3);
    for d in drives {
        let name = d["name"].as_str().expect("name");
        assert_eq!(d["present"], true, "{name}");
        assert!(d["last_snapshot"].as_i64().is_some(), "{name}");
        assert!(d["free_bytes"].as_u64().is_some_and(|b| b > 0), "{name}");
        let warnings = d["warnings"].as_array().expect("warnings");
        if name == "mercredi" {
            assert!(
                warnings.iter().any(|w| w
                    .as_str()
                    .is_some_and(|w| w.contains("no snapshot for 22 days"))),
                "{d}"
            );
        } else {
            assert!(warnings.is_empty(), "{d}");
        }
    }
}

#[test]
fn status_warns_when_the_data_was_not_read_back_for_too_long() {
    let f = Fixture::new(4);
    let c = &f.coffre;
    let src = f.src.to_str().expect("UTF-8").to_owned();
    ok_at(c, 0, &["snapshot", &src]);
    ok_at(c, 0, &["check", "--read-data"]);
    let status = |day: i64| {
        let out = run(&mut c.cmd_at(evening(day), ["--json", "status"]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok_at(c, 20, &["snapshot", &src]);
    assert!(!status(20).contains("data_unread"), "{}", status(20));
    ok_at(c, 40, &["snapshot", &src]);
    ok_at(c, 40, &["check"]);
    assert!(status(40).contains("data_unread"), "{}", status(40));
    // Three thirds over three days read everything again.
    for day in 41..44 {
        ok_at(c, day, &["check", "--read-data-subset", "1/3"]);
    }
    ok_at(c, 44, &["snapshot", &src]);
    assert!(!status(44).contains("data_unread"), "{}", status(44));
}

/// FORMAT.md §11.3: every command records how many objects it sealed under
/// the repository's key, and `check` adds them up against the key's budget.
#[test]
fn seals_under_the_key_are_counted() {
    let f = Fixture::new(4);
    let c = &f.coffre;
    let src = f.src.to_str().expect("UTF-8").to_owned();
    let seals = |c: &Coffre| coffre_tests::json_u64(&c.ok(["--json", "check"]), "seals_recorded");
    let at_init = seals(c);
    c.ok(["snapshot", &src]);
    let first = seals(c) - at_init;
    let blobs = coffre_tests::json_u64(&c.ok(["--json", "check"]), "blobs");
    assert!(
        first >= blobs,
        "a first snapshot sealed {first} objects for {blobs} blobs"
    );
    let before = seals(c);
    c.ok(["snapshot", &src]);
    let second = seals(c) - before;
    assert!(
        second > 0 && second < first / 4,
        "an unchanged snapshot sealed {second} objects (the first {first})"
    );
}
