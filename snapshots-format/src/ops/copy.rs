//! Copying snapshots from one repository to another (`coffre copy`): the
//! second drive of a rotation, or an off-site copy. Everything goes through
//! [`crate::backend::Backend`], so any backend can be either side.
//!
//! **Identity.** A snapshot is "already there" when the target holds a
//! record equal to it once what a copy rewrites is blanked: the parent (an
//! id of the other repository) and the root tree (re-chunked content gets
//! other ids). Time to the nanosecond, host, sources, label, tags, root
//! metadata and the run's summary must all match, so two runs never look
//! alike, and no new field is needed: a copy reads as an original to every
//! Coffre, and copying back the other way finds it (drives rotate).
//!
//! **Keys.** A target made by [`init_target`] wraps the source's master key
//! (under its own passphrase): blob ids and chunk boundaries are the same,
//! so a copy moves blobs as they are and deduplicates against what the
//! target holds. The repository id still differs and is bound into every
//! sealed object, so each blob is opened with the source's keys and sealed
//! again with the target's (re-compressed, with the dictionary the target
//! got from the source). A target initialised on its own has other keys:
//! each file is then read back like a restore does and cut again with the
//! target's chunker, through the same saver a snapshot uses.
//!
//! **Crash safety.** As a snapshot (FORMAT.md §10.2): each snapshot's blobs
//! go through a [`Saver`], which returns once they sit in durable, indexed
//! packs; they are then checked (every blob the snapshot needs is in the
//! target's index, every blob written reads back, decrypts and hashes to
//! its id) before the record is written, last. Killed at any point, the
//! target shows no half-copied snapshot, and the next run skips what its
//! index holds. Packs finished but not yet indexed when it was killed are
//! not reused (the index is the only proof they are whole): they stay
//! unreferenced until a prune, at most a few per snapshot.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::content::{Content, Extent};
use crate::format::delta;
use crate::format::header::RECORD_V2_VERSION;
use crate::format::keyfile::KdfParams;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Payload, MAX_DEPTH};
use crate::id::{BlobId, SnapshotId};
use crate::progress::Progress;
use crate::repo::chunk_list_reader::ChunkListReader;
use crate::repo::saver::{Batch, Saver, PACK_TARGET};
use crate::repo::{ListingReader, Repository};
use crate::source::chunker::{self, Cutter, Cutting, Piece};

/// Data blobs looked up and read from the source this many at a time: the
/// source's reads then follow its packs, not the order of the files.
const DATA_BATCH: usize = 2048;
/// Chunks of a file read ahead at once when it is cut again.
const READ_AHEAD: usize = 64;

/// What to copy.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// The source's snapshots to copy; those the target holds already are
    /// skipped.
    pub snapshots: Vec<SnapshotId>,
    /// Only say what would be copied; write nothing.
    pub dry_run: bool,
}

/// One snapshot copied (or, in a dry run, to copy).
#[derive(Debug, Clone, Serialize)]
pub struct CopiedSnapshot {
    /// Its id in the source.
    pub source: String,
    /// Its id in the target (none in a dry run).
    pub target: Option<String>,
    /// When it was taken (RFC 3339, UTC).
    pub time: String,
    /// Its label.
    pub label: String,
    /// Total size of its files.
    pub size: u64,
    /// Blobs sent to the target for it.
    pub blobs: u64,
    /// Bytes those blobs take in the target's packs (in a dry run: in the
    /// source's, as an estimate).
    pub bytes: u64,
}

/// A snapshot the target already held.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedSnapshot {
    /// Its id in the source.
    pub source: String,
    /// The same snapshot's id in the target.
    pub target: String,
}

/// What a copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// Nothing was written.
    pub dry_run: bool,
    /// The target has other keys: file contents were cut again.
    pub rechunked: bool,
    /// Snapshots copied, oldest first.
    pub copied: Vec<CopiedSnapshot>,
    /// Snapshots the target held already.
    pub skipped: Vec<SkippedSnapshot>,
    /// Blobs sent.
    pub blobs_sent: u64,
    /// Their plaintext bytes.
    pub plain_bytes_sent: u64,
    /// Their bytes in the target's packs (compressed, sealed).
    pub bytes_sent: u64,
    /// Blobs read back from the target after writing.
    pub blobs_verified: u64,
}

/// The identity of a snapshot across repositories (see the module
/// documentation): a hash of its record with parent and tree blanked.
pub fn identity(snap: &Snapshot) -> [u8; 32] {
    let mut s = snap.clone();
    s.parent = None;
    s.tree = BlobId([0; 32]);
    if let Some(root) = &mut s.root {
        root.payload = Payload::Dir(s.tree);
    }
    *blake3::hash(&s.encode()).as_bytes()
}

/// Whether two repositories derive the same blob ids and chunk boundaries
/// (one was made from the other by [`init_target`]).
pub fn same_keys(a: &Repository, b: &Repository) -> bool {
    const PROBE: &[u8] = b"coffre copy: same blob id key?";
    a.keys().blob_hash(0, PROBE) == b.keys().blob_hash(0, PROBE)
        && a.keys().chunker_seed() == b.keys().chunker_seed()
}

