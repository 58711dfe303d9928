//! Writing blobs: deduplicate, then compress, seal and pack on worker
//! threads, so that the caller's thread (reading, chunking, hashing) and the
//! workers keep the cores busy together. The queue between them is bounded,
//! which bounds memory whatever the size of the source.
//!
//! Threads that save many blobs (the file readers) hand them over in
//! batches of about 256 KiB ([`Batch`]): a database is a hundred thousand
//! 8 KiB pages, and waking a worker for each one cost more than packing it.
//!
//! A blob counts as stored once it is in the index or queued in this saver;
//! [`Saver::run`] returns only after every queued blob sits in a durable,
//! indexed pack, so a snapshot record written afterwards never references
//! data that a crash could lose.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::error::{Error, Result};
use crate::format::blob::{self, BlobKind};
use crate::format::content::{self, Content, Extent, INLINE_MAX};
use crate::format::dictionary::Dictionary;
use crate::format::header::{DELTA_VERSION, SPLIT_TREE_VERSION};
use crate::format::index_file::IndexedPack;
use crate::format::tree::{encode_piece_list, ListingEncoder, Node, Stored, Tree};
use crate::id::BlobId;
use crate::repo::pack_writer::{FinishedPack, PackWriter};
use crate::repo::Repository;

/// A pack is closed once it reaches this size (the last batch may overshoot).
pub const PACK_TARGET: u64 = 16 << 20;

/// Finished packs are indexed this many at a time. Blob ids are random, so
/// every commit rewrites pages all over the index: committing each 16 MiB
/// pack wrote 375 MB of index for a 1.2 GB first snapshot (8 at a time and
/// rarer checkpoints: 117 MB). Once the cache's table outgrows SQLite's
/// page cache, a commit rewrites most of it, so what is written grows with
/// the square of the data: at 16 GiB (1.5 million blobs, a 190 MB cache)
/// 8 at a time wrote 5.9 GB of cache beside 10 GB of packs, 32 at a time
/// 2.5 GB (first snapshot 62.7 s, then 58.0 s). Their blobs stay in the
/// queued set until then. A killed run loses nothing by the wait: the
/// next one adopts durable packs no index file lists (`ops::adopt`).
const PACKS_PER_COMMIT: usize = 32;

/// A pack also closes at this many blobs, and finished packs are indexed
/// once they hold [`MAX_UNINDEXED_ENTRIES`] between them, whatever their
/// size: every entry is held in memory until its pack is indexed, and
/// 16 MiB of tiny blobs (small text files compress to a hundred bytes) is
/// 160,000 entries a pack. Without these bounds memory grew with the
/// number of small files (200,000 files: 60 MiB, most of it entries);
/// with them it is bounded whatever the source (about 90 bytes an entry,
/// its id in the queued set and its place in the pack's list: 24 MiB at
/// most). Packs of larger chunks (a few hundred blobs) never reach them;
/// packs of database pages (6,000 blobs) reach the second after 44 packs.
const MAX_PACK_ENTRIES: usize = 32_768;
/// See [`MAX_PACK_ENTRIES`].
const MAX_UNINDEXED_ENTRIES: usize = 262_144;

/// A [`Batch`] is handed to the workers once it holds this many bytes.
const BATCH_BYTES: usize = 256 << 10;

struct Job {
    kind: BlobKind,
    id: BlobId,
    /// The plaintext; for a delta, its payload, already compressed.
    data: Vec<u8>,
    /// Length of the plaintext.
    plain_len: usize,
}

/// Counters of what a saver added.
#[derive(Debug, Default, Clone, Copy)]
pub struct SaveStats {
    /// New blobs.
    pub blobs: u64,
    /// Their plaintext bytes.
    pub plain_bytes: u64,
    /// Their sealed bytes in packs.
    pub stored_bytes: u64,
}

