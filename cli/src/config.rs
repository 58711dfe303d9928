//! The configuration file: what the IT provider writes once so that a plain
//! `coffre snapshot` (run by the timer every evening) knows the drives, the
//! passphrase file, the folders to back up and the retention rules.
//!
//! Where it is: `--config PATH` (or `COFFRE_CONFIG`), else
//! [`DEFAULT_PATH`] when that file exists (`COFFRE_CONFIG_DEFAULT` replaces
//! the default path; test-only). No file at all is fine: every command then
//! works from its flags, as before. docs/CONFIG.md describes every field.
//!
//! Precedence: a flag or its environment variable beats the file
//! (`-r`/`COFFRE_REPO` over `[[repository]]`, `--password-file`/
//! `COFFRE_PASSWORD_FILE`/`COFFRE_PASSWORD` over `password_file`,
//! `--cache-dir`/`COFFRE_CACHE_DIR` over `cache_dir`, `--keep-*` over
//! `[retention]`, which beats the policy saved in the repository).
//!
//! # For commands
//! - [`load`]`(cli)` → `Ok(None)` when there is no configuration file, or
//!   `Ok(Some(&Loaded))`: [`Loaded::path`] (absolute) and
//!   [`Loaded::config`]. Read and validated once per run; an invalid file is
//!   an error naming `path:line:column`.
//! - `loaded.config.snapshot` ([`SnapshotConfig`], all fields public):
//!   `sources` (absolute paths), `label`, `tags`, `exclude` (patterns),
//!   `exclude_file`, `exclude_if_present` (file names),
//!   `exclude_larger_than` ([`ByteSize`]: `.bytes`), `cross_filesystems`
//!   (or the older `one_file_system = false`),
//!   `before` / `after` (shell commands), `from_command` (file name →
//!   command), `skip_if_unchanged`, `fs_snapshot`, `fs_snapshot_size`.
//! - `loaded.config.notify` ([`NotifyConfig`]) and `.retention`
//!   ([`RetentionConfig::policy`]).
//! - The repository: [`crate::commands::repo_path`] and
//!   [`crate::commands::open`] already choose it (`-r`, else the configured
//!   drive that is plugged in: [`repository_now`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use snapshots_format::format::policy::{self, Policy};
use toml::Spanned;

use crate::args::Cli;

/// Read when neither `--config` nor `COFFRE_CONFIG` names a file.
pub const DEFAULT_PATH: &str = "/etc/coffre/coffre.toml";

/// A configuration file, read and validated.
#[derive(Debug)]
pub struct Loaded {
    /// The file, as an absolute path (the timer's unit names it).
    pub path: PathBuf,
    /// Its content.
    pub config: Config,
}

/// The whole file. Field order is the order `config show` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// File holding the passphrase (first line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Folder of this machine's index caches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// The repositories (one per drive in rotation), in the order tried.
    #[serde(rename = "repository")]
    pub repositories: Vec<RepositoryConfig>,
    /// What `coffre snapshot` backs up, and how.
    pub snapshot: SnapshotConfig,
    /// What `coffre forget` keeps when given no rule.
    pub retention: RetentionConfig,
    /// When the timer runs (`coffre schedule install`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleConfig>,
    /// Whom to tell when something goes wrong.
    #[serde(skip_serializing_if = "NotifyConfig::is_empty")]
    pub notify: NotifyConfig,
    /// How to reach S3 repositories (`-r s3:...`, `copy --to s3:...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Config>,
    /// Who answers for the backups, for `coffre report`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditConfig>,
}

/// `[audit]`: what the monthly report names.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The pharmacy (or practice), as on its letterhead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pharmacy: Option<String>,
    /// The person responsible for the backups (name and role).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responsible: Option<String>,
    /// The IT provider, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub it_provider: Option<String>,
}

/// `[s3]`: credentials and limits for S3 repositories. The environment
/// (`AWS_ACCESS_KEY_ID`...) wins over the file for credentials, so a
/// trusted machine can run prune with a stronger key than the backup's.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The access key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// A file holding the secret access key (first line), readable by root
    /// only: the secret itself never sits in this file.
    #[serde(
        default,
        deserialize_with = "opt_abs_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub secret_access_key_file: Option<PathBuf>,
    /// The store's region (Garage: `garage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Upload limit per second, when `--limit-upload` is not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_upload: Option<ByteSize>,
    /// Room for whole packs read from the store (default 1G; 0 reads
    /// every blob remotely).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_size: Option<ByteSize>,
}

/// The bound of an S3 repository's local pack cache: `[s3] cache_size`,
/// else 1 GiB.
pub fn s3_cache_size(cli: &Cli) -> Result<u64> {
    let configured = load(cli)?
        .and_then(|l| l.config.s3.as_ref())
        .and_then(|s| s.cache_size.as_ref())
        .map(|b| b.bytes);
    Ok(configured.unwrap_or(1 << 30))
}

/// One `[[repository]]`.
#[derive(Debug, Clone, Serialize)]
pub struct RepositoryConfig {
    /// Short name (`lundi`), for `--drive` and messages.
    pub name: String,
    /// The repository folder: absolute, or relative to the drive's mount
    /// point when the drive is named by `fs_label` / `fs_uuid`.
    pub path: PathBuf,
    /// The drive's filesystem label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_label: Option<String>,
    /// The drive's filesystem UUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_uuid: Option<String>,
}

/// `[snapshot]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Folders to back up (absolute).
    #[serde(default, deserialize_with = "abs_paths")]
    pub sources: Vec<PathBuf>,
    /// Label grouping the snapshots (default: the host name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Tags attached to each snapshot.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Patterns of what to leave out (`*.tmp`, `~$*`, `/srv/officine/tmp`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// A file of such patterns, one a line.
    #[serde(
        default,
        deserialize_with = "opt_abs_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub exclude_file: Option<PathBuf>,
    /// Folders holding a file of one of these names are left out.
    #[serde(default, deserialize_with = "file_names")]
    pub exclude_if_present: Vec<String>,
    /// Files larger than this are left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_larger_than: Option<ByteSize>,
    /// Enter other filesystems mounted inside a source (by default their
    /// mount points are kept empty).
    #[serde(default)]
    pub cross_filesystems: bool,
    /// The older way of saying the opposite: `false` crosses, `true` is the
    /// default now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_file_system: Option<bool>,
    /// Shell command run before the snapshot (e.g. a database freeze).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Shell command run after it, even when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// File name → shell command whose output is saved under that name.
    #[serde(
        default,
        deserialize_with = "file_name_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub from_command: BTreeMap<String, String>,
    /// Record no snapshot when nothing changed since the last one.
    #[serde(default)]
    pub skip_if_unchanged: bool,
    /// Read the sources from a read-only filesystem snapshot (lvm, btrfs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_snapshot: Option<crate::fs_snapshot::Kind>,
    /// With lvm: room for changes meanwhile (`20%` of the volume, `5G`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_snapshot_size: Option<String>,
}

