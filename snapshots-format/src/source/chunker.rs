//! Cutting a file into chunks (FORMAT.md §9, not part of the format proper:
//! any cut points read back the same, but they decide deduplication, so they
//! are pinned by a test). Holes are found with SEEK_DATA / SEEK_HOLE and
//! recorded as holes; each data range is cut by FastCDC, whose gear table is
//! seeded from the repository key so that chunk sizes do not fingerprint
//! known files.
//!
//! Page-structured files (databases: a size that is a multiple of 4 KiB and
//! at least 1 MiB) are cut into fixed pieces of one page instead, aligned
//! on the file: the pharmacy database rewrites scattered 8 KiB pages every
//! day, and a page-aligned piece is exactly what changed, where a
//! content-defined chunk drags its whole 64 KiB along. The same pieces
//! also deduplicate the journal against the pages it copies. Measured in
//! docs/PERFORMANCE.md.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

use fastcdc::v2020::{cut_gear, get_gear_with_seed, select_masks, Normalization};

use super::direct::{self, read_up_to, AlignedBuf, DirectReads};

/// Smallest chunk (except a range's last).
pub const MIN_CHUNK: usize = 16 * 1024;
/// Target average chunk.
pub const AVG_CHUNK: usize = 64 * 1024;
/// Largest chunk.
pub const MAX_CHUNK: usize = 256 * 1024;

/// Files at least this large whose size is a multiple of [`PAGE_MULTIPLE`]
/// are cut into fixed pages.
pub const PAGED_MIN_SIZE: u64 = 1 << 20;
/// See [`PAGED_MIN_SIZE`].
pub const PAGED_MULTIPLE: u64 = 4096;
/// Page size assumed when the file does not say (the pharmacy database's).
pub const DEFAULT_PAGE: usize = 8192;

/// How a file is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cutting {
    /// Content-defined chunks (FastCDC).
    ContentDefined,
    /// Fixed pieces of this many bytes, aligned on the file's start.
    Pages(usize),
}

/// Bytes read from the start of a page-structured file to learn its page
/// size (FORMAT.md §9).
pub const HEAD_LEN: usize = 1 << 20;

/// Chooses the cutting for a file of `size` bytes whose first bytes (up to
/// [`HEAD_LEN`]) are `head`.
pub fn choose(size: u64, head: &[u8]) -> Cutting {
    if size < PAGED_MIN_SIZE || !size.is_multiple_of(PAGED_MULTIPLE) {
        return Cutting::ContentDefined;
    }
    Cutting::Pages(
        stated_page(head)
            .or_else(|| sniff_page(head))
            .unwrap_or(DEFAULT_PAGE),
    )
}

/// The page size a database header states, for the formats we know.
fn stated_page(head: &[u8]) -> Option<usize> {
    let page = if head.len() >= 18 && head.starts_with(b"SQLite format 3\0") {
        // Big-endian u16 at offset 16, 1 meaning 65536.
        match u16::from_be_bytes([head[16], head[17]]) {
            1 => 65536,
            raw => usize::from(raw),
        }
    } else if head.len() >= 20
        && head[0] == 1
        && u16::from_le_bytes([head[18], head[19]]) & 0x8000 != 0
    {
        // Firebird (on-disk structure 11 and later): the header page has
        // type 1, its page size as a little-endian u16 at offset 16, and
        // the on-disk structure version, flagged 0x8000, after it.
        usize::from(u16::from_le_bytes([head[16], head[17]]))
    } else {
        return None;
    };
    (page.is_power_of_two() && (4096..=65536).contains(&page)).then_some(page)
}

/// How `file` (of `size` bytes) is cut: reads its head when it may be
/// page-structured.
///
/// # Errors
/// Read errors.
pub fn cutting_of(file: &File, size: u64) -> io::Result<Cutting> {
    if choose(size, &[]) == Cutting::ContentDefined {
        return Ok(Cutting::ContentDefined);
    }
    let mut head = vec![0u8; HEAD_LEN];
    let got = read_up_to(file, &mut head, 0)?;
    Ok(choose(size, &head[..got]))
}

/// Page sizes [`sniff_page`] tries, smallest first.
const SNIFFED_PAGES: [usize; 4] = [4096, 8192, 16384, 32768];

