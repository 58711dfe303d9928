//! Taking a snapshot: walk the source depth-first, store what is new, build
//! one tree per directory bottom-up, and commit the record last.
//!
//! Incremental: a file whose size, mtime, ctime and inode match the parent
//! snapshot's entry is not read; its content reference is reused. The parent's
//! trees are loaded one directory at a time, as the walk reaches them.
//! Unreadable entries are skipped and listed in the summary; files that
//! change while read are stored as read and flagged.
//!
//! Files are read by a few reader threads while the walker goes on listing:
//! a folder of thousands of small files must not wait on one file at a time,
//! and reading, chunking and hashing would otherwise hold the whole snapshot
//! to one core. The walker still builds each tree in name order, from the
//! readers' answers, once the folder's last file is read; a folder waiting
//! for a large file (a database) is saved later, with its parent, so that
//! the walk of the rest of the tree goes on meanwhile.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::error::{Error, Result};
use crate::format::blob::{blob_id, BlobKind};
use crate::format::content::{Content, Extent};
use crate::format::dictionary;
use crate::format::snapshot::{HookRun, Snapshot, Summary, MAX_RECORDED_PROBLEMS};
use crate::format::tree::{Node, NodeKind, Payload, Timestamp, Tree};
use crate::id::{BlobId, SnapshotId};
use crate::ops::deltas::Previous;
use crate::ops::dictionary_guard;
use crate::ops::previous_listing::PreviousListing;
use crate::ops::previous_pages::PreviousPages;
use crate::ops::reply;
use crate::progress::{Counting, Progress};
use crate::repo::saver::{Batch, ContentWriter, ListingWriter, SaveProgress, Saver};
use crate::repo::Repository;
use crate::source::chunker::{self, Cutter, Piece};
use crate::source::exclude::Excludes;
use crate::source::fsmeta;
pub use crate::source::walk::estimate;
use crate::source::walk::{Dir, Stat};
use rustix::fs::FileType;

/// What to snapshot and how to label it.
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// The folders to snapshot: one is the snapshot's root; several are
    /// folders of a root of their own, each named by its last component.
    pub sources: Vec<PathBuf>,
    /// Label (default: the host name).
    pub label: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Time to record instead of now (tests and imports).
    pub time: Option<Timestamp>,
    /// What to leave out.
    pub excludes: Excludes,
    /// Commands already run for this snapshot (`--before`), recorded in it.
    pub hooks: Vec<HookRun>,
    /// Never trust inode numbers when deciding that a file is unchanged
    /// (they are not trusted on network filesystems in any case).
    pub ignore_inode: bool,
    /// Write no snapshot when nothing changed since the parent.
    pub skip_if_unchanged: bool,
    /// Where to read each source from, when not from the source itself: a
    /// read-only filesystem snapshot of it (`--fs-snapshot`). The record
    /// still names the sources, so the next run finds its parent.
    pub read_from: Vec<PathBuf>,
}

impl SnapshotOptions {
    /// A snapshot of one folder with no label, tags, rules or hooks.
    pub fn new(source: impl Into<PathBuf>) -> Self {
        Self {
            sources: vec![source.into()],
            label: None,
            tags: Vec::new(),
            time: None,
            excludes: Excludes::new(),
            hooks: Vec::new(),
            ignore_inode: false,
            skip_if_unchanged: false,
            read_from: Vec::new(),
        }
    }
}

/// A command's output to store as a file at the snapshot's root
/// (`--from-command NAME=CMD`). The library only reads it; whoever runs the
/// command says, once the output ended, whether the command succeeded.
pub struct Stream {
    /// The file name in the snapshot.
    pub name: String,
    /// The output.
    pub reader: Box<dyn std::io::Read + Send>,
    /// Called after the end of the output: how the command ended, or why
    /// it failed (the snapshot is then not written).
    pub finish: Box<dyn FnOnce() -> std::result::Result<HookRun, String> + Send>,
}

/// What a snapshot run ended with.
#[derive(Debug)]
pub enum Outcome {
    /// A snapshot was written.
    Saved(SnapshotId, Box<Snapshot>),
    /// Nothing changed since `parent` and `skip_if_unchanged` was asked:
    /// no snapshot written.
    Unchanged {
        /// The snapshot that still holds the current state.
        parent: SnapshotId,
    },
}

