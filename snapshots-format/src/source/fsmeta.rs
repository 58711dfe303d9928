//! Reading metadata of source entries that `std` does not expose: extended
//! attributes (never following symlinks) and the host name.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Every extended attribute of `path` itself (not of a symlink's target),
/// sorted by name. A filesystem without xattrs yields none.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let c = cpath(path)?;
    let names = match fill(|buf, len| unsafe { libc::llistxattr(c.as_ptr(), buf.cast(), len) }) {
        Ok(n) => n,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        // SAFETY: both strings are NUL-terminated; `fill` passes a buffer of `len` bytes.
        match fill(|buf, len| unsafe {
            libc::lgetxattr(c.as_ptr(), cname.as_ptr(), buf.cast(), len)
        }) {
            Ok(value) => out.push((name.to_vec(), value)),
            // Removed between listing and reading: nothing to keep.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Calls a size-query-then-fill libc function until the buffer is big enough
/// (the value may grow between the two calls). A small buffer is tried
/// first: most files have no xattr at all, and the snapshot asks every file
/// every day, so one call instead of two saves a system call per file.
fn fill(mut call: impl FnMut(*mut u8, usize) -> libc::ssize_t) -> io::Result<Vec<u8>> {
    let mut small = [0u8; 256];
    let got = call(small.as_mut_ptr(), small.len());
    if got >= 0 {
        return Ok(small[..got as usize].to_vec());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ERANGE) {
        return Err(err);
    }
    loop {
        let size = call(std::ptr::null_mut(), 0);
        if size < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; size as usize];
        let got = call(buf.as_mut_ptr(), buf.len());
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(buf);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ERANGE) {
            return Err(err);
        }
    }
}

pub use crate::owner::hostname;

/// Filesystems whose inode numbers may change from one mount (or one
/// listing) to the next: a Windows share mounted with CIFS numbers its
/// files itself unless the server provides ids.
const UNSTABLE_INODE_FS: [i64; 3] = [
    0xFF53_4D42, // CIFS
    0xFE53_4D42, // SMB2
    0x517B,      // SMB (old kernel client)
];

/// Whether `path` is on a network share whose inode numbers cannot be
/// trusted to say a file is the same file. Unknown when `statfs` fails:
/// trusted then.
pub fn is_network_fs(path: &Path) -> bool {
    fs_type(path).is_some_and(|kind| UNSTABLE_INODE_FS.contains(&kind))
}

/// The filesystem type (`statfs`'s magic number) `path` is on, or `None`
/// when it cannot be told.
pub fn fs_type(path: &Path) -> Option<i64> {
    let c = cpath(path).ok()?;
    // SAFETY: an all-zero statfs is valid; the path is NUL-terminated and
    // the struct outlives the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)]
    Some(st.f_type as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short and long values (past the first small buffer) read back whole.
    #[test]
    fn short_and_long_xattrs_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        assert_eq!(read_xattrs(&path).unwrap(), Vec::new());
        let c = cpath(&path).unwrap();
        let long: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        for (name, value) in [(&b"user.court\0"[..], &b"oui"[..]), (b"user.long\0", &long)] {
            // SAFETY: NUL-terminated strings and a live buffer of its length.
            let rc = unsafe {
                libc::lsetxattr(
                    c.as_ptr(),
                    name.as_ptr().cast(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            if rc != 0 {
                // A filesystem without user xattrs: nothing to test here.
                return;
            }
        }
        assert_eq!(
            read_xattrs(&path).unwrap(),
            vec![
                (b"user.court".to_vec(), b"oui".to_vec()),
                (b"user.long".to_vec(), long)
            ]
        );
    }
}
