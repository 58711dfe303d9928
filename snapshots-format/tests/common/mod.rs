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

/// Sets an extended attribute on `path` (not following a symbolic link);
/// false where the filesystem refuses it.
pub fn set_xattr(path: &std::path::Path, name: &str, value: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: NUL-terminated strings, value valid for its length.
    unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        ) == 0
    }
}
