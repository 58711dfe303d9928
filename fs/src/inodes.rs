//! Inode numbers and the table of inodes the kernel knows.
//!
//! Numbers are stable across remounts (SMB and NFS clients cache them): an
//! entry's number is a hash of the snapshot id, the folder that shows it and
//! its path (or, for hard links, its recorded device and inode, so that all
//! names of one file share a number). Only inodes the kernel holds are kept
//! in memory; `forget` drops them.
//!
//! An inode keeps its [`Key`], a 128-bit hash chained from its parent's,
//! not the path itself: 16 bytes in place of a path of about 150 on the
//! heap, for each of the up to `--max-inodes` entries held.

use std::sync::Arc;

use snapshots_format::format::tree::Node;
use snapshots_format::{BlobId, SnapshotId};

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
    /// A dated folder: the root of one snapshot (boxed: the table holds
    /// hundreds of thousands of entries, and an enum is as large as its
    /// largest variant).
    SnapshotRoot(Box<SnapshotFolder>),
    /// An entry inside a snapshot.
    Entry {
        /// Where its recorded metadata is, read again when asked for (a
        /// copy kept here tripled the size of an inode).
        at: EntryAt,
        /// Its recorded name, to let go of it and for log lines.
        name: Box<[u8]>,
        /// The key of the snapshot's root folder, which hard links'
        /// numbers hash.
        root: Key,
        /// Names shown as recorded, even with `--windows-names`: the
        /// Previous Versions view, where Samba looks up the live share's
        /// names.
        raw_names: bool,
    },
}

/// Where an entry's recorded metadata is: its folder's tree, and its place
/// in that folder's listing. Trees never change, so this names the same
/// entry for as long as the mount runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryAt {
    /// The folder's tree.
    pub tree: BlobId,
    /// The part of the folder's listing ([`snapshots_format::repo::browse::Browser::part`]).
    pub part: u32,
    /// The entry's index in that part.
    pub index: u32,
}

impl EntryAt {
    /// Entry `index` of part `part` of `tree`'s listing; `None` past what
    /// 32 bits count (no listing the format accepts is that long).
    pub fn new(tree: BlobId, part: usize, index: usize) -> Option<Self> {
        Some(Self {
            tree,
            part: u32::try_from(part).ok()?,
            index: u32::try_from(index).ok()?,
        })
    }
}

/// What a dated folder shows.
#[derive(Debug, Clone)]
pub struct SnapshotFolder {
    /// The folder's name.
    pub name: String,
    /// The snapshot shown.
    pub snapshot: SnapshotId,
    /// Tree of its root directory.
    pub tree: BlobId,
    /// Time of the snapshot, as the folder's mtime when the source
    /// folder's own metadata was not recorded.
    pub time: snapshots_format::format::tree::Timestamp,
    /// The source folder's recorded metadata, shown as this folder's.
    pub root: Option<Arc<Node>>,
    /// As for [`Kind::Entry`].
    pub raw_names: bool,
}

/// One known inode. Kept small: the kernel may hold one for every entry
/// of every folder listed (a folder of 210,000 receipts listed with
/// `ls -l` or by Samba); the path for log lines is worked out when needed
/// ([`Table::path`]).
#[derive(Debug, Clone)]
pub struct Inode {
    /// What it shows.
    pub kind: Kind,
    /// The key its number was hashed from; children hash from it.
    pub key: Key,
    /// The parent folder's inode.
    pub parent: u64,
    lookups: u64,
    /// When the kernel last looked it up or received it in a listing
    /// ([`Table::remember`]'s count), to let go of the stalest first.
    used: u64,
}

impl Inode {
    /// Its name in its folder (lossy UTF-8, raw).
    fn name(&self) -> String {
        match &self.kind {
            Kind::Root => String::new(),
            Kind::Label(name) | Kind::VersionsLabel(name) => name.clone(),
            Kind::Versions => crate::layout::VERSIONS_DIR.to_owned(),
            Kind::SnapshotRoot(folder) => folder.name.clone(),
            Kind::Entry { name, .. } => String::from_utf8_lossy(name).into_owned(),
        }
    }
}

/// The inodes the kernel currently knows.
pub struct Table {
    /// Inode numbers are BLAKE3 output: a fast hasher does (`forget` took
    /// 4.7 % of the mount's CPU in a `find` with SipHash, 2.3 % with this).
    map: snapshots_format::id::IdMap<u64, Inode>,
    /// Lookups so far: the clock of [`Inode::used`].
    clock: u64,
}

