//! `coffre status`: is my data safe? One line for the pharmacist (the
//! state, the last good backup, what to do), details for the IT provider,
//! `--json`, and an exit code for monitoring: 0 ok, 1 warning, 2 critical
//! (3: the status itself could not be worked out, as Nagios's UNKNOWN).
//!
//! What it looks at: the drives of the configuration (or `-r`), the
//! repository's snapshots (when a passphrase is at hand without asking:
//! otherwise it says what it could not read), this machine's record of
//! past runs ([`crate::runlog`]: failures, snapshots on the other drives,
//! checks), and the drive's free space against its recent growth.
//! `--notify` sends the state to `[notify]` (mail when not ok; webhook
//! ping, `/fail` when not ok), for a daily timer.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{Local, TimeZone};
use clap::Args;
use serde::Serialize;
use snapshots_format::format::snapshot::Snapshot;
use snapshots_format::{Repository, SnapshotId};

use crate::args::Cli;
use crate::config::{Contents, Location, System};
use crate::format;
use crate::notify::{self, Notice, Ping};
use crate::runlog::{self, Run, RunLog};

/// Exit code when the status itself cannot be worked out (bad flag).
const EXIT_UNKNOWN: u8 = 3;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
/// How far back the daily growth is averaged.
const GROWTH_WINDOW: i64 = 30 * DAY;
/// Forecasts below these many days are a warning, a critical problem.
const FULL_WARNING_DAYS: f64 = 30.0;
const FULL_CRITICAL_DAYS: f64 = 7.0;

/// `coffre status`.
#[derive(Args, Debug)]
#[command(after_help = "\
Exit codes: 0 ok, 1 warning, 2 critical, 3 the status could not be worked out.

Examples:
  coffre status                      # one line, then the details
  coffre status --json               # every field, for supervision
  coffre status --notify             # from a daily timer: mail and webhook when not ok")]
pub struct StatusArgs {
    /// Warn when the last backup is older than this, critical after twice
    /// as long (e.g. 36h, 2d). Default: [notify] stale_after, else the
    /// longest gap between the [schedule] days plus 12 h, else 36h.
    #[arg(long, value_name = "DURATION")]
    pub stale_after: Option<String>,
    /// Warn when the drive has not been checked (`coffre check`) for this
    /// long; `off` never warns.
    #[arg(long, value_name = "DURATION", default_value = "8d")]
    pub check_after: String,
    /// Warn when the drive's free space falls under this share of its size.
    #[arg(long, value_name = "SHARE", default_value = "10%")]
    pub min_free: String,
    /// Also tell [notify]: a mail when not ok, and the webhook ping (its
    /// URL when ok, URL/fail otherwise).
    #[arg(long)]
    pub notify: bool,
}

/// Runs `coffre status`.
pub fn run(cli: &Cli, args: &StatusArgs) -> Result<u8> {
    let limits = match Limits::new(
        cli,
        args.stale_after.as_deref(),
        &args.check_after,
        &args.min_free,
    ) {
        Ok(l) => l,
        Err(e) => {
            crate::errors::report(&e, cli);
            return Ok(EXIT_UNKNOWN);
        }
    };
    let report = evaluate_with(cli, limits, !args.notify);
    if cli.json {
        super::print_json(&report)?;
    } else {
        print!("{}", report.text());
    }
    if args.notify {
        send(cli, &report);
    }
    Ok(report.exit_code)
}

/// The status with the default limits, never asking for a passphrase (for
/// the mail sent after a failed run).
pub fn evaluate(cli: &Cli, prompt: bool) -> Report {
    let limits = Limits::new(cli, None, "8d", "10%").unwrap_or(Limits {
        stale_after_seconds: DAY as u64 * 3 / 2,
        stale_after_from: "default",
        check_after_seconds: Some(8 * DAY as u64),
        min_free_share: 0.1,
    });
    evaluate_with(cli, limits, prompt)
}

/// Tells `[notify]` the state.
fn send(cli: &Cli, report: &Report) {
    let cfg = crate::config::load(cli)
        .ok()
        .flatten()
        .map(|l| &l.config.notify)
        .filter(|cfg| notify::configured(cfg));
    let Some(cfg) = cfg else {
        eprintln!("warning: --notify: the configuration's [notify] names no mail_to and no webhook: nobody was told (docs/CONFIG.md)");
        return;
    };
    let ok = report.state == State::Ok;
    let what = report
        .problems
        .first()
        .map_or(report.summary.as_str(), |p| p.message.as_str());
    let mut subject = format!(
        "[coffre] {} on {}: {what}",
        report.state.word(),
        report.host
    );
    if subject.chars().count() > 160 {
        subject = subject.chars().take(157).collect::<String>() + "...";
    }
    let body = format!(
        "{}\n-- \nCoffre {} on {}, `coffre status --notify`.\n",
        report.text(),
        env!("CARGO_PKG_VERSION"),
        report.host
    );
    let notice = Notice {
        subject,
        body,
        mail: !ok,
        ping: Some(if ok { Ping::Success } else { Ping::Fail }),
        json: serde_json::json!({
            "host": report.host,
            "event": "status",
            "state": report.state,
            "summary": report.summary,
            "status": report,
        }),
    };
    notify::send(cfg, &notice);
}

