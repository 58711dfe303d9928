//! The ransomware alarm: each snapshot is compared with the usual days of
//! its label. Ransomware rewrites most documents at once, encrypted (so
//! the new data no longer compresses) and often under new names (so the
//! old names disappear). A busy day changes more files than usual too, but
//! not most of them, and not that way.
//!
//! A snapshot is **suspect** when, against the median of the previous
//! snapshots of its label (at least [`MIN_HISTORY`] of them):
//!
//! - more than [`SHARE`] of its files are new or changed, and at least
//!   [`TIMES_USUAL`] times the usual share, and
//! - its new data is incompressible (stored ≥ [`INCOMPRESSIBLE`] of added)
//!   or more than [`SHARE`] of the previous files are gone (renamed).
//!
//! The alarm is a journal entry (FORMAT.md §18, kind `alarm`): `status`
//! turns critical and stays so, the notification goes out, and `forget`
//! refuses to remove any snapshot older than the suspect one (the last
//! good copies) until someone looks and runs `coffre alarm ack`.

use anyhow::Result;
use serde_json::json;
use snapshots_format::format::journal::{EntryKind, Outcome};
use snapshots_format::format::snapshot::Snapshot;
use snapshots_format::repo::journal::Journal;
use snapshots_format::{Repository, SnapshotId};

use crate::args::Cli;

/// Snapshots of the label needed before judging: the first days of a
/// repository change everything.
pub const MIN_HISTORY: usize = 3;
/// How many previous snapshots make the norm.
const NORM_OF: usize = 14;
/// Share of files new or changed (and of files gone) that is never usual.
pub const SHARE: f64 = 0.25;
/// How far above the usual share a day must be.
pub const TIMES_USUAL: f64 = 4.0;
/// Stored bytes over added bytes at or above which new data is taken as
/// encrypted.
pub const INCOMPRESSIBLE: f64 = 0.85;

/// What the alarm looks at in one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Signs {
    /// Files in the snapshot.
    pub files: u64,
    /// Share of them new or changed.
    pub changed_share: f64,
    /// Share of the previous snapshot's files no longer there.
    pub gone_share: f64,
    /// Stored bytes over added bytes (1.0: nothing compressed).
    pub stored_over_added: f64,
    /// The median changed share of the previous snapshots.
    pub usual_share: f64,
}

fn files_of(s: &Snapshot) -> u64 {
    s.summary.files()
}

fn changed_share(s: &Snapshot) -> f64 {
    let files = files_of(s).max(1) as f64;
    s.summary.files_new.saturating_add(s.summary.files_changed) as f64 / files
}

/// The signs of `snap` against the earlier snapshots of its label in
/// `all` (oldest first); `None` while there are too few to judge.
pub fn signs(snap: &Snapshot, all: &[(SnapshotId, Snapshot)]) -> Option<Signs> {
    let earlier: Vec<&Snapshot> = all
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.label == snap.label && s.time < snap.time)
        .collect();
    if earlier.len() < MIN_HISTORY {
        return None;
    }
    let previous = earlier.last()?;
    let mut recent: Vec<f64> = earlier
        .iter()
        .rev()
        .take(NORM_OF)
        .map(|s| changed_share(s))
        .collect();
    recent.sort_by(f64::total_cmp);
    let usual_share = recent[recent.len() / 2];
    let kept = snap
        .summary
        .files_changed
        .saturating_add(snap.summary.files_unchanged);
    let before = files_of(previous).max(1);
    let sm = &snap.summary;
    Some(Signs {
        files: files_of(snap),
        changed_share: changed_share(snap),
        gone_share: before.saturating_sub(kept) as f64 / before as f64,
        stored_over_added: if sm.bytes_added == 0 {
            0.0
        } else {
            sm.bytes_stored as f64 / sm.bytes_added as f64
        },
        usual_share,
    })
}

/// Why these signs are suspect, or `None`.
pub fn suspect(s: &Signs) -> Option<String> {
    let mass = s.changed_share > SHARE && s.changed_share >= TIMES_USUAL * s.usual_share;
    let encrypted = s.stored_over_added >= INCOMPRESSIBLE;
    let renamed = s.gone_share > SHARE;
    if !(mass && (encrypted || renamed)) {
        return None;
    }
    let mut why = format!(
        "{:.0} % of the files are new or changed (usually {:.0} %)",
        s.changed_share * 100.0,
        s.usual_share * 100.0
    );
    if encrypted {
        why += ", and the new data does not compress (as encrypted files)";
    }
    if renamed {
        why += &format!(
            ", and {:.0} % of yesterday's files are gone (renamed?)",
            s.gone_share * 100.0
        );
    }
    Some(why)
}