/// Creates the repository a copy goes to, on `backend` (empty or absent):
/// the source's master key under `passphrase` (another repository id, so
/// every object is sealed apart), and the source's compression dictionary.
///
/// # Errors
/// [`Error::AlreadyExists`] when the location is not empty; storage errors.
pub fn init_target(
    source: &Repository,
    backend: Arc<dyn Backend>,
    cache: &Path,
    passphrase: &[u8],
    kdf: KdfParams,
) -> Result<Repository> {
    let master = source.master_key().clone();
    let target = Repository::init_with_master(backend, cache, master, passphrase, kdf)?;
    give_dictionary(source, &target)?;
    Ok(target)
}

/// Gives the target the source's dictionary when it has none, so that
/// small chunks compress there as well (and under the same dictionary id).
/// A damaged dictionary on either side is left for `check` to report:
/// blobs are re-compressed, so a copy never depends on it.
fn give_dictionary(source: &Repository, target: &Repository) -> Result<()> {
    if let (Ok(None), Ok(Some(dict))) = (target.dictionary(), source.dictionary()) {
        target.add_dictionary(dict.raw().to_vec())?;
    }
    Ok(())
}

/// Copies the snapshots `opts.snapshots` of `source` that `target` lacks,
/// oldest first; each is recorded in the target only once all its data
/// is there and read back. The caller holds a shared lock on both.
///
/// # Errors
/// [`Error::Refused`] when both are the same repository;
/// [`Error::CopyUnverified`] when written data does not read back; source
/// read errors (a damaged blob names itself); target storage errors
/// ([`Error::DriveFull`]...). Snapshots recorded before the error stay.
pub fn copy(
    source: &Repository,
    target: &Repository,
    opts: &CopyOptions,
    progress: &dyn Progress,
) -> Result<CopyReport> {
    if source.header().repo_id == target.header().repo_id
        && source.backend().location() == target.backend().location()
    {
        return Err(Error::Refused(
            "the source and the target are the same repository: name the other drive with --to"
                .into(),
        ));
    }
    let rechunk = !same_keys(source, target);
    if !opts.dry_run {
        target.prepare_write()?;
    }
    // A damaged record in the target cannot be matched: its snapshot is
    // copied again, which is what it needs.
    let mut present: HashMap<[u8; 32], SnapshotId> = target
        .snapshots()?
        .0
        .iter()
        .map(|(id, s)| (identity(s), *id))
        .collect();
    let mut wanted = Vec::new();
    for id in &opts.snapshots {
        if !wanted.iter().any(|(w, _)| w == id) {
            wanted.push((*id, source.load_snapshot(id)?));
        }
    }
    wanted.sort_by_key(|(id, s)| (s.time, *id));
    let mut report = CopyReport {
        dry_run: opts.dry_run,
        rechunked: rechunk,
        ..CopyReport::default()
    };
    let mut todo = Vec::new();
    for (id, snap) in wanted {
        match present.get(&identity(&snap)) {
            Some(there) => report.skipped.push(SkippedSnapshot {
                source: id.to_hex(),
                target: there.to_hex(),
            }),
            None => todo.push((id, snap)),
        }
    }
    progress.set_total(
        todo.len() as u64,
        todo.iter().map(|(_, s)| s.summary.total_size).sum(),
    );
    if !todo.is_empty() && !opts.dry_run {
        give_dictionary(source, target)?;
        // Before the first object: records are version 2, and the trees
        // may come in pieces (FORMAT.md §13.2).
        target.raise_format(RECORD_V2_VERSION)?;
    }
    let cutter = rechunk.then(|| Cutter::new(target.keys().chunker_seed()));
    let sides = Sides {
        source,
        target,
        cutter: cutter.as_ref(),
        progress,
    };
    let mut memo = HashMap::new();
    // A dry run writes nothing, so what one snapshot would send must not
    // be counted again for the next.
    let mut counted = HashSet::new();
    for (i, (id, snap)) in todo.iter().enumerate() {
        let dry_run = opts.dry_run.then_some(&mut counted);
        let copied = match copy_one(sides, id, snap, dry_run, &mut memo, &mut present) {
            Err(e) if e.is_drive_full() => {
                let more = still_needed(sides, &todo[i..], &mut memo, &mut present);
                return Err(e.needing(more, target.backend().free_space()));
            }
            other => other?,
        };
        report.blobs_sent += copied.blobs;
        report.bytes_sent += copied.bytes;
        report.plain_bytes_sent += copied.plain;
        report.blobs_verified += copied.verified;
        report.copied.push(copied.entry);
        progress.advance(1, 0);
    }
    Ok(report)
}

/// About how many more bytes the target needs for `todo` (what a dry run
/// counts, plus a pack's worth for what was being packed), when that can be
/// worked out.
fn still_needed(
    sides: Sides<'_>,
    todo: &[(SnapshotId, Snapshot)],
    memo: &mut HashMap<BlobId, (BlobId, u64)>,
    present: &mut HashMap<[u8; 32], SnapshotId>,
) -> Option<u64> {
    let mut counted = HashSet::new();
    let mut bytes = PACK_TARGET;
    for (id, snap) in todo {
        bytes += copy_one(sides, id, snap, Some(&mut counted), memo, present)
            .ok()?
            .bytes;
    }
    Some(bytes)
}

