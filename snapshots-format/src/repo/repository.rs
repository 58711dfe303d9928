//! An opened repository: header checked, master key unwrapped, index open.
//! Reading goes through here (blobs, trees, file contents, snapshots);
//! writing blobs goes through [`crate::repo::saver::Saver`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::backend::{Backend, FileKind, Location as Place, ObjectName};
use crate::codec::DecodeError;
use crate::crypto::{Keys, MasterKey, ObjectKind};
use crate::error::{Error, Result};
use crate::format::blob::{self, BlobKind};
use crate::format::content::{Content, Extent};
use crate::format::dictionary::Dictionary;
use crate::format::header::{Header, INDEX_FILES_VERSION, KEY_BINDING_VERSION, KEY_CHECK_VERSION};
use crate::format::index_file::{self, IndexedPack};
use crate::format::keyfile::{KdfParams, KeyKind, KeyLabel};
use crate::format::pack::PackEntry;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{decode_listing, join_pieces, Listing, Tree};
use crate::id::{to_hex, BlobId, PackId, SnapshotId};
use crate::repo::chunk_list_reader::ChunkListReader;
use crate::repo::index::{Index, Location, INDEX_FILE};
use crate::repo::keyring::{self, KeyEntry, OpenedWith};
use crate::repo::listing_reader::ListingReader;
use crate::repo::lock::LockKind;

/// [`Repository::load_blobs`] reads over gaps up to this size between blobs
/// (another reader's blobs, interleaved in the pack) rather than read twice.
const READ_GAP: u64 = 64 << 10;
/// ... and reads at most this much at once (more for a single larger blob).
const READ_RUN: u64 = 256 << 10;

/// Magic opening the saved policy file.
const POLICY_MAGIC: &[u8; 8] = b"COFFREPL";
/// Magic opening the dictionary file.
const DICT_MAGIC: &[u8; 8] = b"COFFREDI";
/// Version of the dictionary file's plaintext.
const DICT_VERSION: u8 = 1;

/// Snapshots with their ids, oldest first.
pub type SnapshotList = Vec<(SnapshotId, Snapshot)>;

/// An open, unlocked repository.
pub struct Repository {
    backend: Arc<dyn Backend>,
    keys: Keys,
    /// Kept to wrap it under new passphrases (`key add`, `key passwd`).
    master: MasterKey,
    /// The key file that opened it.
    opened_with: OpenedWith,
    index: Index,
    header: Header,
    /// The format version in `config` now: the header's, or higher once
    /// this process wrote a newer kind of object ([`Repository::raise_format`]).
    format: AtomicU32,
    /// The compression dictionary once read. Its absence is not cached: a
    /// mount open while the first snapshot trains one must then find it.
    dictionary: Mutex<Option<Arc<Dictionary>>>,
    /// The bytes of the dictionary file that was read, and what was wrong
    /// with the other copy, if anything ([`Repository::mend_dictionary`]).
    dictionary_files: Mutex<DictionaryFiles>,
    /// Index files that could not be read at the last sync: what was wrong
    /// (for `check`) and their names (for adopting leftovers).
    index_damage: Mutex<(Vec<String>, Vec<ObjectName>)>,
    /// The lock this process works under, once taken ([`Repository::confirm_lock`]).
    held_lock: Arc<Mutex<Option<(ObjectName, LockKind)>>>,
    /// This repository's folder of local caches (index, journal).
    cache_folder: PathBuf,
}

/// The two files holding the compression dictionary (FORMAT.md §17.1).
const DICTIONARY_FILES: [FileKind; 2] = [FileKind::Dictionary, FileKind::DictionaryCopy];

/// What [`Repository::dictionary`] found in the two dictionary files.
#[derive(Default)]
struct DictionaryFiles {
    /// The bytes of a copy that opened.
    good: Option<Vec<u8>>,
    /// What is wrong with the other copy.
    problem: Option<String>,
}

/// The file in a repository's cache folder naming the key file that last
/// opened it here, tried first at the next open.
const LAST_KEY: &str = "last-key";

/// The key file that last opened the repository whose cache folder is
/// `folder`, if this machine remembers one.
fn last_key(folder: &Path) -> Option<ObjectName> {
    let name = std::fs::read_to_string(folder.join(LAST_KEY)).ok()?;
    ObjectName::parse(FileKind::Key, name.trim())
}

/// The file in a repository's cache folder remembering its key-check value.
const KEY_CHECK_PIN: &str = "key-check";

/// Compares the header's key-check value with the one this machine saw
/// before for this repository, and remembers it the first time. The drive
/// leaves the building: someone who rewrote `config` (another key check,
/// or an older format without one) together with planted key files must
/// not get this machine to write under their key.
///
/// # Errors
/// [`Error::Refused`] when they differ; [`Error::Cache`] when the pin cannot
/// be read or written.
fn pin_key_check(cache_folder: &Path, header: &Header) -> Result<()> {
    let pin = cache_folder.join(KEY_CHECK_PIN);
    let cache_err = |e: std::io::Error| Error::Cache {
        path: pin.clone(),
        reason: e.to_string(),
    };
    let seen = match std::fs::read(&pin) {
        // A pin of any other length was cut by a crash while an older
        // Coffre wrote it in place: it says nothing, and is written again.
        // (The drive is what may be tampered with; whoever can change this
        // machine's cache folder could as well delete the pin.)
        Ok(bytes) if bytes.len() == crate::crypto::KEY_CHECK_LEN => Some(bytes),
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(cache_err(e)),
    };
    match (seen, header.key_check) {
        (Some(seen), Some(check)) if seen == check => Ok(()),
        (Some(_), _) => Err(Error::Refused(
            "this drive's config file no longer matches the key this machine saw for the repository (replaced or downgraded): it may have been tampered with; do not write to it, restore from another drive, and see GUIDE.md, \"A drive that was tampered with\"".into(),
        )),
        (None, Some(check)) => {
            // Written aside, then renamed: a kill or a power cut leaves the
            // old pin or the new one, never a torn one (which an earlier
            // version, writing in place, took for a replaced `config`).
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let aside = cache_folder.join(format!("{KEY_CHECK_PIN}.{}.tmp", std::process::id()));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&aside)
                .map_err(cache_err)?;
            file.write_all(&check)
                .and_then(|()| file.sync_all())
                .and_then(|()| std::fs::rename(&aside, &pin))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&aside);
                    cache_err(e)
                })
        }
        (None, None) => Ok(()),
    }
}

