//! Snapshot records, `snapshots/<64 hex>` (FORMAT.md §8): when, from where,
//! which root tree, and what the run did. A record is written last, after
//! every blob it references is durable: its file appearing is the commit.
//!
//! File: magic "COFFRESN" (8) | sealed(record). The id is the BLAKE3 hash of
//! the whole file, checked on every load, so a renamed or swapped record is
//! refused.

use chrono::{DateTime, Local, TimeZone, Utc};
use serde::Serialize;

use crate::codec::{DecodeError, Reader, Writer};
use crate::crypto::{Keys, ObjectKind};
use crate::error::{Error, Result};
use crate::format::tree::Timestamp;
use crate::id::{BlobId, SnapshotId};

/// Magic opening a snapshot file.
pub const MAGIC: &[u8; 8] = b"COFFRESN";
/// The record version written: 2 since format 5 (several sources, exclude
/// rules, hook results, two more counters). Version 1 is still read.
const RECORD_VERSION: u8 = 2;
/// At most this many bytes of a hook's output are kept in a record (its end).
pub const MAX_HOOK_OUTPUT: usize = 16 << 10;
/// At most this many skipped paths are kept in a record.
pub const MAX_RECORDED_PROBLEMS: usize = 1000;

/// What a snapshot run did, kept in its record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Regular files not in the parent snapshot.
    pub files_new: u64,
    /// Regular files in the parent whose metadata changed (re-read).
    pub files_changed: u64,
    /// Regular files unchanged since the parent (not read).
    pub files_unchanged: u64,
    /// Directories not in the parent.
    pub dirs_new: u64,
    /// Directories whose listing changed.
    pub dirs_changed: u64,
    /// Directories identical to the parent's.
    pub dirs_unchanged: u64,
    /// Symlinks, fifos, sockets and devices recorded.
    pub others: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Plaintext bytes of new blobs added to the repository.
    pub bytes_added: u64,
    /// Bytes of new blobs after compression and encryption.
    pub bytes_stored: u64,
    /// Number of new blobs.
    pub blobs_added: u64,
    /// Total size of the regular files in the snapshot.
    pub total_size: u64,
    /// Wall time of the run in milliseconds.
    pub duration_ms: u64,
    /// Files that changed while being read (stored as read; flagged).
    pub changed_while_read: Vec<Vec<u8>>,
    /// Entries that could not be read and were left out, with the reason.
    pub skipped: Vec<(Vec<u8>, String)>,
    /// Number of entries left out (may exceed the paths kept in `skipped`).
    pub skipped_count: u64,
    /// Entries left out by the exclude rules (a folder counts once).
    pub excluded_count: u64,
    /// Files whose inode number alone differed from the parent's: re-read
    /// on a local filesystem, trusted unchanged on a network one (whose
    /// inode numbers are not stable).
    pub inode_changed: u64,
}

impl Summary {
    /// Regular files in the snapshot (new, changed and unchanged); the
    /// counters come from the record, which a holder of the key may have
    /// crafted, so the sum saturates instead of overflowing.
    pub fn files(&self) -> u64 {
        self.files_new
            .saturating_add(self.files_changed)
            .saturating_add(self.files_unchanged)
    }
}

/// When a hook ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookKind {
    /// Before the snapshot (`--before`): a failure stops it.
    Before,
    /// A command whose output is stored as a file (`--from-command`).
    FromCommand,
}

/// A command run for the snapshot, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookRun {
    /// When it ran.
    pub kind: HookKind,
    /// Its name: the file name for `--from-command`, else `before`.
    pub name: String,
    /// The command line.
    pub command: String,
    /// Exit code; a negative value `-N` means killed by signal N.
    pub status: i32,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// The end of what it wrote on stderr (and on stdout for `before`),
    /// at most [`MAX_HOOK_OUTPUT`] bytes, lossy UTF-8.
    pub output: String,
}

/// A snapshot record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// When the snapshot was taken (UTC).
    pub time: Timestamp,
    /// Host that took it.
    pub hostname: Vec<u8>,
    /// Absolute source paths, raw bytes: one folder, or several (each then
    /// a folder of the root, named by its last component).
    pub sources: Vec<Vec<u8>>,
    /// Label grouping snapshots of one source (default: the hostname).
    pub label: String,
    /// Free tags.
    pub tags: Vec<String>,
    /// The snapshot this one was compared against, if any.
    pub parent: Option<SnapshotId>,
    /// The root directory's tree blob.
    pub tree: BlobId,
    /// The source directory's own metadata (mode, owner, times, xattrs),
    /// with an empty name and `Payload::Dir(tree)`.
    pub root: Option<crate::format::tree::Node>,
    /// What the run did.
    pub summary: Summary,
    /// The exclude rules the run applied, as given (`--exclude *.tmp`...).
    pub excludes: Vec<String>,
    /// The commands run for it (`--before`, `--from-command`).
    pub hooks: Vec<HookRun>,
}

