//! The repository's zstd dictionary (FORMAT.md §17): trained once, on the
//! first snapshot's small pieces, then used to compress every small data
//! blob.
//!
//! A database stored as 8 KiB pages compresses each page alone, which loses
//! the context a whole-file compressor would have: on pharmagen's database a
//! 64 KiB dictionary makes its pages 17 % smaller than without, and smaller
//! than the whole file compressed as one stream. Training takes a fraction
//! of a second on a few megabytes of samples, read from the source before
//! the first snapshot's walk (`source::sample`).

use zstd::zstd_safe::{self, CDict, DDict};

use super::DICT_ZSTD_LEVEL;

/// Largest dictionary trained.
pub const DICT_MAX_SIZE: usize = 64 << 10;
/// Data blobs up to this size are compressed with the dictionary; larger
/// ones carry enough context of their own, and above 16 KiB zstd copies the
/// dictionary's tables into its context for every blob instead of referring
/// to them (measured: the copies cost more CPU than the few bytes won).
pub const DICT_BLOB_MAX: usize = 16 << 10;

/// Fewer samples than this and no dictionary is trained: a small source
/// does not need one, and zstd's trainer fails on too little.
const MIN_SAMPLES: usize = 100;

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
            cdict: CDict::try_create(&raw, DICT_ZSTD_LEVEL)?,
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
            compressionLevel: DICT_ZSTD_LEVEL,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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
}
