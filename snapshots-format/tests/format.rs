//! The repository format version in `config` only ever goes up, even when
//! two processes raise it at once or an older writer puts a lower one back.

mod common;
use common::CHEAP;

use snapshots_format::format::header::Header;
use snapshots_format::Repository;

#[test]
fn the_format_version_is_never_lowered() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("repo");
    drop(Repository::init(&path, b"passphrase", CHEAP).unwrap());
    let write_version = |version: u32| {
        let (_, header) = Repository::read_header(&path).unwrap();
        let bytes = Header { version, ..header }.encode();
        std::fs::write(path.join("config"), bytes).unwrap();
    };
    let version = || Repository::read_header(&path).unwrap().1.version;

    // An old repository, opened at format 1 (by a machine that never saw it
    // at format 6: this one would refuse the downgrade)...
    write_version(1);
    let cache = tempfile::tempdir().unwrap();
    let (backend, _) = Repository::read_header(&path).unwrap();
    let repo = Repository::open_with(backend, cache.path(), b"passphrase").unwrap();
    // ...that another process moves to 3 meanwhile: raising it to 2 (a
    // first dictionary) leaves it at 3.
    write_version(3);
    repo.raise_format(2).unwrap();
    assert_eq!(version(), 3);

    // This process needs 3; a writer that read `config` earlier puts 2
    // back: the check before the snapshot record raises it again.
    repo.raise_format(3).unwrap();
    write_version(2);
    repo.confirm_format().unwrap();
    assert_eq!(version(), 3);
    // A newer Coffre took the repository over meanwhile: refused plainly,
    // and `config` left as it is.
    write_version(9);
    assert!(matches!(
        repo.confirm_format(),
        Err(snapshots_format::error::Error::UnsupportedVersion { found: 9, .. })
    ));
    assert_eq!(std::fs::read(path.join("config")).unwrap()[8], 9);
}

