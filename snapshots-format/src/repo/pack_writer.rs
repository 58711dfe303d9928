//! Writing packs through a storage backend, and reading a pack's trailer
//! back from it (FORMAT.md §5): the storage half of `format::pack`.

use crate::backend::{Backend, FileKind, ObjectName, Upload};
use crate::crypto::Keys;
use crate::crypto::ObjectKind;
use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::pack::{
    encode_trailer, locate_trailer, open_trailer, PackEntry, MAGIC, PACK_VERSION,
};
use crate::id::{BlobId, PackId};

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
    pub fn listing(&self) -> crate::format::index_file::IndexedPack {
        crate::format::index_file::IndexedPack {
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

    /// How many blobs the pack holds so far.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
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
    use crate::crypto::MasterKey;
    use crate::format::blob;
    use crate::format::pack::{decode_trailer, read_trailer};
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
                prop_assert_eq!(&blob::decode(&k, e.kind, &e.id, sealed, &blob::Needs {
                    dict: &|| Ok(None),
                    base: &|id| Err(crate::error::Error::BlobNotFound(id.short())),
                }).unwrap(), b);
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
