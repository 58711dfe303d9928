//! `slowdrive BACKING_DIR MOUNTPOINT --write-mbps N [--read-mbps N] [--latency-ms N]`:
//! a throttling passthrough FUSE filesystem, the "slow USB drive" of
//! `bench/compare --drive-mbps`.
//!
//! **Why.** The benchmark wants every tool's repository on a drive that
//! writes at 100 MB/s (a USB hard disk) or 20 MB/s (a USB 2 stick). The
//! usual ways to get one are missing from the kernel this runs on: cgroup v2
//! `io.max` is not available (cgroup v1 `blkio` throttles only direct and
//! synchronous I/O, not the page-cache writeback every tool relies on), and
//! there is neither `dm-delay` nor `nbd`. FUSE works, so this mounts
//! MOUNTPOINT as a plain passthrough of BACKING_DIR (best on a real disk,
//! e.g. under `/var/tmp`) and makes the bytes wait.
//!
//! **What it models.** One shared token bucket per direction, in bytes per
//! second (MB = 10^6 bytes), with a small burst of 256 KiB: every write
//! reserves its bytes and the calling thread sleeps until they are "on the
//! drive"; reads do the same when `--read-mbps` is given (otherwise they are
//! not throttled). Reads and writes have separate buckets. FUSE without the
//! writeback cache (which this never asks for) sends each `write()` to the
//! daemon before it returns, so a writer sees the drive's speed directly;
//! and since every tool fsyncs its packs anyway, the bytes written decide
//! the time either way. `--latency-ms` adds a fixed delay to every `fsync`
//! and `fsyncdir` (the flush of a drive's write cache); it is 0 by default.
//!
//! **Caching.** File contents are not cached by the kernel across opens:
//! files are opened without `FOPEN_KEEP_CACHE`, so each `open()`
//! invalidates the pages the kernel kept for that file, and the reads of a
//! restore go through the throttle again even right after the backup wrote
//! the same bytes. Within one open the page cache and the kernel's
//! readahead work as they do on a real block device (readahead bytes are
//! charged like any read). `direct_io` is not used: it would change the
//! request sizes the tools see and break shared `mmap` on some kernels,
//! for no gain in fairness. Attributes and names are cached for 1 s.
//!
//! **Limits.** No seek time model (only `--latency-ms` per fsync), no
//! queueing or fairness beyond first come, first served on the bucket;
//! metadata operations (create, rename, unlink, mkdir) cost nothing; the
//! backing disk's own cost comes on top (fsync is passed through). Hard
//! links get one FUSE inode per name. File locks are left to the kernel's
//! local locking. `copy_file_range` is not implemented, so the kernel falls
//! back to read + write, both throttled.
//!
//! **Implementation.** An inode table maps FUSE inode numbers (never
//! reused) to backing paths; names looked up, created or renamed are kept
//! there until the kernel forgets them, and renames move every path under
//! the renamed one. Open files are real file descriptors (`pread`/`pwrite`
//! on them); open directories are a listing taken at `opendir`, so
//! `readdir` offsets are stable. Served by 4 threads (fuser's
//! multi-threaded session), so a throttled write does not hold up lookups
//! or reads. Every backing error is returned as its errno.
//!
//! **A dying drive.** SIGUSR1 makes every operation fail with EIO before it
//! reaches the backing folder, SIGUSR2 ends that: `tests/unplug.rs` uses it
//! for the "every I/O fails" unplug that a device-mapper `error` target
//! would give on a kernel that has one.
//!
//! It prints one line to stderr once mounted (the mount, the rates) and
//! stays in the foreground until SIGINT/SIGTERM/SIGHUP (then unmounts,
//! lazily if busy) or until unmounted from outside (`fusermount3 -u`,
//! `umount`); it then prints `slowdrive: wrote N bytes, read N bytes, N
//! fsyncs` (what passed through the mount; `bench/compare` reads it) and
//! exits 0.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem,
    FopenFlags, Generation, INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

/// How long the kernel may keep names and attributes.
const TTL: Duration = Duration::from_secs(1);
/// Bytes a bucket may hold: what passes at once after a pause.
const BURST: f64 = 256.0 * 1024.0;
/// Worker threads serving the kernel.
const THREADS: usize = 4;

type Res<T> = Result<T, Errno>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn last_errno() -> Errno {
    Errno::from(io::Error::last_os_error())
}

fn cstr(p: &Path) -> Res<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

