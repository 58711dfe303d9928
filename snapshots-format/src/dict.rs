//! The repository's zstd dictionary (FORMAT.md §17): trained once, on the
//! first snapshot's small pieces, then used to compress every small data
//! blob.
//!
//! A database stored as 8 KiB pages compresses each page alone, which loses
//! the context a whole-file compressor would have: on pharmagen's database a
//! 64 KiB dictionary makes its pages 17 % smaller than without, and smaller
//! than the whole file compressed as one stream. Training takes a fraction
//! of a second on a few megabytes of samples, read from the source before
//! the first snapshot's walk.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use zstd::zstd_safe::{self, CDict, DDict};

// Opened as the snapshot opens them: never following a symlink swapped in,
// never blocking on a fifo swapped in.
use crate::backup::{for_each_file, open_source};
use crate::blob::ZSTD_LEVEL;
use crate::chunker::{self, Cutting};

/// Largest dictionary trained.
pub const DICT_MAX_SIZE: usize = 64 << 10;
/// Data blobs up to this size are compressed with the dictionary; larger
/// ones carry enough context of their own, and above 16 KiB zstd copies the
/// dictionary's tables into its context for every blob instead of referring
/// to them (measured: the copies cost more CPU than the few bytes won).
pub const DICT_BLOB_MAX: usize = 16 << 10;

/// Samples: at most this many pages of page-structured files...
const PAGE_SAMPLES: usize = 320;
/// ...and this many small files (each cut to [`SMALL_SAMPLE_MAX`]).
const SMALL_SAMPLES: usize = 200;
const SMALL_SAMPLE_MAX: usize = 16 << 10;
/// Fewer samples than this and no dictionary is trained: a small source
/// does not need one, and zstd's trainer fails on too little.
const MIN_SAMPLES: usize = 100;
/// The sampling walk stops after this many entries (a huge tree is sampled
/// from its first part).
const WALK_LIMIT: usize = 200_000;

/// A zstd dictionary, prepared for compressing and decompressing.
pub struct Dictionary {
    id: u32,
    raw: Vec<u8>,
    cdict: CDict<'static>,
    ddict: DDict<'static>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("id", &self.id)
            .field("len", &self.raw.len())
            .finish()
    }
}

impl Dictionary {
    /// Prepares a dictionary; `None` unless `raw` is a zstd dictionary with
    /// an id (frames name their dictionary by it).
    pub fn from_raw(raw: Vec<u8>) -> Option<Self> {
        let id = zstd_safe::get_dict_id(&raw)?.get();
        Some(Self {
            id,
            cdict: CDict::try_create(&raw, ZSTD_LEVEL)?,
            ddict: DDict::try_create(&raw)?,
            raw,
        })
    }

    /// zstd's id of the dictionary, written in the header of every frame
    /// compressed with it.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The dictionary's bytes.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    pub(crate) fn cdict(&self) -> &CDict<'static> {
        &self.cdict
    }

    pub(crate) fn ddict(&self) -> &DDict<'static> {
        &self.ddict
    }
}

/// Trains a dictionary from samples; `None` when there are too few or zstd
/// cannot make one of them.
///
/// zstd's FastCOVER with fixed parameters: its default trainer searches
/// about forty parameter sets, 0.16–0.28 s on one core at the start of the
/// first snapshot; with `k` = 1024 and `d` = 8 it takes 38 ms and compressed
/// pharmagen's database pages as well (ratio 4.378 against 4.365).
pub fn train(samples: &[Vec<u8>]) -> Option<Vec<u8>> {
    use zstd_safe::zstd_sys::{
        ZDICT_fastCover_params_t, ZDICT_isError, ZDICT_params_t, ZDICT_trainFromBuffer_fastCover,
    };
    if samples.len() < MIN_SAMPLES {
        return None;
    }
    let joined = samples.concat();
    let sizes: Vec<usize> = samples.iter().map(Vec::len).collect();
    let params = ZDICT_fastCover_params_t {
        k: 1024,
        d: 8,
        f: 20,
        steps: 0,
        nbThreads: 0,
        splitPoint: 0.0,
        accel: 1,
        shrinkDict: 0,
        shrinkDictMaxRegression: 0,
        zParams: ZDICT_params_t {
            compressionLevel: ZSTD_LEVEL,
            notificationLevel: 0,
            dictID: 0,
        },
    };
    let mut raw = vec![0u8; DICT_MAX_SIZE];
    // SAFETY: the buffers and lengths passed are those of live Rust
    // allocations (`sizes` sums to `joined.len()`); zstd writes at most
    // `raw.len()` bytes into `raw` and reads only the inputs.
    let len = unsafe {
        ZDICT_trainFromBuffer_fastCover(
            raw.as_mut_ptr().cast(),
            raw.len(),
            joined.as_ptr().cast(),
            sizes.as_ptr(),
            u32::try_from(sizes.len()).ok()?,
            params,
        )
    };
    // SAFETY: a pure function of the returned code.
    if unsafe { ZDICT_isError(len) } != 0 {
        return None;
    }
    raw.truncate(len);
    zstd_safe::get_dict_id(&raw).map(|_| raw)
}

