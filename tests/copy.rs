//! `coffre copy` between two drives, through the real binary on sample
//! pharmacy data: every copied snapshot restores bit-exact from the second
//! drive, which has its own passphrase; a second copy sends nothing; a
//! copy killed at several instants resumes, never shows a half-copied
//! snapshot, and leaves a drive that `check --read-data` passes; a copy
//! into a drive initialised on its own (other keys) re-cuts the files.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use coffre_tests::{
    assert_same_tree, capture, describe, json_string_fields, json_u64, run, sample_day, Coffre,
    Fixture, TreeImage,
};

const MARDI_PASSWORD: &str = "mardi: another passphrase";

/// Midnight UTC, 2026-03-02, a Monday: day `d` is this plus `d` days.
const MONDAY: i64 = 1_772_409_600;

/// `coffre` on the second drive, with its own passphrase.
fn mardi_cmd(mardi: &Coffre, args: &[&str]) -> Command {
    let mut cmd = mardi.cmd(args);
    cmd.env("COFFRE_PASSWORD", MARDI_PASSWORD);
    cmd
}

fn mardi_ok(mardi: &Coffre, args: &[&str]) -> String {
    let out = run(&mut mardi_cmd(mardi, args));
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `coffre -r lundi copy --to mardi <args>`, the target's passphrase from
/// the environment, sharing lundi's cache folder.
fn copy_cmd(lundi: &Coffre, mardi: &Path, args: &[&str]) -> Command {
    let mut cmd = lundi.cmd(["copy".as_ref(), "--to".as_ref(), mardi.as_os_str()]);
    cmd.args(args).env("COFFRE_TO_PASSWORD", MARDI_PASSWORD);
    cmd
}

fn copy_ok(lundi: &Coffre, mardi: &Path, args: &[&str]) -> String {
    let out = run(&mut copy_cmd(lundi, mardi, args));
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Takes `days` daily snapshots of the sample (day 0 as it is), each at
/// its fake date; returns each day's tree.
fn days_of_snapshots(f: &Fixture, days: u32) -> Vec<TreeImage> {
    let mut images = Vec::new();
    for day in 0..days {
        if day > 0 {
            sample_day(&f.src, day);
        }
        images.push(capture(&f.src));
        let when = (MONDAY + i64::from(day) * 86_400 + 20 * 3600).to_string();
        let out = run(f
            .coffre
            .cmd(["snapshot".as_ref(), f.src.as_os_str()])
            .env("COFFRE_FAKE_NOW", when));
        assert!(out.status.success(), "{}", describe(&out));
    }
    images
}

/// Every snapshot of `mardi` restores to its day's tree (snapshots are
/// listed oldest first, one per day, none twice).
fn assert_restores(mardi: &Coffre, images: &[TreeImage], tmp: &Path, round: &str) {
    let listing = mardi_ok(mardi, &["--json", "snapshots"]);
    let ids = json_string_fields(&listing, "id");
    assert_eq!(ids.len(), images.len(), "snapshots on mardi: {listing}");
    for (day, (id, image)) in ids.iter().zip(images).enumerate() {
        let target = tmp.join(format!("{round}-from-mardi-{day}"));
        mardi_ok(
            mardi,
            &[
                "restore",
                &id[..12],
                target.to_str().expect("a UTF-8 temp path"),
            ],
        );
        assert_same_tree(image, &capture(&target));
    }
}

fn check_read_data(mardi: &Coffre) -> Output {
    run(&mut mardi_cmd(mardi, &["check", "--read-data"]))
}

#[test]
fn copy_to_a_second_drive_restores_bit_exact_and_a_second_copy_sends_nothing() {
    let f = Fixture::new(8);
    let images = days_of_snapshots(&f, 3);
    let mardi_path = f.tmp.path().join("mardi");
    let mardi = Coffre::new(&mardi_path);

    // A dry run says what it would send and creates nothing.
    let dry = copy_ok(&f.coffre, &mardi_path, &["--json", "--dry-run"]);
    assert!(json_u64(&dry, "bytes_sent") > 0, "{dry}");
    assert!(!mardi_path.exists(), "a dry run created the target");

    let first = copy_ok(&f.coffre, &mardi_path, &["--json"]);
    assert!(first.contains("\"created\": true"), "{first}");
    assert_eq!(json_string_fields(&first, "target").len(), 4, "{first}"); // 3 copies and the path
    assert!(json_u64(&first, "blobs_verified") > 0, "{first}");
    assert!(first.contains("\"rechunked\": false"), "{first}");

    // Mardi has its own passphrase: lundi's does not open it.
    let wrong = run(&mut mardi.cmd(["snapshots"]));
    assert!(!wrong.status.success(), "lundi's passphrase opened mardi");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));

    assert_restores(&mardi, &images, f.tmp.path(), "r1");
    let check = check_read_data(&mardi);
    assert!(check.status.success(), "{}", describe(&check));

    let again = copy_ok(&f.coffre, &mardi_path, &["--json"]);
    assert_eq!(json_u64(&again, "blobs_sent"), 0, "{again}");
    assert_eq!(json_u64(&again, "bytes_sent"), 0, "{again}");
    assert!(again.contains("\"copied\": []"), "{again}");

    // A new day on lundi: the daily copy sends only it, and little.
    sample_day(&f.src, 3);
    let mut images = images;
    images.push(capture(&f.src));
    let when = (MONDAY + 3 * 86_400 + 20 * 3600).to_string();
    let out = run(f
        .coffre
        .cmd(["snapshot".as_ref(), f.src.as_os_str()])
        .env("COFFRE_FAKE_NOW", &when));
    assert!(out.status.success(), "{}", describe(&out));
    let daily = copy_ok(&f.coffre, &mardi_path, &["--json", "latest"]);
    assert!(
        json_u64(&daily, "bytes_sent") * 4 < json_u64(&first, "bytes_sent"),
        "daily {daily}\nfirst {first}"
    );
    assert_restores(&mardi, &images, f.tmp.path(), "r2");

    // Copying back the other way finds everything there.
    let mut back = Command::new(coffre_tests::coffre_bin());
    let back = run(coffre_tests::without_machine_config(&mut back)
        .env("COFFRE_CACHE_DIR", f.coffre.cache_dir())
        .env("COFFRE_PASSWORD", MARDI_PASSWORD)
        .env("COFFRE_TO_PASSWORD", coffre_tests::TEST_PASSWORD)
        .args(["--json", "-r"])
        .arg(&mardi_path)
        .args(["copy", "--to"])
        .arg(&f.coffre.repo)
        .stdin(std::process::Stdio::null()));
    assert!(back.status.success(), "{}", describe(&back));
    assert_eq!(
        json_u64(&String::from_utf8_lossy(&back.stdout), "blobs_sent"),
        0
    );
}

