//! Restore tests (`coffre verify`): a sample of a snapshot's files is
//! restored by the real restore into a scratch folder, then read back from
//! that folder and compared, chunk by chunk, with the ids recorded when
//! they were backed up (keyed BLAKE3 of each chunk's bytes), holes
//! included, and with the recorded size. It proves what an emergency
//! restore would give, down to the bytes on the disk, without restoring
//! everything.
//!
//! The sample is chosen by a keyed hash of each path and of the run's
//! seed: the share asked, spread over the whole snapshot, plus every file
//! under the paths that must always be tested (the database).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::blob::{blob_id, BlobKind};
use crate::format::content::{Content, Extent};
use crate::format::delta;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{NodeKind, Payload, MAX_DEPTH};
use crate::id::BlobId;
use crate::ops::paths::{components, join};
use crate::ops::restore::{restore, RestoreOptions};
use crate::progress::Progress;
use crate::repo::chunk_list_reader::ChunkListReader;
use crate::repo::{ListingReader, Repository};

/// A command run on each restored file of `include` (e.g. the database's
/// own consistency check); `Err` holds what it said.
pub type FileCheck<'a> = &'a (dyn Fn(&Path) -> std::result::Result<(), String> + Sync);

/// What to test.
#[derive(Clone)]
pub struct VerifyOptions<'a> {
    /// Share of the files to test, 0.0 to 1.0.
    pub share: f64,
    /// Paths (files or folders) whose files are always tested.
    pub include: Vec<Vec<u8>>,
    /// An empty or absent folder to restore into; removed afterwards.
    pub scratch: PathBuf,
    /// Changes the sample from run to run.
    pub seed: u64,
    /// Run on each restored file of `include`, after the comparison.
    pub check: Option<FileCheck<'a>>,
}

/// One file that did not come back as it was saved.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    /// Its path in the snapshot (lossy UTF-8).
    pub path: String,
    /// What differs.
    pub reason: String,
}

/// What a restore test found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct VerifyReport {
    /// Regular files in the snapshot.
    pub files_in_snapshot: u64,
    /// Files restored and compared.
    pub files_tested: u64,
    /// Their bytes.
    pub bytes_tested: u64,
    /// The files tested (lossy UTF-8), for the journal.
    pub tested: Vec<String>,
    /// Files that failed, with why.
    pub failures: Vec<Failure>,
}

impl VerifyReport {
    /// True when every file tested came back whole.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Restores a sample of `snap` into `opts.scratch` and compares it; the
/// scratch folder is removed afterwards, whatever happened.
///
/// # Errors
/// An unreadable snapshot tree, a path of `include` not in the snapshot, a
/// scratch folder that is not empty. Files that fail are in the report.
pub fn verify(
    repo: &Repository,
    snap: &Snapshot,
    opts: &VerifyOptions<'_>,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    if opts.scratch.exists()
        && std::fs::read_dir(&opts.scratch)
            .map_err(|e| Error::io(&opts.scratch, e))?
            .next()
            .is_some()
    {
        return Err(Error::Refused(format!(
            "the scratch folder {} is not empty; give an empty or new one",
            opts.scratch.display()
        )));
    }
    for p in &opts.include {
        repo.find_path(&snap.tree, p)?;
    }
    // Only the files chosen are kept: a snapshot may hold 400,000.
    let keep =
        |path: &[u8]| opts.include.iter().any(|inc| under(path, inc)) || sampled(repo, opts, path);
    let mut walk = Walk {
        repo,
        keep: &keep,
        chosen: Vec::new(),
        files: 0,
    };
    walk.tree(&snap.tree, &[], 0)?;
    let Walk { chosen, files, .. } = walk;
    let mut report = VerifyReport {
        files_in_snapshot: files,
        ..VerifyReport::default()
    };
    progress.set_total(
        chosen.len() as u64,
        chosen.iter().map(|(_, size, _)| size).sum(),
    );
    // A failed file is in the report; the loop goes on to the next.
    for (path, size, content) in &chosen {
        let shown = String::from_utf8_lossy(path).into_owned();
        let restored = restore(
            repo,
            snap,
            &RestoreOptions {
                target: opts.scratch.clone(),
                path: Some(path.clone()),
                overwrite: true,
            },
            &crate::progress::NoProgress,
        );
        let outcome = match restored {
            Ok(summary) if !summary.errors.is_empty() => Err(summary.errors.join("; ")),
            Ok(_) => {
                let local = local_path(&opts.scratch, path);
                compare(repo, &local, *size, content).and_then(|()| match opts.check {
                    Some(check) if opts.include.iter().any(|inc| under(path, inc)) => check(&local),
                    _ => Ok(()),
                })
            }
            Err(e) => Err(e.to_string()),
        };
        report.files_tested += 1;
        report.bytes_tested += size;
        report.tested.push(shown.clone());
        if let Err(reason) = outcome {
            report.failures.push(Failure {
                path: shown,
                reason,
            });
        }
        // One file at a time on the disk: a test of a large snapshot
        // never needs its size in free space.
        let _ = std::fs::remove_file(local_path(&opts.scratch, path));
        progress.advance(1, *size);
    }
    let _ = std::fs::remove_dir_all(&opts.scratch);
    Ok(report)
}

/// Whether `path` is `inc` or below it.
fn under(path: &[u8], inc: &[u8]) -> bool {
    let inc = components(inc);
    let path = components(path);
    path.len() >= inc.len() && path[..inc.len()] == inc[..]
}

/// Whether the sample of this run takes `path`.
fn sampled(repo: &Repository, opts: &VerifyOptions<'_>, path: &[u8]) -> bool {
    if opts.share >= 1.0 {
        return true;
    }
    let mut input = opts.seed.to_le_bytes().to_vec();
    input.extend_from_slice(path);
    let h = blob_id(repo.keys(), BlobKind::Data, &input);
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.as_bytes()[..8]);
    (u64::from_le_bytes(first) as f64) < opts.share * u64::MAX as f64
}

