//! Tree blobs (FORMAT.md §7): one per directory, listing its entries sorted
//! by raw name bytes, serialised deterministically so that an unchanged
//! directory encodes to the same bytes, hence the same blob id, and costs
//! nothing in a new snapshot.
//!
//! Decoding is strict because restore trusts it: names must be non-empty,
//! not `.` or `..`, free of `/` and NUL, and strictly increasing (no
//! duplicates).

use crate::codec::{DecodeError, Reader, Writer};
use crate::content::{decode_extents, encode_extents, Content};
use crate::id::BlobId;

const TREE_VERSION: u8 = 1;

/// A point in time: seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// Seconds (may be negative).
    pub sec: i64,
    /// Nanoseconds, below 1e9.
    pub nsec: u32,
}

/// The type of a tree entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NodeKind {
    /// Regular file.
    File = 1,
    /// Directory.
    Dir = 2,
    /// Symbolic link.
    Symlink = 3,
    /// Named pipe.
    Fifo = 4,
    /// Unix socket.
    Socket = 5,
    /// Character device.
    CharDevice = 6,
    /// Block device.
    BlockDevice = 7,
}

impl NodeKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::File,
            2 => Self::Dir,
            3 => Self::Symlink,
            4 => Self::Fifo,
            5 => Self::Socket,
            6 => Self::CharDevice,
            7 => Self::BlockDevice,
            _ => return None,
        })
    }
}

/// What an entry carries beyond its metadata, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A regular file's contents.
    File(Content),
    /// A directory's tree blob.
    Dir(BlobId),
    /// A symlink's target, raw bytes, kept as recorded (may dangle or be absolute).
    Symlink(Vec<u8>),
    /// A device number (st_rdev) of a character or block device.
    Device(u64),
    /// Fifos and sockets carry nothing.
    None,
}

/// One directory entry with its recorded metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Raw name bytes (any encoding).
    pub name: Vec<u8>,
    /// Entry type.
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky (mode & 0o7777).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// Status-change time (for the incremental check only; restore cannot set it).
    pub ctime: Timestamp,
    /// Size in bytes (for files: the logical size, holes included).
    pub size: u64,
    /// Device of the source (with `inode`, identifies hard links).
    pub dev: u64,
    /// Inode number in the source.
    pub inode: u64,
    /// Link count in the source.
    pub nlink: u64,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Kind-specific payload.
    pub payload: Payload,
}

impl Node {
    /// The hard-link identity of this entry: files and other non-directories
    /// with more than one link share it with their other names.
    pub fn link_key(&self) -> Option<(u64, u64)> {
        (self.kind != NodeKind::Dir && self.nlink > 1).then_some((self.dev, self.inode))
    }
}

/// A decoded directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// Entries sorted by name bytes.
    pub nodes: Vec<Node>,
}

/// Deepest directory nesting walked. Real trees stop far earlier (a path
/// is at most 4096 bytes); a hostile repository must not be able to make a
/// recursive walk overflow the stack.
pub const MAX_DEPTH: usize = 4096;

/// Whether a raw name may appear in a tree.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

impl Tree {
    /// Finds an entry by name (binary search: nodes are sorted).
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// Sorts entries by name, as encoding requires.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Encodes the tree (nodes must be sorted; see [`Tree::sort`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(TREE_VERSION);
        w.varint(self.nodes.len() as u64);
        for n in &self.nodes {
            encode_node(&mut w, n);
        }
        w.into_bytes()
    }

    /// Decodes and validates a tree blob.
    ///
    /// # Errors
    /// A [`DecodeError`] for malformed bytes or an invalid, duplicate or
    /// unsorted name.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version("tree", TREE_VERSION)?;
        // The smallest entry (a fifo with a 1-byte name and zero times) is 15 bytes.
        let n = r.count(15)?;
        let mut nodes: Vec<Node> = Vec::with_capacity(n);
        for _ in 0..n {
            let node = decode_node(&mut r)?;
            if let Some(prev) = nodes.last() {
                if prev.name >= node.name {
                    return Err(DecodeError::Invalid("names not strictly sorted"));
                }
            }
            nodes.push(node);
        }
        r.finish()?;
        Ok(Tree { nodes })
    }
}

