//! A regular file's contents (FORMAT.md §7.2): a list of extents, each a
//! chunk (a data blob) or a hole. Short lists are stored inline in the tree;
//! long ones are cut into chunk-list pieces at content-defined points (chosen
//! from the chunk ids themselves), each piece a blob, so that a large file
//! that changed in one place re-stores one piece, not its whole list.
//!
//! A chunk may be a delta against an older chunk (format 8): its extent then
//! names both blobs, so that whoever walks the lists (prune, copy, check)
//! knows the base is needed without reading the delta. Lists with a delta
//! use the second extent encoding; the others keep the first, byte for
//! byte, so that unchanged files keep their trees.

use crate::codec::{DecodeError, Reader, Writer};
use crate::format::blob::BlobKind;
use crate::id::BlobId;

/// One extent of a file, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// `len` bytes held by the data blob `id`, or by the delta blob `id`
    /// made against the data blob `base`.
    Chunk {
        /// The data blob, or the delta blob when `base` is set.
        id: BlobId,
        /// Its plaintext length.
        len: u32,
        /// The data blob the delta `id` applies to (format 8).
        base: Option<BlobId>,
    },
    /// `len` bytes of a hole (reads as zeros, takes no space on restore).
    Hole {
        /// Length of the hole.
        len: u64,
    },
}

impl Extent {
    /// A chunk held whole by the data blob `id`.
    pub fn chunk(id: BlobId, len: u32) -> Self {
        Extent::Chunk {
            id,
            len,
            base: None,
        }
    }

    /// The kind of blob that holds a chunk: [`BlobKind::Delta`] when it
    /// has a base; `None` for a hole.
    pub fn blob_kind(&self) -> Option<BlobKind> {
        match self {
            Extent::Chunk { base: None, .. } => Some(BlobKind::Data),
            Extent::Chunk { base: Some(_), .. } => Some(BlobKind::Delta),
            Extent::Hole { .. } => None,
        }
    }

    /// True for a chunk stored as a delta.
    pub fn is_delta(&self) -> bool {
        matches!(self, Extent::Chunk { base: Some(_), .. })
    }

    /// Bytes of the file this extent covers.
    pub fn len(&self) -> u64 {
        match *self {
            Extent::Chunk { len, .. } => u64::from(len),
            Extent::Hole { len } => len,
        }
    }

    /// True for an extent of zero bytes (never produced by the chunker).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a file's extent list is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The extents themselves.
    Inline(Vec<Extent>),
    /// Chunk-list blobs whose concatenation is the extent list.
    Pieces(Vec<BlobId>),
}

/// Lists up to this many extents stay inline.
pub const INLINE_MAX: usize = 32;
const PIECE_MIN: usize = 4;
const PIECE_MAX: usize = 256;
/// A piece ends after a chunk whose id's first byte is below this: about one
/// chunk in 16, which with the minimum of 4 makes pieces of ~19 extents
/// (~0.7 KiB) on average. Small pieces because a database changes a few
/// pages scattered everywhere: FORMAT.md §7.2 gives the measurements.
const PIECE_CUT_BELOW: u8 = 16;

/// The length of the file `extents` describe; `None` above
/// [`crate::limits::MAX_FILE_LEN`], so that no reader's offsets can wrap.
pub fn total_len(extents: &[Extent]) -> Option<u64> {
    extents
        .iter()
        .try_fold(0u64, |sum, e| sum.checked_add(e.len()))
        .filter(|&n| n <= crate::limits::MAX_FILE_LEN)
}

/// Whether a piece of `len` extents, the last being `last`, ends there.
fn ends_piece(len: usize, last: &Extent) -> bool {
    let cut = match last {
        Extent::Chunk { id, .. } => len >= PIECE_MIN && id.0[0] < PIECE_CUT_BELOW,
        Extent::Hole { .. } => false,
    };
    cut || len >= PIECE_MAX
}

/// Cuts a long extent list into pieces. The cut points depend only on the
/// extents near them, so an edit moves at most the pieces around it.
pub fn split_pieces(extents: &[Extent]) -> Vec<&[Extent]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (i, e) in extents.iter().enumerate() {
        if ends_piece(i + 1 - start, e) {
            pieces.push(&extents[start..=i]);
            start = i + 1;
        }
    }
    if start < extents.len() {
        pieces.push(&extents[start..]);
    }
    pieces
}

/// [`split_pieces`] for a list that comes one extent at a time (a file
/// being read): the same pieces, each given as soon as it is complete.
#[derive(Debug, Default)]
pub struct PieceCutter {
    current: Vec<Extent>,
}

