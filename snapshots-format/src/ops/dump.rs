//! `dump`: one file's bytes, or a folder as a tar stream, written to any
//! [`Write`] (the CLI gives its standard output). Data is streamed chunk
//! by chunk through the browser's bounded cache, read ahead a window at a
//! time, so memory stays bounded whatever the file's size.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tar::{Builder, EntryType, Header};

use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeKind, Payload, MAX_DEPTH};
use crate::id::BlobId;
use crate::ops::paths::{join, normalize, Lookup};
use crate::repo::browse::{Browser, FileReader};

/// Bytes of a file read at once: their chunks load together (one read per
/// run of neighbouring blobs in a pack).
pub const WINDOW: u64 = 8 << 20;

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dumped {
    /// A regular file's bytes.
    File {
        /// How many.
        bytes: u64,
    },
    /// A tar stream of a folder (or of a link or special file alone).
    Tar(TarSummary),
}

/// What a tar stream holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TarSummary {
    /// Regular files (hard links included once).
    pub files: u64,
    /// Folders.
    pub folders: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Hard links to a file already in the stream.
    pub hard_links: u64,
    /// Fifos and devices.
    pub others: u64,
    /// Bytes of file contents.
    pub bytes: u64,
    /// Paths left out (sockets: tar has no type for them).
    #[serde(skip)]
    pub skipped: Vec<Vec<u8>>,
}

/// The entry at `path` in the tree `root`; `None` for the root itself.
///
/// # Errors
/// [`Error::PathNotFound`], [`Error::BadPath`] and tree read errors.
pub fn resolve(browser: &Browser, root: &BlobId, path: &[u8]) -> Result<Option<Node>> {
    if normalize(path).is_empty() {
        return Ok(None);
    }
    Lookup::new(path)?
        .find(browser, root)?
        .map(Some)
        .ok_or_else(|| Error::PathNotFound(String::from_utf8_lossy(path).into_owned()))
}

/// Writes the entry at `path` in the tree `root` to `out`: a regular file
/// as its bytes, anything else (the root, a folder, a link) as a tar
/// stream whose names start with the entry's own name.
///
/// # Errors
/// Those of [`resolve`], damaged or missing blobs, and write errors.
pub fn dump(browser: &Browser, root: &BlobId, path: &[u8], out: &mut dyn Write) -> Result<Dumped> {
    match resolve(browser, root, path)? {
        Some(node) if node.kind == NodeKind::File => {
            let bytes = file(browser, &node, &normalize(path), out)?;
            Ok(Dumped::File { bytes })
        }
        Some(node) => tar(browser, root, Some(&node), out).map(Dumped::Tar),
        None => tar(browser, root, None, out).map(Dumped::Tar),
    }
}

/// Writes a regular file's bytes to `out` (`path` names it in errors).
///
/// # Errors
/// A chunk list that does not add up to the file's size, damaged or
/// missing blobs, write errors.
pub fn file(browser: &Browser, node: &Node, path: &[u8], out: &mut dyn Write) -> Result<u64> {
    let mut reader = ContentReader::open(browser, node, path)?;
    let copied = io::copy(&mut reader, out);
    reader.result(copied)
}

/// The bytes of a file, read [`WINDOW`] bytes at a time (the chunks of a
/// window load together); the file's chunk list is read a piece at a time.
struct ContentReader<'a> {
    browser: &'a Browser,
    file: FileReader,
    /// Where the next window starts.
    offset: u64,
    window: Vec<u8>,
    pos: usize,
    error: Option<Error>,
}

impl<'a> ContentReader<'a> {
    fn open(browser: &'a Browser, node: &Node, path: &[u8]) -> Result<Self> {
        let name = String::from_utf8_lossy(path).into_owned();
        let file = match &node.payload {
            Payload::File(content) => FileReader::open(browser, content)?,
            _ => return Err(Error::corrupt("file", &name, "no contents recorded")),
        };
        // Checked before a byte goes out, as a tar header carries the size:
        // opening reads the chunk list once for its total, and the reads
        // decode its pieces again (a few KiB a piece against ~150 KiB of
        // data it lists).
        if file.size() != node.size {
            return Err(Error::corrupt(
                "file",
                &name,
                "chunk list does not add up to its size",
            ));
        }
        Ok(Self {
            browser,
            file,
            offset: 0,
            window: Vec::new(),
            pos: 0,
            error: None,
        })
    }

