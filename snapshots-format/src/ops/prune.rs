//! Removing data no snapshot references (FORMAT.md §10.5; docs/DESIGN.md
//! invariant 3: prune never loses a kept snapshot).
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
//! 4. **Verify**: read the trailer of every pack to delete, from the pack
//!    itself; each blob in it that a kept snapshot uses must have another
//!    copy that decrypts and verifies, or prune stops, having deleted
//!    nothing. The index alone (a cache, or files anyone could have
//!    swapped) never decides a deletion.
//! 5. **Commit**: new index files list the new packs and the kept packs of
//!    the index files that listed dropped ones; then those files go.
//! 6. **Delete**: only now remove the dropped packs, and packs no index
//!    file lists (left by interrupted runs).
//!
//! A crash before 5 leaves new packs nobody lists (removed next time); a
//! crash during 5 leaves packs listed twice (harmless); a crash during 6
//! leaves packs no index file lists (removed next time). At every instant
//! every kept snapshot reads from listed packs.

use std::collections::HashSet;

use serde::Serialize;

use crate::backend::{FileKind, ObjectName};
use crate::error::{mib, Error, Result};
use crate::format::content::{Content, Extent};
use crate::format::index_file::IndexedPack;
use crate::format::pack::PackEntry;
use crate::format::tree::Payload;
use crate::id::{BlobId, PackId};
use crate::progress::Progress;
use crate::repo::chunk_list_reader::ChunkListReader;
use crate::repo::index::PackUsage;
use crate::repo::pack_writer::{FinishedPack, PackWriter};
use crate::repo::saver::PACK_TARGET;
use crate::repo::{ListingReader, Repository};

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
    /// Packs that should have been repacked but were left because the
    /// drive had no room for their replacement (see the warning).
    pub packs_left_for_room: u64,
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
    // Also brings the cache in line with the drive, under our lock.
    repo.prepare_write()?;
    let (snapshots, errors) = repo.snapshots()?;
    if let Some(e) = errors.into_iter().next() {
        // A passing failure stays one: the caller may simply try again.
        if e.is_transient() {
            return Err(e);
        }
        return Err(Error::Refused(format!(
            "prune stopped before changing anything: {e}. Run `coffre check`; remove a damaged record with `coffre forget ID` if it cannot be repaired"
        )));
    }
    report.snapshots = snapshots.len() as u64;

    // 1. Mark.
    let index = repo.index();
    index.used_begin()?;
    let marked = (|| -> Result<()> {
        for (_, snap) in &snapshots {
            mark_tree(repo, &snap.tree, 0)?;
        }
        index.used_end()
    })();
    if let Err(e) = marked {
        index.used_abort();
        return Err(stopped(e));
    }
    report.blobs_used = index.used_count()?;
    let missing = index.used_missing()?;
    if missing > 0 {
        return Err(Error::Refused(format!(
            "prune stopped before changing anything: {missing} blob(s) that snapshots need are missing from the index. Run `coffre rebuild-index`, then `coffre check`"
        )));
    }
    on_phase("marked");

    // 2. Plan.
    let mut drop: Vec<PackId> = Vec::new();
    let mut partial: Vec<PackUsage> = Vec::new();
    for u in index.pack_usage(repo.keys()).map_err(stopped)? {
        report.bytes_before += u.size;
        if u.used == 0 {
            report.blobs_removed += u.unused;
            report.bytes_freed += u.size;
            drop.push(u.pack);
        } else if u.unused > 0 {
            partial.push(u);
        }
    }
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
            repack.push(u);
        }
    }
    report.bytes_unused_left = left;
    let indexed: HashSet<PackId> = index.packs()?.into_iter().map(|(id, _)| id).collect();
    let unindexed: Vec<(PackId, u64)> = repo
        .list_packs()?
        .into_iter()
        .filter(|(id, _)| !indexed.contains(id))
        .collect();
    report.unindexed_removed = unindexed.len() as u64;
    report.bytes_freed += unindexed.iter().map(|(_, s)| s).sum::<u64>();
    report.packs_deleted = drop.len() as u64;
    if opts.dry_run {
        report.packs_repacked = repack.len() as u64;
        report.blobs_removed += repack.iter().map(|u| u.unused).sum::<u64>();
        report.bytes_freed += repack.iter().map(|u| u.unused_bytes).sum::<u64>();
        return Ok(report);
    }

    // 3 to 6, in rounds when the drive lacks the room to write every new
    // pack before the old ones go (a full drive is when prune is needed
    // most): first the packs nothing uses, which need no room, then as many
    // packs to repack as fit at a time.
    let total: u64 = repack.iter().map(|u| u.size).sum();
    progress.set_total(repack.len() as u64, total);
    let all_fit = fits(
        repo.backend().free_space(),
        repack.iter().map(room_for).sum(),
    );
    let (now, mut later) = if all_fit {
        (&repack[..], &[][..])
    } else {
        (&[][..], &repack[..])
    };
    let mut step = Step {
        repo,
        progress,
        on_phase,
        report: &mut report,
    };
    step.run(now, drop, unindexed)?;
    while !later.is_empty() {
        let free = repo.backend().free_space();
        let mut n = 0;
        let mut room = 0;
        while n < later.len() && fits(free, room + room_for(&later[n])) {
            room += room_for(&later[n]);
            n += 1;
        }
        if n == 0 {
            // Whatever could be freed without room has been: say what is
            // missing for the rest rather than fail with nothing done.
            let need = room_for(&later[0]) + ROOM_MARGIN;
            step.report.packs_left_for_room = later.len() as u64;
            step.report.bytes_unused_left += later.iter().map(|u| u.unused_bytes).sum::<u64>();
            step.progress.warn(&format!(
                "{} pack(s) were not repacked: the drive has {} free and repacking the next needs about {}. Forget more snapshots or free space on the drive, then prune again",
                later.len(),
                mib(free.unwrap_or(0)),
                mib(need),
            ));
            break;
        }
        step.run(&later[..n], Vec::new(), Vec::new())?;
        later = &later[n..];
    }
    Ok(report)
}

