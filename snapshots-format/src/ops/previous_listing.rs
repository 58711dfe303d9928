//! A folder's listing in the parent snapshot, walked beside the new one.
//! The walk visits a folder's names in sorted order, which is the order of
//! its listing, so the parent's listing is read one tree piece at a time:
//! a folder of 180,000 receipts is never held whole (it was 54 MB of nodes
//! at 16 GiB, for the unchanged check alone).

use std::collections::VecDeque;

use crate::format::blob::BlobKind;
use crate::format::tree::{decode_listing, Listing, Node, Tree};
use crate::id::BlobId;
use crate::repo::Repository;

/// See the module documentation.
pub(crate) struct PreviousListing<'r> {
    repo: &'r Repository,
    /// Tree pieces not loaded yet, in name order.
    pieces: std::vec::IntoIter<BlobId>,
    /// The entries of the piece being walked that were not passed yet.
    nodes: VecDeque<Node>,
}

impl<'r> PreviousListing<'r> {
    /// The listing of the tree `id`; `None` when it cannot be read (every
    /// entry is then new to the walk, as without a parent).
    pub(crate) fn load(repo: &'r Repository, id: &BlobId) -> Option<Self> {
        let bytes = repo.load_blob(BlobKind::Tree, id).ok()?;
        let (nodes, pieces) = match decode_listing(&bytes).ok()? {
            Listing::Nodes(tree) => (tree.nodes, Vec::new()),
            Listing::Pieces(ids) => (Vec::new(), ids),
        };
        Some(PreviousListing {
            repo,
            pieces: pieces.into_iter(),
            nodes: nodes.into(),
        })
    }

    /// A listing already in memory (a snapshot's root).
    pub(crate) fn of(repo: &'r Repository, tree: Tree) -> Self {
        PreviousListing {
            repo,
            pieces: Vec::new().into_iter(),
            nodes: tree.nodes.into(),
        }
    }

    /// The entry named `name`, if the listing has one. Names must grow
    /// from one call to the next. A piece that cannot be read ends the
    /// walk (the later entries are then new to it).
    pub(crate) fn take(&mut self, name: &[u8]) -> Option<Node> {
        loop {
            while self.nodes.front().is_some_and(|n| n.name.as_slice() < name) {
                self.nodes.pop_front();
            }
            if let Some(node) = self.nodes.front() {
                if node.name != name {
                    return None;
                }
                return self.nodes.pop_front();
            }
            let id = self.pieces.next()?;
            let piece = self
                .repo
                .load_blob(BlobKind::TreePiece, &id)
                .ok()
                .and_then(|bytes| Tree::decode(&bytes).ok());
            match piece {
                Some(piece) => self.nodes = piece.nodes.into(),
                None => {
                    self.pieces = Vec::new().into_iter();
                    return None;
                }
            }
        }
    }
}
