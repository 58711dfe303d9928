//! Races between Coffre's own commands (issue 17): snapshot, prune, check,
//! copy and mount started together in many orders on one repository, and
//! locks taken from two pid namespaces of one host (same host name).
//!
//! What must hold: every command either proceeds (perhaps after waiting on
//! a lock) or fails naming the lock holder, within a deadline (no
//! deadlock); afterwards `check --read-data` passes on both repositories and
//! every snapshot restores bit-exact; a mount shows a snapshot bit-exact
//! while prune runs; a lock held by a live process (stopped, or in another
//! pid namespace) is never cleared, and one left by a killed process is
//! cleared by the next command that can prove it dead.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use coffre_tests::mount::Mounted;
use coffre_tests::{
    capture, coffre_bin, describe, diff_trees, json_string_field, json_string_fields, run,
    sample_day, sample_init, text, Coffre, Rng, TreeImage, TEST_PASSWORD,
};

/// Longest any one command may take, waiting on locks included.
const DEADLINE: Duration = Duration::from_secs(240);

/// The five commands raced.
const OPS: [&str; 5] = ["snapshot", "prune", "check", "copy", "mount"];

/// Waits for `child` until `DEADLINE`; kills it and panics (a deadlock)
/// when it is still running then. Output goes to files: no pipe fills up.
fn finish(mut child: Child, logs: &Path, what: &str) -> Output {
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {DEADLINE:?}: deadlock?");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: fs::read(logs.with_extension("out")).unwrap_or_default(),
        stderr: fs::read(logs.with_extension("err")).unwrap_or_default(),
    }
}

