//! Reusing what a killed run left: packs on the drive that no index file
//! lists. A first backup of tens of gigabytes to a USB drive takes an
//! hour; a snapshot (or a copy) killed half-way has made every pack it
//! committed durable, but writes the index files that list them only as
//! it goes or at its end. Before writing, the next run indexes those packs
//! from their sealed trailers, so their blobs are found and not written
//! again.
//!
//! When every unlisted pack was indexed, an index file that cannot be read
//! (cut by a power cut while it was written) carries nothing the index
//! lacks: index files are derived from the packs (FORMAT.md §6), and the
//! packs it listed were just indexed again from their trailers. It is then
//! removed, so that `check` does not report it for ever.
//!
//! Only when no other writer may be running: a pack being written by a
//! live snapshot is listed by that snapshot's own index file soon, and two
//! index files must not claim it. A lock whose owner surely no longer runs
//! (FORMAT.md §15) does not count, and is cleared.

use serde::Serialize;

use crate::backend::{FileKind, ObjectName};
use crate::error::Result;
use crate::format::index_file::{self, IndexedPack};
use crate::repo::lock::{holders, LockKind};
use crate::repo::Repository;

/// What was taken back.
#[derive(Debug, Default, Clone, Serialize)]
pub struct AdoptReport {
    /// Packs indexed.
    pub packs: u64,
    /// Blobs they hold that the index did not know.
    pub blobs: u64,
    /// Their bytes on the drive.
    pub bytes: u64,
    /// Packs whose trailer could not be read (left for check and prune).
    pub unreadable: u64,
    /// Damaged index files removed (short names), their packs indexed again.
    pub removed_index_files: Vec<String>,
    /// Why nothing was looked at (another writer running), if so.
    pub skipped: Option<String>,
}

/// Indexes the packs no index file lists. The caller holds its lock
/// (shared or exclusive); without one, nothing is done.
///
/// # Errors
/// Storage errors listing packs or writing index files.
pub fn adopt_leftover_packs(repo: &Repository) -> Result<AdoptReport> {
    let mut report = AdoptReport::default();
    let held = repo.held_lock();
    let mine = held
        .lock()
        .ok()
        .and_then(|h| h.as_ref().map(|(name, _)| name.clone()));
    let Some(mine) = mine else {
        report.skipped = Some("no lock held".into());
        return Ok(report);
    };
    for h in holders(repo)? {
        if h.name == mine || h.kind == LockKind::Mount {
            continue;
        }
        if h.is_gone() {
            let _ = repo.backend().delete(FileKind::Lock, &h.name);
            continue;
        }
        report.skipped = Some(format!("{} is running", h.describe()));
        return Ok(report);
    }
    repo.refresh_index()?;
    let indexed: std::collections::HashSet<_> = repo
        .index()
        .packs()?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut adopted = Vec::new();
    for (id, size) in repo.list_packs()? {
        if indexed.contains(&id) {
            continue;
        }
        let entries =
            match crate::repo::pack_writer::read_entries(repo.backend(), &id, size, repo.keys()) {
                Ok(e) => e,
                Err(_) => {
                    report.unreadable += 1;
                    continue;
                }
            };
        // Blobs the index knows elsewhere stay there; the rest are new.
        let ids: Vec<_> = entries.iter().map(|e| e.id).collect();
        let known = repo.index().lookup_many(repo.keys(), &ids)?;
        let fresh: Vec<_> = entries
            .into_iter()
            .zip(known)
            .filter(|(_, k)| k.is_none())
            .map(|(e, _)| e)
            .collect();
        if fresh.is_empty() {
            continue;
        }
        report.packs += 1;
        report.blobs += fresh.len() as u64;
        report.bytes += size;
        adopted.push(IndexedPack {
            id,
            size,
            entries: fresh,
        });
    }
    repo.write_index_files(&adopted)?;
    if report.unreadable == 0 {
        report.removed_index_files = remove_damaged_index_files(repo)?;
    }
    Ok(report)
}

/// Deletes the index files the last sync could not read; the caller has
/// just indexed every pack no readable index file lists. Nothing is
/// deleted unless another index file reads well now: when every read comes
/// back wrong (a failing cable or controller), the fault is in the reading,
/// not in the files. A file that reads well this time, or cannot be read at
/// all, is kept; so is one the backend refuses to delete (an append-only
/// key): `check` goes on reporting it.
fn remove_damaged_index_files(repo: &Repository) -> Result<Vec<String>> {
    let damaged = repo.damaged_index_files();
    if damaged.is_empty() {
        return Ok(Vec::new());
    }
    let decodes = |name: &ObjectName| -> Option<bool> {
        let id = name.to_id()?;
        let bytes = repo.backend().read(FileKind::Index, name).ok()??;
        Some(index_file::decode(repo.keys(), &id, &bytes).is_ok())
    };
    let witness = repo
        .backend()
        .list(FileKind::Index)?
        .into_iter()
        .find(|(name, _)| !damaged.contains(name))
        .is_some_and(|(name, _)| decodes(&name) == Some(true));
    if !witness {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    for name in damaged {
        if decodes(&name) == Some(false) && repo.backend().delete(FileKind::Index, &name).is_ok() {
            removed.push(name.short().to_owned());
        }
    }
    if !removed.is_empty() {
        repo.refresh_index()?;
    }
    Ok(removed)
}
