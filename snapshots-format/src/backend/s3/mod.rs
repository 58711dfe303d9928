//! The S3 backend: a repository under a prefix of a bucket of any
//! S3-compatible store (Garage, MinIO, AWS, Scaleway, OVH...).
//!
//! ```text
//! PREFIX/config  PREFIX/policy  PREFIX/dictionary
//! PREFIX/keys/<16 hex>   PREFIX/data/<2 hex>/<64 hex>   PREFIX/snapshots/<64 hex>
//! PREFIX/index/<64 hex>  PREFIX/locks/<letter>-<16 hex>
//! ```
//!
//! The same layout as a drive, so a repository folder copied into a bucket
//! with any tool (rclone) is a repository there too.
//!
//! An object is sent whole by one `PUT` when it is committed (packs are at
//! most 64 MiB, so no multipart upload is needed and none is ever left
//! behind half-done), with `Content-MD5` so the store refuses anything
//! damaged on the way, and buckets with S3 Object Lock accept it. A commit
//! that must not replace looks first and sends `If-None-Match: *`: stores
//! with conditional writes (AWS, MinIO, Ceph, R2) then keep exactly one of
//! two racing writers; Garage ignores the header, so there the look-first
//! narrows the race without closing it ([`Backend::exclusive_create`]).
//!
//! Everything the store sends is bounded before it is read, like a drive's
//! files: a bucket is as untrusted as a drive.

mod client;
pub mod credentials;
pub mod location;
mod pack_cache;
mod throttle;

use std::sync::Arc;

use base64::Engine as _;
use md5::Digest as _;
use rusty_s3::S3Action as _;

use super::{missing_object, short_object, Backend, FileKind, ObjectName, Upload};
use crate::error::{Error, Result, StoreProblem};
use client::{Client, Reply, Verb};
use pack_cache::PackCache;

pub use client::S3Options;
pub use credentials::S3Credentials;
pub use location::{BadLocation, S3Location};

/// The pack cache folder of the repository at `location` under the cache
/// folder `root`: one per address, so two repositories never mix.
pub fn pack_cache_dir(root: &std::path::Path, location: &S3Location) -> std::path::PathBuf {
    let place = blake3::hash(location.to_string().as_bytes()).to_hex();
    root.join("s3-packs").join(&place[..16])
}

/// Objects up to this size are read back when a commit finds the name
/// taken, so a retried request that had in fact succeeded counts as ours.
const COMPARE_UP_TO: usize = 1 << 20;

/// Largest page of a listing (S3 sends at most 1000 keys, ~300 bytes each).
const LIST_PAGE_MAX: u64 = 16 << 20;

/// A repository in a bucket; see the module documentation.
#[derive(Debug, Clone)]
pub struct S3Backend {
    client: Arc<Client>,
    cache: Option<Arc<PackCache>>,
    /// Threads wanting the same pack wait for one fetch (striped by name).
    fetching: Arc<[std::sync::Mutex<()>; 64]>,
}

impl S3Backend {
    /// A backend for `location`. Nothing is sent yet: a missing bucket or
    /// a wrong key shows at the first request, with what to do.
    ///
    /// # Errors
    /// [`StoreProblem::NoCredentials`] when no credentials are found.
    pub fn open(location: S3Location, options: S3Options) -> Result<Self> {
        let cache = options
            .pack_cache
            .clone()
            .map(|(dir, max)| Arc::new(PackCache::new(dir, max)));
        Ok(Self {
            client: Arc::new(Client::new(location, options)?),
            cache,
            fetching: Arc::new(std::array::from_fn(|_| std::sync::Mutex::new(()))),
        })
    }

