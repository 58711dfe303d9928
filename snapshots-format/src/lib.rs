//! The Coffre repository: format, crypto, chunking, packs, index, trees,
//! snapshots, and the snapshot / restore / check engines.
//!
//! Each on-disk object has one module holding its encoder and decoder
//! (`header`, `keyfile`, `blob`, `pack`, `index`, `tree`, `content`,
//! `snapshot`); `store` owns the directory layout and durability; `crypto`
//! owns every key and cipher. The engines never print: they report through
//! [`progress::Progress`].

pub mod backend;
pub mod backup;
pub mod blob;
pub mod browse;
pub mod check;
pub mod chunker;
pub mod codec;
pub mod content;
pub mod crypto;
pub mod dict;
pub mod error;
pub mod fsmeta;
pub mod header;
pub mod id;
pub mod index;
pub mod index_file;
pub mod keyfile;
pub mod lock;
pub mod owner;
pub mod pack;
pub mod policy;
pub mod progress;
pub mod prune;
pub mod reader;
pub mod rebuild;
pub mod repo;
pub mod restore;
pub mod saver;
pub mod snapshot;
pub mod target;
pub mod tree;

pub use error::{Error, Result};
pub use id::{BlobId, PackId, SnapshotId};
pub use reader::ReadOnlyRepository;
pub use repo::Repository;
