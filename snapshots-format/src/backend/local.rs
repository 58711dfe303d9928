//! The local backend: a repository folder on a drive.
//!
//! ```text
//! REPO/config  REPO/policy  REPO/dictionary     single objects
//! REPO/keys/<16 hex>                            key files
//! REPO/data/<2 hex>/<64 hex>                    packs
//! REPO/snapshots/<64 hex>                       snapshot records
//! REPO/index/<64 hex>                           index files (format 4)
//! REPO/locks/<letter>-<16 hex>                  locks
//! REPO/tmp/                                     objects being written
//! ```
//!
//! The drive is untrusted: it leaves the building every night and anyone
//! may have written to it. So the repository folder is opened once, and
//! everything below it is reached relative to that descriptor, refusing
//! symbolic links and other filesystems (`openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV`, or a walk with `O_NOFOLLOW` and a
//! device check where the kernel lacks it). Only regular files with the
//! names Coffre writes are read, after their size is checked against the
//! kind's bound, with non-blocking opens (a fifo never hangs a read). Files
//! are created 0600 and folders 0700: a key file readable by every local
//! user lets them try passphrases offline.
//!
//! Objects are written under `tmp/`, fsynced, renamed into place and their
//! folder fsynced, so a crash leaves a whole object or none. A temporary
//! file is deleted later only when its name says it was written by a
//! process of this machine and namespace that is surely gone.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags, CWD};
use rustix::io::Errno;

use super::{missing_object, short_object, too_large, Backend, FileKind, ObjectName, Upload};
use crate::error::{Error, Result};
use crate::id::to_hex;
use crate::owner::Owner;

/// Open packs kept for positioned reads: enough for restore's locality,
/// few enough for any descriptor limit.
const OPEN_PACKS: usize = 64;

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// A repository folder; see the module documentation.
pub struct LocalBackend {
    path: PathBuf,
    root: OwnedFd,
    dev: u64,
    /// Cleared when the kernel has no `openat2` (before Linux 5.6) or a
    /// sandbox forbids it: then the `O_NOFOLLOW` walk is used.
    openat2: AtomicBool,
    packs: Mutex<HashMap<ObjectName, (Arc<File>, u64)>>,
}

impl std::fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBackend")
            .field("path", &self.path)
            .finish()
    }
}

fn io_err(path: &Path, e: Errno) -> Error {
    Error::io(path, std::io::Error::from(e))
}

