//! Where the blobs of the packs a reader is going through sit, learnt from
//! the packs' trailers (FORMAT.md §5.2) rather than asked of the index one
//! blob at a time.
//!
//! A database read through the mount is a hundred thousand 8 KiB pages,
//! a few thousand per pack: asking the index for each page was a sixth of
//! the mount's CPU (a B-tree probe and a sealed location to open per page),
//! and an eighth of a restore's. One trailer, read once per pack, answers
//! for all of them. The mount and restore load through
//! [`PackDirectory::load`].
//!
//! A trailer is authenticated but not bound to its pack (its associated
//! data cannot hold the pack id, FORMAT.md §5.2): one copied from another
//! pack would point at the wrong bytes. Those fail as damage, since every
//! blob is authenticated with its own id, and [`PackDirectory::load`] then
//! forgets the pack and asks the index.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::error::Result;
use crate::format::blob::BlobKind;
use crate::format::pack::PackEntry;
use crate::id::{BlobId, IdMap, PackId};
use crate::repo::index::Location;
use crate::repo::Repository;

/// A batch of chunks reading this many from one pack has that pack's
/// trailer read ([`PackDirectory`]): a sequential reader, who will want the
/// rest of the pack. Fewer are not worth the trailer (a few thousand
/// entries, to spare as many index lookups).
const LEARN_AFTER: usize = 8;

/// Locations held at most, over all packs learnt: 49 bytes each in the
/// table (about 6 MiB when full), and never less than a dozen honest packs
/// of 8 KiB pages.
pub const MAX_LOCATIONS: usize = 1 << 16;

/// Packs held at most, those whose trailer could not be read (held as
/// listing nothing) included.
pub const MAX_PACKS: usize = 256;

/// The locations of the blobs of the packs learnt last, bounded by
/// [`MAX_LOCATIONS`]; the pack learnt first is forgotten first.
#[derive(Default)]
pub struct PackDirectory {
    inner: Mutex<Inner>,
}

/// Where a blob is in a pack learnt: the pack by its number (the pack id
/// once per pack, not once per blob).
#[derive(Clone, Copy)]
struct Place {
    pack: u32,
    kind: BlobKind,
    offset: u32,
    length: u32,
}

#[derive(Default)]
struct Inner {
    locations: IdMap<BlobId, Place>,
    /// Packs in the order they were learnt, with their numbers.
    packs: VecDeque<(u32, PackId)>,
    next: u32,
    /// Packs whose trailer some thread is reading: the other threads ask
    /// the index meanwhile rather than read the same trailer again.
    learning: Vec<PackId>,
}

impl PackDirectory {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where each of `ids` is, when a pack learnt holds it.
    pub fn locate(&self, ids: &[BlobId]) -> Vec<Option<Location>> {
        let g = self.lock();
        ids.iter()
            .map(|id| {
                let place = g.locations.get(id)?;
                let (_, pack) = g.packs.iter().find(|(n, _)| *n == place.pack)?;
                Some(Location {
                    pack: *pack,
                    kind: place.kind,
                    offset: place.offset,
                    length: place.length,
                })
            })
            .collect()
    }

