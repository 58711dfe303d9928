//! Checking a repository (docs/DESIGN.md invariant 4).
//!
//! Structure: every snapshot record opens; every tree of every snapshot
//! loads; every blob they reference is in the index, in a pack that exists,
//! within its recorded size; every indexed pack exists with that size.
//! With `read_data`, every pack is read whole: its hash must match its
//! name, its trailer must open, and every blob in it must decrypt and
//! re-hash to its id. Damaged blobs are then traced to the files and the
//! snapshots that contain them.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use serde::Serialize;

use crate::backend::{FileKind, ObjectName};
use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::content::{Content, Extent};
use crate::format::pack;
use crate::format::tree::Payload;
use crate::id::{BlobId, PackId, SnapshotId};
use crate::limits::MAX_FILE_LEN;
use crate::progress::Progress;
use crate::repo::chunk_list_reader::{add_lengths, ChunkListReader};
use crate::repo::index::Location;
use crate::repo::{ListingReader, Repository};

/// What to check.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Read and verify every byte of every pack.
    pub read_data: bool,
    /// Read only part `.0` (from 0) of `.1` parts of the packs: every pack
    /// falls in exactly one part (by its id), so `.1` runs with parts
    /// `0..1` read each pack exactly once.
    pub subset: Option<(u64, u64)>,
}

/// Whether pack `id` is in part `part` of `parts`.
pub fn in_subset(id: &PackId, (part, parts): (u64, u64)) -> bool {
    let mut first = [0u8; 8];
    first.copy_from_slice(&id.0[..8]);
    parts > 0 && u64::from_be_bytes(first) % parts == part
}

/// A file (or directory) of a snapshot that cannot be restored whole.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DamagedFile {
    /// Short id of the snapshot.
    pub snapshot: String,
    /// Local time of the snapshot.
    pub time: String,
    /// Path inside the snapshot (lossy UTF-8).
    pub path: String,
    /// Why it cannot be restored.
    pub reason: String,
}

/// The outcome of a check.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    /// Snapshots checked.
    pub snapshots: u64,
    /// Distinct trees checked.
    pub trees: u64,
    /// Distinct data, chunk-list and tree-piece blobs referenced.
    pub blobs: u64,
    /// Packs in the index.
    pub packs: u64,
    /// Bytes of packs read (with `read_data`).
    pub bytes_read: u64,
    /// The packs read (with `read_data` or a subset), by id.
    pub packs_read: Vec<String>,
    /// Problems found; empty means the repository is sound.
    pub errors: Vec<String>,
    /// Things that do not lose data but deserve attention.
    pub warnings: Vec<String>,
    /// Files that a damaged or missing blob makes unrestorable, in every
    /// snapshot that holds them.
    pub damaged_files: Vec<DamagedFile>,
}

impl CheckReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty() && self.damaged_files.is_empty()
    }
}