/// Starts `cmd` with its output going to `logs`.out/.err.
fn spawn(cmd: &mut Command, logs: &Path) -> Child {
    cmd.stdout(fs::File::create(logs.with_extension("out")).unwrap())
        .stderr(fs::File::create(logs.with_extension("err")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// Whether `image` equals one of `known` (by content, modes, times).
fn matches_one(image: &TreeImage, known: &BTreeMap<String, TreeImage>) -> bool {
    known.values().any(|k| diff_trees(k, image).is_empty())
}

/// The orders to run: every permutation when COFFRE_RACE_ORDERS=all, else
/// COFFRE_RACE_TRIALS (default 12) seeded random ones (COFFRE_RACE_SEED).
fn orders() -> Vec<Vec<usize>> {
    fn permutations(items: Vec<usize>) -> Vec<Vec<usize>> {
        if items.len() <= 1 {
            return vec![items];
        }
        let mut out = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.clone();
            let first = rest.remove(i);
            for mut p in permutations(rest) {
                p.insert(0, first);
                out.push(p);
            }
        }
        out
    }
    let all = permutations((0..OPS.len()).collect());
    if std::env::var("COFFRE_RACE_ORDERS").as_deref() == Ok("all") {
        return all;
    }
    let trials: usize = std::env::var("COFFRE_RACE_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("COFFRE_RACE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(17);
    let mut rng = Rng::derive(seed, "race-orders", &[]);
    (0..trials)
        .map(|_| all[rng.below(all.len() as u64) as usize].clone())
        .collect()
}

/// Snapshot, prune (`forget --keep-last 3 --prune`), check, copy to a
/// second repository and a mount reading `latest` whole, started in each
/// order of [`orders`] with seeded staggers of 0–250 ms, the source changing
/// between rounds. Each command must succeed within its deadline (waiting on
/// locks as needed), or give up safely naming the holder (prune refuses to
/// delete when another command's lock appeared while it marked); the mount shows a snapshot bit-exact; at the end both
/// repositories pass `check --read-data` and every snapshot they hold
/// restores bit-exact to the source as it was when it was taken.
#[test]
fn snapshot_prune_check_copy_and_mount_in_any_order_keep_the_repository_sound() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("officine");
    sample_init(&src, 4);
    let a = Coffre::new(tmp.path().join("repo"));
    a.init();
    let b_path = tmp.path().join("copy");
    let mut known: BTreeMap<String, TreeImage> = BTreeMap::new();
    // A copied snapshot gets an id of its own on the target: its time
    // tells which one it is.
    let mut times: BTreeMap<String, String> = BTreeMap::new();
    let first = a.ok([OsStr::new("--json"), "snapshot".as_ref(), src.as_os_str()]);
    let id = json_string_field(&first, "id").expect("snapshot id");
    times.insert(json_string_field(&first, "time").expect("time"), id.clone());
    known.insert(id, capture(&src));
    let logs = tmp.path().join("logs");
    fs::create_dir(&logs).unwrap();
    let orders = orders();
    let seed: u64 = std::env::var("COFFRE_RACE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(17);
    let mut rng = Rng::derive(seed, "race-staggers", &[]);
    let mut waited = 0u32;
    let mut refused = 0u32;
    let started = Instant::now();
    for (round, order) in orders.iter().enumerate() {
        sample_day(&src, round as u32 + 1);
        let image = capture(&src);
        let names: Vec<&str> = order.iter().map(|&i| OPS[i]).collect();
        let what = format!("round {round} ({})", names.join(" "));
        let mut children: Vec<(&str, Child, PathBuf)> = Vec::new();
        let mut mount: Option<(Mounted, PathBuf)> = None;
        for &op in &names {
            std::thread::sleep(Duration::from_millis(rng.below(250)));
            let log = logs.join(format!("{round}-{op}"));
            let wait = ["--lock-wait".as_ref(), OsStr::new("200s")];
            let child = match op {
                "snapshot" => {
                    let mut c = a.cmd(wait);
                    c.args(["--json".as_ref(), "snapshot".as_ref(), src.as_os_str()]);
                    spawn(&mut c, &log)
                }
                "prune" => {
                    let mut c = a.cmd(wait);
                    c.args(["forget", "--keep-last", "3", "--prune"]);
                    spawn(&mut c, &log)
                }
                "check" => {
                    let mut c = a.cmd(wait);
                    c.arg("check");
                    spawn(&mut c, &log)
                }
                "copy" => {
                    let mut c = a.cmd(wait);
                    c.arg("copy")
                        .arg("--to")
                        .arg(&b_path)
                        .env("COFFRE_TO_PASSWORD", TEST_PASSWORD);
                    spawn(&mut c, &log)
                }
                _ => {
                    // The mount runs in the foreground of its own child;
                    // reading it whole happens once all are started.
                    let path = tmp.path().join(format!("mnt-{round}"));
                    mount = Some((Mounted::start(&a, &path, &[]), path));
                    continue;
                }
            };
            children.push((op, child, log));
        }
        if let Some((m, path)) = mount.take() {
            let shown = capture(&path.join("latest"));
            assert!(
                matches_one(&shown, &known) || diff_trees(&image, &shown).is_empty(),
                "{what}: the mount's latest is no snapshot's state"
            );
            m.stop();
            fs::remove_dir(&path).unwrap();
        }
        for (op, child, log) in children {
            let out = finish(child, &log, &format!("{what}: {op}"));
            let err = text(&out.stderr);
            if !out.status.success() {
                // Allowed: giving up safely, naming the other command (prune
                // refuses to delete when a lock appeared while it marked).
                assert!(
                    out.status.code() == Some(1)
                        && err.contains("(pid ")
                        && err.contains("nothing was deleted"),
                    "{what}: {op} failed\n{}",
                    describe(&out)
                );
                refused += 1;
                continue;
            }
            if err.contains("waiting") || err.contains("Waiting") {
                waited += 1;
            }
            if op == "snapshot" {
                let rec = text(&out.stdout);
                let id = json_string_field(&rec, "id")
                    .unwrap_or_else(|| panic!("{what}: no snapshot id\n{}", describe(&out)));
                if let Some(time) = json_string_field(&rec, "time") {
                    times.insert(time, id.clone());
                }
                known.insert(id, image.clone());
            }
        }
        println!("race round {round}: {} ok", names.join(" "));
    }
    let elapsed = started.elapsed();

    // Afterwards: both repositories sound, every snapshot bit-exact.
    let b = Coffre::new(&b_path);
    for (name, repo) in [("repository", &a), ("copy", &b)] {
        let out = run(&mut repo.cmd(["check", "--read-data"]));
        assert!(
            out.status.success(),
            "{name}: check --read-data fails\n{}",
            describe(&out)
        );
        let listing = repo.ok(["--json", "snapshots"]);
        let listed = json_string_fields(&listing, "id");
        let when = json_string_fields(&listing, "time");
        assert!(!listed.is_empty(), "{name}: no snapshot left");
        assert_eq!(listed.len(), when.len(), "{listing}");
        for (id, time) in listed.into_iter().zip(when) {
            let want = known
                .get(&id)
                .or_else(|| times.get(&time).and_then(|i| known.get(i)))
                .unwrap_or_else(|| panic!("{name}: snapshot {id} ({time}) was never taken"));
            let target = tmp.path().join(format!("restore-{name}-{id}"));
            repo.restore(&id, &target);
            let diffs = diff_trees(want, &capture(&target));
            assert!(
                diffs.is_empty(),
                "{name}: snapshot {id} does not restore bit-exact: {diffs:?}"
            );
            fs::remove_dir_all(&target).unwrap();
        }
    }
    println!(
        "race: {} orders of {{{}}}, all passed in {:.0?} ({waited} commands waited on a lock, {refused} gave up naming the holder)",
        orders.len(),
        OPS.join(", "),
        elapsed
    );
}

/// Whether `unshare` can make a pid namespace here.
fn can_unshare() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `coffre` (with the test passphrase and repository of `c`) run as pid 1's
/// child in a new pid namespace, with its own /proc; the host name is the
/// host's.
fn in_new_pid_ns(c: &Coffre, args: &[&str]) -> Command {
    let inner = c.cmd(args);
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(coffre_bin())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// The host pid of the `coffre` process that `unshare` (host pid
/// `unshare_pid`) forked, once it exists.
fn child_of(unshare_pid: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let after = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
            let ppid: Option<u32> = after.split(' ').nth(1).and_then(|p| p.parse().ok());
            if ppid == Some(unshare_pid) {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "unshare started no child");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn lock_files(repo: &Path) -> Vec<String> {
    fs::read_dir(repo.join("locks"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until prune (a stopped or running process) has its lock file.
fn wait_for_lock(repo: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(x) = lock_files(repo).into_iter().find(|n| n.starts_with("x-")) {
            return x;
        }
        assert!(Instant::now() < deadline, "prune took no lock");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling a process this test started.
    assert_eq!(
        unsafe { libc::kill(pid as i32, sig) },
        0,
        "kill {pid} {sig}"
    );
}

/// Prune's lock held by a live process in another pid namespace of this
/// host (same host name; the process stopped with SIGSTOP so it holds the
/// lock as long as needed) is never cleared: a snapshot from the host and
/// one from a third namespace give up after --lock-wait naming `prune`, and
/// `unlock` (without --all) from either keeps it. Continued, prune ends and
/// the snapshot proceeds. Killed (SIGKILL, its namespace gone), its lock is
/// still never judged dead from elsewhere (the holder cannot be seen), the
/// message says to run `unlock --all`, which clears it. In one namespace, a
/// killed prune's lock is cleared by the next command there, and on the
/// host a SIGKILLed prune's lock by the next host command.
#[test]
fn locks_across_pid_namespaces_with_one_host_name() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "needs root for unshare");
    assert!(
        can_unshare(),
        "unshare --pid --fork --mount-proc fails here"
    );
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("officine");
    sample_init(&src, 4);
    let c = Coffre::new(tmp.path().join("repo"));
    c.init();
    c.snapshot(&src);
    let short_snapshot = |cmd: &mut Command| {
        let out = run(cmd);
        assert_eq!(
            out.status.code(),
            Some(1),
            "a snapshot went ahead under a live prune's lock\n{}",
            describe(&out)
        );
        assert!(
            text(&out.stderr).contains("prune (pid"),
            "the holder is not named\n{}",
            describe(&out)
        );
        out
    };
    let src_s = src.to_str().unwrap();
    let snapshot_args = ["--lock-wait", "2s", "snapshot", src_s];

    // 1. Live in namespace A, stopped: never cleared from elsewhere.
    let logs = tmp.path().join("ns-a");
    let unshare = spawn(
        in_new_pid_ns(&c, &["prune"]).env("COFFRE_TEST_PRUNE_PAUSE", "marked"),
        &logs,
    );
    let holder = child_of(unshare.id());
    let lock = wait_for_lock(&c.repo);
    signal(holder, libc::SIGSTOP);
    short_snapshot(c.cmd(snapshot_args).stdin(Stdio::null()));
    short_snapshot(&mut in_new_pid_ns(&c, &snapshot_args));
    c.ok(["unlock"]);
    run(&mut in_new_pid_ns(&c, &["unlock"]));
    assert!(
        lock_files(&c.repo).contains(&lock),
        "a live holder's lock was cleared"
    );
    signal(holder, libc::SIGCONT);
    let out = finish(unshare, &logs, "prune in namespace A");
    assert!(out.status.success(), "prune failed\n{}", describe(&out));
    let out = run(&mut in_new_pid_ns(
        &c,
        &["--lock-wait", "60s", "snapshot", src_s],
    ));
    assert!(
        out.status.success(),
        "snapshot after prune ended\n{}",
        describe(&out)
    );

    // 2. Killed in namespace A: not provably dead from elsewhere.
    let unshare = spawn(
        in_new_pid_ns(&c, &["prune"]).env("COFFRE_TEST_PRUNE_PAUSE", "marked"),
        &logs,
    );
    let holder = child_of(unshare.id());
    let lock = wait_for_lock(&c.repo);
    signal(holder, libc::SIGSTOP);
    signal(holder, libc::SIGKILL);
    let _ = finish(unshare, &logs, "killed prune in namespace A");
    let out = short_snapshot(c.cmd(snapshot_args).stdin(Stdio::null()));
    assert!(
        text(&out.stderr).contains("unlock --all"),
        "the message does not say how to clear it\n{}",
        describe(&out)
    );
    assert!(lock_files(&c.repo).contains(&lock));
    c.ok(["unlock", "--all"]);
    assert!(lock_files(&c.repo).is_empty(), "unlock --all left locks");

    // 3. Killed and next command in the same namespace: cleared there.
    let script = format!(
        "COFFRE_TEST_PRUNE_ABORT=marked {bin} -r {repo} prune; \
         test -n \"$(ls {repo}/locks)\" || exit 7; \
         exec {bin} -r {repo} --lock-wait 2s snapshot {src_s}",
        bin = coffre_bin().display(),
        repo = c.repo.display(),
    );
    let inner = c.cmd(["x"]);
    let mut sh = Command::new("unshare");
    sh.args([
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "sh",
        "-c",
    ])
    .arg(&script)
    .stdin(Stdio::null());
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    let out = run(&mut sh);
    assert!(
        out.status.success(),
        "in one namespace, the dead prune's lock was not cleared\n{}",
        describe(&out)
    );
    assert!(lock_files(&c.repo).is_empty());

    // 4. On the host: a SIGKILLed prune's lock is cleared by the next command.
    let mut prune = c.cmd(["prune"]);
    prune.env("COFFRE_TEST_PRUNE_PAUSE", "marked");
    let child = spawn(&mut prune, &tmp.path().join("host-prune"));
    let lock = wait_for_lock(&c.repo);
    signal(child.id(), libc::SIGSTOP);
    short_snapshot(c.cmd(snapshot_args).stdin(Stdio::null()));
    signal(child.id(), libc::SIGKILL);
    let _ = finish(child, &tmp.path().join("host-prune"), "killed host prune");
    assert!(lock_files(&c.repo).contains(&lock));
    c.ok(snapshot_args);
    assert!(
        lock_files(&c.repo).is_empty(),
        "the killed prune's lock stayed"
    );
    c.ok(["check", "--read-data"]);
}