fn cstr_os(s: &OsStr) -> Res<CString> {
    CString::new(s.as_bytes()).map_err(|_| Errno::EINVAL)
}

/// `ret == -1` → the errno.
fn check(ret: libc::c_int) -> Res<()> {
    if ret == -1 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// A token bucket: `take(n)` returns once `n` bytes fit in the rate.
struct Bucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(mbps: f64) -> Bucket {
        Bucket {
            rate: mbps * 1e6,
            state: Mutex::new((BURST, Instant::now())),
        }
    }

    /// Reserves `n` bytes and sleeps until they have passed. Reservations
    /// are served in order, so concurrent writers share the rate.
    fn take(&self, n: usize) {
        let wait = {
            let mut s = lock(&self.state);
            let now = Instant::now();
            let elapsed = now.duration_since(s.1).as_secs_f64();
            s.0 = (s.0 + elapsed * self.rate).min(BURST) - n as f64;
            s.1 = now;
            if s.0 < 0.0 {
                -s.0 / self.rate
            } else {
                0.0
            }
        };
        if wait > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(wait));
        }
    }
}

/// What went through the mount, printed at exit.
#[derive(Default)]
struct Stats {
    written: AtomicU64,
    read: AtomicU64,
    fsyncs: AtomicU64,
}

struct Node {
    /// None once unlinked or replaced: only open handles still reach it.
    path: Option<PathBuf>,
    nlookup: u64,
}

/// FUSE inode numbers ↔ backing paths.
struct Table {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<PathBuf, u64>,
    next: u64,
}

impl Table {
    fn new(root: PathBuf) -> Table {
        let mut t = Table {
            nodes: HashMap::new(),
            by_path: HashMap::new(),
            next: 2,
        };
        t.by_path.insert(root.clone(), 1);
        t.nodes.insert(
            1,
            Node {
                path: Some(root),
                nlookup: 1,
            },
        );
        t
    }

    fn path(&self, ino: INodeNo) -> Res<PathBuf> {
        self.nodes
            .get(&ino.0)
            .and_then(|n| n.path.clone())
            .ok_or(Errno::ENOENT)
    }

    /// One more kernel reference to `path`'s inode (found or new).
    fn remember(&mut self, path: PathBuf) -> u64 {
        if let Some(&ino) = self.by_path.get(&path) {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.nlookup += 1;
                return ino;
            }
        }
        let ino = self.next;
        self.next += 1;
        self.by_path.insert(path.clone(), ino);
        self.nodes.insert(
            ino,
            Node {
                path: Some(path),
                nlookup: 1,
            },
        );
        ino
    }

    fn forget(&mut self, ino: u64, n: u64) {
        if ino == 1 {
            return;
        }
        let gone = match self.nodes.get_mut(&ino) {
            Some(node) => {
                node.nlookup = node.nlookup.saturating_sub(n);
                node.nlookup == 0
            }
            None => false,
        };
        if gone {
            if let Some(Node {
                path: Some(path), ..
            }) = self.nodes.remove(&ino)
            {
                if self.by_path.get(&path) == Some(&ino) {
                    self.by_path.remove(&path);
                }
            }
        }
    }

    /// `path` no longer names the inode it named (unlinked, replaced).
    fn detach(&mut self, path: &Path) {
        if let Some(ino) = self.by_path.remove(path) {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.path = None;
            }
        }
    }

    /// Everything known at `from` or below it moves to `to`.
    fn move_tree(&mut self, from: &Path, to: &Path, is_dir: bool) {
        let moved: Vec<(PathBuf, u64)> = if is_dir {
            self.by_path
                .iter()
                .filter(|(p, _)| p.starts_with(from))
                .map(|(p, &i)| (p.clone(), i))
                .collect()
        } else {
            self.by_path
                .get(from)
                .map(|&i| vec![(from.to_path_buf(), i)])
                .unwrap_or_default()
        };
        for (old, _) in &moved {
            self.by_path.remove(old);
        }
        for (old, ino) in moved {
            let rest = old.strip_prefix(from).unwrap_or(Path::new(""));
            let new = if rest.as_os_str().is_empty() {
                to.to_path_buf()
            } else {
                to.join(rest)
            };
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.path = Some(new.clone());
            }
            self.by_path.insert(new, ino);
        }
    }
}

struct DirEnt {
    name: std::ffi::OsString,
    kind: FileType,
    ino: u64,
}

