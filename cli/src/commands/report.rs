//! `coffre report`: the month's evidence for the pharmacy's auditor
//! (docs/REPORT.md), as one self-contained HTML file that prints on A4.
//!
//! Everything comes from the repository: the journal (every snapshot,
//! check, restore test, copy, forget, prune, key change and legal hold,
//! with who ran it) and the snapshot records, plus the configuration's
//! `[audit]`, `[schedule]`, `[[repository]]` and `[retention]`. The work is
//! done in three steps: [`collect`] reads the repository, [`build`] turns
//! it into a [`Report`] (plain data, no HTML), [`render`] writes the page.
//! Every text put in the page goes through [`esc`].
//!
//! Exit code 1 when the journal was tampered with or cannot be read (the
//! report is written all the same, with the problem at its top).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Datelike, Local, NaiveDate, TimeZone};
use serde_json::{json, Value};
use snapshots_format::format::journal::{Entry, EntryKind, Outcome};
use snapshots_format::format::policy::Policy;
use snapshots_format::format::snapshot::Snapshot;
use snapshots_format::{FileKind, Repository, SnapshotId};

use crate::args::{Cli, ReportArgs};
use crate::config::{Config, ScheduleConfig, Verify};

/// Writes the month's report (and prints its JSON summary with `--json`).
pub fn run(cli: &Cli, args: &ReportArgs) -> Result<u8> {
    let lang = Lang::parse(&args.lang)?;
    let now = super::now()?.sec;
    let today = local(now)
        .map(|t| t.date_naive())
        .context("the current time is out of range: check the system clock (or COFFRE_FAKE_NOW)")?;
    let month = match &args.month {
        Some(m) => Month::parse(m)?,
        None => Month::before(today),
    };
    let out = match &args.out {
        Some(p) => p.clone(),
        None => PathBuf::from(format!("{}-{}.html", lang.file_stem(), month.key())),
    };
    let config = crate::config::load(cli)?.map(|l| &l.config);
    let repo = super::open(cli)?;
    let facts = collect(&repo, config)?;
    let report = build(lang, month, now, today, config, &facts);
    let html = render(&report);
    std::fs::write(&out, html).with_context(|| {
        format!(
            "cannot write the report to {}: check that the folder exists and is writable, or choose another file with --out",
            out.display()
        )
    })?;
    let shown = std::path::absolute(&out).unwrap_or(out);
    if cli.json {
        super::print_json(&summary_json(&report, &shown))?;
    } else {
        print_summary(&report, &shown);
    }
    for p in &report.problems {
        eprintln!("warning: {p}");
    }
    if report.problems.is_empty() {
        Ok(0)
    } else {
        eprintln!("The journal was tampered with or damaged (see the top of the report): keep this drive aside and compare with another drive's journal.");
        Ok(crate::EXIT_ERROR)
    }
}

// ---------------------------------------------------------------------------
// Language, month, local time.

/// The report's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Fr,
    En,
}

const MONTHS_FR: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS_FR: [&str; 7] = ["lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."];
const DAYS_EN: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl Lang {
    fn parse(s: &str) -> Result<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fr" => Ok(Lang::Fr),
            "en" => Ok(Lang::En),
            other => {
                bail!("unknown report language {other:?}: use --lang fr (the default) or --lang en")
            }
        }
    }

    /// The French or the English text.
    fn t(self, fr: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Fr => fr,
            Lang::En => en,
        }
    }

    fn code(self) -> &'static str {
        self.t("fr", "en")
    }

    fn file_stem(self) -> &'static str {
        self.t("rapport", "report")
    }

    fn month_name(self, month: u32) -> &'static str {
        let names = match self {
            Lang::Fr => &MONTHS_FR,
            Lang::En => &MONTHS_EN,
        };
        names[(month.clamp(1, 12) - 1) as usize]
    }

    fn weekday(self, monday_based: usize) -> &'static str {
        match self {
            Lang::Fr => DAYS_FR[monday_based % 7],
            Lang::En => DAYS_EN[monday_based % 7],
        }
    }

    fn date(self, d: NaiveDate) -> String {
        match self {
            Lang::Fr => d.format("%d/%m/%Y").to_string(),
            Lang::En => d.format("%Y-%m-%d").to_string(),
        }
    }

    /// A Unix time as a local date and time, to the minute.
    fn time(self, t: i64) -> String {
        match local(t) {
            Some(d) => format!("{} {}", self.date(d.date_naive()), d.format("%H:%M")),
            None => t.to_string(),
        }
    }

    /// Sizes: `1.5 MiB`, in French `1,5 Mio`.
    fn bytes(self, n: u64) -> String {
        let s = crate::format::bytes(n);
        match self {
            Lang::En => s,
            Lang::Fr => {
                let (num, unit) = s.split_once(' ').unwrap_or((&s, "B"));
                format!("{} {}", num.replace('.', ","), french_unit(unit))
            }
        }
    }

    fn outcome(self, o: Outcome) -> &'static str {
        match o {
            Outcome::Ok => self.t("réussi", "ok"),
            Outcome::Warning => self.t("avertissement", "warning"),
            Outcome::Failed => self.t("ÉCHEC", "FAILED"),
        }
    }
}

fn french_unit(unit: &str) -> &str {
    match unit {
        "B" => "o",
        "KiB" => "Kio",
        "MiB" => "Mio",
        "GiB" => "Gio",
        "TiB" => "Tio",
        "PiB" => "Pio",
        other => other,
    }
}

/// Unix seconds in the local timezone (`TZ` respected).
fn local(t: i64) -> Option<DateTime<Local>> {
    DateTime::from_timestamp(t, 0).map(|u| u.with_timezone(&Local))
}

fn local_date(t: i64) -> Option<NaiveDate> {
    local(t).map(|d| d.date_naive())
}

/// Unix seconds of the local midnight that ends `day`.
fn end_of_day(day: NaiveDate) -> i64 {
    let next = day
        .succ_opt()
        .unwrap_or(day)
        .and_time(chrono::NaiveTime::MIN);
    Local
        .from_local_datetime(&next)
        .earliest()
        .map_or_else(|| next.and_utc().timestamp(), |t| t.timestamp())
}

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// `YYYY-MM`.
    fn parse(s: &str) -> Result<Month> {
        let bad =
            || anyhow::anyhow!("invalid month {s:?}: give it as YYYY-MM (e.g. --month 2026-11)");
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || year < 1970 {
            return Err(bad());
        }
        Ok(Month { year, month })
    }

    /// The month before the one holding `day`.
    fn before(day: NaiveDate) -> Month {
        match day.month() {
            1 => Month {
                year: day.year() - 1,
                month: 12,
            },
            m => Month {
                year: day.year(),
                month: m - 1,
            },
        }
    }

    fn key(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    fn title(self, lang: Lang) -> String {
        format!("{} {}", lang.month_name(self.month), self.year)
    }

    /// Every day of the month, in order.
    fn days(self) -> Vec<NaiveDate> {
        let Some(first) = NaiveDate::from_ymd_opt(self.year, self.month, 1) else {
            return Vec::new();
        };
        first
            .iter_days()
            .take_while(|d| d.month() == self.month)
            .collect()
    }

    fn contains(self, t: i64) -> bool {
        local_date(t).is_some_and(|d| d.year() == self.year && d.month() == self.month)
    }
}

// ---------------------------------------------------------------------------
// Collect: what the repository holds.

/// What the repository says, read once.
struct Facts {
    /// Journal entries, in the journal's order.
    entries: Vec<Entry>,
    /// Removed, replaced or reordered entries (or an unreadable journal).
    problems: Vec<String>,
    /// The snapshot records still in the repository.
    records: Vec<(SnapshotId, Snapshot)>,
    /// The data's size on the drive now (sum of the packs), if listable.
    size_now: Option<u64>,
    /// Where the repository is.
    location: String,
    /// The retention policy, and where it comes from.
    policy: Option<(Policy, bool)>,
}

fn collect(repo: &Repository, config: Option<&Config>) -> Result<Facts> {
    let (entries, problems) = match repo.journal() {
        Ok(j) => (j.entries.into_iter().map(|(_, e)| e).collect(), j.problems),
        Err(e) => (Vec::new(), vec![format!("the journal cannot be read: {e}")]),
    };
    let records = super::snapshots(repo)?;
    let size_now = match repo.backend().list(FileKind::Pack) {
        Ok(packs) => Some(packs.iter().map(|(_, size)| size).sum()),
        Err(e) => {
            eprintln!("warning: the repository's size cannot be measured ({e}); the size chart adds up the journal instead");
            None
        }
    };
    let configured = config.and_then(|c| c.retention.policy());
    let policy = match configured {
        Some(p) => Some((p, true)),
        None => match repo.load_policy() {
            Ok(p) => p.map(|p| (p, false)),
            Err(e) => {
                eprintln!(
                    "warning: the retention policy saved in the repository cannot be read: {e}"
                );
                None
            }
        },
    };
    Ok(Facts {
        entries,
        problems,
        records,
        size_now,
        location: repo.backend().location(),
        policy,
    })
}

// ---------------------------------------------------------------------------
// The model.

/// A day's result in the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// A snapshot recorded without problem.
    Ok,
    /// A snapshot recorded, with files that could not be read (or an alarm).
    Warning,
    /// Only failed attempts.
    Failed,
    /// Planned, and nothing happened.
    Missing,
    /// Not a day of the schedule (or no schedule).
    NotPlanned,
    /// Today or later: nothing yet.
    Future,
}