// ---- The report.

/// Ok, warning or critical; ordered by gravity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Nothing to do.
    Ok,
    /// Something to look at soon.
    Warning,
    /// The data is not (or soon will not be) safe.
    Critical,
}

impl State {
    /// The first word of the line.
    pub fn word(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
        }
    }

    /// The exit code.
    pub fn code(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Critical => 2,
        }
    }
}

/// One thing wrong.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// How bad.
    pub state: State,
    /// A stable name for scripts: `drive_absent`, `last_run_failed`,
    /// `stale`, `nearly_full`, `check_overdue`...
    pub kind: &'static str,
    /// What is wrong, a sentence.
    pub message: String,
    /// What to do, a sentence.
    pub action: String,
}

/// The thresholds applied.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// A backup older than this is a warning (twice: critical).
    pub stale_after_seconds: u64,
    /// Where that came from: `--stale-after`, `[notify] stale_after`,
    /// `[schedule]` or `default`.
    pub stale_after_from: &'static str,
    /// A drive not checked for this long is a warning; none: never.
    pub check_after_seconds: Option<u64>,
    /// Free space under this share of the drive is a warning.
    pub min_free_share: f64,
}

impl Limits {
    fn new(cli: &Cli, stale: Option<&str>, check: &str, min_free: &str) -> Result<Limits> {
        let config = crate::config::load(cli).ok().flatten().map(|l| &l.config);
        let (stale_after_seconds, stale_after_from) = match stale {
            Some(s) => (
                super::parse_duration(s).context("--stale-after")?.as_secs(),
                "--stale-after",
            ),
            None => match config.and_then(|c| c.notify.stale_after.as_ref()) {
                Some(d) => (d.duration.as_secs(), "[notify] stale_after"),
                None => match config.and_then(|c| c.schedule.as_ref()) {
                    Some(s) => (
                        longest_gap_days(|d| s.weekdays.contains(d)) * DAY as u64
                            + 12 * HOUR as u64,
                        "[schedule]",
                    ),
                    None => (36 * HOUR as u64, "default"),
                },
            },
        };
        if stale_after_seconds == 0 {
            anyhow::bail!("--stale-after must be longer than zero");
        }
        let check_after_seconds = match check.trim() {
            "off" | "never" | "0" => None,
            c => Some(super::parse_duration(c).context("--check-after")?.as_secs()),
        };
        let min_free_share = super::parse_share(min_free).context("--min-free")?;
        Ok(Limits {
            stale_after_seconds,
            stale_after_from,
            check_after_seconds,
            min_free_share,
        })
    }
}

/// The longest run of days between two scheduled days (7 with one day a
/// week, 2 from Saturday to Monday, 1 every day).
fn longest_gap_days(scheduled: impl Fn(usize) -> bool) -> u64 {
    let days: Vec<usize> = (0..7).filter(|d| scheduled(*d)).collect();
    let Some(&first) = days.first() else {
        return 7;
    };
    let mut gaps: Vec<usize> = days.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.push(first + 7 - days[days.len() - 1]);
    gaps.into_iter().max().unwrap_or(7) as u64
}

/// The newest backup known.
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    /// When (RFC 3339).
    pub time: String,
    /// How long ago, seconds.
    pub age_seconds: i64,
    /// The drive it is on.
    pub drive: Option<String>,
    /// The repository folder.
    pub repository: Option<PathBuf>,
    /// The snapshot's id (none for a run that found nothing changed).
    pub snapshot: Option<String>,
    /// `repository` (read on the drive) or `record` (this machine's
    /// record of its runs).
    pub from: &'static str,
    #[serde(skip)]
    sec: i64,
}

/// The repository looked at.
#[derive(Debug, Clone, Serialize)]
pub struct RepoInfo {
    /// Its folder.
    pub path: PathBuf,
    /// Its drive's name in the configuration.
    pub drive: Option<String>,
    /// Whether the folder holds a repository now.
    pub reachable: bool,
    /// Whether its snapshots could be read (that needs the passphrase).
    pub opened: bool,
    /// How many snapshots, when read.
    pub snapshots: Option<usize>,
    /// Why they were not read.
    pub note: Option<String>,
}

