//! `coffre schedule install|show|remove` into a temporary unit folder:
//! systemd is never asked to do anything (only its own folders are
//! enabled), and `systemd-analyze verify` checks the units when installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// A configuration with one fixed repository folder, one source and a
    /// retention rule; `extra` is appended.
    fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("src")).expect("mkdir");
        std::fs::write(
            dir.path().join("coffre.toml"),
            format!(
                "password_file = \"{d}/pass\"\n\
                 [[repository]]\nname = \"usb\"\npath = \"{d}/usb/coffre\"\n\
                 [snapshot]\nsources = [\"{d}/src\"]\n\
                 [retention]\nkeep_daily = 7\n{extra}"
            ),
        )
        .expect("write");
        Setup { dir }
    }

    fn units(&self) -> PathBuf {
        self.dir.path().join("units")
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffre"));
        cmd.arg("--config")
            .arg(self.dir.path().join("coffre.toml"))
            .args(args)
            .arg("--unit-dir")
            .arg(self.units())
            .env("COFFRE_CONFIG_DEFAULT", self.dir.path().join("none.toml"))
            .env_remove("COFFRE_CONFIG")
            .env_remove("COFFRE_REPO")
            .stdin(Stdio::null());
        cmd.output().expect("run coffre")
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.units().join(name)).expect("unit file")
    }
}

#[track_caller]
fn ok(out: &Output) -> String {
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(0), "stdout: {o}\nstderr: {e}");
    o
}

/// `systemd-analyze verify` on the units, when systemd's tools are here.
fn verify(units: &Path) {
    let files: Vec<PathBuf> = [
        "coffre-snapshot.service",
        "coffre-snapshot.timer",
        "coffre-status.service",
        "coffre-status.timer",
        "coffre-verify.service",
        "coffre-verify.timer",
    ]
    .iter()
    .map(|n| units.join(n))
    .filter(|p| p.exists())
    .collect();
    match Command::new("systemd-analyze")
        .arg("verify")
        .args(&files)
        .output()
    {
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "systemd-analyze verify: {err}");
            // It warns without failing on some mistakes (unknown keys):
            // none about our units is acceptable.
            assert!(
                !err.contains("coffre-snapshot")
                    && !err.contains("coffre-status")
                    && !err.contains("coffre-verify"),
                "systemd-analyze verify: {err}"
            );
        }
        Err(e) => eprintln!(
            "SKIPPED: systemd-analyze verify ({e}); install the `systemd` package to run it"
        ),
    }
}

#[test]
fn install_show_remove() {
    let s = Setup::new("");
    let out = s.run(&[
        "schedule",
        "install",
        "--at",
        "20:30",
        "--weekdays",
        "mon-fri",
        "--no-enable",
    ]);
    let o = ok(&out);
    assert!(o.contains("OnCalendar=Mon..Fri *-*-* 20:30:00"), "{o}");
    assert!(
        o.contains("systemctl enable --now coffre-snapshot.timer"),
        "{o}"
    );

    let timer = s.read("coffre-snapshot.timer");
    for line in [
        "OnCalendar=Mon..Fri *-*-* 20:30:00",
        "Persistent=true",
        "RandomizedDelaySec=",
        "WantedBy=timers.target",
    ] {
        assert!(timer.contains(line), "{line} missing from:\n{timer}");
    }
    let service = s.read("coffre-snapshot.service");
    let coffre = env!("CARGO_BIN_EXE_coffre");
    let config = s.dir.path().join("coffre.toml");
    let d = s.dir.path().display();
    for line in [
        format!(
            "ExecStart={coffre} --config {} snapshot\n",
            config.display()
        ),
        format!(
            "ExecStartPost={coffre} --config {} forget --prune\n",
            config.display()
        ),
        "Type=oneshot\n".to_string(),
        "Nice=10\n".to_string(),
        "IOSchedulingClass=idle\n".to_string(),
        "SuccessExitStatus=3\n".to_string(),
        format!("RequiresMountsFor={d}/src\n"),
        format!("RequiresMountsFor={d}/usb/coffre\n"),
    ] {
        assert!(service.contains(&line), "{line} missing from:\n{service}");
    }
    assert!(!service.contains("Environment="), "{service}");
    assert!(!service.contains("User="), "{service}");
    verify(&s.units());

    let o = ok(&s.run(&["schedule", "show"]));
    assert!(o.contains("OnCalendar=Mon..Fri *-*-* 20:30:00"), "{o}");
    assert!(o.contains("snapshot"), "{o}");

    let o = ok(&s.run(&["schedule", "remove"]));
    assert!(o.contains("Removed"), "{o}");
    assert!(o.contains("coffre-snapshot.timer"), "{o}");
    assert!(o.contains("coffre-snapshot.service"), "{o}");
    assert!(!s.units().join("coffre-snapshot.timer").exists());
    assert!(!s.units().join("coffre-snapshot.service").exists());
    // Again: nothing to do, not an error.
    let o = ok(&s.run(&["schedule", "remove"]));
    assert!(o.contains("Nothing to remove"), "{o}");
    let o = ok(&s.run(&["schedule", "show"]));
    assert!(o.contains("No Coffre schedule"), "{o}");
}

