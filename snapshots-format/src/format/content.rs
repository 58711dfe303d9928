//! A regular file's contents (FORMAT.md §7.2): a list of extents, each a
//! chunk (a data blob) or a hole. Short lists are stored inline in the tree;
//! long ones are cut into chunk-list pieces at content-defined points (chosen
//! from the chunk ids themselves), each piece a blob, so that a large file
//! that changed in one place re-stores one piece, not its whole list.

use crate::codec::{DecodeError, Reader, Writer};
use crate::id::BlobId;

/// One extent of a file, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// `len` bytes held by the data blob `id`.
    Chunk {
        /// The data blob.
        id: BlobId,
        /// Its plaintext length.
        len: u32,
    },
    /// `len` bytes of a hole (reads as zeros, takes no space on restore).
    Hole {
        /// Length of the hole.
        len: u64,
    },
}

impl Extent {
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

/// Cuts a long extent list into pieces. The cut points depend only on the
/// extents near them, so an edit moves at most the pieces around it.
pub fn split_pieces(extents: &[Extent]) -> Vec<&[Extent]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (i, e) in extents.iter().enumerate() {
        let len = i + 1 - start;
        let cut = match e {
            Extent::Chunk { id, .. } => len >= PIECE_MIN && id.0[0] < PIECE_CUT_BELOW,
            Extent::Hole { .. } => false,
        };
        if cut || len >= PIECE_MAX {
            pieces.push(&extents[start..=i]);
            start = i + 1;
        }
    }
    if start < extents.len() {
        pieces.push(&extents[start..]);
    }
    pieces
}

/// Encodes extents: count varint, then per extent varint (len << 1 | hole)
/// followed, for a chunk, by its 32-byte id.
pub fn encode_extents(w: &mut Writer, extents: &[Extent]) {
    w.varint(extents.len() as u64);
    for e in extents {
        match *e {
            Extent::Chunk { id, len } => {
                w.varint(u64::from(len) << 1);
                w.raw(id.as_bytes());
            }
            Extent::Hole { len } => w.varint(len << 1 | 1),
        }
    }
}

/// Decodes what [`encode_extents`] wrote.
pub fn decode_extents(r: &mut Reader<'_>) -> Result<Vec<Extent>, DecodeError> {
    let n = r.count(1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let v = r.varint()?;
        if v & 1 == 1 {
            out.push(Extent::Hole { len: v >> 1 });
        } else {
            let len = u32::try_from(v >> 1).map_err(|_| DecodeError::Overflow)?;
            out.push(Extent::Chunk {
                id: BlobId(r.id()?),
                len,
            });
        }
    }
    Ok(out)
}

const PIECE_VERSION: u8 = 1;

/// A chunk-list piece blob: version u8 then the extents.
pub fn encode_piece(extents: &[Extent]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(PIECE_VERSION);
    encode_extents(&mut w, extents);
    w.into_bytes()
}

/// Decodes a chunk-list piece blob.
pub fn decode_piece(bytes: &[u8]) -> Result<Vec<Extent>, DecodeError> {
    let mut r = Reader::new(bytes);
    r.version("chunk list", PIECE_VERSION)?;
    let out = decode_extents(&mut r)?;
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn extent() -> impl Strategy<Value = Extent> {
        prop_oneof![
            (any::<[u8; 32]>(), any::<u32>()).prop_map(|(id, len)| Extent::Chunk {
                id: BlobId(id),
                len
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
            .map(|i| Extent::Chunk {
                id: BlobId(*blake3::hash(&i.to_le_bytes()).as_bytes()),
                len: 8192,
            })
            .collect();
        let mut edited = ids.clone();
        edited[2000] = Extent::Chunk {
            id: BlobId([200; 32]),
            len: 8192,
        };
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
