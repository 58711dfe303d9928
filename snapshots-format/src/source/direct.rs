//! Reading a large file around the page cache (`O_DIRECT`). A database is
//! read whole every night because its mtime changed, though about 1 % of
//! its pages did. Read through the page cache, each gigabyte cost the
//! kernel a second or more of CPU (allocating pages, then copying them out:
//! 2.8 s a gigabyte in a daily snapshot of a 16 GiB tree, half of that
//! snapshot's CPU; docs/PERFORMANCE.md), and pushed the machine's own
//! working set out of memory for pages read once. Read directly, the
//! drive's transfer lands in our buffer.
//!
//! Only advice in effect: a filesystem that refuses `O_DIRECT` (tmpfs, some
//! FUSE and network filesystems) or a read it cannot align is read the
//! ordinary way, with the same result.

use std::fs::File;
use std::io;

use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};

/// Offsets, lengths and buffers of direct reads are multiples of this: the
/// largest logical block size of common drives (4Kn; 512 divides it).
pub const ALIGN: usize = 4096;

/// Files read in several pieces are read directly from this size on:
/// without the kernel's read-ahead, each direct read waits for the drive,
/// which a large buffer amortizes only on a large file.
pub const MIN_SIZE: u64 = 16 << 20;

/// Files read whole in one read are read directly from this size on (a
/// scanned prescription, a document): one read is one wait either way, and
/// the page cache's work is saved. Below it, the two `fcntl` calls cost
/// more than the copy they save.
pub const MIN_WHOLE: u64 = 64 << 10;

/// A zeroed buffer of `len` bytes whose start is aligned on [`ALIGN`].
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A buffer of `len` bytes (rounded up to [`ALIGN`]).
    pub fn new(len: usize) -> Self {
        let len = len.div_ceil(ALIGN) * ALIGN;
        let raw = vec![0u8; len + ALIGN];
        // Within [0, ALIGN): a Vec<u8> can start anywhere.
        let start = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        AlignedBuf { raw, start, len }
    }

    /// The whole buffer.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }

    /// The whole buffer.
    pub fn as_slice(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

/// A file switched to direct reads for as long as this lives (and back
/// when dropped), or left as it was when that is not possible.
pub struct DirectReads<'f> {
    file: &'f File,
    /// The flags to restore; `None` when direct reads are off.
    restore: Option<OFlags>,
}

impl<'f> DirectReads<'f> {
    /// Turns direct reads on for `file` of `size` bytes when it is large
    /// enough ([`MIN_SIZE`]) and its filesystem accepts them.
    pub fn new(file: &'f File, size: u64) -> Self {
        Self::when(file, size >= MIN_SIZE)
    }

    /// Turns direct reads on for `file` when `wanted` and its filesystem
    /// accepts them.
    pub fn when(file: &'f File, wanted: bool) -> Self {
        let restore = wanted
            .then(|| fcntl_getfl(file).ok())
            .flatten()
            .filter(|flags| fcntl_setfl(file, *flags | OFlags::DIRECT).is_ok());
        DirectReads { file, restore }
    }

    /// Whether reads go around the page cache.
    pub fn is_on(&self) -> bool {
        self.restore.is_some()
    }

    /// Reads as much of `buf` as the file holds at `offset` (at most
    /// `buf.len()` bytes, fewer only at its end). A read that cannot be
    /// direct (unaligned, or refused by the filesystem) is read the
    /// ordinary way, and so are all later ones when the filesystem
    /// refused.
    ///
    /// # Errors
    /// Read errors.
    pub fn read(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let aligned = buf.as_ptr().align_offset(ALIGN) == 0
            && offset.is_multiple_of(ALIGN as u64)
            && buf.len().is_multiple_of(ALIGN);
        let Some(flags) = self.restore else {
            return read_up_to(self.file, buf, offset);
        };
        if aligned {
            match read_direct(self.file, buf, offset) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.off();
                    return read_up_to(self.file, buf, offset);
                }
                other => return other,
            }
        }
        // An unaligned read would fail: this one through the cache.
        let _ = fcntl_setfl(self.file, flags);
        let got = read_up_to(self.file, buf, offset);
        if fcntl_setfl(self.file, flags | OFlags::DIRECT).is_err() {
            self.restore = None;
        }
        got
    }

    fn off(&mut self) {
        if let Some(flags) = self.restore.take() {
            let _ = fcntl_setfl(self.file, flags);
        }
    }
}

impl Drop for DirectReads<'_> {
    fn drop(&mut self) {
        self.off();
    }
}

/// [`read_up_to`] for a file open with `O_DIRECT`: a read that comes back
/// short of a block boundary met the end of the file, and is the last
/// (asking again, at that unaligned offset, is refused by some
/// filesystems, XFS among them).
fn read_direct(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                if !n.is_multiple_of(ALIGN) {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Reads as much of `buf` as the file holds at `offset`.
///
/// # Errors
/// Read errors other than an interruption.
pub fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> (tempfile::TempDir, File) {
        // /var/tmp rather than /tmp, which may be a tmpfs (no O_DIRECT
        // before Linux 6.6): the direct path is what is tested.
        let dir = tempfile::tempdir_in("/var/tmp")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let path = dir.path().join("db");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        (dir, File::open(&path).unwrap())
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    #[test]
    fn buffers_are_aligned() {
        for len in [1, 4095, 4096, 1 << 20] {
            let mut b = AlignedBuf::new(len);
            assert_eq!(b.as_mut_slice().as_ptr().align_offset(ALIGN), 0);
            assert!(b.as_slice().len() >= len);
            assert!(b.as_slice().len().is_multiple_of(ALIGN));
        }
    }

    #[test]
    fn direct_reads_return_the_same_bytes_aligned_or_not() {
        let size = MIN_SIZE as usize + 3 * ALIGN + 100;
        let data = pattern(size);
        let (_dir, file) = file_of(&data);
        let mut direct = DirectReads::new(&file, size as u64);
        let mut buf = AlignedBuf::new(1 << 20);
        // Aligned, in the middle.
        let got = direct.read(buf.as_mut_slice(), 1 << 20).unwrap();
        assert_eq!(got, 1 << 20);
        assert_eq!(buf.as_slice(), &data[1 << 20..2 << 20]);
        // The end of the file: a short read.
        let at = (size / ALIGN * ALIGN - ALIGN) as u64;
        let got = direct.read(buf.as_mut_slice(), at).unwrap();
        assert_eq!(&buf.as_slice()[..got], &data[at as usize..]);
        // Unaligned offset and length: through the cache, same bytes.
        let got = direct
            .read(&mut buf.as_mut_slice()[..1000], 12_345)
            .unwrap();
        assert_eq!(&buf.as_slice()[..got], &data[12_345..13_345]);
        // And direct again afterwards, when it was on.
        let was_on = direct.is_on();
        let got = direct.read(buf.as_mut_slice(), 0).unwrap();
        assert_eq!(&buf.as_slice()[..got], &data[..1 << 20]);
        assert_eq!(direct.is_on(), was_on);
        drop(direct);
        let flags = fcntl_getfl(&file).unwrap();
        assert!(!flags.contains(OFlags::DIRECT), "restored when dropped");
    }

    #[test]
    fn small_files_stay_in_the_page_cache() {
        let (_dir, file) = file_of(&pattern(10_000));
        let direct = DirectReads::new(&file, 10_000);
        assert!(!direct.is_on());
    }
}
