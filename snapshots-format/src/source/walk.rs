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
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use crate::format::tree::MAX_DEPTH;
use crate::source::fsmeta;

/// What the walk needs of an entry's `stat`, with the same types on every
/// architecture (and methods named as `std`'s `StatExt`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    dev: u64,
    ino: u64,
    nlink: u64,
    rdev: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

// The kernel's `struct stat` field types differ between architectures
// (`st_nlink` is 32 bits on arm64, 64 on x86-64): plain widening casts.
#[allow(clippy::unnecessary_cast)]
impl From<rfs::Stat> for Stat {
    fn from(s: rfs::Stat) -> Self {
        Self {
            mode: s.st_mode as u32,
            uid: s.st_uid as u32,
            gid: s.st_gid as u32,
            size: s.st_size.max(0) as u64,
            dev: s.st_dev as u64,
            ino: s.st_ino as u64,
            nlink: s.st_nlink as u64,
            rdev: s.st_rdev as u64,
            mtime: (s.st_mtime as i64, s.st_mtime_nsec as i64),
            ctime: (s.st_ctime as i64, s.st_ctime_nsec as i64),
        }
    }
}

impl Stat {
    /// The `stat` of an open file.
    ///
    /// # Errors
    /// I/O errors.
    pub fn of(fd: impl AsFd) -> io::Result<Stat> {
        rfs::fstat(fd).map(Stat::from).map_err(errno)
    }

    /// The entry's type.
    pub fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }
    /// A folder.
    pub fn is_dir(&self) -> bool {
        self.file_type() == FileType::Directory
    }
    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.file_type() == FileType::RegularFile
    }
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.size
    }
    /// Whether the size is zero.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    /// `st_mode`: type and permission bits.
    pub fn mode(&self) -> u32 {
        self.mode
    }
    /// Owner.
    pub fn uid(&self) -> u32 {
        self.uid
    }
    /// Group.
    pub fn gid(&self) -> u32 {
        self.gid
    }
    /// Device holding the entry.
    pub fn dev(&self) -> u64 {
        self.dev
    }
    /// Inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }
    /// Link count.
    pub fn nlink(&self) -> u64 {
        self.nlink
    }
    /// Device number of a device node.
    pub fn rdev(&self) -> u64 {
        self.rdev
    }
    /// Modification time, seconds.
    pub fn mtime(&self) -> i64 {
        self.mtime.0
    }
    /// Modification time, nanoseconds.
    pub fn mtime_nsec(&self) -> i64 {
        self.mtime.1
    }
    /// Status-change time, seconds.
    pub fn ctime(&self) -> i64 {
        self.ctime.0
    }
    /// Status-change time, nanoseconds.
    pub fn ctime_nsec(&self) -> i64 {
        self.ctime.1
    }
}

/// An open folder of a source.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// Its path, for messages and path-based rules (excludes) only.
    path: PathBuf,
}

/// Names below which [`Dir::stat_many`] stays on the calling thread: a
/// thread costs about as much as a few dozen lookups with a warm cache.
const PARALLEL_STAT_MIN: usize = 256;

/// Threads of [`Dir::stat_many`]: the machine's cores, at most 4.
fn stat_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4)
    })
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
    pub fn open_root(path: &Path) -> io::Result<(Dir, Stat)> {
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
    pub fn metadata(&self) -> io::Result<Stat> {
        Stat::of(&self.fd)
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

    /// An entry's own metadata (a symlink's, not its target's).
    ///
    /// # Errors
    /// `NotFound` when it vanished; other I/O errors.
    pub fn stat(&self, name: &[u8]) -> io::Result<Stat> {
        rfs::statat(&self.fd, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)
            .map(Stat::from)
            .map_err(errno)
    }

    /// [`Dir::stat`] of each of `names`, in order, on several threads for
    /// a long list. With a cold cache, a daily snapshot's walk of 400,000
    /// unchanged files is mostly the kernel looking entries up one after
    /// the other (`find` alone takes 5 s at 16 GiB); the lookups of one
    /// folder run side by side in the kernel.
    pub fn stat_many(&self, names: &[Vec<u8>]) -> Vec<io::Result<Stat>> {
        let threads = stat_threads();
        if threads < 2 || names.len() < PARALLEL_STAT_MIN {
            return names.iter().map(|n| self.stat(n)).collect();
        }
        let per = names.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = names
                .chunks(per)
                .map(|part| {
                    let handle =
                        scope.spawn(move || part.iter().map(|n| self.stat(n)).collect::<Vec<_>>());
                    (part.len(), handle)
                })
                .collect();
            let mut out = Vec::with_capacity(names.len());
            for (len, handle) in parts {
                match handle.join() {
                    Ok(found) => out.extend(found),
                    // Not reached (a stat does not panic): those entries
                    // are then skipped with this reason.
                    Err(_) => out
                        .extend((0..len).map(|_| Err(io::Error::other("metadata lookup failed")))),
                }
            }
            out
        })
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
    pub fn open_dir(&self, name: &[u8], seen: &Stat) -> io::Result<(Dir, Stat)> {
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
    pub fn open_file(&self, name: &[u8], seen: &Stat) -> io::Result<File> {
        let file = self.open_any_file(name)?;
        let now = Stat::of(&file)?;
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
        if !Stat::of(&file)?.is_file() {
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

fn same_inode(a: &Stat, b: &Stat) -> bool {
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
pub fn for_each_file(source: &Path, limit: usize, mut f: impl FnMut(&[u8], &Stat)) {
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
    f: &mut impl FnMut(&[u8], &Stat),
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
    fn many_entries_are_looked_up_in_order_as_one_by_one() {
        let tmp = tempfile::tempdir().unwrap();
        let mut names = Vec::new();
        for i in 0..3 * PARALLEL_STAT_MIN {
            let name = format!("f{i:05}");
            if i % 7 != 3 {
                std::fs::write(tmp.path().join(&name), vec![0u8; i]).unwrap();
            }
            names.push(name.into_bytes());
        }
        symlink("nowhere", tmp.path().join("f00001")).ok();
        let (dir, _) = Dir::open_root(tmp.path()).unwrap();
        let many = dir.stat_many(&names);
        assert_eq!(many.len(), names.len());
        for (name, got) in names.iter().zip(many) {
            match (dir.stat(name), got) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind()),
                (a, b) => panic!("{}: {a:?} against {b:?}", String::from_utf8_lossy(name)),
            }
        }
        assert!(dir.stat_many(&[]).is_empty());
    }

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
