//! `coffre snapshots`: the table of snapshots, or JSON.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use snapshots_format::backend::Location;
use snapshots_format::format::snapshot::Snapshot;
use snapshots_format::ops::copy::identity;
use snapshots_format::{Error, Repository, SnapshotId};

use crate::args::{Cli, SnapshotsArgs};
use crate::format;

/// The JSON form of a snapshot, shared by `snapshot` and `snapshots`.
pub fn to_json(id: &SnapshotId, s: &Snapshot) -> Value {
    let sm = &s.summary;
    json!({
        "id": id.to_hex(),
        "short_id": id.short(),
        "time": s.utc().to_rfc3339(),
        "time_local": s.local().to_rfc3339(),
        "hostname": format::name(&s.hostname),
        "label": s.label,
        "source": s.sources.first().map(|p| format::name(p)),
        "sources": s.sources.iter().map(|p| format::name(p)).collect::<Vec<_>>(),
        "tags": s.tags,
        "parent": s.parent.map(|p| p.to_hex()),
        "summary": {
            "files_new": sm.files_new,
            "files_changed": sm.files_changed,
            "files_unchanged": sm.files_unchanged,
            "dirs_new": sm.dirs_new,
            "dirs_changed": sm.dirs_changed,
            "dirs_unchanged": sm.dirs_unchanged,
            "others": sm.others,
            "total_size": sm.total_size,
            "bytes_read": sm.bytes_read,
            "bytes_added": sm.bytes_added,
            "bytes_stored": sm.bytes_stored,
            "blobs_added": sm.blobs_added,
            "duration_ms": sm.duration_ms,
            "skipped_count": sm.skipped_count,
            "excluded_count": sm.excluded_count,
            "inode_changed": sm.inode_changed,
            "skipped": sm.skipped.iter().map(|(p, why)| json!({"path": format::name(p), "reason": why})).collect::<Vec<_>>(),
            "changed_while_read": sm.changed_while_read.iter().map(|p| format::name(p)).collect::<Vec<_>>(),
        },
        "excludes": s.excludes,
        "hooks": s.hooks,
    })
}

/// Lists snapshots, oldest first.
pub fn run(cli: &Cli, args: &SnapshotsArgs) -> Result<u8> {
    if args.all_drives || !args.also.is_empty() {
        return several(cli, args);
    }
    let repo = super::open(cli)?;
    let all: Vec<_> = super::snapshots(&repo)?
        .into_iter()
        .filter(|(_, s)| args.label.as_ref().is_none_or(|l| &s.label == l))
        .collect();
    if cli.json {
        super::print_json(&all.iter().map(|(id, s)| to_json(id, s)).collect::<Vec<_>>())?;
        return Ok(0);
    }
    if all.is_empty() {
        println!("No snapshots yet. Take one with `coffre snapshot DIR`.");
        return Ok(0);
    }
    let rows: Vec<[String; 7]> = all
        .iter()
        .map(|(id, s)| {
            let sm = &s.summary;
            let mut status = String::new();
            if sm.skipped_count > 0 {
                status = format!("{} skipped", sm.skipped_count);
            }
            [
                id.short(),
                s.local().format("%Y-%m-%d %H:%M").to_string(),
                s.label.clone(),
                s.sources
                    .iter()
                    .map(|p| format::name(p))
                    .collect::<Vec<_>>()
                    .join(", "),
                sm.files().to_string(),
                format::bytes(sm.total_size),
                if status.is_empty() {
                    format!("+{}", format::bytes(sm.bytes_stored))
                } else {
                    format!("+{} ({status})", format::bytes(sm.bytes_stored))
                },
            ]
        })
        .collect();
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    format::table(
        &["ID", "Date", "Label", "Source", "Files", "Size", "Added"],
        &rows,
    );
    println!("{} snapshot(s)", rows.len());
    Ok(0)
}

/// A repository as shown: its name and where it is.
type Named = (String, Location);