/// What an inode's number is hashed from: 128 bits of BLAKE3 over what
/// names the inode, its parent's key first. Distinct kinds of names start
/// with distinct tags, and a child's name follows a key of fixed length, so
/// no two names hash the same input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Key([u8; 16]);

impl Key {
    /// The mount's root.
    pub const ROOT: Key = Key([0; 16]);

    fn hash(parts: &[&[u8]]) -> Key {
        let mut h = blake3::Hasher::new();
        for p in parts {
            h.update(p);
        }
        let mut k = [0u8; 16];
        k.copy_from_slice(&h.finalize().as_bytes()[..16]);
        Key(k)
    }

    /// A top-level folder (a label's, the Previous Versions folder, a
    /// label's there), named by `what`.
    pub fn top(what: &[u8]) -> Key {
        Key::hash(&[b"t", what])
    }

    /// A dated folder named `name` showing `snapshot`, under `parent`.
    pub fn snapshot_root(parent: &Key, name: &str, snapshot: &SnapshotId) -> Key {
        Key::hash(&[b"s", &parent.0, &snapshot.0, name.as_bytes()])
    }

    /// A child named `name` under the folder with this key, or a
    /// hard-linked file (`link`: its recorded device and inode), whose
    /// number depends only on the snapshot's root folder (`root`) so that
    /// all its names share it.
    pub fn child(&self, name: &[u8], root: &Key, link: Option<(u64, u64)>) -> Key {
        match link {
            Some((dev, ino)) => Key::hash(&[b"l", &root.0, &dev.to_le_bytes(), &ino.to_le_bytes()]),
            None => Key::hash(&[b"c", &self.0, name]),
        }
    }

    /// The stable number: 63 bits of the key, avoiding the reserved
    /// numbers 0 and 1.
    pub fn number(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        (u64::from_le_bytes(b) >> 1).max(2)
    }
}

impl Table {
    /// A table holding the root.
    pub fn new() -> Self {
        let mut map = snapshots_format::id::IdMap::default();
        map.insert(
            ROOT,
            Inode {
                kind: Kind::Root,
                key: Key::ROOT,
                parent: ROOT,
                lookups: 1,
                used: 0,
            },
        );
        Self { map, clock: 0 }
    }