/// Takes a snapshot of `opts.sources` (always written, even unchanged).
///
/// # Errors
/// As [`take_snapshot_with`].
pub fn take_snapshot(
    repo: &Repository,
    opts: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<(SnapshotId, Snapshot)> {
    let opts = SnapshotOptions {
        skip_if_unchanged: false,
        ..opts.clone()
    };
    match take_snapshot_with(repo, &opts, Vec::new(), progress)? {
        Outcome::Saved(id, snap) => Ok((id, *snap)),
        Outcome::Unchanged { .. } => Err(Error::Interrupted),
    }
}

/// One source folder, checked before anything is written.
struct SourceDir {
    /// The source as recorded.
    path: PathBuf,
    /// Where it is read from: itself, or a filesystem snapshot of it.
    read: PathBuf,
    meta: Stat,
    /// Inode numbers are stable there (not a network filesystem).
    inodes_stable: bool,
}

impl SourceDir {
    /// Opens the folder read; the walk reaches everything below it through
    /// this descriptor.
    fn open(&self) -> Result<Dir> {
        let (dir, meta) = Dir::open_root(&self.read).map_err(|e| Error::Source {
            path: self.read.clone(),
            reason: e.to_string(),
        })?;
        if meta.dev() != self.meta.dev() || meta.ino() != self.meta.ino() {
            return Err(Error::Source {
                path: self.read.clone(),
                reason: "replaced while being read".into(),
            });
        }
        Ok(dir)
    }
}

fn source_dir(given: &Path, read_from: Option<&PathBuf>) -> Result<SourceDir> {
    let bad = |path: &Path, reason: String| Error::Source {
        path: path.to_path_buf(),
        reason,
    };
    let path = fs::canonicalize(given).map_err(|e| bad(given, e.to_string()))?;
    let read = match read_from {
        Some(r) => fs::canonicalize(r).map_err(|e| bad(r, e.to_string()))?,
        None => path.clone(),
    };
    let meta = fs::File::open(&read)
        .and_then(Stat::of)
        .map_err(|e| bad(&read, e.to_string()))?;
    if !meta.is_dir() {
        return Err(bad(&read, "not a directory".into()));
    }
    let inodes_stable = !fsmeta::is_network_fs(&read);
    Ok(SourceDir {
        path,
        read,
        meta,
        inodes_stable,
    })
}

/// Takes a snapshot of `opts.sources`, storing `streams` as files at its
/// root.
///
/// # Errors
/// [`Error::Source`] when a source is missing or not a directory, or two
/// sources (or a source entry and a stream) have the same name;
/// [`Error::CommandFailed`] when a stream's command failed; storage errors
/// ([`Error::DriveFull`]...) abort the run and leave no snapshot (earlier
/// snapshots are untouched).
pub fn take_snapshot_with(
    repo: &Repository,
    opts: &SnapshotOptions,
    streams: Vec<Stream>,
    progress: &dyn Progress,
) -> Result<Outcome> {
    let started = Instant::now();
    // A snapshot is named by when it started: the state it holds is at best
    // that of the start of the walk.
    let time = opts.time.unwrap_or_else(now);
    if !opts.read_from.is_empty() && opts.read_from.len() != opts.sources.len() {
        return Err(Error::Refused(
            "one place to read from is needed for each source".into(),
        ));
    }
    let sources = opts
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| source_dir(s, opts.read_from.get(i)))
        .collect::<Result<Vec<_>>>()?;
    let Some(first) = sources.first() else {
        return Err(Error::Source {
            path: PathBuf::new(),
            reason: "no folder to back up".into(),
        });
    };
    let mut root_names: Vec<Vec<u8>> = streams.iter().map(|s| s.name.as_bytes().to_vec()).collect();
    if sources.len() > 1 {
        root_names.extend(sources.iter().map(|s| source_name(&s.path)));
    }
    if let Some(clash) = duplicate(&mut root_names) {
        return Err(Error::Refused(format!(
            "two sources or command outputs would both be named {} in the snapshot: give the command's output another name, or back up those folders in separate snapshots (--label)",
            String::from_utf8_lossy(&clash)
        )));
    }
    for s in &streams {
        if s.name.is_empty() || s.name.contains('/') || s.name == "." || s.name == ".." {
            return Err(Error::Refused(format!(
                "{:?} cannot name a command's output: give a plain file name (officine.sql)",
                s.name
            )));
        }
        if sources.len() == 1 && fs::symlink_metadata(first.read.join(&s.name)).is_ok() {
            return Err(Error::Refused(format!(
                "{} already exists in the source: give the command's output another name",
                first.path.join(&s.name).display()
            )));
        }
    }
    repo.prepare_write()?;
    // Every file and folder is looked up in the index.
    repo.index().read_ahead();
    let hostname = fsmeta::hostname();
    let label = opts
        .label
        .clone()
        .unwrap_or_else(|| String::from_utf8_lossy(&hostname).into_owned());
    let source_bytes: Vec<Vec<u8>> = sources
        .iter()
        .map(|s| s.path.as_os_str().as_bytes().to_vec())
        .collect();
    // A damaged record must not stop tonight's backup; `check` reports it.
    let parent = repo
        .snapshots()?
        .0
        .into_iter()
        .filter(|(_, s)| s.label == label && s.sources == source_bytes)
        .max_by_key(|(_, s)| s.time);
    let parent_tree = match &parent {
        Some((_, p)) => repo.load_tree(&p.tree).ok(),
        None => None,
    };

    // The first snapshot trains the dictionary that compresses every small
    // chunk from then on; later ones never replace it (FORMAT.md §17).
    if dictionary_guard::may_train(repo, parent_tree.as_ref())? {
        if let Some(raw) = dictionary::train(&crate::source::sample::sample_source(&first.read)) {
            repo.add_dictionary(raw)?;
        }
    }
    let mut root_xattrs = Vec::new();
    for s in &sources {
        root_xattrs.push(fsmeta::read_xattrs(&s.read).map_err(|e| Error::Source {
            path: s.read.clone(),
            reason: e.to_string(),
        })?);
    }
    let mut hooks = opts.hooks.clone();
    let counting = Counting::new(progress);
    let progress: &dyn Progress = &counting;
    let saved_so_far = Mutex::new(SaveProgress::default());
    let saved = Saver::run(repo, |saver| {
        let reader = FileReader {
            saver,
            progress,
            cutter: Cutter::new(repo.keys().chunker_seed()),
        };
        // Two more than cores: a large file (a database, read whole every
        // night; a rewritten export stored as deltas) keeps its reader busy
        // for seconds, and with as many readers as cores two of them
        // left the small new files queued behind them (16 GiB tree: daily
        // snapshot 20.3 s instead of 23.7, docs/PERFORMANCE.md).
        let readers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8)
            + 2;
        let (jobs, queue) = bounded::<ReadJob>(readers * 4);
        let out = std::thread::scope(|scope| {
            for _ in 0..readers {
                let queue: Receiver<ReadJob> = queue.clone();
                let reader = &reader;
                let spawned = std::thread::Builder::new()
                    .name("coffre-reader".into())
                    .spawn_scoped(scope, move || {
                        let mut batch = reader.saver.batch();
                        for job in queue {
                            let result = reader.read(
                                &mut batch,
                                job.file,
                                &job.path,
                                &job.rel,
                                &job.meta,
                                job.previous.as_ref(),
                            );
                            // The walker only stops listening when it failed.
                            job.reply.send(result);
                        }
                    });
                spawned.map_err(|e| Error::io("reader thread", e))?;
            }
            drop(queue);
            let mut walker = Walker {
                repo,
                reader: &reader,
                jobs,
                progress,
                summary: Summary::default(),
                links: HashMap::new(),
                excludes: &opts.excludes,
                root_dev: first.meta.dev(),
                trust_inodes: first.inodes_stable && !opts.ignore_inode,
                read_root: first.read.clone(),
                logical_root: first.path.clone(),
            };
            // The commands' outputs first: a failed dump stops the run
            // before the whole source is read for nothing.
            let mut root = Tree::default();
            for stream in streams {
                let (node, run) = walker.stream(stream, time)?;
                root.nodes.push(node);
                hooks.push(run);
            }
            root.sort();
            let tree = if let [only] = &sources[..] {
                // The outputs sit beside the source's own entries.
                let parent = parent_tree.map(|t| PreviousListing::of(repo, t));
                walker.dir(&only.open()?, b"", parent, root.nodes)?
            } else {
                for (s, xattrs) in sources.iter().zip(root_xattrs.iter()) {
                    let name = source_name(&s.path);
                    let old = parent_tree.as_ref().and_then(|t| t.get(&name));
                    let old_listing = match old {
                        Some(Node {
                            payload: Payload::Dir(id),
                            ..
                        }) => PreviousListing::load(repo, id),
                        _ => None,
                    };
                    walker.root_dev = s.meta.dev();
                    walker.trust_inodes = s.inodes_stable && !opts.ignore_inode;
                    walker.read_root = s.read.clone();
                    walker.logical_root = s.path.clone();
                    let id = walker.dir(&s.open()?, &name, old_listing, Vec::new())?;
                    root.nodes.push(node_from(
                        &name,
                        NodeKind::Dir,
                        &s.meta,
                        xattrs.clone(),
                        Payload::Dir(id),
                    ));
                }
                root.sort();
                walker.save_tree(&root)?
            };
            // Dropping the walker closes the queue, which ends the readers.
            Ok((tree, walker.summary))
        });
        *saved_so_far.lock().unwrap_or_else(|p| p.into_inner()) = saver.progress();
        out
    });
    let ((tree, mut summary), stats) = saved.map_err(|e| {
        if !e.is_drive_full() {
            return e;
        }
        let read: Vec<&Path> = sources.iter().map(|s| s.read.as_path()).collect();
        let saved = *saved_so_far.lock().unwrap_or_else(|p| p.into_inner());
        let more = still_needed(&read, counting.bytes(), saved);
        e.needing(Some(more), repo.backend().free_space())
    })?;
    summary.bytes_added = stats.plain_bytes;
    summary.bytes_stored = stats.stored_bytes;
    summary.blobs_added = stats.blobs;
    summary.duration_ms = started.elapsed().as_millis() as u64;

    // One source is the root itself, with its own metadata; several have a
    // root of their own, shown with the snapshot's time.
    let root = match (&sources[..], root_xattrs.pop()) {
        ([only], Some(xattrs)) => Some(node_from(
            b"",
            NodeKind::Dir,
            &only.meta,
            xattrs,
            Payload::Dir(tree),
        )),
        _ => None,
    };
    // A `--before` command (a database freeze) does not make the data
    // differ; a command's output does, through its file in the tree.
    if opts.skip_if_unchanged {
        if let Some((parent_id, p)) = &parent {
            if p.tree == tree && p.root == root {
                return Ok(Outcome::Unchanged { parent: *parent_id });
            }
        }
    }
    let snap = Snapshot {
        time,
        hostname,
        sources: source_bytes,
        label,
        tags: opts.tags.clone(),
        parent: parent.map(|(id, _)| id),
        tree,
        root,
        summary,
        excludes: opts.excludes.described().to_vec(),
        hooks,
    };
    repo.raise_format(crate::format::header::RECORD_V2_VERSION)?;
    repo.confirm_format()?;
    // A prune elsewhere that wrongly judged our lock stale may have deleted
    // data this snapshot reuses: then record nothing.
    repo.confirm_lock()?;
    let id = repo.write_snapshot(&snap)?;
    Ok(Outcome::Saved(id, Box::new(snap)))
}

