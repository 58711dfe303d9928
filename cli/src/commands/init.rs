//! `coffre init`: create a repository.

use anyhow::Result;
use snapshots_format::format::keyfile::KdfParams;
use snapshots_format::Repository;

use crate::args::{Cli, InitArgs};

/// Creates the repository and prints where.
pub fn run(cli: &Cli, _args: &InitArgs) -> Result<u8> {
    let path = super::repo_path(cli)?;
    // Refuse early, before asking for a passphrase twice.
    if path.join("config").exists() {
        return Err(snapshots_format::Error::AlreadyExists(path.to_path_buf()).into());
    }
    let pass = crate::password::new(cli)?;
    let repo = Repository::init(path, &pass, KdfParams::default())?;
    if cli.json {
        super::print_json(&serde_json::json!({
            "repository": path,
            "format_version": repo.header().version,
        }))?;
    } else {
        println!(
            "Created repository {} (format version {}).",
            path.display(),
            repo.header().version
        );
        println!(
            "Keep the passphrase safe: without it, nobody (not even us) can read the backups."
        );
    }
    Ok(0)
}