    /// An inode by number.
    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.map.get(&ino)
    }

    /// Records a lookup of `key` and returns its number. A (vanishingly
    /// rare) hash collision with another key moves to the next free number.
    pub fn remember(&mut self, key: Key, kind: Kind, parent: u64) -> u64 {
        let mut ino = key.number();
        self.clock += 1;
        loop {
            match self.map.get_mut(&ino) {
                Some(existing) if existing.key == key => {
                    existing.lookups += 1;
                    existing.kind = kind;
                    existing.used = self.clock;
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
                            lookups: 1,
                            used: self.clock,
                        },
                    );
                    return ino;
                }
            }
        }
    }

    /// The path of inode `ino` from the mount's root, for log lines
    /// (lossy UTF-8, raw names; `…` where a folder above is not held).
    pub fn path(&self, ino: u64) -> String {
        let mut names = Vec::new();
        let mut at = ino;
        // A folder's parent is held while it is (the kernel pins it), so
        // the walk ends at the root; the bound guards against a cycle.
        for _ in 0..=snapshots_format::format::tree::MAX_DEPTH + 4 {
            if at == ROOT {
                break;
            }
            let Some(inode) = self.map.get(&at) else {
                names.push("…".to_owned());
                break;
            };
            names.push(inode.name());
            at = inode.parent;
        }
        names.reverse();
        format!("/{}", names.join("/"))
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

    /// The `n` entries inside snapshots looked up longest ago, as the
    /// kernel names them: (parent inode, recorded name). The dated and
    /// label folders are few and stay. Entry by entry, not their folder
    /// at once: a folder still being listed (`find` in a folder of 300,000
    /// receipts) would keep growing under its dropped name (16 GiB: 172–186
    /// MiB after the `find`s against 124–131, docs/PERFORMANCE.md).
    pub fn stalest_entries(&self, n: usize) -> Vec<(u64, Box<[u8]>)> {
        let mut entries: Vec<(u64, u64)> = self
            .map
            .iter()
            .filter(|(_, i)| matches!(i.kind, Kind::Entry { .. }))
            .map(|(&ino, i)| (i.used, ino))
            .collect();
        if n < entries.len() {
            entries.select_nth_unstable(n);
            entries.truncate(n);
        }
        entries
            .into_iter()
            .filter_map(|(_, ino)| {
                let inode = self.map.get(&ino)?;
                match &inode.kind {
                    Kind::Entry { name, .. } => Some((inode.parent, name.clone())),
                    _ => None,
                }
            })
            .collect()
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
        assert_eq!(Key::top(b"abc").number(), Key::top(b"abc").number());
        assert_ne!(Key::top(b"abc").number(), Key::top(b"abd").number());
        let mut t = Table::new();
        let a = t.remember(Key::top(b"k"), Kind::Root, ROOT);
        assert_eq!(a, Key::top(b"k").number());
        assert_eq!(t.remember(Key::top(b"k"), Kind::Root, ROOT), a);
        t.forget(a, 1);
        assert!(t.get(a).is_some());
        t.forget(a, 1);
        assert!(t.get(a).is_none());
        // Hard links share a number; plain entries differ by path.
        let r = Key::top(b"r");
        let (ra, rb) = (r.child(b"a", &r, None), r.child(b"b", &r, None));
        let l1 = ra.child(b"x", &r, Some((1, 7)));
        let l2 = rb.child(b"y", &r, Some((1, 7)));
        assert_eq!(l1, l2);
        assert_ne!(ra.child(b"x", &r, None), rb.child(b"x", &r, None));
        // The same link in another snapshot's folder has its own number.
        let other = Key::top(b"o");
        assert_ne!(l1, other.child(b"x", &other, Some((1, 7))));
    }

    fn entry(name: &[u8]) -> Kind {
        Kind::Entry {
            at: EntryAt {
                tree: BlobId([9; 32]),
                part: 0,
                index: 0,
            },
            name: name.into(),
            root: Key::top(b"label"),
            raw_names: false,
        }
    }

    #[test]
    fn the_stalest_entries_are_those_looked_up_longest_ago() {
        let mut t = Table::new();
        let label_key = Key::top(b"label");
        let label = t.remember(label_key, Kind::Label("l".into()), ROOT);
        let names: Vec<Vec<u8>> = (0..6).map(|i| format!("f{i}").into_bytes()).collect();
        for name in &names {
            t.remember(label_key.child(name, &label_key, None), entry(name), label);
        }
        // f0 looked up again: now the freshest.
        t.remember(
            label_key.child(&names[0], &label_key, None),
            entry(&names[0]),
            label,
        );
        let mut stale = t.stalest_entries(3);
        stale.sort();
        assert_eq!(
            stale,
            [
                (label, names[1].clone().into_boxed_slice()),
                (label, names[2].clone().into_boxed_slice()),
                (label, names[3].clone().into_boxed_slice())
            ]
        );
        // The label's folder and the root are never among them.
        assert_eq!(t.stalest_entries(100).len(), 6);
    }

    #[test]
    fn a_path_for_log_lines_is_worked_out_from_the_parents() {
        let mut t = Table::new();
        let label_key = Key::top(b"label\0lundi");
        let label = t.remember(label_key, Kind::Label("lundi".into()), ROOT);
        let folder = SnapshotFolder {
            name: "2026-12-07".into(),
            snapshot: SnapshotId([7; 32]),
            tree: BlobId([8; 32]),
            time: Default::default(),
            root: None,
            raw_names: false,
        };
        let root_key = Key::snapshot_root(&label_key, "2026-12-07", &SnapshotId([7; 32]));
        let day = t.remember(root_key, Kind::SnapshotRoot(Box::new(folder)), label);
        let db_key = root_key.child(b"db", &root_key, None);
        let db = t.remember(db_key, entry(b"db"), day);
        let file_key = db_key.child(b"officine\xff.fdb", &root_key, None);
        let file = t.remember(file_key, entry(b"officine\xff.fdb"), db);
        assert_eq!(t.path(file), "/lundi/2026-12-07/db/officine\u{fffd}.fdb");
        assert_eq!(t.path(ROOT), "/");
        // A folder above that is no longer held is elided, not invented.
        t.forget(db, 1);
        assert_eq!(t.path(file), "/…/officine\u{fffd}.fdb");
    }
}
