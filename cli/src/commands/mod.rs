//! One module per subcommand; `run` dispatches.

mod check;
mod init;
mod ls;
mod mount;
mod rebuild_index;
mod restore;
mod snapshot;
mod snapshots;
mod umount;

use anyhow::{Context, Result};
use snapshots_format::Repository;

use crate::args::{Cli, Command};

/// Runs the command and returns the exit code.
pub fn run(cli: &Cli) -> Result<u8> {
    match &cli.command {
        Command::Init(a) => init::run(cli, a),
        Command::Snapshot(a) => snapshot::run(cli, a),
        Command::Snapshots(a) => snapshots::run(cli, a),
        Command::Ls(a) => ls::run(cli, a),
        Command::Restore(a) => restore::run(cli, a),
        Command::Check(a) => check::run(cli, a),
        Command::RebuildIndex => rebuild_index::run(cli),
        Command::Mount(a) => mount::run(cli, a),
        Command::Umount(a) => umount::run(a),
    }
}

/// The repository path from -r / COFFRE_REPO.
pub fn repo_path(cli: &Cli) -> Result<&std::path::Path> {
    cli.repo
        .as_deref()
        .context("no repository given: use -r/--repo PATH or set COFFRE_REPO")
}

/// Opens the repository named on the command line.
pub fn open(cli: &Cli) -> Result<Repository> {
    let path = repo_path(cli)?;
    // Read the header before asking for a passphrase: a missing drive or a
    // wrong path is reported without a useless prompt.
    Repository::read_header(path)?;
    let pass = crate::password::get(cli)?;
    Ok(Repository::open(path, &pass)?)
}

/// Every readable snapshot, oldest first; damaged records are reported on
/// stderr and left out, so one bad record does not hide the others.
pub fn snapshots(
    repo: &Repository,
) -> Result<
    Vec<(
        snapshots_format::SnapshotId,
        snapshots_format::snapshot::Snapshot,
    )>,
> {
    let (all, errors) = repo.snapshots()?;
    for e in errors {
        eprintln!("warning: {e}; run `coffre check`");
    }
    Ok(all)
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
