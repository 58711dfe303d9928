//! `coffre diff OLD NEW [--path P]`: what changed between two snapshots.

use anyhow::Result;
use serde_json::json;
use snapshots_format::format::snapshot;
use snapshots_format::format::tree::Node;
use snapshots_format::ops::diff::{self, Entry, Kind};
use std::os::unix::ffi::OsStrExt;

use super::browse;
use crate::args::{Cli, DiffArgs};
use crate::format;

/// Prints the differences, then their counts.
pub fn run(cli: &Cli, args: &DiffArgs) -> Result<u8> {
    let opened = browse::open(cli, None)?;
    let (old_id, old) = snapshot::resolve(&opened.snapshots, &args.old)?;
    let (new_id, new) = snapshot::resolve(&opened.snapshots, &args.new)?;
    let path = args.path.as_ref().map_or(&[][..], |p| p.as_bytes());
    let d = diff::diff(&opened.browser, &old.tree, &new.tree, path)?;
    if cli.json {
        let entries: Vec<_> = d.entries.iter().map(json_entry).collect();
        super::print_json(&json!({
            "old": old_id.to_hex(),
            "new": new_id.to_hex(),
            "counts": d.counts,
            "entries": entries,
        }))?;
        return Ok(0);
    }
    println!(
        "From {} ({}) to {} ({}):",
        old_id.short(),
        old.local().format("%Y-%m-%d %H:%M"),
        new_id.short(),
        new.local().format("%Y-%m-%d %H:%M")
    );
    for e in &d.entries {
        let detail = match (e.kind, &e.old, &e.new) {
            (Kind::Metadata, Some(a), Some(b)) => format!("  ({})", metadata_change(a, b)),
            (Kind::Changed, Some(a), Some(b)) if a.size != b.size => {
                format!("  ({} -> {})", format::bytes(a.size), format::bytes(b.size))
            }
            _ => String::new(),
        };
        println!("{} {}{detail}", e.kind.mark(), format::name(&e.path));
    }
    let c = d.counts;
    println!(
        "{} added (+), {} removed (-), {} changed (M), {} metadata only (m), {} type changed (T).",
        c.added, c.removed, c.changed, c.metadata, c.type_changed
    );
    Ok(0)
}

/// Which metadata differ, in words.
fn metadata_change(a: &Node, b: &Node) -> String {
    let mut what = Vec::new();
    if a.mode != b.mode {
        what.push(format!("mode {:04o} -> {:04o}", a.mode, b.mode));
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        what.push(format!("owner {}:{} -> {}:{}", a.uid, a.gid, b.uid, b.gid));
    }
    if a.mtime != b.mtime {
        what.push(format!(
            "modified {} -> {}",
            format::local_time(a.mtime),
            format::local_time(b.mtime)
        ));
    }
    if a.xattrs != b.xattrs {
        what.push("extended attributes".into());
    }
    what.join(", ")
}

fn json_entry(e: &Entry) -> serde_json::Value {
    let side = |n: &Option<Node>| {
        n.as_ref().map(|n| {
            json!({
                "type": browse::kind(n),
                "size": n.size,
                "mode": format!("{:o}", n.mode),
                "uid": n.uid,
                "gid": n.gid,
                "mtime": format::local_time(n.mtime),
            })
        })
    };
    let mut item = browse::json_path(&e.path);
    item.insert("change".into(), json!(e.kind));
    item.insert("mark".into(), e.kind.mark().to_string().into());
    item.insert("old".into(), json!(side(&e.old)));
    item.insert("new".into(), json!(side(&e.new)));
    item.into()
}
