//! `coffre mount MOUNTPOINT`: serve the repository as dated folders until
//! Ctrl-C, SIGTERM or `coffre umount`; `--daemon` returns once mounted.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use coffre_fs::MountOptions;
use snapshots_format::Repository;

use crate::args::{Cli, MountArgs};

/// Set by SIGINT / SIGTERM / SIGHUP: unmount and stop.
static STOP: AtomicBool = AtomicBool::new(false);
/// Marks the background child of `--daemon`, which reads the passphrase on stdin.
const DAEMON_CHILD: &str = "COFFRE_MOUNT_DAEMON_CHILD";

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Mounts and serves.
pub fn run(cli: &Cli, args: &MountArgs) -> Result<u8> {
    let daemon_child = std::env::var_os(DAEMON_CHILD).is_some();
    if !daemon_child {
        coffre_fs::check_mountpoint(&args.mountpoint)?;
    }
    let cache_bytes = parse_size(&args.cache_size)?;
    let path = &super::repo_location(cli)?;
    Repository::read_header(path)?;
    let pass = if daemon_child {
        let mut p = zeroize::Zeroizing::new(Vec::new());
        std::io::stdin()
            .read_to_end(&mut p)
            .context("reading the passphrase from the parent")?;
        p
    } else {
        crate::password::get(cli)?
    };
    // Opening checks the passphrase before anything is mounted or forked.
    let repo = Repository::open(path, &pass)?;
    // A repository whose snapshots cannot be listed (a tampered drive) is
    // refused now, not mounted as an empty folder.
    repo.list_snapshots()?;
    if args.daemon && !daemon_child {
        drop(repo);
        return daemonize(&args.mountpoint, &pass);
    }
    // Registered so that prune can say a mount is active; never waited for.
    let _lock = super::lock(
        cli,
        &repo,
        snapshots_format::repo::lock::LockKind::Mount,
        "mount",
    )?;
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    // From here on the repository is only read: the mount gets a type
    // without write methods.
    let session = coffre_fs::mount(
        repo.into(),
        &args.mountpoint,
        &MountOptions {
            allow_other: args.allow_other,
            cache_bytes,
            windows_names: args.windows_names,
            max_inodes: args.max_inodes,
        },
    )?;
    if !daemon_child {
        eprintln!(
            "Mounted on {}. Stop with Ctrl-C or `coffre umount {}`.\n{}",
            args.mountpoint.display(),
            args.mountpoint.display(),
            versions_hint(&args.mountpoint)
        );
    }
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if STOP.load(Ordering::SeqCst) {
            session.umount_and_join().context("unmounting")?;
            break;
        }
        if session.guard.is_finished() {
            // Unmounted from outside (coffre umount, fusermount3 -u).
            session.join().context("serving the mount")?;
            break;
        }
    }
    Ok(0)
}

/// Where Samba's `vfs_shadow_copy2` finds the Previous Versions view.
fn versions_hint(mountpoint: &Path) -> String {
    format!(
        "Windows Previous Versions: shadow:snapdir = {}/{}/LABEL (see docs/NAS.md).",
        std::path::absolute(mountpoint)
            .unwrap_or_else(|_| mountpoint.to_path_buf())
            .display(),
        coffre_fs::layout::VERSIONS_DIR
    )
}

/// Starts this same command in the background (a new session, no
/// terminal), hands it the passphrase through a pipe, and returns once the
/// mount is visible, or with the child's error.
fn daemonize(mountpoint: &Path, pass: &[u8]) -> Result<u8> {
    let (log, log_file) = private_log()?;
    let args: Vec<_> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--daemon")
        .collect();
    let exe = std::env::current_exe().context("finding the coffre executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env(DAEMON_CHILD, "1")
        .env_remove("COFFRE_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log_file);
    // SAFETY: setsid is async-signal-safe; it detaches the child from our
    // terminal so that closing it does not stop the mount.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting the background mount")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(pass).context("passing the passphrase")?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if coffre_fs::is_mounted(mountpoint) {
            let _ = std::fs::remove_file(&log);
            println!(
                "Mounted on {} (in the background, pid {}).\n{}",
                mountpoint.display(),
                child.id(),
                versions_hint(mountpoint)
            );
            return Ok(0);
        }
        if let Some(status) = child.try_wait()? {
            let msg = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_file(&log);
            bail!("the background mount stopped ({status}): {}", msg.trim());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "the mount did not come up within 30 s; see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A new file for the background mount's messages until it is up: an
/// unpredictable name, created only if nothing is there (a link planted in
/// the shared temporary folder is not followed), readable by this user
/// alone (the messages may name files).
fn private_log() -> Result<(std::path::PathBuf, std::fs::File)> {
    use std::hash::{BuildHasher, Hasher};
    use std::os::unix::fs::OpenOptionsExt;
    for _ in 0..8 {
        // RandomState is seeded from the OS's randomness.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let path = std::env::temp_dir().join(format!("coffre-mount-{:016x}.log", h.finish()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    bail!(
        "cannot create a log file in {}",
        std::env::temp_dir().display()
    )
}

/// A cache size: at least a megabyte.
fn parse_size(s: &str) -> Result<usize> {
    let n = crate::parse::size(s)?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX).max(1 << 20))
}