/// Checks `repo`.
pub fn check(
    repo: &Repository,
    opts: CheckOptions,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    // Snapshots first, then the index, then the packs: a snapshot writes
    // its packs, then their index, then its record, so every snapshot
    // listed here finds its packs and index entries below, even while
    // another snapshot runs (prune is kept out by the lock).
    let ids = repo.list_snapshots()?;
    repo.refresh_index()?;
    let indexed: HashMap<PackId, u64> = repo.index().packs()?.into_iter().collect();
    let on_disk: HashMap<PackId, u64> = repo.list_packs()?.into_iter().collect();
    check_index_files(repo, &mut report)?;
    check_key_files(repo, &mut report)?;
    if opts.read_data {
        // One read per entry (one request each on S3): with the packs.
        check_journal_files(repo)?;
    }
    report.packs = indexed.len() as u64;
    for (id, size) in &indexed {
        match on_disk.get(id) {
            None => report.errors.push(format!(
                "pack {} is in the index but missing from the drive",
                id.short()
            )),
            Some(s) if s != size => report.errors.push(format!(
                "pack {} is {s} bytes, the index says {size} (truncated?)",
                id.short()
            )),
            Some(_) => compare_with_trailer(repo, id, *size, &mut report),
        }
    }
    for id in on_disk.keys().filter(|id| !indexed.contains_key(id)) {
        report.warnings.push(format!(
            "pack {} is in no index file (written by a snapshot running now, or left by an interrupted run: prune removes it; rebuild-index adds it)",
            id.short()
        ));
    }

    // Every small chunk may need the dictionary: its damage comes first.
    match repo.dictionary() {
        Err(e) => report.errors.push(format!(
            "{e} (every file compressed with it is unreadable; restore the repository's `dictionary` and `dictionary.copy` files from another drive of this repository)"
        )),
        Ok(None) => {
            // Missing, or never trained: the chunks tell (the newest
            // snapshot's, in a large repository).
            let latest = repo.snapshots()?.0.into_iter().max_by_key(|(_, s)| s.time);
            let tree = latest.and_then(|(_, s)| repo.load_tree(&s.tree).ok());
            if let Err(Error::DictionaryUnusable { reason }) =
                crate::ops::dictionary_guard::may_train(repo, tree.as_ref())
            {
                report.errors.push(format!(
                    "the repository's compression dictionary {reason} (those files are unreadable, and snapshots are refused until the file is back: copy it from another drive of this repository)"
                ));
            }
        }
        Ok(Some(_)) => {
            if let Some(problem) = repo.dictionary_problem() {
                report.warnings.push(format!(
                    "{problem}; the other copy serves, and the next snapshot rewrites it"
                ));
            }
        }
    }

    let mut damaged = Damaged::default();
    if opts.read_data || opts.subset.is_some() {
        let mut packs: Vec<_> = on_disk
            .iter()
            .filter(|(id, _)| opts.subset.is_none_or(|s| in_subset(id, s)))
            .collect();
        packs.sort();
        progress.set_total(packs.len() as u64, packs.iter().map(|(_, s)| **s).sum());
        for (id, size) in packs {
            report.bytes_read += size;
            report.packs_read.push(id.to_hex());
            read_pack(repo, id, &mut report, &mut damaged)?;
            progress.advance(1, *size);
        }
    }

    // The walk first only marks each blob with the kinds it is used as;
    // the marks are then checked against the index side by side, in id
    // order. Only when that finds a bad blob is the walk made again,
    // checking each blob where it is used, to name the files it damages.
    repo.index().used_begin()?;
    let marked = walk_marked(repo, &damaged, &on_disk, &ids);
    // Only the temporary marks were written.
    repo.index().used_abort();
    let walk = match marked? {
        Some(walk) => walk,
        None => {
            repo.index().used_begin()?;
            let mut walker = Walker::new(repo, &damaged, &on_disk, false);
            let walk = walker.snapshots(&ids);
            repo.index().used_abort();
            walk
        }
    };
    report.snapshots = walk.snapshots;
    report.trees = walk.trees;
    report.blobs = walk.blobs;
    report.damaged_files = walk.damaged_files;
    report.errors.extend(walk.errors);
    Ok(report)
}

/// Walks the snapshots `ids` marking each blob used, then checks the marks
/// against the index in one pass; `None` when a blob is bad.
fn walk_marked(
    repo: &Repository,
    damaged: &Damaged,
    on_disk: &HashMap<PackId, u64>,
    ids: &[SnapshotId],
) -> Result<Option<Walk>> {
    let mut walker = Walker::new(repo, damaged, on_disk, true);
    let mut walk = walker.snapshots(ids);
    let mut sound = true;
    repo.index()
        .for_each_used(repo.keys(), |id, kinds, found| {
            let found = found.map_err(|e| e.to_string());
            let bad = kinds
                .iter()
                .any(|&kind| walker.blob_checks(kind, id, found.clone()).is_err());
            sound &= !bad;
            // Trees are counted apart.
            walk.blobs += u64::from(kinds.iter().any(|&k| k != BlobKind::Tree));
            Ok(())
        })?;
    Ok(sound.then_some(walk))
}

/// What a walk of the snapshots found.
#[derive(Default)]
struct Walk {
    snapshots: u64,
    /// Distinct trees walked.
    trees: u64,
    /// Distinct blobs found good.
    blobs: u64,
    damaged_files: Vec<DamagedFile>,
    errors: Vec<String>,
}