    /// Loads the blobs `ids` of one kind, each handed to `each` with its
    /// index as it is decoded. Their locations come from the trailers of
    /// the packs being read through (learnt here), the others from
    /// the index; a pack several of them sit in has its trailer read for the
    /// blobs that follow. When a location from a trailer fails, its packs
    /// are forgotten and what is left is loaded through the index.
    pub fn load(
        &self,
        repo: &Repository,
        kind: BlobKind,
        ids: &[BlobId],
        mut each: impl FnMut(usize, Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let mut locs = self.locate(ids);
        let unknown = unanswered(ids, &locs);
        let mut from_trailers: Vec<PackId> = locs.iter().flatten().map(|l| l.pack).collect();
        from_trailers.sort_unstable();
        from_trailers.dedup();
        if !unknown.is_empty() {
            let mut found = repo.locate_blobs(&unknown)?.into_iter();
            for slot in locs.iter_mut().filter(|l| l.is_none()) {
                *slot = found.next();
            }
            self.learn_packs(repo, &locs);
        }
        let Some(locs) = locs.into_iter().collect::<Option<Vec<Location>>>() else {
            // Not reached: every unknown id was just located.
            return repo.load_blobs(kind, ids, each);
        };
        let mut done = vec![false; ids.len()];
        let first = repo.load_located(kind, ids, &locs, |i, data| {
            done[i] = true;
            each(i, data)
        });
        match first {
            Err(_) if !from_trailers.is_empty() => {
                for pack in &from_trailers {
                    self.forget(pack);
                }
                let left: Vec<usize> = (0..ids.len()).filter(|&i| !done[i]).collect();
                let left_ids: Vec<BlobId> = left.iter().map(|&i| ids[i]).collect();
                repo.load_blobs(kind, &left_ids, |j, data| each(left[j], data))
            }
            other => other,
        }
    }

    /// Reads the trailer of each pack this batch reads [`LEARN_AFTER`] or
    /// more chunks from: a reader going through a file.
    fn learn_packs(&self, repo: &Repository, locs: &[Option<Location>]) {
        let mut per_pack: IdMap<PackId, usize> = IdMap::default();
        for l in locs.iter().flatten() {
            *per_pack.entry(l.pack).or_default() += 1;
        }
        for (pack, n) in per_pack {
            if n >= LEARN_AFTER && self.claim(&pack) {
                // A trailer that cannot be read is recorded as listing
                // nothing, so it is not read again at every batch: the index
                // answers for that pack.
                let entries = repo.pack_entries(&pack).unwrap_or_default();
                self.learn(pack, &entries);
            }
        }
    }

    /// Whether the blobs of `pack` are known here.
    #[cfg(test)]
    pub(crate) fn knows(&self, pack: &PackId) -> bool {
        self.lock().packs.iter().any(|(_, p)| p == pack)
    }

    /// Whether the caller should read `pack`'s trailer: neither known nor
    /// being read by another thread. A `true` must be followed by
    /// [`PackDirectory::learn`] (with nothing when the trailer could not be
    /// read, so that it is not read again).
    pub fn claim(&self, pack: &PackId) -> bool {
        let mut g = self.lock();
        if g.learning.contains(pack) || g.packs.iter().any(|(_, p)| p == pack) {
            return false;
        }
        g.learning.push(*pack);
        true
    }

    /// Adds what `pack`'s trailer lists. A trailer listing more than
    /// [`MAX_LOCATIONS`] blobs is not kept (no honest pack does).
    pub fn learn(&self, pack: PackId, entries: &[PackEntry]) {
        let mut g = self.lock();
        g.learning.retain(|p| *p != pack);
        if entries.len() > MAX_LOCATIONS || g.packs.iter().any(|(_, p)| *p == pack) {
            return;
        }
        while g.locations.len() + entries.len() > MAX_LOCATIONS || g.packs.len() >= MAX_PACKS {
            let Some((oldest, _)) = g.packs.pop_front() else {
                break;
            };
            g.remove(oldest);
        }
        let number = g.next;
        g.next = g.next.wrapping_add(1);
        for e in entries {
            let place = Place {
                pack: number,
                kind: e.kind,
                offset: e.offset,
                length: e.length,
            };
            // A blob stored twice keeps the copy learnt first.
            g.locations.entry(e.id).or_insert(place);
        }
        g.packs.push_back((number, pack));
    }

    /// Forgets what `pack`'s trailer said (a location from it failed).
    pub fn forget(&self, pack: &PackId) {
        let mut g = self.lock();
        if let Some(at) = g.packs.iter().position(|(_, p)| p == pack) {
            if let Some((number, _)) = g.packs.remove(at) {
                g.remove(number);
            }
        }
    }

    /// Locations held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().locations.len()
    }

