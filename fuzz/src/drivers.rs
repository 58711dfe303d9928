//! The drivers of the fuzz targets in `fuzz_targets/`, shared with the
//! regression test `snapshots-format/tests/fuzz_regressions.rs` (which
//! includes this file): one function per
//! decoder of on-disk bytes, each feeding the input to the decoder both as
//! the attacker without the key sees it (sealed bytes, which must be
//! refused) and, where a seal protects it, as plaintext sealed here under a
//! fixed test key (an attacker holding the key, or a bug on our side).
//!
//! Each driver may panic only on a real finding: a decoder that panics,
//! or a round trip that does not hold (decode, encode, decode must give
//! the same value).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use snapshots_format::crypto::{Keys, MasterKey, ObjectKind};
use snapshots_format::format::blob::{self, BlobKind};
use snapshots_format::format::dictionary::{self, Dictionary};
use snapshots_format::format::{
    content, header, index_file, journal, keyfile, pack, policy, snapshot, tree,
};
use snapshots_format::id::{BlobId, SnapshotId};

/// The fixed test key everything here is sealed under.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys::derive(&MasterKey::from_bytes([7; 32]), [9; 16]))
}

/// A dictionary trained once on page-like samples, for dictionary blobs.
pub fn dict() -> Option<Arc<Dictionary>> {
    static DICT: OnceLock<Option<Arc<Dictionary>>> = OnceLock::new();
    DICT.get_or_init(|| {
        let samples: Vec<Vec<u8>> = (0..300u32)
            .map(|i| {
                let mut page = Vec::with_capacity(4096);
                while page.len() < 4096 {
                    page.extend_from_slice(
                        format!(
                            "row {i:05} name=client-{} total={}.{:02};",
                            i % 37,
                            i * 7,
                            i % 100
                        )
                        .as_bytes(),
                    );
                }
                page
            })
            .collect();
        let raw = dictionary::train(&samples)?;
        Dictionary::from_raw(raw).map(Arc::new)
    })
    .clone()
}

/// Splits off the first byte as a mode selector.
fn mode(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(&m, rest)| (m, rest))
}

/// The repository header (`config`), plaintext with a checksum.
pub fn header(data: &[u8]) -> bool {
    header::Header::decode(data, Path::new("config")).is_ok()
}

/// A key file: its clear layout, then its label sealed under the repository
/// keys. Mode byte odd: `data` is the label plaintext, sealed into a valid
/// key file frame.
pub fn keyfile(data: &[u8]) -> bool {
    let Some((m, rest)) = mode(data) else {
        return false;
    };
    let name = "0123456789abcdef";
    let bytes = if m & 1 == 0 {
        rest.to_vec()
    } else {
        let label = keys().seal(ObjectKind::KeyLabel, name.as_bytes(), rest);
        let mut b = keyfile_frame();
        b.extend_from_slice(&(label.len() as u32).to_le_bytes());
        b.extend_from_slice(&label);
        b
    };
    let Ok(kf) = keyfile::KeyFile::decode(&bytes, name) else {
        return false;
    };
    // The layout is fixed: what decodes must encode to the same bytes.
    assert_eq!(kf.encode(), bytes, "key file does not round-trip");
    matches!(kf.label(keys(), name), Ok(Some(_)))
}

/// The clear part of a version-2 key file (everything before the label
/// length): magic, version, Argon2id with cheap parameters, salt, and a
/// sealed master key of the right length (never opened here).
pub fn keyfile_frame() -> Vec<u8> {
    let mut b = keyfile::MAGIC.to_vec();
    b.extend_from_slice(&2u32.to_le_bytes());
    b.push(1);
    for v in [64u32, 1, 1] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&[0x5a; 16]);
    b.extend_from_slice(&[0xa5; 28 + 32]);
    b
}

/// A pack trailer. Mode 0: plaintext trailer, the first 8 bytes the end of
/// the blob area; mode 1: a whole pack file as found on the drive; else
/// the trailer plaintext sealed into a well-formed pack.
pub fn pack_trailer(data: &[u8]) -> bool {
    let Some((m, rest)) = mode(data) else {
        return false;
    };
    match m % 3 {
        0 => {
            let Some((end, trailer)) = rest.split_first_chunk::<8>() else {
                return false;
            };
            let end = u64::from_le_bytes(*end);
            let Ok(entries) = pack::decode_trailer(trailer, end) else {
                return false;
            };
            let again = pack::decode_trailer(&pack::encode_trailer(&entries), end);
            assert_eq!(again.as_ref(), Ok(&entries), "trailer does not round-trip");
            true
        }
        1 => pack::read_trailer(keys(), "p", rest).is_ok(),
        _ => pack::read_trailer(keys(), "p", &pack_with_trailer(rest, 64)).is_ok(),
    }
}

