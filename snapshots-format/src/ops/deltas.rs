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
use crate::repo::saver::Batch;
use crate::repo::Repository;
use crate::source::chunker;

/// Files whose previous version has more extents than this are stored
/// without deltas: the list is held in memory while the file is read
/// (65,536 extents is about 4 GiB of text, 3 MiB of memory).
const MAX_PREVIOUS_EXTENTS: usize = 65_536;

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
        let extents = repo.load_extents(content).ok()?;
        if extents.len() > MAX_PREVIOUS_EXTENTS {
            return None;
        }
        let mut chunks = Vec::new();
        let mut start = 0u64;
        for e in extents {
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
        let whole_id = blob_id(keys, BlobKind::Data, data);
        let best = near
            .iter()
            .filter(|c| c.id != whole_id)
            .max_by_key(|c| c.overlap(offset, end));
        let Some(best) = best.filter(|_| !near.iter().any(|c| c.id == whole_id)) else {
            return whole(batch, data);
        };
        let base = best.base.unwrap_or(best.id);
        let Some(base_plain) = self.base_plain(batch.repository(), &base) else {
            return whole(batch, data);
        };
        let Some(payload) = delta::compress(&base, base_plain, data) else {
            return whole(batch, data);
        };
        let alone = zstd::bulk::compress(data, crate::format::ZSTD_LEVEL)
            .map_or(data.len(), |c| c.len().min(data.len()));
        let (num, den) = KEEP_BELOW_SHARE;
        if payload.len() * den > alone * num {
            return whole(batch, data);
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