struct SlowDrive {
    root: PathBuf,
    table: Mutex<Table>,
    /// Open files: handle → (inode, backing file).
    files: Mutex<HashMap<u64, (u64, Arc<File>)>>,
    dirs: Mutex<HashMap<u64, Arc<Vec<DirEnt>>>>,
    next_fh: AtomicU64,
    write: Bucket,
    read: Option<Bucket>,
    stats: Arc<Stats>,
    latency: Duration,
    /// Running as root: new entries are given to the caller.
    root_daemon: bool,
}

fn kind_of(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    let nsecs = nsecs.clamp(0, 999_999_999) as u32;
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::new(0, nsecs)
    }
}

fn attr(ino: u64, md: &Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: md.size(),
        blocks: md.blocks(),
        atime: time(md.atime(), md.atime_nsec()),
        mtime: time(md.mtime(), md.mtime_nsec()),
        ctime: time(md.ctime(), md.ctime_nsec()),
        crtime: time(md.ctime(), md.ctime_nsec()),
        kind: kind_of(md.mode()),
        perm: (md.mode() & 0o7777) as u16,
        nlink: md.nlink() as u32,
        uid: md.uid(),
        gid: md.gid(),
        rdev: md.rdev() as u32,
        blksize: md.blksize() as u32,
        flags: 0,
    }
}

fn lstat(p: &Path) -> Res<Metadata> {
    std::fs::symlink_metadata(p).map_err(Errno::from)
}

fn timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            },
            Err(e) => {
                let d = e.duration();
                let (mut s, mut ns) = (-(d.as_secs() as i64), -(d.subsec_nanos() as i64));
                if ns < 0 {
                    s -= 1;
                    ns += 1_000_000_000;
                }
                libc::timespec {
                    tv_sec: s as libc::time_t,
                    tv_nsec: ns as libc::c_long,
                }
            }
        },
    }
}

/// Open flags safe to hand to the backing file.
fn backing_flags(flags: i32) -> i32 {
    (flags & !(libc::O_NOCTTY | libc::O_DIRECT)) | libc::O_CLOEXEC
}

