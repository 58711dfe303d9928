//! Which new chunks of a changed file are stored as deltas (FORMAT.md
//! §4.5): each new chunk against the chunk that held the same bytes of the
//! file in the parent snapshot, kept only when the delta is at most half
//! of the chunk compressed alone.
//!
//! Only files cut by content: a database's changed pages would each need a
//! random read of the drive for their base (tens of thousands a day on a
//! large one), where a rewritten text file's old chunks lie together.

use std::collections::{HashMap, HashSet};

use crate::crypto::Keys;
use crate::error::Result;
use crate::format::blob::{blob_id, BlobKind};
use crate::format::content::{Content, Extent};
use crate::format::delta::{self, KEEP_BELOW_SHARE};
use crate::id::BlobId;
use crate::repo::chunk_list_reader::ChunkListReader;
use crate::repo::saver::Batch;
use crate::repo::Repository;
use crate::source::chunker;

/// Files whose previous version has more extents than this are stored
/// without deltas: the list is held in memory while the file is read
/// (65,536 extents is about 4 GiB of text, 3 MiB of memory).
const MAX_PREVIOUS_EXTENTS: usize = 65_536;

/// A delta at most this fraction of its chunk's plaintext is kept without
/// comparing it with the chunk compressed alone (see [`Previous::save`]).
const TINY_DELTA: usize = 48;

/// One chunk of the previous version.
struct OldChunk {
    start: u64,
    len: u32,
    id: BlobId,
    base: Option<BlobId>,
}

impl OldChunk {
    fn overlap(&self, from: u64, to: u64) -> u64 {
        let end = self.start + u64::from(self.len);
        end.min(to).saturating_sub(self.start.max(from))
    }
}

/// The previous version of a file being read, to make deltas against.
///
/// New chunks are taken a window at a time ([`WINDOW`]): the window's
/// index checks run in one transaction, its bases are read together (old
/// chunks lie side by side in their packs: a few reads of the drive
/// instead of one per chunk), and its deltas are compressed on several
/// threads. One chunk at a time, a rewritten export was the longest
/// reader of a daily snapshot: each chunk waited for its base from the
/// drive, then for a level-9 delta on one core (docs/PERFORMANCE.md).
pub(crate) struct Previous {
    /// In file order, so by `start`.
    chunks: Vec<OldChunk>,
    /// New chunks not saved yet: their offset in the file and bytes.
    pending: Vec<(u64, Vec<u8>)>,
    /// Bases read for the last window, kept for the next one: the chunks
    /// at a window's edge often share a base.
    bases: HashMap<BlobId, Vec<u8>>,
    /// zstd level of this file's deltas ([`delta::level_for`]).
    level: i32,
}

/// New chunks taken together (about 2 MiB of a text file).
const WINDOW: usize = 32;

/// What becomes of one new chunk of a window.
enum Plan {
    /// Decided already: this extent.
    Known(Extent),
    /// Stored whole, with this id.
    Whole(BlobId),
    /// A delta against `base` if it pays, else stored whole as `whole`.
    Delta { base: BlobId, whole: BlobId },
}

impl Previous {
    /// The previous version `content` of a file now `size` bytes long;
    /// `None` when the file is cut into pages, its old list is too long, or
    /// cannot be read (the file is then stored without deltas, as before).
    pub(crate) fn load(repo: &Repository, content: &Content, size: u64) -> Option<Self> {
        if matches!(chunker::choose(size, &[]), chunker::Cutting::Pages(_)) {
            return None;
        }
        let mut chunks = Vec::new();
        let (mut start, mut count) = (0u64, 0usize);
        // A window at a time, so that a list too long is dropped before
        // it is all read.
        for window in ChunkListReader::new(repo, content) {
            let window = window.ok()?;
            count += window.len();
            if count > MAX_PREVIOUS_EXTENTS {
                return None;
            }
            for e in window {
                if let Extent::Chunk { id, len, base } = e {
                    chunks.push(OldChunk {
                        start,
                        len,
                        id,
                        base,
                    });
                }
                start = start.checked_add(e.len())?;
            }
        }
        Some(Self {
            chunks,
            pending: Vec::new(),
            bases: HashMap::new(),
            level: delta::level_for(size),
        })
    }

