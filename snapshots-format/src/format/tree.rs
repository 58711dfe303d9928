//! Tree blobs (FORMAT.md §7): one per directory, listing its entries sorted
//! by raw name bytes, serialised deterministically so that an unchanged
//! directory encodes to the same bytes, hence the same blob id, and costs
//! nothing in a new snapshot.
//!
//! A directory whose listing encodes to more than [`SPLIT_MIN`] bytes is
//! stored as pieces (format 3, FORMAT.md §7.3): runs of its entries cut at
//! content-defined points, each piece a blob, and a short tree blob listing
//! the pieces. A folder of thousands of receipts that gains a few each day
//! then stores a piece or two, not its whole listing again.
//!
//! Decoding is strict because restore trusts it: names must be non-empty,
//! not `.` or `..`, free of `/` and NUL, and strictly increasing (no
//! duplicates).

use crate::codec::{DecodeError, Reader, Writer};
use crate::crypto::Keys;
use crate::format::content::{decode_extents, encode_extents, Content, Encoding};
use crate::id::BlobId;

/// A tree blob holding the entries themselves; also the layout of a piece.
const TREE_VERSION: u8 = 1;
/// A tree blob listing the pieces of a large directory (format 3).
const TREE_PIECES_VERSION: u8 = 2;

/// A listing whose one-blob encoding is longer is stored in pieces.
pub const SPLIT_MIN: usize = 64 * 1024;
/// A piece ends at a content-defined cut once its entries take this many bytes...
const PIECE_MIN_BYTES: usize = 4 * 1024;
/// ... and in any case once they take this many.
const PIECE_MAX_BYTES: usize = 64 * 1024;
/// An entry is a cut when the first byte of its cut hash is below this
/// (one in 16): pieces of 4 KiB and about 16 entries more, ~5 KiB for a
/// folder of receipts.
const PIECE_CUT_BELOW: u8 = 16;
/// Prefix of the keyed hash of an entry name that decides cuts; not a blob
/// kind, so that a cut hash is never the id of a blob.
const CUT_DOMAIN: u8 = 0x80;

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

/// How a listing is stored: see [`Tree::encode_stored`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// One tree blob (version 1) holding the entries.
    Whole(Vec<u8>),
    /// Tree-piece blobs, in order; the tree blob is then
    /// [`encode_piece_list`] of their ids.
    Pieces(Vec<Vec<u8>>),
}

/// What a tree blob holds, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// The entries.
    Nodes(Tree),
    /// The ids of the tree pieces whose entries, in order, are the listing.
    Pieces(Vec<BlobId>),
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
        self.position(name).map(|i| &self.nodes[i])
    }

    /// Where the entry named `name` is in [`Tree::nodes`], if anywhere.
    pub fn position(&self, name: &[u8]) -> Option<usize> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
    }

    /// Sorts entries by name, as encoding requires.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Encodes the tree (nodes must be sorted; see [`Tree::sort`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        for node in &self.nodes {
            encode_node(&mut w, node);
        }
        piece_bytes(self.nodes.len(), w.as_slice())
    }

    /// Encodes the tree as it is stored: one blob when its encoding is at
    /// most [`SPLIT_MIN`] bytes, else pieces (see [`ListingEncoder`]).
    pub fn encode_stored(&self, keys: &Keys) -> Stored {
        let mut encoder = ListingEncoder::default();
        for node in &self.nodes {
            encoder.push(node, keys);
        }
        encoder.finish()
    }

    /// Decodes and validates a tree blob of version 1, or a tree piece.
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

/// Encodes a listing as it is stored, one entry at a time, so that a
/// folder of 180,000 receipts never has to be held whole: once the listing
/// is known to be split (its entries alone exceed [`SPLIT_MIN`]), each
/// completed piece can be taken and saved while the folder is still being
/// walked. The bytes are those of [`Tree::encode_stored`] for the same
/// entries, which uses it.
///
/// Pieces end where the keyed hash of an entry's name says (so that an
/// added or removed entry changes only the piece around it, and the cuts
/// reveal nothing without the key), or at [`PIECE_MAX_BYTES`].
#[derive(Default)]
pub struct ListingEncoder {
    /// Completed pieces not taken yet: their entry count and entries.
    done: Vec<(usize, Vec<u8>)>,
    /// The piece being filled, and its entry count.
    current: Writer,
    current_count: usize,
    /// Entries pushed so far, and their encoded bytes.
    count: usize,
    bytes: usize,
}

