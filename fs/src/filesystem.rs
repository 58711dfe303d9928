//! The FUSE callbacks: every kernel request lands here and is answered from
//! the layout (top folders), the inode table, and the library's browser.
//! Every write of any kind is refused with EROFS. Errors reading the
//! repository become EIO with a log line naming the file; a missing name is
//! ENOENT.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Sender;
use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use snapshots_format::format::snapshot::Snapshot;
use snapshots_format::format::tree::{Node, NodeKind, Payload, Timestamp, Tree};
use snapshots_format::repo::browse::{Browser, FileReader, Listing};
use snapshots_format::{BlobId, Error, SnapshotId};

use crate::inodes::{EntryAt, Inode, Key, Kind, SnapshotFolder, Table};
use crate::layout::{layout, Folder, LabelFolders, VERSIONS_DIR};
use crate::names::ShownNames;

/// How long the kernel may cache what never changes (snapshot contents).
const TTL_FROZEN: Duration = Duration::from_secs(3600);
/// How long for the top folders, which change when snapshots are taken.
const TTL_TOP: Duration = Duration::from_secs(1);
/// How often the list of snapshots is re-read.
const REFRESH: Duration = Duration::from_secs(2);
/// Bytes decoded ahead of a sequential reader: enough 8 KiB database pages
/// or 64 KiB chunks to keep the prefetch threads busy while the kernel
/// copies out what is ready.
const READ_AHEAD: u64 = 2 << 20;

/// An open file: its extents, its path for log lines, and how far a
/// sequential reader has got and has been read ahead.
struct OpenFile {
    reader: FileReader,
    path: String,
    next: AtomicU64,
    ahead: AtomicU64,
}

struct View {
    snapshots: HashMap<SnapshotId, Snapshot>,
    labels: Vec<LabelFolders>,
    refreshed: Instant,
}

/// The mounted filesystem.
pub struct CoffreFs {
    browser: Arc<Browser>,
    /// Shared with the thread that asks the kernel to let go of the
    /// stalest inodes ([`crate::mount`]).
    table: Arc<Mutex<Table>>,
    /// Read requests served so far: the letting-go thread holds back while
    /// this moves ([`crate::mount`]).
    reads: Arc<AtomicU64>,
    view: RwLock<View>,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_fh: AtomicU64,
    prefetch: Sender<Vec<BlobId>>,
    started: SystemTime,
    /// Per folder (tree id): the names shown instead of the raw ones, when
    /// `--windows-names` is on and the folder has names that are not UTF-8.
    windows_names: Option<snapshots_format::repo::browse::Lru<Option<ShownNames>>>,
}

fn ts(t: Timestamp) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs())
            + Duration::from_nanos(u64::from(t.nsec))
    }
}

fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::Socket => FileType::Socket,
        NodeKind::CharDevice => FileType::CharDevice,
        NodeKind::BlockDevice => FileType::BlockDevice,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CoffreFs {
    /// The table of inodes the kernel holds.
    pub(crate) fn table(&self) -> Arc<Mutex<Table>> {
        self.table.clone()
    }

    /// The count of read requests served, shared with the letting-go thread.
    pub(crate) fn reads(&self) -> Arc<AtomicU64> {
        self.reads.clone()
    }

    /// A filesystem over `browser`'s repository; read-ahead requests go to `prefetch`.
    pub fn new(browser: Arc<Browser>, prefetch: Sender<Vec<BlobId>>, windows_names: bool) -> Self {
        let fs = Self {
            browser,
            table: Arc::new(Mutex::new(Table::new())),
            reads: Arc::new(AtomicU64::new(0)),
            view: RwLock::new(View {
                snapshots: HashMap::new(),
                labels: Vec::new(),
                refreshed: Instant::now(),
            }),
            files: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            prefetch,
            started: SystemTime::now(),
            windows_names: windows_names
                .then(|| snapshots_format::repo::browse::Lru::new(16 << 20)),
        };
        fs.refresh(true);
        fs
    }

    /// Re-reads the list of snapshots if it is older than [`REFRESH`], so a
    /// snapshot taken while mounted appears within seconds. A drive that
    /// vanished keeps the last known list (reads then fail with EIO).
    fn refresh(&self, force: bool) {
        if !force
            && self
                .view
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .refreshed
                .elapsed()
                < REFRESH
        {
            return;
        }
        let repo = self.browser.repo();
        let Ok(ids) = repo.list_snapshots() else {
            self.view
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .refreshed = Instant::now();
            return;
        };
        // Index files written or removed by another machine (or another
        // cache: another user, another mount path) since the last look: a
        // prune there moves kept blobs to new packs, and the old rows would
        // point at deleted ones. A listing of `index/`; files are read only
        // when new.
        if let Err(e) = repo.refresh_index() {
            eprintln!("coffre mount: index not refreshed: {e}");
        }
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        let mut snapshots = HashMap::new();
        for id in ids {
            if let Some(s) = view.snapshots.remove(&id) {
                snapshots.insert(id, s);
            } else {
                match repo.load_snapshot(&id) {
                    Ok(s) => {
                        snapshots.insert(id, s);
                    }
                    Err(e) => eprintln!("coffre mount: snapshot {} left out: {e}", id.short()),
                }
            }
        }
        let mut sorted: Vec<(SnapshotId, Snapshot)> =
            snapshots.iter().map(|(i, s)| (*i, s.clone())).collect();
        sorted.sort_by_key(|(i, s)| (s.time, *i));
        view.labels = layout(&sorted);
        view.snapshots = snapshots;
        view.refreshed = Instant::now();
    }

    /// The entries of a top-level folder: the root (one label: its dated
    /// folders; several: one folder per label), a label's folder, the
    /// Previous Versions folder (one folder per label) or a label's folder
    /// there (its `@GMT-` folders). `hidden` adds the root's Previous
    /// Versions folder, which lookups find but listings leave out.
    fn top_entries(&self, kind: &Kind, hidden: bool) -> Vec<(String, Top)> {
        self.refresh(false);
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        let snapshots = |folders: &[Folder], raw_names: bool| {
            folders
                .iter()
                .map(|f| (f.name.clone(), Top::Snapshot(f.clone(), raw_names)))
                .collect::<Vec<_>>()
        };
        let mut out = match kind {
            Kind::Root if view.labels.len() == 1 => snapshots(&view.labels[0].folders, false),
            Kind::Root => view
                .labels
                .iter()
                .map(|l| (l.name.clone(), Top::Label(l.name.clone())))
                .collect(),
            Kind::Label(name) => view
                .labels
                .iter()
                .filter(|l| &l.name == name)
                .flat_map(|l| snapshots(&l.folders, false))
                .collect(),
            Kind::Versions => view
                .labels
                .iter()
                .map(|l| (l.name.clone(), Top::VersionsLabel(l.name.clone())))
                .collect(),
            Kind::VersionsLabel(name) => view
                .labels
                .iter()
                .filter(|l| &l.name == name)
                .flat_map(|l| snapshots(&l.versions, true))
                .collect(),
            _ => Vec::new(),
        };
        if hidden && matches!(kind, Kind::Root) {
            out.push((VERSIONS_DIR.to_string(), Top::Versions));
        }
        out
    }

    /// The inode of a top-level entry: its key (which its number hashes)
    /// and what it shows.
    fn top_inode(&self, parent: &Inode, entry: Top) -> Result<(Key, Kind), Errno> {
        let key = top_key(&parent.key, &entry);
        let kind = match entry {
            Top::Label(name) => Kind::Label(name),
            Top::Versions => Kind::Versions,
            Top::VersionsLabel(name) => Kind::VersionsLabel(name),
            Top::Snapshot(folder, raw_names) => {
                let view = self.view.read().unwrap_or_else(|p| p.into_inner());
                let snap = view.snapshots.get(&folder.snapshot).ok_or(Errno::ENOENT)?;
                Kind::SnapshotRoot(Box::new(SnapshotFolder {
                    name: folder.name,
                    snapshot: folder.snapshot,
                    tree: snap.tree,
                    time: snap.time,
                    root: snap.root.clone().map(Arc::new),
                    raw_names,
                }))
            }
        };
        Ok((key, kind))
    }

    fn dir_attr(&self, ino: u64, mtime: SystemTime) -> FileAttr {
        FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind: FileType::Directory,
            perm: 0o555,
            nlink: 2,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// The attributes of `inode`; an entry's are read again from its
    /// folder's listing (cached, usually). Not with the table locked.
    fn attr(&self, ino: u64, inode: &Inode) -> Result<FileAttr, Errno> {
        match &inode.kind {
            Kind::Entry { at, .. } => Ok(node_attr(ino, &*self.node_at(ino, at)?)),
            _ => self.folder_attr(ino, inode).ok_or(Errno::EIO),
        }
    }

    /// The attributes of a top-level or dated folder, which the inode
    /// holds; `None` for an entry inside a snapshot.
    fn folder_attr(&self, ino: u64, inode: &Inode) -> Option<FileAttr> {
        match &inode.kind {
            Kind::Root | Kind::Label(_) | Kind::Versions | Kind::VersionsLabel(_) => {
                Some(self.dir_attr(ino, self.started))
            }
            Kind::SnapshotRoot(folder) => Some(match &folder.root {
                Some(node) => node_attr(ino, node),
                None => self.dir_attr(ino, ts(folder.time)),
            }),
            Kind::Entry { .. } => None,
        }
    }

    /// The recorded metadata of entry `ino`, from its folder's listing.
    fn node_at(&self, ino: u64, at: &EntryAt) -> Result<NodeRef, Errno> {
        let failed = |e: Error| self.io_error(&lock(&self.table).path(ino), &e);
        let listing = self.browser.listing(&at.tree).map_err(failed)?;
        let part = self
            .browser
            .part(&listing, at.part as usize)
            .map_err(failed)?
            .ok_or(Errno::EIO)?;
        let index = at.index as usize;
        if index < part.nodes.len() {
            Ok(NodeRef::InPart(part, index))
        } else {
            Err(Errno::EIO)
        }
    }

    /// Looks up `name` in folder `parent`, registering the child.
    fn lookup_child(&self, parent: u64, name: &[u8]) -> Result<(u64, FileAttr, Duration), Errno> {
        let parent_inode = lock(&self.table)
            .get(parent)
            .cloned()
            .ok_or(Errno::ENOENT)?;
        let (key, kind, ttl) = match &parent_inode.kind {
            Kind::Root | Kind::Label(_) | Kind::Versions | Kind::VersionsLabel(_) => {
                let entry = self
                    .top_entries(&parent_inode.kind, true)
                    .into_iter()
                    .find(|(n, _)| n.as_bytes() == name)
                    .ok_or(Errno::ENOENT)?;
                let (key, kind) = self.top_inode(&parent_inode, entry.1)?;
                (key, kind, TTL_TOP)
            }
            Kind::SnapshotRoot(_) | Kind::Entry { .. } => {
                let (tree_id, root_key, raw_names) = self.dir_of(parent, &parent_inode)?;
                let failed = |e: Error| self.io_error(&lock(&self.table).path(parent), &e);
                let listing = self.browser.listing(&tree_id).map_err(failed)?;
                let shown = self
                    .shown_names(&tree_id, &listing, raw_names)
                    .map_err(failed)?;
                let raw = match shown.as_ref() {
                    Some(shown) => shown.raw(name).ok_or(Errno::ENOENT)?,
                    None => name,
                };
                let found = self
                    .browser
                    .find(&listing, raw)
                    .map_err(failed)?
                    .ok_or(Errno::ENOENT)?;
                let node = found.part.nodes.get(found.index).ok_or(Errno::ENOENT)?;
                let key = parent_inode
                    .key
                    .child(&node.name, &root_key, node.link_key());
                let kind = Kind::Entry {
                    at: EntryAt::new(tree_id, found.number, found.index).ok_or(Errno::EIO)?,
                    name: node.name.as_slice().into(),
                    root: root_key,
                    raw_names,
                };
                return self.register(key, kind, parent, TTL_FROZEN, Some(node));
            }
        };
        self.register(key, kind, parent, ttl, None)
    }

    /// Records a reference the kernel takes on the inode of `key`; its
    /// number, attributes and how long they hold. `node`: an entry's
    /// recorded metadata, at hand.
    fn register(
        &self,
        key: Key,
        kind: Kind,
        parent: u64,
        ttl: Duration,
        node: Option<&Node>,
    ) -> Result<(u64, FileAttr, Duration), Errno> {
        let mut table = lock(&self.table);
        let ino = table.remember(key, kind, parent);
        let attr = match node {
            Some(node) => node_attr(ino, node),
            None => {
                let inode = table.get(ino).ok_or(Errno::EIO)?;
                self.folder_attr(ino, inode).ok_or(Errno::EIO)?
            }
        };
        Ok((ino, attr, ttl))
    }

    /// For a folder inside a snapshot: the folder's tree, the key of the
    /// snapshot's root (for hard-link numbers), and whether names are
    /// shown raw.
    fn dir_of(&self, ino: u64, inode: &Inode) -> Result<(BlobId, Key, bool), Errno> {
        match &inode.kind {
            Kind::SnapshotRoot(folder) => Ok((folder.tree, inode.key, folder.raw_names)),
            Kind::Entry {
                at,
                root,
                raw_names,
                ..
            } => match self.node_at(ino, at)?.payload {
                Payload::Dir(tree) => Ok((tree, *root, *raw_names)),
                _ => Err(Errno::ENOTDIR),
            },
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// The names shown for a folder's entries, if they differ from the raw
    /// ones (see [`crate::names`]). Inode numbers always hash the raw names.
    /// Worked out once per folder, a part at a time: only the names that
    /// are not UTF-8 are kept.
    fn shown_names(
        &self,
        tree_id: &BlobId,
        listing: &Listing,
        raw_names: bool,
    ) -> Result<Arc<Option<ShownNames>>, Error> {
        let cache = match self.windows_names.as_ref() {
            Some(cache) if !raw_names => cache,
            _ => return Ok(Arc::new(None)),
        };
        let computed = match cache.get(tree_id) {
            Some(c) => c,
            None => {
                let mut invalid = Vec::new();
                let mut part = 0;
                while let Some(nodes) = self.browser.part(listing, part)? {
                    invalid.extend(
                        nodes
                            .nodes
                            .iter()
                            .filter(|n| std::str::from_utf8(&n.name).is_err())
                            .map(|n| n.name.clone()),
                    );
                    part += 1;
                }
                let cost = invalid.iter().map(|n| 2 * n.len() + 64).sum::<usize>() + 16;
                let exists = |n: &[u8]| matches!(self.browser.find(listing, n), Ok(Some(_)));
                let names = Arc::new(ShownNames::new(invalid, exists));
                cache.insert(*tree_id, names.clone(), cost);
                names
            }
        };
        Ok(computed)
    }

    /// The entries of a snapshot's folder from directory offset `offset`
    /// (at least 2: "." and ".." come first) until `reply` is full. An
    /// entry's offset names its part and its place there ([`entry_offset`]),
    /// so a listing resumes without reading the parts before.
    /// The entries of a folder of a snapshot from `offset` on, each handed
    /// to `add` (which returns true when its reply is full).
    fn list_folder(
        &self,
        tree_id: &BlobId,
        key: &Key,
        root_key: &Key,
        raw_names: bool,
        offset: u64,
        add: &mut dyn FnMut(Listed<'_>) -> bool,
    ) -> Result<(), Error> {
        let listing = self.browser.listing(tree_id)?;
        let shown = self.shown_names(tree_id, &listing, raw_names)?;
        let (mut part, mut skip) = match offset.checked_sub(3) {
            None => (0, 0),
            Some(after) => (
                (after >> 32) as usize,
                (after & u64::from(u32::MAX)) as usize + 1,
            ),
        };
        while let Some(nodes) = self.browser.part(&listing, part)? {
            for (i, node) in nodes.nodes.iter().enumerate().skip(skip) {
                let name = shown
                    .as_ref()
                    .as_ref()
                    .map_or(&node.name[..], |s| s.show(&node.name));
                let full = add(Listed {
                    offset: entry_offset(part, i),
                    name: OsStr::from_bytes(name),
                    kind: file_type(node.kind),
                    child: Child::Entry {
                        key: key.child(&node.name, root_key, node.link_key()),
                        root: *root_key,
                        at: EntryAt::new(*tree_id, part, i).ok_or_else(|| {
                            Error::corrupt("tree", tree_id.short(), "too many entries")
                        })?,
                        node,
                        raw_names,
                    },
                });
                if full {
                    return Ok(());
                }
            }
            part += 1;
            skip = 0;
        }
        Ok(())
    }

    /// Every entry of folder `ino` from `offset` on, "." and ".." first,
    /// each handed to `add` (which returns true when its reply is full).
    fn list(
        &self,
        ino: u64,
        inode: &Inode,
        offset: u64,
        add: &mut dyn FnMut(Listed<'_>) -> bool,
    ) -> Result<(), Errno> {
        let mut offset = offset;
        for (at, name, dot) in [(0, ".", ino), (1, "..", inode.parent)] {
            if offset == at {
                let listed = Listed {
                    offset: at + 1,
                    name: OsStr::new(name),
                    kind: FileType::Directory,
                    child: Child::Dot(dot),
                };
                if add(listed) {
                    return Ok(());
                }
                offset = at + 1;
            }
        }
        match &inode.kind {
            Kind::Root | Kind::Label(_) | Kind::Versions | Kind::VersionsLabel(_) => {
                let skip = (offset - 2) as usize;
                let entries = self.top_entries(&inode.kind, false);
                for (i, (name, entry)) in entries.into_iter().enumerate().skip(skip) {
                    let listed = Listed {
                        offset: i as u64 + 3,
                        name: OsStr::new(&name),
                        kind: FileType::Directory,
                        child: Child::Top(entry),
                    };
                    if add(listed) {
                        break;
                    }
                }
                Ok(())
            }
            _ => {
                let (tree_id, root_key, raw_names) = self.dir_of(ino, inode)?;
                self.list_folder(&tree_id, &inode.key, &root_key, raw_names, offset, add)
                    .map_err(|e| self.io_error(&lock(&self.table).path(ino), &e))
            }
        }
    }

    /// Registers a listed entry with the kernel, as a lookup would
    /// (`readdirplus`): its number, attributes and how long they hold.
    fn remember_listed(
        &self,
        parent_ino: u64,
        parent: &Inode,
        child: Child<'_>,
    ) -> Result<(u64, FileAttr, Duration), Errno> {
        let (key, kind, ttl) = match child {
            Child::Dot(_) => return Err(Errno::EINVAL),
            Child::Top(entry) => {
                let (key, kind) = self.top_inode(parent, entry)?;
                (key, kind, TTL_TOP)
            }
            Child::Entry {
                key,
                root,
                at,
                node,
                raw_names,
            } => {
                let kind = Kind::Entry {
                    at,
                    name: node.name.as_slice().into(),
                    root,
                    raw_names,
                };
                return self.register(key, kind, parent_ino, TTL_FROZEN, Some(node));
            }
        };
        self.register(key, kind, parent_ino, ttl, None)
    }

    fn io_error(&self, path: &str, e: &Error) -> Errno {
        match e {
            Error::PathNotFound(_) => Errno::ENOENT,
            _ => {
                eprintln!("coffre mount: cannot read {path}: {e}");
                Errno::EIO
            }
        }
    }

    fn entry_node(&self, ino: u64) -> Result<NodeRef, Errno> {
        let at = match lock(&self.table).get(ino).map(|i| &i.kind) {
            Some(Kind::Entry { at, .. }) => *at,
            Some(Kind::SnapshotRoot(folder)) => {
                return folder.root.clone().map(NodeRef::Own).ok_or(Errno::ENODATA)
            }
            Some(_) => return Err(Errno::ENODATA),
            None => return Err(Errno::ENOENT),
        };
        self.node_at(ino, &at)
    }
}

/// An entry's recorded metadata: in a part of its folder's listing (shared
/// with the browser's cache), or a dated folder's own.
enum NodeRef {
    /// Entry `.1` of part `.0`, checked to exist.
    InPart(Arc<Tree>, usize),
    /// A dated folder's source folder.
    Own(Arc<Node>),
}

impl std::ops::Deref for NodeRef {
    type Target = Node;

    fn deref(&self) -> &Node {
        match self {
            NodeRef::InPart(part, index) => &part.nodes[*index],
            NodeRef::Own(node) => node,
        }
    }
}

/// The directory offset given with entry `index` of part `part` of a
/// folder's listing: where the next `readdir` resumes. For a listing stored
/// whole (one part) it is the entry's index plus 3, as for the top-level
/// folders.
fn entry_offset(part: usize, index: usize) -> u64 {
    3 + ((part as u64) << 32 | index as u64)
}

/// One entry of a folder's listing: the offset to resume after it, the
/// name shown, its type, and what it is.
struct Listed<'n> {
    offset: u64,
    name: &'n OsStr,
    kind: FileType,
    child: Child<'n>,
}

/// What a listed entry is.
enum Child<'n> {
    /// "." or "..": the folder's own number or its parent's.
    Dot(u64),
    /// An entry of a top-level folder.
    Top(Top),
    /// An entry of a snapshot's folder, with the key its number hashes,
    /// that of the snapshot's root, and where it is in the listing.
    Entry {
        key: Key,
        root: Key,
        at: EntryAt,
        node: &'n Node,
        raw_names: bool,
    },
}

/// An entry of a top-level folder.
#[derive(Debug, Clone)]
enum Top {
    /// A label's folder.
    Label(String),
    /// The hidden Previous Versions folder.
    Versions,
    /// A label's folder in the Previous Versions view.
    VersionsLabel(String),
    /// A snapshot's root; `true` in the Previous Versions view (raw names).
    Snapshot(Folder, bool),
}

/// The key a top-level entry's inode number hashes.
fn top_key(parent: &Key, entry: &Top) -> Key {
    match entry {
        Top::Label(name) => Key::top(format!("label\0{name}").as_bytes()),
        Top::Versions => Key::top(b"versions"),
        Top::VersionsLabel(name) => Key::top(format!("versions\0label\0{name}").as_bytes()),
        Top::Snapshot(f, _) => Key::snapshot_root(parent, &f.name, &f.snapshot),
    }
}

fn node_attr(ino: u64, node: &Node) -> FileAttr {
    let mtime = ts(node.mtime);
    FileAttr {
        ino: INodeNo(ino),
        size: node.size,
        blocks: node.size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: ts(node.ctime),
        crtime: mtime,
        kind: file_type(node.kind),
        perm: (node.mode & 0o7777) as u16,
        nlink: if node.kind == NodeKind::Dir {
            2
        } else {
            node.nlink.clamp(1, u64::from(u32::MAX)) as u32
        },
        uid: node.uid,
        gid: node.gid,
        rdev: match node.payload {
            Payload::Device(d) => d as u32,
            _ => 0,
        },
        blksize: 4096,
        flags: 0,
    }
}

impl Filesystem for CoffreFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // The kernel then enforces recorded POSIX ACLs (system.posix_acl_*)
        // as it does the mode bits: a share user reads in a snapshot what
        // the live file's ACLs let them read, no more. A kernel without the
        // capability checks the mode bits alone.
        let _ = config.add_capabilities(InitFlags::FUSE_POSIX_ACL);
        // Every listing with its entries' attributes: Samba, `ls -l`,
        // `find` and `du` look each entry up after listing a folder, one
        // request each otherwise, and `find`/`du` in inode order, which
        // for this mount is random (`find` of 180,000 receipts: 25 s
        // against 1.7 s). The kernel's "auto" mode sends them only for
        // the first page when the whole folder is listed before any
        // lookup, as `find` does. A listing then holds an inode per entry,
        // as the lookups that follow it did.
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.lookup_child(parent.0, name.as_bytes()) {
            Ok((_, attr, ttl)) => reply.entry(&ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        lock(&self.table).forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let inode = lock(&self.table).get(ino.0).cloned();
        match inode {
            Some(i) => {
                let ttl = if matches!(i.kind, Kind::Entry { .. }) {
                    TTL_FROZEN
                } else {
                    TTL_TOP
                };
                match self.attr(ino.0, &i) {
                    Ok(attr) => reply.attr(&ttl, &attr),
                    Err(e) => reply.error(e),
                }
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.entry_node(ino.0) {
            Ok(node) => match &node.payload {
                Payload::Symlink(t) => reply.data(t),
                _ => reply.error(Errno::EINVAL),
            },
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
            return reply.error(Errno::EROFS);
        }
        let node = match self.entry_node(ino.0) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let path = lock(&self.table).path(ino.0);
        let Payload::File(content) = &node.payload else {
            return reply.error(Errno::EINVAL);
        };
        match FileReader::open(&self.browser, content) {
            Ok(reader) => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                let file = OpenFile {
                    reader,
                    path,
                    next: AtomicU64::new(0),
                    ahead: AtomicU64::new(0),
                };
                lock(&self.files).insert(fh, Arc::new(file));
                // Contents never change: the page cache may outlive this open.
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
            }
            Err(e) => reply.error(self.io_error(&path, &e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(file) = lock(&self.files).get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        self.reads.fetch_add(1, Ordering::Relaxed);
        let end = offset + u64::from(size);
        // Sequential readers (cp, SMB) find the next chunks already decoded
        // by the prefetch threads, on the other core; random readers do not
        // trigger read-ahead they would not use.
        if file.next.swap(end, Ordering::Relaxed) == offset {
            let from = file.ahead.load(Ordering::Relaxed).max(end);
            let to = end + READ_AHEAD;
            if from < to {
                // A full queue drops the request: the reader then decodes
                // those chunks itself.
                let ids = file
                    .reader
                    .chunks_in(&self.browser, from, to)
                    .unwrap_or_default();
                let _ = self.prefetch.try_send(ids);
                file.ahead.store(to, Ordering::Relaxed);
            }
        }
        match file.reader.read(&self.browser, offset, size as usize) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(self.io_error(&file.path, &e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.files).remove(&fh.0);
        reply.ok();
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let Some(file) = lock(&self.files).get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(Errno::EINVAL);
        };
        // Holes are recorded, so `cp --sparse` and our own restore keep them.
        let found = match whence {
            libc::SEEK_DATA => file.reader.seek_data(&self.browser, offset),
            libc::SEEK_HOLE => file.reader.seek_hole(&self.browser, offset),
            _ => return reply.error(Errno::EINVAL),
        };
        match found {
            Ok(Some(o)) => reply.offset(o as i64),
            Ok(None) => reply.error(Errno::ENXIO),
            Err(e) => reply.error(self.io_error(&file.path, &e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match lock(&self.table).get(ino.0) {
            Some(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(inode) = lock(&self.table).get(ino.0).cloned() else {
            return reply.error(Errno::ENOENT);
        };
        let listed = self.list(ino.0, &inode, offset, &mut |entry| {
            let number = match &entry.child {
                Child::Dot(n) => *n,
                Child::Top(top) => top_key(&inode.key, top).number(),
                Child::Entry { key, .. } => key.number(),
            };
            reply.add(INodeNo(number), entry.offset, entry.kind, entry.name)
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// A listing with each entry's attributes (every listing: see `init`),
    /// each entry registered as a lookup would: Samba, `ls -l` and `find`
    /// then stat the entries without a request each.
    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let Some(inode) = lock(&self.table).get(ino.0).cloned() else {
            return reply.error(Errno::ENOENT);
        };
        let listed = self.list(ino.0, &inode, offset, &mut |entry| {
            if let Child::Dot(number) = entry.child {
                // The kernel takes no reference on "." and "..".
                let dot = lock(&self.table).get(number).cloned();
                let attr = match dot.map(|dot| self.attr(number, &dot)) {
                    Some(Ok(attr)) => attr,
                    _ => self.dir_attr(number, self.started),
                };
                return reply.add(
                    INodeNo(number),
                    entry.offset,
                    entry.name,
                    &TTL_TOP,
                    &attr,
                    Generation(0),
                );
            }
            match self.remember_listed(ino.0, &inode, entry.child) {
                Ok((child, attr, ttl)) => {
                    let full = reply.add(
                        INodeNo(child),
                        entry.offset,
                        entry.name,
                        &ttl,
                        &attr,
                        Generation(0),
                    );
                    if full {
                        // Not sent: the kernel holds no reference to it.
                        lock(&self.table).forget(child, 1);
                    }
                    full
                }
                // A dated folder whose snapshot was forgotten since the
                // listing began: left out, as the next listing will.
                Err(_) => false,
            }
        });
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let node = match self.entry_node(ino.0) {
            Ok(n) => n,
            Err(_) => return reply.error(Errno::ENODATA),
        };
        match node
            .xattrs
            .iter()
            .find(|(k, _)| k.as_slice() == name.as_bytes())
        {
            None => reply.error(Errno::ENODATA),
            Some((_, v)) if size == 0 => reply.size(v.len() as u32),
            Some((_, v)) if (size as usize) < v.len() => reply.error(Errno::ERANGE),
            Some((_, v)) => reply.data(v),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let mut list = Vec::new();
        if let Ok(node) = self.entry_node(ino.0) {
            for (k, _) in &node.xattrs {
                list.extend_from_slice(k);
                list.push(0);
            }
        }
        if size == 0 {
            reply.size(list.len() as u32)
        } else if (size as usize) < list.len() {
            reply.error(Errno::ERANGE)
        } else {
            reply.data(&list)
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if mask.contains(AccessFlags::W_OK) {
            reply.error(Errno::EROFS)
        } else {
            reply.ok()
        }
    }

    // Everything below would change the filesystem: refused.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _r: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _m: u32,
        _u: u32,
        _d: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(&self, _r: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _r: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _r: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(&self, _r: &Request, _p: INodeNo, _n: &OsStr, _t: &Path, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _r: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _np: INodeNo,
        _nn: &OsStr,
        _f: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(&self, _r: &Request, _i: INodeNo, _np: INodeNo, _nn: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _r: &Request,
        _i: INodeNo,
        _fh: FileHandle,
        _o: u64,
        _d: &[u8],
        _wf: WriteFlags,
        _f: OpenFlags,
        _l: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _r: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _m: u32,
        _u: u32,
        _f: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _r: &Request,
        _i: INodeNo,
        _n: &OsStr,
        _v: &[u8],
        _f: i32,
        _p: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _r: &Request, _i: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _r: &Request,
        _i: INodeNo,
        _fh: FileHandle,
        _o: u64,
        _l: u64,
        _m: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn copy_file_range(
        &self,
        _r: &Request,
        _ii: INodeNo,
        _fi: FileHandle,
        _oi: u64,
        _io: INodeNo,
        _fo: FileHandle,
        _oo: u64,
        _l: u64,
        _f: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }
}
