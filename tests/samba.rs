//! The NAS shares of docs/NAS.md, served by a real Samba server on loopback
//! to a real SMB client (`smbclient`), logged in as a staff account (never
//! `force user = root`):
//!
//! - the browse share of the mount: dated folders, awkward names, files
//!   fetched bit-exact, and only what the recorded modes let the user read;
//! - Previous Versions (`vfs_shadow_copy2`) on the live share, reading the
//!   mount's `.previous-versions` view: one version per snapshot, old
//!   contents through `@GMT-` tokens, permissions and ACLs as recorded,
//!   writes refused, forgotten snapshots gone within seconds, the live
//!   share unaffected when the mount stops;
//! - a read-only share of `latest` whose Previous Versions are the older days.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use coffre_tests::mount::Mounted;
use coffre_tests::{describe, run_ok, text, Coffre, Fixture};

/// The staff account the shares are used with, and its Samba password.
const STAFF: &str = "coffre-staff";
const STAFF_PASSWORD: &str = "Officine-2026";
/// Another account, owner of files the staff must not read.
const OWNER: &str = "coffre-owner";

/// A private smbd on a loopback port, killed on drop.
struct Samba {
    child: Child,
    conf: PathBuf,
    port: u16,
}

impl Drop for Samba {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Samba {
    /// Writes an smb.conf with `shares` (sections as docs/NAS.md gives
    /// them) in `dir`, gives the staff account its Samba password, starts
    /// smbd and waits until `first_share` answers.
    fn start(dir: &Path, port: u16, shares: &str, first_share: &str) -> Self {
        let d = dir.display();
        for sub in ["run", "lock", "state", "cache", "private", "ncalrpc"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let conf = dir.join("smb.conf");
        std::fs::write(
            &conf,
            format!(
                "[global]
  server role = standalone server
  smb ports = {port}
  interfaces = lo
  bind interfaces only = yes
  pid directory = {d}/run
  lock directory = {d}/lock
  state directory = {d}/state
  cache directory = {d}/cache
  private dir = {d}/private
  ncalrpc dir = {d}/ncalrpc
  log file = {d}/log.%m
  load printers = no
  disable spoolss = yes

{shares}"
            ),
        )
        .unwrap();
        let mut passwd = Command::new("smbpasswd")
            .arg("-c")
            .arg(&conf)
            .args(["-a", "-s", STAFF])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("smbpasswd is installed (apt-get install samba)");
        {
            use std::io::Write;
            let mut stdin = passwd.stdin.take().unwrap();
            writeln!(stdin, "{STAFF_PASSWORD}\n{STAFF_PASSWORD}").unwrap();
        }
        let out = passwd.wait_with_output().unwrap();
        assert!(out.status.success(), "smbpasswd: {}", describe(&out));
        let child = Command::new("smbd")
            .args(["--foreground", "--no-process-group", "-s"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smbd is installed (apt-get install samba)");
        let samba = Samba { child, conf, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = samba.client(first_share, "ls");
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "smbd did not answer: {}",
                describe(&out)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        samba
    }

    /// `smbclient //127.0.0.1/SHARE -c COMMAND` as the staff account.
    fn client(&self, share: &str, command: &str) -> Output {
        Command::new("smbclient")
            .arg(format!("//127.0.0.1/{share}"))
            .args(["-p", &self.port.to_string(), "-s"])
            .arg(&self.conf)
            .arg("-U")
            .arg(format!("{STAFF}%{STAFF_PASSWORD}"))
            .args(["-c", command])
            .output()
            .expect("smbclient is installed (apt-get install smbclient)")
    }

    /// Fetches `remote` into `local` and returns its bytes, or the client's
    /// output when it fails.
    fn get(&self, share: &str, remote: &str, local: &Path) -> Result<Vec<u8>, String> {
        let _ = std::fs::remove_file(local);
        let out = self.client(share, &format!("get \"{remote}\" \"{}\"", local.display()));
        if out.status.success() {
            Ok(std::fs::read(local).unwrap())
        } else {
            Err(format!("{}{}", text(&out.stdout), text(&out.stderr)))
        }
    }

    /// The `@GMT-` versions `allinfo` lists for a file: the Previous
    /// Versions tab's entries.
    fn versions(&self, share: &str, file: &str) -> Vec<String> {
        let out = self.client(share, &format!("allinfo \"{file}\""));
        text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("@GMT-"))
            .map(|l| l.trim().to_string())
            .collect()
    }
}

/// Creates a system account if this machine lacks it (the tests run as
/// root, as CI does); returns its uid.
fn ensure_user(name: &str) -> u32 {
    let id = || {
        Command::new("id")
            .args(["-u", name])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| text(&o.stdout).trim().parse().ok())
    };
    if let Some(uid) = id() {
        return uid;
    }
    run_ok(
        Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(name),
    );
    id().expect("the account was just created")
}

fn chown(path: &Path, user: &str) {
    run_ok(Command::new("chown").arg(format!("{user}:")).arg(path));
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Lets the staff account reach the shares below a test's temporary
/// folder (created 0700).
fn open_to_staff(tmp: &Path) {
    chmod(tmp, 0o755);
}

/// Windows workstations browse the dated folders through Samba as a staff
/// account and copy files back, bit-exact; a file recorded 0600 root stays
/// closed to them.
#[test]
fn samba_serves_the_dated_folders() {
    ensure_user(STAFF);
    let Fixture { tmp, src, coffre } = Fixture::new(4);
    open_to_staff(tmp.path());
    coffre.snapshot(&src);
    let mnt = Mounted::start(
        &coffre,
        &tmp.path().join("mnt"),
        &["--allow-other", "--windows-names"],
    );
    // The share section is the browse share of docs/NAS.md.
    let samba = Samba::start(
        &tmp.path().join("samba"),
        44_551,
        &format!(
            "[sauvegardes-jours]
  path = {}
  comment = Sauvegardes Coffre, un dossier par jour (lecture seule)
  read only = yes
  browseable = yes
  valid users = {STAFF}
  vfs objects = catia
  catia:mappings = 0x22:0xf022,0x2a:0xf02a,0x3a:0xf03a,0x3c:0xf03c,0x3e:0xf03e,0x3f:0xf03f,0x5c:0xf05c,0x7c:0xf07c
  mangled names = yes
",
            mnt.path.display()
        ),
        "sauvegardes-jours",
    );
    let listing = text(&samba.client("sauvegardes-jours", "ls").stdout);
    let today = chrono_free_today();
    assert!(
        listing.contains(&today),
        "no dated folder {today} in: {listing}"
    );
    assert!(listing.contains("latest"), "no latest in: {listing}");
    assert!(
        !listing.contains(".previous-versions"),
        "the Previous Versions view is listed on the browse share: {listing}"
    );

    let fetched = tmp.path().join("fetched");
    let got = samba
        .get(
            "sauvegardes-jours",
            &format!("{today}\\db\\stock.sqlite"),
            &fetched,
        )
        .unwrap_or_else(|e| panic!("stock.sqlite (0644): {e}"));
    assert!(
        got == std::fs::read(src.join("db/stock.sqlite")).unwrap(),
        "fetched file differs"
    );
    // The pharmacy database is 0600 root on the live disk: a staff account
    // cannot read it live, nor in the backups.
    let refused = samba.get(
        "sauvegardes-jours",
        &format!("{today}\\db\\officine.fdb"),
        &fetched,
    );
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("ACCESS_DENIED")),
        "a staff account read a 0600 root file: {:?}",
        refused.map(|b| b.len())
    );

    // The awkward names are all listed and reachable: a Windows-1252 name
    // decoded (--windows-names), `:` and `?` mapped by vfs_catia, reserved
    // or trailing-dot names mangled to 8.3 forms by Samba.
    let out = samba.client("sauvegardes-jours", "cd latest\\divers; ls");
    let names = text(&out.stdout);
    for want in [
        "Facture_été_2019.pdf",
        "original.txt",
        "rapport",
        "Lisez-moi.txt",
        "LISEZ-MOI.TXT",
        "secret.key",
    ] {
        assert!(names.contains(want), "{want} not listed: {names}");
    }
    let mangled_con = names
        .lines()
        .map(str::trim)
        .find(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            t.len() > 2 && t[0].contains('~') && t[2] == "25"
        })
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("CON.txt not listed under a mangled name: {names}"))
        .to_string();
    let got = samba
        .get(
            "sauvegardes-jours",
            &format!("latest\\divers\\{mangled_con}"),
            &fetched,
        )
        .unwrap();
    assert_eq!(got, std::fs::read(src.join("divers/CON.txt")).unwrap());
    let got = samba
        .get(
            "sauvegardes-jours",
            "latest\\divers\\Facture_été_2019.pdf",
            &fetched,
        )
        .unwrap();
    let raw_name = std::ffi::OsStr::from_bytes(b"divers/Facture_\xe9t\xe9_2019.pdf");
    assert_eq!(got, std::fs::read(src.join(raw_name)).unwrap());
    drop(samba);
    mnt.stop();
}

