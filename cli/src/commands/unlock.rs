//! `coffre unlock [--all]`: clear locks left by crashed processes.

use anyhow::Result;
use snapshots_format::repo::lock;

use crate::args::{Cli, UnlockArgs};

/// Removes stale locks (all with --all) and lists what remains.
pub fn run(cli: &Cli, args: &UnlockArgs) -> Result<u8> {
    let repo = super::open(cli)?;
    let removed = lock::unlock(&repo, args.all)?;
    let left = lock::holders(&repo)?;
    if cli.json {
        super::print_json(&serde_json::json!({
            "removed": removed.iter().map(|h| h.describe()).collect::<Vec<_>>(),
            "remaining": left.iter().map(|h| h.describe()).collect::<Vec<_>>(),
        }))?;
        return Ok(0);
    }
    for h in &removed {
        println!("Removed the lock of {}.", h.describe());
    }
    if removed.is_empty() {
        println!("No stale lock.");
    }
    for h in &left {
        println!(
            "Still held: {} (remove with --all only if that process is really gone).",
            h.describe()
        );
    }
    Ok(0)
}
