//! A database's previous version, walked beside the new one while it is
//! read. A database is read whole every night for the 1 % of its pages that
//! changed; a page whose id is the one the parent snapshot recorded at the
//! same offset is stored already (the parent references it), so it needs
//! neither an index lookup nor a copy into the saver. Looking every page
//! up was a quarter of the reader's time on a 6.5 GB database
//! (docs/PERFORMANCE.md, 16 GiB).
//!
//! Trusting the parent this way is what an unchanged file already does
//! (its whole content is reused without a lookup); `check` is what finds
//! a damaged repository.
//!
//! The old extent list is read one chunk-list piece at a time, so memory
//! does not grow with the file.

use crate::format::blob::BlobKind;
use crate::format::content::{decode_piece, Content, Extent};
use crate::id::BlobId;
use crate::repo::Repository;
use crate::source::chunker::{self, Cutting};

/// The previous version of a file cut into pages; see the module
/// documentation.
pub(crate) struct PreviousPages<'r> {
    repo: &'r Repository,
    /// Chunk-list pieces not loaded yet, in file order.
    pieces: std::vec::IntoIter<BlobId>,
    /// The extents of the piece being walked.
    current: Vec<Extent>,
    /// Index in `current` of the first extent not yet passed.
    at: usize,
    /// File offset of `current[at]`.
    start: u64,
}

impl<'r> PreviousPages<'r> {
    /// The previous version `content` of a file now `size` bytes long;
    /// `None` when the file is not cut into pages.
    pub(crate) fn load(repo: &'r Repository, content: &Content, size: u64) -> Option<Self> {
        if !matches!(chunker::choose(size, &[]), Cutting::Pages(_)) {
            return None;
        }
        let (current, pieces) = match content {
            Content::Inline(extents) => (extents.clone(), Vec::new()),
            Content::Pieces(ids) => (Vec::new(), ids.clone()),
        };
        Some(PreviousPages {
            repo,
            pieces: pieces.into_iter(),
            current,
            at: 0,
            start: 0,
        })
    }

    /// Whether the previous version held the blob `id` of `len` bytes at
    /// `offset`. Offsets must grow from one call to the next. A piece
    /// that cannot be read ends the walk (every later page is then looked
    /// up as usual).
    pub(crate) fn had(&mut self, offset: u64, len: u32, id: &BlobId) -> bool {
        loop {
            let Some(extent) = self.current.get(self.at) else {
                if self.load_next() {
                    continue;
                }
                return false;
            };
            let end = self.start.saturating_add(extent.len());
            if end <= offset {
                self.start = end;
                self.at += 1;
                continue;
            }
            return self.start == offset
                && matches!(extent, Extent::Chunk { id: old, len: l, base: None }
                            if old == id && *l == len);
        }
    }

    /// Loads the next pieces, [`PIECES_AT_ONCE`] together (one index
    /// transaction, neighbours in a pack read at once: a 6.5 GB database
    /// has 40,000 pieces); `false` at the end or on a failure.
    fn load_next(&mut self) -> bool {
        let ids: Vec<BlobId> = self.pieces.by_ref().take(PIECES_AT_ONCE).collect();
        if ids.is_empty() {
            return false;
        }
        let mut decoded: Vec<Option<Vec<Extent>>> = vec![None; ids.len()];
        let loaded = self.repo.load_blobs(BlobKind::ChunkList, &ids, |i, bytes| {
            decoded[i] = decode_piece(&bytes).ok();
            Ok(())
        });
        let extents: Option<Vec<Vec<Extent>>> =
            loaded.ok().and_then(|()| decoded.into_iter().collect());
        match extents {
            Some(extents) => {
                self.current = extents.into_iter().flatten().collect();
                self.at = 0;
                true
            }
            None => {
                self.pieces = Vec::new().into_iter();
                self.current.clear();
                false
            }
        }
    }
}

/// Chunk-list pieces loaded together (~19 extents each, at most 256).
const PIECES_AT_ONCE: usize = 64;
