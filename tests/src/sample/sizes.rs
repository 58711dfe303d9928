//! How much of everything a scale means: `--scale-mb N` gives roughly N MiB,
//! shared out like a real pharmacy's data directory.

/// The databases' page sizes.
pub const OFFICINE_PAGE: usize = 8192;
/// `stock.sqlite`'s page size.
pub const STOCK_PAGE: usize = 4096;
/// Days of scans and of teletransmission kept at day 0.
pub const SCAN_HISTORY_DAYS: i64 = 90;
/// FSE folders older than this move to the archive.
pub const FSE_LIVE_DAYS: i64 = 30;
/// The average size of a scan (they are 120–450 KB).
pub const MEAN_SCAN: u64 = 285_000;
/// Days of sales exports at day 0.
pub const SALES_HISTORY_DAYS: i64 = 7;
/// Days of log lines at day 0: the current day and three rotated weeks.
const LOG_DAYS: u64 = 22;

/// Volumes derived from one scale.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// The scale, in MiB.
    pub scale_mb: u32,
    bytes: u64,
}

impl Sizes {
    /// The sizes at `scale_mb` MiB.
    pub fn new(scale_mb: u32) -> Self {
        Self {
            scale_mb,
            bytes: u64::from(scale_mb) << 20,
        }
    }

    /// `percent` % of the whole volume, in bytes.
    fn share(&self, percent: u64) -> u64 {
        self.bytes * percent / 100
    }

    /// Pages of `officine.fdb` at day 0 (~38 %).
    pub fn officine_pages(&self) -> u64 {
        (self.share(38) / OFFICINE_PAGE as u64).max(64)
    }

    /// Pages of `stock.sqlite` at day 0 (~4 %).
    pub fn stock_pages(&self) -> u64 {
        (self.share(4) / STOCK_PAGE as u64).max(32)
    }

    /// Scans per day on average (~35 % over the 90 days of history).
    pub fn scans_per_day(&self) -> f64 {
        self.share(35) as f64 / SCAN_HISTORY_DAYS as f64 / MEAN_SCAN as f64
    }

    /// FSE per day (~4 % of the volume, counted as the 4 KiB blocks they
    /// and their receipts take, over 30 days).
    pub fn fse_per_day(&self) -> u64 {
        (self.share(4) / FSE_LIVE_DAYS as u64 / 4096).max(3)
    }

    /// Bytes of documents at day 0 (~12 %).
    pub fn documents_bytes(&self) -> u64 {
        self.share(12)
    }

    /// Rows of the stock export (~2 %, ~80 bytes a row).
    pub fn stock_rows(&self) -> u64 {
        (self.share(2) / 80).max(200)
    }

    /// Rows of a daily sales export (~1 % over the week of history).
    pub fn sales_rows(&self) -> u64 {
        (self.share(1) / SALES_HISTORY_DAYS as u64 / 70).max(40)
    }

    /// Log lines per day (~3 % over the days the logs hold at day 0).
    pub fn log_lines(&self) -> u64 {
        (self.share(3) / LOG_DAYS / 90).max(40)
    }

    /// The hole in `divers/preallocation.dat`, in MiB: 64 scaled down.
    pub fn hole_mib(&self) -> u64 {
        u64::from(self.scale_mb / 4).clamp(1, 64)
    }
}