/// What copying one snapshot did.
struct OneCopy {
    entry: CopiedSnapshot,
    blobs: u64,
    bytes: u64,
    plain: u64,
    verified: u64,
}

/// Copies one snapshot: its blobs through a saver (durable and indexed when
/// it returns), checked, then its record.
fn copy_one(
    sides: Sides<'_>,
    id: &SnapshotId,
    snap: &Snapshot,
    dry_run: Option<&mut HashSet<BlobId>>,
    memo: &mut HashMap<BlobId, (BlobId, u64)>,
    present: &mut HashMap<[u8; 32], SnapshotId>,
) -> Result<OneCopy> {
    let Sides { source, target, .. } = sides;
    let mut entry = CopiedSnapshot {
        source: id.to_hex(),
        target: None,
        time: snap.utc().to_rfc3339(),
        label: snap.label.clone(),
        size: snap.summary.total_size,
        blobs: 0,
        bytes: 0,
    };
    if let Some(counted) = dry_run {
        let mut walk = Walk::new(sides, None, memo);
        walk.needed = std::mem::take(counted);
        walk.tree(&snap.tree, 0)?;
        walk.flush_data()?;
        *counted = std::mem::take(&mut walk.needed);
        entry.blobs = walk.dry_blobs;
        entry.bytes = walk.dry_bytes;
        return Ok(OneCopy {
            blobs: entry.blobs,
            bytes: entry.bytes,
            plain: 0,
            verified: 0,
            entry,
        });
    }
    let ((tree, needed, sent), stats) = Saver::run(target, |saver| {
        let mut walk = Walk::new(sides, Some(saver), memo);
        let (tree, _) = walk.tree(&snap.tree, 0)?;
        walk.flush_data()?;
        Ok((tree, walk.needed, walk.sent))
    })?;
    let verified = verify(target, id, &needed, &sent)?;
    let mut record = snap.clone();
    // The parent, where the target holds it too, under its id there.
    record.parent = snap
        .parent
        .and_then(|p| source.load_snapshot(&p).ok())
        .and_then(|p| present.get(&identity(&p)).copied());
    record.tree = tree;
    if let Some(root) = &mut record.root {
        root.payload = Payload::Dir(tree);
    }
    target.confirm_format()?;
    // As a snapshot: a prune that wrongly judged our lock stale may have
    // deleted data this copy deduplicated against; then record nothing.
    target.confirm_lock()?;
    let new_id = target.write_snapshot(&record)?;
    present.insert(identity(snap), new_id);
    entry.target = Some(new_id.to_hex());
    entry.blobs = stats.blobs;
    entry.bytes = stats.stored_bytes;
    Ok(OneCopy {
        entry,
        blobs: stats.blobs,
        bytes: stats.stored_bytes,
        plain: stats.plain_bytes,
        verified,
    })
}

/// Checks, before its record is written, that every blob a copied snapshot
/// needs is in the target's index and that every blob written reads back
/// from the target whole; returns how many were read back.
fn verify(
    target: &Repository,
    snapshot: &SnapshotId,
    needed: &HashSet<BlobId>,
    sent: &[(BlobKind, BlobId)],
) -> Result<u64> {
    let unverified = |reason: String| Error::CopyUnverified {
        snapshot: snapshot.short(),
        target: target.backend().location(),
        reason,
    };
    let needed: Vec<BlobId> = needed.iter().copied().collect();
    let mut missing = 0usize;
    for group in needed.chunks(DATA_BATCH) {
        missing += target
            .index()
            .contains_many(group)?
            .into_iter()
            .filter(|known| !known)
            .count();
    }
    if missing > 0 {
        return Err(unverified(format!(
            "{missing} blob(s) it needs are not in the target's index"
        )));
    }
    let mut verified = 0;
    for kind in [
        BlobKind::Data,
        BlobKind::Delta,
        BlobKind::ChunkList,
        BlobKind::TreePiece,
        BlobKind::Tree,
    ] {
        let ids: Vec<BlobId> = sent
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, id)| *id)
            .collect();
        for group in ids.chunks(DATA_BATCH) {
            target
                .load_blobs(kind, group, |_, _| {
                    verified += 1;
                    Ok(())
                })
                .map_err(|e| unverified(format!("a blob written does not read back ({e})")))?;
        }
    }
    Ok(verified)
}

/// Both repositories and what every walk shares.
#[derive(Clone, Copy)]
struct Sides<'a> {
    source: &'a Repository,
    target: &'a Repository,
    /// The target's chunker, when its keys differ from the source's.
    cutter: Option<&'a Cutter>,
    progress: &'a dyn Progress,
}