/// A configured drive.
#[derive(Debug, Clone, Serialize)]
pub struct Drive {
    /// Its name.
    pub name: String,
    /// Whether it is plugged in and holds a repository.
    pub present: bool,
    /// Its repository folder, when the drive is there.
    pub path: Option<PathBuf>,
    /// Where it stands, in words.
    pub note: String,
}

/// The drive's space.
#[derive(Debug, Clone, Serialize)]
pub struct Space {
    /// Size of the filesystem.
    pub total_bytes: u64,
    /// Free for Coffre.
    pub free_bytes: u64,
    /// `free_bytes / total_bytes`.
    pub free_share: f64,
    /// Average stored per day over the last 30 days of snapshots.
    pub daily_growth_bytes: Option<u64>,
    /// At that rate (without forget and prune).
    pub days_until_full: Option<f64>,
}

/// Everything `coffre status` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The worst problem's state, or ok.
    pub state: State,
    /// 0, 1 or 2.
    pub exit_code: u8,
    /// The line for the pharmacist.
    pub summary: String,
    /// This machine.
    pub host: String,
    /// When the status was taken (RFC 3339).
    pub now: String,
    /// Worst first.
    pub problems: Vec<Problem>,
    /// The newest backup known.
    pub last_backup: Option<Backup>,
    /// The repository looked at.
    pub repository: Option<RepoInfo>,
    /// The configured drives.
    pub drives: Vec<Drive>,
    /// The repository drive's space.
    pub space: Option<Space>,
    /// The last snapshot run recorded on this machine.
    pub last_run: Option<Run>,
    /// The last check of this repository recorded on this machine.
    pub last_check: Option<Run>,
    /// The thresholds applied.
    pub limits: Limits,
    #[serde(skip)]
    now_sec: i64,
}

impl Problem {
    fn new(state: State, kind: &'static str, message: String, action: &str) -> Problem {
        Problem {
            state,
            kind,
            message,
            action: action.to_string(),
        }
    }
}

/// What is known of the repository: opened or not, and its snapshots.
struct Looked {
    info: RepoInfo,
    snapshots: Vec<(SnapshotId, Snapshot)>,
}

