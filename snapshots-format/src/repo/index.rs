//! The local index cache (FORMAT.md §6): an SQLite database mapping blob
//! ids to their pack and sealed location, kept on this machine, never on the
//! drive. It is built from the repository's index files (format 4; the
//! pack trailers for older formats) and can be deleted at any time: the
//! next command rebuilds it, costing only time.
//!
//! Each location is sealed with the blob id and the pack id as associated
//! data, so a row edited to point at another pack fails authentication. The
//! database is opened defensively (no triggers or views honoured, no
//! untrusted schema functions, schema checked), and recreated when it is
//! not exactly what this module makes.
//!
//! Durability: WAL journal; a pack's rows are inserted only after the pack
//! and its index file are durable on the drive.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension};

use crate::backend::{Backend, FileKind, ObjectName};
use crate::codec::{Reader, Writer};
use crate::crypto::{Keys, ObjectKind};
use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::index_file::{self, IndexedPack};
use crate::format::pack::PackEntry;
use crate::id::{BlobId, IdMap, PackId};

/// Schema version of the cache; another version is discarded and rebuilt.
pub const INDEX_VERSION: i64 = 2;
/// File name of the cache database inside the repository's cache folder.
pub const INDEX_FILE: &str = "index-v2.db";

/// A blob's location, as the index returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The pack holding the blob.
    pub pack: PackId,
    /// The blob's kind.
    pub kind: BlobKind,
    /// Offset of its sealed bytes in the pack.
    pub offset: u32,
    /// Length of its sealed bytes.
    pub length: u32,
}

/// How one pack is used, for prune.
#[derive(Debug)]
pub struct PackUsage {
    /// The pack.
    pub pack: PackId,
    /// Its size.
    pub size: u64,
    /// Number of its blobs still referenced (their places:
    /// [`Index::used_entries_of_pack`]).
    pub used: u64,
    /// Number of blobs no snapshot references.
    pub unused: u64,
    /// Their sealed bytes.
    pub unused_bytes: u64,
}

/// What a [`Index::sync`] did.
#[derive(Debug, Default, Clone)]
pub struct SyncReport {
    /// Index files read.
    pub files_read: u64,
    /// Pack trailers read (format 3 and earlier).
    pub trailers_read: u64,
    /// Whether the cache was emptied first (an index file it knew is gone).
    pub reset: bool,
    /// Index files that could not be read (the errors are returned beside).
    pub damaged_files: Vec<ObjectName>,
}

/// The open index cache.
pub struct Index {
    conn: Mutex<Connection>,
    /// Lookup connections, taken by whichever is free (see [`Index::reader`]).
    readers: Vec<Mutex<Connection>>,
    /// Where the next lookup starts looking for a free connection.
    next_reader: AtomicUsize,
    /// Uses noted by [`Index::used_mark`], merged into the set of marks.
    marks: SortedBatches,
    /// Ids noted by [`Index::used_note`], merged into the used set.
    notes: SortedBatches,
    /// [`MARKS_MERGE_MIN`] (smaller in tests, to merge several times).
    marks_merge_min: u64,
    path: PathBuf,
}

/// Rows appended to a plain temporary table, merged into a keyed one
/// sorted, in large batches ([`MARKS_MERGE_MIN`]).
struct SortedBatches {
    /// Appends one row.
    append: &'static str,
    /// Merges the appended rows into the keyed table in key order.
    merge: &'static str,
    /// Empties the appended rows.
    clear: &'static str,
    /// Rows appended since the last merge.
    pending: AtomicU64,
    /// Rows in the keyed table.
    kept: AtomicU64,
}

/// Uses noted by [`Index::used_mark`] are merged into the sorted set of
/// marks once they are this many, or as many as the set holds (so each
/// merge costs about what the uses it merges cost, and the temporary file
/// stays within a few times the set).
const MARKS_MERGE_MIN: u64 = 1 << 20;

/// Lookup connections: one per thread that looks up at once in a snapshot
/// (the walker and the readers of large files). With one, a lookup that
/// waited for the disk (a cold cache file) held up every other: in a daily
/// snapshot at 4 GiB with caches dropped, threads waited 7 s in all for
/// that lock (docs/PERFORMANCE.md).
const LOOKUP_CONNECTIONS: usize = 4;

/// Cache files up to this size are read ahead ([`Index::read_ahead`]):
/// 196 MiB at 16 GiB of pharmacy data.
const MAX_READ_AHEAD: u64 = 1 << 30;

/// Page cache of each lookup connection, in KiB (SQLite's negative
/// `cache_size`): 16 MiB in all, as one connection had. With the file read
/// ahead ([`Index::read_ahead`]) a page missed there is a copy from the kernel's
/// cache, not a wait for the disk: 8 MiB each cost 19 MiB of peak memory
/// for no time measured at 4 GiB.
const LOOKUP_CACHE_KIB: usize = 4096;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE files (name BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE packs (
    pack_no INTEGER PRIMARY KEY,
    pack_id BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL
);
CREATE TABLE file_packs (
    name BLOB NOT NULL,
    pack_no INTEGER NOT NULL,
    PRIMARY KEY (name, pack_no)
) WITHOUT ROWID;
CREATE TABLE blobs (
    blob_id BLOB PRIMARY KEY,
    pack_no INTEGER NOT NULL REFERENCES packs(pack_no),
    loc BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX blobs_by_pack ON blobs(pack_no);
CREATE INDEX file_packs_by_pack ON file_packs(pack_no);
";

/// The objects [`SCHEMA`] makes (besides SQLite's automatic indexes): a
/// cache holding anything else (a trigger, a view) is not ours.
const SCHEMA_OBJECTS: [(&str, &str); 7] = [
    ("table", "meta"),
    ("table", "files"),
    ("table", "packs"),
    ("table", "file_packs"),
    ("table", "blobs"),
    ("index", "blobs_by_pack"),
    ("index", "file_packs_by_pack"),
];

/// Settings of every cache connection: nothing stored in the file may run
/// code or change how SQLite treats it.
fn harden(conn: &Connection) -> Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, false)?;
    // Plans that do not depend on bound values. Without this, SQLite
    // marks the lookup by blob id as "replan when rebound", and since a
    // cached statement's bindings are cleared on every return to the
    // cache, each lookup was parsed and planned again (a third of a
    // small file's restore time).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(())
}

