//! The NAS share: a real Samba server on loopback, configured as
//! docs/NAS.md says, serves the mount to an SMB client, which lists the
//! dated folders and fetches files bit-exact.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffre_tests::mount::Mounted;
use coffre_tests::Fixture;

/// A private smbd, killed on drop.
struct Smbd(Child);

impl Drop for Smbd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const PORT: u16 = 44_551;

fn smb_conf(dir: &Path, share: &Path) -> std::path::PathBuf {
    let d = dir.display();
    for sub in ["run", "lock", "state", "cache", "private", "ncalrpc"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    // The share section is the one docs/NAS.md gives.
    let conf = format!(
        "[global]
  server role = standalone server
  map to guest = Bad User
  guest account = nobody
  smb ports = {PORT}
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

[coffre]
  path = {share}
  comment = Sauvegardes (lecture seule)
  read only = yes
  guest ok = yes
  force user = root
  browseable = yes
  vfs objects = catia
  catia:mappings = 0x22:0xf022,0x2a:0xf02a,0x3a:0xf03a,0x3c:0xf03c,0x3e:0xf03e,0x3f:0xf03f,0x5c:0xf05c,0x7c:0xf07c
  mangled names = yes
",
        share = share.display()
    );
    let path = dir.join("smb.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

fn smbclient(conf: &Path, command: &str) -> std::process::Output {
    Command::new("smbclient")
        .arg("//127.0.0.1/coffre")
        .args(["-p", &PORT.to_string(), "-N", "-s"])
        .arg(conf)
        .args(["-c", command])
        .output()
        .expect("smbclient is installed (apt-get install smbclient)")
}

/// Windows workstations browse the dated folders through Samba and copy a
/// file back, bit-exact.
#[test]
fn samba_serves_the_dated_folders() {
    let Fixture { tmp, src, coffre } = Fixture::new(4);
    coffre.snapshot(&src);
    let mnt = Mounted::start(
        &coffre,
        &tmp.path().join("mnt"),
        &["--allow-other", "--windows-names"],
    );
    let conf = smb_conf(&tmp.path().join("samba"), &mnt.path);
    let smbd = Smbd(
        Command::new("smbd")
            .args(["--foreground", "--no-process-group", "-s"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smbd is installed (apt-get install samba)"),
    );
    // Wait until smbd answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    let listing = loop {
        let out = smbclient(&conf, "ls");
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "smbd did not answer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let today = chrono_free_today();
    assert!(
        listing.contains(&today),
        "no dated folder {today} in: {listing}"
    );
    assert!(listing.contains("latest"), "no latest in: {listing}");

    let fetched = tmp.path().join("fetched.fdb");
    let out = smbclient(
        &conf,
        &format!("get {today}\\db\\officine.fdb {}", fetched.display()),
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&fetched).unwrap() == std::fs::read(src.join("db/officine.fdb")).unwrap(),
        "fetched file differs"
    );

    // The awkward names are all listed and reachable: a Windows-1252 name
    // decoded (--windows-names), `:` and `?` mapped by vfs_catia, reserved
    // or trailing-dot names mangled to 8.3 forms by Samba.
    let out = smbclient(&conf, "cd latest\\divers; ls");
    let names = String::from_utf8_lossy(&out.stdout).into_owned();
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
    let got = tmp.path().join("con.txt");
    let out = smbclient(
        &conf,
        &format!("get latest\\divers\\{mangled_con} {}", got.display()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        std::fs::read(&got).unwrap(),
        std::fs::read(src.join("divers/CON.txt")).unwrap()
    );
    let got = tmp.path().join("facture.pdf");
    let out = smbclient(
        &conf,
        &format!("get latest\\divers\\Facture_été_2019.pdf {}", got.display()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let raw_name = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(
        b"divers/Facture_\xe9t\xe9_2019.pdf",
    );
    assert_eq!(
        std::fs::read(&got).unwrap(),
        std::fs::read(src.join(raw_name)).unwrap()
    );
    drop(smbd);
    mnt.stop();
}

/// Today's local date as YYYY-MM-DD (the snapshot was just taken), from date(1).
fn chrono_free_today() -> String {
    let out = Command::new("date").arg("+%Y-%m-%d").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
