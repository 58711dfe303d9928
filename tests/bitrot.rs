//! Bit rot (issue 17, item 4): one byte, bit or run of bytes damaged, or a
//! file cut short or lengthened, in a random file of every kind of a small
//! repository (packs, tree and chunk-list blobs inside packs, index files,
//! snapshot records, the key file that opens it and another one, `config`,
//! the dictionary, journal entries). Each trial works on a fresh copy of one
//! repository built once, with this machine's cache either warm (read
//! before the damage: stale against the drive) or empty.
//!
//! Per trial: `check --read-data` must fail and name every file that then
//! refuses to restore (or the repository must refuse to open with a
//! message); every snapshot is restored and compared file by file: a file
//! is bit-exact or absent and reported, **never different** ("lost"); a
//! damaged index file is repaired by `rebuild-index`, after which every
//! snapshot restores bit-exact. One trial in five also mounts the damaged
//! repository and reads every file: right bytes or an error.
//!
//! Lock files are not repository data (a process's claim, removed when it
//! ends; a damaged one is a stale lock) and are left out.
//!
//! `COFFRE_BITROT_TRIALS` (default 40), `COFFRE_BITROT_SEED` (default 17),
//! `COFFRE_BITROT_JOBS` (parallel trials, default 2), `COFFRE_BITROT_MOUNT_EVERY`
//! (default 5; 0: no mount) and `COFFRE_BITROT_RESULTS` (a file that gets
//! one tab-separated line per trial, for bench/reliability/bitrot-campaign).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use coffre_tests::mount::is_mounted;
use coffre_tests::{run, text, Coffre, Rng, TEST_PASSWORD};
use std::sync::Arc;

use snapshots_format::backend::LocalBackend;
use snapshots_format::format::content::Content;
use snapshots_format::format::keyfile::{KdfParams, KeyKind};
use snapshots_format::format::tree::Payload;
use snapshots_format::{BlobId, Repository};

/// Kinds of repository file a trial may damage.
const FILE_KINDS: [&str; 10] = [
    "pack",
    "tree",
    "chunk-list",
    "index",
    "snapshot",
    "key-used",
    "key-other",
    "config",
    "dictionary",
    "journal",
];

/// Kinds of damage.
const DAMAGES: [&str; 5] = ["flip-bit", "flip-byte", "zero-run", "truncate", "append"];

const OTHER_PASSWORD: &str = "another passphrase for the provider";

/// What a snapshot holds: path → file contents hash or symlink target.
type Image = BTreeMap<String, Item>;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    File([u8; 32]),
    Symlink(PathBuf),
}

