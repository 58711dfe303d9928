//! `coffre snapshot` options, end to end with the real binary: excludes,
//! several sources, hooks (`--before`, `--after`, `--from-command`),
//! `--skip-if-unchanged` and `--cross-filesystems`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

const PASS: &str = "snapshot options passphrase";

struct Repo {
    tmp: tempfile::TempDir,
    repo: PathBuf,
}

impl Repo {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        let r = Repo { tmp, repo };
        r.ok(&["init"]);
        r
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn run(&self, args: &[&str]) -> Output {
        common::coffre(self.tmp.path(), PASS)
            .args(args)
            .output()
            .expect("run coffre")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "coffre {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every path of the latest snapshot.
    fn listing(&self) -> BTreeSet<String> {
        self.ok(&["ls", "latest", "-R"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn snapshot_count(&self) -> usize {
        fs::read_dir(self.repo.join("snapshots"))
            .expect("snapshots folder")
            .count()
    }

    /// Every object file of the repository's data and index folders.
    fn stored_objects(&self) -> BTreeSet<PathBuf> {
        let mut out = BTreeSet::new();
        for top in ["data", "index"] {
            let mut stack = vec![self.repo.join(top)];
            while let Some(dir) = stack.pop() {
                for e in fs::read_dir(&dir).expect("read_dir").flatten() {
                    if e.path().is_dir() {
                        stack.push(e.path());
                    } else {
                        out.insert(e.path());
                    }
                }
            }
        }
        out
    }
}

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, data).expect("write");
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn excludes_and_several_sources_keep_exactly_the_expected_files() {
    let r = Repo::new();
    let officine = r.path("srv/officine");
    write(&officine.join("db/officine.fdb"), b"base");
    write(&officine.join("db/officine.lck"), b"lock");
    write(&officine.join("documents/~$contrat.docx"), b"office lock");
    write(&officine.join("documents/contrat.docx"), b"contrat");
    write(&officine.join("documents/Thumbs.db"), b"thumbs");
    write(&officine.join("tmp/sess_1.tmp"), b"scratch");
    write(&officine.join("cache/index.bin"), b"cache");
    write(&officine.join("logs/officine.log"), b"log");
    write(&officine.join("logs/officine.log.1"), b"old log");
    write(&officine.join("logs/archive/officine.log.2"), b"older log");
    write(&officine.join("video/.nobackup"), b"");
    write(&officine.join("video/formation.mp4"), &[7u8; 5000]);
    write(&officine.join("gros.iso"), &[1u8; 3000]);
    let scans = r.path("scans");
    write(&scans.join("2026/ordonnance.jpg"), b"jpg");
    write(&scans.join("2026/ordonnance.tmp"), b"partial");
    let list = r.path("exclusions.txt");
    fs::write(
        &list,
        "# pharmacy software\r\n*.lck\r\n~$*\r\n\r\nThumbs.db\r\n",
    )
    .expect("write list");

    r.ok(&[
        "snapshot",
        officine.to_str().expect("utf8"),
        scans.to_str().expect("utf8"),
        "--exclude",
        "*.tmp",
        "--exclude",
        "cache/",
        "--exclude",
        "officine/logs/*.log.?",
        "--exclude-file",
        list.to_str().expect("utf8"),
        "--exclude-if-present",
        ".nobackup",
        "--exclude-larger-than",
        "2K",
    ]);
    assert_eq!(
        r.listing(),
        set(&[
            "officine",
            "officine/db",
            "officine/db/officine.fdb",
            "officine/documents",
            "officine/documents/contrat.docx",
            "officine/logs",
            "officine/logs/archive",
            "officine/logs/archive/officine.log.2",
            "officine/logs/officine.log",
            "officine/tmp",
            "scans",
            "scans/2026",
            "scans/2026/ordonnance.jpg",
        ])
    );
    let json = r.ok(&["--json", "snapshots"]);
    assert!(json.contains("\"excluded_count\": 9"), "{json}");
    assert!(json.contains("--exclude-file"), "{json}");

    // The restore puts each source in its own folder, bit-exact.
    let out = r.path("out");
    r.ok(&["restore", "latest", out.to_str().expect("utf8")]);
    assert_eq!(
        fs::read(out.join("officine/db/officine.fdb")).expect("read"),
        b"base"
    );
    assert_eq!(
        fs::read(out.join("scans/2026/ordonnance.jpg")).expect("read"),
        b"jpg"
    );
    assert!(!out.join("officine/gros.iso").exists());

    // A bad pattern is refused before anything is written.
    let before = r.snapshot_count();
    let bad = r.run(&[
        "snapshot",
        officine.to_str().expect("utf8"),
        "--exclude",
        "[abc",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("[abc"));
    assert_eq!(r.snapshot_count(), before);
}

#[test]
fn a_failing_before_command_leaves_no_snapshot_and_no_data() {
    let r = Repo::new();
    let src = r.path("src");
    write(&src.join("a.txt"), b"first");
    r.ok(&["snapshot", src.to_str().expect("utf8")]);
    write(&src.join("b.txt"), &[9u8; 100_000]);
    let objects = r.stored_objects();
    let report = r.path("after.txt");
    let after = format!(
        "echo \"$COFFRE_RESULT $COFFRE_EXIT_CODE [$COFFRE_SNAPSHOT_ID] $COFFRE_ERROR\" > {}",
        report.display()
    );
    let out = r.run(&[
        "snapshot",
        src.to_str().expect("utf8"),
        "--before",
        "echo base occupee >&2; exit 4",
        "--after",
        &after,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exited with code 4") && stderr.contains("base occupee"),
        "{stderr}"
    );
    assert_eq!(r.snapshot_count(), 1);
    assert_eq!(r.stored_objects(), objects, "no new data on the drive");
    let told = fs::read_to_string(&report).expect("the after command ran");
    assert!(told.starts_with("failed 1 [] "), "{told}");
    assert!(told.contains("--before"), "{told}");

    // It succeeds: --after is told the id; the record keeps the output.
    let out = r.ok(&[
        "--json",
        "snapshot",
        src.to_str().expect("utf8"),
        "--before",
        "echo base gelee",
        "--after",
        &after,
    ]);
    let told = fs::read_to_string(&report).expect("the after command ran");
    assert!(told.starts_with("ok 0 ["), "{told}");
    let id = told
        .split(['[', ']'])
        .nth(1)
        .expect("an id between brackets");
    assert_eq!(id.len(), 64, "{told}");
    assert!(out.contains(id), "{out}");
    assert!(out.contains("base gelee"), "{out}");
}

#[test]
fn a_command_output_restores_bit_exact_and_a_failing_one_writes_nothing() {
    let r = Repo::new();
    let src = r.path("src");
    write(&src.join("a.txt"), b"data");
    // Several megabytes, so that the output is cut into many chunks.
    let dump: Vec<u8> = (0u32..3_000_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let dump_file = r.path("dump.bin");
    fs::write(&dump_file, &dump).expect("write dump");
    let cmd = format!("officine.fbk=cat {}; echo done >&2", dump_file.display());
    r.ok(&[
        "snapshot",
        src.to_str().expect("utf8"),
        "--from-command",
        &cmd,
    ]);
    let out = r.path("out");
    r.ok(&["restore", "latest", out.to_str().expect("utf8")]);
    assert!(fs::read(out.join("officine.fbk")).expect("restored dump") == dump);
    assert_eq!(fs::read(out.join("a.txt")).expect("restored"), b"data");
    let json = r.ok(&["--json", "snapshots"]);
    assert!(json.contains("\"name\": \"officine.fbk\""), "{json}");

    let failing = format!("x.sql=cat {}; exit 2", dump_file.display());
    let res = r.run(&[
        "snapshot",
        src.to_str().expect("utf8"),
        "--from-command",
        &failing,
    ]);
    assert_eq!(res.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&res.stderr).contains("exited with code 2"));
    assert_eq!(r.snapshot_count(), 1, "no snapshot for a failed command");

    // A name that is already in the source is refused before anything runs.
    let clash = r.run(&[
        "snapshot",
        src.to_str().expect("utf8"),
        "--from-command",
        "a.txt=echo",
    ]);
    assert!(!clash.status.success());
    assert!(String::from_utf8_lossy(&clash.stderr).contains("already exists"));
}

#[test]
fn skip_if_unchanged_writes_nothing_when_nothing_changed() {
    let r = Repo::new();
    let src = r.path("src");
    write(&src.join("a.txt"), b"one");
    let s = src.to_str().expect("utf8");
    r.ok(&["snapshot", s, "--skip-if-unchanged"]);
    assert_eq!(r.snapshot_count(), 1);
    let said = r.ok(&["snapshot", s, "--skip-if-unchanged"]);
    assert!(said.contains("Nothing changed"), "{said}");
    assert_eq!(r.snapshot_count(), 1);
    write(&src.join("a.txt"), b"two");
    r.ok(&["snapshot", s, "--skip-if-unchanged"]);
    assert_eq!(r.snapshot_count(), 2);
    r.ok(&["snapshot", s]);
    assert_eq!(r.snapshot_count(), 3, "without the flag, always written");
    // A freeze command around an unchanged folder changes nothing either.
    let said = r.ok(&["snapshot", s, "--skip-if-unchanged", "--before", "true"]);
    assert!(said.contains("Nothing changed"), "{said}");
    assert_eq!(r.snapshot_count(), 3);
}

#[test]
fn other_filesystems_are_kept_empty_unless_asked() {
    let r = Repo::new();
    let src = r.path("src");
    write(&src.join("a.txt"), b"here");
    let inner = src.join("monte");
    fs::create_dir_all(&inner).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "coffre-test"])
        .arg(&inner)
        .status();
    if !matches!(mounted, Ok(s) if s.success()) {
        eprintln!("SKIPPED other_filesystems_are_kept_empty_unless_asked: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _guard = Unmount(inner.clone());
    fs::write(inner.join("ailleurs.txt"), b"other filesystem").expect("write");
    let s = src.to_str().expect("utf8");
    // By default the walk stays on the source's filesystem and says where
    // it stopped.
    let out = r.run(&["snapshot", s]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("monte is another filesystem") && said.contains("--cross-filesystems"),
        "{said}"
    );
    assert_eq!(r.listing(), set(&["a.txt", "monte"]));
    r.ok(&["snapshot", s, "--cross-filesystems"]);
    assert!(r.listing().contains("monte/ailleurs.txt"));
    // -x, the flag of other tools, is still accepted (and is the default).
    r.ok(&["snapshot", s, "-x"]);
    assert_eq!(r.listing(), set(&["a.txt", "monte"]));
    // An excluded mount point is not warned about.
    let out = r.run(&["snapshot", s, "--exclude", "monte"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("another filesystem"));
}

/// `coffre snapshot` with no flags takes everything from the configuration:
/// repository, passphrase file, sources, excludes, hooks; a flag adds to it.
#[test]
fn a_configuration_drives_the_snapshot_with_no_flags() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    write(&t.join("officine/db/base.fdb"), b"base");
    write(&t.join("officine/db/base.lck"), b"lock");
    write(&t.join("officine/tmp/x.tmp"), b"scratch");
    write(&t.join("scans/a.jpg"), b"jpg");
    fs::write(t.join("passphrase"), format!("{PASS}\n")).expect("passphrase");
    let marker = t.join("before-ran");
    let config = t.join("coffre.toml");
    fs::write(
        &config,
        format!(
            r#"password_file = "{t}/passphrase"
cache_dir = "{t}/cache"

[[repository]]
name = "lundi"
path = "{t}/repo"

[snapshot]
sources = ["{t}/officine", "{t}/scans"]
label = "officine"
exclude = ["*.lck"]
before = "touch {marker}"
from_command = {{ "export.csv" = "echo 1,2,3" }}
"#,
            t = t.display(),
            marker = marker.display()
        ),
    )
    .expect("config");
    let coffre = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_coffre"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("COFFRE_REPO")
            .env_remove("COFFRE_PASSWORD")
            .env_remove("COFFRE_PASSWORD_FILE")
            .env_remove("COFFRE_CACHE_DIR")
            .env_remove("COFFRE_CONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("run coffre");
        assert!(
            out.status.success(),
            "coffre {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    coffre(&["init"]);
    coffre(&["snapshot", "--exclude", "*.tmp"]);
    assert!(marker.exists(), "the configured --before ran");
    let listing: BTreeSet<String> = coffre(&["ls", "latest", "-R"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        listing,
        set(&[
            "export.csv",
            "officine",
            "officine/db",
            "officine/db/base.fdb",
            "officine/tmp",
            "scans",
            "scans/a.jpg",
        ])
    );
    let json = coffre(&["--json", "snapshots"]);
    assert!(json.contains("\"label\": \"officine\""), "{json}");
    assert!(json.contains("\"--exclude *.lck\""), "{json}");
    assert!(json.contains("\"--exclude *.tmp\""), "{json}");
}
