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

    // An old repository, opened at format 1...
    write_version(1);
    let repo = Repository::open(&path, b"passphrase").unwrap();
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
