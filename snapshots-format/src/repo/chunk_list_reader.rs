//! A file's extent list read a few chunk-list pieces at a time (FORMAT.md
//! §7.2). A 6.5 GB database has 800,000 extents, about 60 MB decoded: a
//! restore or a walk in file order needs only a window of them.

use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::content::{decode_piece, Content, Extent};
use crate::id::BlobId;
use crate::limits::MAX_FILE_LEN;
use crate::repo::Repository;

/// Chunk-list pieces loaded together (one index transaction, neighbours in
/// a pack read at once); pieces hold ~19 extents each, at most 256.
pub const PIECES_AT_ONCE: usize = 64;

/// A chunk-list piece and the extents it lists.
pub type Piece = (BlobId, Vec<Extent>);

/// The extents of one file in order, as an [`Iterator`] of windows
/// (`Result<Vec<Extent>>`, none empty). Their total is checked as they come
/// against [`MAX_FILE_LEN`], as [`Repository::load_extents`] does for a
/// whole list. After an error, the iterator ends.
pub struct ChunkListReader<'r> {
    repo: &'r Repository,
    inline: Option<Vec<Extent>>,
    pieces: std::vec::IntoIter<BlobId>,
    /// The first piece, named when the total is too large.
    first: String,
    total: u64,
    ended: bool,
}

impl<'r> ChunkListReader<'r> {
    /// The extents `content` lists.
    pub fn new(repo: &'r Repository, content: &Content) -> Self {
        let (inline, pieces, first) = match content {
            Content::Inline(e) => (Some(e.clone()), Vec::new(), "in its tree".to_owned()),
            Content::Pieces(ids) => (
                None,
                ids.clone(),
                ids.first().map(BlobId::short).unwrap_or_default(),
            ),
        };
        ChunkListReader {
            repo,
            inline,
            pieces: pieces.into_iter(),
            first,
            total: 0,
            ended: false,
        }
    }

    /// Bytes the windows returned so far list.
    pub fn total(&self) -> u64 {
        self.total
    }

    fn next_window(&mut self) -> Result<Option<Vec<Extent>>> {
        let window = match self.inline.take() {
            Some(extents) => extents,
            None => match self.next_pieces()? {
                Some(pieces) => pieces.into_iter().flat_map(|(_, e)| e).collect(),
                None => return Ok(None),
            },
        };
        self.total = add_lengths(self.total, &window, &self.first)?;
        Ok(Some(window))
    }

    /// The next pieces of a list held in pieces, each with its extents
    /// (up to [`PIECES_AT_ONCE`] of them, loaded together); `None` after
    /// the last. An inline list has no pieces. Not counted in
    /// [`ChunkListReader::total`].
    ///
    /// # Errors
    /// A piece that cannot be loaded or decoded.
    pub fn next_pieces(&mut self) -> Result<Option<Vec<Piece>>> {
        let ids: Vec<BlobId> = self.pieces.by_ref().take(PIECES_AT_ONCE).collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let mut decoded: Vec<Vec<Extent>> = vec![Vec::new(); ids.len()];
        self.repo
            .load_blobs(BlobKind::ChunkList, &ids, |i, bytes| {
                decoded[i] = decode_piece(&bytes)
                    .map_err(|e| Error::corrupt("chunk list", ids[i].short(), e))?;
                Ok(())
            })?;
        Ok(Some(ids.into_iter().zip(decoded).collect()))
    }
}

/// `total` plus the lengths of `extents`; [`Error::Corrupt`] naming the
/// chunk list `named` past [`MAX_FILE_LEN`], so that no reader's offsets
/// can wrap.
pub(crate) fn add_lengths(total: u64, extents: &[Extent], named: &str) -> Result<u64> {
    extents
        .iter()
        .try_fold(total, |sum, e| sum.checked_add(e.len()))
        .filter(|&n| n <= MAX_FILE_LEN)
        .ok_or_else(|| {
            Error::corrupt(
                "chunk list",
                named.to_owned(),
                "adds up to more than 2^63 bytes, more than any file can hold",
            )
        })
}

impl Iterator for ChunkListReader<'_> {
    type Item = Result<Vec<Extent>>;

    fn next(&mut self) -> Option<Result<Vec<Extent>>> {
        loop {
            if self.ended {
                return None;
            }
            match self.next_window() {
                Ok(Some(w)) if w.is_empty() => continue,
                Ok(Some(w)) => return Some(Ok(w)),
                Ok(None) => return None,
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