/// Where the local index caches live unless told: `COFFRE_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/coffre`, else `~/.cache/coffre`, else (root without a
/// home, as under some schedulers) `/var/cache/coffre`.
///
/// # Errors
/// [`Error::Io`] when none of them can be found.
pub fn default_cache_dir() -> Result<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("COFFRE_CACHE_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return Ok(dir.join("coffre"));
    }
    if let Some(home) = var("HOME") {
        return Ok(home.join(".cache").join("coffre"));
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(PathBuf::from("/var/cache/coffre"));
    }
    Err(Error::io(
        "cache",
        std::io::Error::other("no cache folder: set COFFRE_CACHE_DIR or HOME"),
    ))
}

impl Repository {
    /// Creates a new repository in the folder `path` protected by
    /// `passphrase`, its cache in [`default_cache_dir`].
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when `path` is a non-empty directory.
    pub fn init(path: impl Into<Place>, passphrase: &[u8], kdf: KdfParams) -> Result<Self> {
        let backend = path.into().open_for_init()?;
        Self::init_with(backend, &default_cache_dir()?, passphrase, kdf)
    }

    /// Creates a new repository on `backend`, its index cache under `cache`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when the location is not empty.
    pub fn init_with(
        backend: Arc<dyn Backend>,
        cache: &Path,
        passphrase: &[u8],
        kdf: KdfParams,
    ) -> Result<Self> {
        Self::init_with_master(backend, cache, MasterKey::generate(), passphrase, kdf)
    }

    /// Creates a new repository on `backend` around an existing master
    /// key: `copy` makes its target so, so that both derive the same blob
    /// ids and chunk boundaries (the repository id, and so every object's
    /// sealing, still differs).
    ///
    /// # Errors
    /// As [`Repository::init_with`].
    pub(crate) fn init_with_master(
        backend: Arc<dyn Backend>,
        cache: &Path,
        master: MasterKey,
        passphrase: &[u8],
        kdf: KdfParams,
    ) -> Result<Self> {
        backend.create()?;
        let header = Header::new(&master);
        let keys = Keys::derive(&master, header.repo_id);
        let label = keyring::new_label(KeyKind::Passphrase, "initial");
        let name = keyring::add(&*backend, &keys, &master, passphrase, kdf, &label)?;
        // The header is written last: until it exists the location is not a
        // repository, so an interrupted init can simply be retried.
        backend.write(
            FileKind::Config,
            &ObjectName::single(),
            &header.encode(),
            true,
        )?;
        Self::with_key(backend, cache, header, master, OpenedWith { name })
    }

    /// Opens the repository in the folder `path` with `passphrase`, its
    /// cache in [`default_cache_dir`].
    ///
    /// # Errors
    /// [`Error::RepositoryMissing`], [`Error::NotARepository`],
    /// [`Error::UnsupportedVersion`], [`Error::WrongPassphrase`].
    pub fn open(path: impl Into<Place>, passphrase: &[u8]) -> Result<Self> {
        let backend = path.into().open()?;
        Self::open_with(backend, &default_cache_dir()?, passphrase)
    }

    /// Opens the repository on `backend`, its index cache under `cache`.
    ///
    /// # Errors
    /// As [`Repository::open`].
    pub fn open_with(backend: Arc<dyn Backend>, cache: &Path, passphrase: &[u8]) -> Result<Self> {
        let header = Self::header_of(&*backend)?;
        let folder = Self::cache_folder_of(cache, &header, &backend.location());
        let (master, opened) =
            keyring::unlock(&*backend, &header, passphrase, last_key(&folder).as_ref())?;
        Self::with_key(backend, cache, header, master, opened)
    }

    /// Opens the repository in the folder `path` after deleting its local
    /// index cache (for `rebuild-index`, which works even when the cache is
    /// unreadable).
    ///
    /// # Errors
    /// As [`Repository::open`].
    pub fn open_with_fresh_index(path: impl Into<Place>, passphrase: &[u8]) -> Result<Self> {
        let backend = path.into().open()?;
        let cache = default_cache_dir()?;
        let header = Self::header_of(&*backend)?;
        let folder = Self::cache_folder_of(&cache, &header, &backend.location());
        let (master, opened) =
            keyring::unlock(&*backend, &header, passphrase, last_key(&folder).as_ref())?;
        Index::remove_files(&Self::cache_path(&cache, &header, &backend.location()))?;
        Self::with_key(backend, &cache, header, master, opened)
    }

