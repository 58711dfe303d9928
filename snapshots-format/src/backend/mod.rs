//! Storage backends: the only code that reads or writes repository objects.
//!
//! A backend stores opaque objects addressed by a [`FileKind`] and an
//! [`ObjectName`], never by a path: the repository above it cannot name a
//! file outside the repository, and a backend decides alone how objects map
//! to its medium (a folder tree on a drive, keys in a bucket, a map in
//! memory). Objects are written whole, atomically and durably: a reader
//! sees an object completely or not at all, and an object reported written
//! survives a crash.
//!
//! Every read is bounded by the kind's [`FileKind::max_len`] before
//! anything is allocated: a repository is untrusted input (the drive leaves
//! the building every night).

use std::fmt;

use crate::error::{Error, Result};
use crate::id::{to_hex, PackId, SnapshotId};

pub mod append_only;
pub mod conformance;
pub mod fault;
pub mod local;
pub mod location;
pub mod mem;
pub mod s3;

pub use fault::{FaultPlan, FaultyBackend};
pub use local::LocalBackend;
pub use location::Location;
pub use mem::MemBackend;
pub use s3::S3Backend;

/// What an object is. Decides where a backend keeps it, how its name looks
/// and how large it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// The plaintext header (one object, name empty).
    Config,
    /// A wrapped master key (name: 16 hex digits).
    Key,
    /// A pack of blobs (name: its 64-hex id).
    Pack,
    /// A snapshot record (name: its 64-hex id).
    Snapshot,
    /// An index file listing packs and their blobs (name: its 64-hex id).
    Index,
    /// A lock (name: kind letter, `-`, 16 hex digits).
    Lock,
    /// The saved retention policy (one object, name empty).
    Policy,
    /// The compression dictionary (one object, name empty).
    Dictionary,
    /// The second copy of the compression dictionary (one object, name
    /// empty): every small chunk needs it, so its loss must be survivable.
    DictionaryCopy,
    /// An entry of the backup journal (name: its 64-hex id).
    Journal,
    /// The SQLite index of format 3 and earlier and its journals, kept on
    /// the drive (names: `index.db`, `index.db-wal`, `index.db-shm`,
    /// `index.db-journal`); only ever deleted, by the upgrade to format 4.
    LegacyIndex,
}

impl FileKind {
    /// Every kind, for listings and tests.
    pub const ALL: [FileKind; 11] = [
        FileKind::Config,
        FileKind::Key,
        FileKind::Pack,
        FileKind::Snapshot,
        FileKind::Index,
        FileKind::Lock,
        FileKind::Policy,
        FileKind::Dictionary,
        FileKind::DictionaryCopy,
        FileKind::Journal,
        FileKind::LegacyIndex,
    ];

    /// The largest object of this kind Coffre writes, with margin; anything
    /// larger is refused before it is read (a sparse file of terabytes
    /// costs nothing to make).
    pub fn max_len(self) -> u64 {
        match self {
            FileKind::Config => 4 << 10,
            FileKind::Key | FileKind::Lock | FileKind::Policy => 64 << 10,
            // One command's record, with up to 1000 problem paths.
            FileKind::Journal => 4 << 20,
            FileKind::Dictionary | FileKind::DictionaryCopy => 1 << 20,
            // Up to 2 × 1000 recorded problem paths of up to 4 KiB each.
            FileKind::Snapshot => 16 << 20,
            FileKind::Index => 256 << 20,
            FileKind::Pack => crate::limits::MAX_PACK_LEN,
            // Never read.
            FileKind::LegacyIndex => 0,
        }
    }

    /// Kinds with a single object, whose name is empty.
    pub fn is_single(self) -> bool {
        matches!(
            self,
            FileKind::Config | FileKind::Policy | FileKind::Dictionary | FileKind::DictionaryCopy
        )
    }

    /// Name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Config => "config",
            FileKind::Key => "key file",
            FileKind::Pack => "pack",
            FileKind::Snapshot => "snapshot record",
            FileKind::Index => "index file",
            FileKind::Lock => "lock",
            FileKind::Policy => "policy",
            FileKind::Dictionary => "dictionary",
            FileKind::DictionaryCopy => "dictionary copy",
            FileKind::Journal => "journal entry",
            FileKind::LegacyIndex => "old index database",
        }
    }
}

