//! The configuration file drives the commands: the repository on the drive
//! that is there, the passphrase file, the cache folder, the retention
//! rules; and a wrong file is refused with the line of the mistake.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A configuration in a temporary folder: two drives (`lundi` absent,
/// `mardi` present), a passphrase file, a cache, a source folder.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Setup { dir };
        std::fs::create_dir_all(s.p("mardi")).expect("mkdir");
        std::fs::create_dir_all(s.p("src/ordonnances")).expect("mkdir");
        std::fs::write(s.p("src/ordonnances/a.txt"), "ordonnance 1").expect("write");
        std::fs::write(s.p("pass"), "une phrase secrète\n").expect("write");
        s.write_config(&format!(
            "# test configuration\n\
             password_file = \"{d}/pass\"\n\
             cache_dir = \"{d}/cache\"\n\
             \n\
             [[repository]]\n\
             name = \"lundi\"\n\
             path = \"{d}/lundi/coffre\"\n\
             \n\
             [[repository]]\n\
             name = \"mardi\"\n\
             path = \"{d}/mardi/coffre\"\n\
             \n\
             [snapshot]\n\
             sources = [\"{d}/src\"]\n\
             \n\
             [retention]\n\
             keep_last = 1\n",
            d = s.dir.path().display()
        ));
        s
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn config(&self) -> PathBuf {
        self.p("coffre.toml")
    }

    fn write_config(&self, text: &str) {
        std::fs::write(self.config(), text).expect("write config");
    }

    /// `coffre --config FILE ARGS`, with nothing from the caller's
    /// environment that could choose a repository or a passphrase.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffre"));
        cmd.arg("--config").arg(self.config()).args(args);
        clean_env(&mut cmd, self.dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run coffre")
    }
}

