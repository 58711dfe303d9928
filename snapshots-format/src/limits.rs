//! Size bounds shared by the format (what a writer may produce) and the
//! storage (what a reader accepts before allocating).

/// The largest pack Coffre reads: packs close at 16 MiB plus the last
/// batch, and offsets are 32-bit; anything larger is refused unread (a
/// sparse file of terabytes costs nothing to plant on a drive).
pub const MAX_PACK_LEN: u64 = 64 << 20;
