//! An open file of the mount, for random access. A file's extent list
//! stored in chunk-list pieces (FORMAT.md §7.2) is kept as the pieces'
//! ids and where each starts; a read decodes the pieces it touches,
//! through the browser's cache. A 6.5 GB database lists 800,000 extents,
//! about 64 MB with their offsets: held whole, each open copy of it cost
//! that much; as pieces, 42,000 starts (2 MB).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::content::{decode_piece, Content, Extent};
use crate::id::BlobId;
use crate::repo::browse::Browser;
use crate::repo::chunk_list_reader::{add_lengths, PIECES_AT_ONCE};

/// One part of a file's extent list: a chunk-list piece, or the list
/// stored inline in the file's tree.
#[derive(Debug)]
struct Part {
    /// The piece; `None` for the inline list.
    piece: Option<BlobId>,
    /// Where its first extent starts in the file.
    start: u64,
    /// Whether it holds a hole, and a chunk (for SEEK_HOLE and SEEK_DATA).
    holes: bool,
    chunks: bool,
}

/// An extent with where it starts in the file.
type Placed = (Extent, u64);

/// An open file; see the module documentation.
pub struct FileReader {
    parts: Vec<Part>,
    /// The inline list, when the file has one.
    inline: Arc<Vec<Extent>>,
    size: u64,
}

impl FileReader {
    /// Reads a file's extent list (its chunk-list pieces, not its data)
    /// once, to know where each piece starts; the pieces go through the
    /// browser's cache.
    ///
    /// # Errors
    /// A missing or damaged piece; [`Error::Corrupt`] for a list longer
    /// than any file can be.
    pub fn open(browser: &Browser, content: &Content) -> Result<Self> {
        let ids = match content {
            Content::Inline(extents) => return Self::from_extents(extents.clone()),
            Content::Pieces(ids) => ids,
        };
        let first = ids.first().map(BlobId::short).unwrap_or_default();
        let mut parts = Vec::with_capacity(ids.len());
        let mut size = 0u64;
        for group in ids.chunks(PIECES_AT_ONCE) {
            let mut decoded: Vec<Vec<Extent>> = vec![Vec::new(); group.len()];
            browser
                .repo()
                .load_blobs(BlobKind::ChunkList, group, |i, bytes| {
                    decoded[i] = decode_piece(&bytes)
                        .map_err(|e| Error::corrupt("chunk list", group[i].short(), e))?;
                    Ok(())
                })?;
            for (id, extents) in group.iter().zip(decoded) {
                parts.push(Part {
                    piece: Some(*id),
                    start: size,
                    holes: extents.iter().any(|e| matches!(e, Extent::Hole { .. })),
                    chunks: extents.iter().any(|e| matches!(e, Extent::Chunk { .. })),
                });
                size = add_lengths(size, &extents, &first)?;
                // The first pieces only: a reader starts there, and the
                // rest would only evict each other from the cache.
                if parts.len() <= PIECES_AT_ONCE {
                    browser.keep_chunk_list(*id, Arc::new(extents));
                }
            }
        }
        Ok(FileReader {
            parts,
            inline: Arc::new(Vec::new()),
            size,
        })
    }

    /// A reader of an extent list held inline.
    fn from_extents(extents: Vec<Extent>) -> Result<Self> {
        // Checked as the pieces are: a hostile list must not wrap offsets.
        let size = add_lengths(0, &extents, "in its tree")?;
        let part = Part {
            piece: None,
            start: 0,
            holes: extents.iter().any(|e| matches!(e, Extent::Hole { .. })),
            chunks: extents.iter().any(|e| matches!(e, Extent::Chunk { .. })),
        };
        Ok(FileReader {
            parts: vec![part],
            inline: Arc::new(extents),
            size,
        })
    }

    /// Size of the file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The part holding `offset` (the last one starting at or before it).
    fn part_at(&self, offset: u64) -> usize {
        self.parts
            .partition_point(|p| p.start <= offset)
            .saturating_sub(1)
    }

