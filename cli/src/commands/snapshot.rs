//! `coffre snapshot DIR...`: run the hooks, take a snapshot, show
//! progress, print the summary.

use anyhow::{Context, Result};
use snapshots_format::format::journal::EntryKind;
use snapshots_format::ops::backup::{self, Outcome, SnapshotOptions};
use snapshots_format::progress::Progress;
use snapshots_format::source::exclude::Excludes;

use crate::args::{Cli, SnapshotArgs};
use crate::format;
use crate::fs_snapshot::FsSnapshots;
use crate::hooks;
use crate::progress::Bar;

/// Takes the snapshot, between the `--before` and `--after` commands;
/// exit code 3 when some files could not be read.
pub fn run(cli: &Cli, args: &SnapshotArgs) -> Result<u8> {
    let merged = with_config(cli, args)?;
    let args = &merged;
    let result = take(cli, args);
    crate::runlog::after_snapshot(cli, &result);
    let Some(after) = &args.after else {
        return result.map(|(code, _)| code);
    };
    let outcome = match &result {
        Ok((code, id)) => hooks::Outcome {
            result: match (*code, id) {
                (0, Some(_)) => "ok",
                (0, None) => "unchanged",
                _ => "partial",
            },
            exit_code: *code,
            snapshot: id.clone(),
            error: None,
        },
        Err(e) => hooks::Outcome {
            result: "failed",
            exit_code: crate::EXIT_ERROR,
            snapshot: None,
            error: Some(format!("{e:#}")),
        },
    };
    let after_result = hooks::after(after, &outcome);
    match (result, after_result) {
        (Ok((code, _)), Ok(())) => Ok(code),
        (Ok(_), Err(e)) => Err(e.context("the snapshot was saved, but")),
        (Err(e), after_result) => {
            if let Err(a) = after_result {
                eprintln!("warning: {a:#}");
            }
            Err(e)
        }
    }
}

/// The command line completed by the configuration's `[snapshot]`: a flag
/// given on the command line wins; lists (excludes, markers) add up.
fn with_config(cli: &Cli, args: &SnapshotArgs) -> Result<SnapshotArgs> {
    let Some(loaded) = crate::config::load(cli)? else {
        return Ok(args.clone());
    };
    let c = &loaded.config.snapshot;
    let mut exclude = c.exclude.clone();
    exclude.extend(args.exclude.iter().cloned());
    let mut exclude_file: Vec<_> = c.exclude_file.iter().cloned().collect();
    exclude_file.extend(args.exclude_file.iter().cloned());
    let mut exclude_if_present = c.exclude_if_present.clone();
    exclude_if_present.extend(args.exclude_if_present.iter().cloned());
    let from_command = if args.from_command.is_empty() {
        c.from_command
            .iter()
            .map(|(name, cmd)| format!("{name}={cmd}"))
            .collect()
    } else {
        args.from_command.clone()
    };
    Ok(SnapshotArgs {
        sources: if args.sources.is_empty() {
            c.sources.clone()
        } else {
            args.sources.clone()
        },
        label: args.label.clone().or_else(|| c.label.clone()),
        tags: if args.tags.is_empty() {
            c.tags.clone()
        } else {
            args.tags.clone()
        },
        exclude,
        exclude_file,
        exclude_if_present,
        exclude_larger_than: args.exclude_larger_than.clone().or_else(|| {
            c.exclude_larger_than
                .as_ref()
                .map(|size| size.bytes.to_string())
        }),
        cross_filesystems: !args.one_file_system
            && (args.cross_filesystems || c.cross_filesystems || c.one_file_system == Some(false)),
        one_file_system: args.one_file_system,
        ignore_inode: args.ignore_inode,
        skip_if_unchanged: args.skip_if_unchanged || c.skip_if_unchanged,
        fs_snapshot: args.fs_snapshot.or(c.fs_snapshot),
        fs_snapshot_size: args
            .fs_snapshot_size
            .clone()
            .or_else(|| c.fs_snapshot_size.clone()),
        before: args.before.clone().or_else(|| c.before.clone()),
        after: args.after.clone().or_else(|| c.after.clone()),
        from_command,
    })
}

