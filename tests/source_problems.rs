//! When the repository or the source is not as expected (wrong path, not a
//! repository, unreadable files, a full drive, fifos, deep trees), `coffre`
//! says clearly what is wrong, exits with the documented code, never panics,
//! and never loses what it already holds: earlier snapshots stay restorable
//! bit-exact and the repository stays sound.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use coffre_tests::{
    assert_same_tree, assert_same_tree_with, capture, coffre_bin, run, run_ok, sample_init,
    without_machine_config, CompareOptions, Kind,
};
use snapshots_format::format::keyfile::KdfParams;
use snapshots_format::Repository;

const PASS: &str = "correct horse battery staple";
const NOBODY: u32 = 65534;

/// A `coffre` command with the passphrase set for this command only and no
/// repository or passphrase file inherited from the caller's environment.
fn coffre_cmd(bin: &Path) -> Command {
    let mut c = Command::new(bin);
    without_machine_config(&mut c)
        .env("COFFRE_PASSWORD", PASS)
        .env_remove("COFFRE_REPO")
        .env_remove("COFFRE_PASSWORD_FILE");
    c
}

/// `coffre -r REPO`.
fn coffre(repo: &Path) -> Command {
    let mut c = coffre_cmd(&coffre_bin());
    c.arg("-r").arg(repo);
    c
}

/// A repository with a cheap KDF (the CLI opens it with the parameters stored in
/// its key file).
fn init_repo(repo: &Path) {
    let cheap = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    drop(Repository::init(repo, PASS.as_bytes(), cheap).expect("init repository"));
}

use coffre_tests::{describe, text};

/// Asserts that stderr shows no crash.
fn assert_no_panic(out: &Output, what: &str) {
    let err = text(&out.stderr);
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "internal error",
        "overflowed its stack",
    ] {
        assert!(
            !err.contains(bad),
            "{what}: stderr shows a crash ({bad})\n{}",
            describe(out)
        );
    }
}

/// Asserts exit 1 with an `error: ` message and no panic; returns the message.
fn assert_error(out: &Output, what: &str) -> String {
    assert_no_panic(out, what);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: expected exit 1\n{}",
        describe(out)
    );
    let err = text(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{what}: no line starting with `error: `\n{}", describe(out)));
    line.to_string()
}

/// The numbers following every `"key": ` in a JSON text.
fn json_numbers(json: &str, key: &str) -> Vec<u64> {
    let pat = format!("\"{key}\":");
    json.match_indices(&pat)
        .map(|(i, _)| {
            let rest = json[i + pat.len()..].trim_start();
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits
                .parse()
                .unwrap_or_else(|_| panic!("`{key}` is not a number in:\n{json}"))
        })
        .collect()
}