/// `[retention]`: the `--keep-*` rules of `coffre forget`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Keep the N newest snapshots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot newer than this, counted back from the newest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<Within>,
}

impl RetentionConfig {
    /// The rules as a policy; `None` when the section gives none.
    pub fn policy(&self) -> Option<Policy> {
        let p = Policy {
            keep_last: self.keep_last,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within.as_ref().map(|w| w.0),
        };
        (!p.is_empty()).then_some(p)
    }
}

/// `[schedule]`: when `coffre schedule install` makes the timer run.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Time of day, local.
    pub at: ClockTime,
    /// Days of the week (default: every day).
    #[serde(default)]
    pub weekdays: Weekdays,
    /// What to verify after each scheduled snapshot.
    #[serde(default)]
    pub verify: Verify,
    /// A weekly restore test (`coffre verify`), `"weekly"` or `"off"`.
    #[serde(default)]
    pub restore_test: RestoreTest,
    /// Paths always restored by that test (the database), e.g. `["db/"]`.
    #[serde(default)]
    pub restore_test_include: Vec<String>,
}

/// `[schedule] restore_test`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreTest {
    /// None scheduled.
    #[default]
    Off,
    /// Every week, on the first backup day, an hour before the snapshot.
    Weekly,
}

/// `[schedule] verify`: a check after each scheduled snapshot, so that
/// each drive of the rotation is verified on its own day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verify {
    /// No check.
    #[default]
    None,
    /// `coffre check`: the structure, minutes at most.
    Check,
    /// `coffre check --read-data`: every byte (reads the whole drive).
    ReadData,
}

/// `[notify]`: where failures are reported.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// A sendmail-compatible command reading the message (with its
    /// headers) on stdin; default `/usr/sbin/sendmail -t` when `mail_to`
    /// is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail_command: Option<String>,
    /// Recipient address(es), comma-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail_to: Option<String>,
    /// URL receiving a POST with a JSON body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebUrl>,
    /// Warn when the newest snapshot is older than this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<HumanDuration>,
}

impl NotifyConfig {
    /// True when nobody is to be told anything.
    pub fn is_empty(&self) -> bool {
        self.mail_command.is_none()
            && self.mail_to.is_none()
            && self.webhook.is_none()
            && self.stale_after.is_none()
    }

    /// The mail command to run, when mail is configured.
    pub fn mail_command(&self) -> Option<&str> {
        self.mail_to.as_ref()?;
        Some(
            self.mail_command
                .as_deref()
                .unwrap_or("/usr/sbin/sendmail -t"),
        )
    }
}

// ---- Values checked as they are read: a wrong one is reported at its own
// line and column by the TOML reader.

/// A time of day, `20:30` (also `8:05`, `20h30`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClockTime {
    /// 0-23.
    pub hour: u8,
    /// 0-59.
    pub minute: u8,
}

impl TryFrom<String> for ClockTime {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ClockTime::parse(&s)
    }
}

impl From<ClockTime> for String {
    fn from(t: ClockTime) -> String {
        t.to_string()
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl ClockTime {
    /// This time `minutes` earlier, wrapping at midnight.
    pub fn minus_minutes(self, minutes: u32) -> ClockTime {
        let total = (u32::from(self.hour) * 60 + u32::from(self.minute) + 24 * 60
            - minutes % (24 * 60))
            % (24 * 60);
        ClockTime {
            hour: (total / 60) as u8,
            minute: (total % 60) as u8,
        }
    }

    /// Parses `HH:MM` (or `H:MM`, `HHhMM`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid time {s:?}: expected HH:MM, 24-hour (e.g. \"20:30\")");
        let (h, m) = s.trim().split_once([':', 'h']).ok_or_else(bad)?;
        let digits = |t: &str, max: u8| -> Option<u8> {
            if t.is_empty() || t.len() > 2 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse().ok().filter(|v| *v <= max)
        };
        if m.len() != 2 {
            return Err(bad());
        }
        match (digits(h, 23), digits(m, 59)) {
            (Some(hour), Some(minute)) => Ok(ClockTime { hour, minute }),
            _ => Err(bad()),
        }
    }
}

/// Days of the week, Monday = bit 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Weekdays(u8);

impl Default for Weekdays {
    /// Every day.
    fn default() -> Self {
        Weekdays(0x7f)
    }
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const SYSTEMD_DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
/// Full names, English then French (the IT provider may well write the
/// pharmacy's own day names): any prefix of three letters or more is read.
const FULL_DAY_NAMES: [[&str; 7]; 2] = [
    [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ],
    [
        "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
    ],
];

impl Weekdays {
    /// Parses `mon-fri`, `mon,wed,fri`, `fri-mon` (wraps), `daily`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut bits = 0u8;
        for item in s.split(',').map(str::trim) {
            if matches!(item, "daily" | "all" | "*") {
                bits = 0x7f;
                continue;
            }
            let (a, b) = match item.split_once(['-', '.']) {
                Some((a, b)) => (a.trim_end_matches('.'), b.trim_start_matches('.')),
                None => (item, item),
            };
            let (a, b) = (day_index(a, s)?, day_index(b, s)?);
            let mut d = a;
            loop {
                bits |= 1 << d;
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
        }
        if bits == 0 {
            return Err("no weekday given (e.g. \"mon-fri\")".to_string());
        }
        Ok(Weekdays(bits))
    }

    /// Whether `day` (0 = Monday) is included.
    pub fn contains(&self, day: usize) -> bool {
        self.0 & (1 << day) != 0
    }

    /// Runs of consecutive days as (first, last), Monday first.
    fn runs(&self) -> Vec<(usize, usize)> {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for d in (0..7).filter(|d| self.contains(*d)) {
            match runs.last_mut() {
                Some(r) if r.1 + 1 == d => r.1 = d,
                _ => runs.push((d, d)),
            }
        }
        runs
    }

