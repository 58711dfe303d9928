//! The on-disk layout of a repository directory, and the only code that
//! creates, renames or deletes files in it.
//!
//! ```text
//! REPO/config                 plaintext header            (header.rs)
//! REPO/keys/<16 hex>          wrapped master keys         (keyfile.rs)
//! REPO/data/<2 hex>/<64 hex>  pack files                  (pack.rs)
//! REPO/snapshots/<64 hex>     snapshot records            (snapshot.rs)
//! REPO/index/index.db         SQLite index, rebuildable   (index.rs)
//! REPO/locks/<kind>-<16 hex>  who is using the repository (lock.rs)
//! REPO/policy                 saved retention policy      (repo.rs, policy.rs)
//! REPO/tmp/                   files being written; never read as data
//! ```
//!
//! Every file is written under `tmp/`, fsynced, renamed into place, and its
//! directory fsynced: a crash leaves either the whole file or none of it at
//! its final name. Names are short ASCII and files stay far below 2 GiB, so
//! the same drive works on ext4, exFAT and NTFS.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::id::{to_hex, PackId, SnapshotId};

/// A repository directory on disk.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A file being written under `tmp/`; it becomes visible only through [`TempFile::commit`].
/// Dropping it without committing removes it.
pub struct TempFile {
    path: PathBuf,
    file: Option<std::io::BufWriter<File>>,
}