/// The rules of `--exclude*` and `--cross-filesystems`.
fn excludes(args: &SnapshotArgs) -> Result<Excludes> {
    let mut ex = Excludes::new();
    for p in &args.exclude {
        ex.add_pattern(p)?;
    }
    for f in &args.exclude_file {
        ex.add_file(f)?;
    }
    for m in &args.exclude_if_present {
        ex.add_if_present(m)?;
    }
    if let Some(size) = &args.exclude_larger_than {
        ex.set_larger_than(crate::parse::size(size).context("--exclude-larger-than")?);
    }
    if args.cross_filesystems {
        ex.set_cross_filesystems();
    }
    Ok(ex)
}

/// The snapshot itself: its exit code and the id written (none when
/// nothing changed and `--skip-if-unchanged` was asked).
fn take(cli: &Cli, args: &SnapshotArgs) -> Result<(u8, Option<String>)> {
    if args.sources.is_empty() {
        anyhow::bail!(
            "no folder to back up: name it (coffre snapshot /srv/officine) or list it in the configuration's [snapshot] sources"
        );
    }
    let repo = super::open(cli)?;
    let mut saved = None;
    let code = crate::journal::journaled(cli, &repo, EntryKind::Snapshot, |note| {
        let sources: Vec<String> = args
            .sources
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        note.summary = format!("snapshot of {}", sources.join(", "));
        let (code, id, json) = take_in(cli, args, &repo)?;
        if let Some(json) = json {
            let sm = &json["summary"];
            note.summary = format!(
                "snapshot {} of {}: {} new, {} changed, {} unchanged file(s), {} item(s) unreadable",
                json["short_id"].as_str().unwrap_or("?"),
                sources.join(", "),
                sm["files_new"],
                sm["files_changed"],
                sm["files_unchanged"],
                sm["skipped_count"]
            );
            note.details = json;
        } else {
            note.summary = format!(
                "snapshot of {}: nothing changed, none written",
                sources.join(", ")
            );
        }
        saved = id;
        Ok(code)
    })?;
    Ok((code, saved))
}

