//! Repository locks, `locks/<kind>-<16 hex>` (FORMAT.md §15): snapshot and
//! check hold shared locks, forget, prune and rebuild-index an exclusive one.
//! A mount registers a *mount* lock that nobody waits for: it must never
//! block prune forever (what a mounted folder then shows is documented in
//! docs/RETENTION.md).
//!
//! A lock file holds its holder's host, pid, command and start time, sealed
//! like every other object. To take a lock, write yours, then look at the
//! others: on conflict, withdraw, wait and retry until the deadline, then
//! name the holder. A lock of a process that no longer runs on this host is
//! stale and removed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Backend, FileKind, ObjectName};
use crate::codec::{Reader, Writer};
use crate::crypto::ObjectKind;
use crate::error::{Error, Result};
use crate::repo::Repository;

const LOCK_VERSION: u8 = 1;

/// What a lock allows others to do meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Others may read and add (snapshot, check).
    Shared,
    /// Nobody else may work (forget, prune, rebuild-index).
    Exclusive,
    /// A mount: reported to others, never waited for.
    Mount,
}

impl LockKind {
    fn prefix(self) -> char {
        match self {
            LockKind::Shared => 's',
            LockKind::Exclusive => 'x',
            LockKind::Mount => 'm',
        }
    }

    fn from_prefix(p: &str) -> Option<Self> {
        match p {
            "s" => Some(LockKind::Shared),
            "x" => Some(LockKind::Exclusive),
            "m" => Some(LockKind::Mount),
            _ => None,
        }
    }
}

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Lock kind.
    pub kind: LockKind,
    /// Host name.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// The command it runs (`snapshot`, `prune`...).
    pub command: String,
    /// When it took the lock (Unix seconds).
    pub since: i64,
    /// Its object.
    pub name: ObjectName,
}

impl Holder {
    /// "prune (pid 1234 on nas, since 2026-11-24 20:31:05)".
    pub fn describe(&self) -> String {
        use chrono::TimeZone;
        let since = chrono::Local
            .timestamp_opt(self.since, 0)
            .single()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        format!(
            "{} (pid {} on {}, since {since})",
            self.command, self.pid, self.host
        )
    }

    fn is_dead_here(&self, host: &str) -> bool {
        // SAFETY: kill with signal 0 only checks whether the process exists.
        self.host == host
            && self.pid != std::process::id()
            && unsafe { libc::kill(self.pid as i32, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
}

/// A held lock; dropping it releases it.
pub struct Lock {
    backend: Arc<dyn Backend>,
    name: ObjectName,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.backend.delete(FileKind::Lock, &self.name);
    }
}

fn this_host() -> String {
    String::from_utf8_lossy(&crate::owner::hostname()).into_owned()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Takes a lock of `kind` for `command`, waiting up to `wait` for
/// conflicting holders to finish. `on_wait` is told whom we wait for, once.
///
/// # Errors
/// [`Error::Locked`] naming the holder when the wait runs out.
pub fn acquire(
    repo: &Repository,
    kind: LockKind,
    command: &str,
    wait: Duration,
    on_wait: &dyn Fn(&Holder),
) -> Result<Lock> {
    let host = this_host();
    let deadline = Instant::now() + wait;
    let mut told = false;
    loop {
        let name = ObjectName::lock(kind.prefix(), &crate::crypto::random_array::<8>());
        let mine = Lock {
            backend: repo.backend_arc(),
            name: name.clone(),
        };
        let mut w = Writer::new();
        w.u8(LOCK_VERSION);
        w.bytes(host.as_bytes());
        w.varint(u64::from(std::process::id()));
        w.bytes(command.as_bytes());
        w.zigzag(now_secs());
        let sealed = repo
            .keys()
            .seal(ObjectKind::Lock, name.as_str().as_bytes(), &w.into_bytes());
        repo.backend().write(FileKind::Lock, &name, &sealed, true)?;

        let conflict = holders(repo)?.into_iter().find(|h| {
            // Mount locks never conflict; two shared locks do not either.
            h.name != mine.name
                && !matches!(
                    (kind, h.kind),
                    (_, LockKind::Mount)
                        | (LockKind::Mount, _)
                        | (LockKind::Shared, LockKind::Shared)
                )
        });
        let Some(holder) = conflict else {
            return Ok(mine);
        };
        drop(mine);
        if holder.is_dead_here(&host) {
            // Left by a process that died on this machine: safe to clear.
            let _ = repo.backend().delete(FileKind::Lock, &holder.name);
            continue;
        }
        if Instant::now() >= deadline {
            return Err(Error::Locked(holder.describe()));
        }
        if !told {
            on_wait(&holder);
            told = true;
        }
        // Jitter keeps two waiting writers from retrying in lockstep.
        let jitter = u64::from(crate::crypto::random_array::<1>()[0]) * 2;
        std::thread::sleep(Duration::from_millis(300 + jitter));
    }
}

/// Every lock file with its holder. A file that cannot be read is reported
/// as held by "unknown" (it still counts: better wait than damage).
pub fn holders(repo: &Repository) -> Result<Vec<Holder>> {
    let mut out = Vec::new();
    for (name, _) in repo.backend().list(FileKind::Lock)? {
        let Some(kind) = name
            .as_str()
            .split('-')
            .next()
            .and_then(LockKind::from_prefix)
        else {
            continue;
        };
        // Unreadable (damaged, or a link planted there): still held.
        let bytes = repo.backend().read(FileKind::Lock, &name).ok().flatten();
        let decoded = bytes.and_then(|b| {
            let plain = repo
                .keys()
                .open(ObjectKind::Lock, name.as_str().as_bytes(), &b)
                .ok()?;
            let mut r = Reader::new(&plain);
            r.version("lock", LOCK_VERSION).ok()?;
            let host = String::from_utf8_lossy(r.bytes().ok()?).into_owned();
            let pid = u32::try_from(r.varint().ok()?).ok()?;
            let command = String::from_utf8_lossy(r.bytes().ok()?).into_owned();
            let since = r.zigzag().ok()?;
            r.finish().ok()?;
            Some((host, pid, command, since))
        });
        let (host, pid, command, since) =
            decoded.unwrap_or_else(|| ("unknown".into(), 0, "unknown".into(), 0));
        out.push(Holder {
            kind,
            host,
            pid,
            command,
            since,
            name,
        });
    }
    Ok(out)
}

/// Removes stale locks (dead processes on this host), or every lock with
/// `all`. Returns the removed holders.
pub fn unlock(repo: &Repository, all: bool) -> Result<Vec<Holder>> {
    let host = this_host();
    let mut removed = Vec::new();
    for h in holders(repo)? {
        if all || h.is_dead_here(&host) {
            repo.backend().delete(FileKind::Lock, &h.name)?;
            removed.push(h);
        }
    }
    Ok(removed)
}
