//! `coffre alarm [ack SNAPSHOT --reason R]`: the ransomware alarms of the
//! journal, and acknowledging one.

use anyhow::{bail, Result};
use snapshots_format::format::journal::{EntryKind, Outcome};
use snapshots_format::format::snapshot;

use crate::alarm::open_alarms;
use crate::args::{AlarmAction, AlarmArgs, Cli};

/// Lists the open alarms (exit 1 when there is one), or acknowledges one.
pub fn run(cli: &Cli, args: &AlarmArgs) -> Result<u8> {
    let repo = super::open(cli)?;
    let journal = repo.journal()?;
    let open = open_alarms(&journal);
    let Some(AlarmAction::Ack {
        snapshot: spec,
        reason,
    }) = &args.action
    else {
        if cli.json {
            super::print_json(&serde_json::json!({
                "open": open.iter().map(|o| serde_json::json!({"snapshot": o.snapshot, "why": o.why})).collect::<Vec<_>>(),
            }))?;
        } else if open.is_empty() {
            println!("No alarm.");
        } else {
            for o in &open {
                println!("ALARM on snapshot {}: {}", &o.snapshot[..12], o.why);
            }
            println!("Look at the files (`coffre diff`, the mount), then `coffre alarm ack SNAPSHOT --reason ...`.");
        }
        return Ok(if open.is_empty() {
            0
        } else {
            crate::EXIT_ERROR
        });
    };
    if reason.trim().is_empty() {
        bail!("say what you found with --reason: it goes to the journal");
    }
    let all = super::snapshots(&repo)?;
    let (id, _) = snapshot::resolve(&all, spec)?;
    let hex = id.to_hex();
    if !open.iter().any(|o| o.snapshot == hex) {
        bail!(
            "snapshot {} has no open alarm (see `coffre alarm`)",
            id.short()
        );
    }
    crate::journal::record(
        cli,
        &repo,
        EntryKind::Alarm,
        Outcome::Ok,
        format!("alarm on snapshot {} acknowledged: {reason}", id.short()),
        serde_json::json!({"state": "ack", "snapshot": hex, "reason": reason}),
    );
    if !cli.json {
        println!("Alarm on snapshot {} acknowledged.", id.short());
    }
    Ok(0)
}
