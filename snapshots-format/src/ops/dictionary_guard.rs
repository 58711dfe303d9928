//! Whether a snapshot may run with the repository's compression dictionary
//! as it finds it (FORMAT.md §17).
//!
//! Every small chunk is compressed with the one dictionary the first
//! snapshot trained, and deduplication makes each new snapshot point at the
//! old chunks. A dictionary that went missing (deleted on a drive that
//! leaves the building) or was damaged must therefore stop the snapshot:
//! training a new one, or going on without, would write a snapshot that
//! looks saved and cannot be read back.

use crate::error::{Error, Result};
use crate::format::blob::{BlobKind, NEEDS_MISSING_DICTIONARY};
use crate::format::content::{Content, Extent};
use crate::format::dictionary::DICT_BLOB_MAX;
use crate::format::tree::{Payload, Tree};
use crate::id::BlobId;
use crate::repo::Repository;

/// Small chunks of the parent read, in a large repository, to learn
/// whether they needed a dictionary.
const PROBE_CHUNKS: usize = 16;
/// Folders of the parent opened at most while looking for them.
const PROBE_TREES: usize = 64;

/// Repositories of at most this many blobs are small enough for every
/// small chunk to be read when the dictionary is absent: the answer is then
/// certain, and a repository whose first snapshot was a test on a few files
/// still gets its dictionary later.
const READ_ALL_UP_TO: u64 = 2048;

/// Whether this snapshot may train the repository's dictionary: only when
/// there is none and no chunk stored so far was compressed with one.
///
/// # Errors
/// [`Error::DictionaryUnusable`] when the dictionary is damaged, or missing
/// while stored chunks need it; storage errors.
pub(crate) fn may_train(repo: &Repository, parent: Option<&Tree>) -> Result<bool> {
    may_train_reading_all_up_to(repo, parent, READ_ALL_UP_TO)
}

fn may_train_reading_all_up_to(
    repo: &Repository,
    parent: Option<&Tree>,
    read_all_up_to: u64,
) -> Result<bool> {
    match repo.dictionary() {
        Ok(Some(_)) => return Ok(false),
        Ok(None) => {}
        // Damage stops the snapshot; a drive that failed to answer is the
        // storage error it is (a passing one is retried by the caller).
        Err(e @ (Error::Corrupt { .. } | Error::UnsupportedVersion { .. })) => {
            return Err(Error::DictionaryUnusable {
                reason: format!("cannot be used ({e})"),
            })
        }
        Err(e) => return Err(e),
    }
    let missing = || {
        Error::DictionaryUnusable {
        reason: "is missing (files `dictionary` and `dictionary.copy`), and files already saved were compressed with it"
            .into(),
    }
    };
    if repo.index().blob_count()? <= read_all_up_to {
        let mut small = Vec::new();
        for (pack, _) in repo.index().packs()? {
            for entry in repo.index().entries_of_pack(repo.keys(), &pack)? {
                if entry.kind == BlobKind::Data && entry.length as usize <= DICT_BLOB_MAX + 64 {
                    small.push(entry.id);
                }
            }
        }
        return match judge(repo, &small)? {
            Chunks::NeedDictionary => Err(missing()),
            Chunks::NoneNeedsOne => Ok(true),
            // A damaged chunk may have needed one: no new dictionary.
            Chunks::Unsure => Ok(false),
        };
    }
    if let Some(tree) = parent {
        if judge(repo, &parent_small_chunks(repo, tree))? == Chunks::NeedDictionary {
            return Err(missing());
        }
    }
    // Too many chunks to read them all, and none read needed a dictionary:
    // the repository most likely never had one, and stays without rather
    // than risk a second one.
    Ok(false)
}

/// What reading some small chunks without a dictionary told.
#[derive(Debug, PartialEq, Eq)]
enum Chunks {
    /// One of them was compressed with a dictionary.
    NeedDictionary,
    /// Every one was read without one.
    NoneNeedsOne,
    /// None needed one, but some were damaged and could not tell.
    Unsure,
}