impl SlowDrive {
    fn path(&self, ino: INodeNo) -> Res<PathBuf> {
        // A failing drive refuses before anything reaches the backing
        // folder: every operation resolves a path or a handle first.
        if FAILING.load(Ordering::SeqCst) {
            return Err(Errno::EIO);
        }
        lock(&self.table).path(ino)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Res<PathBuf> {
        Ok(self.path(parent)?.join(name))
    }

    fn file(&self, fh: FileHandle) -> Res<Arc<File>> {
        if FAILING.load(Ordering::SeqCst) {
            return Err(Errno::EIO);
        }
        lock(&self.files)
            .get(&fh.0)
            .map(|f| f.1.clone())
            .ok_or(Errno::EBADF)
    }

    /// Some open file of `ino`: the only way left to an unlinked file
    /// (`fstat` reaches `getattr` without its handle).
    fn open_file_of(&self, ino: INodeNo) -> Option<Arc<File>> {
        lock(&self.files)
            .values()
            .find(|f| f.0 == ino.0)
            .map(|f| f.1.clone())
    }

    /// The new entry at `path` → its attributes, counted as one lookup.
    fn register(&self, path: PathBuf) -> Res<FileAttr> {
        let md = lstat(&path)?;
        let ino = lock(&self.table).remember(path);
        Ok(attr(ino, &md))
    }

    /// Gives a new entry to the caller when it is not us.
    fn give(&self, req: &Request, path: &Path) -> Res<()> {
        if self.root_daemon && (req.uid() != 0 || req.gid() != 0) {
            let c = cstr(path)?;
            // SAFETY: c is a valid NUL-terminated string.
            check(unsafe { libc::lchown(c.as_ptr(), req.uid(), req.gid()) })?;
        }
        Ok(())
    }

    fn new_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    fn do_getattr(&self, ino: INodeNo, fh: Option<FileHandle>) -> Res<FileAttr> {
        if let Some(f) = fh.and_then(|fh| self.file(fh).ok()) {
            let md = f.metadata().map_err(Errno::from)?;
            return Ok(attr(ino.0, &md));
        }
        match self.path(ino) {
            Ok(p) => Ok(attr(ino.0, &lstat(&p)?)),
            Err(e) => {
                let f = self.open_file_of(ino).ok_or(e)?;
                Ok(attr(ino.0, &f.metadata().map_err(Errno::from)?))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn do_setattr(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
    ) -> Res<FileAttr> {
        let path = self.path(ino);
        let file = match fh.and_then(|fh| self.file(fh).ok()) {
            Some(f) => Some(f),
            None if path.is_err() => self.open_file_of(ino),
            None => None,
        };
        // The open file when there is one (the name may be gone), else the name.
        let fd = file.as_ref().map(|f| f.as_raw_fd());
        let c = match (&path, fd) {
            (Ok(p), _) => Some(cstr(p)?),
            (Err(_), Some(_)) => None,
            (Err(e), None) => return Err(*e),
        };
        if let Some(mode) = mode {
            let m = (mode & 0o7777) as libc::mode_t;
            // SAFETY: valid fd or NUL-terminated string.
            check(match (fd, &c) {
                (Some(fd), _) => unsafe { libc::fchmod(fd, m) },
                (None, Some(c)) => unsafe { libc::chmod(c.as_ptr(), m) },
                (None, None) => unreachable!(),
            })?;
        }
        if uid.is_some() || gid.is_some() {
            let (u, g) = (uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX));
            // SAFETY: as above.
            check(match (fd, &c) {
                (Some(fd), _) => unsafe { libc::fchown(fd, u, g) },
                (None, Some(c)) => unsafe { libc::lchown(c.as_ptr(), u, g) },
                (None, None) => unreachable!(),
            })?;
        }
        if let Some(size) = size {
            let len = size as libc::off_t;
            // SAFETY: as above.
            let by_fd = fd.map(|fd| check(unsafe { libc::ftruncate(fd, len) }));
            match (by_fd, &c) {
                (Some(Ok(())), _) => {}
                // A read-only handle: truncate by name.
                (Some(Err(_)) | None, Some(c)) => {
                    check(unsafe { libc::truncate(c.as_ptr(), len) })?
                }
                (Some(Err(e)), None) => return Err(e),
                (None, None) => unreachable!(),
            }
        }
        if atime.is_some() || mtime.is_some() {
            let ts = [timespec(atime), timespec(mtime)];
            // SAFETY: ts holds two timespecs; valid fd or string.
            check(match (fd, &c) {
                (Some(fd), _) => unsafe { libc::futimens(fd, ts.as_ptr()) },
                (None, Some(c)) => unsafe {
                    libc::utimensat(
                        libc::AT_FDCWD,
                        c.as_ptr(),
                        ts.as_ptr(),
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                },
                (None, None) => unreachable!(),
            })?;
        }
        self.do_getattr(ino, fh)
    }

    fn do_rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Res<()> {
        let from = self.child(parent, name)?;
        let to = self.child(newparent, newname)?;
        let (cf, ct) = (cstr(&from)?, cstr(&to)?);
        // Kept locked across the rename: lookups see the old or the new tree.
        let mut table = lock(&self.table);
        // SAFETY: valid NUL-terminated strings.
        check(unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                cf.as_ptr(),
                libc::AT_FDCWD,
                ct.as_ptr(),
                flags.bits(),
            )
        })?;
        let is_dir = |p: &Path| lstat(p).map(|m| m.is_dir()).unwrap_or(true);
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            // A path no file can have (paths never contain NUL).
            let tmp = PathBuf::from(OsStr::from_bytes(b"/\0slowdrive-exchange"));
            let (to_dir, from_dir) = (is_dir(&to), is_dir(&from));
            table.move_tree(&from, &tmp, to_dir);
            table.move_tree(&to, &from, from_dir);
            table.move_tree(&tmp, &to, to_dir);
        } else {
            table.detach(&to);
            let dir = is_dir(&to);
            table.move_tree(&from, &to, dir);
        }
        Ok(())
    }

    fn do_opendir(&self, ino: INodeNo) -> Res<u64> {
        let path = self.path(ino)?;
        let mut list = vec![
            DirEnt {
                name: ".".into(),
                kind: FileType::Directory,
                ino: ino.0,
            },
            DirEnt {
                name: "..".into(),
                kind: FileType::Directory,
                ino: 1,
            },
        ];
        for e in std::fs::read_dir(&path).map_err(Errno::from)? {
            let e = e.map_err(Errno::from)?;
            let kind = match e.file_type() {
                Ok(t) => FileType::from_std(t).unwrap_or(FileType::RegularFile),
                Err(_) => FileType::RegularFile,
            };
            list.push(DirEnt {
                name: e.file_name(),
                kind,
                ino: std::os::unix::fs::DirEntryExt::ino(&e),
            });
        }
        let fh = self.new_fh();
        lock(&self.dirs).insert(fh, Arc::new(list));
        Ok(fh)
    }

    fn do_read(&self, fh: FileHandle, offset: u64, size: u32) -> Res<Vec<u8>> {
        let f = self.file(fh)?;
        let mut buf = vec![0u8; size as usize];
        let mut n = 0;
        while n < buf.len() {
            match f.read_at(&mut buf[n..], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        buf.truncate(n);
        if let Some(b) = &self.read {
            b.take(n);
        }
        self.stats.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(buf)
    }

    fn do_write(&self, fh: FileHandle, offset: u64, data: &[u8]) -> Res<u32> {
        let f = self.file(fh)?;
        self.write.take(data.len());
        f.write_all_at(data, offset).map_err(Errno::from)?;
        self.stats
            .written
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data.len() as u32)
    }

    fn do_create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> Res<(FileAttr, u64)> {
        let path = self.child(parent, name)?;
        let c = cstr(&path)?;
        let m = (mode & !umask & 0o7777) as libc::c_uint;
        // SAFETY: valid string; the fd is owned by the File below.
        let fd = unsafe { libc::open(c.as_ptr(), backing_flags(flags) | libc::O_CREAT, m) };
        if fd < 0 {
            return Err(last_errno());
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        let f = unsafe { File::from_raw_fd(fd) };
        self.give(req, &path)?;
        let md = f.metadata().map_err(Errno::from)?;
        let ino = lock(&self.table).remember(path);
        let fh = self.new_fh();
        lock(&self.files).insert(fh, (ino, Arc::new(f)));
        Ok((attr(ino, &md), fh))
    }

    fn do_open(&self, ino: INodeNo, flags: OpenFlags) -> Res<u64> {
        let c = cstr(&self.path(ino)?)?;
        let flags = backing_flags(flags.0) & !(libc::O_CREAT | libc::O_EXCL);
        // SAFETY: valid string; the fd is owned by the File below.
        let fd = unsafe { libc::open(c.as_ptr(), flags) };
        if fd < 0 {
            return Err(last_errno());
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        let f = unsafe { File::from_raw_fd(fd) };
        let fh = self.new_fh();
        lock(&self.files).insert(fh, (ino.0, Arc::new(f)));
        Ok(fh)
    }

    fn after_fsync(&self) {
        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        if !self.latency.is_zero() {
            std::thread::sleep(self.latency);
        }
    }

    fn xattr_reply(reply: ReplyXattr, size: u32, get: impl Fn(*mut u8, usize) -> isize) {
        if size == 0 {
            let n = get(std::ptr::null_mut(), 0);
            if n < 0 {
                reply.error(last_errno());
            } else {
                reply.size(n as u32);
            }
            return;
        }
        let mut buf = vec![0u8; size as usize];
        let n = get(buf.as_mut_ptr(), buf.len());
        if n < 0 {
            reply.error(last_errno());
        } else {
            reply.data(&buf[..n as usize]);
        }
    }
}

/// Replies with the result or its errno; EIO for everything while the
/// drive is failing (SIGUSR1).
macro_rules! answer {
    ($reply:expr, $res:expr, |$v:ident| $ok:expr) => {
        match $res {
            _ if FAILING.load(Ordering::SeqCst) => $reply.error(Errno::EIO),
            Ok($v) => $ok,
            Err(e) => $reply.error(e),
        }
    };
}

impl Filesystem for SlowDrive {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let res = self.child(parent, name).and_then(|p| self.register(p));
        answer!(reply, res, |a| reply.entry(&TTL, &a, Generation(0)));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        lock(&self.table).forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        answer!(reply, self.do_getattr(ino, fh), |a| reply.attr(&TTL, &a));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let res = self.do_setattr(ino, mode, uid, gid, size, atime, mtime, fh);
        answer!(reply, res, |a| reply.attr(&TTL, &a));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let res = self
            .path(ino)
            .and_then(|p| std::fs::read_link(p).map_err(Errno::from));
        answer!(reply, res, |t| reply.data(t.as_os_str().as_bytes()));
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let res = (|| {
            let path = self.child(parent, name)?;
            let c = cstr(&path)?;
            let m = (mode & !(umask & 0o7777)) as libc::mode_t;
            // SAFETY: valid NUL-terminated string.
            check(unsafe { libc::mknod(c.as_ptr(), m, rdev as libc::dev_t) })?;
            self.give(req, &path)?;
            self.register(path)
        })();
        answer!(reply, res, |a| reply.entry(&TTL, &a, Generation(0)));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let res = (|| {
            let path = self.child(parent, name)?;
            let c = cstr(&path)?;
            let m = (mode & !umask & 0o7777) as libc::mode_t;
            // SAFETY: valid NUL-terminated string.
            check(unsafe { libc::mkdir(c.as_ptr(), m) })?;
            self.give(req, &path)?;
            self.register(path)
        })();
        answer!(reply, res, |a| reply.entry(&TTL, &a, Generation(0)));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let res = (|| {
            let path = self.child(parent, name)?;
            let c = cstr(&path)?;
            let mut table = lock(&self.table);
            // SAFETY: valid NUL-terminated string.
            check(unsafe { libc::unlink(c.as_ptr()) })?;
            table.detach(&path);
            Ok(())
        })();
        answer!(reply, res, |_v| reply.ok());
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let res = (|| {
            let path = self.child(parent, name)?;
            let c = cstr(&path)?;
            let mut table = lock(&self.table);
            // SAFETY: valid NUL-terminated string.
            check(unsafe { libc::rmdir(c.as_ptr()) })?;
            table.detach(&path);
            Ok(())
        })();
        answer!(reply, res, |_v| reply.ok());
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let res = (|| {
            let path = self.child(parent, link_name)?;
            std::os::unix::fs::symlink(target, &path).map_err(Errno::from)?;
            self.give(req, &path)?;
            self.register(path)
        })();
        answer!(reply, res, |a| reply.entry(&TTL, &a, Generation(0)));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let res = self.do_rename(parent, name, newparent, newname, flags);
        answer!(reply, res, |_v| reply.ok());
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let res = (|| {
            let from = self.path(ino)?;
            let to = self.child(newparent, newname)?;
            std::fs::hard_link(&from, &to).map_err(Errno::from)?;
            self.register(to)
        })();
        answer!(reply, res, |a| reply.entry(&TTL, &a, Generation(0)));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        // No FOPEN_KEEP_CACHE: every open drops the kernel's cached pages,
        // so reads after an open reach the throttle.
        answer!(reply, self.do_open(ino, flags), |fh| reply
            .opened(FileHandle(fh), FopenFlags::empty()));
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
        answer!(reply, self.do_read(fh, offset, size), |d| reply.data(&d));
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        answer!(reply, self.do_write(fh, offset, data), |n| reply.written(n));
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Writes are synchronous to the backing file: nothing to flush.
        reply.ok();
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

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let res = self.file(fh).and_then(|f| {
            if datasync {
                f.sync_data()
            } else {
                f.sync_all()
            }
            .map_err(Errno::from)
        });
        self.after_fsync();
        answer!(reply, res, |_v| reply.ok());
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        answer!(reply, self.do_opendir(ino), |fh| reply
            .opened(FileHandle(fh), FopenFlags::empty()));
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(list) = lock(&self.dirs).get(&fh.0).cloned() else {
            reply.error(Errno::EBADF);
            return;
        };
        let dir = self.path(ino).ok();
        let table = lock(&self.table);
        for (i, e) in list.iter().enumerate().skip(offset as usize) {
            // The inode the kernel knows the entry by, else the backing one.
            let known = match (i, &dir) {
                (0 | 1, _) => None,
                (_, Some(d)) => table.by_path.get(&d.join(&e.name)).copied(),
                (_, None) => None,
            };
            if reply.add(
                INodeNo(known.unwrap_or(e.ino)),
                i as u64 + 1,
                e.kind,
                &e.name,
            ) {
                break;
            }
        }
        drop(table);
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.dirs).remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let res = self.path(ino).and_then(|p| {
            let d = File::open(p).map_err(Errno::from)?;
            if datasync {
                d.sync_data()
            } else {
                d.sync_all()
            }
            .map_err(Errno::from)
        });
        self.after_fsync();
        answer!(reply, res, |_v| reply.ok());
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let res = (|| {
            let c = cstr(&self.root)?;
            // SAFETY: zeroed statvfs is a valid out-parameter.
            let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: valid string and out-parameter.
            check(unsafe { libc::statvfs(c.as_ptr(), &mut s) })?;
            Ok(s)
        })();
        answer!(reply, res, |s| reply.statfs(
            s.f_blocks,
            s.f_bfree,
            s.f_bavail,
            s.f_files,
            s.f_ffree,
            s.f_bsize as u32,
            s.f_namemax as u32,
            s.f_frsize as u32,
        ));
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let res = (|| {
            let (c, n) = (cstr(&self.path(ino)?)?, cstr_os(name)?);
            // SAFETY: valid strings; value is a valid buffer of its length.
            check(unsafe {
                libc::lsetxattr(
                    c.as_ptr(),
                    n.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    flags,
                )
            })
        })();
        answer!(reply, res, |_v| reply.ok());
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let names = self.path(ino).and_then(|p| Ok((cstr(&p)?, cstr_os(name)?)));
        match names {
            Err(e) => reply.error(e),
            // SAFETY: valid strings; the buffer is null with size 0 or valid.
            Ok((c, n)) => Self::xattr_reply(reply, size, |buf, len| unsafe {
                libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.cast(), len)
            }),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.path(ino).and_then(|p| cstr(&p)) {
            Err(e) => reply.error(e),
            // SAFETY: valid string; the buffer is null with size 0 or valid.
            Ok(c) => Self::xattr_reply(reply, size, |buf, len| unsafe {
                libc::llistxattr(c.as_ptr(), buf.cast(), len)
            }),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let res = (|| {
            let (c, n) = (cstr(&self.path(ino)?)?, cstr_os(name)?);
            // SAFETY: valid strings.
            check(unsafe { libc::lremovexattr(c.as_ptr(), n.as_ptr()) })
        })();
        answer!(reply, res, |_v| reply.ok());
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let res = (|| {
            let c = cstr(&self.path(ino)?)?;
            // SAFETY: valid string.
            check(unsafe { libc::access(c.as_ptr(), mask.bits()) })
        })();
        answer!(reply, res, |_v| reply.ok());
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let res = self.do_create(req, parent, name, mode, umask, flags);
        answer!(reply, res, |v| reply.created(
            &TTL,
            &v.0,
            Generation(0),
            FileHandle(v.1),
            FopenFlags::empty()
        ));
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let res = self.file(fh).and_then(|f| {
            // SAFETY: valid fd.
            check(unsafe {
                libc::fallocate(
                    f.as_raw_fd(),
                    mode,
                    offset as libc::off_t,
                    length as libc::off_t,
                )
            })
        });
        answer!(reply, res, |_v| reply.ok());
    }
}

/// Set by SIGINT / SIGTERM / SIGHUP: unmount and stop.
static STOP: AtomicBool = AtomicBool::new(false);

/// Set by SIGUSR1, cleared by SIGUSR2: every operation fails with EIO and
/// nothing reaches the backing folder, as a drive that dies (a
/// device-mapper `error` target, which this kernel lacks) until it comes
/// back.
static FAILING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Blocks SIGUSR1 and SIGUSR2 in this thread and every thread started
/// after it, and handles them on one thread of their own, in the order
/// they came: handlers on several threads could run a "fail" after the
/// "heal" sent later.
fn watch_fail_signals() {
    // SAFETY: a zeroed sigset_t is valid storage; it is initialised by
    // sigemptyset before any use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain libc calls on our own signal set and mask.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    std::thread::spawn(move || loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: waits on the blocked set; `sig` is valid storage.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            FAILING.store(sig == libc::SIGUSR1, Ordering::SeqCst);
        }
    });
}