impl Status {
    /// The CSS class and the JSON name.
    fn key(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Failed => "failed",
            Status::Missing => "missing",
            Status::NotPlanned => "not-planned",
            Status::Future => "future",
        }
    }

    fn label(self, lang: Lang) -> &'static str {
        match self {
            Status::Ok => lang.t("sauvegardé", "saved"),
            Status::Warning => lang.t("incomplet", "incomplete"),
            Status::Failed => lang.t("échec", "failed"),
            Status::Missing => lang.t("MANQUANT", "MISSING"),
            Status::NotPlanned => lang.t("non prévu", "not planned"),
            Status::Future => lang.t("à venir", "to come"),
        }
    }

    /// A mark that survives black-and-white printing.
    fn symbol(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Warning => "!",
            Status::Failed => "✗",
            Status::Missing => "?",
            Status::NotPlanned | Status::Future => "",
        }
    }

    fn meaning(self, lang: Lang) -> &'static str {
        match self {
            Status::Ok => lang.t(
                "au moins une sauvegarde complète ce jour-là",
                "at least one complete backup that day",
            ),
            Status::Warning => lang.t(
                "sauvegarde enregistrée, mais des fichiers n'ont pas pu être lus (ou alerte rançongiciel)",
                "backup recorded, but some files could not be read (or a ransomware alarm)",
            ),
            Status::Failed => lang.t(
                "la sauvegarde a échoué et aucune autre n'a réussi ce jour-là",
                "the backup failed and no other succeeded that day",
            ),
            Status::Missing => lang.t(
                "sauvegarde prévue, mais aucune trace : ni réussite ni échec",
                "backup planned, but no trace at all: neither success nor failure",
            ),
            Status::NotPlanned => lang.t(
                "pas de sauvegarde prévue ce jour de la semaine (ou pas de planification)",
                "no backup planned on that weekday (or no schedule)",
            ),
            Status::Future => lang.t("jour pas encore passé", "day not yet over"),
        }
    }
}

/// One backup attempt: a journal `snapshot` entry, or a snapshot record the
/// journal does not tell of (copied in, or older than the journal).
#[derive(Debug, Clone)]
struct Attempt {
    time: i64,
    outcome: Outcome,
    /// The snapshot's id (hex), when one was written.
    id: Option<String>,
    files: u64,
    total: u64,
    /// Bytes added to the drive (compressed, encrypted).
    stored: u64,
    unreadable: u64,
    /// Still in the repository (not removed by forget since).
    kept: bool,
}

/// A day of the calendar.
#[derive(Debug, Clone)]
struct Day {
    date: NaiveDate,
    status: Status,
    /// When the day's good snapshot (or its failure) happened.
    time: Option<i64>,
    attempts: usize,
    failures: usize,
    /// Bytes the day's snapshots added.
    added: u64,
    /// The repository's size at the end of the day, when known.
    size: Option<u64>,
}

/// How one point of the quality reference is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Good,
    Watch,
    Bad,
}

/// A line of the summary: a point of principle 42 and its evidence.
struct Point {
    mark: Mark,
    title: &'static str,
    evidence: String,
}

/// A row of a table: plain text cells (escaped when rendered).
struct Row {
    outcome: Outcome,
    cells: Vec<String>,
}

/// A table of journal events.
struct Table {
    /// The section's HTML id.
    id: &'static str,
    title: &'static str,
    intro: Option<String>,
    headers: Vec<&'static str>,
    rows: Vec<Row>,
    /// Said when there is no row.
    none: &'static str,
}

/// Counts for the summary and `--json`.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct Counts {
    days_planned: usize,
    days_ok: usize,
    days_warning: usize,
    days_failed: usize,
    days_missing: usize,
    days_not_planned: usize,
    days_future: usize,
    snapshots: usize,
    snapshots_failed: usize,
    restore_tests: usize,
    restore_tests_failed: usize,
    restores: usize,
    checks: usize,
    checks_failed: usize,
    copies: usize,
    copies_failed: usize,
    forgets: usize,
    prunes: usize,
    key_changes: usize,
    holds: usize,
    alarms: usize,
    journal_entries: usize,
}

/// Everything the page shows, without HTML.
struct Report {
    lang: Lang,
    month: Month,
    generated: i64,
    /// The people and the place: (label, value).
    header: Vec<(&'static str, String)>,
    pharmacy: Option<String>,
    responsible: Option<String>,
    problems: Vec<String>,
    points: Vec<Point>,
    planning: Vec<(&'static str, String)>,
    /// (name, path or drive).
    drives: Vec<(String, String)>,
    days: Vec<Day>,
    /// The size curve's basis, in words.
    size_note: String,
    tables: Vec<Table>,
    counts: Counts,
}

// ---------------------------------------------------------------------------
// Build: facts → model.

fn build(
    lang: Lang,
    month: Month,
    now: i64,
    today: NaiveDate,
    config: Option<&Config>,
    facts: &Facts,
) -> Report {
    let schedule = config.and_then(|c| c.schedule.as_ref());
    let attempts = attempts(facts);
    let mut days = calendar(month, today, schedule, &attempts);
    fill_sizes(&mut days, facts, now);
    let in_month: Vec<&Entry> = facts
        .entries
        .iter()
        .filter(|e| month.contains(e.time))
        .collect();
    let month_attempts: Vec<&Attempt> =
        attempts.iter().filter(|a| month.contains(a.time)).collect();
    let counts = count(&days, &month_attempts, &in_month);
    let audit = config.and_then(|c| c.audit.clone()).unwrap_or_default();
    Report {
        lang,
        month,
        generated: now,
        header: header(lang, month, now, &audit, facts),
        pharmacy: audit.pharmacy.clone(),
        responsible: audit.responsible.clone(),
        problems: facts.problems.clone(),
        points: points(lang, config, facts, &counts, &in_month),
        planning: planning(lang, schedule, facts),
        drives: drives(config),
        days,
        size_note: size_note(lang, facts),
        tables: tables(lang, &month_attempts, &attempts, &in_month, &facts.entries),
        counts,
    }
}

fn not_given(lang: Lang, v: &Option<String>) -> String {
    v.as_deref().filter(|s| !s.trim().is_empty()).map_or_else(
        || lang.t("non renseigné", "not given").to_owned(),
        str::to_owned,
    )
}

fn header(
    lang: Lang,
    month: Month,
    now: i64,
    audit: &crate::config::AuditConfig,
    facts: &Facts,
) -> Vec<(&'static str, String)> {
    vec![
        (
            lang.t("Officine", "Pharmacy"),
            not_given(lang, &audit.pharmacy),
        ),
        (
            lang.t(
                "Responsable des sauvegardes",
                "Person responsible for backups",
            ),
            not_given(lang, &audit.responsible),
        ),
        (
            lang.t("Prestataire informatique", "IT provider"),
            not_given(lang, &audit.it_provider),
        ),
        (
            lang.t(
                "Dépôt (support de sauvegarde)",
                "Repository (backup medium)",
            ),
            facts.location.clone(),
        ),
        (lang.t("Période", "Period"), month.title(lang)),
        (
            lang.t("Rapport établi le", "Report made on"),
            lang.time(now),
        ),
        (
            lang.t("Établi par", "Made by"),
            format!(
                "Coffre {} ({})",
                env!("CARGO_PKG_VERSION"),
                lang.t(
                    "d'après le journal et les sauvegardes du dépôt",
                    "from the repository's journal and snapshots"
                )
            ),
        ),
    ]
}

/// Every backup attempt known, oldest first.
fn attempts(facts: &Facts) -> Vec<Attempt> {
    let kept: HashSet<String> = facts.records.iter().map(|(id, _)| id.to_hex()).collect();
    let mut out: Vec<Attempt> = facts
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Snapshot)
        .map(|e| attempt_of_entry(e, &kept))
        .collect();
    let journaled: HashSet<String> = out.iter().filter_map(|a| a.id.clone()).collect();
    for (id, snap) in &facts.records {
        if journaled.contains(&id.to_hex()) {
            continue;
        }
        let sm = &snap.summary;
        out.push(Attempt {
            time: snap.time.sec,
            outcome: if sm.skipped_count > 0 {
                Outcome::Warning
            } else {
                Outcome::Ok
            },
            id: Some(id.to_hex()),
            files: sm.files_new + sm.files_changed + sm.files_unchanged,
            total: sm.total_size,
            stored: sm.bytes_stored,
            unreadable: sm.skipped_count,
            kept: true,
        });
    }
    out.sort_by_key(|a| a.time);
    out
}

fn attempt_of_entry(e: &Entry, kept: &HashSet<String>) -> Attempt {
    let d = &e.details;
    let sm = &d["summary"];
    let n = |k: &str| sm[k].as_u64().unwrap_or(0);
    let id = d["id"].as_str().map(str::to_owned);
    let time = d["time"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(e.time, |t| t.timestamp());
    Attempt {
        time,
        outcome: e.outcome,
        kept: id.as_ref().is_some_and(|i| kept.contains(i)),
        id,
        files: n("files_new") + n("files_changed") + n("files_unchanged"),
        total: n("total_size"),
        stored: n("bytes_stored"),
        unreadable: n("skipped_count"),
    }
}

/// The month's days with their status.
fn calendar(
    month: Month,
    today: NaiveDate,
    schedule: Option<&ScheduleConfig>,
    attempts: &[Attempt],
) -> Vec<Day> {
    month
        .days()
        .into_iter()
        .map(|date| {
            let mine: Vec<&Attempt> = attempts
                .iter()
                .filter(|a| local_date(a.time) == Some(date))
                .collect();
            let planned = schedule.is_some_and(|s| {
                s.weekdays
                    .contains(date.weekday().num_days_from_monday() as usize)
            });
            let first = |o: Outcome| mine.iter().find(|a| a.outcome == o).map(|a| a.time);
            let (status, time) = if let Some(t) = first(Outcome::Ok) {
                (Status::Ok, Some(t))
            } else if let Some(t) = first(Outcome::Warning) {
                (Status::Warning, Some(t))
            } else if let Some(t) = first(Outcome::Failed) {
                (Status::Failed, Some(t))
            } else if date >= today {
                (Status::Future, None)
            } else if planned {
                (Status::Missing, None)
            } else {
                (Status::NotPlanned, None)
            };
            Day {
                date,
                status,
                time,
                attempts: mine.len(),
                failures: mine.iter().filter(|a| a.outcome == Outcome::Failed).count(),
                added: mine.iter().map(|a| a.stored).sum(),
                size: None,
            }
        })
        .collect()
}

/// What changed the data's size, per the journal: snapshots and copies in
/// add, prunes free.
fn size_changes(entries: &[Entry]) -> Vec<(i64, i64)> {
    let as_i64 = |v: &Value| {
        v.as_u64()
            .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX))
    };
    entries
        .iter()
        .filter(|e| e.outcome != Outcome::Failed)
        .filter_map(|e| match e.kind {
            EntryKind::Snapshot => Some((e.time, as_i64(&e.details["summary"]["bytes_stored"]))),
            EntryKind::CopyIn => Some((e.time, as_i64(&e.details["report"]["bytes_sent"]))),
            EntryKind::Prune => Some((e.time, -as_i64(&e.details["bytes_freed"]))),
            _ => None,
        })
        .collect()
}