/// Whether the database holds exactly our schema at our version.
fn is_ours(conn: &Connection) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(
        "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_autoindex_%' ORDER BY name",
    )?;
    let found: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut want: Vec<(String, String)> = SCHEMA_OBJECTS
        .iter()
        .map(|(t, n)| ((*t).to_owned(), (*n).to_owned()))
        .collect();
    want.sort_by(|a, b| a.1.cmp(&b.1));
    if found != want {
        return Ok(false);
    }
    let version: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key='version'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(version == Some(INDEX_VERSION))
}

fn open_conn(path: &Path) -> Result<Connection> {
    use rusqlite::OpenFlags;
    use std::os::unix::fs::OpenOptionsExt;
    // Created private before SQLite opens it: SQLite would make it 0644,
    // and its -wal and -shm files take the database's mode.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )?;
    harden(&conn)?;
    Ok(conn)
}

impl Index {
    /// Opens the cache at `path`, creating it, or recreating it empty when
    /// it is not exactly what this version makes (it is a cache: nothing is
    /// lost, the next [`Index::sync`] fills it again).
    ///
    /// # Errors
    /// SQLite and I/O errors.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            make_private_dir(dir)?;
        }
        let mut conn = open_conn(path)?;
        // Not a database at all, or a damaged one, is as foreign as any
        // other: recreated.
        let ours = match conn
            .query_row("SELECT count(*) = 0 FROM sqlite_schema", [], |r| {
                r.get::<_, bool>(0)
            })
            .and_then(|empty| Ok(empty || is_ours(&conn)?))
        {
            Ok(ours) => ours,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
                ) =>
            {
                false
            }
            // Busy (another process holds it) or any other failure: not a
            // reason to delete a cache someone may be using.
            Err(e) => return Err(e.into()),
        };
        if !ours {
            drop(conn);
            Self::remove_files(path)?;
            conn = open_conn(path)?;
        }
        // WAL lets a mount read while a snapshot writes. Some filesystems
        // cannot hold WAL's shared memory: fall back to a rollback journal.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get::<_, String>(0))?;
        }
        // Blob ids are random, so inserts and lookups land all over the
        // table: SQLite's default 2 MiB page cache missed most of them. The
        // caches (8 MiB here, 4 MiB for each lookup connection) fill as the
        // index grows and count in the snapshot's peak memory.
        //
        // A checkpoint copies every page the WAL holds back into the
        // database; the default (every 4 MB of WAL) made a first snapshot
        // copy most of the index after every commit.
        //
        // NORMAL in WAL mode: a power loss may lose the last commits of the
        // cache, never corrupt it; the drive's index files are the truth.
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-8192;
             PRAGMA wal_autocheckpoint=8192;",
        )?;
        {
            let tx = conn.transaction()?;
            let fresh: bool =
                tx.query_row("SELECT count(*) = 0 FROM sqlite_schema", [], |r| r.get(0))?;
            if fresh {
                tx.execute_batch(SCHEMA)?;
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES ('version', ?1)",
                    [INDEX_VERSION],
                )?;
            }
            tx.commit()?;
        }
        // Lookups get a connection of their own: a commit must not stall
        // the readers deciding what is new. Only committed rows are seen
        // there, which is what the saver needs: a blob is forgotten by the
        // saver only once its pack is committed.
        let readers = (0..LOOKUP_CONNECTIONS)
            .map(|_| {
                let reader = open_conn(path)?;
                reader.execute_batch(&format!(
                    "PRAGMA query_only=1; PRAGMA cache_size=-{LOOKUP_CACHE_KIB};"
                ))?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            conn: Mutex::new(conn),
            readers,
            next_reader: AtomicUsize::new(0),
            marks: SortedBatches {
                append: "INSERT INTO temp.marked(id, kind) VALUES (?1, ?2)",
                merge: "INSERT OR IGNORE INTO temp.marks SELECT id, kind FROM temp.marked ORDER BY id, kind",
                clear: "DELETE FROM temp.marked",
                pending: AtomicU64::new(0),
                kept: AtomicU64::new(0),
            },
            notes: SortedBatches {
                append: "INSERT INTO temp.noted(id) VALUES (?1)",
                merge: "INSERT OR IGNORE INTO temp.used(id) SELECT id FROM temp.noted ORDER BY id",
                clear: "DELETE FROM temp.noted",
                pending: AtomicU64::new(0),
                kept: AtomicU64::new(0),
            },
            marks_merge_min: MARKS_MERGE_MIN,
            path: path.to_path_buf(),
        })
    }

    /// Asks the kernel to read the cache file (and its write-ahead log)
    /// into memory in the background, for an operation about to look up
    /// many blobs (a snapshot: not done on every open, which a mount or a
    /// `snapshots` listing would pay for nothing). Lookups of random blob
    /// ids touch pages all over the file: after a night it is out of memory,
    /// and each first touch waited for the disk, one page at a time
    /// (threads of a daily snapshot at 4 GiB waited 4 s in all). One
    /// sequential read of the whole file costs a fraction of those. Only
    /// advice: nothing fails when the kernel does not take it. A file
    /// larger than [`MAX_READ_AHEAD`] (the index of terabytes of data) is
    /// left to be read as touched: it would push the rest of a small
    /// machine's memory out.
    pub fn read_ahead(&self) {
        use std::os::unix::fs::OpenOptionsExt;
        for suffix in ["", "-wal"] {
            let mut p = self.path.as_os_str().to_owned();
            p.push(suffix);
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&p);
            let small =
                |file: &std::fs::File| file.metadata().is_ok_and(|m| m.len() <= MAX_READ_AHEAD);
            if let Some(file) = opened.ok().filter(small) {
                let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::WillNeed);
            }
        }
    }

    /// A free lookup connection, or the next one's turn when all are busy.
    /// Starting from a different one each time spreads the tables' pages
    /// over every connection's cache.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let n = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            match self.readers[(start + i) % n].try_lock() {
                Ok(conn) => return conn,
                // A panic while holding the lock leaves no transaction open
                // that SQLite would not roll back: still usable.
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.readers[start]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (transactions roll back), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings the cache in line with the repository: reads the index files
    /// it has not seen; when one it had read is gone (a prune elsewhere),
    /// starts again from empty. With `trailers` (format 3 and earlier,
    /// which have no index files) the packs' trailers are read instead.
    ///
    /// # Errors
    /// Listing errors; a damaged index file is skipped and returned in the
    /// second value (`check` reports it, `rebuild-index` repairs it).
    pub fn sync(
        &self,
        backend: &dyn Backend,
        keys: &Keys,
        trailers: bool,
    ) -> Result<(SyncReport, Vec<Error>)> {
        let mut report = SyncReport::default();
        let mut damaged = Vec::new();
        if trailers {
            self.sync_trailers(backend, keys, &mut report, &mut damaged)?;
            return Ok((report, damaged));
        }
        // Known first: a file another process of this machine adds in
        // between is then merely new, not a sign that one vanished.
        let known = self.files()?;
        let listed = backend.list(FileKind::Index)?;
        let names: HashSet<[u8; 32]> = listed.iter().filter_map(|(n, _)| n.to_id()).collect();
        if known.iter().any(|k| !names.contains(k)) {
            self.clear()?;
            report.reset = true;
        }
        let known: HashSet<[u8; 32]> = if report.reset {
            HashSet::new()
        } else {
            known.into_iter().collect()
        };
        for (name, _) in &listed {
            let Some(id) = name.to_id() else { continue };
            if known.contains(&id) {
                continue;
            }
            let Some(bytes) = backend.read(FileKind::Index, name)? else {
                continue;
            };
            match index_file::decode(keys, &id, &bytes) {
                Ok(packs) => {
                    self.add_file(keys, Some(&id), &packs)?;
                    report.files_read += 1;
                }
                Err(e) => {
                    report.damaged_files.push(name.clone());
                    damaged.push(e);
                }
            }
        }
        Ok((report, damaged))
    }

    fn sync_trailers(
        &self,
        backend: &dyn Backend,
        keys: &Keys,
        report: &mut SyncReport,
        damaged: &mut Vec<Error>,
    ) -> Result<()> {
        let on_drive = backend.list(FileKind::Pack)?;
        let present: HashSet<PackId> = on_drive
            .iter()
            .filter_map(|(n, _)| n.to_id().map(PackId))
            .collect();
        let cached: HashSet<PackId> = self.packs()?.into_iter().map(|(id, _)| id).collect();
        let gone: Vec<PackId> = cached
            .iter()
            .filter(|p| !present.contains(p))
            .copied()
            .collect();
        if !gone.is_empty() {
            self.replace_packs(keys, &[], &gone)?;
        }
        let mut batch = Vec::new();
        for (name, size) in on_drive {
            let Some(id) = name.to_id().map(PackId) else {
                continue;
            };
            if cached.contains(&id) {
                continue;
            }
            match crate::repo::pack_writer::read_entries(backend, &id, size, keys) {
                Ok(entries) => batch.push(IndexedPack { id, size, entries }),
                Err(e) => damaged.push(e),
            }
            report.trailers_read += 1;
            if batch.len() >= 256 {
                self.add_file(keys, None, &std::mem::take(&mut batch))?;
            }
        }
        self.add_file(keys, None, &batch)
    }

    /// Records the packs of an index file (`None`: packs found from their
    /// trailers), in one transaction. Blobs already indexed keep their
    /// first location.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn add_file(
        &self,
        keys: &Keys,
        name: Option<&[u8; 32]>,
        packs: &[IndexedPack],
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let refs: Vec<(PackId, u64, &[PackEntry])> = packs
            .iter()
            .map(|p| (p.id, p.size, &p.entries[..]))
            .collect();
        let numbers = insert_packs(&tx, keys, &refs, "INSERT OR IGNORE")?;
        if let Some(name) = name {
            tx.execute("INSERT OR IGNORE INTO files(name) VALUES (?1)", [&name[..]])?;
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO file_packs(name, pack_no) VALUES (?1, ?2)",
            )?;
            for no in numbers {
                stmt.execute(params![&name[..], no])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The index files the cache has read.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn files(&self) -> Result<Vec<[u8; 32]>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT name FROM files ORDER BY name")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.extend(<[u8; 32]>::try_from(&row?[..]).ok());
        }
        Ok(out)
    }

    /// The index files that list any of `packs`.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn files_listing(&self, packs: &[PackId]) -> Result<Vec<[u8; 32]>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT f.name FROM file_packs f JOIN packs p ON p.pack_no = f.pack_no WHERE p.pack_id = ?1",
        )?;
        let mut out = HashSet::new();
        for pack in packs {
            let rows = stmt.query_map([&pack.0[..]], |r| r.get::<_, Vec<u8>>(0))?;
            for row in rows {
                out.extend(<[u8; 32]>::try_from(&row?[..]).ok());
            }
        }
        let mut out: Vec<_> = out.into_iter().collect();
        out.sort();
        Ok(out)
    }

    /// The packs an index file lists, with their sizes.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn packs_of_file(&self, name: &[u8; 32]) -> Result<Vec<(PackId, u64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT p.pack_id, p.size FROM file_packs f JOIN packs p ON p.pack_no = f.pack_no WHERE f.name = ?1 ORDER BY p.pack_id",
        )?;
        let rows = stmt.query_map([&name[..]], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, size) = row?;
            out.extend(PackId::from_slice(&id).map(|id| (id, size as u64)));
        }
        Ok(out)
    }

    /// Forgets index files (deleted from the drive by this process).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn forget_files(&self, names: &[[u8; 32]]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for name in names {
            tx.execute("DELETE FROM file_packs WHERE name = ?1", [&name[..]])?;
            tx.execute("DELETE FROM files WHERE name = ?1", [&name[..]])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Empties the cache.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn clear(&self) -> Result<()> {
        self.conn().execute_batch(
            "BEGIN; DELETE FROM blobs; DELETE FROM file_packs; DELETE FROM files; DELETE FROM packs; COMMIT;",
        )?;
        Ok(())
    }

    /// The blobs the cache places in `pack`, with their locations.
    ///
    /// # Errors
    /// SQLite errors; [`Error::Corrupt`] for a location that fails
    /// authentication.
    pub fn entries_of_pack(&self, keys: &Keys, pack: &PackId) -> Result<Vec<PackEntry>> {
        self.pack_entries(
            keys,
            pack,
            "SELECT b.blob_id, b.loc FROM blobs b JOIN packs p ON p.pack_no = b.pack_no WHERE p.pack_id = ?1",
        )
    }

    /// The blobs of `pack` marked used since [`Index::used_begin`], in the
    /// order they lie in the pack (prune copies them in one pass over it).
    pub fn used_entries_of_pack(&self, keys: &Keys, pack: &PackId) -> Result<Vec<PackEntry>> {
        self.pack_entries(
            keys,
            pack,
            "SELECT b.blob_id, b.loc FROM blobs b JOIN packs p ON p.pack_no = b.pack_no
             JOIN temp.used u ON u.id = b.blob_id WHERE p.pack_id = ?1",
        )
    }

    /// The entries `sql` selects (`blob_id, loc` for the pack in `?1`),
    /// opened and sorted by offset.
    fn pack_entries(&self, keys: &Keys, pack: &PackId, sql: &str) -> Result<Vec<PackEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map([&pack.0[..]], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, loc) = row?;
            let id = BlobId::from_slice(&id)
                .ok_or_else(|| Error::corrupt("index", "blobs", "bad blob id"))?;
            let (kind, offset, length) = open_location(keys, &id, pack, &loc)?;
            out.push(PackEntry {
                id,
                kind,
                offset,
                length,
            });
        }
        out.sort_unstable_by_key(|e| e.offset);
        Ok(out)
    }

    /// Whether each of `ids` is indexed (committed), in order, in one read
    /// transaction.
    pub fn contains_many(&self, ids: &[BlobId]) -> Result<Vec<bool>> {
        let found = self.read_many("SELECT 1 FROM blobs WHERE blob_id = ?1", ids, |_| Ok(()))?;
        Ok(found.iter().map(Option::is_some).collect())
    }

    /// Where a blob is, or `None` if it is not indexed.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the sealed location fails authentication.
    pub fn lookup(&self, keys: &Keys, id: &BlobId) -> Result<Option<Location>> {
        Ok(self.lookup_many(keys, std::slice::from_ref(id))?.remove(0))
    }

    /// Where each of `ids` is, in order, in one read transaction (see
    /// [`Index::contains_many`]).
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a sealed location fails authentication.
    pub fn lookup_many(&self, keys: &Keys, ids: &[BlobId]) -> Result<Vec<Option<Location>>> {
        self.read_tx(|conn| {
            // The pack's id is looked up once per pack, not joined into
            // every row: a file's blobs sit in a few packs, and the join
            // doubled the B-tree probes of a database read page by page.
            let mut blob =
                conn.prepare_cached("SELECT pack_no, loc FROM blobs WHERE blob_id = ?1")?;
            let mut pack = conn.prepare_cached("SELECT pack_id FROM packs WHERE pack_no = ?1")?;
            let mut packs: HashMap<i64, PackId> = HashMap::new();
            let mut found = Vec::with_capacity(ids.len());
            for id in ids {
                let row = blob
                    .query_row([&id.0[..]], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
                    })
                    .optional()?;
                let Some((pack_no, loc)) = row else {
                    found.push(None);
                    continue;
                };
                let pack_id = match packs.get(&pack_no) {
                    Some(p) => *p,
                    None => {
                        // A row without its pack (the join found nothing
                        // before) reads as not indexed.
                        let raw: Option<Vec<u8>> =
                            pack.query_row([pack_no], |r| r.get(0)).optional()?;
                        let Some(raw) = raw else {
                            found.push(None);
                            continue;
                        };
                        let p = PackId::from_slice(&raw)
                            .ok_or_else(|| Error::corrupt("index", "packs", "bad pack id"))?;
                        packs.insert(pack_no, p);
                        p
                    }
                };
                found.push(Some(locate(keys, id, &pack_id, &loc)?));
            }
            Ok(found)
        })
    }

    /// Runs the one-row query `sql` for each id, in one read transaction
    /// (see [`Index::read_tx`]).
    fn read_many<T>(
        &self,
        sql: &str,
        ids: &[BlobId],
        row: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<Option<T>>> {
        self.read_tx(|conn| {
            let mut stmt = conn.prepare_cached(sql)?;
            ids.iter()
                .map(|id| Ok(stmt.query_row([&id.0[..]], &row).optional()?))
                .collect()
        })
    }

    /// Runs `f` on the lookup connection inside one read transaction: a
    /// transaction per query cost more than the query (file locks and a
    /// size check each time).
    fn read_tx<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.reader();
        conn.prepare_cached("BEGIN")?.execute([])?;
        let found = f(&conn);
        // Ending a read transaction cannot lose anything; report the first
        // error.
        let end = conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]));
        let found = found?;
        end?;
        Ok(found)
    }

    /// Records durable packs and their blobs in one transaction (one fsync).
    /// Blobs already indexed keep their first location.
    pub fn add_packs(&self, keys: &Keys, packs: &[(PackId, u64, &[PackEntry])]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        insert_packs(&tx, keys, packs, "INSERT OR IGNORE")?;
        tx.commit()?;
        Ok(())
    }

    /// Starts a mark phase: an empty temporary set of used blob ids, filled
    /// inside one transaction (the set lives in SQLite's temporary storage,
    /// on disk when large, so marking years of snapshots stays small in memory).
    pub fn used_begin(&self) -> Result<()> {
        self.conn().execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS used (id BLOB PRIMARY KEY, len INTEGER) WITHOUT ROWID;
             DELETE FROM temp.used;
             CREATE TEMP TABLE IF NOT EXISTS marked (id BLOB NOT NULL, kind INTEGER NOT NULL);
             DELETE FROM temp.marked;
             CREATE TEMP TABLE IF NOT EXISTS marks (id BLOB NOT NULL, kind INTEGER NOT NULL, PRIMARY KEY (id, kind)) WITHOUT ROWID;
             DELETE FROM temp.marks;
             CREATE TEMP TABLE IF NOT EXISTS noted (id BLOB NOT NULL);
             DELETE FROM temp.noted;
             BEGIN;",
        )?;
        for b in [&self.marks, &self.notes] {
            b.pending.store(0, Ordering::Relaxed);
            b.kept.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Marks a blob used; true if it was not marked yet.
    pub fn used_insert(&self, id: &BlobId) -> Result<bool> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("INSERT OR IGNORE INTO temp.used(id) VALUES (?1)")?;
        let inserted = stmt.execute([&id.0[..]])? == 1;
        if inserted {
            self.notes.kept.fetch_add(1, Ordering::Relaxed);
        }
        Ok(inserted)
    }

    /// Marks a blob used without saying whether it was already (prune's
    /// chunks, whose answer nothing needs). Noted ids are appended and
    /// merged into the used set sorted, in batches as large as
    /// [`Index::used_mark`]'s and for the same reason; [`Index::used_end`]
    /// merges the last of them.
    pub fn used_note(&self, id: &BlobId) -> Result<()> {
        self.append_batched(&self.notes, [&id.0[..]])
    }

    /// How many blobs are marked used (after [`Index::used_end`]).
    pub fn used_count(&self) -> Result<u64> {
        let n: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM temp.used", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Notes a use of a blob as a `kind` (`check`'s walk), for
    /// [`Index::for_each_used`]. Uses are appended as they come and merged
    /// into the set of marks, sorted, in large batches
    /// ([`MARKS_MERGE_MIN`]): inserting millions of random ids one by one
    /// into a B-tree larger than SQLite's cache read a page of the
    /// temporary file for each (two thirds of a `check` at 16 GiB).
    pub fn used_mark(&self, id: &BlobId, kind: BlobKind) -> Result<()> {
        self.append_batched(&self.marks, rusqlite::params![&id.0[..], kind as u8])
    }

    /// Appends one row to `b`, and merges its rows once they are
    /// [`MARKS_MERGE_MIN`], or as many as already kept.
    fn append_batched(&self, b: &SortedBatches, row: impl rusqlite::Params) -> Result<()> {
        self.conn().prepare_cached(b.append)?.execute(row)?;
        let pending = b.pending.fetch_add(1, Ordering::Relaxed) + 1;
        if pending >= self.marks_merge_min.max(b.kept.load(Ordering::Relaxed)) {
            self.merge_batched(b)?;
        }
        Ok(())
    }

    /// Merges the rows appended to `b` since its last merge, in key order
    /// (sorted on two threads), and empties them.
    fn merge_batched(&self, b: &SortedBatches) -> Result<()> {
        let conn = self.conn();
        conn.execute_batch("PRAGMA threads = 2")?;
        let merged = conn.execute(b.merge, []);
        conn.execute_batch("PRAGMA threads = 0")?;
        let added = merged? as u64;
        conn.execute_batch(b.clear)?;
        b.kept.fetch_add(added, Ordering::Relaxed);
        b.pending.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Every blob noted by [`Index::used_mark`], once, in id order, with
    /// the kinds it is used as and where the index puts it (`Ok(None)`: not
    /// indexed; `Err`: its location fails authentication): the marks merged
    /// with the index's blobs, both read in key order (a lookup per mark
    /// touched the index's pages in random order).
    ///
    /// # Errors
    /// SQLite errors, and what `f` returns.
    pub fn for_each_used(
        &self,
        keys: &Keys,
        mut f: impl FnMut(&BlobId, &[BlobKind], Result<Option<Location>>) -> Result<()>,
    ) -> Result<()> {
        self.merge_batched(&self.marks)?;
        let conn = self.conn();
        let mut packs = HashMap::new();
        {
            let mut stmt = conn.prepare("SELECT pack_no, pack_id FROM packs")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let raw: Vec<u8> = row.get(1)?;
                let id = PackId::from_slice(&raw)
                    .ok_or_else(|| Error::corrupt("index", "packs", "bad pack id"))?;
                packs.insert(row.get::<_, i64>(0)?, id);
            }
        }
        let mut marks = conn.prepare("SELECT id, kind FROM temp.marks ORDER BY id, kind")?;
        let mut marks = marks.query([])?;
        let mut blobs = conn.prepare("SELECT blob_id, pack_no, loc FROM blobs ORDER BY blob_id")?;
        let mut blobs = SortedBlobs::new(blobs.query([])?)?;
        // The uses of one blob, gathered.
        let mut current: Option<(BlobId, Vec<BlobKind>)> = None;
        loop {
            let next = match marks.next()? {
                Some(row) => {
                    let raw: Vec<u8> = row.get(0)?;
                    let id = BlobId::from_slice(&raw)
                        .ok_or_else(|| Error::corrupt("index", "marked", "bad blob id"))?;
                    let kind = BlobKind::from_u8(row.get(1)?)
                        .ok_or_else(|| Error::corrupt("index", "marked", "bad kind"))?;
                    Some((id, kind))
                }
                None => None,
            };
            match (&mut current, next) {
                (Some((seen, kinds)), Some((id, kind))) if *seen == id => {
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                    continue;
                }
                (_, next) => {
                    if let Some((id, kinds)) = current.take() {
                        // A row without its pack reads as not indexed, as
                        // in [`Index::lookup_many`].
                        let found = blobs
                            .seek(&id)?
                            .and_then(|(pack_no, loc)| Some((packs.get(&pack_no)?, loc)))
                            .map(|(pack, loc)| locate(keys, &id, pack, loc))
                            .transpose();
                        f(&id, &kinds, found)?;
                    }
                    match next {
                        Some((id, kind)) => current = Some((id, vec![kind])),
                        None => return Ok(()),
                    }
                }
            }
        }
    }

    /// Notes a number (a chunk-list piece's length, for `check`) beside
    /// the mark of `id`, which must be marked.
    pub fn used_set_len(&self, id: &BlobId, len: u64) -> Result<()> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("UPDATE temp.used SET len = ?2 WHERE id = ?1")?;
        stmt.execute(rusqlite::params![&id.0[..], len as i64])?;
        Ok(())
    }

    /// The number noted beside the mark of `id` ([`Index::used_set_len`]).
    pub fn used_len(&self, id: &BlobId) -> Result<Option<u64>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT len FROM temp.used WHERE id = ?1")?;
        let len: Option<Option<i64>> = stmt.query_row([&id.0[..]], |r| r.get(0)).optional()?;
        Ok(len.flatten().map(|n| n as u64))
    }

    /// Whether each of `ids` is marked used (after [`Index::used_end`]).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn used_contains_many(&self, ids: &[BlobId]) -> Result<Vec<bool>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT 1 FROM temp.used WHERE id = ?1")?;
        ids.iter()
            .map(|id| {
                Ok(stmt
                    .query_row([&id.0[..]], |_| Ok(()))
                    .optional()?
                    .is_some())
            })
            .collect()
    }

    /// Ends the mark phase: merges what [`Index::used_note`] still holds,
    /// then commits.
    pub fn used_end(&self) -> Result<()> {
        self.merge_batched(&self.notes)?;
        self.conn().execute_batch("COMMIT")?;
        Ok(())
    }

    /// Abandons a mark phase (on error).
    pub fn used_abort(&self) {
        let _ = self.conn().execute_batch("ROLLBACK");
    }

    /// How many used blobs the index does not know.
    pub fn used_missing(&self) -> Result<u64> {
        let n: i64 = self.conn().query_row(
            "SELECT count(*) FROM temp.used u WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.blob_id = u.id)",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// How much of every indexed pack is used, in pack order. The blobs are
    /// read in key order beside the used set, a merge of two sorted B-trees:
    /// going pack by pack, each blob's row and its mark were two random
    /// lookups (at 16 GiB, 2.5 million of each). Memory: a few words per
    /// pack.
    pub fn pack_usage(&self, keys: &Keys) -> Result<Vec<PackUsage>> {
        let conn = self.conn();
        let mut packs = Vec::new();
        let mut by_no: IdMap<i64, usize> = IdMap::default();
        let mut stmt = conn.prepare("SELECT pack_no, pack_id, size FROM packs ORDER BY pack_no")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let pack = PackId::from_slice(&row.get::<_, Vec<u8>>(1)?)
                .ok_or_else(|| Error::corrupt("index", "packs", "bad pack id"))?;
            by_no.insert(row.get(0)?, packs.len());
            packs.push(PackUsage {
                pack,
                size: row.get::<_, i64>(2)? as u64,
                used: 0,
                unused: 0,
                unused_bytes: 0,
            });
        }
        let mut stmt = conn.prepare(
            "SELECT b.blob_id, b.pack_no, b.loc, u.id IS NOT NULL
             FROM blobs b LEFT JOIN temp.used u ON u.id = b.blob_id ORDER BY b.blob_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            // A blob of no listed pack counts for none, as a pack-by-pack
            // walk would not meet it.
            let Some(usage) = by_no
                .get(&row.get::<_, i64>(1)?)
                .and_then(|&i| packs.get_mut(i))
            else {
                continue;
            };
            let id = BlobId::from_slice(&row.get::<_, Vec<u8>>(0)?)
                .ok_or_else(|| Error::corrupt("index", "blobs", "bad blob id"))?;
            let loc: Vec<u8> = row.get(2)?;
            let (_, _, length) = open_location(keys, &id, &usage.pack, &loc)?;
            if row.get::<_, bool>(3)? {
                usage.used += 1;
            } else {
                usage.unused += 1;
                usage.unused_bytes += u64::from(length);
            }
        }
        Ok(packs)
    }

    /// Prune's commit: records the new packs (their blobs now point there)
    /// and forgets the dropped packs and whatever blobs still point at them,
    /// in one transaction.
    pub fn replace_packs(
        &self,
        keys: &Keys,
        new: &[(PackId, u64, &[PackEntry])],
        dropped: &[PackId],
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // Blobs copied by the repack now point at their new packs.
        insert_packs(&tx, keys, new, "INSERT OR REPLACE")?;
        for pack in dropped {
            tx.execute(
                "DELETE FROM blobs WHERE pack_no = (SELECT pack_no FROM packs WHERE pack_id = ?1)",
                [&pack.0[..]],
            )?;
            tx.execute(
                "DELETE FROM file_packs WHERE pack_no = (SELECT pack_no FROM packs WHERE pack_id = ?1)",
                [&pack.0[..]],
            )?;
            tx.execute("DELETE FROM packs WHERE pack_id = ?1", [&pack.0[..]])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes the database files at `path` (the cache may be deleted at
    /// any time).
    ///
    /// # Errors
    /// I/O errors other than a missing file.
    pub fn remove_files(path: &Path) -> Result<()> {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(PathBuf::from(p), e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Every indexed pack with its recorded size.
    pub fn packs(&self) -> Result<Vec<(PackId, u64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT pack_id, size FROM packs ORDER BY pack_id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, size) = row?;
            let id = PackId::from_slice(&id)
                .ok_or_else(|| Error::corrupt("index", "packs", "bad pack id"))?;
            out.push((id, size as u64));
        }
        Ok(out)
    }

    /// Number of indexed blobs.
    pub fn blob_count(&self) -> Result<u64> {
        Ok(self
            .conn()
            .query_row("SELECT count(*) FROM blobs", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Makes `dir` (and its parents) if missing, private (0700): the cache
/// names every blob of the repository.
fn make_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(Error::io(dir, e)),
        _ => Ok(()),
    }
}

/// Inserts packs and their blobs; `verb` says what happens to a blob
/// already indexed: kept (`INSERT OR IGNORE`) or moved (`INSERT OR REPLACE`).
/// Returns the packs' row numbers.
fn insert_packs(
    tx: &rusqlite::Transaction<'_>,
    keys: &Keys,
    packs: &[(PackId, u64, &[PackEntry])],
    verb: &str,
) -> Result<Vec<i64>> {
    let mut rows: Vec<(i64, &PackId, &PackEntry)> = Vec::new();
    let mut numbers = Vec::with_capacity(packs.len());
    for (pack, size, entries) in packs {
        tx.execute(
            "INSERT OR IGNORE INTO packs(pack_id, size) VALUES (?1, ?2)",
            params![&pack.0[..], *size as i64],
        )?;
        let pack_no: i64 = tx.query_row(
            "SELECT pack_no FROM packs WHERE pack_id = ?1",
            [&pack.0[..]],
            |r| r.get(0),
        )?;
        numbers.push(pack_no);
        rows.extend(entries.iter().map(|e| (pack_no, pack, e)));
    }
    // In key order, each page of the blobs table is visited once: in random
    // order, a table larger than the page cache was read and spilled page
    // by page (8 packs of database pages took 0.4 s, then 0.1 s).
    // Stable: a blob listed by two packs keeps the first, as before.
    rows.sort_by_key(|&(_, _, e)| e.id);
    let mut stmt = tx.prepare_cached(&format!(
        "{verb} INTO blobs(blob_id, pack_no, loc) VALUES (?1, ?2, ?3)"
    ))?;
    for (pack_no, pack, e) in rows {
        stmt.execute(params![&e.id.0[..], pack_no, seal_location(keys, pack, e)])?;
    }
    Ok(numbers)
}

/// The index's blobs read in key order, sought forward only: a merge with
/// ids that come in increasing order ([`Index::for_each_used`]).
struct SortedBlobs<'s> {
    rows: rusqlite::Rows<'s>,
    /// The current row: blob id, pack number, sealed location.
    head: Option<(Vec<u8>, i64, Vec<u8>)>,
}

impl<'s> SortedBlobs<'s> {
    fn new(rows: rusqlite::Rows<'s>) -> Result<Self> {
        let mut blobs = SortedBlobs { rows, head: None };
        blobs.advance()?;
        Ok(blobs)
    }

    fn advance(&mut self) -> Result<()> {
        self.head = match self.rows.next()? {
            Some(row) => Some((row.get(0)?, row.get(1)?, row.get(2)?)),
            None => None,
        };
        Ok(())
    }

    /// The pack number and sealed location of `id`, if indexed; `id` must
    /// not come before an id sought earlier.
    fn seek(&mut self, id: &BlobId) -> Result<Option<(i64, &[u8])>> {
        while self.head.as_ref().is_some_and(|(b, ..)| b[..] < id.0[..]) {
            self.advance()?;
        }
        Ok(match &self.head {
            Some((b, pack_no, loc)) if b[..] == id.0[..] => Some((*pack_no, &loc[..])),
            _ => None,
        })
    }
}

/// The associated data of a location: the blob and the pack it is in, so
/// a row moved to another pack (or another blob) fails authentication.
fn location_context(id: &BlobId, pack: &PackId) -> [u8; 64] {
    let mut ctx = [0u8; 64];
    ctx[..32].copy_from_slice(id.as_bytes());
    ctx[32..].copy_from_slice(pack.as_bytes());
    ctx
}

fn seal_location(keys: &Keys, pack: &PackId, e: &PackEntry) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(e.kind as u8);
    w.u32_le(e.offset);
    w.u32_le(e.length);
    keys.seal(
        ObjectKind::Location,
        &location_context(&e.id, pack),
        &w.into_bytes(),
    )
}

/// Where the index puts blob `id` in `pack` (its sealed location opened).
fn locate(keys: &Keys, id: &BlobId, pack: &PackId, sealed: &[u8]) -> Result<Location> {
    let (kind, offset, length) = open_location(keys, id, pack, sealed)?;
    Ok(Location {
        pack: *pack,
        kind,
        offset,
        length,
    })
}

fn open_location(
    keys: &Keys,
    id: &BlobId,
    pack: &PackId,
    sealed: &[u8],
) -> Result<(BlobKind, u32, u32)> {
    let bad = |why: &str| Error::corrupt("index entry", id.short(), why);
    let plain = keys
        .open(ObjectKind::Location, &location_context(id, pack), sealed)
        .map_err(|_| bad("fails authentication (the local index cache was changed: run `coffre rebuild-index`)"))?;
    let mut r = Reader::new(&plain);
    let kind = r
        .u8()
        .ok()
        .and_then(BlobKind::from_u8)
        .ok_or_else(|| bad("bad kind"))?;
    let offset = r.u32_le().map_err(|_| bad("truncated"))?;
    let length = r.u32_le().map_err(|_| bad("truncated"))?;
    r.finish().map_err(|_| bad("trailing bytes"))?;
    Ok((kind, offset, length))
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn a_lookup_does_not_wait_for_another_one() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::derive(&MasterKey::from_bytes([2; 32]), [0; 16]);
        let idx = Index::open(&dir.path().join("index.db")).unwrap();
        let e = PackEntry {
            id: BlobId([1; 32]),
            kind: BlobKind::Data,
            offset: 0,
            length: 40,
        };
        idx.add_packs(&keys, &[(PackId([9; 32]), 100, &[e][..])])
            .unwrap();
        // Every connection but one is busy (a lookup waiting for the disk):
        // the next lookup takes the free one, whichever it is.
        let busy: Vec<_> = (0..(LOOKUP_CONNECTIONS - 1).max(1))
            .map(|_| idx.reader())
            .collect();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| tx.send(idx.lookup(&keys, &e.id).unwrap()));
            let found = rx.recv_timeout(std::time::Duration::from_secs(5));
            drop(busy);
            assert_eq!(found.expect("the lookup waited").map(|l| l.offset), Some(0));
        });
    }

    #[test]
    fn noted_ids_are_all_used_after_the_end_however_often_merged() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = Index::open(&dir.path().join("index.db")).unwrap();
        // Merged every two or more, as every million or more would be.
        idx.marks_merge_min = 2;
        let id = |n: u8| BlobId([n; 32]);
        idx.used_begin().unwrap();
        assert!(idx.used_insert(&id(1)).unwrap());
        idx.used_note(&id(3)).unwrap();
        idx.used_note(&id(2)).unwrap();
        // Those two were merged: a tree with id 3 reads as marked.
        assert!(!idx.used_insert(&id(3)).unwrap());
        for n in [3, 1, 5, 4, 2, 7] {
            idx.used_note(&id(n)).unwrap();
        }
        idx.used_end().unwrap();
        assert_eq!(idx.used_count().unwrap(), 6);
        let all: Vec<BlobId> = (0..9).map(id).collect();
        assert_eq!(
            idx.used_contains_many(&all).unwrap(),
            [false, true, true, true, true, true, false, true, false]
        );
    }

    #[test]
    fn pack_usage_counts_marks_and_repack_gets_the_marked_in_pack_order() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::derive(&MasterKey::from_bytes([2; 32]), [0; 16]);
        let idx = Index::open(&dir.path().join("index.db")).unwrap();
        // Ids and offsets in opposite orders, so the key-order pass and the
        // pack-order copy differ.
        let entry = |id: u8, offset: u32, length: u32| PackEntry {
            id: BlobId([id; 32]),
            kind: BlobKind::Data,
            offset,
            length,
        };
        let a = [
            entry(1, 300, 10),
            entry(2, 200, 20),
            entry(5, 100, 30),
            entry(7, 0, 40),
        ];
        let b = [entry(3, 0, 50), entry(4, 60, 60)];
        let (pa, pb, pc) = (PackId([9; 32]), PackId([8; 32]), PackId([7; 32]));
        idx.add_packs(
            &keys,
            &[(pa, 1000, &a[..]), (pb, 2000, &b[..]), (pc, 3000, &[][..])],
        )
        .unwrap();
        idx.used_begin().unwrap();
        for n in [7, 1, 2] {
            idx.used_note(&BlobId([n; 32])).unwrap();
        }
        idx.used_end().unwrap();
        let usage: Vec<(PackId, u64, u64, u64, u64)> = idx
            .pack_usage(&keys)
            .unwrap()
            .into_iter()
            .map(|u| (u.pack, u.size, u.used, u.unused, u.unused_bytes))
            .collect();
        assert_eq!(
            usage,
            [
                (pa, 1000, 3, 1, 30),
                (pb, 2000, 0, 2, 110),
                (pc, 3000, 0, 0, 0)
            ]
        );
        let offsets = |p: &PackId| -> Vec<(u8, u32)> {
            idx.used_entries_of_pack(&keys, p)
                .unwrap()
                .iter()
                .map(|e| (e.id.0[0], e.offset))
                .collect()
        };
        assert_eq!(offsets(&pa), [(7, 0), (2, 200), (1, 300)]);
        assert!(offsets(&pb).is_empty());
    }

    #[test]
    fn marks_come_back_in_id_order_with_their_kinds_and_locations() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::derive(&MasterKey::from_bytes([2; 32]), [0; 16]);
        let mut idx = Index::open(&dir.path().join("index.db")).unwrap();
        // Uses merged into the marks every two or more, as every million
        // or more would be.
        idx.marks_merge_min = 2;
        let entry = |id: u8, kind| PackEntry {
            id: BlobId([id; 32]),
            kind,
            offset: u32::from(id),
            length: 40,
        };
        let stored = [entry(1, BlobKind::Data), entry(3, BlobKind::Tree)];
        idx.add_packs(&keys, &[(PackId([9; 32]), 100, &stored[..])])
            .unwrap();
        // Blob 3's location sealed for another blob: it fails authentication.
        idx.conn()
            .execute(
                "UPDATE blobs SET loc = (SELECT loc FROM blobs WHERE blob_id = ?1) WHERE blob_id = ?2",
                [&[1u8; 32][..], &[3u8; 32][..]],
            )
            .unwrap();
        idx.used_begin().unwrap();
        for (id, kind) in [
            (3, BlobKind::Tree),
            (2, BlobKind::Data),
            (1, BlobKind::Data),
            (1, BlobKind::Delta),
            (3, BlobKind::Tree),
            (1, BlobKind::Data),
            (2, BlobKind::Data),
        ] {
            idx.used_mark(&BlobId([id; 32]), kind).unwrap();
        }
        let mut seen = Vec::new();
        idx.for_each_used(&keys, |id, kinds, found| {
            let found = match found {
                Ok(Some(l)) => format!("{}@{}", l.kind.name(), l.offset),
                Ok(None) => "not indexed".into(),
                Err(_) => "fails authentication".into(),
            };
            seen.push((id.0[0], kinds.to_vec(), found));
            Ok(())
        })
        .unwrap();
        idx.used_abort();
        assert_eq!(
            seen,
            [
                (
                    1,
                    vec![BlobKind::Data, BlobKind::Delta],
                    format!("{}@1", BlobKind::Data.name())
                ),
                (2, vec![BlobKind::Data], "not indexed".into()),
                (3, vec![BlobKind::Tree], "fails authentication".into()),
            ]
        );
        // The marks are gone with the mark phase.
        idx.used_begin().unwrap();
        let mut rows = 0;
        idx.for_each_used(&keys, |_, _, _| {
            rows += 1;
            Ok(())
        })
        .unwrap();
        idx.used_abort();
        assert_eq!(rows, 0);
    }

    #[test]
    fn add_lookup_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::derive(&MasterKey::from_bytes([2; 32]), [0; 16]);
        let path = dir.path().join("index.db");
        let pack = PackId([9; 32]);
        let e = PackEntry {
            id: BlobId([1; 32]),
            kind: BlobKind::Tree,
            offset: 12,
            length: 40,
        };
        {
            let idx = Index::open(&path).unwrap();
            idx.add_packs(&keys, &[(pack, 100, &[e][..])]).unwrap();
            // Adding the same blob again keeps the first location.
            idx.add_packs(
                &keys,
                &[(PackId([8; 32]), 50, &[PackEntry { offset: 20, ..e }][..])],
            )
            .unwrap();
        }
        let idx = Index::open(&path).unwrap();
        assert_eq!(
            idx.contains_many(&[BlobId([2; 32]), e.id, e.id]).unwrap(),
            [false, true, true]
        );
        assert_eq!(idx.contains_many(&[]).unwrap(), Vec::<bool>::new());
        let loc = idx.lookup(&keys, &e.id).unwrap().unwrap();
        assert_eq!(
            loc,
            Location {
                pack,
                kind: BlobKind::Tree,
                offset: 12,
                length: 40
            }
        );
        assert_eq!(idx.packs().unwrap().len(), 2);
        // The location is sealed: another key cannot read it.
        let other = Keys::derive(&MasterKey::from_bytes([3; 32]), [0; 16]);
        assert!(idx.lookup(&other, &e.id).is_err());
    }

    #[test]
    fn a_foreign_cache_is_recreated_and_moved_rows_fail() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::derive(&MasterKey::from_bytes([2; 32]), [0; 16]);
        let path = dir.path().join("index.db");
        let e = PackEntry {
            id: BlobId([1; 32]),
            kind: BlobKind::Data,
            offset: 12,
            length: 40,
        };
        {
            let idx = Index::open(&path).unwrap();
            idx.add_packs(
                &keys,
                &[
                    (PackId([9; 32]), 100, &[e][..]),
                    (PackId([8; 32]), 100, &[][..]),
                ],
            )
            .unwrap();
        }
        // A row pointed at another pack (no key needed to do that) fails.
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE blobs SET pack_no = (SELECT pack_no FROM packs WHERE pack_id = ?1)",
            [&[8u8; 32][..]],
        )
        .unwrap();
        drop(conn);
        let idx = Index::open(&path).unwrap();
        assert!(matches!(
            idx.lookup(&keys, &e.id),
            Err(Error::Corrupt { .. })
        ));
        drop(idx);
        // A trigger planted in the file is never run: the cache is not ours
        // any more and starts again empty.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE evil(x); CREATE TRIGGER t AFTER INSERT ON blobs BEGIN INSERT INTO evil VALUES (1); END;",
        )
        .unwrap();
        drop(conn);
        let idx = Index::open(&path).unwrap();
        assert_eq!(idx.blob_count().unwrap(), 0);
        idx.add_packs(&keys, &[(PackId([9; 32]), 100, &[e][..])])
            .unwrap();
        assert!(idx.lookup(&keys, &e.id).unwrap().is_some());
        drop(idx);
        // Another schema version: recreated too.
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE meta SET value = 99 WHERE key = 'version'", [])
            .unwrap();
        drop(conn);
        assert_eq!(Index::open(&path).unwrap().blob_count().unwrap(), 0);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache").join("index.db");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"junk, not SQLite").unwrap();
        let idx = Index::open(&path).unwrap();
        assert_eq!(idx.blob_count().unwrap(), 0);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "cache file {mode:o} is private");
    }
}
