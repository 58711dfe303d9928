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
//! A pack's id is the BLAKE3 hash of the whole file.

use crate::backend::{Backend, FileKind, ObjectName, Upload};
use crate::blob::BlobKind;
use crate::codec::{DecodeError, Reader, Writer};
use crate::crypto::{Keys, ObjectKind};
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};

/// Magic at both ends of a pack.
pub const MAGIC: &[u8; 8] = b"COFFREPK";
/// Pack layout version.
pub const PACK_VERSION: u32 = 1;
/// Bytes before the first blob.
pub const HEADER_LEN: u64 = 12;
/// Bytes after the trailer.
pub const FOOTER_LEN: u64 = 12;
const TRAILER_VERSION: u8 = 1;
/// The largest pack Coffre reads: packs close at 16 MiB plus the last
/// batch, and offsets are 32-bit; anything larger is refused unread.
pub const MAX_PACK_LEN: u64 = 64 << 20;

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

/// Reads a pack's trailer through positioned reads (a few KiB, not the
/// pack).
///
/// # Errors
/// [`Error::Corrupt`] naming the pack when it is missing, short, or its
/// trailer is damaged.
pub fn read_entries(
    backend: &dyn Backend,
    id: &PackId,
    size: u64,
    keys: &Keys,
) -> Result<Vec<PackEntry>> {
    let name = id.short();
    let object = ObjectName::pack(id);
    let (start, sealed) = locate_trailer(&name, size, |off, len| {
        backend.read_at(FileKind::Pack, &object, off, len)
    })?;
    open_trailer(keys, &name, &sealed, start)
}

/// A pack being written: blobs are appended to a temporary file and hashed as
/// they go; [`PackWriter::finish`] seals the trailer and makes the pack durable.
pub struct PackWriter {
    file: Box<dyn Upload>,
    /// Bytes not yet hashed nor written: BLAKE3 is several times faster on
    /// long runs than on blob-sized pieces, so both happen per megabyte.
    pending: Vec<u8>,
    hasher: blake3::Hasher,
    len: u64,
    entries: Vec<PackEntry>,
}

const WRITE_BATCH: usize = 1 << 20;

/// A pack made durable under its final name.
#[derive(Debug)]
pub struct FinishedPack {
    /// Its id.
    pub id: PackId,
    /// Its size in bytes.
    pub size: u64,
    /// What it holds.
    pub entries: Vec<PackEntry>,
}

impl FinishedPack {
    /// The pack as an index file lists it.
    pub fn listing(&self) -> crate::index_file::IndexedPack {
        crate::index_file::IndexedPack {
            id: self.id,
            size: self.size,
            entries: self.entries.clone(),
        }
    }
}

impl PackWriter {
    /// Starts a pack on `backend`.
    ///
    /// # Errors
    /// Those of [`Backend::upload`].
    pub fn new(backend: &dyn Backend) -> Result<Self> {
        let mut w = Self {
            file: backend.upload(FileKind::Pack)?,
            pending: Vec::with_capacity(WRITE_BATCH),
            hasher: blake3::Hasher::new(),
            len: 0,
            entries: Vec::new(),
        };
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&PACK_VERSION.to_le_bytes());
        w.append(&head)?;
        Ok(w)
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(bytes);
        self.len += bytes.len() as u64;
        if self.pending.len() >= WRITE_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.hasher.update(&self.pending);
        self.file.write(&self.pending)?;
        self.pending.clear();
        Ok(())
    }

    /// Appends one sealed blob.
    pub fn add(&mut self, id: BlobId, kind: BlobKind, sealed: &[u8]) -> Result<()> {
        let offset = u32::try_from(self.len)
            .map_err(|_| Error::corrupt("pack", "being written", "over 4 GiB"))?;
        let length = u32::try_from(sealed.len())
            .map_err(|_| Error::corrupt("blob", id.short(), "over 4 GiB"))?;
        self.append(sealed)?;
        self.entries.push(PackEntry {
            id,
            kind,
            offset,
            length,
        });
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes trailer and footer and makes the pack durable under its id.
    ///
    /// # Errors
    /// Those of [`Upload::commit`].
    pub fn finish(mut self, keys: &Keys) -> Result<FinishedPack> {
        let trailer = keys.seal(ObjectKind::PackTrailer, &[], &encode_trailer(&self.entries));
        self.append(&trailer)?;
        let mut foot = (trailer.len() as u32).to_le_bytes().to_vec();
        foot.extend_from_slice(MAGIC);
        self.append(&foot)?;
        self.flush()?;
        let id = PackId(*self.hasher.finalize().as_bytes());
        // The same id means the same bytes: a pack already there is ours.
        self.file.commit(&ObjectName::pack(&id), false)?;
        Ok(FinishedPack {
            id,
            size: self.len,
            entries: self.entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::derive(&MasterKey::from_bytes([5; 32]), [3; 16])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..12)) {
            let store = crate::backend::MemBackend::new();
            let k = keys();
            let mut w = PackWriter::new(&store).unwrap();
            let mut ids = Vec::new();
            for b in &blobs {
                let id = blob::blob_id(&k, BlobKind::Data, b);
                w.add(id, BlobKind::Data, &blob::encode(&k, BlobKind::Data, &id, b, None)).unwrap();
                ids.push(id);
            }
            let done = w.finish(&k).unwrap();
            let bytes = store.read(FileKind::Pack, &ObjectName::pack(&done.id)).unwrap().unwrap();
            prop_assert_eq!(PackId(*blake3::hash(&bytes).as_bytes()), done.id);
            let entries = read_trailer(&k, "p", &bytes).unwrap();
            prop_assert_eq!(&entries, &done.entries);
            for (e, b) in entries.iter().zip(&blobs) {
                let sealed = &bytes[e.offset as usize..(e.offset + e.length) as usize];
                prop_assert_eq!(&blob::decode(&k, e.kind, &e.id, sealed, &|| Ok(None)).unwrap(), b);
            }
        }

        #[test]
        fn trailer_encoding_round_trip(n in 0usize..50, seed in any::<u8>()) {
            let entries: Vec<PackEntry> = (0..n).map(|i| PackEntry {
                id: BlobId([seed.wrapping_add(i as u8); 32]),
                kind: if i % 2 == 0 { BlobKind::Data } else { BlobKind::Tree },
                offset: 12 + i as u32 * 10,
                length: 10,
            }).collect();
            prop_assert_eq!(decode_trailer(&encode_trailer(&entries), 12 + n as u64 * 10).unwrap(), entries);
        }
    }

    #[test]
    fn truncated_pack_is_refused() {
        let store = crate::backend::MemBackend::new();
        let k = keys();
        let mut w = PackWriter::new(&store).unwrap();
        let id = blob::blob_id(&k, BlobKind::Data, b"x");
        w.add(
            id,
            BlobKind::Data,
            &blob::encode(&k, BlobKind::Data, &id, b"x", None),
        )
        .unwrap();
        let done = w.finish(&k).unwrap();
        let bytes = store
            .read(FileKind::Pack, &ObjectName::pack(&done.id))
            .unwrap()
            .unwrap();
        for cut in [0, 5, bytes.len() / 2, bytes.len() - 1] {
            assert!(read_trailer(&k, "p", &bytes[..cut]).is_err());
        }
    }
}