fn evaluate_with(cli: &Cli, limits: Limits, prompt: bool) -> Report {
    use State::{Critical, Warning};
    let now = super::now().map(|t| t.sec).unwrap_or_default();
    let mut problems = Vec::new();
    let config = match crate::config::load(cli) {
        Ok(c) => c.map(|l| &l.config),
        Err(e) => {
            problems.push(Problem::new(
                Critical,
                "config",
                format!("the configuration file is invalid: {e:#}."),
                "Fix it (`coffre config check` lists every mistake): no backup can run until then.",
            ));
            None
        }
    };

    // Which repository, and the drives.
    let mut drives = Vec::new();
    let mut target: Option<(PathBuf, Option<String>)> = None;
    if cli.repo.is_some() {
        let (path, name) = runlog::current_repository(cli);
        target = path.map(|p| (p, name));
    } else if let Some(c) = config {
        let sys = System::default();
        for r in &c.repositories {
            if cli.drive.as_ref().is_some_and(|d| d != &r.name) {
                continue;
            }
            let loc = r.locate(&sys);
            let (present, path, note) = describe(&r.name, &r.looked_for(), loc);
            if present && target.is_none() {
                target = path.clone().map(|p| (p, Some(r.name.clone())));
            }
            drives.push(Drive {
                name: r.name.clone(),
                present,
                path,
                note,
            });
        }
        if target.is_none() {
            let names: Vec<&str> = drives.iter().map(|d| d.name.as_str()).collect();
            problems.push(match (&cli.drive, names.is_empty()) {
                (Some(d), true) => Problem::new(
                    Critical,
                    "drive_absent",
                    format!("the configuration has no drive named {d}."),
                    "Name one of its [[repository]] (coffre config show).",
                ),
                (Some(d), false) => Problem::new(
                    Critical,
                    "drive_absent",
                    format!("drive {d} is not plugged in ({}).", drives[0].note),
                    "Plug it in (and check that it is mounted).",
                ),
                _ => Problem::new(
                    Critical,
                    "drive_absent",
                    format!("no backup drive is plugged in ({}).", names.join(", ")),
                    "Plug in today's drive before the evening backup (and check that it is mounted).",
                ),
            });
        }
    } else if problems.is_empty() {
        problems.push(Problem::new(
            Critical,
            "no_repository",
            "no backup is set up on this computer: no configuration file and no repository given."
                .into(),
            "Give -r PATH, or list the drives in /etc/coffre/coffre.toml (docs/CONFIG.md).",
        ));
    }
    let looked = target.map(|(path, drive)| look(cli, config, path, drive, prompt, &mut problems));
    let (path, drive) = match &looked {
        Some(l) => (Some(l.info.path.as_path()), l.info.drive.as_deref()),
        None => (None, None),
    };
    let on_drive = |d: Option<&str>| d.map(|d| format!(" on drive {d}")).unwrap_or_default();
    let drive_word = drive.map_or("the backup drive".to_string(), |d| format!("drive {d}"));

    // This machine's record: failures, snapshots on other drives, checks.
    let log = runlog::load().unwrap_or_else(|e| {
        problems.push(Problem::new(
            Warning,
            "record",
            format!("the record of past runs cannot be read: {e:#}."),
            "Delete that file: the next runs write it again.",
        ));
        RunLog::default()
    });
    let only_this = cli.repo.is_some();
    let mine = |r: &Run| !only_this || r.on(path, drive);
    let last_run = log.last("snapshot", mine).cloned();
    let recorded = log.last("snapshot", |r| r.good() && mine(r));
    let in_repo = looked.as_ref().and_then(|l| l.snapshots.last());
    let last_backup = match (in_repo, recorded) {
        (Some((id, s)), r) if r.is_none_or(|r| r.time <= s.time.sec) => Some(Backup {
            time: String::new(),
            age_seconds: 0,
            drive: drive.map(str::to_string),
            repository: path.map(Path::to_path_buf),
            snapshot: Some(id.to_hex()),
            from: "repository",
            sec: s.time.sec,
        }),
        (_, Some(r)) => Some(Backup {
            time: String::new(),
            age_seconds: 0,
            drive: r.drive.clone(),
            repository: r.repository.clone(),
            snapshot: r.snapshot.clone(),
            from: "record",
            sec: r.time,
        }),
        (_, None) => None,
    }
    .map(|b| Backup {
        time: rfc3339(b.sec),
        age_seconds: (now - b.sec).max(0),
        ..b
    });

    if let Some(r) = last_run
        .as_ref()
        .filter(|r| !r.good() && last_backup.as_ref().is_none_or(|b| r.time >= b.sec))
    {
        let reason = r.error.as_deref().unwrap_or("no reason recorded");
        let first = reason.lines().next().unwrap_or(reason);
        let first = if first.chars().count() > 240 {
            first.chars().take(237).collect::<String>() + "..."
        } else {
            first.to_string()
        };
        problems.push(Problem::new(
            Critical,
            "last_run_failed",
            format!(
                "the last backup failed ({}{}): {}",
                when(r.time, now),
                on_drive(r.drive.as_deref()),
                first.trim_end_matches('.')
            ) + ".",
            "Do what the message says, or call your IT provider; then run `coffre snapshot` (or wait for this evening's).",
        ));
    }
    let stale = limits.stale_after_seconds as i64;
    match &last_backup {
        Some(b) if b.age_seconds > stale => problems.push(Problem::new(
            if b.age_seconds > 2 * stale {
                Critical
            } else {
                Warning
            },
            "stale",
            format!(
                "no backup since {} ({}).",
                when(b.sec, now),
                span(b.age_seconds)
            ),
            if b.age_seconds > 2 * stale {
                "Call your IT provider: the evening backup is not running (see `journalctl -u coffre-snapshot`)."
            } else {
                "Check that the computer stays on in the evening with a backup drive plugged in."
            },
        )),
        Some(_) => {}
        None if looked.as_ref().is_some_and(|l| l.info.opened) => problems.push(Problem::new(
            Critical,
            "no_backup",
            format!("no backup has been made yet{}.", on_drive(drive)),
            "Run `coffre snapshot`, and check that the evening timer is installed (`coffre schedule show`).",
        )),
        None if looked.as_ref().is_some_and(|l| l.info.reachable) => problems.push(Problem::new(
            Warning,
            "unknown",
            "cannot tell when the last backup was made: no passphrase to read the drive, and no run recorded on this computer.".into(),
            "Run `coffre status` as the account that runs the backups, or give it the passphrase file.",
        )),
        None => {}
    }
    if let Some(r) = last_run
        .as_ref()
        .filter(|r| r.result == runlog::Outcome::Partial)
    {
        problems.push(Problem::new(
            Warning,
            "partial",
            format!(
                "the last backup ({}) left out files it could not read.",
                when(r.time, now)
            ),
            "See which in `coffre snapshots --json` (\"skipped\"), then fix their permissions or exclude them.",
        ));
    }

    // Checks, and the space of the drive plugged in.
    let mut last_check = None;
    let mut space = None;
    if let Some(l) = looked.as_ref().filter(|l| l.info.reachable) {
        last_check = log.last("check", |r| r.on(path, drive)).cloned();
        let last_good = log.last("check", |r| r.good() && r.on(path, drive));
        match &last_check {
            Some(c) if !c.good() => problems.push(Problem::new(
                Critical,
                "check_failed",
                format!(
                    "the last check of {drive_word} failed ({}): {}",
                    when(c.time, now),
                    c.error.as_deref().unwrap_or("no reason recorded").trim_end_matches('.')
                ) + ".",
                "Run `coffre check --read-data` and call your IT provider; use another drive meanwhile.",
            )),
            _ => {
                // Never checked: counted from the first backup on it.
                let since = last_good.map(|c| c.time).or_else(|| {
                    l.snapshots.first().map(|(_, s)| s.time.sec).or_else(|| {
                        log.runs
                            .iter()
                            .filter(|r| r.on(path, drive))
                            .map(|r| r.time)
                            .min()
                    })
                });
                let overdue = limits.check_after_seconds.zip(since).filter(|(limit, since)| now - since > *limit as i64);
                if let Some((_, since)) = overdue {
                    problems.push(Problem::new(
                        Warning,
                        "check_overdue",
                        match last_good {
                            Some(_) => format!("{drive_word} was last checked {} ago.", span(now - since)),
                            None => format!(
                                "{drive_word} has never been checked (backups since {}).",
                                when(since, now)
                            ),
                        },
                        "Run `coffre check` (or set verify = \"check\" in [schedule]).",
                    ));
                }
            }
        }
        space = space_of(&l.info.path).map(|(total, free)| {
            let growth = daily_growth(&l.snapshots);
            let days = growth.filter(|g| *g >= 1.0).map(|g| free as f64 / g);
            Space {
                total_bytes: total,
                free_bytes: free,
                free_share: if total == 0 {
                    0.0
                } else {
                    free as f64 / total as f64
                },
                daily_growth_bytes: growth.map(|g| g as u64),
                days_until_full: days,
            }
        });
        if let Some(s) = &space {
            let action = "Free space (`coffre forget --prune`, by the [retention] rules) or use a larger drive.";
            let free = format!(
                "{} free of {}",
                format::bytes(s.free_bytes),
                format::bytes(s.total_bytes)
            );
            match (s.days_until_full, s.daily_growth_bytes) {
                (Some(d), Some(g)) if d < FULL_WARNING_DAYS => problems.push(Problem::new(
                    if d < FULL_CRITICAL_DAYS {
                        Critical
                    } else {
                        Warning
                    },
                    "nearly_full",
                    format!(
                        "{drive_word} will be full {} ({free}, about {} more each day).",
                        in_days(d),
                        format::bytes(g)
                    ),
                    action,
                )),
                _ if s.free_share < limits.min_free_share => problems.push(Problem::new(
                    Warning,
                    "nearly_full",
                    format!(
                        "{drive_word} is nearly full: {:.0}% free ({free}).",
                        s.free_share * 100.0
                    ),
                    action,
                )),
                _ => {}
            }
        }
    }

    problems.sort_by_key(|p| std::cmp::Reverse(p.state));
    let state = problems.first().map_or(State::Ok, |p| p.state);
    let summary = match (problems.first(), &last_backup) {
        (Some(p), _) => {
            let more = match problems.len() {
                1 => String::new(),
                2 => " Also 1 more problem, below.".to_string(),
                n => format!(" Also {} more problems, below.", n - 1),
            };
            format!("{}: {} {}{more}", p.state.word(), p.message, p.action)
        }
        (None, Some(b)) => format!(
            "OK: last backup {}{} ({} ago).",
            when(b.sec, now),
            on_drive(b.drive.as_deref()),
            span(b.age_seconds)
        ),
        (None, None) => "OK.".to_string(),
    };
    Report {
        state,
        exit_code: state.code(),
        summary,
        host: notify::hostname(),
        now: rfc3339(now),
        problems,
        last_backup,
        repository: looked.map(|l| l.info),
        drives,
        space,
        last_run,
        last_check,
        limits,
        now_sec: now,
    }
}

