//! The Coffre repository engine: the on-disk format, the storage backends,
//! the open repository, the source walk, and the operations (snapshot,
//! restore, check, prune, rebuild), in layers that depend one way
//! (docs/ARCHITECTURE.md):
//!
//! - base: [`error`], [`id`], [`codec`], [`crypto`], [`limits`],
//!   [`progress`], [`owner`];
//! - [`format`]: the bytes of each object, pure;
//! - [`backend`]: the only code doing I/O on repository objects;
//! - [`repo`]: an open [`Repository`], its index cache, saver and locks, and
//!   the [`ReadOnlyRepository`] the mount gets;
//! - [`source`]: the machine being backed up;
//! - [`ops`]: one entry point per operation.
//!
//! The library never prints: it reports through [`progress::Progress`].

pub mod backend;
pub mod codec;
pub mod crypto;
pub mod error;
pub mod format;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod id;
pub mod limits;
pub mod ops;
pub mod owner;
pub mod progress;
pub mod repo;
pub mod source;

pub use backend::{Backend, FileKind, ObjectName};
pub use error::{Error, Result};
pub use id::{BlobId, PackId, SnapshotId};
pub use repo::{ReadOnlyRepository, Repository};
