//! A local cache of whole packs read from an S3 store, bounded in size,
//! whose loss costs nothing but time.
//!
//! A pack is fetched whole by one request the first time any of its blobs
//! is read, checked against its name (a pack is named by the BLAKE3 hash of
//! its bytes, so a store cannot slip another one in), kept in a file, and
//! then read from there: a restore, a check or a mount asks for hundreds
//! of blobs per pack, and one round trip each would cost minutes on a
//! pharmacy's line. Packs never change, so a cached copy never goes stale.
//! Beyond the size bound, the least recently used packs are deleted.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::backend::ObjectName;

/// The cache folder of one repository and its size bound.
#[derive(Debug)]
pub struct PackCache {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes in the folder, counted on first use.
    used: Mutex<Option<u64>>,
}

impl PackCache {
    /// A cache in `dir` (made when first written) holding at most
    /// `max_bytes`.
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        Self {
            dir,
            max_bytes,
            used: Mutex::new(None),
        }
    }

    fn path(&self, name: &ObjectName) -> PathBuf {
        // Pack names are 64 hex digits: nothing to escape.
        self.dir.join(name.as_str())
    }

    /// `len` bytes at `offset` of a cached pack; `None` when it is not
    /// cached or shorter than asked (then it is fetched again).
    pub fn read_at(&self, name: &ObjectName, offset: u64, len: usize) -> Option<Vec<u8>> {
        let path = self.path(name);
        let file = File::open(&path).ok()?;
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset).ok()?;
        // Mark it used, for the eviction order.
        let _ = file.set_modified(SystemTime::now());
        Some(buf)
    }

    /// The cached size of a pack, if cached.
    #[cfg(test)]
    pub fn size(&self, name: &ObjectName) -> Option<u64> {
        std::fs::metadata(self.path(name)).ok().map(|m| m.len())
    }

    /// Keeps `bytes` as pack `name` if they are that pack (their hash is
    /// its name), then deletes the oldest packs beyond the bound. Failing
    /// to cache is not an error: the next read fetches again.
    pub fn insert(&self, name: &ObjectName, bytes: &[u8]) -> bool {
        if name.to_id() != Some(*blake3::hash(bytes).as_bytes()) {
            return false;
        }
        if bytes.len() as u64 > self.max_bytes {
            return false;
        }
        let path = self.path(name);
        let tmp = self
            .dir
            .join(format!("tmp-{}-{}", std::process::id(), name.short()));
        // Private whatever the umask: packs are sealed, but their names and
        // sizes say what the repository holds.
        let written = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .and_then(|()| {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(bytes)
            })
            .and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return false;
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let total = used.get_or_insert_with(|| folder_size(&self.dir));
        *total += bytes.len() as u64;
        if *total > self.max_bytes {
            *total = evict(&self.dir, self.max_bytes);
        }
        true
    }
}

fn entries(dir: &Path) -> Vec<(SystemTime, u64, PathBuf)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.filter_map(|e| {
        let e = e.ok()?;
        let m = e.metadata().ok()?;
        m.is_file().then(|| {
            (
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.len(),
                e.path(),
            )
        })
    })
    .collect()
}

fn folder_size(dir: &Path) -> u64 {
    entries(dir).iter().map(|(_, len, _)| len).sum()
}

/// Deletes the least recently used packs until at most three quarters of
/// `max` remain (so eviction is not repeated at every insert); returns
/// what remains.
fn evict(dir: &Path, max: u64) -> u64 {
    let mut all = entries(dir);
    all.sort();
    let mut total: u64 = all.iter().map(|(_, len, _)| len).sum();
    for (_, len, path) in all {
        if total <= max / 4 * 3 {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::FileKind;

    fn pack(seed: u64, len: usize) -> (ObjectName, Vec<u8>) {
        let bytes = crate::backend::conformance::pseudo_random(seed, len);
        let name = ObjectName::parse(FileKind::Pack, &blake3::hash(&bytes).to_hex()).unwrap();
        (name, bytes)
    }

    #[test]
    fn keeps_packs_whose_bytes_match_their_name_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PackCache::new(dir.path().join("packs"), 10_000);
        let (a, bytes_a) = pack(1, 4000);
        assert!(cache.read_at(&a, 0, 10).is_none());
        assert!(cache.insert(&a, &bytes_a));
        assert_eq!(cache.read_at(&a, 100, 50).unwrap(), bytes_a[100..150]);
        assert!(cache.read_at(&a, 3990, 50).is_none(), "past the end");

        // Bytes that are not the named pack are refused.
        let (b, _) = pack(2, 4000);
        assert!(!cache.insert(&b, &bytes_a));
        assert!(cache.size(&b).is_none());

        // Beyond the bound, the least recently used go first.
        std::thread::sleep(std::time::Duration::from_millis(20));
        for seed in 3..6 {
            let (n, bytes) = pack(seed, 4000);
            assert!(cache.insert(&n, &bytes));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(folder_size(&dir.path().join("packs")) <= 10_000);
        assert!(cache.size(&a).is_none(), "the oldest pack was evicted");
        let (last, _) = pack(5, 4000);
        assert_eq!(cache.size(&last), Some(4000));
    }
}
