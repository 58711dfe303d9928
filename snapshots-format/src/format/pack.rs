//! Pack files, `data/<2 hex>/<64 hex>` (FORMAT.md §5): sealed blobs appended
//! one after the other, then a sealed trailer listing them, so that a pack
//! describes itself and the index can be rebuilt from packs alone.
//!
//! ```text
//! header   magic "COFFREPK" (8) | pack version u32 LE (4)
//! blobs    sealed blob, sealed blob, ...
//! trailer  sealed(trailer record)
//! footer   trailer length u32 LE (4) | magic "COFFREPK" (8)
//! ```
//! A pack's id is the BLAKE3 hash of the whole file. Writing packs and
//! reading their trailers from storage is `repo::pack_writer`'s.

use crate::codec::{DecodeError, Reader, Writer};
use crate::crypto::{Keys, ObjectKind};
use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::id::BlobId;

/// Magic at both ends of a pack.
pub const MAGIC: &[u8; 8] = b"COFFREPK";
/// Pack layout version.
pub const PACK_VERSION: u32 = 1;
/// Bytes before the first blob.
pub const HEADER_LEN: u64 = 12;
/// Bytes after the trailer.
pub const FOOTER_LEN: u64 = 12;
const TRAILER_VERSION: u8 = 1;
pub use crate::limits::MAX_PACK_LEN;

/// Where a blob sits in its pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackEntry {
    /// The blob.
    pub id: BlobId,
    /// Its kind.
    pub kind: BlobKind,
    /// Offset of its sealed bytes from the start of the pack.
    pub offset: u32,
    /// Length of its sealed bytes.
    pub length: u32,
}

/// Encodes a trailer: version u8 | count varint | per blob: kind u8, id 32,
/// offset varint, length varint.
pub fn encode_trailer(entries: &[PackEntry]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(TRAILER_VERSION);
    w.varint(entries.len() as u64);
    for e in entries {
        w.u8(e.kind as u8);
        w.raw(e.id.as_bytes());
        w.varint(u64::from(e.offset));
        w.varint(u64::from(e.length));
    }
    w.into_bytes()
}

/// Decodes a trailer, checking that every blob lies inside the pack's blob area.
pub fn decode_trailer(bytes: &[u8], blob_area_end: u64) -> Result<Vec<PackEntry>, DecodeError> {
    let mut r = Reader::new(bytes);
    r.version("pack trailer", TRAILER_VERSION)?;
    let n = r.count(35)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = BlobKind::from_u8(r.u8()?).ok_or(DecodeError::Invalid("unknown blob kind"))?;
        let id = BlobId(r.id()?);
        let offset = r.varint_u32()?;
        let length = r.varint_u32()?;
        if u64::from(offset) < HEADER_LEN || u64::from(offset) + u64::from(length) > blob_area_end {
            return Err(DecodeError::Invalid("blob outside the pack"));
        }
        out.push(PackEntry {
            id,
            kind,
            offset,
            length,
        });
    }
    r.finish()?;
    Ok(out)
}

/// Reads the trailer of a whole pack file held in memory.
///
/// # Errors
/// [`Error::Corrupt`] naming the pack when the footer or trailer is damaged.
pub fn read_trailer(keys: &Keys, name: &str, pack: &[u8]) -> Result<Vec<PackEntry>> {
    let len = pack.len() as u64;
    let (start, sealed) = locate_trailer(name, len, |off, n| {
        Ok(pack[off as usize..off as usize + n].to_vec())
    })?;
    open_trailer(keys, name, &sealed, start)
}

/// Finds the sealed trailer of a pack of `len` bytes, reading through `read_at`.
/// Returns its offset and bytes.
pub fn locate_trailer(
    name: &str,
    len: u64,
    mut read_at: impl FnMut(u64, usize) -> Result<Vec<u8>>,
) -> Result<(u64, Vec<u8>)> {
    let bad = |why: &str| Error::corrupt("pack", name, why);
    if len < HEADER_LEN + FOOTER_LEN {
        return Err(bad("too short to be a pack"));
    }
    let head = read_at(0, HEADER_LEN as usize)?;
    if &head[..8] != MAGIC {
        return Err(bad("bad magic"));
    }
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if version == 0 {
        return Err(bad("version 0"));
    }
    if version > PACK_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "pack",
            found: version,
            supported: PACK_VERSION,
        });
    }
    let foot = read_at(len - FOOTER_LEN, FOOTER_LEN as usize)?;
    if &foot[4..] != MAGIC {
        return Err(bad("bad footer (incomplete pack?)"));
    }
    let tlen = u64::from(u32::from_le_bytes([foot[0], foot[1], foot[2], foot[3]]));
    if tlen + HEADER_LEN + FOOTER_LEN > len {
        return Err(bad("trailer length out of range"));
    }
    let start = len - FOOTER_LEN - tlen;
    Ok((start, read_at(start, tlen as usize)?))
}

/// Opens and decodes a sealed trailer that starts at `trailer_start`.
pub fn open_trailer(
    keys: &Keys,
    name: &str,
    sealed: &[u8],
    trailer_start: u64,
) -> Result<Vec<PackEntry>> {
    let plain = keys
        .open(ObjectKind::PackTrailer, &[], sealed)
        .map_err(|_| Error::corrupt("pack", name, "trailer fails authentication"))?;
    decode_trailer(&plain, trailer_start)
        .map_err(|e| Error::corrupt("pack", name, format!("trailer: {e}")))
}
