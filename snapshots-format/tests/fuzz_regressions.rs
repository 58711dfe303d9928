//! The decoders of on-disk bytes against hostile input, without the fuzzer
//! (issue 17, fuzzing): every seed of the fuzz corpus (valid objects made
//! by the encoders) truncated at every length and with every single bit
//! flipped goes through the same drivers as the fuzz targets in `fuzz/`
//! (included from there), plus the inputs the fuzz campaign found.
//!
//! With `COFFRE_FUZZ_SEEDS=<dir>` set, `seed_corpus_is_written` writes the
//! seeds to `<dir>/<target>/<name>`: `bench/fuzz/run` makes the fuzzer's
//! starting corpus that way.

use std::sync::Arc;

use snapshots_format::backend::mem::MemBackend;
use snapshots_format::backend::{Backend, FileKind, ObjectName};
use snapshots_format::crypto::ObjectKind;
use snapshots_format::format::keyfile::KdfParams;
use snapshots_format::repo::lock;
use snapshots_format::Repository;

/// Records the largest single allocation of each thread, so that a test
/// can tell that a decoder reserved memory from a hostile count.
struct Counting;

thread_local! {
    static LARGEST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(layout.size())));
        std::alloc::System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(new)));
        std::alloc::System.realloc(ptr, layout, new)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The largest allocation `f` made on this thread.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|m| m.set(0));
    f();
    LARGEST.with(|m| m.get())
}

#[allow(dead_code)]
#[path = "../../fuzz/src/drivers.rs"]
mod drivers;

#[allow(dead_code)]
#[path = "../../fuzz/src/seeds.rs"]
mod seeds;

/// The driver of a fuzz target, by name; the lock target goes through a
/// repository instead (its decoder is private, reached by `holders`).
fn driver(target: &str) -> Option<fn(&[u8]) -> bool> {
    Some(match target {
        "header" => drivers::header,
        "keyfile" => drivers::keyfile,
        "pack_trailer" => drivers::pack_trailer,
        "blob" => drivers::blob,
        "tree" => drivers::tree,
        "content" => drivers::content,
        "snapshot" => drivers::snapshot,
        "index_file" => drivers::index_file,
        "policy" => drivers::policy,
        "journal" => drivers::journal,
        "dictionary" => drivers::dictionary,
        "sealed" => drivers::sealed,
        _ => return None,
    })
}

/// The input, every truncation, and every single-bit flip; for a large
/// seed (the dictionary) truncations at 256 evenly spaced lengths and the
/// flips of its first 256 and last 64 bytes, to stay fast.
fn mutations(seed: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let len = seed.len();
    let step = (len / 256).max(1);
    let truncations = (0..len).step_by(step).map(|n| seed[..n].to_vec());
    let flipped = move |bit: &usize| len <= 2048 || bit / 8 < 256 || bit / 8 >= len - 64;
    let flips = (0..len * 8).filter(flipped).map(|bit| {
        let mut m = seed.to_vec();
        m[bit / 8] ^= 1 << (bit % 8);
        m
    });
    std::iter::once(seed.to_vec())
        .chain(truncations)
        .chain(flips)
}

/// A repository in memory with cheap key derivation, for the lock files.
fn repo() -> (Repository, tempfile::TempDir) {
    let cache = tempfile::tempdir().expect("temp dir");
    let kdf = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let repo = Repository::init_with(backend, cache.path(), b"pw", kdf).expect("init");
    (repo, cache)
}

/// Plants a lock file holding `plain`, sealed under the repository's keys,
/// and reads every holder back: the plaintext decoder must not panic and
/// an undecodable file must still count as held.
fn lock_round(repo: &Repository, plain: &[u8]) -> usize {
    let name = ObjectName::lock('s', &[0x42; 8]);
    let sealed = repo
        .keys()
        .seal(ObjectKind::Lock, name.as_str().as_bytes(), plain);
    repo.backend()
        .write(FileKind::Lock, &name, &sealed, false)
        .expect("write lock");
    let held = lock::holders(repo).expect("holders").len();
    repo.backend()
        .delete(FileKind::Lock, &name)
        .expect("delete lock");
    held
}

