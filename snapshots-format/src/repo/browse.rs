//! Read-only browsing of snapshots, for the mount: trees and file ranges on
//! demand, through bounded caches. Nothing here loads a whole snapshot, a
//! whole file or the whole index: a directory costs its tree blob and the
//! tree pieces a listing or a lookup reaches, a read costs the chunks it
//! touches and the chunk-list pieces that place them.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::content::{decode_piece, Extent};
use crate::format::tree::{decode_listing, Listing as TreeListing, Node, Tree};
use crate::id::{BlobId, IdMap};
pub use crate::repo::file_reader::FileReader;
use crate::repo::pack_directory::{unanswered, PackDirectory};
use crate::repo::reader::ReadOnlyRepository;

/// A least-recently-used cache of decoded blobs, bounded by a total cost
/// (bytes, roughly).
pub struct Lru<V> {
    max_cost: usize,
    inner: Mutex<LruInner<V>>,
}

struct LruInner<V> {
    /// Value, the tick of its last use, and its cost.
    map: IdMap<BlobId, (Arc<V>, u64, usize)>,
    /// Uses in order, oldest first. A use older than its entry's last one
    /// is stale and skipped: a queue costs a push per use, where an ordered
    /// map cost a removal and an insertion (a twentieth of a sequential
    /// read through the mount went into it).
    uses: VecDeque<(u64, BlobId)>,
    tick: u64,
    cost: usize,
}

impl<V> LruInner<V> {
    /// Marks `id`'s entry used now.
    fn touch(&mut self, id: &BlobId) -> Option<Arc<V>> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.map.get_mut(id)?;
        entry.1 = tick;
        let value = entry.0.clone();
        self.uses.push_back((tick, *id));
        self.compact();
        Some(value)
    }

    /// Drops stale uses once they outnumber the entries: the queue stays
    /// within a few times the number of entries.
    fn compact(&mut self) {
        if self.uses.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            self.uses
                .retain(|(tick, id)| map.get(id).is_some_and(|e| e.1 == *tick));
        }
    }
}

