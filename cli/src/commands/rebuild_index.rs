//! `coffre rebuild-index`: recreate the index from the packs.

use anyhow::Result;
use snapshots_format::ops::rebuild;
use snapshots_format::Repository;

use crate::args::Cli;
use crate::progress::Bar;

/// Rebuilds; exit 1 if some pack could not be read.
pub fn run(cli: &Cli) -> Result<u8> {
    let path = &super::repo_location(cli)?;
    Repository::read_header(path)?;
    let pass = crate::password::get(cli)?;
    // Lock before replacing the index: nobody may read or add meanwhile.
    let repo = Repository::open(path, &pass)
        .or_else(|_| Repository::open_with_fresh_index(path, &pass))?;
    let lock = super::lock(
        cli,
        &repo,
        snapshots_format::repo::lock::LockKind::Exclusive,
        "rebuild-index",
    )?;
    drop(repo);
    let repo = Repository::open_with_fresh_index(path, &pass)?;
    let bar = Bar::new(cli.json, "rebuild-index");
    let report = rebuild::rebuild_index(&repo, &bar)?;
    bar.finish();
    drop(lock);
    if cli.json {
        super::print_json(&report)?;
    } else {
        println!(
            "Index rebuilt: {} packs, {} blobs.",
            report.packs, report.blobs
        );
    }
    if !report.unreadable.is_empty() {
        eprintln!(
            "{} pack(s) could not be read and were left out (run `coffre check --read-data`).",
            report.unreadable.len()
        );
        return Ok(crate::EXIT_ERROR);
    }
    Ok(0)
}