    /// Takes the chunk `data` found at `offset` of the file (offsets grow
    /// from one call to the next) and returns the extents of the chunks
    /// saved meanwhile, in file order: none until a window is full.
    ///
    /// # Errors
    /// Those of the batch.
    pub(crate) fn save(
        &mut self,
        batch: &mut Batch<'_, '_>,
        offset: u64,
        data: &[u8],
    ) -> Result<Vec<Extent>> {
        self.pending.push((offset, data.to_vec()));
        if self.pending.len() < WINDOW {
            return Ok(Vec::new());
        }
        self.flush(batch)
    }

    /// Saves the chunks still pending and returns their extents: at the
    /// end of the file, or before a hole.
    ///
    /// # Errors
    /// Those of the batch.
    pub(crate) fn flush(&mut self, batch: &mut Batch<'_, '_>) -> Result<Vec<Extent>> {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let repo = batch.repository();
        let mut plans: Vec<Plan> = pending
            .iter()
            .map(|(offset, data)| self.plan(repo.keys(), *offset, data))
            .collect();
        // These very bytes already stored whole elsewhere (a file copied
        // from another): that blob again. One transaction for the window.
        let asked: Vec<(usize, BlobId)> = plans
            .iter()
            .enumerate()
            .filter_map(|(i, plan)| match plan {
                Plan::Delta { whole, .. } => Some((i, *whole)),
                _ => None,
            })
            .collect();
        let ids: Vec<BlobId> = asked.iter().map(|(_, id)| *id).collect();
        for ((i, id), stored) in asked.iter().zip(repo.index().contains_many(&ids)?) {
            if stored {
                plans[*i] = Plan::Whole(*id);
            }
        }
        self.read_bases(repo, &plans);
        let payloads = self.compress(&plans, &pending);
        let mut extents = Vec::with_capacity(pending.len());
        for ((plan, payload), (_, data)) in plans.into_iter().zip(payloads).zip(&pending) {
            let len = data.len() as u32;
            extents.push(match (plan, payload) {
                (Plan::Known(extent), _) => extent,
                (Plan::Delta { base, .. }, Some(payload)) => {
                    let id = delta::delta_id(repo.keys(), &base, data);
                    batch.save_delta(id, data.len(), payload)?;
                    Extent::Chunk {
                        id,
                        len,
                        base: Some(base),
                    }
                }
                (Plan::Whole(id) | Plan::Delta { whole: id, .. }, _) => {
                    batch.save_hashed(BlobKind::Data, id, data)?;
                    Extent::chunk(id, len)
                }
            });
        }
        Ok(extents)
    }

    /// What to do with the chunk `data` at `offset`, from the old chunks
    /// it overlaps.
    fn plan(&self, keys: &Keys, offset: u64, data: &[u8]) -> Plan {
        let len = data.len() as u32;
        let end = offset + u64::from(len);
        // The old chunks overlapping [offset, end).
        let first = self
            .chunks
            .partition_point(|c| c.start + u64::from(c.len) <= offset);
        let near = || self.chunks[first..].iter().take_while(|c| c.start < end);
        // An unchanged chunk that was a delta stays that delta.
        for c in near() {
            if let Some(base) = c.base {
                if c.len == len && delta::delta_id(keys, &base, data) == c.id {
                    return Plan::Known(Extent::Chunk {
                        id: c.id,
                        len,
                        base: Some(base),
                    });
                }
            }
        }
        // These very bytes stored whole before (a file changed back).
        let whole_id = blob_id(keys, BlobKind::Data, data);
        if near().any(|c| c.id == whole_id || c.base == Some(whole_id)) {
            return Plan::Whole(whole_id);
        }
        match near().max_by_key(|c| c.overlap(offset, end)) {
            Some(best) => Plan::Delta {
                base: best.base.unwrap_or(best.id),
                whole: whole_id,
            },
            None => Plan::Whole(whole_id),
        }
    }

