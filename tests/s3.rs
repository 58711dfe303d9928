//! The S3 backend against a real Garage on loopback: the conformance suite
//! every backend passes, then the failures a store on a network has (a
//! wrong key, a missing bucket, the store stopped mid-command).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use coffre_tests::garage::{Garage, BUCKET, KEY_ID, SECRET};
use snapshots_format::backend::s3::{S3Credentials, S3Location, S3Options};
use snapshots_format::backend::{conformance, Backend, FileKind, ObjectName, S3Backend};
use snapshots_format::error::{Error, StoreProblem};

fn options(key_id: &str, secret: &str) -> S3Options {
    S3Options {
        credentials: Some(S3Credentials {
            key_id: key_id.into(),
            secret: secret.to_owned().into(),
            token: None,
        }),
        region: Some("garage".into()),
        retry_for: Duration::from_secs(2),
        ..S3Options::default()
    }
}

fn backend(garage: &Garage, address: &str, key_id: &str, secret: &str) -> S3Backend {
    let _ = garage;
    let location = S3Location::parse(address).expect("address");
    S3Backend::open(location, options(key_id, secret)).expect("backend")
}

#[test]
fn s3_backend_passes_the_conformance_suite_on_garage() {
    let garage = Garage::single();
    let n = AtomicU32::new(0);
    conformance::run(&|| {
        let prefix = format!("conformance-{}", n.fetch_add(1, Ordering::Relaxed));
        Box::new(backend(&garage, &garage.repo(0, &prefix), KEY_ID, SECRET))
    });
}

fn problem(e: Error) -> StoreProblem {
    match e {
        Error::Store { problem, .. } => problem,
        other => panic!("expected a store error, got {other:?}"),
    }
}

#[test]
fn store_failures_say_what_to_do() {
    let mut garage = Garage::single();
    let config = ObjectName::single();

    let wrong_secret = backend(&garage, &garage.repo(0, "p"), KEY_ID, &"0".repeat(64));
    let e = wrong_secret.read(FileKind::Config, &config).unwrap_err();
    assert!(matches!(problem(e), StoreProblem::Credentials { .. }));

    let unknown_key = backend(
        &garage,
        &garage.repo(0, "p"),
        "GK000000000000000000000000",
        SECRET,
    );
    let e = unknown_key.read(FileKind::Config, &config).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(problem(e), StoreProblem::Credentials { .. }),
        "{text}"
    );

    let no_bucket = format!("s3:{}/no-such-bucket/p", garage.endpoint(0));
    let e = backend(&garage, &no_bucket, KEY_ID, SECRET)
        .read(FileKind::Config, &config)
        .unwrap_err();
    let text = e.to_string();
    match problem(e) {
        // Garage answers 403 for a bucket the key may not see: the same
        // advice (check the bucket and the key's rights) holds.
        StoreProblem::NoBucket(b) => assert_eq!(b, "no-such-bucket"),
        StoreProblem::Denied { .. } => {}
        other => panic!("{other:?}: {text}"),
    }

    // The store stops: a clear error after the retry period, nothing
    // half-written; started again, the same request succeeds.
    let good = backend(&garage, &garage.repo(0, "p"), KEY_ID, SECRET);
    good.create().expect("create");
    good.write(FileKind::Policy, &config, b"kept", true)
        .expect("write");
    garage.stop(0);
    let e = good
        .write(FileKind::Snapshot, &ObjectName::id(&[7; 32]), b"x", false)
        .unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("cannot reach the store"), "{e}");
    garage.start_node(0);
    assert_eq!(
        good.read(FileKind::Policy, &config).expect("read"),
        Some(b"kept".to_vec())
    );
    assert!(good
        .write(FileKind::Snapshot, &ObjectName::id(&[7; 32]), b"x", false)
        .expect("write"));
    assert_eq!(
        good.location(),
        format!("s3:{}/{BUCKET}/p", garage.endpoint(0))
    );
}