/// About how many more bytes a snapshot that filled the drive needed: its
/// new data (the sources, with as large a share of new data, compressing as
/// well, as what was read so far) less the packs it made durable, which stay
/// on the drive for the next run; plus room for the index and the record.
fn still_needed(sources: &[&Path], read: u64, saved: SaveProgress) -> u64 {
    let total: u64 = sources.iter().map(|s| estimate(s).1).sum();
    let new_share = if read == 0 {
        1.0
    } else {
        (saved.queued_plain as f64 / read as f64).min(1.0)
    };
    let compressed = if saved.stored_plain == 0 {
        1.0
    } else {
        (saved.stored as f64 / saved.stored_plain as f64).min(1.1)
    };
    let all = (total.max(read) as f64 * new_share * compressed) as u64;
    all.saturating_sub(saved.durable) + (1 << 20)
}

/// The name a source folder takes at the root of a several-source snapshot.
fn source_name(path: &Path) -> Vec<u8> {
    path.file_name()
        .map_or_else(|| b"racine".to_vec(), |n| n.as_bytes().to_vec())
}

/// The first name that appears twice, if any (sorts `names`).
fn duplicate(names: &mut [Vec<u8>]) -> Option<Vec<u8>> {
    names.sort();
    names
        .windows(2)
        .find(|w| w[0] == w[1])
        .map(|w| w[0].clone())
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        sec: d.as_secs() as i64,
        nsec: d.subsec_nanos(),
    }
}