impl PieceCutter {
    /// Adds the next extent; returns the piece it completes, if it does.
    pub fn push(&mut self, extent: Extent) -> Option<Vec<Extent>> {
        self.current.push(extent);
        let last = self.current.last()?;
        ends_piece(self.current.len(), last).then(|| std::mem::take(&mut self.current))
    }

    /// The last piece, unless it is empty.
    pub fn finish(self) -> Option<Vec<Extent>> {
        (!self.current.is_empty()).then_some(self.current)
    }
}

/// Which extent encoding a list needs: the second only when it holds a
/// delta (FORMAT.md §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `varint(len << 1 | hole)`, then a chunk's id.
    First,
    /// `varint(len << 2 | tag)`: tag 0 a chunk (its id), 1 a hole, 2 a
    /// delta (its id, then its base's id). Format 8.
    Second,
}

impl Encoding {
    /// The encoding `extents` needs.
    pub fn of(extents: &[Extent]) -> Self {
        if extents.iter().any(Extent::is_delta) {
            Self::Second
        } else {
            Self::First
        }
    }
}

const TAG_CHUNK: u64 = 0;
const TAG_HOLE: u64 = 1;
const TAG_DELTA: u64 = 2;

/// Encodes extents: count varint, then each extent in `encoding`, which
/// must be able to hold them ([`Encoding::of`]).
pub fn encode_extents(w: &mut Writer, extents: &[Extent], encoding: Encoding) {
    w.varint(extents.len() as u64);
    for e in extents {
        match (encoding, *e) {
            (Encoding::First, Extent::Chunk { id, len, .. }) => {
                debug_assert!(!e.is_delta(), "a delta in the first encoding");
                w.varint(u64::from(len) << 1);
                w.raw(id.as_bytes());
            }
            (Encoding::First, Extent::Hole { len }) => w.varint(len << 1 | 1),
            (Encoding::Second, Extent::Chunk { id, len, base }) => {
                let tag = if base.is_some() { TAG_DELTA } else { TAG_CHUNK };
                w.varint(u64::from(len) << 2 | tag);
                w.raw(id.as_bytes());
                if let Some(base) = base {
                    w.raw(base.as_bytes());
                }
            }
            (Encoding::Second, Extent::Hole { len }) => w.varint(len << 2 | TAG_HOLE),
        }
    }
}

/// Decodes what [`encode_extents`] wrote in `encoding`.
pub fn decode_extents(r: &mut Reader<'_>, encoding: Encoding) -> Result<Vec<Extent>, DecodeError> {
    let n = r.count(1)?;
    let mut out = Vec::with_capacity(n);
    let chunk_len = |v: u64| u32::try_from(v).map_err(|_| DecodeError::Overflow);
    for _ in 0..n {
        let v = r.varint()?;
        let e = match encoding {
            Encoding::First if v & 1 == 1 => Extent::Hole { len: v >> 1 },
            Encoding::First => Extent::chunk(BlobId(r.id()?), chunk_len(v >> 1)?),
            Encoding::Second => match v & 3 {
                TAG_CHUNK => Extent::chunk(BlobId(r.id()?), chunk_len(v >> 2)?),
                TAG_HOLE => Extent::Hole { len: v >> 2 },
                TAG_DELTA => Extent::Chunk {
                    len: chunk_len(v >> 2)?,
                    id: BlobId(r.id()?),
                    base: Some(BlobId(r.id()?)),
                },
                _ => return Err(DecodeError::Invalid("unknown extent tag")),
            },
        };
        out.push(e);
    }
    Ok(out)
}

/// Chunk-list pieces in the first extent encoding.
const PIECE_VERSION: u8 = 1;
/// Chunk-list pieces with a delta, in the second encoding (format 8).
const PIECE_VERSION_DELTAS: u8 = 2;

/// A chunk-list piece blob: version u8 then the extents.
pub fn encode_piece(extents: &[Extent]) -> Vec<u8> {
    let mut w = Writer::new();
    let encoding = Encoding::of(extents);
    w.u8(match encoding {
        Encoding::First => PIECE_VERSION,
        Encoding::Second => PIECE_VERSION_DELTAS,
    });
    encode_extents(&mut w, extents, encoding);
    w.into_bytes()
}

