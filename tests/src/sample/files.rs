//! Writing the tree: every entry gets its mode and mtime explicitly (the
//! umask and the clock of the machine play no part), and every folder whose
//! entries change gets, at the end, the mtime of its latest change.

use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::calendar::{split, Ns};
use super::{Context, Error, Result};

/// The mode of every folder.
const DIR_MODE: u32 = 0o755;

/// A tree being written, and the folders whose entries changed.
pub struct Fs {
    root: PathBuf,
    /// Folders known to exist (relative), to skip asking again.
    known: HashSet<PathBuf>,
    /// Folders whose entries changed (relative), and the latest change.
    touched: BTreeMap<PathBuf, Ns>,
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error(format!("{}: a NUL byte in the path", p.display())))
}

/// Sets the mtime (and atime) of `path` without following a symlink.
pub fn set_mtime(path: &Path, t: Ns) -> Result<()> {
    let (tv_sec, tv_nsec) = split(t);
    let ts = libc::timespec { tv_sec, tv_nsec };
    let c = cpath(path)?;
    // SAFETY: a NUL-terminated path and a two-element timespec array.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            [ts, ts].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error()).doing("set the mtime of", path)
    }
}

/// The mtime of `path` (not following a symlink).
pub fn mtime(path: &Path) -> Result<Ns> {
    let m = fs::symlink_metadata(path).doing("read", path)?;
    Ok(m.mtime() * 1_000_000_000 + m.mtime_nsec())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).doing("set the mode of", path)
}

impl Fs {
    /// Writes below `root`, which exists.
    pub fn new(root: &Path) -> Self {
        let mut known = HashSet::new();
        known.insert(PathBuf::new());
        Self {
            root: root.to_path_buf(),
            known,
            touched: BTreeMap::new(),
        }
    }

    /// The full path of `rel`.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// Notes that an entry of `rel`'s folder changed at `t`.
    fn touch_parent(&mut self, rel: &Path, t: Ns) {
        if let Some(parent) = rel.parent() {
            let e = self.touched.entry(parent.to_path_buf()).or_insert(t);
            *e = (*e).max(t);
        }
    }