    /// Reads the bases the window's deltas need, together; a base that
    /// cannot be read leaves its chunks whole (a snapshot never fails for
    /// want of a delta).
    fn read_bases(&mut self, repo: &Repository, plans: &[Plan]) {
        let needed: HashSet<BlobId> = plans
            .iter()
            .filter_map(|p| match p {
                Plan::Delta { base, .. } => Some(*base),
                _ => None,
            })
            .collect();
        self.bases.retain(|id, _| needed.contains(id));
        let mut missing: Vec<BlobId> = needed
            .into_iter()
            .filter(|id| !self.bases.contains_key(id))
            .collect();
        missing.sort_unstable();
        let mut got = HashMap::with_capacity(missing.len());
        let together = repo.load_bases(&missing, |i, plain| {
            got.insert(missing[i], plain);
            Ok(())
        });
        if together.is_err() {
            // One of them is damaged or gone: the others one by one.
            got.clear();
            for id in &missing {
                if let Ok(plain) = repo.load_base(id) {
                    got.insert(*id, plain);
                }
            }
        }
        self.bases.extend(got);
    }

    /// The delta payload of each planned delta that pays, compressed on
    /// this thread and helpers: `None` for the other chunks.
    fn compress(&self, plans: &[Plan], pending: &[(u64, Vec<u8>)]) -> Vec<Option<Vec<u8>>> {
        let one = |i: usize| -> Option<Vec<u8>> {
            let Plan::Delta { base, .. } = &plans[i] else {
                return None;
            };
            let data = &pending[i].1;
            let payload = delta::compress(base, self.bases.get(base)?, data, self.level)?;
            // Compressing the chunk alone costs three times the delta: skip
            // it for a delta under a 48th of the chunk, which is under a
            // third of the chunk compressed alone unless that compresses
            // more than 16 to 1, and then it is still under 2 % of the chunk.
            if payload.len() * TINY_DELTA > data.len() {
                let alone = crate::format::blob::compressed_len(data);
                let (num, den) = KEEP_BELOW_SHARE;
                if payload.len() * den > alone * num {
                    return None;
                }
            }
            Some(payload)
        };
        let deltas = plans
            .iter()
            .filter(|p| matches!(p, Plan::Delta { .. }))
            .count();
        let threads = helpers().min(deltas.saturating_sub(1)) + 1;
        if threads == 1 {
            return (0..plans.len()).map(one).collect();
        }
        // Chunk i goes to thread i % threads; this thread keeps share 0,
        // so its zstd context (kept per thread) serves most chunks.
        let share = |t: usize| -> Vec<(usize, Option<Vec<u8>>)> {
            (t..plans.len())
                .step_by(threads)
                .map(|i| (i, one(i)))
                .collect()
        };
        let mut out: Vec<Option<Vec<u8>>> = vec![None; plans.len()];
        std::thread::scope(|scope| {
            let handles: Vec<_> = (1..threads)
                .map(|t| {
                    std::thread::Builder::new()
                        .name("coffre-delta".into())
                        .spawn_scoped(scope, move || share(t))
                })
                .collect();
            let mut done = share(0);
            for (t, handle) in (1..threads).zip(handles) {
                // A helper that could not start or panicked: its share is
                // made here.
                match handle.map(|h| h.join()) {
                    Ok(Ok(part)) => done.extend(part),
                    _ => done.extend(share(t)),
                }
            }
            for (i, payload) in done {
                out[i] = payload;
            }
        });
        out
    }
}

