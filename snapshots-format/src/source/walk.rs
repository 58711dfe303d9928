//! Finding the source's files outside the snapshot walk itself: the
//! progress estimate, the dictionary samples, and opening a source file
//! safely.

use std::fs::{self, File, Metadata, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Counts the regular files and their bytes under `source`, for a progress
/// total; unreadable parts are silently left out.
pub fn estimate(source: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for_each_file(source, usize::MAX, |_, meta| {
        files += 1;
        bytes += meta.len();
    });
    (files, bytes)
}

/// Calls `f` for each regular file under `source` (symlinks not followed),
/// visiting at most `limit` entries; unreadable parts are passed over.
pub fn for_each_file(source: &Path, limit: usize, mut f: impl FnMut(PathBuf, &Metadata)) {
    let mut stack = vec![source.to_path_buf()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > limit {
                return;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                f(entry.path(), &meta);
            }
        }
    }
}

/// Opens a source file for reading without following a symlink swapped in,
/// without blocking on a fifo swapped in, and without touching its atime
/// when allowed.
pub fn open_source(path: &Path) -> std::io::Result<File> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    match OpenOptions::new()
        .read(true)
        .custom_flags(flags | libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            OpenOptions::new().read(true).custom_flags(flags).open(path)
        }
        other => other,
    }
}