impl<V> Lru<V> {
    /// An empty cache holding at most `max_cost`.
    pub fn new(max_cost: usize) -> Self {
        Self {
            max_cost,
            inner: Mutex::new(LruInner {
                map: IdMap::default(),
                uses: VecDeque::new(),
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
        self.lock().touch(id)
    }

    /// [`Lru::get`] of each of `ids`, under one lock.
    pub fn get_many(&self, ids: &[BlobId]) -> Vec<Option<Arc<V>>> {
        let mut g = self.lock();
        ids.iter().map(|id| g.touch(id)).collect()
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
        if let Some((_, _, old_cost)) = g.map.insert(id, (value, tick, cost)) {
            g.cost -= old_cost;
        }
        g.uses.push_back((tick, id));
        g.cost += cost;
        while g.cost > self.max_cost && g.map.len() > 1 {
            let Some((t, victim)) = g.uses.pop_front() else {
                break;
            };
            if g.map.get(&victim).is_some_and(|e| e.1 == t) {
                if let Some((_, _, c)) = g.map.remove(&victim) {
                    g.cost -= c;
                }
            }
        }
        g.compact();
    }

    /// Total cost held.
    pub fn cost(&self) -> usize {
        self.lock().cost
    }
}

/// The chunks some thread is decoding right now. A sequential read of a
/// database asks for pages the prefetch threads are already decoding; the
/// reader waits for them rather than decoding the same page a second time
/// on the same two cores.
#[derive(Default)]
struct InFlight {
    state: Mutex<InFlightState>,
    landed: Condvar,
}

/// Each chunk in flight, and whether a reader waits for it: a landing
/// chunk wakes the readers only when one waits for it (waking them for
/// every page of a prefetch batch cost more than the double decoding).
#[derive(Default)]
struct InFlightState {
    ids: IdMap<BlobId, bool>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, InFlightState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `id` for the caller to load, unless `cached()` says it is
    /// already there; when another thread holds it, waits until that thread
    /// lets go and returns false (look in the cache again).
    fn claim_or_wait(&self, id: &BlobId, cached: impl Fn() -> bool) -> bool {
        let mut state = self.lock();
        // Loaders put a chunk in the cache before they let go of it, so
        // under this lock "not in flight" means "in the cache, or nobody
        // is loading it".
        if cached() {
            return false;
        }
        match state.ids.get_mut(id) {
            None => {
                state.ids.insert(*id, false);
                true
            }
            Some(_) => {
                drop(self.wait_for(state, id));
                false
            }
        }
    }

    /// Sleeps until `id` is not in flight. The mark is set again before
    /// every sleep: between the wake-up and this thread taking the lock,
    /// another thread may have claimed `id` afresh (after a failed load or
    /// an eviction), unmarked, and would otherwise let go without waking
    /// anyone.
    fn wait_for<'a>(
        &'a self,
        mut state: std::sync::MutexGuard<'a, InFlightState>,
        id: &BlobId,
    ) -> std::sync::MutexGuard<'a, InFlightState> {
        while let Some(waited) = state.ids.get_mut(id) {
            *waited = true;
            state = self.landed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state
    }

    /// Waits until none of `ids` is in flight. The prefetch threads land a
    /// file's chunks in file order, so waiting for the last one still in
    /// flight is usually one sleep for the whole read; waking at each page
    /// cost more in context switches than the decoding it saved.
    fn wait_all(&self, ids: &[BlobId]) {
        let mut state = self.lock();
        while let Some(last) = ids.iter().rev().find(|id| state.ids.contains_key(id)) {
            let last = *last;
            state = self.wait_for(state, &last);
        }
    }

    /// Claims those of `ids` nobody holds and `cached` does not have.
    fn claim_missing(&self, ids: &[BlobId], cached: impl Fn(&BlobId) -> bool) -> Vec<BlobId> {
        let mut state = self.lock();
        let mut claimed = Vec::new();
        for id in ids {
            if !cached(id) && !state.ids.contains_key(id) {
                state.ids.insert(*id, false);
                claimed.push(*id);
            }
        }
        claimed
    }

    /// Lets go of `ids` and wakes the readers if one waits for them.
    fn release(&self, ids: &[BlobId]) {
        let mut state = self.lock();
        let mut waited = false;
        for id in ids {
            waited |= state.ids.remove(id).unwrap_or(false);
        }
        if waited {
            self.landed.notify_all();
        }
    }
}

/// Chunks claimed in [`InFlight`], let go of as each lands and, whatever
/// happens (an error, a panic), when dropped.
struct Claimed<'a> {
    flight: &'a InFlight,
    ids: Vec<BlobId>,
    landed: Vec<bool>,
}

impl<'a> Claimed<'a> {
    fn new(flight: &'a InFlight, ids: Vec<BlobId>) -> Self {
        let landed = vec![false; ids.len()];
        Self {
            flight,
            ids,
            landed,
        }
    }

    fn land(&mut self, i: usize) {
        self.landed[i] = true;
        self.flight.release(&self.ids[i..=i]);
    }
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        let left: Vec<BlobId> = self
            .ids
            .iter()
            .zip(&self.landed)
            .filter(|(_, landed)| !**landed)
            .map(|(id, _)| *id)
            .collect();
        if !left.is_empty() {
            self.flight.release(&left);
        }
    }
}

/// Cached access to a repository's trees and data chunks.
pub struct Browser {
    repo: ReadOnlyRepository,
    trees: Lru<Tree>,
    listings: Lru<Listing>,
    chunk_lists: Lru<Vec<Extent>>,
    chunks: Lru<Vec<u8>>,
    in_flight: InFlight,
    packs: PackDirectory,
}

