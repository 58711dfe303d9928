//! `coffre copy --to TARGET [SNAPSHOT...] [--since ...]`: copy snapshots
//! into another repository, creating it when it is empty or absent.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use snapshots_format::backend::{Location, MemBackend};
use snapshots_format::format::keyfile::KdfParams;
use snapshots_format::format::snapshot::{self, Snapshot};
use snapshots_format::ops::copy::{self, CopyOptions, CopyReport};
use snapshots_format::repo::default_cache_dir;
use snapshots_format::repo::lock::LockKind;
use snapshots_format::{Error, Repository, SnapshotId};

use crate::args::{Cli, CopyArgs};
use crate::format;
use crate::progress::Bar;

/// Copies, under a shared lock on both repositories.
pub fn run(cli: &Cli, args: &CopyArgs) -> Result<u8> {
    let source = super::open(cli)?;
    let _source_lock = super::lock(cli, &source, LockKind::Shared, "copy")?;
    let all = super::snapshots(&source)?;
    let chosen = select(&all, args)?;
    let to = super::location_of(cli, args.to.as_os_str())?;
    let (target, created) = open_target(&source, &to, args)?;
    let _target_lock = match &target {
        Target::Real(repo) => Some(super::lock(cli, repo, LockKind::Shared, "copy")?),
        Target::DryRun(..) => None,
    };
    if let Target::Real(repo) = &target {
        super::adopt_leftovers(cli, repo, "an interrupted copy in the target")?;
    }
    let bar = Bar::counting(cli.json, "copy", "snapshots");
    let opts = CopyOptions {
        snapshots: chosen,
        dry_run: args.dry_run,
    };
    let result = copy::copy(&source, target.repo(), &opts, &bar);
    bar.finish();
    if let Target::Real(target_repo) = &target {
        journal_copy(cli, &source, target_repo, &to, &result);
    }
    drop(target);
    let report = result.with_context(|| format!("copying into {to}"))?;
    if cli.json {
        super::print_json(&serde_json::json!({
            "target": to.to_string(),
            "created": created,
            "report": report,
        }))?;
    } else {
        print(&report, &to, created);
    }
    Ok(0)
}

/// Records the copy in both journals: sent from one, received by the other.
fn journal_copy(
    cli: &Cli,
    source: &Repository,
    target: &Repository,
    to: &Location,
    result: &snapshots_format::Result<CopyReport>,
) {
    use snapshots_format::format::journal::{EntryKind, Outcome};
    let from = source.backend().location();
    let (outcome, what, details) = match result {
        Ok(r) => (
            Outcome::Ok,
            format!(
                "{} snapshot(s), {}",
                r.copied.len(),
                crate::format::bytes(r.bytes_sent)
            ),
            serde_json::to_value(r).unwrap_or_default(),
        ),
        Err(e) => (
            Outcome::Failed,
            format!("failed: {e}"),
            serde_json::Value::Null,
        ),
    };
    crate::journal::record(
        cli,
        source,
        EntryKind::CopyOut,
        outcome,
        format!("copy to {to}: {what}"),
        serde_json::json!({ "to": to.to_string(), "report": details }),
    );
    crate::journal::record(
        cli,
        target,
        EntryKind::CopyIn,
        outcome,
        format!("copy from {from}: {what}"),
        serde_json::json!({ "from": from, "report": details }),
    );
}

/// The snapshots named (all by default), within `--label` and `--since`.
fn select(all: &[(SnapshotId, Snapshot)], args: &CopyArgs) -> Result<Vec<SnapshotId>> {
    let in_scope: Vec<_> = all
        .iter()
        .filter(|(_, s)| args.label.as_ref().is_none_or(|l| &s.label == l))
        .cloned()
        .collect();
    let mut chosen: Vec<&(SnapshotId, Snapshot)> = if args.snapshots.is_empty() {
        in_scope.iter().collect()
    } else {
        args.snapshots
            .iter()
            .map(|spec| snapshot::resolve(&in_scope, spec))
            .collect::<Result<_, _>>()?
    };
    if let Some(since) = &args.since {
        let from = since_time(since)?;
        chosen.retain(|(_, s)| s.time.sec >= from);
    }
    Ok(chosen.into_iter().map(|(id, _)| *id).collect())
}

/// `--since`: a duration back from now, or a local date (its midnight),
/// as Unix seconds.
pub fn since_time(since: &str) -> Result<i64> {
    if let Ok(day) = chrono::NaiveDate::parse_from_str(since, "%Y-%m-%d") {
        let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        return chrono::TimeZone::from_local_datetime(&chrono::Local, &midnight)
            .earliest()
            .map(|t| t.timestamp())
            .with_context(|| format!("--since {since}: no such local time"));
    }
    let back = super::parse_duration(since).with_context(|| {
        format!("--since {since:?}: give a duration (7d, 2w) or a date (YYYY-MM-DD)")
    })?;
    Ok(super::now()?.sec - i64::try_from(back.as_secs()).unwrap_or(i64::MAX))
}

