//! Capturing the observable state of a directory tree into a [`TreeImage`].
//!
//! Everything a faithful restore must reproduce is recorded: types, permission
//! bits, owners, mtimes, file contents (as a digest), symlink targets, holes of
//! sparse files, xattrs and hard-link groups. atime and ctime are not recorded:
//! reading a tree changes the first and no tool can set the second.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr};
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Digester};

/// The type of a tree entry, as `lstat` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// A named pipe (never opened: opening one for reading would block).
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

impl Kind {
    fn of(meta: &Metadata) -> Kind {
        let t = meta.file_type();
        if t.is_symlink() {
            Kind::Symlink
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::File
        } else if t.is_fifo() {
            Kind::Fifo
        } else if t.is_socket() {
            Kind::Socket
        } else if t.is_char_device() {
            Kind::CharDevice
        } else {
            Kind::BlockDevice
        }
    }

    /// A short human name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "directory",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::CharDevice => "char device",
            Kind::BlockDevice => "block device",
        }
    }
}

/// What is recorded about one entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The entry's type.
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky: `st_mode & 0o7777`.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// `st_size`; only meaningful (and only compared) for regular files.
    pub size: u64,
    /// Modification time, whole seconds since the epoch.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds part.
    pub mtime_nsec: i64,
    /// For symlinks, the raw target bytes.
    pub target: Option<Vec<u8>>,
    /// For regular files, the content digest.
    pub digest: Option<Digest>,
    /// For regular files, the holes as `[start, end)` byte ranges, as SEEK_HOLE and
    /// SEEK_DATA report them (unrounded; the comparison rounds them).
    pub holes: Vec<(u64, u64)>,
    /// `st_blksize`, the granularity used to round holes when comparing.
    pub blksize: u64,
    /// Extended attributes `(name, value)`, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// For devices, `st_rdev`; 0 otherwise.
    pub rdev: u64,
}

/// A snapshot of a directory tree, keyed by raw relative path bytes.
///
/// The root itself is the entry with the empty path. Paths use `/` as separator and
/// may be any bytes (non-UTF-8 names are kept as they are). Only digests of file
/// contents are kept, so an image of thousands of files stays small.
#[derive(Clone, Debug)]
pub struct TreeImage {
    root: PathBuf,
    entries: BTreeMap<Vec<u8>, Entry>,
    /// Sets of paths that are one inode, each sorted, the list sorted.
    hardlinks: Vec<Vec<Vec<u8>>>,
}

impl TreeImage {
    /// The directory this image was captured from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Number of entries, the root included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the image holds no entry (never true for a captured tree: the root is one).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at `rel`, a path relative to the root (`""` is the root).
    pub fn get(&self, rel: impl AsRef<Path>) -> Option<&Entry> {
        self.entries.get(rel.as_ref().as_os_str().as_bytes())
    }

    /// All entries in byte order of their relative paths.
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.entries.iter().map(|(p, e)| (p.as_slice(), e))
    }

    /// Whether an entry exists at the raw relative path `rel`.
    pub fn contains(&self, rel: &[u8]) -> bool {
        self.entries.contains_key(rel)
    }

    /// Groups of relative paths sharing one inode (only groups of two or more paths
    /// inside the tree), each group sorted and the list sorted.
    pub fn hardlink_groups(&self) -> &[Vec<Vec<u8>>] {
        &self.hardlinks
    }

    pub(crate) fn entry_map(&self) -> &BTreeMap<Vec<u8>, Entry> {
        &self.entries
    }
}

/// Captures the tree under `root` (which must exist), never following symlinks.
///
/// Panics with the offending path on any I/O error: this is a test helper, and an
/// unreadable tree means the test cannot prove anything.
pub fn capture(root: &Path) -> TreeImage {
    let mut entries = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<Vec<u8>>> = HashMap::new();
    // An explicit stack rather than recursion: the sample data has deep paths on purpose.
    let mut stack: Vec<(Vec<u8>, PathBuf)> = vec![(Vec::new(), root.to_path_buf())];
    while let Some((rel, abs)) = stack.pop() {
        let meta = fs::symlink_metadata(&abs)
            .unwrap_or_else(|e| panic!("capture: lstat {}: {e}", abs.display()));
        let entry = record(&abs, &meta);
        if entry.kind != Kind::Dir && meta.nlink() > 1 {
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(rel.clone());
        }
        if entry.kind == Kind::Dir {
            let dir = fs::read_dir(&abs)
                .unwrap_or_else(|e| panic!("capture: read_dir {}: {e}", abs.display()));
            for child in dir {
                let child =
                    child.unwrap_or_else(|e| panic!("capture: read_dir {}: {e}", abs.display()));
                let name = child.file_name();
                let mut child_rel = rel.clone();
                if !child_rel.is_empty() {
                    child_rel.push(b'/');
                }
                child_rel.extend_from_slice(name.as_bytes());
                stack.push((child_rel, abs.join(&name)));
            }
        }
        entries.insert(rel, entry);
    }
    let mut hardlinks: Vec<Vec<Vec<u8>>> = inodes
        .into_values()
        // A single name with nlink > 1 is linked from outside the tree: nothing to restore.
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    hardlinks.sort();
    TreeImage {
        root: root.to_path_buf(),
        entries,
        hardlinks,
    }
}

