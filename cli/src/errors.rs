//! Turning an error into what the user reads: what went wrong, then what to do.

use snapshots_format::Error;

use crate::args::Cli;

/// Prints `err` on stderr (and as JSON on stdout with --json).
pub fn report(err: &anyhow::Error, cli: &Cli) {
    let message = explain(err);
    if cli.json {
        println!("{}", serde_json::json!({ "error": message }));
    }
    eprintln!("error: {message}");
}

fn explain(err: &anyhow::Error) -> String {
    let Some(lib) = err.chain().find_map(|e| e.downcast_ref::<Error>()) else {
        return format!("{err:#}");
    };
    let context: Vec<String> = err
        .chain()
        .take_while(|e| e.downcast_ref::<Error>().is_none())
        .map(|e| e.to_string())
        .collect();
    let prefix = if context.is_empty() {
        String::new()
    } else {
        format!("{}: ", context.join(": "))
    };
    let hint = match lib {
        Error::WrongPassphrase => "Check the passphrase (prompt, COFFRE_PASSWORD or the passphrase file; for copy's target, COFFRE_TO_PASSWORD or --to-password-file) and try again.",
        Error::NotARepository(_) => "Check -r/--repo (or COFFRE_REPO; an S3 repository is s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]), or create a repository with `coffre init`.",
        Error::RepositoryMissing(_) => "Is the backup drive plugged in and mounted? Check -r/--repo (or COFFRE_REPO).",
        Error::AlreadyExists(_) => "init needs a new or empty directory; to use the existing repository, just run other commands on it.",
        Error::UnsupportedVersion { .. } => "Install a newer Coffre to use this repository; nothing was changed.",
        Error::DriveFull { .. } => "The backup drive is full. Earlier snapshots are intact. Free space (forget old snapshots, then prune) or use a larger drive.",
        Error::Corrupt { .. } | Error::BlobNotFound(_) => "Run `coffre check --read-data` to see what is damaged; copy from another backup drive if you have one.",
        Error::SnapshotNotFound(_) => "List snapshots with `coffre snapshots`; name one by id, `latest`, or a date YYYY-MM-DD.",
        Error::AmbiguousSnapshot(_) => "Give more characters of the id (see `coffre snapshots`).",
        Error::PathNotFound(_) => "List the snapshot's files with `coffre ls`.",
        Error::PathInNoSnapshot(_) | Error::BadPath { .. } => "Give the path from the snapshot's root, as `coffre ls latest` shows it (e.g. db/officine.fdb).",
        Error::DictionaryUnusable { .. } => "Copy the file `dictionary` back from another drive of this repository (`coffre copy` makes it identical), then run `coffre check --read-data`.",
        Error::BadPattern { .. } => "Fix the pattern (see `coffre find --help`).",
        Error::Source { .. } => "Check that the folder to back up exists and is readable.",
        Error::BadExclude { .. } => "Fix the pattern (see `coffre snapshot --help`); nothing was written.",
        Error::CommandFailed { .. } => "No snapshot was written. Run the command by hand to see why it fails, then try again.",
        Error::Index(_) => "The index database may be damaged: run `coffre rebuild-index`.",
        Error::Io { source, .. } if source.raw_os_error() == Some(libc::EIO) => {
            "An input/output error: the drive may be failing or was unplugged. Check the drive and run `coffre check`."
        }
        Error::Io { source, .. } if source.raw_os_error() == Some(libc::EACCES) => "Permission denied: run as a user that can access the repository.",
        Error::Io { source, .. } if source.raw_os_error() == Some(libc::EROFS) => {
            "The backup drive has become read-only (the system does that after a drive error). Earlier snapshots are intact. Unmount it, check it (fsck), plug it in again and rerun the command."
        }
        Error::Locked(_) => "Try again when it has finished (or give a longer --lock-wait). If that process crashed on another machine, run `coffre unlock --all`.",
        Error::Tampered { .. } => "Nothing was followed or deleted there. Check the drive on a trusted machine, or use another drive; `coffre check` tells what else is wrong.",
        // The store's own messages already say what to do.
        Error::Transient(_) | Error::Refused(_) | Error::CopyUnverified { .. } | Error::Store { .. } => "",
        Error::Cache { .. } => "Give a folder this user can write with --cache-dir (or COFFRE_CACHE_DIR); the cache is rebuilt from the repository.",
        Error::Io { .. } | Error::Restore(_) | Error::Interrupted => "",
    };
    if hint.is_empty() {
        format!("{prefix}{lib}")
    } else {
        format!("{prefix}{lib}. {hint}")
    }
}