impl Snapshot {
    /// The sources as one line of text (lossy), for display.
    pub fn source_text(&self) -> String {
        self.sources
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The time as a UTC date-time.
    pub fn utc(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.time.sec, self.time.nsec)
            .single()
            .unwrap_or_default()
    }

    /// The time in the local timezone (`TZ` respected).
    pub fn local(&self) -> DateTime<Local> {
        self.utc().with_timezone(&Local)
    }

    /// Encodes the record (FORMAT.md §8.1).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(RECORD_VERSION);
        w.zigzag(self.time.sec);
        w.varint(u64::from(self.time.nsec));
        w.bytes(&self.hostname);
        w.varint(self.sources.len() as u64);
        for source in &self.sources {
            w.bytes(source);
        }
        w.bytes(self.label.as_bytes());
        w.varint(self.tags.len() as u64);
        for t in &self.tags {
            w.bytes(t.as_bytes());
        }
        match &self.parent {
            Some(p) => {
                w.u8(1);
                w.raw(p.as_bytes());
            }
            None => w.u8(0),
        }
        w.raw(self.tree.as_bytes());
        match &self.root {
            Some(node) => {
                w.u8(1);
                crate::format::tree::encode_node(&mut w, node);
            }
            None => w.u8(0),
        }
        let s = &self.summary;
        for v in [
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            s.dirs_new,
            s.dirs_changed,
            s.dirs_unchanged,
            s.others,
            s.bytes_read,
            s.bytes_added,
            s.bytes_stored,
            s.blobs_added,
            s.total_size,
            s.duration_ms,
            s.skipped_count,
            s.excluded_count,
            s.inode_changed,
        ] {
            w.varint(v);
        }
        w.varint(s.changed_while_read.len() as u64);
        for p in &s.changed_while_read {
            w.bytes(p);
        }
        w.varint(s.skipped.len() as u64);
        for (p, why) in &s.skipped {
            w.bytes(p);
            w.bytes(why.as_bytes());
        }
        w.varint(self.excludes.len() as u64);
        for rule in &self.excludes {
            w.bytes(rule.as_bytes());
        }
        w.varint(self.hooks.len() as u64);
        for hook in &self.hooks {
            w.u8(match hook.kind {
                HookKind::Before => 1,
                HookKind::FromCommand => 2,
            });
            w.bytes(hook.name.as_bytes());
            w.bytes(hook.command.as_bytes());
            w.zigzag(i64::from(hook.status));
            w.varint(hook.duration_ms);
            w.bytes(hook.output.as_bytes());
        }
        w.into_bytes()
    }

    /// Decodes a record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.version_upto("snapshot record", RECORD_VERSION)?;
        let sec = r.zigzag()?;
        let nsec = r.varint_u32()?;
        if nsec >= 1_000_000_000 {
            return Err(DecodeError::Invalid("nanoseconds out of range"));
        }
        let hostname = r.bytes()?.to_vec();
        let sources = if version == 1 {
            vec![r.bytes()?.to_vec()]
        } else {
            let n = r.count(1)?;
            if n == 0 {
                return Err(DecodeError::Invalid("no source"));
            }
            (0..n)
                .map(|_| r.bytes().map(<[u8]>::to_vec))
                .collect::<Result<_, _>>()?
        };
        let label = utf8(r.bytes()?)?;
        let nt = r.count(1)?;
        let tags = (0..nt)
            .map(|_| utf8(r.bytes()?))
            .collect::<Result<_, _>>()?;
        let parent = match r.u8()? {
            0 => None,
            1 => Some(SnapshotId(r.id()?)),
            _ => return Err(DecodeError::Invalid("bad parent flag")),
        };
        let tree = BlobId(r.id()?);
        let root = match r.u8()? {
            0 => None,
            1 => {
                let node = crate::format::tree::decode_node_named(&mut r, false)?;
                // The root is the source folder itself: nameless, a folder,
                // and pointing at the record's own tree.
                if !node.name.is_empty()
                    || node.kind != crate::format::tree::NodeKind::Dir
                    || node.payload != crate::format::tree::Payload::Dir(tree)
                {
                    return Err(DecodeError::Invalid(
                        "root entry does not describe the root folder",
                    ));
                }
                Some(node)
            }
            _ => return Err(DecodeError::Invalid("bad root flag")),
        };
        let mut v = [0u64; 16];
        let counters = if version == 1 { 14 } else { 16 };
        for x in &mut v[..counters] {
            *x = r.varint()?;
        }
        let nc = r.count(1)?;
        let changed_while_read = (0..nc)
            .map(|_| r.bytes().map(<[u8]>::to_vec))
            .collect::<Result<_, _>>()?;
        let ns = r.count(2)?;
        let skipped = (0..ns)
            .map(|_| Ok((r.bytes()?.to_vec(), utf8(r.bytes()?)?)))
            .collect::<Result<_, _>>()?;
        let (excludes, hooks) = if version == 1 {
            (Vec::new(), Vec::new())
        } else {
            let ne = r.count(1)?;
            let excludes = (0..ne)
                .map(|_| utf8(r.bytes()?))
                .collect::<Result<_, _>>()?;
            let nh = r.count(6)?;
            let hooks = (0..nh)
                .map(|_| decode_hook(&mut r))
                .collect::<Result<_, _>>()?;
            (excludes, hooks)
        };
        r.finish()?;
        let summary = Summary {
            files_new: v[0],
            files_changed: v[1],
            files_unchanged: v[2],
            dirs_new: v[3],
            dirs_changed: v[4],
            dirs_unchanged: v[5],
            others: v[6],
            bytes_read: v[7],
            bytes_added: v[8],
            bytes_stored: v[9],
            blobs_added: v[10],
            total_size: v[11],
            duration_ms: v[12],
            skipped_count: v[13],
            excluded_count: v[14],
            inode_changed: v[15],
            changed_while_read,
            skipped,
        };
        Ok(Snapshot {
            time: Timestamp { sec, nsec },
            hostname,
            sources,
            label,
            tags,
            parent,
            tree,
            root,
            summary,
            excludes,
            hooks,
        })
    }

    /// The snapshot file: magic then the sealed record.
    pub fn seal(&self, keys: &Keys) -> Vec<u8> {
        [
            &MAGIC[..],
            &keys.seal(ObjectKind::Snapshot, &[], &self.encode()),
        ]
        .concat()
    }

    /// Opens a snapshot file, checking that its hash is `id`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the snapshot.
    pub fn open(keys: &Keys, id: &SnapshotId, file: &[u8]) -> Result<Self> {
        let bad = |why: String| Error::corrupt("snapshot", id.short(), why);
        if blake3::hash(file).as_bytes() != id.as_bytes() {
            return Err(bad("file does not match its name".into()));
        }
        if file.len() < MAGIC.len() || &file[..MAGIC.len()] != MAGIC {
            return Err(bad("bad magic".into()));
        }
        let plain = keys
            .open(ObjectKind::Snapshot, &[], &file[MAGIC.len()..])
            .map_err(|_| bad("fails authentication".into()))?;
        Snapshot::decode(&plain).map_err(|e| bad(e.to_string()))
    }
}

