//! The bytes of each object on the drive, pure encode and decode, one file
//! per section of `docs/FORMAT.md`. Nothing here does I/O or knows where
//! objects are stored.

pub mod blob;
pub mod content;
pub mod delta;
pub mod dictionary;
pub mod header;
pub mod index_file;
pub mod journal;
pub mod keyfile;
pub mod pack;
pub mod policy;
pub mod snapshot;
pub mod tree;

/// zstd level for blobs and the dictionary: level 3 is zstd's own default
/// and the best speed to ratio trade-off on this data.
pub const ZSTD_LEVEL: i32 = 3;

/// zstd level for the small blobs compressed with the dictionary (database
/// pages, small files), and the level the dictionary is trained for.
/// Measured on the 2 GiB pharmagen tree, whose database's 100,000 pages
/// are most of these blobs: against level 3, the repository is as large
/// (0.04 % smaller) and the first snapshot takes a fifth less CPU
/// (docs/PERFORMANCE.md, session 25). Readers do not depend on the level.
pub const DICT_ZSTD_LEVEL: i32 = 1;
