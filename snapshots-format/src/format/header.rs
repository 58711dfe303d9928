//! The plaintext repository header, file `config` (FORMAT.md §2): the only
//! plaintext in a repository besides opaque ids, key-derivation parameters
//! and file sizes.

use std::path::Path;

use crate::crypto::REPO_ID_LEN;
use crate::error::{Error, Result};

/// Magic bytes opening the header.
pub const MAGIC: &[u8; 8] = b"COFFRE\x00R";
/// The repository format version this build writes and reads (it reads
/// every earlier one too).
pub const FORMAT_VERSION: u32 = 5;
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
/// Length of the encoded header.
pub const HEADER_LEN: usize = 8 + 4 + REPO_ID_LEN + 32;

/// The decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version of the repository.
    pub version: u32,
    /// Random id of the repository, bound into every object's associated data.
    pub repo_id: [u8; REPO_ID_LEN],
}

impl Header {
    /// A header for a new repository.
    pub fn new() -> Self {
        Self {
            version: FORMAT_VERSION,
            repo_id: crate::crypto::random_array(),
        }
    }

    /// magic (8) | version u32 LE (4) | repo id (16) | BLAKE3 of the previous 28 bytes (32).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.repo_id);
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
        if bytes.len() != HEADER_LEN {
            return Err(Error::corrupt("header", "config", "wrong length"));
        }
        if blake3::hash(&bytes[..HEADER_LEN - 32]).as_bytes() != &bytes[HEADER_LEN - 32..] {
            return Err(Error::corrupt("header", "config", "checksum mismatch"));
        }
        let mut repo_id = [0u8; REPO_ID_LEN];
        repo_id.copy_from_slice(&bytes[12..12 + REPO_ID_LEN]);
        Ok(Self { version, repo_id })
    }
}

impl Default for Header {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let p = Path::new("config");
        let h = Header::new();
        assert_eq!(Header::decode(&h.encode(), p).unwrap(), h);
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
