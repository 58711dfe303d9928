//! `coffre journal`: the repository's record of every command that
//! changed or checked it, oldest first; problems with the record itself
//! (an entry removed, replaced or reordered) are reported and make the exit
//! code 1.

use anyhow::{bail, Result};
use snapshots_format::format::journal::Outcome;

use crate::args::{Cli, JournalArgs};

/// Lists the journal.
pub fn run(cli: &Cli, args: &JournalArgs) -> Result<u8> {
    let repo = super::open(cli)?;
    let journal = repo.journal()?;
    let since = args
        .since
        .as_deref()
        .map(super::copy::since_time)
        .transpose()?;
    if let Some(k) = &args.kind {
        let known = journal.entries.iter().any(|(_, e)| e.kind.name() == k)
            || [
                "init", "snapshot", "check", "restore", "verify", "copy-out", "copy-in", "forget",
                "prune", "key", "protect", "alarm",
            ]
            .contains(&k.as_str());
        if !known {
            bail!("unknown kind {k:?}: one of init, snapshot, check, restore, verify, copy-out, copy-in, forget, prune, key, protect, alarm");
        }
    }
    let shown: Vec<_> = journal
        .entries
        .iter()
        .filter(|(_, e)| since.is_none_or(|s| e.time >= s))
        .filter(|(_, e)| args.kind.as_ref().is_none_or(|k| e.kind.name() == k))
        .collect();
    if cli.json {
        super::print_json(&serde_json::json!({
            "entries": shown.iter().map(|(id, e)| serde_json::json!({
                "id": id,
                "seq": e.seq,
                "time": chrono::DateTime::from_timestamp(e.time, 0).map(|t| t.to_rfc3339()),
                "kind": e.kind,
                "outcome": e.outcome,
                "user": e.user,
                "host": e.host,
                "summary": e.summary,
                "details": e.details,
            })).collect::<Vec<_>>(),
            "problems": journal.problems,
        }))?;
    } else {
        if shown.is_empty() {
            println!(
                "The journal has no entry{}.",
                if since.is_some() || args.kind.is_some() {
                    " matching"
                } else {
                    " yet"
                }
            );
        }
        for (_, e) in &shown {
            let when = chrono::DateTime::from_timestamp(e.time, 0)
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M")
                        .to_string()
                })
                .unwrap_or_default();
            let outcome = match e.outcome {
                Outcome::Ok => "ok",
                Outcome::Warning => "WARNING",
                Outcome::Failed => "FAILED",
            };
            println!(
                "{:>5}  {when}  {:<9} {:<7}  {}@{}  {}",
                e.seq,
                e.kind.name(),
                outcome,
                e.user,
                e.host,
                e.summary
            );
        }
    }
    for p in &journal.problems {
        eprintln!("warning: {p}");
    }
    if journal.problems.is_empty() {
        Ok(0)
    } else {
        eprintln!("The journal was tampered with or damaged: keep this drive aside and compare with another drive's journal.");
        Ok(crate::EXIT_ERROR)
    }
}
