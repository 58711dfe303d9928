//! `coffre forget`: remove snapshots named on the command line, or those
//! the retention policy does not keep; `--prune` then frees their space.
//!
//! The policy: the `--keep-*` flags, else the configuration's
//! `[retention]`, else the policy saved in the repository. The
//! configuration comes before the saved policy because it is what the IT
//! provider edits and `coffre config show` prints for every drive of the
//! rotation; when both exist and differ, a note says which one applies.

use anyhow::{bail, Result};
use snapshots_format::format::journal::EntryKind;
use snapshots_format::format::policy;
use snapshots_format::format::snapshot;
use snapshots_format::repo::lock::LockKind;

use crate::args::{Cli, ForgetArgs};

/// Forgets, under the exclusive lock (none for --dry-run).
pub fn run(cli: &Cli, args: &ForgetArgs) -> Result<u8> {
    let repo = super::open(cli)?;
    let all = super::snapshots(&repo)?;
    let rules = super::policy::from_rules(&args.rules)?;
    let in_scope: Vec<_> = all
        .iter()
        .filter(|(_, s)| args.label.as_ref().is_none_or(|l| &s.label == l))
        .cloned()
        .collect();

    // (id, keep, reasons) for every snapshot in scope.
    let decisions: Vec<(snapshots_format::SnapshotId, bool, Vec<String>)> = if !args
        .snapshots
        .is_empty()
    {
        if !rules.is_empty() {
            bail!("give either snapshots to remove or --keep-* rules, not both");
        }
        let mut named = Vec::new();
        // A record that cannot be read (cut by a power cut, damaged) is
        // removed only when named by its id: `check` and `prune` name it.
        let damaged: Vec<_> = repo
            .list_snapshots()?
            .into_iter()
            .filter(|id| !all.iter().any(|(i, _)| i == id))
            .collect();
        let mut damaged_named = Vec::new();
        for spec in &args.snapshots {
            match snapshot::resolve(&in_scope, spec) {
                Ok((id, _)) => named.push(*id),
                Err(e) => match damaged_record(&damaged, spec) {
                    Some(id) => damaged_named.push(id),
                    None => return Err(e.into()),
                },
            }
        }
        let damaged_gone = damaged_named
            .into_iter()
            .map(|id| (id, false, vec!["damaged record".to_string()]));
        in_scope
            .iter()
            .map(|(id, _)| {
                let remove = named.contains(id);
                (
                    *id,
                    !remove,
                    if remove {
                        vec!["named".to_string()]
                    } else {
                        Vec::new()
                    },
                )
            })
            .chain(damaged_gone)
            .collect()
    } else {
        let r = &args.rules;
        let any_rule = r.keep_last.is_some()
            || r.keep_daily.is_some()
            || r.keep_weekly.is_some()
            || r.keep_monthly.is_some()
            || r.keep_yearly.is_some()
            || r.keep_within.is_some();
        if any_rule && rules.is_empty() {
            bail!("these rules keep nothing (all zero); nothing is done. Give at least one rule above zero");
        }
        let policy = if rules.is_empty() {
            policy_without_rules(cli, &repo)?
        } else {
            rules
        };
        let now = super::now()?;
        let now = chrono::TimeZone::timestamp_opt(&chrono::Local, now.sec, now.nsec)
            .single()
            .unwrap_or_else(chrono::Local::now);
        policy::apply(&policy, &in_scope, now)?
            .into_iter()
            .map(|d| {
                (
                    d.id,
                    d.keep,
                    d.reasons.iter().map(|r| r.to_string()).collect(),
                )
            })
            .collect()
    };

    // Legal holds win over every rule and every name.
    let now_sec = super::now()?.sec;
    let holds = super::protect::holds(&repo, now_sec)?;
    let mut decisions = decisions;
    for (id, keep, reasons) in &mut decisions {
        if let Some(h) = holds.iter().find(|h| h.snapshot == id.to_hex()) {
            if !*keep {
                *keep = true;
                reasons.clear();
            }
            reasons.push(format!(
                "protected {}: {}",
                super::protect::until_text(h.until),
                h.reason
            ));
        }
    }
    let removed: Vec<_> = decisions.iter().filter(|d| !d.1).map(|d| d.0).collect();
    // An open ransomware alarm: the snapshots before the suspect one are
    // the last good copies.
    let alarms = crate::alarm::open_alarms(&repo.journal()?);
    if let Some(first) = alarms.iter().min_by_key(|a| a.time) {
        let older: Vec<_> = removed
            .iter()
            .filter(|id| all.iter().any(|(i, s)| i == *id && s.time.sec < first.time))
            .collect();
        if !older.is_empty() && !args.dry_run {
            bail!(
                "a ransomware alarm is open on snapshot {} ({}): the {} snapshot(s) before it that this would remove are the last good copies. Look at the files, then `coffre alarm ack {}` and run forget again",
                &first.snapshot[..12],
                first.why,
                older.len(),
                &first.snapshot[..12]
            );
        }
    }
    if cli.json && !args.prune {
        print_json(&all, &decisions, args.dry_run)?;
    } else if !cli.json {
        print_table(&all, &decisions, args.dry_run);
    }
    if args.dry_run {
        return Ok(0);
    }
    crate::journal::journaled(cli, &repo, EntryKind::Forget, |note| {
        let lock = super::lock(cli, &repo, LockKind::Exclusive, "forget")?;
        let describe = |id: &snapshots_format::SnapshotId| {
            let s = all.iter().find(|(i, _)| i == id).map(|(_, s)| s);
            serde_json::json!({
                "id": id.to_hex(),
                "time": s.map(|s| s.utc().to_rfc3339()),
                "label": s.map(|s| s.label.clone()),
            })
        };
        let rule = if args.snapshots.is_empty() {
            "retention policy"
        } else {
            "named"
        };
        note.summary = format!("forget ({rule}): {} snapshot(s) removed", removed.len());
        note.details = serde_json::json!({
            "rule": rule,
            "removed": removed.iter().map(describe).collect::<Vec<_>>(),
            "kept": decisions.iter().filter(|d| d.1).map(|d| serde_json::json!({"id": d.0.to_hex(), "reasons": d.2})).collect::<Vec<_>>(),
        });
        for id in &removed {
            repo.delete_snapshot(id)?;
        }
        drop(lock);
        Ok(0)
    })?;
    if args.prune {
        crate::journal::journaled(cli, &repo, EntryKind::Prune, |note| {
            let report = super::prune::run_on(cli, &repo, false, &args.max_unused)?;
            *note = super::prune::note_of(&report);
            if cli.json {
                print_json(&all, &decisions, false)?;
            }
            super::prune::print(cli, &report, false)?;
            Ok(0)
        })?;
    }
    Ok(0)
}

