//! A folder's listing read one tree piece at a time (FORMAT.md §7.3). A
//! walk in name order (a restore, the next snapshot's look at its parent)
//! needs only the piece it is in: a folder of 180,000 receipts is about
//! 54 MB of nodes whole, a piece a few hundred KiB.

use std::collections::VecDeque;

use crate::codec::DecodeError;
use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::tree::{decode_listing, Listing, Node, Tree};
use crate::id::BlobId;
use crate::repo::Repository;

/// Tree pieces loaded together: their encoded bytes wait in memory until
/// they are decoded, a few hundred KiB at most.
const TREE_PIECES_AT_ONCE: usize = 16;

/// The entries of one tree, in name order, as [`Iterator`] of
/// `Result<Node>`. The order across pieces is checked as they come, as
/// [`crate::format::tree::join_pieces`] does for a whole tree. After an
/// error, the iterator ends.
pub struct ListingReader<'r> {
    repo: &'r Repository,
    /// The tree, named in errors; `None` for a listing already in memory.
    tree: Option<BlobId>,
    /// Pieces not loaded yet, in name order.
    pieces: std::vec::IntoIter<BlobId>,
    /// Pieces loaded with the last batch and not decoded yet (`None`: the
    /// batch could not load it; it is loaded alone when reached).
    loaded: VecDeque<(BlobId, Option<Vec<u8>>)>,
    /// The entries of the piece being walked that were not passed yet.
    nodes: std::vec::IntoIter<Node>,
    /// The last name of the pieces loaded so far.
    last: Option<Vec<u8>>,
    ended: bool,
}

impl<'r> ListingReader<'r> {
    /// The listing of the tree `id`; its first blob is read now (so that a
    /// missing or damaged tree is an error here), its pieces as the
    /// iterator reaches them.
    ///
    /// # Errors
    /// A missing or damaged tree blob.
    pub fn open(repo: &'r Repository, id: &BlobId) -> Result<Self> {
        let bytes = repo.load_blob(BlobKind::Tree, id)?;
        let (nodes, pieces) = match decode_listing(&bytes) {
            Ok(Listing::Nodes(tree)) => (tree.nodes, Vec::new()),
            Ok(Listing::Pieces(ids)) => (Vec::new(), ids),
            Err(e) => return Err(Error::corrupt("tree", id.short(), e)),
        };
        Ok(ListingReader {
            repo,
            tree: Some(*id),
            pieces: pieces.into_iter(),
            loaded: VecDeque::new(),
            nodes: nodes.into_iter(),
            last: None,
            ended: false,
        })
    }

    /// A listing already in memory (a snapshot's root).
    pub fn of(repo: &'r Repository, tree: Tree) -> Self {
        ListingReader {
            repo,
            tree: None,
            pieces: Vec::new().into_iter(),
            loaded: VecDeque::new(),
            nodes: tree.nodes.into_iter(),
            last: None,
            ended: false,
        }
    }

    /// The tree pieces not read yet: all of them before the first
    /// entry is asked for (later, those past the last batch loaded).
    pub fn pieces(&self) -> &[BlobId] {
        self.pieces.as_slice()
    }

    /// The next piece's id and bytes, loading pieces [`TREE_PIECES_AT_ONCE`]
    /// at a time (one index transaction, neighbours in a pack read
    /// together); `None` after the last.
    fn next_loaded(&mut self) -> Option<(BlobId, Option<Vec<u8>>)> {
        if self.loaded.is_empty() {
            let ids: Vec<BlobId> = self.pieces.by_ref().take(TREE_PIECES_AT_ONCE).collect();
            let mut slots: Vec<Option<Vec<u8>>> = vec![None; ids.len()];
            // A failed batch is not an error yet: the pieces it did not
            // load are loaded alone when reached, so the entries before a
            // damaged piece still come, and its own error is the one told.
            let _ = self.repo.load_blobs(BlobKind::TreePiece, &ids, |i, data| {
                slots[i] = Some(data);
                Ok(())
            });
            self.loaded = ids.into_iter().zip(slots).collect();
        }
        self.loaded.pop_front()
    }

