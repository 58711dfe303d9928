//! Size bounds shared by the format (what a writer may produce) and the
//! storage (what a reader accepts before allocating).

/// The largest pack Coffre reads: packs close at 16 MiB plus the last
/// batch, and offsets are 32-bit; anything larger is refused unread (a
/// sparse file of terabytes costs nothing to plant on a drive).
pub const MAX_PACK_LEN: u64 = 64 << 20;

/// The largest file a chunk list may describe: Linux's own limit
/// (`MAX_LFS_FILESIZE`, the largest `off_t`). Extents are summed into
/// offsets; a crafted list of holes adding up past 2^64 would wrap them
/// around (or panic where overflow is checked), so longer lists are
/// refused as damaged before anything adds them up.
pub const MAX_FILE_LEN: u64 = i64::MAX as u64;

/// The most memory a key file may ask Argon2 for (KiB): 16 times the
/// default. Its parameters are read before anything authenticates them, so
/// a planted key file could otherwise ask for 4 GiB and 64 passes on every
/// open (FORMAT.md §3, §12.4).
pub const MAX_KDF_MEMORY_KIB: u32 = 1 << 20;
/// The most Argon2 passes a key file may ask for (the default is 3).
pub const MAX_KDF_PASSES: u32 = 16;
/// The most Argon2 lanes a key file may ask for (the default is 1).
pub const MAX_KDF_LANES: u32 = 16;
/// The most key derivations one open runs: a drive carrying tens of
/// thousands of planted key files must not make opening take hours. The key
/// file that last opened the repository on this machine is tried first.
pub const MAX_KEY_FILES_TRIED: usize = 32;

/// The most paths `find` collects: every match is held until the search
/// ends (the results are sorted by path), and a tree listing the same
/// subtree twice at each of 60 levels describes 2^60 paths. A pharmacist
/// looks for a name, which matches far fewer; a pattern that matches more
/// is refused with a message asking for a narrower one.
pub const MAX_FIND_MATCHES: usize = 100_000;

/// The most folders `find` remembers (by path and tree id) to reuse
/// across snapshots: past it, folders are read again rather than
/// remembered, so the memory stays bounded on any tree.
pub const MAX_FIND_MEMO: usize = 200_000;