/// Finds the page size of a database that does not state it, from its
/// first bytes: pages begin with a header of their own (a page type, a
/// page number), so the first two bytes of a page resemble those of other
/// pages, where bytes in the middle of a page do not. Offsets that are
/// multiples of 64 KiB begin a page whatever its size (up to 64 KiB); the
/// page size is the smallest `P` whose odd multiples begin with the same
/// two bytes nine times in ten. `None` when the head shows no such
/// structure (or when two bytes taken anywhere match as often: text).
fn sniff_page(head: &[u8]) -> Option<usize> {
    const REFERENCE: usize = 65536;
    // All-zero bytes (free pages, free space) say nothing either way.
    let start = |at: usize| {
        head.get(at..at + 2)
            .map(|b| [b[0], b[1]])
            .filter(|b| *b != [0, 0])
    };
    let starts: HashSet<[u8; 2]> = (1..)
        .map(|k| k * REFERENCE)
        .take_while(|&at| at + 2 <= head.len())
        .filter_map(start)
        .collect();
    if starts.is_empty() {
        return None;
    }
    // Share of the odd multiples of `step` that begin like a page.
    let share = |step: usize| {
        let (mut seen, mut like) = (0u32, 0u32);
        for at in (step..head.len()).step_by(2 * step).filter_map(start) {
            seen += 1;
            like += u32::from(starts.contains(&at));
        }
        (seen >= 8).then(|| f64::from(like) / f64::from(seen))
    };
    // Odd multiples of 2 KiB are inside pages of 4 KiB and more.
    if share(2048).is_none_or(|chance| chance > 0.25) {
        return None;
    }
    SNIFFED_PAGES
        .into_iter()
        .find(|&page| share(page).is_some_and(|s| s >= 0.9))
}

/// A piece of a file, in order. Data is lent for the call only (it lives in
/// the read buffer, reused for the next pieces): the caller copies what it
/// keeps.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes read from the file.
    Data(&'a [u8]),
    /// A hole of this many bytes.
    Hole(u64),
}

/// The data ranges `(offset, len)` of a file of `size` bytes; the gaps
/// between them are holes. A filesystem without hole support reports one
/// range covering the file.
pub fn data_ranges(file: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let fd = file.as_raw_fd();
    let mut ranges = Vec::new();
    let mut pos: u64 = 0;
    while pos < size {
        // SAFETY: lseek on a descriptor we own, no memory involved.
        let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                // ENXIO: no data after `pos`, the rest is a hole.
                Some(libc::ENXIO) => break,
                Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => return Ok(vec![(0, size)]),
                _ => return Err(err),
            }
        }
        let data = data as u64;
        if data >= size {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data as libc::off_t, libc::SEEK_HOLE) };
        let end = if hole < 0 {
            size
        } else {
            (hole as u64).min(size)
        };
        ranges.push((data, end - data));
        pos = end;
    }
    Ok(ranges)
}