/// The size at the end of each past day: today's size (measured), minus
/// what was added since, plus what was freed since.
fn fill_sizes(days: &mut [Day], facts: &Facts, now: i64) {
    let changes = size_changes(&facts.entries);
    let anchor = facts.size_now.map_or_else(
        || changes.iter().map(|c| c.1).sum::<i64>(),
        |s| i64::try_from(s).unwrap_or(i64::MAX),
    );
    for day in days.iter_mut() {
        let end = end_of_day(day.date);
        if day.status == Status::Future || end > now + 86_400 {
            continue;
        }
        let after: i64 = changes.iter().filter(|c| c.0 >= end).map(|c| c.1).sum();
        day.size = Some(u64::try_from(anchor.saturating_sub(after)).unwrap_or(0));
    }
}

fn size_note(lang: Lang, facts: &Facts) -> String {
    match facts.size_now {
        Some(s) => format!(
            "{} {} {}",
            lang.t(
                "Taille des données sur le support en fin de journée, d'après leur taille actuelle (",
                "Size of the data on the medium at the end of each day, from its present size ("
            ),
            lang.bytes(s),
            lang.t(
                ") et ce que le journal dit de chaque sauvegarde, copie et purge depuis.",
                ") and what the journal says of every snapshot, copy and prune since."
            ),
        ),
        None => lang
            .t(
                "Taille des données d'après le journal (somme des ajouts moins les purges).",
                "Size of the data from the journal (what was added, less what prune freed).",
            )
            .to_owned(),
    }
}

fn count(days: &[Day], attempts: &[&Attempt], entries: &[&Entry]) -> Counts {
    let days_with = |s: Status| days.iter().filter(|d| d.status == s).count();
    let of = |k: EntryKind| entries.iter().filter(|e| e.kind == k).count();
    let failed = |k: EntryKind| {
        entries
            .iter()
            .filter(|e| e.kind == k && e.outcome == Outcome::Failed)
            .count()
    };
    Counts {
        days_planned: days.len() - days_with(Status::NotPlanned),
        days_ok: days_with(Status::Ok),
        days_warning: days_with(Status::Warning),
        days_failed: days_with(Status::Failed),
        days_missing: days_with(Status::Missing),
        days_not_planned: days_with(Status::NotPlanned),
        days_future: days_with(Status::Future),
        snapshots: attempts
            .iter()
            .filter(|a| a.outcome != Outcome::Failed && a.id.is_some())
            .count(),
        snapshots_failed: attempts
            .iter()
            .filter(|a| a.outcome == Outcome::Failed)
            .count(),
        restore_tests: of(EntryKind::Verify),
        restore_tests_failed: failed(EntryKind::Verify),
        restores: of(EntryKind::Restore),
        checks: of(EntryKind::Check),
        checks_failed: failed(EntryKind::Check),
        copies: of(EntryKind::CopyOut) + of(EntryKind::CopyIn),
        copies_failed: failed(EntryKind::CopyOut) + failed(EntryKind::CopyIn),
        forgets: of(EntryKind::Forget),
        prunes: of(EntryKind::Prune),
        key_changes: of(EntryKind::Key),
        holds: of(EntryKind::Protect),
        alarms: of(EntryKind::Alarm),
        journal_entries: entries.len(),
    }
}

/// The points of principle 42, each with this month's evidence.
fn points(
    lang: Lang,
    config: Option<&Config>,
    facts: &Facts,
    c: &Counts,
    entries: &[&Entry],
) -> Vec<Point> {
    let schedule = config.and_then(|c| c.schedule.as_ref());
    let ok_copies: Vec<&str> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::CopyOut && e.outcome == Outcome::Ok)
        .filter_map(|e| e.details["to"].as_str())
        .collect();
    let drives = config.map_or(0, |c| c.repositories.len());
    let mut out = Vec::new();
    out.push(Point {
        mark: if schedule.is_some() {
            Mark::Good
        } else {
            Mark::Watch
        },
        title: lang.t("Planification des sauvegardes", "Backup planning"),
        evidence: match schedule {
            Some(s) => format!(
                "{} {}",
                schedule_text(lang, s),
                lang.t("(voir « Planification »).", "(see \"Planning\").")
            ),
            None => lang
                .t(
                    "aucune planification dans la configuration ([schedule]) : à compléter.",
                    "no schedule in the configuration ([schedule]): to be completed.",
                )
                .to_owned(),
        },
    });
    out.push(Point {
        mark: match (c.days_failed + c.days_missing, c.days_warning) {
            (0, 0) => Mark::Good,
            (0, _) => Mark::Watch,
            _ => Mark::Bad,
        },
        title: lang.t("Sauvegardes réalisées", "Backups done"),
        evidence: match lang {
            Lang::Fr => format!(
                "{} jour(s) sauvegardé(s) sur {} prévu(s) ; {} incomplet(s), {} en échec, {} manquant(s) ; {} sauvegarde(s) enregistrée(s).",
                c.days_ok + c.days_warning, c.days_planned - c.days_future, c.days_warning, c.days_failed, c.days_missing, c.snapshots
            ),
            Lang::En => format!(
                "{} day(s) backed up out of {} planned; {} incomplete, {} failed, {} missing; {} snapshot(s) recorded.",
                c.days_ok + c.days_warning, c.days_planned - c.days_future, c.days_warning, c.days_failed, c.days_missing, c.snapshots
            ),
        },
    });
    out.push(Point {
        mark: if facts.problems.is_empty() { Mark::Good } else { Mark::Bad },
        title: lang.t("Traçabilité (journal)", "Traceability (journal)"),
        evidence: if facts.problems.is_empty() {
            match lang {
                Lang::Fr => format!("journal intact, {} entrée(s) ce mois, chacune datée et signée de son auteur.", c.journal_entries),
                Lang::En => format!("journal intact, {} entr(ies) this month, each dated and naming who ran it.", c.journal_entries),
            }
        } else {
            lang.t(
                "LE JOURNAL A ÉTÉ MODIFIÉ OU ENDOMMAGÉ (voir en haut) : comparer avec le journal d'un autre disque.",
                "THE JOURNAL WAS ALTERED OR DAMAGED (see the top): compare with another drive's journal.",
            )
            .to_owned()
        },
    });
    out.push(Point {
        mark: match (
            c.restore_tests - c.restore_tests_failed,
            c.restore_tests_failed,
        ) {
            (_, f) if f > 0 => Mark::Bad,
            (0, _) => Mark::Watch,
            _ => Mark::Good,
        },
        title: lang.t("Tests de restauration", "Restore tests"),
        evidence: match (lang, c.restore_tests) {
            (Lang::Fr, 0) => {
                "aucun test de restauration ce mois : lancer `coffre verify --sample 2%`."
                    .to_owned()
            }
            (Lang::En, 0) => {
                "no restore test this month: run `coffre verify --sample 2%`.".to_owned()
            }
            (Lang::Fr, n) => format!(
                "{n} test(s), {} en échec ; {} restauration(s) de fichiers.",
                c.restore_tests_failed, c.restores
            ),
            (Lang::En, n) => format!(
                "{n} test(s), {} failed; {} file restore(s).",
                c.restore_tests_failed, c.restores
            ),
        },
    });
    out.push(Point {
        mark: match (c.checks, c.checks_failed) {
            (_, f) if f > 0 => Mark::Bad,
            (0, _) => Mark::Watch,
            _ => Mark::Good,
        },
        title: lang.t("Contrôle de l'intégrité", "Integrity checks"),
        evidence: match lang {
            Lang::Fr => format!(
                "{} vérification(s) (coffre check), {} en échec.",
                c.checks, c.checks_failed
            ),
            Lang::En => format!(
                "{} check(s) (coffre check), {} failed.",
                c.checks, c.checks_failed
            ),
        },
    });
    out.push(Point {
        mark: if drives >= 2 || !ok_copies.is_empty() { Mark::Good } else { Mark::Watch },
        title: lang.t("Double support", "Two media"),
        evidence: match lang {
            Lang::Fr => format!("{drives} support(s) configuré(s) en rotation ; {} copie(s) réussie(s) vers un autre dépôt ce mois.", ok_copies.len()),
            Lang::En => format!("{drives} medium(s) configured in rotation; {} successful copy(ies) to another repository this month.", ok_copies.len()),
        },
    });
    let offsite: Vec<&&str> = ok_copies.iter().filter(|t| t.starts_with("s3:")).collect();
    out.push(Point {
        mark: if offsite.is_empty() { Mark::Watch } else { Mark::Good },
        title: lang.t("Copie hors des locaux", "Off-site copy"),
        evidence: if offsite.is_empty() {
            lang.t(
                "aucune copie vers un stockage distant (s3:) ce mois ; si les disques quittent l'officine chaque jour (rotation), l'attester ci-dessous.",
                "no copy to remote storage (s3:) this month; if the drives leave the premises every day (rotation), attest it below.",
            )
            .to_owned()
        } else {
            match lang {
                Lang::Fr => format!("{} copie(s) vers {}.", offsite.len(), offsite.last().map_or("", |s| **s)),
                Lang::En => format!("{} copy(ies) to {}.", offsite.len(), offsite.last().map_or("", |s| **s)),
            }
        },
    });
    out
}

