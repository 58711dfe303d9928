//! Samples of the source for training the compression dictionary
//! (FORMAT.md §17): pages of its page-structured files and small files,
//! read the way the snapshot reads them.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::format::dictionary::DICT_BLOB_MAX;
use crate::source::chunker::{self, Cutting};
// Reached as the snapshot reaches them: by directory descriptors, never
// following a symlink swapped in, never blocking on a fifo swapped in.
use crate::source::walk::{for_each_file, Dir};

/// Samples: at most this many pages of page-structured files...
const PAGE_SAMPLES: usize = 320;
/// ...and this many small files (each cut to [`SMALL_SAMPLE_MAX`]).
const SMALL_SAMPLES: usize = 200;
const SMALL_SAMPLE_MAX: usize = 16 << 10;
/// The sampling walk stops after this many entries (a huge tree is sampled
/// from its first part).
const WALK_LIMIT: usize = 200_000;

/// Samples the source for training: pages spread evenly over its
/// page-structured files (in proportion to their sizes), and small files
/// spread evenly over the walk. Unreadable entries are passed over.
pub fn sample_source(source: &Path) -> Vec<Vec<u8>> {
    let Ok((root, _)) = Dir::open_root(source) else {
        return Vec::new();
    };
    let open = |rel: &[u8]| root.open_file_beneath(rel);
    let mut paged: Vec<(Vec<u8>, u64, u64)> = Vec::new();
    let mut small: Vec<Vec<u8>> = Vec::new();
    for_each_file(source, WALK_LIMIT, |rel, meta| {
        if meta.len() <= 64 {
            return;
        }
        if meta.len() <= DICT_BLOB_MAX as u64 {
            small.push(rel.to_vec());
        } else if let Some(page) = open(rel).ok().and_then(|f| page_size(&f, meta.len())) {
            paged.push((rel.to_vec(), meta.len(), page));
        }
    });
    let mut samples = Vec::new();
    let paged_total: u64 = paged.iter().map(|(_, len, _)| len).sum();
    for (rel, len, page) in &paged {
        let share = (PAGE_SAMPLES as u64 * len / paged_total.max(1)).max(1);
        let pages = len / page;
        let Ok(file) = open(rel) else {
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
    for rel in small.iter().step_by(step) {
        let mut bytes = Vec::new();
        let read = open(rel).and_then(|f| f.take(SMALL_SAMPLE_MAX as u64).read_to_end(&mut bytes));
        if read.is_ok() {
            samples.push(bytes);
        }
    }
    samples
}

/// The page size the chunker would cut this file into, if any.
fn page_size(file: &File, len: u64) -> Option<u64> {
    match chunker::cutting_of(file, len).ok()? {
        Cutting::Pages(page) => Some(page as u64),
        Cutting::ContentDefined => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::dictionary::tests::page_like;
    use std::fs;

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