    fn next_piece(&mut self, id: &BlobId, bytes: Option<Vec<u8>>) -> Result<Vec<Node>> {
        let bytes = match bytes {
            Some(b) => b,
            None => self.repo.load_blob(BlobKind::TreePiece, id)?,
        };
        let piece =
            Tree::decode(&bytes).map_err(|e| Error::corrupt("tree piece", id.short(), e))?;
        let out_of_order = match (&self.last, piece.nodes.first()) {
            (_, None) => Some(DecodeError::Invalid("empty tree piece")),
            (Some(last), Some(first)) if *last >= first.name => {
                Some(DecodeError::Invalid("names not strictly sorted"))
            }
            _ => None,
        };
        if let Some(e) = out_of_order {
            let tree = self.tree.as_ref().map(BlobId::short).unwrap_or_default();
            return Err(Error::corrupt("tree", tree, e));
        }
        self.last = piece.nodes.last().map(|n| n.name.clone());
        Ok(piece.nodes)
    }
}

impl Iterator for ListingReader<'_> {
    type Item = Result<Node>;

    fn next(&mut self) -> Option<Result<Node>> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(node) = self.nodes.next() {
                return Some(Ok(node));
            }
            let (id, bytes) = self.next_loaded()?;
            match self.next_piece(&id, bytes) {
                Ok(nodes) => self.nodes = nodes.into_iter(),
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::{encode_piece_list, NodeKind, Payload};
    use crate::ops::compare::testing;
    use crate::repo::saver::Saver;

    fn node(name: &str) -> Node {
        testing::node(name.as_bytes(), NodeKind::Fifo, Payload::None, 0)
    }

    fn piece(names: &[&str]) -> Vec<u8> {
        Tree {
            nodes: names.iter().map(|n| node(n)).collect(),
        }
        .encode()
    }

    /// Saves a listing of the given pieces (some maybe never saved: ids of
    /// nothing) and reads it back; the names read, and the error if any.
    fn read_back(pieces: &[Option<Vec<u8>>]) -> (Vec<String>, Option<String>) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = testing::repo(tmp.path());
        let (tree, _) = Saver::run(&repo, |s| {
            let mut ids = Vec::new();
            for p in pieces {
                ids.push(match p {
                    Some(bytes) => s.save(BlobKind::TreePiece, bytes)?,
                    None => BlobId([7; 32]),
                });
            }
            s.save(BlobKind::Tree, &encode_piece_list(&ids))
        })
        .expect("save");
        let (mut names, mut error) = (Vec::new(), None);
        for entry in ListingReader::open(&repo, &tree).expect("open") {
            match entry {
                Ok(n) => names.push(String::from_utf8_lossy(&n.name).into_owned()),
                Err(e) => {
                    assert!(error.is_none(), "an entry after an error");
                    error = Some(e.to_string());
                }
            }
        }
        (names, error)
    }

    #[test]
    fn pieces_are_read_in_order_and_their_order_checked() {
        let (a, b, c) = (piece(&["a", "b"]), piece(&["c", "d", "e"]), piece(&["f"]));
        let (names, error) = read_back(&[Some(a.clone()), Some(b.clone()), Some(c.clone())]);
        assert_eq!(names, ["a", "b", "c", "d", "e", "f"]);
        assert_eq!(error, None);

        // Out of order, overlapping, empty, missing: what came before is
        // given, then one error, then nothing.
        for (pieces, before, why) in [
            (vec![Some(b.clone()), Some(a.clone())], 3, "sorted"),
            (vec![Some(a.clone()), Some(piece(&["b", "c"]))], 2, "sorted"),
            (
                vec![Some(a.clone()), Some(piece(&[])), Some(c.clone())],
                2,
                "empty",
            ),
            (vec![Some(a.clone()), None, Some(c.clone())], 2, ""),
        ] {
            let (names, error) = read_back(&pieces);
            assert_eq!(names.len(), before, "{names:?}");
            let error = error.expect("an error");
            assert!(error.contains(why), "{error}");
        }
    }
}
