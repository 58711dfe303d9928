//! Reaching a source's entries by directory descriptors, never by path.
//!
//! A local user who owns a folder inside the backed-up tree can swap it for
//! a symlink (to `/etc`, say) right after the walk listed it. A walk by
//! path would then follow the link and store root-only files from outside
//! the source. So every folder is opened once, relative to its parent's
//! open descriptor, with `O_NOFOLLOW`, and checked to be the very folder
//! that was listed (same device and inode); its entries are then looked up,
//! opened and read relative to it. Parents stay open while their children
//! are walked, so at most one descriptor per level is held.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{self as rfs, Mode, OFlags};

use crate::format::tree::MAX_DEPTH;
use crate::source::fsmeta;

/// An open folder of a source.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// Its path, for messages and path-based rules (excludes) only.
    path: PathBuf,
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

fn replaced() -> io::Error {
    io::Error::other("replaced while being read")
}

impl Dir {
    /// Opens a source's root folder. Its path was given by the user, so a
    /// symlink on the way to it is followed; nothing below it will be.
    ///
    /// # Errors
    /// I/O errors, `ENOTDIR` when it is not a folder.
    pub fn open_root(path: &Path) -> io::Result<(Dir, Metadata)> {
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(errno)?;
        let dir = Dir {
            fd,
            path: path.to_path_buf(),
        };
        let meta = dir.metadata()?;
        Ok((dir, meta))
    }

    /// The folder's path (for messages; never used to reach its entries).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of an entry (for messages).
    pub fn child_path(&self, name: &[u8]) -> PathBuf {
        self.path.join(OsStr::from_bytes(name))
    }

    /// The folder's own metadata.
    ///
    /// # Errors
    /// I/O errors.
    pub fn metadata(&self) -> io::Result<Metadata> {
        File::from(self.fd.try_clone()?).metadata()
    }

    /// The names of its entries, in no particular order.
    ///
    /// # Errors
    /// I/O errors reading the folder.
    pub fn names(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut dir = rfs::Dir::read_from(&self.fd).map_err(errno)?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(errno)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        Ok(names)
    }

    /// An entry's own metadata (a symlink's, not its target's). The entry
    /// is opened with `O_PATH | O_NOFOLLOW`, which reads nothing and
    /// follows nothing, and described through that descriptor.
    ///
    /// # Errors
    /// `NotFound` when it vanished; other I/O errors.
    pub fn stat(&self, name: &[u8]) -> io::Result<Metadata> {
        let fd = rfs::openat(
            &self.fd,
            OsStr::from_bytes(name),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        File::from(fd).metadata()
    }

    /// Whether an entry of this name exists (of any kind).
    pub fn contains(&self, name: &[u8]) -> bool {
        self.stat(name).is_ok()
    }

    /// Opens a sub-folder, refusing anything but the folder `seen`
    /// describes: a symlink swapped in fails to open (`O_NOFOLLOW`),
    /// another folder swapped in has another inode.
    ///
    /// # Errors
    /// I/O errors; "replaced while being read".
    pub fn open_dir(&self, name: &[u8], seen: &Metadata) -> io::Result<(Dir, Metadata)> {
        let fd = rfs::openat(
            &self.fd,
            OsStr::from_bytes(name),
            OFlags::RDONLY
                | OFlags::DIRECTORY
                | OFlags::NOFOLLOW
                | OFlags::CLOEXEC
                | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => replaced(),
            e => errno(e),
        })?;
        let dir = Dir {
            fd,
            path: self.child_path(name),
        };
        let meta = dir.metadata()?;
        if !same_inode(&meta, seen) {
            return Err(replaced());
        }
        Ok((dir, meta))
    }

    /// Opens a regular file for reading: never a symlink swapped in
    /// (`O_NOFOLLOW`), never blocking on a fifo swapped in, without
    /// touching its access time where allowed, and only if it is the file
    /// `seen` describes.
    ///
    /// # Errors
    /// I/O errors; "replaced while being read".
    pub fn open_file(&self, name: &[u8], seen: &Metadata) -> io::Result<File> {
        let file = self.open_any_file(name)?;
        let now = file.metadata()?;
        if !now.is_file() || !same_inode(&now, seen) {
            return Err(replaced());
        }
        Ok(file)
    }