/// Reads `file` (of `size` bytes at open time) and calls `emit` with its
/// pieces in order. Returns the bytes read. A file that shrinks while read
/// yields fewer bytes; one that grows is read up to `size`.
///
/// # Errors
/// Read errors, and any error of `emit`.
pub fn chunk_file<E: From<io::Error>>(
    file: &File,
    size: u64,
    cutter: &Cutter,
    mut emit: impl FnMut(Piece<'_>) -> Result<(), E>,
) -> Result<u64, E> {
    let mut pos = 0u64;
    let mut read = 0u64;
    let cutting = cutting_of(file, size)?;
    for (offset, len) in data_ranges(file, size)? {
        if offset > pos {
            emit(Piece::Hole(offset - pos))?;
        }
        let got = match cutting {
            Cutting::Pages(page) => read_pages(file, offset, len, page, &mut emit)?,
            Cutting::ContentDefined => read_chunks(file, offset, len, cutter, &mut emit)?,
        };
        read += got;
        pos = offset + got;
        if got < len {
            // The file shrank under us: stop here, the caller flags it.
            return Ok(read);
        }
    }
    if size > pos {
        emit(Piece::Hole(size - pos))?;
    }
    Ok(read)
}

/// Reads `[offset, offset + len)` in pieces that end on multiples of
/// `page` from the file's start; returns the bytes read.
fn read_pages<E: From<io::Error>>(
    file: &File,
    offset: u64,
    len: u64,
    page: usize,
    emit: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
) -> Result<u64, E> {
    // One read per few megabytes rather than per page: a database is a
    // hundred thousand pages. A large one is read around the page cache,
    // on a thread of its own.
    let direct = DirectReads::new(file, len);
    let page = page as u64;
    let read_batch = if direct.is_on() {
        DIRECT_READ_BATCH
    } else {
        PAGE_READ_BATCH
    };
    let batch = (read_batch as u64).max(page) / page * page;
    let mut reads = PageReads {
        direct,
        pos: offset,
        end: offset + len,
        page,
        batch,
    };
    if reads.direct.is_on() {
        return read_pages_ahead(reads, emit);
    }
    let mut buf = AlignedBuf::new(batch as usize);
    while let Some(read) = reads.next(&mut buf)? {
        emit_pages(buf.as_slice(), read, page, emit)?;
    }
    Ok(reads.pos - offset)
}

/// [`read_pages`] for a file read directly: each direct read waits for the
/// drive (there is no read-ahead), and a database's reader then spent half
/// its time waiting (6.5 GB a night at 16 GiB). Here one thread reads the
/// next batch while this one cuts and stores the last, in two buffers.
fn read_pages_ahead<E: From<io::Error>>(
    mut reads: PageReads<'_>,
    emit: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
) -> Result<u64, E> {
    let (page, batch) = (reads.page, reads.batch);
    let (full_tx, full) = std::sync::mpsc::sync_channel::<io::Result<(AlignedBuf, Read)>>(1);
    let (spare, spare_rx) = std::sync::mpsc::sync_channel::<AlignedBuf>(2);
    for _ in 0..2 {
        let _ = spare.send(AlignedBuf::new(batch as usize));
    }
    std::thread::scope(|scope| {
        let reading = std::thread::Builder::new()
            .name("coffre-read-ahead".into())
            .spawn_scoped(scope, move || {
                for mut buf in spare_rx {
                    let read = match reads.next(&mut buf) {
                        Ok(Some(read)) => read,
                        Ok(None) => return,
                        Err(e) => {
                            let _ = full_tx.send(Err(e));
                            return;
                        }
                    };
                    if full_tx.send(Ok((buf, read))).is_err() {
                        return;
                    }
                }
            });
        if let Err(e) = reading {
            return Err(E::from(e));
        }
        take_pages(full, spare, page, emit)
    })
}

/// The batches of [`read_pages_ahead`]'s reading thread, cut into pages;
/// each buffer goes back to it once its pages are stored. Takes the
/// channels' ends by value: they close when this returns, which stops the
/// reading thread however this ends.
fn take_pages<E: From<io::Error>>(
    full: std::sync::mpsc::Receiver<io::Result<(AlignedBuf, Read)>>,
    spare: std::sync::mpsc::SyncSender<AlignedBuf>,
    page: u64,
    emit: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
) -> Result<u64, E> {
    let mut done = 0;
    for item in full {
        let (buf, read) = item?;
        emit_pages(buf.as_slice(), read, page, emit)?;
        done += read.got as u64;
        let _ = spare.send(buf);
    }
    Ok(done)
}

/// One batch of pages read: where it starts and how much it holds.
#[derive(Clone, Copy)]
struct Read {
    at: u64,
    got: usize,
}

/// Reads of a range of pages, a batch at a time.
struct PageReads<'f> {
    direct: DirectReads<'f>,
    pos: u64,
    end: u64,
    page: u64,
    batch: u64,
}

impl PageReads<'_> {
    /// The next batch into `buf`, `None` at the end of the range (and
    /// after a short read: the file shrank).
    fn next(&mut self, buf: &mut AlignedBuf) -> io::Result<Option<Read>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let want = (self
            .end
            .min((self.pos + self.batch) / self.page * self.page)
            - self.pos) as usize;
        // A direct read is rounded up to stay aligned at the end of a
        // range; the bytes past `want` are not used.
        let asked = if self.direct.is_on() {
            want.div_ceil(direct::ALIGN) * direct::ALIGN
        } else {
            want
        };
        let got = self
            .direct
            .read(&mut buf.as_mut_slice()[..asked], self.pos)?
            .min(want);
        let read = Read { at: self.pos, got };
        self.pos += got as u64;
        if got < want {
            // The file shrank under us: nothing more to read.
            self.end = self.pos;
        }
        Ok(Some(read))
    }
}