#[test]
fn every_seed_decodes_and_round_trips() {
    let seeds = seeds::seeds();
    let targets: std::collections::BTreeSet<_> = seeds.iter().map(|s| s.0).collect();
    for t in [
        "header",
        "keyfile",
        "pack_trailer",
        "blob",
        "tree",
        "content",
        "snapshot",
        "index_file",
        "policy",
        "journal",
        "dictionary",
        "lock",
        "sealed",
    ] {
        assert!(targets.contains(t), "no seed for {t}");
    }
    for (target, name, bytes) in &seeds {
        if let Some(run) = driver(target) {
            assert!(run(bytes), "seed {target}/{name} is refused");
        } else {
            assert_eq!(*target, "lock", "seed {name} for an unknown target");
        }
    }
}

#[test]
fn truncated_and_bit_flipped_seeds_never_panic() {
    let mut inputs = 0usize;
    for (target, name, seed) in seeds::seeds() {
        let Some(run) = driver(target) else { continue };
        for m in mutations(&seed) {
            // A panic names the input so that it can become a test below.
            let outcome = std::panic::catch_unwind(|| run(&m));
            assert!(outcome.is_ok(), "{target}/{name} panics on {m:02x?}");
            inputs += 1;
        }
    }
    eprintln!("{inputs} mutated inputs decoded");
    assert!(inputs > 10_000, "only {inputs} inputs tried");
}

#[test]
fn lock_files_truncated_and_bit_flipped_still_count_as_held() {
    let (repo, _cache) = repo();
    for (target, _, seed) in seeds::seeds() {
        if target != "lock" {
            continue;
        }
        // The seed itself decodes to its holder, not to "unknown".
        let name = ObjectName::lock('s', &[0x41; 8]);
        let sealed = repo
            .keys()
            .seal(ObjectKind::Lock, name.as_str().as_bytes(), &seed);
        repo.backend()
            .write(FileKind::Lock, &name, &sealed, false)
            .expect("write lock");
        let holders = lock::holders(&repo).expect("holders");
        assert_eq!(holders.len(), 1);
        assert_eq!(holders[0].host, "officine");
        repo.backend()
            .delete(FileKind::Lock, &name)
            .expect("delete lock");
        for m in mutations(&seed) {
            assert_eq!(lock_round(&repo, &m), 1, "lock {m:02x?}");
        }
    }
}

#[test]
fn seed_corpus_is_written() {
    let Some(dir) = std::env::var_os("COFFRE_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    for (target, name, bytes) in seeds::seeds() {
        let sub = dir.join(target);
        std::fs::create_dir_all(&sub).expect("seed dir");
        std::fs::write(sub.join(name), bytes).expect("seed file");
    }
}

/// A zstd frame of 16 bytes announcing 512 MiB of content (the most a
/// blob may hold) made the decoder reserve 512 MiB before decompressing
/// nothing: a key holder could plant such blobs to exhaust memory. A
/// frame cannot honestly announce more than 32768 times its length (one
/// 128 KiB block per 4 bytes), so the decoder now refuses it unreserved.
#[test]
fn zstd_frame_announcing_more_than_it_can_hold_reserves_nothing() {
    let frame: &[u8] = &[
        0x28, 0xb5, 0x2f, 0xfd, // zstd magic
        0xe0, // single segment, 8-byte content size
        0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, // 512 MiB
        0x01, 0x00, 0x00, // last block, raw, empty
    ];
    let id = [0x11u8; 32];
    // Driver input: mode 0 (data blob, no dictionary), id, codec 1 (zstd), frame.
    let input = [&[0u8][..], &id, &[1], frame].concat();
    let mut accepted = true;
    let largest = largest_allocation(|| accepted = drivers::blob(&input));
    assert!(!accepted);
    assert!(largest < 1 << 20, "decoder reserved {largest} bytes");
}
