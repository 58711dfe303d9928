//! Blob framing (FORMAT.md §4): a blob is a piece of plaintext (a file chunk,
//! a tree, a chunk-list piece), named by the keyed hash of its kind and
//! plaintext, compressed with zstd when that shrinks it, then sealed.
//!
//! Sealed plaintext: codec u8 (0 = stored, 1 = zstd frame, 2 = zstd frame
//! made with the repository's dictionary, 3 = a delta: base id and a zstd
//! frame made against the base's plaintext, format 8) || payload.
//! Associated data: repository id || 0x02 || kind u8 || blob id.

use std::sync::Arc;

use crate::crypto::{Keys, ObjectKind, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::format::delta;
use crate::format::dictionary::{Dictionary, DICT_BLOB_MAX};
use crate::id::BlobId;

pub use super::ZSTD_LEVEL;
/// Largest plaintext a blob may decompress to; bounds memory on hostile input.
pub const MAX_BLOB_LEN: usize = 512 << 20;

/// The most a zstd frame regenerates per byte: one 128 KiB block per
/// 4 bytes (block header and one RLE byte).
pub(crate) const ZSTD_MAX_RATIO: u64 = 32 * 1024;

const CODEC_STORED: u8 = 0;
const CODEC_ZSTD: u8 = 1;
const CODEC_ZSTD_DICT: u8 = 2;
const CODEC_DELTA: u8 = 3;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BlobKind {
    /// A chunk of a file's contents.
    Data = 1,
    /// A directory listing.
    Tree = 2,
    /// A piece of a long file's chunk list.
    ChunkList = 3,
    /// A piece of a large directory listing (format 3).
    TreePiece = 4,
    /// A chunk of a file's contents stored as a delta against an older
    /// chunk (format 8, [`crate::format::delta`]).
    Delta = 5,
}

impl BlobKind {
    /// Parses the kind byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Data),
            2 => Some(Self::Tree),
            3 => Some(Self::ChunkList),
            4 => Some(Self::TreePiece),
            5 => Some(Self::Delta),
            _ => None,
        }
    }

    /// Name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Data => "data blob",
            Self::Tree => "tree",
            Self::ChunkList => "chunk list",
            Self::TreePiece => "tree piece",
            Self::Delta => "delta blob",
        }
    }

    /// Data blobs go to data packs; the rest to metadata packs, so that
    /// listing and checking trees never reads file contents.
    pub fn is_metadata(self) -> bool {
        !self.is_data()
    }

    /// File contents, whole or as a delta.
    pub fn is_data(self) -> bool {
        matches!(self, Self::Data | Self::Delta)
    }
}

/// The id of a plaintext of some kind.
pub fn blob_id(keys: &Keys, kind: BlobKind, plaintext: &[u8]) -> BlobId {
    BlobId(keys.blob_hash(kind as u8, plaintext))
}

fn aad(kind: BlobKind, id: &BlobId) -> [u8; 33] {
    let mut ctx = [0u8; 33];
    ctx[0] = kind as u8;
    ctx[1..].copy_from_slice(id.as_bytes());
    ctx
}

/// Compresses (when worth it) and seals a blob. Small data blobs use `dict`
/// when given.
pub fn encode(
    keys: &Keys,
    kind: BlobKind,
    id: &BlobId,
    plaintext: &[u8],
    dict: Option<&Dictionary>,
) -> Vec<u8> {
    let dict = dict.filter(|_| kind == BlobKind::Data && plaintext.len() <= DICT_BLOB_MAX);
    let codec = if dict.is_some() {
        CODEC_ZSTD_DICT
    } else {
        CODEC_ZSTD
    };
    with_scratch(
        zstd::zstd_safe::compress_bound(plaintext.len()),
        |scratch| {
            let (codec, payload) = match compress_into(plaintext, scratch, dict) {
                Some(n) if n < plaintext.len() => (codec, &scratch[..n]),
                _ => (CODEC_STORED, plaintext),
            };
            // Sized once: the nonce, the codec byte, the payload, the tag.
            let mut buf = Vec::with_capacity(NONCE_LEN + 1 + payload.len() + TAG_LEN);
            buf.resize(NONCE_LEN, 0);
            buf.push(codec);
            buf.extend_from_slice(payload);
            keys.seal_in_place(ObjectKind::Blob, &aad(kind, id), &mut buf);
            buf
        },
    )
}

/// Scratch buffers up to this size are kept by their thread.
const SCRATCH_KEPT: usize = 4 << 20;