/// Hands out the pages of one batch read: pieces that end on multiples of
/// `page` from the file's start.
fn emit_pages<E>(
    buf: &[u8],
    read: Read,
    page: u64,
    emit: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let mut pos = read.at;
    let stop = read.at + read.got as u64;
    while pos < stop {
        let next = stop.min((pos / page + 1) * page);
        emit(Piece::Data(
            &buf[(pos - read.at) as usize..(next - read.at) as usize],
        ))?;
        pos = next;
    }
    Ok(())
}

const PAGE_READ_BATCH: usize = 1 << 20;
/// Direct reads wait for the drive each time (no read-ahead): larger ones.
const DIRECT_READ_BATCH: usize = 4 << 20;

/// FastCDC's cut-point search with Coffre's sizes and the repository's
/// seed; made once per reader (its gear tables are derived from the seed).
pub struct Cutter {
    gear: Vec<u64>,
    gear_ls: Vec<u64>,
    mask_s: u64,
    mask_l: u64,
}

impl Cutter {
    /// The cutter of the repository whose chunker seed is `seed`.
    pub fn new(seed: u64) -> Self {
        let (mask_s, mask_l) = select_masks(AVG_CHUNK, Normalization::Level1);
        let (gear, gear_ls) = get_gear_with_seed(seed);
        Cutter {
            gear: gear.into_owned(),
            gear_ls: gear_ls.into_owned(),
            mask_s,
            mask_l,
        }
    }