/// The name of an object within its kind, checked to have the kind's form
/// (so a backend never sees `..`, a slash or any name Coffre does not write).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName(String);

impl ObjectName {
    /// The name of a single object (config, policy, dictionary).
    pub fn single() -> Self {
        Self(String::new())
    }

    /// A pack's name.
    pub fn pack(id: &PackId) -> Self {
        Self(id.to_hex())
    }

    /// A snapshot record's name.
    pub fn snapshot(id: &SnapshotId) -> Self {
        Self(id.to_hex())
    }

    /// An index file's or other 32-byte id's name.
    pub fn id(id: &[u8; 32]) -> Self {
        Self(to_hex(id))
    }

    /// A key file's name.
    pub fn key(id: &[u8; 8]) -> Self {
        Self(to_hex(id))
    }

    /// A lock's name: `prefix` is one lowercase letter.
    pub fn lock(prefix: char, id: &[u8; 8]) -> Self {
        Self(format!("{prefix}-{}", to_hex(id)))
    }

    /// Checks that `name` has the form Coffre writes for `kind`.
    pub fn parse(kind: FileKind, name: &str) -> Option<Self> {
        let hex = |s: &str, n: usize| {
            s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let ok = match kind {
            FileKind::Config
            | FileKind::Policy
            | FileKind::Dictionary
            | FileKind::DictionaryCopy => name.is_empty(),
            FileKind::Key => hex(name, 16),
            FileKind::Pack | FileKind::Snapshot | FileKind::Index | FileKind::Journal => {
                hex(name, 64)
            }
            FileKind::Lock => {
                let b = name.as_bytes();
                b.len() == 18 && b[0].is_ascii_lowercase() && b[1] == b'-' && hex(&name[2..], 16)
            }
            FileKind::LegacyIndex => matches!(
                name,
                "index.db" | "index.db-wal" | "index.db-shm" | "index.db-journal"
            ),
        };
        ok.then(|| Self(name.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id this name spells, for 64-hex names.
    pub fn to_id(&self) -> Option<[u8; 32]> {
        crate::id::from_hex(&self.0).and_then(|v| v.try_into().ok())
    }

    /// The first 12 characters, as shown to users.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(12)]
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectName({})", self.0)
    }
}

/// An object being written. Nothing is visible until [`Upload::commit`];
/// dropping an upload abandons it.
pub trait Upload: Send {
    /// Appends bytes.
    ///
    /// # Errors
    /// I/O errors, [`Error::DriveFull`].
    fn write(&mut self, bytes: &[u8]) -> Result<()>;

    /// Makes the object durable under `name`. With `replace` false an
    /// existing object of that name is kept and `false` returned (two
    /// writers racing get one winner); otherwise returns `true`.
    ///
    /// # Errors
    /// I/O errors, [`Error::DriveFull`].
    fn commit(self: Box<Self>, name: &ObjectName, replace: bool) -> Result<bool>;
}

/// A place that stores repository objects. Implementations are shared by
/// threads; see the module documentation for the guarantees.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Where the repository is, for messages (a path, a URL).
    fn location(&self) -> String;

    /// Prepares an empty repository location for `init`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when something is there already.
    fn create(&self) -> Result<()>;

    /// Every object of `kind` with its size, in name order. Entries that
    /// are not objects Coffre wrote (other names, folders, links, devices)
    /// are skipped.
    ///
    /// # Errors
    /// I/O errors; [`Error::Tampered`] when the kind's place is not what
    /// Coffre made (a link, another filesystem).
    fn list(&self, kind: FileKind) -> Result<Vec<(ObjectName, u64)>>;

    /// The size of an object, or `None` if there is none.
    ///
    /// # Errors
    /// As [`Backend::list`].
    fn size(&self, kind: FileKind, name: &ObjectName) -> Result<Option<u64>>;

    /// A whole object, or `None` if there is none.
    ///
    /// # Errors
    /// As [`Backend::list`]; [`Error::Tampered`] for an object larger than
    /// [`FileKind::max_len`] or that is not a plain file.
    fn read(&self, kind: FileKind, name: &ObjectName) -> Result<Option<Vec<u8>>>;

    /// `len` bytes of an object from `offset`.
    ///
    /// # Errors
    /// As [`Backend::read`]; [`Error::Corrupt`] when the object is missing
    /// or shorter than `offset + len`.
    fn read_at(
        &self,
        kind: FileKind,
        name: &ObjectName,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>>;

    /// Starts writing a new object of `kind`.
    ///
    /// # Errors
    /// I/O errors.
    fn upload(&self, kind: FileKind) -> Result<Box<dyn Upload>>;

    /// Deletes an object, durably; deleting a missing object succeeds.
    ///
    /// # Errors
    /// I/O errors.
    fn delete(&self, kind: FileKind, name: &ObjectName) -> Result<()>;

    /// Whether a commit without `replace` is atomic against another writer
    /// committing the same name at the same moment (exactly one wins). An
    /// object store without conditional writes can only look first.
    fn exclusive_create(&self) -> bool {
        true
    }

    /// Bytes a writer may still add, when the place can tell (a local
    /// drive); `None` for an object store or when it cannot be asked.
    fn free_space(&self) -> Option<u64> {
        None
    }

    /// Removes what writers that are gone left half-written (a crash or a
    /// kill mid-write). Returns how many were removed.
    ///
    /// # Errors
    /// I/O errors.
    fn remove_leftovers(&self) -> Result<usize> {
        Ok(0)
    }

    /// Writes a whole object; see [`Upload::commit`] for `replace` and the
    /// result.
    ///
    /// # Errors
    /// As [`Upload::commit`].
    fn write(
        &self,
        kind: FileKind,
        name: &ObjectName,
        bytes: &[u8],
        replace: bool,
    ) -> Result<bool> {
        let mut up = self.upload(kind)?;
        up.write(bytes)?;
        up.commit(name, replace)
    }
}

/// The error for a read past the end of an object.
pub(crate) fn short_object(kind: FileKind, name: &ObjectName) -> Error {
    Error::corrupt(kind.name(), name.short(), "shorter than expected")
}

/// The error for a read of an object that is not there.
pub(crate) fn missing_object(kind: FileKind, name: &ObjectName) -> Error {
    Error::corrupt(kind.name(), name.short(), "is missing")
}

/// The error for an object larger than its kind allows.
pub(crate) fn too_large(kind: FileKind, where_: impl Into<String>, len: u64) -> Error {
    Error::Tampered {
        path: where_.into(),
        reason: format!(
            "{len} bytes, more than a {} can be ({} bytes)",
            kind.name(),
            kind.max_len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_the_kind_form() {
        let hex64 = "ab".repeat(32);
        assert!(ObjectName::parse(FileKind::Pack, &hex64).is_some());
        assert!(ObjectName::parse(FileKind::Pack, &hex64.to_uppercase()).is_none());
        assert!(ObjectName::parse(FileKind::Pack, "../x").is_none());
        assert!(ObjectName::parse(FileKind::Key, "0123456789abcdef").is_some());
        assert!(ObjectName::parse(FileKind::Key, "0123456789abcdeg").is_none());
        assert!(ObjectName::parse(FileKind::Lock, "s-0123456789abcdef").is_some());
        assert!(ObjectName::parse(FileKind::Lock, "S-0123456789abcdef").is_none());
        assert!(ObjectName::parse(FileKind::Lock, "s/0123456789abcdef").is_none());
        assert!(ObjectName::parse(FileKind::Config, "").is_some());
        assert!(ObjectName::parse(FileKind::Config, "x").is_none());
        assert!(ObjectName::parse(FileKind::LegacyIndex, "index.db-wal").is_some());
        assert!(ObjectName::parse(FileKind::LegacyIndex, "other.db").is_none());
        for kind in FileKind::ALL {
            assert!(kind.max_len() < 1 << 32, "{kind:?}");
        }
    }
}
