//! Collect: what the repository holds, read once.

use anyhow::Result;
use snapshots_format::format::journal::Entry;
use snapshots_format::format::policy::Policy;
use snapshots_format::format::snapshot::Snapshot;
use snapshots_format::{FileKind, Repository, SnapshotId};

use crate::config::Config;

/// What the repository says, read once.
pub(super) struct Facts {
    /// Journal entries, in the journal's order.
    pub(super) entries: Vec<Entry>,
    /// Removed, replaced or reordered entries (or an unreadable journal).
    pub(super) problems: Vec<String>,
    /// The snapshot records still in the repository.
    pub(super) records: Vec<(SnapshotId, Snapshot)>,
    /// The data's size on the drive now (sum of the packs), if listable.
    pub(super) size_now: Option<u64>,
    /// Where the repository is.
    pub(super) location: String,
    /// The retention policy, and where it comes from.
    pub(super) policy: Option<(Policy, bool)>,
}

pub(super) fn collect(repo: &Repository, config: Option<&Config>) -> Result<Facts> {
    let (entries, problems) = match repo.journal() {
        Ok(j) => (j.entries.into_iter().map(|(_, e)| e).collect(), j.problems),
        Err(e) => (Vec::new(), vec![format!("the journal cannot be read: {e}")]),
    };
    let records = crate::commands::snapshots(repo)?;
    let size_now = match repo.backend().list(FileKind::Pack) {
        Ok(packs) => Some(packs.iter().map(|(_, size)| size).sum()),
        Err(e) => {
            eprintln!("warning: the repository's size cannot be measured ({e}); the size chart adds up the journal instead");
            None
        }
    };
    let configured = config.and_then(|c| c.retention.policy());
    let policy = match configured {
        Some(p) => Some((p, true)),
        None => match repo.load_policy() {
            Ok(p) => p.map(|p| (p, false)),
            Err(e) => {
                eprintln!(
                    "warning: the retention policy saved in the repository cannot be read: {e}"
                );
                None
            }
        },
    };
    Ok(Facts {
        entries,
        problems,
        records,
        size_now,
        location: repo.backend().location(),
        policy,
    })
}