    /// A slice of a pack through the local cache: the whole pack is fetched
    /// once (one request instead of one per blob), checked against its
    /// name, kept, and read from there.
    fn read_cached(
        &self,
        cache: &PackCache,
        name: &ObjectName,
        offset: u64,
        len: usize,
    ) -> Result<Option<Vec<u8>>> {
        if let Some(bytes) = cache.read_at(name, offset, len) {
            return Ok(Some(bytes));
        }
        let stripe = name.as_str().as_bytes().first().copied().unwrap_or(0) as usize
            + name.as_str().as_bytes().get(1).copied().unwrap_or(0) as usize;
        let _one_fetch = self.fetching[stripe % 64]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(bytes) = cache.read_at(name, offset, len) {
            return Ok(Some(bytes));
        }
        let Some(pack) = self.read(FileKind::Pack, name)? else {
            return Err(missing_object(FileKind::Pack, name));
        };
        if name.to_id() != Some(*blake3::hash(&pack).as_bytes()) {
            // Not the pack of that name: read the blobs one by one, so that
            // each is judged by its own seal and only damaged ones fail.
            return Ok(None);
        }
        cache.insert(name, &pack);
        let range = usize::try_from(offset)
            .ok()
            .and_then(|start| Some(start..start.checked_add(len)?));
        match range.and_then(|r| pack.get(r)) {
            Some(part) => Ok(Some(part.to_vec())),
            None => Err(short_object(FileKind::Pack, name)),
        }
    }

    fn key(&self, kind: FileKind, name: &ObjectName) -> String {
        self.client.location.key(&rel(kind, name))
    }

    fn get(&self, doing: &str, key: &str, headers: &[(&str, &str)], max: u64) -> Result<Reply> {
        self.client
            .exchange(doing, &Verb::Get, headers, max, &|b, c| {
                b.get_object(Some(c), key).sign(Client::sign_for())
            })
    }

    fn head(&self, doing: &str, key: &str) -> Result<Reply> {
        self.client.exchange(doing, &Verb::Head, &[], 0, &|b, c| {
            b.head_object(Some(c), key).sign(Client::sign_for())
        })
    }

    /// A 404 is a missing object, unless the bucket itself is missing.
    fn is_missing(&self, doing: &str, reply: &Reply) -> Result<bool> {
        if reply.status != 404 {
            return Ok(false);
        }
        match self.client.refused(doing, reply) {
            e @ Error::Store {
                problem: StoreProblem::NoBucket(_),
                ..
            } => Err(e),
            _ => Ok(true),
        }
    }

    /// Every key under `dir/` (relative to the prefix), with sizes.
    fn list_keys(&self, dir: &str) -> Result<Vec<(String, u64)>> {
        let base = self.client.location.key(dir);
        let base = format!("{base}/");
        let doing = format!("listing {dir}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let reply = self
                .client
                .exchange(&doing, &Verb::Get, &[], LIST_PAGE_MAX, &|b, c| {
                    let mut list = b.list_objects_v2(Some(c));
                    list.with_prefix(base.as_str());
                    if let Some(t) = &token {
                        list.with_continuation_token(t.as_str());
                    }
                    list.sign(Client::sign_for())
                })?;
            if !reply.ok() {
                return Err(self.client.refused(&doing, &reply));
            }
            let text = String::from_utf8_lossy(&reply.body);
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&text).map_err(|e| {
                Error::Tampered {
                    path: self.client.location.to_string(),
                    reason: format!("unreadable listing of {dir}: {e}"),
                }
            })?;
            for item in page.contents {
                let key = percent_decode(&item.key);
                if let Some(rest) = key.strip_prefix(&base) {
                    out.push((rest.to_owned(), item.size.unwrap_or(0)));
                }
            }
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }
}

/// Where an object lives below the prefix (as on a drive).
fn rel(kind: FileKind, name: &ObjectName) -> String {
    let n = name.as_str();
    match kind {
        FileKind::Config => "config".into(),
        FileKind::Policy => "policy".into(),
        FileKind::Dictionary => "dictionary".into(),
        FileKind::DictionaryCopy => "dictionary.copy".into(),
        FileKind::Key => format!("keys/{n}"),
        FileKind::Snapshot => format!("snapshots/{n}"),
        FileKind::Index | FileKind::LegacyIndex => format!("index/{n}"),
        FileKind::Lock => format!("locks/{n}"),
        FileKind::Journal => format!("journal/{n}"),
        FileKind::Pack => format!("data/{}/{n}", &n[..2.min(n.len())]),
    }
}

