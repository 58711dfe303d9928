//! The backup drive is untrusted: it leaves the building every night and
//! anyone may write to it. This file proves, through the real `coffre`
//! binary, that whatever was done below the repository folder meanwhile
//! (a folder swapped for a symbolic link to a decoy outside the repository,
//! on the same or another filesystem; a folder hidden under a bind mount; a
//! fifo, a link to `/dev/zero` or a 1 TiB sparse file named like an object,
//! beside the real objects or in place of one), every command (`snapshots`,
//! `check`, `check --read-data`, `restore`, `mount`, `snapshot`,
//! `rebuild-index`, `prune`, `forget --prune`):
//!
//! - finishes within a minute (it is killed and the test fails otherwise);
//! - does not panic, exits 0 or 1 (3 for a partial snapshot), and when it
//!   fails says why on stderr, naming the tampered path where there is one;
//! - stays below 1 GiB of peak memory (its own `ru_maxrss`, from `wait4`);
//! - touches nothing outside the repository: each decoy (name, type, size,
//!   mode, times, inode, link count, content digest) is the same after every
//!   command as before;
//! - loses nothing: once the tampering is undone, every snapshot still listed
//!   restores bit-exact, and `check --read-data` passes (at worst after a
//!   `rebuild-index`, noted). Prune runs with `--max-unused 0%`, so any blob
//!   it wrongly believes unused is really dropped and this catches it;
//! - and what it does return (a restored tree, a file read through the mount)
//!   is right.
//!
//! The repositories are tiny (a generated tree of a few dozen files and one
//! of 1 MiB, two snapshots) and made with a cheap key derivation, so the
//! hundreds of runs stay quick. Cases are tables; a failure names the case
//! and the command. Bind mounts need root (skipped with a note otherwise)
//! and are always unmounted, even when the test fails.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use coffre_tests::mount::is_mounted;
use coffre_tests::{
    capture, diff_trees, digest_bytes, json_string_fields, Coffre, Rng, TreeImage, TEST_PASSWORD,
};
use snapshots_format::backend::LocalBackend;
use snapshots_format::format::keyfile::KdfParams;
use snapshots_format::owner::Owner;
use snapshots_format::Repository;

/// Longer than any command needs on these repositories by two orders of
/// magnitude: reaching it means a hang (a fifo opened for reading, a read of
/// `/dev/zero` or of a 1 TiB file).
const DEADLINE: Duration = Duration::from_secs(60);

/// Peak resident memory allowed to one command, in KiB (`ru_maxrss` unit).
const MAX_RSS_KIB: i64 = 1 << 20;

/// A pid no process can have (above the kernel's largest `pid_max`), so a
/// temporary file named with it is, to Coffre, a leftover of a dead writer
/// and deletable: exactly what must never be deleted outside the repository.
const DEAD_PID: u32 = 4_000_000_000;

// ---------------------------------------------------------------------------
// Generated source and the pristine repository.

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `digits` lowercase hex digits derived from `seed`.
fn hex(seed: u64, digits: usize) -> String {
    let mut rng = Rng(seed ^ 0x6865_7821);
    let mut s = String::new();
    while s.len() < digits {
        s.push_str(&format!("{:016x}", rng.next()));
    }
    s.truncate(digits);
    s
}

const SOURCE_DIRS: [&str; 5] = [
    "",
    "ordonnances",
    "ordonnances/2024",
    "stock",
    "config/postes",
];
const BIG: &str = "stock/stock.db";

fn piece(i: u64) -> String {
    let dir = SOURCE_DIRS[i as usize % SOURCE_DIRS.len()];
    if dir.is_empty() {
        format!("piece-{i:02}.dat")
    } else {
        format!("{dir}/piece-{i:02}.dat")
    }
}

/// Day 1: 32 files of 0.3 to 24 KB in nested folders, and a 1 MiB database.
fn write_source_day1(src: &Path) {
    for d in SOURCE_DIRS {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    for i in 0..32u64 {
        let len = 300 + (i as usize * 2671) % 24_000;
        fs::write(src.join(piece(i)), bytes(i, len)).unwrap();
    }
    fs::write(src.join(BIG), bytes(1000, 1 << 20)).unwrap();
}

/// Day 2: some files rewritten, one removed, one added, the database
/// patched in the middle; so day 1 keeps data of its own, which a prune
/// that lost track of it would delete.
fn write_source_day2(src: &Path) {
    for i in (0..32u64).step_by(6) {
        let len = 300 + (i as usize * 2671) % 24_000;
        fs::write(src.join(piece(i)), bytes(i + 500, len)).unwrap();
    }
    fs::remove_file(src.join(piece(9))).unwrap();
    fs::write(src.join("ordonnances/2024/nouvelle.dat"), bytes(77, 5000)).unwrap();
    let mut db = fs::read(src.join(BIG)).unwrap();
    db[300_000..304_096].copy_from_slice(&bytes(2000, 4096));
    fs::write(src.join(BIG), db).unwrap();
}

/// Argon2 parameters cheap enough for hundreds of runs; the CLI reads them
/// from the key file.
fn cheap_kdf() -> KdfParams {
    KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    }
}

/// A repository holding two snapshots of a generated source, copied for
/// each case, never used directly.
struct Pristine {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    repo: PathBuf,
    /// The source as snapshotted on day 1 and day 2 (it stays at day 2).
    days: [TreeImage; 2],
    /// The two snapshot ids, oldest first.
    ids: [String; 2],
    /// `data/xx` of the largest pack, and that pack's name.
    pack_dir: String,
    pack: String,
    /// One index file's name.
    index_file: String,
    /// The only key file's name.
    key_file: String,
}