/// The live share's Previous Versions tab, as docs/NAS.md configures it:
/// v1 and v2 snapshotted, v3 live.
#[test]
fn previous_versions_on_the_live_share() {
    let staff_uid = ensure_user(STAFF);
    ensure_user(OWNER);
    let tmp = tempfile::tempdir().unwrap();
    open_to_staff(tmp.path());
    let live = tmp.path().join("officine");
    let file = live.join("ordonnances/mme-durand.pdf");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::create_dir_all(live.join("secret")).unwrap();
    std::fs::create_dir_all(live.join("divers")).unwrap();
    chmod(&live, 0o755);
    // Staff files belong to the staff account; the ordonnancier to another
    // account, 0600; a second file of that account is opened to the staff
    // by an ACL entry.
    std::fs::write(&file, b"version 1").unwrap();
    chown(&live.join("ordonnances"), STAFF);
    chown(&file, STAFF);
    let secret = live.join("secret/ordonnancier.pdf");
    std::fs::write(&secret, b"registre").unwrap();
    chown(&secret, OWNER);
    chmod(&secret, 0o600);
    let shared = live.join("secret/partage.pdf");
    std::fs::write(&shared, b"lu par le personnel").unwrap();
    chown(&shared, OWNER);
    chmod(&shared, 0o600);
    run_ok(
        Command::new("setfacl")
            .args(["-m", &format!("u:{STAFF}:r")])
            .arg(&shared),
    );
    std::fs::write(
        live.join(std::ffi::OsStr::from_bytes(b"divers/caf\xe9.txt")),
        b"latin-1",
    )
    .unwrap();

    let coffre = Coffre::new(tmp.path().join("repo"));
    coffre.init();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let snapshot_at = |sec: i64| {
        let out = run_ok(
            coffre
                .cmd(["--json", "snapshot", "--label", "officine"])
                .arg(&live)
                .env("COFFRE_FAKE_NOW", sec.to_string()),
        );
        coffre_tests::json_string_field(&text(&out.stdout), "id").unwrap()
    };
    let first = snapshot_at(now - 2 * 86_400);
    std::fs::write(&file, b"version 2, plus longue").unwrap();
    snapshot_at(now - 86_400);
    std::fs::write(&file, b"version 3, pas encore sauvegardee").unwrap();

    let mnt = Mounted::start(
        &coffre,
        &tmp.path().join("mnt"),
        &["--allow-other", "--windows-names"],
    );
    let view = mnt.path.join(".previous-versions/officine");
    // The view is hidden from listings of the mount, yet reachable; it
    // shows names raw (Samba looks up the live share's bytes) even with
    // --windows-names, which only the browse folders use.
    let top: Vec<_> = std::fs::read_dir(&mnt.path)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(!top.iter().any(|n| n == ".previous-versions"), "{top:?}");
    let tokens: Vec<String> = {
        let mut t: Vec<String> = std::fs::read_dir(&view)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        t.sort();
        t
    };
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert!(tokens.iter().all(|t| t.starts_with("@GMT-")), "{tokens:?}");
    let raw: Vec<Vec<u8>> = std::fs::read_dir(view.join(&tokens[0]).join("divers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    assert_eq!(raw, [b"caf\xe9.txt".to_vec()]);
    let shown: Vec<String> = std::fs::read_dir(mnt.path.join("latest/divers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(shown, ["café.txt"]);

    let shares = format!(
        "[officine]
  path = {live}
  read only = no
  valid users = {STAFF}
  vfs objects = shadow_copy2
  shadow:mountpoint = {live}
  shadow:snapdir = {view}
  shadow:sort = desc
  shadow:localtime = no

[sauvegardes]
  path = {mnt}/latest
  comment = Sauvegardes Coffre (lecture seule)
  read only = yes
  valid users = {STAFF}
  vfs objects = catia shadow_copy2
  catia:mappings = 0x22:0xf022,0x2a:0xf02a,0x3a:0xf03a,0x3c:0xf03c,0x3e:0xf03e,0x3f:0xf03f,0x5c:0xf05c,0x7c:0xf07c
  mangled names = yes
  shadow:mountpoint = {mnt}/latest
  shadow:snapdir = {view}
  shadow:sort = desc
  shadow:localtime = no
",
        live = live.display(),
        view = view.display(),
        mnt = mnt.path.display()
    );
    let samba = Samba::start(&tmp.path().join("samba"), 44_552, &shares, "officine");
    let name = "ordonnances\\mme-durand.pdf";
    let versions = samba.versions("officine", name);
    let mut expected = tokens.clone();
    expected.reverse();
    assert_eq!(versions, expected, "the Previous Versions tab");
    let got = tmp.path().join("got");
    let at = |token: &str| samba.get("officine", &format!("{token}\\{name}"), &got);
    assert_eq!(at(&tokens[0]).unwrap(), b"version 1");
    assert_eq!(at(&tokens[1]).unwrap(), b"version 2, plus longue");
    assert_eq!(
        samba.get("officine", name, &got).unwrap(),
        b"version 3, pas encore sauvegardee"
    );

    // A folder listed through a token.
    let out = samba.client("officine", &format!("ls \"{}\\ordonnances\\*\"", tokens[0]));
    assert!(
        out.status.success() && text(&out.stdout).contains("mme-durand.pdf"),
        "{}",
        describe(&out)
    );
    // Writing through a token is refused, and nothing appears.
    let upload = tmp.path().join("upload.txt");
    std::fs::write(&upload, b"pirate").unwrap();
    let out = samba.client(
        "officine",
        &format!(
            "put \"{}\" \"{}\\ordonnances\\nouveau.txt\"",
            upload.display(),
            tokens[0]
        ),
    );
    assert!(
        !out.status.success(),
        "a write through a token: {}",
        describe(&out)
    );
    let out = samba.client(
        "officine",
        &format!("put \"{}\" \"{}\\{name}\"", upload.display(), tokens[0]),
    );
    assert!(
        !out.status.success(),
        "an overwrite through a token: {}",
        describe(&out)
    );
    assert_eq!(at(&tokens[0]).unwrap(), b"version 1");

    // Permissions as recorded: the 0600 file of another account stays
    // closed through a token; the one an ACL opens to the staff is readable.
    let refused = samba.get(
        "officine",
        &format!("{}\\secret\\ordonnancier.pdf", tokens[0]),
        &got,
    );
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("ACCESS_DENIED")),
        "the staff account (uid {staff_uid}) read another account's 0600 file: {refused:?}"
    );
    assert_eq!(
        samba
            .get(
                "officine",
                &format!("{}\\secret\\partage.pdf", tokens[0]),
                &got
            )
            .unwrap_or_else(|e| panic!("a file an ACL opens to the staff: {e}")),
        b"lu par le personnel"
    );

    // The read-only share of `latest`: its own file is v2, its Previous
    // Versions tab shows both days.
    assert_eq!(
        samba.get("sauvegardes", name, &got).unwrap(),
        b"version 2, plus longue"
    );
    assert_eq!(samba.versions("sauvegardes", name), expected);

    // A forgotten snapshot leaves the tab within seconds.
    coffre.ok(["forget", first.as_str()]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let versions = samba.versions("officine", name);
        if versions == [tokens[1].clone()] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after forget, the tab still shows {versions:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(at(&tokens[1]).unwrap(), b"version 2, plus longue");

    // Mount stopped (drive unplugged): the tab is empty, the live share
    // still serves the current file.
    mnt.stop();
    assert!(samba.versions("officine", name).is_empty());
    assert_eq!(
        samba.get("officine", name, &got).unwrap(),
        b"version 3, pas encore sauvegardee"
    );
    drop(samba);
}

/// Today's local date as YYYY-MM-DD (the snapshot was just taken), from date(1).
fn chrono_free_today() -> String {
    let out = Command::new("date").arg("+%Y-%m-%d").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