/// Decodes a chunk-list piece blob.
pub fn decode_piece(bytes: &[u8]) -> Result<Vec<Extent>, DecodeError> {
    let mut r = Reader::new(bytes);
    let encoding = match r.version_upto("chunk list", PIECE_VERSION_DELTAS)? {
        PIECE_VERSION => Encoding::First,
        _ => Encoding::Second,
    };
    let out = decode_extents(&mut r, encoding)?;
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn extent() -> impl Strategy<Value = Extent> {
        prop_oneof![
            (any::<[u8; 32]>(), any::<u32>()).prop_map(|(id, len)| Extent::chunk(BlobId(id), len)),
            (any::<[u8; 32]>(), any::<u32>(), any::<[u8; 32]>()).prop_map(|(id, len, base)| {
                Extent::Chunk {
                    id: BlobId(id),
                    len,
                    base: Some(BlobId(base)),
                }
            }),
            (0u64..1 << 62).prop_map(|len| Extent::Hole { len }),
        ]
    }

    proptest! {
        #[test]
        fn pieces_round_trip_and_reassemble(extents in proptest::collection::vec(extent(), 0..700)) {
            let pieces = split_pieces(&extents);
            let mut joined = Vec::new();
            for p in &pieces {
                prop_assert!(p.len() <= PIECE_MAX);
                joined.extend(decode_piece(&encode_piece(p)).unwrap());
            }
            prop_assert_eq!(joined, extents);
        }

        #[test]
        fn pieces_cut_as_extents_come_are_the_same(extents in proptest::collection::vec(extent(), 0..700)) {
            let mut cutter = PieceCutter::default();
            let mut streamed: Vec<Vec<Extent>> =
                extents.iter().filter_map(|e| cutter.push(*e)).collect();
            streamed.extend(cutter.finish());
            let whole: Vec<Vec<Extent>> = split_pieces(&extents).iter().map(|p| p.to_vec()).collect();
            prop_assert_eq!(streamed, whole);
        }
    }

    #[test]
    fn lists_without_a_delta_keep_the_first_encoding_byte_for_byte() {
        let id = BlobId([0x21; 32]);
        let plain = [Extent::chunk(id, 65_536), Extent::Hole { len: 4096 }];
        // Pinned: these are the bytes every format before 8 wrote.
        let mut expected = vec![1u8, 2, 0x80, 0x80, 0x08];
        expected.extend_from_slice(&[0x21; 32]);
        expected.extend_from_slice(&[0x81, 0x40]);
        assert_eq!(encode_piece(&plain), expected);
        let with_delta = [
            Extent::chunk(id, 10),
            Extent::Chunk {
                id: BlobId([1; 32]),
                len: 3,
                base: Some(id),
            },
            Extent::Hole { len: 5 },
        ];
        let bytes = encode_piece(&with_delta);
        assert_eq!(&bytes[..3], &[2, 3, 40]);
        assert_eq!(decode_piece(&bytes).unwrap(), with_delta);
        // A tag of 3 is refused, not misread.
        let mut bad = bytes.clone();
        bad[2] = 43;
        assert!(decode_piece(&bad).is_err());
    }

    #[test]
    fn lengths_past_the_largest_file_are_refused() {
        let hole = |len| Extent::Hole { len };
        assert_eq!(total_len(&[]), Some(0));
        assert_eq!(total_len(&[hole(5), hole(7)]), Some(12));
        let max = crate::limits::MAX_FILE_LEN;
        assert_eq!(total_len(&[hole(max - 1), hole(1)]), Some(max));
        assert_eq!(total_len(&[hole(max), hole(1)]), None);
        // Holes whose sum wraps past 2^64 back to a small number.
        assert_eq!(
            total_len(&[hole(u64::MAX >> 1), hole(u64::MAX >> 1), hole(3)]),
            None
        );
    }

    #[test]
    fn one_changed_chunk_changes_few_pieces() {
        let ids: Vec<Extent> = (0..4000u32)
            .map(|i| Extent::chunk(BlobId(*blake3::hash(&i.to_le_bytes()).as_bytes()), 8192))
            .collect();
        let mut edited = ids.clone();
        edited[2000] = Extent::chunk(BlobId([200; 32]), 8192);
        let a: Vec<Vec<u8>> = split_pieces(&ids).iter().map(|p| encode_piece(p)).collect();
        let b: Vec<Vec<u8>> = split_pieces(&edited)
            .iter()
            .map(|p| encode_piece(p))
            .collect();
        let new = b.iter().filter(|p| !a.contains(p)).count();
        assert!(new <= 2, "{new} pieces changed");
        assert!(a.len() > 20);
    }
}
