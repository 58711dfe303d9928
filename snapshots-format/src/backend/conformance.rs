//! The behaviour every [`Backend`] must have, as one suite of checks that
//! panic with a message saying what broke. Each backend's tests call
//! [`run`]; a check can also be called alone on a backend made for it.
//!
//! Kinds that allow one object (config, policy, dictionary) use the empty
//! name; the old index database is never written (Coffre only deletes it).

use std::sync::Barrier;

use super::{Backend, FileKind, ObjectName};
use crate::error::{Error, Result};

/// Runs every check, each on a new backend from `make`. All but
/// [`create_twice`] get it already created.
pub fn run(make: &dyn Fn() -> Box<dyn Backend>) {
    create_twice(&*make());
    macro_rules! each {
        ($($check:ident),* $(,)?) => {$(
            let backend = make();
            ok(backend.create(), concat!("create before ", stringify!($check)));
            $check(&*backend);
        )*};
    }
    each!(
        round_trip_each_kind,
        missing_object_is_none,
        read_at_offsets,
        size,
        list_sorted_with_sizes,
        commit_keeps_existing,
        commit_replaces,
        delete_then_read,
        delete_missing_is_ok,
        abandoned_upload_leaves_nothing,
        kinds_do_not_collide,
        large_object_round_trips,
        concurrent_writers_all_land,
        concurrent_commit_has_one_winner,
    );
}

/// Unwraps a result or panics naming the step.
fn ok<T>(result: Result<T>, step: &str) -> T {
    result.unwrap_or_else(|e| panic!("backend conformance: {step} failed: {e} ({e:?})"))
}

/// Kinds the suite writes: all but the old index database.
fn written_kinds() -> impl Iterator<Item = FileKind> {
    FileKind::ALL
        .into_iter()
        .filter(|k| *k != FileKind::LegacyIndex)
}

/// A valid name of `kind`, distinct for each `n` where the kind allows
/// several objects (the old index database always gets `index.db`).
pub fn name(kind: FileKind, n: u64) -> ObjectName {
    let mut id = [0x5a; 32];
    id[..8].copy_from_slice(&n.to_be_bytes());
    match kind {
        FileKind::Config | FileKind::Policy | FileKind::Dictionary | FileKind::DictionaryCopy => {
            ObjectName::single()
        }
        FileKind::Key => ObjectName::key(&n.to_be_bytes()),
        FileKind::Pack | FileKind::Snapshot | FileKind::Index | FileKind::Journal => {
            ObjectName::id(&id)
        }
        FileKind::Lock => ObjectName::lock('s', &n.to_be_bytes()),
        FileKind::LegacyIndex => ObjectName::parse(kind, "index.db")
            .unwrap_or_else(|| panic!("index.db is an old index database name")),
    }
}

/// Deterministic incompressible bytes that differ with `seed` (xorshift),
/// so a mix-up of objects or offsets shows; also the library tests' source
/// of incompressible data.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn put(b: &dyn Backend, kind: FileKind, name: &ObjectName, bytes: &[u8]) {
    let step = format!("writing {} {name:?}", kind.name());
    let won = ok(b.write(kind, name, bytes, false), &step);
    assert!(won, "{step}: reported an existing object");
}

fn list(b: &dyn Backend, kind: FileKind) -> Vec<(ObjectName, u64)> {
    ok(b.list(kind), &format!("listing {}s", kind.name()))
}

/// Asserts what a read returns, without printing megabytes when it differs.
fn expect(b: &dyn Backend, kind: FileKind, name: &ObjectName, want: Option<&[u8]>, what: &str) {
    let got = ok(b.read(kind, name), &format!("reading {what}"));
    expect_bytes(got.as_deref(), want, what);
}

fn expect_bytes(got: Option<&[u8]>, want: Option<&[u8]>, what: &str) {
    if got == want {
        return;
    }
    let len = |o: Option<&[u8]>| o.map(<[u8]>::len);
    let first_diff = got
        .zip(want)
        .and_then(|(g, w)| g.iter().zip(w).position(|(a, b)| a != b));
    panic!(
        "backend conformance: {what}: got {:?} bytes, want {:?}, first difference at {first_diff:?}",
        len(got),
        len(want)
    );
}

