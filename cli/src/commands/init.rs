//! `coffre init`: create a repository: at -r / COFFRE_REPO, else on the
//! configured drive that is plugged in and new (or the one `--drive` names).

use std::path::PathBuf;

use anyhow::Result;
use snapshots_format::format::keyfile::KdfParams;
use snapshots_format::Repository;

use crate::args::{Cli, InitArgs};
use crate::config::Purpose;

/// Creates the repository and prints where.
pub fn run(cli: &Cli, _args: &InitArgs) -> Result<u8> {
    let (path, drive): (PathBuf, Option<String>) = match &cli.repo {
        Some(p) => (p.clone(), None),
        None => {
            let c = crate::config::chosen(cli, Purpose::Init)?;
            (c.path, Some(c.name))
        }
    };
    // Refuse early, before asking for a passphrase twice.
    if path.join("config").exists() {
        return Err(snapshots_format::Error::AlreadyExists(path).into());
    }
    let pass = crate::password::new(cli)?;
    let repo = Repository::init(&path, &pass, KdfParams::default())?;
    if cli.json {
        super::print_json(&serde_json::json!({
            "repository": path,
            "drive": drive,
            "format_version": repo.header().version,
        }))?;
    } else {
        let on = drive.map(|d| format!(" on drive {d}")).unwrap_or_default();
        println!(
            "Created repository {}{on} (format version {}).",
            path.display(),
            repo.header().version
        );
        println!(
            "Keep the passphrase safe: without it, nobody (not even us) can read the backups."
        );
    }
    Ok(0)
}