/// A pack file of `area` bytes of blob area whose trailer is `plain`, sealed.
pub fn pack_with_trailer(plain: &[u8], area: usize) -> Vec<u8> {
    let sealed = keys().seal(ObjectKind::PackTrailer, &[], plain);
    let mut b = pack::MAGIC.to_vec();
    b.extend_from_slice(&1u32.to_le_bytes());
    b.resize(pack::HEADER_LEN as usize + area, 0);
    b.extend_from_slice(&sealed);
    b.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    b.extend_from_slice(pack::MAGIC);
    b
}

/// The blob kinds, indexed by a mode byte.
fn blob_kind(m: u8) -> BlobKind {
    let kinds: Vec<BlobKind> = (0..=255u8).filter_map(BlobKind::from_u8).collect();
    kinds
        .get(usize::from(m & 0x3f) % kinds.len().max(1))
        .copied()
        .unwrap_or(BlobKind::Data)
}

/// A blob's framing (codec byte, then stored bytes or a zstd frame, maybe
/// with the dictionary). Mode bit 0x40: `data` is sealed bytes as found in
/// a pack, under the id of the plaintext that follows a codec byte 0;
/// else it is the framed plaintext, sealed here under the id of its
/// decompressed bytes... which the driver does not know: the id is that of
/// the frame's bytes after the codec byte, right for stored frames. Bit
/// 0x80: the repository has a dictionary.
pub fn blob(data: &[u8]) -> bool {
    let Some((m, rest)) = mode(data) else {
        return false;
    };
    let kind = blob_kind(m);
    let dict = if m & 0x80 != 0 { dict() } else { None };
    let get_dict = move || Ok(dict.clone());
    // Any base a fuzzed delta names reads as these bytes.
    let get_base = |_: &BlobId| Ok(b"base of a fuzzed delta; ".repeat(40));
    let get_dict = blob::Needs {
        dict: &get_dict,
        base: &get_base,
    };
    if m & 0x40 != 0 {
        let Some((id, sealed)) = rest.split_first_chunk::<32>() else {
            return false;
        };
        return blob::decode(keys(), kind, &BlobId(*id), sealed, &get_dict).is_ok();
    }
    let (id, framed) = match rest.split_first_chunk::<32>() {
        Some((id, framed)) => (BlobId(*id), framed),
        None => (BlobId([0; 32]), rest),
    };
    let mut ctx = vec![kind as u8];
    ctx.extend_from_slice(id.as_bytes());
    let sealed = keys().seal(ObjectKind::Blob, &ctx, framed);
    let Ok(plain) = blob::decode(keys(), kind, &id, &sealed, &get_dict) else {
        return false;
    };
    if kind != BlobKind::Delta {
        assert_eq!(blob::blob_id(keys(), kind, &plain), id);
    }
    true
}

/// A tree blob or tree piece list, then joining pieces.
pub fn tree(data: &[u8]) -> bool {
    match tree::decode_listing(data) {
        Ok(tree::Listing::Nodes(t)) => {
            let again = tree::Tree::decode(&t.encode());
            assert_eq!(again.as_ref(), Ok(&t), "tree does not round-trip");
            let half = t.nodes.len() / 2;
            let pieces = [
                tree::Tree {
                    nodes: t.nodes[..half].to_vec(),
                },
                tree::Tree {
                    nodes: t.nodes[half..].to_vec(),
                },
            ];
            let _ = tree::join_pieces(pieces);
            let _ = t.encode_stored(keys());
            true
        }
        Ok(tree::Listing::Pieces(ids)) => {
            let again = tree::decode_listing(&tree::encode_piece_list(&ids));
            assert_eq!(again, Ok(tree::Listing::Pieces(ids)));
            true
        }
        Err(_) => false,
    }
}

/// A chunk-list piece, then what readers do with one.
pub fn content(data: &[u8]) -> bool {
    let Ok(extents) = content::decode_piece(data) else {
        return false;
    };
    let again = content::decode_piece(&content::encode_piece(&extents));
    assert_eq!(
        again.as_ref(),
        Ok(&extents),
        "chunk list does not round-trip"
    );
    let _ = content::total_len(&extents);
    let _ = content::split_pieces(&extents);
    true
}