fn decode_hook(r: &mut Reader<'_>) -> Result<HookRun, DecodeError> {
    let kind = match r.u8()? {
        1 => HookKind::Before,
        2 => HookKind::FromCommand,
        _ => return Err(DecodeError::Invalid("unknown hook kind")),
    };
    let name = utf8(r.bytes()?)?;
    let command = utf8(r.bytes()?)?;
    let status =
        i32::try_from(r.zigzag()?).map_err(|_| DecodeError::Invalid("hook status out of range"))?;
    let duration_ms = r.varint()?;
    let output = utf8(r.bytes()?)?;
    Ok(HookRun {
        kind,
        name,
        command,
        status,
        duration_ms,
        output,
    })
}

fn utf8(b: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Invalid("text is not UTF-8"))
}

/// Picks the snapshot a user named among `all` (sorted oldest first):
/// `latest`, a local date `YYYY-MM-DD` (the last snapshot of that day), or a
/// unique prefix of an id.
///
/// # Errors
/// [`Error::SnapshotNotFound`] or [`Error::AmbiguousSnapshot`].
pub fn resolve<'a>(
    all: &'a [(SnapshotId, Snapshot)],
    spec: &str,
) -> Result<&'a (SnapshotId, Snapshot)> {
    let not_found = || Error::SnapshotNotFound(spec.to_string());
    if spec == "latest" {
        return all.iter().max_by_key(|(_, s)| s.time).ok_or_else(not_found);
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(spec, "%Y-%m-%d") {
        return all
            .iter()
            .filter(|(_, s)| s.local().date_naive() == day)
            .max_by_key(|(_, s)| s.time)
            .ok_or_else(not_found);
    }
    let spec_l = spec.to_ascii_lowercase();
    if spec_l.is_empty() || !spec_l.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let mut matches = all
        .iter()
        .filter(|(id, _)| id.to_hex().starts_with(&spec_l));
    let first = matches.next().ok_or_else(not_found)?;
    if matches.next().is_some() {
        return Err(Error::AmbiguousSnapshot(spec.to_string()));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    #[test]
    fn file_count_of_a_crafted_record_saturates() {
        let huge = Summary {
            files_new: u64::MAX,
            files_changed: u64::MAX,
            files_unchanged: 1,
            ..Summary::default()
        };
        assert_eq!(huge.files(), u64::MAX);
        let real = Summary {
            files_new: 2,
            files_changed: 3,
            files_unchanged: 4,
            ..Summary::default()
        };
        assert_eq!(real.files(), 9);
    }

    fn snap(
        sec: i64,
        tags: Vec<String>,
        host: Vec<u8>,
        skipped: Vec<(Vec<u8>, String)>,
    ) -> Snapshot {
        Snapshot {
            time: Timestamp { sec, nsec: 123 },
            hostname: host,
            sources: vec![b"/srv/officine\xff".to_vec(), b"/var/dump".to_vec()],
            label: "pharmacie".into(),
            tags,
            parent: Some(SnapshotId([4; 32])),
            tree: BlobId([5; 32]),
            root: Some(crate::format::tree::Node {
                name: Vec::new(),
                kind: crate::format::tree::NodeKind::Dir,
                mode: 0o750,
                uid: 1000,
                gid: 100,
                mtime: Timestamp { sec: 5, nsec: 6 },
                ctime: Timestamp { sec: 7, nsec: 8 },
                size: 0,
                dev: 1,
                inode: 2,
                nlink: 3,
                xattrs: vec![(b"user.k".to_vec(), b"v".to_vec())],
                payload: crate::format::tree::Payload::Dir(BlobId([5; 32])),
            }),
            summary: Summary {
                files_new: 3,
                bytes_read: 1 << 40,
                skipped_count: skipped.len() as u64,
                skipped,
                excluded_count: 7,
                inode_changed: 2,
                ..Default::default()
            },
            excludes: vec!["--exclude *.tmp".into()],
            hooks: vec![HookRun {
                kind: HookKind::FromCommand,
                name: "officine.fbk".into(),
                command: "nbackup -B 0 db -".into(),
                status: -9,
                duration_ms: 1200,
                output: "killed".into(),
            }],
        }
    }

    proptest! {
        #[test]
        fn record_round_trip(sec in any::<i64>(), tags in proptest::collection::vec("[a-z]{0,8}", 0..4), host in proptest::collection::vec(any::<u8>(), 0..30), skipped in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..20), "[ -~]{0,20}"), 0..3)) {
            let s = snap(sec, tags, host, skipped);
            prop_assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
        }
    }

    #[test]
    fn sealed_file_checks_its_id_and_bits() {
        let keys = Keys::derive(&MasterKey::from_bytes([1; 32]), [0; 16]);
        let s = snap(1_700_000_000, vec!["x".into()], b"h".to_vec(), vec![]);
        let file = s.seal(&keys);
        let id = SnapshotId(*blake3::hash(&file).as_bytes());
        assert_eq!(Snapshot::open(&keys, &id, &file).unwrap(), s);
        assert!(Snapshot::open(&keys, &SnapshotId([0; 32]), &file).is_err());
        let mut flipped = file.clone();
        flipped[30] ^= 4;
        let fid = SnapshotId(*blake3::hash(&flipped).as_bytes());
        assert!(Snapshot::open(&keys, &fid, &flipped).is_err());
    }

    #[test]
    fn resolve_latest_date_and_prefix() {
        std::env::set_var("TZ", "Europe/Paris");
        let mk = |sec| snap(sec, vec![], vec![], vec![]);
        // 2026-11-24 08:00 and 20:00 Paris, 2026-11-25 09:00 Paris.
        let all = vec![
            (SnapshotId([0xaa; 32]), mk(1_763_967_600)),
            (SnapshotId([0xab; 32]), mk(1_764_010_800)),
            (SnapshotId([0xbc; 32]), mk(1_764_057_600)),
        ];
        assert_eq!(resolve(&all, "latest").unwrap().0, SnapshotId([0xbc; 32]));
        assert_eq!(
            resolve(&all, "2025-11-24").unwrap().0,
            SnapshotId([0xab; 32])
        );
        assert_eq!(resolve(&all, "bc").unwrap().0, SnapshotId([0xbc; 32]));
        assert!(matches!(
            resolve(&all, "a"),
            Err(Error::AmbiguousSnapshot(_))
        ));
        assert!(matches!(
            resolve(&all, "2020-01-01"),
            Err(Error::SnapshotNotFound(_))
        ));
        assert!(matches!(
            resolve(&all, "zz"),
            Err(Error::SnapshotNotFound(_))
        ));
    }
}
