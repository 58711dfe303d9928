//! `coffre check [--read-data]`.

use anyhow::Result;
use snapshots_format::ops::check::{self, CheckOptions};

use snapshots_format::format::journal::EntryKind;
use snapshots_format::Repository;

use crate::args::{CheckArgs, Cli};
use crate::format;
use crate::journal::Note;
use crate::progress::Bar;

/// Checks; exit 1 on any damage.
pub fn run(cli: &Cli, args: &CheckArgs) -> Result<u8> {
    let repo = super::open(cli)?;
    crate::journal::journaled(cli, &repo, EntryKind::Check, |note| {
        check_on(cli, args, &repo, note)
    })
}

fn check_on(cli: &Cli, args: &CheckArgs, repo: &Repository, note: &mut Note) -> Result<u8> {
    let _lock = super::lock(
        cli,
        repo,
        snapshots_format::repo::lock::LockKind::Shared,
        "check",
    )?;
    let bar = Bar::new(cli.json, "check");
    let report = check::check(
        repo,
        CheckOptions {
            read_data: args.read_data,
        },
        &bar,
    )?;
    bar.finish();
    // The journal is part of the proof: a removed or replaced entry is damage.
    let mut report = report;
    match repo.journal() {
        Ok(j) => report.errors.extend(j.problems),
        Err(e) => report
            .errors
            .push(format!("the journal cannot be read: {e}")),
    }
    note.summary = format!(
        "check{}: {} snapshot(s), {} pack(s), {} error(s)",
        if args.read_data { " --read-data" } else { "" },
        report.snapshots,
        report.packs,
        report.errors.len()
    );
    note.details = serde_json::json!({
        "read_data": args.read_data,
        "snapshots": report.snapshots,
        "packs": report.packs,
        "bytes_read": report.bytes_read,
        "errors": report.errors,
    });
    if cli.json {
        super::print_json(
            &serde_json::json!({ "ok": report.is_ok(), "read_data": args.read_data, "report": report }),
        )?;
    } else {
        println!(
            "Checked {} snapshot(s), {} folders, {} blobs, {} packs{}.",
            report.snapshots,
            report.trees,
            report.blobs,
            report.packs,
            if args.read_data {
                format!(", read {}", format::bytes(report.bytes_read))
            } else {
                String::new()
            }
        );
        for w in &report.warnings {
            println!("warning: {w}");
        }
    }
    if report.is_ok() {
        if !cli.json {
            println!("No problem found.");
        }
        return Ok(0);
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    if !report.damaged_files.is_empty() {
        eprintln!("Damaged files (cannot be restored from these snapshots):");
        for d in &report.damaged_files {
            eprintln!(
                "    snapshot {} ({}): {} ({})",
                d.snapshot, d.time, d.path, d.reason
            );
        }
    }
    eprintln!("The repository is damaged. Other files restore normally; take a new snapshot soon, and restore damaged files from another drive if you have one.");
    Ok(crate::EXIT_ERROR)
}