fn weekdays_text(lang: Lang, s: &ScheduleConfig) -> String {
    let days: Vec<&str> = (0..7)
        .filter(|d| s.weekdays.contains(*d))
        .map(|d| lang.weekday(d))
        .collect();
    if days.len() == 7 {
        lang.t("tous les jours", "every day").to_owned()
    } else {
        days.join(", ")
    }
}

fn schedule_text(lang: Lang, s: &ScheduleConfig) -> String {
    format!("{}, {} {}", weekdays_text(lang, s), lang.t("à", "at"), s.at)
}

fn verify_text(lang: Lang, v: Verify) -> &'static str {
    match v {
        Verify::None => lang.t("aucune", "none"),
        Verify::Check => lang.t(
            "contrôle de la structure (coffre check)",
            "structure check (coffre check)",
        ),
        Verify::ReadData => lang.t(
            "relecture de toutes les données (coffre check --read-data)",
            "every byte read back (coffre check --read-data)",
        ),
    }
}

fn planning(
    lang: Lang,
    schedule: Option<&ScheduleConfig>,
    facts: &Facts,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match schedule {
        Some(s) => {
            out.push((lang.t("Jours", "Days"), weekdays_text(lang, s)));
            out.push((lang.t("Heure", "Time"), s.at.to_string()));
            out.push((
                lang.t(
                    "Vérification après chaque sauvegarde",
                    "Check after each backup",
                ),
                verify_text(lang, s.verify).to_owned(),
            ));
        }
        None => out.push((
            lang.t("Planification", "Schedule"),
            lang.t(
                "non renseignée : aucune section [schedule] dans la configuration",
                "not given: no [schedule] section in the configuration",
            )
            .to_owned(),
        )),
    }
    out.push((
        lang.t("Conservation (rétention)", "Retention"),
        match &facts.policy {
            Some((p, true)) => format!("{p} ({})", lang.t("configuration", "configuration")),
            Some((p, false)) => format!(
                "{p} ({})",
                lang.t("enregistrée dans le dépôt", "saved in the repository")
            ),
            None => lang
                .t(
                    "aucune règle : rien n'est supprimé automatiquement",
                    "no rule: nothing is removed automatically",
                )
                .to_owned(),
        },
    ));
    out
}

fn drives(config: Option<&Config>) -> Vec<(String, String)> {
    config.map_or_else(Vec::new, |c| {
        c.repositories
            .iter()
            .map(|r| {
                let on = match (&r.fs_label, &r.fs_uuid) {
                    (Some(l), _) => format!(" (LABEL={l})"),
                    (None, Some(u)) => format!(" (UUID={u})"),
                    (None, None) => String::new(),
                };
                (r.name.clone(), format!("{}{on}", r.path.display()))
            })
            .collect()
    })
}

// ---- Tables.

fn by(e: &Entry) -> String {
    format!("{}@{}", e.user, e.host)
}

fn short(hex: &str) -> String {
    hex.chars().take(12).collect()
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn tables(
    lang: Lang,
    month_attempts: &[&Attempt],
    all_attempts: &[Attempt],
    entries: &[&Entry],
    all_entries: &[Entry],
) -> Vec<Table> {
    let of = |k: &[EntryKind]| -> Vec<&Entry> {
        entries
            .iter()
            .copied()
            .filter(|e| k.contains(&e.kind))
            .collect()
    };
    vec![
        snapshots_table(lang, month_attempts),
        incidents_table(lang, entries, all_attempts, all_entries),
        verify_table(lang, &of(&[EntryKind::Verify]), all_attempts),
        restore_table(lang, &of(&[EntryKind::Restore])),
        check_table(lang, &of(&[EntryKind::Check])),
        copy_table(lang, &of(&[EntryKind::CopyOut, EntryKind::CopyIn])),
        retention_table(lang, &of(&[EntryKind::Forget, EntryKind::Prune])),
        simple_table(
            lang,
            "keys",
            lang.t(
                "Changements de clés (phrases secrètes)",
                "Key (passphrase) changes",
            ),
            lang.t(
                "Aucun changement de clé ce mois.",
                "No key change this month.",
            ),
            &of(&[EntryKind::Key]),
        ),
        hold_table(lang, &of(&[EntryKind::Protect])),
        simple_table(
            lang,
            "other",
            lang.t("Alertes et autres événements", "Alarms and other events"),
            lang.t(
                "Aucun autre événement ce mois.",
                "No other event this month.",
            ),
            &of(&[EntryKind::Alarm, EntryKind::Init]),
        ),
    ]
}

fn snapshots_table(lang: Lang, attempts: &[&Attempt]) -> Table {
    let rows = attempts
        .iter()
        .filter(|a| a.outcome != Outcome::Failed)
        .map(|a| Row {
            outcome: a.outcome,
            cells: vec![
                lang.time(a.time),
                a.id.as_deref().map_or_else(|| "—".to_owned(), short),
                a.files.to_string(),
                lang.bytes(a.total),
                format!("+{}", lang.bytes(a.stored)),
                a.unreadable.to_string(),
                match (&a.id, a.kept) {
                    (None, _) => lang
                        .t(
                            "rien de changé, aucune écrite",
                            "nothing changed, none written",
                        )
                        .to_owned(),
                    (Some(_), true) => lang.t("conservée", "kept").to_owned(),
                    (Some(_), false) => lang
                        .t("supprimée depuis (rétention)", "removed since (retention)")
                        .to_owned(),
                },
            ],
        })
        .collect();
    Table {
        id: "snapshots",
        title: lang.t("Sauvegardes du mois", "Snapshots of the month"),
        intro: Some(
            lang.t(
                "Chaque sauvegarde enregistrée : le nombre de fichiers qu'elle contient, leur taille totale, et ce qu'elle a ajouté sur le support (compressé, chiffré).",
                "Every snapshot recorded: the files it holds, their total size, and what it added on the medium (compressed, encrypted).",
            )
            .to_owned(),
        ),
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Identifiant", "Id"),
            lang.t("Fichiers", "Files"),
            lang.t("Taille totale", "Total size"),
            lang.t("Ajouté", "Added"),
            lang.t("Illisibles", "Unreadable"),
            lang.t("État", "State"),
        ],
        rows,
        none: lang.t("Aucune sauvegarde ce mois.", "No snapshot this month."),
    }
}

fn kind_text(lang: Lang, k: EntryKind) -> &'static str {
    match k {
        EntryKind::Init => lang.t("création du dépôt", "repository created"),
        EntryKind::Snapshot => lang.t("sauvegarde", "snapshot"),
        EntryKind::Check => lang.t("vérification", "check"),
        EntryKind::Restore => lang.t("restauration", "restore"),
        EntryKind::Verify => lang.t("test de restauration", "restore test"),
        EntryKind::CopyOut => lang.t("copie vers", "copy to"),
        EntryKind::CopyIn => lang.t("copie depuis", "copy from"),
        EntryKind::Forget => lang.t("suppression (rétention)", "forget"),
        EntryKind::Prune => lang.t("purge", "prune"),
        EntryKind::Key => lang.t("clé", "key"),
        EntryKind::Protect => lang.t("conservation légale", "legal hold"),
        EntryKind::Alarm => lang.t("alerte rançongiciel", "ransomware alarm"),
    }
}

