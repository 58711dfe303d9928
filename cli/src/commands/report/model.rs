//! The report's model: what the page shows, as plain data (no HTML).

use chrono::NaiveDate;
use snapshots_format::format::journal::Outcome;

use super::i18n::Lang;
use super::month::Month;

/// A day's result in the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
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
    pub(super) fn key(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Failed => "failed",
            Status::Missing => "missing",
            Status::NotPlanned => "not-planned",
            Status::Future => "future",
        }
    }

    pub(super) fn label(self, lang: Lang) -> &'static str {
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
    pub(super) fn symbol(self) -> &'static str {
        match self {
            Status::Ok => "✓",
            Status::Warning => "!",
            Status::Failed => "✗",
            Status::Missing => "?",
            Status::NotPlanned | Status::Future => "",
        }
    }

    pub(super) fn meaning(self, lang: Lang) -> &'static str {
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
pub(super) struct Attempt {
    pub(super) time: i64,
    pub(super) outcome: Outcome,
    /// The snapshot's id (hex), when one was written.
    pub(super) id: Option<String>,
    pub(super) files: u64,
    pub(super) total: u64,
    /// Bytes added to the drive (compressed, encrypted).
    pub(super) stored: u64,
    pub(super) unreadable: u64,
    /// Still in the repository (not removed by forget since).
    pub(super) kept: bool,
}

/// A day of the calendar.
#[derive(Debug, Clone)]
pub(super) struct Day {
    pub(super) date: NaiveDate,
    pub(super) status: Status,
    /// When the day's good snapshot (or its failure) happened.
    pub(super) time: Option<i64>,
    pub(super) attempts: usize,
    pub(super) failures: usize,
    /// A day of the schedule.
    pub(super) planned: bool,
    /// Bytes the day's snapshots added.
    pub(super) added: u64,
    /// The repository's size at the end of the day, when known.
    pub(super) size: Option<u64>,
}

/// How one point of the quality reference is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mark {
    Good,
    Watch,
    Bad,
}

/// A line of the summary: a point of principle 42 and its evidence.
pub(super) struct Point {
    pub(super) mark: Mark,
    pub(super) title: &'static str,
    pub(super) evidence: String,
}

/// A row of a table: plain text cells (escaped when rendered).
pub(super) struct Row {
    pub(super) outcome: Outcome,
    pub(super) cells: Vec<String>,
}

/// A table of journal events.
pub(super) struct Table {
    /// The section's HTML id.
    pub(super) id: &'static str,
    /// The columns holding numbers (right-aligned).
    pub(super) num: &'static [usize],
    /// The columns kept on one line (ids, who ran it).
    pub(super) nowrap: &'static [usize],
    pub(super) title: &'static str,
    pub(super) intro: Option<String>,
    pub(super) headers: Vec<&'static str>,
    pub(super) rows: Vec<Row>,
    /// Said when there is no row.
    pub(super) none: &'static str,
}

/// Counts for the summary and `--json`.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(super) struct Counts {
    /// Days of the schedule, up to yesterday.
    pub(super) days_planned: usize,
    pub(super) days_ok: usize,
    pub(super) days_warning: usize,
    pub(super) days_failed: usize,
    pub(super) days_missing: usize,
    pub(super) days_not_planned: usize,
    pub(super) days_future: usize,
    pub(super) snapshots: usize,
    pub(super) snapshots_failed: usize,
    pub(super) restore_tests: usize,
    pub(super) restore_tests_failed: usize,
    pub(super) restores: usize,
    pub(super) checks: usize,
    pub(super) checks_failed: usize,
    pub(super) copies: usize,
    pub(super) copies_failed: usize,
    pub(super) forgets: usize,
    pub(super) prunes: usize,
    pub(super) key_changes: usize,
    pub(super) holds: usize,
    pub(super) alarms: usize,
    pub(super) journal_entries: usize,
}

/// Everything the page shows, without HTML.
pub(super) struct Report {
    pub(super) lang: Lang,
    pub(super) month: Month,
    pub(super) generated: i64,
    /// The people and the place: (label, value).
    pub(super) header: Vec<(&'static str, String)>,
    pub(super) pharmacy: Option<String>,
    pub(super) responsible: Option<String>,
    pub(super) problems: Vec<String>,
    pub(super) points: Vec<Point>,
    pub(super) planning: Vec<(&'static str, String)>,
    /// (name, path or drive).
    pub(super) drives: Vec<(String, String)>,
    pub(super) days: Vec<Day>,
    /// The size curve's basis, in words.
    pub(super) size_note: String,
    pub(super) tables: Vec<Table>,
    pub(super) counts: Counts,
}