    /// Length of the chunk starting `window`, which holds at least
    /// [`MAX_CHUNK`] bytes or the rest of the data.
    fn cut(&self, window: &[u8]) -> usize {
        let (_, len) = cut_gear(
            window,
            MIN_CHUNK,
            AVG_CHUNK,
            MAX_CHUNK,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        len
    }
}

/// Reads `[offset, offset + len)` in content-defined chunks; returns the
/// bytes read. A megabyte is read at a time and the chunks are lent out of
/// it: FastCDC's own stream reader reads a chunk's worth at a time and
/// copies every chunk twice (out, then the rest of its buffer forward).
fn read_chunks<E: From<io::Error>>(
    file: &File,
    offset: u64,
    len: u64,
    cutter: &Cutter,
    emit: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
) -> Result<u64, E> {
    if let Some(read) = read_whole_direct(file, offset, len, cutter, emit) {
        return read;
    }
    let mut next_read = offset;
    let fill = |buf: &mut [u8]| {
        let got = read_up_to(file, buf, next_read)?;
        next_read += got as u64;
        Ok(got)
    };
    cut_stream(fill, len, cutter, emit)
}

/// Reads `[offset, offset + len)` whole, in one direct read into this
/// thread's aligned buffer, and cuts it there; `None` when the range is
/// not a few hundred kilobytes starting on a block, or the filesystem
/// refuses direct reads. Scanned prescriptions and documents are a third
/// of a pharmacy's bytes: read through the page cache, a first snapshot
/// at 16 GiB spent a tenth of its CPU copying them out of it.
fn read_whole_direct<E: From<io::Error>>(
    file: &File,
    offset: u64,
    len: u64,
    cutter: &Cutter,
    emit: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
) -> Option<Result<u64, E>> {
    thread_local! {
        static WHOLE: std::cell::RefCell<AlignedBuf> =
            std::cell::RefCell::new(AlignedBuf::new(STREAM_BUFFER));
    }
    let fits = (direct::MIN_WHOLE..=STREAM_BUFFER as u64).contains(&len)
        && offset.is_multiple_of(direct::ALIGN as u64);
    let mut direct = DirectReads::when(file, fits);
    if !direct.is_on() {
        return None;
    }
    WHOLE.with(|whole| {
        let mut whole = whole.try_borrow_mut().ok()?;
        let len = len as usize;
        let asked = len.div_ceil(direct::ALIGN) * direct::ALIGN;
        let got = match direct.read(&mut whole.as_mut_slice()[..asked], offset) {
            Ok(got) => got.min(len),
            Err(e) => return Some(Err(e.into())),
        };
        let data = &whole.as_slice()[..got];
        let mut start = 0;
        while start < data.len() {
            let cut = cutter.cut(&data[start..]);
            if let Err(e) = emit(Piece::Data(&data[start..start + cut])) {
                return Some(Err(e));
            }
            start += cut;
        }
        Some(Ok(got as u64))
    })
}

/// Reads `reader` to its end in content-defined chunks (a command's output
/// stored as a file); returns the bytes read.
///
/// # Errors
/// Read errors, and any error of `emit`.
pub fn chunk_stream<E: From<io::Error>>(
    reader: &mut dyn io::Read,
    cutter: &Cutter,
    mut emit: impl FnMut(Piece<'_>) -> Result<(), E>,
) -> Result<u64, E> {
    let fill = |buf: &mut [u8]| {
        let mut done = 0;
        while done < buf.len() {
            match reader.read(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    };
    cut_stream(fill, u64::MAX, cutter, &mut emit)
}

/// The content-defined cutting of at most `len` bytes delivered by `fill`,
/// which fills its buffer whole unless the data ends.
fn cut_stream<E: From<io::Error>>(
    mut fill: impl FnMut(&mut [u8]) -> io::Result<usize>,
    len: u64,
    cutter: &Cutter,
    emit: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
) -> Result<u64, E> {
    let mut buf = vec![0u8; len.min(STREAM_BUFFER as u64) as usize];
    // buf[start..filled] is read and not yet emitted; `unread` bytes of the
    // range are still to come.
    let (mut start, mut filled) = (0usize, 0usize);
    let mut unread = len;
    let mut total = 0u64;
    loop {
        if filled - start < MAX_CHUNK && unread > 0 {
            buf.copy_within(start..filled, 0);
            filled -= start;
            start = 0;
            let want = (buf.len() - filled).min(usize::try_from(unread).unwrap_or(usize::MAX));
            let got = fill(&mut buf[filled..filled + want])?;
            filled += got;
            total += got as u64;
            // A short read: the data ended (or the file shrank), what was
            // read is all there is.
            unread = if got < want { 0 } else { unread - got as u64 };
        }
        if start == filled {
            return Ok(total);
        }
        let cut = cutter.cut(&buf[start..filled]);
        emit(Piece::Data(&buf[start..start + cut]))?;
        start += cut;
    }
}

/// Bytes read at a time by [`read_chunks`]; several maximal chunks, so that
/// moving the unfinished tail to the front is rare.
const STREAM_BUFFER: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    /// A piece kept after the call.
    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Data(Vec<u8>),
        Hole(u64),
    }

    fn own(p: Piece<'_>) -> Owned {
        match p {
            Piece::Data(d) => Owned::Data(d.to_vec()),
            Piece::Hole(n) => Owned::Hole(n),
        }
    }

    fn chunks_in(f: &File, size: u64, seed: u64) -> Vec<Owned> {
        let mut out = Vec::new();
        chunk_file::<io::Error>(f, size, &Cutter::new(seed), |p| {
            out.push(own(p));
            Ok(())
        })
        .unwrap();
        out
    }

    fn chunks_of(data: &[u8], seed: u64) -> Vec<Owned> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        chunks_in(&f, data.len() as u64, seed)
    }

    fn data_lens(pieces: &[Owned]) -> Vec<usize> {
        pieces
            .iter()
            .map(|p| match p {
                Owned::Data(d) => d.len(),
                Owned::Hole(_) => 0,
            })
            .collect()
    }

    /// Scans and documents read whole and directly are cut exactly as the
    /// streamed read cuts them, up to the end of a file that does not end
    /// on a block.
    #[test]
    fn files_read_whole_and_directly_are_cut_as_when_streamed() {
        // /var/tmp rather than /tmp, which may be a tmpfs (no O_DIRECT).
        let dir = tempfile::tempdir_in("/var/tmp")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let cutter = Cutter::new(5);
        for len in [
            direct::MIN_WHOLE as usize - 1,
            direct::MIN_WHOLE as usize,
            300_001,
            (1 << 20) - 1,
            1 << 20,
            (1 << 20) + 1,
        ] {
            let data = pseudo_random(len, len as u64);
            let path = dir.path().join(format!("scan{len}"));
            std::fs::write(&path, &data).unwrap();
            let f = File::open(&path).unwrap();
            let mut streamed = Vec::new();
            chunk_stream::<io::Error>(&mut &data[..], &cutter, |p| {
                streamed.push(own(p));
                Ok(())
            })
            .unwrap();
            let mut whole = Vec::new();
            let read = read_whole_direct::<io::Error>(&f, 0, len as u64, &cutter, &mut |p| {
                whole.push(own(p));
                Ok(())
            });
            let fits = (direct::MIN_WHOLE..=STREAM_BUFFER as u64).contains(&(len as u64));
            let supported = DirectReads::when(&f, true).is_on();
            assert_eq!(read.is_some(), fits && supported, "len {len}");
            if let Some(read) = read {
                assert_eq!(read.unwrap(), len as u64);
                assert_eq!(whole, streamed, "len {len}");
            }
            if cutting_of(&f, len as u64).unwrap() == Cutting::ContentDefined {
                assert_eq!(chunks_in(&f, len as u64, 5), streamed, "len {len}");
            }
        }
    }

    /// Cut points decide deduplication: changing them silently would make
    /// every existing repository re-store everything. This pins them.
    #[test]
    fn cut_points_are_pinned() {
        // Just under 1 MiB, so the content-defined chunker is the one used.
        let data = pseudo_random((1 << 20) - 4, 42);
        let lens = data_lens(&chunks_of(&data, 7));
        assert_eq!(lens.iter().sum::<usize>(), (1 << 20) - 4);
        assert_eq!(
            lens,
            vec![
                67258, 69298, 70767, 156044, 121024, 119059, 65758, 31494, 109416, 56372, 113723,
                68359
            ],
            "pinned cut points changed"
        );
    }

    /// Reading a megabyte at a time must cut exactly where FastCDC's own
    /// stream reader does (it is the reference the pinned points came from),
    /// also across refills and on a range that does not start at zero.
    #[test]
    fn cuts_match_fastcdc_stream_reader_across_refills() {
        use fastcdc::v2020::StreamCDC;
        use std::io::{Read, Seek, SeekFrom};
        let data = pseudo_random((3 << 20) + 12_345, 11);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let seed = 0x5eed;
        for offset in [0u64, 70_001] {
            let len = data.len() as u64 - offset;
            let mut ours = Vec::new();
            let read = read_chunks::<io::Error>(&f, offset, len, &Cutter::new(seed), &mut |p| {
                ours.push(own(p));
                Ok(())
            })
            .unwrap();
            assert_eq!(read, len);
            f.seek(SeekFrom::Start(offset)).unwrap();
            let reference: Vec<Owned> = StreamCDC::with_level_and_seed(
                (&f).take(len),
                MIN_CHUNK,
                AVG_CHUNK,
                MAX_CHUNK,
                Normalization::Level1,
                seed,
            )
            .map(|c| Owned::Data(c.unwrap().data))
            .collect();
            assert!(reference.len() > 20, "several refills");
            assert_eq!(ours, reference, "cuts differ from offset {offset}");
        }
    }

    /// A command's output is cut exactly like the same bytes in a file that
    /// is not page-structured, however the pipe hands them over.
    #[test]
    fn a_stream_is_cut_like_a_file() {
        /// Hands out at most 1000 bytes per read, as a pipe might.
        struct Trickle<'a>(&'a [u8]);
        impl io::Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(1000).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let data = pseudo_random((2 << 20) + 777, 5);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let mut from_file = Vec::new();
        read_chunks::<io::Error>(&f, 0, data.len() as u64, &Cutter::new(9), &mut |p| {
            from_file.push(own(p));
            Ok(())
        })
        .unwrap();
        let mut from_stream = Vec::new();
        let read = chunk_stream::<io::Error>(&mut Trickle(&data), &Cutter::new(9), |p| {
            from_stream.push(own(p));
            Ok(())
        })
        .unwrap();
        assert_eq!(read, data.len() as u64);
        assert_eq!(from_stream, from_file);
        let mut empty = Vec::new();
        chunk_stream::<io::Error>(&mut Trickle(&[]), &Cutter::new(9), |p| {
            empty.push(own(p));
            Ok(())
        })
        .unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn a_file_that_shrinks_while_read_yields_what_is_left() {
        let data = pseudo_random(3 << 20, 12);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        f.set_len(1 << 20).unwrap();
        // Told the size it had when listed: it reads what is left, no more
        // (the caller sees the short count and flags the file).
        let pieces = chunks_in(&f, data.len() as u64, 3);
        let joined: Vec<u8> = pieces
            .into_iter()
            .flat_map(|p| match p {
                Owned::Data(d) => d,
                Owned::Hole(_) => Vec::new(),
            })
            .collect();
        assert_eq!(joined, &data[..1 << 20]);
    }

    /// A database large enough to be read directly (where the filesystem
    /// allows it: then on the read-ahead thread) comes out page by page,
    /// in order, whole; and only what is left when it shrank.
    #[test]
    fn a_large_database_read_ahead_gives_every_page_in_order() {
        let data = pseudo_random((direct::MIN_SIZE as usize) + (5 << 20) + 3 * 8192, 13);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let joined = |pieces: Vec<Owned>| -> Vec<u8> {
            pieces
                .into_iter()
                .flat_map(|p| match p {
                    Owned::Data(d) => {
                        assert_eq!(d.len(), 8192);
                        d
                    }
                    // What the stated size has beyond the shrunk file.
                    Owned::Hole(_) => Vec::new(),
                })
                .collect()
        };
        assert!(joined(chunks_in(&f, data.len() as u64, 3)) == data);
        let left = (direct::MIN_SIZE as usize) + (1 << 20);
        f.set_len(left as u64).unwrap();
        assert!(joined(chunks_in(&f, data.len() as u64, 3)) == data[..left]);
    }

    #[test]
    fn page_structured_files_are_cut_into_aligned_pages() {
        assert_eq!(choose(1 << 20, b"random"), Cutting::Pages(8192));
        assert_eq!(choose((1 << 20) + 1, b"random"), Cutting::ContentDefined);
        assert_eq!(choose(4096 * 10, b"random"), Cutting::ContentDefined);
        let mut sqlite = b"SQLite format 3\0".to_vec();
        sqlite.extend_from_slice(&[0x10, 0x00]);
        assert_eq!(choose(2 << 20, &sqlite), Cutting::Pages(4096));
        sqlite[16..18].copy_from_slice(&[0, 1]);
        assert_eq!(choose(2 << 20, &sqlite), Cutting::Pages(65536));

        let data = pseudo_random(3 << 20, 9);
        let pieces = chunks_of(&data, 1);
        assert_eq!(pieces.len(), (3 << 20) / 8192);
        assert!(pieces
            .iter()
            .all(|p| matches!(p, Owned::Data(d) if d.len() == 8192)));
        // One changed page changes one piece.
        let mut edited = data.clone();
        edited[5 * 8192 + 100] ^= 1;
        let after = chunks_of(&edited, 1);
        let differing = pieces.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 1);
    }

