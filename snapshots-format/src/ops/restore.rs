//! Restoring a snapshot (or one path of it) into a target directory.
//!
//! The repository is untrusted input here: tree decoding already refuses
//! unsafe names, and every file is created through [`crate::ops::target`],
//! relative to directory descriptors and without following symlinks, so
//! nothing is written outside the target. Every chunk read is verified
//! (decrypted, authenticated, re-hashed) before it is written. Existing
//! files are left alone unless `overwrite` is set; existing directories are
//! merged into.
//!
//! One thread (the walker) reads the trees in order, creates the
//! directories and hard links, and queues every other entry for a few
//! worker threads that create, fill and label them. Restoring many small
//! files is mostly creating files, which several threads do faster than
//! one. A directory's own metadata is applied once its last entry is done
//! (see [`Dir`]).

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::format::blob::BlobKind;
use crate::format::content::Extent;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{valid_name, Node, NodeKind, Payload};
use crate::id::BlobId;
use crate::ops::cores;
use crate::ops::target::{self, DirFd, Existing};
use crate::progress::Progress;
use crate::repo::chunk_list_reader::ChunkListReader;
use crate::repo::pack_directory::PackDirectory;
use crate::repo::{ListingReader, Repository};

/// What to restore, where.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Directory to restore into (created if missing).
    pub target: PathBuf,
    /// Only this slash-separated path of the snapshot (restored at the same
    /// relative path under the target).
    pub path: Option<Vec<u8>>,
    /// Replace existing non-directory entries.
    pub overwrite: bool,
}

/// What a restore did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RestoreSummary {
    /// Regular files written (hard links counted once per name).
    pub files: u64,
    /// Directories created or merged into.
    pub dirs: u64,
    /// Symlinks, fifos, sockets, devices created.
    pub others: u64,
    /// Bytes of file contents written.
    pub bytes: u64,
    /// Entries that could not be restored, with the reason.
    pub errors: Vec<String>,
}

/// Files queued for the workers at most: enough to keep them busy while
/// the walker loads the next tree, few enough that memory and open file
/// descriptors (each queued file and its folder are open: at most about
/// 2 × 128 + the folder depth, far below the usual limit of 1024) stay
/// small whatever the size of the snapshot.
const QUEUE: usize = 128;

/// Restores `snap` per `opts`.
///
/// # Errors
/// [`Error::PathNotFound`] for a missing `--path`; target I/O errors on the
/// target root. Problems with single entries are collected in
/// [`RestoreSummary::errors`] and the restore goes on.
pub fn restore(
    repo: &Repository,
    snap: &Snapshot,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    // Check the path before creating anything: a bad --path leaves no trace.
    let selected = match &opts.path {
        Some(path) => Some(repo.find_path(&snap.tree, path)?),
        None => None,
    };
    // The snapshot's root metadata goes onto the target only when restore
    // creates it: an existing folder (say /srv or /tmp) keeps its own.
    let created = !opts.target.exists();
    std::fs::create_dir_all(&opts.target).at(&opts.target)?;
    let root_fd = DirFd::open_root(&opts.target).at(&opts.target)?;
    let shared = Shared {
        repo,
        progress,
        overwrite: opts.overwrite,
        owner: unsafe { libc::geteuid() } == 0,
        summary: Mutex::new(RestoreSummary::default()),
        root: opts.target.clone(),
        packs: PackDirectory::default(),
    };
    let (queue, jobs) = mpsc::sync_channel(QUEUE);
    let jobs = Mutex::new(jobs);
    let walked = std::thread::scope(|scope| {
        for _ in 0..workers() {
            scope.spawn(|| shared.work(&jobs));
        }
        let mut walker = Walker {
            shared: &shared,
            queue,
            links: HashMap::new(),
        };
        let root = Arc::new(Dir {
            fd: root_fd,
            name: Vec::new(),
            depth: 0,
            meta: if created && opts.path.is_none() {
                snap.root.clone()
            } else {
                None
            },
            _parent: None,
            shared: &shared,
        });
        let Some(path) = &opts.path else {
            progress.set_total(snap.summary.files(), snap.summary.total_size);
            walker.skeleton(&root.fd, &snap.tree, 0);
            return walker.tree(&root, &snap.tree);
        };
        let (tree_id, node) = selected.expect("resolved above");
        let parts: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty())
            .collect();
        let mut dir = root;
        if let Some((_, parents)) = parts.split_last() {
            for part in parents {
                let fd = shared
                    .enter(&dir.fd, part)
                    .map_err(|e| Error::Restore(format!("{}: {e}", show(&dir.rel(), part))))?;
                dir = dir.child(fd, part, None);
            }
        }
        match node {
            Some(node) => {
                if let (NodeKind::Dir, Payload::Dir(sub)) = (&node.kind, &node.payload) {
                    if let Ok(fd) = shared.enter(&dir.fd, &node.name) {
                        walker.skeleton(&fd, sub, dir.depth + 1);
                    }
                }
                walker.entry(&dir, node);
            }
            // An empty path names the whole snapshot.
            None => {
                walker.skeleton(&dir.fd, &tree_id, dir.depth);
                walker.tree(&dir, &tree_id)?;
            }
        }
        Ok(())
        // Leaving the scope drops the walker, which closes the queue, and
        // waits for the workers; the last directories are labelled then.
    });
    // The queue's type names `shared`: end it before taking the summary out.
    drop(jobs);
    let summary = shared
        .summary
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    walked.map(|()| summary)
}

