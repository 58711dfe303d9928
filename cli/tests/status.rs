//! `coffre status` end to end with the real binary: each state (ok, stale,
//! failed, drive absent, nearly full) gives its line and exit code, and
//! `--notify` reaches a webhook receiver on loopback and the mail command.
//! Days pass through `COFFRE_FAKE_NOW`; the clock reads UTC (`TZ=UTC`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// Monday 2025-11-24 19:30 UTC.
const T0: i64 = 1_764_012_600;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

/// A pharmacy in a temporary folder: data to back up, a passphrase file,
/// a cache, a configuration naming the drive `lundi` and, with `notify`,
/// a `[notify]` section.
struct Site {
    dir: tempfile::TempDir,
    repo: PathBuf,
}

impl Site {
    fn new(notify: &str) -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("lundi/coffre");
        Site::with_repo(dir, repo, notify)
    }

    fn with_repo(dir: tempfile::TempDir, repo: PathBuf, notify: &str) -> Site {
        let s = Site { dir, repo };
        std::fs::create_dir_all(s.repo.parent().expect("parent")).expect("mkdir");
        std::fs::create_dir_all(s.p("src/ordonnances")).expect("mkdir");
        std::fs::write(s.p("src/ordonnances/a.txt"), "ordonnance 1").expect("write");
        std::fs::write(s.p("pass"), "status test passphrase\n").expect("write");
        s.config(&format!(
            "[[repository]]\nname = \"lundi\"\npath = \"{}\"\n{notify}",
            s.repo.display()
        ));
        s
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes the configuration: the passphrase file, `body` (drives,
    /// `[notify]`; `@DIR@` stands for the site's folder), the sources.
    fn config(&self, body: &str) {
        let d = self.dir.path().display().to_string();
        let text = format!(
            "password_file = \"{d}/pass\"\n{}\n[snapshot]\nsources = [\"{d}/src\"]\n",
            body.replace("@DIR@", &d)
        );
        std::fs::write(self.p("coffre.toml"), text).expect("config");
    }

    /// `coffre --config FILE ARGS` at `now`, with nothing from the
    /// caller's environment.
    fn run(&self, now: i64, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_coffre"))
            .arg("--config")
            .arg(self.p("coffre.toml"))
            .args(args)
            .env("COFFRE_CACHE_DIR", self.p("cache"))
            .env("COFFRE_CONFIG_DEFAULT", self.p("no-such-config.toml"))
            .env("COFFRE_FAKE_NOW", now.to_string())
            .env("TZ", "UTC")
            .env_remove("COFFRE_REPO")
            .env_remove("COFFRE_CONFIG")
            .env_remove("COFFRE_DRIVE")
            .env_remove("COFFRE_PASSWORD")
            .env_remove("COFFRE_PASSWORD_FILE")
            .stdin(Stdio::null())
            .output()
            .expect("run coffre")
    }

    fn ok(&self, now: i64, args: &[&str]) -> String {
        let out = self.run(now, args);
        assert!(
            out.status.success(),
            "coffre {args:?} failed: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `coffre status` (the host's disk is not judged: `--min-free 0%`):
    /// its exit code and output.
    fn status(&self, now: i64, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec!["status"];
        if !extra.contains(&"--min-free") {
            args.extend_from_slice(&["--min-free", "0%"]);
        }
        args.extend_from_slice(extra);
        let out = self.run(now, &args);
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout),
            text(&out.stderr),
        )
    }

    /// A repository with one snapshot taken at `T0`.
    fn with_snapshot(self) -> Site {
        self.ok(T0 - HOUR, &["init"]);
        self.ok(T0, &["snapshot"]);
        self
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[test]
fn ok_after_a_snapshot_then_stale_then_critical() {
    let site = Site::new("").with_snapshot();

    let (code, out, err) = site.status(T0 + 2 * HOUR, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        first_line(&out),
        "OK: last backup today at 19:30 on drive lundi (2 h ago)."
    );
    assert!(out.contains("Repository:   drive lundi"), "{out}");
    assert!(out.contains("1 snapshot(s)"), "{out}");
    assert!(out.contains("stale after 36h (critical after 3d"), "{out}");

    // Two days without a backup: past 36 h, not yet past 72 h.
    let (code, out, _) = site.status(T0 + 2 * DAY, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        first_line(&out).starts_with(
            "WARNING: no backup since Monday at 19:30 (2 days). Check that the computer stays on"
        ),
        "{out}"
    );

    // Four days: critical.
    let (code, out, _) = site.status(T0 + 4 * DAY, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        first_line(&out).starts_with(
            "CRITICAL: no backup since Monday at 19:30 (4 days). Call your IT provider"
        ),
        "{out}"
    );
    // A longer limit, from the flag.
    let (code, out, _) = site.status(T0 + 4 * DAY, &["--stale-after", "5d"]);
    assert_eq!(code, 0, "{out}");

    // Nine days: also never checked since the first backup.
    let out = site.run(T0 + 9 * DAY, &["status", "--min-free", "0%", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["state"], "critical");
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["problems"][0]["kind"], "stale");
    assert_eq!(v["problems"][1]["kind"], "check_overdue");
    assert_eq!(v["last_backup"]["drive"], "lundi");
    assert_eq!(v["last_backup"]["age_seconds"], 9 * DAY);
    assert_eq!(v["repository"]["snapshots"], 1);
    assert!(
        v["summary"]
            .as_str()
            .is_some_and(|s| s.ends_with(". Also 1 more problem, below.")),
        "{v}"
    );
}

#[test]
fn without_the_passphrase_it_says_what_it_cannot_read() {
    let site = Site::new("").with_snapshot();
    // The same configuration, without its password_file.
    let config = std::fs::read_to_string(site.p("coffre.toml")).expect("read");
    let without = config.lines().skip(1).collect::<Vec<_>>().join("\n");
    std::fs::write(site.p("coffre.toml"), without).expect("write");
    // As on a computer that did not take the backups (no record of runs).
    let _ = std::fs::remove_file(site.p("cache/runs.json"));
    let (code, out, err) = site.status(T0 + HOUR, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        first_line(&out).starts_with("WARNING: cannot tell when the last backup was made"),
        "{out}"
    );
    assert!(out.contains("snapshots not read: no passphrase"), "{out}");
}

#[test]
fn a_failed_run_is_critical() {
    let site = Site::new("").with_snapshot();
    // The record `coffre snapshot` leaves after a failure (runlog.rs).
    std::fs::write(
        site.p("cache/runs.json"),
        serde_json::json!({
            "version": 1,
            "runs": [{
                "command": "snapshot",
                "time": T0 + DAY,
                "result": "failed",
                "exit_code": 1,
                "error": "the --before command exited with code 2 (\"gel-base\"); no snapshot taken",
                "repository": site.repo,
                "drive": "lundi",
            }],
        })
        .to_string(),
    )
    .expect("write");
    let (code, out, _) = site.status(T0 + DAY + HOUR, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        first_line(&out).starts_with(
            "CRITICAL: the last backup failed (today at 19:30 on drive lundi): the --before command exited with code 2 (\"gel-base\"); no snapshot taken. Do what the message says"
        ),
        "{out}"
    );
    assert!(
        out.contains("Last backup:  2025-11-24 19:30 (1 day ago) on drive lundi")
            || out.contains("Last backup:  2025-11-24 19:30 (25 h ago) on drive lundi"),
        "{out}"
    );
}

/// Needs `coffre snapshot` to record its runs: `crate::runlog::after_snapshot`
/// called from cli/src/commands/snapshot.rs (see the report of the status
/// work). Remove the `ignore` once that call is in.
#[test]
fn a_failing_snapshot_is_critical_and_told_then_the_next_one_recovers() {
    let (url, requests) = receiver();
    let site = Site::new(&format!(
        "[notify]\nmail_to = \"pharmacie@example.fr\"\nmail_command = \"cat > '@DIR@/mail.txt'\"\nwebhook = \"{url}/ping/abc\"\n"
    ));
    site.ok(T0 - HOUR, &["init"]);
    std::fs::rename(site.p("src"), site.p("src-away")).expect("mv");
    let out = site.run(T0, &["snapshot"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let (path, body) = requests
        .recv_timeout(Duration::from_secs(10))
        .expect("a ping");
    assert_eq!(path, "/ping/abc/fail");
    assert!(body.contains("\"event\":\"snapshot\""), "{body}");
    let mail = std::fs::read_to_string(site.p("mail.txt")).expect("mail");
    assert!(
        mail.contains("Subject: [coffre] FAILED: The backup of "),
        "{mail}"
    );
    assert!(mail.contains("does not exist"), "{mail}");
    let (code, out, _) = site.status(T0 + HOUR, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        first_line(&out).starts_with("CRITICAL: the last backup failed (today at 19:30 on drive lundi): the folder to back up"),
        "{out}"
    );

    std::fs::rename(site.p("src-away"), site.p("src")).expect("mv");
    site.ok(T0 + 2 * HOUR, &["snapshot"]);
    let (path, _) = requests
        .recv_timeout(Duration::from_secs(10))
        .expect("a ping");
    assert_eq!(path, "/ping/abc");
    let mail = std::fs::read_to_string(site.p("mail.txt")).expect("mail");
    assert!(mail.contains("Subject: [coffre] OK again: "), "{mail}");
    let (code, out, _) = site.status(T0 + 3 * HOUR, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Last run:     snapshot 2025-11-24 21:30"),
        "{out}"
    );
}

#[test]
fn no_drive_plugged_in_is_critical_and_names_the_drives() {
    let site = Site::new("");
    site.config(&format!(
        "[[repository]]\nname = \"lundi\"\npath = \"{d}/absent-lundi/coffre\"\n\
         [[repository]]\nname = \"mardi\"\npath = \"{d}/absent-mardi/coffre\"\n",
        d = site.dir.path().display()
    ));
    let (code, out, _) = site.status(T0, &[]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(
        first_line(&out),
        "CRITICAL: no backup drive is plugged in (lundi, mardi). Plug in today's drive before the evening backup (and check that it is mounted)."
    );
    assert!(
        out.contains("Drives:       lundi: not plugged in: ")
            && out.contains("; mardi: not plugged in: "),
        "{out}"
    );
    // With -r, the folder itself.
    let out = site.run(
        T0,
        &[
            "-r",
            &site.p("nowhere/coffre").display().to_string(),
            "status",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stdout).starts_with("CRITICAL: the backup drive cannot be used: "),
        "{}",
        text(&out.stdout)
    );
}

/// Unmounts the small filesystem at the end of the test.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// `len` bytes that do not compress.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn a_nearly_full_drive_warns_then_is_critical_with_a_forecast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drive = dir.path().join("drive");
    std::fs::create_dir_all(&drive).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs"])
        .arg(&drive)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    }
    let _unmount = Mounted(drive.clone());
    let site = Site::with_repo(dir, drive.join("coffre"), "");
    std::fs::write(site.p("src/scan-1.pdf"), noise(3 << 20, 1)).expect("write");
    site.ok(T0 - HOUR, &["init"]);
    site.ok(T0, &["snapshot"]);

    // One snapshot: no growth known yet, only the share that is free.
    let (code, out, err) = site.status(T0 + HOUR, &["--min-free", "70%"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        first_line(&out).starts_with("WARNING: drive lundi is nearly full: "),
        "{out}"
    );
    assert!(out.contains("Free space:"), "{out}");

    // A day later, 3 MiB more: at that rate, full within the day.
    std::fs::write(site.p("src/scan-2.pdf"), noise(3 << 20, 2)).expect("write");
    site.ok(T0 + DAY, &["snapshot"]);
    let out = site.run(T0 + DAY + HOUR, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["problems"][0]["kind"], "nearly_full");
    let growth = v["space"]["daily_growth_bytes"].as_u64().expect("growth");
    assert!((3 << 20..4 << 20).contains(&growth), "{v}");
    assert!(
        v["space"]["days_until_full"].as_f64().expect("days") < 1.0,
        "{v}"
    );
    let summary = v["summary"].as_str().expect("summary");
    assert!(
        summary.starts_with("CRITICAL: drive lundi will be full within a day (")
            && summary.contains("about 3.0 MiB more each day"),
        "{summary}"
    );
}

/// A web server on loopback: each request's path and body, in order.
fn receiver() -> (String, Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut length = 0;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
            let mut words = request_line.split_whitespace();
            assert_eq!(words.next(), Some("POST"));
            let path = words.next().unwrap_or("").to_string();
            if tx.send((path, text(&body))).is_err() {
                break;
            }
        }
    });
    (url, rx)
}

/// The next ping sent by `coffre status` (the snapshots' own are passed).
fn status_ping(requests: &Receiver<(String, String)>) -> (String, serde_json::Value) {
    loop {
        let (path, body) = requests
            .recv_timeout(Duration::from_secs(10))
            .expect("a ping");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json body");
        if v["event"] == "status" {
            return (path, v);
        }
    }
}

#[test]
fn the_webhook_gets_the_ping_and_the_fail_ping() {
    let (url, requests) = receiver();
    let site = Site::new(&format!("[notify]\nwebhook = \"{url}/ping/abc\"\n")).with_snapshot();

    let (code, out, err) = site.status(T0 + HOUR, &["--notify"]);
    assert_eq!(code, 0, "{out}{err}");
    let (path, v) = status_ping(&requests);
    assert_eq!(path, "/ping/abc");
    assert_eq!(v["state"], "ok");
    assert_eq!(v["summary"], first_line(&out));
    assert!(
        err.contains(&format!("Notified: webhook {url}/ping/abc.")),
        "{err}"
    );

    let (code, _, _) = site.status(T0 + 2 * DAY, &["--notify"]);
    assert_eq!(code, 1);
    let (path, v) = status_ping(&requests);
    assert_eq!(path, "/ping/abc/fail");
    assert_eq!(v["state"], "warning");
    assert_eq!(v["status"]["problems"][0]["kind"], "stale");

    // A receiver that is gone: a warning, the exit code unchanged.
    drop(requests);
    let site2 = Site::new("[notify]\nwebhook = \"http://127.0.0.1:9/ping\"\n").with_snapshot();
    let (code, _, err) = site2.status(T0 + HOUR, &["--notify"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: could not call the webhook http://127.0.0.1:9/ping"),
        "{err}"
    );
}

#[test]
fn the_mail_command_gets_the_message() {
    let site = Site::new(
        "[notify]\nmail_to = \"pharmacie@example.fr\"\nmail_command = \"cat > '@DIR@/mail.txt'\"\n",
    )
    .with_snapshot();
    // All is well: no mail.
    let (code, _, err) = site.status(T0 + HOUR, &["--notify"]);
    assert_eq!(code, 0, "{err}");
    assert!(!site.p("mail.txt").exists());

    let (code, out, err) = site.status(T0 + 2 * DAY, &["--notify"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("Notified: mail to pharmacie@example.fr."),
        "{err}"
    );
    let mail = std::fs::read_to_string(site.p("mail.txt")).expect("the mail");
    let (headers, body) = mail.split_once("\n\n").expect("headers, blank line, body");
    assert!(headers.starts_with("To: pharmacie@example.fr\n"), "{mail}");
    assert!(
        headers.contains("\nSubject: [coffre] WARNING on ")
            && headers.contains(": no backup since Monday at 19:30 (2 days).\n"),
        "{mail}"
    );
    assert!(
        headers.contains("\nDate: Wed, 26 Nov 2025 19:30:00 +0000\n"),
        "{mail}"
    );
    assert!(
        headers.contains("\nContent-Type: text/plain; charset=utf-8\n"),
        "{mail}"
    );
    assert!(
        body.starts_with("WARNING: no backup since Monday at 19:30 (2 days)."),
        "{mail}"
    );
    assert!(body.contains("Last backup:  2025-11-24 19:30"), "{mail}");

    // A mail command that fails: a warning, the exit code unchanged.
    site.config(&format!(
        "[[repository]]\nname = \"lundi\"\npath = \"{}\"\n[notify]\nmail_to = \"x@example.fr\"\nmail_command = \"echo refused >&2; exit 75\"\n",
        site.repo.display()
    ));
    let (code, _, err) = site.status(T0 + 2 * DAY, &["--notify"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("warning: could not send the mail to x@example.fr: the mail command"),
        "{err}"
    );
    assert!(err.contains("refused"), "{err}");
}
