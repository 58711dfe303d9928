//! `coffre key`, end to end: several passphrases, removal, change, and a
//! recovery sheet that opens the repository alone.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

struct Repo {
    tmp: tempfile::TempDir,
    repo: PathBuf,
}

impl Repo {
    fn new(pass: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        let r = Repo { tmp, repo };
        r.ok(pass, &["init"]);
        r
    }

    fn run(&self, pass: &str, args: &[&str]) -> Output {
        common::coffre(self.tmp.path(), pass)
            .args(args)
            .output()
            .expect("run coffre")
    }

    fn ok(&self, pass: &str, args: &[&str]) -> String {
        let out = self.run(pass, args);
        assert!(
            out.status.success(),
            "coffre {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn opens(&self, pass: &str) -> bool {
        self.run(pass, &["snapshots"]).status.success()
    }

    fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.tmp.path().join(name);
        fs::write(&p, content).expect("write");
        p
    }

    fn key_files(&self) -> usize {
        fs::read_dir(self.repo.join("keys")).expect("keys").count()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

#[test]
fn several_passphrases_added_changed_and_removed() {
    let r = Repo::new("pharmacien un deux");
    let src = r.tmp.path().join("src");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("a.txt"), "ordonnance").expect("write");
    r.ok("pharmacien un deux", &["snapshot", path(&src)]);
    let snapshots_before = fs::read_dir(r.repo.join("snapshots")).expect("dir").count();

    let new = r.file("prestataire.txt", "prestataire trois quatre\n");
    r.ok(
        "pharmacien un deux",
        &[
            "key",
            "add",
            "--name",
            "prestataire",
            "--new-password-file",
            path(&new),
        ],
    );
    assert!(r.opens("prestataire trois quatre"));
    assert!(r.opens("pharmacien un deux"));
    let list = r.ok("prestataire trois quatre", &["--json", "key", "list"]);
    assert!(list.contains("\"name\": \"prestataire\""), "{list}");
    assert!(list.contains("\"name\": \"initial\""), "{list}");
    assert_eq!(list.matches("\"current\": true").count(), 1, "{list}");

    // A second key of the same name is refused.
    let again = r.run(
        "pharmacien un deux",
        &[
            "key",
            "add",
            "--name",
            "prestataire",
            "--new-password-file",
            path(&new),
        ],
    );
    assert!(!again.status.success());

    // passwd: the new passphrase opens, the old one no longer does; data untouched.
    let changed = r.file("nouveau.txt", "pharmacien cinq six\n");
    r.ok(
        "pharmacien un deux",
        &["key", "passwd", "--new-password-file", path(&changed)],
    );
    assert!(r.opens("pharmacien cinq six"));
    assert!(
        !r.opens("pharmacien un deux"),
        "old passphrase refused after passwd"
    );
    let refused = r.run("pharmacien un deux", &["snapshots"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("wrong passphrase"));
    assert_eq!(
        fs::read_dir(r.repo.join("snapshots")).expect("dir").count(),
        snapshots_before
    );
    let out = r.tmp.path().join("out");
    r.ok("pharmacien cinq six", &["restore", "latest", path(&out)]);
    assert_eq!(
        fs::read_to_string(out.join("a.txt")).expect("read"),
        "ordonnance"
    );

    // remove: the staff member who left can no longer open it.
    r.ok("pharmacien cinq six", &["key", "remove", "prestataire"]);
    assert!(!r.opens("prestataire trois quatre"));
    assert_eq!(r.key_files(), 1);
    // The last key cannot be removed.
    let list = r.ok("pharmacien cinq six", &["--json", "key", "list"]);
    let id = list
        .split("\"id\": \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("an id");
    let last = r.run("pharmacien cinq six", &["key", "remove", id]);
    assert!(!last.status.success());
    assert!(String::from_utf8_lossy(&last.stderr).contains("last"));
    assert!(r.opens("pharmacien cinq six"));

    // A too short new passphrase changes nothing.
    let short = r.file("court.txt", "abc\n");
    let res = r.run(
        "pharmacien cinq six",
        &[
            "key",
            "add",
            "--name",
            "x",
            "--new-password-file",
            path(&short),
        ],
    );
    assert!(!res.status.success());
    assert_eq!(r.key_files(), 1);
}

#[test]
fn a_recovery_sheet_opens_the_repository_alone() {
    let r = Repo::new("pharmacien un deux");
    for ext in ["txt", "html", "pdf"] {
        let sheet = r.tmp.path().join(format!("feuille.{ext}"));
        r.ok(
            "pharmacien un deux",
            &[
                "key",
                "recovery-sheet",
                "--out",
                path(&sheet),
                "--name",
                &format!("secours-{ext}"),
            ],
        );
        let bytes = fs::read(&sheet).expect("sheet written");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&sheet).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let text = String::from_utf8_lossy(&bytes);
        // The key: 8 groups of 5 characters.
        let key = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .find(|w| w.len() == 47 && w.matches('-').count() == 7)
            .unwrap_or_else(|| panic!("no recovery key in the {ext} sheet"))
            .to_string();
        assert!(r.opens(&key), "the {ext} sheet's key opens the repository");
        // Typed by hand from paper: lower case, spaces instead of dashes.
        let typed = key.to_ascii_lowercase().replace('-', " ");
        let out = r.run(&typed, &["snapshots"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("recovery key"),
            "a repository opened with the recovery key says so"
        );
        if ext == "pdf" {
            assert!(bytes.starts_with(b"%PDF-1.4") && bytes.ends_with(b"%%EOF\n"));
        }
    }
    // An existing file is never overwritten, and no key is added then.
    let keys = r.key_files();
    let existing = r.file("existe.html", "x");
    let res = r.run(
        "pharmacien un deux",
        &[
            "key",
            "recovery-sheet",
            "--out",
            path(&existing),
            "--name",
            "autre",
        ],
    );
    assert!(!res.status.success());
    assert_eq!(fs::read_to_string(&existing).expect("read"), "x");
    assert_eq!(r.key_files(), keys);
}