/// Deduplicates and stores blobs; see the module documentation.
pub struct Saver<'r> {
    repo: &'r Repository,
    /// Small data blobs are compressed with it.
    dict: Option<Arc<Dictionary>>,
    queued: Mutex<HashSet<BlobId>>,
    tx: Mutex<Option<Sender<Vec<Job>>>>,
    error: Mutex<Option<Error>>,
    packers: [Mutex<Option<PackWriter>>; 2],
    /// Durable packs not yet in the index.
    unindexed: Mutex<Vec<FinishedPack>>,
    blobs: AtomicU64,
    plain: AtomicU64,
    stored: AtomicU64,
    /// Plaintext bytes of the new blobs handed to the workers.
    queued_plain: AtomicU64,
    /// Bytes of the packs made durable.
    durable: AtomicU64,
}

/// How far a run's saving went: enough to tell, when the drive fills, how
/// much more it needed.
#[derive(Debug, Default, Clone, Copy)]
pub struct SaveProgress {
    /// Plaintext bytes of the new blobs accepted (stored or on their way).
    pub queued_plain: u64,
    /// Plaintext bytes of the new blobs stored.
    pub stored_plain: u64,
    /// Their sealed bytes in packs (durable or not yet).
    pub stored: u64,
    /// Bytes of the packs made durable.
    pub durable: u64,
}

impl<'r> Saver<'r> {
    /// Runs `work` with a saver, then flushes every pack.
    ///
    /// # Errors
    /// The first error of `work` or of any worker (a full drive, say); packs
    /// not yet finished are then discarded, and those already finished stay
    /// as unreferenced data for a later prune.
    pub fn run<T>(
        repo: &'r Repository,
        work: impl FnOnce(&Saver<'r>) -> Result<T>,
    ) -> Result<(T, SaveStats)> {
        // One more worker than cores: a worker waiting on a pack's fsync
        // must not leave a core idle.
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8)
            + 1;
        // Bounded in batches of about 256 KiB each.
        let (tx, rx) = bounded::<Vec<Job>>(workers * 2);
        let saver = Saver {
            repo,
            // A damaged dictionary must not stop tonight's backup: compress
            // without it (`check` reports the damage).
            dict: repo.dictionary().ok().flatten(),
            queued: Mutex::new(HashSet::new()),
            tx: Mutex::new(Some(tx)),
            error: Mutex::new(None),
            packers: [Mutex::new(None), Mutex::new(None)],
            unindexed: Mutex::new(Vec::new()),
            blobs: AtomicU64::new(0),
            plain: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            queued_plain: AtomicU64::new(0),
            durable: AtomicU64::new(0),
        };
        let result = std::thread::scope(|scope| {
            for _ in 0..workers {
                let rx: Receiver<Vec<Job>> = rx.clone();
                let saver = &saver;
                let spawned = std::thread::Builder::new()
                    .name("coffre-saver".into())
                    .spawn_scoped(scope, move || {
                        for jobs in rx {
                            if let Err(e) = saver.store(jobs) {
                                saver.fail(e);
                            }
                        }
                    });
                if let Err(e) = spawned {
                    // The workers already started stop once the queue closes.
                    saver.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
                    return Err(Error::io("saver thread", e));
                }
            }
            drop(rx);
            let out = work(&saver);
            // Closing the queue lets the workers drain it and stop; the scope
            // then joins them.
            saver.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
            out
        });
        let Saver {
            error,
            packers,
            unindexed,
            blobs,
            plain,
            stored,
            ..
        } = saver;
        let value = match (
            result,
            error.into_inner().unwrap_or_else(|p| p.into_inner()),
        ) {
            // The walk stopped because a worker failed: the worker's error
            // says why.
            (Err(Error::Interrupted), Some(e)) | (Ok(_), Some(e)) => return Err(e),
            (result, _) => result?,
        };
        let mut unindexed = unindexed.into_inner().unwrap_or_else(|p| p.into_inner());
        for packer in packers {
            if let Some(w) = packer.into_inner().unwrap_or_else(|p| p.into_inner()) {
                if !w.is_empty() {
                    unindexed.push(w.finish(repo.keys())?);
                }
            }
        }
        index_packs(repo, &unindexed)?;
        let stats = SaveStats {
            blobs: blobs.into_inner(),
            plain_bytes: plain.into_inner(),
            stored_bytes: stored.into_inner(),
        };
        Ok((value, stats))
    }