/// The repository copied into.
enum Target {
    /// On the drive.
    Real(Repository),
    /// A dry run into a target that does not exist yet: an empty one in
    /// memory with the keys it would get, and its cache folder to remove.
    DryRun(Repository, std::path::PathBuf),
}

impl Target {
    fn repo(&self) -> &Repository {
        match self {
            Target::Real(r) | Target::DryRun(r, _) => r,
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Target::DryRun(_, cache) = self {
            // Best effort: only an empty index cache.
            let _ = std::fs::remove_dir_all(cache);
        }
    }
}

/// Opens the target, or creates it (with the source's keys) when it is
/// empty or absent; says whether it was created.
fn open_target(source: &Repository, to: &Location, args: &CopyArgs) -> Result<(Target, bool)> {
    let cache = default_cache_dir()?;
    match Repository::read_header(to) {
        Ok(_) => {
            let pass = crate::password::target(args.to_password_file.as_deref(), false)?;
            let repo =
                Repository::open(to, &pass).with_context(|| format!("opening the target {to}"))?;
            Ok((Target::Real(repo), false))
        }
        Err(Error::RepositoryMissing(_) | Error::NotARepository(_)) if args.dry_run => {
            let dir = cache.join(format!("copy-dry-run-{}", std::process::id()));
            let repo = copy::init_target(
                source,
                Arc::new(MemBackend::new()),
                &dir,
                b"dry run",
                KdfParams::default(),
            )?;
            Ok((Target::DryRun(repo, dir), false))
        }
        Err(Error::RepositoryMissing(_) | Error::NotARepository(_)) => {
            if let Some(path) = to.local_path() {
                refuse_foreign(path)?;
            }
            let pass = crate::password::target(args.to_password_file.as_deref(), true)?;
            let backend = to.open_for_init()?;
            let repo = copy::init_target(source, backend, &cache, &pass, KdfParams::default())
                .map_err(|e| match e {
                    Error::AlreadyExists(_) => anyhow::anyhow!(
                        "{to} is neither empty nor a Coffre repository: give an empty place (if a copy was stopped while creating it, remove what it left there and run the copy again)"
                    ),
                    e => anyhow::Error::new(e).context(format!("creating the target {to}")),
                })?;
            Ok((Target::Real(repo), true))
        }
        Err(e) => Err(e).with_context(|| format!("opening the target {to}")),
    }
}

/// Refuses, before asking for a passphrase, a target folder holding
/// anything (another program's files, or a creation that was stopped).
fn refuse_foreign(path: &Path) -> Result<()> {
    let busy = std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some());
    if busy {
        bail!(
            "{} is neither empty nor a Coffre repository: give an empty folder (if a copy was stopped while creating it, remove the folder and run the copy again)",
            path.display()
        );
    }
    Ok(())
}

/// The human summary.
fn print(report: &CopyReport, to: &Location, created: bool) {
    if created {
        println!(
            "Created repository {} (same keys as the source, its own passphrase).",
            to
        );
    }
    let verb = if report.dry_run {
        "Would copy"
    } else {
        "Copied"
    };
    for c in &report.copied {
        let id = c.target.as_deref().unwrap_or(&c.source);
        println!(
            "  {} {} ({}, label {}, {} of files){}",
            if report.dry_run {
                "would copy"
            } else {
                "copied"
            },
            &id[..12.min(id.len())],
            chrono::DateTime::parse_from_rfc3339(&c.time)
                .map(|t| t
                    .with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M")
                    .to_string())
                .unwrap_or_else(|_| c.time.clone()),
            c.label,
            format::bytes(c.size),
            if report.dry_run {
                format!(", about {} to send", format::bytes(c.bytes))
            } else {
                format!(", {} sent", format::bytes(c.bytes))
            }
        );
    }
    println!(
        "{verb} {} snapshot(s) into {} ({} already there): {} blob(s), {}{}.",
        report.copied.len(),
        to,
        report.skipped.len(),
        report.blobs_sent,
        format::bytes(report.bytes_sent),
        if report.rechunked {
            "; the target has other keys, so files were cut again"
        } else {
            ""
        }
    );
    if !report.dry_run && report.blobs_verified > 0 {
        println!(
            "Read back and verified {} blob(s) on the target.",
            report.blobs_verified
        );
    }
}
