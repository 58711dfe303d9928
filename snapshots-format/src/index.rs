//! The index, `index/index.db` (FORMAT.md §6): an SQLite database mapping blob
//! ids to their pack and sealed location, so that opening a repository reads
//! nothing but the rows it needs. It holds only opaque ids, pack sizes and
//! sealed locations (offsets and lengths would reveal file sizes), and it is a
//! cache: `rebuild` recreates it from the pack trailers.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a committed pack
//! survives a power loss; a pack's rows are inserted only after the pack file
//! itself is durable, and a snapshot record only after its packs' rows commit.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::blob::BlobKind;
use crate::codec::{Reader, Writer};
use crate::crypto::{Keys, ObjectKind};
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::pack::PackEntry;

/// Schema version of the index database.
pub const INDEX_VERSION: i64 = 1;
/// File name of the database inside `index/`.
pub const INDEX_FILE: &str = "index.db";

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
    /// Its blobs still referenced.
    pub used: Vec<PackEntry>,
    /// Number of blobs no snapshot references.
    pub unused: u64,
    /// Their sealed bytes.
    pub unused_bytes: u64,
}

/// The open index database.
pub struct Index {
    conn: Mutex<Connection>,
    reader: Mutex<Connection>,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS packs (
    pack_no INTEGER PRIMARY KEY,
    pack_id BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    blob_id BLOB PRIMARY KEY,
    pack_no INTEGER NOT NULL REFERENCES packs(pack_no),
    loc BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_by_pack ON blobs(pack_no);
";

/// Settings of every index connection.
fn tune(conn: &Connection) -> Result<()> {
    // Plans that do not depend on bound values. Without this, SQLite
    // marks the lookup by blob id as "replan when rebound", and since a
    // cached statement's bindings are cleared on every return to the
    // cache, each lookup was parsed and planned again (a third of a
    // small file's restore time).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

impl Index {
    /// Opens (creating if needed) the index database at `path`.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] for an index written by a newer Coffre.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // Read the version before touching the schema: a newer index must be
        // refused unchanged.
        let has_meta: bool = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'",
            [],
            |r| r.get::<_, i64>(0),
        )? > 0;
        let version: Option<i64> = if has_meta {
            conn.query_row("SELECT value FROM meta WHERE key='version'", [], |r| {
                r.get(0)
            })
            .optional()?
        } else {
            None
        };
        if let Some(v) = version.filter(|v| *v > INDEX_VERSION) {
            return Err(Error::UnsupportedVersion {
                what: "index",
                found: v as u32,
                supported: INDEX_VERSION as u32,
            });
        }
        // WAL lets a mount read while a snapshot writes; FULL makes each commit
        // durable. Some filesystems cannot hold WAL's shared memory: fall back
        // to a rollback journal, equally durable.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get::<_, String>(0))?;
        }
        // Blob ids are random, so inserts and lookups land all over the
        // table: SQLite's default 2 MiB page cache missed most of them. The
        // caches (8 MiB here, 4 MiB for lookups) fill as the index grows and
        // count in the snapshot's peak memory: twice that cost 12 MiB for no
        // speed measurable on a 2 GB first snapshot.
        //
        // A checkpoint copies every page the WAL holds back into the
        // database; the default (every 4 MB of WAL) made a first snapshot
        // copy most of the index after every commit.
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-8192;
             PRAGMA wal_autocheckpoint=8192;",
        )?;
        tune(&conn)?;
        conn.execute_batch(SCHEMA)?;
        if version.is_none() {
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('version', ?1)",
                [INDEX_VERSION],
            )?;
        }
        // Lookups get a connection of their own: a commit (with its fsync)
        // must not stall the readers deciding what is new, which left both
        // cores idle for the length of every fsync. Only committed rows are
        // seen there, which is what the saver needs: a blob is forgotten by
        // the saver only once its pack is committed.
        let reader = Connection::open(path)?;
        reader.busy_timeout(std::time::Duration::from_secs(30))?;
        reader.execute_batch("PRAGMA query_only=1;")?;
        tune(&reader)?;
        reader.execute_batch("PRAGMA cache_size=-4096;")?;
        Ok(Self {
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            path: path.to_path_buf(),
        })
    }

    /// The lookup connection.
    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (transactions roll back), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
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
        let rows = self.read_many(
            "SELECT p.pack_id, b.loc FROM blobs b JOIN packs p ON p.pack_no = b.pack_no WHERE b.blob_id = ?1",
            ids,
            |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)),
        )?;
        ids.iter()
            .zip(rows)
            .map(|(id, row)| {
                let Some((pack, loc)) = row else {
                    return Ok(None);
                };
                let pack = PackId::from_slice(&pack)
                    .ok_or_else(|| Error::corrupt("index", "packs", "bad pack id"))?;
                let (kind, offset, length) = open_location(keys, id, &loc)?;
                Ok(Some(Location {
                    pack,
                    kind,
                    offset,
                    length,
                }))
            })
            .collect()
    }

    /// Runs the one-row query `sql` for each id, in one read transaction:
    /// a transaction per query cost more than the query (file locks and a
    /// size check each time).
    fn read_many<T>(
        &self,
        sql: &str,
        ids: &[BlobId],
        row: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<Option<T>>> {
        let conn = self.reader();
        conn.prepare_cached("BEGIN")?.execute([])?;
        let found = (|| {
            let mut stmt = conn.prepare_cached(sql)?;
            ids.iter()
                .map(|id| Ok(stmt.query_row([&id.0[..]], &row).optional()?))
                .collect::<Result<Vec<Option<T>>>>()
        })();
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

    /// The blobs indexed in one pack.
    pub fn blobs_in_pack(&self, pack: &PackId) -> Result<Vec<BlobId>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT b.blob_id FROM blobs b JOIN packs p ON p.pack_no = b.pack_no WHERE p.pack_id = ?1",
        )?;
        let rows = stmt.query_map([&pack.0[..]], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.extend(BlobId::from_slice(&row?));
        }
        Ok(out)
    }

    /// Starts a mark phase: an empty temporary set of used blob ids, filled
    /// inside one transaction (the set lives in SQLite's temporary storage,
    /// on disk when large, so marking years of snapshots stays small in memory).
    pub fn used_begin(&self) -> Result<()> {
        self.conn().execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS used (id BLOB PRIMARY KEY) WITHOUT ROWID;
             DELETE FROM temp.used;
             BEGIN;",
        )?;
        Ok(())
    }

    /// Marks a blob used; true if it was not marked yet.
    pub fn used_insert(&self, id: &BlobId) -> Result<bool> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("INSERT OR IGNORE INTO temp.used(id) VALUES (?1)")?;
        Ok(stmt.execute([&id.0[..]])? == 1)
    }

    /// Ends the mark phase's transaction.
    pub fn used_end(&self) -> Result<()> {
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

    /// Every indexed pack with its blobs and whether each is marked used,
    /// one pack at a time (rows are streamed, not loaded whole).
    pub fn for_each_pack_usage(
        &self,
        keys: &Keys,
        mut f: impl FnMut(PackUsage) -> Result<()>,
    ) -> Result<()> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT p.pack_id, p.size, b.blob_id, b.loc, u.id IS NOT NULL
             FROM packs p LEFT JOIN blobs b ON b.pack_no = p.pack_no LEFT JOIN temp.used u ON u.id = b.blob_id
             ORDER BY p.pack_no",
        )?;
        let mut rows = stmt.query([])?;
        let mut current: Option<PackUsage> = None;
        while let Some(row) = rows.next()? {
            let pack: Vec<u8> = row.get(0)?;
            let pack = PackId::from_slice(&pack)
                .ok_or_else(|| Error::corrupt("index", "packs", "bad pack id"))?;
            if current.as_ref().is_some_and(|c| c.pack != pack) {
                f(current.take().expect("checked above"))?;
            }
            let usage = current.get_or_insert_with(|| PackUsage {
                pack,
                size: 0,
                used: Vec::new(),
                unused: 0,
                unused_bytes: 0,
            });
            usage.size = row.get::<_, i64>(1)? as u64;
            let Some(blob) = row.get::<_, Option<Vec<u8>>>(2)? else {
                continue;
            };
            let id = BlobId::from_slice(&blob)
                .ok_or_else(|| Error::corrupt("index", "blobs", "bad blob id"))?;
            let loc: Vec<u8> = row.get(3)?;
            let (kind, offset, length) = open_location(keys, &id, &loc)?;
            if row.get::<_, bool>(4)? {
                usage.used.push(PackEntry {
                    id,
                    kind,
                    offset,
                    length,
                });
            } else {
                usage.unused += 1;
                usage.unused_bytes += u64::from(length);
            }
        }
        if let Some(c) = current {
            f(c)?;
        }
        Ok(())
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
            tx.execute("DELETE FROM packs WHERE pack_id = ?1", [&pack.0[..]])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes the database files at `path` (the index is a cache; see `rebuild`).
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