/// The strings following every `"key": ` in a JSON text (no escapes expected).
fn json_strings(json: &str, key: &str) -> Vec<String> {
    let pat = format!("\"{key}\":");
    json.match_indices(&pat)
        .filter_map(|(i, _)| {
            let rest = json[i + pat.len()..].trim_start().strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

/// The ids of the snapshots `coffre snapshots --json` lists.
fn snapshot_ids(repo: &Path) -> Vec<String> {
    let out = run_ok(coffre(repo).arg("--json").arg("snapshots"));
    json_strings(&text(&out.stdout), "id")
}

/// Every entry of `dir`, recursively, relative.
fn walk(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.insert(p.strip_prefix(dir).unwrap().to_path_buf());
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// Wrong repository states each get exit 1, a distinct message that says what
/// is wrong (and where), and no panic: a missing repository path (the message
/// mentions the drive and the path), a directory that is not a repository, `init`
/// over an existing repository or a non-empty directory (both left intact and
/// the repository still usable), a wrong passphrase, a missing or non-directory
/// snapshot source (no snapshot recorded), and no `-r` at all.
#[test]
fn wrong_repository_states_give_distinct_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), "alpha\n").unwrap();
    run_ok(coffre(&repo).arg("snapshot").arg(&src));
    let ids = snapshot_ids(&repo);
    assert_eq!(ids.len(), 1);
    // Paths are replaced by <PATH> before comparing messages, so that two
    // messages differing only by the path do not count as distinct.
    let mut messages: Vec<(String, String, Vec<PathBuf>)> = Vec::new();

    // Missing repository path (drive not plugged in).
    let missing = Path::new("/nonexistent/x");
    assert!(
        !missing.exists(),
        "{} exists on this machine",
        missing.display()
    );
    let out = run(coffre(missing).arg("snapshots"));
    let msg = assert_error(&out, "missing repository path");
    assert!(
        msg.contains("/nonexistent/x"),
        "the message does not name the path: {msg}"
    );
    assert!(
        msg.to_lowercase().contains("drive"),
        "the message does not mention the drive: {msg}"
    );
    messages.push(("missing repository".into(), msg, vec![missing.into()]));

    // A directory that is not a repository.
    let plain = tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    fs::write(plain.join("notes.txt"), "my notes\n").unwrap();
    let out = run(coffre(&plain).arg("snapshots"));
    let msg = assert_error(&out, "not a repository");
    assert!(
        msg.contains(&*plain.to_string_lossy()),
        "the message does not name the path: {msg}"
    );
    assert!(
        msg.contains("init"),
        "the message does not say how to create a repository: {msg}"
    );
    messages.push(("not a repository".into(), msg, vec![plain.clone()]));

    // init over an existing repository: refused, repository unchanged and usable.
    let before = capture(&repo);
    let out = run(coffre(&repo).arg("init"));
    let msg = assert_error(&out, "init over a repository");
    assert!(msg.contains("already"), "unclear message: {msg}");
    messages.push(("init over a repository".into(), msg, vec![repo.clone()]));
    let after = capture(&repo);
    for key in ["config", "keys"] {
        let (b, a) = (before.get(key), after.get(key));
        assert_eq!(b, a, "init over a repository changed {key}");
    }
    let keys_before: Vec<_> = before
        .entries()
        .filter(|(p, _)| p.starts_with(b"keys/"))
        .map(|(p, e)| (p.to_vec(), e.digest))
        .collect();
    let keys_after: Vec<_> = after
        .entries()
        .filter(|(p, _)| p.starts_with(b"keys/"))
        .map(|(p, e)| (p.to_vec(), e.digest))
        .collect();
    assert_eq!(
        keys_before, keys_after,
        "init over a repository changed the key files"
    );
    assert_eq!(
        snapshot_ids(&repo),
        ids,
        "the existing repository no longer lists its snapshot"
    );
    let restored = tmp.path().join("restored");
    run_ok(coffre(&repo).arg("restore").arg("latest").arg(&restored));
    assert_eq!(
        fs::read_to_string(restored.join("a.txt")).unwrap(),
        "alpha\n"
    );

    // init over a non-empty directory that is not a repository: refused, files kept.
    let out = run(coffre(&plain).arg("init"));
    let msg = assert_error(&out, "init over a non-empty directory");
    assert_eq!(
        walk(&plain),
        [PathBuf::from("notes.txt")].into_iter().collect(),
        "init touched a non-empty directory"
    );
    assert_eq!(
        fs::read_to_string(plain.join("notes.txt")).unwrap(),
        "my notes\n"
    );
    // Same cause as init over a repository: the same message is fine, not counted.
    drop(msg);

    // Wrong passphrase.
    let out = run(coffre(&repo)
        .env("COFFRE_PASSWORD", "not the passphrase")
        .arg("snapshots"));
    let msg = assert_error(&out, "wrong passphrase");
    assert!(msg.contains("passphrase"), "unclear message: {msg}");
    messages.push(("wrong passphrase".into(), msg, vec![]));

    // Snapshot of a missing source: refused, no snapshot recorded.
    let gone = tmp.path().join("no-such-source");
    let out = run(coffre(&repo).arg("snapshot").arg(&gone));
    let msg = assert_error(&out, "missing source");
    assert!(
        msg.contains(&*gone.to_string_lossy()),
        "the message does not name the source: {msg}"
    );
    messages.push(("missing source".into(), msg, vec![gone.clone()]));
    assert_eq!(
        snapshot_ids(&repo),
        ids,
        "a snapshot of a missing source was recorded"
    );

    // Snapshot of a file instead of a directory: refused, no snapshot recorded.
    let out = run(coffre(&repo).arg("snapshot").arg(src.join("a.txt")));
    assert_error(&out, "source is a file");
    assert_eq!(
        snapshot_ids(&repo),
        ids,
        "a snapshot of a file was recorded"
    );

    // No -r and no COFFRE_REPO.
    let out = run(coffre_cmd(&coffre_bin()).arg("snapshots"));
    let msg = assert_error(&out, "no repository given");
    assert!(
        msg.contains("-r") && msg.contains("COFFRE_REPO"),
        "the message does not say how to name the repository: {msg}"
    );
    messages.push(("no -r".into(), msg, vec![]));

    let generic: Vec<(String, String)> = messages
        .iter()
        .map(|(what, msg, paths)| {
            let mut m = msg.clone();
            for p in paths {
                m = m.replace(&*p.to_string_lossy(), "<PATH>");
            }
            (what.clone(), m)
        })
        .collect();
    for (i, (w1, m1)) in generic.iter().enumerate() {
        for (w2, m2) in &generic[i + 1..] {
            assert_ne!(m1, m2, "`{w1}` and `{w2}` give the same message");
        }
    }
}

/// Makes `path` and everything below it owned by `uid:uid`.
fn chown_r(path: &Path, uid: u32) {
    run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{uid}"))
            .arg(path),
    );
}

