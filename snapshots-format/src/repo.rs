//! An opened repository: header checked, master key unwrapped, index open.
//! Reading goes through here (blobs, trees, file contents, snapshots);
//! writing blobs goes through [`crate::saver::Saver`].

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::blob::{self, BlobKind};
use crate::codec::DecodeError;
use crate::content::{decode_piece, Content, Extent};
use crate::crypto::{Keys, MasterKey, ObjectKind};
use crate::dict::Dictionary;
use crate::error::{Error, IoContext, Result};
use crate::header::Header;
use crate::id::{to_hex, BlobId, PackId, SnapshotId};
use crate::index::{Index, Location, INDEX_FILE};
use crate::keyfile::{KdfParams, KeyFile};
use crate::snapshot::Snapshot;
use crate::store::Store;
use crate::tree::{decode_listing, join_pieces, Listing, Tree};

/// Open pack files kept for reading; enough for restore's locality, few
/// enough for any file-descriptor limit.
const OPEN_PACKS: usize = 64;

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
    store: Store,
    keys: Keys,
    index: Index,
    header: Header,
    /// The format version in `config` now: the header's, or higher once
    /// this process wrote a newer kind of object ([`Repository::raise_format`]).
    format: AtomicU32,
    open_packs: Mutex<HashMap<PackId, Arc<File>>>,
    /// The compression dictionary once read. Its absence is not cached: a
    /// mount open while the first snapshot trains one must then find it.
    dictionary: Mutex<Option<Arc<Dictionary>>>,
}

impl Repository {
    /// Creates a new repository at `path` protected by `passphrase`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when `path` is a non-empty directory.
    pub fn init(path: &Path, passphrase: &[u8], kdf: KdfParams) -> Result<Self> {
        let store = Store::new(path);
        store.create_layout()?;
        let header = Header::new();
        let master = MasterKey::generate();
        let key = KeyFile::create(passphrase, kdf, &master, &header.repo_id)?;
        let key_name: [u8; 8] = crate::crypto::random_array();
        store.write_atomic(&store.keys_dir().join(to_hex(&key_name)), &key.encode())?;
        // The header is written last: until it exists the directory is not a
        // repository, so an interrupted init can simply be retried.
        store.write_atomic(&store.config_path(), &header.encode())?;
        Self::with_key(store, header, &master)
    }

    /// Opens the repository at `path` with `passphrase`.
    ///
    /// # Errors
    /// [`Error::RepositoryMissing`], [`Error::NotARepository`],
    /// [`Error::UnsupportedVersion`], [`Error::WrongPassphrase`].
    pub fn open(path: &Path, passphrase: &[u8]) -> Result<Self> {
        let (store, header) = Self::read_header(path)?;
        let master = Self::unlock(&store, &header, passphrase)?;
        let index_path = store.index_dir().join(INDEX_FILE);
        // A missing index with packs present would make every blob look
        // absent: say so rather than re-store everything or fail on restore.
        if !index_path.exists() && !store.list_packs()?.is_empty() {
            return Err(Error::IndexMissing);
        }
        Self::with_key(store, header, &master)
    }

    /// Opens the repository with a new, empty index, deleting the old one
    /// (for `rebuild-index`, which works even when the old index is unreadable).
    pub fn open_with_fresh_index(path: &Path, passphrase: &[u8]) -> Result<Self> {
        let (store, header) = Self::read_header(path)?;
        let master = Self::unlock(&store, &header, passphrase)?;
        Index::remove_files(&store.index_dir().join(INDEX_FILE))?;
        Self::with_key(store, header, &master)
    }