impl LocalBackend {
    /// Opens the repository folder at `path` (a link there is followed: the
    /// path is the administrator's; nothing below it is).
    ///
    /// # Errors
    /// [`Error::RepositoryMissing`] when there is no folder at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        let root = match rfs::openat(CWD, path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err(Error::RepositoryMissing(path.to_path_buf())),
            Err(Errno::NOTDIR) => return Err(Error::NotARepository(path.to_path_buf())),
            Err(e) => return Err(io_err(path, e)),
        };
        let dev = rfs::fstat(&root).map_err(|e| io_err(path, e))?.st_dev;
        // The same folder named two ways must find the same local cache.
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(Self {
            path,
            root,
            dev,
            openat2: AtomicBool::new(true),
            packs: Mutex::new(HashMap::new()),
        })
    }

    /// Makes the folder at `path` (and its parents) if missing, then opens
    /// it; for `init`, followed by [`Backend::create`].
    ///
    /// # Errors
    /// I/O errors.
    pub fn open_for_init(path: &Path) -> Result<Self> {
        if !path.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode_0700()
                .create(path)
                .map_err(|e| Error::io(path, e))?;
        }
        Self::open(path)
    }

    /// The repository folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn shown(&self, rel: &str) -> String {
        self.path.join(rel).display().to_string()
    }

    fn tampered(&self, rel: &str, reason: &str) -> Error {
        Error::Tampered {
            path: self.shown(rel),
            reason: reason.to_owned(),
        }
    }

    /// An error of the syscalls below: links and crossings are tampering.
    fn fail(&self, rel: &str, e: Errno) -> Error {
        match e {
            Errno::LOOP => self.tampered(rel, "is a symbolic link"),
            Errno::XDEV => self.tampered(rel, "is on another filesystem"),
            Errno::NOTDIR => self.tampered(rel, "is not a folder"),
            e => io_err(&self.path.join(rel), e),
        }
    }

    /// Opens the folder `rel` below the root; `None` if it is missing and
    /// `create` is false.
    fn dir(&self, rel: &str, create: bool) -> Result<Option<OwnedFd>> {
        if rel.is_empty() {
            return self
                .root
                .try_clone()
                .map(Some)
                .map_err(|e| Error::io(&self.path, e));
        }
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        if self.openat2.load(Ordering::Relaxed) {
            let resolve = ResolveFlags::BENEATH
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_XDEV
                | ResolveFlags::NO_MAGICLINKS;
            match rfs::openat2(&self.root, rel, flags, Mode::empty(), resolve) {
                Ok(fd) => return Ok(Some(fd)),
                Err(Errno::NOSYS | Errno::PERM) => self.openat2.store(false, Ordering::Relaxed),
                Err(Errno::NOENT) if !create => return Ok(None),
                Err(Errno::NOENT) => {}
                Err(e) => return Err(self.fail(rel, e)),
            }
        }
        // One component at a time, never following a link, and checking the
        // device at each step (a mount point below the root is refused).
        let mut cur = self
            .root
            .try_clone()
            .map_err(|e| Error::io(&self.path, e))?;
        let mut done = String::new();
        for part in rel.split('/') {
            if !done.is_empty() {
                done.push('/');
            }
            done.push_str(part);
            let next = match rfs::openat(&cur, part, flags, Mode::empty()) {
                Err(Errno::NOENT) if create => {
                    match rfs::mkdirat(&cur, part, Mode::from_raw_mode(DIR_MODE)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.fail(&done, e)),
                    }
                    rfs::fsync(&cur).map_err(|e| self.fail(&done, e))?;
                    rfs::openat(&cur, part, flags, Mode::empty())
                }
                Err(Errno::NOENT) => return Ok(None),
                other => other,
            }
            .map_err(|e| self.fail(&done, e))?;
            let st = rfs::fstat(&next).map_err(|e| self.fail(&done, e))?;
            if st.st_dev != self.dev {
                return Err(self.tampered(&done, "is on another filesystem"));
            }
            cur = next;
        }
        Ok(Some(cur))
    }

    /// The folder and file name of an object.
    fn place(kind: FileKind, name: &ObjectName) -> (String, String) {
        let n = name.as_str();
        match kind {
            FileKind::Config => (String::new(), "config".into()),
            FileKind::Policy => (String::new(), "policy".into()),
            FileKind::Dictionary => (String::new(), "dictionary".into()),
            FileKind::DictionaryCopy => (String::new(), "dictionary.copy".into()),
            FileKind::Key => ("keys".into(), n.into()),
            FileKind::Snapshot => ("snapshots".into(), n.into()),
            FileKind::Index | FileKind::LegacyIndex => ("index".into(), n.into()),
            FileKind::Lock => ("locks".into(), n.into()),
            FileKind::Journal => ("journal".into(), n.into()),
            FileKind::Pack => (format!("data/{}", &n[..2]), n.into()),
        }
    }

    fn rel(dir: &str, file: &str) -> String {
        if dir.is_empty() {
            file.to_owned()
        } else {
            format!("{dir}/{file}")
        }
    }

    /// Opens an object for reading after checking, without following
    /// anything, that it is a regular file of this filesystem within the
    /// kind's bound. Returns it with its size; `None` if missing.
    fn open_object(&self, kind: FileKind, name: &ObjectName) -> Result<Option<(File, u64)>> {
        let (dir, file) = Self::place(kind, name);
        let rel = Self::rel(&dir, &file);
        let Some(dirfd) = self.dir(&dir, false)? else {
            return Ok(None);
        };
        let st = match rfs::statat(&dirfd, file.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.fail(&rel, e)),
        };
        self.check_regular(&rel, kind, &st)?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = match rfs::openat(&dirfd, file.as_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.fail(&rel, e)),
        };
        // What was opened must be what was checked (not swapped meanwhile).
        let opened = rfs::fstat(&fd).map_err(|e| self.fail(&rel, e))?;
        if opened.st_ino != st.st_ino || opened.st_dev != st.st_dev {
            return Err(self.tampered(&rel, "changed while being opened"));
        }
        self.check_regular(&rel, kind, &opened)?;
        Ok(Some((File::from(fd), opened.st_size as u64)))
    }

    fn check_regular(&self, rel: &str, kind: FileKind, st: &rfs::Stat) -> Result<()> {
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(self.tampered(rel, "is not a regular file (a link, a folder or a device)"));
        }
        if st.st_dev != self.dev {
            return Err(self.tampered(rel, "is on another filesystem"));
        }
        let len = st.st_size as u64;
        if len > kind.max_len() {
            return Err(too_large(kind, self.shown(rel), len));
        }
        Ok(())
    }

    /// The entries of folder `rel` whose name `keep` accepts, with their
    /// type: `None` if it is missing. Filtered while reading, so a folder
    /// stuffed with millions of foreign names costs no memory.
    fn entries(
        &self,
        rel: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Option<(OwnedFd, Entries)>> {
        let Some(fd) = self.dir(rel, false)? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let dir = rfs::Dir::read_from(&fd).map_err(|e| self.fail(rel, e))?;
        for entry in dir {
            let entry = entry.map_err(|e| self.fail(rel, e))?;
            let Some(name) = utf8(entry.file_name()) else {
                continue;
            };
            if name == "." || name == ".." || !keep(&name) {
                continue;
            }
            let mut ft = entry.file_type();
            if ft == FileType::Unknown {
                // Some filesystems (exFAT through FUSE) do not say.
                ft = match rfs::statat(&fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode),
                    Err(_) => continue,
                };
            }
            out.push((name, ft));
        }
        Ok(Some((fd, out)))
    }

    /// The objects of `kind` in folder `rel`, with their sizes.
    fn list_in(&self, kind: FileKind, rel: &str, out: &mut Vec<(ObjectName, u64)>) -> Result<()> {
        let Some((fd, entries)) = self.entries(rel, |n| ObjectName::parse(kind, n).is_some())?
        else {
            return Ok(());
        };
        for (file, _) in entries {
            if rel.is_empty() || kind.is_single() {
                continue;
            }
            // Foreign names are not Coffre's business (a `.DS_Store`, a
            // copy tool's leftovers): skipped whatever they are.
            let Some(name) = ObjectName::parse(kind, &file) else {
                continue;
            };
            let at = format!("{rel}/{file}");
            let st = match rfs::statat(&fd, file.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed since the folder was read (a lock released, a
                // pack pruned by another run): not there, as if never listed.
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(self.fail(&at, e)),
            };
            if kind != FileKind::LegacyIndex {
                // Named like an object but not one Coffre could have
                // written: skipping it would hide it (a snapshot record
                // replaced by a fifo would let prune drop that snapshot's
                // data), so it stops whoever lists.
                self.check_regular(&at, kind, &st)?;
            }
            out.push((name, st.st_size as u64));
        }
        Ok(())
    }

    fn pack_file(&self, name: &ObjectName) -> Result<(Arc<File>, u64)> {
        let mut open = self.packs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = open.get(name) {
            return Ok(f.clone());
        }
        let (file, len) = self
            .open_object(FileKind::Pack, name)?
            .ok_or_else(|| missing_object(FileKind::Pack, name))?;
        if open.len() >= OPEN_PACKS {
            open.clear();
        }
        let entry = (Arc::new(file), len);
        open.insert(name.clone(), entry.clone());
        Ok(entry)
    }

    fn temp_dir(&self) -> Result<OwnedFd> {
        self.dir("tmp", true)?
            .ok_or_else(|| self.tampered("tmp", "cannot be made"))
    }
}