/// FORMAT.md §2: the key-check value. A key file that opens with the right
/// passphrase but wraps another master key (planted on the drive, or from
/// another repository with the same id) is passed over; a machine that saw
/// the repository refuses a `config` whose key check was changed or taken
/// away; an older repository gets its key check at its first write.
#[test]
fn a_master_key_that_is_not_the_repositorys_is_refused() {
    use snapshots_format::crypto::MasterKey;
    use snapshots_format::format::header::{FORMAT_VERSION, KEY_CHECK_VERSION};
    use snapshots_format::format::keyfile::KeyFile;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("repo");
    let repo = Repository::init(&path, b"passphrase", CHEAP).unwrap();
    let header = *repo.header();
    assert_eq!(header.version, FORMAT_VERSION);
    assert!(header.key_check.is_some());
    drop(repo);

    // Every key file replaced by one wrapping a foreign key under the same
    // passphrase: refused, naming the key file.
    let foreign = MasterKey::generate();
    let keys = snapshots_format::crypto::Keys::derive(&foreign, header.repo_id);
    let label = snapshots_format::repo::keyring::new_label(
        snapshots_format::format::keyfile::KeyKind::Passphrase,
        "planted",
    );
    let name = "00112233445566ff";
    let planted = KeyFile::create(b"passphrase", CHEAP, &foreign, &keys, name, &label).unwrap();
    let keys_dir = path.join("keys");
    let originals: Vec<_> = std::fs::read_dir(&keys_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let saved: Vec<_> = originals
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    for p in &originals {
        std::fs::remove_file(p).unwrap();
    }
    std::fs::write(keys_dir.join(name), planted.encode()).unwrap();
    let err = Repository::open(&path, b"passphrase")
        .err()
        .expect("a foreign key must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains(name) && msg.contains("not this repository"),
        "{msg}"
    );
    for (p, bytes) in &saved {
        std::fs::write(p, bytes).unwrap();
    }
    std::fs::remove_file(keys_dir.join(name)).unwrap();
    let repo = Repository::open(&path, b"passphrase").expect("the real key opens again");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"data").unwrap();
    let options = snapshots_format::ops::backup::SnapshotOptions::new(src.clone());
    snapshots_format::ops::backup::take_snapshot(
        &repo,
        &options,
        &snapshots_format::progress::NoProgress,
    )
    .unwrap();
    drop(repo);

    // config taken back to format 5 (no key check): this machine saw the
    // check and refuses; a new machine opens it, and its first write puts
    // the key check back.
    let v5 = Header {
        version: KEY_CHECK_VERSION - 1,
        key_check: None,
        ..header
    };
    std::fs::write(path.join("config"), v5.encode()).unwrap();
    let err = Repository::open(&path, b"passphrase")
        .err()
        .expect("downgrade refused");
    assert!(err.to_string().contains("tampered"), "{err}");
    // Without a key check, a planted key file may open with the passphrase:
    // its key opens none of the snapshots, so it is never recorded.
    for (p, _) in &saved {
        std::fs::remove_file(p).unwrap();
    }
    std::fs::write(keys_dir.join(name), planted.encode()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (backend, _) = Repository::read_header(&path).unwrap();
    let repo = Repository::open_with(backend, cache.path(), b"passphrase").unwrap();
    let err = repo
        .prepare_write()
        .expect_err("a planted key is never recorded");
    assert!(err.to_string().contains(name), "{err}");
    assert_eq!(Repository::read_header(&path).unwrap().1, v5);
    drop(repo);
    std::fs::remove_file(keys_dir.join(name)).unwrap();
    for (p, bytes) in &saved {
        std::fs::write(p, bytes).unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let (backend, _) = Repository::read_header(&path).unwrap();
    let repo = Repository::open_with(backend, cache.path(), b"passphrase").unwrap();
    repo.prepare_write().unwrap();
    let (_, now) = Repository::read_header(&path).unwrap();
    // A write raises the format as far as the key binding (7); only a
    // delta (format 8) would raise it further.
    assert_eq!(
        now.version,
        snapshots_format::format::header::KEY_BINDING_VERSION,
        "back to a format with the key check"
    );
    assert_eq!(now.key_check, header.key_check);

    // Another key check in config: refused by a machine that saw the real one.
    let forged = Header {
        key_check: Some(foreign.check_value(&header.repo_id)),
        ..header
    };
    std::fs::write(path.join("config"), forged.encode()).unwrap();
    assert!(Repository::open(&path, b"passphrase").is_err());
}

/// Regression (kill campaign, 2 of 500 snapshot kills): the pin of the key
/// check was written in place, so a kill between creating the file and
/// writing it left an empty pin, and every later open on this machine
/// called the drive's `config` replaced. A pin of the wrong length is now
/// written again; a pin of the right length that differs still refuses.
#[test]
fn a_torn_key_check_pin_is_written_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, cache) = (tmp.path().join("repo"), tmp.path().join("cache"));
    let (backend, _) = {
        let repo = Repository::init(&path, b"passphrase", CHEAP).unwrap();
        drop(repo);
        Repository::read_header(&path).unwrap()
    };
    drop(Repository::open_with(backend, &cache, b"passphrase").unwrap());
    let pins: Vec<_> = walk(&cache)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "key-check"))
        .collect();
    let [pin] = &pins[..] else {
        panic!("one pin expected: {pins:?}")
    };
    let good = std::fs::read(pin).unwrap();
    assert_eq!(good.len(), 16);
    let open = || {
        let (backend, _) = Repository::read_header(&path).unwrap();
        Repository::open_with(backend, &cache, b"passphrase").map(drop)
    };
    for torn in [&[][..], &good[..7]] {
        std::fs::write(pin, torn).unwrap();
        open().unwrap_or_else(|e| panic!("a pin of {} bytes: {e}", torn.len()));
        assert_eq!(std::fs::read(pin).unwrap(), good, "written again");
    }
    let mut other = good.clone();
    other[0] ^= 1;
    std::fs::write(pin, &other).unwrap();
    let err = open().expect_err("another key check is refused");
    assert!(err.to_string().contains("tampered"), "{err}");
    assert!(
        walk(&cache)
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".tmp")),
        "nothing left aside"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