    /// The extents of part `i`, with where each starts.
    fn placed(&self, browser: &Browser, i: usize) -> Result<Vec<Placed>> {
        let Some(part) = self.parts.get(i) else {
            return Ok(Vec::new());
        };
        let extents = match &part.piece {
            None => self.inline.clone(),
            Some(id) => match browser.cached_chunk_list(id) {
                Some(piece) => piece,
                None => browser.chunk_list_ahead(
                    &self.parts[i..]
                        .iter()
                        .filter_map(|p| p.piece)
                        .take(PIECES_AT_ONCE)
                        .collect::<Vec<_>>(),
                )?,
            },
        };
        let mut start = part.start;
        Ok(extents
            .iter()
            .map(|e| {
                let placed = (*e, start);
                start += e.len();
                placed
            })
            .collect())
    }

    /// The extents holding bytes of `[from, to)`, with where each starts.
    fn extents_in(&self, browser: &Browser, from: u64, to: u64) -> Result<Vec<Placed>> {
        let mut out = Vec::new();
        let mut i = self.part_at(from);
        while self.parts.get(i).is_some_and(|p| p.start < to) {
            out.extend(
                self.placed(browser, i)?
                    .into_iter()
                    .filter(|(e, start)| *start < to && start + e.len() > from),
            );
            i += 1;
        }
        Ok(out)
    }

    /// Reads up to `len` bytes at `offset` (fewer at the end of the file).
    ///
    /// # Errors
    /// [`Error::Corrupt`] or I/O errors of the pieces and chunks read.
    pub fn read(&self, browser: &Browser, offset: u64, len: usize) -> Result<Vec<u8>> {
        let end = self.size.min(offset.saturating_add(len as u64));
        if offset >= end {
            return Ok(Vec::new());
        }
        let extents = self.extents_in(browser, offset, end)?;
        let ids: Vec<BlobId> = extents
            .iter()
            .filter_map(|(e, _)| match e {
                Extent::Chunk { id, .. } => Some(*id),
                Extent::Hole { .. } => None,
            })
            .collect();
        let mut chunks = browser.chunks(&ids)?.into_iter();
        let mut out = Vec::with_capacity((end - offset) as usize);
        for (e, start) in &extents {
            let from = offset.max(*start) - start;
            let to = end.min(start + e.len()) - start;
            match e {
                Extent::Hole { .. } => out.resize(out.len() + (to - from) as usize, 0),
                Extent::Chunk { id, len, .. } => {
                    let data = chunks.next().ok_or_else(|| {
                        Error::corrupt("data blob", id.short(), "missing from its read")
                    })?;
                    if data.len() != *len as usize {
                        return Err(Error::corrupt(
                            "data blob",
                            id.short(),
                            "length differs from the chunk list",
                        ));
                    }
                    out.extend_from_slice(&data[from as usize..to as usize]);
                }
            }
        }
        Ok(out)
    }

    /// The first offset at or after `offset` inside an extent that `want`
    /// accepts, looking only at the parts `has` says hold one.
    fn seek(
        &self,
        browser: &Browser,
        offset: u64,
        has: impl Fn(&Part) -> bool,
        want: impl Fn(&Extent) -> bool,
    ) -> Result<Option<u64>> {
        for i in self.part_at(offset)..self.parts.len() {
            if !self.parts.get(i).is_some_and(&has) {
                continue;
            }
            let found = self
                .placed(browser, i)?
                .into_iter()
                .find(|(e, start)| want(e) && start + e.len() > offset);
            if let Some((_, start)) = found {
                return Ok(Some(start.max(offset)));
            }
        }
        Ok(None)
    }

    /// SEEK_DATA: the first offset at or after `offset` holding data, if any.
    ///
    /// # Errors
    /// A missing or damaged piece on the way.
    pub fn seek_data(&self, browser: &Browser, offset: u64) -> Result<Option<u64>> {
        if offset >= self.size {
            return Ok(None);
        }
        self.seek(
            browser,
            offset,
            |p| p.chunks,
            |e| matches!(e, Extent::Chunk { .. }),
        )
    }