/// What the data read found damaged: whole packs, and single copies of
/// blobs (a blob stored twice may be damaged in one pack only; the copy the
/// index uses is what matters).
#[derive(Default)]
struct Damaged {
    packs: HashSet<PackId>,
    blobs: HashSet<(PackId, BlobId)>,
}

/// Reads every index file again from the drive, whether or not the local
/// cache has read it before: damage to a file this machine already knows
/// would otherwise stay hidden until another machine needs it.
fn check_index_files(repo: &Repository, report: &mut CheckReport) -> Result<()> {
    for (name, _) in repo.backend().list(FileKind::Index)? {
        let Some(id) = name.to_id() else { continue };
        let read = repo
            .backend()
            .read(FileKind::Index, &name)
            .and_then(|b| b.ok_or_else(|| Error::corrupt("index file", name.short(), "is missing")))
            .and_then(|bytes| crate::format::index_file::decode(repo.keys(), &id, &bytes));
        if let Err(e) = read {
            report.errors.push(format!(
                "{e} (its packs may not be indexed: run `coffre rebuild-index`)"
            ));
        }
    }
    Ok(())
}

/// Decodes every key file and opens its label: a damaged key file that did
/// not open the repository would otherwise go unseen until its holder
/// needs it. (Its sealed master key can only be verified with its
/// passphrase.)
fn check_key_files(repo: &Repository, report: &mut CheckReport) -> Result<()> {
    for key in repo.list_keys()? {
        if let Some(problem) = key.problem {
            let what = if problem.contains(&key.id) {
                problem
            } else {
                format!("key file {}: {problem}", key.id)
            };
            report.errors.push(format!(
                "{what} (this key may no longer open the repository: have its holder add a new one with `coffre key add`, then remove this one)"
            ));
        }
    }
    Ok(())
}

/// Reads every journal entry again from the drive (`--read-data`): an
/// entry damaged after this machine cached it would otherwise be judged by
/// the cached copy.
/// Such an entry's cached copy is dropped, so that reading the journal
/// (which `coffre check` does next) reports it.
fn check_journal_files(repo: &Repository) -> Result<()> {
    for (name, _) in repo.backend().list(FileKind::Journal)? {
        let id = name.as_str();
        let intact = matches!(
            repo.backend().read(FileKind::Journal, &name),
            Ok(Some(bytes)) if blake3::hash(&bytes).to_hex().as_str() == id
        );
        if !intact {
            crate::repo::journal::forget_cached(repo, id);
        }
    }
    Ok(())
}

/// Reads one pack whole and verifies everything in it.
fn read_pack(
    repo: &Repository,
    id: &PackId,
    report: &mut CheckReport,
    damaged: &mut Damaged,
) -> Result<()> {
    let bytes = match repo
        .backend()
        .read(FileKind::Pack, &ObjectName::pack(id))
        .and_then(|b| b.ok_or_else(|| Error::corrupt("pack", id.short(), "is missing")))
    {
        Ok(b) => b,
        Err(e) => {
            report
                .errors
                .push(format!("pack {}: cannot read: {e}", id.short()));
            damaged.packs.insert(*id);
            return Ok(());
        }
    };
    if blake3::hash(&bytes).as_bytes() != id.as_bytes() {
        report.errors.push(format!(
            "pack {}: contents do not match its name (damaged on the drive)",
            id.short()
        ));
    }
    let entries = match pack::read_trailer(repo.keys(), &id.short(), &bytes) {
        Ok(e) => e,
        Err(e) => {
            report.errors.push(e.to_string());
            damaged.packs.insert(*id);
            return Ok(());
        }
    };
    let mut orphans = 0u64;
    for e in entries {
        let sealed = &bytes[e.offset as usize..(e.offset + e.length) as usize];
        match repo.decode_blob(e.kind, &e.id, sealed) {
            Ok(_) => {}
            // A delta left in a kept pack after prune removed its base with
            // the snapshots that used both: unused, so harmless. Were a
            // snapshot to need it, the walk below reports its base missing.
            Err(Error::BlobNotFound(_)) if e.kind == BlobKind::Delta => orphans += 1,
            Err(err) => {
                report.errors.push(format!("pack {}: {err}", id.short()));
                damaged.blobs.insert((*id, e.id));
            }
        }
    }
    if orphans > 0 {
        report.warnings.push(format!(
            "pack {}: {orphans} unused delta blob(s) whose base is gone (a later prune removes them)",
            id.short()
        ));
    }
    Ok(())
}

