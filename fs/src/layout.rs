//! What the top of the mount looks like: one folder per day (its last
//! snapshot), one per snapshot when a day has several, and `latest`; one
//! folder per label above them when the repository holds several labels.
//! Names are legal on Windows and SMB (no `:`) and sort by time.
//!
//! Beside them, hidden from listings, [`VERSIONS_DIR`] holds per label the
//! view Samba's `vfs_shadow_copy2` reads to fill Windows' "Previous
//! Versions" tab: one `@GMT-YYYY.MM.DD-HH.MM.SS` folder (UTC) per snapshot
//! and nothing else, since Samba takes every name it can parse for a
//! snapshot and would count an alias twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Local, TimeZone, Utc};
use snapshots_format::format::snapshot::Snapshot;
use snapshots_format::SnapshotId;

/// A folder showing one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// Its name (`2026-11-24`, `2026-11-24_12h00`, `latest`...).
    pub name: String,
    /// The snapshot shown.
    pub snapshot: SnapshotId,
}

/// The hidden folder of the mount's root holding the Previous Versions
/// view, one folder per label (even when there is only one, so that the
/// Samba configuration naming it stays valid when a label is added).
pub const VERSIONS_DIR: &str = ".previous-versions";

/// How many snapshots of a label the Previous Versions view shows, newest
/// first: Windows lists nothing past about 500, and a year of daily
/// snapshots fits.
pub const MAX_VERSIONS: usize = 400;

/// The folders of one label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFolders {
    /// The label, made safe as a folder name.
    pub name: String,
    /// Its folders, sorted by name (`latest` last).
    pub folders: Vec<Folder>,
    /// Its Previous Versions view: `@GMT-` folders, oldest first.
    pub versions: Vec<Folder>,
}

/// Folders per label, for snapshots sorted oldest first.
pub fn layout(snapshots: &[(SnapshotId, Snapshot)]) -> Vec<LabelFolders> {
    let mut by_label: BTreeMap<String, Vec<(SnapshotId, DateTime<Local>)>> = BTreeMap::new();
    for (id, s) in snapshots {
        by_label
            .entry(s.label.clone())
            .or_default()
            .push((*id, s.local()));
    }
    let mut out: Vec<LabelFolders> = Vec::new();
    for (label, snaps) in by_label {
        let mut name = windows_safe(&label);
        while out.iter().any(|l| l.name == name) {
            name.push('_');
        }
        out.push(LabelFolders {
            name,
            folders: folders(&snaps),
            versions: versions(&snaps),
        });
    }
    out
}

