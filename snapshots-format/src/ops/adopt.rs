//! Reusing what a killed run left: packs on the drive that no index file
//! lists. A first backup of tens of gigabytes to a USB drive takes an
//! hour; a snapshot (or a copy) killed half-way has made every pack it
//! committed durable, but writes the index files that list them only as
//! it goes or at its end. Before writing, the next run indexes those packs
//! from their sealed trailers, so their blobs are found and not written
//! again.
//!
//! Only when no other writer may be running: a pack being written by a
//! live snapshot is listed by that snapshot's own index file soon, and two
//! index files must not claim it. A lock whose owner surely no longer runs
//! (FORMAT.md §15) does not count, and is cleared.

use serde::Serialize;

use crate::error::Result;
use crate::format::index_file::IndexedPack;
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
            let _ = repo
                .backend()
                .delete(crate::backend::FileKind::Lock, &h.name);
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
    Ok(report)
}