const USAGE: &str =
    "usage: slowdrive BACKING_DIR MOUNTPOINT --write-mbps N [--read-mbps N] [--latency-ms N]\n\
    Mounts MOUNTPOINT as a passthrough of BACKING_DIR whose writes (and reads,\n\
    with --read-mbps) pass at N MB/s (10^6 bytes); --latency-ms delays every fsync.\n\
    SIGUSR1 makes every operation fail with EIO (a dying drive), SIGUSR2 heals it.\n\
    Runs until SIGINT/SIGTERM or until unmounted.";

struct Args {
    backing: PathBuf,
    mountpoint: PathBuf,
    write_mbps: f64,
    read_mbps: Option<f64>,
    latency_ms: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut pos = Vec::new();
    let (mut write, mut read, mut latency) = (None, None, 0.0);
    let mut it = std::env::args_os().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy().into_owned();
        if s == "-h" || s == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if let Some(flag) = s.strip_prefix("--") {
            let (flag, value) = match flag.split_once('=') {
                Some((f, v)) => (f.to_string(), v.to_string()),
                None => {
                    let v = it
                        .next()
                        .ok_or(format!("--{flag} needs a value"))?
                        .to_string_lossy()
                        .into_owned();
                    (flag.to_string(), v)
                }
            };
            let num: f64 = value
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or(format!("--{flag}: not a number: {value}"))?;
            match flag.as_str() {
                "write-mbps" if num > 0.0 => write = Some(num),
                "read-mbps" if num > 0.0 => read = Some(num),
                "write-mbps" | "read-mbps" => return Err(format!("--{flag} must be > 0")),
                "latency-ms" => latency = num,
                _ => return Err(format!("unknown option --{flag}")),
            }
        } else {
            pos.push(PathBuf::from(a));
        }
    }
    let [backing, mountpoint]: [PathBuf; 2] = pos
        .try_into()
        .map_err(|_| "needs BACKING_DIR and MOUNTPOINT".to_string())?;
    Ok(Args {
        backing,
        mountpoint,
        write_mbps: write.ok_or("--write-mbps is required")?,
        read_mbps: read,
        latency_ms: latency,
    })
}