    /// Records a worker's failure: the first one that says what went
    /// wrong wins over a mere [`Error::Interrupted`] (a thread that only
    /// saw the others stop).
    fn fail(&self, e: Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() || matches!(*slot, Some(Error::Interrupted)) {
            *slot = Some(e);
        }
    }

    /// [`Error::Interrupted`] once a worker failed. The failure itself
    /// stays recorded for [`Saver::run`] to return: handed to one reader
    /// here, it would race with the other readers' errors, and the walker
    /// might report one of theirs (a bare "interrupted") instead.
    fn check_failed(&self) -> Result<()> {
        let slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        match *slot {
            Some(_) => Err(Error::Interrupted),
            None => Ok(()),
        }
    }

    /// Stores `data` as a blob of `kind` unless the repository already has it.
    /// Returns its id.
    ///
    /// # Errors
    /// An earlier worker failure, or an index error.
    pub fn save(&self, kind: BlobKind, data: &[u8]) -> Result<BlobId> {
        let mut batch = self.batch();
        let id = batch.save(kind, data)?;
        batch.flush()?;
        Ok(id)
    }

    /// Stores a directory listing, whole or in pieces (FORMAT.md §7.3),
    /// raising the format for pieces; returns the tree's id.
    ///
    /// # Errors
    /// As [`Saver::save`]; storage errors raising the format.
    pub fn save_tree(&self, tree: &Tree) -> Result<BlobId> {
        let mut listing = self.listing();
        for node in &tree.nodes {
            listing.push(node)?;
        }
        listing.finish()
    }

    /// A listing saved as its entries come, for a folder too large to hold
    /// whole; see [`ListingWriter`].
    pub fn listing(&self) -> ListingWriter<'_, 'r> {
        ListingWriter {
            saver: self,
            encoder: ListingEncoder::default(),
            pieces: Vec::new(),
        }
    }

