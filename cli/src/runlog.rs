//! This machine's record of its runs, for `coffre status`: for each
//! command (`snapshot`, `check`) and each repository, the last run and the
//! last one that succeeded (time, result, exit code, error, snapshot id,
//! repository and drive). Snapshots taken on other drives of the rotation
//! are known from here, and so is a run that failed before it could write
//! anything.
//!
//! Kept in `runs.json` in the cache folder when one is set (`--cache-dir`,
//! `COFFRE_CACHE_DIR`, `cache_dir`), else `/var/lib/coffre` for root, else
//! `~/.cache/coffre`; written whole to a temporary file then renamed
//! (mode 0600), under a lock so that two runs do not lose each other's line.
//!
//! [`after_snapshot`] and [`after_check`] record a run and tell `[notify]`
//! about failures, recoveries and successful snapshots.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::args::Cli;
use crate::notify::{self, Notice, Ping};

/// The file's name in its folder.
const FILE: &str = "runs.json";
/// Runs kept at most (the oldest go first): a few per drive.
const MAX_RUNS: usize = 200;

/// What a run came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Done (a snapshot saved, or a check that found nothing wrong).
    Ok,
    /// A snapshot saved, but some files could not be read.
    Partial,
    /// Nothing changed: no snapshot written (`--skip-if-unchanged`).
    Unchanged,
    /// Nothing saved, or the check found damage.
    Failed,
}

impl Outcome {
    /// The word `--after` commands and the JSON use.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed => "failed",
        }
    }
}

/// One run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// `snapshot` or `check`.
    pub command: String,
    /// When it ended, Unix seconds.
    pub time: i64,
    /// What it came to.
    pub result: Outcome,
    /// Coffre's exit code.
    pub exit_code: u8,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The snapshot written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The repository folder, when one was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<PathBuf>,
    /// The configuration's name for its drive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive: Option<String>,
    /// A `check --read-data`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_data: bool,
}

impl Run {
    /// Whether the run did its job (a partial snapshot did, mostly).
    pub fn good(&self) -> bool {
        self.result != Outcome::Failed
    }

    /// Whether the run used this repository: the same drive when both
    /// have a name, else the same folder.
    pub fn on(&self, path: Option<&Path>, drive: Option<&str>) -> bool {
        match (self.drive.as_deref(), drive) {
            (Some(a), Some(b)) => a == b,
            _ => path.is_some() && self.repository.as_deref() == path,
        }
    }