    /// A database of `n` pages of `page` bytes: a page header, text rows
    /// filling 55 to 95 % of the page, then zeros.
    fn database(page: usize, n: usize) -> Vec<u8> {
        let noise = pseudo_random(n * 2, 3);
        let mut out = Vec::with_capacity(page * n);
        for i in 0..n {
            let mut p = format!("PG{i:08x}").into_bytes();
            let fill = page * (55 + usize::from(noise[2 * i]) % 40) / 100;
            let mut row = usize::from(noise[2 * i + 1]);
            while p.len() < fill {
                row += 7;
                p.extend_from_slice(
                    format!("DEL|{row:08}|DOLIPRANE 1000MG|{}|\n", row % 97).as_bytes(),
                );
            }
            p.resize(page, 0);
            out.extend_from_slice(&p[..page]);
        }
        out
    }

    #[test]
    fn page_size_found_from_the_pages_when_the_file_does_not_state_it() {
        for page in [4096, 8192, 16384, 32768] {
            let db = database(page, (2 << 20) / page);
            assert_eq!(
                choose(db.len() as u64, &db[..HEAD_LEN]),
                Cutting::Pages(page)
            );
        }
        // Nothing page-like: the default.
        let noise = pseudo_random(2 << 20, 4);
        assert_eq!(
            choose(2 << 20, &noise[..HEAD_LEN]),
            Cutting::Pages(DEFAULT_PAGE)
        );
        assert_eq!(
            choose(2 << 20, &[0; HEAD_LEN]),
            Cutting::Pages(DEFAULT_PAGE)
        );
        // Text whose lines begin alike everywhere says nothing about pages.
        let text = "0;3400000000000;DOLIPRANE;1;2.18;0\n".repeat(HEAD_LEN / 35 + 1);
        assert_eq!(
            choose(2 << 20, text.as_bytes()),
            Cutting::Pages(DEFAULT_PAGE)
        );
        // A journal of 8 KiB pages followed by 4 KiB ones: cut as its start.
        let mut journal = database(8192, 96);
        journal.extend_from_slice(&database(4096, 64));
        assert_eq!(choose(journal.len() as u64, &journal), Cutting::Pages(8192));
    }