#[test]
fn copy_killed_at_several_instants_resumes_and_never_shows_half_a_snapshot() {
    let f = Fixture::new(48);
    let images = days_of_snapshots(&f, 3);
    let mardi_path = f.tmp.path().join("mardi");
    let mardi = Coffre::new(&mardi_path);
    // Mardi exists (a copy killed while creating it leaves a folder to
    // remove by hand, as `init` does).
    let first_id = json_string_fields(&f.coffre.ok(["--json", "snapshots"]), "id")[0].clone();
    copy_ok(&f.coffre, &mardi_path, &[&first_id[..12]]);

    let mut killed = 0;
    for delay_ms in [150, 400, 800, 1500, 2500] {
        let mut child = copy_cmd(&f.coffre, &mardi_path, &[])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start coffre copy");
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().expect("poll the copy").is_none() {
            // SAFETY: kill on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            killed += 1;
        }
        child.wait().expect("reap the copy");
        // Whatever mardi shows is whole.
        let check = check_read_data(&mardi);
        assert!(
            check.status.success(),
            "after a kill at {delay_ms} ms: {}",
            describe(&check)
        );
        let listing = mardi_ok(&mardi, &["--json", "snapshots"]);
        let ids = json_string_fields(&listing, "id");
        assert!(
            ids.len() <= images.len(),
            "a snapshot is there twice: {listing}"
        );
        // A kill leaves a lock behind on both drives; a dead process's
        // lock is recognised as stale and removed by the next run.
    }
    assert!(
        killed > 0,
        "the copy always finished before the kill: use more data"
    );

    let last = copy_ok(&f.coffre, &mardi_path, &["--json"]);
    let again = copy_ok(&f.coffre, &mardi_path, &["--json"]);
    assert_eq!(json_u64(&again, "blobs_sent"), 0, "after {last}: {again}");
    assert_restores(&mardi, &images, f.tmp.path(), "r3");
    let check = check_read_data(&mardi);
    assert!(check.status.success(), "{}", describe(&check));
}

#[test]
fn copy_into_a_drive_initialised_on_its_own_recuts_the_files() {
    let f = Fixture::new(8);
    let images = days_of_snapshots(&f, 2);
    let mardi_path = f.tmp.path().join("mardi");
    let mardi = Coffre::new(&mardi_path);
    mardi_ok(&mardi, &["init"]);
    let first = copy_ok(&f.coffre, &mardi_path, &["--json"]);
    assert!(first.contains("\"rechunked\": true"), "{first}");
    assert_restores(&mardi, &images, f.tmp.path(), "r4");
    let check = check_read_data(&mardi);
    assert!(check.status.success(), "{}", describe(&check));
    let again = copy_ok(&f.coffre, &mardi_path, &["--json"]);
    assert_eq!(json_u64(&again, "blobs_sent"), 0, "{again}");
}

#[test]
fn snapshots_all_drives_shows_which_drive_holds_which_snapshot() {
    let f = Fixture::new(4);
    days_of_snapshots(&f, 2);
    let mardi_path = f.tmp.path().join("mardi");
    let first_id = json_string_fields(&f.coffre.ok(["--json", "snapshots"]), "id")[0].clone();
    copy_ok(&f.coffre, &mardi_path, &[&first_id[..12]]);
    let config = f.tmp.path().join("coffre.toml");
    std::fs::write(
        &config,
        format!(
            "[[repository]]\nname = \"lundi\"\npath = \"{}\"\n\n[[repository]]\nname = \"mardi\"\npath = \"{}\"\n\n[[repository]]\nname = \"mercredi\"\npath = \"{}\"\n",
            f.coffre.repo.display(),
            mardi_path.display(),
            f.tmp.path().join("absent/mercredi").display()
        ),
    )
    .expect("config");
    let mut cmd = Command::new(coffre_tests::coffre_bin());
    let out = run(coffre_tests::without_machine_config(&mut cmd)
        .args(["--json", "--config"])
        .arg(&config)
        .args(["snapshots", "--all-drives"])
        .env("COFFRE_CACHE_DIR", f.coffre.cache_dir())
        .env("COFFRE_PASSWORD", coffre_tests::TEST_PASSWORD)
        .env("COFFRE_TO_PASSWORD", MARDI_PASSWORD)
        .env_remove("COFFRE_REPO")
        .stdin(std::process::Stdio::null()));
    assert!(out.status.success(), "{}", describe(&out));
    let json = String::from_utf8_lossy(&out.stdout);
    let held = json_string_fields(&json, "repository");
    assert_eq!(held, ["lundi", "mardi", "lundi"], "{json}");
    assert!(json.contains("mercredi: drive not plugged in"), "{json}");
}