/// Decodes `%XX` escapes of a listed key (`encoding-type=url`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.client.location.to_string()
    }

    fn create(&self) -> Result<()> {
        // Anything under the prefix (even an interrupted init's key file)
        // means the place is taken; init never mixes with other data.
        let reply = self.client.exchange(
            "looking at the bucket",
            &Verb::Get,
            &[],
            LIST_PAGE_MAX,
            &|b, c| {
                let mut list = b.list_objects_v2(Some(c));
                let prefix = &self.client.location.prefix;
                if !prefix.is_empty() {
                    list.with_prefix(format!("{prefix}/"));
                }
                list.with_max_keys(1);
                list.sign(Client::sign_for())
            },
        )?;
        if !reply.ok() {
            return Err(self.client.refused("looking at the bucket", &reply));
        }
        let text = String::from_utf8_lossy(&reply.body);
        let empty = rusty_s3::actions::ListObjectsV2::parse_response(&text)
            .map(|page| page.contents.is_empty())
            .unwrap_or(false);
        if !empty {
            return Err(Error::AlreadyExists(self.location().into()));
        }
        // A folder marker, as the S3 consoles make, takes the place the way
        // a drive's folders do: a second init here is refused even before
        // the first one wrote its key.
        let key = self.client.location.key("keys/");
        let reply = self.client.exchange(
            "marking the repository's place",
            &Verb::Put(&[]),
            &[],
            1 << 16,
            &|b, c| b.put_object(Some(c), key.as_str()).sign(Client::sign_for()),
        )?;
        if reply.ok() {
            Ok(())
        } else {
            Err(self
                .client
                .refused("marking the repository's place", &reply))
        }
    }

    fn exclusive_create(&self) -> bool {
        false
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(ObjectName, u64)>> {
        if kind.is_single() {
            let name = ObjectName::single();
            return Ok(self
                .size(kind, &name)?
                .map(|s| (name, s))
                .into_iter()
                .collect());
        }
        let dir = match kind {
            FileKind::Key => "keys",
            FileKind::Snapshot => "snapshots",
            FileKind::Index | FileKind::LegacyIndex => "index",
            FileKind::Lock => "locks",
            FileKind::Journal => "journal",
            _ => "data",
        };
        let mut out = Vec::new();
        for (rest, size) in self.list_keys(dir)? {
            let name = if kind == FileKind::Pack {
                match rest.split_once('/') {
                    Some((sub, n)) if n.starts_with(sub) && sub.len() == 2 => n,
                    _ => continue,
                }
            } else if rest.contains('/') {
                continue;
            } else {
                rest.as_str()
            };
            if let Some(name) = ObjectName::parse(kind, name) {
                out.push((name, size));
            }
        }
        out.sort();
        Ok(out)
    }

    fn size(&self, kind: FileKind, name: &ObjectName) -> Result<Option<u64>> {
        let doing = format!("looking for {} {}", kind.name(), name.short());
        let reply = self.head(&doing, &self.key(kind, name))?;
        if self.is_missing(&doing, &reply)? {
            return Ok(None);
        }
        if !reply.ok() {
            return Err(self.client.refused(&doing, &reply));
        }
        Ok(Some(reply.len.unwrap_or(0)))
    }

    fn read(&self, kind: FileKind, name: &ObjectName) -> Result<Option<Vec<u8>>> {
        let doing = format!("reading {} {}", kind.name(), name.short());
        let reply = self.get(&doing, &self.key(kind, name), &[], kind.max_len())?;
        if self.is_missing(&doing, &reply)? {
            return Ok(None);
        }
        if !reply.ok() {
            return Err(self.client.refused(&doing, &reply));
        }
        Ok(Some(reply.body))
    }

    fn read_at(
        &self,
        kind: FileKind,
        name: &ObjectName,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        if let (FileKind::Pack, Some(cache), true) = (kind, &self.cache, len > 0) {
            if let Some(bytes) = self.read_cached(cache, name, offset, len)? {
                return Ok(bytes);
            }
        }
        if len == 0 {
            return match self.size(kind, name)? {
                None => Err(missing_object(kind, name)),
                Some(size) if size < offset => Err(short_object(kind, name)),
                Some(_) => Ok(Vec::new()),
            };
        }
        let Some(last) = offset.checked_add(len as u64 - 1) else {
            return Err(short_object(kind, name));
        };
        let doing = format!("reading {} {}", kind.name(), name.short());
        let range = format!("bytes={offset}-{last}");
        let reply = self.get(
            &doing,
            &self.key(kind, name),
            &[("range", &range)],
            kind.max_len(),
        )?;
        if self.is_missing(&doing, &reply)? {
            return Err(missing_object(kind, name));
        }
        let range = usize::try_from(offset)
            .ok()
            .and_then(|start| Some(start..start.checked_add(len)?));
        match reply.status {
            206 if reply.body.len() == len => Ok(reply.body),
            206 | 416 => Err(short_object(kind, name)),
            // A store that ignores ranges sends the whole object.
            200 => match range.and_then(|r| reply.body.get(r)) {
                Some(part) => Ok(part.to_vec()),
                None => Err(short_object(kind, name)),
            },
            _ => Err(self.client.refused(&doing, &reply)),
        }
    }

    fn upload(&self, kind: FileKind) -> Result<Box<dyn Upload>> {
        Ok(Box::new(S3Upload {
            backend: self.clone(),
            kind,
            bytes: Vec::new(),
        }))
    }

    fn delete(&self, kind: FileKind, name: &ObjectName) -> Result<()> {
        let doing = format!("deleting {} {}", kind.name(), name.short());
        let key = self.key(kind, name);
        let reply = self
            .client
            .exchange(&doing, &Verb::Delete, &[], 1 << 16, &|b, c| {
                b.delete_object(Some(c), key.as_str())
                    .sign(Client::sign_for())
            })?;
        if reply.ok() || self.is_missing(&doing, &reply)? {
            Ok(())
        } else {
            Err(self.client.refused(&doing, &reply))
        }
    }
}

