//! Which new chunks of a changed file are stored as deltas (FORMAT.md
//! §4.5): each new chunk against the chunk that held the same bytes of the
//! file in the parent snapshot, kept only when the delta is at most half
//! of the chunk compressed alone.
//!
//! Only files cut by content: a database's changed pages would each need a
//! random read of the drive for their base (tens of thousands a day on a
//! large one), where a rewritten text file's old chunks lie together.

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
pub(crate) struct Previous {
    /// In file order, so by `start`.
    chunks: Vec<OldChunk>,
    /// The last base read: neighbouring new chunks often share it.
    cached: Option<(BlobId, Vec<u8>)>,
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
            cached: None,
        })
    }

    /// Saves the chunk `data` found at `offset` of the file, as a delta
    /// when it pays, and returns its extent.
    ///
    /// # Errors
    /// Those of the batch.
    pub(crate) fn save(
        &mut self,
        batch: &mut Batch<'_, '_>,
        offset: u64,
        data: &[u8],
    ) -> Result<Extent> {
        let len = data.len() as u32;
        let end = offset + u64::from(len);
        // The old chunks overlapping [offset, end).
        let first = self
            .chunks
            .partition_point(|c| c.start + u64::from(c.len) <= offset);
        let near: Vec<&OldChunk> = self.chunks[first..]
            .iter()
            .take_while(|c| c.start < end)
            .collect();
        let keys = batch.repository().keys();
        // An unchanged chunk that was a delta stays that delta.
        for c in &near {
            if let Some(base) = c.base {
                if c.len == len && delta::delta_id(keys, &base, data) == c.id {
                    return Ok(Extent::Chunk {
                        id: c.id,
                        len,
                        base: Some(base),
                    });
                }
            }
        }
        // These very bytes already stored whole (a file changed back, or
        // copied from another): that blob again.
        let whole_id = blob_id(keys, BlobKind::Data, data);
        if near
            .iter()
            .any(|c| c.id == whole_id || c.base == Some(whole_id))
            || batch
                .repository()
                .index()
                .contains_many(&[whole_id])?
                .contains(&true)
        {
            return whole(batch, data);
        }
        let Some(best) = near.iter().max_by_key(|c| c.overlap(offset, end)) else {
            return whole(batch, data);
        };
        let base = best.base.unwrap_or(best.id);
        let Some(base_plain) = self.base_plain(batch.repository(), &base) else {
            return whole(batch, data);
        };
        let Some(payload) = delta::compress(&base, base_plain, data) else {
            return whole(batch, data);
        };
        // Compressing the chunk alone costs three times the delta: skip it
        // for a delta under a 48th of the chunk, which is under a third of
        // the chunk compressed alone unless that compresses more than 16 to
        // 1, and then it is still under 2 % of the chunk.
        if payload.len() * TINY_DELTA > data.len() {
            let alone = crate::format::blob::compressed_len(data);
            let (num, den) = KEEP_BELOW_SHARE;
            if payload.len() * den > alone * num {
                return whole(batch, data);
            }
        }
        let id = delta::delta_id(keys, &base, data);
        batch.save_delta(id, data.len(), payload)?;
        Ok(Extent::Chunk {
            id,
            len,
            base: Some(base),
        })
    }

    /// The plaintext of `base`, read once; `None` when it cannot be read
    /// (the chunk is then stored whole: a snapshot never fails for want of
    /// a delta).
    fn base_plain(&mut self, repo: &Repository, base: &BlobId) -> Option<&[u8]> {
        if self.cached.as_ref().is_none_or(|(id, _)| id != base) {
            self.cached = None;
            let plain = repo.load_base(base).ok()?;
            self.cached = Some((*base, plain));
        }
        self.cached.as_ref().map(|(_, plain)| plain.as_slice())
    }
}

fn whole(batch: &mut Batch<'_, '_>, data: &[u8]) -> Result<Extent> {
    let id = batch.save(BlobKind::Data, data)?;
    Ok(Extent::chunk(id, data.len() as u32))
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
        let mut out = Vec::new();
        for i in 0..3000u32 {
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
                out.push(match previous.as_mut() {
                    Some(p) => p.save(&mut batch, i as u64 * 20_000, piece)?,
                    None => whole(&mut batch, piece)?,
                });
            }
            batch.flush()?;
            Ok(out)
        })
        .expect("save");
        extents
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
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = Repository::init_with(
            Arc::new(MemBackend::new()),
            &tmp.path().join("cache"),
            b"officine passphrase",
            KdfParams::CHEAP,
        )
        .expect("init");
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
            let mut bytes = Vec::new();
            for e in extents.iter() {
                if let Extent::Chunk { id, .. } = e {
                    bytes.extend(repo.load_blob(BlobKind::Data, id).expect("load"));
                }
            }
            assert_eq!(bytes, export(day), "day {day}");
        }
    }
}
