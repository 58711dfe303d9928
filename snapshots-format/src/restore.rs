//! Restoring a snapshot (or one path of it) into a target directory.
//!
//! The repository is untrusted input here: tree decoding already refuses
//! unsafe names, and every file is created through [`crate::target`],
//! relative to directory descriptors and without following symlinks, so
//! nothing is written outside the target. Every chunk read is verified
//! (decrypted, authenticated, re-hashed) before it is written. Existing
//! files are left alone unless `overwrite` is set; existing directories are
//! merged into.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use serde::Serialize;

use crate::blob::BlobKind;
use crate::content::Extent;
use crate::error::{Error, IoContext, Result};
use crate::id::BlobId;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::snapshot::Snapshot;
use crate::target::{self, DirFd, Existing};
use crate::tree::{valid_name, Node, NodeKind, Payload};

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
    let root = DirFd::open_root(&opts.target).at(&opts.target)?;
    let mut r = Restorer {
        repo,
        progress,
        overwrite: opts.overwrite,
        owner: unsafe { libc::geteuid() } == 0,
        summary: RestoreSummary::default(),
        links: HashMap::new(),
        root: opts.target.clone(),
    };
    match &opts.path {
        None => {
            progress.set_total(
                snap.summary.files_new + snap.summary.files_changed + snap.summary.files_unchanged,
                snap.summary.total_size,
            );
            r.tree(&root, &mut Vec::new(), &snap.tree)?;
            if let (true, Some(node)) = (created, &snap.root) {
                if let Err(e) = r.apply_dir_meta(&root, node) {
                    r.summary.errors.push(format!("(target folder): {e}"));
                }
            }
        }
        Some(path) => {
            let (tree_id, node) = selected.expect("resolved above");
            let parts: Vec<Vec<u8>> = path
                .split(|&b| b == b'/')
                .filter(|p| !p.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            let mut dir = root;
            let mut rel = Vec::new();
            if let Some((_, parents)) = parts.split_last() {
                for part in parents {
                    dir = r
                        .enter(&dir, part)
                        .map_err(|e| Error::Restore(format!("{}: {e}", show(&rel, part))))?;
                    rel.push(part.clone());
                }
            }
            match node {
                Some(node) => r.entry(&dir, &mut rel, &node),
                // An empty path names the whole snapshot.
                None => r.tree(&dir, &mut rel, &tree_id)?,
            }
        }
    }
    Ok(r.summary)
}

/// Where the first name of a hard-linked inode was restored: its directory
/// (as components from the target root) and its name.
type LinkSource = (Vec<Vec<u8>>, Vec<u8>);

struct Restorer<'a> {
    repo: &'a Repository,
    progress: &'a dyn Progress,
    overwrite: bool,
    owner: bool,
    summary: RestoreSummary,
    /// First restored name of each hard-linked inode: its directory path
    /// (from the target root) and name.
    links: HashMap<(u64, u64), LinkSource>,
    root: PathBuf,
}

fn show(rel: &[Vec<u8>], name: &[u8]) -> String {
    let mut s: Vec<u8> = rel.join(&b'/');
    if !s.is_empty() {
        s.push(b'/');
    }
    s.extend_from_slice(name);
    String::from_utf8_lossy(&s).into_owned()
}