fn folders(snaps: &[(SnapshotId, DateTime<Local>)]) -> Vec<Folder> {
    let mut days: BTreeMap<String, Vec<(SnapshotId, DateTime<Local>)>> = BTreeMap::new();
    for (id, t) in snaps {
        days.entry(t.format("%Y-%m-%d").to_string())
            .or_default()
            .push((*id, *t));
    }
    let mut out = Vec::new();
    for (day, mut list) in days {
        list.sort_by_key(|(id, t)| (*t, *id));
        let last = list.last().expect("a day has at least one snapshot").0;
        out.push(Folder {
            name: day.clone(),
            snapshot: last,
        });
        if list.len() > 1 {
            let minute = |t: &DateTime<Local>| t.format("%Hh%M").to_string();
            let second = |t: &DateTime<Local>| t.format("%Hh%Mm%S").to_string();
            let milli = |t: &DateTime<Local>| t.format("%Hh%Mm%S_%3f").to_string();
            let mut names: Vec<String> = Vec::new();
            for (i, (id, t)) in list.iter().enumerate() {
                let others = || {
                    list.iter()
                        .enumerate()
                        .filter(move |(j, _)| *j != i)
                        .map(|(_, (_, u))| u)
                };
                // As short as possible, but always in time order when sorted.
                let stamp = if !others().any(|u| minute(u) == minute(t)) {
                    minute(t)
                } else if !others().any(|u| second(u) == second(t)) {
                    second(t)
                } else {
                    milli(t)
                };
                let mut name = format!("{day}_{stamp}");
                if names.contains(&name) {
                    name = format!("{name}_{}", &id.short()[..6]);
                }
                names.push(name.clone());
                out.push(Folder {
                    name,
                    snapshot: *id,
                });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some((id, _)) = snaps.iter().max_by_key(|(id, t)| (*t, *id)) {
        out.push(Folder {
            name: "latest".into(),
            snapshot: *id,
        });
    }
    out
}

/// The `@GMT-` token of each snapshot, in UTC to the second (the format
/// `vfs_shadow_copy2` expects by default). Two snapshots in the same second
/// would share a token: the later one is shown. Only the newest
/// [`MAX_VERSIONS`] are kept.
fn versions(snaps: &[(SnapshotId, DateTime<Local>)]) -> Vec<Folder> {
    let mut by_name: BTreeMap<String, (DateTime<Local>, SnapshotId)> = BTreeMap::new();
    for (id, t) in snaps {
        let name = gmt_token(t.timestamp());
        let later = by_name.get(&name).is_none_or(|old| (*t, *id) > *old);
        if later {
            by_name.insert(name, (*t, *id));
        }
    }
    let skip = by_name.len().saturating_sub(MAX_VERSIONS);
    by_name
        .into_iter()
        .skip(skip)
        .map(|(name, (_, snapshot))| Folder { name, snapshot })
        .collect()
}

/// `@GMT-YYYY.MM.DD-HH.MM.SS` for a Unix time.
pub fn gmt_token(sec: i64) -> String {
    match Utc.timestamp_opt(sec, 0) {
        chrono::LocalResult::Single(t) => t.format("@GMT-%Y.%m.%d-%H.%M.%S").to_string(),
        _ => "@GMT-1970.01.01-00.00.00".into(),
    }
}

/// A label as a folder name Windows can show: no `<>:"/\|?*` or control
/// characters, no trailing dot or space, not empty.
pub fn windows_safe(label: &str) -> String {
    let mut s: String = label
        .chars()
        .map(|c| {
            if c.is_control() || "<>:\"/\\|?*".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    while s.ends_with('.') || s.ends_with(' ') {
        s.pop();
    }
    if s.is_empty() || s == "latest" || s == VERSIONS_DIR {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapshots_format::format::snapshot::Summary;
    use snapshots_format::format::tree::Timestamp;
    use snapshots_format::BlobId;

    fn snap(label: &str, sec: i64) -> Snapshot {
        Snapshot {
            time: Timestamp { sec, nsec: 0 },
            hostname: vec![],
            sources: vec![vec![]],
            label: label.into(),
            tags: vec![],
            parent: None,
            tree: BlobId([0; 32]),
            root: None,
            summary: Summary::default(),
            excludes: vec![],
            hooks: vec![],
        }
    }

    fn names(l: &LabelFolders) -> Vec<&str> {
        l.folders.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn days_times_seconds_and_latest() {
        std::env::set_var("TZ", "Europe/Paris");
        // 2026-11-24 08:00:00, 12:00:00, 12:00:30 and 2026-11-25 20:30 Paris (UTC+1).
        let base = 1_795_503_600; // 2026-11-24 08:00 Paris
        let all: Vec<(SnapshotId, Snapshot)> = [
            0,
            4 * 3600,
            4 * 3600 + 30,
            36 * 3600 + 1800,
            36 * 3600 + 1800,
        ]
        .iter()
        .enumerate()
        .map(|(i, d)| (SnapshotId([i as u8; 32]), snap("officine", base + d)))
        .collect();
        let l = layout(&all);
        assert_eq!(l.len(), 1);
        assert_eq!(
            names(&l[0]),
            [
                "2026-11-24",
                "2026-11-24_08h00",
                "2026-11-24_12h00m00",
                "2026-11-24_12h00m30",
                "2026-11-25",
                "2026-11-25_20h30m00_000",
                "2026-11-25_20h30m00_000_040404",
                "latest"
            ]
        );
        assert_eq!(l[0].folders[0].snapshot, SnapshotId([2; 32]));
        assert_eq!(l[0].folders[4].snapshot, SnapshotId([4; 32]));
        assert_eq!(l[0].folders[7].snapshot, SnapshotId([4; 32]));
        assert!(l[0].folders.iter().all(|f| !f.name.contains(':')));
    }

    #[test]
    fn one_folder_per_label_with_safe_names() {
        let all = vec![
            (SnapshotId([1; 32]), snap("a:b?", 1_795_503_600)),
            (SnapshotId([2; 32]), snap("cabinet", 1_795_503_600)),
        ];
        let l = layout(&all);
        assert_eq!(
            l.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["a_b_", "cabinet"]
        );
        assert_eq!(windows_safe("x. "), "x");
        assert_eq!(windows_safe("latest"), "_latest");
        assert_eq!(windows_safe(VERSIONS_DIR), "_.previous-versions");
    }

    #[test]
    fn previous_versions_are_utc_tokens_one_per_second_newest_kept() {
        std::env::set_var("TZ", "Europe/Paris");
        let base = 1_795_503_600; // 2026-11-24 08:00 Paris, 07:00 UTC
        let mut all: Vec<(SnapshotId, Snapshot)> = vec![
            (SnapshotId([1; 32]), snap("officine", base)),
            (SnapshotId([2; 32]), snap("officine", base + 86_400)),
            // Same second as the previous one: one token, the later wins.
            (SnapshotId([3; 32]), snap("officine", base + 86_400)),
        ];
        let l = layout(&all);
        let v: Vec<(&str, SnapshotId)> = l[0]
            .versions
            .iter()
            .map(|f| (f.name.as_str(), f.snapshot))
            .collect();
        assert_eq!(
            v,
            [
                ("@GMT-2026.11.24-07.00.00", SnapshotId([1; 32])),
                ("@GMT-2026.11.25-07.00.00", SnapshotId([3; 32])),
            ]
        );
        // No alias among them: every name parses as a distinct time.
        assert!(l[0].versions.iter().all(|f| f.name.len() == 24));

        all = (0..MAX_VERSIONS + 10)
            .map(|i| {
                let id = SnapshotId([(i % 250) as u8; 32]);
                (id, snap("officine", base + 86_400 * i as i64))
            })
            .collect();
        let l = layout(&all);
        assert_eq!(l[0].versions.len(), MAX_VERSIONS);
        assert_eq!(
            l[0].versions.last().map(|f| f.name.clone()),
            Some(gmt_token(base + 86_400 * (MAX_VERSIONS as i64 + 9)))
        );
        assert_eq!(l[0].versions[0].name, gmt_token(base + 86_400 * 10));
    }
}