/// Room kept free beyond the new packs, for the index files and trailers
/// a round writes.
const ROOM_MARGIN: u64 = 2 << 20;

/// Room a repacked pack's replacement takes: its used bytes.
fn room_for(u: &PackUsage) -> u64 {
    u.size.saturating_sub(u.unused_bytes)
}

/// Whether `room` bytes of new packs fit in `free` (unknown: assume so).
fn fits(free: Option<u64>, room: u64) -> bool {
    free.is_none_or(|f| f >= room.saturating_add(ROOM_MARGIN))
}

/// Steps 3 to 6 of one round of prune.
struct Step<'a> {
    repo: &'a Repository,
    progress: &'a dyn Progress,
    on_phase: &'a dyn Fn(&str),
    report: &'a mut PruneReport,
}

impl Step<'_> {
    /// Repacks `repack`, then removes its packs, `drop` and `unindexed`.
    fn run(
        &mut self,
        repack: &[PackUsage],
        mut drop: Vec<PackId>,
        unindexed: Vec<(PackId, u64)>,
    ) -> Result<()> {
        let Step {
            repo,
            progress,
            on_phase,
            ..
        } = *self;
        let index = repo.index();
        // 3. Repack.
        let room: u64 = repack.iter().map(room_for).sum();
        let written = repack_packs(repo, repack, progress)
            .map_err(|e| e.needing(Some(room + ROOM_MARGIN), repo.backend().free_space()))?;
        let report = &mut *self.report;
        for u in repack {
            drop.push(u.pack);
            report.bytes_freed += u.size;
            report.blobs_removed += u.unused;
        }
        report.packs_repacked += repack.len() as u64;
        report.packs_written += written.len() as u64;
        report.bytes_freed = report
            .bytes_freed
            .saturating_sub(written.iter().map(|p| p.size).sum());
        on_phase("repacked");

        // 4. Verify, from the packs themselves, before anything changes.
        let mut doomed: Vec<PackId> = drop.clone();
        doomed.extend(unindexed.iter().map(|(id, _)| *id));
        let doomed = verify_doomed(repo, &doomed, &written, progress)?;
        // A pack kept because its own trailer could not be read stays listed
        // as it is: it may hold anything.
        let safe: HashSet<PackId> = doomed.iter().copied().collect();
        drop.retain(|p| safe.contains(p));

        // 5. Commit: index files listing the new packs and the packs kept
        // from the files that listed dropped ones, then those files go.
        let touched = index.files_listing(&drop)?;
        let dropped: HashSet<PackId> = drop.iter().copied().collect();
        let mut listing: Vec<IndexedPack> = written.iter().map(|p| p.listing()).collect();
        let mut seen: HashSet<PackId> = HashSet::new();
        for file in &touched {
            for (id, size) in index.packs_of_file(file)? {
                if dropped.contains(&id) || !seen.insert(id) {
                    continue;
                }
                // The pack's own trailer is the full list; the cache may hold
                // another pack's location for a blob stored twice.
                let entries = match crate::repo::pack_writer::read_entries(
                    repo.backend(),
                    &id,
                    size,
                    repo.keys(),
                ) {
                    Ok(entries) => entries,
                    Err(_) => index.entries_of_pack(repo.keys(), &id)?,
                };
                listing.push(IndexedPack { id, size, entries });
            }
        }
        repo.write_index_files(&listing)?;
        let new: Vec<(PackId, u64, &[PackEntry])> = written
            .iter()
            .map(|p| (p.id, p.size, &p.entries[..]))
            .collect();
        // The drive first: a crash after these deletions leaves a cache that
        // still names the deleted files, which the next open notices and
        // rebuilds from the drive; the other way round, a cache already
        // updated would keep trusting a stale file left on the drive.
        // Nothing is deleted unless this run still holds the repository alone.
        repo.confirm_lock()?;
        for file in &touched {
            repo.backend()
                .delete(FileKind::Index, &ObjectName::id(file))?;
        }
        index.replace_packs(repo.keys(), &new, &drop)?;
        index.forget_files(&touched)?;
        on_phase("indexed");

        // 6. Delete.
        repo.confirm_lock()?;
        let mut first = true;
        for id in &doomed {
            repo.backend()
                .delete(FileKind::Pack, &ObjectName::pack(id))?;
            if first {
                on_phase("deleting");
                first = false;
            }
        }
        Ok(())
    }
}