/// Runs `f` on a buffer of `len` bytes: the thread's own, kept between
/// blobs, when `len` is at most [`SCRATCH_KEPT`]. A zeroed buffer of zstd's
/// bound made for each blob faulted its pages in every time (with the
/// contexts' tables, below: 350,000 page faults in a 2 GiB first snapshot,
/// 72,000 after). Not reentrant: `f` must not call it again.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    if len > SCRATCH_KEPT {
        return f(&mut vec![0u8; len]);
    }
    SCRATCH.with(|s| {
        let mut scratch = s.borrow_mut();
        if scratch.len() < len {
            scratch.resize(len, 0);
        }
        f(&mut scratch[..len])
    })
}

/// Seals a delta blob (kind [`BlobKind::Delta`]) whose payload
/// [`delta::compress`] made.
pub fn encode_delta(keys: &Keys, id: &BlobId, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(NONCE_LEN + 1 + payload.len() + TAG_LEN);
    buf.resize(NONCE_LEN, 0);
    buf.push(CODEC_DELTA);
    buf.extend_from_slice(payload);
    keys.seal_in_place(ObjectKind::Blob, &aad(BlobKind::Delta, id), &mut buf);
    buf
}

/// What decoding a blob may need besides its bytes: the repository's
/// dictionary (codec 2), and a delta's base (codec 3), each asked for only
/// when the blob needs it.
pub struct Needs<'a> {
    /// The repository's dictionary, if it has one.
    pub dict: &'a dyn Fn() -> Result<Option<Arc<Dictionary>>>,
    /// The plaintext of a data blob (never a delta: a base is whole).
    pub base: &'a dyn Fn(&BlobId) -> Result<Vec<u8>>,
}

/// Why a blob compressed with a dictionary fails to decode in a repository
/// without one (the dictionary guard of a snapshot looks for it).
pub const NEEDS_MISSING_DICTIONARY: &str =
    "compressed with a dictionary, and the repository has none";

/// Opens, decompresses and verifies a blob: the plaintext's keyed hash must
/// equal `id`, so a blob that decrypts but is not the one asked for is refused.
/// `needs` is asked for the dictionary or a delta's base only when the blob
/// needs them.
///
/// # Errors
/// [`Error::Corrupt`] naming the blob when any check fails; the errors of
/// `needs` when the dictionary or the base cannot be read.
pub fn decode(
    keys: &Keys,
    kind: BlobKind,
    id: &BlobId,
    sealed: &[u8],
    needs: &Needs<'_>,
) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::corrupt(kind.name(), id.short(), why);
    let framed = keys
        .open(ObjectKind::Blob, &aad(kind, id), sealed)
        .map_err(|_| bad("authentication failed"))?;
    let (&codec, payload) = framed.split_first().ok_or_else(|| bad("empty"))?;
    // A delta is only ever a delta, and nothing else is: so a base, read
    // as a data blob, can never itself need a base.
    if (kind == BlobKind::Delta) != (codec == CODEC_DELTA) {
        return Err(bad("codec does not fit the kind of blob"));
    }
    let plain = match codec {
        CODEC_STORED => payload.to_vec(),
        CODEC_ZSTD => decompress(payload, None).ok_or_else(|| bad("zstd frame does not decode"))?,
        CODEC_ZSTD_DICT => {
            let dict = (needs.dict)()?.ok_or_else(|| bad(NEEDS_MISSING_DICTIONARY))?;
            let named = zstd::zstd_safe::get_dict_id_from_frame(payload).map(|n| n.get());
            if named != Some(dict.id()) {
                return Err(bad(
                    "compressed with another dictionary than the repository's",
                ));
            }
            decompress(payload, Some(&dict)).ok_or_else(|| bad("zstd frame does not decode"))?
        }
        CODEC_DELTA => {
            let base = delta::base_of(payload).ok_or_else(|| bad("too short for a delta"))?;
            let base_plain = (needs.base)(&base)?;
            let plain = delta::decompress(payload, &base_plain)
                .ok_or_else(|| bad("delta frame does not decode against its base"))?;
            if delta::delta_id(keys, &base, &plain) != *id {
                return Err(bad("content does not match its id"));
            }
            return Ok(plain);
        }
        _ => return Err(bad("unknown codec")),
    };
    if blob_id(keys, kind, &plain) != *id {
        return Err(bad("content does not match its id"));
    }
    Ok(plain)
}

