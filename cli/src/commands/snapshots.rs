//! `coffre snapshots`: the table of snapshots, or JSON.

use anyhow::Result;
use serde_json::{json, Value};
use snapshots_format::format::snapshot::Snapshot;
use snapshots_format::SnapshotId;

use crate::args::{Cli, SnapshotsArgs};
use crate::format;

/// The JSON form of a snapshot, shared by `snapshot` and `snapshots`.
pub fn to_json(id: &SnapshotId, s: &Snapshot) -> Value {
    let sm = &s.summary;
    json!({
        "id": id.to_hex(),
        "short_id": id.short(),
        "time": s.utc().to_rfc3339(),
        "time_local": s.local().to_rfc3339(),
        "hostname": format::name(&s.hostname),
        "label": s.label,
        "source": s.sources.first().map(|p| format::name(p)),
        "sources": s.sources.iter().map(|p| format::name(p)).collect::<Vec<_>>(),
        "tags": s.tags,
        "parent": s.parent.map(|p| p.to_hex()),
        "summary": {
            "files_new": sm.files_new,
            "files_changed": sm.files_changed,
            "files_unchanged": sm.files_unchanged,
            "dirs_new": sm.dirs_new,
            "dirs_changed": sm.dirs_changed,
            "dirs_unchanged": sm.dirs_unchanged,
            "others": sm.others,
            "total_size": sm.total_size,
            "bytes_read": sm.bytes_read,
            "bytes_added": sm.bytes_added,
            "bytes_stored": sm.bytes_stored,
            "blobs_added": sm.blobs_added,
            "duration_ms": sm.duration_ms,
            "skipped_count": sm.skipped_count,
            "excluded_count": sm.excluded_count,
            "inode_changed": sm.inode_changed,
            "skipped": sm.skipped.iter().map(|(p, why)| json!({"path": format::name(p), "reason": why})).collect::<Vec<_>>(),
            "changed_while_read": sm.changed_while_read.iter().map(|p| format::name(p)).collect::<Vec<_>>(),
        },
        "excludes": s.excludes,
        "hooks": s.hooks,
    })
}

/// Lists snapshots, oldest first.
pub fn run(cli: &Cli, args: &SnapshotsArgs) -> Result<u8> {
    let repo = super::open(cli)?;
    let all: Vec<_> = super::snapshots(&repo)?
        .into_iter()
        .filter(|(_, s)| args.label.as_ref().is_none_or(|l| &s.label == l))
        .collect();
    if cli.json {
        super::print_json(&all.iter().map(|(id, s)| to_json(id, s)).collect::<Vec<_>>())?;
        return Ok(0);
    }
    if all.is_empty() {
        println!("No snapshots yet. Take one with `coffre snapshot DIR`.");
        return Ok(0);
    }
    let rows: Vec<[String; 7]> = all
        .iter()
        .map(|(id, s)| {
            let sm = &s.summary;
            let mut status = String::new();
            if sm.skipped_count > 0 {
                status = format!("{} skipped", sm.skipped_count);
            }
            [
                id.short(),
                s.local().format("%Y-%m-%d %H:%M").to_string(),
                s.label.clone(),
                s.sources
                    .iter()
                    .map(|p| format::name(p))
                    .collect::<Vec<_>>()
                    .join(", "),
                (sm.files_new + sm.files_changed + sm.files_unchanged).to_string(),
                format::bytes(sm.total_size),
                if status.is_empty() {
                    format!("+{}", format::bytes(sm.bytes_stored))
                } else {
                    format!("+{} ({status})", format::bytes(sm.bytes_stored))
                },
            ]
        })
        .collect();
    let header = ["ID", "Date", "Label", "Source", "Files", "Size", "Added"].map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    println!("{} snapshot(s)", rows.len());
    Ok(0)
}
