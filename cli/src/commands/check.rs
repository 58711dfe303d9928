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
    let subset = match &args.read_data_subset {
        None => None,
        Some(s) => {
            let parts = parts_of(s)?;
            Some((next_part(repo, parts), parts))
        }
    };
    let bar = Bar::new(cli.json, "check");
    let report = check::check(
        repo,
        CheckOptions {
            read_data: args.read_data,
            subset,
        },
        &bar,
    )?;
    bar.finish();
    // The journal is part of the proof: a removed or replaced entry is damage.
    let mut report = report;
    let mut seals = 0;
    match repo.journal() {
        Ok(j) => {
            seals = j.seals_recorded();
            if seals >= snapshots_format::crypto::SEAL_BUDGET / 2 {
                report.warnings.push(format!(
                    "{seals} objects have been sealed under this repository's key, half of what AES-GCM allows one key: start a new repository (coffre init) and copy into it (coffre copy); see FORMAT.md §11.3"
                ));
            }
            report.errors.extend(j.problems)
        }
        Err(e) => report
            .errors
            .push(format!("the journal cannot be read: {e}")),
    }
    let what = match subset {
        Some((p, t)) => format!(" --read-data-subset (part {} of {t})", p + 1),
        None if args.read_data => " --read-data".to_owned(),
        None => String::new(),
    };
    note.summary = format!(
        "check{what}: {} snapshot(s), {} pack(s), {} error(s)",
        report.snapshots,
        report.packs,
        report.errors.len()
    );
    note.details = serde_json::json!({
        "read_data": args.read_data,
        "subset": subset.map(|(part, of)| serde_json::json!({"part": part, "of": of})),
        "packs_read": report.packs_read,
        "snapshots": report.snapshots,
        "packs": report.packs,
        "bytes_read": report.bytes_read,
        "errors": report.errors,
    });
    if cli.json {
        super::print_json(&serde_json::json!({
            "ok": report.is_ok(),
            "read_data": args.read_data,
            "seals_recorded": seals,
            "report": report,
        }))?;
    } else {
        println!(
            "Checked {} snapshot(s), {} folders, {} blobs, {} packs{}.",
            report.snapshots,
            report.trees,
            report.blobs,
            report.packs,
            if args.read_data || subset.is_some() {
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

/// `1/7` → 7 parts; `15%` → 7 parts (the share rounded to a whole number
/// of runs).
fn parts_of(s: &str) -> Result<u64> {
    let bad = || {
        anyhow::anyhow!("--read-data-subset {s:?}: give 1/T (e.g. 1/7) or a percentage (e.g. 15%)")
    };
    let parts = if let Some(p) = s.strip_suffix('%') {
        let p: f64 = p.trim().parse().map_err(|_| bad())?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(bad());
        }
        (100.0 / p).round().max(1.0) as u64
    } else {
        let (one, t) = s.split_once('/').ok_or_else(bad)?;
        if one.trim() != "1" {
            anyhow::bail!(
                "--read-data-subset {s:?}: give 1/T; Coffre picks which part each run reads"
            );
        }
        t.trim().parse::<u64>().map_err(|_| bad())?
    };
    if parts == 0 || parts > 1000 {
        return Err(bad());
    }
    Ok(parts)
}

/// The part after the one the last subset check of `parts` parts read
/// (from the journal), or the first.
fn next_part(repo: &Repository, parts: u64) -> u64 {
    let Ok(journal) = repo.journal() else {
        return 0;
    };
    journal
        .entries
        .iter()
        .rev()
        .filter(|(_, e)| e.kind == EntryKind::Check)
        .find_map(|(_, e)| {
            let s = &e.details["subset"];
            (s["of"].as_u64() == Some(parts)).then(|| s["part"].as_u64().unwrap_or(0))
        })
        .map_or(0, |last| (last + 1) % parts)
}