/// An object collected in memory and sent by one `PUT` at commit.
struct S3Upload {
    backend: S3Backend,
    kind: FileKind,
    bytes: Vec<u8>,
}

impl S3Upload {
    /// Whether the object already under `key` is exactly ours (a retried
    /// request that had succeeded the first time).
    fn same_as_there(&self, doing: &str, key: &str) -> Result<bool> {
        if self.bytes.len() > COMPARE_UP_TO {
            return Ok(false);
        }
        let max = self.bytes.len() as u64;
        match self.backend.get(doing, key, &[], max) {
            Ok(reply) => Ok(reply.ok() && reply.body == self.bytes),
            // Larger than ours: not ours.
            Err(Error::Tampered { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Upload for S3Upload {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if (self.bytes.len() + bytes.len()) as u64 > self.kind.max_len() {
            return Err(Error::Refused(format!(
                "a {} larger than {} bytes is never written",
                self.kind.name(),
                self.kind.max_len()
            )));
        }
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn commit(self: Box<Self>, name: &ObjectName, replace: bool) -> Result<bool> {
        let client = &self.backend.client;
        let key = self.backend.key(self.kind, name);
        let doing = format!("writing {} {}", self.kind.name(), name.short());
        if !replace {
            let there = self.backend.head(&doing, &key)?;
            if there.ok() {
                return self.same_as_there(&doing, &key);
            }
            if !self.backend.is_missing(&doing, &there)? {
                return Err(client.refused(&doing, &there));
            }
        }
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&self.bytes));
        let mut headers = vec![("content-md5", md5.as_str())];
        if !replace {
            headers.push(("if-none-match", "*"));
        }
        let reply = client.exchange(
            &doing,
            &Verb::Put(&self.bytes),
            &headers,
            1 << 16,
            &|b, c| b.put_object(Some(c), key.as_str()).sign(Client::sign_for()),
        )?;
        match reply.status {
            200..=299 => Ok(true),
            // Another writer got there between our look and our write.
            412 | 409 if !replace => self.same_as_there(&doing, &key),
            _ => Err(client.refused(&doing, &reply)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_sit_where_a_drive_has_them() {
        let hex = "ab".repeat(32);
        let pack = ObjectName::parse(FileKind::Pack, &hex).unwrap();
        assert_eq!(rel(FileKind::Pack, &pack), format!("data/ab/{hex}"));
        assert_eq!(rel(FileKind::Config, &ObjectName::single()), "config");
        let lock = ObjectName::parse(FileKind::Lock, "s-0123456789abcdef").unwrap();
        assert_eq!(rel(FileKind::Lock, &lock), "locks/s-0123456789abcdef");
    }

    #[test]
    fn listed_keys_are_decoded() {
        assert_eq!(percent_decode("p%2Fdata/ab%41"), "p/data/abA");
        assert_eq!(percent_decode("50%"), "50%");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
