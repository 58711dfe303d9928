//! Repository locks, `locks/<kind>-<16 hex>` (FORMAT.md §15): snapshot and
//! check hold shared locks, forget, prune and rebuild-index an exclusive one.
//! A mount registers a *mount* lock that nobody waits for: it must never
//! block prune forever (what a mounted folder then shows is documented in
//! docs/RETENTION.md).
//!
//! A lock file holds its holder's host, pid, command and start time, and
//! (version 2) the holder's identity: machine and pid namespace, boot, pid
//! and process start time ([`Owner`]), sealed like every other object. To
//! take a lock, write yours, then look at the others: on conflict,
//! withdraw, wait and retry until the deadline, then name the holder. A
//! lock is stale, and removed, only when its owner surely no longer runs:
//! same machine and namespace, and rebooted since, or its pid gone or
//! reused. A host name and a pid alone prove nothing (a container shares
//! the host name, a pid is reused).
//!
//! Because another Coffre may still misjudge ours, writers confirm that
//! their lock is there just before they make their work visible
//! ([`Repository::confirm_lock`]): a snapshot before its record, prune
//! before it deletes anything (and that no other lock appeared).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Backend, FileKind, ObjectName};
use crate::codec::{Reader, Writer};
use crate::crypto::ObjectKind;
use crate::error::{Error, Result};
use crate::repo::Repository;

use crate::owner::Owner;