    fn render(&self, names: &[&str; 7], range: &str) -> String {
        let mut parts = Vec::new();
        for (a, b) in self.runs() {
            if b >= a + 2 {
                parts.push(format!("{}{range}{}", names[a], names[b]));
            } else {
                parts.extend((a..=b).map(|d| names[d].to_string()));
            }
        }
        parts.join(",")
    }

    /// The first day included, as systemd names it (`Mon`).
    pub fn first_systemd(&self) -> Option<String> {
        (0..7)
            .find(|d| self.contains(*d))
            .map(|d| SYSTEMD_DAYS[d].to_string())
    }

    /// The weekday part of a systemd `OnCalendar=`, `None` for every day.
    pub fn systemd(&self) -> Option<String> {
        (self.0 != 0x7f).then(|| self.render(&SYSTEMD_DAYS, ".."))
    }
}

fn day_index(name: &str, whole: &str) -> Result<usize, String> {
    let n = name.trim().to_lowercase();
    FULL_DAY_NAMES
        .iter()
        .find_map(|names| names.iter().position(|d| d.starts_with(&n)))
        .filter(|_| n.chars().count() >= 3)
        .ok_or_else(|| {
            format!("invalid weekday {name:?} in {whole:?}: use mon, tue, wed, thu, fri, sat, sun, ranges (\"mon-fri\") or lists (\"mon,wed,fri\")")
        })
}

impl fmt::Display for Weekdays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&DAY_NAMES, "-"))
    }
}

impl From<Weekdays> for String {
    fn from(w: Weekdays) -> String {
        w.to_string()
    }
}

impl<'de> Deserialize<'de> for Weekdays {
    /// A string (`"mon-fri"`) or a list of them (`["mon", "wed"]`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Weekdays;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("weekdays such as \"mon-fri\" or [\"mon\", \"wed\"]")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Weekdays, E> {
                Weekdays::parse(s).map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Weekdays, A::Error> {
                let mut items = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    items.push(s);
                }
                Weekdays::parse(&items.join(",")).map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A size such as `500M`, `2G`, `1.5G` (powers of 1024; `B` optional).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct ByteSize {
    /// The size in bytes.
    pub bytes: u64,
    text: String,
}

impl TryFrom<String> for ByteSize {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match crate::parse::size(&text) {
            Ok(bytes) if bytes >= 1 => Ok(ByteSize { bytes, text }),
            _ => Err(format!("invalid size {text:?} (examples: 500M, 2G, 1.5T)")),
        }
    }
}

impl From<ByteSize> for String {
    fn from(s: ByteSize) -> String {
        s.text
    }
}

/// A duration such as `36h`, `2d`, `90m`, `1w`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct HumanDuration {
    /// The duration.
    pub duration: std::time::Duration,
    text: String,
}

impl TryFrom<String> for HumanDuration {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match crate::commands::parse_duration(&text) {
            Ok(d) if !d.is_zero() => Ok(HumanDuration { duration: d, text }),
            _ => Err(format!("invalid duration {text:?} (examples: 36h, 2d, 1w)")),
        }
    }
}

impl From<HumanDuration> for String {
    fn from(d: HumanDuration) -> String {
        d.text
    }
}

/// A `keep_within` duration, checked as `--keep-within` is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Within(pub policy::Duration);

impl TryFrom<String> for Within {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Policy::parse_within(&s)
            .map(Within)
            .map_err(|e| e.to_string())
    }
}

impl From<Within> for String {
    fn from(w: Within) -> String {
        w.0.to_string()
    }
}

/// An `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebUrl(pub String);

impl TryFrom<String> for WebUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !s.contains(char::is_whitespace) => Ok(WebUrl(s)),
            _ => Err(format!(
                "invalid webhook URL {s:?}: expected http://... or https://..."
            )),
        }
    }
}

impl From<WebUrl> for String {
    fn from(u: WebUrl) -> String {
        u.0
    }
}

/// An absolute path (a timer runs in `/`: a relative one would mean
/// something else there than where it was written).
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct AbsPath(PathBuf);

impl TryFrom<String> for AbsPath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if Path::new(&s).is_absolute() {
            Ok(AbsPath(PathBuf::from(s)))
        } else {
            Err(format!(
                "{s:?} is a relative path: write it in full, from / (e.g. \"/srv/officine\")"
            ))
        }
    }
}

/// A plain file name (no `/`), saved or looked for inside folders.
#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(try_from = "String")]
struct FileName(String);

impl TryFrom<String> for FileName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0') {
            Err(format!("{s:?} is not a file name (no \"/\", not empty)"))
        } else {
            Ok(FileName(s))
        }
    }
}

fn abs_paths<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    Ok(Vec::<AbsPath>::deserialize(d)?
        .into_iter()
        .map(|p| p.0)
        .collect())
}

fn opt_abs_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(Option::<AbsPath>::deserialize(d)?.map(|p| p.0))
}

fn file_names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Vec::<FileName>::deserialize(d)?
        .into_iter()
        .map(|n| n.0)
        .collect())
}

fn file_name_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(BTreeMap::<FileName, String>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| (k.0, v))
        .collect())
}

// ---- The file as read, with the positions that checks across fields need.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    repository: Vec<Spanned<RawRepository>>,
    #[serde(default, deserialize_with = "opt_abs_path")]
    password_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "opt_abs_path")]
    cache_dir: Option<PathBuf>,
    #[serde(default)]
    snapshot: SnapshotConfig,
    retention: Option<Spanned<RetentionConfig>>,
    schedule: Option<ScheduleConfig>,
    notify: Option<Spanned<NotifyConfig>>,
    s3: Option<S3Config>,
    audit: Option<AuditConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    name: Spanned<String>,
    path: Spanned<PathBuf>,
    fs_label: Option<Spanned<String>>,
    fs_uuid: Option<Spanned<String>>,
}

/// One problem in the file, at a 1-based line and column (0: the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Line, from 1; 0 when the problem is the file as a whole.
    pub line: usize,
    /// Column, in characters from 1.
    pub column: usize,
    /// What is wrong and how to put it right.
    pub message: String,
}