fn expect_corrupt<T: std::fmt::Debug>(got: Result<T>, what: &str) {
    let corrupt = matches!(got, Err(Error::Corrupt { .. }));
    assert!(corrupt, "{what} must be Corrupt, got {got:?}");
}

fn size_of(b: &dyn Backend, kind: FileKind, name: &ObjectName) -> Option<u64> {
    ok(
        b.size(kind, name),
        &format!("size of {} {name:?}", kind.name()),
    )
}

/// `create` makes a fresh location usable once; a second `create` is
/// refused, as `init` over a repository must be.
pub fn create_twice(b: &dyn Backend) {
    ok(b.create(), "create on a fresh location");
    let again = b.create();
    assert!(
        matches!(again, Err(Error::AlreadyExists(_))),
        "second create on {} must be AlreadyExists, got {again:?}",
        b.location()
    );
}

/// Every kind stores and returns its bytes, written in one piece or many,
/// and an empty object too.
pub fn round_trip_each_kind(b: &dyn Backend) {
    for (i, kind) in written_kinds().enumerate() {
        let data = pseudo_random(i as u64, 1000.min(kind.max_len() as usize));
        put(b, kind, &name(kind, 1), &data);
        expect(b, kind, &name(kind, 1), Some(&data), kind.name());
    }
    let (kind, n) = (FileKind::Pack, name(FileKind::Pack, 2));
    let data = pseudo_random(99, 3000);
    let mut up = ok(b.upload(kind), "starting an upload");
    for piece in data.chunks(700) {
        ok(up.write(piece), "writing a piece of an upload");
    }
    ok(up.write(&[]), "writing nothing");
    assert!(ok(up.commit(&n, false), "committing"), "commit lost");
    expect(b, kind, &n, Some(&data), "upload written in pieces");
    let (kind, n) = (FileKind::Key, name(FileKind::Key, 2));
    put(b, kind, &n, &[]);
    expect(b, kind, &n, Some(&[]), "empty object");
}

/// Reading what is not there is not an error: the repository asks often.
pub fn missing_object_is_none(b: &dyn Backend) {
    for kind in written_kinds() {
        expect(b, kind, &name(kind, 7), None, "missing object");
    }
}

/// `read_at` returns exactly the range asked, up to the object's end, and
/// refuses ranges past it or objects that are not there as corrupt.
pub fn read_at_offsets(b: &dyn Backend) {
    let (kind, n) = (FileKind::Pack, name(FileKind::Pack, 1));
    let data = pseudo_random(3, 1000);
    put(b, kind, &n, &data);
    for (offset, len) in [(0, 10), (0, 1000), (500, 100), (990, 10), (1000, 0)] {
        let what = format!("read_at({offset}, {len}) of 1000 bytes");
        let got = ok(b.read_at(kind, &n, offset as u64, len), &what);
        expect_bytes(Some(&got), Some(&data[offset..offset + len]), &what);
    }
    for (offset, len) in [(995, 10), (1000, 1), (2000, 1), (u64::MAX, 1)] {
        let what = format!("read_at({offset}, {len}) of 1000 bytes");
        expect_corrupt(b.read_at(kind, &n, offset, len), &what);
    }
    let missing = b.read_at(kind, &name(kind, 2), 0, 1);
    expect_corrupt(missing, "read_at of a missing object");
}

/// `size` tells an object's length, and `None` when it is not there.
pub fn size(b: &dyn Backend) {
    let kind = FileKind::Snapshot;
    put(b, kind, &name(kind, 1), &pseudo_random(4, 321));
    put(b, kind, &name(kind, 2), &[]);
    for (n, want) in [(1, Some(321)), (2, Some(0)), (3, None)] {
        assert_eq!(size_of(b, kind, &name(kind, n)), want, "size of object {n}");
    }
}

