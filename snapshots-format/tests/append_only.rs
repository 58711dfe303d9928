//! Under an append-only key (S3 Object Lock, or a bucket policy without
//! delete), which ransomware on the backup host cannot use to destroy the
//! backups: `snapshot` and `copy` work, since Coffre writes every object
//! once and never overwrites one; `forget` is refused with a clear error
//! and loses nothing.

mod common;
use common::{pseudo_random, CHEAP};

use std::sync::Arc;

use snapshots_format::backend::append_only::AppendOnlyBackend;
use snapshots_format::backend::{Backend, MemBackend};
use snapshots_format::error::{Error, StoreProblem};
use snapshots_format::ops::backup::{take_snapshot, SnapshotOptions};
use snapshots_format::ops::copy::{self, CopyOptions};
use snapshots_format::progress::NoProgress;
use snapshots_format::repo::lock::{self, LockKind};
use snapshots_format::Repository;

fn guarded(mem: &Arc<MemBackend>) -> Arc<dyn Backend> {
    Arc::new(AppendOnlyBackend::new(mem.clone()))
}

#[test]
fn snapshot_and_copy_work_under_an_append_only_key_and_forget_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("ordonnances")).unwrap();
    for i in 0..20u64 {
        std::fs::write(
            src.join(format!("ordonnances/scan{i}.pdf")),
            pseudo_random(20_000 + i as usize * 1000, i),
        )
        .unwrap();
    }
    std::fs::write(src.join("officine.db"), pseudo_random(3 << 20, 99)).unwrap();

    let source_mem = Arc::new(MemBackend::new());
    drop(
        Repository::init_with(guarded(&source_mem), &dir.path().join("c1"), b"pw", CHEAP).unwrap(),
    );
    let source =
        Repository::open_with(guarded(&source_mem), &dir.path().join("c1"), b"pw").unwrap();
    let opts = SnapshotOptions::new(src.clone());
    for day in 0..3u64 {
        std::fs::write(src.join("officine.db"), pseudo_random(3 << 20, 99 + day)).unwrap();
        let lock = lock::acquire(
            &source,
            LockKind::Shared,
            "snapshot",
            std::time::Duration::ZERO,
            &|_| {},
        )
        .expect("a lock is an object like any other");
        take_snapshot(&source, &opts, &NoProgress).expect("snapshot under an append-only key");
        drop(lock);
    }
    let (snaps, errors) = source.snapshots().unwrap();
    assert!(errors.is_empty());
    assert_eq!(snaps.len(), 3);

    // The off-site copy, also under an append-only key.
    let target_mem = Arc::new(MemBackend::new());
    let target = copy::init_target(
        &source,
        guarded(&target_mem),
        &dir.path().join("c2"),
        b"pw2",
        CHEAP,
    )
    .unwrap();
    let ids: Vec<_> = snaps.iter().map(|(id, _)| *id).collect();
    let report = copy::copy(
        &source,
        &target,
        &CopyOptions {
            snapshots: ids.clone(),
            dry_run: false,
        },
        &NoProgress,
    )
    .expect("copy under an append-only key");
    assert_eq!(report.copied.len(), 3);
    let again = copy::copy(
        &source,
        &target,
        &CopyOptions {
            snapshots: ids,
            dry_run: false,
        },
        &NoProgress,
    )
    .unwrap();
    assert!(again.copied.is_empty());

    // Forget needs a full key: refused plainly, nothing lost.
    let e = source.delete_snapshot(&snaps[0].0).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Store {
                problem: StoreProblem::Denied { .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(source.snapshots().unwrap().0.len(), 3);
}
