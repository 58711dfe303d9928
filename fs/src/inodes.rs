//! Inode numbers and the table of inodes the kernel knows.
//!
//! Numbers are stable across remounts (SMB and NFS clients cache them): an
//! entry's number is a hash of the snapshot id, the folder that shows it and
//! its path (or, for hard links, its recorded device and inode, so that all
//! names of one file share a number). Only inodes the kernel holds are kept
//! in memory; `forget` drops them.

use std::collections::HashMap;
use std::sync::Arc;

use snapshots_format::format::tree::Node;
use snapshots_format::SnapshotId;

/// The root folder.
pub const ROOT: u64 = 1;

/// What an inode shows.
#[derive(Debug, Clone)]
pub enum Kind {
    /// The mount's root.
    Root,
    /// A label's folder (only when there are several labels).
    Label(String),
    /// The hidden Previous Versions folder ([`crate::layout::VERSIONS_DIR`]).
    Versions,
    /// A label's folder in the Previous Versions view.
    VersionsLabel(String),
    /// A dated folder: the root of one snapshot.
    SnapshotRoot {
        /// The snapshot shown.
        snapshot: SnapshotId,
        /// Tree of its root directory.
        tree: snapshots_format::BlobId,
        /// Time of the snapshot, as the folder's mtime when the source
        /// folder's own metadata was not recorded.
        time: snapshots_format::format::tree::Timestamp,
        /// The source folder's recorded metadata, shown as this folder's.
        root: Option<Arc<Node>>,
        /// Names shown as recorded, even with `--windows-names`: the
        /// Previous Versions view, where Samba looks up the live share's
        /// names.
        raw_names: bool,
    },
    /// An entry inside a snapshot.
    Entry {
        /// The snapshot it belongs to.
        snapshot: SnapshotId,
        /// Its recorded metadata.
        node: Arc<Node>,
        /// As for its snapshot's root.
        raw_names: bool,
    },
}

/// One known inode.
#[derive(Debug, Clone)]
pub struct Inode {
    /// What it shows.
    pub kind: Kind,
    /// The key its number was hashed from; children hash from it.
    pub key: Vec<u8>,
    /// The parent folder's inode.
    pub parent: u64,
    /// Human path for log lines (lossy).
    pub path: String,
    lookups: u64,
}

/// The inodes the kernel currently knows.
pub struct Table {
    map: HashMap<u64, Inode>,
}

/// The stable number for `key`: 64 bits of its BLAKE3 hash, avoiding the
/// reserved numbers 0 and 1.
pub fn number(key: &[u8]) -> u64 {
    let h = blake3::hash(key);
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    let n = u64::from_le_bytes(b) >> 1;
    n.max(2)
}

/// The key of a child named `name` under a folder with key `parent`, or of a
/// hard-linked file (`link`: its recorded device and inode).
pub fn child_key(
    parent: &[u8],
    name: &[u8],
    snapshot_root_key: &[u8],
    link: Option<(u64, u64)>,
) -> Vec<u8> {
    match link {
        Some((dev, ino)) => {
            let mut k = snapshot_root_key.to_vec();
            k.extend_from_slice(b"\0link\0");
            k.extend_from_slice(&dev.to_le_bytes());
            k.extend_from_slice(&ino.to_le_bytes());
            k
        }
        None => {
            let mut k = parent.to_vec();
            k.push(b'/');
            k.extend_from_slice(name);
            k
        }
    }
}

impl Table {
    /// A table holding the root.
    pub fn new() -> Self {
        let mut map = HashMap::new();
        map.insert(
            ROOT,
            Inode {
                kind: Kind::Root,
                key: Vec::new(),
                parent: ROOT,
                path: "/".into(),
                lookups: 1,
            },
        );
        Self { map }
    }

    /// An inode by number.
    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.map.get(&ino)
    }

    /// Records a lookup of `key` and returns its number. A (vanishingly
    /// rare) hash collision with another key moves to the next free number.
    pub fn remember(&mut self, key: Vec<u8>, kind: Kind, parent: u64, path: String) -> u64 {
        let mut ino = number(&key);
        loop {
            match self.map.get_mut(&ino) {
                Some(existing) if existing.key == key => {
                    existing.lookups += 1;
                    existing.kind = kind;
                    return ino;
                }
                Some(_) => ino = ino.wrapping_add(1).max(2),
                None => {
                    self.map.insert(
                        ino,
                        Inode {
                            kind,
                            key,
                            parent,
                            path,
                            lookups: 1,
                        },
                    );
                    return ino;
                }
            }
        }
    }

    /// The kernel dropped `n` references.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        if let Some(i) = self.map.get_mut(&ino) {
            i.lookups = i.lookups.saturating_sub(n);
            if i.lookups == 0 {
                self.map.remove(&ino);
            }
        }
    }

    /// Number of inodes held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: the root is always held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stable_and_forget_frees() {
        assert_eq!(number(b"abc"), number(b"abc"));
        assert_ne!(number(b"abc"), number(b"abd"));
        let mut t = Table::new();
        let a = t.remember(b"k".to_vec(), Kind::Root, ROOT, "/k".into());
        assert_eq!(a, number(b"k"));
        assert_eq!(t.remember(b"k".to_vec(), Kind::Root, ROOT, "/k".into()), a);
        t.forget(a, 1);
        assert!(t.get(a).is_some());
        t.forget(a, 1);
        assert!(t.get(a).is_none());
        // Hard links share a number; plain entries differ by path.
        let l1 = child_key(b"r/a", b"x", b"r", Some((1, 7)));
        let l2 = child_key(b"r/b", b"y", b"r", Some((1, 7)));
        assert_eq!(l1, l2);
        assert_ne!(
            child_key(b"r/a", b"x", b"r", None),
            child_key(b"r/b", b"x", b"r", None)
        );
    }
}
