//! Typed 256-bit identifiers: one type per kind of object, all made by one macro,
//! printed short (12 hex digits) in messages and in full (64 hex digits) in file names.

use std::collections::HashMap;
use std::fmt;

/// A map keyed by ids, hashed by a fast hasher seeded once per process.
/// The ids are keyed BLAKE3 outputs (or random), already uniform: SipHash,
/// the standard map's default, was 1.9 % of the mount's CPU in a
/// sequential read (every decoded page goes through two such maps; 0.7 %
/// with this one), and the per-process seed still keeps collisions from
/// being planned on a drive.
pub type IdMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Length in bytes of every identifier.
pub const ID_LEN: usize = 32;

/// Defines a typed 32-byte id with hex parsing and short/long display.
macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }
            /// Builds an id from a slice, which must be exactly 32 bytes long.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; ID_LEN]>::try_from(bytes).ok().map(Self)
            }
            /// The full lowercase hex form, as used in file names.
            pub fn to_hex(&self) -> String {
                crate::id::to_hex(&self.0)
            }
            /// The first 12 hex digits, as shown to users.
            pub fn short(&self) -> String {
                let mut s = self.to_hex();
                s.truncate(12);
                s
            }
            /// Parses the full 64-digit lowercase hex form (the only form
            /// written, so an uppercase file name is not taken for an object).
            pub fn from_hex(s: &str) -> Option<Self> {
                if s.bytes().any(|b| b.is_ascii_uppercase()) {
                    return None;
                }
                crate::id::from_hex(s).and_then(|v| Self::from_slice(&v))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.short())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }
    };
}

define_id!(
    /// A blob: the keyed BLAKE3 hash of its kind and plaintext (a file chunk, a tree, a chunk-list piece).
    BlobId
);
define_id!(
    /// A pack file: the plain BLAKE3 hash of the whole file as written.
    PackId
);
define_id!(
    /// A snapshot record: the plain BLAKE3 hash of its file as written.
    SnapshotId
);

/// Lowercase hex of some bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parses lowercase or uppercase hex of even length.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_short_form() {
        let id = BlobId([0xab; 32]);
        assert_eq!(BlobId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(id.short(), "abababababab");
        assert_eq!(BlobId::from_hex("zz"), None);
        assert_eq!(BlobId::from_hex("abab"), None);
    }
}