/// An invalid configuration file: every problem found, in file order.
#[derive(Debug)]
pub struct Invalid {
    /// The file.
    pub path: PathBuf,
    /// The problems.
    pub problems: Vec<Problem>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            if p.line == 0 {
                write!(f, "{}: {}", self.path.display(), p.message)?;
            } else {
                write!(
                    f,
                    "{}:{}:{}: {}",
                    self.path.display(),
                    p.line,
                    p.column,
                    p.message
                )?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Parses and checks a configuration's text.
pub fn parse(path: &Path, text: &str) -> Result<Config, Invalid> {
    let at = |span: Option<std::ops::Range<usize>>, message: String| {
        let (line, column) = span.map_or((0, 0), |s| line_column(text, s.start));
        Problem {
            line,
            column,
            message,
        }
    };
    let invalid = |problems| Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let raw: RawConfig = toml::from_str(text)
        .map_err(|e| invalid(vec![at(e.span(), e.message().trim().to_string())]))?;

    let mut problems = Vec::new();
    let mut repositories: Vec<RepositoryConfig> = Vec::new();
    let mut names: Vec<&Spanned<String>> = Vec::new();
    for repo in &raw.repository {
        let r = repo.get_ref();
        let name = r.name.get_ref();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.".contains(c))
        {
            problems.push(at(
                Some(r.name.span()),
                format!("repository name {name:?}: use letters, digits, '-', '_' or '.' (e.g. \"lundi\")"),
            ));
        }
        if let Some(first) = names.iter().find(|n| n.get_ref() == name) {
            let (line, _) = line_column(text, first.span().start);
            problems.push(at(
                Some(r.name.span()),
                format!("repository name {name:?} is used twice (first on line {line}): give each drive its own name"),
            ));
        }
        names.push(&r.name);
        if let (Some(_), Some(uuid)) = (&r.fs_label, &r.fs_uuid) {
            problems.push(at(
                Some(uuid.span()),
                "give fs_label or fs_uuid, not both".to_string(),
            ));
        }
        for id in [&r.fs_label, &r.fs_uuid].into_iter().flatten() {
            if id.get_ref().is_empty() || id.get_ref().contains('/') {
                problems.push(at(
                    Some(id.span()),
                    format!("{:?} is not a filesystem label or UUID", id.get_ref()),
                ));
            }
        }
        let on_drive = r.fs_label.is_some() || r.fs_uuid.is_some();
        let p = r.path.get_ref();
        if on_drive && p.is_absolute() {
            problems.push(at(
                Some(r.path.span()),
                format!("with fs_label or fs_uuid, path is inside the drive: write it relative to the drive's top folder (e.g. \"coffre\"), not {:?}", p.display().to_string()),
            ));
        } else if on_drive && p.components().any(|c| c == Component::ParentDir) {
            problems.push(at(
                Some(r.path.span()),
                "path may not leave the drive (\"..\")".to_string(),
            ));
        } else if !on_drive && !p.is_absolute() {
            problems.push(at(
                Some(r.path.span()),
                format!("{:?} is a relative path: write the repository folder in full (e.g. \"/media/coffre/lundi\"), or name its drive with fs_label", p.display().to_string()),
            ));
        }
        repositories.push(RepositoryConfig {
            name: name.clone(),
            path: p.clone(),
            fs_label: r.fs_label.as_ref().map(|s| s.get_ref().clone()),
            fs_uuid: r.fs_uuid.as_ref().map(|s| s.get_ref().clone()),
        });
    }
    if raw.repository.is_empty() {
        problems.push(at(
            None,
            "no [[repository]]: add one (name, and path of the repository folder)".to_string(),
        ));
    }
    if let Some(r) = &raw.retention {
        if r.get_ref().policy().is_none() {
            problems.push(at(
                Some(r.span()),
                "[retention] keeps nothing: give at least one keep_* rule above zero (e.g. keep_daily = 7)".to_string(),
            ));
        }
    }
    if let Some(n) = &raw.notify {
        if n.get_ref().mail_command.is_some() && n.get_ref().mail_to.is_none() {
            problems.push(at(
                Some(n.span()),
                "mail_command is set but not mail_to: add mail_to = \"address\"".to_string(),
            ));
        }
    }
    problems.sort_by_key(|p| (p.line, p.column));
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    Ok(Config {
        password_file: raw.password_file,
        cache_dir: raw.cache_dir,
        repositories,
        snapshot: raw.snapshot,
        retention: raw.retention.map(Spanned::into_inner).unwrap_or_default(),
        schedule: raw.schedule,
        notify: raw.notify.map(Spanned::into_inner).unwrap_or_default(),
        s3: raw.s3,
        audit: raw.audit,
    })
}

/// Completes an S3 repository's options from `[s3]`: credentials when the
/// environment has none, the region, the upload limit when no flag set one.
pub fn apply_s3(cli: &Cli, options: &mut snapshots_format::backend::s3::S3Options) -> Result<()> {
    let Some(s3) = load(cli)?.and_then(|l| l.config.s3.as_ref()) else {
        return Ok(());
    };
    let env_has_key = std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty());
    if let (Some(id), Some(file), false) =
        (&s3.access_key_id, &s3.secret_access_key_file, env_has_key)
    {
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(file).with_context(|| {
            format!(
                "cannot read the S3 secret key file {} ([s3] secret_access_key_file)",
                file.display()
            )
        })?);
        let secret = text.lines().next().unwrap_or("").trim().to_owned();
        if secret.is_empty() {
            bail!("the S3 secret key file {} is empty", file.display());
        }
        options.credentials = Some(snapshots_format::backend::s3::S3Credentials {
            key_id: id.clone(),
            secret: secret.into(),
            token: None,
        });
    }
    if options.region.is_none() && std::env::var_os("AWS_REGION").is_none() {
        options.region.clone_from(&s3.region);
    }
    if options.limit_upload.is_none() {
        options.limit_upload = s3.limit_upload.as_ref().map(|b| b.bytes.max(1024));
    }
    Ok(())
}

/// The configuration file to read: `--config`/`COFFRE_CONFIG` (must exist),
/// else the default path when it exists.
pub fn path(cli: &Cli) -> Result<Option<PathBuf>> {
    if let Some(p) = &cli.config {
        if !p.exists() {
            bail!(
                "configuration file {} not found: check --config (or COFFRE_CONFIG)",
                p.display()
            );
        }
        return Ok(Some(p.clone()));
    }
    let default = default_path();
    Ok(default.exists().then_some(default))
}

/// The default path: [`DEFAULT_PATH`], or `COFFRE_CONFIG_DEFAULT` (tests).
pub fn default_path() -> PathBuf {
    std::env::var_os("COFFRE_CONFIG_DEFAULT")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from)
}