    /// Whether nothing is held.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The ids of `ids` whose answer in `found` (in the same order) is `None`.
pub(crate) fn unanswered<T>(ids: &[BlobId], found: &[Option<T>]) -> Vec<BlobId> {
    ids.iter()
        .zip(found)
        .filter(|(_, f)| f.is_none())
        .map(|(id, _)| *id)
        .collect()
}

impl Inner {
    /// Drops the locations of the pack numbered `number`: one pass over
    /// the table, once per pack of thousands of blobs.
    fn remove(&mut self, number: u32) {
        self.locations.retain(|_, place| place.pack != number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pack_seed: u8, n: usize) -> Vec<PackEntry> {
        (0..n)
            .map(|i| PackEntry {
                id: BlobId(*blake3::hash(&[pack_seed, (i >> 8) as u8, i as u8]).as_bytes()),
                kind: BlobKind::Data,
                offset: 12 + 100 * i as u32,
                length: 100,
            })
            .collect()
    }

    #[test]
    fn locates_what_a_trailer_lists_and_forgets_it() {
        let dir = PackDirectory::default();
        let pack = PackId([1; 32]);
        let listed = entries(1, 10);
        dir.learn(pack, &listed);
        let unknown = BlobId([9; 32]);
        let found = dir.locate(&[listed[3].id, unknown]);
        assert_eq!(
            found[0],
            Some(Location {
                pack,
                kind: BlobKind::Data,
                offset: listed[3].offset,
                length: 100
            })
        );
        assert_eq!(found[1], None);
        assert!(dir.knows(&pack));
        assert!(!dir.claim(&pack), "a pack known is not read again");
        dir.forget(&pack);
        assert!(dir.claim(&pack) && !dir.claim(&pack), "nor one being read");
        // A trailer that could not be read: recorded empty, not read again.
        dir.learn(pack, &[]);
        assert!(!dir.claim(&pack));
        assert_eq!(dir.locate(&[listed[0].id]), vec![None]);
        dir.forget(&pack);
        assert!(!dir.knows(&pack));
        assert!(dir.is_empty());
    }

    #[test]
    fn stays_bounded_forgetting_the_oldest_pack_first() {
        let dir = PackDirectory::default();
        let per_pack = MAX_LOCATIONS / 4;
        for seed in 0..6u8 {
            dir.learn(PackId([seed; 32]), &entries(seed, per_pack));
            assert!(dir.len() <= MAX_LOCATIONS);
        }
        assert!(!dir.knows(&PackId([0; 32])) && !dir.knows(&PackId([1; 32])));
        assert!((2..6).all(|s| dir.knows(&PackId([s; 32]))));
        // A trailer larger than the bound is not kept at all.
        dir.learn(PackId([7; 32]), &entries(7, MAX_LOCATIONS + 1));
        assert!(!dir.knows(&PackId([7; 32])));
        assert_eq!(dir.len(), 4 * per_pack);
        // Empty trailers (those that could not be read) are bounded too.
        for n in 0..2 * MAX_PACKS as u32 {
            let mut id = [0xAA; 32];
            id[..4].copy_from_slice(&n.to_le_bytes());
            dir.learn(PackId(id), &[]);
        }
        assert_eq!(dir.lock().packs.len(), MAX_PACKS);
    }

    #[test]
    fn a_blob_in_two_packs_outlives_the_first_pack_forgotten() {
        let dir = PackDirectory::default();
        let shared = entries(1, 3);
        dir.learn(PackId([1; 32]), &shared);
        dir.learn(PackId([2; 32]), &shared);
        dir.forget(&PackId([2; 32]));
        // Pack 2 added nothing (pack 1 had them first): still located.
        assert_eq!(
            dir.locate(&[shared[0].id])[0].map(|l| l.pack),
            Some(PackId([1; 32]))
        );
        dir.forget(&PackId([1; 32]));
        assert!(dir.is_empty());
    }
}
