//! A tiny read-only FUSE filesystem serving a few files that misbehave the
//! way a failing disk or a busy share does, so that a snapshot can be shown
//! reading from it: one file returns EIO past some offset, one is served
//! shorter than its size says (a share whose cached size is stale), one
//! grows at every look, and one is rewritten half-way through being read.
//! Mounted in the test's process, always unmounted when dropped.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEntry, ReplyOpen, Request,
};

use crate::mount::is_mounted;

/// What a served file does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// A plain file of `len` bytes.
    Plain { len: u64 },
    /// `len` bytes, every read reaching `bad_from` or beyond fails with EIO.
    EioFrom { len: u64, bad_from: u64 },
    /// Says `len` bytes but reads end at `real` (a stale cached size).
    ShortRead { len: u64, real: u64 },
    /// `len` bytes, then `step` more (and a newer mtime) at every getattr.
    Growing { len: u64, step: u64 },
    /// `len` bytes whose content and mtime change once a read reaches
    /// `switch_at`: what was read before is the old version.
    RewrittenAt { len: u64, switch_at: u64 },
}

/// One file of the filesystem.
#[derive(Debug, Clone)]
pub struct Served {
    /// Its name in the root folder.
    pub name: String,
    /// How it behaves.
    pub behaviour: Behaviour,
}

/// The byte at `offset` of a served file's version `generation` (a
/// pattern that differs by file, offset and version).
pub fn byte_at(ino: u64, generation: u64, offset: u64) -> u8 {
    let x = offset
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(ino.wrapping_mul(0xD6E8_FEB8_6659_FD93))
        .wrapping_add(generation.wrapping_mul(0xA076_1D64_78BD_642F));
    (x >> 29) as u8 ^ (offset as u8)
}

/// The bytes `[from, to)` of a served file's version `generation`.
pub fn bytes(ino: u64, generation: u64, from: u64, to: u64) -> Vec<u8> {
    (from..to).map(|o| byte_at(ino, generation, o)).collect()
}

struct FileState {
    served: Served,
    /// getattr calls so far (Growing), or 1 once rewritten (RewrittenAt).
    counter: AtomicU64,
}

struct FaultyFs {
    files: Vec<Arc<FileState>>,
    started: SystemTime,
}

/// The inode of the `i`-th served file (the root is 1).
pub fn inode_of(i: usize) -> u64 {
    i as u64 + 2
}

impl FaultyFs {
    fn file(&self, ino: u64) -> Option<&Arc<FileState>> {
        self.files.get(usize::try_from(ino.checked_sub(2)?).ok()?)
    }

    fn root_attr(&self) -> FileAttr {
        FileAttr {
            ino: INodeNo(1),
            size: 0,
            blocks: 0,
            atime: self.started,
            mtime: self.started,
            ctime: self.started,
            crtime: self.started,
            kind: FileType::Directory,
            perm: 0o755,
            nlink: 2,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// A file's attributes; `look` counts as one look (Growing grows).
    fn file_attr(&self, ino: u64, f: &FileState, look: bool) -> FileAttr {
        let (size, version) = match f.served.behaviour {
            Behaviour::Plain { len }
            | Behaviour::EioFrom { len, .. }
            | Behaviour::ShortRead { len, .. } => (len, 0),
            Behaviour::Growing { len, step } => {
                let n = if look {
                    f.counter.fetch_add(1, Ordering::SeqCst) + 1
                } else {
                    f.counter.load(Ordering::SeqCst)
                };
                (len + step * n, n)
            }
            Behaviour::RewrittenAt { len, .. } => (len, f.counter.load(Ordering::SeqCst)),
        };
        let mtime = self.started + Duration::from_secs(version);
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind: FileType::RegularFile,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }
}

/// Attributes are never cached: every stat reaches the filesystem, as the
/// snapshot's before/after comparison needs.
const TTL: Duration = Duration::ZERO;

impl Filesystem for FaultyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent.0 != 1 {
            return reply.error(Errno::ENOENT);
        }
        match (0..self.files.len()).find(|&i| OsStr::new(&self.files[i].served.name) == name) {
            Some(i) => {
                let ino = inode_of(i);
                let attr = self.file_attr(ino, &self.files[i], true);
                reply.entry(&TTL, &attr, Generation(0));
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino.0 == 1 {
            return reply.attr(&TTL, &self.root_attr());
        }
        match self.file(ino.0) {
            Some(f) => reply.attr(&TTL, &self.file_attr(ino.0, f, true)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.file(ino.0).is_none() {
            return reply.error(Errno::ENOENT);
        }
        // Direct I/O: every read reaches the filesystem, and a short read
        // is seen as one by the reader (no page cache filling it with zeros).
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(f) = self.file(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let want_end = offset + u64::from(size);
        let (end, generation) = match f.served.behaviour {
            Behaviour::Plain { len } => (len, 0),
            Behaviour::EioFrom { len, bad_from } => {
                if want_end.min(len) > bad_from {
                    return reply.error(Errno::EIO);
                }
                (len, 0)
            }
            Behaviour::ShortRead { real, .. } => (real, 0),
            Behaviour::Growing { .. } => (self.file_attr(ino.0, f, false).size, 0),
            Behaviour::RewrittenAt { len, switch_at } => {
                if want_end > switch_at {
                    f.counter.store(1, Ordering::SeqCst);
                }
                (len, f.counter.load(Ordering::SeqCst))
            }
        };
        let to = want_end.min(end);
        let from = offset.min(to);
        reply.data(&bytes(ino.0, generation, from, to));
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino.0 != 1 {
            return reply.error(Errno::ENOTDIR);
        }
        let mut entries: Vec<(u64, FileType, &str)> = vec![
            (1, FileType::Directory, "."),
            (1, FileType::Directory, ".."),
        ];
        for (i, f) in self.files.iter().enumerate() {
            entries.push((inode_of(i), FileType::RegularFile, &f.served.name));
        }
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// The faulty filesystem mounted on a folder; dropping it unmounts it,
/// even when the test panicked.
pub struct FaultyMount {
    session: Option<BackgroundSession>,
    /// Where it is mounted.
    pub path: PathBuf,
}

impl FaultyMount {
    /// Mounts `files` on `path` (created if missing). The mtimes start at
    /// `started` (whole seconds, so that a newer version is always later).
    pub fn start(path: &Path, files: &[Served]) -> Self {
        std::fs::create_dir_all(path).expect("create mountpoint");
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let fs = FaultyFs {
            files: files
                .iter()
                .map(|s| {
                    Arc::new(FileState {
                        served: s.clone(),
                        counter: AtomicU64::new(0),
                    })
                })
                .collect(),
            started: UNIX_EPOCH + Duration::from_secs(secs - secs % 10),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::RO,
            MountOption::FSName("coffre-faulty".into()),
            MountOption::NoDev,
            MountOption::NoSuid,
        ];
        config.n_threads = Some(2);
        let session = fuser::spawn_mount(fs, path, &config).expect("mount the faulty filesystem");
        let m = FaultyMount {
            session: Some(session),
            path: path.to_path_buf(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !is_mounted(path) {
            assert!(
                std::time::Instant::now() < deadline,
                "faulty filesystem did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }
}

impl Drop for FaultyMount {
    fn drop(&mut self) {
        if is_mounted(&self.path) {
            let _ = std::process::Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.path)
                .stderr(std::process::Stdio::null())
                .status();
        }
        if is_mounted(&self.path) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.path)
                .status();
        }
        // The session's threads end once the kernel has let go of it.
        drop(self.session.take());
    }
}