/// A command running `bin` as user nobody (uid/gid 65534, no groups): setpriv if
/// present, else runuser. The environment (COFFRE_PASSWORD) is kept.
fn as_nobody(bin: &Path, cwd: &Path) -> Command {
    let has_setpriv = Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut c = if has_setpriv {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .arg(bin);
        c
    } else {
        let mut c = Command::new("runuser");
        c.arg("-u").arg("nobody").arg("--").arg(bin);
        c
    };
    without_machine_config(&mut c)
        .current_dir(cwd)
        .env("COFFRE_CACHE_DIR", cwd.join(".cache"))
        .env("COFFRE_PASSWORD", PASS)
        .env_remove("COFFRE_REPO")
        .env_remove("COFFRE_PASSWORD_FILE");
    c
}

/// A copy (or hard link) of the coffre binary inside `dir`, so that another user
/// can run it whatever the permissions of the build directory.
fn reachable_bin(dir: &Path) -> PathBuf {
    let dest = dir.join("coffre");
    if fs::hard_link(coffre_bin(), &dest).is_err() {
        fs::copy(coffre_bin(), &dest).unwrap();
    }
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).unwrap();
    dest
}

/// Files the snapshot user cannot read (a mode-000 file, a mode-000 directory,
/// a mode-000 file deep down) are skipped, not fatal: `coffre snapshot` exits 3,
/// lists each skipped path on stderr, records the snapshot (listed by `snapshots
/// --json`, `skipped_count` >= 3 in its JSON), and restoring it gives every other
/// file of a sample data tree bit-exact, without the skipped ones.
///
/// Root reads everything, so the snapshot runs as user nobody.
#[test]
fn unreadable_files_are_skipped_and_the_rest_is_saved() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root to switch to user nobody"
    );
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let bin = reachable_bin(tmp.path());
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let src = work.join("src");
    sample_init(&src, 4);
    fs::write(src.join("secret.txt"), "cannot be read\n").unwrap();
    fs::create_dir(src.join("locked")).unwrap();
    fs::write(src.join("locked/inside.txt"), "behind a locked door\n").unwrap();
    fs::create_dir_all(src.join("nested/deeper")).unwrap();
    fs::write(src.join("nested/deeper/secret2.txt"), "also unreadable\n").unwrap();
    fs::write(src.join("nested/deeper/readable.txt"), "fine\n").unwrap();
    let repo = work.join("repo");
    init_repo(&repo);
    chown_r(&work, NOBODY);
    for p in ["secret.txt", "locked", "nested/deeper/secret2.txt"] {
        fs::set_permissions(src.join(p), fs::Permissions::from_mode(0o000)).unwrap();
    }
    let unreadable = ["secret.txt", "locked", "nested/deeper/secret2.txt"];

    let out = run(as_nobody(&bin, &work)
        .arg("-r")
        .arg(&repo)
        .arg("--json")
        .arg("snapshot")
        .arg(&src));
    assert_no_panic(&out, "snapshot with unreadable files");
    assert_eq!(
        out.status.code(),
        Some(3),
        "expected exit 3 (partial snapshot)\n{}",
        describe(&out)
    );
    let err = text(&out.stderr);
    for p in unreadable {
        assert!(
            err.contains(p),
            "the skipped path {p} is not listed on stderr\n{}",
            describe(&out)
        );
    }
    let json = text(&out.stdout);
    let skipped = json_numbers(&json, "skipped_count");
    assert_eq!(
        skipped.len(),
        1,
        "no single summary.skipped_count in:\n{json}"
    );
    assert!(skipped[0] >= 3, "skipped_count {} < 3:\n{json}", skipped[0]);
    let id = json_strings(&json, "id")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no id in:\n{json}"));

    let listed = run(as_nobody(&bin, &work)
        .arg("-r")
        .arg(&repo)
        .arg("--json")
        .arg("snapshots"));
    assert!(
        listed.status.success(),
        "snapshots failed\n{}",
        describe(&listed)
    );
    assert_eq!(
        json_strings(&text(&listed.stdout), "id"),
        vec![id.clone()],
        "the partial snapshot is not listed"
    );

    // Restore as root (owners restored too) into a target whose root matches the source's.
    let target = tmp.path().join("restored");
    fs::create_dir(&target).unwrap();
    chown_r(&target, NOBODY);
    fs::set_permissions(&target, fs::metadata(&src).unwrap().permissions()).unwrap();
    run_ok(coffre(&repo).arg("restore").arg(&id).arg(&target));
    let mut opts = CompareOptions::default();
    for p in unreadable {
        opts = opts.excluding(p);
        assert!(
            fs::symlink_metadata(target.join(p)).is_err(),
            "{p} was skipped yet restored"
        );
    }
    assert_same_tree_with(&capture(&src), &capture(&target), &opts);
}