fn decompress(payload: &[u8], dict: Option<&Dictionary>) -> Option<Vec<u8>> {
    let size = zstd::zstd_safe::get_frame_content_size(payload).ok()??;
    // Reserved before anything is decompressed: a size the frame cannot
    // hold would let a tiny planted frame reserve up to MAX_BLOB_LEN.
    let most = (payload.len() as u64).saturating_mul(ZSTD_MAX_RATIO);
    if size > MAX_BLOB_LEN as u64 || size > most {
        return None;
    }
    let mut out = Vec::with_capacity(size as usize);
    with_decompressor(|d| {
        let n = match dict {
            Some(dict) => d.decompress_using_ddict(&mut out, payload, dict.ddict()),
            None => d.decompress(&mut out, payload),
        };
        // A frame must fill exactly the size its header announced.
        n.ok().filter(|&n| n == size as usize)
    })?;
    Some(out)
}

/// Runs `f` on this thread's decompression context, made on first use;
/// `None` when it cannot be made. Every frame given to it is one-shot, so
/// nothing (dictionary, prefix) carries over from one call to the next.
pub(crate) fn with_decompressor<R>(
    f: impl FnOnce(&mut zstd::zstd_safe::DCtx<'static>) -> Option<R>,
) -> Option<R> {
    with_context(&DECOMPRESSOR, zstd::zstd_safe::DCtx::try_create, f)
}

/// Runs `f` on the thread's context in `slot`, made by `make` on first use;
/// `None` when it cannot be made.
pub(crate) fn with_context<C: 'static, R>(
    slot: &'static std::thread::LocalKey<std::cell::RefCell<Option<C>>>,
    make: fn() -> Option<C>,
    f: impl FnOnce(&mut C) -> Option<R>,
) -> Option<R> {
    slot.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = make();
        }
        f(c.as_mut()?)
    })
}

// zstd contexts per thread, reused: creating a context costs about as
// much as compressing a database page, and pages are most of the chunks.
// Two for compressing, by input size: a context sizes its tables for the
// input, and one that served many small inputs (pages) after a large one
// (a 256 KiB chunk) frees its large tables, to allocate and clear them
// again at the next large input.
thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<zstd::zstd_safe::CCtx<'static>>> =
        const { std::cell::RefCell::new(None) };
    static SMALL_COMPRESSOR: std::cell::RefCell<Option<zstd::zstd_safe::CCtx<'static>>> =
        const { std::cell::RefCell::new(None) };
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// The size of `plaintext` compressed alone as a plain data blob would
/// store it (without dictionary), or its own size when that is smaller.
pub fn compressed_len(plaintext: &[u8]) -> usize {
    with_scratch(zstd::zstd_safe::compress_bound(plaintext.len()), |out| {
        compress_into(plaintext, out, None).map_or(plaintext.len(), |n| n.min(plaintext.len()))
    })
}