impl Pristine {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("officine");
        let coffre = Coffre::new(tmp.path().join("repo"));
        let backend = LocalBackend::open_for_init(&coffre.repo).expect("create the repository");
        drop(
            Repository::init_with(
                Arc::new(backend),
                &coffre.cache_dir(),
                TEST_PASSWORD.as_bytes(),
                cheap_kdf(),
            )
            .expect("init the repository"),
        );
        write_source_day1(&src);
        let day1 = capture(&src);
        let id1 = coffre.snapshot(&src);
        write_source_day2(&src);
        let day2 = capture(&src);
        let id2 = coffre.snapshot(&src);

        let mut packs: Vec<(u64, String, String)> = Vec::new();
        for sub in fs::read_dir(coffre.repo.join("data")).unwrap() {
            let sub = sub.unwrap();
            for f in fs::read_dir(sub.path()).unwrap() {
                let f = f.unwrap();
                packs.push((
                    f.metadata().unwrap().len(),
                    format!("data/{}", sub.file_name().to_string_lossy()),
                    f.file_name().to_string_lossy().into_owned(),
                ));
            }
        }
        packs.sort();
        let (_, pack_dir, pack) = packs.pop().expect("the snapshots wrote packs");
        let first = |dir: &str| {
            let mut names: Vec<String> = fs::read_dir(coffre.repo.join(dir))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
                .into_iter()
                .next()
                .unwrap_or_else(|| panic!("nothing in {dir}"))
        };
        Self {
            index_file: first("index"),
            key_file: first("keys"),
            src,
            repo: coffre.repo.clone(),
            days: [day1, day2],
            ids: [id1, id2],
            pack_dir,
            pack,
            _tmp: tmp,
        }
    }
}

/// `cp -a` of a repository: same tree, same permission bits, new inodes (a
/// case may rewrite or delete anything in its copy).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let meta = fs::symlink_metadata(e.path()).unwrap();
        let dest = to.join(e.file_name());
        if meta.is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            assert!(meta.is_file(), "unexpected {}", e.path().display());
            fs::copy(e.path(), &dest).unwrap();
        }
        fs::set_permissions(&dest, fs::Permissions::from_mode(meta.mode() & 0o7777)).unwrap();
    }
}

// ---------------------------------------------------------------------------
// Running coffre with a time bound and a memory measure.

/// How one run ended.
struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    rss_kib: i64,
    took: Duration,
}

impl Outcome {
    fn describe(&self) -> String {
        format!(
            "exit code {:?}, signal {:?}, after {:.1} s, peak RSS {} MiB\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            self.signal,
            self.took.as_secs_f64(),
            self.rss_kib / 1024,
            shorten(&self.stdout),
            shorten(&self.stderr)
        )
    }
}

/// The first lines and the last of a long output: a restore that fails
/// lists every file, and the failure report must stay readable.
fn shorten(text: &str) -> String {
    const HEAD: usize = 8;
    const TAIL: usize = 4;
    let lines: Vec<&str> = text.trim_end().lines().collect();
    if lines.len() <= HEAD + TAIL + 1 {
        return lines.join("\n");
    }
    format!(
        "{}\n[... {} lines ...]\n{}",
        lines[..HEAD].join("\n"),
        lines.len() - HEAD - TAIL,
        lines[lines.len() - TAIL..].join("\n")
    )
}

/// A child reaped with `wait4`, which also gives that child's own peak
/// memory (`getrusage(RUSAGE_CHILDREN)` would mix in every other child of
/// this multi-threaded test process). std's `Child` never reaps on its own,
/// so the pid is ours alone to wait for.
struct Proc {
    /// Kept only so that the handle lives as long as the pid is ours; never
    /// waited on through std (that would race with `wait4`).
    _child: std::process::Child,
    pid: libc::pid_t,
    reaped: bool,
    out: PathBuf,
    err: PathBuf,
    started: Instant,
}

impl Proc {
    /// Starts `cmd`, its stdout and stderr going to files under `logs` (files,
    /// not pipes: a chatty child never blocks on a full pipe).
    fn spawn(cmd: &mut Command, logs: &Path) -> Proc {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let out = logs.join(format!("{n}.out"));
        let err = logs.join(format!("{n}.err"));
        cmd.stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Proc {
            pid: child.id() as libc::pid_t,
            _child: child,
            reaped: false,
            out,
            err,
            started: Instant::now(),
        }
    }