/// How many threads create files: more than the cores, since creating a
/// file often waits on the disk rather than on a core.
fn workers() -> usize {
    (cores() * 2).clamp(2, 8)
}

/// Where the first name of a hard-linked inode was restored: its directory
/// (as components from the target root) and its name.
type LinkSource = (Vec<Vec<u8>>, Vec<u8>);

/// What the walker and the workers share.
struct Shared<'a> {
    repo: &'a Repository,
    progress: &'a dyn Progress,
    overwrite: bool,
    owner: bool,
    summary: Mutex<RestoreSummary>,
    root: PathBuf,
    /// Where the blobs of the packs large files are read through are, from
    /// the packs' trailers: a database's hundreds of thousands of pages
    /// are located a pack at a time rather than each by an index lookup
    /// (13 % of a 16 GiB restore's CPU in a profile).
    packs: PackDirectory,
}

/// A restored directory, kept open while entries remain to be made in it.
///
/// The walker and every queued entry hold it (and through it its parents).
/// When the last of them lets go, its own metadata (xattrs, owner, mode,
/// mtime) is applied: after its entries, whose creation would change its
/// mtime and which a read-only mode would forbid, and before its parent's.
struct Dir<'s> {
    fd: DirFd,
    /// Its name in its parent (empty for the target root); the path from
    /// the root is rebuilt from the parents when needed
    /// ([`Dir::rel`]): a copy of it in every open folder would cost the
    /// square of the depth, half a GiB for a crafted tree 4096 deep.
    name: Vec<u8>,
    /// Folders between the target root and this one.
    depth: usize,
    /// The snapshot's entry for this directory; `None` for folders that
    /// keep their own metadata (an existing target, the parents of `--path`).
    meta: Option<Node>,
    /// Keeps the parent's metadata pending until this directory is done.
    _parent: Option<Arc<Dir<'s>>>,
    shared: &'s Shared<'s>,
}

impl<'s> Dir<'s> {
    fn child(self: &Arc<Self>, fd: DirFd, name: &[u8], meta: Option<Node>) -> Arc<Self> {
        Arc::new(Dir {
            fd,
            name: name.to_vec(),
            depth: self.depth + 1,
            meta,
            _parent: Some(Arc::clone(self)),
            shared: self.shared,
        })
    }

    /// Path from the target root, for messages and hard links.
    fn rel(&self) -> Vec<Vec<u8>> {
        let mut rel = Vec::with_capacity(self.depth);
        let mut dir = Some(self);
        while let Some(d) = dir.filter(|d| d.depth > 0) {
            rel.push(d.name.clone());
            dir = d._parent.as_deref();
        }
        rel.reverse();
        rel
    }
}