/// Compresses into `out` (at least zstd's bound long); `None` when zstd
/// fails, which the caller treats as incompressible.
fn compress_into(plaintext: &[u8], out: &mut [u8], dict: Option<&Dictionary>) -> Option<usize> {
    let slot = if plaintext.len() <= DICT_BLOB_MAX {
        &SMALL_COMPRESSOR
    } else {
        &COMPRESSOR
    };
    with_context(slot, zstd::zstd_safe::CCtx::try_create, |c| {
        match dict {
            Some(dict) => c.compress_using_cdict(out, plaintext, dict.cdict()),
            None => c.compress(out, plaintext, ZSTD_LEVEL),
        }
        .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::derive(&MasterKey::from_bytes([1; 32]), [0; 16])
    }

    fn no_dict() -> Result<Option<Arc<Dictionary>>> {
        Ok(None)
    }

    fn no_base(id: &BlobId) -> Result<Vec<u8>> {
        Err(Error::BlobNotFound(id.short()))
    }

    const NONE: Needs<'static> = Needs {
        dict: &no_dict,
        base: &no_base,
    };

    fn page_dict() -> Arc<Dictionary> {
        static DICT: std::sync::OnceLock<Arc<Dictionary>> = std::sync::OnceLock::new();
        DICT.get_or_init(|| {
            let raw =
                crate::format::dictionary::train(&crate::format::dictionary::tests::page_like(400))
                    .unwrap();
            Arc::new(Dictionary::from_raw(raw).unwrap())
        })
        .clone()
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..4000), repeat in 1usize..4) {
            let k = keys();
            let plain = data.repeat(repeat);
            let id = blob_id(&k, BlobKind::Data, &plain);
            let sealed = encode(&k, BlobKind::Data, &id, &plain, None);
            prop_assert_eq!(decode(&k, BlobKind::Data, &id, &sealed, &NONE).unwrap(), plain.clone());
            let dict = page_dict();
            let sealed = encode(&k, BlobKind::Data, &id, &plain, Some(&dict));
            prop_assert_eq!(decode(&k, BlobKind::Data, &id, &sealed, &Needs { dict: &|| Ok(Some(dict.clone())), base: &no_base }).unwrap(), plain);
        }

        #[test]
        fn flipped_bit_rejected(data in proptest::collection::vec(any::<u8>(), 1..500), bit in any::<usize>()) {
            let k = keys();
            let id = blob_id(&k, BlobKind::Tree, &data);
            let mut sealed = encode(&k, BlobKind::Tree, &id, &data, None);
            let bit = bit % (sealed.len() * 8);
            sealed[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode(&k, BlobKind::Tree, &id, &sealed, &NONE).is_err());
        }
    }

    #[test]
    fn compressible_data_shrinks_and_wrong_id_or_kind_is_refused() {
        let k = keys();
        let plain = vec![b'a'; 100_000];
        let id = blob_id(&k, BlobKind::Data, &plain);
        let sealed = encode(&k, BlobKind::Data, &id, &plain, None);
        assert!(sealed.len() < 1000);
        assert!(decode(&k, BlobKind::Tree, &id, &sealed, &NONE).is_err());
        let other = blob_id(&k, BlobKind::Data, b"other");
        assert!(decode(&k, BlobKind::Data, &other, &sealed, &NONE).is_err());
    }

    #[test]
    fn a_delta_reads_through_its_base_and_never_passes_for_another_kind() {
        let k = keys();
        let old = b"a row;another row;".repeat(2000);
        let mut new = old.clone();
        new[5000] = b'X';
        let base = blob_id(&k, BlobKind::Data, &old);
        let id = delta::delta_id(&k, &base, &new);
        let payload = delta::compress(&base, &old, &new, delta::DELTA_ZSTD_LEVEL).unwrap();
        let sealed = encode_delta(&k, &id, &payload);
        assert!(sealed.len() < 200, "{}", sealed.len());
        let base_of = |b: &BlobId| {
            assert_eq!(*b, base);
            Ok(old.clone())
        };
        let needs = Needs {
            dict: &no_dict,
            base: &base_of,
        };
        assert_eq!(
            decode(&k, BlobKind::Delta, &id, &sealed, &needs).unwrap(),
            new
        );
        // Without its base it is unreadable, and says why.
        let err = decode(&k, BlobKind::Delta, &id, &sealed, &NONE).unwrap_err();
        assert!(err.to_string().contains("missing from the index"), "{err}");
        // A plain frame sealed as a delta, and a delta sealed as data, are refused.
        let plain = encode(&k, BlobKind::Delta, &id, &new, None);
        assert!(decode(&k, BlobKind::Delta, &id, &plain, &needs).is_err());
        let mut framed = vec![0u8; NONCE_LEN];
        framed.push(CODEC_DELTA);
        framed.extend_from_slice(&payload);
        let data_id = blob_id(&k, BlobKind::Data, &new);
        k.seal_in_place(
            ObjectKind::Blob,
            &aad(BlobKind::Data, &data_id),
            &mut framed,
        );
        let err = decode(&k, BlobKind::Data, &data_id, &framed, &needs).unwrap_err();
        assert!(err.to_string().contains("codec does not fit"), "{err}");
    }

    #[test]
    fn dictionary_shrinks_pages_and_is_required_to_read_them() {
        let k = keys();
        let dict = page_dict();
        let page = crate::format::dictionary::tests::page_like(1000)
            .pop()
            .unwrap();
        let id = blob_id(&k, BlobKind::Data, &page);
        let plain = encode(&k, BlobKind::Data, &id, &page, None);
        let with = encode(&k, BlobKind::Data, &id, &page, Some(&dict));
        assert!(
            with.len() < plain.len(),
            "{} !< {}",
            with.len(),
            plain.len()
        );
        let err = decode(&k, BlobKind::Data, &id, &with, &NONE).unwrap_err();
        assert!(err.to_string().contains("dictionary"), "{err}");
        // Another dictionary (a different id) is refused by name, not misread.
        let other_raw = crate::format::dictionary::train(
            &(0..300)
                .map(|i| format!("other {i} ").repeat(100).into_bytes())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let other = Arc::new(Dictionary::from_raw(other_raw).unwrap());
        assert_ne!(other.id(), dict.id());
        let err = decode(
            &k,
            BlobKind::Data,
            &id,
            &with,
            &Needs {
                dict: &|| Ok(Some(other.clone())),
                base: &no_base,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("another dictionary"), "{err}");
        // Trees and large chunks never use it.
        let tree_id = blob_id(&k, BlobKind::Tree, &page);
        let tree = encode(&k, BlobKind::Tree, &tree_id, &page, Some(&dict));
        assert!(decode(&k, BlobKind::Tree, &tree_id, &tree, &NONE).is_ok());
    }
}