fn encode_time(w: &mut Writer, t: Timestamp) {
    w.zigzag(t.sec);
    w.varint(u64::from(t.nsec));
}

fn decode_time(r: &mut Reader<'_>) -> Result<Timestamp, DecodeError> {
    let sec = r.zigzag()?;
    let nsec = r.varint_u32()?;
    if nsec >= 1_000_000_000 {
        return Err(DecodeError::Invalid("nanoseconds out of range"));
    }
    Ok(Timestamp { sec, nsec })
}

/// Encodes one node (FORMAT.md §7.1); also used for a snapshot's root.
pub(crate) fn encode_node(w: &mut Writer, n: &Node) {
    w.bytes(&n.name);
    w.u8(n.kind as u8);
    w.varint(u64::from(n.mode));
    w.varint(u64::from(n.uid));
    w.varint(u64::from(n.gid));
    encode_time(w, n.mtime);
    encode_time(w, n.ctime);
    w.varint(n.size);
    w.varint(n.dev);
    w.varint(n.inode);
    w.varint(n.nlink);
    w.varint(n.xattrs.len() as u64);
    for (k, v) in &n.xattrs {
        w.bytes(k);
        w.bytes(v);
    }
    match &n.payload {
        Payload::File(Content::Inline(extents)) => {
            w.u8(0);
            encode_extents(w, extents);
        }
        Payload::File(Content::Pieces(ids)) => {
            w.u8(1);
            w.varint(ids.len() as u64);
            for id in ids {
                w.raw(id.as_bytes());
            }
        }
        Payload::Dir(id) => w.raw(id.as_bytes()),
        Payload::Symlink(target) => w.bytes(target),
        Payload::Device(rdev) => w.varint(*rdev),
        Payload::None => {}
    }
}

fn decode_node(r: &mut Reader<'_>) -> Result<Node, DecodeError> {
    decode_node_named(r, true)
}