    /// The folder of this repository's caches on this machine.
    fn cache_folder_of(cache: &Path, header: &Header, location: &str) -> PathBuf {
        let index = Self::cache_path(cache, header, location);
        index.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    /// One cache per repository and place: copies of a repository (same
    /// id) on two drives, or a fixture copied twice, must not share one.
    fn cache_path(cache: &Path, header: &Header, location: &str) -> PathBuf {
        let mut h = blake3::Hasher::new();
        h.update(&header.repo_id);
        h.update(location.as_bytes());
        let place = &h.finalize().to_hex()[..16];
        cache
            .join(format!("{}-{place}", to_hex(&header.repo_id)))
            .join(INDEX_FILE)
    }

    /// Reads and checks the header of the folder `path` alone (no
    /// passphrase needed).
    ///
    /// # Errors
    /// [`Error::RepositoryMissing`], [`Error::NotARepository`],
    /// [`Error::UnsupportedVersion`].
    pub fn read_header(path: impl Into<Place>) -> Result<(Arc<dyn Backend>, Header)> {
        let backend = path.into().open()?;
        let header = Self::header_of(&*backend)?;
        Ok((backend, header))
    }

    /// Reads and checks the header on `backend`.
    ///
    /// # Errors
    /// As [`Repository::read_header`].
    pub fn header_of(backend: &dyn Backend) -> Result<Header> {
        let not_repo = || Error::NotARepository(PathBuf::from(backend.location()));
        let bytes = match backend.read(FileKind::Config, &ObjectName::single()) {
            Ok(Some(b)) => b,
            Ok(None) => return Err(not_repo()),
            Err(e) => return Err(e),
        };
        Header::decode(&bytes, &PathBuf::from(backend.location()).join("config"))
    }

    fn with_key(
        backend: Arc<dyn Backend>,
        cache: &Path,
        header: Header,
        master: MasterKey,
        opened_with: OpenedWith,
    ) -> Result<Self> {
        let keys = Keys::derive(&master, header.repo_id);
        let path = Self::cache_path(cache, &header, &backend.location());
        let index = Index::open(&path).map_err(|e| match e {
            Error::Io { path, source } => Error::Cache {
                path,
                reason: source.to_string(),
            },
            Error::Index(err) => Error::Cache {
                path: path.clone(),
                reason: err.to_string(),
            },
            other => other,
        })?;
        let cache_folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
        pin_key_check(&cache_folder, &header)?;
        // Best effort: it only orders the key files tried at the next open.
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(cache_folder.join(LAST_KEY))
                .and_then(|mut f| f.write_all(opened_with.name.as_str().as_bytes()));
        }
        let repo = Self {
            backend,
            keys,
            master,
            opened_with,
            index,
            format: AtomicU32::new(header.version),
            header,
            dictionary: Mutex::new(None),
            dictionary_files: Mutex::new(DictionaryFiles::default()),
            index_damage: Mutex::new((Vec::new(), Vec::new())),
            held_lock: Arc::new(Mutex::new(None)),
            cache_folder,
        };
        repo.refresh_index()?;
        Ok(repo)
    }

    /// Reads the index files (or, before format 4, the pack trailers) that
    /// the local cache has not seen: another process or machine may have
    /// written to the repository since it was opened.
    ///
    /// # Errors
    /// Listing errors.
    pub fn refresh_index(&self) -> Result<()> {
        let legacy = self.format.load(Ordering::Acquire) < INDEX_FILES_VERSION;
        let (report, damaged) = self.index.sync(&*self.backend, &self.keys, legacy)?;
        *self.index_damage.lock().unwrap_or_else(|p| p.into_inner()) = (
            damaged.iter().map(ToString::to_string).collect(),
            report.damaged_files,
        );
        Ok(())
    }

