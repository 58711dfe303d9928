//! `coffre restore SNAPSHOT TARGET`: copy files back.

use anyhow::Result;
use snapshots_format::format::journal::EntryKind;
use snapshots_format::format::snapshot;
use snapshots_format::ops::restore::{self, RestoreOptions};

use crate::args::{Cli, RestoreArgs};
use crate::format;
use crate::progress::Bar;

/// Restores; exit 1 if any entry could not be restored.
pub fn run(cli: &Cli, args: &RestoreArgs) -> Result<u8> {
    let repo = super::open(cli)?;
    crate::journal::journaled(cli, &repo, EntryKind::Restore, |note| {
        restore_on(cli, args, &repo, note)
    })
}

fn restore_on(
    cli: &Cli,
    args: &RestoreArgs,
    repo: &snapshots_format::Repository,
    note: &mut crate::journal::Note,
) -> Result<u8> {
    let all = super::snapshots(repo)?;
    let (id, snap) = snapshot::resolve(&all, &args.snapshot)?;
    let bar = Bar::new(cli.json, "restore");
    let opts = RestoreOptions {
        target: args.target.clone(),
        path: args.path.as_ref().map(|p| p.as_bytes().to_vec()),
        overwrite: args.overwrite,
    };
    note.summary = format!(
        "restore of snapshot {} into {}",
        id.short(),
        args.target.display()
    );
    let summary = restore::restore(repo, snap, &opts, &bar)?;
    bar.finish();
    note.summary = format!(
        "restore of snapshot {} ({}) into {}: {} files, {}, {} error(s)",
        id.short(),
        snap.local().format("%Y-%m-%d %H:%M"),
        args.target.display(),
        summary.files,
        format::bytes(summary.bytes),
        summary.errors.len()
    );
    note.details = serde_json::json!({
        "snapshot": id.to_hex(),
        "target": args.target,
        "path": args.path,
        "summary": summary,
    });
    if cli.json {
        super::print_json(
            &serde_json::json!({ "snapshot": id.to_hex(), "target": args.target, "summary": summary }),
        )?;
    } else {
        println!(
            "Restored snapshot {} ({}) into {}: {} files, {} folders, {} other, {}.",
            id.short(),
            snap.local().format("%Y-%m-%d %H:%M"),
            args.target.display(),
            summary.files,
            summary.dirs,
            summary.others,
            format::bytes(summary.bytes)
        );
    }
    if !summary.errors.is_empty() {
        eprintln!(
            "error: {} item(s) could not be restored:",
            summary.errors.len()
        );
        for e in &summary.errors {
            eprintln!("    {e}");
        }
        return Ok(crate::EXIT_ERROR);
    }
    Ok(0)
}