/// The walk of one snapshot's trees, source to target.
struct Walk<'a, 'r> {
    sides: Sides<'a>,
    /// None in a dry run.
    saver: Option<&'a Saver<'r>>,
    /// Source trees done in this run: their id in the target and the size
    /// of their files (a folder unchanged between two snapshots is walked
    /// once).
    memo: &'a mut HashMap<BlobId, (BlobId, u64)>,
    /// Every blob the snapshot needs in the target.
    needed: HashSet<BlobId>,
    /// Data blobs waiting to be looked up and copied.
    pending: Vec<BlobId>,
    /// Delta blobs and their bases, copied after the data blobs.
    pending_deltas: Vec<(BlobId, BlobId, i32)>,
    /// Blobs handed to the saver, to read back once durable.
    sent: Vec<(BlobKind, BlobId)>,
    /// In a dry run: what would be sent, by the source's sizes.
    dry_blobs: u64,
    dry_bytes: u64,
}

impl<'a, 'r> Walk<'a, 'r> {
    fn new(
        sides: Sides<'a>,
        saver: Option<&'a Saver<'r>>,
        memo: &'a mut HashMap<BlobId, (BlobId, u64)>,
    ) -> Self {
        Self {
            sides,
            saver,
            memo,
            needed: HashSet::new(),
            pending: Vec::new(),
            pending_deltas: Vec::new(),
            sent: Vec::new(),
            dry_blobs: 0,
            dry_bytes: 0,
        }
    }

    /// Copies the tree `id` and everything below it; returns its id in the
    /// target and the size of its files.
    fn tree(&mut self, id: &BlobId, depth: usize) -> Result<(BlobId, u64)> {
        if let Some(&done) = self.memo.get(id) {
            self.sides.progress.advance(0, done.1);
            return Ok(done);
        }
        if depth > MAX_DEPTH {
            return Err(Error::corrupt("tree", id.short(), "nested too deep"));
        }
        // The listing a piece at a time; a re-chunking copy writes the new
        // one as its entries come (a folder may hold 150,000 entries).
        let listing = ListingReader::open(self.sides.source, id)?;
        let pieces = listing.pieces().to_vec();
        let mut rewritten = match (self.sides.cutter, self.saver) {
            (Some(_), Some(saver)) => Some(saver.listing()),
            _ => None,
        };
        let mut size = 0;
        for node in listing {
            let mut node = node?;
            match &node.payload {
                Payload::Dir(sub) => {
                    let (new, sub_size) = self.tree(sub, depth + 1)?;
                    size += sub_size;
                    node.payload = Payload::Dir(new);
                }
                Payload::File(content) => {
                    node.payload = Payload::File(self.file(content, node.size)?);
                    size += node.size;
                    self.sides.progress.advance(0, node.size);
                }
                _ => {}
            }
            if let Some(listing) = &mut rewritten {
                listing.push(&node)?;
            }
        }
        let new = match (self.sides.cutter, rewritten) {
            (Some(_), Some(listing)) => {
                let new = listing.finish()?;
                self.needed.insert(new);
                new
            }
            // A dry run of a re-chunking copy cannot know the new ids.
            (Some(_), None) => *id,
            (None, _) => {
                self.copy_blobs(BlobKind::TreePiece, &pieces)?;
                self.copy_blobs(BlobKind::Tree, &[*id])?;
                *id
            }
        };
        self.memo.insert(*id, (new, size));
        Ok((new, size))
    }

    /// The content of a file of `size` bytes in the target.
    fn file(&mut self, content: &Content, size: u64) -> Result<Content> {
        if self.sides.cutter.is_some() {
            return self.rechunk(content);
        }
        if let Content::Pieces(ids) = content {
            self.copy_blobs(BlobKind::ChunkList, ids)?;
        }
        // A window at a time, flushed as it fills: a 6.5 GB database lists
        // 800,000 chunks.
        for window in ChunkListReader::new(self.sides.source, content) {
            for extent in window? {
                match extent {
                    Extent::Chunk { id, base: None, .. } => self.pending.push(id),
                    Extent::Chunk {
                        id,
                        base: Some(base),
                        ..
                    } => {
                        self.pending.push(base);
                        self.pending_deltas.push((id, base, delta::level_for(size)));
                    }
                    Extent::Hole { .. } => {}
                }
            }
            if self.pending.len() >= DATA_BATCH {
                self.flush_data()?;
            }
        }
        Ok(content.clone())
    }

    /// Copies the data blobs gathered so far.
    fn flush_data(&mut self) -> Result<()> {
        let ids = std::mem::take(&mut self.pending);
        self.copy_blobs(BlobKind::Data, &ids)?;
        let deltas = std::mem::take(&mut self.pending_deltas);
        self.copy_deltas(&deltas)
    }