/// An alarm raised and not yet acknowledged.
#[derive(Debug, Clone)]
pub struct Open {
    /// The suspect snapshot (64 hex).
    pub snapshot: String,
    /// When it was taken (Unix seconds).
    pub time: i64,
    /// Why it is suspect.
    pub why: String,
}

/// The alarms of the journal not acknowledged, oldest first.
pub fn open_alarms(journal: &Journal) -> Vec<Open> {
    let mut open: Vec<Open> = Vec::new();
    for (_, e) in &journal.entries {
        if e.kind != EntryKind::Alarm {
            continue;
        }
        let d = &e.details;
        let Some(snapshot) = d["snapshot"].as_str() else {
            continue;
        };
        match d["state"].as_str() {
            Some("raised") => open.push(Open {
                snapshot: snapshot.to_owned(),
                time: d["snapshot_time"].as_i64().unwrap_or(e.time),
                why: d["why"].as_str().unwrap_or_default().to_owned(),
            }),
            Some("ack") => open.retain(|o| o.snapshot != snapshot),
            _ => {}
        }
    }
    open
}

/// Judges a snapshot just saved: on a suspect one, records the alarm,
/// says so loudly and notifies. Returns the reason when raised.
pub fn after_snapshot(
    cli: &Cli,
    repo: &Repository,
    id: &SnapshotId,
    snap: &Snapshot,
) -> Result<Option<String>> {
    let (all, _) = repo.snapshots()?;
    let Some(signs) = signs(snap, &all) else {
        return Ok(None);
    };
    let Some(why) = suspect(&signs) else {
        return Ok(None);
    };
    let summary = format!(
        "RANSOMWARE ALARM on snapshot {} ({}): {why}",
        id.short(),
        snap.local().format("%Y-%m-%d %H:%M")
    );
    crate::journal::record(
        cli,
        repo,
        EntryKind::Alarm,
        Outcome::Failed,
        summary.clone(),
        json!({
            "state": "raised",
            "snapshot": id.to_hex(),
            "snapshot_time": snap.time.sec,
            "why": why,
            "signs": signs,
        }),
    );
    eprintln!("ALARM: {summary}.");
    eprintln!("The snapshots before it are kept until someone looks: compare with `coffre diff` (or the mount), restore from an earlier snapshot if the files are encrypted, then run `coffre alarm ack {}`.", id.short());
    if let Some(cfg) = crate::config::load(cli)?.map(|l| &l.config.notify) {
        if crate::notify::configured(cfg) {
            let host = crate::notify::hostname();
            crate::notify::send(
                cfg,
                &crate::notify::Notice {
                    subject: format!("[coffre] RANSOMWARE ALARM on {host}"),
                    body: format!("{summary}.\n\nLook at the files now. Coffre keeps every earlier snapshot until the alarm is acknowledged (coffre alarm ack).\n"),
                    mail: true,
                    ping: Some(crate::notify::Ping::Fail),
                    json: json!({"alarm": summary, "snapshot": id.to_hex()}),
                },
            );
        }
    }
    Ok(Some(why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signs(changed: f64, gone: f64, ratio: f64, usual: f64) -> Signs {
        Signs {
            files: 1000,
            changed_share: changed,
            gone_share: gone,
            stored_over_added: ratio,
            usual_share: usual,
        }
    }

    #[test]
    fn an_attack_is_suspect_and_a_busy_day_is_not() {
        // Most documents rewritten encrypted under new names.
        assert!(suspect(&signs(0.8, 0.7, 1.0, 0.03)).is_some());
        // Encrypted in place (same names).
        assert!(suspect(&signs(0.6, 0.0, 0.99, 0.03)).is_some());
        // A busy day: many new scans (incompressible), but not most files.
        assert!(suspect(&signs(0.15, 0.0, 0.98, 0.03)).is_none());
        // A reorganisation: many moved, but the data compresses as before.
        assert!(suspect(&signs(0.5, 0.0, 0.4, 0.03)).is_none());
        // A repository where much changes every day anyway.
        assert!(suspect(&signs(0.6, 0.0, 1.0, 0.5)).is_none());
    }
}