/// Samples the source for training: pages spread evenly over its
/// page-structured files (in proportion to their sizes), and small files
/// spread evenly over the walk. Unreadable entries are passed over.
pub fn sample_source(source: &Path) -> Vec<Vec<u8>> {
    let mut paged: Vec<(PathBuf, u64, u64)> = Vec::new();
    let mut small: Vec<PathBuf> = Vec::new();
    for_each_file(source, WALK_LIMIT, |path, meta| {
        if meta.len() <= 64 {
            return;
        }
        if meta.len() <= DICT_BLOB_MAX as u64 {
            small.push(path);
        } else if let Some(page) = page_size(&path, meta.len()) {
            paged.push((path, meta.len(), page));
        }
    });
    let mut samples = Vec::new();
    let paged_total: u64 = paged.iter().map(|(_, len, _)| len).sum();
    for (path, len, page) in &paged {
        let share = (PAGE_SAMPLES as u64 * len / paged_total.max(1)).max(1);
        let pages = len / page;
        let Ok(file) = open_source(path) else {
            continue;
        };
        for k in 0..share.min(pages) {
            let mut buf = vec![0u8; *page as usize];
            let at = pages * k / share * page;
            if file.read_exact_at(&mut buf, at).is_ok() && buf.iter().any(|&b| b != 0) {
                samples.push(buf);
            }
        }
    }
    let step = small.len().div_ceil(SMALL_SAMPLES).max(1);
    for path in small.iter().step_by(step) {
        let mut bytes = Vec::new();
        let read =
            open_source(path).and_then(|f| f.take(SMALL_SAMPLE_MAX as u64).read_to_end(&mut bytes));
        if read.is_ok() {
            samples.push(bytes);
        }
    }
    samples
}

/// The page size the chunker would cut this file into, if any.
fn page_size(path: &Path, len: u64) -> Option<u64> {
    let file = open_source(path).ok()?;
    match chunker::cutting_of(&file, len).ok()? {
        Cutting::Pages(page) => Some(page as u64),
        Cutting::ContentDefined => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;

    /// Page-like samples: records from a small vocabulary, as a database holds.
    pub(crate) fn page_like(n: usize) -> Vec<Vec<u8>> {
        let words = [
            "DUPONT",
            "MARTIN",
            "DOLIPRANE",
            "AMOXICILLINE",
            "CPAM",
            "MUTUELLE",
        ];
        (0..n)
            .map(|i| {
                let mut page = Vec::new();
                let mut x = i as u64 * 2654435761 + 1;
                while page.len() < 8000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let w = words[(x % words.len() as u64) as usize];
                    page.extend_from_slice(
                        format!("PAT|{:08}|{w}|{}|\n", x % 100_000_000, x % 97).as_bytes(),
                    );
                }
                page.resize(8192, 0);
                page
            })
            .collect()
    }

    #[test]
    fn trains_a_dictionary_that_names_itself() {
        let raw = train(&page_like(400)).expect("enough samples");
        assert!(raw.len() <= DICT_MAX_SIZE);
        let dict = Dictionary::from_raw(raw).unwrap();
        assert_ne!(dict.id(), 0);
        assert!(train(&page_like(10)).is_none(), "too few samples");
        assert!(Dictionary::from_raw(b"not a dictionary".to_vec()).is_none());
    }

    #[test]
    fn samples_pages_and_small_files() {
        let dir = tempfile::tempdir().unwrap();
        let pages: Vec<u8> = page_like(256).concat();
        fs::write(dir.path().join("base.fdb"), &pages).unwrap();
        fs::create_dir(dir.path().join("small")).unwrap();
        for i in 0..500 {
            fs::write(
                dir.path().join(format!("small/{i}.txt")),
                format!("receipt {i}\n").repeat(20),
            )
            .unwrap();
        }
        let samples = sample_source(dir.path());
        let full_pages = samples.iter().filter(|s| s.len() == 8192).count();
        assert!(full_pages >= 200, "{full_pages} pages sampled");
        let small = samples.len() - full_pages;
        assert!(
            (150..=SMALL_SAMPLES).contains(&small),
            "{small} small files sampled"
        );
    }
}
