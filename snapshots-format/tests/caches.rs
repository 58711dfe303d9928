//! Two machines (two local caches) on one repository: a cache filled before
//! a prune elsewhere must not make a snapshot believe that pruned data is
//! still stored (it would then reference nothing).

mod common;
use common::{pseudo_random, CHEAP};

use std::sync::Arc;

use snapshots_format::backend::{Backend, MemBackend};
use snapshots_format::ops::backup::{take_snapshot, SnapshotOptions};
use snapshots_format::ops::check::{check, CheckOptions};
use snapshots_format::ops::prune::{prune, PruneOptions};
use snapshots_format::ops::restore::{restore, RestoreOptions};
use snapshots_format::progress::NoProgress;
use snapshots_format::Repository;

fn options(src: &std::path::Path) -> SnapshotOptions {
    SnapshotOptions {
        label: Some("caches".into()),
        tags: vec![],
        time: None,
        ..SnapshotOptions::new(src.to_path_buf())
    }
}

#[test]
fn a_cache_filled_before_a_prune_elsewhere_does_not_fool_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let (cache_a, cache_b) = (dir.path().join("a"), dir.path().join("b"));
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let unique = pseudo_random(200_000, 7);
    std::fs::write(src.join("keep.bin"), pseudo_random(50_000, 8)).unwrap();

    // Machine A stores a file, then a snapshot without it.
    let a = Repository::init_with(backend.clone(), &cache_a, b"pw", CHEAP).unwrap();
    std::fs::write(src.join("unique.bin"), &unique).unwrap();
    let (first, _) = take_snapshot(&a, &options(&src), &NoProgress).unwrap();
    std::fs::remove_file(src.join("unique.bin")).unwrap();
    take_snapshot(&a, &options(&src), &NoProgress).unwrap();

    // Machine B forgets the first snapshot and prunes: the file's data goes.
    let b = Repository::open_with(backend.clone(), &cache_b, b"pw").unwrap();
    b.delete_snapshot(&first).unwrap();
    let report = prune(
        &b,
        PruneOptions {
            dry_run: false,
            max_unused: 0.0,
        },
        &NoProgress,
        &|_| {},
    )
    .unwrap();
    assert!(report.blobs_removed > 0, "{report:?}");

    // Machine A, still holding its old cache, backs the file up again: it
    // must store it again, not point at the pruned copy.
    std::fs::write(src.join("unique.bin"), &unique).unwrap();
    let (again, _) = take_snapshot(&a, &options(&src), &NoProgress).unwrap();
    let report = check(
        &a,
        CheckOptions {
            read_data: true,
            subset: None,
        },
        &NoProgress,
    )
    .unwrap();
    assert!(
        report.is_ok(),
        "{:?} {:?}",
        report.errors,
        report.damaged_files
    );
    let fresh = Repository::open_with(backend, &dir.path().join("c"), b"pw").unwrap();
    let snap = fresh.load_snapshot(&again).unwrap();
    let target = dir.path().join("out");
    let summary = restore(
        &fresh,
        &snap,
        &RestoreOptions {
            target: target.clone(),
            path: None,
            overwrite: false,
        },
        &NoProgress,
    )
    .unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(std::fs::read(target.join("unique.bin")).unwrap(), unique);
}