    /// Reads and checks the header alone (no passphrase needed).
    pub fn read_header(path: &Path) -> Result<(Store, Header)> {
        if !path.exists() {
            return Err(Error::RepositoryMissing(path.to_path_buf()));
        }
        let store = Store::new(path);
        let config = store.config_path();
        let bytes = match fs::read(&config) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotARepository(path.to_path_buf()))
            }
            Err(e) => return Err(Error::io(config, e)),
        };
        let header = Header::decode(&bytes, &config)?;
        Ok((store, header))
    }

    fn unlock(store: &Store, header: &Header, passphrase: &[u8]) -> Result<MasterKey> {
        let dir = store.keys_dir();
        let mut names: Vec<PathBuf> = fs::read_dir(&dir)
            .at(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        let mut last_err = Error::WrongPassphrase;
        for path in names {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let key = match KeyFile::decode(&store.read(&path)?, &name) {
                Ok(k) => k,
                Err(e) => {
                    last_err = e;
                    continue;
                }
            };
            match key.open(passphrase, &header.repo_id) {
                Ok(master) => return Ok(master),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    fn with_key(store: Store, header: Header, master: &MasterKey) -> Result<Self> {
        let keys = Keys::derive(master, header.repo_id);
        let index_dir = store.index_dir();
        if !index_dir.exists() {
            fs::create_dir_all(&index_dir).at(&index_dir)?;
        }
        let index_path = index_dir.join(INDEX_FILE);
        let index = Index::open(&index_path)?;
        Ok(Self {
            store,
            keys,
            index,
            format: AtomicU32::new(header.version),
            header,
            open_packs: Mutex::new(HashMap::new()),
            dictionary: Mutex::new(None),
        })
    }

    /// Adds another key file (another passphrase) to the repository.
    pub fn add_key(
        &self,
        passphrase: &[u8],
        kdf: KdfParams,
        master_passphrase: &[u8],
    ) -> Result<()> {
        let master = Self::unlock(&self.store, &self.header, master_passphrase)?;
        let key = KeyFile::create(passphrase, kdf, &master, &self.header.repo_id)?;
        let name: [u8; 8] = crate::crypto::random_array();
        self.store
            .write_atomic(&self.store.keys_dir().join(to_hex(&name)), &key.encode())
    }

    /// The on-disk layout.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The working keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The plaintext header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn pack_file(&self, pack: &PackId) -> Result<Arc<File>> {
        let mut open = self.open_packs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = open.get(pack) {
            return Ok(f.clone());
        }
        let path = self.store.pack_path(pack);
        let file = match File::open(&path) {
            Ok(f) => Arc::new(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::corrupt("pack", pack.short(), "file is missing"))
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        if open.len() >= OPEN_PACKS {
            open.clear();
        }
        open.insert(*pack, file.clone());
        Ok(file)
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
    /// # Errors
    /// As [`Repository::load_blob`], and those of `each`.
    pub fn load_blobs(
        &self,
        kind: BlobKind,
        ids: &[BlobId],
        mut each: impl FnMut(usize, Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let mut order = Vec::with_capacity(ids.len());
        for (i, (id, loc)) in ids
            .iter()
            .zip(self.index.lookup_many(&self.keys, ids)?)
            .enumerate()
        {
            let loc = loc.ok_or_else(|| Error::BlobNotFound(id.short()))?;
            if loc.kind != kind {
                return Err(Error::corrupt(
                    kind.name(),
                    id.short(),
                    "indexed as another kind of blob",
                ));
            }
            order.push((i, loc));
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
            let file = self.pack_file(&first.pack)?;
            let path = self.store.pack_path(&first.pack);
            let run = Store::read_at(&file, &path, start, (end - start) as usize)?;
            for (i, loc) in &rest[..n] {
                let (from, to) = span(loc);
                let sealed = &run[(from - start) as usize..(to - start) as usize];
                each(*i, self.decode_blob(kind, &ids[*i], sealed)?)?;
            }
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Opens, decompresses and verifies a sealed blob read from a pack.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when its bytes (or the dictionary it needs) are damaged.
    pub fn decode_blob(&self, kind: BlobKind, id: &BlobId, sealed: &[u8]) -> Result<Vec<u8>> {
        blob::decode(&self.keys, kind, id, sealed, &|| self.dictionary())
    }

    /// The repository's compression dictionary, if it has one (read once
    /// found).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the dictionary file is damaged.
    pub fn dictionary(&self) -> Result<Option<Arc<Dictionary>>> {
        let mut slot = self.dictionary.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dict) = &*slot {
            return Ok(Some(dict.clone()));
        }
        let path = self.store.dictionary_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let bad = |why: &str| Error::corrupt("dictionary", "dictionary", why);
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
        let dict = Arc::new(Dictionary::from_raw(raw).ok_or_else(|| bad("not a zstd dictionary"))?);
        *slot = Some(dict.clone());
        Ok(Some(dict))
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
        self.raise_format(crate::header::DICTIONARY_VERSION)?;
        let mut plain = vec![DICT_VERSION];
        plain.extend_from_slice(&raw);
        let sealed = self.keys.seal(ObjectKind::Dictionary, &[], &plain);
        let bytes = [&DICT_MAGIC[..], &sealed].concat();
        self.store
            .write_new(&self.store.dictionary_path(), &bytes)?;
        // Whoever won, read back what is there now.
        self.dictionary()
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
        let (_, on_disk) = Self::read_header(self.store.root())?;
        if on_disk.version < version {
            let raised = Header { version, ..on_disk };
            self.store
                .write_atomic(&self.store.config_path(), &raised.encode())?;
        }
        self.format
            .fetch_max(on_disk.version.max(version), Ordering::AcqRel);
        Ok(())
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
    pub fn load_extents(&self, content: &Content) -> Result<Vec<Extent>> {
        match content {
            Content::Inline(e) => Ok(e.clone()),
            Content::Pieces(ids) => {
                let mut out = Vec::new();
                for id in ids {
                    let bytes = self.load_blob(BlobKind::ChunkList, id)?;
                    out.extend(
                        decode_piece(&bytes)
                            .map_err(|e| Error::corrupt("chunk list", id.short(), e))?,
                    );
                }
                Ok(out)
            }
        }
    }

    /// Every readable snapshot, oldest first, and the errors of those that
    /// could not be read (a damaged record must not hide the others).
    ///
    /// # Errors
    /// Only when the snapshot directory cannot be listed.
    pub fn snapshots(&self) -> Result<(SnapshotList, Vec<Error>)> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for id in self.store.list_snapshots()? {
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
        let bytes = self.store.read(&self.store.snapshot_path(id))?;
        Snapshot::open(&self.keys, id, &bytes)
    }

    /// Writes a snapshot record, durably; this is the commit of a snapshot.
    pub fn write_snapshot(&self, snap: &Snapshot) -> Result<SnapshotId> {
        let bytes = snap.seal(&self.keys);
        let id = SnapshotId(*blake3::hash(&bytes).as_bytes());
        self.store
            .write_atomic(&self.store.snapshot_path(&id), &bytes)?;
        Ok(id)
    }

    /// Saves the retention policy (sealed; file `policy`, FORMAT.md §16).
    pub fn save_policy(&self, policy: &crate::policy::Policy) -> Result<()> {
        let sealed = self
            .keys
            .seal(crate::crypto::ObjectKind::Policy, &[], &policy.encode());
        let bytes = [&POLICY_MAGIC[..], &sealed].concat();
        self.store.write_atomic(&self.store.policy_path(), &bytes)
    }

    /// The saved retention policy, if any.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the file is damaged.
    pub fn load_policy(&self) -> Result<Option<crate::policy::Policy>> {
        let path = self.store.policy_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let bad = |why: String| Error::corrupt("policy", "policy", why);
        let sealed = bytes
            .strip_prefix(&POLICY_MAGIC[..])
            .ok_or_else(|| bad("bad magic".into()))?;
        let plain = self
            .keys
            .open(crate::crypto::ObjectKind::Policy, &[], sealed)
            .map_err(|_| bad("fails authentication".into()))?;
        crate::policy::Policy::decode(&plain)
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
    ) -> Result<(BlobId, Option<crate::tree::Node>)> {
        let mut tree_id = *root;
        let mut found = None;
        let parts: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty())
            .collect();
        for (i, part) in parts.iter().enumerate() {
            let tree = self.load_tree(&tree_id)?;
            let node = tree
                .get(part)
                .cloned()
                .ok_or_else(|| Error::PathNotFound(String::from_utf8_lossy(path).into()))?;
            if let crate::tree::Payload::Dir(sub) = node.payload {
                tree_id = sub;
            } else if i + 1 != parts.len() {
                return Err(Error::PathNotFound(String::from_utf8_lossy(path).into()));
            }
            found = Some(node);
        }
        Ok((tree_id, found))
    }
}
