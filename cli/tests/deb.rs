//! The Debian package, end to end: `scripts/build-deb` packages the coffre
//! this test run built (the debug build: the packaging is what is tested,
//! and a release build would add minutes), then dpkg installs it, coffre,
//! its man pages, completions and configuration are used, it is upgraded
//! with an edited configuration, removed (the configuration stays) and
//! purged (nothing stays).
//!
//! It changes the machine, so it runs only as root with dpkg, and never
//! where Coffre is already installed or configured: it is skipped, with a
//! notice, when a `coffre` package is known to dpkg (installed, or removed
//! with its configuration kept), or when /usr/bin/coffre, /etc/coffre or
//! /var/cache/coffre exists. It needs dpkg-dev (dpkg-shlibdeps), fuse3 (the
//! package depends on it), and cargo-deb (scripts/build-deb installs it
//! when missing); man-db for the `man` checks.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Every path the package installs under these folders is its own; the
/// folders themselves are shared with other packages.
const SHARED_DIRS: &[&str] = &[
    "/etc",
    "/usr",
    "/usr/bin",
    "/usr/share",
    "/usr/share/bash-completion",
    "/usr/share/bash-completion/completions",
    "/usr/share/doc",
    "/usr/share/fish",
    "/usr/share/fish/vendor_completions.d",
    "/usr/share/man",
    "/usr/share/man/man1",
    "/usr/share/zsh",
    "/usr/share/zsh/vendor-completions",
];

const CONFFILE: &str = "/etc/coffre/coffre.toml";