/// Reads and checks the configuration file, once per run.
pub fn load(cli: &Cli) -> Result<Option<&'static Loaded>> {
    static LOADED: OnceLock<Option<Loaded>> = OnceLock::new();
    if let Some(l) = LOADED.get() {
        return Ok(l.as_ref());
    }
    let loaded = match path(cli)? {
        None => None,
        Some(p) => Some(read(&p)?),
    };
    Ok(LOADED.get_or_init(|| loaded).as_ref())
}

/// Reads and checks one file.
pub fn read(path: &Path) -> Result<Loaded> {
    let path = std::path::absolute(path)
        .with_context(|| format!("configuration file {}", path.display()))?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    let config = parse(&path, &text)?;
    Ok(Loaded { path, config })
}

// ---- Which repository: the drive that is plugged in.

/// What a repository's folder holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contents {
    /// A Coffre repository.
    Repository,
    /// Nothing yet: the folder is absent (its parent exists) or empty.
    Nothing,
    /// Something else (files, but no repository).
    Other,
}

/// Where a configured repository is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The drive (or parent folder) is there: the repository folder and
    /// what it holds.
    Here(PathBuf, Contents),
    /// The drive is plugged in (this device) but mounted nowhere.
    NotMounted(PathBuf),
    /// A fixed folder under /media or /mnt with no drive mounted in the
    /// way: the folder is on the system disk (a repository created there
    /// would fill it, and leave with no drive).
    NoDrive(PathBuf),
    /// The drive, or the folder above the repository, is not there.
    Absent,
}

/// Where the system describes its drives; a parameter so that tests can
/// lay out a fake one.
#[derive(Debug, Clone)]
pub struct System {
    /// Where /dev, /proc and /etc are: `/` in real use.
    pub root: PathBuf,
    /// Folders where drives are mounted: a fixed repository folder under
    /// one of them is only there when a drive is mounted in between.
    pub drive_folders: Vec<PathBuf>,
}

impl Default for System {
    fn default() -> Self {
        System {
            root: PathBuf::from("/"),
            drive_folders: ["/media", "/mnt", "/run/media"].map(PathBuf::from).to_vec(),
        }
    }
}

impl RepositoryConfig {
    /// What is looked for, for messages: `drive labelled "LUNDI"`,
    /// `drive with UUID ...`, or the folder above the repository.
    pub fn looked_for(&self) -> String {
        if let Some(l) = &self.fs_label {
            format!("the drive labelled {l:?}")
        } else if let Some(u) = &self.fs_uuid {
            format!("the drive with UUID {u}")
        } else {
            let parent = self.path.parent().unwrap_or(&self.path);
            format!("{}", parent.display())
        }
    }

    /// Finds the repository now.
    pub fn locate(&self, sys: &System) -> Location {
        let by = |kind: &str, id: &str| sys.root.join("dev/disk").join(kind).join(udev_encode(id));
        let (device, fstab_key) = match (&self.fs_label, &self.fs_uuid) {
            (Some(l), _) => (by("by-label", l), format!("LABEL={l}")),
            (None, Some(u)) => (by("by-uuid", u), format!("UUID={u}")),
            (None, None) => {
                let folder_there = self.path.parent().is_none_or(Path::is_dir);
                return if !folder_there {
                    Location::Absent
                } else if no_drive_mounted(&self.path, &sys.drive_folders) {
                    Location::NoDrive(self.path.clone())
                } else {
                    Location::Here(self.path.clone(), contents(&self.path))
                };
            }
        };
        let Ok(device) = std::fs::canonicalize(&device) else {
            return Location::Absent;
        };
        let mounted = || {
            let info =
                std::fs::read_to_string(sys.root.join("proc/self/mountinfo")).unwrap_or_default();
            mount_point_of(&device, &info)
        };
        if let Some(mp) = mounted() {
            let path = mp.join(&self.path);
            return Location::Here(path.clone(), contents(&path));
        }
        // Not mounted, yet named in fstab: with `x-systemd.automount` the
        // first access mounts it. Without, the folder stays an empty one
        // on the system disk: the drive counts as mounted only once
        // mountinfo says so.
        let fstab = std::fs::read_to_string(sys.root.join("etc/fstab")).unwrap_or_default();
        let Some(mp) = fstab_mount_point(&device, &fstab_key, &fstab) else {
            return Location::NotMounted(device);
        };
        let held = contents(&mp.join(&self.path));
        match mounted() {
            Some(mp) => Location::Here(mp.join(&self.path), held),
            None => Location::NotMounted(device),
        }
    }
}

/// Whether `path`, under one of `drive_folders`, has no other filesystem
/// than that folder's at or above it.
fn no_drive_mounted(path: &Path, drive_folders: &[PathBuf]) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(base) = drive_folders.iter().find(|f| path.starts_with(f)) else {
        return false;
    };
    let Ok(base_dev) = std::fs::metadata(base).map(|m| m.dev()) else {
        return false;
    };
    !path
        .ancestors()
        .take_while(|a| a != base)
        .any(|a| std::fs::metadata(a).is_ok_and(|m| m.dev() != base_dev))
}

/// What a folder holds.
fn contents(path: &Path) -> Contents {
    if path.join("config").is_file() {
        return Contents::Repository;
    }
    match std::fs::read_dir(path) {
        Ok(mut entries) => {
            if entries.next().is_none() {
                Contents::Nothing
            } else {
                Contents::Other
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contents::Nothing,
        Err(_) => Contents::Other,
    }
}

/// A name as udev writes it under /dev/disk/by-label: bytes outside a safe
/// set as `\xNN` (a label "SAUVEGARDE 1" is `SAUVEGARDE\x201`).
pub fn udev_encode(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || "#+-.:=@_".contains(c) || !c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
    }
    out
}

/// Linux's `major:minor` of a device number, as mountinfo prints it.
fn major_minor(rdev: u64) -> String {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    format!("{major}:{minor}")
}

/// Where `device` (a canonical /dev path) is mounted, whole (root `/`), per
/// /proc/self/mountinfo; the first such mount.
pub fn mount_point_of(device: &Path, mountinfo: &str) -> Option<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::MetadataExt;
    let majmin = std::fs::metadata(device)
        .ok()
        .filter(|m| m.file_type().is_block_device())
        .map(|m| major_minor(m.rdev()));
    crate::mounts::parse(mountinfo)
        // A bind mount of a folder inside the drive is not its top.
        .filter(|m| m.root == Path::new("/"))
        .find(|m| {
            let source = Path::new(&m.source);
            majmin.as_deref() == Some(m.major_minor.as_str())
                || source == device
                || (source.is_absolute()
                    && std::fs::canonicalize(source).is_ok_and(|s| s == device))
        })
        .map(|m| m.point)
}

