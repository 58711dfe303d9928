//! The library's error type. Every variant names the object or path involved,
//! so the CLI can say what went wrong and what to do without guessing.

use std::path::PathBuf;

use crate::codec::DecodeError;

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the repository engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No repository at the path (no `config` file).
    #[error("no Coffre repository at {0}")]
    NotARepository(PathBuf),
    /// The repository directory itself is missing (drive not plugged in?).
    #[error("repository path {0} does not exist")]
    RepositoryMissing(PathBuf),
    /// `init` over an existing repository or a non-empty directory.
    #[error("{0} already holds a repository or other files")]
    AlreadyExists(PathBuf),
    /// The repository was written by a newer Coffre.
    #[error("{what} version {found} is newer than this Coffre supports (up to {supported})")]
    UnsupportedVersion {
        /// What carries the version ("repository format", "pack", "key file", "index").
        what: &'static str,
        /// Version found in the header.
        found: u32,
        /// Highest version this build reads.
        supported: u32,
    },
    /// No key file opens with the passphrase.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The drive holding the repository is full.
    #[error("no space left on the drive while writing {path}{}", space_note(*needed, *free))]
    DriveFull {
        /// The object being written.
        path: PathBuf,
        /// About how many more bytes the command needed, when it could
        /// tell (see [`Error::needing`]).
        needed: Option<u64>,
        /// Bytes left free on the drive, when the backend could tell.
        free: Option<u64>,
    },
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An object failed to authenticate or decode: damage or tampering.
    #[error("{kind} {id} is damaged: {reason}")]
    Corrupt {
        /// Kind of object ("pack", "blob", "tree", "snapshot", "key file"...).
        kind: &'static str,
        /// Short id or file name.
        id: String,
        /// What exactly failed.
        reason: String,
    },
    /// A blob the snapshot needs is not in the index.
    #[error(
        "blob {0} is missing from the index (run `coffre rebuild-index`, then `coffre check`)"
    )]
    BlobNotFound(String),
    /// No snapshot matches what the user named.
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),
    /// A snapshot prefix or date matches several snapshots.
    #[error("{0:?} matches several snapshots; give more of the id")]
    AmbiguousSnapshot(String),
    /// A path inside a snapshot that does not exist.
    #[error("no such path in the snapshot: {0}")]
    PathNotFound(String),
    /// A path given to look up inside snapshots that cannot name an entry.
    #[error("path {path:?}: {reason}")]
    BadPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No snapshot (of those searched) holds the path.
    #[error("no snapshot holds {0} (look for it by name with `coffre find`)")]
    PathInNoSnapshot(String),
    /// The repository's compression dictionary is damaged, or missing while
    /// its blobs need it: a snapshot now would store files it could not
    /// read back, so none is taken.
    #[error("the repository's compression dictionary {reason}; no snapshot was taken, since it would store files it could not read back")]
    DictionaryUnusable {
        /// What is wrong with it.
        reason: String,
    },
    /// A search pattern that cannot be used.
    #[error("search pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The index database failed.
    #[error("index database: {0}")]
    Index(#[from] rusqlite::Error),
    /// An exclude pattern that cannot be used.
    #[error("exclude pattern {pattern:?}: {reason}")]
    BadExclude {
        /// The pattern as given (and where it came from).
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A command whose output was being stored failed (`--from-command`):
    /// the snapshot is not written.
    #[error("command for {name} failed: {reason}")]
    CommandFailed {
        /// The file name its output was stored as.
        name: String,
        /// How it failed.
        reason: String,
    },
    /// The source of a snapshot is unusable.
    #[error("source {path}: {reason}")]
    Source {
        /// The source path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A restore target problem (existing file without overwrite, unsafe entry...).
    #[error("{0}")]
    Restore(String),
    /// Another process holds a conflicting lock.
    #[error("the repository is in use by {0}")]
    Locked(String),
    /// The operation was interrupted on request.
    #[error("interrupted")]
    Interrupted,
    /// The repository holds something Coffre never writes where it expects
    /// its own objects (a link, another filesystem, a device, an oversized
    /// file): the drive was tampered with or damaged. Nothing was followed,
    /// read or deleted there.
    #[error("{path}: {reason}; the repository's layout was changed outside Coffre (remove that entry or use another drive)")]
    Tampered {
        /// Where, relative to the repository (or its location).
        path: String,
        /// What is there instead.
        reason: String,
    },
    /// This machine's index cache cannot be used (a folder not writable by
    /// this user, a full disk).
    #[error("local index cache {path}: {reason}")]
    Cache {
        /// The cache folder or file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// An operation stopped itself rather than risk data (prune finding a
    /// blob without a verified copy); the message says what to do.
    #[error("{0}")]
    Refused(String),
    /// A copied snapshot's data did not read back whole from the target:
    /// its record is not written, so the target never shows it half there.
    #[error("copy of snapshot {snapshot} into {target}: {reason}; the snapshot was not recorded there. Run the copy again; if this repeats, run `coffre check --read-data` on the target")]
    CopyUnverified {
        /// The source snapshot (short id).
        snapshot: String,
        /// The target repository's location.
        target: String,
        /// What did not read back.
        reason: String,
    },
    /// A passing failure of the storage (a network timeout, a server busy):
    /// the same request may succeed if tried again.
    #[error("{0} (temporary failure; try again)")]
    Transient(String),
    /// An object store (S3) refused a request or could not be reached.
    #[error("{location}: {problem}")]
    Store {
        /// The repository address (`s3:...`).
        location: String,
        /// What went wrong, and what to do.
        problem: StoreProblem,
    },
}

/// Why an object store request failed, each with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreProblem {
    /// The access key is unknown or its secret is wrong.
    #[error("the store refused the access key {key_id} ({detail}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the profile in ~/.aws/credentials)")]
    Credentials {
        /// The key id used.
        key_id: String,
        /// What the store said.
        detail: String,
    },
    /// No credentials anywhere.
    #[error("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile in ~/.aws/credentials, or access_key_id and secret_access_key_file under [s3] in Coffre's configuration")]
    NoCredentials,
    /// The key is valid but may not do this.
    #[error("access denied while {doing} ({detail}); the key lacks a permission on this bucket")]
    Denied {
        /// What Coffre was doing.
        doing: String,
        /// What the store said.
        detail: String,
    },
    /// The bucket does not exist.
    #[error("the bucket {0} does not exist; create it on the store first (Garage: `garage bucket create {0}`)")]
    NoBucket(String),
    /// The region in the request is not the store's.
    #[error(
        "wrong region ({0}); set AWS_REGION to the store's region (Garage's is usually `garage`)"
    )]
    Region(String),
    /// This machine's clock is too far from the store's for signed requests.
    #[error("this machine's clock is {seconds} s off the store's; set the clock right (timedatectl set-ntp true) and try again")]
    ClockSkew {
        /// Local minus store time.
        seconds: i64,
    },
    /// The store could not be reached, or kept failing, for the whole retry
    /// period.
    #[error("cannot reach the store at {authority} while {doing}: {detail}; check the network and the address, then run the command again")]
    Unreachable {
        /// `host:port`.
        authority: String,
        /// What Coffre was doing.
        doing: String,
        /// The last failure.
        detail: String,
    },
    /// Anything else the store answered.
    #[error("the store answered {status} {code} while {doing}: {detail}")]
    Other {
        /// HTTP status.
        status: u16,
        /// The S3 error code.
        code: String,
        /// What Coffre was doing.
        doing: String,
        /// The store's message.
        detail: String,
    },
}

