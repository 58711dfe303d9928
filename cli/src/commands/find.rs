//! `coffre find PATTERN`: which snapshots hold matching files or folders,
//! one entry per path (first and last snapshot holding it): the question
//! at the counter is "which backup still has this prescription?".

use anyhow::Result;
use serde_json::json;
use snapshots_format::ops::find::{self, Pattern};

use super::browse;
use crate::args::{Cli, FindArgs};
use crate::format;

/// Prints the paths matching the pattern.
pub fn run(cli: &Cli, args: &FindArgs) -> Result<u8> {
    let pattern = Pattern::new(&args.pattern, !args.case_sensitive)?;
    let mut opened = browse::open(cli, args.label.as_deref())?;
    if let Some(since) = &args.since {
        let from = browse::moment(since, false)?;
        opened.snapshots.retain(|(_, s)| s.time >= from);
    }
    if let Some(until) = &args.until {
        let to = browse::moment(until, true)?;
        opened.snapshots.retain(|(_, s)| s.time < to);
    }
    let searched = opened.snapshots.len();
    let found = find::find(&opened.browser, &opened.snapshots, &pattern)?;
    if cli.json {
        let items: Vec<_> = found
            .iter()
            .map(|f| {
                let mut item = browse::json_path(&f.path);
                let more = json!({
                    "type": browse::kind(&f.node),
                    "size": f.node.size,
                    "first_snapshot": f.first.id.to_hex(),
                    "first_time": format::local_time(f.first.time),
                    "last_snapshot": f.last.id.to_hex(),
                    "last_time": format::local_time(f.last.time),
                    "snapshots": f.snapshots,
                    "versions": f.versions,
                    "in_newest": f.in_newest,
                });
                if let serde_json::Value::Object(more) = more {
                    item.extend(more);
                }
                item
            })
            .collect();
        super::print_json(&json!({ "snapshots_searched": searched, "found": items }))?;
        return Ok(if found.is_empty() {
            crate::EXIT_ERROR
        } else {
            0
        });
    }
    for f in &found {
        let dir = if f.node.kind == snapshots_format::format::tree::NodeKind::Dir {
            "/"
        } else {
            ""
        };
        println!(
            "{}{dir}  ({})",
            format::name(&f.path),
            format::bytes(f.node.size)
        );
        let versions = if f.versions == 1 {
            String::new()
        } else {
            format!(", {} versions", f.versions)
        };
        let span = if f.first.id == f.last.id {
            format!(
                "only in {} ({})",
                f.last.id.short(),
                format::local_time(f.last.time)
            )
        } else {
            format!(
                "from {} ({}) to {} ({})",
                f.first.id.short(),
                format::local_time(f.first.time),
                f.last.id.short(),
                format::local_time(f.last.time)
            )
        };
        let newest = if f.in_newest {
            "; in the newest snapshot"
        } else {
            "; gone from the newest snapshot"
        };
        println!(
            "    {} snapshot{} {span}{versions}{newest}",
            f.snapshots,
            if f.snapshots == 1 { "" } else { "s" }
        );
    }
    println!(
        "{} path{} found in {searched} snapshot{} searched.",
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        if searched == 1 { "" } else { "s" }
    );
    match found.first() {
        Some(f) => {
            println!(
                "Every version of one: coffre history '{}'",
                format::name(&f.path)
            );
            Ok(0)
        }
        // Like grep: scripts can test whether anything matched.
        None => Ok(crate::EXIT_ERROR),
    }
}
