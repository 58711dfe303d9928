//! What the library's integration tests share.
#![allow(dead_code)]

use snapshots_format::format::keyfile::KdfParams;

/// Key derivation cheap enough for tests.
pub const CHEAP: KdfParams = KdfParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// Deterministic incompressible bytes.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    snapshots_format::backend::conformance::pseudo_random(seed, n)
}