/// The repository built once, and where things are in it.
struct Base {
    /// The pristine repository (never touched by a trial).
    repo: PathBuf,
    /// Full snapshot ids with what each holds, oldest first.
    snapshots: Vec<(String, Image)>,
    /// Ranges (file relative to the repository, offset, length) of tree
    /// and tree-piece blobs, and of chunk-list blobs.
    trees: Vec<(String, u64, u64)>,
    chunk_lists: Vec<(String, u64, u64)>,
    /// The key file the test passphrase opens, and the other one.
    key_used: String,
    key_other: String,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_damage_is_detected_and_never_returns_a_wrong_byte() {
    let trials = env_u64("COFFRE_BITROT_TRIALS", 40) as usize;
    let seed = env_u64("COFFRE_BITROT_SEED", 17);
    let jobs = env_u64("COFFRE_BITROT_JOBS", 2).max(1) as usize;
    let mount_every = env_u64("COFFRE_BITROT_MOUNT_EVERY", 5) as usize;
    let tmp = tempfile::tempdir().expect("temporary folder");
    let base = build(tmp.path(), seed);

    // Each trial's line is appended as it ends (a long campaign can be
    // watched, and keeps what it did if it stops), then sorted at the end.
    let out = std::env::var_os("COFFRE_BITROT_RESULTS").map(PathBuf::from);
    let file = out.as_ref().map(|p| {
        let mut f = std::fs::File::create(p).expect("results file");
        writeln!(f, "{}", Trial::HEADER).unwrap();
        f
    });
    let results: Mutex<(Vec<String>, Option<std::fs::File>)> = Mutex::new((Vec::new(), file));
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..jobs {
            let (base, results, failures, next) = (&base, &results, &failures, &next);
            let dir = tmp.path().join(format!("w{w}"));
            s.spawn(move || {
                let worker = Worker::new(base, &dir);
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= trials {
                        break;
                    }
                    // One trial in `mount_every`, sliding so that the
                    // mounts go round every file kind.
                    let mount =
                        mount_every > 0 && n % mount_every == (n / mount_every) % mount_every;
                    let t = worker.trial(seed, n, mount);
                    let line = t.line(n);
                    eprintln!("{line}");
                    let mut r = results.lock().unwrap();
                    if let Some(f) = &mut r.1 {
                        writeln!(f, "{line}").unwrap();
                    }
                    r.0.push(line);
                    failures.lock().unwrap().extend(t.failures);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap().0;
    results.sort_by_key(|l| l.split('\t').next().and_then(|n| n.parse::<u64>().ok()));
    if let Some(path) = out {
        let mut f = std::fs::File::create(&path).expect("results file");
        writeln!(f, "{}", Trial::HEADER).unwrap();
        for l in &results {
            writeln!(f, "{l}").unwrap();
        }
    }
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failure(s) in {trials} trials (seed {seed}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A repository with one snapshot of a small text file and a 2 MiB file
/// of random bytes (about thirty chunks), made with the real binary.
fn small_repo(root: &Path) -> (Coffre, PathBuf) {
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("small.txt"), b"ordonnance 42\n".repeat(40)).unwrap();
    std::fs::write(
        src.join("big.bin"),
        Rng::derive(1, "bitrot-small", &[]).bytes(2 << 20),
    )
    .unwrap();
    let coffre = Coffre::new(root.join("repo"));
    coffre.init();
    coffre.snapshot(&src);
    (coffre, src)
}

/// Flips one byte of `path` at `at` (from the end when negative).
fn flip(path: &Path, at: i64) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = if at < 0 { bytes.len() as i64 + at } else { at } as usize;
    bytes[i] ^= 0x40;
    std::fs::write(path, &bytes).unwrap();
}

/// Regression: a journal entry damaged on the drive after this machine
/// cached it (same size, so the cache was trusted) passed `check`.
#[test]
fn a_journal_entry_damaged_after_this_machine_read_it_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (coffre, _) = small_repo(tmp.path());
    coffre.ok(["journal"]);
    let entries = list(&coffre.repo.join("journal"));
    let victim = coffre.repo.join("journal").join(&entries[0]);
    flip(&victim, 30);
    // Plain `check` trusts the copy this machine cached (reading every
    // entry again costs a request each on S3); `--read-data` reads them.
    let out = run(&mut coffre.cmd(["check", "--read-data"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("journal entry {}", &entries[0][..12])),
        "{}",
        text(&out.stderr)
    );
}

/// Regression: `check` did not look at key files, so a damaged one that
/// did not open the repository went unseen until its holder needed it.
#[test]
fn a_damaged_key_file_is_reported_by_check() {
    let tmp = tempfile::tempdir().unwrap();
    let (coffre, _) = small_repo(tmp.path());
    let key = list(&coffre.repo.join("keys"))[0].clone();
    // Its label (the last bytes): the repository still opens with it.
    flip(&coffre.repo.join("keys").join(&key), -3);
    let out = run(&mut coffre.cmd(["check"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("key file {key}")),
        "{}",
        text(&out.stderr)
    );
}

/// Regression: a file whose chunk failed to load was left in the target,
/// half written (zeros where the chunk should be), beside the error.
#[test]
fn a_file_that_cannot_be_restored_is_not_left_half_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (coffre, src) = small_repo(tmp.path());
    let mut packs: Vec<(u64, PathBuf)> = Vec::new();
    for d in list(&coffre.repo.join("data")) {
        for p in list(&coffre.repo.join("data").join(&d)) {
            let path = coffre.repo.join("data").join(&d).join(p);
            packs.push((std::fs::metadata(&path).unwrap().len(), path));
        }
    }
    packs.sort();
    let (size, biggest) = packs.pop().expect("a pack");
    // The middle of the largest pack is one of big.bin's chunks.
    flip(&biggest, size as i64 / 2);
    let target = tmp.path().join("out");
    let out = run(&mut coffre.cmd([OsStr::new("restore"), "latest".as_ref(), target.as_os_str()]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("big.bin"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !target.join("big.bin").exists(),
        "the damaged file was left in the target"
    );
    assert_eq!(
        std::fs::read(target.join("small.txt")).unwrap(),
        std::fs::read(src.join("small.txt")).unwrap()
    );
}

/// Builds the repository: three snapshots of a tree of small text files
/// (enough for a dictionary), a 700 KiB file (several chunks, listed
/// inline) and a 3 MiB one (chunk-list blobs), a symlink and deep folders;
/// a second key with another passphrase.
fn build(root: &Path, seed: u64) -> Base {
    let src = root.join("src");
    let repo = root.join("base/repo");
    std::fs::create_dir_all(src.join("notes")).unwrap();
    std::fs::create_dir_all(src.join("deep/a/b")).unwrap();
    std::fs::create_dir_all(root.join("base")).unwrap();
    let coffre = Coffre::new(&repo);
    // A cheap key derivation: every trial opens the repository five times.
    let kdf = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let backend = LocalBackend::open_for_init(&repo).expect("create the repository");
    drop(
        Repository::init_with(
            Arc::new(backend),
            &coffre.cache_dir(),
            TEST_PASSWORD.as_bytes(),
            kdf,
        )
        .expect("init the repository"),
    );
    let mut rng = Rng::derive(seed, "bitrot-source", &[]);
    let words = [
        "ordonnance",
        "patient",
        "stock",
        "lot",
        "peremption",
        "tiers-payant",
        "mutuelle",
        "doliprane",
        "amoxicilline",
        "facture",
        "caisse",
        "inventaire",
        "commande",
        "grossiste",
    ];
    let text_file = |rng: &mut Rng, len: u64| -> Vec<u8> {
        let mut s = String::new();
        while (s.len() as u64) < len {
            s.push_str(words[rng.below(words.len() as u64) as usize]);
            s.push_str(if rng.chance(0.1) { ";\n" } else { " " });
            s.push_str(&rng.below(10_000).to_string());
            s.push(' ');
        }
        s.into_bytes()
    };
    for i in 0..130 {
        let len = rng.range(200, 6000);
        std::fs::write(
            src.join(format!("notes/n{i:03}.txt")),
            text_file(&mut rng, len),
        )
        .unwrap();
    }
    for i in 0..4 {
        std::fs::write(
            src.join(format!("deep/a/b/d{i}.csv")),
            text_file(&mut rng, 900),
        )
        .unwrap();
    }
    std::fs::write(src.join("mid.bin"), rng.bytes(700 << 10)).unwrap();
    std::fs::write(src.join("big.bin"), rng.bytes(3 << 20)).unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("notes/n000.txt", src.join("link")).unwrap();

    let day = 86_400;
    let t0 = 1_780_000_000;
    let mut ids = Vec::new();
    for day_no in 0..3i64 {
        if day_no > 0 {
            for _ in 0..8 {
                let i = rng.below(130);
                let len = rng.range(200, 6000);
                std::fs::write(
                    src.join(format!("notes/n{i:03}.txt")),
                    text_file(&mut rng, len),
                )
                .unwrap();
            }
            let mut big = std::fs::OpenOptions::new()
                .append(true)
                .open(src.join("big.bin"))
                .unwrap();
            big.write_all(&rng.bytes(300 << 10)).unwrap();
            std::fs::write(
                src.join(format!("deep/new{day_no}.txt")),
                text_file(&mut rng, 3000),
            )
            .unwrap();
        }
        let out = coffre.ok_at(
            t0 + day_no * day,
            [OsStr::new("--json"), "snapshot".as_ref(), src.as_os_str()],
        );
        let id = coffre_tests::json_string_field(&out, "id").expect("snapshot id");
        ids.push((id, image(&src)));
    }
    assert!(
        repo.join("dictionary").is_file(),
        "no dictionary was trained"
    );

    let (backend, _) = Repository::read_header(&repo).unwrap();
    let opened = Repository::open_with(
        backend,
        &root.join("base/lib-cache"),
        TEST_PASSWORD.as_bytes(),
    )
    .expect("open the base repository");
    // A second key, for someone else (its passphrase is not the test's).
    let key_used = format!("keys/{}", list(&repo.join("keys"))[0]);
    let label = snapshots_format::repo::keyring::new_label(KeyKind::Passphrase, "prestataire");
    let key_other = format!(
        "keys/{}",
        opened
            .add_key(OTHER_PASSWORD.as_bytes(), kdf, &label)
            .expect("add a key")
    );
    coffre.ok(["check", "--read-data"]);

    // Where the tree and chunk-list blobs lie, from the index.
    let mut trees = BTreeSet::new();
    let mut lists = BTreeSet::new();
    let mut todo: Vec<BlobId> = Vec::new();
    for (id, _) in &ids {
        let snap = opened
            .load_snapshot(&snapshots_format::SnapshotId::from_hex(id).expect("snapshot id"))
            .unwrap();
        todo.push(snap.tree);
    }
    let mut seen = BTreeSet::new();
    while let Some(t) = todo.pop() {
        if !seen.insert(t) {
            continue;
        }
        let (tree, pieces) = opened.load_tree_pieces(&t).unwrap();
        trees.insert(t);
        trees.extend(pieces);
        for node in &tree.nodes {
            match &node.payload {
                Payload::Dir(sub) => todo.push(*sub),
                Payload::File(Content::Pieces(p)) => lists.extend(p.iter().copied()),
                _ => {}
            }
        }
    }
    let locate = |ids: &BTreeSet<BlobId>| -> Vec<(String, u64, u64)> {
        ids.iter()
            .map(|id| {
                let loc = opened
                    .index()
                    .lookup(opened.keys(), id)
                    .unwrap()
                    .expect("indexed");
                let hex = loc.pack.to_hex();
                (
                    format!("data/{}/{hex}", &hex[..2]),
                    u64::from(loc.offset),
                    u64::from(loc.length),
                )
            })
            .collect()
    };
    let trees = locate(&trees);
    let chunk_lists = locate(&lists);
    assert!(!chunk_lists.is_empty(), "big.bin has no chunk-list blob");
    drop(opened);
    Base {
        repo,
        snapshots: ids,
        trees,
        chunk_lists,
        key_used,
        key_other,
    }
}

/// Names in a folder, sorted.
fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Files of a repository of `kind`, relative to it.
fn files_of(repo: &Path, kind: &str, base: &Base) -> Vec<String> {
    let in_dir = |d: &str| -> Vec<String> {
        list(&repo.join(d))
            .into_iter()
            .map(|n| format!("{d}/{n}"))
            .collect()
    };
    match kind {
        "pack" => list(&repo.join("data"))
            .into_iter()
            .flat_map(|d| in_dir(&format!("data/{d}")))
            .collect(),
        "index" => in_dir("index"),
        "snapshot" => in_dir("snapshots"),
        "journal" => in_dir("journal"),
        "key-used" => vec![base.key_used.clone()],
        "key-other" => vec![base.key_other.clone()],
        "config" => vec!["config".into()],
        // A second copy, where the repository keeps one.
        "dictionary" => ["dictionary", "dictionary.copy"]
            .into_iter()
            .filter(|n| repo.join(n).is_file())
            .map(str::to_owned)
            .collect(),
        _ => unreachable!("{kind}"),
    }
}

/// Path → contents of a tree on disk (regular files and symlinks);
/// unreadable files are left out (absent = refused).
fn image(root: &Path) -> Image {
    let mut out = Image::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let r = rel.join(e.file_name());
            let p = root.join(&r);
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let key = r.to_string_lossy().into_owned();
            if meta.is_dir() {
                todo.push(r);
            } else if meta.file_type().is_symlink() {
                if let Ok(t) = std::fs::read_link(&p) {
                    out.insert(key, Item::Symlink(t));
                }
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.insert(key, Item::File(*blake3::hash(&bytes).as_bytes()));
            }
        }
    }
    out
}

/// One worker: its own folder, where each trial's repository is always at
/// the same path (so a warm cache, keyed by place, is the one used).
struct Worker<'a> {
    base: &'a Base,
    dir: PathBuf,
    /// This machine's cache after reading the undamaged repository.
    warm: PathBuf,
}

impl<'a> Worker<'a> {
    fn new(base: &'a Base, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let w = Worker {
            base,
            dir: dir.to_path_buf(),
            warm: dir.join("warm.cache"),
        };
        w.reset(false);
        // Commands that read and do not journal: the cache gets the index
        // and the journal as they are, and remembers no entry that a reset
        // copy would lack.
        let c = w.coffre();
        c.ok(["snapshots"]);
        c.ok(["journal"]);
        cp(&c.cache_dir(), &w.warm);
        w
    }

    fn repo(&self) -> PathBuf {
        self.dir.join("repo")
    }

    fn coffre(&self) -> Coffre {
        Coffre::new(self.repo())
    }

    /// A fresh copy of the base repository; the warm cache or none.
    fn reset(&self, warm: bool) {
        let c = self.coffre();
        for d in [
            self.repo(),
            c.cache_dir(),
            self.dir.join("out"),
            self.dir.join("mnt"),
        ] {
            if d.exists() && !is_mounted(&d) {
                std::fs::remove_dir_all(&d).unwrap();
            }
        }
        cp(&self.base.repo, &self.repo());
        if warm {
            cp(&self.warm, &c.cache_dir());
        }
    }

    fn trial(&self, seed: u64, n: usize, mount: bool) -> Trial {
        let mut rng = Rng::derive(seed, "bitrot-trial", &[n as i64]);
        let kind = FILE_KINDS[n % FILE_KINDS.len()];
        let damage = DAMAGES[(n / FILE_KINDS.len() + n) % DAMAGES.len()];
        let warm = rng.chance(0.5);
        self.reset(warm);
        let repo = self.repo();
        let mut t = Trial {
            kind,
            damage,
            warm,
            ..Trial::default()
        };

        // Where: a whole file, or a blob's range inside a pack.
        let (file, lo, hi) = match kind {
            "tree" | "chunk-list" => {
                let ranges = if kind == "tree" {
                    &self.base.trees
                } else {
                    &self.base.chunk_lists
                };
                let (f, off, len) = rng.pick(ranges).clone();
                (f, off, off + len)
            }
            _ => {
                let files = files_of(&repo, kind, self.base);
                let f = rng.pick(&files).clone();
                let len = std::fs::metadata(repo.join(&f)).unwrap().len();
                (f, 0, len)
            }
        };
        t.file = file.clone();
        t.at = damage_file(&repo.join(&file), damage, lo, hi, &mut rng);

        let c = self.coffre();
        let check = run(&mut c.cmd(["--json", "check", "--read-data"]));
        let verdict = Verdict::of(&check);
        t.check_exit = check.status.code().unwrap_or(-1);
        t.detected = t.check_exit != 0;
        if t.check_exit != 0 && t.check_exit != 1 {
            t.fail(format!(
                "check exited {}: {}",
                t.check_exit,
                text(&check.stderr)
            ));
        }
        if verdict.opened && t.detected && verdict.errors.is_empty() && verdict.damaged.is_empty() {
            t.fail("check failed without saying why".into());
        }
        t.opened = verdict.opened;
        t.warned = !verdict.warnings.is_empty();
        // What check said first, for the campaign's table.
        let first = verdict
            .errors
            .first()
            .or(verdict.warnings.first())
            .cloned()
            .unwrap_or_else(|| text(&check.stderr).lines().next().unwrap_or("").to_owned());
        t.message = first.replace(['\t', '\n'], " ").chars().take(160).collect();

        // Restore every snapshot and compare.
        let out = self.dir.join("out");
        let mut refused: Vec<(usize, String)> = Vec::new();
        for (i, (id, want)) in self.base.snapshots.iter().enumerate() {
            let target = out.join(format!("{i}"));
            let r = run(&mut c.cmd([OsStr::new("restore"), id.as_ref(), target.as_os_str()]));
            let code = r.status.code().unwrap_or(-1);
            if code != 0 && code != 1 {
                t.fail(format!(
                    "restore of {id} exited {code}: {}",
                    text(&r.stderr)
                ));
            }
            let got = image(&target);
            let mut missing = 0;
            for (path, item) in want {
                match got.get(path) {
                    Some(g) if g == item => t.exact += 1,
                    Some(_) => {
                        t.wrong += 1;
                        t.fail(format!(
                            "snapshot {id}: {path} restored with wrong contents"
                        ));
                    }
                    None => {
                        missing += 1;
                        refused.push((i, path.clone()));
                    }
                }
            }
            for path in got.keys().filter(|p| !want.contains_key(*p)) {
                t.wrong += 1;
                t.fail(format!("snapshot {id}: {path} restored but never saved"));
            }
            if missing > 0 && code == 0 {
                t.fail(format!(
                    "snapshot {id}: {missing} file(s) missing, yet restore said ok"
                ));
            }
        }
        t.refused = refused.len() as u64;
        t.survived = refused.is_empty() && t.wrong == 0;

        // Every file that did not restore was named by check (or the
        // repository refused to open, which names everything).
        if !refused.is_empty() {
            if !t.detected {
                t.fail(format!(
                    "{} file(s) refused, yet check passed",
                    refused.len()
                ));
            }
            let unnamed: Vec<_> = refused
                .iter()
                .filter(|(i, p)| !verdict.names(&self.base.snapshots[*i].0, p))
                .collect();
            t.named = unnamed.is_empty();
            if !t.named {
                t.fail(format!(
                    "{} refused file(s) not named by check, e.g. {:?}",
                    unnamed.len(),
                    unnamed[0]
                ));
            }
        } else {
            t.named = true;
        }
        if !t.detected {
            // Passing is acceptable only where nothing is lost, and only
            // for one copy of the dictionary (the other serves; check
            // warns). Damage to the body of a key file that did not open
            // the repository is detected too: its label binds the body
            // (format 7).
            let dictionary = kind == "dictionary" && t.warned;
            if !(t.survived && dictionary) {
                t.fail("check did not detect the damage".into());
            }
        }

        if kind == "index" {
            let r = run(&mut c.cmd(["rebuild-index"]));
            let mut ok = r.status.success();
            for (i, (id, want)) in self.base.snapshots.iter().enumerate() {
                let target = out.join(format!("rebuilt{i}"));
                run(&mut c.cmd([OsStr::new("restore"), id.as_ref(), target.as_os_str()]));
                ok &= &image(&target) == want;
            }
            ok &= run(&mut c.cmd(["check", "--read-data"])).status.success();
            t.rebuilt = Some(ok);
            if !ok {
                t.fail(format!(
                    "rebuild-index did not recover everything: {}",
                    text(&r.stderr)
                ));
            }
        }

        if mount {
            self.mount(&mut t);
        }
        t.failures = t
            .failures
            .iter()
            .map(|f| {
                format!(
                    "trial {n} ({kind}, {damage}, {} at {} of {file}, {} cache): {f}",
                    damage,
                    t.at,
                    if warm { "warm" } else { "empty" }
                )
            })
            .collect();
        t
    }

    /// Mounts the damaged repository and reads every file of every
    /// snapshot: the right bytes or an error, never others.
    fn mount(&self, t: &mut Trial) {
        let c = self.coffre();
        let mnt = self.dir.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let child = c
            .cmd(["mount".as_ref(), mnt.as_os_str()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start coffre mount");
        let mut guard = MountGuard {
            child: Some(child),
            path: mnt.clone(),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !is_mounted(&mnt) {
            if let Some(Ok(Some(_))) = guard.child.as_mut().map(|c| c.try_wait()) {
                // Refused to mount (the repository did not open): nothing read.
                t.mount = Some(true);
                return;
            }
            if std::time::Instant::now() > deadline {
                t.fail("mount did not come up".into());
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Every version of every path, for folders that cannot be matched
        // to one snapshot.
        let mut ok = true;
        // One snapshot a day: one dated folder each, in order.
        let folders: Vec<String> = list(&mnt)
            .into_iter()
            .filter(|n| n.starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        let by_folder = folders.len() == self.base.snapshots.len();
        let mut read = 0;
        for (fi, folder) in folders.iter().enumerate() {
            let got = image(&mnt.join(folder));
            read += got.len();
            for (path, item) in &got {
                let right = if by_folder {
                    self.base.snapshots[fi].1.get(path) == Some(item)
                } else {
                    self.base
                        .snapshots
                        .iter()
                        .any(|(_, w)| w.get(path) == Some(item))
                };
                if !right {
                    ok = false;
                    t.fail(format!("mount: {folder}/{path} read with wrong contents"));
                }
            }
        }
        guard.stop();
        if read == 0
            && t.refused
                < self
                    .base
                    .snapshots
                    .iter()
                    .map(|(_, w)| w.len() as u64)
                    .sum()
        {
            ok = false;
            t.fail("mount: no file could be read, though restore read some".into());
        }
        t.mount = Some(ok);
    }
}

/// Stops a `coffre mount` child and unmounts, even when the trial fails.
struct MountGuard {
    child: Option<std::process::Child>,
    path: PathBuf,
}

impl MountGuard {
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if is_mounted(&self.path) {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.path)
                .status();
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `cp -a from to`.
fn cp(from: &Path, to: &Path) {
    let out = run(Command::new("cp").arg("-a").arg(from).arg(to));
    assert!(
        out.status.success(),
        "cp -a {}: {}",
        from.display(),
        text(&out.stderr)
    );
}

/// Damages `path` between `lo` and `hi`; returns the offset touched.
fn damage_file(path: &Path, damage: &str, lo: u64, hi: u64, rng: &mut Rng) -> u64 {
    let mut bytes = std::fs::read(path).unwrap();
    let at = rng.range(lo, hi.max(lo + 1)).min(bytes.len() as u64 - 1) as usize;
    match damage {
        "flip-bit" => bytes[at] ^= 1 << rng.below(8),
        "flip-byte" => bytes[at] ^= rng.range(1, 256) as u8,
        "zero-run" => {
            let end = (at + rng.range(1, 65) as usize).min(bytes.len());
            if bytes[at..end].iter().all(|b| *b == 0) {
                // Already zero: nothing would change; flip instead.
                bytes[at] ^= 0xFF;
            } else {
                bytes[at..end].fill(0);
            }
        }
        "truncate" => bytes.truncate(at),
        "append" => {
            let len = rng.range(1, 65) as usize;
            let extra = rng.bytes(len);
            bytes.extend_from_slice(&extra);
            std::fs::write(path, &bytes).unwrap();
            return bytes.len() as u64 - extra.len() as u64;
        }
        _ => unreachable!("{damage}"),
    }
    std::fs::write(path, &bytes).unwrap();
    at as u64
}

/// What `check --json` said.
#[derive(Default)]
struct Verdict {
    /// The repository opened (a JSON report came out).
    opened: bool,
    errors: Vec<String>,
    warnings: Vec<String>,
    /// (short snapshot id, path) named damaged.
    damaged: Vec<(String, String)>,
}

impl Verdict {
    fn of(out: &Output) -> Self {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return Verdict::default();
        };
        let r = &v["report"];
        let strings = |a: &serde_json::Value| -> Vec<String> {
            a.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Verdict {
            opened: r.is_object(),
            errors: strings(&r["errors"]),
            warnings: strings(&r["warnings"]),
            damaged: r["damaged_files"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|d| {
                            (
                                d["snapshot"].as_str().unwrap_or("").to_owned(),
                                d["path"].as_str().unwrap_or("").to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Whether check named `path` of snapshot `id`: the file, a folder
    /// above it, the snapshot itself, or the whole repository.
    fn names(&self, id: &str, path: &str) -> bool {
        if !self.opened {
            return true;
        }
        let snap = |s: &str| !s.is_empty() && id.starts_with(s);
        let short = &id[..8.min(id.len())];
        self.errors
            .iter()
            .any(|e| e.starts_with(&format!("snapshot {short}")))
            || self.damaged.iter().any(|(s, p)| {
                snap(s) && (p == "/" || p == path || path.starts_with(&format!("{p}/")))
            })
    }
}

/// One trial's outcome.
#[derive(Default)]
struct Trial {
    kind: &'static str,
    damage: &'static str,
    warm: bool,
    file: String,
    at: u64,
    check_exit: i32,
    detected: bool,
    opened: bool,
    warned: bool,
    named: bool,
    survived: bool,
    exact: u64,
    refused: u64,
    wrong: u64,
    rebuilt: Option<bool>,
    mount: Option<bool>,
    failures: Vec<String>,
    message: String,
}

impl Trial {
    const HEADER: &'static str = "trial\tkind\tdamage\tcache\tfile\tat\tcheck_exit\tdetected\topened\twarned\tnamed\tsurvived\texact\trefused\twrong\trebuilt\tmount\tfailures\tmessage";

    fn fail(&mut self, why: String) {
        self.failures.push(why);
    }

    fn line(&self, n: usize) -> String {
        let opt = |o: Option<bool>| match o {
            None => "-",
            Some(true) => "ok",
            Some(false) => "FAIL",
        };
        format!(
            "{n}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.kind,
            self.damage,
            if self.warm { "warm" } else { "empty" },
            self.file,
            self.at,
            self.check_exit,
            u8::from(self.detected),
            u8::from(self.opened),
            u8::from(self.warned),
            u8::from(self.named),
            u8::from(self.survived),
            self.exact,
            self.refused,
            self.wrong,
            opt(self.rebuilt),
            opt(self.mount),
            self.failures.len(),
            self.message
        )
    }
}