/// Compares what the index says a pack holds with the pack's own trailer:
/// an index file or cache that disagrees was damaged or tampered with.
fn compare_with_trailer(repo: &Repository, id: &PackId, size: u64, report: &mut CheckReport) {
    let trailer =
        match crate::repo::pack_writer::read_entries(repo.backend(), id, size, repo.keys()) {
            Ok(t) => t,
            Err(e) => {
                report.errors.push(format!("pack {}: {e}", id.short()));
                return;
            }
        };
    let indexed = match repo.index().entries_of_pack(repo.keys(), id) {
        Ok(i) => i,
        Err(e) => {
            report
                .errors
                .push(format!("index entries of pack {}: {e}", id.short()));
            return;
        }
    };
    let listed: HashSet<_> = trailer.iter().collect();
    let wrong = indexed.iter().filter(|e| !listed.contains(e)).count();
    if wrong > 0 {
        report.errors.push(format!(
            "the index places {wrong} blob(s) in pack {} where its trailer does not (the index was changed: run `coffre rebuild-index`)",
            id.short()
        ));
    }
}

struct Walker<'a> {
    repo: &'a Repository,
    /// Only mark each blob used with its kind ([`Index::used_mark`]), for
    /// [`Index::for_each_used`] to check them all at the end.
    ///
    /// [`Index::used_mark`]: crate::repo::index::Index::used_mark
    /// [`Index::for_each_used`]: crate::repo::index::Index::for_each_used
    mark_only: bool,
    damaged: &'a Damaged,
    on_disk: &'a HashMap<PackId, u64>,
    /// Damaged paths below each tree already walked, so a directory shared
    /// by many snapshots is walked once yet reported in each.
    trees: HashMap<BlobId, Rc<Vec<(String, String)>>>,
    /// Blobs checked and found good are marked in the index's temporary
    /// table (as prune marks them), not held here: a repository holds
    /// millions. Those found bad, and how many were good:
    bad: HashSet<BlobId>,
    blobs: u64,
    errors: Vec<String>,
}

impl<'a> Walker<'a> {
    fn new(
        repo: &'a Repository,
        damaged: &'a Damaged,
        on_disk: &'a HashMap<PackId, u64>,
        mark_only: bool,
    ) -> Self {
        Walker {
            repo,
            mark_only,
            damaged,
            on_disk,
            trees: HashMap::new(),
            bad: HashSet::new(),
            blobs: 0,
            errors: Vec::new(),
        }
    }

    /// Walks every snapshot of `ids`.
    fn snapshots(&mut self, ids: &[SnapshotId]) -> Walk {
        let mut walk = Walk::default();
        for id in ids {
            let snap = match self.repo.load_snapshot(id) {
                Ok(s) => s,
                Err(e) => {
                    // A passing failure is not damage: the record may be fine.
                    let remedy = if e.is_transient() {
                        String::new()
                    } else {
                        format!(
                            " (its snapshot cannot be restored; once you have a copy elsewhere, `coffre forget {}` removes the record)",
                            id.short()
                        )
                    };
                    walk.errors
                        .push(format!("snapshot {}: {e}{remedy}", id.short()));
                    continue;
                }
            };
            walk.snapshots += 1;
            let bad = self.tree(&snap.tree, 0);
            let time = snap.local().format("%Y-%m-%d %H:%M:%S").to_string();
            for (path, reason) in bad.iter() {
                walk.damaged_files.push(DamagedFile {
                    snapshot: id.short(),
                    time: time.clone(),
                    path: if path.is_empty() {
                        "/".into()
                    } else {
                        path.clone()
                    },
                    reason: reason.clone(),
                });
            }
        }
        walk.errors.append(&mut self.errors);
        walk.trees = self.trees.len() as u64;
        walk.blobs = self.blobs;
        walk
    }