#[test]
fn deb_builds_installs_upgrades_removes_and_purges() {
    if let Some(why) = reason_to_skip() {
        eprintln!("deb: skipped: {why}");
        return;
    }
    for (tool, package) in [("dpkg-shlibdeps", "dpkg-dev"), ("fusermount3", "fuse3")] {
        assert!(
            on_path(tool),
            "{tool} not found: apt-get install {package} (the package needs it)"
        );
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let deb = build_deb(&tmp.path().join("1"), &[]);
    let files = package_files(&deb);

    // What the package holds, before anything is installed.
    for path in [
        "/usr/bin/coffre",
        "/usr/share/man/man1/coffre.1.gz",
        "/usr/share/man/man1/coffre-snapshot.1.gz",
        "/usr/share/man/man1/coffre-key-add.1.gz",
        "/usr/share/bash-completion/completions/coffre",
        "/usr/share/zsh/vendor-completions/_coffre",
        "/usr/share/fish/vendor_completions.d/coffre.fish",
        CONFFILE,
        "/usr/share/doc/coffre/copyright",
        "/usr/share/doc/coffre/README.md",
        "/usr/share/doc/coffre/GUIDE.md",
        "/usr/share/doc/coffre/CONFIG.md",
        "/usr/share/doc/coffre/NAS.md",
        "/usr/share/doc/coffre/FORMAT.md",
        "/usr/share/doc/coffre/PACKAGING.md",
        "/usr/share/doc/coffre/examples/coffre.toml",
        "/usr/share/doc/coffre/examples/systemd/coffre-snapshot.service",
        "/usr/share/doc/coffre/examples/systemd/coffre-snapshot.timer",
        "/usr/share/doc/coffre/examples/systemd/coffre-mount.service",
    ] {
        assert!(
            files.iter().any(|f| f == path),
            "{path} not in the package: {files:#?}"
        );
    }
    assert!(
        !files.iter().any(|f| f.contains("/systemd/system")),
        "no unit may be installed where systemd loads it: {files:#?}"
    );
    assert!(
        !files.iter().any(|f| f.contains("generate-docs")),
        "the hidden generate-docs has no page"
    );
    let depends = run_ok(
        Command::new("dpkg-deb")
            .arg("--field")
            .arg(&deb)
            .arg("Depends"),
    );
    assert!(
        depends.contains("fuse3") && depends.contains("libc6"),
        "Depends: {depends}"
    );
    let conffiles = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("dpkg-deb --ctrl-tarfile \"$1\" | tar -xO ./conffiles")
            .arg("sh")
            .arg(&deb),
    );
    assert_eq!(conffiles.trim(), CONFFILE);

    // Install. The guard purges the package if anything below fails.
    let _guard = Purge;
    dpkg_install(&deb);
    assert_eq!(package_status().as_deref(), Some("install ok installed"));

    let version = run_ok(installed_coffre().arg("--version"));
    assert_eq!(
        version.trim(),
        format!("coffre {}", env!("CARGO_PKG_VERSION"))
    );
    // The shipped configuration is valid, as the installed coffre reads it
    // by default (warnings, e.g. the passphrase file not written yet, are fine).
    run_ok(installed_coffre().args(["config", "check"]));
    let help = run_ok(installed_coffre().args(["snapshot", "--help"]));
    assert!(help.contains("--exclude"), "{help}");

    if on_path("man") {
        let page = run_ok(Command::new("man").args(["-w", "coffre"]));
        assert_eq!(page.trim(), "/usr/share/man/man1/coffre.1.gz");
        for (name, text) in [("coffre", "coffre-snapshot"), ("coffre-key-add", "--name")] {
            let shown = run_ok(
                Command::new("man")
                    .arg(name)
                    .env("MANPAGER", "cat")
                    .env("MANWIDTH", "200")
                    .env("LC_ALL", "C.UTF-8"),
            );
            let shown = shown.replace(['\u{2010}', '\u{2212}'], "-");
            assert!(shown.contains(text), "man {name} lacks {text}:\n{shown}");
        }
    } else {
        eprintln!("deb: `man` not found (apt-get install man-db): man pages checked as files only");
    }
    if on_path("bash") {
        // The completion script loads and registers its function.
        let registered = run_ok(
            Command::new("bash")
                .arg("-c")
                .arg("source /usr/share/bash-completion/completions/coffre && complete -p coffre"),
        );
        assert!(registered.contains("coffre"), "{registered}");
    }
    let etc = std::fs::metadata("/etc/coffre").expect("/etc/coffre");
    assert_eq!(
        etc.permissions().mode() & 0o7777,
        0o700,
        "/etc/coffre is root's only"
    );
    let conf = std::fs::metadata(CONFFILE).expect("conffile");
    assert_eq!(conf.permissions().mode() & 0o7777, 0o600);
    assert_eq!(
        std::fs::read(CONFFILE).unwrap(),
        std::fs::read(workspace().join("packaging/coffre.toml")).unwrap(),
        "the conffile is packaging/coffre.toml"
    );

    // Upgrade to a new revision: the administrator's edits and folder mode stay,
    // without a question (the packaged file did not change).
    let mut edited = std::fs::read_to_string(CONFFILE).unwrap();
    edited.push_str("# edited by the deb test\n");
    std::fs::write(CONFFILE, &edited).unwrap();
    let deb2 = build_deb(&tmp.path().join("2"), &["--deb-revision", "2"]);
    dpkg_install(&deb2);
    let version = run_ok(Command::new("dpkg-query").args(["-W", "-f=${Version}", "coffre"]));
    assert_eq!(version, format!("{}-2", env!("CARGO_PKG_VERSION")));
    assert_eq!(std::fs::read_to_string(CONFFILE).unwrap(), edited);
    let etc = std::fs::metadata("/etc/coffre").expect("/etc/coffre");
    assert_eq!(etc.permissions().mode() & 0o7777, 0o700);

    // Remove: only the configuration stays.
    run_ok(Command::new("dpkg").args(["--remove", "coffre"]));
    assert_eq!(
        package_status().as_deref(),
        Some("deinstall ok config-files")
    );
    for f in &files {
        if f == CONFFILE || f == "/etc/coffre" {
            assert!(Path::new(f).exists(), "{f} must stay after remove");
        } else if !SHARED_DIRS.contains(&f.as_str()) {
            assert!(!Path::new(f).exists(), "{f} left after remove");
        }
    }
    assert_eq!(std::fs::read_to_string(CONFFILE).unwrap(), edited);

    // Purge: nothing stays.
    run_ok(Command::new("dpkg").args(["--purge", "coffre"]));
    assert_eq!(package_status(), None);
    for f in &files {
        if !SHARED_DIRS.contains(&f.as_str()) {
            assert!(!Path::new(f).exists(), "{f} left after purge");
        }
    }
    assert!(!Path::new("/var/cache/coffre").exists());
}

