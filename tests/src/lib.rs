//! Helpers for Coffre's end-to-end tests: the real `coffre` binary run on sample
//! pharmacy data made by [`sample`] (also the `coffre-sample` binary), and a
//! bit-exact comparison of directory trees to prove that what is restored is
//! what was backed up.
//!
//! - [`sample_init`] / [`sample_day`] build and evolve a test data directory;
//! - [`coffre_bin`], [`run`] and [`run_ok`] drive the binary ([`sample_bin`] the generator's);
//! - [`capture`] records a tree and [`assert_same_tree`] / [`diff_trees`] compare two.

mod compare;
mod digest;
pub mod eio_fs;
pub mod garage;
pub mod mount;
mod rng;
pub mod sample;
mod tree;

#[cfg(test)]
mod tree_tests;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use compare::{
    assert_same_tree, assert_same_tree_with, diff_trees, diff_trees_with, CompareOptions, HoleCheck,
};
pub use digest::{digest_bytes, Digest, Digester};
pub use rng::Rng;
pub use tree::{capture, Entry, Kind, TreeImage};

/// Makes day 0 of the sample pharmacy data (seed 1) at `scale_mb` MiB in `dir`,
/// which must not exist or be empty. Panics on failure.
pub fn sample_init(dir: &Path, scale_mb: u32) {
    if let Err(e) = sample::init(dir, scale_mb, 1) {
        panic!("sample data in {}: {e}", dir.display());
    }
}

/// Applies day `day` of the sample data in `dir` (days 1..day-1 must already be
/// applied) and returns its summary as one JSON line. Panics on failure.
pub fn sample_day(dir: &Path, day: u32) -> String {
    match sample::apply_day(dir, day) {
        Ok(summary) => serde_json::to_string(&summary).expect("a summary is plain JSON"),
        Err(e) => panic!("sample day {day} in {}: {e}", dir.display()),
    }
}

/// The `coffre` binary: `$COFFRE_BIN` if set, else `coffre` in the profile directory
/// above the running test executable (tests live in `target/<profile>/deps/`).
///
/// Panics if it does not exist: cargo does not build a binary for a library crate's tests.
pub fn coffre_bin() -> PathBuf {
    profile_bin("coffre", "COFFRE_BIN", "cargo build")
}

/// The `slowdrive` binary of the bench crate (a passthrough FUSE drive that
/// can be slowed down or made to fail every I/O): `$SLOWDRIVE_BIN` if set,
/// else beside the test executable like [`coffre_bin`] (`cargo test
/// --workspace` builds it).
pub fn slowdrive_bin() -> PathBuf {
    profile_bin("slowdrive", "SLOWDRIVE_BIN", "cargo build -p coffre-bench")
}

/// The `coffre-sample` binary of this crate: `$COFFRE_SAMPLE_BIN` if set, else
/// beside the test executable like [`coffre_bin`] (cargo builds a package's
/// binaries for its integration tests).
pub fn sample_bin() -> PathBuf {
    profile_bin(
        "coffre-sample",
        "COFFRE_SAMPLE_BIN",
        "cargo build -p coffre-tests --bins",
    )
}

/// The binary `name`: the path in `$env` if set, else in the profile directory
/// above the running test executable. Panics, saying how to build it, if missing.
fn profile_bin(name: &str, env: &str, build: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{env}={} does not exist", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("the path of the running test executable");
    let dir = exe.parent().expect("the test executable is in a directory");
    // `deps/../NAME` for test binaries; the same directory covers executables that
    // cargo places directly in the profile directory.
    let candidates = [dir.join("..").join(name), dir.join(name)];
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "{name} binary not found at {} (build it first: {build}, or set {env})",
        candidates[0].display()
    );
}

/// Keeps a `coffre` command away from the machine's configuration: the default
/// file (`/etc/coffre/coffre.toml`, which an installed package provides, with
/// exclude rules) is replaced by one that does not exist, and no
/// `COFFRE_CONFIG` is inherited.
pub fn without_machine_config(cmd: &mut Command) -> &mut Command {
    cmd.env(
        "COFFRE_CONFIG_DEFAULT",
        "/nonexistent/coffre-tests/coffre.toml",
    )
    .env_remove("COFFRE_CONFIG")
}

