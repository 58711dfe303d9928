//! The compression dictionary's life in a repository: trained by the first
//! snapshot that has enough small files, found by a reader that opened the
//! repository before it existed, and never replaced by a second one.

mod common;
use common::CHEAP;

use snapshots_format::ops::backup::{take_snapshot, SnapshotOptions};
use snapshots_format::ops::restore::{restore, RestoreOptions};
use snapshots_format::progress::NoProgress;
use snapshots_format::Repository;

fn receipts(dir: &std::path::Path, n: usize, tag: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let line = format!("FSE|{i:06}|{tag}|CPAM|DOLIPRANE 1000|{}\n", i * 7);
        std::fs::write(dir.join(format!("{i}.txt")), line.repeat(30)).unwrap();
    }
}

fn snapshot(
    repo: &Repository,
    src: &std::path::Path,
) -> snapshots_format::format::snapshot::Snapshot {
    let opts = SnapshotOptions {
        label: Some("t".into()),
        tags: vec![],
        time: None,
        ..SnapshotOptions::new(src.to_path_buf())
    };
    take_snapshot(repo, &opts, &NoProgress).unwrap().1
}

#[test]
fn a_reader_opened_before_the_dictionary_finds_it_and_it_is_never_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("repo");
    drop(Repository::init(&path, b"passphrase", CHEAP).unwrap());
    // Like a mount left running: opened while there is no dictionary.
    let reader = Repository::open(&path, b"passphrase").unwrap();
    assert!(reader.dictionary().unwrap().is_none());
    assert_eq!(
        reader.header().version,
        snapshots_format::format::header::FORMAT_VERSION,
        "new repositories have the current format"
    );

    let writer = Repository::open(&path, b"passphrase").unwrap();
    let few = tmp.path().join("few");
    receipts(&few, 5, "a");
    snapshot(&writer, &few);
    assert!(
        writer.dictionary().unwrap().is_none(),
        "too few samples to train"
    );

    let many = tmp.path().join("many");
    receipts(&many, 150, "b");
    let snap = snapshot(&writer, &many);
    let dict = writer
        .dictionary()
        .unwrap()
        .expect("trained by this snapshot");
    let file = std::fs::read(path.join("dictionary")).unwrap();

    // The early reader restores blobs compressed with it.
    let out = tmp.path().join("out");
    let summary = restore(
        &reader,
        &snap,
        &RestoreOptions {
            target: out.clone(),
            path: None,
            overwrite: false,
        },
        &NoProgress,
    )
    .unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(
        std::fs::read(out.join("42.txt")).unwrap(),
        std::fs::read(many.join("42.txt")).unwrap()
    );

    // A later snapshot of other data keeps the same dictionary, byte for byte.
    let other = tmp.path().join("other");
    receipts(&other, 150, "c");
    snapshot(&writer, &other);
    let again = Repository::open(&path, b"passphrase").unwrap();
    assert_eq!(again.dictionary().unwrap().unwrap().id(), dict.id());
    assert_eq!(std::fs::read(path.join("dictionary")).unwrap(), file);
    // Offering another one changes nothing either: the answer is the
    // repository's own.
    let samples: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("another kind of data {i} ").repeat(40).into_bytes())
        .collect();
    let other_raw = snapshots_format::format::dictionary::train(&samples).unwrap();
    let kept = again.add_dictionary(other_raw).unwrap().unwrap();
    assert_eq!(kept.id(), dict.id());
    assert_eq!(std::fs::read(path.join("dictionary")).unwrap(), file);
}