/// A folder's listing as the mount reads it: a tree stored whole, or the
/// ids of its tree pieces (FORMAT.md §7.3), each loaded when a listing or a
/// lookup reaches it. A folder of 180,000 receipts is about 54 MB of
/// decoded entries whole; a piece, a few hundred KiB.
pub struct Listing {
    parts: Parts,
    /// The first name of each piece, once it was loaded: lookups search
    /// these without loading the pieces again.
    firsts: Mutex<Vec<Option<Vec<u8>>>>,
}

enum Parts {
    Whole(Arc<Tree>),
    Pieces(Vec<BlobId>),
}

impl Listing {
    /// How many parts (a tree stored whole has one).
    pub fn parts(&self) -> usize {
        match &self.parts {
            Parts::Whole(_) => 1,
            Parts::Pieces(ids) => ids.len(),
        }
    }

    fn firsts(&self) -> std::sync::MutexGuard<'_, Vec<Option<Vec<u8>>>> {
        self.firsts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An entry found in a [`Listing`]: the part that holds it and where.
pub struct Found {
    /// The part (a tree piece, or the whole tree).
    pub part: Arc<Tree>,
    /// The part's number in the listing ([`Browser::part`]).
    pub number: usize,
    /// The entry's index in the part.
    pub index: usize,
}

impl Browser {
    /// A browser with a chunk cache of `cache_bytes` (trees get an eighth more).
    pub fn new(repo: ReadOnlyRepository, cache_bytes: usize) -> Self {
        Self {
            repo,
            trees: Lru::new(cache_bytes / 8 + (1 << 20)),
            listings: Lru::new(1 << 20),
            chunk_lists: Lru::new(4 << 20),
            chunks: Lru::new(cache_bytes),
            in_flight: InFlight::default(),
            packs: PackDirectory::default(),
        }
    }

    /// The repository.
    pub fn repo(&self) -> &ReadOnlyRepository {
        &self.repo
    }

    /// A folder's listing, its pieces not loaded yet.
    ///
    /// # Errors
    /// A missing or damaged tree blob.
    pub fn listing(&self, id: &BlobId) -> Result<Arc<Listing>> {
        if let Some(l) = self.listings.get(id) {
            return Ok(l);
        }
        let bytes = self.repo.load_blob(BlobKind::Tree, id)?;
        let parts =
            match decode_listing(&bytes).map_err(|e| Error::corrupt("tree", id.short(), e))? {
                TreeListing::Nodes(tree) => Parts::Whole(Arc::new(tree)),
                TreeListing::Pieces(ids) => Parts::Pieces(ids),
            };
        let (cost, firsts) = match &parts {
            Parts::Whole(tree) => (200 * tree.nodes.len() + 64, vec![None]),
            Parts::Pieces(ids) => (64 * ids.len() + 64, vec![None; ids.len()]),
        };
        let listing = Arc::new(Listing {
            parts,
            firsts: Mutex::new(firsts),
        });
        self.listings.insert(*id, listing.clone(), cost);
        Ok(listing)
    }

    /// The entries of the folder `id` (none when `id` is `None`), in name
    /// order, a part at a time.
    ///
    /// # Errors
    /// A missing or damaged tree blob.
    pub fn entries(&self, id: Option<&BlobId>) -> Result<Entries<'_>> {
        Ok(Entries {
            browser: self,
            listing: id.map(|id| self.listing(id)).transpose()?,
            part: None,
            next_part: 0,
            index: 0,
            tree: id.copied(),
        })
    }

