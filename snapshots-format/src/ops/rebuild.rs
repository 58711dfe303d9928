//! Rebuilding the index from the packs alone (docs/DESIGN.md invariant 5):
//! read each pack's footer and sealed trailer (a few KiB, not the pack),
//! index what it lists, then write index files anew and remove the old
//! ones. A pack whose trailer cannot be read (damaged) is reported and left
//! out. When two packs claim the same blob, both copies are read and the
//! one that verifies is kept: a decoy pack carrying a copy of a real
//! pack's trailer must not take the real pack's place.

use std::collections::HashSet;

use serde::Serialize;

use crate::backend::{FileKind, ObjectName};
use crate::error::Result;
use crate::format::header::INDEX_FILES_VERSION;
use crate::format::index_file::IndexedPack;
use crate::format::pack::PackEntry;
use crate::id::PackId;
use crate::progress::Progress;
use crate::repo::Repository;

/// What a rebuild found.
#[derive(Debug, Default, Serialize)]
pub struct RebuildReport {
    /// Packs indexed.
    pub packs: u64,
    /// Blobs indexed.
    pub blobs: u64,
    /// Packs left out, with the reason.
    pub unreadable: Vec<String>,
    /// Blobs claimed by two packs, with which copy was kept and why.
    pub duplicates: Vec<String>,
    /// Index files written.
    pub index_files_written: u64,
    /// Old index files removed.
    pub index_files_removed: u64,
    /// Old index files kept because they list a pack that could not be read.
    pub index_files_kept: u64,
}

/// Packs whose entries are gathered before they are written.
const PACKS_PER_GROUP: usize = 256;

/// Indexes every pack of `repo` from its trailer and replaces the index
/// files. The caller holds the exclusive lock.
///
/// # Errors
/// Storage errors; damaged packs are reported, not fatal.
pub fn rebuild_index(repo: &Repository, progress: &dyn Progress) -> Result<RebuildReport> {
    repo.backend().remove_leftovers()?;
    let index = repo.index();
    index.clear()?;
    let packs = repo.list_packs()?;
    progress.set_total(packs.len() as u64, packs.iter().map(|p| p.1).sum());
    let mut report = RebuildReport::default();
    let mut unreadable_packs = Vec::new();
    for (id, size) in packs {
        match crate::repo::pack_writer::read_entries(repo.backend(), &id, size, repo.keys()) {
            Ok(entries) => {
                report.packs += 1;
                report.blobs += entries.len() as u64;
                add_pack(repo, id, size, entries, &mut report)?;
            }
            Err(e) => {
                let msg = format!("pack {}: {e}", id.short());
                progress.warn(&msg);
                report.unreadable.push(msg);
                unreadable_packs.push(id);
            }
        }
        progress.advance(1, size);
    }
    for d in &report.duplicates {
        progress.warn(d);
    }

    // New index files from the chosen locations; then the old files go.
    let old: Vec<ObjectName> = repo
        .backend()
        .list(FileKind::Index)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut written: HashSet<[u8; 32]> = HashSet::new();
    let all = index.packs()?;
    // A few hundred packs' entries in memory at a time.
    for group in all.chunks(PACKS_PER_GROUP) {
        let mut listing = Vec::with_capacity(group.len());
        for (id, size) in group {
            let entries = index.entries_of_pack(repo.keys(), id)?;
            listing.push(IndexedPack {
                id: *id,
                size: *size,
                entries,
            });
        }
        for name in repo.write_index_files(&listing)? {
            written.insert(name);
            report.index_files_written += 1;
        }
    }
    repo.raise_format(INDEX_FILES_VERSION)?;
    for (name, _) in repo.backend().list(FileKind::LegacyIndex)? {
        repo.backend().delete(FileKind::LegacyIndex, &name)?;
    }
    // An old file that lists a pack whose trailer could not be read now is
    // kept: it may be the only record of a pack that is only hidden or
    // damaged for now (put back, the pack is found again).
    let unreadable: HashSet<PackId> = unreadable_packs.into_iter().collect();
    let mut removed = Vec::new();
    for name in old {
        let Some(id) = name.to_id() else { continue };
        if written.contains(&id) {
            continue;
        }
        let lists_unreadable = !unreadable.is_empty()
            && repo
                .backend()
                .read(FileKind::Index, &name)
                .ok()
                .flatten()
                .and_then(|b| crate::format::index_file::decode(repo.keys(), &id, &b).ok())
                .is_some_and(|packs| packs.iter().any(|p| unreadable.contains(&p.id)));
        if lists_unreadable {
            report.index_files_kept += 1;
            continue;
        }
        repo.backend().delete(FileKind::Index, &name)?;
        removed.push(id);
    }
    index.forget_files(&removed)?;
    report.index_files_removed = removed.len() as u64;
    Ok(report)
}

/// Indexes one pack's entries; a blob another pack already holds is
/// settled by reading both copies.
fn add_pack(
    repo: &Repository,
    id: PackId,
    size: u64,
    entries: Vec<PackEntry>,
    report: &mut RebuildReport,
) -> Result<()> {
    let index = repo.index();
    let ids: Vec<_> = entries.iter().map(|e| e.id).collect();
    let existing = index.lookup_many(repo.keys(), &ids)?;
    let mut fresh = Vec::with_capacity(entries.len());
    let mut winners = Vec::new();
    for (e, old) in entries.into_iter().zip(existing) {
        let Some(old) = old else {
            fresh.push(e);
            continue;
        };
        let verifies = |pack: &PackId, at: &PackEntry| {
            repo.backend()
                .read_at(
                    FileKind::Pack,
                    &ObjectName::pack(pack),
                    u64::from(at.offset),
                    at.length as usize,
                )
                .and_then(|sealed| repo.decode_blob(at.kind, &at.id, &sealed))
                .is_ok()
        };
        let old_entry = PackEntry {
            id: e.id,
            kind: old.kind,
            offset: old.offset,
            length: old.length,
        };
        let (old_ok, new_ok) = (verifies(&old.pack, &old_entry), verifies(&id, &e));
        let kept = if !old_ok && new_ok {
            winners.push(e);
            id
        } else {
            old.pack
        };
        if !(old_ok && new_ok) {
            report.duplicates.push(format!(
                "blob {} is claimed by packs {} and {}; the copy in {} {}",
                e.id.short(),
                old.pack.short(),
                id.short(),
                kept.short(),
                if old_ok || new_ok {
                    "verifies and is kept (the other is damaged or a decoy)"
                } else {
                    "is kept, but neither copy verifies"
                }
            ));
        }
    }
    index.add_packs(repo.keys(), &[(id, size, &fresh[..])])?;
    if !winners.is_empty() {
        index.replace_packs(repo.keys(), &[(id, size, &winners[..])], &[])?;
    }
    Ok(())
}
