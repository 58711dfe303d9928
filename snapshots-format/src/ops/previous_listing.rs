//! A folder's listing in the parent snapshot, walked beside the new one.
//! The walk visits a folder's names in sorted order, which is the order of
//! its listing, so the parent's listing is read one tree piece at a time
//! ([`ListingReader`]): a folder of 180,000 receipts is never held whole
//! (it was 54 MB of nodes at 16 GiB, for the unchanged check alone).

use std::iter::Peekable;

use crate::format::tree::{Node, Tree};
use crate::id::BlobId;
use crate::repo::{ListingReader, Repository};

/// See the module documentation.
pub(crate) struct PreviousListing<'r> {
    entries: Peekable<ListingReader<'r>>,
}

impl<'r> PreviousListing<'r> {
    /// The listing of the tree `id`; `None` when it cannot be read (every
    /// entry is then new to the walk, as without a parent).
    pub(crate) fn load(repo: &'r Repository, id: &BlobId) -> Option<Self> {
        let entries = ListingReader::open(repo, id).ok()?.peekable();
        Some(PreviousListing { entries })
    }

    /// A listing already in memory (a snapshot's root).
    pub(crate) fn of(repo: &'r Repository, tree: Tree) -> Self {
        PreviousListing {
            entries: ListingReader::of(repo, tree).peekable(),
        }
    }

    /// The entry named `name`, if the listing has one. Names must grow
    /// from one call to the next. A piece that cannot be read ends the
    /// walk (the later entries are then new to it).
    pub(crate) fn take(&mut self, name: &[u8]) -> Option<Node> {
        loop {
            match self.entries.peek()? {
                Ok(n) if n.name.as_slice() < name => {
                    self.entries.next();
                }
                Ok(n) if n.name == name => return self.entries.next()?.ok(),
                // An error stays peeked: every later name is new.
                Ok(_) | Err(_) => return None,
            }
        }
    }
}
