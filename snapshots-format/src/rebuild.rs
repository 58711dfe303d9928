//! Rebuilding the index from the pack trailers alone (DESIGN invariant 5):
//! read each pack's footer and sealed trailer (a few KiB, not the pack),
//! and index what it lists. A pack whose trailer cannot be read (left
//! incomplete by a crash, or damaged) is reported and left out.

use serde::Serialize;

use crate::error::{IoContext, Result};
use crate::pack::{self, PackEntry};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::store::Store;
use crate::PackId;

/// What a rebuild found.
#[derive(Debug, Default, Serialize)]
pub struct RebuildReport {
    /// Packs indexed.
    pub packs: u64,
    /// Blobs indexed.
    pub blobs: u64,
    /// Packs left out, with the reason.
    pub unreadable: Vec<String>,
}

/// Packs indexed per transaction: one fsync per batch, not per pack.
const BATCH: usize = 256;

/// Indexes every pack of `repo` (whose index should be fresh; see
/// [`Repository::open_with_fresh_index`]).
pub fn rebuild_index(repo: &Repository, progress: &dyn Progress) -> Result<RebuildReport> {
    let packs = repo.store().list_packs()?;
    progress.set_total(packs.len() as u64, packs.iter().map(|p| p.1).sum());
    let mut report = RebuildReport::default();
    let mut batch: Vec<(PackId, u64, Vec<PackEntry>)> = Vec::new();
    for (id, size) in packs {
        match read_entries(repo, &id, size) {
            Ok(entries) => {
                report.packs += 1;
                report.blobs += entries.len() as u64;
                batch.push((id, size, entries));
            }
            Err(e) => {
                let msg = format!("pack {}: {e}", id.short());
                progress.warn(&msg);
                report.unreadable.push(msg);
            }
        }
        progress.advance(1, size);
        if batch.len() >= BATCH {
            flush(repo, &mut batch)?;
        }
    }
    flush(repo, &mut batch)?;
    Ok(report)
}

fn flush(repo: &Repository, batch: &mut Vec<(PackId, u64, Vec<PackEntry>)>) -> Result<()> {
    let refs: Vec<(PackId, u64, &[PackEntry])> =
        batch.iter().map(|(id, s, e)| (*id, *s, &e[..])).collect();
    repo.index().add_packs(repo.keys(), &refs)?;
    batch.clear();
    Ok(())
}

/// Reads a pack's trailer through positioned reads.
pub fn read_entries(repo: &Repository, id: &PackId, size: u64) -> Result<Vec<PackEntry>> {
    let path = repo.store().pack_path(id);
    let file = std::fs::File::open(&path).at(&path)?;
    let name = id.short();
    let (start, sealed) = pack::locate_trailer(&name, size, |off, len| {
        Store::read_at(&file, &path, off, len)
    })?;
    pack::open_trailer(repo.keys(), &name, &sealed, start)
}