fn allow_other() -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    root || std::fs::read_to_string("/etc/fuse.conf")
        .map(|s| s.lines().any(|l| l.trim() == "user_allow_other"))
        .unwrap_or(false)
}

/// Unmounts (lazily when busy) and waits a little for the session to end.
fn stop(session: BackgroundSession, mountpoint: &Path) -> io::Result<()> {
    let c = CString::new(mountpoint.as_os_str().as_bytes())?;
    // SAFETY: valid NUL-terminated string.
    if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EBUSY) => {
                eprintln!(
                    "slowdrive: {} is busy, detaching it lazily",
                    mountpoint.display()
                );
                // SAFETY: as above.
                if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // Not root: fusermount does it.
            Some(libc::EPERM) => return session.umount_and_join(),
            // Already unmounted from outside.
            Some(libc::EINVAL) => {}
            _ => return Err(e),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !session.guard.is_finished() {
        if Instant::now() > deadline {
            // Still in use after a lazy unmount: exiting ends the connection.
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    session.join()
}

fn run(args: Args) -> Result<(), String> {
    let backing = std::fs::canonicalize(&args.backing)
        .map_err(|e| format!("{}: {e}", args.backing.display()))?;
    if !backing.is_dir() {
        return Err(format!("{}: not a directory", backing.display()));
    }
    let mountpoint = std::fs::canonicalize(&args.mountpoint)
        .map_err(|e| format!("{}: {e}", args.mountpoint.display()))?;
    // Modes come already masked by the kernel; ours must not mask them again.
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    // SAFETY: geteuid cannot fail.
    let root_daemon = unsafe { libc::geteuid() } == 0;
    let stats = Arc::new(Stats::default());
    let fs = SlowDrive {
        table: Mutex::new(Table::new(backing.clone())),
        root: backing.clone(),
        files: Mutex::new(HashMap::new()),
        dirs: Mutex::new(HashMap::new()),
        next_fh: AtomicU64::new(1),
        write: Bucket::new(args.write_mbps),
        read: args.read_mbps.map(Bucket::new),
        latency: Duration::from_secs_f64(args.latency_ms / 1000.0),
        root_daemon,
        stats: stats.clone(),
    };
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    // Before the session starts its threads, which inherit the mask.
    watch_fail_signals();
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("slowdrive".into()),
        MountOption::Subtype("slowdrive".into()),
        MountOption::DefaultPermissions,
        MountOption::RW,
    ];
    if allow_other() {
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(THREADS);
    let session = fuser::spawn_mount(fs, &mountpoint, &config)
        .map_err(|e| format!("mounting {}: {e}", mountpoint.display()))?;
    eprintln!(
        "slowdrive: {} on {}, writes {} MB/s, reads {}, fsync latency {} ms ({THREADS} threads)",
        backing.display(),
        mountpoint.display(),
        args.write_mbps,
        args.read_mbps
            .map_or("unthrottled".to_string(), |r| format!("{r} MB/s")),
        args.latency_ms,
    );
    let res = loop {
        std::thread::sleep(Duration::from_millis(100));
        if STOP.load(Ordering::SeqCst) {
            break stop(session, &mountpoint).map_err(|e| format!("unmounting: {e}"));
        }
        if session.guard.is_finished() {
            // Unmounted from outside.
            break session
                .join()
                .map_err(|e| format!("serving the mount: {e}"));
        }
    };
    // One line for scripts (bench/compare reads it).
    eprintln!(
        "slowdrive: wrote {} bytes, read {} bytes, {} fsyncs",
        stats.written.load(Ordering::Relaxed),
        stats.read.load(Ordering::Relaxed),
        stats.fsyncs.load(Ordering::Relaxed),
    );
    res
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("slowdrive: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("slowdrive: {e}");
        std::process::exit(1);
    }
}