    /// Creates folder `rel` and its missing parents, made at `t`.
    pub fn mkdirs(&mut self, rel: &Path, t: Ns) -> Result<()> {
        if self.known.contains(rel) {
            return Ok(());
        }
        if let Some(parent) = rel.parent() {
            self.mkdirs(parent, t)?;
        }
        let path = self.path(rel);
        match fs::create_dir(&path) {
            Ok(()) => {
                set_mode(&path, DIR_MODE)?;
                self.touch_parent(rel, t);
                self.touched.entry(rel.to_path_buf()).or_insert(t);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
            Err(e) => return Err(e).doing("create the folder", &path),
        }
        self.known.insert(rel.to_path_buf());
        Ok(())
    }

    /// Creates `rel` (or truncates it), lets `fill` write it, then sets its
    /// mode and mtime; the folder is touched if the file is new.
    pub fn create_with(
        &mut self,
        rel: impl AsRef<Path>,
        mode: u32,
        t: Ns,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> Result<()> {
        let rel = rel.as_ref();
        if let Some(parent) = rel.parent() {
            self.mkdirs(parent, t)?;
        }
        let path = self.path(rel);
        let existed = fs::symlink_metadata(&path).is_ok();
        let mut file = File::create(&path).doing("create", &path)?;
        fill(&mut file).doing("write", &path)?;
        drop(file);
        set_mode(&path, mode)?;
        set_mtime(&path, t)?;
        if !existed {
            self.touch_parent(rel, t);
        }
        Ok(())
    }

    /// Writes `data` to `rel` (created or replaced) with `mode` and mtime `t`.
    pub fn write(&mut self, rel: impl AsRef<Path>, data: &[u8], mode: u32, t: Ns) -> Result<()> {
        self.create_with(rel, mode, t, |f| f.write_all(data))
    }

    /// Opens the existing `rel` to change it in place.
    pub fn open(&self, rel: impl AsRef<Path>) -> Result<File> {
        let path = self.path(rel);
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .doing("open", &path)
    }

    /// Reads all of `rel`.
    pub fn read(&self, rel: impl AsRef<Path>) -> Result<Vec<u8>> {
        let path = self.path(rel);
        fs::read(&path).doing("read", &path)
    }

    /// Sets the mtime of `rel` (an entry changed in place).
    pub fn set_mtime(&self, rel: impl AsRef<Path>, t: Ns) -> Result<()> {
        set_mtime(&self.path(rel), t)
    }

    /// Appends `data` to the existing `rel` and sets its mtime.
    pub fn append(&self, rel: impl AsRef<Path>, data: &[u8], t: Ns) -> Result<()> {
        let path = self.path(rel);
        let mut f = OpenOptions::new()
            .append(true)
            .open(&path)
            .doing("open", &path)?;
        f.write_all(data).doing("append to", &path)?;
        drop(f);
        set_mtime(&path, t)
    }

    /// Removes the file `rel` at `t`.
    pub fn remove(&mut self, rel: impl AsRef<Path>, t: Ns) -> Result<()> {
        let rel = rel.as_ref();
        let path = self.path(rel);
        fs::remove_file(&path).doing("remove", &path)?;
        self.touch_parent(rel, t);
        Ok(())
    }

    /// Renames `from` to `to` at `t` (creating `to`'s folder); the entry
    /// keeps its own mtime, as a rename does.
    pub fn rename(&mut self, from: impl AsRef<Path>, to: impl AsRef<Path>, t: Ns) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        if let Some(parent) = to.parent() {
            self.mkdirs(parent, t)?;
        }
        let (src, dst) = (self.path(from), self.path(to));
        let kept = mtime(&src)?;
        fs::rename(&src, &dst).doing("rename", &src)?;
        set_mtime(&dst, kept)?;
        self.touch_parent(from, t);
        self.touch_parent(to, t);
        self.known.retain(|k| !k.starts_with(from));
        self.touched.retain(|k, _| !k.starts_with(from));
        Ok(())
    }

    /// Makes the symlink `rel` -> `target` at `t`.
    pub fn symlink(&mut self, target: &str, rel: impl AsRef<Path>, t: Ns) -> Result<()> {
        let rel = rel.as_ref();
        let path = self.path(rel);
        std::os::unix::fs::symlink(target, &path).doing("create the symlink", &path)?;
        set_mtime(&path, t)?;
        self.touch_parent(rel, t);
        Ok(())
    }

    /// Makes `rel` a hard link to the existing file `existing`, at `t`.
    pub fn hard_link(
        &mut self,
        existing: impl AsRef<Path>,
        rel: impl AsRef<Path>,
        t: Ns,
    ) -> Result<()> {
        let rel = rel.as_ref();
        if let Some(parent) = rel.parent() {
            self.mkdirs(parent, t)?;
        }
        let path = self.path(rel);
        fs::hard_link(self.path(existing), &path).doing("create the hard link", &path)?;
        self.touch_parent(rel, t);
        Ok(())
    }

    /// Makes the fifo `rel` with `mode` at `t`.
    pub fn fifo(&mut self, rel: impl AsRef<Path>, mode: u32, t: Ns) -> Result<()> {
        let rel = rel.as_ref();
        let path = self.path(rel);
        // SAFETY: a NUL-terminated path.
        if unsafe { libc::mkfifo(cpath(&path)?.as_ptr(), mode) } != 0 {
            return Err(io::Error::last_os_error()).doing("create the fifo", &path);
        }
        set_mode(&path, mode)?;
        set_mtime(&path, t)?;
        self.touch_parent(rel, t);
        Ok(())
    }

    /// Sets the extended attribute `name` of `rel`; false, silently, where
    /// the filesystem refuses.
    pub fn xattr(&self, rel: impl AsRef<Path>, name: &str, value: &[u8]) -> Result<bool> {
        let path = self.path(rel);
        let name = CString::new(name).map_err(|_| Error("a NUL byte in an xattr name".into()))?;
        // SAFETY: NUL-terminated path and name, a pointer and length from one slice.
        let rc = unsafe {
            libc::lsetxattr(
                cpath(&path)?.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        Ok(rc == 0)
    }

    /// The names in folder `rel`, sorted by their bytes.
    pub fn list(&self, rel: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        let path = self.path(rel);
        let mut names = Vec::new();
        for e in fs::read_dir(&path).doing("list", &path)? {
            names.push(PathBuf::from(e.doing("list", &path)?.file_name()));
        }
        names.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
        Ok(names)
    }

    /// Gives every folder whose entries changed the mtime of its latest
    /// change, deepest first.
    pub fn finish(self) -> Result<()> {
        let mut dirs: Vec<(&PathBuf, &Ns)> = self.touched.iter().collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (rel, t) in dirs {
            set_mtime(&self.path(rel), *t)?;
        }
        Ok(())
    }
}