/// The mount point /etc/fstab gives the device (by `LABEL=`/`UUID=` or path).
fn fstab_mount_point(device: &Path, key: &str, fstab: &str) -> Option<PathBuf> {
    for line in fstab.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(spec), Some(mp)) = (fields.next(), fields.next()) else {
            continue;
        };
        let spec = crate::mounts::unescape_octal(spec);
        let spec_key = spec
            .replacen("LABEL=\"", "LABEL=", 1)
            .replacen("UUID=\"", "UUID=", 1);
        let same = spec_key.trim_end_matches('"') == key
            || (spec.starts_with('/') && std::fs::canonicalize(&spec).is_ok_and(|s| s == device));
        if same && mp.starts_with('/') {
            return Some(PathBuf::from(crate::mounts::unescape_octal(mp)));
        }
    }
    None
}

/// Why a repository is chosen: to use one, or to create one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Any command but `init`: a folder that holds a repository.
    Use,
    /// `init`: a folder that is absent or empty, on a drive that is there.
    Init,
}

/// The repository chosen among the configured ones.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// Its `name`.
    pub name: String,
    /// Its folder now.
    pub path: PathBuf,
}

/// Chooses the configured repository: `drive` (from `--drive`) by name,
/// else the first whose drive is there and that fits `purpose`.
pub fn choose(
    config: &Config,
    drive: Option<&str>,
    purpose: Purpose,
    sys: &System,
) -> Result<Chosen> {
    let names = || {
        config
            .repositories
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(name) = drive {
        let Some(r) = config.repositories.iter().find(|r| r.name == name) else {
            bail!(
                "no repository named {name:?} in the configuration (its repositories: {})",
                names()
            );
        };
        return match r.locate(sys) {
            // The library says what is wrong with the folder itself
            // (not a repository, already one for init).
            Location::Here(path, _) => Ok(Chosen {
                name: r.name.clone(),
                path,
            }),
            Location::NotMounted(dev) => bail!(
                "drive {name} ({}) is plugged in as {} but not mounted: mount it (see docs/CONFIG.md, \"Drives in rotation\")",
                r.looked_for(),
                dev.display()
            ),
            Location::Absent => bail!(
                "drive {name} is not there (looked for {}): plug it in and mount it",
                r.looked_for()
            ),
            Location::NoDrive(path) => bail!(
                "drive {name} is not mounted: {} is a folder of the system disk. Plug the drive in and mount it",
                path.parent().unwrap_or(&path).display()
            ),
        };
    }
    let mut report = Vec::new();
    for r in &config.repositories {
        let loc = r.locate(sys);
        match (&loc, purpose) {
            (Location::Here(path, Contents::Repository), Purpose::Use)
            | (Location::Here(path, Contents::Nothing), Purpose::Init) => {
                return Ok(Chosen {
                    name: r.name.clone(),
                    path: path.clone(),
                })
            }
            _ => {}
        }
        report.push(match loc {
            Location::Here(path, Contents::Repository) => {
                format!("{}: {} already holds a repository", r.name, path.display())
            }
            Location::Here(path, Contents::Nothing) => format!(
                "{}: {} holds no repository yet (create it with `coffre init --drive {}`)",
                r.name,
                path.display(),
                r.name
            ),
            Location::Here(path, Contents::Other) => format!(
                "{}: {} holds other files, not a repository",
                r.name,
                path.display()
            ),
            Location::NotMounted(dev) => format!(
                "{}: plugged in as {} but not mounted",
                r.name,
                dev.display()
            ),
            Location::Absent => format!("{}: {} not found", r.name, r.looked_for()),
            Location::NoDrive(path) => format!(
                "{}: no drive mounted at {}",
                r.name,
                path.parent().unwrap_or(&path).display()
            ),
        });
    }
    let what = match purpose {
        Purpose::Use => format!(
            "no backup drive found. Plug in one of the drives {} (and mount it), or name one with --drive",
            names()
        ),
        Purpose::Init => format!(
            "no drive ready for a new repository. Plug in one of the drives {} that is new or empty, or name one with --drive",
            names()
        ),
    };
    bail!("{what}.\n  {}", report.join("\n  "))
}

/// The repository the configuration designates now (`--drive`, else the
/// first plugged-in drive holding one), for any command but `init`;
/// chosen once per run, and named on stderr so that a scheduled run's log
/// tells which drive it wrote to.
pub fn repository_now(cli: &Cli) -> Result<&'static Path> {
    static CHOSEN: OnceLock<PathBuf> = OnceLock::new();
    if let Some(p) = CHOSEN.get() {
        return Ok(p);
    }
    let chosen = chosen(cli, Purpose::Use)?;
    if !cli.json {
        eprintln!("Repository: {} ({})", chosen.name, chosen.path.display());
    }
    Ok(CHOSEN.get_or_init(|| chosen.path))
}