impl Drop for Dir<'_> {
    fn drop(&mut self) {
        let Some(node) = &self.meta else { return };
        if let Err(e) = self.shared.apply_dir_meta(&self.fd, node) {
            match self.rel().split_last() {
                Some((name, parents)) => self.shared.fail(parents, name, &e),
                None => self.shared.fail(&[], b"(target folder)", &e),
            }
        }
    }
}

/// A regular file, just created in `dir`, for a worker to fill.
struct Job<'s> {
    dir: Arc<Dir<'s>>,
    node: Node,
    file: File,
}

/// Reads the trees in order, creates every entry, and queues the regular
/// files' contents and metadata for the workers.
///
/// Creating stays on one thread: the kernel creates one name at a time per
/// folder anyway, and threads waiting for that spun on the folder's lock
/// (on an ext4 without a journal, where creating a file scans the inodes
/// deleted in the last minutes, that doubled the CPU time of a restore and
/// took it from 7 s to 25 s).
struct Walker<'s> {
    shared: &'s Shared<'s>,
    queue: SyncSender<Job<'s>>,
    /// First restored name of each hard-linked inode.
    links: HashMap<(u64, u64), LinkSource>,
}

fn show(rel: &[Vec<u8>], name: &[u8]) -> String {
    let mut s: Vec<u8> = rel.join(&b'/');
    if !s.is_empty() {
        s.push(b'/');
    }
    s.extend_from_slice(name);
    String::from_utf8_lossy(&s).into_owned()
}

impl<'s> Walker<'s> {
    /// Restores the entries of the tree `id` into `dir`, one tree piece in
    /// memory at a time. A piece that cannot be read stops the folder there
    /// (the entries before it are restored).
    fn tree(&mut self, dir: &Arc<Dir<'s>>, id: &BlobId) -> Result<()> {
        for node in ListingReader::open(self.shared.repo, id)? {
            self.entry(dir, node?);
        }
        Ok(())
    }

    /// Restores or queues one entry; failures are recorded, not returned, so
    /// one bad entry does not stop the rest.
    fn entry(&mut self, dir: &Arc<Dir<'s>>, node: Node) {
        let res = if !valid_name(&node.name) {
            // Decoding already refused these; checking again costs nothing.
            Err(Error::Restore(
                "unsafe name in the repository, refused".into(),
            ))
        } else if node.kind == NodeKind::Dir {
            self.dir(dir, &node)
        } else if let Some(key) = node.link_key() {
            // Made here, in order, so that the first name of an inode exists
            // before a later one is linked to it.
            self.linked(dir, &node, key)
        } else if let (NodeKind::File, Payload::File(_)) = (&node.kind, &node.payload) {
            let name = &node.name[..];
            match self
                .shared
                .create(&dir.fd, name, || dir.fd.create_file(name))
            {
                Ok(file) => {
                    let job = Job {
                        dir: Arc::clone(dir),
                        node,
                        file,
                    };
                    if let Err(mpsc::SendError(job)) = self.queue.send(job) {
                        // No worker is left (one panicked): do it here.
                        self.shared.fill(&job);
                    }
                    return;
                }
                Err(e) => Err(e),
            }
        } else {
            self.shared.try_entry(dir, &node)
        };
        if let Err(e) = res {
            self.shared.fail(&dir.rel(), &node.name, &e);
        }
    }

    /// Creates every folder of the tree `id` under `fd` before any file.
    ///
    /// On an ext4 without a journal, creating a file shortly after many were
    /// deleted scans the deleted inodes one by one: restoring into a fresh
    /// folder right after deleting an earlier restore took 25 s instead of
    /// 7 (and `cp -a` 22 s). With the folders made first, the files land
    /// where that scan is short (measured: 4–7 s). Errors are left to the
    /// main pass, which meets the same folders and reports them. The price
    /// is reading each tree twice (from the page cache the second time),
    /// small beside creating its files; keeping the trees instead would make
    /// memory grow with the snapshot.
    fn skeleton(&self, fd: &DirFd, id: &BlobId, depth: usize) {
        if depth >= crate::format::tree::MAX_DEPTH {
            return;
        }
        let Ok(listing) = ListingReader::open(self.shared.repo, id) else {
            return;
        };
        for node in listing.map_while(Result::ok) {
            if let (NodeKind::Dir, Payload::Dir(sub)) = (&node.kind, &node.payload) {
                if valid_name(&node.name) {
                    if let Ok(child) = self.shared.enter(fd, &node.name) {
                        self.skeleton(&child, sub, depth + 1);
                    }
                }
            }
        }
    }