impl Error {
    /// Wraps an I/O error with its path, recognising a full drive.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.raw_os_error() == Some(libc::ENOSPC) {
            Error::DriveFull {
                path,
                needed: None,
                free: None,
            }
        } else {
            Error::Io { path, source }
        }
    }

    /// A [`Error::DriveFull`] completed with what the command still needed
    /// and what was free (both as known); any other error unchanged.
    #[must_use]
    pub fn needing(self, more: Option<u64>, left: Option<u64>) -> Self {
        match self {
            Error::DriveFull { path, needed, free } => Error::DriveFull {
                path,
                needed: more.or(needed),
                free: left.or(free),
            },
            other => other,
        }
    }

    /// Whether this is [`Error::DriveFull`].
    pub fn is_drive_full(&self) -> bool {
        matches!(self, Error::DriveFull { .. })
    }

    /// Whether trying the same request again may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transient(_) => true,
            Error::Store { problem, .. } => matches!(problem, StoreProblem::Unreachable { .. }),
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }

    /// A decode failure of a named object.
    pub fn corrupt(kind: &'static str, id: impl ToString, reason: impl ToString) -> Self {
        Error::Corrupt {
            kind,
            id: id.to_string(),
            reason: reason.to_string(),
        }
    }
}

impl From<(&'static str, String, DecodeError)> for Error {
    fn from((kind, id, e): (&'static str, String, DecodeError)) -> Self {
        Error::corrupt(kind, id, e)
    }
}

/// Attaches a path to `std::io::Result`s.
pub trait IoContext<T> {
    /// Converts the error with [`Error::io`].
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

/// ": about 1.2 GiB more needed, 3.0 MiB free" (what is known of it).
fn space_note(needed: Option<u64>, free: Option<u64>) -> String {
    match (needed, free) {
        (Some(n), Some(f)) => format!(" (about {} more needed, {} free)", mib(n), mib(f)),
        (Some(n), None) => format!(" (about {} more needed)", mib(n)),
        (None, Some(f)) => format!(" ({} free)", mib(f)),
        (None, None) => String::new(),
    }
}

/// Sizes in the library's messages: MiB with one decimal, never "0.0"
/// for something that is not nothing.
pub(crate) fn mib(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    match n {
        0 => "0 MiB".to_owned(),
        n if n < 104_858 => "0.1 MiB".to_owned(),
        n => format!("{:.1} MiB", n as f64 / MIB),
    }
}
