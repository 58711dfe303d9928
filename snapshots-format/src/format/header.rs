//! The plaintext repository header, file `config` (FORMAT.md §2): the only
//! plaintext in a repository besides opaque ids, key-derivation parameters
//! and file sizes.

use std::path::Path;

use crate::crypto::{KEY_CHECK_LEN, REPO_ID_LEN};
use crate::error::{Error, Result};

/// Magic bytes opening the header.
pub const MAGIC: &[u8; 8] = b"COFFRE\x00R";
/// The repository format version this build writes and reads (it reads
/// every earlier one too).
pub const FORMAT_VERSION: u32 = 8;
/// The first format whose repository may hold a compression dictionary and
/// blobs compressed with it (FORMAT.md §17); a format-1 repository moves to
/// it when it gets its dictionary.
pub const DICTIONARY_VERSION: u32 = 2;
/// The first format whose large directories may be stored as tree pieces
/// (FORMAT.md §7.3); an older repository moves to it when a snapshot first
/// writes one.
pub const SPLIT_TREE_VERSION: u32 = 3;
/// The first format whose repository lists its packs in index files
/// (FORMAT.md §6) instead of an SQLite database on the drive; an older
/// repository moves to it at its first write by this version.
pub const INDEX_FILES_VERSION: u32 = 4;
/// The first format whose snapshot records may be version 2 (several
/// sources, exclude rules, hook results; FORMAT.md §8.1); a repository
/// moves to it with its first snapshot by this version.
pub const RECORD_V2_VERSION: u32 = 5;
/// The first format whose header carries the master key's check value
/// (FORMAT.md §2): a repository moves to it at its first write by this
/// version.
pub const KEY_CHECK_VERSION: u32 = 6;
/// The first format whose key-file labels may bind the key file's body
/// (label version 2, FORMAT.md §3), so that `check` detects damage to a key
/// file nobody here can open: a repository moves to it at its first write
/// by this version, which binds the labels of its key files.
pub const KEY_BINDING_VERSION: u32 = 7;
/// The first format with delta blobs (FORMAT.md §4.5): a snapshot raises
/// the repository to it before it writes its first delta.
pub const DELTA_VERSION: u32 = 8;
/// Length of the encoded header before format 6.
pub const HEADER_LEN: usize = 8 + 4 + REPO_ID_LEN + 32;
/// Length of the encoded header from format 6 on.
pub const HEADER_LEN_V6: usize = HEADER_LEN + KEY_CHECK_LEN;

/// The decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version of the repository.
    pub version: u32,
    /// Random id of the repository, bound into every object's associated data.
    pub repo_id: [u8; REPO_ID_LEN],
    /// The master key's check value ([`crate::crypto::MasterKey::check_value`]),
    /// from format 6 on.
    pub key_check: Option<[u8; KEY_CHECK_LEN]>,
}

impl Header {
    /// A header for a new repository whose master key is `master`.
    pub fn new(master: &crate::crypto::MasterKey) -> Self {
        let repo_id = crate::crypto::random_array();
        Self {
            version: FORMAT_VERSION,
            repo_id,
            key_check: Some(master.check_value(&repo_id)),
        }
    }

    /// magic (8) | version u32 LE (4) | repo id (16) | key check (16, from
    /// format 6 on) | BLAKE3 of the bytes before it (32). A header of format
    /// 6 or later without a key check is written without one, and then
    /// refused when read: callers set it when they raise the version.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN_V6);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.repo_id);
        if self.version >= KEY_CHECK_VERSION {
            if let Some(check) = &self.key_check {
                out.extend_from_slice(check);
            }
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    /// Decodes and checks a header read from `path`.
    ///
    /// # Errors
    /// [`Error::NotARepository`] for a foreign file, [`Error::UnsupportedVersion`]
    /// for a newer format, [`Error::Corrupt`] for a damaged header.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Self> {
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            // A file of a header's exact length whose magic is off by a
            // few bits is a damaged header, not some other file.
            let near = bytes.len() >= 8
                && bytes[..8]
                    .iter()
                    .zip(MAGIC)
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum::<u32>()
                    <= 8;
            if near && (bytes.len() == HEADER_LEN || bytes.len() == HEADER_LEN_V6) {
                return Err(Error::corrupt(
                    "header",
                    "config",
                    "its magic bytes are damaged",
                ));
            }
            return Err(Error::NotARepository(path.to_path_buf()));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        // The version is read before the checksum so that a future header
        // layout is refused as "newer", not as "damaged".
        if version > FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "repository format",
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version == 0 {
            return Err(Error::corrupt(
                "header",
                "config",
                "version 0 is not a valid version",
            ));
        }
        let len = if version >= KEY_CHECK_VERSION {
            HEADER_LEN_V6
        } else {
            HEADER_LEN
        };
        if bytes.len() != len {
            return Err(Error::corrupt("header", "config", "wrong length"));
        }
        if blake3::hash(&bytes[..len - 32]).as_bytes() != &bytes[len - 32..] {
            return Err(Error::corrupt("header", "config", "checksum mismatch"));
        }
        let mut repo_id = [0u8; REPO_ID_LEN];
        repo_id.copy_from_slice(&bytes[12..12 + REPO_ID_LEN]);
        let key_check = (version >= KEY_CHECK_VERSION).then(|| {
            let mut check = [0u8; KEY_CHECK_LEN];
            check.copy_from_slice(&bytes[12 + REPO_ID_LEN..12 + REPO_ID_LEN + KEY_CHECK_LEN]);
            check
        });
        Ok(Self {
            version,
            repo_id,
            key_check,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let p = Path::new("config");
        let h = Header::new(&crate::crypto::MasterKey::generate());
        assert_eq!(Header::decode(&h.encode(), p).unwrap(), h);
        let v5 = Header {
            version: 5,
            key_check: None,
            ..h
        };
        assert_eq!(v5.encode().len(), HEADER_LEN);
        assert_eq!(Header::decode(&v5.encode(), p).unwrap(), v5);
        // A format-6 header cut to the old length is damaged, not old.
        let mut cut = h.encode();
        cut.truncate(HEADER_LEN);
        assert!(matches!(
            Header::decode(&cut, p),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            Header::decode(b"hello world!", p),
            Err(Error::NotARepository(_))
        ));
        let mut newer = h;
        newer.version = FORMAT_VERSION + 1;
        assert!(matches!(
            Header::decode(&newer.encode(), p),
            Err(Error::UnsupportedVersion { found, .. }) if found == FORMAT_VERSION + 1
        ));
        let mut damaged = h.encode();
        damaged[20] ^= 1;
        assert!(matches!(
            Header::decode(&damaged, p),
            Err(Error::Corrupt { .. })
        ));
    }
}
