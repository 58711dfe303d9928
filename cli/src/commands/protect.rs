//! `coffre protect` / `unprotect`: legal holds, kept in the repository's
//! journal (FORMAT.md §18), which `forget` honours.

use anyhow::{bail, Context, Result};
use snapshots_format::format::journal::{EntryKind, Outcome};
use snapshots_format::format::snapshot;
use snapshots_format::repo::journal::{protect_details, unprotect_details, Hold};

use crate::args::{Cli, ProtectArgs, UnprotectArgs};

/// Places a hold, or lists those in force.
pub fn run(cli: &Cli, args: &ProtectArgs) -> Result<u8> {
    let repo = super::open(cli)?;
    let now = super::now()?.sec;
    if args.list {
        return list(cli, &holds(&repo, now)?);
    }
    let (Some(spec), Some(reason)) = (&args.snapshot, &args.reason) else {
        bail!("give the snapshot and --reason (or --list)");
    };
    if reason.trim().is_empty() {
        bail!("give a reason: it is what the auditor reads");
    }
    let all = super::snapshots(&repo)?;
    let (id, snap) = snapshot::resolve(&all, spec)?;
    let until = match &args.until {
        None => i64::MAX,
        Some(d) => {
            let day = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .with_context(|| format!("--until {d}: give a date YYYY-MM-DD"))?;
            let end = day.and_hms_opt(23, 59, 59).unwrap_or_default();
            let t = chrono::TimeZone::from_local_datetime(&chrono::Local, &end)
                .earliest()
                .map(|t| t.timestamp())
                .with_context(|| format!("--until {d}: no such local time"))?;
            if t <= now {
                bail!("--until {d} is already past");
            }
            t
        }
    };
    let shown_until = until_text(until);
    let summary = format!(
        "protect snapshot {} ({}) {shown_until}: {reason}",
        id.short(),
        snap.local().format("%Y-%m-%d %H:%M")
    );
    repo.journal_append(snapshots_format::repo::journal::NewEntry {
        kind: EntryKind::Protect,
        outcome: Outcome::Ok,
        summary,
        details: protect_details(&id.to_hex(), until, reason),
        time: now,
    })
    .context("the hold could not be written to the journal; nothing is protected")?;
    if cli.json {
        super::print_json(
            &serde_json::json!({"protected": id.to_hex(), "until": until, "reason": reason}),
        )?;
    } else {
        println!(
            "Snapshot {} ({}) protected {shown_until}: forget will keep it.",
            id.short(),
            snap.local().format("%Y-%m-%d %H:%M")
        );
    }
    Ok(0)
}

/// Lifts a hold.
pub fn unprotect(cli: &Cli, args: &UnprotectArgs) -> Result<u8> {
    let repo = super::open(cli)?;
    let now = super::now()?.sec;
    let all = super::snapshots(&repo)?;
    let (id, _) = snapshot::resolve(&all, &args.snapshot)?;
    let hex = id.to_hex();
    if !holds(&repo, now)?.iter().any(|h| h.snapshot == hex) {
        bail!(
            "snapshot {} has no hold in force (see `coffre protect --list`)",
            id.short()
        );
    }
    repo.journal_append(snapshots_format::repo::journal::NewEntry {
        kind: EntryKind::Protect,
        outcome: Outcome::Ok,
        summary: format!("unprotect snapshot {}: {}", id.short(), args.reason),
        details: unprotect_details(&hex, &args.reason),
        time: now,
    })?;
    if cli.json {
        super::print_json(&serde_json::json!({"unprotected": hex}))?;
    } else {
        println!("Hold on snapshot {} lifted.", id.short());
    }
    Ok(0)
}

/// The holds in force; a damaged journal is an error, since a removed
/// hold could then go unnoticed.
pub fn holds(repo: &snapshots_format::Repository, now: i64) -> Result<Vec<Hold>> {
    let journal = repo.journal()?;
    if let Some(p) = journal.problems.first() {
        bail!("the journal is damaged ({p}; see `coffre journal`): which snapshots are protected cannot be told, so nothing is removed");
    }
    Ok(journal.holds(now))
}

/// "until 2036-11-30", or "until lifted".
pub fn until_text(until: i64) -> String {
    if until == i64::MAX {
        return "until lifted".into();
    }
    chrono::DateTime::from_timestamp(until, 0)
        .map(|t| {
            format!(
                "until {}",
                t.with_timezone(&chrono::Local).format("%Y-%m-%d")
            )
        })
        .unwrap_or_else(|| "until lifted".into())
}

fn list(cli: &Cli, holds: &[Hold]) -> Result<u8> {
    if cli.json {
        super::print_json(&holds)?;
        return Ok(0);
    }
    if holds.is_empty() {
        println!("No snapshot is protected.");
    }
    for h in holds {
        let since = chrono::DateTime::from_timestamp(h.since, 0)
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d")
                    .to_string()
            })
            .unwrap_or_default();
        println!(
            "{}  {}  {} (by {} on {since})",
            &h.snapshot[..12],
            until_text(h.until),
            h.reason,
            h.by
        );
    }
    Ok(0)
}