    /// Copies the delta blobs `deltas` (delta id, base id, zstd level as
    /// the snapshot chose it for the file's size; same keys on both sides)
    /// that the target lacks, made again from their plaintext against
    /// their base. Their bases were copied first.
    fn copy_deltas(&mut self, deltas: &[(BlobId, BlobId, i32)]) -> Result<()> {
        let fresh: Vec<(BlobId, BlobId, i32)> = deltas
            .iter()
            .filter(|(id, _, _)| self.needed.insert(*id))
            .copied()
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let ids: Vec<BlobId> = fresh.iter().map(|(id, _, _)| *id).collect();
        let known = self.sides.target.index().contains_many(&ids)?;
        let source = self.sides.source;
        let mut batch = self.saver.map(Saver::batch);
        for ((id, base, level), known) in fresh.into_iter().zip(known) {
            if known {
                continue;
            }
            let Some(batch) = batch.as_mut() else {
                if let Some(loc) = source.index().lookup(source.keys(), &id)? {
                    self.dry_blobs += 1;
                    self.dry_bytes += u64::from(loc.length);
                }
                continue;
            };
            let plain = source.load_blob(BlobKind::Data, &id)?;
            let base_plain = source.load_base(&base)?;
            let target = self.sides.target;
            let payload = delta::compress(&base, &base_plain, &plain, level)
                .filter(|_| delta::delta_id(target.keys(), &base, &plain) == id)
                .ok_or_else(|| {
                    Error::corrupt(
                        BlobKind::Delta.name(),
                        id.short(),
                        "cannot be made again in the target: the two repositories do not share their keys",
                    )
                })?;
            batch.save_delta(id, plain.len(), payload)?;
            self.sent.push((BlobKind::Delta, id));
        }
        if let Some(mut batch) = batch {
            batch.flush()?;
        }
        Ok(())
    }

    /// Copies the blobs `ids` (same keys on both sides) that the target's
    /// index lacks: opened with the source's keys, saved with the target's.
    fn copy_blobs(&mut self, kind: BlobKind, ids: &[BlobId]) -> Result<()> {
        let fresh: Vec<BlobId> = ids
            .iter()
            .filter(|id| self.needed.insert(**id))
            .copied()
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let known = self.sides.target.index().contains_many(&fresh)?;
        let missing: Vec<BlobId> = fresh
            .into_iter()
            .zip(known)
            .filter(|(_, known)| !known)
            .map(|(id, _)| id)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let Some(saver) = self.saver else {
            let source = self.sides.source;
            for loc in source
                .index()
                .lookup_many(source.keys(), &missing)?
                .into_iter()
                .flatten()
            {
                self.dry_blobs += 1;
                self.dry_bytes += u64::from(loc.length);
            }
            return Ok(());
        };
        let mut batch = saver.batch();
        self.sides.source.load_blobs(kind, &missing, |i, data| {
            let got = batch.save(kind, &data)?;
            if got != missing[i] {
                return Err(Error::corrupt(
                    kind.name(),
                    missing[i].short(),
                    "comes out under another id in the target: the two repositories do not share their keys",
                ));
            }
            Ok(())
        })?;
        batch.flush()?;
        self.sent.extend(missing.into_iter().map(|id| (kind, id)));
        Ok(())
    }

    /// Reads a file back from the source and cuts it again with the
    /// target's chunker, as a snapshot of the restored file would: holes
    /// stay holes, page-structured files are cut into pages.
    fn rechunk(&mut self, content: &Content) -> Result<Content> {
        let (Some(saver), Some(cutter)) = (self.saver, self.sides.cutter) else {
            return Ok(content.clone());
        };
        let extents = self.sides.source.load_extents(content)?;
        let size: u64 = extents.iter().map(Extent::len).sum();
        let cutting = match chunker::choose(size, &[]) {
            Cutting::ContentDefined => Cutting::ContentDefined,
            Cutting::Pages(_) => {
                let mut head = Vec::new();
                FileBytes::new(self.sides.source, &extents)
                    .take(chunker::HEAD_LEN as u64)
                    .read_to_end(&mut head)
                    .map_err(into_error)?;
                chunker::choose(size, &head)
            }
        };
        let mut batch = saver.batch();
        let mut out = Vec::new();
        let mut offset = 0u64;
        let mut rest = &extents[..];
        while let Some(first) = rest.first() {
            if let Extent::Hole { len } = *first {
                out.push(Extent::Hole { len });
                offset += len;
                rest = &rest[1..];
                continue;
            }
            let run = rest
                .iter()
                .position(|e| matches!(e, Extent::Hole { .. }))
                .unwrap_or(rest.len());
            let mut bytes = FileBytes::new(self.sides.source, &rest[..run]);
            offset += cut_run(&mut bytes, offset, cutting, cutter, &mut batch, &mut out)?;
            rest = &rest[run..];
        }
        let content = batch.save_content(out)?;
        batch.flush()?;
        Ok(content)
    }
}

/// Cuts one data range of a file, starting at `offset` in it, into new
/// chunks saved through `batch`; returns its length.
fn cut_run(
    bytes: &mut FileBytes<'_>,
    offset: u64,
    cutting: Cutting,
    cutter: &Cutter,
    batch: &mut Batch<'_, '_>,
    out: &mut Vec<Extent>,
) -> Result<u64> {
    let mut save = |data: &[u8]| -> Result<()> {
        let id = batch.save(BlobKind::Data, data)?;
        out.push(Extent::chunk(id, data.len() as u32));
        Ok(())
    };
    match cutting {
        Cutting::ContentDefined => chunker::chunk_stream(bytes, cutter, |piece| match piece {
            Piece::Data(data) => save(data).map_err(CutError::Repo),
            Piece::Hole(_) => Ok(()),
        })
        .map_err(|e| match e {
            CutError::Read(e) => into_error(e),
            CutError::Repo(e) => e,
        }),
        // Pages end on multiples of the page size from the file's start,
        // as chunker's own page cutting does.
        Cutting::Pages(page) => {
            let page = page as u64;
            let mut buf = vec![0u8; page as usize];
            let mut pos = offset;
            loop {
                let want = (page - pos % page) as usize;
                let got = read_full(bytes, &mut buf[..want]).map_err(into_error)?;
                if got == 0 {
                    break;
                }
                save(&buf[..got])?;
                pos += got as u64;
                if got < want {
                    break;
                }
            }
            Ok(pos - offset)
        }
    }
}