#[test]
fn the_configuration_gives_the_schedule() {
    let s = Setup::new("[schedule]\nat = \"19:45\"\nweekdays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\"]\nverify = \"check\"\n");
    // Without --no-enable: a folder systemd does not read is never handed
    // to systemctl; the commands to run are printed instead.
    let o = ok(&s.run(&["schedule", "install"]));
    assert!(o.contains("systemctl"), "{o}");
    let timer = s.read("coffre-snapshot.timer");
    assert!(
        timer.contains("OnCalendar=Mon..Sat *-*-* 19:45:00\n"),
        "{timer}"
    );
    let service = s.read("coffre-snapshot.service");
    assert!(service.contains(" check\n"), "{service}");
    verify(&s.units());
    // A flag beats the file.
    ok(&s.run(&["schedule", "install", "--at", "07:00", "--no-enable"]));
    let timer = s.read("coffre-snapshot.timer");
    assert!(
        timer.contains("OnCalendar=Mon..Sat *-*-* 07:00:00\n"),
        "{timer}"
    );
}

#[test]
fn bad_times_and_days_are_refused() {
    let s = Setup::new("");
    for (args, words) in [
        (&["--at", "25:00"][..], "invalid time \"25:00\""),
        (
            &["--at", "20:30", "--weekdays", "mon-fry"][..],
            "invalid weekday",
        ),
        (&[][..], "Give --at HH:MM"),
        (
            &["--at", "20:30", "--user", "no-such-user-xyz"][..],
            "no such user",
        ),
    ] {
        let mut a = vec!["schedule", "install", "--no-enable"];
        a.extend_from_slice(args);
        let out = s.run(&a);
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {e}");
        assert!(e.contains(words), "{args:?}: {e}");
    }
    assert!(!s.units().join("coffre-snapshot.timer").exists());
}

/// With someone to tell ([notify]), install adds the daily status check
/// (so that a backup that never ran is told too); remove takes it away.
#[test]
fn a_notify_section_adds_the_daily_status_check() {
    let s = Setup::new("[notify]\nwebhook = \"http://127.0.0.1:9/ping\"\n");
    let o = ok(&s.run(&[
        "schedule",
        "install",
        "--at",
        "20:30",
        "--weekdays",
        "mon-sat",
        "--no-enable",
    ]));
    assert!(o.contains("Status check"), "{o}");
    assert!(o.contains("coffre-status.timer"), "{o}");
    let timer = s.read("coffre-status.timer");
    assert!(
        timer.contains("OnCalendar=Mon..Sat *-*-* 17:00:00"),
        "{timer}"
    );
    let service = s.read("coffre-status.service");
    let config = s.dir.path().join("coffre.toml");
    assert!(
        service.contains(&format!(
            "ExecStart={} --config {} status --notify\n",
            env!("CARGO_BIN_EXE_coffre"),
            config.display()
        )),
        "{service}"
    );
    assert!(service.contains("SuccessExitStatus=1 2"), "{service}");
    verify(&s.units());
    let o = ok(&s.run(&["schedule", "show"]));
    assert!(o.contains("coffre-status.timer"), "{o}");
    ok(&s.run(&[
        "schedule",
        "install",
        "--at",
        "20:30",
        "--weekdays",
        "mon-sat",
        "--status-at",
        "8:15",
        "--no-enable",
    ]));
    let timer = s.read("coffre-status.timer");
    assert!(
        timer.contains("OnCalendar=Mon..Sat *-*-* 08:15:00"),
        "{timer}"
    );
    ok(&s.run(&["schedule", "remove"]));
    assert!(!s.units().join("coffre-status.timer").exists());
    assert!(!s.units().join("coffre-status.service").exists());

    // Without [notify], nobody would be told: no status check.
    let quiet = Setup::new("");
    let o = ok(&quiet.run(&["schedule", "install", "--at", "20:30", "--no-enable"]));
    assert!(o.contains("No daily status check"), "{o}");
    assert!(!quiet.units().join("coffre-status.timer").exists());
}

#[test]
fn a_weekly_restore_test_gets_its_own_timer() {
    let s = Setup::new(
        "[schedule]\nat = \"20:30\"\nweekdays = \"mon-sat\"\nrestore_test = \"weekly\"\nrestore_test_include = [\"db/\"]\n",
    );
    let o = ok(&s.run(&["schedule", "install", "--no-enable"]));
    assert!(o.contains("Restore test weekly"), "{o}");
    let service = s.read("coffre-verify.service");
    assert!(
        service.contains(" verify --sample 2% --include db/\n"),
        "{service}"
    );
    let timer = s.read("coffre-verify.timer");
    assert!(timer.contains("OnCalendar=Mon *-*-* 19:30:00"), "{timer}");
    verify(&s.units());
    let o = ok(&s.run(&["schedule", "show"]));
    assert!(o.contains("coffre-verify.timer"), "{o}");
    // Turned off from the command line: the units go.
    ok(&s.run(&[
        "schedule",
        "install",
        "--restore-test",
        "off",
        "--no-enable",
    ]));
    assert!(!s.units().join("coffre-verify.timer").exists());
    ok(&s.run(&[
        "schedule",
        "install",
        "--restore-test",
        "weekly",
        "--no-enable",
    ]));
    ok(&s.run(&["schedule", "remove"]));
    assert!(!s.units().join("coffre-verify.service").exists());
}