/// Hours (or days) between two times, in words.
fn delay(lang: Lang, from: i64, to: i64) -> String {
    let h = (to - from).max(0) / 3600;
    match (lang, h) {
        (Lang::Fr, h) if h < 48 => format!("{h} h après"),
        (Lang::En, h) if h < 48 => format!("{h} h later"),
        (Lang::Fr, h) => format!("{} jours après", h / 24),
        (Lang::En, h) => format!("{} days later", h / 24),
    }
}

/// What came next after an incident: the next success of the same kind.
fn next_success(
    lang: Lang,
    e: &Entry,
    attempts: &[Attempt],
    all_entries: &[Entry],
) -> (Outcome, String) {
    let next = if e.kind == EntryKind::Snapshot {
        attempts
            .iter()
            .find(|a| a.time > e.time && a.outcome == Outcome::Ok)
            .map(|a| a.time)
    } else {
        all_entries
            .iter()
            .find(|n| n.kind == e.kind && n.time > e.time && n.outcome == Outcome::Ok)
            .map(|n| n.time)
    };
    match next {
        Some(t) => (
            Outcome::Ok,
            format!(
                "{} {} ({})",
                lang.t("réussite suivante le", "next success on"),
                lang.time(t),
                delay(lang, e.time, t)
            ),
        ),
        None => (
            Outcome::Failed,
            lang.t(
                "AUCUNE RÉUSSITE DEPUIS : à traiter",
                "NO SUCCESS SINCE: to be dealt with",
            )
            .to_owned(),
        ),
    }
}

fn incidents_table(
    lang: Lang,
    entries: &[&Entry],
    attempts: &[Attempt],
    all_entries: &[Entry],
) -> Table {
    let rows = entries
        .iter()
        .filter(|e| e.outcome != Outcome::Ok && e.kind != EntryKind::Alarm)
        .map(|e| {
            let (next_outcome, next) = next_success(lang, e, attempts, all_entries);
            Row {
                outcome: if next_outcome == Outcome::Failed {
                    Outcome::Failed
                } else {
                    e.outcome
                },
                cells: vec![
                    lang.time(e.time),
                    kind_text(lang, e.kind).to_owned(),
                    lang.outcome(e.outcome).to_owned(),
                    e.summary.clone(),
                    next,
                ],
            }
        })
        .collect();
    Table {
        id: "incidents",
        title: lang.t("Incidents et suites données", "Incidents and what followed"),
        intro: Some(
            lang.t(
                "Chaque échec ou avertissement du mois, sa cause telle qu'enregistrée, et la réussite suivante de la même opération.",
                "Every failure or warning of the month, its cause as recorded, and the next success of the same operation.",
            )
            .to_owned(),
        ),
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Opération", "Operation"),
            lang.t("Résultat", "Result"),
            lang.t("Cause", "Cause"),
            lang.t("Suite", "What followed"),
        ],
        rows,
        none: lang.t("Aucun incident ce mois.", "No incident this month."),
    }
}

fn verify_table(lang: Lang, entries: &[&Entry], attempts: &[Attempt]) -> Table {
    let rows = entries
        .iter()
        .map(|e| {
            let d = &e.details;
            let r = &d["report"];
            let snap = d["snapshot"].as_str().unwrap_or("");
            let when = attempts
                .iter()
                .find(|a| a.id.as_deref() == Some(snap))
                .map(|a| format!(" ({})", lang.time(a.time)))
                .unwrap_or_default();
            let failures = r["failures"].as_array().map_or(0, Vec::len);
            Row {
                outcome: e.outcome,
                cells: vec![
                    lang.time(e.time),
                    if snap.is_empty() {
                        "—".to_owned()
                    } else {
                        format!("{}{when}", short(snap))
                    },
                    d["sample"].as_str().unwrap_or("—").to_owned(),
                    format!(
                        "{} / {}",
                        num(&r["files_tested"]),
                        num(&r["files_in_snapshot"])
                    ),
                    lang.bytes(num(&r["bytes_tested"])),
                    failures.to_string(),
                    lang.outcome(e.outcome).to_owned(),
                    by(e),
                ],
            }
        })
        .collect();
    Table {
        id: "verify",
        title: lang.t("Tests de restauration", "Restore tests"),
        intro: Some(
            lang.t(
                "coffre verify : des fichiers tirés au sort sont réellement restaurés dans un dossier temporaire, relus et comparés à ce qui avait été sauvegardé.",
                "coffre verify: files drawn at random are really restored into a scratch folder, read back and compared with what was saved.",
            )
            .to_owned(),
        ),
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Sauvegarde testée", "Snapshot tested"),
            lang.t("Échantillon", "Sample"),
            lang.t("Fichiers testés", "Files tested"),
            lang.t("Volume", "Bytes"),
            lang.t("Erreurs", "Errors"),
            lang.t("Résultat", "Result"),
            lang.t("Par", "By"),
        ],
        rows,
        none: lang.t(
            "Aucun test de restauration ce mois.",
            "No restore test this month.",
        ),
    }
}

fn simple_rows(lang: Lang, entries: &[&Entry], with_kind: bool) -> Vec<Row> {
    entries
        .iter()
        .map(|e| {
            let mut cells = vec![lang.time(e.time)];
            if with_kind {
                cells.push(kind_text(lang, e.kind).to_owned());
            }
            cells.extend([e.summary.clone(), lang.outcome(e.outcome).to_owned(), by(e)]);
            Row {
                outcome: e.outcome,
                cells,
            }
        })
        .collect()
}

fn simple_table(
    lang: Lang,
    id: &'static str,
    title: &'static str,
    none: &'static str,
    entries: &[&Entry],
) -> Table {
    Table {
        id,
        title,
        intro: None,
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Événement", "Event"),
            lang.t("Détail", "Detail"),
            lang.t("Résultat", "Result"),
            lang.t("Par", "By"),
        ],
        rows: simple_rows(lang, entries, true),
        none,
    }
}

fn restore_table(lang: Lang, entries: &[&Entry]) -> Table {
    Table {
        id: "restores",
        title: lang.t("Restaurations de fichiers", "File restores"),
        intro: None,
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Détail", "Detail"),
            lang.t("Résultat", "Result"),
            lang.t("Par", "By"),
        ],
        rows: simple_rows(lang, entries, false),
        none: lang.t("Aucune restauration ce mois.", "No restore this month."),
    }
}

fn check_table(lang: Lang, entries: &[&Entry]) -> Table {
    let rows = entries
        .iter()
        .map(|e| {
            let d = &e.details;
            let what = match (&d["subset"], d["read_data"].as_bool()) {
                (Value::Object(s), _) => format!(
                    "{} {}/{}",
                    lang.t(
                        "relecture d'une partie des données",
                        "part of the data read back"
                    ),
                    num(&s["part"]) + 1,
                    num(&s["of"])
                ),
                (_, Some(true)) => lang
                    .t("relecture de toutes les données", "every byte read back")
                    .to_owned(),
                _ => lang.t("structure", "structure").to_owned(),
            };
            Row {
                outcome: e.outcome,
                cells: vec![
                    lang.time(e.time),
                    what,
                    num(&d["snapshots"]).to_string(),
                    d["errors"].as_array().map_or(0, Vec::len).to_string(),
                    lang.outcome(e.outcome).to_owned(),
                    by(e),
                ],
            }
        })
        .collect();
    Table {
        id: "checks",
        title: lang.t("Vérifications de l'intégrité", "Integrity checks"),
        intro: None,
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Type", "Kind"),
            lang.t("Sauvegardes", "Snapshots"),
            lang.t("Erreurs", "Errors"),
            lang.t("Résultat", "Result"),
            lang.t("Par", "By"),
        ],
        rows,
        none: lang.t("Aucune vérification ce mois.", "No check this month."),
    }
}

fn copy_table(lang: Lang, entries: &[&Entry]) -> Table {
    let rows = entries
        .iter()
        .map(|e| {
            let d = &e.details;
            let r = &d["report"];
            let other = d["to"].as_str().or(d["from"].as_str()).unwrap_or("—");
            Row {
                outcome: e.outcome,
                cells: vec![
                    lang.time(e.time),
                    kind_text(lang, e.kind).to_owned(),
                    other.to_owned(),
                    r["copied"].as_array().map_or(0, Vec::len).to_string(),
                    lang.bytes(num(&r["bytes_sent"])),
                    lang.outcome(e.outcome).to_owned(),
                    by(e),
                ],
            }
        })
        .collect();
    Table {
        id: "copies",
        title: lang.t("Copies vers un autre support", "Copies to another medium"),
        intro: None,
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Sens", "Direction"),
            lang.t("Dépôt", "Repository"),
            lang.t("Sauvegardes copiées", "Snapshots copied"),
            lang.t("Volume envoyé", "Bytes sent"),
            lang.t("Résultat", "Result"),
            lang.t("Par", "By"),
        ],
        rows,
        none: lang.t("Aucune copie ce mois.", "No copy this month."),
    }
}

