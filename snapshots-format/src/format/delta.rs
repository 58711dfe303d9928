//! Delta blobs (FORMAT.md §4.5, format 8): a chunk of a changed file
//! compressed with zstd against the plaintext of an older chunk, its
//! *base*, used as a raw-content prefix.
//!
//! A file rewritten with a few rows changed everywhere (the pharmacy's daily
//! stock export: one row in twenty) keeps no chunk unchanged, so chunking
//! alone stores it whole every day; against the previous version's chunk
//! at the same place, zstd stores little more than the changed rows.
//!
//! A delta's id binds its base, so the extent that names both can never be
//! served a delta made against another base; a base is always a plain data
//! blob, so reading a delta takes one more blob, never a chain.

use crate::crypto::Keys;
use crate::format::blob::{BlobKind, MAX_BLOB_LEN};
use crate::id::BlobId;

/// Length of the base id that starts a delta's payload.
pub const BASE_ID_LEN: usize = 32;

/// A delta is kept only when it is at most this fraction of the chunk
/// compressed alone; above it the chunk is stored whole, and becomes the
/// base of the next days' deltas. A base is always whole, so a chunk
/// changing a little every day costs more each day until it is stored
/// whole again: with a twentieth of a file's rows changed a day, a delta
/// grows by about 5 % of the whole a day, and the average daily cost over
/// a cycle, (1 + 0.05·n(n−1)/2)/n, is lowest for cycles of about 6 days,
/// that is a rebase when the delta passes about a third of the whole.
pub const KEEP_BELOW_SHARE: (usize, usize) = (1, 3);

/// zstd level of deltas. Measured per 64 KiB chunk of the pharmagen stock
/// export against the day before: level 3 gave 62.0 KB in 16 ms, 9 gave
/// 60.7 KB in 75 ms; the gap grows as a delta carries more days of changes
/// (day 3 of pharmagen at 512 MiB: 1.44-1.47x the floor at level 9,
/// 1.48-1.51x at level 3, in two runs each). Deltas of a small file are
/// few, so the time is about 0.1 s a day at 512 MiB.
pub const DELTA_ZSTD_LEVEL: i32 = 9;

/// zstd level of the deltas of a file larger than [`CHEAPER_DELTAS_ABOVE`].
/// At 16 GiB the stock export is 250 MB rewritten every day, and its
/// level-9 deltas were the daily snapshot's largest use of CPU (about
/// 7 s of it); level 3 makes them 0.4-0.7 % larger (one to four days of
/// changes, measured on that export) for a third of the time.
pub const LARGE_FILE_DELTA_ZSTD_LEVEL: i32 = 3;

/// Files above this size get their deltas at
/// [`LARGE_FILE_DELTA_ZSTD_LEVEL`]: level 9 costs seconds a day there,
/// and a fraction of a second below (the export is 8 MB at 512 MiB of
/// pharmacy data, 32 MB at 2 GiB).
pub const CHEAPER_DELTAS_ABOVE: u64 = 64 << 20;

/// The zstd level of the deltas of a file of `size` bytes.
pub fn level_for(size: u64) -> i32 {
    if size > CHEAPER_DELTAS_ABOVE {
        LARGE_FILE_DELTA_ZSTD_LEVEL
    } else {
        DELTA_ZSTD_LEVEL
    }
}

/// The id of the delta of `plaintext` against `base` (FORMAT.md §4.2):
/// the keyed hash of kind 5, the base id, then the plaintext.
pub fn delta_id(keys: &Keys, base: &BlobId, plaintext: &[u8]) -> BlobId {
    BlobId(keys.blob_hash_parts(BlobKind::Delta as u8, &[base.as_bytes(), plaintext]))
}

/// The id of a chunk's blob: whole, or a delta against `base`.
pub fn chunk_id(keys: &Keys, base: Option<&BlobId>, plaintext: &[u8]) -> BlobId {
    match base {
        Some(base) => delta_id(keys, base, plaintext),
        None => crate::format::blob::blob_id(keys, BlobKind::Data, plaintext),
    }
}

