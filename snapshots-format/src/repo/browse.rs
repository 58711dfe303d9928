//! Read-only browsing of snapshots, for the mount: trees and file ranges on
//! demand, through bounded caches. Nothing here loads a whole snapshot, a
//! whole file or the whole index: a directory costs one tree blob, a read
//! costs the chunks it touches (plus the file's chunk list, once per open).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::content::{Content, Extent};
use crate::format::tree::Tree;
use crate::id::BlobId;
use crate::repo::reader::ReadOnlyRepository;

/// A least-recently-used cache of decoded blobs, bounded by a total cost
/// (bytes, roughly).
pub struct Lru<V> {
    max_cost: usize,
    inner: Mutex<LruInner<V>>,
}

struct LruInner<V> {
    map: HashMap<BlobId, (Arc<V>, u64, usize)>,
    order: BTreeMap<u64, BlobId>,
    tick: u64,
    cost: usize,
}

impl<V> Lru<V> {
    /// An empty cache holding at most `max_cost`.
    pub fn new(max_cost: usize) -> Self {
        Self {
            max_cost,
            inner: Mutex::new(LruInner {
                map: HashMap::new(),
                order: BTreeMap::new(),
                tick: 0,
                cost: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruInner<V>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached value, marked as recently used.
    pub fn get(&self, id: &BlobId) -> Option<Arc<V>> {
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        let (value, old_tick) = {
            let entry = g.map.get_mut(id)?;
            let old = entry.1;
            entry.1 = tick;
            (entry.0.clone(), old)
        };
        g.order.remove(&old_tick);
        g.order.insert(tick, *id);
        Some(value)
    }

    /// Whether `id` is cached (without touching its recency).
    pub fn contains(&self, id: &BlobId) -> bool {
        self.lock().map.contains_key(id)
    }

    /// Adds a value of some cost, evicting the least recently used.
    pub fn insert(&self, id: BlobId, value: Arc<V>, cost: usize) {
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        if let Some((_, old_tick, old_cost)) = g.map.insert(id, (value, tick, cost)) {
            g.order.remove(&old_tick);
            g.cost -= old_cost;
        }
        g.order.insert(tick, id);
        g.cost += cost;
        while g.cost > self.max_cost && g.map.len() > 1 {
            let Some((&t, &victim)) = g.order.iter().next() else {
                break;
            };
            g.order.remove(&t);
            if let Some((_, _, c)) = g.map.remove(&victim) {
                g.cost -= c;
            }
        }
    }

    /// Total cost held.
    pub fn cost(&self) -> usize {
        self.lock().cost
    }
}

/// Cached access to a repository's trees and data chunks.
pub struct Browser {
    repo: ReadOnlyRepository,
    trees: Lru<Tree>,
    chunks: Lru<Vec<u8>>,
}

impl Browser {
    /// A browser with a chunk cache of `cache_bytes` (trees get an eighth more).
    pub fn new(repo: ReadOnlyRepository, cache_bytes: usize) -> Self {
        Self {
            repo,
            trees: Lru::new(cache_bytes / 8 + (1 << 20)),
            chunks: Lru::new(cache_bytes),
        }
    }

    /// The repository.
    pub fn repo(&self) -> &ReadOnlyRepository {
        &self.repo
    }

    /// A directory listing.
    pub fn tree(&self, id: &BlobId) -> Result<Arc<Tree>> {
        if let Some(t) = self.trees.get(id) {
            return Ok(t);
        }
        let tree = Arc::new(self.repo.load_tree(id)?);
        // Decoded entries take several times their encoded size; 200 bytes
        // an entry is a fair estimate.
        self.trees
            .insert(*id, tree.clone(), 200 * tree.nodes.len() + 64);
        Ok(tree)
    }

    /// A data chunk, verified.
    pub fn chunk(&self, id: &BlobId) -> Result<Arc<Vec<u8>>> {
        if let Some(c) = self.chunks.get(id) {
            return Ok(c);
        }
        let data = Arc::new(self.repo.load_blob(BlobKind::Data, id)?);
        self.chunks.insert(*id, data.clone(), data.len());
        Ok(data)
    }

    /// Loads the chunks not in the cache yet, together (for read-ahead).
    ///
    /// # Errors
    /// Those of [`Repository::load_blobs`].
    pub fn prefetch(&self, ids: &[BlobId]) -> Result<()> {
        let missing: Vec<BlobId> = ids
            .iter()
            .filter(|id| !self.chunks.contains(id))
            .copied()
            .collect();
        self.repo.load_blobs(BlobKind::Data, &missing, |i, data| {
            let len = data.len();
            self.chunks.insert(missing[i], Arc::new(data), len);
            Ok(())
        })
    }
}

/// An open file: its extents and where each starts, for random access.
pub struct FileReader {
    extents: Vec<Extent>,
    starts: Vec<u64>,
    size: u64,
}

impl FileReader {
    /// Loads a file's extent list (its chunk-list pieces, not its data).
    pub fn open(repo: &ReadOnlyRepository, content: &Content) -> Result<Self> {
        let extents = repo.load_extents(content)?;
        let mut starts = Vec::with_capacity(extents.len());
        let mut pos = 0u64;
        for e in &extents {
            starts.push(pos);
            pos += e.len();
        }
        Ok(Self {
            extents,
            starts,
            size: pos,
        })
    }

    /// Size of the file.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn extent_at(&self, offset: u64) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        }
    }

    /// Reads up to `len` bytes at `offset` (fewer at the end of the file).
    ///
    /// # Errors
    /// [`Error::Corrupt`] or I/O errors of the chunks read.
    pub fn read(&self, browser: &Browser, offset: u64, len: usize) -> Result<Vec<u8>> {
        let end = self.size.min(offset.saturating_add(len as u64));
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut i = self.extent_at(offset);
        while (self.starts[i]) < end {
            let start = self.starts[i];
            let e = &self.extents[i];
            let from = offset.max(start) - start;
            let to = end.min(start + e.len()) - start;
            match e {
                Extent::Hole { .. } => out.resize(out.len() + (to - from) as usize, 0),
                Extent::Chunk { id, len, .. } => {
                    let data = browser.chunk(id)?;
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
            i += 1;
            if i == self.extents.len() {
                break;
            }
        }
        Ok(out)
    }

    /// SEEK_DATA: the first offset at or after `offset` holding data, if any.
    pub fn seek_data(&self, offset: u64) -> Option<u64> {
        if offset >= self.size {
            return None;
        }
        let i = self.extent_at(offset);
        (i..self.extents.len())
            .find(|&j| matches!(self.extents[j], Extent::Chunk { .. }))
            .map(|j| self.starts[j].max(offset))
    }

    /// SEEK_HOLE: the first offset at or after `offset` inside a hole (the
    /// end of the file counts as one), if `offset` is inside the file.
    pub fn seek_hole(&self, offset: u64) -> Option<u64> {
        if offset >= self.size {
            return None;
        }
        let i = self.extent_at(offset);
        let hole =
            (i..self.extents.len()).find(|&j| matches!(self.extents[j], Extent::Hole { .. }));
        Some(hole.map_or(self.size, |j| self.starts[j].max(offset)))
    }

    /// The chunks holding bytes of `[from, to)`, for read-ahead.
    pub fn chunks_in(&self, from: u64, to: u64) -> Vec<BlobId> {
        let to = to.min(self.size);
        if from >= to {
            return Vec::new();
        }
        let first = self.extent_at(from);
        let last = self.extent_at(to - 1);
        self.extents[first..=last]
            .iter()
            .filter_map(|e| match e {
                Extent::Chunk { id, .. } => Some(*id),
                Extent::Hole { .. } => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_data_and_hole() {
        let id = BlobId([1; 32]);
        let extents = vec![
            Extent::Hole { len: 100 },
            Extent::Chunk {
                id,
                len: 50,
                base: None,
            },
            Extent::Hole { len: 30 },
        ];
        let mut starts = Vec::new();
        let mut pos = 0;
        for e in &extents {
            starts.push(pos);
            pos += e.len();
        }
        let r = FileReader {
            extents,
            starts,
            size: pos,
        };
        assert_eq!(r.seek_data(0), Some(100));
        assert_eq!(r.seek_data(120), Some(120));
        assert_eq!(r.seek_data(160), None);
        assert_eq!(r.seek_hole(0), Some(0));
        assert_eq!(r.seek_hole(100), Some(150));
        assert_eq!(r.seek_hole(170), Some(170));
        assert_eq!(r.seek_hole(180), None);
    }

    #[test]
    fn lru_evicts_least_recently_used_within_budget() {
        let lru: Lru<Vec<u8>> = Lru::new(100);
        let id = |n: u8| BlobId([n; 32]);
        lru.insert(id(1), Arc::new(vec![0; 40]), 40);
        lru.insert(id(2), Arc::new(vec![0; 40]), 40);
        assert!(lru.get(&id(1)).is_some());
        lru.insert(id(3), Arc::new(vec![0; 40]), 40);
        assert!(lru.contains(&id(1)) && lru.contains(&id(3)));
        assert!(!lru.contains(&id(2)));
        assert!(lru.cost() <= 100);
    }
}