/// Unmounts a filesystem when dropped, whatever happened in between.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        fs::create_dir_all(dir).unwrap();
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir),
        );
        Mount(dir.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `len` bytes of xorshift output: incompressible, and unique per `seed`.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_small_source(dir: &Path) {
    fs::create_dir_all(dir.join("docs")).unwrap();
    fs::write(
        dir.join("docs/ordonnance.txt"),
        "Paracetamol 1g, 3x/jour\n".repeat(100),
    )
    .unwrap();
    fs::write(dir.join("docs/random.bin"), random_bytes(1, 3000)).unwrap();
    fs::write(
        dir.join("stock.csv"),
        "cip;qte\n3400930000000;12\n".repeat(50),
    )
    .unwrap();
}

/// A full drive aborts the snapshot with exit 1 and a message saying the drive
/// is full, and loses nothing: the earlier snapshot still restores bit-exact,
/// `check` passes, no temporary file is left in `<repo>/tmp/`, no snapshot is
/// recorded for the failed run, and once the big files are gone a new snapshot
/// succeeds and restores bit-exact.
#[test]
fn full_drive_fails_cleanly_and_keeps_earlier_snapshots() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root to mount a tmpfs"
    );
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("drive");
    let _mount = Mount::tmpfs(&mnt, "4m");
    let repo = mnt.join("repo");
    init_repo(&repo);

    let small = tmp.path().join("small");
    write_small_source(&small);
    let out = run_ok(coffre(&repo).arg("--json").arg("snapshot").arg(&small));
    let first = json_strings(&text(&out.stdout), "id")
        .into_iter()
        .next()
        .expect("snapshot id");

    let big = tmp.path().join("big");
    write_small_source(&big);
    for i in 0..3 {
        fs::write(
            big.join(format!("scan{i}.raw")),
            random_bytes(100 + i, 4 << 20),
        )
        .unwrap();
    }
    let out = run(coffre(&repo).arg("snapshot").arg(&big));
    let msg = assert_error(&out, "snapshot onto a full drive");
    assert!(
        msg.contains("full"),
        "the message does not say the drive is full: {msg}"
    );
    let leftovers = walk(&repo.join("tmp"));
    assert!(
        leftovers.is_empty(),
        "files left in <repo>/tmp/ after the failed snapshot: {leftovers:?}"
    );
    assert_eq!(
        snapshot_ids(&repo),
        vec![first.clone()],
        "the failed snapshot was recorded, or the first one lost"
    );

    let restored = tmp.path().join("restored-first");
    run_ok(coffre(&repo).arg("restore").arg(&first).arg(&restored));
    assert_same_tree(&capture(&small), &capture(&restored));
    let out = run(coffre(&repo).arg("check"));
    assert_no_panic(&out, "check after a full drive");
    assert!(
        out.status.success(),
        "check fails after a full drive\n{}",
        describe(&out)
    );
    let out = run(coffre(&repo).arg("check").arg("--read-data"));
    assert!(
        out.status.success(),
        "check --read-data fails after a full drive\n{}",
        describe(&out)
    );

    for i in 0..3 {
        fs::remove_file(big.join(format!("scan{i}.raw"))).unwrap();
    }
    fs::write(big.join("note.txt"), "scans moved elsewhere\n").unwrap();
    let out = run(coffre(&repo).arg("--json").arg("snapshot").arg(&big));
    assert!(
        out.status.success(),
        "a snapshot after freeing the source fails\n{}",
        describe(&out)
    );
    let second = json_strings(&text(&out.stdout), "id")
        .into_iter()
        .next()
        .expect("snapshot id");
    let restored2 = tmp.path().join("restored-second");
    run_ok(coffre(&repo).arg("restore").arg(&second).arg(&restored2));
    assert_same_tree(&capture(&big), &capture(&restored2));
    run_ok(coffre(&repo).arg("check"));
}

