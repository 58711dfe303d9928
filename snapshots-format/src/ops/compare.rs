//! What changed between two recorded versions of one entry, judged from
//! the tree nodes alone (chunk lists, tree ids, metadata), never from file
//! bytes: shared by `history` and `diff`, which must agree on what
//! "changed" means.

use crate::format::tree::{Node, NodeKind, Payload};

/// How a node differs from an earlier version of the same path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Same contents and same metadata.
    Unchanged,
    /// Other contents: another chunk list, symlink target, device number,
    /// or (for a folder) another listing somewhere below it.
    Content,
    /// Same contents; only the mode, owner, group, modification time or
    /// extended attributes differ.
    Metadata,
    /// Another kind of entry (a file became a folder, a link...).
    Type,
}

/// Compares two versions of one path.
///
/// A folder's modification time follows its entries, so it is not a
/// change of its own: what changed below is reported for itself. The
/// status-change time, inode and link count are left out too: a restore
/// or a copy changes them without changing anything a user sees.
pub fn compare(old: &Node, new: &Node) -> Change {
    if old.kind != new.kind {
        return Change::Type;
    }
    if old.payload != new.payload || (old.kind == NodeKind::File && old.size != new.size) {
        return Change::Content;
    }
    let mtime_differs = old.kind != NodeKind::Dir && old.mtime != new.mtime;
    if old.mode != new.mode
        || old.uid != new.uid
        || old.gid != new.gid
        || old.xattrs != new.xattrs
        || mtime_differs
    {
        return Change::Metadata;
    }
    Change::Unchanged
}

/// The subtree id of a folder node.
pub fn subtree(node: &Node) -> Option<crate::id::BlobId> {
    match node.payload {
        Payload::Dir(id) => Some(id),
        _ => None,
    }
}

/// Test nodes, shared by the unit tests of the operations.
#[cfg(test)]
pub(crate) mod testing {
    use crate::format::blob::BlobKind;
    use crate::format::content::{Content, Extent};
    use crate::format::snapshot::Snapshot;
    use crate::format::tree::{Node, NodeKind, Payload, Timestamp, Tree};
    use crate::id::{BlobId, SnapshotId};
    use crate::repo::browse::Browser;
    use crate::repo::saver::Saver;

    /// A node of `kind` with fixed metadata.
    pub fn node(name: &[u8], kind: NodeKind, payload: Payload, size: u64) -> Node {
        Node {
            name: name.to_vec(),
            kind,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            mtime: Timestamp {
                sec: 1_700_000_000,
                nsec: 0,
            },
            ctime: Timestamp {
                sec: 1_700_000_000,
                nsec: 0,
            },
            size,
            dev: 1,
            inode: 1,
            nlink: 1,
            xattrs: Vec::new(),
            payload,
        }
    }

    /// A file whose single chunk is `BlobId([tag; 32])`.
    pub fn file(name: &[u8], tag: u8, len: u32) -> Node {
        let content = Content::Inline(vec![Extent::Chunk {
            id: BlobId([tag; 32]),
            len,
            base: None,
        }]);
        node(name, NodeKind::File, Payload::File(content), u64::from(len))
    }

    /// A folder node pointing at `tree`.
    pub fn dir(name: &[u8], tree: BlobId) -> Node {
        let mut n = node(name, NodeKind::Dir, Payload::Dir(tree), 0);
        n.mode = 0o755;
        n
    }

    /// A tree of `nodes`, sorted.
    pub fn tree(nodes: Vec<Node>) -> Tree {
        let mut t = Tree { nodes };
        t.sort();
        t
    }

    /// A repository in memory (its index cache in `dir`) to store
    /// hand-built trees in.
    pub fn repo(dir: &std::path::Path) -> crate::Repository {
        let cheap = crate::format::keyfile::KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let backend = std::sync::Arc::new(crate::backend::mem::MemBackend::new());
        crate::Repository::init_with(backend, dir, b"pw", cheap).unwrap()
    }

    /// Stores a blob of `kind` and returns its id.
    pub fn save(repo: &crate::Repository, kind: BlobKind, bytes: &[u8]) -> BlobId {
        Saver::run(repo, |s| s.save(kind, bytes)).unwrap().0
    }

    /// Stores a tree of `nodes` and returns its id.
    pub fn save_tree(repo: &crate::Repository, nodes: Vec<Node>) -> BlobId {
        save(repo, BlobKind::Tree, &tree(nodes).encode())
    }

    /// A browser over `repo` with a small cache.
    pub fn browser(repo: crate::Repository) -> Browser {
        Browser::new(repo.into(), 1 << 20)
    }

    /// A listed snapshot of the tree `root` taken at `sec`.
    pub fn snapshot(root: BlobId, sec: i64, tag: u8) -> (SnapshotId, Snapshot) {
        let snap = Snapshot {
            time: Timestamp { sec, nsec: 0 },
            hostname: b"officine".to_vec(),
            sources: vec![b"/srv/officine".to_vec()],
            label: "officine".into(),
            tags: Vec::new(),
            parent: None,
            tree: root,
            root: None,
            summary: Default::default(),
            excludes: Vec::new(),
            hooks: Vec::new(),
        };
        (SnapshotId([tag; 32]), snap)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::id::BlobId;

    #[test]
    fn changes_are_classified_from_nodes() {
        let a = file(b"f", 1, 10);
        assert_eq!(compare(&a, &a.clone()), Change::Unchanged);
        assert_eq!(compare(&a, &file(b"f", 2, 10)), Change::Content);
        let mut chmod = a.clone();
        chmod.mode = 0o600;
        assert_eq!(compare(&a, &chmod), Change::Metadata);
        let mut touched = a.clone();
        touched.mtime.sec += 1;
        assert_eq!(compare(&a, &touched), Change::Metadata);
        let mut moved = a.clone();
        moved.inode = 99;
        moved.ctime.sec += 5;
        assert_eq!(
            compare(&a, &moved),
            Change::Unchanged,
            "inode and ctime are not changes"
        );
        assert_eq!(compare(&a, &dir(b"f", BlobId([1; 32]))), Change::Type);
        let mut d2 = dir(b"d", BlobId([1; 32]));
        let d1 = d2.clone();
        d2.mtime.sec += 60;
        assert_eq!(
            compare(&d1, &d2),
            Change::Unchanged,
            "a folder's mtime follows its entries"
        );
    }
}