    /// The repository this saver stores into.
    pub fn repository(&self) -> &'r Repository {
        self.repo
    }

    /// How far this run's saving went so far.
    pub fn progress(&self) -> SaveProgress {
        SaveProgress {
            queued_plain: self.queued_plain.load(Ordering::Relaxed),
            stored_plain: self.plain.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
            durable: self.durable.load(Ordering::Relaxed),
        }
    }

    /// A batch for a thread that saves many blobs; see [`Batch`].
    pub fn batch(&self) -> Batch<'_, 'r> {
        Batch {
            saver: self,
            jobs: Vec::new(),
            bytes: 0,
        }
    }

    /// Keeps the jobs whose blob is neither indexed nor queued, and marks
    /// them queued (a blob twice among `jobs` is kept once).
    fn new_only(&self, jobs: Vec<Job>) -> Result<Vec<Job>> {
        let candidates: Vec<Job> = {
            let queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            jobs.into_iter()
                .filter(|j| !queued.contains(&j.id))
                .collect()
        };
        let ids: Vec<BlobId> = candidates.iter().map(|j| j.id).collect();
        let known = self.repo.index().contains_many(&ids)?;
        let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        let new: Vec<Job> = candidates
            .into_iter()
            .zip(known)
            .filter(|(j, known)| !known && queued.insert(j.id))
            .map(|(j, _)| j)
            .collect();
        let bytes: u64 = new.iter().map(|j| j.plain_len as u64).sum();
        self.queued_plain.fetch_add(bytes, Ordering::Relaxed);
        Ok(new)
    }

    fn send(&self, jobs: Vec<Job>) -> Result<()> {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if tx.is_none_or(|tx| tx.send(jobs).is_err()) {
            // Workers only stop early by panicking; report it as an error.
            return Err(Error::Interrupted);
        }
        Ok(())
    }

    /// Compresses and seals a batch, then appends it to the packs in one
    /// go, so that a file's neighbouring chunks stay neighbours in the pack
    /// (a restore then reads them together).
    fn store(&self, jobs: Vec<Job>) -> Result<()> {
        let sealed: Vec<(Job, Vec<u8>)> = jobs
            .into_iter()
            .map(|job| {
                let s = match job.kind {
                    BlobKind::Delta => blob::encode_delta(self.repo.keys(), &job.id, &job.data),
                    kind => blob::encode(
                        self.repo.keys(),
                        kind,
                        &job.id,
                        &job.data,
                        self.dict.as_deref(),
                    ),
                };
                (job, s)
            })
            .collect();
        for metadata in [false, true] {
            let mut mine = sealed
                .iter()
                .filter(|(job, _)| job.kind.is_metadata() == metadata)
                .peekable();
            if mine.peek().is_none() {
                continue;
            }
            let slot = &self.packers[usize::from(metadata)];
            let mut packer = slot.lock().unwrap_or_else(|p| p.into_inner());
            if packer.is_none() {
                *packer = Some(PackWriter::new(self.repo.backend())?);
            }
            let writer = packer.as_mut().expect("packer was just created");
            for (job, sealed) in mine {
                if let Err(e) = writer.add(job.id, job.kind, sealed) {
                    // A failed pack is abandoned here: left in its slot,
                    // the next worker would only learn it was stopped,
                    // not why (the drive's own error is this one).
                    packer.take();
                    return Err(e);
                }
                self.blobs.fetch_add(1, Ordering::Relaxed);
                self.plain
                    .fetch_add(job.plain_len as u64, Ordering::Relaxed);
                self.stored
                    .fetch_add(sealed.len() as u64, Ordering::Relaxed);
            }
            if writer.len() >= PACK_TARGET || writer.entry_count() >= MAX_PACK_ENTRIES {
                let full = packer.take().expect("packer is present");
                // Finishing (fsync) outside the lock lets the other worker go
                // on packing into a fresh pack meanwhile.
                drop(packer);
                self.finish(full)?;
            }
        }
        Ok(())
    }

    /// Makes a full pack durable, and indexes it with the others waiting.
    fn finish(&self, full: PackWriter) -> Result<()> {
        let done = full.finish(self.repo.keys())?;
        self.durable.fetch_add(done.size, Ordering::Relaxed);
        let group = {
            let mut unindexed = self.unindexed.lock().unwrap_or_else(|p| p.into_inner());
            unindexed.push(done);
            let entries: usize = unindexed.iter().map(|p| p.entries.len()).sum();
            if unindexed.len() < PACKS_PER_COMMIT && entries < MAX_UNINDEXED_ENTRIES {
                return Ok(());
            }
            std::mem::take(&mut *unindexed)
        };
        index_packs(self.repo, &group)?;
        // Now in the index: forget them here, so that this set holds only
        // what sits in packs not yet indexed, and memory does not grow with
        // the size of the source.
        let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        for e in group.iter().flat_map(|p| &p.entries) {
            queued.remove(&e.id);
        }
        Ok(())
    }
}

/// Lists durable packs in a new index file on the drive, then in the
/// cache: only then may a snapshot record reference their blobs.
fn index_packs(repo: &Repository, packs: &[FinishedPack]) -> Result<()> {
    let listed: Vec<IndexedPack> = packs.iter().map(FinishedPack::listing).collect();
    repo.write_index_file(&listed).map(|_| ())
}

/// A directory listing saved while it is built: once it is known to be
/// stored in pieces, each completed piece is saved at once, so memory holds
/// a piece, not the folder. The blobs are those [`Saver::save_tree`] makes
/// of the same entries.
pub struct ListingWriter<'s, 'r> {
    saver: &'s Saver<'r>,
    encoder: ListingEncoder,
    /// The pieces saved so far.
    pieces: Vec<BlobId>,
}

impl ListingWriter<'_, '_> {
    /// Adds the next entry (entries come sorted by name, each once).
    ///
    /// # Errors
    /// As [`Saver::save`].
    pub fn push(&mut self, node: &Node) -> Result<()> {
        self.encoder.push(node, self.saver.repo.keys());
        if self.encoder.is_split() {
            let pieces = self.encoder.take_pieces();
            self.save_pieces(&pieces)?;
        }
        Ok(())
    }

    fn save_pieces(&mut self, pieces: &[Vec<u8>]) -> Result<()> {
        if pieces.is_empty() {
            return Ok(());
        }
        if self.pieces.is_empty() {
            self.saver.repo.raise_format(SPLIT_TREE_VERSION)?;
        }
        let mut batch = self.saver.batch();
        for piece in pieces {
            self.pieces.push(batch.save(BlobKind::TreePiece, piece)?);
        }
        batch.flush()
    }

