//! The repository's journal (FORMAT.md §18): appending an entry, and
//! reading every entry back with the chain checked, so that an entry
//! removed, replaced or put out of order is reported, never silently
//! skipped.
//!
//! Entries never change once written, so each one read is kept in the
//! repository's cache folder (`journal/<id>`, the sealed bytes as stored):
//! a journal of years on an S3 store costs one listing, not thousands of
//! requests. The cache also remembers every entry this machine has seen
//! (`journal-seen`), which catches the removal of the newest entries, the
//! one removal the chain alone cannot show.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use crate::backend::{FileKind, ObjectName};
use crate::crypto::ObjectKind;
use crate::error::{Error, Result};
use crate::format::journal::{Entry, EntryKind, Outcome, JOURNAL_MAGIC};
use crate::id::to_hex;
use crate::repo::Repository;

/// What a command asks to record; the journal adds who, when and the chain.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// What happened.
    pub kind: EntryKind,
    /// How it ended.
    pub outcome: Outcome,
    /// One line for people.
    pub summary: String,
    /// Details for scripts.
    pub details: serde_json::Value,
    /// Unix seconds; the caller's clock (a simulated one in tests).
    pub time: i64,
}

/// The journal as read: entries in order, and what is wrong with it.
#[derive(Debug, Default)]
pub struct Journal {
    /// `(id, entry)`, by sequence number, then time.
    pub entries: Vec<(String, Entry)>,
    /// Removed, replaced, unreadable or reordered entries, in words.
    pub problems: Vec<String>,
}

impl Journal {
    /// The entries no other entry names as its predecessor: where the next
    /// entry attaches.
    fn heads(&self) -> Vec<&(String, Entry)> {
        let named: HashSet<&str> = self
            .entries
            .iter()
            .flat_map(|(_, e)| e.prev.iter().map(String::as_str))
            .collect();
        self.entries
            .iter()
            .filter(|(id, _)| !named.contains(id.as_str()))
            .collect()
    }
}

/// A legal hold on a snapshot: `forget` keeps it until `until`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hold {
    /// The snapshot (64 hex).
    pub snapshot: String,
    /// Unix seconds; the hold ends then.
    pub until: i64,
    /// Why (a year-end closing, an inspection...).
    pub reason: String,
    /// Who placed it.
    pub by: String,
    /// When (Unix seconds).
    pub since: i64,
}

/// The details of a `protect` entry placing a hold.
pub fn protect_details(snapshot: &str, until: i64, reason: &str) -> serde_json::Value {
    serde_json::json!({ "action": "protect", "snapshot": snapshot, "until": until, "reason": reason })
}

/// The details of a `protect` entry lifting a hold.
pub fn unprotect_details(snapshot: &str, reason: &str) -> serde_json::Value {
    serde_json::json!({ "action": "unprotect", "snapshot": snapshot, "reason": reason })
}

impl Journal {
    /// How many objects the recorded commands sealed under the repository's
    /// key (each entry's `seals` detail), for the key's nonce budget
    /// ([`crate::crypto::SEAL_BUDGET`]). Commands from before the count was
    /// kept add nothing, so this is a lower bound.
    pub fn seals_recorded(&self) -> u64 {
        self.entries
            .iter()
            .filter_map(|(_, e)| e.details["seals"].as_u64())
            .fold(0u64, u64::saturating_add)
    }

    /// The holds in force at `now`, by snapshot id: the journal's
    /// `protect` entries replayed in order (the last word on a snapshot
    /// wins; an expired hold is no hold).
    pub fn holds(&self, now: i64) -> Vec<Hold> {
        let mut holds: std::collections::BTreeMap<String, Hold> = Default::default();
        for (_, e) in &self.entries {
            if e.kind != EntryKind::Protect || e.outcome != Outcome::Ok {
                continue;
            }
            let d = &e.details;
            let Some(snapshot) = d["snapshot"].as_str() else {
                continue;
            };
            match d["action"].as_str() {
                Some("protect") => {
                    let hold = Hold {
                        snapshot: snapshot.to_owned(),
                        until: d["until"].as_i64().unwrap_or(i64::MAX),
                        reason: d["reason"].as_str().unwrap_or_default().to_owned(),
                        by: format!("{}@{}", e.user, e.host),
                        since: e.time,
                    };
                    holds.insert(snapshot.to_owned(), hold);
                }
                Some("unprotect") => {
                    holds.remove(snapshot);
                }
                _ => {}
            }
        }
        holds.into_values().filter(|h| h.until > now).collect()
    }
}

