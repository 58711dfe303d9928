//! `coffre prune [--dry-run] [--max-unused 5%]`.

use anyhow::Result;
use snapshots_format::format::journal::EntryKind;
use snapshots_format::ops::prune::{self, PruneOptions, PruneReport};
use snapshots_format::repo::lock::LockKind;

use crate::args::{Cli, PruneArgs};
use crate::format;
use crate::progress::Bar;

/// Prunes under the exclusive lock.
pub fn run(cli: &Cli, args: &PruneArgs) -> Result<u8> {
    let repo = super::open(cli)?;
    if args.dry_run {
        let report = run_on(cli, &repo, true, &args.max_unused)?;
        print(cli, &report, true)?;
        return Ok(0);
    }
    crate::journal::journaled(cli, &repo, EntryKind::Prune, |note| {
        let report = run_on(cli, &repo, false, &args.max_unused)?;
        *note = note_of(&report);
        print(cli, &report, false)?;
        Ok(0)
    })
}

/// What the journal says of a prune.
pub fn note_of(r: &PruneReport) -> crate::journal::Note {
    crate::journal::Note {
        summary: format!(
            "prune: {} freed, {} pack(s) deleted, {} repacked",
            format::bytes(r.bytes_freed),
            r.packs_deleted,
            r.packs_repacked
        ),
        details: serde_json::to_value(r).unwrap_or_default(),
    }
}

/// Prunes an open repository (also used by `forget --prune`).
pub fn run_on(
    cli: &Cli,
    repo: &snapshots_format::Repository,
    dry_run: bool,
    max_unused: &str,
) -> Result<PruneReport> {
    let opts = PruneOptions {
        dry_run,
        max_unused: super::parse_share(max_unused)?,
    };
    let _lock = super::lock(cli, repo, LockKind::Exclusive, "prune")?;
    for h in snapshots_format::repo::lock::holders(repo)?
        .iter()
        .filter(|h| h.kind == LockKind::Mount)
    {
        if !cli.json {
            eprintln!(
                "note: a mount is active ({}); folders of removed snapshots disappear from it within seconds",
                h.describe()
            );
        }
    }
    let bar = Bar::new(cli.json, "prune");
    // Test-only hooks (tests/prune.rs): stop dead at a phase, like kill -9,
    // or pause there so that another command meets the lock.
    let abort_at = std::env::var("COFFRE_TEST_PRUNE_ABORT").ok();
    let pause_at = std::env::var("COFFRE_TEST_PRUNE_PAUSE").ok();
    let report = prune::prune(repo, opts, &bar, &|phase| {
        if abort_at.as_deref() == Some(phase) {
            std::process::abort();
        }
        if pause_at.as_deref() == Some(phase) {
            std::thread::sleep(std::time::Duration::from_secs(4));
        }
    })?;
    bar.finish();
    Ok(report)
}

/// Prints a prune report.
pub fn print(cli: &Cli, r: &PruneReport, dry_run: bool) -> Result<()> {
    if cli.json {
        return super::print_json(&serde_json::json!({ "dry_run": dry_run, "prune": r }));
    }
    let verb = if dry_run { "Would free" } else { "Freed" };
    println!(
        "{verb} {} of {} ({} packs deleted, {} repacked into {}, {} leftover files removed; {} unused blobs).",
        format::bytes(r.bytes_freed),
        format::bytes(r.bytes_before),
        r.packs_deleted,
        r.packs_repacked,
        r.packs_written,
        r.unindexed_removed,
        r.blobs_removed
    );
    if r.packs_left_for_room > 0 {
        println!(
            "{} unused bytes stay in packs: {} pack(s) could not be repacked for lack of room on the drive.",
            format::bytes(r.bytes_unused_left),
            r.packs_left_for_room
        );
    } else if r.bytes_unused_left > 0 {
        println!(
            "{} unused bytes stay in packs below the repack threshold.",
            format::bytes(r.bytes_unused_left)
        );
    }
    Ok(())
}