fn retention_detail(lang: Lang, e: &Entry) -> String {
    let d = &e.details;
    match e.kind {
        EntryKind::Forget => {
            let removed = d["removed"].as_array().cloned().unwrap_or_default();
            let dates: Vec<String> = removed
                .iter()
                .map(|r| {
                    r["time"]
                        .as_str()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map_or_else(
                            || short(r["id"].as_str().unwrap_or("?")),
                            |t| lang.time(t.timestamp()),
                        )
                })
                .collect();
            let rule = match d["rule"].as_str() {
                Some("named") => lang.t("désignées par leur nom", "named"),
                _ => lang.t("politique de rétention", "retention policy"),
            };
            let list = if dates.is_empty() {
                String::new()
            } else {
                format!(" : {}", dates.join(", "))
            };
            match lang {
                Lang::Fr => format!(
                    "{} sauvegarde(s) supprimée(s) ({rule}){list}",
                    removed.len()
                ),
                Lang::En => format!("{} snapshot(s) removed ({rule}){list}", removed.len()),
            }
        }
        _ if d.is_object() => match lang {
            Lang::Fr => format!(
                "{} libéré(s), {} paquet(s) supprimé(s), {} réécrit(s)",
                lang.bytes(num(&d["bytes_freed"])),
                num(&d["packs_deleted"]),
                num(&d["packs_repacked"])
            ),
            Lang::En => format!(
                "{} freed, {} pack(s) deleted, {} repacked",
                lang.bytes(num(&d["bytes_freed"])),
                num(&d["packs_deleted"]),
                num(&d["packs_repacked"])
            ),
        },
        _ => e.summary.clone(),
    }
}

fn retention_table(lang: Lang, entries: &[&Entry]) -> Table {
    let rows = entries
        .iter()
        .map(|e| Row {
            outcome: e.outcome,
            cells: vec![
                lang.time(e.time),
                kind_text(lang, e.kind).to_owned(),
                retention_detail(lang, e),
                lang.outcome(e.outcome).to_owned(),
                by(e),
            ],
        })
        .collect();
    Table {
        id: "retention",
        title: lang.t(
            "Suppressions et purges (rétention)",
            "Forget and prune (retention)",
        ),
        intro: None,
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Opération", "Operation"),
            lang.t("Détail", "Detail"),
            lang.t("Résultat", "Result"),
            lang.t("Par", "By"),
        ],
        rows,
        none: lang.t("Aucune suppression ce mois.", "Nothing removed this month."),
    }
}

fn hold_table(lang: Lang, entries: &[&Entry]) -> Table {
    let rows = entries
        .iter()
        .map(|e| {
            let d = &e.details;
            let action = match d["action"].as_str() {
                Some("unprotect") => lang.t("levée", "lifted"),
                _ => lang.t("posée", "placed"),
            };
            let until = match d["until"].as_i64() {
                Some(i64::MAX) => lang.t("sans date de fin", "no end date").to_owned(),
                Some(t) => local_date(t).map_or_else(|| t.to_string(), |d| lang.date(d)),
                None => "—".to_owned(),
            };
            Row {
                outcome: e.outcome,
                cells: vec![
                    lang.time(e.time),
                    action.to_owned(),
                    short(d["snapshot"].as_str().unwrap_or("—")),
                    until,
                    d["reason"].as_str().unwrap_or("").to_owned(),
                    by(e),
                ],
            }
        })
        .collect();
    Table {
        id: "holds",
        title: lang.t("Conservations légales", "Legal holds"),
        intro: None,
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Action", "Action"),
            lang.t("Sauvegarde", "Snapshot"),
            lang.t("Jusqu'au", "Until"),
            lang.t("Motif", "Reason"),
            lang.t("Par", "By"),
        ],
        rows,
        none: lang.t(
            "Aucune conservation légale posée ou levée ce mois.",
            "No legal hold placed or lifted this month.",
        ),
    }
}

