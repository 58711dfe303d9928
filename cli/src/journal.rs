//! Recording each command in the repository's journal (`coffre journal`
//! shows it): what ran, who ran it, and how it ended.

use anyhow::Result;
use serde_json::Value;
use snapshots_format::format::journal::{EntryKind, Outcome};
use snapshots_format::repo::journal::NewEntry;
use snapshots_format::Repository;

use crate::args::Cli;

/// What the command says about itself for the journal.
pub struct Note {
    /// One line for people.
    pub summary: String,
    /// Details for scripts.
    pub details: Value,
}

/// Runs `body` and records it: its summary and exit code, or its error. A
/// journal that cannot be written is a warning, never the command's
/// failure (the backup matters more than its record).
pub fn journaled(
    cli: &Cli,
    repo: &Repository,
    kind: EntryKind,
    body: impl FnOnce(&mut Note) -> Result<u8>,
) -> Result<u8> {
    let mut note = Note {
        summary: kind.name().to_owned(),
        details: Value::Null,
    };
    let result = body(&mut note);
    let (outcome, summary) = match &result {
        Ok(0) => (Outcome::Ok, note.summary),
        Ok(code) if *code == crate::EXIT_PARTIAL || *code == crate::EXIT_ALARM => {
            (Outcome::Warning, note.summary)
        }
        Ok(code) => (
            Outcome::Failed,
            format!("{} (exit code {code})", note.summary),
        ),
        Err(e) => (Outcome::Failed, format!("{}: {e:#}", note.summary)),
    };
    record(cli, repo, kind, outcome, summary, note.details);
    result
}

/// Appends one entry now (or at `COFFRE_FAKE_NOW`).
pub fn record(
    cli: &Cli,
    repo: &Repository,
    kind: EntryKind,
    outcome: Outcome,
    summary: String,
    details: Value,
) {
    let time = crate::commands::now().map_or_else(|_| chrono::Utc::now().timestamp(), |t| t.sec);
    let details = with_seals(details, repo.keys().seals());
    let entry = NewEntry {
        kind,
        outcome,
        summary,
        details,
        time,
    };
    if let Err(e) = repo.journal_append(entry) {
        if !cli.json {
            eprintln!("warning: this run could not be written to the repository's journal: {e}");
        }
    }
}

/// `details` with the number of objects this run sealed under the
/// repository's key (the key's nonce budget is counted from these).
fn with_seals(details: Value, seals: u64) -> Value {
    match details {
        Value::Object(mut map) => {
            map.insert("seals".into(), seals.into());
            Value::Object(map)
        }
        Value::Null => serde_json::json!({ "seals": seals }),
        other => serde_json::json!({ "value": other, "seals": seals }),
    }
}