/// The configuration's `[retention]`, else the repository's saved policy.
fn policy_without_rules(cli: &Cli, repo: &snapshots_format::Repository) -> Result<policy::Policy> {
    let saved = repo.load_policy()?;
    let configured =
        crate::config::load(cli)?.and_then(|l| l.config.retention.policy().map(|p| (p, &l.path)));
    match (configured, saved) {
        (Some((p, path)), saved) => {
            if let Some(s) = saved.filter(|s| *s != p) {
                if !cli.json {
                    eprintln!(
                        "note: applying [retention] of {} ({p}), not the policy saved in the repository ({s})",
                        path.display()
                    );
                }
            }
            Ok(p)
        }
        (None, Some(s)) => Ok(s),
        (None, None) => bail!(
            "no --keep-* rule given, no [retention] in the configuration and no policy saved: nothing would be kept, so nothing is done. Give rules (e.g. --keep-daily 7 --keep-weekly 5 --keep-monthly 12), write them in [retention], or save them with `coffre policy set`"
        ),
    }
}

/// The damaged record whose id starts with `spec` (at least 8 hex
/// characters, as `check` shows 12), if exactly one does.
fn damaged_record(
    damaged: &[snapshots_format::SnapshotId],
    spec: &str,
) -> Option<snapshots_format::SnapshotId> {
    let spec = spec.to_ascii_lowercase();
    if spec.len() < 8 || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut hits = damaged.iter().filter(|id| id.to_hex().starts_with(&spec));
    match (hits.next(), hits.next()) {
        (Some(id), None) => Some(*id),
        _ => None,
    }
}

fn print_table(
    all: &[(
        snapshots_format::SnapshotId,
        snapshots_format::format::snapshot::Snapshot,
    )],
    decisions: &[(snapshots_format::SnapshotId, bool, Vec<String>)],
    dry_run: bool,
) {
    let time = |id: &snapshots_format::SnapshotId| {
        all.iter()
            .find(|(i, _)| i == id)
            .map(|(_, s)| {
                (
                    s.local().format("%Y-%m-%d %H:%M").to_string(),
                    s.label.clone(),
                )
            })
            .unwrap_or_default()
    };
    let kept: Vec<_> = decisions.iter().filter(|d| d.1).collect();
    let gone: Vec<_> = decisions.iter().filter(|d| !d.1).collect();
    println!("Keep {} snapshot(s):", kept.len());
    for (id, _, reasons) in &kept {
        let (t, label) = time(id);
        println!("  {}  {t}  {label}  ({})", id.short(), reasons.join(", "));
    }
    println!(
        "{} {} snapshot(s):",
        if dry_run { "Would remove" } else { "Remove" },
        gone.len()
    );
    for (id, _, reasons) in &gone {
        let (t, label) = time(id);
        if reasons.iter().any(|r| r == "damaged record") {
            println!(
                "  {}  (a damaged record: its snapshot could not be read)",
                id.short()
            );
        } else {
            println!("  {}  {t}  {label}", id.short());
        }
    }
}

fn print_json(
    all: &[(
        snapshots_format::SnapshotId,
        snapshots_format::format::snapshot::Snapshot,
    )],
    decisions: &[(snapshots_format::SnapshotId, bool, Vec<String>)],
    dry_run: bool,
) -> Result<()> {
    let item = |id: &snapshots_format::SnapshotId, reasons: &[String]| {
        let s = all.iter().find(|(i, _)| i == id).map(|(_, s)| s);
        serde_json::json!({
            "id": id.to_hex(),
            "time_local": s.map(|s| s.local().to_rfc3339()),
            "label": s.map(|s| s.label.clone()),
            "reasons": reasons,
        })
    };
    super::print_json(&serde_json::json!({
        "dry_run": dry_run,
        "keep": decisions.iter().filter(|d| d.1).map(|d| item(&d.0, &d.2)).collect::<Vec<_>>(),
        "remove": decisions.iter().filter(|d| !d.1).map(|d| item(&d.0, &d.2)).collect::<Vec<_>>(),
    }))
}