/// Reads `chunks` without a dictionary.
///
/// # Errors
/// Storage errors (a drive that failed to answer): they decide nothing.
fn judge(repo: &Repository, chunks: &[BlobId]) -> Result<Chunks> {
    let mut unsure = false;
    for id in chunks {
        match repo.load_blob(BlobKind::Data, id) {
            Ok(_) => {}
            Err(Error::Corrupt { reason, .. }) if reason == NEEDS_MISSING_DICTIONARY => {
                return Ok(Chunks::NeedDictionary)
            }
            // Damage is for `check` to report.
            Err(Error::Corrupt { .. } | Error::BlobNotFound(_)) => unsure = true,
            Err(e) => return Err(e),
        }
    }
    Ok(if unsure {
        Chunks::Unsure
    } else {
        Chunks::NoneNeedsOne
    })
}

/// A few small chunks of the parent snapshot: small files come many to a
/// folder, and each chunk costs one pack read.
fn parent_small_chunks(repo: &Repository, root: &Tree) -> Vec<BlobId> {
    let mut chunks = Vec::new();
    let mut folders = vec![root.clone()];
    let mut opened = 0;
    while let Some(tree) = folders.pop() {
        for node in &tree.nodes {
            match &node.payload {
                Payload::File(Content::Inline(extents)) => {
                    chunks.extend(extents.iter().filter_map(|e| match e {
                        Extent::Chunk { id, len, .. } if *len as usize <= DICT_BLOB_MAX => {
                            Some(*id)
                        }
                        _ => None,
                    }));
                }
                Payload::Dir(id) if opened < PROBE_TREES => {
                    opened += 1;
                    // A damaged folder is for `check`; the probe looks elsewhere.
                    if let Ok(sub) = repo.load_tree(id) {
                        folders.push(sub);
                    }
                }
                _ => {}
            }
        }
        if chunks.len() >= PROBE_CHUNKS {
            break;
        }
    }
    chunks.truncate(PROBE_CHUNKS);
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, FileKind, MemBackend, ObjectName};
    use crate::format::keyfile::KdfParams;
    use crate::ops::backup::{take_snapshot, SnapshotOptions};
    use crate::progress::NoProgress;
    use std::path::Path;
    use std::sync::Arc;

    const PASS: &[u8] = b"officine passphrase";

    /// A repository in memory and the cache folder it uses.
    fn mem_repo(tmp: &Path) -> (Arc<MemBackend>, Repository) {
        let mem = Arc::new(MemBackend::new());
        let repo = Repository::init_with(mem.clone(), &tmp.join("cache"), PASS, KdfParams::CHEAP)
            .expect("init");
        (mem, repo)
    }

    /// The repository opened again, as the next command would.
    fn reopen(mem: &Arc<MemBackend>, tmp: &Path) -> Repository {
        Repository::open_with(mem.clone(), &tmp.join("cache"), PASS).expect("open")
    }

    /// Small files alike enough for a dictionary to be trained on them.
    fn pharmacy_notes(dir: &std::path::Path, day: u32) {
        for i in 0..400 {
            let body = format!(
                "ORDONNANCE {i}\nPatient: Mme Durand {i}\nMedecin: Dr Martin\nDate: 2026-11-{day:02}\n\
                 Doliprane 1000 mg, 1 comprime 3 fois par jour pendant 5 jours\nRenouvelable: non\n{}",
                "Posologie a respecter. ".repeat(i % 7 + 1)
            );
            std::fs::write(dir.join(format!("ord-{i}.txt")), body).expect("write");
        }
    }

    #[test]
    fn a_lost_dictionary_stops_the_snapshot_and_is_never_replaced() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).expect("mkdir");
        pharmacy_notes(&src, 23);
        let (backend, repo) = mem_repo(tmp.path());
        take_snapshot(&repo, &SnapshotOptions::new(&src), &NoProgress).expect("first");
        assert!(
            repo.dictionary().expect("read").is_some(),
            "the first snapshot trains one"
        );

        // One copy lost or damaged: the other serves, check says so, and the
        // next snapshot writes the same bytes back.
        let dict_id = repo.dictionary().expect("read").map(|d| d.id());
        let saved = backend
            .read(FileKind::Dictionary, &ObjectName::single())
            .expect("read")
            .expect("present");
        assert_eq!(
            backend
                .read(FileKind::DictionaryCopy, &ObjectName::single())
                .expect("read"),
            Some(saved.clone()),
            "the copy holds the same bytes"
        );
        for (lost, damaged) in [
            (FileKind::Dictionary, false),
            (FileKind::DictionaryCopy, true),
        ] {
            if damaged {
                let mut bad = saved.clone();
                bad[40] ^= 4;
                backend
                    .write(lost, &ObjectName::single(), &bad, true)
                    .expect("damage");
            } else {
                backend.delete(lost, &ObjectName::single()).expect("remove");
            }
            let repo = reopen(&backend, tmp.path());
            assert_eq!(repo.dictionary().expect("read").map(|d| d.id()), dict_id);
            let report = crate::ops::check::check(
                &repo,
                crate::ops::check::CheckOptions::default(),
                &NoProgress,
            )
            .expect("check");
            assert!(report.errors.is_empty(), "{:?}", report.errors);
            assert!(
                report
                    .warnings
                    .iter()
                    .any(|w| w.contains("other copy serves")),
                "{:?}",
                report.warnings
            );
            take_snapshot(&repo, &SnapshotOptions::new(&src), &NoProgress).expect("survived");
            assert_eq!(
                backend.read(lost, &ObjectName::single()).expect("read"),
                Some(saved.clone()),
                "{lost:?} mended"
            );
        }

        // Both copies go missing on the drive: the next snapshot refuses.
        for kind in [FileKind::Dictionary, FileKind::DictionaryCopy] {
            backend.delete(kind, &ObjectName::single()).expect("remove");
        }
        let repo = reopen(&backend, tmp.path());
        pharmacy_notes(&src, 24);
        let err = take_snapshot(&repo, &SnapshotOptions::new(&src), &NoProgress).unwrap_err();
        assert!(matches!(err, Error::DictionaryUnusable { .. }), "{err}");
        assert!(err.to_string().contains("missing"), "{err}");
        assert!(repo.dictionary().expect("read").is_none(), "not replaced");
        let report = crate::ops::check::check(
            &repo,
            crate::ops::check::CheckOptions::default(),
            &NoProgress,
        )
        .expect("check");
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.contains("dictionary is missing")),
            "{:?}",
            report.errors
        );
        // A large repository is judged by its last snapshot's small chunks.
        let parent = repo.snapshots().expect("list").0[0].1.tree;
        let parent = repo.load_tree(&parent).expect("tree");
        let err = may_train_reading_all_up_to(&repo, Some(&parent), 0).unwrap_err();
        assert!(matches!(err, Error::DictionaryUnusable { .. }), "{err}");

        // Damaged (and the copy missing): refused too.
        let mut bad = saved.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        backend
            .write(FileKind::Dictionary, &ObjectName::single(), &bad, false)
            .expect("write");
        let repo = reopen(&backend, tmp.path());
        let err = take_snapshot(&repo, &SnapshotOptions::new(&src), &NoProgress).unwrap_err();
        assert!(err.to_string().contains("cannot be used"), "{err}");

        // Put back, everything goes on.
        backend
            .delete(FileKind::Dictionary, &ObjectName::single())
            .expect("remove");
        backend
            .write(FileKind::Dictionary, &ObjectName::single(), &saved, false)
            .expect("write");
        let repo = reopen(&backend, tmp.path());
        take_snapshot(&repo, &SnapshotOptions::new(&src), &NoProgress).expect("after repair");
    }

    #[test]
    fn a_small_repository_without_one_may_still_train_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).expect("mkdir");
        std::fs::write(src.join("one.txt"), b"too small to train on").expect("write");
        let (backend, repo) = mem_repo(tmp.path());
        take_snapshot(&repo, &SnapshotOptions::new(&src), &NoProgress).expect("first");
        assert!(repo.dictionary().expect("read").is_none());
        pharmacy_notes(&src, 24);
        let repo = reopen(&backend, tmp.path());
        take_snapshot(&repo, &SnapshotOptions::new(&src), &NoProgress).expect("second");
        assert!(
            repo.dictionary().expect("read").is_some(),
            "a first snapshot too small to train on does not forbid a later one"
        );
    }
}