fn local_path(root: &Path, path: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut p = root.to_path_buf();
    for c in components(path) {
        p.push(std::ffi::OsStr::from_bytes(c));
    }
    p
}

/// The walk choosing the files to test.
struct Walk<'a> {
    repo: &'a Repository,
    keep: &'a dyn Fn(&[u8]) -> bool,
    /// The files chosen: (path, size, content).
    chosen: Vec<(Vec<u8>, u64, Content)>,
    /// Every regular file seen.
    files: u64,
}

impl Walk<'_> {
    /// The files below `tree`, its listing read a piece at a time.
    fn tree(&mut self, tree: &BlobId, prefix: &[u8], depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::corrupt("tree", tree.short(), "nested too deep"));
        }
        for node in ListingReader::open(self.repo, tree)? {
            let node = node?;
            let path = join(prefix, &node.name);
            match (node.kind, node.payload) {
                (NodeKind::File, Payload::File(content)) => {
                    self.files += 1;
                    if (self.keep)(&path) {
                        self.chosen.push((path, node.size, content));
                    }
                }
                (NodeKind::Dir, Payload::Dir(sub)) => self.tree(&sub, &path, depth + 1)?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Reads the restored file back and compares it with what was saved.
fn compare(
    repo: &Repository,
    file: &Path,
    size: u64,
    content: &Content,
) -> std::result::Result<(), String> {
    let mut f = std::fs::File::open(file).map_err(|e| format!("not restored: {e}"))?;
    let on_disk = f.metadata().map_err(|e| e.to_string())?.len();
    if on_disk != size {
        return Err(format!("{on_disk} bytes restored, {size} saved"));
    }
    let mut offset = 0u64;
    let mut buf = Vec::new();
    // The list a window at a time: a database lists 800,000 chunks.
    for window in ChunkListReader::new(repo, content) {
        let window = window.map_err(|e| e.to_string())?;
        for extent in &window {
            match extent {
                Extent::Chunk { id, len, base } => {
                    buf.resize(*len as usize, 0);
                    f.read_exact(&mut buf)
                        .map_err(|e| format!("cannot read back at byte {offset}: {e}"))?;
                    if delta::chunk_id(repo.keys(), base.as_ref(), &buf) != *id {
                        return Err(format!(
                            "bytes {offset}..{} differ from what was saved",
                            offset + extent.len()
                        ));
                    }
                }
                Extent::Hole { len } => {
                    // A hole may be gigabytes: read it by the mebibyte.
                    let mut left = *len;
                    while left > 0 {
                        let n = left.min(1 << 20) as usize;
                        buf.resize(n, 0);
                        f.read_exact(&mut buf)
                            .map_err(|e| format!("cannot read back at byte {offset}: {e}"))?;
                        if buf.iter().any(|&b| b != 0) {
                            return Err(format!("the hole at byte {offset} is not zeros"));
                        }
                        left -= n as u64;
                    }
                }
            }
            offset += extent.len();
        }
    }
    if offset != size {
        return Err(format!("the chunk list covers {offset} bytes of {size}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_an_included_folder() {
        assert!(under(b"db/officine.fdb", b"db"));
        assert!(under(b"db/officine.fdb", b"/db/"));
        assert!(under(b"db", b"db"));
        assert!(!under(b"dbx/a", b"db"));
        assert!(!under(b"db", b"db/a"));
    }
}