/// A snapshot record. Mode 0: plaintext record; mode 1: a snapshot file
/// as found on the drive (named by its hash, so that only the seal
/// refuses it); else the record sealed into a snapshot file.
pub fn snapshot(data: &[u8]) -> bool {
    let Some((m, rest)) = mode(data) else {
        return false;
    };
    let file = match m % 3 {
        0 => {
            let Ok(s) = snapshot::Snapshot::decode(rest) else {
                return false;
            };
            let again = snapshot::Snapshot::decode(&s.encode());
            assert_eq!(again.as_ref(), Ok(&s), "record does not round-trip");
            // What listings do with any record.
            let _ = (s.source_text(), s.utc(), s.local(), s.summary.files());
            return true;
        }
        1 => rest.to_vec(),
        _ => {
            let mut f = snapshot::MAGIC.to_vec();
            f.extend_from_slice(&keys().seal(ObjectKind::Snapshot, &[], rest));
            f
        }
    };
    let id = SnapshotId(*blake3::hash(&file).as_bytes());
    let Ok(s) = snapshot::Snapshot::open(keys(), &id, &file) else {
        return false;
    };
    let _ = (s.source_text(), s.local(), s.summary.files());
    true
}

/// An index file. Mode odd: a file as found on the drive, named by its
/// hash; even: the plaintext sealed into an index file.
pub fn index_file(data: &[u8]) -> bool {
    let Some((m, rest)) = mode(data) else {
        return false;
    };
    let file = if m & 1 == 1 {
        rest.to_vec()
    } else {
        [
            &index_file::MAGIC[..],
            &keys().seal(ObjectKind::IndexFile, &[], rest),
        ]
        .concat()
    };
    let name = *blake3::hash(&file).as_bytes();
    let Ok(packs) = index_file::decode(keys(), &name, &file) else {
        return false;
    };
    let (name2, file2) = index_file::encode(keys(), &packs);
    let again = index_file::decode(keys(), &name2, &file2);
    assert_eq!(
        again.ok().as_ref(),
        Some(&packs),
        "index does not round-trip"
    );
    let _ = index_file::groups(&packs);
    true
}

/// The retention policy plaintext.
pub fn policy(data: &[u8]) -> bool {
    let Ok(p) = policy::Policy::decode(data) else {
        return false;
    };
    assert_eq!(policy::Policy::decode(&p.encode()), Ok(p.clone()));
    let _ = (p.describe(), p.is_empty());
    true
}

/// A journal entry plaintext (version byte, JSON).
pub fn journal(data: &[u8]) -> bool {
    let Ok(e) = journal::Entry::decode(data) else {
        return false;
    };
    let _ = (e.encode(), e.kind.name());
    true
}

/// The dictionary file's plaintext (version byte, raw zstd dictionary):
/// what loads must compress and decompress a blob.
pub fn dictionary(data: &[u8]) -> bool {
    let Some((1, raw)) = data.split_first().map(|(&v, r)| (v, r)) else {
        return false;
    };
    let Some(d) = Dictionary::from_raw(raw.to_vec()) else {
        return false;
    };
    let d = Arc::new(d);
    let plain = b"row 00001 name=client-1 total=7.01;".repeat(20);
    let id = blob::blob_id(keys(), BlobKind::Data, &plain);
    let sealed = blob::encode(keys(), BlobKind::Data, &id, &plain, Some(&d));
    let needs = blob::Needs {
        dict: &|| Ok(Some(d.clone())),
        base: &|b| Err(snapshots_format::error::Error::BlobNotFound(b.short())),
    };
    let got = blob::decode(keys(), BlobKind::Data, &id, &sealed, &needs);
    assert_eq!(
        got.ok(),
        Some(plain),
        "dictionary does not round-trip a blob"
    );
    true
}

/// Every kind of sealed object: bytes opened under the key must be
/// refused unless sealed under it, and a sealed object opens as one kind
/// and context only (the associated data binds them). Random bytes never
/// open; a seed sealed as one kind must open as that kind alone.
pub fn sealed(data: &[u8]) -> bool {
    use ObjectKind::*;
    let Some((m, rest)) = mode(data) else {
        return false;
    };
    let ctx_len = usize::from(m & 0x3f).min(rest.len());
    let (ctx, sealed) = rest.split_at(ctx_len);
    let opened = [
        MasterKey,
        Blob,
        PackTrailer,
        Snapshot,
        Location,
        Lock,
        Policy,
        Dictionary,
        IndexFile,
        KeyLabel,
        Journal,
    ]
    .into_iter()
    .filter(|&kind| keys().open(kind, ctx, sealed).is_ok())
    .count();
    let unwrapped =
        snapshots_format::crypto::unwrap_master_key(&[7; 32], ctx, sealed).is_ok() as usize;
    assert!(
        opened + unwrapped <= 1,
        "one sealed object opened as several kinds"
    );
    opened + unwrapped == 1
}