/// Why this machine must not run the test, if it must not.
fn reason_to_skip() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (dpkg -i needs it)".into());
    }
    for tool in ["dpkg", "dpkg-deb", "dpkg-query"] {
        if !on_path(tool) {
            return Some(format!("{tool} not found (not a Debian system)"));
        }
    }
    if let Some(status) = package_status() {
        return Some(format!(
            "a coffre package is known to dpkg ({status}); this test would replace it \
             (`dpkg --purge coffre` first, if it is a leftover of this test)"
        ));
    }
    for path in ["/usr/bin/coffre", "/etc/coffre", "/var/cache/coffre"] {
        if Path::new(path).exists() {
            return Some(format!(
                "{path} exists: Coffre is installed or configured here by hand"
            ));
        }
    }
    None
}

/// The workspace's folder.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs scripts/build-deb on this test's coffre; returns the .deb.
fn build_deb(out: &Path, extra: &[&str]) -> PathBuf {
    let started = std::time::Instant::now();
    let stdout = run_ok(
        Command::new(workspace().join("scripts/build-deb"))
            .arg("--binary")
            .arg(env!("CARGO_BIN_EXE_coffre"))
            .arg("--out")
            .arg(out)
            .arg("--")
            .args(extra)
            .current_dir(workspace()),
    );
    let deb = PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("build-deb prints the .deb")
            .trim(),
    );
    assert!(deb.is_file(), "{}", deb.display());
    eprintln!("deb: built {} in {:.1?}", deb.display(), started.elapsed());
    deb
}

/// Paths in the package's data, absolute, without a trailing slash.
fn package_files(deb: &Path) -> Vec<String> {
    let listing = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("dpkg-deb --fsys-tarfile \"$1\" | tar -t")
            .arg("sh")
            .arg(deb),
    );
    listing
        .lines()
        .map(|l| l.trim_start_matches('.').trim_end_matches('/').to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// `dpkg -i`, never asking a question: a question (a conffile conflict)
/// reads end of file and fails the test.
fn dpkg_install(deb: &Path) {
    run_ok(
        Command::new("dpkg")
            // Minimal Debian images (Docker) exclude man pages and docs for
            // every package; these bring back Coffre's, to check them.
            .arg("--path-include=/usr/share/man/man1/coffre*")
            .arg("--path-include=/usr/share/doc/coffre/*")
            .arg("--install")
            .arg(deb)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
}

/// dpkg's status line for the coffre package, if dpkg knows it at all.
fn package_status() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "coffre"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !status.is_empty() && status != "unknown ok not-installed")
        .then_some(status)
}

/// The installed coffre, away from any configuration but the machine's.
fn installed_coffre() -> Command {
    let mut cmd = Command::new("/usr/bin/coffre");
    for var in [
        "COFFRE_CONFIG",
        "COFFRE_CONFIG_DEFAULT",
        "COFFRE_REPO",
        "COFFRE_DRIVE",
        "COFFRE_PASSWORD",
        "COFFRE_PASSWORD_FILE",
        "COFFRE_CACHE_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Runs a command with no input; its stdout, or a panic with everything it said.
#[track_caller]
fn run_ok(cmd: &mut Command) -> String {
    let out: Output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Purges the package when dropped, so that a failed test leaves the
/// machine as it found it.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if package_status().is_some() {
            let _ = Command::new("dpkg")
                .args(["--purge", "coffre"])
                .stdin(Stdio::null())
                .status();
        }
    }
}
