//! The read-only FUSE view of a Coffre repository: every snapshot as a dated
//! folder (`2026-11-24`, `2026-11-24_12h00`, `latest`), usable as soon as it
//! is mounted whatever the repository's size (trees are loaded as folders
//! are opened, the index stays on disk), shared to Windows through Samba.
//!
//! This crate holds the FUSE edge only; it reads the repository through the
//! library's browsing API (`snapshots_format::repo::browse`).

pub mod filesystem;
pub mod inodes;
pub mod layout;
pub mod names;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{BackgroundSession, Config, MountOption};
use snapshots_format::repo::browse::Browser;
use snapshots_format::ReadOnlyRepository;

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Let other users (Samba's) see the mount.
    pub allow_other: bool,
    /// Bytes of decoded chunks to keep in memory.
    pub cache_bytes: usize,
    /// Show names that are not UTF-8 decoded as Windows-1252 (for Samba).
    pub windows_names: bool,
    /// Most inodes the mount keeps for the kernel ([`DEFAULT_MAX_INODES`]),
    /// twice that while files are being read.
    pub max_inodes: usize,
}

/// The inodes a mount keeps for the kernel unless told otherwise: about
/// 0.35 KiB each (its slot in the table: where its metadata is, its key,
/// its name), so about 35 MiB.
pub const DEFAULT_MAX_INODES: usize = 100_000;

/// How often the mount looks at how many inodes it holds.
const INODE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Why a mount could not start.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mountpoint does not exist.
    #[error("mountpoint {0} does not exist (create it with mkdir)")]
    Missing(PathBuf),
    /// The mountpoint is not a directory.
    #[error("mountpoint {0} is not a folder")]
    NotADirectory(PathBuf),
    /// The mountpoint holds files.
    #[error("mountpoint {0} is not empty (choose an empty folder)")]
    NotEmpty(PathBuf),
    /// Something is already mounted there.
    #[error("something is already mounted on {0} (unmount it first: coffre umount {0})")]
    AlreadyMounted(PathBuf),
    /// No FUSE support.
    #[error("/dev/fuse is missing: install fuse3 (apt-get install fuse3) and load the fuse module (modprobe fuse)")]
    NoFuse,
    /// The mount itself failed.
    #[error("mounting on {path} failed: {source}")]
    Mount {
        /// The mountpoint.
        path: PathBuf,
        /// What the kernel or fusermount3 said.
        source: std::io::Error,
    },
}