/// A configured drive's state: (there with a repository, its folder, words).
fn describe(name: &str, looked_for: &str, loc: Location) -> (bool, Option<PathBuf>, String) {
    match loc {
        Location::Here(p, Contents::Repository) => (true, Some(p), "plugged in".into()),
        Location::Here(p, Contents::Nothing) => (
            false,
            Some(p),
            format!("plugged in, but holds no repository yet (coffre init --drive {name})"),
        ),
        Location::Here(p, Contents::Other) => (
            false,
            Some(p.clone()),
            format!("{} holds other files, not a repository", p.display()),
        ),
        Location::NotMounted(dev) => (
            false,
            None,
            format!("plugged in as {} but not mounted", dev.display()),
        ),
        Location::Absent => (
            false,
            None,
            format!("not plugged in: {looked_for} not found"),
        ),
        Location::NoDrive(p) => (
            false,
            None,
            format!(
                "not plugged in: no drive mounted at {}",
                p.parent().unwrap_or(&p).display()
            ),
        ),
    }
}

/// Reads what can be read of the repository at `path`.
fn look(
    cli: &Cli,
    config: Option<&crate::config::Config>,
    path: PathBuf,
    drive: Option<String>,
    prompt: bool,
    problems: &mut Vec<Problem>,
) -> Looked {
    use State::{Critical, Warning};
    let drive_word = drive
        .as_deref()
        .map_or("the backup drive".to_string(), |d| format!("drive {d}"));
    let mut info = RepoInfo {
        path,
        drive,
        reachable: false,
        opened: false,
        snapshots: None,
        note: None,
    };
    let mut snapshots = Vec::new();
    // A folder, or an `s3:` address given with -r.
    let location = super::location_of(cli, info.path.as_os_str()).map_err(|e| format!("{e:#}"));
    let header = location.clone().and_then(|l| {
        Repository::read_header(&l)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    if let Err(e) = header {
        problems.push(Problem::new(
            Critical,
            "drive_absent",
            format!("{drive_word} cannot be used: {e}."),
            "Plug in the backup drive and check that it is mounted (and that the path is right).",
        ));
        info.note = Some(e.to_string());
        return Looked { info, snapshots };
    }
    info.reachable = true;
    // A passphrase at hand (variable, file), or a terminal to ask on.
    let at_hand = std::env::var_os("COFFRE_PASSWORD").is_some()
        || cli.password_file.is_some()
        || config.is_some_and(|c| c.password_file.is_some());
    if !(at_hand || prompt && std::io::stdin().is_terminal()) {
        info.note = Some("snapshots not read: no passphrase; give password_file in the configuration, or COFFRE_PASSWORD_FILE".into());
        return Looked { info, snapshots };
    }
    let opened = crate::password::get(cli).and_then(|pass| {
        let location = location.clone().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Repository::open(&location, &pass)?)
    });
    let repo = match opened {
        Ok(r) => r,
        Err(e) => {
            let wrong = e.chain().any(|c| {
                matches!(
                    c.downcast_ref(),
                    Some(snapshots_format::Error::WrongPassphrase)
                )
            });
            problems.push(if wrong {
                Problem::new(
                    Critical,
                    "passphrase",
                    format!("the passphrase given does not open {drive_word}."),
                    "Check the passphrase file (password_file): the evening backup cannot open the drive either.",
                )
            } else {
                Problem::new(
                    Critical,
                    "unreadable",
                    format!("{drive_word} cannot be opened: {e:#}."),
                    "Run `coffre check` and call your IT provider.",
                )
            });
            info.note = Some(format!("{e:#}"));
            return Looked { info, snapshots };
        }
    };
    match repo.snapshots() {
        Ok((all, errors)) => {
            if !errors.is_empty() {
                problems.push(Problem::new(
                    Warning,
                    "damaged_records",
                    format!(
                        "{} snapshot record(s) of {drive_word} cannot be read ({}).",
                        errors.len(),
                        errors[0]
                    ),
                    "Run `coffre check`.",
                ));
            }
            info.opened = true;
            info.snapshots = Some(all.len());
            snapshots = all;
            if let Ok(journal) = repo.journal() {
                let now = super::now().map(|t| t.sec).unwrap_or_default();
                if let Some(age) = unread_for(&journal, now) {
                    if age > READ_DATA_AFTER {
                        problems.push(Problem::new(
                            Warning,
                            "data_unread",
                            format!(
                                "the data on {drive_word} has not all been read back for {} days.",
                                age / DAY
                            ),
                            "Run `coffre check --read-data` (or `--read-data-subset 1/7` every day).",
                        ));
                    }
                }
                for a in crate::alarm::open_alarms(&journal) {
                    problems.push(Problem::new(
                        Critical,
                        "ransomware_alarm",
                        format!(
                            "RANSOMWARE ALARM on {drive_word}, snapshot {}: {}.",
                            &a.snapshot[..12],
                            a.why
                        ),
                        "Look at the files now (coffre diff, the mount); restore from an earlier snapshot if they are encrypted; then `coffre alarm ack SNAPSHOT --reason ...`.",
                    ));
                }
            }
        }
        Err(e) => {
            problems.push(Problem::new(
                Critical,
                "unreadable",
                format!("the snapshots of {drive_word} cannot be listed: {e}."),
                "Run `coffre check` and call your IT provider.",
            ));
            info.note = Some(e.to_string());
        }
    }
    Looked { info, snapshots }
}

/// Bytes stored per day over the last 30 days of snapshots (oldest first);
/// none with fewer than two. A span under a day counts as a day.
pub fn daily_growth(snapshots: &[(SnapshotId, Snapshot)]) -> Option<f64> {
    let newest = snapshots.last()?.1.time.sec;
    let window: Vec<&Snapshot> = snapshots
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.time.sec >= newest - GROWTH_WINDOW)
        .collect();
    if window.len() < 2 {
        return None;
    }
    let days = (newest - window[0].time.sec).max(DAY) as f64 / DAY as f64;
    let added: u64 = window[1..].iter().map(|s| s.summary.bytes_stored).sum();
    Some(added as f64 / days)
}

