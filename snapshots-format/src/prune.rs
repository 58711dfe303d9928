//! Removing data no snapshot references (FORMAT.md §10.5; DESIGN invariant 3:
//! prune never loses a kept snapshot).
//!
//! 1. **Mark**: walk every snapshot's trees and mark each blob they
//!    reference (in SQLite temporary storage). Any unreadable snapshot or
//!    tree stops prune before anything changes: deleting on an incomplete
//!    mark would lose data.
//! 2. **Plan**: per pack, count unused blobs. Packs with nothing used are
//!    dropped; the emptiest of the others are repacked until the unused
//!    bytes left fit within `max_unused` of the repository.
//! 3. **Repack**: copy the used blobs (verified, still sealed; sealing binds
//!    kind and id, not place) into new packs, made durable.
//! 4. **Commit**: one index transaction points the copied blobs at the new
//!    packs and forgets the dropped packs.
//! 5. **Delete**: only now remove the dropped packs' files, and files no
//!    index row points to (left by interrupted runs).
//!
//! A crash before 4 leaves new packs nobody references (removed next time);
//! a crash during 5 leaves files the index no longer knows (removed next
//! time). At every instant every kept snapshot reads from indexed packs.

use std::collections::HashSet;

use serde::Serialize;

use crate::content::{Content, Extent};
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::index::PackUsage;
use crate::pack::{PackEntry, PackWriter};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::saver::PACK_TARGET;
use crate::store::Store;
use crate::tree::Payload;

/// How to prune.
#[derive(Debug, Clone, Copy)]
pub struct PruneOptions {
    /// Compute and report, change nothing.
    pub dry_run: bool,
    /// Share of the kept bytes allowed to stay unused inside packs (0.0-1.0).
    pub max_unused: f64,
}

/// What prune did (or would do).
#[derive(Debug, Default, Serialize)]
pub struct PruneReport {
    /// Snapshots whose data is kept.
    pub snapshots: u64,
    /// Distinct blobs referenced.
    pub blobs_used: u64,
    /// Blobs removed.
    pub blobs_removed: u64,
    /// Packs deleted outright (nothing used).
    pub packs_deleted: u64,
    /// Packs rewritten without their unused blobs.
    pub packs_repacked: u64,
    /// New packs written by the repack.
    pub packs_written: u64,
    /// Pack files the index did not know, removed.
    pub unindexed_removed: u64,
    /// Bytes of the repository before.
    pub bytes_before: u64,
    /// Bytes freed on the drive.
    pub bytes_freed: u64,
    /// Unused bytes left in packs below the repack threshold.
    pub bytes_unused_left: u64,
}

/// Phases, announced to a hook (tests kill prune at each one).
pub const PHASES: [&str; 4] = ["marked", "repacked", "indexed", "deleting"];

