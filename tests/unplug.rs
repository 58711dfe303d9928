//! The drive goes away under a running command: unplugged (its filesystem
//! lazily unmounted), turned read-only, its last written file cut short
//! by a power cut, or full at a random point.
//!
//! The repository lives on its own filesystem: an ext4 image on a loop
//! device (unplug, read-only), a tmpfs of a random size (drive full), or a
//! `slowdrive` FUSE passthrough whose every I/O can be made to fail (a
//! dead drive; this kernel has no device-mapper `error` target).
//! Each case expects a clear error (an actionable message, not a bare OS
//! error), every earlier snapshot intact, and the next run, once the drive
//! is back (remounted, read-write, or larger), to succeed with `check`
//! passing and everything restoring bit-exact.
//!
//! Instants and sizes are drawn from `COFFRE_CRASH_SEED` (printed with
//! each `unplug-summary:` line); `COFFRE_UNPLUG_TRIALS` sets the trials per
//! case (3 by default). Needs root (mount, loop devices).

#[path = "crash_support.rs"]
mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use coffre_tests::{capture, describe, diff_trees, run, sample_init, Coffre, Rng, TreeImage};
use support::{listing, random_file, seed};

/// Trials per case: `COFFRE_UNPLUG_TRIALS`, else `default`.
fn trials(default: u64) -> u64 {
    std::env::var("COFFRE_UNPLUG_TRIALS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

fn sh(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?}: {}", describe(&out));
    out
}

/// Whether `path` is a mount point now.
fn is_mounted(path: &Path) -> bool {
    coffre_tests::mount::is_mounted(path)
}

/// A filesystem of its own for the repository, always unmounted (and its
/// loop device released) when dropped, even when the test fails.
struct Drive {
    /// Where it is mounted.
    mnt: PathBuf,
    /// The ext4 image, or None for a tmpfs or a `slowdrive`.
    image: Option<PathBuf>,
    /// The `slowdrive` process serving it, if it is one.
    daemon: Option<std::process::Child>,
}

impl Drive {
    /// A fresh ext4 image of `mib` MiB, mounted on `mnt` through a loop
    /// device.
    fn ext4(dir: &Path, mib: u64) -> Drive {
        let image = dir.join("drive.img");
        let f = std::fs::File::create(&image).unwrap();
        f.set_len(mib << 20).unwrap();
        drop(f);
        sh(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
            .arg(&image));
        let d = Drive {
            mnt: dir.join("drive"),
            image: Some(image),
            daemon: None,
        };
        d.mount();
        d
    }

    /// A tmpfs of `bytes` bytes on `mnt`.
    fn tmpfs(dir: &Path, bytes: u64) -> Drive {
        let mnt = dir.join("drive");
        std::fs::create_dir_all(&mnt).unwrap();
        sh(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&mnt));
        Drive {
            mnt,
            image: None,
            daemon: None,
        }
    }

    /// A `slowdrive` passthrough of a folder under `dir`, writing at 40 MB/s
    /// (so that a snapshot of a few dozen MiB lasts long enough to be hit),
    /// whose I/O can all be made to fail ([`Drive::die`]).
    fn mortal(dir: &Path) -> Drive {
        let (backing, mnt) = (dir.join("backing"), dir.join("drive"));
        std::fs::create_dir_all(&backing).unwrap();
        std::fs::create_dir_all(&mnt).unwrap();
        let daemon = Command::new(coffre_tests::slowdrive_bin())
            .arg(&backing)
            .arg(&mnt)
            .args(["--write-mbps", "40"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let d = Drive {
            mnt,
            image: None,
            daemon: Some(daemon),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted(&d.mnt) {
            assert!(Instant::now() < deadline, "slowdrive did not mount");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// Every I/O on a `slowdrive` fails from now on (`heal` ends it), as on
    /// a drive whose controller died: a device-mapper `error` target.
    fn die(&self, dying: bool) {
        let pid = self.daemon.as_ref().expect("a slowdrive").id() as libc::pid_t;
        let sig = if dying { libc::SIGUSR1 } else { libc::SIGUSR2 };
        // SAFETY: a signal to our own child, not yet reaped.
        unsafe { libc::kill(pid, sig) };
        if !dying {
            // The signal is handled whenever the daemon next runs: the
            // drive is back once it answers again.
            let deadline = Instant::now() + Duration::from_secs(20);
            while std::fs::read_dir(&self.mnt).is_err() {
                assert!(Instant::now() < deadline, "slowdrive did not heal");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Mounts the image (again: plugged back in).
    fn mount(&self) {
        let image = self.image.as_ref().expect("only an image is remounted");
        std::fs::create_dir_all(&self.mnt).unwrap();
        // A lazily unmounted filesystem lets go of its loop device once the
        // last process using it has gone; only then may the image be
        // mounted again.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = run(Command::new("losetup").arg("-j").arg(image));
            if out.stdout.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the image is still attached: {}",
                coffre_tests::text(&out.stdout)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sh(Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(&self.mnt));
    }

    /// Pulls the drive out under the running command: a lazy unmount
    /// (what `umount -l` or a desktop's eject does; a command keeps the
    /// folders it has open, new lookups by path fail).
    fn unplug(&self) {
        sh(Command::new("umount").arg("-l").arg(&self.mnt));
    }

    /// `mount -o remount,<opts>`.
    fn remount(&self, opts: &str) -> Output {
        run(Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.mnt))
    }

    /// Makes the tmpfs `bytes` large (a larger drive).
    fn grow(&self, bytes: u64) {
        let out = self.remount(&format!("size={bytes}"));
        assert!(out.status.success(), "grow the tmpfs: {}", describe(&out));
    }
}

impl Drop for Drive {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            // SIGTERM: it unmounts and exits; killed if it does not.
            // SAFETY: a signal to our own child, not yet reaped.
            unsafe { libc::kill(daemon.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while daemon.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        while is_mounted(&self.mnt) {
            let out = run(Command::new("umount").arg("-l").arg(&self.mnt));
            if !out.status.success() {
                break;
            }
        }
    }
}

/// A repository on `repo` whose cache is off the drive (as on a real
/// machine: in the home folder).
fn coffre_on(repo: &Path, cache: &Path) -> Coffre {
    Coffre::s3(&repo.to_string_lossy(), cache, &[])
}

/// The small day-0 source and the big day-1 one (sample data plus
/// `big_mib` MiB of incompressible scans), with their images.
struct Sources {
    small: PathBuf,
    big: PathBuf,
    small_image: TreeImage,
    big_image: TreeImage,
}

fn sources(dir: &Path, big_mib: usize) -> Sources {
    let small = dir.join("small");
    sample_init(&small, 4);
    let big = dir.join("big");
    sample_init(&big, 4);
    for i in 0..big_mib {
        random_file(
            &big.join(format!("scans/{i}.raw")),
            1000 + i as u64,
            1 << 20,
        );
    }
    Sources {
        small_image: capture(&small),
        big_image: capture(&big),
        small,
        big,
    }
}

/// Restores `id` and compares it with `want`; the error text otherwise.
fn restores(coffre: &Coffre, id: &str, want: &TreeImage, scratch: &Path) -> Result<(), String> {
    let target = scratch.join("restore");
    let _ = std::fs::remove_dir_all(&target);
    let out = run(&mut coffre.cmd([OsStr::new("restore"), id[..12].as_ref(), target.as_os_str()]));
    if !out.status.success() {
        return Err(describe(&out));
    }
    let diffs = diff_trees(want, &capture(&target));
    let _ = std::fs::remove_dir_all(&target);
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!("not bit-exact: {:?}", &diffs[..diffs.len().min(5)]))
    }
}

/// The error message of a failed run (stderr), checked to be actionable:
/// no panic, says what to do, and not only a bare OS error.
fn assert_actionable(out: &Output, ctx: &str) -> String {
    assert!(!out.status.success(), "{ctx}: the command succeeded");
    let err = coffre_tests::text(&out.stderr);
    assert!(!err.contains("panicked"), "{ctx}: a panic: {err}");
    let line = err
        .lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{ctx}: no error line: {err}"))
        .to_owned();
    assert!(
        line.contains("drive") || line.contains("Drive"),
        "{ctx}: the message does not speak of the drive: {line}"
    );
    assert!(
        !line.trim_end().ends_with(')') || !line.contains("(os error"),
        "{ctx}: a bare OS error: {line}"
    );
    line
}

/// Waits for `child` at most `limit`; a hang is a failure.
fn wait(child: &mut std::process::Child, limit: Duration, ctx: &str) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{ctx}: the command hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    use std::io::Read;
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_end(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut stderr);
    }
    Output {
        status: child.wait().unwrap(),
        stdout,
        stderr,
    }
}

/// After the drive came back: the day-0 snapshot restores, the next
/// snapshot succeeds, `check` passes, and the new snapshot restores.
fn assert_recovers(coffre: &Coffre, s: &Sources, day0: &str, scratch: &Path, ctx: &str) {
    assert_recovers_but(coffre, s, day0, scratch, ctx, None);
}

/// `check` (with `args`) passes, or fails with errors that all name
/// `allowed` (a damage the test made on purpose and that stays reported).
fn check_but(coffre: &Coffre, args: &[&str], allowed: Option<&str>, ctx: &str) {
    let out = run(&mut coffre.cmd(args));
    if out.status.success() {
        return;
    }
    let err = coffre_tests::text(&out.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    let excused =
        allowed.is_some_and(|a| !errors.is_empty() && errors.iter().all(|l| l.contains(a)));
    assert!(
        excused,
        "{ctx}: {args:?} after the next run: {}",
        describe(&out)
    );
}

/// As [`assert_recovers`], `check` allowed to keep reporting errors that
/// name `allowed`.
fn assert_recovers_but(
    coffre: &Coffre,
    s: &Sources,
    day0: &str,
    scratch: &Path,
    ctx: &str,
    allowed: Option<&str>,
) {
    if let Err(e) = restores(coffre, day0, &s.small_image, scratch) {
        panic!("{ctx}: the earlier snapshot: {e}");
    }
    let out = run(&mut coffre.cmd([OsStr::new("--json"), "snapshot".as_ref(), s.big.as_os_str()]));
    assert!(
        out.status.success(),
        "{ctx}: the next snapshot fails: {}",
        describe(&out)
    );
    let id = coffre_tests::json_string_field(&coffre_tests::text(&out.stdout), "id").unwrap();
    check_but(coffre, &["check"], allowed, ctx);
    if let Err(e) = restores(coffre, &id, &s.big_image, scratch) {
        panic!("{ctx}: the new snapshot: {e}");
    }
    check_but(coffre, &["check", "--read-data"], allowed, ctx);
}

/// What a fault does to a running snapshot.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// `umount -l`: the command keeps its open folders.
    Unplug,
    /// `mount -o remount,ro`.
    ReadOnly,
    /// Every I/O fails with EIO (a dead drive: device-mapper's `error`
    /// target, through `slowdrive`, since this kernel has no device-mapper).
    Dies,
}

/// Runs the big snapshot onto an ext4 drive and applies `fault` after
/// a random instant; returns whether the fault landed mid-run and whether
/// the snapshot failed (a clear error) rather than completing.
fn snapshot_with_fault(
    fault: Fault,
    rng: &mut Rng,
    seed: u64,
    trial: u64,
    latest_ms: &mut u64,
) -> (bool, bool) {
    let tmp = tempfile::tempdir().unwrap();
    let s = sources(tmp.path(), 24);
    let drive = match fault {
        Fault::Dies => Drive::mortal(tmp.path()),
        _ => Drive::ext4(tmp.path(), 160),
    };
    let repo = drive.mnt.join("repo");
    let coffre = coffre_on(&repo, &tmp.path().join("cache"));
    coffre.init();
    let day0 = coffre.snapshot(&s.small);
    // The instant is drawn below the shortest run seen so far (the
    // campaign shrinks `latest_ms` whenever a run ends first): how fast
    // the machine is decides where a fixed range would fall.
    let after = Duration::from_millis(rng.range(*latest_ms / 10, *latest_ms));
    let ctx = format!(
        "{fault:?} at {} ms (seed {seed}, trial {trial})",
        after.as_millis()
    );
    let started = Instant::now();
    let mut child = coffre
        .cmd([OsStr::new("snapshot"), s.big.as_os_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    if !matches!(fault, Fault::ReadOnly) {
        while started.elapsed() < after && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_some() {
            *latest_ms = (*latest_ms)
                .min(started.elapsed().as_millis() as u64)
                .max(10);
        }
    }
    let mut landed = false;
    match fault {
        Fault::Unplug | Fault::Dies => {
            // Stopped while the fault is applied, the run cannot end in
            // between: `landed` says exactly whether it met the fault.
            // SAFETY: signals to our own child, which is not yet reaped.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
            landed = child.try_wait().unwrap().is_none();
            if matches!(fault, Fault::Unplug) {
                drive.unplug();
            } else {
                drive.die(true);
            }
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
        Fault::ReadOnly => {
            // A filesystem with files open for writing refuses to turn
            // read-only (EBUSY). Stopped, the snapshot holds still while
            // the remount is tried, so it lands as soon as the run is
            // between two files, however fast the machine: step it until
            // then.
            loop {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                // SAFETY: signals to our own child, which is not yet reaped.
                unsafe { libc::kill(pid, libc::SIGSTOP) };
                let done = drive.remount("ro").status.success();
                let running = child.try_wait().unwrap().is_none();
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGCONT) };
                if done {
                    landed = running;
                    break;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        }
    }
    let out = wait(&mut child, Duration::from_secs(120), &ctx);
    if landed && !out.status.success() {
        let line = assert_actionable(&out, &ctx);
        eprintln!("{ctx}: {line}");
    }
    if !landed {
        assert!(out.status.success(), "{ctx}: {}", describe(&out));
    }
    let failed = !out.status.success();
    // The drive comes back.
    match fault {
        Fault::Unplug => {
            // Nothing was written to the disk the drive was mounted on.
            let stray: Vec<_> = std::fs::read_dir(&drive.mnt)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert!(
                stray.is_empty(),
                "{ctx}: written beside the drive: {stray:?}"
            );
            drive.mount();
        }
        Fault::ReadOnly => {
            if !drive.remount("rw").status.success() {
                panic!("{ctx}: cannot remount read-write");
            }
        }
        Fault::Dies => drive.die(false),
    }
    // A run that ended during the fault may have recorded its snapshot.
    let listed = listing(&coffre, None).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    assert!(
        listed.iter().any(|(id, _)| *id == day0),
        "{ctx}: the earlier snapshot is gone"
    );
    for (id, _) in listed.iter().filter(|(id, _)| *id != day0) {
        if let Err(e) = restores(&coffre, id, &s.big_image, tmp.path()) {
            panic!("{ctx}: the snapshot made during the fault: {e}");
        }
    }
    assert_recovers(&coffre, &s, &day0, tmp.path(), &ctx);
    drop(drive);
    (landed, failed)
}

fn fault_campaign(fault: Fault, name: &str) {
    let seed = seed();
    let n = trials(3);
    let mut rng = Rng::derive(seed, name, &[]);
    let (mut mid, mut detected) = (0, 0);
    // More trials, up to 12, until one lands mid-run: how fast the run is
    // decides where a random instant falls, and no test may hang on timing.
    let mut ran = 0;
    let mut latest_ms = 1500;
    while ran < n || (mid == 0 && ran < n.max(12)) {
        let (landed, failed) = snapshot_with_fault(fault, &mut rng, seed, ran, &mut latest_ms);
        mid += u64::from(landed);
        detected += u64::from(failed);
        ran += 1;
    }
    let n = ran;
    // Every trial that returned checked that nothing was lost.
    println!(
        "unplug-summary: case={name} trials={n} mid_run={mid} detected={detected} survived={} lost=0 seed={seed}",
        n - detected
    );
    assert!(mid > 0 || n < 3, "{name}: the fault never landed mid-run");
}

#[test]
fn drive_unplugged_mid_snapshot() {
    fault_campaign(Fault::Unplug, "unplugged");
}

#[test]
fn drive_turned_read_only_mid_snapshot() {
    fault_campaign(Fault::ReadOnly, "read-only");
}

#[test]
fn drive_failing_every_io_mid_snapshot() {
    fault_campaign(Fault::Dies, "every-io-fails");
}

/// Files of a folder, recursively, with their modification time.
fn files(dir: &Path, out: &mut Vec<(std::time::SystemTime, PathBuf)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        if m.is_dir() {
            files(&e.path(), out);
        } else if m.is_file() {
            out.push((m.modified().unwrap(), e.path()));
        }
    }
}

/// Bytes in a folder.
fn du(dir: &Path) -> u64 {
    let mut all = Vec::new();
    files(dir, &mut all);
    all.iter()
        .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// A snapshot killed with SIGKILL, then the repository file written last
/// cut at a random length (what a power cut leaves on a drive that lied
/// about flushing): the earlier snapshot restores bit-exact, the damage is
/// detected or harmless, and the next snapshot succeeds, restores and
/// passes `check --read-data`.
#[test]
fn last_file_truncated_after_a_kill() {
    let seed = seed();
    let n = trials(3);
    let mut rng = Rng::derive(seed, "truncated", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let s = sources(tmp.path(), 8);
    let (mut detected, mut survived, mut kept_reported, mut nothing_written) = (0, 0, 0, 0);
    for trial in 0..n {
        let dir = tmp.path().join(format!("t{trial}"));
        let coffre = coffre_on(&dir.join("repo"), &dir.join("cache"));
        coffre.init();
        let day0 = coffre.snapshot(&s.small);
        let after = Duration::from_millis(rng.range(100, 2500));
        let started = std::time::SystemTime::now();
        let (_, _) = support::run_and_kill(
            &mut coffre.cmd([OsStr::new("snapshot"), s.big.as_os_str()]),
            after,
        );
        let mut all = Vec::new();
        files(&coffre.repo, &mut all);
        all.retain(|(_, p)| !p.starts_with(coffre.repo.join("locks")));
        // The killed run's last file (the earlier run's files were flushed
        // long before: a power cut does not tear them).
        all.retain(|(t, _)| *t >= started);
        all.sort();
        let Some((_, last)) = all.pop() else {
            nothing_written += 1;
            let _ = std::fs::remove_dir_all(&dir);
            continue;
        };
        let len = std::fs::metadata(&last).unwrap().len();
        let cut = if len == 0 { 0 } else { rng.below(len) };
        let ctx = format!(
            "{} cut from {len} to {cut} bytes after a kill at {} ms (seed {seed}, trial {trial})",
            last.strip_prefix(&coffre.repo).unwrap().display(),
            after.as_millis()
        );
        std::fs::OpenOptions::new()
            .write(true)
            .open(&last)
            .unwrap()
            .set_len(cut)
            .unwrap();
        if let Err(e) = restores(&coffre, &day0, &s.small_image, &dir) {
            panic!("{ctx}: the earlier snapshot: {e}");
        }
        let checked = run(&mut coffre.cmd(["check", "--read-data"]));
        if checked.status.success() {
            survived += 1;
        } else {
            detected += 1;
            let err = coffre_tests::text(&checked.stderr);
            assert!(!err.contains("panicked"), "{ctx}: {err}");
            eprintln!("{ctx}: check says: {}", err.lines().last().unwrap_or(""));
        }
        // A journal entry or a snapshot record cut short stays reported by
        // `check`, by name (the other snapshots and the data are unharmed;
        // the next run does not remove it).
        let name = last.file_name().unwrap().to_string_lossy().into_owned();
        let allowed = if last.starts_with(coffre.repo.join("journal")) {
            Some("journal entry".to_owned())
        } else if last.starts_with(coffre.repo.join("snapshots")) {
            Some(format!("snapshot {}", &name[..12]))
        } else {
            None
        };
        if allowed.is_some() {
            kept_reported += 1;
        }
        assert_recovers_but(&coffre, &s, &day0, &dir, &ctx, allowed.as_deref());
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "unplug-summary: case=truncated-last-file records_cut_still_reported={kept_reported} killed_before_writing={nothing_written} trials={n} detected={detected} survived={survived} lost=0 seed={seed}"
    );
}

/// The drive fills at a random point of a snapshot and of a copy: tmpfs
/// drives of random sizes between what the repository holds and what the
/// run needs. A run that does not fit fails with the drive-full message;
/// the earlier snapshots restore; once the drive is larger, the next run
/// succeeds and `check` passes.
#[test]
fn drive_full_at_random_points() {
    let seed = seed();
    let n = trials(3);
    let mut rng = Rng::derive(seed, "drive full", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let s = sources(tmp.path(), 6);
    // What a day-0 repository holds, and what the big snapshot adds.
    let (base, needed) = {
        let dir = tmp.path().join("measure");
        let coffre = coffre_on(&dir.join("repo"), &dir.join("cache"));
        coffre.init();
        coffre.snapshot(&s.small);
        let base = du(&coffre.repo);
        coffre.snapshot(&s.big);
        let needed = du(&coffre.repo) - base;
        let _ = std::fs::remove_dir_all(&dir);
        (base, needed)
    };
    let (mut full, mut fitted) = (0, 0);
    for trial in 0..n {
        let dir = tmp.path().join(format!("t{trial}"));
        std::fs::create_dir_all(&dir).unwrap();
        // Room for the repository and a random share of the new data.
        let size = base + 256 * 1024 + (needed as f64 * rng.unit()) as u64;
        let drive = Drive::tmpfs(&dir, size);
        let coffre = coffre_on(&drive.mnt.join("repo"), &dir.join("cache"));
        coffre.init();
        let day0 = coffre.snapshot(&s.small);
        let ctx = format!("snapshot onto a {size}-byte drive (seed {seed}, trial {trial})");
        let out = run(&mut coffre.cmd([OsStr::new("snapshot"), s.big.as_os_str()]));
        if out.status.success() {
            fitted += 1;
        } else {
            full += 1;
            let line = assert_actionable(&out, &ctx);
            assert_drive_full(&line, &ctx);
            let listed = listing(&coffre, None).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(listed.len(), 1, "{ctx}: a failed snapshot was recorded");
        }
        drive.grow(size + 2 * needed + (8 << 20));
        assert_recovers(&coffre, &s, &day0, &dir, &ctx);

        // The same for a copy onto a drive too small.
        let target_dir = dir.join("mardi-drive");
        std::fs::create_dir_all(&target_dir).unwrap();
        let total = du(&coffre.repo);
        let tsize = 512 * 1024 + (total as f64 * rng.unit()) as u64;
        let tdrive = Drive::tmpfs(&target_dir, tsize);
        let mardi = tdrive.mnt.join("repo");
        let ctx = format!("copy onto a {tsize}-byte drive (seed {seed}, trial {trial})");
        let copy = |coffre: &Coffre| {
            run(coffre
                .cmd([OsStr::new("copy"), "--to".as_ref(), mardi.as_os_str()])
                .env("COFFRE_TO_PASSWORD", support::MARDI_PASSWORD))
        };
        let out = copy(&coffre);
        if out.status.success() {
            fitted += 1;
        } else {
            full += 1;
            let line = assert_actionable(&out, &ctx);
            assert_drive_full(&line, &ctx);
        }
        tdrive.grow(tsize + 2 * total + (8 << 20));
        let out = copy(&coffre);
        assert!(
            out.status.success(),
            "{ctx}: the next copy: {}",
            describe(&out)
        );
        let target = coffre_on(&mardi, &dir.join("mardi-cache"));
        let out = run(target
            .cmd(["check", "--read-data"])
            .env("COFFRE_PASSWORD", support::MARDI_PASSWORD));
        assert!(
            out.status.success(),
            "{ctx}: check of the copy: {}",
            describe(&out)
        );
        drop(tdrive);
        drop(drive);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "unplug-summary: case=drive-full trials={} detected={full} survived={fitted} lost=0 seed={seed}",
        2 * n
    );
}

/// The drive-full message, with the space the command still needed and the
/// space that was free, both figures above nothing needed.
fn assert_drive_full(line: &str, ctx: &str) {
    assert!(
        line.contains("full"),
        "{ctx}: not the drive-full message: {line}"
    );
    let figure = |after: &str| -> Option<f64> {
        let (_, rest) = line.split_once(after)?;
        let (before, _) = rest.split_once(" MiB")?;
        before.rsplit(' ').next()?.parse().ok()
    };
    let needed = figure("(about ").unwrap_or_else(|| panic!("{ctx}: no space needed in: {line}"));
    assert!(needed > 0.0, "{ctx}: nothing needed: {line}");
    assert!(
        line.contains("more needed, ") && line.contains(" MiB free)"),
        "{ctx}: the free space is not said: {line}"
    );
}

/// Prune on a drive too full to write anything: it first deletes the packs
/// nothing uses (which needs no room), then repacks in rounds that fit what
/// was freed; what cannot fit is left with a warning saying the room
/// needed, never a failure with nothing freed. Then `check --read-data`
/// passes and the kept snapshot restores bit-exact.
#[test]
fn prune_frees_a_full_drive() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let drive = Drive::tmpfs(dir, 64 << 20);
    let coffre = coffre_on(&drive.mnt.join("repo"), &dir.join("cache"));
    coffre.init();
    // Day 1: x and y in one pack. Day 2: x and a big z. Day 3: x and q.
    // Keeping day 3 alone leaves day 2's pack unused (deleted without
    // room) and day 1's pack half used (repacked, which needs room).
    random_file(&src.join("x"), 1, 3 << 20);
    random_file(&src.join("y"), 2, 3 << 20);
    coffre.snapshot(&src);
    std::fs::remove_file(src.join("y")).unwrap();
    random_file(&src.join("z"), 3, 12 << 20);
    coffre.snapshot(&src);
    std::fs::remove_file(src.join("z")).unwrap();
    random_file(&src.join("q"), 4, 1 << 20);
    let kept = coffre.snapshot(&src);
    let want = capture(&src);
    coffre.ok(["forget", "--keep-last", "1"]);
    // The drive is now full: 256 KiB left (a lock, index files and a
    // journal entry fit; a pack does not).
    drive.grow(du(&drive.mnt) + (256 << 10));
    let before = du(&drive.mnt.join("repo"));

    let out = run(&mut coffre.cmd(["prune", "--json"]));
    assert!(
        out.status.success(),
        "prune on a full drive: {}",
        describe(&out)
    );
    let json = coffre_tests::text(&out.stdout);
    let get = |field: &str| coffre_tests::json_u64(&json, field);
    assert!(get("packs_deleted") >= 1, "nothing deleted: {json}");
    assert!(get("packs_repacked") >= 1, "nothing repacked: {json}");
    assert_eq!(get("packs_left_for_room"), 0, "{json}");
    let after = du(&drive.mnt.join("repo"));
    assert!(
        after + (14 << 20) <= before,
        "prune freed too little: {before} -> {after} bytes"
    );
    let out = run(&mut coffre.cmd(["check", "--read-data"]));
    assert!(
        out.status.success(),
        "check after prune: {}",
        describe(&out)
    );
    restores(&coffre, &kept, &want, dir).unwrap_or_else(|e| panic!("after prune: {e}"));

    // Now with no whole pack to delete and no room for the repack: prune
    // leaves the pack and says what room it needs.
    let src2 = dir.join("src2");
    std::fs::create_dir_all(&src2).unwrap();
    random_file(&src2.join("a"), 5, 3 << 20);
    random_file(&src2.join("b"), 6, 3 << 20);
    drive.grow(du(&drive.mnt) + (16 << 20));
    coffre.snapshot(&src2);
    std::fs::remove_file(src2.join("b")).unwrap();
    coffre.snapshot(&src2);
    coffre.ok(["forget", "--keep-last", "1"]);
    drive.grow(du(&drive.mnt) + (256 << 10));
    let out = run(&mut coffre.cmd(["prune"]));
    assert!(
        out.status.success(),
        "prune with no room: {}",
        describe(&out)
    );
    let err = coffre_tests::text(&out.stderr);
    assert!(
        err.contains("not repacked") && err.contains("needs about"),
        "no warning saying the room needed: {err}"
    );
    let out = run(&mut coffre.cmd(["check"]));
    assert!(
        out.status.success(),
        "check after a prune left packs: {}",
        describe(&out)
    );
    // With room, the next prune finishes the job.
    drive.grow(du(&drive.mnt) + (16 << 20));
    let out = run(&mut coffre.cmd(["prune", "--json"]));
    assert!(out.status.success(), "prune with room: {}", describe(&out));
    let json = coffre_tests::text(&out.stdout);
    assert!(
        coffre_tests::json_u64(&json, "packs_repacked") >= 1,
        "{json}"
    );
    assert_eq!(
        coffre_tests::json_u64(&json, "packs_left_for_room"),
        0,
        "{json}"
    );
}