fn record(abs: &Path, meta: &Metadata) -> Entry {
    let kind = Kind::of(meta);
    let mut entry = Entry {
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.len(),
        mtime_sec: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
        target: None,
        digest: None,
        holes: Vec::new(),
        blksize: meta.blksize(),
        xattrs: xattrs(abs),
        rdev: 0,
    };
    match kind {
        Kind::File => {
            let (digest, holes) = read_file(abs, meta.len())
                .unwrap_or_else(|e| panic!("capture: reading {}: {e}", abs.display()));
            entry.digest = Some(digest);
            entry.holes = holes;
        }
        Kind::Symlink => {
            let target = fs::read_link(abs)
                .unwrap_or_else(|e| panic!("capture: readlink {}: {e}", abs.display()));
            entry.target = Some(target.into_os_string().into_vec());
        }
        Kind::CharDevice | Kind::BlockDevice => entry.rdev = meta.rdev(),
        Kind::Dir | Kind::Fifo | Kind::Socket => {}
    }
    entry
}

/// Digests the content of a regular file and lists its holes.
fn read_file(path: &Path, size: u64) -> io::Result<(Digest, Vec<(u64, u64)>)> {
    let mut file = File::open(path)?;
    let mut digester = Digester::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        digester.update(&buf[..n]);
    }
    // Holes last: SEEK_DATA/SEEK_HOLE move the file offset the reads rely on.
    let holes = holes(&file, size)?;
    Ok((digester.finish(), holes))
}

/// The holes of an open file as `[start, end)` ranges, via SEEK_DATA / SEEK_HOLE.
///
/// A filesystem without hole support reports the whole file as data, which yields
/// no holes: the honest answer, since such a filesystem cannot keep them either.
fn holes(file: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let fd = file.as_raw_fd();
    let size = i64::try_from(size).map_err(|_| io::Error::other("file size overflows off_t"))?;
    let mut holes = Vec::new();
    let mut off: i64 = 0;
    while off < size {
        // SAFETY: lseek on a valid descriptor owned by `file` has no memory effects.
        let data = unsafe { libc::lseek(fd, off, libc::SEEK_DATA) };
        if data < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                // No data after `off`: the rest of the file is one hole.
                Some(libc::ENXIO) => {
                    holes.push((off as u64, size as u64));
                    break;
                }
                Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
                _ => return Err(err),
            }
        }
        if data > off {
            holes.push((off as u64, data as u64));
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        off = hole;
    }
    Ok(holes)
}

fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes())
        .unwrap_or_else(|_| panic!("path contains a NUL byte: {}", path.display()))
}

/// Calls an xattr function twice: once for the size, once to fill a buffer of that
/// size, retrying if the value grew in between (ERANGE). `Ok(None)` when the
/// attribute vanished or the filesystem has no xattrs.
fn xattr_read(
    mut call: impl FnMut(*mut libc::c_void, usize) -> isize,
) -> io::Result<Option<Vec<u8>>> {
    loop {
        let len = call(std::ptr::null_mut(), 0);
        if len < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ENOTSUP) | Some(libc::ENODATA) => Ok(None),
                _ => Err(err),
            };
        }
        let mut buf = vec![0u8; len as usize];
        let got = call(buf.as_mut_ptr().cast(), buf.len());
        if got < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ERANGE) => continue,
                Some(libc::ENOTSUP) | Some(libc::ENODATA) => return Ok(None),
                _ => return Err(err),
            }
        }
        buf.truncate(got as usize);
        return Ok(Some(buf));
    }
}

/// The extended attributes of `path` itself (not of a symlink's target), sorted.
fn xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let c = cpath(path);
    // SAFETY: `c` is a valid NUL-terminated path; the buffer pointer and length come
    // from `xattr_read`, which sizes the buffer to the length it passes.
    let names = xattr_read(|buf, len| unsafe { libc::llistxattr(c.as_ptr(), buf.cast(), len) })
        .unwrap_or_else(|e| panic!("capture: llistxattr {}: {e}", path.display()))
        .unwrap_or_default();
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).expect("xattr names from llistxattr contain no NUL");
        // SAFETY: as above, with a valid NUL-terminated attribute name.
        let value =
            xattr_read(|buf, len| unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), buf, len) })
                .unwrap_or_else(|e| {
                    panic!(
                        "capture: lgetxattr {} {}: {e}",
                        path.display(),
                        OsStr::from_bytes(name).to_string_lossy()
                    )
                });
        if let Some(value) = value {
            out.push((name.to_vec(), value));
        }
    }
    out.sort();
    out
}
