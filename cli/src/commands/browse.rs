//! What `history`, `find`, `diff` and `dump` share: the repository opened
//! for reading behind the library's [`Browser`] (its tree cache is what
//! makes walking a year of snapshots cheap), the snapshot list, and how
//! paths and entries are shown.

use anyhow::{Context, Result};
use snapshots_format::format::snapshot::Snapshot;
use snapshots_format::format::tree::{Node, Timestamp};
use snapshots_format::repo::browse::Browser;
use snapshots_format::{ReadOnlyRepository, SnapshotId};

use crate::args::Cli;
use crate::format;

/// Decoded chunks kept at once: more than the library's read-ahead window
/// (`dump`), so that chunks read ahead are still there when written.
const CACHE_BYTES: usize = 32 << 20;

/// The repository behind a browser, and its readable snapshots (oldest first).
pub struct Opened {
    /// Cached access to trees and chunks.
    pub browser: Browser,
    /// Every readable snapshot, those of other labels left out.
    pub snapshots: Vec<(SnapshotId, Snapshot)>,
}

/// Opens the repository for reading; with `label`, keeps only its snapshots.
pub fn open(cli: &Cli, label: Option<&str>) -> Result<Opened> {
    let repo = super::open(cli)?;
    let mut snapshots = super::snapshots(&repo)?;
    if let Some(label) = label {
        snapshots.retain(|(_, s)| s.label == label);
        if snapshots.is_empty() {
            anyhow::bail!("no snapshot has the label {label:?} (see `coffre snapshots`)");
        }
    }
    Ok(Opened {
        browser: Browser::new(ReadOnlyRepository::from(repo), CACHE_BYTES),
        snapshots,
    })
}

/// A path for JSON: `path` as `ls --json` shows it (text, bytes that are
/// not UTF-8 replaced by U+FFFD), and only for such names `path_hex`, the
/// exact bytes, so that scripts lose nothing.
pub fn json_path(raw: &[u8]) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    map.insert("path".into(), format::name(raw).into());
    if std::str::from_utf8(raw).is_err() {
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        map.insert("path_hex".into(), hex.into());
    }
    map
}

/// An entry's type as `ls --json` names it.
pub fn kind(node: &Node) -> String {
    format!("{:?}", node.kind).to_lowercase()
}

/// A point in time given as a duration back from now (`30d`, `2w`) or a
/// local date (`2026-11-23`: its start, or with `end_of_day` its end).
pub fn moment(text: &str, end_of_day: bool) -> Result<Timestamp> {
    use chrono::TimeZone;
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if end_of_day {
            day.succ_opt().unwrap_or(day)
        } else {
            day
        };
        let midnight = day.and_hms_opt(0, 0, 0).context("midnight exists")?;
        let local = chrono::Local
            .from_local_datetime(&midnight)
            .earliest()
            .with_context(|| format!("{text}: no such local time"))?;
        return Ok(Timestamp {
            sec: local.timestamp(),
            nsec: 0,
        });
    }
    let back = super::parse_duration(text).with_context(|| {
        format!("{text:?} is neither a date YYYY-MM-DD nor a duration (30d, 2w, 12h)")
    })?;
    let now = super::now()?;
    Ok(Timestamp {
        sec: now
            .sec
            .saturating_sub(i64::try_from(back.as_secs()).unwrap_or(i64::MAX)),
        nsec: now.nsec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_carry_raw_bytes_when_not_utf8() {
        let plain = json_path(b"db/officine.fdb");
        assert_eq!(plain["path"], "db/officine.fdb");
        assert!(!plain.contains_key("path_hex"));
        let raw = json_path(b"caf\xe9");
        assert_eq!(raw["path"], "caf\u{fffd}");
        assert_eq!(raw["path_hex"], "636166e9");
    }

    #[test]
    fn moments_are_dates_or_durations() {
        let start = moment("2026-11-23", false).unwrap();
        let end = moment("2026-11-23", true).unwrap();
        assert!(end.sec - start.sec >= 23 * 3600 && end.sec - start.sec <= 25 * 3600);
        let now = super::super::now().unwrap();
        let back = moment("1d", false).unwrap();
        assert!((now.sec - back.sec - 86_400).abs() < 5);
        assert!(moment("hier", false).is_err());
    }
}