/// A folder's entries: name and type.
type Entries = Vec<(String, FileType)>;

fn utf8(name: &CStr) -> Option<String> {
    name.to_str().ok().map(str::to_owned)
}

/// `<host>-<boot>-<pid>-<start>-<random>.tmp`, all hex but pid and start:
/// enough to tell later whether the writer is gone ([`Owner::is_gone`]).
fn temp_name() -> String {
    let me = Owner::current();
    let rand: [u8; 8] = crate::crypto::random_array();
    format!(
        "{:016x}-{:016x}-{}-{}-{}.tmp",
        me.host,
        me.boot,
        me.pid,
        me.start,
        to_hex(&rand)
    )
}

/// The writer named by a temporary file's name, if the name is exactly one
/// [`temp_name`] makes.
fn temp_owner(name: &str) -> Option<Owner> {
    let stem = name.strip_suffix(".tmp")?;
    let parts: Vec<&str> = stem.split('-').collect();
    let [host, boot, pid, start, rand] = parts[..] else {
        return None;
    };
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    let dec = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !(hex(host, 16) && hex(boot, 16) && dec(pid) && dec(start) && hex(rand, 16)) {
        return None;
    }
    Some(Owner {
        host: u64::from_str_radix(host, 16).ok()?,
        boot: u64::from_str_radix(boot, 16).ok()?,
        pid: pid.parse().ok()?,
        start: start.parse().ok()?,
    })
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn create(&self) -> Result<()> {
        let (_, entries) = self
            .entries("", |_| true)?
            .ok_or_else(|| Error::RepositoryMissing(self.path.clone()))?;
        if !entries.is_empty() {
            return Err(Error::AlreadyExists(self.path.clone()));
        }
        rfs::fchmod(&self.root, Mode::from_raw_mode(DIR_MODE))
            .map_err(|e| io_err(&self.path, e))?;
        for dir in ["locks", "keys", "snapshots", "index", "data", "tmp"] {
            self.dir(dir, true)?;
        }
        let data = self
            .dir("data", true)?
            .ok_or_else(|| self.tampered("data", "missing"))?;
        for i in 0..=255u8 {
            match rfs::mkdirat(&data, to_hex(&[i]).as_str(), Mode::from_raw_mode(DIR_MODE)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(self.fail("data", e)),
            }
        }
        rfs::fsync(&data).map_err(|e| self.fail("data", e))?;
        rfs::fsync(&self.root).map_err(|e| io_err(&self.path, e))?;
        if let Some(parent) = self.path.parent() {
            // Best effort: the parent may be a read-only mount point's root.
            let _ = File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(ObjectName, u64)>> {
        let mut out = Vec::new();
        match kind {
            FileKind::Pack => {
                let Some((_, subs)) = self.entries("data", |n| {
                    n.len() == 2 && n.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                })?
                else {
                    return Ok(out);
                };
                for (sub, ft) in subs {
                    let is_pack_dir = sub.len() == 2
                        && sub.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                    if !is_pack_dir {
                        continue;
                    }
                    if ft != FileType::Directory {
                        return Err(self.tampered(
                            &format!("data/{sub}"),
                            "is not a folder (a link or a file)",
                        ));
                    }
                    self.list_in(kind, &format!("data/{sub}"), &mut out)?;
                }
            }
            k if k.is_single() => {
                if let Some(size) = self.size(k, &ObjectName::single())? {
                    out.push((ObjectName::single(), size));
                }
            }
            k => {
                let (dir, _) = Self::place(k, &ObjectName::single());
                self.list_in(k, &dir, &mut out)?;
            }
        }
        out.sort();
        Ok(out)
    }

    fn size(&self, kind: FileKind, name: &ObjectName) -> Result<Option<u64>> {
        let (dir, file) = Self::place(kind, name);
        let rel = Self::rel(&dir, &file);
        let Some(dirfd) = self.dir(&dir, false)? else {
            return Ok(None);
        };
        match rfs::statat(&dirfd, file.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                self.check_regular(&rel, kind, &st)?;
                Ok(Some(st.st_size as u64))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.fail(&rel, e)),
        }
    }

    fn read(&self, kind: FileKind, name: &ObjectName) -> Result<Option<Vec<u8>>> {
        let Some((file, len)) = self.open_object(kind, name)? else {
            return Ok(None);
        };
        let (dir, f) = Self::place(kind, name);
        let rel = Self::rel(&dir, &f);
        let mut buf = Vec::with_capacity(len as usize);
        // A file that grows after the size check is still bounded.
        file.take(kind.max_len() + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(self.path.join(&rel), e))?;
        if buf.len() as u64 > kind.max_len() {
            return Err(too_large(kind, self.shown(&rel), buf.len() as u64));
        }
        Ok(Some(buf))
    }

    fn read_at(
        &self,
        kind: FileKind,
        name: &ObjectName,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        let (file, size) = if kind == FileKind::Pack {
            self.pack_file(name)?
        } else {
            let (f, s) = self
                .open_object(kind, name)?
                .ok_or_else(|| missing_object(kind, name))?;
            (Arc::new(f), s)
        };
        if offset.checked_add(len as u64).is_none_or(|end| end > size) {
            return Err(short_object(kind, name));
        }
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                short_object(kind, name)
            } else {
                let (dir, f) = Self::place(kind, name);
                Error::io(self.path.join(Self::rel(&dir, &f)), e)
            }
        })?;
        Ok(buf)
    }

    fn upload(&self, kind: FileKind) -> Result<Box<dyn Upload>> {
        let dir = self.temp_dir()?;
        let name = temp_name();
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(&dir, name.as_str(), flags, Mode::from_raw_mode(FILE_MODE))
            .map_err(|e| self.fail(&format!("tmp/{name}"), e))?;
        Ok(Box::new(LocalUpload {
            backend: self.clone_handle()?,
            kind,
            tmp_dir: dir,
            name,
            // Packs arrive a megabyte at a time (the pack writer gathers its
            // blobs); a small buffer is enough for everything else.
            file: Some(std::io::BufWriter::with_capacity(64 << 10, File::from(fd))),
        }))
    }

    fn delete(&self, kind: FileKind, name: &ObjectName) -> Result<()> {
        let (dir, file) = Self::place(kind, name);
        let rel = Self::rel(&dir, &file);
        let Some(dirfd) = self.dir(&dir, false)? else {
            return Ok(());
        };
        match rfs::statat(&dirfd, file.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(self.fail(&rel, e)),
            Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile => {
                return Err(
                    self.tampered(&rel, "is not a regular file (a link, a folder or a device)")
                )
            }
            Ok(_) => {}
        }
        if kind == FileKind::Pack {
            self.packs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
        }
        match rfs::unlinkat(&dirfd, file.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(self.fail(&rel, e)),
        }
        rfs::fsync(&dirfd).map_err(|e| self.fail(&dir, e))
    }

    fn free_space(&self) -> Option<u64> {
        // What an unprivileged writer may use: Coffre running as root could
        // also fill the blocks reserved for root, and should not count on it.
        let s = rfs::fstatvfs(&self.root).ok()?;
        Some(s.f_bavail.saturating_mul(s.f_frsize))
    }

    fn remove_leftovers(&self) -> Result<usize> {
        let Some((fd, entries)) = self.entries("tmp", |n| temp_owner(n).is_some())? else {
            return Ok(0);
        };
        let mut removed = 0;
        for (name, ft) in entries {
            // Only names Coffre makes, of regular files, of writers surely gone.
            if ft != FileType::RegularFile || !temp_owner(&name).is_some_and(|o| o.is_gone()) {
                continue;
            }
            match rfs::unlinkat(&fd, name.as_str(), AtFlags::empty()) {
                Ok(()) => removed += 1,
                Err(Errno::NOENT) => {}
                Err(e) => return Err(self.fail(&format!("tmp/{name}"), e)),
            }
        }
        Ok(removed)
    }
}