/// Waits for `child` up to `limit`; kills it and panics on timeout.
fn wait_with_deadline(mut child: Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {limit:?}: killed (blocked on a fifo?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command with a deadline; stdout and stderr go to files so that no pipe
/// can fill up. Returns the status and both outputs.
fn run_with_deadline(cmd: &mut Command, dir: &Path, what: &str) -> Output {
    let (o, e) = (dir.join("stdout"), dir.join("stderr"));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(&o).unwrap())
        .stderr(fs::File::create(&e).unwrap())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {what}: {err}"));
    let status = wait_with_deadline(child, Duration::from_secs(60), what);
    Output {
        status,
        stdout: fs::read(&o).unwrap(),
        stderr: fs::read(&e).unwrap(),
    }
}

/// Fifos in the source (with no writer) are recorded without being opened:
/// the snapshot finishes (60 s deadline) with exit 0, `ls` shows them as fifos,
/// and restore recreates them as fifos with their mode and mtime, the whole
/// tree bit-exact.
#[test]
fn fifos_are_recorded_without_blocking_and_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("before.txt"), "a").unwrap();
    fs::write(src.join("sub/zz_after.txt"), "z").unwrap();
    for (p, mode) in [("canal.fifo", "600"), ("sub/other.fifo", "640")] {
        run_ok(Command::new("mkfifo").arg("-m").arg(mode).arg(src.join(p)));
    }
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let logs = tmp.path().join("logs");
    fs::create_dir(&logs).unwrap();

    let out = run_with_deadline(
        coffre(&repo).arg("snapshot").arg(&src),
        &logs,
        "snapshot of a source with fifos",
    );
    assert_no_panic(&out, "snapshot with fifos");
    assert!(
        out.status.success(),
        "snapshot with fifos failed\n{}",
        describe(&out)
    );

    let ls = run_ok(
        coffre(&repo)
            .arg("--json")
            .arg("ls")
            .arg("latest")
            .arg("-R"),
    );
    let listing = text(&ls.stdout);
    let paths = json_strings(&listing, "path");
    let types = json_strings(&listing, "type");
    for f in ["canal.fifo", "sub/other.fifo"] {
        let i = paths
            .iter()
            .position(|p| p == f)
            .unwrap_or_else(|| panic!("{f} not in the snapshot:\n{listing}"));
        assert_eq!(types[i], "fifo", "{f} recorded as {}", types[i]);
    }

    let target = tmp.path().join("restored");
    let out = run_with_deadline(
        coffre(&repo).arg("restore").arg("latest").arg(&target),
        &logs,
        "restore of fifos",
    );
    assert!(
        out.status.success(),
        "restore of fifos failed\n{}",
        describe(&out)
    );
    let restored = capture(&target);
    for f in ["canal.fifo", "sub/other.fifo"] {
        assert_eq!(
            restored.get(f).map(|e| e.kind),
            Some(Kind::Fifo),
            "{f} not restored as a fifo"
        );
    }
    assert_same_tree(&capture(&src), &restored);
}