/// Prunes `repo`. The caller holds the exclusive lock.
///
/// # Errors
/// Any unreadable snapshot or tree, an index that misses referenced blobs
/// (run rebuild-index first), a damaged blob met while repacking, I/O.
pub fn prune(
    repo: &Repository,
    opts: PruneOptions,
    progress: &dyn Progress,
    on_phase: &dyn Fn(&str),
) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    repo.store().remove_stale_temp_files()?;
    let (snapshots, errors) = repo.snapshots()?;
    if let Some(e) = errors.into_iter().next() {
        return Err(Error::Restore(format!(
            "prune stopped before changing anything: {e}. Run `coffre check`; remove a damaged record with `coffre forget ID` if it cannot be repaired"
        )));
    }
    report.snapshots = snapshots.len() as u64;

    // 1. Mark.
    let index = repo.index();
    index.used_begin()?;
    let marked = (|| -> Result<u64> {
        let mut n = 0;
        for (_, snap) in &snapshots {
            n += mark_tree(repo, &snap.tree, 0)?;
        }
        Ok(n)
    })();
    let used = match marked {
        Ok(n) => n,
        Err(e) => {
            index.used_abort();
            return Err(e);
        }
    };
    index.used_end()?;
    report.blobs_used = used;
    let missing = index.used_missing()?;
    if missing > 0 {
        return Err(Error::Restore(format!(
            "prune stopped before changing anything: {missing} blob(s) that snapshots need are missing from the index. Run `coffre rebuild-index`, then `coffre check`"
        )));
    }
    on_phase("marked");

    // 2. Plan.
    let mut drop: Vec<PackId> = Vec::new();
    let mut partial: Vec<PackUsage> = Vec::new();
    index.for_each_pack_usage(repo.keys(), |u: PackUsage| {
        report.bytes_before += u.size;
        if u.used.is_empty() {
            report.blobs_removed += u.unused;
            report.bytes_freed += u.size;
            drop.push(u.pack);
        } else if u.unused > 0 {
            partial.push(u);
        }
        Ok(())
    })?;
    // Unused bytes may stay up to `max_unused` of what the repository keeps
    // (as restic counts it): repack the emptiest packs first until the rest
    // fits the allowance, so little is rewritten for much space.
    let kept_bytes = report.bytes_before - report.bytes_freed;
    let mut left: u64 = partial.iter().map(|u| u.unused_bytes).sum();
    let allowance = (opts.max_unused * kept_bytes as f64) as u64;
    partial.sort_by(|a, b| (b.unused_bytes * a.size).cmp(&(a.unused_bytes * b.size)));
    let mut repack: Vec<PackUsage> = Vec::new();
    for u in partial {
        if left > allowance {
            left -= u.unused_bytes;
            report.blobs_removed += u.unused;
            repack.push(u);
        }
    }
    report.bytes_unused_left = left;
    let indexed: HashSet<PackId> = index.packs()?.into_iter().map(|(id, _)| id).collect();
    let unindexed: Vec<(PackId, u64)> = repo
        .store()
        .list_packs()?
        .into_iter()
        .filter(|(id, _)| !indexed.contains(id))
        .collect();
    report.unindexed_removed = unindexed.len() as u64;
    report.bytes_freed += unindexed.iter().map(|(_, s)| s).sum::<u64>();
    report.packs_deleted = drop.len() as u64;
    report.packs_repacked = repack.len() as u64;
    if opts.dry_run {
        report.bytes_freed += repack.iter().map(|u| u.unused_bytes).sum::<u64>();
        return Ok(report);
    }

    // 3. Repack.
    let total: u64 = repack.iter().map(|u| u.size).sum();
    progress.set_total(repack.len() as u64, total);
    let mut written = Vec::new();
    // Data and metadata go to separate packs, as when they were first saved.
    let mut writers: [Option<PackWriter>; 2] = [None, None];
    for u in &repack {
        let path = repo.store().pack_path(&u.pack);
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        for e in &u.used {
            let sealed = Store::read_at(&file, &path, u64::from(e.offset), e.length as usize)?;
            // Never carry damage forward silently.
            repo.decode_blob(e.kind, &e.id, &sealed)?;
            let slot = &mut writers[usize::from(e.kind.is_metadata())];
            let w = match slot {
                Some(w) => w,
                None => slot.insert(PackWriter::new(repo.store())?),
            };
            w.add(e.id, e.kind, &sealed)?;
            if w.len() >= PACK_TARGET {
                let full = slot.take().expect("just used");
                written.push(full.finish(repo.keys(), repo.store())?);
            }
        }
        progress.advance(1, u.size);
        drop.push(u.pack);
        report.bytes_freed += u.size;
    }
    for w in writers.into_iter().flatten().filter(|w| !w.is_empty()) {
        written.push(w.finish(repo.keys(), repo.store())?);
    }
    report.packs_written = written.len() as u64;
    report.bytes_freed = report
        .bytes_freed
        .saturating_sub(written.iter().map(|p| p.size).sum());
    on_phase("repacked");

    // 4. Commit.
    let new: Vec<(PackId, u64, &[PackEntry])> = written
        .iter()
        .map(|p| (p.id, p.size, &p.entries[..]))
        .collect();
    index.replace_packs(repo.keys(), &new, &drop)?;
    on_phase("indexed");

    // 5. Delete.
    let mut first = true;
    for id in drop.iter().chain(unindexed.iter().map(|(id, _)| id)) {
        repo.store().delete_pack(id)?;
        if first {
            on_phase("deleting");
            first = false;
        }
    }
    Ok(report)
}

/// Marks a tree and everything below it; returns how many blobs were newly
/// marked. A tree already marked was walked whole before: skipped.
fn mark_tree(repo: &Repository, id: &BlobId, depth: usize) -> Result<u64> {
    let index = repo.index();
    if !index.used_insert(id)? {
        return Ok(0);
    }
    if depth > crate::tree::MAX_DEPTH {
        return Err(Error::corrupt(
            "tree",
            id.short(),
            "folders nested too deep",
        ));
    }
    let mut n = 1;
    let (tree, pieces) = repo.load_tree_pieces(id)?;
    for piece in &pieces {
        if index.used_insert(piece)? {
            n += 1;
        }
    }
    for node in &tree.nodes {
        match &node.payload {
            Payload::Dir(sub) => n += mark_tree(repo, sub, depth + 1)?,
            Payload::File(Content::Inline(extents)) => n += mark_extents(repo, extents)?,
            Payload::File(content @ Content::Pieces(ids)) => {
                let mut fresh = false;
                for piece in ids {
                    if index.used_insert(piece)? {
                        n += 1;
                        fresh = true;
                    }
                }
                if fresh {
                    n += mark_extents(repo, &repo.load_extents(content)?)?;
                }
            }
            _ => {}
        }
    }
    Ok(n)
}

fn mark_extents(repo: &Repository, extents: &[Extent]) -> Result<u64> {
    let mut n = 0;
    for e in extents {
        if let Extent::Chunk { id, .. } = e {
            if repo.index().used_insert(id)? {
                n += 1;
            }
        }
    }
    Ok(n)
}