/// Why cutting a range stopped: reading it from the source (a repository
/// error carried through [`std::io::Read`]), or saving into the target.
enum CutError {
    Read(std::io::Error),
    Repo(Error),
}

impl From<std::io::Error> for CutError {
    fn from(e: std::io::Error) -> Self {
        CutError::Read(e)
    }
}

/// Fills `buf` unless the data ends first; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..])? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

/// A repository error carried through [`std::io::Read`], and back.
fn into_error(e: std::io::Error) -> Error {
    match e.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(err)) => *err,
        Some(Err(other)) => Error::io("copy", std::io::Error::other(other)),
        None => Error::io("copy", std::io::Error::other("read failed")),
    }
}

/// The bytes of a file's extents (holes read as zeros), read from the
/// repository a few chunks ahead.
struct FileBytes<'a> {
    repo: &'a Repository,
    extents: &'a [Extent],
    loaded: VecDeque<Vec<u8>>,
    /// Offset in `loaded.front()` of the next byte.
    at: usize,
}

impl<'a> FileBytes<'a> {
    fn new(repo: &'a Repository, extents: &'a [Extent]) -> Self {
        Self {
            repo,
            extents,
            loaded: VecDeque::new(),
            at: 0,
        }
    }

    /// Loads the next few extents.
    fn fill(&mut self) -> Result<()> {
        let n = self.extents.len().min(READ_AHEAD);
        let (next, rest) = self.extents.split_at(n);
        self.extents = rest;
        let ids: Vec<BlobId> = next
            .iter()
            .filter_map(|e| match e {
                Extent::Chunk { id, .. } => Some(*id),
                Extent::Hole { .. } => None,
            })
            .collect();
        let mut chunks: Vec<Option<Vec<u8>>> = vec![None; ids.len()];
        self.repo.load_blobs(BlobKind::Data, &ids, |i, data| {
            chunks[i] = Some(data);
            Ok(())
        })?;
        let mut chunks = chunks.into_iter();
        for extent in next {
            let bytes = match extent {
                Extent::Chunk { id, len, .. } => {
                    let data = chunks.next().flatten().unwrap_or_default();
                    if data.len() != *len as usize {
                        return Err(Error::corrupt(
                            "data blob",
                            id.short(),
                            "its length differs from the file's record",
                        ));
                    }
                    data
                }
                // Only a file's head is read across holes (to choose its
                // cutting), so a hole need not be longer than that head.
                Extent::Hole { len } => vec![0; (*len).min(chunker::HEAD_LEN as u64) as usize],
            };
            self.loaded.push_back(bytes);
        }
        Ok(())
    }
}