/// Runs a command to completion, capturing stdout and stderr (stdin is closed).
///
/// Panics only if the command cannot be started at all.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// Bytes shown as text (invalid UTF-8 replaced).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A command's status, stdout and stderr, for failure messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Runs a command like [`run`] and panics unless it exits with status 0, printing the
/// command line, the status, stdout and stderr.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    if !out.status.success() {
        panic!(
            "command failed: {cmd:?}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// A repository driven through the real `coffre` binary, with a fixed test
/// passphrase passed through the environment.
pub struct Coffre {
    /// The repository directory (or `s3:` address).
    pub repo: PathBuf,
    /// Its index caches' folder, when not beside the repository.
    cache: Option<PathBuf>,
    /// Environment every command gets (an S3 store's credentials).
    env: Vec<(String, String)>,
}

/// The passphrase every test repository uses.
pub const TEST_PASSWORD: &str = "correct horse battery staple";

impl Coffre {
    /// A handle on the repository at `repo` (not created).
    pub fn new(repo: impl Into<PathBuf>) -> Self {
        Self {
            repo: repo.into(),
            cache: None,
            env: Vec::new(),
        }
    }

    /// A handle on the S3 repository at `address` (not created), its
    /// caches in `cache`, every command given `env` (the credentials).
    pub fn s3(address: &str, cache: &Path, env: &[(&str, &str)]) -> Self {
        Self {
            repo: PathBuf::from(address),
            cache: Some(cache.to_path_buf()),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// `coffre -r REPO <args>` with the test passphrase, stdin closed.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(coffre_bin());
        without_machine_config(&mut cmd)
            .arg("-r")
            .arg(&self.repo)
            .args(args)
            .env("COFFRE_PASSWORD", TEST_PASSWORD)
            .env("COFFRE_CACHE_DIR", self.cache_dir())
            .env_remove("COFFRE_PASSWORD_FILE")
            .env_remove("COFFRE_REPO")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// `coffre -r REPO <args>` as [`Coffre::cmd`], run as if it were
    /// `unix_sec` (COFFRE_FAKE_NOW) in Paris: simulated evenings.
    pub fn cmd_at<I, S>(&self, unix_sec: i64, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = self.cmd(args);
        cmd.env("COFFRE_FAKE_NOW", unix_sec.to_string())
            .env("TZ", "Europe/Paris");
        cmd
    }

    /// This test's local index caches: beside the repository, so that a
    /// test can tamper with them and leaves nothing in the home folder.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(c) = &self.cache {
            return c.clone();
        }
        let mut name = self.repo.file_name().unwrap_or_default().to_owned();
        name.push(".cache");
        self.repo.with_file_name(name)
    }

    /// Runs `coffre <args>` and panics unless it succeeds; returns stdout.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        String::from_utf8_lossy(&run_ok(&mut self.cmd(args)).stdout).into_owned()
    }

    /// Runs `coffre <args>` at the simulated time `unix_sec` (as
    /// [`Coffre::cmd_at`]) and panics unless it succeeds; returns stdout.
    pub fn ok_at<I, S>(&self, unix_sec: i64, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        String::from_utf8_lossy(&run_ok(&mut self.cmd_at(unix_sec, args)).stdout).into_owned()
    }

    /// Creates the repository.
    pub fn init(&self) {
        self.ok(["init"]);
    }

    /// Takes a snapshot of `source` and returns the full snapshot id.
    pub fn snapshot(&self, source: &Path) -> String {
        let out = self.ok([
            std::ffi::OsStr::new("--json"),
            "snapshot".as_ref(),
            source.as_os_str(),
        ]);
        json_string_field(&out, "id").unwrap_or_else(|| panic!("no id in snapshot output: {out}"))
    }

    /// Restores `snapshot` (an id prefix or `latest`) into `target`, panics
    /// unless it succeeds; returns stdout.
    pub fn restore(&self, snapshot: &str, target: &Path) -> String {
        self.ok([
            std::ffi::OsStr::new("restore"),
            snapshot.as_ref(),
            target.as_os_str(),
        ])
    }
}

/// The first `"field": "value"` string in some JSON text (enough for the
/// flat outputs the tests read, without a JSON dependency).
pub fn json_string_field(json: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\": \"");
    let start = json.find(&key)? + key.len();
    let end = json[start..].find('"')? + start;
    Some(json[start..end].to_string())
}

/// The number after the first `"field": ` in some JSON text; panics when
/// there is none.
pub fn json_u64(json: &str, field: &str) -> u64 {
    let key = format!("\"{field}\": ");
    let at = json
        .find(&key)
        .unwrap_or_else(|| panic!("no {field} in {json}"))
        + key.len();
    json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number in {json}"))
}

/// Every `"field": "value"` string in some JSON text, in order.
pub fn json_string_fields(json: &str, field: &str) -> Vec<String> {
    let key = format!("\"{field}\": \"");
    let mut out = Vec::new();
    let mut rest = json;
    while let Some(i) = rest.find(&key) {
        rest = &rest[i + key.len()..];
        if let Some(end) = rest.find('"') {
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

/// A temporary folder holding a new repository (`repo/`) and a sample data
/// source (`officine/`), the starting point of most end-to-end tests.
pub struct Fixture {
    /// The folder; everything is removed when it drops.
    pub tmp: tempfile::TempDir,
    /// The sample data source.
    pub src: PathBuf,
    /// The repository, already initialised.
    pub coffre: Coffre,
}

impl Fixture {
    /// Generates `scale_mb` MiB of sample data and initialises a repository.
    pub fn new(scale_mb: u32) -> Self {
        let tmp = tempfile::tempdir().expect("create a temporary folder");
        let src = tmp.path().join("officine");
        let coffre = Coffre::new(tmp.path().join("repo"));
        coffre.init();
        sample_init(&src, scale_mb);
        Self { tmp, src, coffre }
    }
}
