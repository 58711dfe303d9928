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
///
/// The file is written and hashed by a thread of the pack's own, a few
/// megabytes behind the appends: on a slow drive a write blocks for as long
/// as the drive takes, and the thread appending (a saver's worker, holding
/// the lock of the pack every worker appends to) would otherwise leave the
/// drive idle while it compresses, and the cores idle while it writes.
pub struct PackWriter {
    sink: Sink,
    /// Bytes not yet handed to the sink: BLAKE3 is several times faster on
    /// long runs than on blob-sized pieces, so hashing and writing happen
    /// per megabyte.
    pending: Vec<u8>,
    len: u64,
    entries: Vec<PackEntry>,
}

const WRITE_BATCH: usize = 1 << 20;

/// Megabytes a pack's writer thread may be behind its appends: enough to
/// keep a drive busy between two appends, few enough to bound memory.
const WRITES_IN_FLIGHT: usize = 2;

/// What the writer thread gives back: the file, and the hash of what it wrote.
type Written = (Box<dyn Upload>, blake3::Hasher);

/// The writer thread of one pack, and the queue to it.
struct Sink {
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<Result<Written>>>,
}

/// Buffers written, kept for the next megabyte of any pack: a fresh
/// megabyte costs its page faults every time (a first snapshot of 2 GiB
/// writes 75 packs; with buffers kept per pack only, they were a sixth of
/// its page faults). Bounded: two packs being written, each
/// [`WRITES_IN_FLIGHT`] behind, and the one being filled.
static SPARE: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
const SPARE_MAX: usize = 2 * (WRITES_IN_FLIGHT + 1);

/// An empty buffer of at least [`WRITE_BATCH`] bytes.
fn spare_buffer() -> Vec<u8> {
    SPARE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop()
        .unwrap_or_else(|| Vec::with_capacity(WRITE_BATCH))
}

/// Keeps `bytes`' memory for [`spare_buffer`], unless enough are kept or
/// a large blob grew it (kept, it would hold that memory for good).
fn give_back(mut bytes: Vec<u8>) {
    bytes.clear();
    let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
    if spare.len() < SPARE_MAX && (WRITE_BATCH..=2 * WRITE_BATCH).contains(&bytes.capacity()) {
        spare.push(bytes);
    }
}

impl Sink {
    fn start(mut file: Box<dyn Upload>) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(WRITES_IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name("coffre-pack".into())
            .spawn(move || {
                let mut hasher = blake3::Hasher::new();
                for bytes in rx {
                    hasher.update(&bytes);
                    file.write(&bytes)?;
                    give_back(bytes);
                }
                Ok((file, hasher))
            })
            .map_err(|e| Error::io("pack writer thread", e))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues bytes; blocks while the thread is [`WRITES_IN_FLIGHT`] behind.
    fn send(&mut self, bytes: Vec<u8>) -> Result<()> {
        let sent = self.tx.as_ref().map(|tx| tx.send(bytes));
        match sent {
            Some(Ok(())) => Ok(()),
            // The thread stopped at a failed write: its error says why.
            _ => Err(self.stop().err().unwrap_or(Error::Interrupted)),
        }
    }

    /// Waits for every queued byte to be written; the file and its hash.
    fn stop(&mut self) -> Result<Written> {
        self.tx.take();
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(written)) => written,
            // Panicked, or stopped already: no file to give back.
            Some(Err(_)) | None => Err(Error::Interrupted),
        }
    }
}

impl Drop for Sink {
    /// A pack abandoned (a failed snapshot) is discarded by its thread,
    /// which drops the unfinished upload: wait for it, so that nothing
    /// writes to the drive after the run that started it has returned.
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

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
            sink: Sink::start(backend.upload(FileKind::Pack)?)?,
            pending: spare_buffer(),
            len: 0,
            entries: Vec::new(),
        };
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&PACK_VERSION.to_le_bytes());
        w.append(&head)?;
        Ok(w)
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        // Sent before it would grow: a grown buffer is a fresh allocation,
        // and its pages fault in again.
        if self.pending.len() + bytes.len() > self.pending.capacity() {
            self.flush()?;
        }
        self.pending.extend_from_slice(bytes);
        self.len += bytes.len() as u64;
        if self.pending.len() >= WRITE_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let next = spare_buffer();
        let full = std::mem::replace(&mut self.pending, next);
        self.sink.send(full)
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
        let (file, hasher) = self.sink.stop()?;
        let id = PackId(*hasher.finalize().as_bytes());
        // The same id means the same bytes: a pack already there is ours.
        file.commit(&ObjectName::pack(&id), false)?;
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

    /// Blobs that straddle the megabyte writes, one larger than a write,
    /// in two packs one after the other (the second reuses the first's
    /// buffers): every byte lands where the trailer says, and the pack's
    /// id is the hash of its bytes.
    #[test]
    fn blobs_across_and_above_the_write_batches_land_where_the_trailer_says() {
        let store = crate::backend::MemBackend::new();
        let k = keys();
        let sizes = [700 << 10, 700 << 10, 5, (3 << 20) + 17, 300 << 10, 1 << 20];
        for round in 0u8..2 {
            let mut w = PackWriter::new(&store).unwrap();
            let mut sealed_blobs = Vec::new();
            for (i, &len) in sizes.iter().enumerate() {
                let sealed: Vec<u8> = (0..len).map(|j| (j * 31 + i) as u8 ^ round).collect();
                let id = BlobId([i as u8 + 10 * round; 32]);
                w.add(id, BlobKind::Data, &sealed).unwrap();
                sealed_blobs.push(sealed);
            }
            let done = w.finish(&k).unwrap();
            let bytes = store
                .read(FileKind::Pack, &ObjectName::pack(&done.id))
                .unwrap()
                .unwrap();
            assert_eq!(PackId(*blake3::hash(&bytes).as_bytes()), done.id);
            let entries = read_trailer(&k, "p", &bytes).unwrap();
            assert_eq!(entries, done.entries);
            for (e, sealed) in entries.iter().zip(&sealed_blobs) {
                assert_eq!(
                    &bytes[e.offset as usize..(e.offset + e.length) as usize],
                    &sealed[..]
                );
            }
        }
    }

    /// The writer thread's failure reaches the appender (at a later add or
    /// at finish), and nothing is committed.
    #[test]
    fn a_drive_full_while_the_thread_writes_fails_the_pack() {
        use crate::backend::{FaultPlan, FaultyBackend};
        let k = keys();
        let store = FaultyBackend::new(
            crate::backend::MemBackend::new(),
            FaultPlan {
                space: Some(3 << 20),
                ..FaultPlan::default()
            },
        );
        let mut w = PackWriter::new(&store).unwrap();
        // The writer takes any bytes: 64 pieces of 256 KiB pass the 3 MiB left.
        let sealed = vec![7u8; 256 << 10];
        let id = BlobId([1; 32]);
        let mut failed = None;
        for _ in 0..64 {
            if let Err(e) = w.add(id, BlobKind::Data, &sealed) {
                failed = Some(e);
                break;
            }
        }
        let err = match failed {
            Some(e) => e,
            None => w.finish(&k).unwrap_err(),
        };
        assert!(matches!(err, Error::DriveFull { .. }), "{err:?}");
        assert!(store.inner().list(FileKind::Pack).unwrap().is_empty());
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
