//! Index files, `index/<64 hex>` (FORMAT.md §6, format 4): which blobs each
//! pack holds and where, written once with every group of packs a snapshot
//! or prune makes, so that a repository opened with an empty local cache
//! reads these few files instead of every pack's trailer.
//!
//! ```text
//! magic "COFFREIX" (8) | sealed(plaintext), associated data: kind 0x09 only
//! plaintext: version u8 (1) | pack count varint | per pack:
//!     pack id (32) | pack size varint | entry count varint |
//!     per entry: kind u8 | blob id (32) | offset varint | length varint
//! ```
//! An index file's name is the BLAKE3 hash of its bytes, so a file cannot
//! be renamed or swapped for another without being noticed; its contents
//! are sealed, so they cannot be edited without the key.

use crate::codec::{DecodeError, Reader, Writer};
use crate::crypto::{Keys, ObjectKind};
use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::pack::{PackEntry, FOOTER_LEN, HEADER_LEN};
use crate::id::{BlobId, PackId};

/// Magic opening an index file.
pub const MAGIC: &[u8; 8] = b"COFFREIX";
const VERSION: u8 = 1;

/// A pack as an index file lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedPack {
    /// The pack.
    pub id: PackId,
    /// Its size in bytes.
    pub size: u64,
    /// The blobs it holds.
    pub entries: Vec<PackEntry>,
}

/// Packs listed per index file at most...
const PACKS_PER_FILE: usize = 256;
/// ...and blobs: about 43 bytes each, so a file stays far below the
/// 256 MiB readers accept whatever the blobs' sizes.
const BLOBS_PER_FILE: usize = 1 << 20;

/// `packs` cut into runs that each fit one index file.
pub fn groups(packs: &[IndexedPack]) -> Vec<&[IndexedPack]> {
    let mut out = Vec::new();
    let (mut start, mut blobs) = (0, 0);
    for (i, p) in packs.iter().enumerate() {
        if i > start && (i - start >= PACKS_PER_FILE || blobs + p.entries.len() > BLOBS_PER_FILE) {
            out.push(&packs[start..i]);
            start = i;
            blobs = 0;
        }
        blobs += p.entries.len();
    }
    if start < packs.len() {
        out.push(&packs[start..]);
    }
    out
}

/// Seals `packs` into an index file; returns its name (id) and bytes.
pub fn encode(keys: &Keys, packs: &[IndexedPack]) -> ([u8; 32], Vec<u8>) {
    let mut w = Writer::new();
    w.u8(VERSION);
    w.varint(packs.len() as u64);
    for p in packs {
        w.raw(p.id.as_bytes());
        w.varint(p.size);
        w.varint(p.entries.len() as u64);
        for e in &p.entries {
            w.u8(e.kind as u8);
            w.raw(e.id.as_bytes());
            w.varint(u64::from(e.offset));
            w.varint(u64::from(e.length));
        }
    }
    let sealed = keys.seal(ObjectKind::IndexFile, &[], &w.into_bytes());
    let bytes = [&MAGIC[..], &sealed].concat();
    (*blake3::hash(&bytes).as_bytes(), bytes)
}

/// Opens an index file read as `name`.
///
/// # Errors
/// [`Error::Corrupt`] naming the file when its name does not match its
/// bytes, it fails authentication or does not decode.
pub fn decode(keys: &Keys, name: &[u8; 32], bytes: &[u8]) -> Result<Vec<IndexedPack>> {
    let short = crate::id::to_hex(&name[..6]);
    let bad = |why: String| Error::corrupt("index file", &short, why);
    if blake3::hash(bytes).as_bytes() != name {
        return Err(bad("contents do not match its name".into()));
    }
    let sealed = bytes
        .strip_prefix(&MAGIC[..])
        .ok_or_else(|| bad("bad magic".into()))?;
    let plain = keys
        .open(ObjectKind::IndexFile, &[], sealed)
        .map_err(|_| bad("fails authentication".into()))?;
    decode_plain(&plain).map_err(|e| bad(e.to_string()))
}

fn decode_plain(plain: &[u8]) -> Result<Vec<IndexedPack>, DecodeError> {
    let mut r = Reader::new(plain);
    r.version("index file", VERSION)?;
    let n = r.count(34)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = PackId(r.id()?);
        let size = r.varint()?;
        if !(HEADER_LEN + FOOTER_LEN..=crate::limits::MAX_PACK_LEN).contains(&size) {
            return Err(DecodeError::Invalid("pack size out of range"));
        }
        let count = r.count(35)?;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let kind =
                BlobKind::from_u8(r.u8()?).ok_or(DecodeError::Invalid("unknown blob kind"))?;
            let blob = BlobId(r.id()?);
            let offset = r.varint_u32()?;
            let length = r.varint_u32()?;
            if u64::from(offset) < HEADER_LEN
                || u64::from(offset) + u64::from(length) > size - FOOTER_LEN
            {
                return Err(DecodeError::Invalid("blob outside its pack"));
            }
            entries.push(PackEntry {
                id: blob,
                kind,
                offset,
                length,
            });
        }
        out.push(IndexedPack { id, size, entries });
    }
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::derive(&MasterKey::from_bytes([7; 32]), [1; 16])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn round_trip(packs in proptest::collection::vec((any::<[u8; 32]>(), 0usize..40), 0..6)) {
            let packs: Vec<IndexedPack> = packs.into_iter().map(|(id, n)| IndexedPack {
                id: PackId(id),
                size: 1000 + 20 * n as u64,
                entries: (0..n).map(|i| PackEntry {
                    id: BlobId([i as u8; 32]),
                    kind: if i % 3 == 0 { BlobKind::Tree } else { BlobKind::Data },
                    offset: 12 + 20 * i as u32,
                    length: 20,
                }).collect(),
            }).collect();
            let (name, bytes) = encode(&keys(), &packs);
            prop_assert_eq!(decode(&keys(), &name, &bytes).unwrap(), packs);
        }
    }

    #[test]
    fn groups_are_bounded_by_packs_and_blobs() {
        let pack = |n: usize| IndexedPack {
            id: PackId([0; 32]),
            size: 100,
            entries: vec![
                PackEntry {
                    id: BlobId([0; 32]),
                    kind: BlobKind::Data,
                    offset: 12,
                    length: 1,
                };
                n
            ],
        };
        let many: Vec<_> = (0..600).map(|_| pack(1)).collect();
        let sizes: Vec<usize> = groups(&many).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, [256, 256, 88]);
        let big: Vec<_> = (0..5).map(|_| pack(BLOBS_PER_FILE / 2)).collect();
        let sizes: Vec<usize> = groups(&big).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert!(groups(&[]).is_empty());
        // A single pack larger than the bound still gets its file.
        assert_eq!(groups(&[pack(BLOBS_PER_FILE + 1)]).len(), 1);
    }

    #[test]
    fn tampering_is_refused() {
        let packs = vec![IndexedPack {
            id: PackId([3; 32]),
            size: 100,
            entries: vec![PackEntry {
                id: BlobId([4; 32]),
                kind: BlobKind::Data,
                offset: 12,
                length: 50,
            }],
        }];
        let (name, bytes) = encode(&keys(), &packs);
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(decode(&keys(), &name, &flipped).is_err());
        // Re-named to match the flipped bytes, it still fails authentication.
        let renamed = *blake3::hash(&flipped).as_bytes();
        assert!(decode(&keys(), &renamed, &flipped).is_err());
        let other = Keys::derive(&MasterKey::from_bytes([8; 32]), [1; 16]);
        assert!(decode(&other, &name, &bytes).is_err());
    }
}