/// Decodes one node; `check_name` is false only for a snapshot's root
/// directory, whose name is empty.
pub(crate) fn decode_node_named(r: &mut Reader<'_>, check_name: bool) -> Result<Node, DecodeError> {
    let name = r.bytes()?.to_vec();
    if check_name && !valid_name(&name) {
        return Err(DecodeError::Invalid("unsafe entry name"));
    }
    let kind = NodeKind::from_u8(r.u8()?).ok_or(DecodeError::Invalid("unknown entry type"))?;
    let mode = r.varint_u32()?;
    if mode > 0o7777 {
        return Err(DecodeError::Invalid("mode out of range"));
    }
    let uid = r.varint_u32()?;
    let gid = r.varint_u32()?;
    let mtime = decode_time(r)?;
    let ctime = decode_time(r)?;
    let size = r.varint()?;
    let dev = r.varint()?;
    let inode = r.varint()?;
    let nlink = r.varint()?;
    let nx = r.count(2)?;
    let mut xattrs = Vec::with_capacity(nx);
    for _ in 0..nx {
        xattrs.push((r.bytes()?.to_vec(), r.bytes()?.to_vec()));
    }
    let payload = match kind {
        NodeKind::File => match r.u8()? {
            0 => Payload::File(Content::Inline(decode_extents(r)?)),
            1 => {
                let n = r.count(32)?;
                let ids = (0..n)
                    .map(|_| r.id().map(BlobId))
                    .collect::<Result<_, _>>()?;
                Payload::File(Content::Pieces(ids))
            }
            _ => return Err(DecodeError::Invalid("unknown content form")),
        },
        NodeKind::Dir => Payload::Dir(BlobId(r.id()?)),
        NodeKind::Symlink => Payload::Symlink(r.bytes()?.to_vec()),
        NodeKind::CharDevice | NodeKind::BlockDevice => Payload::Device(r.varint()?),
        NodeKind::Fifo | NodeKind::Socket => Payload::None,
    };
    Ok(Node {
        name,
        kind,
        mode,
        uid,
        gid,
        mtime,
        ctime,
        size,
        dev,
        inode,
        nlink,
        xattrs,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::Extent;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 1..40).prop_filter("valid", |n| valid_name(n))
    }

    fn payload() -> impl Strategy<Value = (NodeKind, Payload)> {
        prop_oneof![
            proptest::collection::vec((any::<[u8; 32]>(), any::<u32>()), 0..5).prop_map(|v| (
                NodeKind::File,
                Payload::File(Content::Inline(
                    v.into_iter()
                        .map(|(id, len)| Extent::Chunk {
                            id: BlobId(id),
                            len
                        })
                        .collect()
                ))
            )),
            proptest::collection::vec(any::<[u8; 32]>(), 1..4).prop_map(|v| (
                NodeKind::File,
                Payload::File(Content::Pieces(v.into_iter().map(BlobId).collect()))
            )),
            any::<[u8; 32]>().prop_map(|id| (NodeKind::Dir, Payload::Dir(BlobId(id)))),
            proptest::collection::vec(any::<u8>(), 0..50)
                .prop_map(|t| (NodeKind::Symlink, Payload::Symlink(t))),
            any::<u64>().prop_map(|d| (NodeKind::BlockDevice, Payload::Device(d))),
            Just((NodeKind::Fifo, Payload::None)),
        ]
    }

    fn node() -> impl Strategy<Value = Node> {
        (
            name(),
            payload(),
            0u32..0o10000,
            any::<(u32, u32, i64, u64, u64, u64)>(),
            0u32..1_000_000_000,
            proptest::collection::vec(
                (name(), proptest::collection::vec(any::<u8>(), 0..20)),
                0..3,
            ),
        )
            .prop_map(
                |(
                    name,
                    (kind, payload),
                    mode,
                    (uid, gid, sec, size, inode, nlink),
                    nsec,
                    xattrs,
                )| Node {
                    name,
                    kind,
                    mode,
                    uid,
                    gid,
                    mtime: Timestamp { sec, nsec },
                    ctime: Timestamp {
                        sec: sec / 2,
                        nsec: nsec / 3,
                    },
                    size,
                    dev: 2049,
                    inode,
                    nlink,
                    xattrs,
                    payload,
                },
            )
    }

    proptest! {
        #[test]
        fn tree_round_trip(nodes in proptest::collection::vec(node(), 0..20)) {
            let mut tree = Tree { nodes };
            tree.sort();
            tree.nodes.dedup_by(|a, b| a.name == b.name);
            let bytes = tree.encode();
            prop_assert_eq!(Tree::decode(&bytes).unwrap(), tree.clone());
            // Deterministic: the same tree always encodes to the same bytes.
            prop_assert_eq!(bytes, tree.encode());
        }
    }

    fn named(name: &[u8]) -> Node {
        Node {
            name: name.to_vec(),
            kind: NodeKind::Fifo,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            size: 0,
            dev: 0,
            inode: 0,
            nlink: 1,
            xattrs: vec![],
            payload: Payload::None,
        }
    }

    #[test]
    fn unsafe_and_duplicate_names_are_refused() {
        for bad in [&b".."[..], b".", b"a/b", b"", b"x\0y", b"/etc"] {
            let t = Tree {
                nodes: vec![named(bad)],
            };
            assert!(Tree::decode(&t.encode()).is_err(), "{bad:?} accepted");
        }
        let dup = Tree {
            nodes: vec![named(b"a"), named(b"a")],
        };
        assert!(Tree::decode(&dup.encode()).is_err());
        let unsorted = Tree {
            nodes: vec![named(b"b"), named(b"a")],
        };
        assert!(Tree::decode(&unsorted.encode()).is_err());
        let ok = Tree {
            nodes: vec![named(b"a"), named(b"b\xff")],
        };
        assert_eq!(Tree::decode(&ok.encode()).unwrap(), ok);
    }

    #[test]
    fn smallest_entry_decodes_and_newer_version_is_named() {
        let mut smallest = named(b"a");
        smallest.mode = 0o7;
        let t = Tree {
            nodes: vec![smallest],
        };
        let bytes = t.encode();
        assert_eq!(bytes.len(), 1 + 1 + 15);
        assert_eq!(Tree::decode(&bytes).unwrap(), t);
        let mut newer = bytes.clone();
        newer[0] = 2;
        assert_eq!(
            Tree::decode(&newer),
            Err(DecodeError::NewerVersion("tree", 2))
        );
    }
}