/// `list` gives exactly the objects written, in name order, with sizes;
/// kinds never written list nothing.
pub fn list_sorted_with_sizes(b: &dyn Backend) {
    let kind = FileKind::Index;
    let mut want = Vec::new();
    for n in [5u64, 1, 9, 3, 7] {
        put(b, kind, &name(kind, n), &pseudo_random(n, 10 * n as usize));
        want.push((name(kind, n), 10 * n));
    }
    want.sort();
    assert_eq!(list(b, kind), want, "listing of written index files");
    put(b, FileKind::Config, &ObjectName::single(), b"config");
    assert_eq!(list(b, FileKind::Config), vec![(ObjectName::single(), 6)]);
    for other in FileKind::ALL {
        let written = [kind, FileKind::Config].contains(&other);
        assert!(written || list(b, other).is_empty(), "{other:?} listed");
    }
}

/// Without `replace`, a commit over an existing name loses and keeps the
/// old object: two writers of one lock or pack never destroy each other.
pub fn commit_keeps_existing(b: &dyn Backend) {
    let (kind, n) = (FileKind::Lock, name(FileKind::Lock, 1));
    put(b, kind, &n, b"first");
    let won = ok(b.write(kind, &n, b"second writer", false), "second commit");
    assert!(!won, "a commit without replace over an object must lose");
    expect(b, kind, &n, Some(b"first"), "object after a losing commit");
    assert_eq!(list(b, kind), vec![(n, 5)], "listing after a losing commit");
}

/// With `replace`, a commit replaces the object whole.
pub fn commit_replaces(b: &dyn Backend) {
    let (kind, n) = (FileKind::Policy, ObjectName::single());
    put(b, kind, &n, b"a longer first version");
    let won = ok(b.write(kind, &n, b"second", true), "replacing commit");
    assert!(won, "a commit with replace must return true");
    expect(b, kind, &n, Some(b"second"), "replaced object");
    assert_eq!(list(b, kind), vec![(n, 6)], "listing after a replace");
}

/// A deleted object is gone from reads, sizes and listings.
pub fn delete_then_read(b: &dyn Backend) {
    let kind = FileKind::Key;
    put(b, kind, &name(kind, 1), b"key one");
    put(b, kind, &name(kind, 2), b"key two");
    ok(b.delete(kind, &name(kind, 1)), "delete");
    expect(b, kind, &name(kind, 1), None, "deleted object");
    assert_eq!(size_of(b, kind, &name(kind, 1)), None, "deleted object");
    assert_eq!(list(b, kind), vec![(name(kind, 2), 7)], "after a delete");
}

/// Deleting what is not there succeeds: a prune interrupted after its
/// deletes runs them again.
pub fn delete_missing_is_ok(b: &dyn Backend) {
    for kind in FileKind::ALL {
        let what = format!("deleting a missing {}", kind.name());
        ok(b.delete(kind, &name(kind, 5)), &what);
    }
}

/// An upload dropped before its commit leaves nothing visible, before or
/// after removing leftovers.
pub fn abandoned_upload_leaves_nothing(b: &dyn Backend) {
    for kind in [FileKind::Pack, FileKind::Config] {
        let mut up = ok(b.upload(kind), "starting an upload");
        ok(up.write(&pseudo_random(6, 500)), "writing");
        drop(up);
        assert!(list(b, kind).is_empty(), "abandoned {kind:?} listed");
    }
    ok(b.remove_leftovers(), "remove_leftovers");
    for kind in FileKind::ALL {
        assert!(list(b, kind).is_empty(), "{kind:?} listed after cleanup");
    }
}