/// (size, free for an unprivileged writer) of the filesystem holding `path`.
pub fn space_of(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data; zero is a valid value of it.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let unit = s.f_frsize as u64;
    Some((s.f_blocks as u64 * unit, s.f_bavail as u64 * unit))
}

// ---- Words.

impl Report {
    /// The line, then the details, as printed.
    pub fn text(&self) -> String {
        let now = self.now_sec;
        let mut out = format!("{}\n", self.summary);
        let mut row = |label: &str, text: String| out += &format!("  {label:<14}{text}\n");
        if self.problems.len() > 1 {
            for p in &self.problems {
                row(
                    "Problem:",
                    format!("{}: {} {}", p.state.word(), p.message, p.action),
                );
            }
        }
        if let Some(b) = &self.last_backup {
            let mut t = format!("{} ({} ago)", stamp(b.sec), span(b.age_seconds));
            if let Some(d) = &b.drive {
                t += &format!(" on drive {d}");
            }
            if let Some(id) = &b.snapshot {
                t += &format!(", snapshot {}", &id[..id.len().min(8)]);
            } else {
                t += ", nothing had changed";
            }
            row("Last backup:", t);
        } else {
            row("Last backup:", "none known".into());
        }
        if let Some(r) = &self.last_run {
            row("Last run:", run_text(r, now));
        }
        if let Some(r) = &self.repository {
            let mut t = match &r.drive {
                Some(d) => format!("drive {d}, {}", r.path.display()),
                None => r.path.display().to_string(),
            };
            if let Some(n) = r.snapshots {
                t += &format!(", {n} snapshot(s)");
            }
            if let Some(n) = &r.note {
                t += &format!(" ({n})");
            }
            row("Repository:", t);
        }
        if !self.drives.is_empty() {
            let t: Vec<String> = self
                .drives
                .iter()
                .map(|d| format!("{}: {}", d.name, d.note))
                .collect();
            row("Drives:", t.join("; "));
        }
        if let Some(s) = &self.space {
            let mut t = format!(
                "{} of {} ({:.0}%)",
                format::bytes(s.free_bytes),
                format::bytes(s.total_bytes),
                s.free_share * 100.0
            );
            match (s.daily_growth_bytes, s.days_until_full) {
                (Some(g), Some(d)) => {
                    t += &format!(
                        "; about {} stored per day lately: full {} at that rate",
                        format::bytes(g),
                        in_days(d)
                    )
                }
                (Some(_), None) => t += "; hardly any growth lately",
                _ => {}
            }
            row("Free space:", t);
        }
        if self.repository.as_ref().is_some_and(|r| r.reachable) {
            row(
                "Last check:",
                self.last_check
                    .as_ref()
                    .map_or("none recorded on this computer".into(), |r| {
                        run_text(r, now)
                    }),
            );
        }
        let l = &self.limits;
        row(
            "Limits:",
            format!(
                "stale after {} (critical after {}; from {}), check every {}, min free {:.0}%",
                duration(l.stale_after_seconds),
                duration(2 * l.stale_after_seconds),
                l.stale_after_from,
                l.check_after_seconds.map_or("(off)".into(), duration),
                l.min_free_share * 100.0
            ),
        );
        out
    }
}