    /// Saves the rest and the tree blob; returns the tree's id.
    ///
    /// # Errors
    /// As [`Saver::save`]; storage errors raising the format.
    pub fn finish(mut self) -> Result<BlobId> {
        let encoder = std::mem::take(&mut self.encoder);
        match encoder.finish() {
            Stored::Whole(bytes) => self.saver.save(BlobKind::Tree, &bytes),
            Stored::Pieces(rest) => {
                self.save_pieces(&rest)?;
                self.saver
                    .save(BlobKind::Tree, &encode_piece_list(&self.pieces))
            }
        }
    }
}

/// Blobs saved by one thread, looked up in the index and handed to the
/// workers 256 KiB at a time. Flushed when dropped; a failure then is
/// reported by [`Saver::run`].
pub struct Batch<'s, 'r> {
    saver: &'s Saver<'r>,
    jobs: Vec<Job>,
    bytes: usize,
}

impl<'r> Batch<'_, 'r> {
    /// Stores `data` as a blob of `kind` unless the repository already has
    /// it, at the latest when the batch is flushed. Returns its id.
    ///
    /// # Errors
    /// An earlier worker failure; those of [`Batch::flush`].
    pub fn save(&mut self, kind: BlobKind, data: &[u8]) -> Result<BlobId> {
        let id = blob::blob_id(self.saver.repo.keys(), kind, data);
        self.save_hashed(kind, id, data)?;
        Ok(id)
    }

    /// As [`Batch::save`], for a caller that already hashed `data`: `id`
    /// must be its [`blob::blob_id`] as a `kind` blob.
    ///
    /// # Errors
    /// As [`Batch::save`].
    pub(crate) fn save_hashed(&mut self, kind: BlobKind, id: BlobId, data: &[u8]) -> Result<()> {
        self.saver.check_failed()?;
        self.push(Job {
            kind,
            id,
            data: data.to_vec(),
            plain_len: data.len(),
        })
    }

    /// Stores the delta `id` of a chunk of `plain_len` bytes, whose payload
    /// [`crate::format::delta::compress`] made, unless the repository
    /// already has it; raises the repository to format 8 first.
    ///
    /// # Errors
    /// As [`Batch::save`]; storage errors raising the format.
    pub fn save_delta(&mut self, id: BlobId, plain_len: usize, payload: Vec<u8>) -> Result<()> {
        self.saver.check_failed()?;
        self.saver.repo.raise_format(DELTA_VERSION)?;
        self.push(Job {
            kind: BlobKind::Delta,
            id,
            data: payload,
            plain_len,
        })
    }

    fn push(&mut self, job: Job) -> Result<()> {
        self.bytes += job.data.len();
        self.jobs.push(job);
        if self.bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// The repository this batch saves into (to read a delta's base).
    pub fn repository(&self) -> &'r Repository {
        self.saver.repo
    }

    /// A file's content reference: `extents` inline, or stored as
    /// chunk-list pieces when there are many (FORMAT.md §7.2).
    ///
    /// # Errors
    /// As [`Batch::save`].
    pub fn save_content(&mut self, extents: Vec<Extent>) -> Result<Content> {
        let mut writer = ContentWriter::default();
        for extent in extents {
            writer.push(self, extent)?;
        }
        writer.finish(self)
    }

    /// Looks the gathered blobs up and hands the new ones to the workers.
    ///
    /// # Errors
    /// An index error, or [`Error::Interrupted`] when the workers are gone.
    pub fn flush(&mut self) -> Result<()> {
        if self.jobs.is_empty() {
            return Ok(());
        }
        self.bytes = 0;
        let new = self.saver.new_only(std::mem::take(&mut self.jobs))?;
        if new.is_empty() {
            return Ok(());
        }
        self.saver.send(new)
    }
}