    /// Walks a tree; returns the damaged paths below it, relative to it.
    fn tree(&mut self, id: &BlobId, depth: usize) -> Rc<Vec<(String, String)>> {
        if let Some(bad) = self.trees.get(id) {
            return bad.clone();
        }
        if depth > crate::format::tree::MAX_DEPTH {
            self.errors
                .push(format!("tree {}: folders nested too deep", id.short()));
            return Rc::new(vec![(String::new(), "folders nested too deep".into())]);
        }
        let mut bad = Vec::new();
        let repo = self.repo;
        // The listing a piece at a time: a folder may hold 150,000 entries.
        let listing = self.blob_ok(BlobKind::Tree, id).and_then(|_| {
            let listing = ListingReader::open(repo, id).map_err(|e| e.to_string())?;
            for piece in listing.pieces() {
                self.blob_ok(BlobKind::TreePiece, piece)?;
            }
            Ok(listing)
        });
        let unreadable = match listing {
            Err(e) => Some(e),
            Ok(listing) => {
                let mut unreadable = None;
                for node in listing {
                    let node = match node {
                        Ok(node) => node,
                        Err(e) => {
                            unreadable = Some(e.to_string());
                            break;
                        }
                    };
                    let name = String::from_utf8_lossy(&node.name).into_owned();
                    match &node.payload {
                        Payload::Dir(sub) => {
                            for (p, why) in self.tree(sub, depth + 1).iter() {
                                let path = if p.is_empty() {
                                    name.clone()
                                } else {
                                    format!("{name}/{p}")
                                };
                                bad.push((path, why.clone()));
                            }
                        }
                        Payload::File(content) => {
                            if let Err(e) = self.content(content, node.size) {
                                bad.push((name, e));
                            }
                        }
                        _ => {}
                    }
                }
                unreadable
            }
        };
        if let Some(e) = unreadable {
            self.errors.push(format!("tree {}: {e}", id.short()));
            bad.push((String::new(), format!("directory listing unreadable: {e}")));
        }
        let bad = Rc::new(bad);
        self.trees.insert(*id, bad.clone());
        bad
    }

    fn content(&mut self, content: &Content, size: u64) -> Result<(), String> {
        let total = match content {
            Content::Inline(extents) => {
                self.extents_ok(extents)?;
                add_lengths(0, extents, "in its tree").map_err(|e| e.to_string())?
            }
            Content::Pieces(ids) => self.pieces_ok(ids)?,
        };
        // Restore refuses such a file: say so before it is needed.
        if total != size {
            return Err(format!(
                "chunk list does not add up to the file size ({size} bytes recorded)"
            ));
        }
        Ok(())
    }

    /// Checks the chunk-list pieces `ids` and the blobs they name; returns
    /// the bytes they list. A piece whose blobs were all found good before
    /// is not read again: its length was noted beside its mark. A database
    /// changing 1 % of its pages a day shares most of its pieces with the
    /// day before, and walking them again was most of a `check`.
    fn pieces_ok(&mut self, ids: &[BlobId]) -> Result<u64, String> {
        let index = self.repo.index();
        let add = |total: u64, len: u64, piece: &BlobId| {
            total
                .checked_add(len)
                .filter(|&n| n <= MAX_FILE_LEN)
                .ok_or_else(|| {
                    format!(
                        "chunk list {} adds up to more than any file can hold",
                        piece.short()
                    )
                })
        };
        let mut total = 0u64;
        let mut unread = Vec::new();
        for id in ids {
            self.blob_ok(BlobKind::ChunkList, id)?;
            if self.mark_only {
                // The row its length is noted beside (a full walk's check
                // made it).
                index.used_insert(id).map_err(|e| e.to_string())?;
            }
            match index.used_len(id).map_err(|e| e.to_string())? {
                Some(len) => total = add(total, len, id)?,
                None => unread.push(*id),
            }
        }
        let mut reader = ChunkListReader::new(self.repo, &Content::Pieces(unread));
        while let Some(pieces) = reader.next_pieces().map_err(|e| e.to_string())? {
            for (id, extents) in pieces {
                self.extents_ok(&extents)?;
                let len = add_lengths(0, &extents, &id.short()).map_err(|e| e.to_string())?;
                index.used_set_len(&id, len).map_err(|e| e.to_string())?;
                total = add(total, len, &id)?;
            }
        }
        Ok(total)
    }