/// Inserts packs and their blobs; `verb` says what happens to a blob
/// already indexed: kept (`INSERT OR IGNORE`) or moved (`INSERT OR REPLACE`).
fn insert_packs(
    tx: &rusqlite::Transaction<'_>,
    keys: &Keys,
    packs: &[(PackId, u64, &[PackEntry])],
    verb: &str,
) -> Result<()> {
    let mut rows: Vec<(i64, &PackEntry)> = Vec::new();
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
        rows.extend(entries.iter().map(|e| (pack_no, e)));
    }
    // In key order, each page of the blobs table is visited once: in random
    // order, a table larger than the page cache was read and spilled page
    // by page (8 packs of database pages took 0.4 s, then 0.1 s).
    // Stable: a blob listed by two packs keeps the first, as before.
    rows.sort_by_key(|&(_, e)| e.id);
    let mut stmt = tx.prepare_cached(&format!(
        "{verb} INTO blobs(blob_id, pack_no, loc) VALUES (?1, ?2, ?3)"
    ))?;
    for (pack_no, e) in rows {
        stmt.execute(params![&e.id.0[..], pack_no, seal_location(keys, e)])?;
    }
    Ok(())
}

fn seal_location(keys: &Keys, e: &PackEntry) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(e.kind as u8);
    w.u32_le(e.offset);
    w.u32_le(e.length);
    keys.seal(ObjectKind::Location, e.id.as_bytes(), &w.into_bytes())
}

fn open_location(keys: &Keys, id: &BlobId, sealed: &[u8]) -> Result<(BlobKind, u32, u32)> {
    let bad = |why: &str| Error::corrupt("index entry", id.short(), why);
    let plain = keys
        .open(ObjectKind::Location, id.as_bytes(), sealed)
        .map_err(|_| bad("fails authentication"))?;
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
    fn newer_index_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        drop(Index::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE meta SET value = 99 WHERE key = 'version'", [])
            .unwrap();
        drop(conn);
        assert!(matches!(
            Index::open(&path),
            Err(Error::UnsupportedVersion { found: 99, .. })
        ));
    }
}