/// Threads that compress deltas beside the reader: one less than the
/// cores, at most three.
fn helpers() -> usize {
    crate::ops::cores().clamp(1, 4) - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemBackend;
    use crate::format::keyfile::KdfParams;
    use crate::repo::saver::Saver;
    use std::sync::Arc;

    /// Rows of a stock export, one in twenty changed by `day`; an odd
    /// length, so that it is cut by content.
    fn export(day: u32) -> Vec<u8> {
        export_of(3000, day)
    }

    /// [`export`] with `rows` rows.
    fn export_of(rows: u32, day: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..rows {
            let stock = i * 7 % 500 + if i % 20 == 0 { day } else { 0 };
            out.extend_from_slice(format!("{i:05};DOLIPRANE 1000 MG;{stock}\n").as_bytes());
        }
        out.push(b'\n');
        out
    }

    /// Saves `bytes` in pieces of 20,000 bytes, through `previous` when
    /// given; returns the extents.
    fn save(repo: &Repository, bytes: &[u8], previous: Option<&Content>) -> Vec<Extent> {
        let (extents, _) = Saver::run(repo, |saver| {
            let mut previous = previous.and_then(|p| Previous::load(repo, p, bytes.len() as u64));
            let mut batch = saver.batch();
            let mut out = Vec::new();
            for (i, piece) in bytes.chunks(20_000).enumerate() {
                match previous.as_mut() {
                    Some(p) => out.extend(p.save(&mut batch, i as u64 * 20_000, piece)?),
                    None => {
                        let id = batch.save(BlobKind::Data, piece)?;
                        out.push(Extent::chunk(id, piece.len() as u32));
                    }
                }
            }
            if let Some(p) = previous.as_mut() {
                out.extend(p.flush(&mut batch)?);
            }
            batch.flush()?;
            Ok(out)
        })
        .expect("save");
        extents
    }

    /// An empty repository in memory (and the folder of its cache).
    fn repository() -> (tempfile::TempDir, Repository) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = Repository::init_with(
            Arc::new(MemBackend::new()),
            &tmp.path().join("cache"),
            b"officine passphrase",
            KdfParams::CHEAP,
        )
        .expect("init");
        (tmp, repo)
    }

    /// The bytes `extents` hold.
    fn read_back(repo: &Repository, extents: &[Extent]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for e in extents {
            if let Extent::Chunk { id, .. } = e {
                bytes.extend(repo.load_blob(BlobKind::Data, id).expect("load"));
            }
        }
        bytes
    }

    /// Each of `new` is a delta whose base is the chunk of `old` at its place.
    fn assert_based_on(new: &[Extent], old: &[Extent]) {
        for (new, old) in new.iter().zip(old) {
            let (Extent::Chunk { base, .. }, Extent::Chunk { id, .. }) = (new, old) else {
                panic!("holes");
            };
            assert_eq!(*base, Some(*id));
        }
    }

    #[test]
    fn changed_chunks_become_deltas_unchanged_ones_stay_and_a_reverted_file_is_whole_again() {
        let (_tmp, repo) = repository();
        let day0 = save(&repo, &export(0), None);
        assert!(day0.iter().all(|e| !e.is_delta()));
        let day1 = save(&repo, &export(1), Some(&Content::Inline(day0.clone())));
        // The last, short piece may not pay (a delta costs its base id).
        assert!(day1[..4].iter().all(Extent::is_delta), "{day1:?}");
        // Each delta names as its base the day-0 chunk at its place.
        assert_based_on(&day1[..4], &day0);
        // The same bytes again: the same deltas, nothing new stored.
        let again = save(&repo, &export(1), Some(&Content::Inline(day1.clone())));
        assert_eq!(again, day1);
        // Day 2 against day 1's deltas: deltas against the same day-0 bases.
        let day2 = save(&repo, &export(2), Some(&Content::Inline(day1.clone())));
        assert_based_on(&day2[..4], &day0);
        // Back to day 0: the day-0 blobs, whole.
        let back = save(&repo, &export(0), Some(&Content::Inline(day2.clone())));
        assert_eq!(back, day0);
        // Every version reads back.
        for (extents, day) in [(&day0, 0), (&day1, 1), (&day2, 2)] {
            assert_eq!(read_back(&repo, extents), export(day), "day {day}");
        }
    }

    #[test]
    fn a_file_of_many_windows_keeps_its_chunks_in_order() {
        let (_tmp, repo) = repository();
        // About 100 pieces: three windows and part of a fourth, each
        // compressed on several threads where there are cores.
        let (old, new) = (export_of(80_000, 0), export_of(80_000, 1));
        let pieces = new.len().div_ceil(20_000);
        assert!(pieces > 3 * WINDOW, "{pieces}");
        let day0 = save(&repo, &old, None);
        let day1 = save(&repo, &new, Some(&Content::Inline(day0.clone())));
        assert_eq!(day1.len(), pieces);
        assert_based_on(&day1[..pieces - 1], &day0);
        assert_eq!(read_back(&repo, &day1), new);
    }
}