struct Walker<'a, 'r> {
    repo: &'r Repository,
    reader: &'a FileReader<'a, 'r>,
    /// Files waiting for a reader thread.
    jobs: Sender<ReadJob>,
    progress: &'a dyn Progress,
    summary: Summary,
    /// Contents already stored for hard-linked inodes in this run.
    links: HashMap<(u64, u64), (Content, u64)>,
    excludes: &'a Excludes,
    /// The device of the source being walked (the walk stays on it unless
    /// asked to cross filesystems).
    root_dev: u64,
    /// Whether an inode number that differs from the parent's means the
    /// file changed (not on network filesystems).
    trust_inodes: bool,
    /// The source being walked is read under `read_root` and recorded as
    /// `logical_root` (they differ when read from a filesystem snapshot).
    read_root: PathBuf,
    logical_root: PathBuf,
}

/// A file handed to a reader thread, already opened by the walker through
/// its folder's descriptor; the answer comes back on `reply`.
struct ReadJob {
    file: std::fs::File,
    path: PathBuf,
    rel: Vec<u8>,
    meta: Stat,
    /// The file's content in the parent snapshot, to store deltas against.
    previous: Option<Content>,
    reply: reply::Sender<Result<FileRead>>,
}

/// A regular file, read and stored.
struct FileRead {
    content: Content,
    /// Bytes stored, which differ from the stat size only for a file that
    /// changed while read.
    size: u64,
    /// Bytes read from the source (holes are not read).
    read: u64,
    changed_while_read: bool,
}

/// A directory entry: complete, a file whose content a reader is still
/// storing, or a folder waiting for such a file.
enum Slot<'s, 'r> {
    Done(Node),
    Reading(Node, reply::Receiver<Result<FileRead>>),
    Deferred(Box<Waiting<'s, 'r>>),
}

/// A folder being walked. Its entries go into its listing in name order
/// as soon as they are complete, and the listing saves its pieces as they
/// fill (FORMAT.md §7.3), so a folder of 180,000 receipts holds at most
/// [`HELD`] entries, not all of them (it was 0.7 KiB an entry, 130 MiB of
/// the first snapshot at 16 GiB).
struct Folder<'s, 'r> {
    listing: ListingWriter<'s, 'r>,
    /// Entries not in the listing yet, in name order.
    waiting: VecDeque<(Vec<u8>, Slot<'s, 'r>)>,
}

/// A folder's entries waiting for their reader beyond this many, the walk
/// waits for the first one. Readers take files in walk order, so the
/// first is nearly always done or being read: the walk stays thousands
/// of files ahead of the readers, with memory bounded whatever the folder.
const HELD: usize = 4096;

/// Entries of a folder whose metadata is looked up together
/// ([`Dir::stat_many`]), about 80 bytes each.
const STAT_WINDOW: usize = 4096;

impl<'s, 'r> Folder<'s, 'r> {
    /// A folder with no entry yet.
    fn new(saver: &'s Saver<'r>) -> Self {
        Folder {
            listing: saver.listing(),
            waiting: VecDeque::new(),
        }
    }

    /// Whether an entry of this folder (or of a folder in it) is still
    /// being read.
    fn waits(&self) -> bool {
        self.waiting.iter().any(|(_, slot)| slot.waits())
    }
}

/// A folder whose listing waits for files still being read. The walk goes
/// on with the next folders (reading their files on the other readers,
/// and stat'ing the rest of the tree) instead of waiting: it waited for
/// every folder's new files before, and a cold daily snapshot spent a
/// fifth of its walk there (docs/PERFORMANCE.md). The folder's tree is
/// saved once its files are stored and it is first among its parent's
/// waiting entries, or when its parent's is. Files being read are at most
/// the readers' queue and the readers, so the folders held meanwhile are
/// few, and each holds at most [`HELD`] entries.
struct Waiting<'s, 'r> {
    /// The folder's node, its payload still to be set.
    node: Node,
    /// The folder's tree in the parent snapshot, for the summary: `None`
    /// when it is new, `Some(None)` when that entry was not a folder.
    old: Option<Option<BlobId>>,
    folder: Folder<'s, 'r>,
}

impl Slot<'_, '_> {
    /// Whether this entry is a file still being read, or a folder waiting
    /// for one.
    fn waits(&self) -> bool {
        match self {
            Slot::Done(_) => false,
            Slot::Reading(_, reply) => !reply.is_ready(),
            Slot::Deferred(waiting) => waiting.folder.waits(),
        }
    }
}

/// The entry's content, known now or still being read.
enum FileContent {
    Known(Content, u64),
    Reading(reply::Receiver<Result<FileRead>>),
}

fn stamp(sec: i64, nsec: i64) -> Timestamp {
    Timestamp {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    }
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        name.to_vec()
    } else {
        [rel, b"/", name].concat()
    }
}

impl<'a, 'r> Walker<'a, 'r> {
    fn skip(&mut self, rel: &[u8], why: String) {
        self.progress
            .warn(&format!("skipped {}: {why}", String::from_utf8_lossy(rel)));
        self.summary.skipped_count += 1;
        if self.summary.skipped.len() < MAX_RECORDED_PROBLEMS {
            self.summary.skipped.push((rel.to_vec(), why));
        }
    }

