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

use std::sync::Mutex;

use crate::error::Result;
use crate::format::blob::BlobKind;
use crate::format::pack::PackEntry;
use crate::id::{BlobId, IdMap, PackId};
use crate::repo::index::Location;
use crate::repo::Repository;

/// A pack this many of whose blobs were asked of the index has its trailer
/// read ([`PackDirectory`]): a reader going through it will want the rest.
/// Fewer are not worth the trailer (a few thousand entries, to spare as
/// many index lookups). Counted across batches: a day's pack holds the
/// pages of a database changed that day, one every hundred pages or so
/// of the file, never eight in one batch; a read of the bench's database
/// asked the index for 11,853 of its 108,199 pages, a thousand apiece from
/// ten such packs, at about 17 µs each.
const LEARN_AFTER: u32 = 8;

/// Packs not learnt whose index lookups are counted, at most (the counts
/// start again past it).
const MAX_COUNTED: usize = 4096;

/// Locations held at most, over all packs learnt: 49 bytes each in the
/// table (about 6 MiB when full), and never less than a dozen honest packs
/// of 8 KiB pages.
pub const MAX_LOCATIONS: usize = 1 << 16;

/// Packs held at most, those whose trailer could not be read (held as
/// listing nothing) included.
pub const MAX_PACKS: usize = 256;

/// The locations of the blobs of the packs learnt, bounded by
/// [`MAX_LOCATIONS`]; the pack least recently used is forgotten first, so
/// that a pack read from all along a file outlives those read through.
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

/// A pack learnt, by its number, with when a location of it was last given.
struct Learnt {
    number: u32,
    id: PackId,
    used: u64,
}

#[derive(Default)]
struct Inner {
    locations: IdMap<BlobId, Place>,
    packs: Vec<Learnt>,
    next: u32,
    /// Counts [`PackDirectory::locate`] calls, for [`Learnt::used`].
    clock: u64,
    /// Index lookups answered by each pack not learnt.
    looked_up: IdMap<PackId, u32>,
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
        let mut g = self.lock();
        g.clock += 1;
        let Inner {
            locations,
            packs,
            clock,
            ..
        } = &mut *g;
        ids.iter()
            .map(|id| {
                let place = locations.get(id)?;
                let pack = packs.iter_mut().find(|p| p.number == place.pack)?;
                pack.used = *clock;
                Some(Location {
                    pack: pack.id,
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
            let found = repo.locate_blobs(&unknown)?;
            let mut answers = found.iter();
            for slot in locs.iter_mut().filter(|l| l.is_none()) {
                *slot = answers.next().copied();
            }
            self.learn_packs(repo, &found);
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

    /// Counts the index's answers `found` per pack, and reads the trailer
    /// of each pack that has now answered [`LEARN_AFTER`] lookups.
    fn learn_packs(&self, repo: &Repository, found: &[Location]) {
        let ready = self.count_lookups(found);
        for pack in ready {
            if self.claim(&pack) {
                // A trailer that cannot be read is recorded as listing
                // nothing, so it is not read again at every batch: the index
                // answers for that pack.
                let entries = repo.pack_entries(&pack).unwrap_or_default();
                self.learn(pack, &entries);
            }
        }
    }

    /// Adds the index's answers `found` to the lookups counted per pack;
    /// returns the packs that reach [`LEARN_AFTER`] (no longer counted).
    fn count_lookups(&self, found: &[Location]) -> Vec<PackId> {
        let mut g = self.lock();
        if g.looked_up.len() > MAX_COUNTED {
            g.looked_up.clear();
        }
        let mut ready = Vec::new();
        for l in found {
            let n = g.looked_up.entry(l.pack).or_default();
            *n += 1;
            if *n == LEARN_AFTER {
                ready.push(l.pack);
            }
        }
        for pack in &ready {
            g.looked_up.remove(pack);
        }
        ready
    }

    /// Whether the blobs of `pack` are known here.
    #[cfg(test)]
    pub(crate) fn knows(&self, pack: &PackId) -> bool {
        self.lock().packs.iter().any(|p| p.id == *pack)
    }

    /// Whether the caller should read `pack`'s trailer: neither known nor
    /// being read by another thread. A `true` must be followed by
    /// [`PackDirectory::learn`] (with nothing when the trailer could not be
    /// read, so that it is not read again).
    pub fn claim(&self, pack: &PackId) -> bool {
        let mut g = self.lock();
        if g.learning.contains(pack) || g.packs.iter().any(|p| p.id == *pack) {
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
        if entries.len() > MAX_LOCATIONS || g.packs.iter().any(|p| p.id == pack) {
            return;
        }
        while g.locations.len() + entries.len() > MAX_LOCATIONS || g.packs.len() >= MAX_PACKS {
            let Some(stalest) = (0..g.packs.len()).min_by_key(|&i| g.packs[i].used) else {
                break;
            };
            let gone = g.packs.swap_remove(stalest);
            g.remove(gone.number);
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
        let used = g.clock;
        g.packs.push(Learnt {
            number,
            id: pack,
            used,
        });
    }

    /// Forgets what `pack`'s trailer said (a location from it failed).
    pub fn forget(&self, pack: &PackId) {
        let mut g = self.lock();
        if let Some(at) = g.packs.iter().position(|p| p.id == *pack) {
            let gone = g.packs.swap_remove(at);
            g.remove(gone.number);
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
    fn stays_bounded_forgetting_the_least_recently_used_pack_first() {
        let dir = PackDirectory::default();
        let per_pack = MAX_LOCATIONS / 4;
        let first = entries(0, per_pack);
        for seed in 0..6u8 {
            dir.learn(PackId([seed; 32]), &entries(seed, per_pack));
            assert!(dir.len() <= MAX_LOCATIONS);
            // Pack 0 is read from all along, as a day's pack of a database.
            assert!(dir.locate(&[first[usize::from(seed)].id])[0].is_some());
        }
        assert!(!dir.knows(&PackId([1; 32])) && !dir.knows(&PackId([2; 32])));
        assert!([0, 3, 4, 5].iter().all(|&s| dir.knows(&PackId([s; 32]))));
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
    fn a_pack_is_ready_to_learn_after_its_eighth_lookup_even_one_at_a_time() {
        let dir = PackDirectory::default();
        let at = |pack: u8| Location {
            pack: PackId([pack; 32]),
            kind: BlobKind::Data,
            offset: 12,
            length: 100,
        };
        // One blob of pack 1 per batch, among blobs of pack 2.
        for _ in 1..LEARN_AFTER {
            assert!(dir.count_lookups(&[at(1), at(2)]).is_empty());
        }
        assert_eq!(dir.count_lookups(&[at(1)]), vec![PackId([1; 32])]);
        assert_eq!(dir.count_lookups(&[at(2)]), vec![PackId([2; 32])]);
        // Counted again from nothing (its trailer may not be kept).
        assert!(dir.count_lookups(&[at(1)]).is_empty());
        // A batch of eight from one pack is ready at once.
        assert_eq!(dir.count_lookups(&[at(3); 8]), vec![PackId([3; 32])]);
        // The counts are bounded.
        for n in 0..2 * MAX_COUNTED as u32 {
            let mut l = at(4);
            l.pack.0[..4].copy_from_slice(&n.to_le_bytes());
            dir.count_lookups(&[l]);
        }
        assert!(dir.lock().looked_up.len() <= MAX_COUNTED + 1);
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