/// The framed payload of a delta (after the codec byte): the base id, then
/// one zstd frame of `plaintext` made with `base_plain` as its prefix.
/// `None` when zstd fails (the caller then stores the chunk whole).
pub fn compress(base: &BlobId, base_plain: &[u8], plaintext: &[u8], level: i32) -> Option<Vec<u8>> {
    let bound = zstd::zstd_safe::compress_bound(plaintext.len());
    super::blob::with_scratch(bound, |scratch| {
        let n = if base_plain.starts_with(&ZSTD_DICT_MAGIC) {
            compress_with_prefix(base_plain, plaintext, scratch, level)?
        } else {
            super::blob::with_context(&COMPRESSOR, zstd::zstd_safe::CCtx::try_create, |c| {
                c.compress_using_dict(&mut *scratch, plaintext, base_plain, level)
                    .ok()
            })?
        };
        let mut out = Vec::with_capacity(BASE_ID_LEN + n);
        out.extend_from_slice(base.as_bytes());
        out.extend_from_slice(&scratch[..n]);
        Some(out)
    })
}

/// The first bytes of a trained zstd dictionary (little-endian 0xEC30A437).
/// `ZSTD_compress_usingDict` would parse a base starting with them as such
/// a dictionary, where the decoder takes every base as raw content.
const ZSTD_DICT_MAGIC: [u8; 4] = [0x37, 0xA4, 0x30, 0xEC];

// One context per thread, reused, apart from plain blobs' (level 3 there:
// sharing would resize the tables at every switch). A context made for each chunk allocated
// and cleared its level-9 tables every time, and that set-up was 23 % of a
// daily snapshot's CPU at 4 GiB: the stock export alone is about a thousand
// 64 KiB deltas a day.
thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<zstd::zstd_safe::CCtx<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// `plaintext` compressed into `out` with `base_plain` referenced as a
/// raw-content prefix, on a context of its own (the prefix's lifetime binds
/// the context); the number of bytes written.
fn compress_with_prefix(
    base_plain: &[u8],
    plaintext: &[u8],
    out: &mut [u8],
    level: i32,
) -> Option<usize> {
    let mut c = zstd::zstd_safe::CCtx::try_create()?;
    c.set_parameter(zstd::zstd_safe::CParameter::CompressionLevel(level))
        .ok()?;
    c.ref_prefix(base_plain).ok()?;
    c.compress2(out, plaintext).ok()
}

/// The base a delta payload names; `None` when it is too short.
pub fn base_of(payload: &[u8]) -> Option<BlobId> {
    let id: [u8; BASE_ID_LEN] = payload.get(..BASE_ID_LEN)?.try_into().ok()?;
    Some(BlobId(id))
}