    /// Reads the next window; false at the end of the file.
    fn advance(&mut self) -> Result<bool> {
        if self.offset >= self.file.size() {
            return Ok(false);
        }
        self.window = self.file.read(self.browser, self.offset, WINDOW as usize)?;
        self.pos = 0;
        self.offset += self.window.len() as u64;
        Ok(!self.window.is_empty())
    }

    /// The outcome of a copy from this reader: its own error rather than
    /// the I/O error it was carried in.
    fn result(&mut self, copied: io::Result<u64>) -> Result<u64> {
        match (self.error.take(), copied) {
            (Some(e), _) => Err(e),
            (None, Ok(n)) => Ok(n),
            (None, Err(e)) => Err(Error::io(PathBuf::from("the output"), e)),
        }
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.window.len() {
            match self.advance() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(e) => {
                    let shown = io::Error::other(e.to_string());
                    self.error = Some(e);
                    return Err(shown);
                }
            }
        }
        let n = buf.len().min(self.window.len() - self.pos);
        buf[..n].copy_from_slice(&self.window[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Writes a tar stream to `out`: the entry `top` and what it holds, names
/// starting with its own name (the folders above it are left out, as
/// `tar -C parent` would), or with `None` the whole tree `root`, names
/// relative to it.
///
/// # Errors
/// Damaged or missing blobs, write errors.
pub fn tar(
    browser: &Browser,
    root: &BlobId,
    top: Option<&Node>,
    out: &mut dyn Write,
) -> Result<TarSummary> {
    let mut writer = TarWriter {
        browser,
        builder: Builder::new(out),
        links: HashMap::new(),
        summary: TarSummary::default(),
    };
    match top {
        Some(node) => writer.entry(node.name.clone(), node, 0)?,
        None => writer.folder(b"", root, 0)?,
    }
    writer.builder.finish().map_err(output)?;
    Ok(writer.summary)
}

fn output(e: io::Error) -> Error {
    Error::io(PathBuf::from("the output"), e)
}

struct TarWriter<'a, 'w> {
    browser: &'a Browser,
    builder: Builder<&'w mut dyn Write>,
    /// The first path of each hard-linked file, by its link identity.
    links: HashMap<(u64, u64), Vec<u8>>,
    summary: TarSummary,
}

impl TarWriter<'_, '_> {
    fn folder(&mut self, path: &[u8], id: &BlobId, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::corrupt(
                "tree",
                id.short(),
                "folders nested too deep",
            ));
        }
        let browser = self.browser;
        let mut entries = browser.entries(Some(id))?;
        while let Some(node) = entries.peek()? {
            self.entry(join(path, &node.name), node, depth + 1)?;
            entries.advance();
        }
        Ok(())
    }

    fn entry(&mut self, path: Vec<u8>, node: &Node, depth: usize) -> Result<()> {
        let mut header = Header::new_gnu();
        header.set_mode(node.mode);
        header.set_uid(u64::from(node.uid));
        header.set_gid(u64::from(node.gid));
        // tar has no times before 1970.
        header.set_mtime(node.mtime.sec.max(0) as u64);
        header.set_size(0);
        let name = Path::new(OsStr::from_bytes(&path));
        self.pax(node)?;
        if let Some(first) = node.link_key().and_then(|k| self.links.get(&k)) {
            header.set_entry_type(EntryType::Link);
            let target = Path::new(OsStr::from_bytes(first)).to_path_buf();
            self.summary.hard_links += 1;
            return self
                .builder
                .append_link(&mut header, name, target)
                .map_err(output);
        }
        match &node.payload {
            Payload::File(_) => {
                header.set_entry_type(EntryType::Regular);
                header.set_size(node.size);
                let mut reader = ContentReader::open(self.browser, node, &path)?;
                let copied = self
                    .builder
                    .append_data(&mut header, name, &mut reader)
                    .map(|()| 0);
                reader.result(copied)?;
                if let Some(key) = node.link_key() {
                    self.links.insert(key, path.clone());
                }
                self.summary.files += 1;
                self.summary.bytes += node.size;
            }
            Payload::Dir(id) => {
                header.set_entry_type(EntryType::Directory);
                self.builder
                    .append_data(&mut header, name, io::empty())
                    .map_err(output)?;
                self.summary.folders += 1;
                self.folder(&path, id, depth)?;
            }
            Payload::Symlink(target) => {
                header.set_entry_type(EntryType::Symlink);
                // Short targets go in literally (byte-exact, `a//b` kept);
                // long ones need the GNU extension of `append_link`.
                if header.set_link_name_literal(target).is_ok() {
                    self.builder
                        .append_data(&mut header, name, io::empty())
                        .map_err(output)?;
                } else {
                    let target = Path::new(OsStr::from_bytes(target)).to_path_buf();
                    self.builder
                        .append_link(&mut header, name, target)
                        .map_err(output)?;
                }
                self.summary.symlinks += 1;
            }
            Payload::Device(rdev) => {
                let kind = match node.kind {
                    NodeKind::BlockDevice => EntryType::Block,
                    _ => EntryType::Char,
                };
                header.set_entry_type(kind);
                let (major, minor) = split_device(*rdev);
                header.set_device_major(major).map_err(output)?;
                header.set_device_minor(minor).map_err(output)?;
                self.builder
                    .append_data(&mut header, name, io::empty())
                    .map_err(output)?;
                self.summary.others += 1;
            }
            Payload::None if node.kind == NodeKind::Fifo => {
                header.set_entry_type(EntryType::Fifo);
                self.builder
                    .append_data(&mut header, name, io::empty())
                    .map_err(output)?;
                self.summary.others += 1;
            }
            Payload::None => self.summary.skipped.push(path),
        }
        Ok(())
    }
}

impl TarWriter<'_, '_> {
    /// What the ustar fields cannot hold, in a PAX header before the
    /// entry: the mtime's nanoseconds and the extended attributes (as GNU
    /// tar writes them; `tar --xattrs -x` restores them).
    fn pax(&mut self, node: &Node) -> Result<()> {
        let mut records = Vec::new();
        if node.mtime.nsec != 0 || node.mtime.sec < 0 {
            let t = format!("{}.{:09}", node.mtime.sec, node.mtime.nsec);
            records.extend(pax_record(b"mtime", t.as_bytes()));
        }
        for (key, value) in &node.xattrs {
            let mut name = b"SCHILY.xattr.".to_vec();
            name.extend_from_slice(key);
            records.extend(pax_record(&name, value));
        }
        if records.is_empty() {
            return Ok(());
        }
        let mut header = Header::new_ustar();
        header.set_entry_type(EntryType::XHeader);
        header.set_path("././@PaxHeader").map_err(output)?;
        header.set_mode(0o644);
        header.set_size(records.len() as u64);
        header.set_cksum();
        self.builder.append(&header, &records[..]).map_err(output)
    }
}

/// One PAX record: `LEN key=value\n`, LEN counting itself.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=' and '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut record = format!("{len} ").into_bytes();
    record.extend_from_slice(key);
    record.push(b'=');
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// Linux's major and minor numbers of a device number (glibc's layout).
fn split_device(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob::BlobKind;
    use crate::format::content::{Content, Extent};
    use crate::ops::compare::testing::*;

    /// A folder with a two-chunk file with a hole, a non-UTF-8 name, a
    /// symlink, a hard link and a read-only mode goes to tar and comes back
    /// identical through the tar crate's reader.
    #[test]
    fn folder_to_tar_and_back() {
        let cache = tempfile::tempdir().unwrap();
        let repo = repo(cache.path());
        let (a, b) = (vec![7u8; 3000], b"fin".to_vec());
        let content = Content::Inline(vec![
            Extent::Chunk {
                id: save(&repo, BlobKind::Data, &a),
                len: 3000,
                base: None,
            },
            Extent::Hole { len: 5 },
            Extent::Chunk {
                id: save(&repo, BlobKind::Data, &b),
                len: 3,
                base: None,
            },
        ]);
        let mut big = node(b"caf\xe9.fdb", NodeKind::File, Payload::File(content), 3008);
        big.mode = 0o640;
        big.mtime = crate::format::tree::Timestamp {
            sec: 1_790_000_000,
            nsec: 123_456_789,
        };
        big.xattrs = vec![(b"user.origine".to_vec(), b"LGO".to_vec())];
        big.nlink = 2;
        big.inode = 42;
        let mut again = big.clone();
        again.name = b"lien".to_vec();
        let link = node(
            b"latest",
            NodeKind::Symlink,
            Payload::Symlink(b"../x//y".to_vec()),
            7,
        );
        let db = save_tree(&repo, vec![big.clone(), again, link]);
        let root = save_tree(&repo, vec![dir(b"db", db)]);
        let browser = browser(repo);

        let mut out = Vec::new();
        let dumped = dump(&browser, &root, b"db", &mut out).unwrap();
        let Dumped::Tar(summary) = dumped else {
            panic!("{dumped:?}")
        };
        assert_eq!(
            (
                summary.files,
                summary.folders,
                summary.symlinks,
                summary.hard_links
            ),
            (1, 1, 1, 1)
        );
        let mut archive = tar::Archive::new(&out[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path_bytes().into_owned();
            let header = entry.header().clone();
            let link = entry.link_name_bytes().map(|l| l.into_owned());
            let pax: Vec<(String, Vec<u8>)> = entry
                .pax_extensions()
                .unwrap()
                .map(|p| {
                    p.map(|e| e.unwrap())
                        .map(|e| (e.key().unwrap().to_string(), e.value_bytes().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            if path == b"db/caf\xe9.fdb" {
                assert_eq!(
                    pax,
                    [
                        ("mtime".to_string(), b"1790000000.123456789".to_vec()),
                        ("SCHILY.xattr.user.origine".to_string(), b"LGO".to_vec())
                    ]
                );
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            seen.push((
                path,
                header.entry_type(),
                header.mode().unwrap(),
                header.mtime().unwrap(),
                link,
                data,
            ));
        }
        let mut expected_data = a.clone();
        expected_data.extend([0; 5]);
        expected_data.extend(&b);
        assert_eq!(seen[0].0, b"db");
        assert_eq!(seen[0].1, EntryType::Directory);
        assert_eq!(seen[1].0, b"db/caf\xe9.fdb");
        assert_eq!((seen[1].2, seen[1].3), (0o640, 1_790_000_000));
        assert_eq!(seen[1].5, expected_data);
        assert_eq!(seen[2].0, b"db/latest");
        assert_eq!(
            seen[2].4.as_deref(),
            Some(&b"../x//y"[..]),
            "link targets byte-exact"
        );
        assert_eq!(seen[3].0, b"db/lien");
        assert_eq!(seen[3].1, EntryType::Link);
        assert_eq!(seen[3].4.as_deref(), Some(&b"db/caf\xe9.fdb"[..]));

        let mut bytes = Vec::new();
        let one = dump(&browser, &root, b"db/caf\xe9.fdb", &mut bytes).unwrap();
        assert_eq!(one, Dumped::File { bytes: 3008 });
        assert_eq!(bytes, expected_data);
        assert!(matches!(
            dump(&browser, &root, b"db/none", &mut bytes),
            Err(Error::PathNotFound(_))
        ));
    }

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(pax_record(b"mtime", b"1.5"), b"13 mtime=1.5\n");
        // 97 + 3 + 1 bytes without the length: 101 would make it 104.
        let long = pax_record(b"k", &[b'v'; 97]);
        assert_eq!(long.len(), 104);
        assert!(long.starts_with(b"104 k="));
    }

    #[test]
    fn device_numbers_split_like_glibc() {
        // makedev(8, 1) and makedev(259, 70000).
        assert_eq!(split_device(0x801), (8, 1));
        let dev = (259u64 & 0xfff) << 8 | (70000u64 & 0xff) | ((70000u64 & !0xff) << 12);
        assert_eq!(split_device(dev), (259, 70000));
    }
}