    fn key(&self) -> (&str, Option<&str>, Option<&Path>) {
        let path = if self.drive.is_some() {
            None
        } else {
            self.repository.as_deref()
        };
        (&self.command, self.drive.as_deref(), path)
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunLog {
    /// Format of the file (1).
    #[serde(default)]
    pub version: u32,
    /// Oldest first.
    #[serde(default)]
    pub runs: Vec<Run>,
}

impl RunLog {
    /// The newest run of `command` that `keep` accepts.
    pub fn last(&self, command: &str, keep: impl Fn(&Run) -> bool) -> Option<&Run> {
        self.runs
            .iter()
            .filter(|r| r.command == command && keep(r))
            .max_by_key(|r| r.time)
    }

    /// Adds `run`, then keeps only the last run and the last good run of
    /// each command and repository.
    fn add(&mut self, run: Run) {
        self.version = 1;
        self.runs.push(run);
        self.runs.sort_by_key(|r| r.time);
        let mut kept: Vec<Run> = Vec::new();
        for r in self.runs.iter().rev() {
            let same: Vec<&Run> = kept.iter().filter(|k| k.key() == r.key()).collect();
            let newest_kept = same.is_empty();
            let first_good = r.good() && !same.iter().any(|k| k.good());
            if newest_kept || first_good {
                kept.push(r.clone());
            }
        }
        kept.truncate(MAX_RUNS);
        kept.reverse();
        self.runs = kept;
    }
}

/// Where the record is kept.
///
/// # Errors
/// When no folder can be found (no cache folder, no home, not root).
pub fn path() -> Result<PathBuf> {
    let dir = match std::env::var_os("COFFRE_CACHE_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        // SAFETY: geteuid cannot fail.
        None if unsafe { libc::geteuid() } == 0 => PathBuf::from("/var/lib/coffre"),
        None => snapshots_format::repo::default_cache_dir()?,
    };
    Ok(dir.join(FILE))
}

/// Reads the record; an absent file is an empty record.
///
/// # Errors
/// When the file exists but cannot be read or understood.
pub fn load() -> Result<RunLog> {
    read(&path()?)
}

fn read(path: &Path) -> Result<RunLog> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is damaged (delete it; it only holds the record of past runs)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RunLog::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Adds `run` to the record.
///
/// # Errors
/// When the folder or the file cannot be written.
pub fn record(run: Run) -> Result<()> {
    let path = path()?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join("runs.lock"))
        .with_context(|| format!("cannot open {}", dir.join("runs.lock").display()))?;
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor; the lock goes with the file when dropped.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    // A damaged record is replaced rather than kept failing.
    let mut log = read(&path).unwrap_or_default();
    log.add(run);
    let tmp = dir.join(format!("{FILE}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(serde_json::to_string_pretty(&log)?.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write()
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The repository a command of this run uses, and its drive's name in the
/// configuration: `-r`, else the configured drive plugged in (or
/// `--drive`). Nothing is printed; `(None, None)` when there is none.
pub fn current_repository(cli: &Cli) -> (Option<PathBuf>, Option<String>) {
    let config = crate::config::load(cli).ok().flatten();
    if let Some(path) = &cli.repo {
        let sys = crate::config::System::default();
        let name = config.and_then(|l| {
            l.config
                .repositories
                .iter()
                .find_map(|r| match r.locate(&sys) {
                    crate::config::Location::Here(p, _) if &p == path => Some(r.name.clone()),
                    _ => None,
                })
        });
        return (Some(path.clone()), name);
    }
    match crate::config::chosen(cli, crate::config::Purpose::Use) {
        Ok(c) => (Some(c.path), Some(c.name)),
        Err(_) => (None, None),
    }
}

/// Records a `coffre snapshot` run and tells `[notify]`: a failure (mail
/// and webhook `/fail`), a partial snapshot (mail), the first success
/// after a failure (mail), and every snapshot saved (webhook ping).
/// `result` is what the snapshot itself came to, `--after` aside: the exit
/// code and the id written (none when unchanged). Never fails: problems
/// are warnings on stderr.
pub fn after_snapshot(cli: &Cli, result: &Result<(u8, Option<String>)>) {
    let (result, exit_code, snapshot, error) = match result {
        Ok((0, Some(id))) => (Outcome::Ok, 0, Some(id.clone()), None),
        Ok((0, None)) => (Outcome::Unchanged, 0, None, None),
        Ok((code, id)) => (Outcome::Partial, *code, id.clone(), None),
        Err(e) => (
            Outcome::Failed,
            crate::EXIT_ERROR,
            None,
            Some(format!("{e:#}")),
        ),
    };
    after(cli, "snapshot", result, exit_code, snapshot, error, false);
}

/// Records a `coffre check` run (exit code 1 or an error: failed) and
/// tells `[notify]` of a failure, or of the first success after one.
/// Never fails: problems are warnings on stderr.
pub fn after_check(cli: &Cli, read_data: bool, result: &Result<u8>) {
    let (result, exit_code, error) = match result {
        Ok(0) => (Outcome::Ok, 0, None),
        Ok(code) => (
            Outcome::Failed,
            *code,
            Some("the check found damage (its output names it)".to_string()),
        ),
        Err(e) => (Outcome::Failed, crate::EXIT_ERROR, Some(format!("{e:#}"))),
    };
    after(cli, "check", result, exit_code, None, error, read_data);
}

fn after(
    cli: &Cli,
    command: &str,
    result: Outcome,
    exit_code: u8,
    snapshot: Option<String>,
    error: Option<String>,
    read_data: bool,
) {
    let (repository, drive) = current_repository(cli);
    let time = crate::commands::now().map(|t| t.sec).unwrap_or_default();
    let run = Run {
        command: command.to_string(),
        time,
        result,
        exit_code,
        error,
        snapshot,
        repository,
        drive,
        read_data,
    };
    // For a recovery: did the previous run of this command fail?
    let before = load().ok();
    let previous_failed = before
        .as_ref()
        .and_then(|log| {
            log.last(command, |r| {
                command == "snapshot" || r.on(run.repository.as_deref(), run.drive.as_deref())
            })
        })
        .is_some_and(|r| !r.good());
    if let Err(e) = record(run.clone()) {
        eprintln!("warning: this run could not be recorded for `coffre status`: {e:#}");
    }
    let Some(cfg) = crate::config::load(cli)
        .ok()
        .flatten()
        .map(|l| &l.config.notify)
    else {
        return;
    };
    if !notify::configured(cfg) {
        return;
    }
    let mail = !run.good() || run.result == Outcome::Partial || previous_failed;
    let ping = match (command, run.good()) {
        (_, false) => Some(Ping::Fail),
        ("snapshot", true) => Some(Ping::Success),
        _ => None,
    };
    if !mail && ping.is_none() {
        return;
    }
    notify::send(cfg, &notice(cli, &run, previous_failed, mail, ping));
}

/// What to tell about `run`: a line on the run, then `coffre status`.
fn notice(cli: &Cli, run: &Run, recovered: bool, mail: bool, ping: Option<Ping>) -> Notice {
    let host = notify::hostname();
    let on_drive = run
        .drive
        .as_deref()
        .map(|d| format!(" on drive {d}"))
        .unwrap_or_default();
    let what = if run.command == "check" {
        "The check of the backup"
    } else {
        "The backup"
    };
    let (word, line) = match (run.result, recovered) {
        (Outcome::Failed, _) => ("FAILED", format!("{what} of {host} failed{on_drive}.")),
        (Outcome::Partial, _) => (
            "INCOMPLETE",
            format!("The backup of {host} was saved{on_drive}, but some files could not be read and are missing from it."),
        ),
        (_, true) => ("OK again", format!("{what} of {host} worked again{on_drive}.")),
        _ => ("OK", format!("{what} of {host} worked{on_drive}.")),
    };
    let mut body = line.clone();
    if let Some(e) = &run.error {
        body += &format!("\n\nReason: {e}");
    }
    // The whole picture, as `coffre status` gives it (without prompting):
    // the last good backup, the drives, the space. Only worth the time of
    // opening the repository when a mail goes out.
    let status = mail.then(|| crate::commands::status::evaluate(cli, false));
    if let Some(report) = &status {
        body += &format!(
            "\n\nStatus now (coffre status):\n{}",
            report.text().trim_end()
        );
    }
    body += &format!(
        "\n\n-- \nCoffre {} on {host}, `{}`.\n",
        env!("CARGO_PKG_VERSION"),
        run.command
    );
    let mut json = serde_json::json!({
        "host": host,
        "event": run.command,
        "run": run,
        "summary": line,
    });
    if let Some(report) = &status {
        json["status"] = serde_json::to_value(report).unwrap_or_default();
    }
    Notice {
        subject: format!("[coffre] {word}: {line}"),
        body,
        mail,
        ping,
        json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(command: &str, time: i64, result: Outcome, drive: &str) -> Run {
        Run {
            command: command.into(),
            time,
            result,
            exit_code: 0,
            error: None,
            snapshot: None,
            repository: Some(PathBuf::from(format!("/media/{drive}/coffre"))),
            drive: Some(drive.into()),
            read_data: false,
        }
    }

    #[test]
    fn keeps_the_last_and_the_last_good_run_of_each() {
        let mut log = RunLog::default();
        log.add(run("snapshot", 1, Outcome::Ok, "lundi"));
        log.add(run("snapshot", 2, Outcome::Ok, "lundi"));
        log.add(run("snapshot", 3, Outcome::Failed, "lundi"));
        log.add(run("snapshot", 4, Outcome::Failed, "lundi"));
        log.add(run("snapshot", 5, Outcome::Ok, "mardi"));
        log.add(run("check", 6, Outcome::Ok, "lundi"));
        let times: Vec<i64> = log.runs.iter().map(|r| r.time).collect();
        assert_eq!(times, [2, 4, 5, 6]);
        assert_eq!(log.last("snapshot", |_| true).map(|r| r.time), Some(5));
        assert_eq!(
            log.last("snapshot", |r| r.good() && r.on(None, Some("lundi")))
                .map(|r| r.time),
            Some(2)
        );
        log.add(run("snapshot", 7, Outcome::Unchanged, "lundi"));
        let times: Vec<i64> = log.runs.iter().map(|r| r.time).collect();
        assert_eq!(times, [5, 6, 7]);
    }
}