impl ListingEncoder {
    /// Adds the next entry; entries come sorted by name, each once.
    pub fn push(&mut self, node: &Node, keys: &Keys) {
        let before = self.current.len();
        encode_node(&mut self.current, node);
        self.current_count += 1;
        self.count += 1;
        self.bytes += self.current.len() - before;
        let len = self.current.len();
        let cut = len >= PIECE_MAX_BYTES
            || (len >= PIECE_MIN_BYTES
                && keys.blob_hash(CUT_DOMAIN, &node.name)[0] < PIECE_CUT_BELOW);
        if cut {
            self.end_piece();
        }
    }

    fn end_piece(&mut self) {
        let body = std::mem::take(&mut self.current).into_bytes();
        self.done
            .push((std::mem::take(&mut self.current_count), body));
    }

    /// Whether the listing is already known to be stored in pieces.
    pub fn is_split(&self) -> bool {
        self.bytes > SPLIT_MIN
    }

    /// The pieces completed so far, once the listing is known to be split
    /// (none before: it may still end up as one blob).
    pub fn take_pieces(&mut self) -> Vec<Vec<u8>> {
        if !self.is_split() {
            return Vec::new();
        }
        self.done
            .drain(..)
            .map(|(count, body)| piece_bytes(count, &body))
            .collect()
    }

    /// The rest of the listing: the whole blob when nothing was taken and
    /// it fits in [`SPLIT_MIN`] bytes, else the pieces not taken yet.
    pub fn finish(mut self) -> Stored {
        if !self.is_split() {
            let mut body = Vec::with_capacity(self.bytes);
            for (_, piece) in &self.done {
                body.extend_from_slice(piece);
            }
            body.extend_from_slice(self.current.as_slice());
            let whole = piece_bytes(self.count, &body);
            if whole.len() <= SPLIT_MIN {
                return Stored::Whole(whole);
            }
        }
        if self.current_count > 0 {
            self.end_piece();
        }
        Stored::Pieces(
            self.done
                .iter()
                .map(|(count, body)| piece_bytes(*count, body))
                .collect(),
        )
    }
}

/// `count` encoded nodes as a version-1 tree blob, which is also the layout
/// of a tree piece.
fn piece_bytes(count: usize, nodes: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(TREE_VERSION);
    w.varint(count as u64);
    w.raw(nodes);
    w.into_bytes()
}

/// The tree blob of a listing stored in pieces.
pub fn encode_piece_list(ids: &[BlobId]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(TREE_PIECES_VERSION);
    w.varint(ids.len() as u64);
    for id in ids {
        w.raw(id.as_bytes());
    }
    w.into_bytes()
}

/// Decodes a tree blob of any version this build reads.
///
/// # Errors
/// A [`DecodeError`]: malformed bytes, a newer version, or an empty piece list.
pub fn decode_listing(bytes: &[u8]) -> Result<Listing, DecodeError> {
    if bytes.first() != Some(&TREE_PIECES_VERSION) {
        return Tree::decode(bytes).map(Listing::Nodes);
    }
    let mut r = Reader::new(&bytes[1..]);
    let n = r.count(32)?;
    if n == 0 {
        return Err(DecodeError::Invalid("no tree pieces"));
    }
    let ids = (0..n)
        .map(|_| r.id().map(BlobId))
        .collect::<Result<_, _>>()?;
    r.finish()?;
    Ok(Listing::Pieces(ids))
}