fn cache_dir(repo: &Repository) -> PathBuf {
    repo.cache_folder().join("journal")
}

/// Drops this machine's copy of journal entry `id`, so that the next
/// [`Repository::journal`] reads the entry from the drive: `check` calls it
/// for an entry whose stored bytes no longer match its name (damaged after
/// this machine read it), which the cached copy would otherwise hide.
pub(crate) fn forget_cached(repo: &Repository, id: &str) {
    let _ = std::fs::remove_file(cache_dir(repo).join(id));
}

fn seen_file(repo: &Repository) -> PathBuf {
    repo.cache_folder().join("journal-seen")
}

impl Repository {
    /// Appends an entry after the journal's newest ones; returns its id.
    ///
    /// # Errors
    /// Storage errors. A damaged journal does not stop the append: the new
    /// entry attaches to what can be read.
    pub fn journal_append(&self, new: NewEntry) -> Result<String> {
        let journal = self.journal()?;
        let heads = journal.heads();
        let who = crate::repo::keyring::new_label(crate::format::keyfile::KeyKind::Passphrase, "");
        let entry = Entry {
            time: new.time,
            seq: heads.iter().map(|(_, e)| e.seq + 1).max().unwrap_or(0),
            prev: heads.iter().map(|(id, _)| id.clone()).collect(),
            kind: new.kind,
            outcome: new.outcome,
            user: who.user,
            host: who.host,
            summary: new.summary,
            details: new.details,
        };
        let sealed = self.keys().seal(ObjectKind::Journal, &[], &entry.encode());
        let bytes = [&JOURNAL_MAGIC[..], &sealed].concat();
        let id = to_hex(blake3::hash(&bytes).as_bytes());
        let name = ObjectName::parse(FileKind::Journal, &id)
            .ok_or_else(|| Error::Refused("journal entry name".into()))?;
        self.backend()
            .write(FileKind::Journal, &name, &bytes, false)?;
        let _ = write_private(&cache_dir(self), &id, &bytes);
        remember_seen(self, std::iter::once(id.as_str()));
        Ok(id)
    }

    /// Every journal entry in order, with the chain checked.
    ///
    /// # Errors
    /// Storage errors listing or reading entries (a damaged entry is a
    /// problem of the result, not an error).
    pub fn journal(&self) -> Result<Journal> {
        let mut journal = Journal::default();
        // What this machine saw is read before listing: an entry another
        // process appends (and marks seen) meanwhile is then not taken for
        // a removed one.
        let seen = read_seen(self);
        let listed = self.backend().list(FileKind::Journal)?;
        let dir = cache_dir(self);
        let mut present = HashSet::new();
        for (name, size) in &listed {
            let id = name.as_str().to_owned();
            present.insert(id.clone());
            let cached = std::fs::read(dir.join(&id)).ok();
            // A cached copy stands for the stored one only while the store
            // lists the same size: a replaced object is read again.
            let bytes = match cached {
                Some(b) if b.len() as u64 == *size && to_hex(blake3::hash(&b).as_bytes()) == id => {
                    b
                }
                _ => match self.backend().read(FileKind::Journal, name)? {
                    Some(b) => {
                        let _ = write_private(&dir, &id, &b);
                        b
                    }
                    None => continue,
                },
            };
            match self.open_entry(&id, &bytes) {
                Ok(entry) => journal.entries.push((id, entry)),
                Err(why) => journal
                    .problems
                    .push(format!("journal entry {}: {why}", &id[..12])),
            }
        }
        journal
            .entries
            .sort_by(|(a, x), (b, y)| (x.seq, x.time, a).cmp(&(y.seq, y.time, b)));
        check_chain(&mut journal);
        let mut gone: Vec<&String> = seen.iter().filter(|id| !present.contains(*id)).collect();
        gone.sort();
        for id in gone {
            journal.problems.push(format!(
                "journal entry {} was here when this machine last read the journal and is gone: an entry was removed",
                &id[..12.min(id.len())]
            ));
        }
        remember_seen(self, present.iter().map(String::as_str));
        Ok(journal)
    }

    fn open_entry(&self, id: &str, bytes: &[u8]) -> std::result::Result<Entry, String> {
        if to_hex(blake3::hash(bytes).as_bytes()) != id {
            return Err("its bytes do not match its name (replaced)".into());
        }
        let sealed = bytes
            .strip_prefix(&JOURNAL_MAGIC[..])
            .ok_or("not a journal entry (bad magic)")?;
        let plain = self
            .keys()
            .open(ObjectKind::Journal, &[], sealed)
            .map_err(|_| "fails authentication (forged or damaged)".to_string())?;
        Entry::decode(&plain).map_err(|e| e.to_string())
    }
}