/// Copies the used blobs of `repack` into new durable packs.
fn repack_packs(
    repo: &Repository,
    repack: &[PackUsage],
    progress: &dyn Progress,
) -> Result<Vec<FinishedPack>> {
    let mut written = Vec::new();
    // Data and metadata go to separate packs, as when they were first saved.
    let mut writers: [Option<PackWriter>; 2] = [None, None];
    for u in repack {
        let name = ObjectName::pack(&u.pack);
        for e in &repo.index().used_entries_of_pack(repo.keys(), &u.pack)? {
            let sealed = repo.backend().read_at(
                FileKind::Pack,
                &name,
                u64::from(e.offset),
                e.length as usize,
            )?;
            // Never carry damage forward silently.
            repo.decode_blob(e.kind, &e.id, &sealed)?;
            let slot = &mut writers[usize::from(e.kind.is_metadata())];
            let w = match slot {
                Some(w) => w,
                None => slot.insert(PackWriter::new(repo.backend())?),
            };
            w.add(e.id, e.kind, &sealed)?;
            if w.len() >= PACK_TARGET {
                if let Some(full) = slot.take() {
                    written.push(full.finish(repo.keys())?);
                }
            }
        }
        progress.advance(1, u.size);
    }
    for w in writers.into_iter().flatten().filter(|w| !w.is_empty()) {
        written.push(w.finish(repo.keys())?);
    }
    Ok(written)
}

/// An error met while marking or planning, before anything changed: said
/// so, unless it is a passing failure (then the caller may just retry).
fn stopped(e: Error) -> Error {
    if e.is_transient() || matches!(e, Error::Refused(_)) {
        return e;
    }
    Error::Refused(format!(
        "prune stopped before changing anything: {e}. Run `coffre rebuild-index`, then `coffre check`"
    ))
}

