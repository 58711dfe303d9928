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
//! The old extent list is read a few chunk-list pieces at a time
//! ([`ChunkListReader`]), so memory does not grow with the file.

use crate::format::content::{Content, Extent};
use crate::id::BlobId;
use crate::repo::chunk_list_reader::ChunkListReader;
use crate::repo::Repository;
use crate::source::chunker::{self, Cutting};

/// The previous version of a file cut into pages; see the module
/// documentation.
pub(crate) struct PreviousPages<'r> {
    /// The old extent list, a window at a time.
    windows: ChunkListReader<'r>,
    /// The extents of the window being walked.
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
        Some(PreviousPages {
            windows: ChunkListReader::new(repo, content),
            current: Vec::new(),
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
                match self.windows.next() {
                    Some(Ok(window)) => {
                        self.current = window;
                        self.at = 0;
                        continue;
                    }
                    Some(Err(_)) | None => return false,
                }
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
}