/// Objects of different kinds under the same name are separate objects.
pub fn kinds_do_not_collide(b: &dyn Backend) {
    let groups: [&[FileKind]; 2] = [
        &[FileKind::Pack, FileKind::Snapshot, FileKind::Index],
        &[
            FileKind::Config,
            FileKind::Policy,
            FileKind::Dictionary,
            FileKind::DictionaryCopy,
        ],
    ];
    for kinds in groups {
        let n = name(kinds[0], 1);
        let data = |i: usize| pseudo_random(10 + i as u64, 100 + i);
        for (i, kind) in kinds.iter().copied().enumerate() {
            put(b, kind, &n, &data(i));
        }
        ok(b.delete(kinds[0], &n), "delete");
        expect(b, kinds[0], &n, None, "deleted object");
        for (i, kind) in kinds.iter().copied().enumerate().skip(1) {
            let what = format!("{kind:?} beside a {:?} of its name", kinds[0]);
            expect(b, kind, &n, Some(&data(i)), &what);
        }
    }
}

/// A pack-sized object round trips byte for byte.
pub fn large_object_round_trips(b: &dyn Backend) {
    let (kind, n) = (FileKind::Pack, name(FileKind::Pack, 1));
    let data = pseudo_random(42, 5 << 20);
    let mut up = ok(b.upload(kind), "starting an upload");
    // Uneven pieces, so no backend relies on writes being aligned.
    for piece in data.chunks(65_537) {
        ok(up.write(piece), "writing a piece of a large object");
    }
    assert!(ok(up.commit(&n, false), "committing a large object"));
    assert_eq!(size_of(b, kind, &n), Some(5 << 20), "size of 5 MiB");
    expect(b, kind, &n, Some(&data), "5 MiB object");
    let (mid, what) = (3 << 20, "read_at in a large object");
    let part = ok(b.read_at(kind, &n, mid as u64, 4096), what);
    expect_bytes(Some(&part), Some(&data[mid..mid + 4096]), what);
}

/// Threads writing different objects at once all succeed and all land.
pub fn concurrent_writers_all_land(b: &dyn Backend) {
    let kind = FileKind::Pack;
    let data = |n: u64| pseudo_random(n, 1000 + n as usize);
    std::thread::scope(|s| {
        for t in 0..8u64 {
            s.spawn(move || {
                for n in t * 4..t * 4 + 4 {
                    put(b, kind, &name(kind, n), &data(n));
                }
            });
        }
    });
    assert_eq!(list(b, kind).len(), 32, "objects written by 8 threads");
    for n in 0..32 {
        expect(b, kind, &name(kind, n), Some(&data(n)), "a thread's object");
    }
}

/// Writers racing to commit one name without `replace`: exactly one wins,
/// and the object is the winner's, whole.
pub fn concurrent_commit_has_one_winner(b: &dyn Backend) {
    let (kind, n) = (FileKind::Lock, name(FileKind::Lock, 9));
    let barrier = Barrier::new(8);
    let (barrier, n_ref) = (&barrier, &n);
    let winners: Vec<u64> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..8u64)
            .map(|t| {
                s.spawn(move || {
                    let up = b
                        .upload(kind)
                        .and_then(|mut up| up.write(&pseudo_random(t, 2000)).map(|()| up));
                    // Commit together, to make the race as tight as we can;
                    // wait even after a failure, or the others never start.
                    barrier.wait();
                    let up = ok(up, "preparing a racing upload");
                    ok(up.commit(n_ref, false), "racing commit").then_some(t)
                })
            })
            .collect();
        racers
            .into_iter()
            .filter_map(|r| r.join().unwrap_or_else(|_| panic!("a racer panicked")))
            .collect()
    });
    if b.exclusive_create() {
        assert_eq!(winners.len(), 1, "one winner, got {winners:?}");
    } else {
        // A store without conditional writes cannot refuse the loser; it
        // must still keep one writer's object whole.
        assert!(!winners.is_empty(), "at least one winner");
    }
    let there = ok(b.read(kind, &n), "reading the raced object");
    let whole = |t: &u64| there.as_deref() == Some(&pseudo_random(*t, 2000)[..]);
    assert!(
        winners.iter().any(whole),
        "the object after the race is one winner's, whole"
    );
    assert_eq!(list(b, kind).len(), 1, "objects after the race");
}
