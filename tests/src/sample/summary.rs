//! What a day changed: counts of files, and the bytes that really changed,
//! raw and zstd-compressed (level 3): a floor for what a deduplicating
//! backup must store for that day.

use std::io::Write;

use serde::{Deserialize, Serialize};

/// The summary `coffre-sample day` prints as one JSON line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaySummary {
    /// The day applied.
    pub day: u32,
    /// Files created.
    pub files_new: u64,
    /// Files whose content changed.
    pub files_modified: u64,
    /// Files removed.
    pub files_deleted: u64,
    /// Files moved or renamed (content unchanged).
    pub files_renamed: u64,
    /// Bytes written that were not in the tree before.
    pub bytes_changed: u64,
    /// Database pages rewritten or added, both databases.
    pub db_pages_changed: u64,
    /// `bytes_changed` compressed together with zstd level 3.
    pub changed_compressed_bytes: u64,
}

/// A sink that only counts what is written to it.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counts a day's changes as they are made.
pub struct Tally {
    /// The counts so far.
    pub summary: DaySummary,
    zstd: Option<zstd::stream::write::Encoder<'static, Counter>>,
}

impl Tally {
    /// Counts day `day`'s changes; `compress` measures the compressed size
    /// (day 0 does without: it would only slow the first generation).
    pub fn new(day: u32, compress: bool) -> Self {
        let zstd = compress.then(|| {
            zstd::stream::write::Encoder::new(Counter(0), 3)
                .expect("a zstd encoder with a valid level")
        });
        Self {
            summary: DaySummary {
                day,
                ..Default::default()
            },
            zstd,
        }
    }

    /// Counts `data` as new bytes.
    pub fn changed(&mut self, data: &[u8]) {
        self.summary.bytes_changed += data.len() as u64;
        if let Some(z) = &mut self.zstd {
            z.write_all(data)
                .expect("compressing into memory for a counter does not fail");
        }
    }

    /// A new file of `data`.
    pub fn new_file(&mut self, data: &[u8]) {
        self.summary.files_new += 1;
        self.changed(data);
    }

    /// The final summary.
    pub fn finish(mut self) -> DaySummary {
        if let Some(z) = self.zstd.take() {
            let counter = z
                .finish()
                .expect("compressing into memory for a counter does not fail");
            self.summary.changed_compressed_bytes = counter.0;
        }
        self.summary
    }
}
