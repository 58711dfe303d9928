//! Paths inside snapshots, for the read-only operations (`history`,
//! `find`, `diff`, `dump`): joining raw names, and looking a path up in
//! many snapshots while reusing what unchanged folders already answered.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, Timestamp, MAX_DEPTH};
use crate::id::{BlobId, SnapshotId};
use crate::ops::compare::subtree;
use crate::repo::browse::Browser;

/// `prefix/name` as raw bytes (just `name` at the root). Paths inside a
/// snapshot are bytes: names need not be UTF-8.
pub fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(prefix.len() + 1 + name.len());
    if !prefix.is_empty() {
        path.extend_from_slice(prefix);
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// The components of a slash-separated path, empty ones dropped
/// (`/db//x/` -> `db`, `x`).
pub fn components(path: &[u8]) -> Vec<&[u8]> {
    path.split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .collect()
}

/// A path without empty components (`/db//x/` -> `db/x`).
pub fn normalize(path: &[u8]) -> Vec<u8> {
    components(path).join(&b'/')
}

/// Which snapshot, and when: what the results of the operations name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotRef {
    /// The snapshot's id.
    pub id: SnapshotId,
    /// When it was taken.
    pub time: Timestamp,
}

impl SnapshotRef {
    /// The reference to a listed snapshot.
    pub fn of((id, snap): &(SnapshotId, Snapshot)) -> Self {
        Self {
            id: *id,
            time: snap.time,
        }
    }
}

/// The snapshots oldest first (ties by id), whatever order they were listed in.
pub fn by_time(snapshots: &[(SnapshotId, Snapshot)]) -> Vec<&(SnapshotId, Snapshot)> {
    let mut sorted: Vec<_> = snapshots.iter().collect();
    sorted.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    sorted
}

/// Looks one path up in snapshot after snapshot. A folder whose tree id
/// was already walked at the same depth holds the same entries, so the
/// answer found below it then is the answer now: a year of daily
/// snapshots costs the folders that changed, not 365 walks.
pub struct Lookup<'p> {
    parts: Vec<&'p [u8]>,
    memo: HashMap<(usize, BlobId), Option<Node>>,
}

impl<'p> Lookup<'p> {
    /// A lookup of `path` (slash-separated, raw bytes).
    ///
    /// # Errors
    /// [`Error::BadPath`] for a path naming no entry (empty, `.`, `..`)
    /// or nested deeper than any tree may be.
    pub fn new(path: &'p [u8]) -> Result<Self> {
        let parts = components(path);
        let bad = |reason: &str| Error::BadPath {
            path: String::from_utf8_lossy(path).into_owned(),
            reason: reason.into(),
        };
        if parts.is_empty() {
            return Err(bad("give a file or folder inside the snapshot"));
        }
        if parts.iter().any(|p| *p == b"." || *p == b"..") {
            return Err(bad(
                "'.' and '..' are not allowed; give the path from the snapshot's root",
            ));
        }
        if parts.len() > MAX_DEPTH {
            return Err(bad("nested deeper than any snapshot holds"));
        }
        Ok(Self {
            parts,
            memo: HashMap::new(),
        })
    }

    /// The node at the path in the tree `root`, or `None` when some
    /// component is missing or not a folder.
    ///
    /// # Errors
    /// Those of [`Browser::find`] (a missing or damaged tree or piece).
    pub fn find(&mut self, browser: &Browser, root: &BlobId) -> Result<Option<Node>> {
        let mut visited = Vec::new();
        let mut tree_id = *root;
        let found = loop {
            let depth = visited.len();
            if let Some(known) = self.memo.get(&(depth, tree_id)) {
                break known.clone();
            }
            visited.push((depth, tree_id));
            let listing = browser.listing(&tree_id)?;
            let found = browser.find(&listing, self.parts[depth])?;
            match found.as_ref().and_then(|f| f.part.nodes.get(f.index)) {
                Some(node) if depth + 1 == self.parts.len() => break Some(node.clone()),
                Some(node) => match subtree(node) {
                    Some(id) => tree_id = id,
                    None => break None,
                },
                None => break None,
            }
        };
        for key in visited {
            self.memo.insert(key, found.clone());
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_and_normalize_as_bytes() {
        assert_eq!(join(b"", b"a"), b"a");
        assert_eq!(join(b"db", b"caf\xe9"), b"db/caf\xe9");
        assert_eq!(normalize(b"//db//x/"), b"db/x");
        assert_eq!(normalize(b"/"), b"");
    }

    #[test]
    fn lookups_refuse_paths_naming_no_entry() {
        assert!(matches!(Lookup::new(b"/"), Err(Error::BadPath { .. })));
        assert!(matches!(
            Lookup::new(b"db/../x"),
            Err(Error::BadPath { .. })
        ));
        assert!(Lookup::new(b"/db/officine.fdb").is_ok());
    }
}