    fn wait4(&mut self, flags: libc::c_int) -> Option<Outcome> {
        if self.reaped {
            return None;
        }
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is a valid value of this plain C struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: waiting for our own child; the pointers are valid.
            let r = unsafe { libc::wait4(self.pid, &mut status, flags, &mut ru) };
            if r == self.pid {
                break;
            }
            if r == 0 {
                return None;
            }
            let e = std::io::Error::last_os_error();
            assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "wait4: {e}");
        }
        self.reaped = true;
        let (code, signal) = if libc::WIFEXITED(status) {
            (Some(libc::WEXITSTATUS(status)), None)
        } else if libc::WIFSIGNALED(status) {
            (None, Some(libc::WTERMSIG(status)))
        } else {
            (None, None)
        };
        let read =
            |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
        Some(Outcome {
            code,
            signal,
            stdout: read(&self.out),
            stderr: read(&self.err),
            rss_kib: ru.ru_maxrss,
            took: self.started.elapsed(),
        })
    }

    /// The outcome if the child has exited.
    fn try_finish(&mut self) -> Option<Outcome> {
        self.wait4(libc::WNOHANG)
    }

    /// Waits until the child exits or `DEADLINE` after its start; `Err` with
    /// what it wrote if it had to be killed.
    fn finish(&mut self) -> Result<Outcome, Outcome> {
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(out) = self.try_finish() {
                return Ok(out);
            }
            if self.started.elapsed() > DEADLINE {
                return Err(self.kill().expect("the killed child is reaped"));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: libc::c_int) {
        if !self.reaped {
            // SAFETY: signalling our own child, not yet reaped, so the pid
            // cannot belong to another process.
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    fn kill(&mut self) -> Option<Outcome> {
        self.signal(libc::SIGKILL);
        self.wait4(0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `coffre mount` in a test: whatever happens, the process is gone and the
/// folder unmounted when this drops. (`coffre_tests::mount::Mounted` is not
/// used: it panics when the mount refuses to start, which a tampered drive
/// may rightly cause, and it keeps neither the exit status, stderr nor
/// peak memory this file checks.)
struct MountRun {
    proc: Proc,
    path: PathBuf,
}

impl Drop for MountRun {
    fn drop(&mut self) {
        // Killing the server first also fails, with ENOTCONN, any read still
        // blocked in the mount.
        self.proc.kill();
        if is_mounted(&self.path) {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.path)
                .status();
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// A bind mount below the repository, lazily unmounted on drop so that a
/// failing test leaves nothing mounted.
struct BindMount {
    path: PathBuf,
}

impl BindMount {
    /// `mount --bind from onto`; `None` (after printing why) when this
    /// machine does not allow it.
    fn new(from: &Path, onto: &Path) -> Option<Self> {
        let out = Command::new("mount")
            .arg("--bind")
            .arg(from)
            .arg(onto)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "note: mount --bind refused here ({}): bind-mount cases skipped",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Self {
            path: onto.to_path_buf(),
        })
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

// ---------------------------------------------------------------------------
// What is watched outside the repository.

/// Every entry below a folder (the folder included), each described by
/// type, size, mode, inode, link count, mtime, ctime and content digest or
/// link target. A file written, replaced, linked, chmod-ed, or created then
/// removed (the folder's mtime) changes it.
fn listing(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let m = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
        let ft = m.file_type();
        let what = if ft.is_symlink() {
            format!("link to {}", fs::read_link(&p).unwrap().display())
        } else if ft.is_file() {
            format!("file {}", digest_bytes(&fs::read(&p).unwrap()))
        } else if ft.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
            "folder".into()
        } else {
            "special".into()
        };
        out.insert(
            format!("./{}", rel.display()),
            format!(
                "{what}, size {}, mode {:o}, inode {}, {} links, mtime {}.{:09}, ctime {}.{:09}",
                m.len(),
                m.mode(),
                m.ino(),
                m.nlink(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec()
            ),
        );
    }
    out
}

/// A folder outside the repository and its listing when the case began.
struct Watched {
    dir: PathBuf,
    before: BTreeMap<String, String>,
}

impl Watched {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            before: listing(dir),
        }
    }

    /// The differences with the listing taken at the start, one per line.
    fn changes(&self) -> Vec<String> {
        let now = listing(&self.dir);
        let mut out = Vec::new();
        for (k, v) in &self.before {
            match now.get(k) {
                None => out.push(format!("{k}: removed (was {v})")),
                Some(w) if w != v => out.push(format!("{k}: was {v}, now {w}")),
                _ => {}
            }
        }
        for (k, w) in &now {
            if !self.before.contains_key(k) {
                out.push(format!("{k}: created ({w})"));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Tamperings.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Folder {
    Tmp,
    Pack,
    Index,
    Keys,
    Locks,
    Snapshots,
}

const FOLDERS: [Folder; 6] = [
    Folder::Tmp,
    Folder::Pack,
    Folder::Index,
    Folder::Keys,
    Folder::Locks,
    Folder::Snapshots,
];

impl Folder {
    fn rel(self, p: &Pristine) -> String {
        match self {
            Folder::Tmp => "tmp".into(),
            Folder::Pack => p.pack_dir.clone(),
            Folder::Index => "index".into(),
            Folder::Keys => "keys".into(),
            Folder::Locks => "locks".into(),
            Folder::Snapshots => "snapshots".into(),
        }
    }

    /// A name of exactly the form Coffre gives its own objects there.
    fn object_name(self, p: &Pristine, seed: u64) -> String {
        match self {
            Folder::Tmp => {
                // This machine, this boot, a writer that cannot be running:
                // what Coffre's clean-up of `tmp/` deletes.
                let me = Owner::current();
                format!(
                    "{:016x}-{:016x}-{DEAD_PID}-{}-{}.tmp",
                    me.host,
                    me.boot,
                    1000 + seed,
                    hex(seed, 16)
                )
            }
            Folder::Pack => format!("{}{}", &p.pack_dir[5..], hex(seed, 62)),
            Folder::Index | Folder::Snapshots => hex(seed, 64),
            Folder::Keys => hex(seed, 16),
            Folder::Locks => format!("{}-{}", ["x", "s", "m"][seed as usize % 3], hex(seed, 16)),
        }
    }
}

/// Where a folder's symbolic link points.
#[derive(Clone, Copy, Debug)]
enum LinkTo {
    /// A decoy folder beside the repository.
    Decoy,
    /// A decoy folder on another filesystem (`/dev/shm`).
    DecoyElsewhere,
    /// A folder of `/proc`, another filesystem with nothing to compare.
    Proc(&'static str),
}

/// What takes an object's name.
#[derive(Clone, Copy, Debug)]
enum Thing {
    Fifo,
    LinkToDevZero,
    SparseTiB,
}

#[derive(Clone, Copy, Debug)]
enum Tamper {
    /// The folder moved out of the repository, a symbolic link in its place.
    Link(Folder, LinkTo),
    /// A decoy bind-mounted over the folder (from `/dev/shm` if `elsewhere`).
    Bind(Folder, bool),
    /// A hostile entry with an object's name in the folder: a new name, or
    /// (`in_place`) the name of a real object, moved out of the repository.
    Entry(Folder, Thing, bool),
}

/// How to put the repository back as it was.
enum Undo {
    Link {
        link: PathBuf,
        original: PathBuf,
    },
    Bind(BindMount),
    Entry {
        entry: PathBuf,
        original: Option<PathBuf>,
    },
}

/// Dresses `dir`, outside the repository, as `folder`: copies of the real
/// objects found in `original`, random bytes under names shaped like
/// Coffre's objects there (a temporary file of a dead writer in the `tmp`
/// decoy), files Coffre has no business with, and a subfolder.
fn make_decoy(dir: &Path, folder: Folder, p: &Pristine, original: &Path) {
    fs::create_dir_all(dir.join("sous-dossier")).unwrap();
    for e in fs::read_dir(original).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    for seed in 0..3u64 {
        let len = 200 + seed as usize * 1500;
        fs::write(dir.join(folder.object_name(p, seed)), bytes(seed + 90, len)).unwrap();
    }
    fs::write(
        dir.join("sous-dossier").join(folder.object_name(p, 7)),
        bytes(7, 300),
    )
    .unwrap();
    fs::write(
        dir.join("LISEZMOI.txt"),
        "Ne pas effacer : archives du pharmacien\n",
    )
    .unwrap();
    fs::write(dir.join("ABCDEF0123456789"), bytes(11, 100)).unwrap();
    fs::write(dir.join(".cache"), bytes(12, 50)).unwrap();
}

// ---------------------------------------------------------------------------
// A case: a fresh copy of the repository, tampered with, every command run.

/// The commands, in the order they run on each tampered repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Snapshots,
    Check,
    CheckReadData,
    Restore,
    Mount,
    Snapshot,
    RebuildIndex,
    Prune,
    ForgetPrune,
}

const STEPS: [Step; 9] = [
    Step::Snapshots,
    Step::Check,
    Step::CheckReadData,
    Step::Restore,
    Step::Mount,
    Step::Snapshot,
    Step::RebuildIndex,
    Step::Prune,
    Step::ForgetPrune,
];

struct Case<'p> {
    name: String,
    p: &'p Pristine,
    tmp: tempfile::TempDir,
    coffre: Coffre,
    logs: PathBuf,
    watched: Vec<Watched>,
    /// When a command fails, its message must contain one of these (the
    /// tampered path), if any.
    mention: Vec<String>,
    /// Decoys on another filesystem.
    elsewhere: Vec<tempfile::TempDir>,
    seq: usize,
    /// Exit code of each step, for the summary line.
    codes: Vec<(Step, String)>,
    /// The first line of each failure's message, shown with
    /// `COFFRE_TEST_VERBOSE=1`.
    messages: Vec<String>,
    /// Whether `coffre mount` can work here at all.
    fuse: bool,
}

/// Whether `coffre mount` works here at all, found once by mounting an
/// untampered copy: otherwise a mount refused for want of FUSE would be
/// blamed on the tampering.
fn fuse_works(p: &Pristine) -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        let mut probe = Case::new(p, "FUSE probe".into());
        let mnt = probe.fresh("mnt");
        let works = match probe.start_mount(&mnt) {
            Ok(mut m) => {
                m.proc.signal(libc::SIGTERM);
                let _ = m.proc.finish();
                true
            }
            Err(_) => false,
        };
        if !works {
            eprintln!(
                "note: coffre mount does not work on this machine (FUSE): mount steps skipped"
            );
        }
        works
    })
}

/// A temporary folder on another filesystem than the test's, if any.
fn elsewhere_dir() -> Option<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let here = fs::metadata(std::env::temp_dir()).ok()?.dev();
    let there = fs::metadata(shm).ok()?;
    if !there.is_dir() || there.dev() == here {
        return None;
    }
    tempfile::Builder::new()
        .prefix("coffre-hostile-")
        .tempdir_in(shm)
        .ok()
}

impl<'p> Case<'p> {
    fn new(p: &'p Pristine, name: String) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let coffre = Coffre::new(tmp.path().join("repo"));
        copy_tree(&p.repo, &coffre.repo);
        let logs = tmp.path().join("logs");
        fs::create_dir(&logs).unwrap();
        Self {
            name,
            p,
            tmp,
            coffre,
            logs,
            watched: Vec::new(),
            mention: Vec::new(),
            elsewhere: Vec::new(),
            seq: 0,
            codes: Vec::new(),
            messages: Vec::new(),
            fuse: false,
        }
    }

    fn fresh(&mut self, what: &str) -> PathBuf {
        self.seq += 1;
        self.tmp.path().join(format!("{what}-{}", self.seq))
    }

    fn mention_path(&mut self, rel: &str) {
        let full = self.coffre.repo.join(rel);
        self.mention.push(full.display().to_string());
        if let Ok(canon) = fs::canonicalize(&self.coffre.repo) {
            self.mention.push(canon.join(rel).display().to_string());
        }
    }

    /// Applies the tampering; `None` when this machine cannot do it.
    fn tamper(&mut self, t: Tamper) -> Option<Undo> {
        let p = self.p;
        match t {
            Tamper::Link(folder, to) => {
                let rel = folder.rel(p);
                let link = self.coffre.repo.join(&rel);
                let target = match to {
                    LinkTo::Decoy => {
                        let d = self.tmp.path().join("decoy");
                        make_decoy(&d, folder, p, &link);
                        d
                    }
                    LinkTo::DecoyElsewhere => {
                        let t = elsewhere_dir()?;
                        let d = t.path().join("decoy");
                        self.elsewhere.push(t);
                        make_decoy(&d, folder, p, &link);
                        d
                    }
                    LinkTo::Proc(path) => PathBuf::from(path),
                };
                let original = self.tmp.path().join("original");
                fs::rename(&link, &original).unwrap();
                symlink(&target, &link).unwrap();
                if !matches!(to, LinkTo::Proc(_)) {
                    self.watched.push(Watched::new(&target));
                }
                self.watched.push(Watched::new(&original));
                self.mention_path(&rel);
                Some(Undo::Link { link, original })
            }
            Tamper::Bind(folder, elsewhere) => {
                let rel = folder.rel(p);
                let onto = self.coffre.repo.join(&rel);
                let decoy = if elsewhere {
                    let t = elsewhere_dir()?;
                    let d = t.path().join("decoy");
                    self.elsewhere.push(t);
                    d
                } else {
                    self.tmp.path().join("decoy")
                };
                make_decoy(&decoy, folder, p, &onto);
                let guard = BindMount::new(&decoy, &onto)?;
                self.watched.push(Watched::new(&decoy));
                self.mention_path(&rel);
                Some(Undo::Bind(guard))
            }
            Tamper::Entry(folder, thing, in_place) => {
                let dir = self.coffre.repo.join(folder.rel(p));
                let name = if in_place {
                    match folder {
                        Folder::Pack => p.pack.clone(),
                        Folder::Index => p.index_file.clone(),
                        Folder::Keys => p.key_file.clone(),
                        Folder::Snapshots => p.ids[0].clone(),
                        Folder::Tmp | Folder::Locks => {
                            unreachable!("no object to replace in {folder:?}")
                        }
                    }
                } else {
                    folder.object_name(p, 42)
                };
                let entry = dir.join(&name);
                let original = in_place.then(|| {
                    let aside = self.tmp.path().join("aside");
                    fs::create_dir(&aside).unwrap();
                    fs::rename(&entry, aside.join(&name)).unwrap();
                    self.watched.push(Watched::new(&aside));
                    aside.join(&name)
                });
                match thing {
                    Thing::Fifo => {
                        let c = CString::new(entry.as_os_str().as_bytes()).unwrap();
                        // SAFETY: a valid NUL-terminated path.
                        let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
                        assert_eq!(r, 0, "mkfifo: {}", std::io::Error::last_os_error());
                    }
                    Thing::LinkToDevZero => symlink("/dev/zero", &entry).unwrap(),
                    Thing::SparseTiB => File::create(&entry).unwrap().set_len(1 << 40).unwrap(),
                }
                Some(Undo::Entry { entry, original })
            }
        }
    }

    fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Link { link, original } => {
                let meta = fs::symlink_metadata(&link)
                    .unwrap_or_else(|e| panic!("[{}] the tampered link is gone: {e}", self.name));
                assert!(
                    meta.file_type().is_symlink(),
                    "[{}] {} is no longer the link put there",
                    self.name,
                    link.display()
                );
                fs::remove_file(&link).unwrap();
                fs::rename(&original, &link).unwrap();
                self.watched.retain(|w| w.dir != original);
            }
            Undo::Bind(guard) => {
                let path = guard.path.clone();
                drop(guard);
                assert!(
                    !is_mounted(&path),
                    "[{}] still mounted on {}",
                    self.name,
                    path.display()
                );
            }
            Undo::Entry { entry, original } => {
                // Coffre may rightly delete what is inside the repository
                // (a dead writer's temporary file).
                match fs::remove_file(&entry) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => panic!("remove {}: {e}", entry.display()),
                }
                if let Some(original) = original {
                    fs::rename(&original, &entry).unwrap();
                    let aside = original.parent().unwrap();
                    self.watched.retain(|w| w.dir != aside);
                }
            }
        }
    }

    /// Runs `coffre --lock-wait 5s ARGS` to completion within the deadline
    /// and checks it behaved; returns how it ended.
    fn run(&mut self, label: &str, args: &[&OsStr], allowed: &[i32]) -> Outcome {
        let what = format!("[{}] coffre {label}", self.name);
        let mut cmd = self.coffre.cmd(["--lock-wait", "5s"]);
        cmd.args(args);
        let mut proc = Proc::spawn(&mut cmd, &self.logs);
        let out = proc.finish().unwrap_or_else(|out| {
            panic!(
                "{what}: still running after {} s, killed\n{}",
                DEADLINE.as_secs(),
                out.describe()
            )
        });
        self.check_sane(&what, &out, allowed);
        out
    }

    fn check_sane(&mut self, what: &str, out: &Outcome, allowed: &[i32]) {
        if out.code != Some(0) {
            let first = out.stderr.lines().find(|l| !l.trim().is_empty());
            self.messages
                .push(format!("{what}: {}", first.unwrap_or("(nothing)")));
        }
        assert!(
            out.code.is_some_and(|c| allowed.contains(&c)),
            "{what}: exit status must be one of {allowed:?}\n{}",
            out.describe()
        );
        for bad in ["internal error", "panicked"] {
            assert!(
                !out.stderr.contains(bad),
                "{what}: crashed ({bad})\n{}",
                out.describe()
            );
        }
        assert!(
            out.rss_kib < MAX_RSS_KIB,
            "{what}: peak memory {} MiB, above 1 GiB\n{}",
            out.rss_kib / 1024,
            out.describe()
        );
        if out.code == Some(1) {
            assert!(
                !out.stderr.trim().is_empty(),
                "{what}: failed without a word on stderr\n{}",
                out.describe()
            );
            assert!(
                self.mention.is_empty() || self.mention.iter().any(|m| out.stderr.contains(m)),
                "{what}: the error does not name the tampered path {}\n{}",
                self.mention.first().map(String::as_str).unwrap_or(""),
                out.describe()
            );
        }
    }

    fn assert_untouched(&self, after: &str) {
        for w in &self.watched {
            let changes = w.changes();
            assert!(
                changes.is_empty(),
                "[{}] {after} changed {}, outside the repository:\n  {}",
                self.name,
                w.dir.display(),
                changes.join("\n  ")
            );
        }
    }

    fn assert_restores(&self, what: &str, target: &Path, day: usize) {
        let diffs = diff_trees(&self.p.days[day], &capture(target));
        assert!(
            diffs.is_empty(),
            "{what}: the restored tree is not day {} of the source:\n  {}",
            day + 1,
            diffs.join("\n  ")
        );
    }

    fn step(&mut self, step: Step) -> i32 {
        let src = self.p.src.clone();
        let out = match step {
            Step::Snapshots => self.run("snapshots", &["snapshots".as_ref()], &[0, 1]),
            Step::Check => self.run("check", &["check".as_ref()], &[0, 1]),
            Step::CheckReadData => self.run(
                "check --read-data",
                &["check".as_ref(), "--read-data".as_ref()],
                &[0, 1],
            ),
            Step::Restore => {
                let target = self.fresh("restore");
                let out = self.run(
                    "restore latest",
                    &["restore".as_ref(), "latest".as_ref(), target.as_os_str()],
                    &[0, 1],
                );
                if out.code == Some(0) {
                    let what = format!("[{}] coffre restore latest (exit 0)", self.name);
                    self.assert_restores(&what, &target, 1);
                }
                out
            }
            Step::Mount => return self.mount(),
            Step::Snapshot => self.run(
                "snapshot SRC",
                &["snapshot".as_ref(), src.as_os_str()],
                &[0, 1, 3],
            ),
            Step::RebuildIndex => self.run("rebuild-index", &["rebuild-index".as_ref()], &[0, 1]),
            // No unused space allowed: every blob no listed snapshot uses
            // is dropped, so a snapshot prune failed to see would lose data.
            Step::Prune => self.run(
                "prune --max-unused 0%",
                &["prune".as_ref(), "--max-unused".as_ref(), "0%".as_ref()],
                &[0, 1],
            ),
            Step::ForgetPrune => {
                let first = self.p.ids[0].clone();
                self.run(
                    "forget DAY1 --prune --max-unused 0%",
                    &[
                        "forget".as_ref(),
                        first.as_ref(),
                        "--prune".as_ref(),
                        "--max-unused".as_ref(),
                        "0%".as_ref(),
                    ],
                    &[0, 1],
                )
            }
        };
        out.code.unwrap_or(-1)
    }

    /// Starts `coffre mount` on a new folder `mnt` and waits until it is
    /// mounted (`Ok`) or has exited (`Err`, how).
    fn start_mount(&mut self, mnt: &Path) -> Result<MountRun, Outcome> {
        fs::create_dir(mnt).unwrap();
        let mut cmd = self.coffre.cmd([
            "--lock-wait".as_ref(),
            "5s".as_ref(),
            "mount".as_ref(),
            mnt.as_os_str(),
        ]);
        let mut m = MountRun {
            proc: Proc::spawn(&mut cmd, &self.logs),
            path: mnt.to_path_buf(),
        };
        while !is_mounted(mnt) {
            if let Some(out) = m.proc.try_finish() {
                return Err(out);
            }
            if m.proc.started.elapsed() > DEADLINE {
                let out = m.proc.kill().expect("the killed child is reaped");
                panic!(
                    "[{}] coffre mount: neither mounted nor exited within {} s\n{}",
                    self.name,
                    DEADLINE.as_secs(),
                    out.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(m)
    }

    /// Mounts, lists the root and `latest`, reads two files, stops. Refusing
    /// to mount and EIO on reads are fine; a hang, a crash, wrong bytes or a
    /// mount left behind are not.
    fn mount(&mut self) -> i32 {
        let what = format!("[{}] coffre mount", self.name);
        let mnt = self.fresh("mnt");
        let mut m = match self.start_mount(&mnt) {
            Ok(m) => m,
            Err(out) => {
                // Refused before mounting: must be a clean failure.
                self.check_sane(&format!("{what} (refused)"), &out, &[1]);
                return 1;
            }
        };

        let files: Vec<(String, Vec<u8>)> = [piece(3), BIG.to_string()]
            .into_iter()
            .map(|rel| {
                let content = fs::read(self.p.src.join(&rel)).unwrap();
                (rel, content)
            })
            .collect();
        let (tx, rx) = mpsc::channel();
        let root = mnt.clone();
        // A read blocked in the kernel cannot be interrupted from here; a
        // thread plus killing the server unblocks it.
        std::thread::spawn(move || {
            let _ = tx.send(browse(&root, files));
        });
        let (failed, wrong) = match rx.recv_timeout(DEADLINE) {
            Ok(r) => r,
            Err(e) => {
                drop(m);
                panic!("{what}: listing or reading the mount did not finish: {e}");
            }
        };
        m.proc.signal(libc::SIGTERM);
        let out = m.proc.finish().unwrap_or_else(|out| {
            panic!(
                "{what}: did not stop within 60 s of SIGTERM\n{}",
                out.describe()
            )
        });
        self.check_sane(&format!("{what} (stopped)"), &out, &[0, 1]);
        assert!(
            !is_mounted(&mnt),
            "{what}: still mounted after the process ended"
        );
        assert!(
            wrong.is_empty(),
            "{what}: wrong bytes read through the mount:\n  {}",
            wrong.join("\n  ")
        );
        for f in failed {
            eprintln!("[{}] mount: {f} (allowed)", self.name);
        }
        out.code.unwrap_or(-1)
    }

    /// Runs every command in order, checking after each that nothing
    /// outside the repository changed; returns the exit code of `forget`.
    fn exercise(&mut self) -> i32 {
        let mut forget = 1;
        for step in STEPS {
            if step == Step::Mount && !self.fuse {
                self.codes.push((step, "skipped".into()));
                continue;
            }
            let code = self.step(step);
            if step == Step::ForgetPrune {
                forget = code;
            }
            self.codes.push((step, code.to_string()));
            self.assert_untouched(&format!("coffre {step:?}"));
        }
        forget
    }

    /// Restores snapshot `id` into a fresh folder: `None` if that gives
    /// the source of its day bit-exact, else what went wrong.
    fn restore_problem(&mut self, id: &str, when: &str) -> Option<String> {
        let target = self.fresh("verify");
        let label = format!("restore {} ({when})", &id[..12]);
        let out = self.run(
            &label,
            &["restore".as_ref(), id.as_ref(), target.as_os_str()],
            &[0, 1],
        );
        if out.code != Some(0) {
            return Some(format!("coffre {label}: {}", out.describe()));
        }
        let day = usize::from(id != self.p.ids[0]);
        let diffs = diff_trees(&self.p.days[day], &capture(&target));
        (!diffs.is_empty()).then(|| {
            format!(
                "coffre {label}: exit 0 but not day {}:\n  {}",
                day + 1,
                diffs.join("\n  ")
            )
        })
    }

    /// After the tampering is undone: day 2 is still there (and day 1 unless
    /// `forget` removed it), each listed snapshot restores bit-exact, and
    /// `check --read-data` passes. When not, `rebuild-index` tells an index
    /// that lost track of data still on the drive (a failure: restores
    /// failed) from data really gone (a worse one); a check that fails only
    /// before it (stale index entries, nothing lost) is printed as a note.
    fn assert_nothing_lost(&mut self, forget: i32) {
        self.mention.clear();
        let out = self.run(
            "--json snapshots (after undoing)",
            &["--json".as_ref(), "snapshots".as_ref()],
            &[0],
        );
        let ids = json_string_fields(&out.stdout, "id");
        assert!(
            ids.contains(&self.p.ids[1]),
            "[{}] day 2's snapshot is gone\n{}",
            self.name,
            out.describe()
        );
        // A failed `forget --prune` may have forgotten and then refused to
        // prune; what matters is that whatever is listed restores.
        assert!(
            forget != 0 || !ids.contains(&self.p.ids[0]),
            "[{}] day 1's snapshot is still listed though forget succeeded\n{}",
            self.name,
            out.describe()
        );
        let failed: Vec<(String, String)> = ids
            .iter()
            .filter_map(|id| {
                self.restore_problem(id, "after undoing")
                    .map(|p| (id.clone(), p))
            })
            .collect();
        let check = self.run(
            "check --read-data (after undoing)",
            &["check".as_ref(), "--read-data".as_ref()],
            &[0, 1],
        );
        self.assert_untouched("undoing the tampering");
        if failed.is_empty() && check.code == Some(0) {
            return;
        }
        self.run(
            "rebuild-index (after undoing)",
            &["rebuild-index".as_ref()],
            &[0, 1],
        );
        let lost: Vec<String> = failed
            .iter()
            .filter_map(|(id, _)| self.restore_problem(id, "after undoing and rebuild-index"))
            .collect();
        let check2 = self.run(
            "check --read-data (after undoing and rebuild-index)",
            &["check".as_ref(), "--read-data".as_ref()],
            &[0, 1],
        );
        assert!(
            lost.is_empty() && check2.code == Some(0),
            "[{}] DATA LOST: once the tampering is undone, even after `coffre rebuild-index`:\n{}\n\ncoffre check --read-data: {}",
            self.name,
            lost.join("\n\n"),
            check2.describe()
        );
        assert!(
            failed.is_empty(),
            "[{}] once the tampering is undone, kept snapshots do not restore until `coffre rebuild-index` is run (their data is on the drive; the index files lost track of it):\n{}",
            self.name,
            failed
                .iter()
                .map(|(_, p)| p.as_str())
                .collect::<Vec<_>>()
                .join("\n\n")
        );
        eprintln!(
            "note: [{}] check --read-data failed once the tampering was undone and passed after rebuild-index (stale index entries, nothing lost): {}",
            self.name,
            check.stderr.lines().next().unwrap_or("")
        );
    }
}

/// What the mount shows: the root and `latest` listed, then each file read.
/// Returns what could not be read (allowed) and what read wrong (not).
fn browse(root: &Path, files: Vec<(String, Vec<u8>)>) -> (Vec<String>, Vec<String>) {
    let (mut failed, mut wrong) = (Vec::new(), Vec::new());
    for dir in [root.to_path_buf(), root.join("latest")] {
        let r: std::io::Result<Vec<_>> = fs::read_dir(&dir).and_then(|d| d.collect());
        if let Err(e) = r {
            failed.push(format!("listing {}: {e}", dir.display()));
        }
    }
    for (rel, want) in files {
        match fs::read(root.join("latest").join(&rel)) {
            Ok(got) if got == want => {}
            Ok(got) => wrong.push(format!(
                "latest/{rel}: read {} bytes that are not the source's {}",
                got.len(),
                want.len()
            )),
            Err(e) => failed.push(format!("reading latest/{rel}: {e}")),
        }
    }
    (failed, wrong)
}

/// One case from start to end; prints a summary line (exit code of each
/// command) even when it fails, and returns the failure.
fn run_case(p: &Pristine, t: Tamper) -> Result<(), String> {
    let mut case = Case::new(p, format!("{t:?}"));
    case.fuse = fuse_works(p);
    let started = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Dropped while unwinding too: a bind mount never outlives the case.
        let Some(undo) = case.tamper(t) else {
            eprintln!("note: {t:?} cannot be set up on this machine: skipped");
            return;
        };
        let forget = case.exercise();
        case.undo(undo);
        case.assert_nothing_lost(forget);
    }));
    let codes: Vec<String> = case
        .codes
        .iter()
        .map(|(s, c)| format!("{s:?}={c}"))
        .collect();
    let summary = format!(
        "{:<40} {} ({:.1} s)",
        case.name,
        codes.join(" "),
        started.elapsed().as_secs_f64()
    );
    eprintln!("{summary}{}", if result.is_err() { " FAILED" } else { "" });
    if std::env::var_os("COFFRE_TEST_VERBOSE").is_some() {
        for m in &case.messages {
            eprintln!("    {m}");
        }
    }
    result.map_err(|e| {
        let message = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| format!("[{t:?}] panicked"));
        // Which commands ran, and how they ended, before the failure.
        format!("exit codes: {summary}\n{message}")
    })
}