/// Whether `path` is a mountpoint (per /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(path).or_else(|_| std::path::absolute(path)) else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .map(unescape_mountinfo)
            .is_some_and(|m| Path::new(&m) == canon)
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks that `path` can be mounted on.
///
/// # Errors
/// A [`MountError`] saying what is wrong and what to do.
pub fn check_mountpoint(path: &Path) -> Result<(), MountError> {
    if is_mounted(path) {
        return Err(MountError::AlreadyMounted(path.to_path_buf()));
    }
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => MountError::Missing(path.to_path_buf()),
        // ENOTCONN: a stale FUSE mount left by a crash.
        _ if e.raw_os_error() == Some(libc::ENOTCONN) => {
            MountError::AlreadyMounted(path.to_path_buf())
        }
        _ => MountError::Mount {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    if !meta.is_dir() {
        return Err(MountError::NotADirectory(path.to_path_buf()));
    }
    let mut entries = std::fs::read_dir(path).map_err(|e| MountError::Mount {
        path: path.to_path_buf(),
        source: e,
    })?;
    if entries.next().is_some() {
        return Err(MountError::NotEmpty(path.to_path_buf()));
    }
    if !Path::new("/dev/fuse").exists() {
        return Err(MountError::NoFuse);
    }
    Ok(())
}

/// Mounts `repo` on `mountpoint` and serves it on background threads until
/// the returned session is unmounted or dropped.
///
/// # Errors
/// [`MountError`] for a bad mountpoint or a failed mount.
pub fn mount(
    repo: ReadOnlyRepository,
    mountpoint: &Path,
    opts: &MountOptions,
) -> Result<BackgroundSession, MountError> {
    check_mountpoint(mountpoint)?;
    let browser = Arc::new(Browser::new(repo, opts.cache_bytes));
    // Read-ahead runs on its own threads so a sequential reader keeps both
    // cores busy: one serving the kernel, one decoding what comes next.
    // Each request is the chunks of one read-ahead window.
    let (tx, rx) = crossbeam_channel::bounded(64);
    for _ in 0..2 {
        let rx: crossbeam_channel::Receiver<Vec<snapshots_format::BlobId>> = rx.clone();
        let browser = browser.clone();
        std::thread::spawn(move || {
            for ids in rx {
                // A failure here shows up again, logged, when the reader
                // reaches that chunk.
                let _ = browser.prefetch(&ids);
            }
        });
    }
    let fs = filesystem::CoffreFs::new(browser, tx, opts.windows_names);
    let table = fs.table();
    let reads = fs.reads();
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::FSName("coffre".into()),
        MountOption::Subtype("coffre".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if opts.allow_other {
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(2);
    let session = fuser::spawn_mount(fs, mountpoint, &config).map_err(|e| MountError::Mount {
        path: mountpoint.to_path_buf(),
        source: e,
    })?;
    let notifier = session.notifier();
    let max = opts.max_inodes.max(1);
    std::thread::spawn(move || let_go_of_stale_inodes(table, &reads, &notifier, max));
    Ok(session)
}

/// Keeps the inodes the mount holds under `max`. Every listing hands the
/// kernel an inode per entry (`readdirplus`), and the kernel keeps unused
/// ones until memory runs short: `find` over ten snapshots of 56,000 files
/// held the mount at 394 MiB. Past the limit, the stalest entries are
/// invalidated in the kernel ([`to_let_go`]); the kernel then forgets them
/// (the `forget` that frees them), and a name used again is simply looked
/// up anew. Runs on a thread of its own: an invalidation sent while
/// serving a request of the same folder would wait for itself. Ends with
/// the mount.
fn let_go_of_stale_inodes(
    table: Arc<std::sync::Mutex<inodes::Table>>,
    reads: &std::sync::atomic::AtomicU64,
    notifier: &fuser::Notifier,
    max: usize,
) {
    use std::os::unix::ffi::OsStrExt;
    use std::sync::atomic::Ordering;
    let mut seen = reads.load(Ordering::Relaxed);
    loop {
        std::thread::sleep(INODE_CHECK_EVERY);
        // The filesystem, which holds the other reference, is gone.
        if Arc::strong_count(&table) == 1 {
            return;
        }
        let now = reads.load(Ordering::Relaxed);
        let reading = now != seen;
        seen = now;
        let (held, stale) = {
            let table = table.lock().unwrap_or_else(|p| p.into_inner());
            let held = table.len();
            match to_let_go(held, max, reading) {
                0 => (held, Vec::new()),
                n => (held, table.stalest_entries(n)),
            }
        };
        for (done, (parent, name)) in stale.into_iter().enumerate() {
            // A read that starts meanwhile (a file copied right after a
            // `find`) gets the CPU back as soon as the reading limit holds.
            if done % 1024 == 0
                && reads.load(Ordering::Relaxed) != seen
                && to_let_go(held - done, max, true) == 0
            {
                break;
            }
            match notifier.inval_entry(fuser::INodeNo(parent), std::ffi::OsStr::from_bytes(&name)) {
                // Gone already, or shown under another name (--windows-names).
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                // Unmounted.
                Err(_) => return,
            }
        }
    }
}

/// How many of the `held` inodes to let go: none up to the limit, then
/// down to a quarter of `max` below it, so the next round waits for a
/// while. The limit is `max`, and twice that while files are being read:
/// the kernel's side of letting an inode go costs about 8 µs of CPU
/// (about a hundred thousand are left to let go when a `find` over ten
/// snapshots ends: 0.85 s on one core), and a read started right after the
/// `find` needs both cores.
fn to_let_go(held: usize, max: usize, reading: bool) -> usize {
    let limit = if reading { max.saturating_mul(2) } else { max };
    if held <= limit {
        0
    } else {
        held - (limit - max / 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letting_go_waits_for_the_limit_then_frees_a_quarter_of_max() {
        assert_eq!(to_let_go(100, 100, false), 0);
        assert_eq!(to_let_go(101, 100, false), 26);
        assert_eq!(to_let_go(160, 100, false), 85);
        // Twice the room while reading, and the same quarter freed past it.
        assert_eq!(to_let_go(160, 100, true), 0);
        assert_eq!(to_let_go(200, 100, true), 0);
        assert_eq!(to_let_go(201, 100, true), 26);
        assert_eq!(to_let_go(0, 1, false), 0);
        assert_eq!(to_let_go(2, 1, false), 1);
        assert_eq!(to_let_go(usize::MAX, usize::MAX, true), 0);
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape_mountinfo("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn mountpoint_checks() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            check_mountpoint(&dir.path().join("nope")),
            Err(MountError::Missing(_))
        ));
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        assert!(matches!(
            check_mountpoint(dir.path()),
            Err(MountError::NotEmpty(_))
        ));
        assert!(matches!(
            check_mountpoint(&dir.path().join("f")),
            Err(MountError::NotADirectory(_))
        ));
        assert!(matches!(
            check_mountpoint(Path::new("/proc")),
            Err(MountError::AlreadyMounted(_))
        ));
    }
}