/// The repositories to show side by side: `-r`, every configured drive
/// plugged in (with `--all-drives`), then `--also`; each with the name it
/// is shown under. Drives that are not there are returned as notes.
fn repositories(cli: &Cli, args: &SnapshotsArgs) -> Result<(Vec<Named>, Vec<String>)> {
    let mut out: Vec<Named> = Vec::new();
    let mut notes = Vec::new();
    if let Some(r) = &cli.repo {
        out.push((
            r.display().to_string(),
            super::location_of(cli, r.as_os_str())?,
        ));
    }
    if args.all_drives {
        let Some(loaded) = crate::config::load(cli)? else {
            bail!("--all-drives needs the drives listed in the configuration (see docs/CONFIG.md)");
        };
        let sys = crate::config::System::default();
        for r in &loaded.config.repositories {
            match r.locate(&sys) {
                crate::config::Location::Here(path, crate::config::Contents::Repository) => {
                    if !out
                        .iter()
                        .any(|(_, l)| l.local_path() == Some(path.as_path()))
                    {
                        out.push((r.name.clone(), Location::Local(path)));
                    }
                }
                _ => notes.push(format!("{}: drive not plugged in", r.name)),
            }
        }
    }
    if cli.repo.is_none() && !args.all_drives {
        out.push(("main".into(), super::repo_location(cli)?));
    }
    for a in &args.also {
        out.push((
            a.display().to_string(),
            super::location_of(cli, a.as_os_str())?,
        ));
    }
    if out.is_empty() {
        bail!("no repository to list: plug a drive in, or name one with -r or --also");
    }
    Ok((out, notes))
}

/// Opens `location` with the main passphrase, else the others' one.
fn open_any(cli: &Cli, args: &SnapshotsArgs, location: &Location) -> Result<Repository> {
    Repository::read_header(location)?;
    let main = crate::password::get(cli)?;
    match Repository::open(location, &main) {
        Err(Error::WrongPassphrase) => {
            let other = crate::password::target(args.to_password_file.as_deref(), false)?;
            Ok(Repository::open(location, &other)?)
        }
        other => Ok(other?),
    }
}

/// One snapshot as held by several repositories (copies keep their
/// record, so they share [`identity`]).
struct Row {
    snapshot: Snapshot,
    /// Per repository, its id there.
    ids: Vec<Option<SnapshotId>>,
}

/// `coffre snapshots --all-drives` / `--also`: which repository holds
/// which snapshot.
fn several(cli: &Cli, args: &SnapshotsArgs) -> Result<u8> {
    let (repos, notes) = repositories(cli, args)?;
    let mut rows: BTreeMap<(i64, [u8; 32]), Row> = BTreeMap::new();
    for (i, (name, location)) in repos.iter().enumerate() {
        let repo = open_any(cli, args, location).with_context(|| format!("repository {name}"))?;
        for (id, s) in super::snapshots(&repo)? {
            if args.label.as_ref().is_some_and(|l| &s.label != l) {
                continue;
            }
            let row = rows
                .entry((s.time.sec, identity(&s)))
                .or_insert_with(|| Row {
                    snapshot: s.clone(),
                    ids: vec![None; repos.len()],
                });
            row.ids[i] = Some(id);
        }
    }
    if cli.json {
        super::print_json(&json!({
            "repositories": repos.iter().map(|(n, l)| json!({"name": n, "location": l.to_string()})).collect::<Vec<_>>(),
            "missing": notes,
            "snapshots": rows.values().map(|r| {
                let s = &r.snapshot;
                json!({
                    "time": s.utc().to_rfc3339(),
                    "time_local": s.local().to_rfc3339(),
                    "label": s.label,
                    "sources": s.sources.iter().map(|p| format::name(p)).collect::<Vec<_>>(),
                    "held_by": repos.iter().zip(&r.ids).filter_map(|((n, _), id)| {
                        id.map(|id| json!({"repository": n, "id": id.to_hex()}))
                    }).collect::<Vec<_>>(),
                })
            }).collect::<Vec<_>>(),
        }))?;
        return Ok(0);
    }
    let mut header = vec!["Date".to_owned(), "Label".into(), "Source".into()];
    header.extend(repos.iter().map(|(n, _)| n.clone()));
    let table: Vec<Vec<String>> = rows
        .values()
        .map(|r| {
            let s = &r.snapshot;
            let mut line = vec![
                s.local().format("%Y-%m-%d %H:%M").to_string(),
                s.label.clone(),
                s.sources
                    .iter()
                    .map(|p| format::name(p))
                    .collect::<Vec<_>>()
                    .join(", "),
            ];
            line.extend(
                r.ids
                    .iter()
                    .map(|id| id.map_or_else(|| "-".into(), |id| id.short())),
            );
            line
        })
        .collect();
    format::table(&header, &table);
    let everywhere = rows
        .values()
        .filter(|r| r.ids.iter().all(Option::is_some))
        .count();
    println!(
        "{} snapshot(s), {everywhere} on every repository shown; '-' means not there (copy it with `coffre copy --to`).",
        rows.len()
    );
    for n in notes {
        println!("{n}");
    }
    Ok(0)
}
