//! Journal entries (FORMAT.md §18): one per command that changed or
//! checked the repository, kept in the repository itself so that the proof
//! of every backup, check, restore test, copy and deletion travels with the
//! backups and cannot be lost with the server.
//!
//! An entry names the entries that were the journal's newest when it was
//! written (`prev`) and carries a sequence number one above theirs: a
//! removed entry leaves a dangling reference, a reordered one a wrong
//! number. Entries are write-once objects named by the hash of their
//! sealed bytes, so the journal works on an append-only S3 key and prune
//! never touches it.
//!
//! The plaintext is a version byte, then the entry as JSON: entries are
//! few and small, and JSON lets a later Coffre add fields that an older
//! one ignores.

use serde::{Deserialize, Serialize};

/// Version byte opening an entry's plaintext.
pub const JOURNAL_VERSION: u8 = 1;

/// Magic opening a journal object on the drive.
pub const JOURNAL_MAGIC: &[u8; 8] = b"COFFREJL";

/// What a journal entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// The repository was created.
    Init,
    /// A snapshot was taken (or failed).
    Snapshot,
    /// `check` ran.
    Check,
    /// Files were restored.
    Restore,
    /// A restore test (`verify`).
    Verify,
    /// Snapshots were copied out of this repository.
    CopyOut,
    /// Snapshots were copied into this repository.
    CopyIn,
    /// Snapshots were removed.
    Forget,
    /// Unused data was removed.
    Prune,
    /// A passphrase or key was added, changed or removed.
    Key,
    /// A snapshot was protected or released.
    Protect,
    /// The ransomware alarm was raised or acknowledged.
    Alarm,
}

impl EntryKind {
    /// The name shown to users.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::Init => "init",
            EntryKind::Snapshot => "snapshot",
            EntryKind::Check => "check",
            EntryKind::Restore => "restore",
            EntryKind::Verify => "verify",
            EntryKind::CopyOut => "copy-out",
            EntryKind::CopyIn => "copy-in",
            EntryKind::Forget => "forget",
            EntryKind::Prune => "prune",
            EntryKind::Key => "key",
            EntryKind::Protect => "protect",
            EntryKind::Alarm => "alarm",
        }
    }
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// It did what was asked.
    Ok,
    /// It did it, with something to look at (unreadable files...).
    Warning,
    /// It failed.
    Failed,
}

/// One entry as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Unix seconds.
    pub time: i64,
    /// One above the largest `seq` of `prev` (0 for the first entry).
    pub seq: u64,
    /// The ids (64 hex) of the journal's newest entries when written.
    pub prev: Vec<String>,
    /// What happened.
    pub kind: EntryKind,
    /// How it ended.
    pub outcome: Outcome,
    /// The person (behind sudo, else the account).
    pub user: String,
    /// The machine.
    pub host: String,
    /// One line for people ("snapshot 3f2a... of /srv/officine: 12 files changed").
    pub summary: String,
    /// The details, for scripts (counts, ids, errors).
    #[serde(default)]
    pub details: serde_json::Value,
}

/// Why an entry's plaintext could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// An unknown version byte (a newer Coffre).
    #[error("journal entry version {0} is newer than this Coffre reads")]
    Version(u8),
    /// Not an entry.
    #[error("not a journal entry: {0}")]
    Malformed(String),
}

impl Entry {
    /// The plaintext: version byte, then JSON.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![JOURNAL_VERSION];
        // Serialising plain data to memory cannot fail.
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }

    /// Reads a plaintext made by [`Entry::encode`].
    ///
    /// # Errors
    /// [`JournalError`] for another version or malformed JSON.
    pub fn decode(plain: &[u8]) -> Result<Self, JournalError> {
        match plain.split_first() {
            Some((&JOURNAL_VERSION, json)) => {
                serde_json::from_slice(json).map_err(|e| JournalError::Malformed(e.to_string()))
            }
            Some((&v, _)) => Err(JournalError::Version(v)),
            None => Err(JournalError::Malformed("empty".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn entries_round_trip(
            time in any::<i64>(),
            seq in any::<u64>(),
            summary in ".{0,80}",
            user in "[a-z]{0,12}",
            n in 0usize..3,
        ) {
            let e = Entry {
                time,
                seq,
                prev: (0..n).map(|i| format!("{i:064x}")).collect(),
                kind: EntryKind::Snapshot,
                outcome: Outcome::Warning,
                user,
                host: "officine".into(),
                summary,
                details: serde_json::json!({"files": 3}),
            };
            prop_assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        }
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        assert_eq!(Entry::decode(&[2, b'{']), Err(JournalError::Version(2)));
        assert!(matches!(
            Entry::decode(&[1, b'x']),
            Err(JournalError::Malformed(_))
        ));
        assert!(matches!(
            Entry::decode(&[]),
            Err(JournalError::Malformed(_))
        ));
    }
}