    /// Part `i` of `listing`; `None` past the last.
    ///
    /// # Errors
    /// A missing or damaged piece, or an empty one.
    pub fn part(&self, listing: &Listing, i: usize) -> Result<Option<Arc<Tree>>> {
        let id = match &listing.parts {
            Parts::Whole(tree) => return Ok((i == 0).then(|| tree.clone())),
            Parts::Pieces(ids) => match ids.get(i) {
                Some(id) => *id,
                None => return Ok(None),
            },
        };
        let piece = match self.trees.get(&id) {
            Some(t) => t,
            None => {
                let bytes = self.repo.load_blob(BlobKind::TreePiece, &id)?;
                let piece = Tree::decode(&bytes)
                    .map_err(|e| Error::corrupt("tree piece", id.short(), e))?;
                let piece = Arc::new(piece);
                // Decoded entries take several times their encoded size;
                // 200 bytes an entry is a fair estimate.
                self.trees
                    .insert(id, piece.clone(), 200 * piece.nodes.len() + 64);
                piece
            }
        };
        let Some(first) = piece.nodes.first() else {
            return Err(Error::corrupt("tree piece", id.short(), "empty tree piece"));
        };
        if let Some(slot) = listing.firsts().get_mut(i) {
            if slot.is_none() {
                *slot = Some(first.name.clone());
            }
        }
        Ok(Some(piece))
    }