/// Reads the trailer of each pack about to be deleted, and checks that
/// every blob it holds that a kept snapshot uses has a copy elsewhere that
/// decrypts and verifies: prune never deletes on the index's word alone (a
/// tampered cache or index file could name the wrong pack). Returns the
/// packs safe to delete; a pack whose trailer cannot be read is kept (it
/// may hold anything) and reported.
///
/// # Errors
/// [`Error::Refused`] naming the first blob without a verified copy:
/// nothing has been deleted.
fn verify_doomed(
    repo: &Repository,
    doomed: &[PackId],
    written: &[crate::repo::pack_writer::FinishedPack],
    progress: &dyn Progress,
) -> Result<Vec<PackId>> {
    let index = repo.index();
    let doomed_set: HashSet<PackId> = doomed.iter().copied().collect();
    let mut copies: std::collections::HashMap<BlobId, (PackId, PackEntry)> =
        std::collections::HashMap::new();
    for p in written {
        for e in &p.entries {
            copies.insert(e.id, (p.id, *e));
        }
    }
    let sizes: std::collections::HashMap<PackId, u64> = repo.list_packs()?.into_iter().collect();
    let refuse = |blob: &BlobId, pack: &PackId, why: String| {
        Error::Refused(format!(
            "prune stopped before deleting anything: blob {} that kept snapshots use is in pack {} (to be deleted) and {why}. Run `coffre check --read-data`, then `coffre rebuild-index`",
            blob.short(),
            pack.short()
        ))
    };
    let mut safe = Vec::with_capacity(doomed.len());
    for pack in doomed {
        let Some(&size) = sizes.get(pack) else {
            // Already gone (an earlier run was interrupted while deleting).
            continue;
        };
        let entries =
            match crate::repo::pack_writer::read_entries(repo.backend(), pack, size, repo.keys()) {
                Ok(e) => e,
                Err(e) => {
                    progress.warn(&format!(
                        "pack {} kept: its trailer cannot be read ({e})",
                        pack.short()
                    ));
                    continue;
                }
            };
        let ids: Vec<BlobId> = entries.iter().map(|e| e.id).collect();
        let used = index.used_contains_many(&ids)?;
        let used: Vec<&PackEntry> = entries
            .iter()
            .zip(used)
            .filter(|(_, u)| *u)
            .map(|(e, _)| e)
            .collect();
        for e in used {
            if let Some((copy, at)) = copies.get(&e.id) {
                let sealed = repo.backend().read_at(
                    FileKind::Pack,
                    &ObjectName::pack(copy),
                    u64::from(at.offset),
                    at.length as usize,
                )?;
                repo.decode_blob(at.kind, &e.id, &sealed).map_err(|err| {
                    refuse(&e.id, pack, format!("its new copy does not verify ({err})"))
                })?;
                continue;
            }
            let loc = index
                .lookup(repo.keys(), &e.id)
                .map_err(|err| {
                    refuse(
                        &e.id,
                        pack,
                        format!("its index entry is unreadable ({err})"),
                    )
                })?
                .ok_or_else(|| refuse(&e.id, pack, "the index knows no copy of it".into()))?;
            if doomed_set.contains(&loc.pack) {
                return Err(refuse(&e.id, pack, "no copy of it is kept".into()));
            }
            repo.load_blob(e.kind, &e.id).map_err(|err| {
                refuse(
                    &e.id,
                    pack,
                    format!("its other copy does not verify ({err})"),
                )
            })?;
        }
        safe.push(*pack);
    }
    Ok(safe)
}

/// Marks a tree and everything below it. A tree already marked was walked
/// whole before: skipped.
fn mark_tree(repo: &Repository, id: &BlobId, depth: usize) -> Result<()> {
    let index = repo.index();
    if !index.used_insert(id)? {
        return Ok(());
    }
    if depth > crate::format::tree::MAX_DEPTH {
        return Err(Error::corrupt(
            "tree",
            id.short(),
            "folders nested too deep",
        ));
    }
    let listing = ListingReader::open(repo, id)?;
    for piece in listing.pieces() {
        index.used_insert(piece)?;
    }
    for node in listing {
        match &node?.payload {
            Payload::Dir(sub) => mark_tree(repo, sub, depth + 1)?,
            Payload::File(Content::Inline(extents)) => mark_extents(repo, extents)?,
            Payload::File(Content::Pieces(ids)) => {
                // A piece marked already had its extents marked then: a
                // database changing 1 % of its pages a day shares most of
                // its pieces with the day before.
                let mut fresh = Vec::new();
                for piece in ids {
                    if index.used_insert(piece)? {
                        fresh.push(*piece);
                    }
                }
                for window in ChunkListReader::new(repo, &Content::Pieces(fresh)) {
                    mark_extents(repo, &window?)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Marks the chunks of `extents`, and the bases of those that are deltas
/// (used as long as the delta is). Noted in sorted batches, not inserted
/// one at a time: nothing asks whether a chunk was marked before.
fn mark_extents(repo: &Repository, extents: &[Extent]) -> Result<()> {
    for e in extents {
        if let Extent::Chunk { id, base, .. } = e {
            for id in std::iter::once(id).chain(base) {
                repo.index().used_note(id)?;
            }
        }
    }
    Ok(())
}