    fn dir(&mut self, parent: &Arc<Dir<'s>>, node: &Node) -> Result<()> {
        if parent.depth >= crate::format::tree::MAX_DEPTH {
            return Err(Error::corrupt(
                "tree",
                show(&parent.rel(), &node.name),
                "folders nested too deep",
            ));
        }
        let Payload::Dir(sub) = &node.payload else {
            return Err(bad_node(node));
        };
        let fd = self.shared.enter(&parent.fd, &node.name)?;
        self.shared.record(|s| s.dirs += 1);
        let child = parent.child(fd, &node.name, Some(node.clone()));
        self.tree(&child, sub)
    }

    fn linked(&mut self, dir: &Dir<'s>, node: &Node, key: (u64, u64)) -> Result<()> {
        let name = &node.name[..];
        if let Some((first_dir, first_name)) = self.links.get(&key) {
            let from = self.shared.open_path(first_dir)?;
            self.shared
                .create(&dir.fd, name, || dir.fd.link_from(&from, first_name, name))?;
            self.shared.count(node);
            return Ok(());
        }
        self.shared.try_entry(dir, node)?;
        self.links.insert(key, (dir.rel(), node.name.clone()));
        Ok(())
    }
}

impl Shared<'_> {
    /// A worker: restores queued entries until the walker is done.
    fn work(&self, jobs: &Mutex<Receiver<Job<'_>>>) {
        loop {
            // Only one idle worker waits in `recv`; the others wait for the lock.
            let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
            let Ok(job) = job else { return };
            self.fill(&job);
        }
    }

    fn fill(&self, job: &Job<'_>) {
        if let Err(e) = self.fill_file(&job.dir, &job.node, &job.file) {
            // A half-written file would pass for the real one.
            let _ = job.dir.fd.unlink(&job.node.name);
            self.fail(&job.dir.rel(), &job.node.name, &e);
        }
    }

    fn record(&self, f: impl FnOnce(&mut RestoreSummary)) {
        f(&mut self.summary.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn fail(&self, rel: &[Vec<u8>], name: &[u8], e: &Error) {
        let msg = format!("{}: {e}", show(rel, name));
        self.progress.warn(&msg);
        self.record(|s| s.errors.push(msg));
    }

    fn count(&self, node: &Node) {
        self.record(|s| match node.kind {
            NodeKind::File => s.files += 1,
            _ => s.others += 1,
        });
    }

    /// Opens (creating it if needed) the subdirectory `name`.
    fn enter(&self, dir: &DirFd, name: &[u8]) -> Result<DirFd> {
        match dir.existing(name).map_err(io_err)? {
            Existing::Dir => {}
            Existing::Other if self.overwrite => {
                dir.unlink(name).map_err(io_err)?;
                dir.mkdir(name).map_err(io_err)?;
            }
            Existing::Other => return Err(exists()),
            Existing::Nothing => dir.mkdir(name).map_err(io_err)?,
        }
        dir.open_dir(name).map_err(io_err)
    }

    /// Creates a non-directory entry with `op`; only if the name is taken
    /// does it look at what is there (replace it with --overwrite, or
    /// refuse). Trying first halves the directory lookups, which is what a
    /// restore of many small files costs on a large folder.
    fn create<T>(
        &self,
        dir: &DirFd,
        name: &[u8],
        op: impl Fn() -> std::io::Result<T>,
    ) -> Result<T> {
        match op() {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.make_room(dir, name)?;
                op().map_err(io_err)
            }
            other => other.map_err(io_err),
        }
    }

    fn make_room(&self, dir: &DirFd, name: &[u8]) -> Result<()> {
        match dir.existing(name).map_err(io_err)? {
            Existing::Nothing => Ok(()),
            Existing::Dir => Err(Error::Restore(
                "a directory is in the way (remove it or restore elsewhere)".into(),
            )),
            Existing::Other if self.overwrite => dir.unlink(name).map_err(io_err),
            Existing::Other => Err(exists()),
        }
    }

    /// Writes a new regular file's contents, then its metadata.
    fn fill_file(&self, dir: &Dir<'_>, node: &Node, file: &File) -> Result<()> {
        let Payload::File(content) = &node.payload else {
            return Err(bad_node(node));
        };
        let name = &node.name[..];
        let owner = self.owner.then_some((node.uid, node.gid));
        // A window of the chunk list at a time: a 6.5 GB database lists
        // 800,000 extents (about 100 MB with their offsets and ids).
        let (mut size, mut written, mut bytes) = (0u64, 0u64, 0u64);
        for window in ChunkListReader::new(self.repo, content) {
            let window = window?;
            let len: u64 = window.iter().map(Extent::len).sum();
            if size + len > node.size {
                // Longer than the file: refused below, nothing more written.
                size += len;
                break;
            }
            if let Some(w) =
                write_extents(self.repo, &self.packs, file, &window, size, self.progress)?
            {
                written = w;
            }
            size += len;
            bytes += window
                .iter()
                .filter(|e| matches!(e, Extent::Chunk { .. }))
                .map(Extent::len)
                .sum::<u64>();
        }
        if size != node.size {
            return Err(Error::corrupt(
                "tree",
                show(&dir.rel(), name),
                "chunk list does not add up to the file size",
            ));
        }
        // Trailing holes: extend without writing, so they stay holes.
        // The file is new (created exclusively), so otherwise its
        // length is already right.
        if written < size {
            file.set_len(size).map_err(io_err)?;
        }
        // Owner first: chown drops file capabilities, which are an xattr;
        // mode last: chown also drops setuid, and a read-only mode would
        // forbid setting xattrs as a plain user.
        target::set_owner_fd(file.as_raw_fd(), owner).map_err(io_err)?;
        for (k, v) in &node.xattrs {
            target::set_xattr_fd(file.as_raw_fd(), k, v).map_err(|e| xattr_err(k, e))?;
        }
        target::set_mode_fd(file.as_raw_fd(), node.mode).map_err(io_err)?;
        target::set_mtime_fd(file.as_raw_fd(), node.mtime).map_err(io_err)?;
        self.record(|s| s.bytes += bytes);
        self.progress.advance(1, 0);
        self.count(node);
        Ok(())
    }

    /// Restores one non-directory entry (not a further name of a hard link).
    fn try_entry(&self, dir: &Dir<'_>, node: &Node) -> Result<()> {
        let (fd, name) = (&dir.fd, &node.name[..]);
        let owner = self.owner.then_some((node.uid, node.gid));
        match (&node.kind, &node.payload) {
            (NodeKind::File, Payload::File(_)) => {
                let file = self.create(fd, name, || fd.create_file(name))?;
                let filled = self.fill_file(dir, node, &file);
                if filled.is_err() {
                    // A half-written file would pass for the real one.
                    let _ = fd.unlink(name);
                }
                return filled;
            }
            (NodeKind::Symlink, Payload::Symlink(t)) => {
                self.create(fd, name, || fd.symlink(t, name))?;
                fd.set_owner_mode(name, owner, None).map_err(io_err)?;
                fd.set_mtime(name, node.mtime).map_err(io_err)?;
            }
            (NodeKind::Fifo | NodeKind::Socket, _)
            | (NodeKind::CharDevice | NodeKind::BlockDevice, Payload::Device(_)) => {
                let (bits, rdev) = match (&node.kind, &node.payload) {
                    (NodeKind::Fifo, _) => (libc::S_IFIFO, 0),
                    (NodeKind::Socket, _) => (libc::S_IFSOCK, 0),
                    (NodeKind::CharDevice, Payload::Device(d)) => (libc::S_IFCHR, *d),
                    (_, Payload::Device(d)) => (libc::S_IFBLK, *d),
                    _ => return Err(bad_node(node)),
                };
                if rdev != 0 && !self.owner {
                    return Err(Error::Restore(
                        "device files can only be recreated as root; skipped".into(),
                    ));
                }
                self.create(fd, name, || fd.mknod(name, bits, rdev))?;
                fd.set_owner_mode(name, owner, Some(node.mode))
                    .map_err(io_err)?;
                fd.set_mtime(name, node.mtime).map_err(io_err)?;
            }
            _ => return Err(bad_node(node)),
        }
        self.count(node);
        Ok(())
    }

    /// A directory's metadata, applied after its contents (which would
    /// change its mtime, and which a read-only mode would forbid).
    fn apply_dir_meta(&self, dir: &DirFd, node: &Node) -> Result<()> {
        for (k, v) in &node.xattrs {
            dir.set_xattr_self(k, v).map_err(|e| xattr_err(k, e))?;
        }
        dir.set_owner_mode_self(self.owner.then_some((node.uid, node.gid)), node.mode)
            .map_err(io_err)?;
        dir.set_mtime_self(node.mtime).map_err(io_err)
    }

    /// Re-opens a directory already restored, component by component from
    /// the target root, never following symlinks.
    fn open_path(&self, parts: &[Vec<u8>]) -> Result<DirFd> {
        let mut dir = DirFd::open_root(&self.root).map_err(io_err)?;
        for part in parts {
            dir = dir.open_dir(part).map_err(io_err)?;
        }
        Ok(dir)
    }
}