impl Store {
    /// A store rooted at `root` (nothing is checked or created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The repository directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of the plaintext header.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config")
    }

    /// Directory of key files.
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// Directory of snapshot records.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// Directory of lock files.
    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    /// Path of the saved retention policy.
    pub fn policy_path(&self) -> PathBuf {
        self.root.join("policy")
    }

    /// Path of the compression dictionary.
    pub fn dictionary_path(&self) -> PathBuf {
        self.root.join("dictionary")
    }

    /// Writes a small file atomically and durably at `dest` unless a file is
    /// already there; returns whether it wrote. Two writers racing get one
    /// winner, and neither replaces what the other may already be using.
    ///
    /// # Errors
    /// I/O errors, [`Error::DriveFull`].
    pub fn write_new(&self, dest: &Path, bytes: &[u8]) -> Result<bool> {
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes)?;
        tmp.commit_new(dest)
    }

    /// Directory holding the index database.
    pub fn index_dir(&self) -> PathBuf {
        self.root.join("index")
    }

    /// Directory of pack files.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Path of a pack file: `data/<first 2 hex>/<64 hex>`.
    pub fn pack_path(&self, id: &PackId) -> PathBuf {
        let hex = id.to_hex();
        self.data_dir().join(&hex[..2]).join(hex)
    }

    /// Path of a snapshot record.
    pub fn snapshot_path(&self, id: &SnapshotId) -> PathBuf {
        self.snapshots_dir().join(id.to_hex())
    }

    /// Creates the directory skeleton of a new repository.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if `root` exists and is not an empty directory.
    pub fn create_layout(&self) -> Result<()> {
        if self.root.exists() {
            let mut entries = fs::read_dir(&self.root).at(&self.root)?;
            if entries.next().is_some() {
                return Err(Error::AlreadyExists(self.root.clone()));
            }
        }
        fs::create_dir_all(&self.root).at(&self.root)?;
        for dir in [
            self.locks_dir(),
            self.keys_dir(),
            self.snapshots_dir(),
            self.index_dir(),
            self.data_dir(),
            self.tmp_dir(),
        ] {
            fs::create_dir_all(&dir).at(&dir)?;
        }
        for i in 0..=255u8 {
            let dir = self.data_dir().join(to_hex(&[i]));
            fs::create_dir_all(&dir).at(&dir)?;
        }
        sync_dir(&self.data_dir())?;
        sync_dir(&self.root)?;
        if let Some(parent) = self.root.parent() {
            // Best effort: the parent may be a read-only mount point's root.
            let _ = sync_dir(parent);
        }
        Ok(())
    }

    /// Starts writing a new file under `tmp/`.
    pub fn temp_file(&self) -> Result<TempFile> {
        let suffix: [u8; 8] = crate::crypto::random_array();
        let path = self
            .tmp_dir()
            .join(format!("{}-{}.tmp", std::process::id(), to_hex(&suffix)));
        let open = || OpenOptions::new().write(true).create_new(true).open(&path);
        let file = match open() {
            // Empty folders are easily lost when a repository is copied
            // (some copy and sync tools skip them): recreate, do not fail.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(self.tmp_dir()).at(self.tmp_dir())?;
                open()
            }
            other => other,
        }
        .at(&path)?;
        Ok(TempFile {
            path,
            // Packs arrive a megabyte at a time (the pack writer gathers its
            // blobs); a small buffer is enough for everything else.
            file: Some(std::io::BufWriter::with_capacity(64 << 10, file)),
        })
    }

    /// Writes a whole small file atomically and durably at `dest`.
    ///
    /// # Errors
    /// I/O errors, [`Error::DriveFull`] when the drive is full (nothing is left at `dest`).
    pub fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes)?;
        tmp.commit(dest)
    }

    /// Reads a whole file.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>> {
        fs::read(path).at(path)
    }

    /// Reads `len` bytes at `offset` of an open file.
    pub fn read_at(file: &File, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::corrupt("pack", file_name(path), "shorter than the index says")
            } else {
                Error::io(path, e)
            }
        })?;
        Ok(buf)
    }

    /// Every pack file under `data/` with its size. Files whose name is not a
    /// pack id are ignored.
    pub fn list_packs(&self) -> Result<Vec<(PackId, u64)>> {
        let mut out = Vec::new();
        let data = self.data_dir();
        if !data.exists() {
            return Ok(out);
        }
        for sub in fs::read_dir(&data).at(&data)? {
            let sub = sub.at(&data)?.path();
            if !sub.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&sub).at(&sub)? {
                let entry = entry.at(&sub)?;
                let name = entry.file_name();
                if let Some(id) = name.to_str().and_then(PackId::from_hex) {
                    let len = entry.metadata().at(entry.path())?.len();
                    out.push((id, len));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every snapshot record id.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotId>> {
        let dir = self.snapshots_dir();
        let mut out = Vec::new();
        // A folder dropped by a copy tool (empty folders are easily lost)
        // holds nothing: no error.
        if !dir.exists() {
            return Ok(out);
        }
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            if let Some(id) = name.to_str().and_then(SnapshotId::from_hex) {
                out.push(id);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes a pack file (prune only) and syncs its folder.
    pub fn delete_pack(&self, id: &PackId) -> Result<()> {
        let path = self.pack_path(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(path, e)),
        }
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Deletes a snapshot record (forget only) and syncs its folder, so the
    /// removal survives a power loss.
    pub fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        let path = self.snapshot_path(id);
        fs::remove_file(&path).at(&path)?;
        sync_dir(&self.snapshots_dir())
    }

    /// Removes files left in `tmp/` by writers that are no longer running on
    /// this machine (a crash or kill mid-write). Returns how many were removed.
    pub fn remove_stale_temp_files(&self) -> Result<usize> {
        let dir = self.tmp_dir();
        let mut removed = 0;
        if !dir.exists() {
            return Ok(0);
        }
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            if !entry.file_type().at(entry.path())?.is_file() {
                continue;
            }
            let pid = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<i32>().ok());
            let alive = match pid {
                // SAFETY: kill with signal 0 only checks that the process
                // exists; EPERM means it exists under another user.
                Some(pid) if pid > 0 => unsafe {
                    libc::kill(pid, 0) == 0
                        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
                },
                _ => false,
            };
            if !alive {
                fs::remove_file(entry.path()).at(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl TempFile {
    /// Appends bytes.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self.file.as_mut().expect("temp file is open until commit");
        file.write_all(bytes).at(&self.path)
    }

    /// Flushes, fsyncs and closes the file (which stays at its temporary
    /// path; the caller moves or removes it).
    fn sync_and_close(&mut self) -> Result<()> {
        let file = self.file.take().expect("temp file is open until commit");
        let file = file
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        file.sync_all().at(&self.path)?;
        // Written once and not read again by this run: leave the page cache
        // to the machine's own work (a first snapshot writes a gigabyte of
        // packs), and the freed pages to the next pack instead of making
        // the kernel reclaim others. Only advice: a failure changes nothing.
        // SAFETY: fadvise on a descriptor we own, no memory involved.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
        Ok(())
    }

    /// Makes the file durable and moves it to `dest`: fsync the file, rename,
    /// fsync the destination directory.
    pub fn commit(mut self, dest: &Path) -> Result<()> {
        self.sync_and_close()?;
        match fs::rename(&self.path, dest) {
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && dest.parent().is_some_and(|d| !d.exists()) =>
            {
                // A missing `data/xx/` folder (see `Store::temp_file`).
                let dir = dest.parent().expect("checked above");
                fs::create_dir_all(dir).at(dir)?;
                if let Some(up) = dir.parent() {
                    sync_dir(up)?;
                }
                fs::rename(&self.path, dest).at(dest)?;
            }
            other => other.at(dest)?,
        }
        if let Some(dir) = dest.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

impl TempFile {
    /// [`TempFile::commit`], but never replacing an existing `dest`: returns
    /// false (and removes the temporary file) when `dest` exists.
    pub fn commit_new(mut self, dest: &Path) -> Result<bool> {
        self.sync_and_close()?;
        // A hard link fails when the name is taken; unlike rename it cannot
        // replace. Drives whose filesystem has no hard links (exFAT) fall
        // back to a look then a rename: the window is tiny and only two
        // first snapshots started together could meet in it.
        let linked = match fs::hard_link(&self.path, dest) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(_) if dest.exists() => false,
            Err(_) => {
                fs::rename(&self.path, dest).at(dest)?;
                true
            }
        };
        let _ = fs::remove_file(&self.path);
        if linked {
            if let Some(dir) = dest.parent() {
                sync_dir(dir)?;
            }
        }
        Ok(linked)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// fsyncs a directory so that renames into it survive a power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_and_stale_temp_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("repo"));
        store.create_layout().unwrap();
        assert!(matches!(
            store.create_layout(),
            Err(Error::AlreadyExists(_))
        ));
        let dest = store.snapshots_dir().join("x");
        store.write_atomic(&dest, b"abc").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"abc");
        // A temp file of a dead writer (pid 0 never names a live writer) is removed,
        // one of ours (still running) is kept.
        fs::write(store.tmp_dir().join("999999999-00.tmp"), b"x").unwrap();
        let mine = store.temp_file().unwrap();
        assert_eq!(store.remove_stale_temp_files().unwrap(), 1);
        drop(mine);
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn write_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("repo"));
        store.create_layout().unwrap();
        let dest = store.dictionary_path();
        assert!(store.write_new(&dest, b"first").unwrap());
        assert!(!store.write_new(&dest, b"second").unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"first");
        // Neither attempt leaves a temporary file behind.
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    }
}