/// Takes the snapshot on an open repository; returns the exit code, the
/// id and the JSON record of what was saved (none when nothing changed).
fn take_in(
    cli: &Cli,
    args: &SnapshotArgs,
    repo: &snapshots_format::Repository,
) -> Result<(u8, Option<String>, Option<serde_json::Value>)> {
    for source in &args.sources {
        if !source.is_dir() {
            anyhow::bail!(
                "the folder to back up, {}, does not exist or is not a folder. Check the path (is the data disk mounted?)",
                source.display()
            );
        }
    }
    let excludes = excludes(args)?;
    let from_commands = args
        .from_command
        .iter()
        .map(|spec| hooks::parse_from_command(spec))
        .collect::<Result<Vec<_>>>()?;
    let _lock = super::lock(
        cli,
        repo,
        snapshots_format::repo::lock::LockKind::Shared,
        "snapshot",
    )?;
    super::adopt_leftovers(cli, repo, "an interrupted run")?;
    let mut ran = Vec::new();
    if let Some(before) = &args.before {
        ran.push(hooks::before(before)?);
    }
    // Held until the snapshot is written: dropping it removes the
    // filesystem snapshots, failure included.
    let fs_snapshots = match args.fs_snapshot {
        Some(kind) => Some(FsSnapshots::take(
            kind,
            &args.sources,
            args.fs_snapshot_size.as_deref().unwrap_or("20%"),
        )?),
        None => None,
    };
    let streams = from_commands
        .iter()
        .map(|(name, cmd)| hooks::from_command(name, cmd))
        .collect::<Result<Vec<_>>>()?;
    let bar = Bar::new(cli.json, "snapshot");
    let fake = std::env::var_os("COFFRE_FAKE_NOW").is_some();
    let opts = SnapshotOptions {
        sources: args.sources.clone(),
        label: args.label.clone(),
        tags: args.tags.clone(),
        time: if fake { Some(super::now()?) } else { None },
        excludes,
        hooks: ran,
        ignore_inode: args.ignore_inode,
        skip_if_unchanged: args.skip_if_unchanged,
        read_from: fs_snapshots
            .as_ref()
            .map(|f| f.read_from.clone())
            .unwrap_or_default(),
    };
    let outcome = std::thread::scope(|s| {
        // Counting the source runs beside the snapshot so that the bar gets
        // a total (and an ETA) without delaying the start; a scheduled run
        // draws nothing and does not pay for a second walk.
        if bar.shown() {
            s.spawn(|| {
                let (mut files, mut bytes) = (0, 0);
                for source in &args.sources {
                    let (f, b) = backup::estimate(source);
                    files += f;
                    bytes += b;
                }
                bar.set_total(files, bytes);
            });
        }
        backup::take_snapshot_with(repo, &opts, streams, &bar)
    })?;
    bar.finish();
    drop(fs_snapshots);
    let (id, snap) = match outcome {
        Outcome::Saved(id, snap) => (id, snap),
        Outcome::Unchanged { parent } => {
            if cli.json {
                super::print_json(&serde_json::json!({
                    "unchanged": true,
                    "parent": parent.to_hex(),
                }))?;
            } else {
                println!(
                    "Nothing changed since snapshot {}: no snapshot written.",
                    parent.short()
                );
            }
            return Ok((0, None, None));
        }
    };
    let record = super::snapshots::to_json(&id, &snap);
    let alarm = crate::alarm::after_snapshot(cli, repo, &id, &snap)?;
    let sm = &snap.summary;
    if cli.json {
        super::print_json(&super::snapshots::to_json(&id, &snap))?;
    } else {
        println!(
            "Snapshot {} saved ({}, label {}).",
            id.short(),
            snap.local().format("%Y-%m-%d %H:%M:%S"),
            snap.label
        );
        println!(
            "  files: {} new, {} changed, {} unchanged",
            sm.files_new, sm.files_changed, sm.files_unchanged
        );
        println!(
            "  dirs:  {} new, {} changed, {} unchanged",
            sm.dirs_new, sm.dirs_changed, sm.dirs_unchanged
        );
        println!(
            "  read {}, added {} ({} on the drive after compression), in {:.1} s",
            format::bytes(sm.bytes_read),
            format::bytes(sm.bytes_added),
            format::bytes(sm.bytes_stored),
            sm.duration_ms as f64 / 1000.0
        );
        if sm.excluded_count > 0 {
            println!(
                "  {} item(s) left out by the exclude rules",
                sm.excluded_count
            );
        }
        if sm.inode_changed > 0 {
            println!(
                "  {} file(s) kept their size and times under a new inode number (read again, except on a network share or with --ignore-inode)",
                sm.inode_changed
            );
        }
        for hook in &snap.hooks {
            println!(
                "  {} {:?}: ok in {:.1} s",
                hook.name,
                hook.command,
                hook.duration_ms as f64 / 1000.0
            );
        }
        if !sm.changed_while_read.is_empty() {
            println!("  {} file(s) changed while being read (saved as read; the next snapshot will take them again):", sm.changed_while_read.len());
            for p in &sm.changed_while_read {
                println!("    {}", format::name(p));
            }
        }
    }
    if sm.skipped_count > 0 {
        eprintln!(
            "warning: {} item(s) could not be read and are missing from this snapshot:",
            sm.skipped_count
        );
        for (p, why) in &sm.skipped {
            eprintln!("    {}: {why}", format::name(p));
        }
        eprintln!("Check the permissions of these files (or run the snapshot as root).");
        return Ok((crate::EXIT_PARTIAL, Some(id.to_hex()), Some(record)));
    }
    if alarm.is_some() {
        return Ok((crate::EXIT_ALARM, Some(id.to_hex()), Some(record)));
    }
    Ok((0, Some(id.to_hex()), Some(record)))
}