const LOCK_VERSION: u8 = 2;

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
    /// Who exactly (lock version 2); `None` for an older Coffre's lock.
    pub owner: Option<Owner>,
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

    /// Whether the holder surely no longer runs (see the module doc). An
    /// older Coffre's lock (no identity) is never judged so here.
    pub fn is_gone(&self) -> bool {
        self.owner.is_some_and(|o| o.is_gone())
    }

    /// The older rule, for `coffre unlock` asked by a person about a lock
    /// of an older Coffre: same host name and no such pid.
    fn is_dead_here_by_name(&self, host: &str) -> bool {
        // SAFETY: kill with signal 0 only checks whether the process exists.
        self.owner.is_none()
            && self.host == host
            && self.pid != std::process::id()
            && unsafe { libc::kill(self.pid as i32, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
}

/// A held lock; dropping it releases it.
pub struct Lock {
    backend: Arc<dyn Backend>,
    name: ObjectName,
    /// The repository's record of the lock it works under, cleared on drop.
    held: Arc<std::sync::Mutex<Option<(ObjectName, LockKind)>>>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Ok(mut held) = self.held.lock() {
            if held.as_ref().is_some_and(|(n, _)| *n == self.name) {
                *held = None;
            }
        }
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

/// Writes the lock file `name` held by `owner` (known as `host`).
fn write(
    repo: &Repository,
    name: &ObjectName,
    host: &str,
    owner: Owner,
    command: &str,
) -> Result<()> {
    let mut w = Writer::new();
    w.u8(LOCK_VERSION);
    w.bytes(host.as_bytes());
    w.varint(u64::from(owner.pid));
    w.bytes(command.as_bytes());
    w.zigzag(now_secs());
    for v in [owner.host, owner.boot, owner.start] {
        w.raw(&v.to_le_bytes());
    }
    let sealed = repo
        .keys()
        .seal(ObjectKind::Lock, name.as_str().as_bytes(), &w.into_bytes());
    repo.backend().write(FileKind::Lock, name, &sealed, true)?;
    Ok(())
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
    let me = Owner::current();
    let deadline = Instant::now() + wait;
    let mut told = false;
    loop {
        let name = ObjectName::lock(kind.prefix(), &crate::crypto::random_array::<8>());
        let mine = Lock {
            backend: repo.backend_arc(),
            name: name.clone(),
            held: repo.held_lock(),
        };
        write(repo, &name, &host, me, command)?;

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
            if let Ok(mut held) = mine.held.lock() {
                *held = Some((mine.name.clone(), kind));
            }
            return Ok(mine);
        };
        drop(mine);
        if holder.is_gone() {
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
            decode_holder(&plain)
        });
        let (host, pid, command, since, owner) =
            decoded.unwrap_or_else(|| ("unknown".into(), 0, "unknown".into(), 0, None));
        out.push(Holder {
            kind,
            host,
            pid,
            command,
            since,
            name,
            owner,
        });
    }
    Ok(out)
}

/// What a lock file's plaintext says of its holder: host, pid, command,
/// start time and (version 2) identity; `None` when it does not decode.
pub(crate) fn decode_holder(plain: &[u8]) -> Option<LockFields> {
    let mut r = Reader::new(plain);
    let version = r.version_upto("lock", LOCK_VERSION).ok()?;
    let host = String::from_utf8_lossy(r.bytes().ok()?).into_owned();
    let pid = u32::try_from(r.varint().ok()?).ok()?;
    let command = String::from_utf8_lossy(r.bytes().ok()?).into_owned();
    let since = r.zigzag().ok()?;
    let owner = if version >= 2 {
        let mut v = [0u64; 3];
        for x in &mut v {
            let b = r.raw(8).ok()?;
            *x = u64::from_le_bytes(b.try_into().ok()?);
        }
        Some(Owner {
            host: v[0],
            boot: v[1],
            pid,
            start: v[2],
        })
    } else {
        None
    };
    r.finish().ok()?;
    Some((host, pid, command, since, owner))
}

/// The decoded fields of a lock file, in [`Holder`]'s order.
pub(crate) type LockFields = (String, u32, String, i64, Option<Owner>);

/// Removes stale locks (owners that surely no longer run; for an older
/// Coffre's lock, a pid gone on a host of the same name), or every lock
/// with `all`. Returns the removed holders.
pub fn unlock(repo: &Repository, all: bool) -> Result<Vec<Holder>> {
    let host = this_host();
    let mut removed = Vec::new();
    for h in holders(repo)? {
        if all || h.is_gone() || h.is_dead_here_by_name(&host) {
            repo.backend().delete(FileKind::Lock, &h.name)?;
            removed.push(h);
        }
    }
    Ok(removed)
}

/// Checks that the lock `name` of `kind` is still there, and, for an
/// exclusive one, that no other lock but mounts appeared since.
///
/// # Errors
/// [`Error::Refused`] saying what happened; storage errors.
pub(crate) fn confirm(repo: &Repository, name: &ObjectName, kind: LockKind) -> Result<()> {
    let all = holders(repo)?;
    if !all.iter().any(|h| h.name == *name) {
        return Err(Error::Refused(
            "this run's lock on the repository was removed by another process meanwhile (another machine, or `coffre unlock --all`), so its work was not made visible; run it again".into(),
        ));
    }
    if kind == LockKind::Exclusive {
        if let Some(other) = all
            .iter()
            .find(|h| h.name != *name && h.kind != LockKind::Mount)
        {
            return Err(Error::Refused(format!(
                "{} started while this run held the repository alone; nothing was deleted. Run it again once that one has finished",
                other.describe()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mem::MemBackend;
    use crate::format::keyfile::KdfParams;

    fn repo(dir: &std::path::Path) -> Repository {
        let cheap = KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        Repository::init_with(Arc::new(MemBackend::new()), dir, b"pw", cheap).unwrap()
    }

    fn plant(repo: &Repository, kind: LockKind, owner: Owner) -> ObjectName {
        let name = ObjectName::lock(kind.prefix(), &crate::crypto::random_array::<8>());
        write(repo, &name, &this_host(), owner, "prune").unwrap();
        name
    }

    /// The bug this identity fixes: a prune in a container with the same
    /// host name, whose pid does not exist here, must not be judged dead.
    #[test]
    fn only_a_lock_whose_owner_surely_stopped_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let me = Owner::current();
        let elsewhere = Owner {
            host: me.host ^ 1,
            pid: 999_999_999,
            ..me
        };
        let other = plant(&repo, LockKind::Exclusive, elsewhere);
        let waited = acquire(&repo, LockKind::Shared, "snapshot", Duration::ZERO, &|_| {});
        assert!(matches!(waited, Err(Error::Locked(_))));
        assert!(holders(&repo).unwrap().iter().any(|h| h.name == other));
        // `unlock` without --all keeps it too.
        assert!(unlock(&repo, false).unwrap().is_empty());

        repo.backend().delete(FileKind::Lock, &other).unwrap();
        let dead = Owner {
            pid: 999_999_999,
            ..me
        };
        let stale = plant(&repo, LockKind::Exclusive, dead);
        let lock = acquire(&repo, LockKind::Shared, "snapshot", Duration::ZERO, &|_| {}).unwrap();
        assert!(!holders(&repo).unwrap().iter().any(|h| h.name == stale));
        drop(lock);
    }

    #[test]
    fn work_is_refused_when_the_lock_was_taken_away_or_joined() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        repo.confirm_lock().unwrap();
        let lock = acquire(&repo, LockKind::Shared, "snapshot", Duration::ZERO, &|_| {}).unwrap();
        repo.confirm_lock().unwrap();
        repo.backend().delete(FileKind::Lock, &lock.name).unwrap();
        assert!(matches!(repo.confirm_lock(), Err(Error::Refused(_))));
        drop(lock);
        repo.confirm_lock().unwrap();

        let prune = acquire(&repo, LockKind::Exclusive, "prune", Duration::ZERO, &|_| {}).unwrap();
        let mount = plant(&repo, LockKind::Mount, Owner::current());
        repo.confirm_lock().unwrap();
        repo.backend().delete(FileKind::Lock, &mount).unwrap();
        plant(&repo, LockKind::Shared, Owner::current());
        match repo.confirm_lock() {
            Err(Error::Refused(why)) => assert!(why.contains("nothing was deleted"), "{why}"),
            other => panic!("{other:?}"),
        }
        drop(prune);
    }
}