/// Reports dangling predecessors (a removed entry) and wrong numbers (an
/// entry put out of order).
fn check_chain(journal: &mut Journal) {
    let by_id: HashMap<&str, &Entry> = journal
        .entries
        .iter()
        .map(|(id, e)| (id.as_str(), e))
        .collect();
    let mut problems = Vec::new();
    for (id, e) in &journal.entries {
        let mut max_prev = None;
        for p in &e.prev {
            match by_id.get(p.as_str()) {
                Some(prev) => max_prev = max_prev.max(Some(prev.seq)),
                None => problems.push(format!(
                    "journal entry {} (no. {}, {}) follows entry {} which is missing: an entry was removed",
                    &id[..12],
                    e.seq,
                    e.kind.name(),
                    &p[..12.min(p.len())]
                )),
            }
        }
        let expected = max_prev.map_or(0, |s| s + 1);
        if e.prev.len()
            == e.prev
                .iter()
                .filter(|p| by_id.contains_key(p.as_str()))
                .count()
            && e.seq != expected
        {
            problems.push(format!(
                "journal entry {} is numbered {} where {expected} was due: the journal was reordered",
                &id[..12],
                e.seq
            ));
        }
    }
    journal.problems.extend(problems);
}

fn read_seen(repo: &Repository) -> BTreeSet<String> {
    std::fs::read_to_string(seen_file(repo))
        .map(|t| {
            t.lines()
                .filter(|l| l.len() == 64)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn remember_seen<'a>(repo: &Repository, ids: impl Iterator<Item = &'a str>) {
    let mut seen = read_seen(repo);
    let before = seen.len();
    seen.extend(ids.map(str::to_owned));
    if seen.len() == before {
        return;
    }
    let path = seen_file(repo);
    let text: String = seen.iter().map(|id| format!("{id}\n")).collect();
    let tmp = format!("journal-seen.{}.tmp", std::process::id());
    if write_private(repo.cache_folder(), &tmp, text.as_bytes()).is_ok() {
        let _ = std::fs::rename(repo.cache_folder().join(&tmp), &path);
    }
}

/// Writes `dir/name`, the folder 0700 and the file 0600 whatever the
/// umask: the cache says what the repository holds and when.
fn write_private(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join(name))?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, MemBackend};
    use crate::format::keyfile::KdfParams;
    use std::sync::Arc;

    fn entry(kind: EntryKind, time: i64) -> NewEntry {
        NewEntry {
            kind,
            outcome: Outcome::Ok,
            summary: format!("{} at {time}", kind.name()),
            details: serde_json::json!({}),
            time,
        }
    }

    /// Regression (issue 17, found by tests/concurrency.rs): a reader that
    /// listed the journal just before another process of this machine
    /// appended (and marked seen) an entry took it for a removed one, and
    /// prune then refused to run.
    #[test]
    fn an_entry_appended_while_another_process_reads_is_not_taken_for_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mem = Arc::new(MemBackend::new());
        let cache = dir.path().join("c");
        drop(Repository::init_with(mem.clone(), &cache, b"pw", KdfParams::CHEAP).unwrap());
        let writer = Repository::open_with(mem.clone(), &cache, b"pw").unwrap();
        let reader = Repository::open_with(mem.clone(), &cache, b"pw").unwrap();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let appender = {
            let done = done.clone();
            std::thread::spawn(move || {
                for i in 0..150 {
                    writer
                        .journal_append(entry(EntryKind::Check, 1000 + i))
                        .unwrap();
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
        let mut reads = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let j = reader.journal().unwrap();
            assert!(
                !j.problems.iter().any(|p| p.contains("is gone")),
                "read {reads}: {:?}",
                j.problems
            );
            reads += 1;
        }
        appender.join().unwrap();
        assert!(reads > 0);
    }

    #[test]
    fn entries_chain_in_order_and_removals_and_reorders_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mem = Arc::new(MemBackend::new());
        let repo =
            Repository::init_with(mem.clone(), &dir.path().join("c"), b"pw", KdfParams::CHEAP)
                .unwrap();
        let kinds = [
            EntryKind::Snapshot,
            EntryKind::Check,
            EntryKind::CopyOut,
            EntryKind::Forget,
        ];
        let ids: Vec<String> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| repo.journal_append(entry(*k, 1000 + i as i64)).unwrap())
            .collect();
        let j = repo.journal().unwrap();
        assert!(j.problems.is_empty(), "{:?}", j.problems);
        let got: Vec<(u64, EntryKind)> = j.entries.iter().map(|(_, e)| (e.seq, e.kind)).collect();
        assert_eq!(
            got,
            vec![(0, kinds[0]), (1, kinds[1]), (2, kinds[2]), (3, kinds[3])]
        );
        assert!(j
            .entries
            .iter()
            .all(|(_, e)| !e.host.is_empty() && !e.user.is_empty()));

        // A fresh machine (no cache) reads the same.
        let other = Repository::open_with(mem.clone(), &dir.path().join("c2"), b"pw").unwrap();
        assert_eq!(other.journal().unwrap().entries.len(), 4);

        // Removing a middle entry leaves its successor dangling.
        let name = |id: &str| ObjectName::parse(FileKind::Journal, id).unwrap();
        let middle = mem
            .read(FileKind::Journal, &name(&ids[1]))
            .unwrap()
            .unwrap();
        mem.delete(FileKind::Journal, &name(&ids[1])).unwrap();
        let j = other.journal().unwrap();
        assert!(
            j.problems
                .iter()
                .any(|p| p.contains("which is missing: an entry was removed")),
            "{:?}",
            j.problems
        );
        mem.raw_put(FileKind::Journal, &name(&ids[1]), &middle);

        // Removing the newest is caught by the machines that saw it.
        mem.delete(FileKind::Journal, &name(&ids[3])).unwrap();
        let j = other.journal().unwrap();
        assert!(
            j.problems
                .iter()
                .any(|p| p.contains("is gone: an entry was removed")),
            "{:?}",
            j.problems
        );

        // An entry replaced by other bytes under its name.
        mem.raw_put(FileKind::Journal, &name(&ids[2]), b"COFFREJL garbage");
        let j = other.journal().unwrap();
        assert!(
            j.problems
                .iter()
                .any(|p| p.contains("do not match its name")),
            "{:?}",
            j.problems
        );
    }

    #[test]
    fn holds_replay_in_order_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let mem = Arc::new(MemBackend::new());
        let repo =
            Repository::init_with(mem, &dir.path().join("c"), b"pw", KdfParams::CHEAP).unwrap();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let put = |details: serde_json::Value, time: i64| {
            repo.journal_append(NewEntry {
                kind: EntryKind::Protect,
                outcome: Outcome::Ok,
                summary: String::new(),
                details,
                time,
            })
            .unwrap();
        };
        put(protect_details(&a, 1000, "clôture annuelle"), 10);
        put(protect_details(&b, 500, "contrôle"), 11);
        put(unprotect_details(&b, "fini"), 12);
        put(protect_details(&b, 2000, "contrôle, prolongé"), 13);
        let j = repo.journal().unwrap();
        let at = |now| {
            j.holds(now)
                .into_iter()
                .map(|h| (h.snapshot, h.reason))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            at(100),
            vec![
                (a.clone(), "clôture annuelle".to_owned()),
                (b.clone(), "contrôle, prolongé".to_owned())
            ]
        );
        assert_eq!(at(1500), vec![(b, "contrôle, prolongé".to_owned())]);
        assert!(at(3000).is_empty());
    }

    #[test]
    fn a_reordered_entry_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mem = Arc::new(MemBackend::new());
        let repo =
            Repository::init_with(mem.clone(), &dir.path().join("c"), b"pw", KdfParams::CHEAP)
                .unwrap();
        let first = repo.journal_append(entry(EntryKind::Snapshot, 10)).unwrap();
        // A forged entry (with the key) claiming a wrong number.
        let bad = Entry {
            time: 20,
            seq: 7,
            prev: vec![first],
            kind: EntryKind::Forget,
            outcome: Outcome::Ok,
            user: "x".into(),
            host: "y".into(),
            summary: String::new(),
            details: serde_json::Value::Null,
        };
        let sealed = repo.keys().seal(ObjectKind::Journal, &[], &bad.encode());
        let bytes = [&JOURNAL_MAGIC[..], &sealed].concat();
        let id = to_hex(blake3::hash(&bytes).as_bytes());
        mem.raw_put(
            FileKind::Journal,
            &ObjectName::parse(FileKind::Journal, &id).unwrap(),
            &bytes,
        );
        let j = repo.journal().unwrap();
        assert!(
            j.problems.iter().any(|p| p.contains("reordered")),
            "{:?}",
            j.problems
        );
    }
}