    fn open_any_file(&self, name: &[u8]) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let open = |flags| rfs::openat(&self.fd, OsStr::from_bytes(name), flags, Mode::empty());
        let fd = match open(flags | OFlags::NOATIME) {
            // O_NOATIME is for the file's owner (or root) only.
            Err(rustix::io::Errno::PERM) => open(flags),
            other => other,
        }
        .map_err(|e| match e {
            rustix::io::Errno::LOOP => replaced(),
            e => errno(e),
        })?;
        Ok(File::from(fd))
    }

    /// Opens the regular file at `rel` below this folder, one component at
    /// a time, following no symlink on the way.
    ///
    /// # Errors
    /// I/O errors, "replaced while being read" for a symlink on the way.
    pub fn open_file_beneath(&self, rel: &[u8]) -> io::Result<File> {
        let parts: Vec<&[u8]> = rel
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty())
            .collect();
        let Some((last, folders)) = parts.split_last() else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        let mut held: Option<Dir> = None;
        for part in folders {
            let here = held.as_ref().unwrap_or(self);
            let seen = here.stat(part)?;
            held = Some(here.open_dir(part, &seen)?.0);
        }
        let here = held.as_ref().unwrap_or(self);
        let file = here.open_any_file(last)?;
        if !file.metadata()?.is_file() {
            return Err(replaced());
        }
        Ok(file)
    }

    /// A symlink's target, as recorded in it.
    ///
    /// # Errors
    /// I/O errors.
    pub fn read_link(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        let target =
            rfs::readlinkat(&self.fd, OsStr::from_bytes(name), Vec::new()).map_err(errno)?;
        Ok(target.into_bytes())
    }

    /// An entry's extended attributes (never a symlink's target's). Linux
    /// has no `*xattrat` call before 6.13, so the entry is named through
    /// this folder's descriptor (`/proc/self/fd/N/NAME`): the folder is the
    /// one held open, and the last component is not followed.
    ///
    /// # Errors
    /// I/O errors.
    pub fn xattrs(&self, name: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let path = if proc_fd_available() {
            let mut p = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
            p.push(OsStr::from_bytes(name));
            p
        } else {
            self.child_path(name)
        };
        fsmeta::read_xattrs(&path)
    }

    /// The folder's own extended attributes.
    ///
    /// # Errors
    /// I/O errors.
    pub fn own_xattrs(&self) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if proc_fd_available() {
            fsmeta::read_xattrs(Path::new(&format!(
                "/proc/self/fd/{}",
                self.fd.as_fd().as_raw_fd()
            )))
        } else {
            fsmeta::read_xattrs(&self.path)
        }
    }
}

/// Whether `/proc/self/fd` can name descriptors (not in some sandboxes;
/// then entries are named by path, as before this module existed).
fn proc_fd_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

fn same_inode(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Counts the regular files and their bytes under `source`, for a progress
/// total; unreadable parts are silently left out.
pub fn estimate(source: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for_each_file(source, usize::MAX, |_, meta| {
        files += 1;
        bytes += meta.len();
    });
    (files, bytes)
}

/// Calls `f` with the path inside `source` (`a/b/c`) and metadata of each
/// regular file under it, visiting at most `limit` entries, by directory
/// descriptors as the snapshot does; unreadable parts are passed over.
pub fn for_each_file(source: &Path, limit: usize, mut f: impl FnMut(&[u8], &Metadata)) {
    let Ok((root, _)) = Dir::open_root(source) else {
        return;
    };
    let mut seen = 0;
    visit(&root, &mut Vec::new(), 0, limit, &mut seen, &mut f);
}

fn visit(
    dir: &Dir,
    rel: &mut Vec<u8>,
    depth: usize,
    limit: usize,
    seen: &mut usize,
    f: &mut impl FnMut(&[u8], &Metadata),
) -> bool {
    let Ok(names) = dir.names() else {
        return true;
    };
    for name in names {
        *seen += 1;
        if *seen > limit {
            return false;
        }
        let Ok(meta) = dir.stat(&name) else { continue };
        let len = rel.len();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&name);
        let go_on = if meta.is_dir() && depth < MAX_DEPTH {
            match dir.open_dir(&name, &meta) {
                Ok((sub, _)) => visit(&sub, rel, depth + 1, limit, seen, f),
                Err(_) => true,
            }
        } else {
            if meta.is_file() {
                f(rel, &meta);
            }
            true
        };
        rel.truncate(len);
        if !go_on {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_folder_swapped_for_a_symlink_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(src.join("d")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"root only").unwrap();
        std::fs::write(src.join("d/f"), b"mine").unwrap();
        let (root, _) = Dir::open_root(&src).unwrap();
        let seen = root.stat(b"d").unwrap();
        assert!(seen.is_dir());
        // Swapped after it was listed and described.
        std::fs::rename(src.join("d"), tmp.path().join("moved")).unwrap();
        symlink(&outside, src.join("d")).unwrap();
        let err = root.open_dir(b"d", &seen).unwrap_err();
        assert_eq!(err.to_string(), "replaced while being read");
        // Another folder swapped in: another inode.
        std::fs::remove_file(src.join("d")).unwrap();
        std::fs::create_dir(src.join("d")).unwrap();
        assert!(root.open_dir(b"d", &seen).is_err());
        // A file swapped for a symlink to a file outside is not opened.
        let seen_f = root.stat(b"d").unwrap();
        std::fs::write(src.join("g"), b"mine").unwrap();
        let seen_g = root.stat(b"g").unwrap();
        std::fs::remove_file(src.join("g")).unwrap();
        symlink(outside.join("secret"), src.join("g")).unwrap();
        assert!(root.open_file(b"g", &seen_g).is_err());
        assert!(root.open_file_beneath(b"g").is_err());
        assert!(root.open_dir(b"d", &seen_f).is_ok());
    }

    #[test]
    fn the_walk_never_leaves_the_source() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::write(src.join("a/b/f"), b"12345").unwrap();
        std::fs::write(src.join("top"), b"1").unwrap();
        symlink("/etc", src.join("a/etc")).unwrap();
        let mut found = Vec::new();
        for_each_file(&src, usize::MAX, |rel, meta| {
            found.push((rel.to_vec(), meta.len()))
        });
        found.sort();
        assert_eq!(found, [(b"a/b/f".to_vec(), 5), (b"top".to_vec(), 1)]);
        assert_eq!(estimate(&src), (2, 6));
        let (root, _) = Dir::open_root(&src).unwrap();
        let mut f = root.open_file_beneath(b"a/b/f").unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut f, &mut s).unwrap();
        assert_eq!(s, "12345");
        assert!(root.open_file_beneath(b"a/etc/passwd").is_err());
        assert_eq!(root.read_link(b"a/etc").unwrap(), b"/etc");
    }
}
