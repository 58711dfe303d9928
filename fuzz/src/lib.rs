//! Fuzz targets for every decoder of on-disk bytes in snapshots-format:
//! the drivers in [`drivers`] (shared with the normal test suite), the
//! lock file decoder reached through the `fuzzing` feature, and the seed
//! encoders in [`seeds`].

pub mod drivers;
pub mod seeds;

pub use drivers::*;

/// A lock file's plaintext (what `lock::holders` reads once the seal opens).
pub fn lock(data: &[u8]) -> bool {
    snapshots_format::fuzzing::lock_holder(data).is_some()
}