/// A legitimately deep source (2000 nested directories: a path of about 4 KB, just
/// under Linux's PATH_MAX, so as deep as a real source goes) is snapshotted, and restoring it gives the tree back bit-exact:
/// no stack overflow, nothing backed up that cannot be restored.
#[test]
fn deep_directory_tree_round_trips() {
    const DEPTH: usize = 2000;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let mut deep = src.clone();
    for _ in 0..DEPTH {
        deep.push("d");
    }
    fs::create_dir_all(&deep).unwrap();
    fs::File::create(deep.join("leaf.txt"))
        .unwrap()
        .write_all(b"at the bottom\n")
        .unwrap();
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let out = run(coffre(&repo).arg("snapshot").arg(&src));
    assert_no_panic(&out, "snapshot of a deep tree");
    assert!(
        out.status.success(),
        "snapshot of a deep tree failed\n{}",
        describe(&out)
    );

    let out = run(coffre(&repo).arg("check"));
    assert_no_panic(&out, "check of a deep tree");
    assert!(
        out.status.success(),
        "check of a deep tree failed\n{}",
        describe(&out)
    );

    let target = tmp.path().join("restored");
    let out = run(coffre(&repo).arg("restore").arg("latest").arg(&target));
    assert_no_panic(&out, "restore of a deep tree");
    assert!(
        out.status.success(),
        "restore of a {DEPTH}-deep tree failed\n{}",
        describe(&out)
    );
    assert_same_tree(&capture(&src), &capture(&target));
}

/// Swaps two entries of a folder atomically (renameat2 RENAME_EXCHANGE).
fn exchange(a: &Path, b: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes()).unwrap();
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes()).unwrap();
    // SAFETY: two NUL-terminated paths; renameat2 touches nothing else.
    unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        ) == 0
    }
}

/// A user who owns a folder inside the source swaps its sub-folders for
/// symlinks to a root-only folder outside, over and over, while snapshots
/// run (the attack of issue 17, with RENAME_EXCHANGE instead of inotify so
/// that every instant is a candidate). The walk goes by directory
/// descriptors: no snapshot ever holds a byte from outside the source.
#[test]
fn folders_swapped_for_symlinks_during_the_walk_never_leak_outside_files() {
    const SECRET: &[u8] = b"root:$6$secret-hash-from-outside-the-source";
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init_repo(&repo);
    let outside = tmp.path().join("etc");
    fs::create_dir(&outside).unwrap();
    let src = tmp.path().join("officine");
    let user = src.join("utilisateur");
    const FOLDERS: usize = 64;
    for i in 0..FOLDERS {
        let d = user.join(format!("d{i}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("shadow"), format!("fichier ordinaire {i}")).unwrap();
        std::os::unix::fs::symlink(&outside, user.join(format!("l{i}"))).unwrap();
    }
    fs::write(outside.join("shadow"), SECRET).unwrap();
    fs::set_permissions(outside.join("shadow"), fs::Permissions::from_mode(0o600)).unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let user = user.clone();
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for i in 0..FOLDERS {
                    let d = user.join(format!("d{i}"));
                    let l = user.join(format!("l{i}"));
                    if exchange(&d, &l) {
                        swaps += 1;
                    }
                }
            }
            swaps
        })
    };
    let restored = tmp.path().join("restored");
    for run_no in 0..12 {
        let out = run(coffre(&repo).arg("snapshot").arg(&src));
        // Entries swapped mid-read may be skipped (exit 3); never a failure.
        assert!(
            matches!(out.status.code(), Some(0) | Some(3)),
            "snapshot {run_no}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let target = restored.join(run_no.to_string());
        run_ok(coffre(&repo).arg("restore").arg("latest").arg(&target));
        for rel in walk(&target) {
            let path = target.join(rel);
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_file() {
                assert_ne!(
                    fs::read(&path).unwrap(),
                    SECRET,
                    "snapshot {run_no} stored {} from outside the source",
                    path.display()
                );
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(
        swaps > 1000,
        "only {swaps} swaps: the race was not exercised"
    );
}
