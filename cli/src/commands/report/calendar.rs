//! The calendar: every backup attempt, each day's status and size, the month's counts.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, NaiveDate};
use serde_json::Value;
use snapshots_format::format::journal::{Entry, EntryKind, Outcome};

use crate::config::ScheduleConfig;

use super::collect::Facts;
use super::i18n::Lang;
use super::model::{Attempt, Counts, Day, Status};
use super::month::{end_of_day, local_date, Month};

/// Every backup attempt known, oldest first.
pub(super) fn attempts(facts: &Facts) -> Vec<Attempt> {
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
            files: sm.files(),
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
pub(super) fn calendar(
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
                planned,
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
pub(super) fn fill_sizes(days: &mut [Day], facts: &Facts, now: i64) {
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

pub(super) fn size_note(lang: Lang, facts: &Facts) -> String {
    match facts.size_now {
        Some(s) => format!(
            "{}{}{}",
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

pub(super) fn count(days: &[Day], attempts: &[&Attempt], entries: &[&Entry]) -> Counts {
    let days_with = |s: Status| days.iter().filter(|d| d.status == s).count();
    let of = |k: EntryKind| entries.iter().filter(|e| e.kind == k).count();
    let failed = |k: EntryKind| {
        entries
            .iter()
            .filter(|e| e.kind == k && e.outcome == Outcome::Failed)
            .count()
    };
    Counts {
        days_planned: days
            .iter()
            .filter(|d| d.planned && d.status != Status::Future)
            .count(),
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