impl Read for FileBytes<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(front) = self.loaded.front() {
                if self.at < front.len() {
                    let n = buf.len().min(front.len() - self.at);
                    buf[..n].copy_from_slice(&front[self.at..self.at + n]);
                    self.at += n;
                    return Ok(n);
                }
                self.loaded.pop_front();
                self.at = 0;
                continue;
            }
            if self.extents.is_empty() {
                return Ok(0);
            }
            self.fill().map_err(std::io::Error::other)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::conformance::pseudo_random;
    use crate::backend::{FaultPlan, FaultyBackend, FileKind, MemBackend};
    use crate::format::tree::Timestamp;
    use crate::ops::backup::{take_snapshot, SnapshotOptions};
    use crate::ops::check::{check, CheckOptions};
    use crate::ops::restore::{restore, RestoreOptions};
    use crate::progress::NoProgress;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    const CHEAP: KdfParams = KdfParams::CHEAP;
    const SOURCE_PASS: &[u8] = b"lundi passphrase";
    const TARGET_PASS: &[u8] = b"mardi passphrase";

    /// Every file of a folder with its bytes (folders as `None`).
    fn read_tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let path = e.unwrap().path();
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                if path.is_dir() {
                    out.insert(rel, None);
                    stack.push(path);
                } else {
                    out.insert(rel, Some(std::fs::read(&path).unwrap()));
                }
            }
        }
        out
    }

    /// A source folder, a repository in memory holding one snapshot per
    /// day of it, and what the folder held each day.
    struct Source {
        dir: tempfile::TempDir,
        mem: Arc<MemBackend>,
        days: BTreeMap<i64, BTreeMap<PathBuf, Option<Vec<u8>>>>,
    }

    impl Source {
        fn new(days: i64) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let src = dir.path().join("src");
            std::fs::create_dir_all(src.join("db/sub")).unwrap();
            let mem = Arc::new(MemBackend::new());
            Repository::init_with(mem.clone(), &dir.path().join("cache"), SOURCE_PASS, CHEAP)
                .unwrap();
            let mut me = Self {
                dir,
                mem,
                days: BTreeMap::new(),
            };
            for day in 0..days {
                // A page-structured database changing a few pages a day,
                // text files, a file growing, a new file each day.
                let mut db = pseudo_random(1001, 2 << 20);
                for p in 0..=day as usize {
                    db[p * 8192 * 13..p * 8192 * 13 + 100].fill(day as u8);
                }
                std::fs::write(src.join("db/officine.fdb"), &db).unwrap();
                std::fs::write(src.join("notes.txt"), format!("day {day}\n").repeat(5000)).unwrap();
                std::fs::write(
                    src.join(format!("db/sub/day{day}.bin")),
                    pseudo_random(2 * day as u64 + 3, 300_000),
                )
                .unwrap();
                std::fs::write(src.join("empty"), b"").unwrap();
                me.days.insert(day, read_tree(&src));
                let repo = me.open();
                let mut opts = SnapshotOptions::new(&src);
                opts.time = Some(Timestamp {
                    sec: 1_767_225_600 + day * 86_400,
                    nsec: 0,
                });
                take_snapshot(&repo, &opts, &NoProgress).unwrap();
            }
            me
        }

        fn open(&self) -> Repository {
            Repository::open_with(
                self.mem.clone(),
                &self.dir.path().join("cache"),
                SOURCE_PASS,
            )
            .unwrap()
        }

        fn all(&self, repo: &Repository) -> CopyOptions {
            CopyOptions {
                snapshots: repo.list_snapshots().unwrap(),
                dry_run: false,
            }
        }
    }

    fn day_of(snap: &Snapshot) -> i64 {
        (snap.time.sec - 1_767_225_600) / 86_400
    }

    /// Every snapshot of `target` restores to what the source held that
    /// day; `check --read-data` finds nothing wrong (packs no index lists,
    /// what an interrupted copy leaves, allowed with `leftovers`).
    fn assert_whole(target: &Repository, src: &Source, leftovers: bool) -> usize {
        let report = check(
            target,
            CheckOptions {
                read_data: true,
                subset: None,
            },
            &NoProgress,
        )
        .unwrap();
        assert!(report.is_ok(), "check: {:?}", report.errors);
        for w in &report.warnings {
            assert!(
                leftovers && w.contains("is in no index file"),
                "check warns: {w}"
            );
        }
        let (snaps, errors) = target.snapshots().unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let days: HashSet<i64> = snaps.iter().map(|(_, s)| day_of(s)).collect();
        assert_eq!(days.len(), snaps.len(), "a snapshot is there twice");
        for (_, snap) in &snaps {
            let out = tempfile::tempdir().unwrap();
            let opts = RestoreOptions {
                target: out.path().join("r"),
                path: None,
                overwrite: false,
            };
            let summary = restore(target, snap, &opts, &NoProgress).unwrap();
            assert!(summary.errors.is_empty(), "{:?}", summary.errors);
            assert_eq!(
                read_tree(&opts.target),
                src.days[&day_of(snap)],
                "day {}",
                day_of(snap)
            );
        }
        snaps.len()
    }

    #[test]
    fn copy_to_a_new_target_restores_and_a_second_copy_sends_nothing() {
        let src = Source::new(3);
        let source = src.open();
        let mem = Arc::new(MemBackend::new());
        let cache = src.dir.path().join("cache-mardi");
        let target = init_target(&source, mem.clone(), &cache, TARGET_PASS, CHEAP).unwrap();
        assert!(same_keys(&source, &target));
        assert_ne!(source.header().repo_id, target.header().repo_id);
        let dict = |r: &Repository| r.dictionary().unwrap().map(|d| d.id());
        assert!(dict(&source).is_some());
        assert_eq!(dict(&source), dict(&target));

        let dry = copy(
            &source,
            &target,
            &CopyOptions {
                dry_run: true,
                ..src.all(&source)
            },
            &NoProgress,
        )
        .unwrap();
        assert_eq!(dry.copied.len(), 3);
        assert!(dry.blobs_sent > 0);
        assert!(
            target.list_snapshots().unwrap().is_empty(),
            "a dry run wrote"
        );
        assert!(
            mem.list(FileKind::Pack).unwrap().is_empty(),
            "a dry run wrote"
        );

        let first = copy(&source, &target, &src.all(&source), &NoProgress).unwrap();
        assert!(!first.rechunked);
        assert_eq!(first.copied.len(), 3);
        assert!(first.blobs_sent > 0);
        assert_eq!(first.blobs_verified, first.blobs_sent);
        // The source's passphrase does not open the target; its own does.
        assert!(Repository::open_with(mem.clone(), &cache, SOURCE_PASS).is_err());
        let target = Repository::open_with(mem.clone(), &cache, TARGET_PASS).unwrap();
        assert_eq!(assert_whole(&target, &src, false), 3);
        // Parents point at the target's own snapshots.
        let (snaps, _) = target.snapshots().unwrap();
        assert_eq!(snaps[0].1.parent, None);
        assert_eq!(snaps[1].1.parent, Some(snaps[0].0));

        let again = copy(&source, &target, &src.all(&source), &NoProgress).unwrap();
        assert_eq!(again.copied.len(), 0);
        assert_eq!(again.skipped.len(), 3);
        assert_eq!(again.blobs_sent, 0);
        // And back the other way: the copies are the same snapshots.
        let back = copy(&target, &source, &src.all(&target), &NoProgress).unwrap();
        assert_eq!((back.copied.len(), back.skipped.len()), (0, 3));
    }

    #[test]
    fn copy_of_the_latest_day_only_sends_what_changed() {
        let src = Source::new(3);
        let source = src.open();
        let (snaps, _) = source.snapshots().unwrap();
        let mem = Arc::new(MemBackend::new());
        let target =
            init_target(&source, mem, &src.dir.path().join("c2"), TARGET_PASS, CHEAP).unwrap();
        let one = |id: SnapshotId| CopyOptions {
            snapshots: vec![id],
            dry_run: false,
        };
        let first = copy(&source, &target, &one(snaps[1].0), &NoProgress).unwrap();
        let daily = copy(&source, &target, &one(snaps[2].0), &NoProgress).unwrap();
        assert_eq!(daily.copied.len(), 1);
        assert!(
            daily.bytes_sent * 4 < first.bytes_sent,
            "a daily copy sent {} bytes, the first {}",
            daily.bytes_sent,
            first.bytes_sent
        );
        // Day 1's parent (day 0) is not in the target: none recorded; day
        // 2's is, under its id there.
        let (copied, _) = target.snapshots().unwrap();
        assert_eq!(copied[0].1.parent, None);
        assert_eq!(copied[1].1.parent, Some(copied[0].0));
    }

    #[test]
    fn copy_into_a_target_with_other_keys_rechunks() {
        let src = Source::new(2);
        let source = src.open();
        let mem = Arc::new(MemBackend::new());
        let target =
            Repository::init_with(mem, &src.dir.path().join("c3"), TARGET_PASS, CHEAP).unwrap();
        assert!(!same_keys(&source, &target));
        let first = copy(&source, &target, &src.all(&source), &NoProgress).unwrap();
        assert!(first.rechunked);
        assert_eq!(first.copied.len(), 2);
        assert_eq!(assert_whole(&target, &src, false), 2);
        let again = copy(&source, &target, &src.all(&source), &NoProgress).unwrap();
        assert_eq!((again.copied.len(), again.blobs_sent), (0, 0));
    }

    #[test]
    fn copy_to_the_same_repository_is_refused() {
        let src = Source::new(1);
        let source = src.open();
        let other = src.open();
        let err = copy(&source, &other, &src.all(&source), &NoProgress).unwrap_err();
        assert!(matches!(err, Error::Refused(_)), "{err}");
    }

    /// A copy that crashes at its Nth write, for every N, then runs again:
    /// the crashed target shows only whole snapshots, the rerun completes,
    /// nothing is there twice, everything restores.
    #[test]
    fn copy_interrupted_at_every_write_resumes() {
        let src = Source::new(2);
        let source = src.open();
        let drive = Arc::new(MemBackend::new());
        let cache = src.dir.path().join("c4");
        init_target(&source, drive.clone(), &cache, TARGET_PASS, CHEAP).unwrap();
        // How many writes a whole copy makes.
        let probe = Arc::new(FaultyBackend::new(drive.snapshot(), FaultPlan::default()));
        let t = Repository::open_with(probe.clone(), &src.dir.path().join("c-probe"), TARGET_PASS)
            .unwrap();
        let before = probe.writes();
        copy(&source, &t, &src.all(&source), &NoProgress).unwrap();
        let writes = probe.writes() - before;
        assert!(writes > 3, "{writes} writes");
        let mut failures = Vec::new();
        for n in 1..=writes {
            let faulty = Arc::new(FaultyBackend::new(drive.snapshot(), FaultPlan::default()));
            let cache = src.dir.path().join(format!("c-crash-{n}"));
            let t = Repository::open_with(faulty.clone(), &cache, TARGET_PASS).unwrap();
            faulty.set_plan(FaultPlan {
                crash_at: Some(n),
                ..FaultPlan::default()
            });
            if copy(&source, &t, &src.all(&source), &NoProgress).is_ok() {
                failures.push(format!("write {n}: the copy did not notice the crash"));
                continue;
            }
            let after = Arc::new(faulty.inner().snapshot());
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let t = Repository::open_with(after.clone(), &cache, TARGET_PASS).unwrap();
                assert_whole(&t, &src, true);
                let again = copy(&source, &t, &src.all(&source), &NoProgress).unwrap();
                assert_eq!(again.copied.len() + again.skipped.len(), 2);
                assert_eq!(assert_whole(&t, &src, true), 2);
            }));
            if result.is_err() {
                failures.push(format!("write {n}"));
            }
        }
        assert!(failures.is_empty(), "broke at: {failures:?}");
    }
}
