//! An open repository: keys, format version, objects read and written
//! through a storage backend, the local index cache, the saver that packs
//! new blobs, locks, and the read-only view the mount gets.

pub mod browse;
pub mod chunk_list_reader;
pub mod file_reader;
pub mod index;
pub mod journal;
pub mod keyring;
pub mod listing_reader;
pub mod lock;
pub mod pack_directory;
pub mod pack_writer;
pub mod reader;
pub mod repository;
pub mod saver;

pub use listing_reader::ListingReader;
pub use reader::ReadOnlyRepository;
pub use repository::{default_cache_dir, Repository, SnapshotList};
