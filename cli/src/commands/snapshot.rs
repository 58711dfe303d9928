//! `coffre snapshot DIR`: take a snapshot, show progress, print the summary.

use anyhow::Result;
use snapshots_format::ops::backup::{self, SnapshotOptions};
use snapshots_format::progress::Progress;

use crate::args::{Cli, SnapshotArgs};
use crate::format;
use crate::progress::Bar;

/// Takes the snapshot; exit code 3 when some files could not be read.
pub fn run(cli: &Cli, args: &SnapshotArgs) -> Result<u8> {
    if !args.source.is_dir() {
        anyhow::bail!(
            "the folder to back up, {}, does not exist or is not a folder. Check the path (is the data disk mounted?)",
            args.source.display()
        );
    }
    let repo = super::open(cli)?;
    let _lock = super::lock(
        cli,
        &repo,
        snapshots_format::repo::lock::LockKind::Shared,
        "snapshot",
    )?;
    let bar = Bar::new(cli.json, "snapshot");
    let fake = std::env::var_os("COFFRE_FAKE_NOW").is_some();
    let opts = SnapshotOptions {
        source: args.source.clone(),
        label: args.label.clone(),
        tags: args.tags.clone(),
        time: if fake { Some(super::now()?) } else { None },
    };
    let (id, snap) = std::thread::scope(|s| {
        // Counting the source runs beside the snapshot so that the bar gets
        // a total (and an ETA) without delaying the start; a scheduled run
        // draws nothing and does not pay for a second walk.
        if bar.shown() {
            s.spawn(|| {
                let (files, bytes) = backup::estimate(&args.source);
                bar.set_total(files, bytes);
            });
        }
        backup::take_snapshot(&repo, &opts, &bar)
    })?;
    bar.finish();
    let sm = &snap.summary;
    if cli.json {
        super::print_json(&super::snapshots::to_json(&id, &snap))?;
    } else {
        println!(
            "Snapshot {} saved ({}, label {}).",
            id.short(),
            snap.local().format("%Y-%m-%d %H:%M:%S"),
            snap.label
        );
        println!(
            "  files: {} new, {} changed, {} unchanged",
            sm.files_new, sm.files_changed, sm.files_unchanged
        );
        println!(
            "  dirs:  {} new, {} changed, {} unchanged",
            sm.dirs_new, sm.dirs_changed, sm.dirs_unchanged
        );
        println!(
            "  read {}, added {} ({} on the drive after compression), in {:.1} s",
            format::bytes(sm.bytes_read),
            format::bytes(sm.bytes_added),
            format::bytes(sm.bytes_stored),
            sm.duration_ms as f64 / 1000.0
        );
        if !sm.changed_while_read.is_empty() {
            println!("  {} file(s) changed while being read (saved as read; the next snapshot will take them again):", sm.changed_while_read.len());
            for p in &sm.changed_while_read {
                println!("    {}", format::name(p));
            }
        }
    }
    if sm.skipped_count > 0 {
        eprintln!(
            "warning: {} item(s) could not be read and are missing from this snapshot:",
            sm.skipped_count
        );
        for (p, why) in &sm.skipped {
            eprintln!("    {}: {why}", format::name(p));
        }
        eprintln!("Check the permissions of these files (or run the snapshot as root).");
        return Ok(crate::EXIT_PARTIAL);
    }
    Ok(0)
}