/// Writes a file's chunks at their offsets and returns the file's length
/// and the end of its last chunk (less when the file ends in a hole).
/// Large files are decoded (read, decrypt, decompress, verify) by one thread
/// per core, each writing its own chunks with positioned writes: decoding,
/// not the disk, is what limits a restore.
/// Writes the chunks of `extents`, which start at `start` in the file;
/// returns where the last chunk ends, if there is one (holes are not
/// written).
fn write_extents(
    repo: &Repository,
    packs: &PackDirectory,
    file: &std::fs::File,
    extents: &[Extent],
    start: u64,
    progress: &dyn Progress,
) -> Result<Option<u64>> {
    let mut offsets = Vec::with_capacity(extents.len());
    let (mut end, mut written) = (start, None);
    for e in extents {
        offsets.push(end);
        end += e.len();
        if let Extent::Chunk { .. } = e {
            written = Some(end);
        }
    }
    // Chunks go in groups of consecutive ones, each group loaded at once
    // (one index transaction, neighbours in a pack read together).
    let chunks: Vec<(usize, BlobId)> = extents
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Extent::Chunk { id, .. } => Some((i, *id)),
            Extent::Hole { .. } => None,
        })
        .collect();
    let groups: Vec<&[(usize, BlobId)]> = chunks.chunks(GROUP).collect();
    let write_share = |share: usize, of: usize| -> Result<()> {
        for group in groups.iter().skip(share).step_by(of) {
            let ids: Vec<BlobId> = group.iter().map(|(_, id)| *id).collect();
            packs.load(repo, BlobKind::Data, &ids, |k, data| {
                let i = group[k].0;
                if data.len() as u64 != extents[i].len() {
                    return Err(Error::corrupt(
                        "data blob",
                        ids[k].short(),
                        "length differs from the file's chunk list",
                    ));
                }
                file.write_all_at(&data, offsets[i]).map_err(io_err)?;
                progress.advance(0, extents[i].len());
                Ok(())
            })?;
        }
        Ok(())
    };
    let threads = cores().min(4);
    if threads < 2 || groups.len() < 2 {
        write_share(0, 1)?;
        return Ok(written);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || write_share(t, threads)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Restore("a restore thread failed".into())))
            })
            .collect::<Result<Vec<()>>>()
    })?;
    Ok(written)
}

/// Chunks of a file loaded together by [`write_extents`].
const GROUP: usize = 64;

fn io_err(e: std::io::Error) -> Error {
    Error::Restore(e.to_string())
}

fn exists() -> Error {
    Error::Restore("already exists in the target (use --overwrite to replace it)".into())
}

fn xattr_err(name: &[u8], e: std::io::Error) -> Error {
    Error::Restore(format!(
        "extended attribute {}: {e}",
        String::from_utf8_lossy(name)
    ))
}

fn bad_node(node: &Node) -> Error {
    Error::corrupt(
        "tree entry",
        String::from_utf8_lossy(&node.name),
        "type and payload disagree",
    )
}