/// Joins decoded pieces into one listing, checking that each holds an
/// entry and that names keep increasing from one piece to the next.
///
/// # Errors
/// [`DecodeError::Invalid`] for an empty piece or names out of order.
pub fn join_pieces(pieces: impl IntoIterator<Item = Tree>) -> Result<Tree, DecodeError> {
    let mut nodes: Vec<Node> = Vec::new();
    for piece in pieces {
        match (nodes.last(), piece.nodes.first()) {
            (_, None) => return Err(DecodeError::Invalid("empty tree piece")),
            (Some(last), Some(first)) if last.name >= first.name => {
                return Err(DecodeError::Invalid("names not strictly sorted"))
            }
            _ => {}
        }
        nodes.extend(piece.nodes);
    }
    Ok(Tree { nodes })
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
            // Form 2 (format 8) only for a list with a delta, so that
            // every other node keeps its bytes.
            let encoding = Encoding::of(extents);
            w.u8(match encoding {
                Encoding::First => 0,
                Encoding::Second => 2,
            });
            encode_extents(w, extents, encoding);
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
            0 => Payload::File(Content::Inline(decode_extents(r, Encoding::First)?)),
            2 => Payload::File(Content::Inline(decode_extents(r, Encoding::Second)?)),
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
    use crate::format::content::Extent;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 1..40).prop_filter("valid", |n| valid_name(n))
    }

    fn payload() -> impl Strategy<Value = (NodeKind, Payload)> {
        prop_oneof![
            proptest::collection::vec(
                (any::<[u8; 32]>(), any::<u32>(), any::<Option<[u8; 32]>>()),
                0..5
            )
            .prop_map(|v| (
                NodeKind::File,
                Payload::File(Content::Inline(
                    v.into_iter()
                        .map(|(id, len, base)| Extent::Chunk {
                            id: BlobId(id),
                            len,
                            base: base.map(BlobId),
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
        newer[0] = 3;
        assert_eq!(
            decode_listing(&newer),
            Err(DecodeError::NewerVersion("tree", 3))
        );
        newer[0] = 0;
        assert!(decode_listing(&newer).is_err());
    }

    fn keys() -> Keys {
        Keys::derive(&crate::crypto::MasterKey::from_bytes([7; 32]), [0; 16])
    }

    /// A folder of `n` receipts named as the pharmacy software names them.
    fn receipts(n: usize, from: usize) -> Tree {
        let mut tree = Tree {
            nodes: (from..from + n)
                .map(|i| {
                    let mut node = named(format!("arl_20260901_{i:05}.xml").as_bytes());
                    node.kind = NodeKind::File;
                    node.size = 52;
                    node.inode = i as u64;
                    node.mtime.sec = 1_788_000_000 + i as i64;
                    node.payload = Payload::File(Content::Inline(vec![Extent::chunk(
                        BlobId([i as u8; 32]),
                        52,
                    )]));
                    node
                })
                .collect(),
        };
        tree.sort();
        tree
    }

    fn pieces_of(tree: &Tree, keys: &Keys) -> Vec<Vec<u8>> {
        match tree.encode_stored(keys) {
            Stored::Pieces(p) => p,
            Stored::Whole(_) => panic!("a large tree is stored in pieces"),
        }
    }

    #[test]
    fn small_trees_are_stored_whole_as_before() {
        let tree = receipts(100, 0);
        assert_eq!(tree.encode_stored(&keys()), Stored::Whole(tree.encode()));
    }

    #[test]
    fn large_trees_are_stored_in_pieces_that_join_back() {
        let keys = keys();
        let tree = receipts(5000, 0);
        assert!(tree.encode().len() > SPLIT_MIN);
        let pieces = pieces_of(&tree, &keys);
        assert!(pieces.len() > 10, "{} pieces", pieces.len());
        for p in &pieces {
            assert!(
                p.len() <= PIECE_MAX_BYTES + 2 * 1024,
                "piece of {} bytes",
                p.len()
            );
        }
        let parts: Vec<Tree> = pieces.iter().map(|p| Tree::decode(p).unwrap()).collect();
        assert_eq!(join_pieces(parts.clone()).unwrap(), tree);
        // Pieces out of order, an empty piece or a piece repeated are refused.
        let mut swapped = parts.clone();
        swapped.swap(0, 1);
        assert!(join_pieces(swapped).is_err());
        let mut empty = parts.clone();
        empty.insert(1, Tree::default());
        assert!(join_pieces(empty).is_err());
        let mut twice = parts.clone();
        twice.insert(1, parts[1].clone());
        assert!(join_pieces(twice).is_err());

        let ids: Vec<BlobId> = (0..pieces.len()).map(|i| BlobId([i as u8; 32])).collect();
        let list = encode_piece_list(&ids);
        assert_eq!(decode_listing(&list).unwrap(), Listing::Pieces(ids));
        assert!(decode_listing(&list[..list.len() - 1]).is_err());
        assert!(decode_listing(&encode_piece_list(&[])).is_err());
    }

    /// The cut rule decides deduplication across versions (FORMAT.md §7.3):
    /// pinned on a fixed key.
    #[test]
    fn piece_cuts_are_pinned() {
        let pieces = pieces_of(&receipts(5000, 0), &keys());
        let counts: Vec<usize> = pieces
            .iter()
            .map(|p| Tree::decode(p).unwrap().nodes.len())
            .collect();
        assert_eq!(counts.len(), 74);
        assert_eq!(counts[..6], [58, 62, 63, 59, 70, 91]);
        assert_eq!(counts.iter().sum::<usize>(), 5000);
    }

    /// The encoding before it was streamed (one pass over the whole
    /// listing), kept as the reference the streamed one must equal byte
    /// for byte: every piece id of every existing repository depends on it.
    fn reference_encode_stored(tree: &Tree, keys: &Keys) -> Stored {
        let mut w = Writer::new();
        let ends: Vec<usize> = tree
            .nodes
            .iter()
            .map(|n| {
                encode_node(&mut w, n);
                w.len()
            })
            .collect();
        let body = w.into_bytes();
        let whole = piece_bytes(tree.nodes.len(), &body);
        if whole.len() <= SPLIT_MIN {
            return Stored::Whole(whole);
        }
        let mut pieces = Vec::new();
        let (mut first, mut start) = (0, 0);
        for (i, (node, &end)) in tree.nodes.iter().zip(&ends).enumerate() {
            let len = end - start;
            let cut = len >= PIECE_MAX_BYTES
                || (len >= PIECE_MIN_BYTES
                    && keys.blob_hash(CUT_DOMAIN, &node.name)[0] < PIECE_CUT_BELOW);
            if cut || i + 1 == tree.nodes.len() {
                pieces.push(piece_bytes(i + 1 - first, &body[start..end]));
                (first, start) = (i + 1, end);
            }
        }
        Stored::Pieces(pieces)
    }

    /// Pushes `tree`'s entries one by one, taking pieces as soon as they
    /// are offered, as the walk does.
    fn streamed(tree: &Tree, keys: &Keys) -> Stored {
        let mut encoder = ListingEncoder::default();
        let mut taken = Vec::new();
        for node in &tree.nodes {
            encoder.push(node, keys);
            taken.extend(encoder.take_pieces());
        }
        match encoder.finish() {
            Stored::Whole(whole) => {
                assert!(taken.is_empty(), "pieces taken from a listing stored whole");
                Stored::Whole(whole)
            }
            Stored::Pieces(rest) => Stored::Pieces([taken, rest].concat()),
        }
    }

    #[test]
    fn streamed_listings_are_the_bytes_of_whole_ones() {
        let keys = keys();
        // Around the whole-or-pieces limit, and well past it.
        for n in (0..1400).step_by(7).chain([5000, 20_000]) {
            let tree = receipts(n, 3);
            let reference = reference_encode_stored(&tree, &keys);
            assert_eq!(tree.encode_stored(&keys), reference, "{n} entries");
            assert_eq!(streamed(&tree, &keys), reference, "{n} entries");
        }
    }

    proptest! {
        #[test]
        fn streamed_listings_match_for_any_entries(
            nodes in proptest::collection::btree_map(name(), node(), 0..400),
            big in proptest::collection::vec(any::<u8>(), 0..3000),
        ) {
            let keys = keys();
            // Large xattrs push some listings past the split limit and
            // some pieces past the largest size.
            let nodes = nodes.into_iter().enumerate().map(|(i, (name, mut n))| {
                n.name = name;
                if i % 5 == 0 {
                    n.xattrs = vec![(b"user.big".to_vec(), big.clone())];
                }
                n
            });
            let tree = Tree { nodes: nodes.collect() };
            let reference = reference_encode_stored(&tree, &keys);
            prop_assert_eq!(tree.encode_stored(&keys), reference.clone());
            prop_assert_eq!(streamed(&tree, &keys), reference);
        }
    }

    #[test]
    fn entries_added_to_a_large_tree_change_few_pieces() {
        let keys = keys();
        let before = pieces_of(&receipts(20_000, 0), &keys);
        // A day's new receipts (sorted after the others), and one entry
        // changed in the middle.
        let mut tree = receipts(20_400, 0);
        tree.nodes[7_000].mtime.sec += 86_400;
        let after = pieces_of(&tree, &keys);
        let old: std::collections::HashSet<&Vec<u8>> = before.iter().collect();
        let new = after.iter().filter(|p| !old.contains(p)).count();
        assert!(
            new <= 2 + 400 * 100 / PIECE_MIN_BYTES + 2,
            "{new} of {} pieces new",
            after.len()
        );
        // Cuts depend on the key: another repository cuts elsewhere.
        let other = Keys::derive(&crate::crypto::MasterKey::from_bytes([8; 32]), [0; 16]);
        assert_ne!(pieces_of(&receipts(20_000, 0), &other), before);
    }
}