fn clean_env(cmd: &mut Command, dir: &Path) {
    for var in [
        "COFFRE_REPO",
        "COFFRE_CONFIG",
        "COFFRE_DRIVE",
        "COFFRE_PASSWORD",
        "COFFRE_PASSWORD_FILE",
        "COFFRE_CACHE_DIR",
        "COFFRE_FAKE_NOW",
    ] {
        cmd.env_remove(var);
    }
    // Never the machine's own /etc/coffre/coffre.toml.
    cmd.env("COFFRE_CONFIG_DEFAULT", dir.join("no-default.toml"));
    cmd.env("HOME", dir.join("home"));
    cmd.env_remove("XDG_CACHE_HOME");
    cmd.stdin(Stdio::null());
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn ok(out: &Output) -> (String, String) {
    let t = text(out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        t.0,
        t.1
    );
    t
}

#[track_caller]
fn fails(out: &Output) -> String {
    let (o, e) = text(out);
    assert_eq!(out.status.code(), Some(1), "stdout: {o}\nstderr: {e}");
    e
}

fn snapshot_count(s: &Setup, extra: &[&str]) -> usize {
    let mut args = extra.to_vec();
    args.extend(["--json", "snapshots"]);
    let (o, _) = ok(&s.run(&args));
    let v: serde_json::Value = serde_json::from_str(&o).expect("json");
    v.as_array()
        .or_else(|| v.get("snapshots").and_then(|s| s.as_array()))
        .map_or(0, |a| a.len())
}

#[test]
fn a_full_configuration_drives_init_snapshot_and_forget() {
    let s = Setup::new();
    let (o, _) = ok(&s.run(&["config", "check"]));
    assert!(
        o.contains(&format!(
            "{}: OK (2 repositories, 1 source, retention keep-last 1)",
            s.config().display()
        )),
        "{o}"
    );

    // lundi's folder is absent: init takes mardi, the first drive there.
    let (o, _) = ok(&s.run(&["init"]));
    assert!(o.contains("on drive mardi"), "{o}");
    assert!(s.p("mardi/coffre/config").is_file());
    assert!(!s.p("lundi").exists());

    let src = s.p("src");
    let src = src.to_str().expect("utf-8");
    for (i, day) in ["2026-11-23T20:30:00+01:00", "2026-11-24T20:30:00+01:00"]
        .iter()
        .enumerate()
    {
        std::fs::write(s.p("src/jour.txt"), format!("jour {i}")).expect("write");
        let out = s.run_with(&["snapshot", src], &[("COFFRE_FAKE_NOW", Path::new(day))]);
        let (_, e) = ok(&out);
        assert!(e.contains("Repository: mardi"), "{e}");
    }
    // The cache went where the configuration said.
    assert!(s.p("cache").read_dir().expect("cache dir").next().is_some());
    assert_eq!(snapshot_count(&s, &[]), 2);

    // No rule on the command line: [retention] keep_last = 1.
    ok(&s.run(&["forget"]));
    assert_eq!(snapshot_count(&s, &[]), 1);

    // A flag beats the file: -r names the repository, --password-file the passphrase.
    std::fs::write(s.p("other-pass"), "une phrase secrète").expect("write");
    let repo = s.p("mardi/coffre");
    let (o, e) = ok(&s.run(&[
        "-r",
        repo.to_str().expect("utf-8"),
        "--password-file",
        s.p("other-pass").to_str().expect("utf-8"),
        "snapshots",
    ]));
    assert!(!e.contains("Repository: mardi"), "{e}");
    assert!(!o.is_empty());

    // show says which repository a command would use now.
    let (o, _) = ok(&s.run(&["--json", "config", "show"]));
    let v: serde_json::Value = serde_json::from_str(&o).expect("json");
    assert_eq!(v["repository_now"]["name"], "mardi", "{o}");
    assert_eq!(v["config"]["retention"]["keep_last"], 1, "{o}");
}

#[test]
fn drive_forces_a_repository() {
    let s = Setup::new();
    ok(&s.run(&["init"]));
    // lundi is not plugged in: said so, with what was looked for.
    let e = fails(&s.run(&["--drive", "lundi", "snapshots"]));
    assert!(e.contains("drive lundi is not there"), "{e}");
    assert!(e.contains(&s.p("lundi").display().to_string()), "{e}");
    // Once it is, --drive lundi uses it (and only it), even though mardi
    // comes... second, and holds a repository too.
    std::fs::create_dir_all(s.p("lundi")).expect("mkdir");
    let (o, _) = ok(&s.run(&["--drive", "lundi", "init"]));
    assert!(o.contains("on drive lundi"), "{o}");
    let src = s.p("src");
    ok(&s.run(&["--drive", "lundi", "snapshot", src.to_str().expect("utf-8")]));
    assert_eq!(snapshot_count(&s, &["--drive", "lundi"]), 1);
    assert_eq!(snapshot_count(&s, &["--drive", "mardi"]), 0);
    // Without --drive, the first drive holding a repository: lundi now.
    assert_eq!(snapshot_count(&s, &[]), 1);
    // The environment variable works as the flag does.
    let e = fails(&s.run_with(&["snapshots"], &[("COFFRE_DRIVE", Path::new("jeudi"))]));
    assert!(e.contains("no repository named \"jeudi\""), "{e}");
    assert!(e.contains("lundi, mardi"), "{e}");
}

#[test]
fn no_drive_plugged_in_says_which_to_plug() {
    let s = Setup::new();
    std::fs::remove_dir(s.p("mardi")).expect("rmdir");
    let e = fails(&s.run(&["snapshots"]));
    assert!(e.contains("Plug in one of the drives lundi, mardi"), "{e}");
    // init has nowhere to go either.
    let e = fails(&s.run(&["init"]));
    assert!(e.contains("no drive ready for a new repository"), "{e}");
}

#[test]
fn the_default_path_is_read_when_there_is_no_flag() {
    let s = Setup::new();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffre"));
    clean_env(&mut cmd, s.dir.path());
    let out = cmd
        .args(["config", "check"])
        .env("COFFRE_CONFIG_DEFAULT", s.config())
        .output()
        .expect("run");
    let (o, _) = ok(&out);
    assert!(o.contains(": OK (2 repositories"), "{o}");
    // No file at all: a command without -r says how to name a repository.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffre"));
    clean_env(&mut cmd, s.dir.path());
    let e = fails(&cmd.arg("snapshots").output().expect("run"));
    assert!(e.contains("no repository given"), "{e}");
}

/// Writes `text` as the configuration; `config check` and an ordinary
/// command both fail, naming `path:line:column`.
#[track_caller]
fn refused_at(s: &Setup, text: &str, line_col: &str, words: &str) {
    s.write_config(text);
    let e = fails(&s.run(&["config", "check"]));
    let at = format!("{}:{line_col}: ", s.config().display());
    assert!(e.contains(&at), "expected {at} in: {e}");
    assert!(e.contains(words), "expected {words:?} in: {e}");
    let e = fails(&s.run(&["snapshots"]));
    assert!(e.contains(&at), "expected {at} in: {e}");
}

#[test]
fn a_wrong_configuration_names_the_line() {
    let s = Setup::new();
    let repo = format!(
        "[[repository]]\nname = \"lundi\"\npath = \"{}/lundi\"\n",
        s.dir.path().display()
    );
    // Unknown key.
    refused_at(
        &s,
        &format!("{repo}\n[snapshot]\nsources = []\nexclude_if_larger = \"2G\"\n"),
        "7:1",
        "unknown field `exclude_if_larger`",
    );
    // Wrong type.
    refused_at(
        &s,
        &format!("{repo}[retention]\nkeep_daily = \"seven\"\n"),
        "5:14",
        "invalid type: string \"seven\"",
    );
    // A time that does not exist.
    refused_at(
        &s,
        &format!("{repo}[schedule]\nweekdays = \"mon-fri\"\nat = \"25:00\"\n"),
        "6:6",
        "invalid time \"25:00\"",
    );
    // A bad weekday, a relative source, a bad size, a bad duration.
    refused_at(
        &s,
        &format!("{repo}[schedule]\nat = \"20:30\"\nweekdays = \"mon-fry\"\n"),
        "6:12",
        "invalid weekday \"fry\"",
    );
    refused_at(
        &s,
        &format!("{repo}[snapshot]\nsources = [\"officine\"]\n"),
        "5:11",
        "\"officine\" is a relative path",
    );
    refused_at(
        &s,
        &format!("{repo}[snapshot]\nexclude_larger_than = \"2 gallons\"\n"),
        "5:23",
        "invalid size",
    );
    refused_at(
        &s,
        &format!("{repo}[notify]\nmail_to = \"a@b.fr\"\nstale_after = \"36 hours\"\n"),
        "6:15",
        "invalid duration",
    );
    // Two drives of one name: the second is pointed at.
    refused_at(
        &s,
        &format!("{repo}\n{repo}"),
        "6:8",
        "used twice (first on line 2)",
    );
    // A syntax error.
    refused_at(&s, &format!("{repo}[snapshot\n"), "4:10", "");
    // No repository at all: the file as a whole.
    s.write_config("[snapshot]\nsources = []\n");
    let e = fails(&s.run(&["config", "check"]));
    assert!(
        e.contains(&format!("{}: no [[repository]]", s.config().display())),
        "{e}"
    );
    // A missing --config file is not silently ignored.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffre"));
    clean_env(&mut cmd, s.dir.path());
    let e = fails(
        &cmd.args(["--config", "/nonexistent/coffre.toml", "snapshots"])
            .output()
            .expect("run"),
    );
    assert!(
        e.contains("configuration file /nonexistent/coffre.toml not found"),
        "{e}"
    );
}
