//! `coffre init`: create a repository: at -r / COFFRE_REPO, else on the
//! configured drive that is plugged in and new (or the one `--drive` names).

use anyhow::Result;
use snapshots_format::backend::Location;
use snapshots_format::format::keyfile::KdfParams;
use snapshots_format::Repository;

use crate::args::{Cli, InitArgs};
use crate::config::Purpose;

/// Creates the repository and prints where.
pub fn run(cli: &Cli, _args: &InitArgs) -> Result<u8> {
    let (location, drive): (Location, Option<String>) = match &cli.repo {
        Some(p) => (super::location_of(cli, p.as_os_str())?, None),
        None => {
            let c = crate::config::chosen(cli, Purpose::Init)?;
            (Location::Local(c.path), Some(c.name))
        }
    };
    // Refuse early, before asking for a passphrase twice.
    if let Location::Local(path) = &location {
        if path.join("config").exists() {
            return Err(snapshots_format::Error::AlreadyExists(path.clone()).into());
        }
    }
    let pass = crate::password::new(cli)?;
    let repo = Repository::init(&location, &pass, KdfParams::default())?;
    crate::journal::record(
        cli,
        &repo,
        snapshots_format::format::journal::EntryKind::Init,
        snapshots_format::format::journal::Outcome::Ok,
        format!("repository created at {location}"),
        serde_json::json!({ "location": location.to_string(), "drive": drive }),
    );
    if cli.json {
        super::print_json(&serde_json::json!({
            "repository": location.to_string(),
            "drive": drive,
            "format_version": repo.header().version,
        }))?;
    } else {
        let on = drive.map(|d| format!(" on drive {d}")).unwrap_or_default();
        println!(
            "Created repository {location}{on} (format version {}).",
            repo.header().version
        );
        println!(
            "Keep the passphrase safe: without it, nobody (not even us) can read the backups."
        );
    }
    Ok(0)
}