    /// What was wrong with the index files found damaged by the last
    /// [`Repository::refresh_index`].
    pub fn index_damage(&self) -> Vec<String> {
        self.index_damage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// The names of the index files found damaged by the last
    /// [`Repository::refresh_index`].
    pub fn damaged_index_files(&self) -> Vec<ObjectName> {
        self.index_damage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// Gets a repository ready to be written by this version, once the
    /// caller holds its lock: removes what dead writers left half-written,
    /// moves a repository of format 3 or earlier to index files (FORMAT.md
    /// §6.5), and brings the cache in line with the drive as it is now.
    /// The cache was synced when the repository was opened, maybe before a
    /// prune elsewhere finished: a blob it still places in a deleted pack
    /// would be "already stored" for this snapshot, which would then point
    /// at nothing.
    ///
    /// # Errors
    /// Storage errors.
    pub fn prepare_write(&self) -> Result<()> {
        self.backend.remove_leftovers()?;
        if self.format.load(Ordering::Acquire) < INDEX_FILES_VERSION {
            self.upgrade_to_index_files()?;
        }
        self.raise_format(KEY_BINDING_VERSION)?;
        // Best effort, as the dictionary below: a key file left unbound
        // (a drive that refuses replacing files) is only less protected.
        let _ = keyring::bind_labels(&*self.backend, &self.keys);
        // Best effort: a dictionary that still opens from one copy is not
        // a reason to refuse a snapshot, and `check` keeps reporting it.
        let _ = self.mend_dictionary();
        self.refresh_index()?;
        let present: std::collections::HashSet<PackId> =
            self.list_packs()?.into_iter().map(|(id, _)| id).collect();
        let gone: Vec<PackId> = self
            .index
            .packs()?
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| !present.contains(id))
            .collect();
        if !gone.is_empty() {
            self.index.replace_packs(&self.keys, &[], &gone)?;
        }
        Ok(())
    }

    /// FORMAT.md §6.5. Index files first (an older Coffre ignores them),
    /// then the header (an older Coffre now refuses the repository), then
    /// the old database: a crash anywhere leaves a readable repository and
    /// this step simply runs again.
    fn upgrade_to_index_files(&self) -> Result<()> {
        // Files of an upgrade interrupted earlier may list packs an older
        // Coffre pruned since: they are written again from the packs.
        for (name, _) in self.backend.list(FileKind::Index)? {
            self.backend.delete(FileKind::Index, &name)?;
        }
        let mut complete = true;
        let mut group = Vec::new();
        for (name, size) in self.backend.list(FileKind::Pack)? {
            let Some(id) = name.to_id().map(PackId) else {
                continue;
            };
            match crate::repo::pack_writer::read_entries(&*self.backend, &id, size, &self.keys) {
                Ok(entries) => group.push(IndexedPack { id, size, entries }),
                // A passing failure: try the whole upgrade again later.
                Err(e) if e.is_transient() => return Err(e),
                // A damaged trailer: that pack is left out (`check` names
                // it), and the old database is kept, as the only other
                // record of what the pack holds.
                Err(_) => complete = false,
            }
        }
        self.write_index_files(&group)?;
        self.raise_format(INDEX_FILES_VERSION)?;
        if complete {
            // Best effort: a leftover old database is ignored from now on,
            // and this step does not run again to retry.
            for (name, _) in self.backend.list(FileKind::LegacyIndex)? {
                let _ = self.backend.delete(FileKind::LegacyIndex, &name);
            }
        }
        Ok(())
    }

    /// Writes `packs` as index files of bounded size ([`index_file::groups`]).
    ///
    /// # Errors
    /// Storage errors.
    pub fn write_index_files(&self, packs: &[IndexedPack]) -> Result<Vec<[u8; 32]>> {
        let mut names = Vec::new();
        for group in index_file::groups(packs) {
            names.extend(self.write_index_file(group)?);
        }
        Ok(names)
    }

    /// Writes an index file listing `packs` (already durable), then records
    /// them in the cache. Nothing is written for no packs.
    ///
    /// # Errors
    /// Storage errors.
    pub fn write_index_file(&self, packs: &[IndexedPack]) -> Result<Option<[u8; 32]>> {
        if packs.is_empty() {
            return Ok(None);
        }
        let (name, bytes) = index_file::encode(&self.keys, packs);
        self.backend
            .write(FileKind::Index, &ObjectName::id(&name), &bytes, false)?;
        self.index.add_file(&self.keys, Some(&name), packs)?;
        Ok(Some(name))
    }

    /// Adds a key file wrapping the master key under `passphrase`, with
    /// `label`; returns its id. A key file whose label binds its body needs format 7.
    ///
    /// # Errors
    /// Storage errors.
    pub fn add_key(&self, passphrase: &[u8], kdf: KdfParams, label: &KeyLabel) -> Result<String> {
        self.raise_format(KEY_BINDING_VERSION)?;
        let name = keyring::add(
            &*self.backend,
            &self.keys,
            &self.master,
            passphrase,
            kdf,
            label,
        )?;
        Ok(name.as_str().to_string())
    }

    /// Every key file, with its label and whether it opened this run.
    ///
    /// # Errors
    /// Storage errors.
    pub fn list_keys(&self) -> Result<Vec<KeyEntry>> {
        keyring::list(&*self.backend, &self.keys, &self.opened_with)
    }

    /// The key file that opened the repository, with its label (only that
    /// file is read: every command asks, to warn about a recovery key).
    pub fn current_key(&self) -> KeyEntry {
        keyring::entry(&*self.backend, &self.keys, &self.opened_with.name, true)
    }

    /// Removes the key file named `spec` (id prefix or name).
    ///
    /// # Errors
    /// [`Error::Refused`] when nothing or several match, or for the last key.
    pub fn remove_key(&self, spec: &str) -> Result<KeyEntry> {
        let all = self.list_keys()?;
        let found = keyring::find(&all, spec)?.clone();
        keyring::remove(&*self.backend, &all, &found.id)?;
        Ok(found)
    }

    /// Replaces the passphrase of the key that opened the repository: a new
    /// key file with the same label, then the old one removed (data is not
    /// touched). Returns the new key's id.
    ///
    /// # Errors
    /// Storage errors.
    pub fn change_passphrase(&self, new_passphrase: &[u8], kdf: KdfParams) -> Result<String> {
        let current = self.current_key();
        let label = match current.label {
            Some(mut l) => {
                l.kind = KeyKind::Passphrase;
                l
            }
            None => keyring::new_label(KeyKind::Passphrase, "initial"),
        };
        let id = self.add_key(new_passphrase, kdf, &label)?;
        let all = self.list_keys()?;
        keyring::remove(&*self.backend, &all, &current.id)?;
        Ok(id)
    }

    /// Where [`crate::repo::lock::acquire`] records the lock it took.
    pub(crate) fn held_lock(&self) -> Arc<Mutex<Option<(ObjectName, LockKind)>>> {
        Arc::clone(&self.held_lock)
    }

    /// Just before work becomes visible (a snapshot record, prune's
    /// deletions): checks that this process's lock is still there and, for
    /// an exclusive one, that nobody else took one since. Without a lock
    /// (the library used directly) there is nothing to confirm.
    ///
    /// # Errors
    /// [`Error::Refused`] when the lock was removed or another appeared.
    pub fn confirm_lock(&self) -> Result<()> {
        let held = self
            .held_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match held {
            Some((name, kind)) => crate::repo::lock::confirm(self, &name, kind),
            None => Ok(()),
        }
    }

    /// The storage the repository is on.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// A shared handle on the storage.
    pub fn backend_arc(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }

    /// The master key, for `copy` to give its target the same one.
    pub(crate) fn master_key(&self) -> &MasterKey {
        &self.master
    }

    /// The working keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The local index cache.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The plaintext header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Every pack on the drive with its size.
    ///
    /// # Errors
    /// Listing errors.
    pub fn list_packs(&self) -> Result<Vec<(PackId, u64)>> {
        Ok(self
            .backend
            .list(FileKind::Pack)?
            .into_iter()
            .filter_map(|(n, size)| n.to_id().map(|id| (PackId(id), size)))
            .collect())
    }

    /// Every snapshot record id.
    ///
    /// # Errors
    /// Listing errors.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotId>> {
        Ok(self
            .backend
            .list(FileKind::Snapshot)?
            .into_iter()
            .filter_map(|(n, _)| n.to_id().map(SnapshotId))
            .collect())
    }