    /// The entry of `listing` named `name`, if any: a binary search over
    /// the pieces' first names (loading the pieces it has not seen yet),
    /// then within the piece.
    ///
    /// # Errors
    /// A missing or damaged piece on the way.
    pub fn find(&self, listing: &Listing, name: &[u8]) -> Result<Option<Found>> {
        // The last part whose first name is at most `name`.
        let (mut lo, mut hi) = (0, listing.parts());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let known = listing.firsts().get(mid).cloned().flatten();
            let first = match known {
                Some(f) => f,
                None => match self.part(listing, mid)? {
                    Some(p) => p.nodes.first().map(|n| n.name.clone()).unwrap_or_default(),
                    None => break,
                },
            };
            if first.as_slice() <= name {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let Some(part) = self.part(listing, lo)? else {
            return Ok(None);
        };
        Ok(part.position(name).map(|index| Found {
            part,
            number: lo,
            index,
        }))
    }

    /// A chunk-list piece, decoded, from the cache or loaded here.
    ///
    /// # Errors
    /// A missing or damaged piece.
    pub fn chunk_list(&self, id: &BlobId) -> Result<Arc<Vec<Extent>>> {
        self.chunk_list_ahead(std::slice::from_ref(id))
    }

    /// A chunk-list piece, when it is cached.
    pub fn cached_chunk_list(&self, id: &BlobId) -> Option<Arc<Vec<Extent>>> {
        self.chunk_lists.get(id)
    }

    /// The chunk-list piece `ids[0]`, loaded together with those of
    /// `ids[1..]` not cached yet: the pieces that follow it in a file, which
    /// a reader going through the file wants next. A 6 GB database has
    /// hundreds of thousands of pieces; one index lookup and one read each
    /// was a twentieth of a sequential read's CPU.
    ///
    /// # Errors
    /// A missing or damaged piece `ids[0]` (one of the others only costs
    /// its own load later).
    pub fn chunk_list_ahead(&self, ids: &[BlobId]) -> Result<Arc<Vec<Extent>>> {
        let Some(first) = ids.first() else {
            return Err(Error::corrupt("chunk list", "-", "no piece asked for"));
        };
        if let Some(p) = self.chunk_lists.get(first) {
            return Ok(p);
        }
        let missing: Vec<BlobId> = std::iter::once(*first)
            .chain(
                ids[1..]
                    .iter()
                    .filter(|id| !self.chunk_lists.contains(id))
                    .copied(),
            )
            .collect();
        let mut wanted = None;
        let batch = self.packs.load(
            self.repo.inner(),
            BlobKind::ChunkList,
            &missing,
            |i, bytes| {
                let id = missing[i];
                let piece = Arc::new(
                    decode_piece(&bytes)
                        .map_err(|e| Error::corrupt("chunk list", id.short(), e))?,
                );
                self.keep_chunk_list(id, piece.clone());
                if i == 0 {
                    wanted = Some(piece);
                }
                Ok(())
            },
        );
        match (wanted, batch) {
            (Some(piece), _) => Ok(piece),
            // A damaged neighbour stopped the batch early: the piece asked
            // for is loaded alone, and fails only for its own damage.
            (None, Err(_)) if missing.len() > 1 => self.chunk_list_ahead(&missing[..1]),
            (None, Err(e)) => Err(e),
            (None, Ok(())) => Err(Error::corrupt("chunk list", first.short(), "not loaded")),
        }
    }

    /// Puts a piece decoded elsewhere in the cache.
    pub(crate) fn keep_chunk_list(&self, id: BlobId, piece: Arc<Vec<Extent>>) {
        let cost = 80 * piece.len() + 64;
        self.chunk_lists.insert(id, piece, cost);
    }

    /// A data chunk, verified: from the cache, from the thread already
    /// decoding it, or decoded here.
    pub fn chunk(&self, id: &BlobId) -> Result<Arc<Vec<u8>>> {
        loop {
            if let Some(c) = self.chunks.get(id) {
                return Ok(c);
            }
            if !self
                .in_flight
                .claim_or_wait(id, || self.chunks.contains(id))
            {
                continue;
            }
            let mut claimed = Claimed::new(&self.in_flight, vec![*id]);
            let data = Arc::new(self.repo.load_blob(BlobKind::Data, id)?);
            self.chunks.insert(*id, data.clone(), data.len());
            claimed.land(0);
            return Ok(data);
        }
    }

    /// The chunks `ids`, in order: those cached, then those nobody is
    /// loading, decoded here together (one index transaction, one read per
    /// run of neighbours), then those another thread was loading. A 128 KiB
    /// read of a database is sixteen pages: asked one by one, they cost
    /// sixteen transactions and twice as many lock hand-offs.
    ///
    /// # Errors
    /// Those of [`Repository::load_blobs`](crate::repo::Repository::load_blobs).
    pub fn chunks(&self, ids: &[BlobId]) -> Result<Vec<Arc<Vec<u8>>>> {
        let mut found = self.chunks.get_many(ids);
        let wanted = unanswered(ids, &found);
        if !wanted.is_empty() {
            self.prefetch(&wanted)?;
            self.in_flight.wait_all(&wanted);
            let mut landed = self.chunks.get_many(&wanted).into_iter();
            for f in found.iter_mut().filter(|f| f.is_none()) {
                *f = landed.next().flatten();
            }
        }
        // What is still missing was evicted meanwhile or failed to load in
        // another thread: loaded (or its error met) here, one by one.
        ids.iter()
            .zip(&mut found)
            .map(|(id, f)| match f.take() {
                Some(c) => Ok(c),
                None => self.chunk(id),
            })
            .collect()
    }

    /// Loads the chunks that are neither cached nor being loaded, together
    /// (for read-ahead).
    ///
    /// # Errors
    /// Those of [`Repository::load_blobs`](crate::repo::Repository::load_blobs).
    pub fn prefetch(&self, ids: &[BlobId]) -> Result<()> {
        let missing = self
            .in_flight
            .claim_missing(ids, |id| self.chunks.contains(id));
        let mut claimed = Claimed::new(&self.in_flight, missing.clone());
        self.packs
            .load(self.repo.inner(), BlobKind::Data, &missing, |i, data| {
                let len = data.len();
                self.chunks.insert(missing[i], Arc::new(data), len);
                claimed.land(i);
                Ok(())
            })
    }
}

/// A folder's entries in name order, walked a part at a time: a folder of
/// 180,000 receipts passes through memory a tree piece (a few hundred KiB)
/// at a time, not as the 54 MB of its whole listing. The order across
/// pieces is checked as they come.
pub struct Entries<'b> {
    browser: &'b Browser,
    /// `None` for a folder that does not exist on this side (a diff).
    listing: Option<Arc<Listing>>,
    part: Option<Arc<Tree>>,
    /// The next part to load, and the entry of `part` to give next.
    next_part: usize,
    index: usize,
    /// The tree, named in errors.
    tree: Option<BlobId>,
}