/// The configured repository for `purpose`; an error that says what to do
/// when there is no configuration file.
pub fn chosen(cli: &Cli, purpose: Purpose) -> Result<Chosen> {
    let Some(loaded) = load(cli)? else {
        bail!(
            "no repository given: use -r/--repo PATH, set COFFRE_REPO, or list the drives in {} (see docs/CONFIG.md)",
            default_path().display()
        );
    };
    choose(
        &loaded.config,
        cli.drive.as_deref(),
        purpose,
        &System::default(),
    )
    .with_context(|| format!("configuration {}", loaded.path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<(usize, usize, String)> {
        match parse(Path::new("c.toml"), text) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems
                .into_iter()
                .map(|p| (p.line, p.column, p.message))
                .collect(),
        }
    }

    const REPO: &str = "[[repository]]\nname = \"lundi\"\npath = \"/media/lundi/coffre\"\n";

    /// Every field, for the checks that the example and the docs tell of each.
    const FIELDS: [&str; 37] = [
        "password_file",
        "cache_dir",
        "[[repository]]",
        "name",
        "path",
        "fs_label",
        "fs_uuid",
        "[snapshot]",
        "sources",
        "label",
        "tags",
        "exclude",
        "exclude_file",
        "exclude_if_present",
        "exclude_larger_than",
        "cross_filesystems",
        "one_file_system",
        "before",
        "after",
        "from_command",
        "skip_if_unchanged",
        "fs_snapshot",
        "fs_snapshot_size",
        "[retention]",
        "keep_last",
        "keep_daily",
        "keep_weekly",
        "keep_monthly",
        "keep_yearly",
        "keep_within",
        "[schedule]",
        "at",
        "weekdays",
        "verify",
        "[notify]",
        "mail_command",
        "mail_to",
    ];

    #[test]
    fn the_packaged_example_is_valid_and_it_and_the_docs_tell_every_field() {
        let text = include_str!("../../packaging/coffre.toml");
        let c = parse(Path::new("packaging/coffre.toml"), text).expect("valid example");
        assert_eq!(c.repositories.len(), 6);
        assert!(c.retention.policy().is_some());
        let doc = include_str!("../../docs/CONFIG.md");
        for field in FIELDS.iter().chain(&["webhook", "stale_after"]) {
            assert!(text.contains(field), "packaging/coffre.toml lacks {field}");
            assert!(doc.contains(field), "docs/CONFIG.md lacks {field}");
        }
    }

    #[test]
    fn line_and_column_count_characters() {
        let t = "a\nbé c\n";
        assert_eq!(line_column(t, 0), (1, 1));
        assert_eq!(line_column(t, 2), (2, 1));
        assert_eq!(line_column(t, 5), (2, 3)); // after "bé" (3 bytes)
        assert_eq!(line_column(t, 99), (3, 1));
    }

    #[test]
    fn a_full_config_parses() {
        let text = format!(
            "password_file = \"/etc/coffre/passphrase\"\n{REPO}\n[[repository]]\nname = \"mardi\"\npath = \"coffre\"\nfs_label = \"MARDI\"\n\
             [snapshot]\nsources = [\"/srv/officine\"]\nexclude = [\"*.tmp\"]\nexclude_larger_than = \"1.5G\"\nexclude_if_present = [\".nobackup\"]\n\
             from_command = {{ \"db.fbk\" = \"nbackup -b 0 db\" }}\n\
             [retention]\nkeep_daily = 7\nkeep_within = \"2w\"\n[schedule]\nat = \"20h30\"\nweekdays = [\"lun\", \"mar\", \"wed\"]\nverify = \"read-data\"\n\
             [notify]\nmail_to = \"it@example.org\"\nstale_after = \"36h\"\nwebhook = \"https://example.org/hook\"\n"
        );
        let c = parse(Path::new("c.toml"), &text).expect("valid");
        assert_eq!(c.repositories.len(), 2);
        assert_eq!(
            c.snapshot.exclude_larger_than.as_ref().map(|s| s.bytes),
            Some(3 << 29)
        );
        let s = c.schedule.as_ref().expect("schedule");
        assert_eq!((s.at.hour, s.at.minute), (20, 30));
        assert_eq!(s.weekdays.to_string(), "mon-wed");
        assert_eq!(s.verify, Verify::ReadData);
        assert_eq!(c.notify.mail_command(), Some("/usr/sbin/sendmail -t"));
        assert_eq!(
            c.notify.stale_after.as_ref().map(|d| d.duration.as_secs()),
            Some(36 * 3600)
        );
        assert_eq!(
            c.retention.policy().map(|p| p.to_string()).as_deref(),
            Some("keep-daily 7, keep-within 14d")
        );
        // What `config show` prints reads back the same.
        let again = toml::to_string(&c).expect("serialize");
        let c2 = parse(Path::new("c.toml"), &again).expect("round trip");
        assert_eq!(toml::to_string(&c2).expect("serialize"), again);
    }

    #[test]
    fn errors_name_their_line() {
        let p = problems(&format!("{REPO}colour = \"blue\"\n"));
        assert_eq!(p[0].0, 4, "{p:?}");
        assert!(p[0].2.contains("unknown field `colour`"), "{p:?}");
        let p = problems(&format!("{REPO}[retention]\nkeep_daily = \"seven\"\n"));
        assert_eq!((p[0].0, p[0].1), (5, 14), "{p:?}");
        let p = problems(&format!("{REPO}[schedule]\nat = \"25:00\"\n"));
        assert_eq!(p[0].0, 5, "{p:?}");
        assert!(p[0].2.contains("invalid time \"25:00\""), "{p:?}");
        let p = problems(&format!(
            "{REPO}[schedule]\nat = \"20:30\"\nweekdays = \"mon-fry\"\n"
        ));
        assert_eq!(p[0].0, 6, "{p:?}");
        // In a list, the list's line (the message quotes the culprit).
        let p = problems(&format!("{REPO}[snapshot]\nsources = [\"/a\",\n  \"b\"]\n"));
        assert_eq!((p[0].0, p[0].1), (5, 11), "{p:?}");
        assert!(p[0].2.contains("\"b\" is a relative path"), "{p:?}");
        let p = problems(&format!(
            "{REPO}[snapshot]\nexclude_larger_than = \"big\"\n"
        ));
        assert_eq!(p[0].0, 5, "{p:?}");
        let p = problems(&format!("{REPO}[notify]\nstale_after = \"soon\"\n"));
        assert_eq!(p[0].0, 5, "{p:?}");
        let p = problems(&format!("{REPO}{REPO}"));
        assert_eq!(p[0].0, 5, "{p:?}");
        assert!(p[0].2.contains("used twice (first on line 2)"), "{p:?}");
        let p = problems("[[repository]]\nname = \"x\"\npath = \"rel\"\n");
        assert_eq!(p[0].0, 3, "{p:?}");
        let p = problems("[[repository]]\nname = \"x\"\npath = \"/abs\"\nfs_label = \"X\"\n");
        assert_eq!(p[0].0, 3, "{p:?}");
        let p = problems("[snapshot]\n");
        assert_eq!(p[0].0, 0, "{p:?}");
        let p = problems(&format!("{REPO}[snapshot\n"));
        assert_eq!(p[0].0, 4, "{p:?}");
        let p = problems(&format!("{REPO}[snapshot]\nfs_snapshot = \"zfs\"\n"));
        assert_eq!(p[0].0, 5, "{p:?}");
        let ok = parse(
            Path::new("c.toml"),
            &format!("{REPO}[snapshot]\nfs_snapshot = \"btrfs\"\n"),
        )
        .expect("valid");
        assert_eq!(
            ok.snapshot.fs_snapshot,
            Some(crate::fs_snapshot::Kind::Btrfs)
        );
    }

    #[test]
    fn weekdays_and_times() {
        let w = |s: &str| Weekdays::parse(s).map(|w| (w.to_string(), w.systemd()));
        assert_eq!(
            w("mon-fri"),
            Ok(("mon-fri".into(), Some("Mon..Fri".into())))
        );
        assert_eq!(
            w("mon,wed, fri"),
            Ok(("mon,wed,fri".into(), Some("Mon,Wed,Fri".into())))
        );
        assert_eq!(
            w("sat-mon"),
            Ok(("mon,sat,sun".into(), Some("Mon,Sat,Sun".into())))
        );
        assert_eq!(
            w("lundi-samedi"),
            Ok(("mon-sat".into(), Some("Mon..Sat".into())))
        );
        assert_eq!(w("daily").map(|x| x.1), Ok(None));
        assert!(w("funday").is_err());
        assert!(w("monxyz").is_err());
        assert!(w("mo").is_err());
        assert_eq!(w("Tuesday, jeu").map(|x| x.0), Ok("tue,thu".into()));
        assert!(w("").is_err());
        assert!(ClockTime::parse("25:00").is_err());
        assert!(ClockTime::parse("20:5").is_err());
        assert!(ClockTime::parse("20").is_err());
        assert_eq!(
            ClockTime::parse("8:05").map(|t| t.to_string()),
            Ok("08:05".into())
        );
    }

    #[test]
    fn mountinfo_and_fstab() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dev = dir.path().join("sdb1");
        std::fs::write(&dev, "").expect("write");
        let info = format!(
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
             40 22 8:17 /sub /srv/bind rw - ext4 {d} rw\n\
             41 22 8:17 / /media/ma\\040cl\\303\\251 rw shared:1 - ext4 {d} rw\n",
            d = dev.display()
        );
        assert_eq!(
            mount_point_of(&dev, &info),
            Some(PathBuf::from("/media/ma clé"))
        );
        assert_eq!(mount_point_of(&dir.path().join("other"), &info), None);
        let fstab =
            "# comment\nLABEL=LUNDI /media/lundi ext4 noauto,nofail,x-systemd.automount 0 2\n";
        assert_eq!(
            fstab_mount_point(&dev, "LABEL=LUNDI", fstab),
            Some(PathBuf::from("/media/lundi"))
        );
        assert_eq!(fstab_mount_point(&dev, "LABEL=MARDI", fstab), None);
        assert_eq!(udev_encode("SAUVE 1/é"), "SAUVE\\x201\\x2fé");
    }

    #[test]
    fn drives_found_by_label() {
        let root = tempfile::tempdir().expect("tempdir");
        let sys = System {
            root: root.path().to_path_buf(),
            drive_folders: Vec::new(),
        };
        let by_label = root.path().join("dev/disk/by-label");
        std::fs::create_dir_all(&by_label).expect("mkdir");
        let dev = root.path().join("dev/sdc1");
        std::fs::write(&dev, "").expect("write");
        let mnt = root.path().join("mnt/mardi");
        std::fs::create_dir_all(mnt.join("coffre")).expect("mkdir");
        std::fs::write(mnt.join("coffre/config"), "x").expect("write");
        std::os::unix::fs::symlink("../../sdc1", by_label.join("MARDI")).expect("link");
        std::fs::create_dir_all(root.path().join("proc/self")).expect("mkdir");
        std::fs::write(
            root.path().join("proc/self/mountinfo"),
            format!(
                "50 1 8:33 / {} rw - ext4 {} rw\n",
                mnt.display(),
                dev.display()
            ),
        )
        .expect("write");
        let text = "[[repository]]\nname = \"lundi\"\npath = \"coffre\"\nfs_label = \"LUNDI\"\n\
                    [[repository]]\nname = \"mardi\"\npath = \"coffre\"\nfs_label = \"MARDI\"\n";
        let c = parse(Path::new("c.toml"), text).expect("valid");
        assert_eq!(c.repositories[0].locate(&sys), Location::Absent);
        let chosen = choose(&c, None, Purpose::Use, &sys).expect("mardi");
        assert_eq!(
            (chosen.name.as_str(), chosen.path),
            ("mardi", mnt.join("coffre"))
        );
        let err = choose(&c, Some("lundi"), Purpose::Use, &sys).expect_err("absent");
        assert!(
            err.to_string().contains("drive lundi is not there"),
            "{err}"
        );
        let err = choose(&c, None, Purpose::Init, &sys).expect_err("no room");
        assert!(format!("{err:#}").contains("mardi: "), "{err:#}");
        // Unmounted: said so, even when fstab names its place (an empty
        // folder of the system disk until something mounts it there).
        std::fs::write(root.path().join("proc/self/mountinfo"), "").expect("write");
        assert!(matches!(
            c.repositories[1].locate(&sys),
            Location::NotMounted(_)
        ));
        std::fs::create_dir_all(root.path().join("etc")).expect("mkdir");
        std::fs::write(
            root.path().join("etc/fstab"),
            format!(
                "LABEL=MARDI {} ext4 noauto,x-systemd.automount 0 2\n",
                mnt.display()
            ),
        )
        .expect("write");
        assert!(matches!(
            c.repositories[1].locate(&sys),
            Location::NotMounted(_)
        ));
    }

    #[test]
    fn a_fixed_folder_under_media_needs_a_drive_mounted() {
        let media = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(media.path().join("usb")).expect("mkdir");
        let sys = System {
            root: PathBuf::from("/"),
            drive_folders: vec![media.path().to_path_buf()],
        };
        let r = RepositoryConfig {
            name: "usb".into(),
            path: media.path().join("usb/coffre"),
            fs_label: None,
            fs_uuid: None,
        };
        // Same filesystem as the drive folder itself: no drive there.
        assert_eq!(r.locate(&sys), Location::NoDrive(r.path.clone()));
        let c = Config {
            password_file: None,
            cache_dir: None,
            repositories: vec![r.clone()],
            snapshot: SnapshotConfig::default(),
            retention: RetentionConfig::default(),
            schedule: None,
            notify: NotifyConfig::default(),
            s3: None,
            audit: None,
        };
        let err = choose(&c, None, Purpose::Init, &sys).expect_err("no drive");
        assert!(
            format!("{err:#}").contains("usb: no drive mounted at"),
            "{err:#}"
        );
        // Elsewhere (or with no drive folders), a folder is a folder.
        let sys = System {
            root: PathBuf::from("/"),
            drive_folders: Vec::new(),
        };
        assert_eq!(
            r.locate(&sys),
            Location::Here(r.path.clone(), Contents::Nothing)
        );
    }
}