// ---- The real binary on an S3 repository.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use coffre_tests::mount::Mounted;
use coffre_tests::{
    assert_same_tree, capture, describe, json_string_fields, json_u64, run, sample_day,
    sample_init, Coffre, TreeImage, TEST_PASSWORD,
};

const S3_PASSWORD: &str = "offsite: another passphrase";

/// The repository at `address` through the binary, its own passphrase.
fn s3_coffre(garage: &Garage, address: &str, cache: &Path, password: &str) -> (Coffre, String) {
    let mut env: Vec<(&str, &str)> = garage.env().to_vec();
    env.push(("COFFRE_RETRY_FOR", "3s"));
    let c = Coffre::s3(address, cache, &env);
    (c, password.to_owned())
}

fn ok_with(c: &Coffre, password: &str, args: &[&str]) -> String {
    let out = run(c.cmd(args).env("COFFRE_PASSWORD", password));
    assert!(out.status.success(), "{args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `coffre -r FROM copy --to TO <args>`, the target's passphrase given.
fn copy_cmd(from: &Coffre, from_pw: &str, to: &Path, to_pw: &str, args: &[&str]) -> Command {
    let mut cmd = from.cmd(["copy".as_ref(), "--to".as_ref(), to.as_os_str()]);
    cmd.args(args)
        .env("COFFRE_PASSWORD", from_pw)
        .env("COFFRE_TO_PASSWORD", to_pw)
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "garage")
        .env("COFFRE_RETRY_FOR", "3s");
    cmd
}

fn copy_ok(from: &Coffre, from_pw: &str, to: &Path, to_pw: &str, args: &[&str]) -> String {
    let out = run(&mut copy_cmd(from, from_pw, to, to_pw, args));
    assert!(out.status.success(), "copy: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A local repository with `days` daily snapshots of sample data; returns
/// it, the source folder and each day's tree.
fn local_days(
    tmp: &Path,
    scale_mb: u32,
    days: u32,
) -> (Coffre, std::path::PathBuf, Vec<TreeImage>) {
    let src = tmp.join("officine");
    sample_init(&src, scale_mb);
    let local = Coffre::new(tmp.join("lundi"));
    local.init();
    let mut images = Vec::new();
    for day in 0..days {
        if day > 0 {
            sample_day(&src, day);
        }
        images.push(capture(&src));
        local.snapshot(&src);
    }
    (local, src, images)
}

/// Every snapshot of `c` restores to its day's tree, oldest first.
fn assert_restores(c: &Coffre, pw: &str, images: &[TreeImage], tmp: &Path, round: &str) {
    let listing = ok_with(c, pw, &["--json", "snapshots"]);
    let ids = json_string_fields(&listing, "id");
    assert_eq!(ids.len(), images.len(), "snapshots: {listing}");
    for (day, (id, image)) in ids.iter().zip(images).enumerate() {
        let target = tmp.join(format!("{round}-{day}"));
        ok_with(
            c,
            pw,
            &["restore", &id[..12], target.to_str().expect("UTF-8 path")],
        );
        assert_same_tree(image, &capture(&target));
    }
}

fn check_read_data(c: &Coffre, pw: &str) -> Output {
    run(c.cmd(["check", "--read-data"]).env("COFFRE_PASSWORD", pw))
}

#[test]
fn every_command_works_on_an_s3_repository() {
    let garage = Garage::single();
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = tmp.path().join("officine");
    sample_init(&src, 8);
    let (s3, pw) = s3_coffre(
        &garage,
        &garage.repo(0, "officine-42"),
        &tmp.path().join("cache"),
        TEST_PASSWORD,
    );
    ok_with(&s3, &pw, &["init"]);
    let mut images = Vec::new();
    for day in 0..3 {
        if day > 0 {
            sample_day(&src, day);
        }
        images.push(capture(&src));
        ok_with(&s3, &pw, &["snapshot", src.to_str().expect("UTF-8")]);
    }
    assert_restores(&s3, &pw, &images, tmp.path(), "direct");
    let check = check_read_data(&s3, &pw);
    assert!(check.status.success(), "{}", describe(&check));

    // status reads the bucket as it reads a drive.
    let out = run(s3.cmd(["status"]).env("COFFRE_PASSWORD", &pw));
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 snapshot(s)"),
        "{}",
        describe(&out)
    );

    // The mount reads straight from the bucket.
    let m = Mounted::start(&s3, &tmp.path().join("mnt"), &[]);
    assert_same_tree(&images[2], &capture(&m.path.join("latest")));
    m.stop();

    // Forget and prune free space in the bucket; what is kept still
    // restores and checks.
    ok_with(&s3, &pw, &["forget", "--keep-last", "1", "--prune"]);
    assert_restores(&s3, &pw, &images[2..], tmp.path(), "kept");
    let check = check_read_data(&s3, &pw);
    assert!(check.status.success(), "{}", describe(&check));

    // A second init on the same place is refused; nothing is touched.
    let again = run(s3.cmd(["init"]).env("COFFRE_PASSWORD", &pw));
    assert!(!again.status.success(), "init over an S3 repository");
    assert_restores(&s3, &pw, &images[2..], tmp.path(), "after-init");
}

#[test]
fn copy_local_to_s3_and_back_restores_bit_exact_and_sends_nothing_twice() {
    let garage = Garage::single();
    let tmp = tempfile::tempdir().expect("temp dir");
    let (local, src, images) = local_days(tmp.path(), 8, 3);
    let address = garage.repo(0, "offsite");
    let (s3, s3_pw) = s3_coffre(&garage, &address, &tmp.path().join("s3-cache"), S3_PASSWORD);

    let first = copy_ok(
        &local,
        TEST_PASSWORD,
        Path::new(&address),
        &s3_pw,
        &["--json"],
    );
    assert!(first.contains("\"created\": true"), "{first}");
    assert!(json_u64(&first, "blobs_verified") > 0, "{first}");
    // The local passphrase does not open the S3 copy.
    let wrong = run(s3.cmd(["snapshots"]).env("COFFRE_PASSWORD", TEST_PASSWORD));
    assert!(
        !wrong.status.success(),
        "the local passphrase opened the S3 copy"
    );
    assert_restores(&s3, &s3_pw, &images, tmp.path(), "from-s3");
    let again = copy_ok(
        &local,
        TEST_PASSWORD,
        Path::new(&address),
        &s3_pw,
        &["--json"],
    );
    assert_eq!(json_u64(&again, "bytes_sent"), 0, "{again}");

    // Which repository holds which snapshot: a new local snapshot is only
    // on the drive until the next copy.
    sample_day(&src, 3);
    local.snapshot(&src);
    let view = |args: &[&str]| {
        let mut cmd = local.cmd(["--json", "snapshots", "--also", &address]);
        cmd.args(args)
            .env("COFFRE_TO_PASSWORD", &s3_pw)
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "garage");
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let both = view(&[]);
    let held: Vec<String> = json_string_fields(&both, "repository");
    // 3 snapshots on both, the new one on the drive only.
    assert_eq!(held.len(), 3 * 2 + 1, "{both}");
    assert_eq!(
        held.iter().filter(|r| r.as_str() == address).count(),
        3,
        "{both}"
    );
    let table = local.cmd(["snapshots", "--also", &address]);
    let mut table = table;
    table
        .env("COFFRE_TO_PASSWORD", &s3_pw)
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "garage");
    let out = run(&mut table);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("4 snapshot(s), 3 on every repository shown"),
        "{text}"
    );
    copy_ok(
        &local,
        TEST_PASSWORD,
        Path::new(&address),
        &s3_pw,
        &["latest"],
    );
    let after = view(&[]);
    assert_eq!(json_string_fields(&after, "repository").len(), 8, "{after}");
    let mut images = images;
    images.push(capture(&src));

    // S3 → a new drive, with a third passphrase.
    let mardi = tmp.path().join("mardi");
    let back = copy_ok(
        &s3,
        &s3_pw,
        &mardi,
        "mardi: a third passphrase",
        &["--json"],
    );
    assert!(back.contains("\"created\": true"), "{back}");
    let mardi = Coffre::new(&mardi);
    assert_restores(
        &mardi,
        "mardi: a third passphrase",
        &images,
        tmp.path(),
        "from-mardi",
    );
    let back_again = copy_ok(
        &s3,
        &s3_pw,
        &mardi.repo,
        "mardi: a third passphrase",
        &["--json"],
    );
    assert_eq!(json_u64(&back_again, "bytes_sent"), 0, "{back_again}");
}

