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