/// Decompresses a delta payload against its base's plaintext. `None` for a
/// frame without a content size, larger than [`MAX_BLOB_LEN`] or than its
/// bytes can regenerate, or that does not decode to exactly that size.
pub fn decompress(payload: &[u8], base_plain: &[u8]) -> Option<Vec<u8>> {
    let frame = payload.get(BASE_ID_LEN..)?;
    let size = zstd::zstd_safe::get_frame_content_size(frame).ok()??;
    // As for plain frames (blob.rs): the size is checked against what the
    // frame's bytes can produce before anything is reserved. A delta may
    // copy all of its base, so the base's length counts too.
    let most = (frame.len() as u64)
        .saturating_mul(super::blob::ZSTD_MAX_RATIO)
        .saturating_add(base_plain.len() as u64);
    if size > MAX_BLOB_LEN as u64 || size > most {
        return None;
    }
    let mut out = Vec::with_capacity(size as usize);
    // The thread's context, as for plain blobs; a base that reads as a
    // trained dictionary goes through a raw-content prefix of its own, as
    // in `compress`.
    let n = if base_plain.starts_with(&ZSTD_DICT_MAGIC) {
        let mut d = zstd::zstd_safe::DCtx::try_create()?;
        d.ref_prefix(base_plain).ok()?;
        d.decompress(&mut out, frame).ok()?
    } else {
        super::blob::with_decompressor(|d| {
            d.decompress_using_dict(&mut out, frame, base_plain).ok()
        })?
    };
    (n == size as usize).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::derive(&MasterKey::from_bytes([3; 32]), [0; 16])
    }

    /// CSV-like rows, `changed` of every 20 rewritten.
    fn rows(day: u32, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            let stock = if i % 20 == 0 {
                i as u32 * 7 + day
            } else {
                i as u32 * 7
            };
            out.extend_from_slice(
                format!(
                    "{i:06};PARACETAMOL {i} MG;CIP{:07};{stock};12.{:02}\n",
                    i * 13,
                    i % 100
                )
                .as_bytes(),
            );
        }
        out
    }

    #[test]
    fn a_chunk_with_scattered_rows_changed_is_small_against_its_old_version() {
        let old = rows(0, 1200);
        let new = rows(1, 1200);
        let base = BlobId([9; 32]);
        let alone = zstd::bulk::compress(&new, super::super::ZSTD_LEVEL).unwrap();
        let delta = compress(&base, &old, &new, DELTA_ZSTD_LEVEL).unwrap();
        assert!(
            delta.len() * 4 < alone.len(),
            "delta {} against alone {}",
            delta.len(),
            alone.len()
        );
        assert_eq!(base_of(&delta), Some(base));
        assert_eq!(decompress(&delta, &old).unwrap(), new);
        // Against another base the frame does not give the chunk back (the
        // id check then refuses it, blob.rs).
        let other: Vec<u8> = old.iter().rev().copied().collect();
        assert_ne!(decompress(&delta, &other), Some(new));
    }

    #[test]
    fn a_base_that_starts_like_a_zstd_dictionary_is_still_raw_content() {
        // The decoder takes every base as raw content; a base opening with
        // the dictionary magic must be compressed that way too.
        let mut old = ZSTD_DICT_MAGIC.to_vec();
        old.extend(rows(0, 600));
        let mut new = ZSTD_DICT_MAGIC.to_vec();
        new.extend(rows(1, 600));
        let base = BlobId([4; 32]);
        let delta = compress(&base, &old, &new, DELTA_ZSTD_LEVEL).unwrap();
        assert_eq!(decompress(&delta, &old).unwrap(), new);
        assert!(delta.len() * 4 < new.len());
    }

    #[test]
    fn a_reused_context_forgets_the_previous_base() {
        // The same thread's context compresses every delta: each frame must
        // stand on its own base alone.
        let (a_old, a_new) = (rows(0, 800), rows(1, 800));
        let (b_old, b_new) = (rows(5, 300), rows(6, 300));
        for _ in 0..3 {
            let a = compress(&BlobId([1; 32]), &a_old, &a_new, DELTA_ZSTD_LEVEL).unwrap();
            let b = compress(&BlobId([2; 32]), &b_old, &b_new, DELTA_ZSTD_LEVEL).unwrap();
            assert_eq!(decompress(&a, &a_old).unwrap(), a_new);
            assert_eq!(decompress(&b, &b_old).unwrap(), b_new);
            let empty = compress(&BlobId([3; 32]), &[], &b_new, DELTA_ZSTD_LEVEL).unwrap();
            assert_eq!(decompress(&empty, &[]).unwrap(), b_new);
        }
    }

    #[test]
    fn the_id_binds_the_base() {
        let k = keys();
        let a = delta_id(&k, &BlobId([1; 32]), b"chunk");
        assert_ne!(a, delta_id(&k, &BlobId([2; 32]), b"chunk"));
        assert_ne!(
            a,
            crate::format::blob::blob_id(&k, BlobKind::Data, b"chunk")
        );
        assert_eq!(a, delta_id(&k, &BlobId([1; 32]), b"chunk"));
    }

    proptest! {
        #[test]
        fn round_trip(base in proptest::collection::vec(any::<u8>(), 0..3000),
                      edit in proptest::collection::vec(any::<u8>(), 0..200),
                      at in any::<usize>()) {
            let mut new = base.clone();
            let at = if new.is_empty() { 0 } else { at % new.len() };
            new.splice(at..at, edit);
            let id = BlobId([7; 32]);
            for level in [DELTA_ZSTD_LEVEL, LARGE_FILE_DELTA_ZSTD_LEVEL] {
                let delta = compress(&id, &base, &new, level).unwrap();
                prop_assert_eq!(&decompress(&delta, &base).unwrap(), &new);
            }
        }

        #[test]
        fn hostile_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..200),
                                        base in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decompress(&payload, &base);
        }
    }
}