#[test]
fn copy_to_s3_killed_at_ten_points_resumes_and_never_shows_half_a_snapshot() {
    let garage = Garage::single();
    let tmp = tempfile::tempdir().expect("temp dir");
    let (local, _src, images) = local_days(tmp.path(), 32, 3);
    let address = garage.repo(0, "killed");
    let (s3, s3_pw) = s3_coffre(&garage, &address, &tmp.path().join("s3-cache"), S3_PASSWORD);
    // The target exists (a copy killed while creating it leaves a place to
    // empty by hand, as init does).
    let first_id = json_string_fields(&local.ok(["--json", "snapshots"]), "id")[0].clone();
    copy_ok(
        &local,
        TEST_PASSWORD,
        Path::new(&address),
        &s3_pw,
        &[&first_id[..12]],
    );

    let mut killed = 0;
    for delay_ms in [100, 200, 300, 450, 600, 800, 1000, 1300, 1700, 2200] {
        let mut child = copy_cmd(&local, TEST_PASSWORD, Path::new(&address), &s3_pw, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start coffre copy");
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().expect("poll the copy").is_none() {
            // SAFETY: kill on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            killed += 1;
        }
        child.wait().expect("reap the copy");
        let check = check_read_data(&s3, &s3_pw);
        assert!(
            check.status.success(),
            "after a kill at {delay_ms} ms: {}",
            describe(&check)
        );
        let listing = ok_with(&s3, &s3_pw, &["--json", "snapshots"]);
        let ids = json_string_fields(&listing, "id");
        assert!(
            ids.len() <= images.len(),
            "a snapshot is there twice: {listing}"
        );
    }
    assert!(
        killed > 0,
        "the copy always finished before the kill: use more data"
    );
    copy_ok(
        &local,
        TEST_PASSWORD,
        Path::new(&address),
        &s3_pw,
        &["--json"],
    );
    let again = copy_ok(
        &local,
        TEST_PASSWORD,
        Path::new(&address),
        &s3_pw,
        &["--json"],
    );
    assert_eq!(json_u64(&again, "blobs_sent"), 0, "{again}");
    assert_restores(&s3, &s3_pw, &images, tmp.path(), "resumed");
}

#[test]
fn garage_stopped_mid_copy_fails_clearly_and_the_next_run_completes() {
    let mut garage = Garage::single();
    let tmp = tempfile::tempdir().expect("temp dir");
    let (local, _src, images) = local_days(tmp.path(), 32, 2);
    let address = garage.repo(0, "stopped");
    let (s3, s3_pw) = s3_coffre(&garage, &address, &tmp.path().join("s3-cache"), S3_PASSWORD);
    let first_id = json_string_fields(&local.ok(["--json", "snapshots"]), "id")[0].clone();
    copy_ok(
        &local,
        TEST_PASSWORD,
        Path::new(&address),
        &s3_pw,
        &[&first_id[..12]],
    );

    // A slow line (1 MiB/s), so the store stops mid-copy.
    let args = ["--limit-upload", "1M"];
    let mut child = copy_cmd(&local, TEST_PASSWORD, Path::new(&address), &s3_pw, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start coffre copy");
    std::thread::sleep(Duration::from_millis(500));
    let running = child.try_wait().expect("poll").is_none();
    assert!(running, "the copy ended before the store stopped");
    garage.stop(0);
    let out = child.wait_with_output().expect("the copy ends");
    garage.start_node(0);
    assert!(
        !out.status.success(),
        "the copy succeeded with the store stopped"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the store at 127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("run the command again"), "{err}");
    // Nothing half there, and the next run completes.
    let check = check_read_data(&s3, &s3_pw);
    assert!(check.status.success(), "{}", describe(&check));
    copy_ok(&local, TEST_PASSWORD, Path::new(&address), &s3_pw, &[]);
    assert_restores(&s3, &s3_pw, &images, tmp.path(), "after-restart");
}

#[test]
fn a_three_node_cluster_keeps_a_copy_going_and_restores_with_a_node_down() {
    let mut garage = Garage::cluster();
    let tmp = tempfile::tempdir().expect("temp dir");
    let (local, _src, images) = local_days(tmp.path(), 32, 3);
    let address = garage.repo(0, "cluster");
    let (s3, s3_pw) = s3_coffre(&garage, &address, &tmp.path().join("s3-cache"), S3_PASSWORD);

    // 4 MiB/s, so that the node dies mid-copy.
    let args = ["--json", "--limit-upload", "4M"];
    let mut child = copy_cmd(&local, TEST_PASSWORD, Path::new(&address), &s3_pw, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start coffre copy");
    std::thread::sleep(Duration::from_millis(1500));
    let running = child.try_wait().expect("poll").is_none();
    assert!(running, "the copy ended before the node died");
    // A node dies mid-copy: the other two still make a quorum.
    garage.stop(2);
    let out = child.wait_with_output().expect("the copy ends");
    if !out.status.success() {
        // It may also have stopped cleanly: then it resumes.
        copy_ok(&local, TEST_PASSWORD, Path::new(&address), &s3_pw, &[]);
    }
    let check = check_read_data(&s3, &s3_pw);
    assert!(check.status.success(), "{}", describe(&check));
    assert_restores(&s3, &s3_pw, &images, tmp.path(), "node-down");
}

#[test]
fn credentials_and_limits_can_come_from_the_configuration() {
    let garage = Garage::single();
    let tmp = tempfile::tempdir().expect("temp dir");
    let secret_file = tmp.path().join("s3-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret file");
    let config = tmp.path().join("coffre.toml");
    std::fs::write(
        &config,
        format!(
            "[[repository]]\nname = \"lundi\"\npath = \"{}\"\n\n[s3]\naccess_key_id = \"{KEY_ID}\"\nsecret_access_key_file = \"{}\"\nregion = \"garage\"\nlimit_upload = \"8M\"\ncache_size = \"64M\"\n",
            tmp.path().join("lundi").display(),
            secret_file.display()
        ),
    )
    .expect("config");
    let c = Coffre::s3(
        &garage.repo(0, "configured"),
        &tmp.path().join("cache"),
        &[],
    );
    let cmd = |args: &[&str]| {
        let mut cmd = c.cmd(args);
        cmd.arg("--config")
            .arg(&config)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_REGION")
            .env("HOME", tmp.path());
        cmd
    };
    let out = run(&mut cmd(&["init"]));
    assert!(out.status.success(), "{}", describe(&out));
    let src = tmp.path().join("officine");
    sample_init(&src, 4);
    let out = run(&mut cmd(&["snapshot", src.to_str().expect("UTF-8")]));
    assert!(out.status.success(), "{}", describe(&out));
    let target = tmp.path().join("restored");
    let out = run(&mut cmd(&[
        "restore",
        "latest",
        target.to_str().expect("UTF-8"),
    ]));
    assert!(out.status.success(), "{}", describe(&out));
    assert_same_tree(&capture(&src), &capture(&target));

    // Without the file's key, the command says where credentials come from.
    let bare = run(c
        .cmd(["snapshots"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("HOME", tmp.path()));
    assert!(!bare.status.success());
    let err = String::from_utf8_lossy(&bare.stderr);
    assert!(
        err.contains("no S3 credentials: set AWS_ACCESS_KEY_ID"),
        "{err}"
    );
}