fn run_text(r: &Run, now: i64) -> String {
    let mut t = format!(
        "{} {} ({} ago)",
        r.command,
        stamp(r.time),
        span((now - r.time).max(0))
    );
    if r.read_data {
        t += " --read-data";
    }
    if let Some(d) = &r.drive {
        t += &format!(" on drive {d}");
    }
    t += &format!(": {}", r.result.as_str());
    if let Some(e) = &r.error {
        t += &format!(": {e}");
    }
    t
}

fn local(sec: i64) -> Option<chrono::DateTime<Local>> {
    Local.timestamp_opt(sec, 0).earliest()
}

fn rfc3339(sec: i64) -> String {
    local(sec).map_or_else(|| sec.to_string(), |t| t.to_rfc3339())
}

fn stamp(sec: i64) -> String {
    local(sec).map_or_else(
        || sec.to_string(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// "today at 20:31", "yesterday at 20:31", "Monday at 20:31" (this past
/// week), else "2026-11-24 at 20:31".
fn when(sec: i64, now: i64) -> String {
    let (Some(t), Some(n)) = (local(sec), local(now)) else {
        return sec.to_string();
    };
    let days = (n.date_naive() - t.date_naive()).num_days();
    let hm = t.format("%H:%M");
    match days {
        0 => format!("today at {hm}"),
        1 => format!("yesterday at {hm}"),
        2..=6 => format!("{} at {hm}", t.format("%A")),
        _ => format!("{} at {hm}", t.format("%Y-%m-%d")),
    }
}

/// An age in words: "5 min", "2 h", "3 days".
fn span(secs: i64) -> String {
    match secs {
        s if s < 60 => "less than a minute".to_string(),
        s if s < HOUR => format!("{} min", s / 60),
        s if s < 2 * DAY => format!("{} h", s / HOUR),
        s => format!("{} days", s / DAY),
    }
}

/// A limit as it is written: "36h", "8d", "90m".
fn duration(secs: u64) -> String {
    let (d, h, m) = (DAY as u64, HOUR as u64, 60);
    if secs.is_multiple_of(d) {
        format!("{}d", secs / d)
    } else if secs.is_multiple_of(h) {
        format!("{}h", secs / h)
    } else if secs.is_multiple_of(m) {
        format!("{}m", secs / m)
    } else {
        format!("{secs}s")
    }
}

fn in_days(days: f64) -> String {
    if days < 1.0 {
        "within a day".to_string()
    } else {
        format!("in about {:.0} days", days.floor())
    }
}

/// Data not read back by a check for this long is a warning (once any
/// reading check has been run: a drive never read is `check_overdue`'s).
const READ_DATA_AFTER: i64 = 35 * DAY;

/// How long ago the repository was last read back whole: the last
/// `check --read-data`, or the oldest run of the last complete cycle of
/// `--read-data-subset` runs (each part read once since); `None` when no
/// reading check was ever journaled.
fn unread_for(journal: &snapshots_format::repo::journal::Journal, now: i64) -> Option<i64> {
    use snapshots_format::format::journal::{EntryKind, Outcome};
    let checks = journal
        .entries
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e.kind == EntryKind::Check && e.outcome != Outcome::Failed);
    let mut covered: Option<i64> = None;
    let mut any = false;
    // Before a first complete cycle, counted from the first reading check.
    let mut first = i64::MAX;
    let mut parts: std::collections::HashMap<u64, std::collections::HashSet<u64>> =
        std::collections::HashMap::new();
    // Newest first: a subset cycle is complete at the oldest run that
    // brings its last missing part.
    for e in checks.rev() {
        if e.details["read_data"].as_bool() == Some(true) || !e.details["subset"].is_null() {
            first = first.min(e.time);
        }
        if e.details["read_data"].as_bool() == Some(true) {
            any = true;
            covered = covered.max(Some(e.time));
        }
        let sub = &e.details["subset"];
        if let (Some(part), Some(of)) = (sub["part"].as_u64(), sub["of"].as_u64()) {
            any = true;
            let seen = parts.entry(of).or_default();
            if seen.len() < of as usize && seen.insert(part) && seen.len() == of as usize {
                covered = covered.max(Some(e.time));
            }
        }
    }
    any.then(|| now - covered.unwrap_or(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_between_scheduled_days() {
        assert_eq!(longest_gap_days(|_| true), 1);
        assert_eq!(longest_gap_days(|d| d < 6), 2); // mon-sat
        assert_eq!(longest_gap_days(|d| d == 2), 7);
        assert_eq!(longest_gap_days(|d| d == 0 || d == 3), 4);
        assert_eq!(longest_gap_days(|_| false), 7);
    }

    #[test]
    fn words() {
        assert_eq!(span(30), "less than a minute");
        assert_eq!(span(2 * HOUR + 5), "2 h");
        assert_eq!(span(47 * HOUR), "47 h");
        assert_eq!(span(3 * DAY + 1), "3 days");
        assert_eq!(duration(36 * 3600), "36h");
        assert_eq!(duration(8 * 86_400), "8d");
        assert_eq!(duration(90 * 60), "90m");
        assert_eq!(in_days(0.4), "within a day");
        assert_eq!(in_days(12.7), "in about 12 days");
    }
}