    /// Checks the blobs `extents` name, a delta's base with the delta.
    fn extents_ok(&mut self, extents: &[Extent]) -> Result<(), String> {
        let mut blobs = Vec::with_capacity(extents.len());
        for e in extents {
            if let (Extent::Chunk { id, base, .. }, Some(kind)) = (e, e.blob_kind()) {
                blobs.push((kind, *id));
                blobs.extend(base.map(|base| (BlobKind::Data, base)));
            }
        }
        self.blobs_ok(&blobs)
    }

    /// Checks a blob once (see [`Walker::blob_checks`]); a blob found bad
    /// is checked again each time, so that each use of it is reported.
    fn blob_ok(&mut self, kind: BlobKind, id: &BlobId) -> Result<(), String> {
        // Trees are walked once each already.
        if kind == BlobKind::Tree && !self.mark_only {
            let found = self.repo.index().lookup(self.repo.keys(), id);
            return self.blob_checks(kind, id, found.map_err(|e| e.to_string()));
        }
        self.blobs_ok(&[(kind, *id)])
    }

    /// [`Walker::blob_ok`] for many blobs, looked up in one read of the
    /// index; the first error found, after every blob is checked.
    fn blobs_ok(&mut self, blobs: &[(BlobKind, BlobId)]) -> Result<(), String> {
        let index = self.repo.index();
        if self.mark_only {
            for (kind, id) in blobs {
                index.used_mark(id, *kind).map_err(|e| e.to_string())?;
            }
            return Ok(());
        }
        let mut todo = Vec::new();
        for &(kind, id) in blobs {
            let fresh = index.used_insert(&id).map_err(|e| e.to_string())?;
            if fresh || self.bad.contains(&id) {
                todo.push((kind, id, fresh));
            }
        }
        let ids: Vec<BlobId> = todo.iter().map(|&(_, id, _)| id).collect();
        let keys = self.repo.keys();
        let found: Vec<Result<Option<Location>>> = match index.lookup_many(keys, &ids) {
            Ok(found) => found.into_iter().map(Ok).collect(),
            // One location that fails authentication fails the batch:
            // each blob on its own, so that only that one is bad.
            Err(_) => ids.iter().map(|id| index.lookup(keys, id)).collect(),
        };
        let mut first = Ok(());
        for ((kind, id, fresh), found) in todo.into_iter().zip(found) {
            match self.blob_checks(kind, &id, found.map_err(|e| e.to_string())) {
                Err(e) => {
                    self.bad.insert(id);
                    if first.is_ok() {
                        first = Err(e);
                    }
                }
                Ok(()) if fresh => self.blobs += 1,
                Ok(()) => {}
            }
        }
        first
    }

    /// Checks that a blob is indexed (`found`: its location in the index),
    /// of the right kind, inside an existing pack, and not found damaged by
    /// the data read.
    fn blob_checks(
        &self,
        kind: BlobKind,
        id: &BlobId,
        found: Result<Option<Location>, String>,
    ) -> Result<(), String> {
        let loc = found?
            .ok_or_else(|| format!("{} {} is missing from the index", kind.name(), id.short()))?;
        if self.damaged.packs.contains(&loc.pack) || self.damaged.blobs.contains(&(loc.pack, *id)) {
            return Err(format!("{} {} is damaged", kind.name(), id.short()));
        }
        if loc.kind != kind {
            return Err(format!(
                "{} {} is indexed as a {}",
                kind.name(),
                id.short(),
                loc.kind.name()
            ));
        }
        match self.on_disk.get(&loc.pack) {
            None => {
                return Err(format!(
                    "{} {} is in pack {}, which is missing",
                    kind.name(),
                    id.short(),
                    loc.pack.short()
                ))
            }
            Some(size) if u64::from(loc.offset) + u64::from(loc.length) > *size => {
                return Err(format!(
                    "{} {} lies beyond the end of pack {}",
                    kind.name(),
                    id.short(),
                    loc.pack.short()
                ))
            }
            Some(_) => {}
        }
        Ok(())
    }
}