impl LocalBackend {
    /// A second handle on the same root descriptor, for an upload that
    /// outlives the borrow of `self`.
    fn clone_handle(&self) -> Result<LocalBackend> {
        Ok(LocalBackend {
            path: self.path.clone(),
            root: self
                .root
                .try_clone()
                .map_err(|e| Error::io(&self.path, e))?,
            dev: self.dev,
            openat2: AtomicBool::new(self.openat2.load(Ordering::Relaxed)),
            packs: Mutex::new(HashMap::new()),
        })
    }
}

/// An object being written under `tmp/`.
struct LocalUpload {
    backend: LocalBackend,
    kind: FileKind,
    tmp_dir: OwnedFd,
    name: String,
    file: Option<std::io::BufWriter<File>>,
}

impl LocalUpload {
    fn tmp_rel(&self) -> String {
        format!("tmp/{}", self.name)
    }

    /// Flushes, fsyncs and closes the file, which stays in `tmp/`.
    fn sync_and_close(&mut self) -> Result<()> {
        let path = self.backend.path.join(self.tmp_rel());
        let Some(file) = self.file.take() else {
            return Err(Error::io(
                path,
                std::io::Error::other("upload already closed"),
            ));
        };
        let file = file
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        // Written once and not read again by this run: leave the page cache
        // to the machine's own work (a first snapshot writes a gigabyte of
        // packs). Only advice: a failure changes nothing.
        let _ = rfs::fadvise(file.as_fd(), 0, None, rfs::Advice::DontNeed);
        Ok(())
    }