    #[test]
    fn page_size_stated_by_a_firebird_header() {
        let mut head = database(4096, 512);
        head[..20].fill(0);
        head[0] = 1;
        head[16..18].copy_from_slice(&16384u16.to_le_bytes());
        head[18..20].copy_from_slice(&(0x8000u16 | 12).to_le_bytes());
        assert_eq!(choose(2 << 20, &head), Cutting::Pages(16384));
        // Without the on-disk structure flag it is not taken for Firebird.
        head[19] = 0;
        assert_eq!(choose(2 << 20, &head), Cutting::Pages(4096));
    }

    #[test]
    fn pages_read_in_batches_still_end_on_file_page_boundaries() {
        let data = pseudo_random(3 << 20, 5);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        // A data range starting mid-page and spanning several read batches.
        let (offset, len) = (4096 + 10, (2 << 20) + 777);
        let mut pieces = Vec::new();
        let read = read_pages::<io::Error>(&f, offset, len, 8192, &mut |p| {
            pieces.push(own(p));
            Ok(())
        })
        .unwrap();
        assert_eq!(read, len);
        let mut pos = offset as usize;
        for (i, p) in pieces.iter().enumerate() {
            let Owned::Data(d) = p else {
                panic!("no holes here")
            };
            assert_eq!(&d[..], &data[pos..pos + d.len()]);
            pos += d.len();
            if i + 1 < pieces.len() {
                assert_eq!(pos % 8192, 0, "piece {i} ends off a page boundary");
            }
        }
        assert_eq!(pos as u64, offset + len);
    }