impl Restorer<'_> {
    fn tree(&mut self, dir: &DirFd, rel: &mut Vec<Vec<u8>>, id: &BlobId) -> Result<()> {
        let tree = self.repo.load_tree(id)?;
        for node in &tree.nodes {
            self.entry(dir, rel, node);
        }
        Ok(())
    }

    /// Restores one entry; failures are recorded, not returned, so one bad
    /// file does not stop the rest.
    fn entry(&mut self, dir: &DirFd, rel: &mut Vec<Vec<u8>>, node: &Node) {
        if let Err(e) = self.try_entry(dir, rel, node) {
            let msg = format!("{}: {e}", show(rel, &node.name));
            self.progress.warn(&msg);
            self.summary.errors.push(msg);
        }
    }

    /// Opens (creating it if needed) the subdirectory `name`.
    fn enter(&mut self, dir: &DirFd, name: &[u8]) -> Result<DirFd> {
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

    /// Clears the way for a new non-directory entry `name`.
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

    fn try_entry(&mut self, dir: &DirFd, rel: &mut Vec<Vec<u8>>, node: &Node) -> Result<()> {
        // Decoding already refused these; checking again costs nothing.
        if !valid_name(&node.name) {
            return Err(Error::Restore(
                "unsafe name in the repository, refused".into(),
            ));
        }
        let name = &node.name[..];
        let owner = self.owner.then_some((node.uid, node.gid));
        if node.kind == NodeKind::Dir {
            if rel.len() >= crate::tree::MAX_DEPTH {
                return Err(Error::corrupt(
                    "tree",
                    show(rel, name),
                    "folders nested too deep",
                ));
            }
            let Payload::Dir(sub) = &node.payload else {
                return Err(bad_node(node));
            };
            let child = self.enter(dir, name)?;
            rel.push(node.name.clone());
            let res = self.tree(&child, rel, sub);
            rel.pop();
            res?;
            self.summary.dirs += 1;
            for (k, v) in &node.xattrs {
                child.set_xattr_self(k, v).map_err(|e| xattr_err(k, e))?;
            }
            child
                .set_owner_mode_self(owner, node.mode)
                .map_err(io_err)?;
            return child.set_mtime_self(node.mtime).map_err(io_err);
        }
        if let Some(key) = node.link_key() {
            if let Some((first_dir, first_name)) = self.links.get(&key).cloned() {
                let from = self.open_path(&first_dir)?;
                self.create(dir, name, || dir.link_from(&from, &first_name, name))?;
                self.count(node);
                return Ok(());
            }
        }
        match (&node.kind, &node.payload) {
            (NodeKind::File, Payload::File(content)) => {
                let file = self.create(dir, name, || dir.create_file(name))?;
                let extents = self.repo.load_extents(content)?;
                let offset = write_extents(self.repo, &file, &extents, self.progress)?;
                self.summary.bytes += extents
                    .iter()
                    .filter(|e| matches!(e, Extent::Chunk { .. }))
                    .map(Extent::len)
                    .sum::<u64>();
                if offset != node.size {
                    return Err(Error::corrupt(
                        "tree",
                        show(rel, name),
                        "chunk list does not add up to the file size",
                    ));
                }
                // Trailing holes: extend without writing, so they stay holes.
                file.set_len(node.size).map_err(io_err)?;
                for (k, v) in &node.xattrs {
                    target::set_xattr_fd(file.as_raw_fd(), k, v).map_err(|e| xattr_err(k, e))?;
                }
                target::set_owner_mode_fd(file.as_raw_fd(), owner, node.mode).map_err(io_err)?;
                target::set_mtime_fd(file.as_raw_fd(), node.mtime).map_err(io_err)?;
                self.progress.advance(1, 0);
            }
            (NodeKind::Symlink, Payload::Symlink(t)) => {
                self.create(dir, name, || dir.symlink(t, name))?;
                dir.set_owner_mode(name, owner, None).map_err(io_err)?;
                dir.set_mtime(name, node.mtime).map_err(io_err)?;
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
                self.create(dir, name, || dir.mknod(name, bits, rdev))?;
                dir.set_owner_mode(name, owner, Some(node.mode))
                    .map_err(io_err)?;
                dir.set_mtime(name, node.mtime).map_err(io_err)?;
            }
            _ => return Err(bad_node(node)),
        }
        if let Some(key) = node.link_key() {
            self.links.insert(key, (rel.clone(), node.name.clone()));
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

    fn count(&mut self, node: &Node) {
        match node.kind {
            NodeKind::File => self.summary.files += 1,
            _ => self.summary.others += 1,
        }
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

/// Writes a file's chunks at their offsets and returns the file's length.
/// Large files are decoded (read, decrypt, decompress, verify) by one thread
/// per core, each writing its own chunks with positioned writes: decoding,
/// not the disk, is what limits a restore.
fn write_extents(
    repo: &Repository,
    file: &std::fs::File,
    extents: &[Extent],
    progress: &dyn Progress,
) -> Result<u64> {
    let mut offsets = Vec::with_capacity(extents.len());
    let mut end = 0u64;
    for e in extents {
        offsets.push(end);
        end += e.len();
    }
    let write_share = |share: usize, of: usize| -> Result<()> {
        for (i, e) in extents.iter().enumerate().skip(share).step_by(of) {
            if let Extent::Chunk { id, len } = e {
                let data = repo.load_blob(BlobKind::Data, id)?;
                if data.len() != *len as usize {
                    return Err(Error::corrupt(
                        "data blob",
                        id.short(),
                        "length differs from the file's chunk list",
                    ));
                }
                file.write_all_at(&data, offsets[i]).map_err(io_err)?;
                progress.advance(0, u64::from(*len));
            }
        }
        Ok(())
    };
    let threads = cores().min(4);
    if threads < 2 || extents.len() < 16 {
        write_share(0, 1)?;
        return Ok(end);
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
    Ok(end)
}

/// Number of cores, asked once: `available_parallelism` reads several
/// cgroup files on every call, which costs more than a small file's restore.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

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