    /// Where `path` (as read) is on the live filesystem, for absolute
    /// exclude patterns.
    fn logical<'p>(&self, path: &'p Path) -> std::borrow::Cow<'p, Path> {
        if self.read_root == self.logical_root {
            return std::borrow::Cow::Borrowed(path);
        }
        match path.strip_prefix(&self.read_root) {
            Ok(rest) => std::borrow::Cow::Owned(self.logical_root.join(rest)),
            Err(_) => std::borrow::Cow::Borrowed(path),
        }
    }

    /// Snapshots one directory, with `extra` entries (sorted) beside its
    /// own, and returns its tree id.
    fn dir(
        &mut self,
        dir: &Dir,
        rel: &[u8],
        parent: Option<PreviousListing<'r>>,
        extra: Vec<Node>,
    ) -> Result<BlobId> {
        let folder = self.dir_entries(dir, rel, parent, extra)?;
        self.finish(folder)
    }

    /// Stores a command's output as a file node.
    fn stream(&mut self, stream: Stream, time: Timestamp) -> Result<(Node, HookRun)> {
        let Stream {
            name,
            mut reader,
            finish,
        } = stream;
        let failed = |reason: String| Error::CommandFailed {
            name: name.clone(),
            reason,
        };
        let mut batch = self.reader.saver.batch();
        let mut extents = Vec::new();
        let progress = self.progress;
        let read = chunker::chunk_stream(&mut *reader, &self.reader.cutter, |piece| {
            if let Piece::Data(data) = piece {
                progress.advance(0, data.len() as u64);
                let id = batch.save(BlobKind::Data, data).map_err(ReadError::Repo)?;
                extents.push(Extent::chunk(id, data.len() as u32));
            }
            Ok(())
        })
        .map_err(|e| match e {
            ReadError::Source(e) => failed(e.to_string()),
            ReadError::Repo(e) => e,
        })?;
        drop(reader);
        let run = finish().map_err(failed)?;
        let content = batch.save_content(extents)?;
        batch.flush()?;
        self.summary.files_new += 1;
        self.summary.bytes_read += read;
        self.summary.total_size += read;
        // SAFETY: getuid and getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let node = Node {
            name: name.as_bytes().to_vec(),
            kind: NodeKind::File,
            // A database dump is as private as the database.
            mode: 0o600,
            uid,
            gid,
            mtime: time,
            ctime: time,
            size: read,
            dev: 0,
            inode: 0,
            nlink: 1,
            xattrs: Vec::new(),
            payload: Payload::File(content),
        };
        Ok((node, run))
    }

    /// Lists and snapshots one directory's entries, with `extra` entries
    /// (sorted) beside them; some may still be being read.
    fn dir_entries(
        &mut self,
        dir: &Dir,
        rel: &[u8],
        mut parent: Option<PreviousListing<'r>>,
        extra: Vec<Node>,
    ) -> Result<Folder<'a, 'r>> {
        let mut names = dir.names().map_err(|e| Error::Source {
            path: dir.path().to_path_buf(),
            reason: e.to_string(),
        })?;
        names.sort();
        let mut extra = extra.into_iter().peekable();
        let mut folder = Folder::new(self.reader.saver);
        for window in names.chunks(STAT_WINDOW) {
            for (name, meta) in window.iter().zip(dir.stat_many(window)) {
                while let Some(node) = extra.next_if(|n| n.name < *name) {
                    folder
                        .waiting
                        .push_back((join(rel, &node.name), Slot::Done(node)));
                }
                let child_rel = join(rel, name);
                let old = parent.as_mut().and_then(|p| p.take(name));
                match self.entry(dir, &child_rel, name, meta, old.as_ref()) {
                    Ok(Some(slot)) => {
                        folder.waiting.push_back((child_rel, slot));
                        self.advance(&mut folder)?;
                    }
                    Ok(None) => {}
                    Err(Error::Source { reason, .. }) => self.skip(&child_rel, reason),
                    Err(e) => return Err(e),
                }
            }
        }
        for node in extra {
            folder
                .waiting
                .push_back((join(rel, &node.name), Slot::Done(node)));
        }
        Ok(folder)
    }

    /// Moves the folder's complete entries into its listing, from the
    /// first on; waits for the first when more than [`HELD`] wait.
    fn advance(&mut self, folder: &mut Folder<'a, 'r>) -> Result<()> {
        while let Some((_, first)) = folder.waiting.front() {
            let ready = !first.waits();
            if !ready && folder.waiting.len() <= HELD {
                break;
            }
            if let Some((child_rel, slot)) = folder.waiting.pop_front() {
                self.settle(&mut folder.listing, &child_rel, slot)?;
            }
        }
        Ok(())
    }

    /// Saves a folder's listing, waiting for the files still being read
    /// and saving the folders deferred; returns its tree id.
    fn finish(&mut self, mut folder: Folder<'a, 'r>) -> Result<BlobId> {
        while let Some((child_rel, slot)) = folder.waiting.pop_front() {
            self.settle(&mut folder.listing, &child_rel, slot)?;
        }
        folder.listing.finish()
    }

    /// Adds one entry to its folder's listing once it is complete.
    fn settle(
        &mut self,
        listing: &mut ListingWriter<'a, 'r>,
        child_rel: &[u8],
        slot: Slot<'a, 'r>,
    ) -> Result<()> {
        let (mut node, reply) = match slot {
            Slot::Done(node) => return listing.push(&node),
            Slot::Reading(node, reply) => (node, reply),
            Slot::Deferred(waiting) => {
                let Waiting { node, old, folder } = *waiting;
                let id = self.finish(folder)?;
                self.count_dir(old, &id);
                return listing.push(&Node {
                    payload: Payload::Dir(id),
                    ..node
                });
            }
        };
        // A reader only drops its reply when it panicked.
        match reply.recv().ok_or(Error::Interrupted)? {
            Ok(read) => {
                self.read_done(child_rel, &read);
                node.payload = Payload::File(read.content);
                node.size = read.size;
                listing.push(&node)
            }
            Err(Error::Source { reason, .. }) => {
                self.skip(child_rel, reason);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Counts a folder saved as `id` whose parent-snapshot entry was `old`
    /// (see [`Waiting::old`]).
    fn count_dir(&mut self, old: Option<Option<BlobId>>, id: &BlobId) {
        match old {
            None => self.summary.dirs_new += 1,
            Some(Some(old_id)) if old_id == *id => self.summary.dirs_unchanged += 1,
            Some(_) => self.summary.dirs_changed += 1,
        }
    }

    /// Stores a listing, whole or in pieces (FORMAT.md §7.3).
    fn save_tree(&self, tree: &Tree) -> Result<BlobId> {
        self.reader.saver.save_tree(tree)
    }

    fn read_done(&mut self, rel: &[u8], read: &FileRead) {
        self.summary.bytes_read += read.read;
        if read.changed_while_read && self.summary.changed_while_read.len() < MAX_RECORDED_PROBLEMS
        {
            self.summary.changed_while_read.push(rel.to_vec());
        }
    }

    /// One entry; `Ok(None)` when it vanished. Problems with the source come
    /// back as [`Error::Source`] so the caller can skip just this entry.
    /// The slot of entry `name` of `dir`, whose metadata `meta` was just
    /// looked up; `None` when it is left out or vanished.
    fn entry(
        &mut self,
        dir: &Dir,
        rel: &[u8],
        name: &[u8],
        meta: std::io::Result<Stat>,
        old: Option<&Node>,
    ) -> Result<Option<Slot<'a, 'r>>> {
        let path = dir.child_path(name);
        let source_err = |e: std::io::Error| Error::Source {
            path: path.clone(),
            reason: e.to_string(),
        };
        let meta = match meta {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(source_err(e)),
        };
        let is_dir = meta.is_dir();
        if self
            .excludes
            .excludes(name, rel, &self.logical(&path), is_dir, meta.len())
        {
            self.summary.excluded_count += 1;
            return Ok(None);
        }
        // Another filesystem mounted inside the source, unless asked to
        // cross: kept as an empty folder (the restore shows where it was
        // mounted), and not even opened.
        let other_fs =
            is_dir && !self.excludes.crosses_filesystems() && meta.dev() != self.root_dev;
        if other_fs {
            // Named every time: a disk mounted inside the data folder is
            // either meant to be saved (--cross-filesystems) or should be
            // excluded by name, never silently missing.
            self.progress.warn(&format!(
                "{} is another filesystem mounted inside the source: kept as an empty folder (save it with --cross-filesystems, or silence this with --exclude)",
                self.logical(&path).display()
            ));
        }
        let sub = if is_dir && !other_fs {
            let (sub, _) = dir.open_dir(name, &meta).map_err(source_err)?;
            if self.excludes.marked(&sub) {
                self.summary.excluded_count += 1;
                return Ok(None);
            }
            Some(sub)
        } else {
            None
        };
        let xattrs = match old.filter(|o| same_xattrs(o, &meta)) {
            Some(o) => o.xattrs.clone(),
            None => dir.xattrs(name).map_err(source_err)?,
        };
        let (kind, payload) = if meta.is_file() {
            let node = node_from(name, NodeKind::File, &meta, xattrs, Payload::None);
            return Ok(Some(match self.file(dir, name, rel, &meta, old)? {
                FileContent::Known(content, size) => Slot::Done(Node {
                    payload: Payload::File(content),
                    size,
                    ..node
                }),
                FileContent::Reading(reply) => Slot::Reading(node, reply),
            }));
        } else if is_dir {
            let old_listing = match old {
                Some(Node {
                    payload: Payload::Dir(id),
                    ..
                }) => PreviousListing::load(self.repo, id),
                _ => None,
            };
            if rel.iter().filter(|&&b| b == b'/').count() >= crate::format::tree::MAX_DEPTH {
                return Err(Error::Source {
                    path,
                    reason: "folders nested too deep".into(),
                });
            }
            let folder = match &sub {
                Some(sub) => self.dir_entries(sub, rel, old_listing, Vec::new())?,
                None => {
                    self.summary.excluded_count += 1;
                    Folder::new(self.reader.saver)
                }
            };
            let old = old.map(|o| match o.payload {
                Payload::Dir(id) => Some(id),
                _ => None,
            });
            let node = node_from(name, NodeKind::Dir, &meta, xattrs, Payload::None);
            if folder.waits() {
                return Ok(Some(Slot::Deferred(Box::new(Waiting {
                    node,
                    old,
                    folder,
                }))));
            }
            let id = self.finish(folder)?;
            self.count_dir(old, &id);
            return Ok(Some(Slot::Done(Node {
                payload: Payload::Dir(id),
                ..node
            })));
        } else if meta.file_type() == FileType::Symlink {
            self.summary.others += 1;
            let target = dir.read_link(name).map_err(source_err)?;
            (NodeKind::Symlink, Payload::Symlink(target))
        } else {
            self.summary.others += 1;
            let kind = match meta.file_type() {
                FileType::Fifo => NodeKind::Fifo,
                FileType::Socket => NodeKind::Socket,
                FileType::CharacterDevice => NodeKind::CharDevice,
                _ => NodeKind::BlockDevice,
            };
            let payload = match kind {
                NodeKind::CharDevice | NodeKind::BlockDevice => Payload::Device(meta.rdev()),
                _ => Payload::None,
            };
            (kind, payload)
        };
        Ok(Some(Slot::Done(node_from(
            name, kind, &meta, xattrs, payload,
        ))))
    }

    /// A regular file's content and its stored size (which differs from the
    /// stat size only for a file that changed while read: flagged, and read
    /// again next time since its recorded ctime is the old one).
    fn file(
        &mut self,
        dir: &Dir,
        name: &[u8],
        rel: &[u8],
        meta: &Stat,
        old: Option<&Node>,
    ) -> Result<FileContent> {
        self.summary.total_size += meta.len();
        if let Some(old) = old {
            if let Payload::File(content) = &old.payload {
                match unchanged(old, Seen::of(meta), self.trust_inodes) {
                    Sameness::Same { inode_changed } => {
                        self.summary.inode_changed += u64::from(inode_changed);
                        self.summary.files_unchanged += 1;
                        self.progress.advance(1, meta.len());
                        return Ok(FileContent::Known(content.clone(), old.size));
                    }
                    Sameness::InodeOnly => self.summary.inode_changed += 1,
                    Sameness::Changed => {}
                }
            }
        }
        if old.is_some() {
            self.summary.files_changed += 1;
        } else {
            self.summary.files_new += 1;
        }
        let previous = match old.map(|old| &old.payload) {
            Some(Payload::File(content)) => Some(content.clone()),
            _ => None,
        };
        let path = dir.child_path(name);
        let file = dir.open_file(name, meta).map_err(|e| Error::Source {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let Some(link) = (meta.nlink() > 1).then_some((meta.dev(), meta.ino())) else {
            let (reply, answer) = reply::pair();
            let job = ReadJob {
                file,
                path,
                rel: rel.to_vec(),
                meta: *meta,
                previous,
                reply,
            };
            // Readers only stop when the queue closes, or by panicking.
            self.jobs.send(job).map_err(|_| Error::Interrupted)?;
            return Ok(FileContent::Reading(answer));
        };
        // Hard links are read here, in walk order, so that every later name
        // finds the first one's content (they are few).
        if let Some((content, size)) = self.links.get(&link) {
            self.progress.advance(1, meta.len());
            return Ok(FileContent::Known(content.clone(), *size));
        }
        let mut batch = self.reader.saver.batch();
        let read = self
            .reader
            .read(&mut batch, file, &path, rel, meta, previous.as_ref())?;
        batch.flush()?;
        self.read_done(rel, &read);
        self.links.insert(link, (read.content.clone(), read.size));
        Ok(FileContent::Known(read.content, read.size))
    }
}

/// Reads, chunks and stores regular files; shared by the reader threads.
struct FileReader<'a, 'r> {
    saver: &'a Saver<'r>,
    progress: &'a dyn Progress,
    cutter: Cutter,
}

impl FileReader<'_, '_> {
    /// Reads `file`, opened by [`Dir::open_file`] (so it is the regular
    /// file `meta` describes); `path` is for messages.
    fn read(
        &self,
        batch: &mut Batch<'_, '_>,
        file: std::fs::File,
        path: &Path,
        rel: &[u8],
        meta: &Stat,
        previous: Option<&Content>,
    ) -> Result<FileRead> {
        let source_err = |e: std::io::Error| Error::Source {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let mut content = ContentWriter::default();
        let progress = self.progress;
        let repo = self.saver.repository();
        let mut pages = previous.and_then(|old| PreviousPages::load(repo, old, meta.len()));
        let mut previous = previous.and_then(|old| Previous::load(repo, old, meta.len()));
        let mut offset = 0u64;
        let read = chunker::chunk_file(
            &file,
            meta.len(),
            &self.cutter,
            |piece| -> Result<(), ReadError> {
                match piece {
                    Piece::Data(data) => {
                        let len = data.len() as u32;
                        progress.advance(0, u64::from(len));
                        let at = offset;
                        offset += u64::from(len);
                        if let Some(previous) = previous.as_mut() {
                            // Deltas are made a window of chunks at a time.
                            for extent in previous.save(batch, at, data).map_err(ReadError::Repo)? {
                                content.push(batch, extent).map_err(ReadError::Repo)?;
                            }
                            return Ok(());
                        }
                        let extent = match pages.as_mut() {
                            Some(pages) => {
                                let id = blob_id(repo.keys(), BlobKind::Data, data);
                                if pages.had(at, len, &id) {
                                    Ok(Extent::chunk(id, len))
                                } else {
                                    batch
                                        .save_hashed(BlobKind::Data, id, data)
                                        .map(|()| Extent::chunk(id, len))
                                }
                            }
                            None => batch
                                .save(BlobKind::Data, data)
                                .map(|id| Extent::chunk(id, len)),
                        }
                        .map_err(ReadError::Repo)?;
                        content.push(batch, extent).map_err(ReadError::Repo)?;
                    }
                    Piece::Hole(len) => {
                        progress.advance(0, len);
                        if let Some(previous) = previous.as_mut() {
                            for extent in previous.flush(batch).map_err(ReadError::Repo)? {
                                content.push(batch, extent).map_err(ReadError::Repo)?;
                            }
                        }
                        content
                            .push(batch, Extent::Hole { len })
                            .map_err(ReadError::Repo)?;
                        offset += len;
                    }
                }
                Ok(())
            },
        )
        .map_err(|e| match e {
            ReadError::Source(e) => source_err(e),
            ReadError::Repo(e) => e,
        })?;
        if let Some(previous) = previous.as_mut() {
            for extent in previous.flush(batch)? {
                content.push(batch, extent)?;
            }
        }
        self.progress.advance(1, 0);
        let after = Stat::of(&file).map_err(source_err)?;
        let size = content.len();
        // A read that ended before the stated size with the stat unchanged
        // (a share serving a stale cached size) is a change all the same.
        let changed_while_read = size != meta.len()
            || after.len() != meta.len()
            || after.mtime() != meta.mtime()
            || after.mtime_nsec() != meta.mtime_nsec()
            || after.ctime() != meta.ctime()
            || after.ctime_nsec() != meta.ctime_nsec();
        if changed_while_read {
            self.progress.warn(&format!(
                "{} changed while it was read",
                String::from_utf8_lossy(rel)
            ));
        }
        let content = content.finish(batch)?;
        Ok(FileRead {
            content,
            size,
            read,
            changed_while_read,
        })
    }
}

/// How a file compares with its entry in the parent snapshot.
#[derive(Debug, PartialEq, Eq)]
enum Sameness {
    /// Unchanged: not read again. `inode_changed` when only its inode
    /// number differs and inode numbers are not trusted.
    Same { inode_changed: bool },
    /// Same size and times but another inode, which is trusted: read again
    /// (a file replaced by a copy that kept its times).
    InodeOnly,
    /// Changed.
    Changed,
}

/// What decides whether a file changed, as seen now.
#[derive(Debug, Clone, Copy)]
struct Seen {
    size: u64,
    mtime: Timestamp,
    ctime: Timestamp,
    inode: u64,
}

impl Seen {
    fn of(meta: &Stat) -> Self {
        Seen {
            size: meta.len(),
            mtime: stamp(meta.mtime(), meta.mtime_nsec()),
            ctime: stamp(meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
        }
    }
}

/// Compares a file with its parent entry by size, mtime, ctime and (when
/// `trust_inodes`) inode number.
fn unchanged(old: &Node, seen: Seen, trust_inodes: bool) -> Sameness {
    let same_times = old.kind == NodeKind::File
        && old.size == seen.size
        && old.mtime == seen.mtime
        && old.ctime == seen.ctime;
    match (same_times, old.inode == seen.inode, trust_inodes) {
        (false, _, _) => Sameness::Changed,
        (true, true, _) => Sameness::Same {
            inode_changed: false,
        },
        (true, false, false) => Sameness::Same {
            inode_changed: true,
        },
        (true, false, true) => Sameness::InodeOnly,
    }
}

/// Whether an entry's extended attributes are its parent-snapshot entry's:
/// the same inode and ctime. Setting or removing an attribute (an ACL
/// included) sets the ctime, and so does making a new entry on a reused
/// inode, so they cannot differ; a daily snapshot then lists the
/// attributes of the changed entries only (listing them was 7.5 % of a
/// daily snapshot's CPU at 4 GiB).
fn same_xattrs(old: &Node, meta: &Stat) -> bool {
    old.inode == meta.ino() && old.ctime == stamp(meta.ctime(), meta.ctime_nsec())
}

/// Reading a file fails either on the source side (skip the file) or on the
/// repository side (stop the snapshot).
enum ReadError {
    Source(std::io::Error),
    Repo(Error),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Source(e)
    }
}

fn node_from(
    name: &[u8],
    kind: NodeKind,
    meta: &Stat,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    payload: Payload,
) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: stamp(meta.mtime(), meta.mtime_nsec()),
        ctime: stamp(meta.ctime(), meta.ctime_nsec()),
        size: if kind == NodeKind::Dir { 0 } else { meta.len() },
        dev: meta.dev(),
        inode: meta.ino(),
        nlink: meta.nlink(),
        xattrs,
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, mtime: i64, ctime: i64, inode: u64) -> Node {
        Node {
            name: b"f".to_vec(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: stamp(mtime, 0),
            ctime: stamp(ctime, 0),
            size,
            dev: 1,
            inode,
            nlink: 1,
            xattrs: Vec::new(),
            payload: Payload::None,
        }
    }

    fn seen(size: u64, mtime: i64, ctime: i64, inode: u64) -> Seen {
        Seen {
            size,
            mtime: stamp(mtime, 0),
            ctime: stamp(ctime, 0),
            inode,
        }
    }

    /// A Windows share mounted with CIFS may number its files anew at each
    /// mount: there, a new inode alone must not make every file be read
    /// again, and it is counted.
    #[test]
    fn inode_numbers_decide_only_where_they_are_trusted() {
        let old = file(10, 100, 200, 7);
        assert_eq!(
            unchanged(&old, seen(10, 100, 200, 7), true),
            Sameness::Same {
                inode_changed: false
            }
        );
        assert_eq!(
            unchanged(&old, seen(10, 100, 200, 8), true),
            Sameness::InodeOnly
        );
        assert_eq!(
            unchanged(&old, seen(10, 100, 200, 8), false),
            Sameness::Same {
                inode_changed: true
            }
        );
        for changed in [
            seen(11, 100, 200, 7),
            seen(10, 101, 200, 7),
            seen(10, 100, 201, 7),
        ] {
            assert_eq!(unchanged(&old, changed, false), Sameness::Changed);
            assert_eq!(unchanged(&old, changed, true), Sameness::Changed);
        }
    }

    #[test]
    fn duplicate_root_names_are_found() {
        assert_eq!(duplicate(&mut [b"b".to_vec(), b"a".to_vec()]), None);
        assert_eq!(
            duplicate(&mut [b"b".to_vec(), b"a".to_vec(), b"b".to_vec()]),
            Some(b"b".to_vec())
        );
    }
}
