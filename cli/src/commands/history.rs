//! `coffre history PATH`: every version of a file or folder, one line per
//! snapshot holding it, with the periods it was missing.

use anyhow::Result;
use serde_json::json;
use snapshots_format::ops::compare::Change;
use snapshots_format::ops::history::{self, Event};
use snapshots_format::ops::paths::SnapshotRef;
use std::os::unix::ffi::OsStrExt;

use super::browse;
use crate::args::{Cli, HistoryArgs};
use crate::format;

/// Prints the history of one path.
pub fn run(cli: &Cli, args: &HistoryArgs) -> Result<u8> {
    let opened = browse::open(cli, args.label.as_deref())?;
    let h = history::history(&opened.browser, &opened.snapshots, args.path.as_bytes())?;
    if cli.json {
        let events: Vec<_> = h.events.iter().map(json_event).collect();
        let mut out = browse::json_path(&h.path);
        out.insert("snapshots_holding".into(), h.present.into());
        out.insert("versions".into(), h.versions.into());
        out.insert("events".into(), events.into());
        super::print_json(&out)?;
        return Ok(0);
    }
    println!(
        "{}: in {} of {} snapshots, {} version{}",
        format::name(&h.path),
        h.present,
        opened.snapshots.len(),
        h.versions,
        if h.versions == 1 { "" } else { "s" }
    );
    println!(
        "{:<12}  {:<19}  {:>10}  CHANGE",
        "SNAPSHOT", "DATE (LOCAL)", "SIZE"
    );
    let mut last_present = None;
    for event in &h.events {
        match event {
            Event::Present {
                snapshot,
                node,
                change,
            } => {
                println!(
                    "{:<12}  {:<19}  {:>10}  {}",
                    snapshot.id.short(),
                    format::local_time(snapshot.time),
                    format::bytes(node.size),
                    describe(*change)
                );
                last_present = Some(snapshot.id);
            }
            Event::Absent {
                first,
                last,
                count,
                came_back,
            } => println!(
                "{:<12}  {}",
                "",
                absent_text(first, last, *count, *came_back)
            ),
        }
    }
    if let Some(id) = last_present {
        println!(
            "\nGet a version back: coffre dump {} '{}' > copy, or coffre restore {} TARGET --path '{}'",
            id.short(),
            format::name(&h.path),
            id.short(),
            format::name(&h.path)
        );
    }
    Ok(0)
}

/// What changed, in words.
fn describe(change: Option<Change>) -> &'static str {
    match change {
        None => "first seen",
        Some(Change::Unchanged) => "unchanged",
        Some(Change::Content) => "CHANGED",
        Some(Change::Metadata) => "same contents, other mode, owner or date",
        Some(Change::Type) => "CHANGED type",
    }
}

fn absent_text(first: &SnapshotRef, last: &SnapshotRef, count: usize, came_back: bool) -> String {
    let s = if count == 1 { "" } else { "s" };
    let from = format::local_time(first.time);
    if came_back && count == 1 {
        format!("-- absent on {from} (1 snapshot)")
    } else if came_back {
        format!(
            "-- absent from {from} to {} ({count} snapshot{s})",
            format::local_time(last.time)
        )
    } else {
        format!("-- absent since {from} ({count} snapshot{s}, up to the newest)")
    }
}

fn json_event(event: &Event) -> serde_json::Value {
    match event {
        Event::Present {
            snapshot,
            node,
            change,
        } => json!({
            "snapshot": snapshot.id.to_hex(),
            "time": format::local_time(snapshot.time),
            "type": browse::kind(node),
            "size": node.size,
            "mode": format!("{:o}", node.mode),
            "mtime": format::local_time(node.mtime),
            "change": change.map_or(json!("first"), |c| json!(c)),
        }),
        Event::Absent {
            first,
            last,
            count,
            came_back,
        } => json!({
            "absent": {
                "from": first.id.to_hex(),
                "from_time": format::local_time(first.time),
                "to": last.id.to_hex(),
                "to_time": format::local_time(last.time),
                "snapshots": count,
                "came_back": came_back,
            }
        }),
    }
}
