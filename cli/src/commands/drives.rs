//! `coffre drives`: the rotation at a glance. For each configured drive:
//! when it last received a snapshot, a check and an off-site copy (from
//! its journal when it is plugged in, else from this machine's record of
//! past runs), its free space and the days until it is full at the
//! current growth; and warnings for a drive not seen for too long, or when
//! one drive has taken every recent backup (the rotation stopped).

use anyhow::{bail, Result};
use serde::Serialize;
use snapshots_format::format::journal::{EntryKind, Outcome};
use snapshots_format::Repository;

use crate::args::{Cli, DrivesArgs};
use crate::config::{Contents, Location, System};
use crate::format;

const DAY: i64 = 86_400;

/// What is known of one drive.
#[derive(Debug, Default, Serialize)]
struct Drive {
    name: String,
    path: String,
    present: bool,
    last_snapshot: Option<i64>,
    last_check: Option<i64>,
    last_offsite_copy: Option<i64>,
    /// Where the last off-site copy went.
    offsite_to: Option<String>,
    free_bytes: Option<u64>,
    growth_per_day: Option<f64>,
    days_until_full: Option<f64>,
    warnings: Vec<String>,
}

/// Lists the drives; exit 1 when one deserves a warning.
pub fn run(cli: &Cli, args: &DrivesArgs) -> Result<u8> {
    let Some(loaded) = crate::config::load(cli)? else {
        bail!("no drives configured: list them as [[repository]] entries in the configuration (docs/CONFIG.md)");
    };
    let stale = super::parse_duration(&args.stale_after)?.as_secs() as i64;
    let now = super::now()?.sec;
    let log = crate::runlog::load().unwrap_or_default();
    let sys = System::default();
    let mut drives = Vec::new();
    for r in &loaded.config.repositories {
        let mut d = Drive {
            name: r.name.clone(),
            path: r.path.display().to_string(),
            ..Drive::default()
        };
        // This machine's record, for a drive not plugged in (and as a
        // floor for one that is).
        let mine = |cmd: &str| {
            log.last(cmd, |run| {
                run.good() && run.drive.as_deref() == Some(r.name.as_str())
            })
            .map(|run| run.time)
        };
        d.last_snapshot = mine("snapshot");
        d.last_check = mine("check");
        if let Location::Here(path, Contents::Repository) = r.locate(&sys) {
            d.present = true;
            d.path = path.display().to_string();
            match read_drive(cli, &path, &mut d) {
                Ok(()) => {}
                Err(e) => d.warnings.push(format!("cannot be read: {e:#}")),
            }
            if let Some((_, free)) = super::status::space_of(&path) {
                d.free_bytes = Some(free);
                d.days_until_full = d
                    .growth_per_day
                    .filter(|g| *g > 0.0)
                    .map(|g| free as f64 / g);
            }
        }
        match d.last_snapshot {
            None => d.warnings.push("has never received a snapshot".into()),
            Some(t) if now - t > stale => d.warnings.push(format!(
                "no snapshot for {} days: is it still in the rotation?",
                (now - t) / DAY
            )),
            Some(_) => {}
        }
        if d.days_until_full.is_some_and(|days| days < 30.0) {
            d.warnings.push(
                "full within 30 days at the current growth: forget --prune, or a larger drive"
                    .into(),
            );
        }
        drives.push(d);
    }
    let mut general = Vec::new();
    if drives.len() > 1 {
        // The last week's good snapshots: all on one drive means the
        // rotation stopped (the other drives grow old at home).
        let recent: Vec<&str> = log
            .runs
            .iter()
            .filter(|run| run.command == "snapshot" && run.good() && now - run.time < 7 * DAY)
            .filter_map(|run| run.drive.as_deref())
            .collect();
        if recent.len() >= 3 && recent.iter().all(|d| *d == recent[0]) {
            general.push(format!(
                "every backup of the last week went to drive {}: the drives are not rotating",
                recent[0]
            ));
        }
    }
    let warned = !general.is_empty() || drives.iter().any(|d| !d.warnings.is_empty());
    if cli.json {
        super::print_json(&serde_json::json!({"drives": drives, "warnings": general}))?;
    } else {
        print(&drives, &general);
    }
    Ok(if warned { crate::EXIT_ERROR } else { 0 })
}

/// Fills `d` from the drive's own journal and snapshots.
fn read_drive(cli: &Cli, path: &std::path::Path, d: &mut Drive) -> Result<()> {
    let pass = crate::password::get(cli)?;
    let repo = Repository::open(path, &pass)?;
    let journal = repo.journal()?;
    let last = |kind: EntryKind| {
        journal
            .entries
            .iter()
            .rev()
            .find(|(_, e)| e.kind == kind && e.outcome != Outcome::Failed)
            .map(|(_, e)| e)
    };
    let newest = |a: Option<i64>, b: Option<i64>| a.max(b);
    d.last_check = newest(d.last_check, last(EntryKind::Check).map(|e| e.time));
    if let Some(e) = last(EntryKind::CopyOut) {
        d.last_offsite_copy = Some(e.time);
        d.offsite_to = e.details["to"].as_str().map(str::to_owned);
    }
    let (snapshots, _) = repo.snapshots()?;
    d.last_snapshot = newest(d.last_snapshot, snapshots.last().map(|(_, s)| s.time.sec));
    d.growth_per_day = super::status::daily_growth(&snapshots);
    if !journal.problems.is_empty() {
        d.warnings
            .push(format!("its journal is damaged: {}", journal.problems[0]));
    }
    Ok(())
}

fn when(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

fn print(drives: &[Drive], general: &[String]) {
    let header = [
        "Drive",
        "Here",
        "Last snapshot",
        "Last check",
        "Off-site copy",
        "Free",
        "Full in",
    ];
    let rows: Vec<[String; 7]> = drives
        .iter()
        .map(|d| {
            [
                d.name.clone(),
                if d.present { "yes" } else { "no" }.into(),
                when(d.last_snapshot),
                when(d.last_check),
                when(d.last_offsite_copy),
                d.free_bytes.map_or("-".into(), format::bytes),
                d.days_until_full
                    .map_or("-".into(), |days| format!("{:.0} days", days.min(99_999.0))),
            ]
        })
        .collect();
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    format::table(&header, &rows);
    for d in drives {
        for w in &d.warnings {
            println!("warning: drive {}: {w}", d.name);
        }
    }
    for w in general {
        println!("warning: {w}");
    }
}