    /// SEEK_HOLE: the first offset at or after `offset` inside a hole (the
    /// end of the file counts as one), if `offset` is inside the file.
    ///
    /// # Errors
    /// A missing or damaged piece on the way.
    pub fn seek_hole(&self, browser: &Browser, offset: u64) -> Result<Option<u64>> {
        if offset >= self.size {
            return Ok(None);
        }
        let hole = self.seek(
            browser,
            offset,
            |p| p.holes,
            |e| matches!(e, Extent::Hole { .. }),
        )?;
        Ok(Some(hole.unwrap_or(self.size)))
    }

    /// The chunks holding bytes of `[from, to)`, for read-ahead.
    ///
    /// # Errors
    /// A missing or damaged piece.
    pub fn chunks_in(&self, browser: &Browser, from: u64, to: u64) -> Result<Vec<BlobId>> {
        let to = to.min(self.size);
        if from >= to {
            return Ok(Vec::new());
        }
        Ok(self
            .extents_in(browser, from, to)?
            .into_iter()
            .filter_map(|(e, _)| match e {
                Extent::Chunk { id, .. } => Some(id),
                Extent::Hole { .. } => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::compare::testing;
    use crate::repo::saver::{ContentWriter, Saver};

    /// A file of chunks and holes stored in a repository, its bytes, and a
    /// browser over that repository.
    fn stored(plan: &[(bool, usize)]) -> (Browser, Content, Vec<u8>, tempfile::TempDir) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = testing::repo(tmp.path());
        let mut bytes = Vec::new();
        let (content, _) = Saver::run(&repo, |saver| {
            let mut batch = saver.batch();
            let mut writer = ContentWriter::default();
            for (i, &(hole, len)) in plan.iter().enumerate() {
                let extent = if hole {
                    bytes.resize(bytes.len() + len, 0);
                    Extent::Hole { len: len as u64 }
                } else {
                    let data: Vec<u8> = (0..len).map(|j| (i * 7 + j % 251) as u8 | 1).collect();
                    bytes.extend_from_slice(&data);
                    Extent::chunk(batch.save(BlobKind::Data, &data)?, len as u32)
                };
                writer.push(&mut batch, extent)?;
            }
            writer.finish(&mut batch)
        })
        .expect("save");
        (testing::browser(repo), content, bytes, tmp)
    }

    /// Where the next data and hole are at `offset`, from the bytes.
    fn expected_seek(plan: &[(bool, usize)], offset: u64) -> (Option<u64>, Option<u64>) {
        let size: u64 = plan.iter().map(|p| p.1 as u64).sum();
        if offset >= size {
            return (None, None);
        }
        let (mut data, mut hole, mut start) = (None, None, 0u64);
        for &(is_hole, len) in plan {
            let end = start + len as u64;
            if end > offset {
                let at = start.max(offset);
                if is_hole && hole.is_none() {
                    hole = Some(at);
                }
                if !is_hole && data.is_none() {
                    data = Some(at);
                }
            }
            start = end;
        }
        (data, Some(hole.unwrap_or(size)))
    }

    #[test]
    fn reads_and_seeks_across_pieces_and_inline() {
        let many: Vec<(bool, usize)> = (0..900)
            .map(|i| (i % 37 == 3 || (300..340).contains(&i), 100 + i % 13))
            .collect();
        let few = vec![(true, 100), (false, 50), (true, 30)];
        for plan in [many, few] {
            let (browser, content, bytes, _tmp) = stored(&plan);
            let reader = FileReader::open(&browser, &content).expect("open");
            assert_eq!(reader.size(), bytes.len() as u64);
            let size = bytes.len() as u64;
            let mut offset = 0u64;
            while offset < size + 10 {
                for len in [1usize, 97, 4096] {
                    let got = reader.read(&browser, offset, len).expect("read");
                    let from = (offset.min(size)) as usize;
                    let to = (offset + len as u64).min(size) as usize;
                    assert_eq!(got, bytes[from..to], "read {len} at {offset}");
                }
                let (data, hole) = expected_seek(&plan, offset);
                assert_eq!(
                    reader.seek_data(&browser, offset).unwrap(),
                    data,
                    "data at {offset}"
                );
                assert_eq!(
                    reader.seek_hole(&browser, offset).unwrap(),
                    hole,
                    "hole at {offset}"
                );
                offset += 61;
            }
        }
    }
}