    /// Deletes a snapshot record (forget), durably.
    ///
    /// # Errors
    /// Storage errors.
    pub fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        self.backend
            .delete(FileKind::Snapshot, &ObjectName::snapshot(id))
    }

    /// Reads, decrypts and verifies one blob.
    ///
    /// # Errors
    /// [`Error::BlobNotFound`] when the index does not know it, [`Error::Corrupt`]
    /// when its bytes are damaged.
    pub fn load_blob(&self, kind: BlobKind, id: &BlobId) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.load_blobs(kind, std::slice::from_ref(id), |_, data| {
            out = data;
            Ok(())
        })?;
        Ok(out)
    }

    /// Reads, decrypts and verifies the blobs `ids`, all of `kind`, and
    /// calls `each(i, data)` for `ids[i]`, in the order they sit in the
    /// packs (not the order of `ids`). The lookups share one transaction and
    /// blobs lying close together in a pack are read at once: a database
    /// restored page by page made a lookup and a read per 8 KiB.
    ///
    /// File contents are asked for as [`BlobKind::Data`], whole or delta
    /// alike: the ids of a file's extents name either ([`Extent::blob_kind`]),
    /// and each id's hash binds its own kind.
    ///
    /// # Errors
    /// As [`Repository::load_blob`], and those of `each`.
    pub fn load_blobs(
        &self,
        kind: BlobKind,
        ids: &[BlobId],
        each: impl FnMut(usize, Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.load_blobs_as(kind, kind == BlobKind::Data, ids, each)
    }

    /// [`Repository::load_blobs`], taking deltas for data only when
    /// `deltas_as_data`: a delta's base must be whole.
    fn load_blobs_as(
        &self,
        kind: BlobKind,
        deltas_as_data: bool,
        ids: &[BlobId],
        each: impl FnMut(usize, Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let locs = self.locate_blobs(ids)?;
        self.load_located_as(kind, deltas_as_data, ids, &locs, each)
    }

    /// Where each of `ids` is, from the index (read again when one is
    /// missing: written since this process read it).
    ///
    /// # Errors
    /// [`Error::BlobNotFound`] for an id the index does not know; a damaged
    /// index row.
    pub fn locate_blobs(&self, ids: &[BlobId]) -> Result<Vec<Location>> {
        let mut locs = self.index.lookup_many(&self.keys, ids)?;
        if locs.iter().any(Option::is_none) {
            // Written since this process read the index files (a mount
            // open while tonight's snapshot runs): read the new ones.
            self.refresh_index()?;
            locs = self.index.lookup_many(&self.keys, ids)?;
        }
        ids.iter()
            .zip(locs)
            .map(|(id, loc)| loc.ok_or_else(|| Error::BlobNotFound(id.short())))
            .collect()
    }

    /// [`Repository::load_blobs`] at locations already known (`locs[i]` is
    /// where `ids[i]` is): from [`Repository::locate_blobs`], or from a
    /// pack's trailer ([`Repository::pack_entries`]). A wrong location
    /// fails as damage: every blob is authenticated with its own id.
    ///
    /// # Errors
    /// As [`Repository::load_blobs`].
    pub fn load_located(
        &self,
        kind: BlobKind,
        ids: &[BlobId],
        locs: &[Location],
        each: impl FnMut(usize, Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.load_located_as(kind, kind == BlobKind::Data, ids, locs, each)
    }

    fn load_located_as(
        &self,
        kind: BlobKind,
        deltas_as_data: bool,
        ids: &[BlobId],
        locs: &[Location],
        mut each: impl FnMut(usize, Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let mut order = Vec::with_capacity(ids.len());
        for (i, (id, loc)) in ids.iter().zip(locs).enumerate() {
            let delta_for_data = deltas_as_data && loc.kind == BlobKind::Delta;
            if loc.kind != kind && !delta_for_data {
                return Err(Error::corrupt(
                    kind.name(),
                    id.short(),
                    "indexed as another kind of blob",
                ));
            }
            order.push((i, *loc));
        }
        order.sort_unstable_by_key(|(_, l)| (l.pack, l.offset));
        let span = |l: &Location| {
            (
                u64::from(l.offset),
                u64::from(l.offset) + u64::from(l.length),
            )
        };
        let mut rest = &order[..];
        while let Some((_, first)) = rest.first() {
            // One read for the blobs that follow within READ_GAP of each
            // other, up to READ_RUN bytes (a blob listed twice is read once).
            let (start, mut end) = span(first);
            let mut n = 1;
            while let Some((_, next)) = rest.get(n) {
                let (from, to) = span(next);
                if next.pack != first.pack
                    || from > end + READ_GAP
                    || to.max(end) - start > READ_RUN
                {
                    break;
                }
                end = end.max(to);
                n += 1;
            }
            let run = self.backend.read_at(
                FileKind::Pack,
                &ObjectName::pack(&first.pack),
                start,
                (end - start) as usize,
            )?;
            for (i, loc) in &rest[..n] {
                let (from, to) = span(loc);
                let sealed = &run[(from - start) as usize..(to - start) as usize];
                each(*i, self.decode_blob(loc.kind, &ids[*i], sealed)?)?;
            }
            rest = &rest[n..];
        }
        Ok(())
    }

    /// What a pack's trailer says it holds (FORMAT.md §5.2): a few small
    /// reads at its end.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a missing pack or a damaged trailer.
    pub fn pack_entries(&self, pack: &PackId) -> Result<Vec<PackEntry>> {
        let size = self
            .backend
            .size(FileKind::Pack, &ObjectName::pack(pack))?
            .ok_or_else(|| Error::corrupt("pack", pack.short(), "missing"))?;
        if size > crate::limits::MAX_PACK_LEN {
            return Err(Error::corrupt(
                "pack",
                pack.short(),
                "larger than any pack Coffre writes",
            ));
        }
        crate::repo::pack_writer::read_entries(&*self.backend, pack, size, &self.keys)
    }

    /// The plaintext of a delta's base: a data blob, never itself a delta.
    ///
    /// # Errors
    /// As [`Repository::load_blob`].
    pub fn load_base(&self, id: &BlobId) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.load_bases(std::slice::from_ref(id), |_, data| {
            out = data;
            Ok(())
        })?;
        Ok(out)
    }

    /// The plaintexts of several deltas' bases, read together as
    /// [`Repository::load_blobs`] reads blobs; `each(i, plaintext)` for
    /// `ids[i]`, in the order they were read.
    ///
    /// # Errors
    /// As [`Repository::load_blobs`]; a delta among `ids` is damage.
    pub fn load_bases(
        &self,
        ids: &[BlobId],
        each: impl FnMut(usize, Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.load_blobs_as(BlobKind::Data, false, ids, each)
    }

    /// Opens, decompresses and verifies a sealed blob read from a pack.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when its bytes (or the dictionary it needs) are damaged.
    pub fn decode_blob(&self, kind: BlobKind, id: &BlobId, sealed: &[u8]) -> Result<Vec<u8>> {
        let needs = blob::Needs {
            dict: &|| self.dictionary(),
            base: &|base| self.load_base(base),
        };
        blob::decode(&self.keys, kind, id, sealed, &needs)
    }

    /// The compression dictionary, if the repository has one: from the
    /// file `dictionary`, or from `dictionary.copy` when the first is
    /// missing or damaged (what was wrong is kept for `check` and mended by
    /// the next writer).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when no copy opens and one is damaged; storage
    /// errors.
    pub fn dictionary(&self) -> Result<Option<Arc<Dictionary>>> {
        let mut slot = self.dictionary.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dict) = &*slot {
            return Ok(Some(dict.clone()));
        }
        let [first, second] = DICTIONARY_FILES.map(|kind| self.read_dictionary(kind));
        let problem = |kind: FileKind, r: &Result<Option<(Vec<u8>, Dictionary)>>| match r {
            Ok(None) => Some(format!("the {} is missing", kind.name())),
            Err(e) => Some(format!("the {} cannot be used: {e}", kind.name())),
            Ok(Some(_)) => None,
        };
        let (bytes, dict, problem) = match (first, second) {
            (Ok(Some((bytes, dict))), Ok(Some((other, _)))) => {
                let problem = (bytes != other).then(|| {
                    "the two copies of the dictionary differ (the file `dictionary` is used)"
                        .to_owned()
                });
                (bytes, dict, problem)
            }
            (Ok(Some((bytes, dict))), other) => {
                let problem = problem(FileKind::DictionaryCopy, &other);
                (bytes, dict, problem)
            }
            (other, Ok(Some((bytes, dict)))) => {
                let problem = problem(FileKind::Dictionary, &other);
                (bytes, dict, problem)
            }
            (Ok(None), Ok(None)) => return Ok(None),
            (Err(e), _) | (Ok(None), Err(e)) => return Err(e),
        };
        let dict = Arc::new(dict);
        *self
            .dictionary_files
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = DictionaryFiles {
            good: Some(bytes),
            problem,
        };
        *slot = Some(dict.clone());
        Ok(Some(dict))
    }

    /// Reads and opens one dictionary file: its bytes and the dictionary.
    fn read_dictionary(&self, kind: FileKind) -> Result<Option<(Vec<u8>, Dictionary)>> {
        let Some(bytes) = self.backend.read(kind, &ObjectName::single())? else {
            return Ok(None);
        };
        let file = if kind == FileKind::Dictionary {
            "dictionary"
        } else {
            "dictionary.copy"
        };
        let bad = |why: &str| Error::corrupt("dictionary", file, why);
        let sealed = bytes
            .strip_prefix(&DICT_MAGIC[..])
            .ok_or_else(|| bad("bad magic"))?;
        let plain = self
            .keys
            .open(ObjectKind::Dictionary, &[], sealed)
            .map_err(|_| bad("fails authentication"))?;
        let raw = match plain.split_first() {
            Some((&DICT_VERSION, raw)) => raw.to_vec(),
            Some((&v, _)) if v > DICT_VERSION => {
                return Err(Error::UnsupportedVersion {
                    what: "dictionary",
                    found: u32::from(v),
                    supported: u32::from(DICT_VERSION),
                })
            }
            _ => return Err(bad("unknown version")),
        };
        let dict = Dictionary::from_raw(raw).ok_or_else(|| bad("not a zstd dictionary"))?;
        Ok(Some((bytes, dict)))
    }

    /// What is wrong with one of the two dictionary files while the other
    /// serves (for `check`; survivable, and mended by the next writer).
    pub fn dictionary_problem(&self) -> Option<String> {
        self.dictionary_files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .problem
            .clone()
    }

    /// Writes the good copy of the dictionary over a missing or damaged
    /// one: the same sealed bytes, so nothing is ever replaced by another
    /// dictionary. Copies that differ while both open are left for a
    /// person to judge. Returns what was mended.
    ///
    /// # Errors
    /// Storage errors (an append-only key cannot overwrite a damaged copy).
    pub fn mend_dictionary(&self) -> Result<Option<String>> {
        if self.dictionary()?.is_none() {
            return Ok(None);
        }
        let (good, problem) = {
            let files = self
                .dictionary_files
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match (&files.good, &files.problem) {
                (Some(good), Some(problem)) if !problem.contains("differ") => {
                    (good.clone(), problem.clone())
                }
                _ => return Ok(None),
            }
        };
        for kind in DICTIONARY_FILES {
            match self.backend.read(kind, &ObjectName::single()) {
                Ok(Some(bytes)) if bytes == good => continue,
                Ok(None) => {
                    self.backend
                        .write(kind, &ObjectName::single(), &good, false)?;
                }
                // Damaged, or unreadable: the good bytes go over it.
                Ok(Some(_)) | Err(_) => {
                    self.backend
                        .write(kind, &ObjectName::single(), &good, true)?;
                }
            }
        }
        self.dictionary_files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .problem = None;
        Ok(Some(format!("{problem}: rewritten from the other copy")))
    }

    /// Gives the repository the dictionary `raw`, unless it has one already;
    /// returns the repository's dictionary (`raw`'s, or the one another
    /// process wrote first). The header moves to format 2 first, so that a
    /// Coffre too old to read dictionaries refuses the repository plainly.
    ///
    /// # Errors
    /// Storage errors; [`Error::Corrupt`] when `raw` is not a dictionary.
    pub fn add_dictionary(&self, raw: Vec<u8>) -> Result<Option<Arc<Dictionary>>> {
        if let Some(existing) = self.dictionary()? {
            return Ok(Some(existing));
        }
        if Dictionary::from_raw(raw.clone()).is_none() {
            return Err(Error::corrupt("dictionary", "new", "not a zstd dictionary"));
        }
        self.raise_format(crate::format::header::DICTIONARY_VERSION)?;
        let mut plain = vec![DICT_VERSION];
        plain.extend_from_slice(&raw);
        let sealed = self.keys.seal(ObjectKind::Dictionary, &[], &plain);
        let bytes = [&DICT_MAGIC[..], &sealed].concat();
        self.backend
            .write(FileKind::Dictionary, &ObjectName::single(), &bytes, false)?;
        // Whoever won, read back what is there now, and give it its copy.
        let dict = self.dictionary()?;
        self.mend_dictionary()?;
        Ok(dict)
    }

    /// Moves the header to format `version` unless it is there already:
    /// called before writing the first object of a kind that format
    /// introduced, so that an older Coffre refuses the repository plainly
    /// instead of calling the new object damaged (FORMAT.md §13.2).
    ///
    /// # Errors
    /// Storage errors writing `config`.
    pub fn raise_format(&self, version: u32) -> Result<()> {
        if self.format.load(Ordering::Acquire) >= version {
            return Ok(());
        }
        self.format_at_least(version)
    }

    /// Checks `config` on disk against the format this process needed
    /// ([`Repository::raise_format`]) and raises it again if it is lower:
    /// called just before a snapshot record makes the new objects
    /// reachable. Two snapshots may run at once (shared locks), and one
    /// that read `config` before the other raised it could write a lower
    /// version back; a Coffre older than the objects would then call them
    /// damaged.
    ///
    /// # Errors
    /// Storage errors reading or writing `config`.
    pub fn confirm_format(&self) -> Result<()> {
        self.format_at_least(self.format.load(Ordering::Acquire))
    }

    /// Rewrites `config` with `version` if the one on disk is lower (it is
    /// read again: another process may have raised it; never lower it).
    fn format_at_least(&self, version: u32) -> Result<()> {
        let on_disk = Self::header_of(&*self.backend)?;
        let check = self.master.check_value(&on_disk.repo_id);
        if on_disk.repo_id != self.header.repo_id || on_disk.key_check.is_some_and(|c| c != check) {
            return Err(Error::Refused(
                "the drive's config file was replaced while this command ran (another repository id or key): nothing was written; check the drive".into(),
            ));
        }
        if on_disk.version < version {
            if on_disk.key_check.is_none() && version >= KEY_CHECK_VERSION {
                self.confirm_key_opens_data()?;
            }
            let raised = Header {
                version,
                key_check: (version >= KEY_CHECK_VERSION).then_some(check),
                ..on_disk
            };
            self.backend.write(
                FileKind::Config,
                &ObjectName::single(),
                &raised.encode(),
                true,
            )?;
            pin_key_check(&self.cache_folder, &raised)?;
        }
        self.format
            .fetch_max(on_disk.version.max(version), Ordering::AcqRel);
        Ok(())
    }

    /// Before a repository first records its key check (format 6), makes
    /// sure the key it was opened with is the one its snapshots are sealed
    /// under: on an older repository a planted key file that opens with the
    /// same passphrase would otherwise have its key recorded as the
    /// repository's. A few records are enough: a foreign key opens none.
    fn confirm_key_opens_data(&self) -> Result<()> {
        let ids = self.list_snapshots()?;
        if ids.is_empty() || ids.iter().take(3).any(|id| self.load_snapshot(id).is_ok()) {
            return Ok(());
        }
        Err(Error::Refused(format!(
            "the key file {} opens with this passphrase but not this repository's snapshots: it was planted or copied from another repository; remove it from keys/ and run the command again",
            self.opened_with.name.as_str()
        )))
    }

    /// Loads and decodes a tree, joining its pieces when it has some.
    pub fn load_tree(&self, id: &BlobId) -> Result<Tree> {
        self.load_tree_pieces(id).map(|(tree, _)| tree)
    }

    /// Loads a tree as [`Repository::load_tree`], and returns the ids of its
    /// tree pieces too (none for a tree stored whole): check and prune must
    /// see them.
    ///
    /// # Errors
    /// A missing or damaged tree or piece.
    pub fn load_tree_pieces(&self, id: &BlobId) -> Result<(Tree, Vec<BlobId>)> {
        let bytes = self.load_blob(BlobKind::Tree, id)?;
        let damaged = |e| Error::corrupt("tree", id.short(), e);
        let ids = match decode_listing(&bytes).map_err(damaged)? {
            Listing::Nodes(tree) => return Ok((tree, Vec::new())),
            Listing::Pieces(ids) => ids,
        };
        let mut parts: Vec<Option<Tree>> = vec![None; ids.len()];
        self.load_blobs(BlobKind::TreePiece, &ids, |i, bytes| {
            let part = Tree::decode(&bytes)
                .map_err(|e| Error::corrupt("tree piece", ids[i].short(), e))?;
            parts[i] = Some(part);
            Ok(())
        })?;
        // `load_blobs` calls back once per id, so every part is there.
        let parts: Vec<Tree> = parts.into_iter().flatten().collect();
        if parts.len() != ids.len() {
            return Err(damaged(DecodeError::Invalid("tree piece not read")));
        }
        let tree = join_pieces(parts).map_err(damaged)?;
        Ok((tree, ids))
    }

    /// The extent list of a file, loading chunk-list pieces if needed.
    /// Its total is at most [`crate::limits::MAX_FILE_LEN`], so callers
    /// may add up offsets freely.
    ///
    /// # Errors
    /// A missing or damaged piece; [`Error::Corrupt`] for a list longer
    /// than any file can be.
    pub fn load_extents(&self, content: &Content) -> Result<Vec<Extent>> {
        let windows = ChunkListReader::new(self, content).collect::<Result<Vec<_>>>()?;
        Ok(windows.concat())
    }

    /// Every readable snapshot, oldest first, and the errors of those that
    /// could not be read (a damaged record must not hide the others).
    ///
    /// # Errors
    /// Only when the snapshot directory cannot be listed.
    pub fn snapshots(&self) -> Result<(SnapshotList, Vec<Error>)> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for id in self.list_snapshots()? {
            match self.load_snapshot(&id) {
                Ok(s) => out.push((id, s)),
                Err(e) => errors.push(e),
            }
        }
        out.sort_by_key(|(id, s)| (s.time, *id));
        Ok((out, errors))
    }

    /// Loads one snapshot record.
    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let bytes = self
            .backend
            .read(FileKind::Snapshot, &ObjectName::snapshot(id))?
            .ok_or_else(|| Error::SnapshotNotFound(id.short()))?;
        Snapshot::open(&self.keys, id, &bytes)
    }

    /// This repository's folder of local caches (index, journal): safe to
    /// delete, rebuilt from the repository.
    pub fn cache_folder(&self) -> &Path {
        &self.cache_folder
    }

    /// Writes a snapshot record, durably; this is the commit of a snapshot.
    pub fn write_snapshot(&self, snap: &Snapshot) -> Result<SnapshotId> {
        let bytes = snap.seal(&self.keys);
        let id = SnapshotId(*blake3::hash(&bytes).as_bytes());
        self.backend
            .write(FileKind::Snapshot, &ObjectName::snapshot(&id), &bytes, true)?;
        Ok(id)
    }

    /// Saves the retention policy (sealed; file `policy`, FORMAT.md §16).
    pub fn save_policy(&self, policy: &crate::format::policy::Policy) -> Result<()> {
        let sealed = self
            .keys
            .seal(crate::crypto::ObjectKind::Policy, &[], &policy.encode());
        let bytes = [&POLICY_MAGIC[..], &sealed].concat();
        self.backend
            .write(FileKind::Policy, &ObjectName::single(), &bytes, true)
            .map(|_| ())
    }

    /// The saved retention policy, if any.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the file is damaged.
    pub fn load_policy(&self) -> Result<Option<crate::format::policy::Policy>> {
        let Some(bytes) = self.backend.read(FileKind::Policy, &ObjectName::single())? else {
            return Ok(None);
        };
        let bad = |why: String| Error::corrupt("policy", "policy", why);
        let sealed = bytes
            .strip_prefix(&POLICY_MAGIC[..])
            .ok_or_else(|| bad("bad magic".into()))?;
        let plain = self
            .keys
            .open(crate::crypto::ObjectKind::Policy, &[], sealed)
            .map_err(|_| bad("fails authentication".into()))?;
        crate::format::policy::Policy::decode(&plain)
            .map(Some)
            .map_err(|e| bad(e.to_string()))
    }

    /// Finds the tree node at a slash-separated `path` below `root` (empty
    /// path: the root itself, returned as `None`).
    ///
    /// # Errors
    /// [`Error::PathNotFound`] when a component is missing or not a directory.
    pub fn find_path(
        &self,
        root: &BlobId,
        path: &[u8],
    ) -> Result<(BlobId, Option<crate::format::tree::Node>)> {
        let mut tree_id = *root;
        let mut found = None;
        let parts: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty())
            .collect();
        for (i, part) in parts.iter().enumerate() {
            // Read a piece at a time up to the name (entries are sorted): a
            // folder of 180,000 receipts is never held whole.
            let mut found_here = None;
            for node in ListingReader::open(self, &tree_id)? {
                let node = node?;
                match node.name.as_slice().cmp(part) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Equal => found_here = Some(node),
                    std::cmp::Ordering::Greater => {}
                }
                break;
            }
            let node = found_here
                .ok_or_else(|| Error::PathNotFound(String::from_utf8_lossy(path).into()))?;
            if let crate::format::tree::Payload::Dir(sub) = node.payload {
                tree_id = sub;
            } else if i + 1 != parts.len() {
                return Err(Error::PathNotFound(String::from_utf8_lossy(path).into()));
            }
            found = Some(node);
        }
        Ok((tree_id, found))
    }
}