/// Runs every case (one failure does not hide the next), then fails with
/// all the failures, and checks the source was never written.
fn run_cases(p: &Pristine, cases: &[Tamper]) {
    let failures: Vec<String> = cases.iter().filter_map(|t| run_case(p, *t).err()).collect();
    let diffs = diff_trees(&p.days[1], &capture(&p.src));
    assert!(
        diffs.is_empty(),
        "the source changed:\n  {}",
        diffs.join("\n  ")
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------
// The cases.

/// Each of `tmp`, a `data/xx` holding a pack, `index`, `keys`, `locks` and
/// `snapshots` replaced by a symbolic link to a decoy folder dressed as the
/// real one (copies of its objects, object-shaped names, foreign files), on
/// the same filesystem and on another; and links into `/proc`.
#[test]
fn symlinked_folders_are_refused_and_decoys_untouched() {
    let p = Pristine::new();
    let mut cases = Vec::new();
    for folder in FOLDERS {
        cases.push(Tamper::Link(folder, LinkTo::Decoy));
        cases.push(Tamper::Link(folder, LinkTo::DecoyElsewhere));
    }
    cases.push(Tamper::Link(
        Folder::Snapshots,
        LinkTo::Proc("/proc/self/fd"),
    ));
    cases.push(Tamper::Link(Folder::Tmp, LinkTo::Proc("/proc/self")));
    run_cases(&p, &cases);
}

/// A decoy bind-mounted over `locks` and over a `data/xx` holding a pack
/// (from the same filesystem, and from another): another mount below the
/// repository root is refused like a link.
#[test]
fn bind_mounts_below_the_repository_are_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("note: not root: bind-mount cases skipped");
        return;
    }
    let p = Pristine::new();
    run_cases(
        &p,
        &[
            Tamper::Bind(Folder::Locks, false),
            Tamper::Bind(Folder::Pack, false),
            Tamper::Bind(Folder::Pack, true),
        ],
    );
}

const THINGS: [Thing; 3] = [Thing::Fifo, Thing::LinkToDevZero, Thing::SparseTiB];

/// In each folder, beside the real objects, a fifo, a link to `/dev/zero`
/// and a 1 TiB sparse file, each named like an object of that folder.
#[test]
fn fifos_device_links_and_huge_files_beside_objects_are_harmless() {
    let p = Pristine::new();
    let cases: Vec<Tamper> = FOLDERS
        .iter()
        .flat_map(|f| THINGS.iter().map(|t| Tamper::Entry(*f, *t, false)))
        .collect();
    run_cases(&p, &cases);
}

/// The same three things in place of a real object: the key file, the
/// largest pack, an index file, day 1's snapshot record (moved out of the
/// repository, and back once the commands have run).
#[test]
fn fifos_device_links_and_huge_files_in_place_of_objects_are_harmless() {
    let p = Pristine::new();
    let folders = [Folder::Keys, Folder::Pack, Folder::Index, Folder::Snapshots];
    let cases: Vec<Tamper> = folders
        .iter()
        .flat_map(|f| THINGS.iter().map(|t| Tamper::Entry(*f, *t, true)))
        .collect();
    run_cases(&p, &cases);
}