    #[test]
    fn holes_are_found_and_data_round_trips() {
        let f = tempfile::tempfile().unwrap();
        let size = 8 << 20;
        f.set_len(size).unwrap();
        let block = pseudo_random(100_000, 3);
        f.write_all_at(&block, 4 << 20).unwrap();
        let pieces = chunks_in(&f, size, 1);
        let holes: u64 = pieces
            .iter()
            .map(|p| if let Owned::Hole(n) = p { *n } else { 0 })
            .sum();
        assert!(holes >= size - (1 << 20), "holes not detected: {holes}");
        let read: usize = data_lens(&pieces).iter().sum();
        assert_eq!(read as u64 + holes, size);
        let mut rebuilt = Vec::new();
        for p in pieces {
            match p {
                Owned::Data(d) => rebuilt.extend(d),
                Owned::Hole(n) => rebuilt.resize(rebuilt.len() + n as usize, 0),
            }
        }
        assert_eq!(rebuilt.len() as u64, size);
        assert_eq!(&rebuilt[4 << 20..(4 << 20) + block.len()], &block[..]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn chunks_reassemble(len in 0usize..700_000, seed in any::<u64>()) {
            let data = pseudo_random(len, seed);
            let mut joined = Vec::new();
            for p in chunks_of(&data, seed) {
                match p {
                    Owned::Data(d) => {
                        prop_assert!(d.len() <= MAX_CHUNK);
                        joined.extend(d);
                    }
                    Owned::Hole(_) => prop_assert!(false, "no holes in a written file"),
                }
            }
            prop_assert_eq!(joined, data);
        }
    }
}