/// A file's content reference made as its chunks come: once the list is
/// longer than [`INLINE_MAX`], each chunk-list piece is saved as soon as it
/// is complete, so a 6.5 GB database (800,000 pages, about 60 MB of
/// extents) never holds its whole list. The blobs and the reference are
/// those of [`Batch::save_content`] for the same extents, which uses it.
#[derive(Default)]
pub struct ContentWriter {
    /// The extents while they may still be kept inline.
    inline: Vec<Extent>,
    cutter: content::PieceCutter,
    /// Pieces saved so far; `None` while the list may stay inline.
    pieces: Option<Vec<BlobId>>,
    /// Bytes of the file the extents cover.
    len: u64,
}

impl ContentWriter {
    /// Adds the next extent of the file.
    ///
    /// # Errors
    /// As [`Batch::save`].
    pub fn push(&mut self, batch: &mut Batch<'_, '_>, extent: Extent) -> Result<()> {
        self.len = self.len.saturating_add(extent.len());
        if self.pieces.is_some() {
            return self.cut(batch, extent);
        }
        self.inline.push(extent);
        if self.inline.len() > INLINE_MAX {
            self.pieces = Some(Vec::new());
            for extent in std::mem::take(&mut self.inline) {
                self.cut(batch, extent)?;
            }
        }
        Ok(())
    }

    fn cut(&mut self, batch: &mut Batch<'_, '_>, extent: Extent) -> Result<()> {
        if let Some(piece) = self.cutter.push(extent) {
            let id = batch.save(BlobKind::ChunkList, &content::encode_piece(&piece))?;
            self.pieces.get_or_insert_with(Vec::new).push(id);
        }
        Ok(())
    }

    /// Bytes of the file the extents pushed so far cover.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no extent was pushed yet, or only empty ones.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The reference: the extents inline, or the pieces, the last saved now.
    ///
    /// # Errors
    /// As [`Batch::save`].
    pub fn finish(self, batch: &mut Batch<'_, '_>) -> Result<Content> {
        let Some(mut pieces) = self.pieces else {
            return Ok(Content::Inline(self.inline));
        };
        if let Some(piece) = self.cutter.finish() {
            pieces.push(batch.save(BlobKind::ChunkList, &content::encode_piece(&piece))?);
        }
        Ok(Content::Pieces(pieces))
    }
}

impl Drop for Batch<'_, '_> {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            self.saver.fail(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{FaultPlan, FaultyBackend, MemBackend};
    use crate::format::keyfile::KdfParams;
    use std::sync::Arc;

    /// Incompressible bytes, different for every `seed`.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        blake3::Hasher::new()
            .update(&seed.to_le_bytes())
            .finalize_xof()
            .fill(&mut out);
        out
    }

    /// A drive that dies while several readers save: whichever reader the
    /// walk hears from first, the run reports the drive's error, never a
    /// bare "interrupted" (CI saw one in tests/unplug.rs).
    #[test]
    fn a_drive_dying_under_several_readers_reports_the_drive() {
        for round in 0..8u64 {
            let cache = tempfile::tempdir().unwrap();
            let drive = Arc::new(FaultyBackend::new(MemBackend::new(), FaultPlan::default()));
            let repo = Repository::init_with(drive.clone(), cache.path(), b"pw", KdfParams::CHEAP)
                .unwrap();
            drive.set_plan(FaultPlan {
                crash_at: Some(1 + round % 3),
                ..FaultPlan::default()
            });
            let result = Saver::run(&repo, |saver| {
                std::thread::scope(|scope| {
                    let readers: Vec<_> = (0..4u64)
                        .map(|r| {
                            scope.spawn(move || -> Result<()> {
                                let mut batch = saver.batch();
                                for i in 0..96u64 {
                                    let data = noise(round << 32 | r << 16 | i, 128 << 10);
                                    batch.save(BlobKind::Data, &data)?;
                                }
                                batch.flush()
                            })
                        })
                        .collect();
                    let mut first = Ok(());
                    for reader in readers {
                        let done = reader.join().unwrap_or(Err(Error::Interrupted));
                        if first.is_ok() {
                            first = done;
                        }
                    }
                    first
                })
            });
            let err = result.unwrap_err();
            assert!(
                err.to_string().contains("the drive is gone"),
                "round {round}: {err}"
            );
        }
    }
}
