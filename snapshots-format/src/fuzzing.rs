//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): the
//! decoders of on-disk bytes that are not public otherwise. Not an API.

use crate::owner::Owner;

/// Decodes a lock file's plaintext (what [`crate::repo::lock::holders`]
/// reads after opening the seal): host, pid, command, start time, identity.
pub fn lock_holder(plain: &[u8]) -> Option<(String, u32, String, i64, Option<Owner>)> {
    crate::repo::lock::decode_holder(plain)
}