impl<'b> Entries<'b> {
    /// The entry [`Entries::advance`] would pass, loading the next part
    /// when the current one is done; `None` at the end.
    ///
    /// # Errors
    /// A missing or damaged piece; pieces out of name order.
    pub fn peek(&mut self) -> Result<Option<&Node>> {
        while self
            .part
            .as_ref()
            .is_none_or(|p| self.index >= p.nodes.len())
        {
            let Some(listing) = &self.listing else {
                return Ok(None);
            };
            let Some(next) = self.browser.part(listing, self.next_part)? else {
                return Ok(None);
            };
            let after_last = match (&self.part, next.nodes.first()) {
                (Some(prev), Some(first)) => prev.nodes.last().is_none_or(|l| l.name < first.name),
                _ => true,
            };
            if !after_last {
                let id = self.tree.map(|t| t.short()).unwrap_or_default();
                return Err(Error::corrupt("tree", id, "tree pieces out of name order"));
            }
            self.part = Some(next);
            self.next_part += 1;
            self.index = 0;
        }
        Ok(self.part.as_ref().and_then(|p| p.nodes.get(self.index)))
    }

    /// Passes the entry [`Entries::peek`] returned.
    pub fn advance(&mut self) {
        self.index += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_waits_for_the_thread_loading_its_chunk() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let flight = Arc::new(InFlight::default());
        let cached = Arc::new(AtomicBool::new(false));
        let id = BlobId([9; 32]);
        assert!(flight.claim_or_wait(&id, || false));
        let waiter = {
            let (flight, cached) = (flight.clone(), cached.clone());
            std::thread::spawn(move || {
                let claimed = flight.claim_or_wait(&id, || cached.load(Ordering::SeqCst));
                (claimed, cached.load(Ordering::SeqCst))
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        cached.store(true, Ordering::SeqCst);
        flight.release(&[id]);
        // The waiter did not load the chunk itself, and came back only once
        // the loader had put it in the cache.
        assert_eq!(waiter.join().unwrap(), (false, true));
        assert!(!flight.claim_or_wait(&id, || true));
    }

    #[test]
    fn a_waiter_is_woken_when_its_chunk_was_claimed_again_meanwhile() {
        let flight = Arc::new(InFlight::default());
        let id = BlobId([7; 32]);
        assert!(flight.claim_or_wait(&id, || false));
        let (done, finished) = std::sync::mpsc::channel();
        {
            let flight = flight.clone();
            std::thread::spawn(move || {
                let claimed = flight.claim_or_wait(&id, || false);
                let _ = done.send(claimed);
            });
        }
        let wait_marked = || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while flight.lock().ids.get(&id) != Some(&true) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the waiter sleeps unmarked"
                );
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        };
        wait_marked();
        // The first load fails and another thread claims the chunk again
        // before the waiter runs: the waiter is woken, finds the chunk
        // still in flight, and must mark it again before sleeping.
        {
            let mut state = flight.lock();
            state.ids.insert(id, false);
            flight.landed.notify_all();
        }
        wait_marked();
        flight.release(&[id]);
        let woken = finished.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(woken, Ok(false), "the waiter was never woken");
    }

    #[test]
    fn claims_are_let_go_when_a_load_fails() {
        let flight = InFlight::default();
        let ids = [BlobId([1; 32]), BlobId([2; 32])];
        {
            let mut claimed = Claimed::new(&flight, flight.claim_missing(&ids, |_| false));
            claimed.land(0);
            // Dropped with ids[1] not landed, as after an error.
        }
        assert_eq!(flight.claim_missing(&ids, |_| false), ids.to_vec());
    }

    #[test]
    fn readers_and_prefetchers_together_read_every_chunk() {
        use crate::ops::compare::testing;
        let dir = tempfile::tempdir().unwrap();
        let repo = testing::repo(dir.path());
        let blobs: Vec<(BlobId, Vec<u8>)> = (0..300u32)
            .map(|i| {
                let bytes: Vec<u8> = (0..4096u32).map(|j| (i * 7 + j % 13) as u8).collect();
                (testing::save(&repo, BlobKind::Data, &bytes), bytes)
            })
            .collect();
        let ids: Vec<BlobId> = blobs.iter().map(|(id, _)| *id).collect();
        let browser = Arc::new(testing::browser(repo));
        let missing = BlobId([0xEE; 32]);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for window in ids.chunks(16) {
                        browser.prefetch(window).unwrap();
                    }
                    // Fails, or skips the id another thread holds; either
                    // way it lets go of what it claimed (checked below).
                    let _ = browser.prefetch(&[missing]);
                });
                scope.spawn(|| {
                    for (id, bytes) in &blobs {
                        assert_eq!(&**browser.chunk(id).unwrap(), bytes);
                    }
                    assert!(browser.chunk(&missing).is_err());
                });
            }
        });
        assert!(browser.in_flight.lock().ids.is_empty());
    }

    #[test]
    fn a_reader_learns_the_pack_it_reads_through_and_a_lying_trailer_costs_nothing() {
        use crate::format::pack::PackEntry;
        use crate::ops::compare::testing;
        use crate::repo::saver::Saver;
        let dir = tempfile::tempdir().unwrap();
        let repo = testing::repo(dir.path());
        let pages: Vec<Vec<u8>> = (0..48u32)
            .map(|i| (0..3000u32).map(|j| (i * 31 + j % 17) as u8).collect())
            .collect();
        let (ids, _) = Saver::run(&repo, |s| {
            pages.iter().map(|p| s.save(BlobKind::Data, p)).collect()
        })
        .unwrap();
        let ids: Vec<BlobId> = ids;
        let browser = testing::browser(repo);
        let pack = browser.repo().locate_blobs(&ids[..1]).unwrap()[0].pack;

        // The first window is looked up in the index, and teaches the
        // browser the pack: the next windows are located from its trailer.
        browser.prefetch(&ids[..16]).unwrap();
        assert!(browser.packs.knows(&pack));
        assert!(browser.packs.locate(&ids[16..]).iter().all(Option::is_some));
        let read = browser.chunks(&ids[..32]).unwrap();
        assert!(read.iter().zip(&pages).all(|(r, p)| **r == *p));

        // A trailer copied from elsewhere names the right blobs at the
        // wrong places: the reads still succeed, through the index, and the
        // pack is forgotten.
        browser.packs.forget(&pack);
        let entries = browser.repo().pack_entries(&pack).unwrap();
        let lying: Vec<PackEntry> = entries
            .iter()
            .zip(entries.iter().rev())
            .map(|(e, other)| PackEntry {
                offset: other.offset,
                length: other.length,
                ..*e
            })
            .collect();
        browser.packs.learn(pack, &lying);
        let read = browser.chunks(&ids[32..]).unwrap();
        assert!(read.iter().zip(&pages[32..]).all(|(r, p)| **r == *p));
        assert!(!browser.packs.knows(&pack));
    }

    #[test]
    fn entries_walk_the_pieces_in_order_and_refuse_them_out_of_order() {
        use crate::format::tree::encode_piece_list;
        use crate::ops::compare::testing;
        let dir = tempfile::tempdir().unwrap();
        let repo = testing::repo(dir.path());
        let piece = |names: &[&[u8]]| {
            let nodes = names.iter().map(|n| testing::file(n, 1, 4)).collect();
            testing::save(&repo, BlobKind::TreePiece, &testing::tree(nodes).encode())
        };
        let (low, high) = (piece(&[b"a", b"b"]), piece(&[b"m", b"n"]));
        let folder = |ids: &[BlobId]| testing::save(&repo, BlobKind::Tree, &encode_piece_list(ids));
        let (ordered, swapped) = (folder(&[low, high]), folder(&[high, low]));
        let browser = testing::browser(repo);
        let names = |id: Option<&BlobId>| -> Result<Vec<Vec<u8>>> {
            let mut entries = browser.entries(id)?;
            let mut out = Vec::new();
            while let Some(node) = entries.peek()? {
                out.push(node.name.clone());
                entries.advance();
            }
            Ok(out)
        };
        let want: Vec<Vec<u8>> = [b"a", b"b", b"m", b"n"]
            .iter()
            .map(|n| n.to_vec())
            .collect();
        assert_eq!(names(Some(&ordered)).unwrap(), want);
        assert!(names(None).unwrap().is_empty());
        let refused = names(Some(&swapped)).unwrap_err().to_string();
        assert!(refused.contains("out of name order"), "{refused}");
    }

    #[test]
    fn reads_across_holes_and_chunks_match_the_file() {
        use crate::ops::compare::testing;
        let dir = tempfile::tempdir().unwrap();
        let repo = testing::repo(dir.path());
        let a: Vec<u8> = (0..50u8).collect();
        let b: Vec<u8> = (100..120u8).collect();
        let (ia, ib) = (
            testing::save(&repo, BlobKind::Data, &a),
            testing::save(&repo, BlobKind::Data, &b),
        );
        let extents = vec![
            Extent::Hole { len: 100 },
            Extent::chunk(ia, 50),
            Extent::Hole { len: 30 },
            Extent::chunk(ib, 20),
            Extent::chunk(ia, 50),
        ];
        let whole: Vec<u8> = [vec![0; 100], a.clone(), vec![0; 30], b, a].concat();
        let browser = testing::browser(repo);
        let r =
            FileReader::open(&browser, &crate::format::content::Content::Inline(extents)).unwrap();
        for offset in [0, 1, 99, 100, 149, 150, 179, 180, 199, 200, 249, 250, 400] {
            for len in [0, 1, 7, 50, 51, 130, 1000] {
                let want = &whole[whole.len().min(offset)..whole.len().min(offset + len)];
                let got = r.read(&browser, offset as u64, len).unwrap();
                assert_eq!(got, want, "offset {offset}, len {len}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn lru_keeps_what_an_ordered_list_would(
            ops in proptest::collection::vec((0u8..3, 0u8..12, 1usize..50), 0..400)
        ) {
            let lru: Lru<u8> = Lru::new(120);
            // Oldest use first.
            let mut model: Vec<(u8, usize)> = Vec::new();
            for (op, n, cost) in ops {
                let id = BlobId([n; 32]);
                match op {
                    0 => {
                        lru.insert(id, Arc::new(n), cost);
                        model.retain(|(m, _)| *m != n);
                        model.push((n, cost));
                        while model.iter().map(|(_, c)| c).sum::<usize>() > 120 && model.len() > 1 {
                            model.remove(0);
                        }
                    }
                    1 => {
                        let got = lru.get(&id).map(|v| *v);
                        let at = model.iter().position(|(m, _)| *m == n);
                        proptest::prop_assert_eq!(got, at.map(|_| n));
                        if let Some(at) = at {
                            let e = model.remove(at);
                            model.push(e);
                        }
                    }
                    _ => {
                        let got = lru.get_many(&[id, id]);
                        let at = model.iter().position(|(m, _)| *m == n);
                        proptest::prop_assert_eq!(got[1].as_deref().copied(), at.map(|_| n));
                        if let Some(at) = at {
                            let e = model.remove(at);
                            model.push(e);
                        }
                    }
                }
                for k in 0..12u8 {
                    proptest::prop_assert_eq!(
                        lru.contains(&BlobId([k; 32])),
                        model.iter().any(|(m, _)| *m == k)
                    );
                }
                proptest::prop_assert_eq!(lru.cost(), model.iter().map(|(_, c)| c).sum::<usize>());
                proptest::prop_assert!(lru.lock().uses.len() <= 2 * model.len() + 1025);
            }
        }
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