// ---------------------------------------------------------------------------
// Render: model → HTML.

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
@page { size: A4; margin: 14mm 13mm 16mm 13mm; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: "Segoe UI", "DejaVu Sans", Arial, Helvetica, sans-serif; font-size: 10pt; color: #1a1a1a; margin: 0 auto; max-width: 190mm; padding: 8mm 0; line-height: 1.35; }
h1 { font-size: 17pt; margin: 0 0 1mm 0; }
h2 { font-size: 12.5pt; margin: 7mm 0 2mm 0; padding-bottom: 1mm; border-bottom: 1.5px solid #1f4e79; color: #1f4e79; break-after: avoid; page-break-after: avoid; }
p.sub { margin: 0 0 4mm 0; color: #555; }
p.intro, p.note { margin: 0 0 2mm 0; color: #444; font-size: 9pt; }
p.none { margin: 0 0 2mm 0; font-style: italic; color: #555; }
table { border-collapse: collapse; width: 100%; }
thead { display: table-header-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
th, td { border: 1px solid #b8c2cc; padding: 1.2mm 1.6mm; text-align: left; vertical-align: top; }
th { background: #e8eef4; font-weight: 600; font-size: 9pt; }
table.events td { font-size: 8.5pt; overflow-wrap: anywhere; }
table.events td.num { text-align: right; white-space: nowrap; }
table.events td.when { white-space: nowrap; }
table.kv th { width: 38%; background: #f3f6f9; }
tr.r-warning td { background: #fff1dc; }
tr.r-failed td { background: #fde0e0; }
.problems { border: 2.5px solid #b00000; background: #fde0e0; color: #8a0000; padding: 3mm 4mm; margin: 0 0 4mm 0; break-inside: avoid; }
.problems h2 { color: #b00000; border-color: #b00000; margin-top: 0; }
.points td.mark { width: 8mm; text-align: center; font-weight: 700; font-size: 12pt; }
.points td.m-good { color: #1b7a34; }
.points td.m-watch { color: #b35c00; }
.points td.m-bad { color: #b00000; }
.points th { width: 30%; background: #f3f6f9; }
table.cal { table-layout: fixed; }
table.cal th { text-align: center; }
table.cal td { height: 17mm; padding: 1mm 1.4mm; position: relative; }
table.cal td.blank { background: #fafafa; border-color: #e2e2e2; }
table.cal .n { font-weight: 700; font-size: 11pt; display: block; }
table.cal .s { display: block; font-size: 8pt; }
table.cal .y { position: absolute; top: 0.8mm; right: 1.6mm; font-weight: 700; font-size: 12pt; }
table.cal .t { display: block; font-size: 7.5pt; color: #333; }
.ok { background: #c9ecd0; }
.warning { background: #ffd79a; }
.failed { background: #f4a6a6; }
.missing { background: #ffffff; outline: 2px dashed #b00000; outline-offset: -3px; }
.missing .s { color: #b00000; font-weight: 700; }
.not-planned { background: #e3e3e3; color: #555; }
.future { background: #ffffff; color: #888; }
.legend { margin: 2mm 0 0 0; padding: 0; list-style: none; font-size: 8.5pt; }
.legend li { margin: 0.6mm 0; }
.legend .sw { display: inline-block; width: 9mm; height: 3.6mm; border: 1px solid #999; vertical-align: middle; margin-right: 2mm; text-align: center; font-size: 8pt; line-height: 3.4mm; font-weight: 700; }
.legend .sw.missing { outline-offset: -2px; outline-width: 1.5px; }
.charts svg { width: 100%; height: auto; display: block; margin: 1mm 0 3mm 0; }
.chart-title { font-weight: 600; margin: 2mm 0 0 0; }
.page { break-before: page; page-break-before: always; }
section { margin: 0; }
.keep { break-inside: avoid; page-break-inside: avoid; }
.signature { border: 1.5px solid #1f4e79; padding: 4mm 5mm; margin-top: 6mm; break-inside: avoid; page-break-inside: avoid; }
.signature h2 { margin-top: 0; }
.signature .line { margin: 5mm 0 0 0; }
.signature .fill { display: inline-block; border-bottom: 1px solid #333; min-width: 70mm; }
.signature .fill.short { min-width: 35mm; }
.signature .box { border: 1px solid #666; height: 28mm; margin-top: 2mm; }
.signature .obs { border: 1px solid #666; height: 22mm; margin-top: 2mm; }
footer { margin-top: 5mm; font-size: 8pt; color: #666; }
@media print {
  body { padding: 0; max-width: none; }
  a { color: inherit; text-decoration: none; }
}
"#;

/// The whole page.
fn render(r: &Report) -> String {
    let lang = r.lang;
    let mut h = String::with_capacity(64 << 10);
    let title = format!(
        "{} — {}",
        lang.t("Rapport mensuel des sauvegardes", "Monthly backup report"),
        r.month.title(lang)
    );
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        lang.code(),
        esc(&title)
    );
    let _ = write!(h, "<h1>{}</h1>\n<p class=\"sub\">{}{}</p>\n", esc(&title),
        r.pharmacy.as_deref().map(|p| format!("{} — ", esc(p))).unwrap_or_default(),
        esc(lang.t(
            "Référentiel qualité de l'officine, principe 42 : sauvegarde des données (planification, traçabilité, tests de restauration, double support, copie hors des locaux).",
            "Pharmacy quality reference, principle 42: data backup (planning, traceability, restore tests, two media, off-site copy).",
        )));
    render_problems(&mut h, r);
    render_kv(
        &mut h,
        "identity",
        lang.t("Identification", "Identification"),
        &r.header,
    );
    render_points(&mut h, r);
    render_calendar(&mut h, r);
    render_charts(&mut h, r);
    render_planning(&mut h, r);
    for t in &r.tables {
        render_table(&mut h, t);
    }
    render_signature(&mut h, r);
    let _ = write!(
        h,
        "<footer>{} {} {}.</footer>\n</body>\n</html>\n",
        esc(lang.t("Rapport établi par Coffre le", "Report made by Coffre on")),
        esc(&lang.time(r.generated)),
        esc(lang.t(
            "à partir du journal du dépôt, dont chaque entrée est chiffrée, chaînée à la précédente et ne peut être ni modifiée ni retirée sans que cela se voie",
            "from the repository's journal, whose entries are encrypted and chained so that none can be changed or removed unnoticed"
        ))
    );
    h
}

fn render_problems(h: &mut String, r: &Report) {
    if r.problems.is_empty() {
        return;
    }
    let lang = r.lang;
    let _ = write!(
        h,
        "<section id=\"problems\" class=\"problems\">\n<h2>{}</h2>\n<p>{}</p>\n<ul>\n",
        esc(lang.t(
            "⚠ ALERTE : le journal a été modifié ou endommagé",
            "⚠ WARNING: the journal was altered or damaged"
        )),
        esc(lang.t(
            "Des entrées du journal ont été retirées, remplacées ou déplacées sur ce support, ou il est illisible. Ce rapport ne peut pas être tenu pour complet : mettre ce disque de côté et comparer avec le journal d'un autre disque.",
            "Journal entries were removed, replaced or reordered on this medium, or it cannot be read. This report cannot be taken as complete: keep this drive aside and compare with another drive's journal."
        ))
    );
    for p in &r.problems {
        let _ = writeln!(h, "<li>{}</li>", esc(p));
    }
    h.push_str("</ul>\n</section>\n");
}

fn render_kv(h: &mut String, id: &str, title: &str, rows: &[(&str, String)]) {
    let _ = write!(
        h,
        "<section id=\"{}\" class=\"keep\">\n<h2>{}</h2>\n<table class=\"kv\">\n",
        esc(id),
        esc(title)
    );
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    h.push_str("</table>\n</section>\n");
}

fn render_points(h: &mut String, r: &Report) {
    let lang = r.lang;
    let _ = write!(
        h,
        "<section id=\"summary\" class=\"keep\">\n<h2>{}</h2>\n<table class=\"points\">\n",
        esc(lang.t("Synthèse du mois", "Summary of the month"))
    );
    for p in &r.points {
        let (class, sym) = match p.mark {
            Mark::Good => ("m-good", "✓"),
            Mark::Watch => ("m-watch", "!"),
            Mark::Bad => ("m-bad", "✗"),
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"mark {class}\">{sym}</td><th>{}</th><td>{}</td></tr>",
            esc(p.title),
            esc(&p.evidence)
        );
    }
    h.push_str("</table>\n</section>\n");
}

fn render_calendar(h: &mut String, r: &Report) {
    let lang = r.lang;
    let _ = write!(
        h,
        "<section id=\"calendar\" class=\"keep\">\n<h2>{} — {}</h2>\n<table class=\"cal\">\n<thead><tr>",
        esc(lang.t("Calendrier des sauvegardes", "Backup calendar")),
        esc(&r.month.title(lang))
    );
    for d in 0..7 {
        let _ = write!(h, "<th>{}</th>", esc(lang.weekday(d)));
    }
    h.push_str("</tr></thead>\n<tbody>\n<tr>");
    let lead = r
        .days
        .first()
        .map_or(0, |d| d.date.weekday().num_days_from_monday() as usize);
    for _ in 0..lead {
        h.push_str("<td class=\"blank\"></td>");
    }
    let mut col = lead;
    for d in &r.days {
        if col == 7 {
            h.push_str("</tr>\n<tr>");
            col = 0;
        }
        render_day(h, lang, d);
        col += 1;
    }
    while col < 7 {
        h.push_str("<td class=\"blank\"></td>");
        col += 1;
    }
    h.push_str("</tr>\n</tbody>\n</table>\n<ul class=\"legend\">\n");
    for s in [
        Status::Ok,
        Status::Warning,
        Status::Failed,
        Status::Missing,
        Status::NotPlanned,
        Status::Future,
    ] {
        let _ = writeln!(
            h,
            "<li><span class=\"sw {}\">{}</span><b>{}</b> : {}</li>",
            s.key(),
            s.symbol(),
            esc(s.label(lang)),
            esc(s.meaning(lang))
        );
    }
    h.push_str("</ul>\n</section>\n");
}

fn render_day(h: &mut String, lang: Lang, d: &Day) {
    let mut extra = String::new();
    if let Some(t) = d.time.and_then(local) {
        extra = t.format("%H:%M").to_string();
    }
    if d.attempts > 1 {
        let more = match lang {
            Lang::Fr => format!(" ({} essais)", d.attempts),
            Lang::En => format!(" ({} runs)", d.attempts),
        };
        extra.push_str(&more);
    }
    if d.failures > 0 && d.status == Status::Ok {
        let failed = match lang {
            Lang::Fr => format!(", {} échec(s)", d.failures),
            Lang::En => format!(", {} failure(s)", d.failures),
        };
        extra.push_str(&failed);
    }
    let _ = write!(
        h,
        "<td class=\"day {}\" data-date=\"{}\" data-status=\"{}\"><span class=\"n\">{}</span><span class=\"s\">{}</span><span class=\"y\">{}</span><span class=\"t\">{}</span></td>",
        d.status.key(),
        d.date.format("%Y-%m-%d"),
        d.status.key(),
        d.date.day(),
        esc(d.status.label(lang)),
        d.status.symbol(),
        esc(&extra)
    );
}

// ---- Charts (inline SVG).

const CHART_W: f64 = 700.0;
const CHART_H: f64 = 190.0;
const PAD_L: f64 = 66.0;
const PAD_R: f64 = 8.0;
const PAD_T: f64 = 10.0;
const PAD_B: f64 = 24.0;

/// A vertical axis for sizes: its top and its labelled ticks.
fn size_axis(lang: Lang, max: u64) -> (f64, Vec<(f64, String)>) {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let max = max.max(1) as f64;
    let mut k = 0;
    while k + 1 < UNITS.len() && max >= 1024f64.powi(k as i32 + 1) {
        k += 1;
    }
    let unit = 1024f64.powi(k as i32);
    let scaled = max / unit;
    let raw = scaled / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let ticks = (scaled / step).ceil().max(1.0) as usize;
    let name = match lang {
        Lang::Fr => french_unit(UNITS[k]),
        Lang::En => UNITS[k],
    };
    let labels = (0..=ticks)
        .map(|i| {
            let v = step * i as f64;
            let text = if (v - v.round()).abs() < 1e-9 {
                format!("{v:.0} {name}")
            } else {
                let s = format!("{v:.1} {name}");
                if lang == Lang::Fr {
                    s.replace('.', ",")
                } else {
                    s
                }
            };
            (v * unit, text)
        })
        .collect();
    (step * ticks as f64 * unit, labels)
}

/// The frame, grid and labels shared by both charts; returns the SVG
/// opening and a mapping of (day index, value) to coordinates.
fn chart_frame(lang: Lang, days: &[Day], max: u64, title: &str) -> (String, f64, f64) {
    let (top, ticks) = size_axis(lang, max);
    let plot_w = CHART_W - PAD_L - PAD_R;
    let plot_h = CHART_H - PAD_T - PAD_B;
    let mut s = format!(
        "<svg viewBox=\"0 0 {CHART_W} {CHART_H}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{}\" font-family=\"DejaVu Sans, Arial, sans-serif\">\n",
        esc(title)
    );
    for (v, label) in &ticks {
        let y = PAD_T + plot_h - v / top * plot_h;
        let _ = writeln!(
            s,
            "<line x1=\"{PAD_L}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d5dbe1\" stroke-width=\"0.8\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"end\" fill=\"#444\">{}</text>",
            CHART_W - PAD_R,
            PAD_L - 4.0,
            y + 3.0,
            esc(label)
        );
    }
    let band = plot_w / days.len().max(1) as f64;
    for (i, d) in days.iter().enumerate() {
        let x = PAD_L + band * (i as f64 + 0.5);
        let _ = writeln!(
            s,
            "<text x=\"{x:.1}\" y=\"{}\" font-size=\"8\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
            CHART_H - 8.0,
            d.date.day()
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{PAD_L}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#555\" stroke-width=\"1\"/>",
        CHART_W - PAD_R,
        PAD_T + plot_h,
        PAD_T + plot_h
    );
    (s, top, band)
}

fn y_of(v: f64, top: f64) -> f64 {
    let plot_h = CHART_H - PAD_T - PAD_B;
    PAD_T + plot_h - (v / top.max(1.0)) * plot_h
}

fn size_chart(lang: Lang, days: &[Day]) -> String {
    let max = days.iter().filter_map(|d| d.size).max().unwrap_or(0);
    let title = lang.t("Taille du dépôt", "Repository size");
    let (mut s, top, band) = chart_frame(lang, days, max, title);
    let points: Vec<(f64, f64)> = days
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            d.size
                .map(|v| (PAD_L + band * (i as f64 + 0.5), y_of(v as f64, top)))
        })
        .collect();
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let line: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let base = y_of(0.0, top);
        let _ = writeln!(
            s,
            "<polygon points=\"{:.1},{base:.1} {} {:.1},{base:.1}\" fill=\"#cfe0f1\" stroke=\"none\"/>",
            first.0,
            line.join(" "),
            last.0
        );
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f4e79\" stroke-width=\"2\"/>",
            line.join(" ")
        );
        for (x, y) in &points {
            let _ = writeln!(
                s,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2\" fill=\"#1f4e79\"/>"
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn added_chart(lang: Lang, days: &[Day]) -> String {
    let max = days.iter().map(|d| d.added).max().unwrap_or(0);
    let title = lang.t("Données ajoutées par jour", "Data added per day");
    let (mut s, top, band) = chart_frame(lang, days, max, title);
    let base = y_of(0.0, top);
    for (i, d) in days.iter().enumerate() {
        let x = PAD_L + band * i as f64;
        let color = match d.status {
            Status::Ok => "#3a9a52",
            Status::Warning => "#e08a00",
            _ => "#9aa5b1",
        };
        if d.added > 0 {
            let y = y_of(d.added as f64, top);
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"/>",
                x + band * 0.15,
                band * 0.7,
                (base - y).max(0.5)
            );
        }
        let mark = match d.status {
            Status::Failed => Some(("✗", "#b00000")),
            Status::Missing => Some(("?", "#b00000")),
            _ => None,
        };
        if let Some((m, c)) = mark {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" font-weight=\"700\" text-anchor=\"middle\" fill=\"{c}\">{m}</text>",
                x + band * 0.5,
                base - 3.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn render_charts(h: &mut String, r: &Report) {
    let lang = r.lang;
    let _ = write!(
        h,
        "<section id=\"charts\" class=\"charts keep page\">\n<h2>{}</h2>\n<p class=\"chart-title\">{}</p>\n<p class=\"note\">{}</p>\n{}<p class=\"chart-title\">{}</p>\n<p class=\"note\">{}</p>\n{}</section>\n",
        esc(lang.t("Volumes", "Volumes")),
        esc(lang.t("Taille du dépôt en fin de journée", "Repository size at the end of each day")),
        esc(&r.size_note),
        size_chart(lang, &r.days),
        esc(lang.t("Données ajoutées chaque jour", "Data added each day")),
        esc(lang.t(
            "Ce que les sauvegardes du jour ont ajouté sur le support (seuls les changements sont stockés). ✗ : échec, ? : sauvegarde manquante.",
            "What the day's snapshots added on the medium (only changes are stored). ✗: failed, ?: missing backup."
        )),
        added_chart(lang, &r.days),
    );
}

fn render_planning(h: &mut String, r: &Report) {
    let lang = r.lang;
    render_kv(
        h,
        "planning",
        lang.t("Planification", "Planning"),
        &r.planning,
    );
    let _ = write!(
        h,
        "<section id=\"drives\" class=\"keep\">\n<p class=\"chart-title\">{}</p>\n",
        esc(lang.t(
            "Supports de sauvegarde (disques en rotation, dépôts)",
            "Backup media (drives in rotation, repositories)"
        ))
    );
    if r.drives.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"none\">{}</p>",
            esc(lang.t(
                "Aucun support listé dans la configuration ([[repository]]).",
                "No medium listed in the configuration ([[repository]])."
            ))
        );
    } else {
        let _ = write!(
            h,
            "<table class=\"events\"><thead><tr><th>{}</th><th>{}</th></tr></thead><tbody>\n",
            esc(lang.t("Nom", "Name")),
            esc(lang.t("Emplacement", "Location"))
        );
        for (name, path) in &r.drives {
            let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(name), esc(path));
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("</section>\n");
}

fn render_table(h: &mut String, t: &Table) {
    let _ = write!(
        h,
        "<section id=\"{}\">\n<h2>{}</h2>\n",
        esc(t.id),
        esc(t.title)
    );
    if let Some(intro) = &t.intro {
        let _ = writeln!(h, "<p class=\"intro\">{}</p>", esc(intro));
    }
    if t.rows.is_empty() {
        let _ = writeln!(h, "<p class=\"none\">{}</p>", esc(t.none));
        h.push_str("</section>\n");
        return;
    }
    h.push_str("<table class=\"events\">\n<thead><tr>");
    for head in &t.headers {
        let _ = write!(h, "<th>{}</th>", esc(head));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        let class = match row.outcome {
            Outcome::Ok => "r-ok",
            Outcome::Warning => "r-warning",
            Outcome::Failed => "r-failed",
        };
        let _ = write!(h, "<tr class=\"{class}\">");
        for (i, c) in row.cells.iter().enumerate() {
            let cell_class = if i == 0 {
                " class=\"when\""
            } else if c
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_digit() || ch == '+')
                && c.len() < 16
            {
                " class=\"num\""
            } else {
                ""
            };
            let _ = write!(h, "<td{cell_class}>{}</td>", esc(c));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

fn render_signature(h: &mut String, r: &Report) {
    let lang = r.lang;
    let responsible = r
        .responsible
        .as_deref()
        .map(|p| {
            format!(
                " ({} : {})",
                lang.t("responsable désigné", "designated person"),
                p
            )
        })
        .unwrap_or_default();
    let _ = write!(
        h,
        "<section id=\"signature\" class=\"signature\">\n<h2>{}</h2>\n<p>{}</p>\n\
         <p class=\"line\">{} <span class=\"fill\"></span>{}</p>\n\
         <p class=\"line\">{} <span class=\"fill short\"></span></p>\n\
         <p class=\"line\">{}</p>\n<div class=\"box\"></div>\n\
         <p class=\"line\">{}</p>\n<div class=\"obs\"></div>\n</section>\n",
        esc(lang.t("Visa du pharmacien", "Pharmacist's approval")),
        esc(&match lang {
            Lang::Fr => format!(
                "J'ai pris connaissance de ce rapport des sauvegardes de {} et des suites données aux incidents.",
                r.month.title(lang)
            ),
            Lang::En => format!(
                "I have read this report of the backups of {} and of what was done after each incident.",
                r.month.title(lang)
            ),
        }),
        esc(lang.t("Vérifié par :", "Checked by:")),
        esc(&responsible),
        esc(lang.t("le :", "on:")),
        esc(lang.t("Signature :", "Signature:")),
        esc(lang.t("Observations :", "Remarks:")),
    );
}

// ---------------------------------------------------------------------------
// Outputs on stdout.

fn summary_json(r: &Report, path: &std::path::Path) -> Value {
    json!({
        "month": r.month.key(),
        "path": path.display().to_string(),
        "lang": r.lang.code(),
        "generated": DateTime::from_timestamp(r.generated, 0).map(|t| t.to_rfc3339()),
        "days": r.days.iter().map(|d| json!({
            "date": d.date.format("%Y-%m-%d").to_string(),
            "status": d.status.key(),
            "time": d.time.and_then(local).map(|t| t.to_rfc3339()),
            "attempts": d.attempts,
            "failures": d.failures,
            "bytes_added": d.added,
            "size": d.size,
        })).collect::<Vec<_>>(),
        "counts": r.counts,
        "journal_problems": r.problems,
    })
}

fn print_summary(r: &Report, path: &std::path::Path) {
    let c = &r.counts;
    match r.lang {
        Lang::Fr => {
            println!("Rapport écrit : {}", path.display());
            println!(
                "{} : {} jour(s) sauvegardé(s), {} incomplet(s), {} en échec, {} manquant(s) ; {} test(s) de restauration, {} vérification(s), {} copie(s).",
                r.month.title(r.lang), c.days_ok, c.days_warning, c.days_failed, c.days_missing, c.restore_tests, c.checks, c.copies
            );
        }
        Lang::En => {
            println!("Report written: {}", path.display());
            println!(
                "{}: {} day(s) backed up, {} incomplete, {} failed, {} missing; {} restore test(s), {} check(s), {} copy(ies).",
                r.month.title(r.lang), c.days_ok, c.days_warning, c.days_failed, c.days_missing, c.restore_tests, c.checks, c.copies
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_step_back() {
        assert_eq!(
            Month::parse("2026-11").ok(),
            Some(Month {
                year: 2026,
                month: 11
            })
        );
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "novembre"] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        let jan = NaiveDate::from_ymd_opt(2027, 1, 15).expect("date");
        assert_eq!(Month::before(jan).key(), "2026-12");
        let nov = Month {
            year: 2026,
            month: 11,
        };
        assert_eq!(nov.days().len(), 30);
        assert_eq!(
            Month {
                year: 2028,
                month: 2
            }
            .days()
            .len(),
            29
        );
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("Centre & Fils <b>\"x\"</b>'"),
            "Centre &amp; Fils &lt;b&gt;&quot;x&quot;&lt;/b&gt;&#39;"
        );
    }

    #[test]
    fn sizes_read_in_french() {
        assert_eq!(Lang::Fr.bytes(1536), "1,5 Kio");
        assert_eq!(Lang::Fr.bytes(12), "12 o");
        assert_eq!(Lang::En.bytes(1536), "1.5 KiB");
    }

    #[test]
    fn axes_are_round() {
        let (top, ticks) = size_axis(Lang::En, 90 << 20);
        assert!(top >= (90u64 << 20) as f64);
        assert_eq!(ticks.first().map(|t| t.1.as_str()), Some("0 MiB"));
        assert_eq!(ticks.get(1).map(|t| t.1.as_str()), Some("25 MiB"));
        let (top, ticks) = size_axis(Lang::Fr, 0);
        assert!(top > 0.0 && !ticks.is_empty());
    }
}