    fn discard(&self) {
        let _ = rfs::unlinkat(&self.tmp_dir, self.name.as_str(), AtFlags::empty());
    }
}

impl Upload for LocalUpload {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let path = self.backend.path.join(self.tmp_rel());
        let Some(file) = self.file.as_mut() else {
            return Err(Error::io(
                path,
                std::io::Error::other("upload already closed"),
            ));
        };
        file.write_all(bytes).map_err(|e| Error::io(path, e))
    }

    fn commit(mut self: Box<Self>, name: &ObjectName, replace: bool) -> Result<bool> {
        let result = (|| {
            self.sync_and_close()?;
            let (dir, file) = LocalBackend::place(self.kind, name);
            let rel = LocalBackend::rel(&dir, &file);
            let b = &self.backend;
            let dest = b
                .dir(&dir, true)?
                .ok_or_else(|| b.tampered(&dir, "cannot be made"))?;
            let src = self.name.as_str();
            let placed = if replace {
                rfs::renameat(&self.tmp_dir, src, &dest, file.as_str())
                    .map(|()| true)
                    .map_err(|e| b.fail(&rel, e))?
            } else {
                match rfs::renameat_with(
                    &self.tmp_dir,
                    src,
                    &dest,
                    file.as_str(),
                    RenameFlags::NOREPLACE,
                ) {
                    Ok(()) => true,
                    Err(Errno::EXIST) => false,
                    // Filesystems without RENAME_NOREPLACE: a hard link
                    // cannot replace either. Without hard links (exFAT),
                    // look then rename: only two first snapshots started
                    // together could meet in that window.
                    Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                        match rfs::linkat(
                            &self.tmp_dir,
                            src,
                            &dest,
                            file.as_str(),
                            AtFlags::empty(),
                        ) {
                            Ok(()) => true,
                            Err(Errno::EXIST) => false,
                            Err(_) => {
                                match rfs::statat(&dest, file.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                                    Ok(_) => false,
                                    Err(_) => {
                                        rfs::renameat(&self.tmp_dir, src, &dest, file.as_str())
                                            .map(|()| true)
                                            .map_err(|e| b.fail(&rel, e))?
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => return Err(b.fail(&rel, e)),
                }
            };
            if placed {
                rfs::fsync(&dest).map_err(|e| b.fail(&dir, e))?;
            }
            Ok(placed)
        })();
        // Whatever happened, the temporary name is not left behind (after a
        // rename it is already gone; after a link it is a second name).
        self.discard();
        result
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            self.discard();
        }
    }
}

trait DirBuilderExt {
    fn mode_0700(&mut self) -> &mut Self;
}

impl DirBuilderExt for std::fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, DIR_MODE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_round_trip_and_strangers_are_refused() {
        let name = temp_name();
        let owner = temp_owner(&name).expect("our own name parses");
        assert_eq!(owner, Owner::current());
        for bad in [
            "1234-00.tmp",
            "notes.txt",
            "0123456789abcdef-0123456789abcdef-12-34-0123456789abcdef",
            "0123456789ABCDEF-0123456789abcdef-12-34-0123456789abcdef.tmp",
            "0123456789abcdef-0123456789abcdef--34-0123456789abcdef.tmp",
        ] {
            assert!(temp_owner(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn conformance() {
        let dirs = Mutex::new(Vec::new());
        super::super::conformance::run(&|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let backend = LocalBackend::open_for_init(&dir.path().join("repo")).expect("open");
            dirs.lock().unwrap_or_else(|p| p.into_inner()).push(dir);
            Box::new(backend)
        });
    }
}
