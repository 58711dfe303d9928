//! A backend wrapper that injects faults: failed writes, a crash, a full
//! drive, damaged or short reads, passing failures. Tests use it to show
//! that the repository survives what real drives and networks do.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{Backend, FileKind, ObjectName, Upload};
use crate::error::{Error, Result};

/// The faults to inject. Mutating operations (an upload's commit, a delete)
/// and reads are counted from the wrapper's construction or the last
/// [`FaultyBackend::set_plan`]. The default injects nothing.
#[derive(Debug, Default, Clone)]
pub struct FaultPlan {
    /// The Nth mutating operation (1-based) fails with an I/O error and is
    /// not applied; the ones after it succeed.
    pub fail_write_at: Option<u64>,
    /// From the Nth mutating operation (1-based) on, every mutating
    /// operation, every upload write and every new upload fails and nothing
    /// is applied: a crash or an unplugged drive. Reads keep working, so a
    /// test sees what was durable before.
    pub crash_at: Option<u64>,
    /// Bytes that uploads may still write, all together; a write past that
    /// fails with [`Error::DriveFull`] and appends nothing.
    pub space: Option<u64>,
    /// Every `read` and `read_at` of this kind returns its bytes with one
    /// bit flipped, in the middle byte.
    pub flip_on_read: Option<FileKind>,
    /// Every `read` of this kind returns only the first half of the object,
    /// and `read_at` past that half fails as a short object. Sizes and
    /// listings still tell the whole length, as a damaged file system may.
    pub truncate_on_read: Option<FileKind>,
    /// The first N reads (`read` or `read_at`) fail with
    /// [`Error::Transient`].
    pub transient_reads: u64,
    /// `(N, M)`: the Nth mutating operation is cut as a power cut leaves
    /// it on a drive that does not honour flushes: an upload's commit
    /// stores only its first `M` bytes (at most all but one) under its
    /// final name, a delete is not applied; then, as with `crash_at`,
    /// everything fails.
    pub torn_write_at: Option<(u64, u64)>,
}

/// The plan and what it has counted, shared with uploads (which outlive
/// the borrow of the backend that started them).
#[derive(Debug, Default)]
struct State {
    plan: FaultPlan,
    /// Mutating operations attempted.
    writes: u64,
    /// Reads attempted.
    reads: u64,
    /// Bytes accepted by upload writes.
    written: u64,
    /// The torn write happened: the drive is gone.
    torn: bool,
}

impl State {
    /// Fresh counts for `plan`.
    fn counting(plan: FaultPlan) -> Self {
        State {
            plan,
            ..State::default()
        }
    }

    /// Fails once the crash has happened: nothing reaches the drive after.
    fn alive(&self) -> Result<()> {
        if self.torn {
            return Err(crash());
        }
        match self.plan.crash_at {
            Some(at) if self.writes >= at => Err(crash()),
            _ => Ok(()),
        }
    }

    /// Counts a mutating operation and says whether it may go ahead, and
    /// whether it is the torn one (`Some(bytes kept)`; the drive is then
    /// gone for everything after).
    fn mutation(&mut self) -> Result<Option<u64>> {
        self.writes += 1;
        self.alive()?;
        if self.plan.fail_write_at == Some(self.writes) {
            return Err(injected("injected write failure"));
        }
        match self.plan.torn_write_at {
            Some((at, keep)) if at == self.writes => {
                self.torn = true;
                Ok(Some(keep))
            }
            _ => Ok(None),
        }
    }

    /// Counts a read and says whether it may go ahead; returns the plan so
    /// the caller can damage what it reads without holding the lock.
    fn read(&mut self) -> Result<FaultPlan> {
        self.reads += 1;
        if self.reads <= self.plan.transient_reads {
            return Err(Error::Transient("injected".to_owned()));
        }
        Ok(self.plan.clone())
    }

    /// Takes `len` bytes from the space left, if there are that many.
    fn reserve(&mut self, len: u64) -> Result<()> {
        self.alive()?;
        let total = self.written.saturating_add(len);
        if self.plan.space.is_some_and(|space| total > space) {
            let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
            return Err(Error::io("fault", full));
        }
        self.written = total;
        Ok(())
    }
}

fn injected(what: &str) -> Error {
    Error::io("fault", std::io::Error::other(what))
}

fn crash() -> Error {
    injected("injected crash: the drive is gone")
}

/// A poisoned lock only means a test panicked elsewhere; the counters are
/// plain numbers and still consistent.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wraps a backend and injects the faults of a [`FaultPlan`]. Everything
/// not faulted is passed through unchanged.
#[derive(Debug)]
pub struct FaultyBackend<B: Backend> {
    inner: B,
    state: Arc<Mutex<State>>,
}

impl<B: Backend> FaultyBackend<B> {
    /// Wraps `inner` with the faults of `plan`.
    pub fn new(inner: B, plan: FaultPlan) -> Self {
        Self {
            inner,
            state: Arc::new(Mutex::new(State::counting(plan))),
        }
    }

    /// Mutating operations attempted since the plan was set, failed ones
    /// included.
    pub fn writes(&self) -> u64 {
        lock(&self.state).writes
    }

    /// The wrapped backend, to look at what was really written.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Replaces the plan and starts every count over, so positions in the
    /// new plan count from now (set up a repository fault-free, then crash
    /// at the next write with `crash_at: Some(1)`).
    pub fn set_plan(&self, plan: FaultPlan) {
        *lock(&self.state) = State::counting(plan);
    }
}

/// Flips the lowest bit of the middle byte.
fn flip(bytes: &mut [u8]) {
    let middle = bytes.len() / 2;
    if let Some(b) = bytes.get_mut(middle) {
        *b ^= 1;
    }
}

impl<B: Backend> Backend for FaultyBackend<B> {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        lock(&self.state).alive()?;
        self.inner.create()
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(ObjectName, u64)>> {
        self.inner.list(kind)
    }

    fn size(&self, kind: FileKind, name: &ObjectName) -> Result<Option<u64>> {
        self.inner.size(kind, name)
    }

    fn read(&self, kind: FileKind, name: &ObjectName) -> Result<Option<Vec<u8>>> {
        let plan = lock(&self.state).read()?;
        let Some(mut bytes) = self.inner.read(kind, name)? else {
            return Ok(None);
        };
        if plan.truncate_on_read == Some(kind) {
            bytes.truncate(bytes.len() / 2);
        }
        if plan.flip_on_read == Some(kind) {
            flip(&mut bytes);
        }
        Ok(Some(bytes))
    }

    fn read_at(
        &self,
        kind: FileKind,
        name: &ObjectName,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        let plan = lock(&self.state).read()?;
        if plan.truncate_on_read == Some(kind) {
            let size = self
                .inner
                .size(kind, name)?
                .ok_or_else(|| super::missing_object(kind, name))?;
            let end = offset.checked_add(len as u64);
            if end.is_none_or(|end| end > size / 2) {
                return Err(super::short_object(kind, name));
            }
        }
        let mut bytes = self.inner.read_at(kind, name, offset, len)?;
        if plan.flip_on_read == Some(kind) {
            flip(&mut bytes);
        }
        Ok(bytes)
    }

    fn upload(&self, kind: FileKind) -> Result<Box<dyn Upload>> {
        // A gone drive cannot even start a file.
        let state = lock(&self.state);
        state.alive()?;
        // With a torn write planned, bytes are held until the commit, which
        // may then store only part of them.
        let held = state.plan.torn_write_at.map(|_| Vec::new());
        drop(state);
        Ok(Box::new(FaultyUpload {
            inner: self.inner.upload(kind)?,
            state: Arc::clone(&self.state),
            held,
        }))
    }

    fn delete(&self, kind: FileKind, name: &ObjectName) -> Result<()> {
        if lock(&self.state).mutation()?.is_some() {
            return Err(crash());
        }
        self.inner.delete(kind, name)
    }

    fn free_space(&self) -> Option<u64> {
        let state = lock(&self.state);
        match state.plan.space {
            Some(space) => Some(space.saturating_sub(state.written)),
            None => self.inner.free_space(),
        }
    }

    fn remove_leftovers(&self) -> Result<usize> {
        lock(&self.state).alive()?;
        self.inner.remove_leftovers()
    }
}

/// An upload of the wrapped backend, counted and refused by the plan.
/// A refused write appends nothing; a caller that commits anyway gets the
/// object without those bytes, as on a real drive, so the bug shows.
struct FaultyUpload {
    inner: Box<dyn Upload>,
    state: Arc<Mutex<State>>,
    /// Bytes not yet passed on, when a torn write is planned.
    held: Option<Vec<u8>>,
}

impl Upload for FaultyUpload {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        lock(&self.state).reserve(bytes.len() as u64)?;
        match &mut self.held {
            Some(held) => {
                held.extend_from_slice(bytes);
                Ok(())
            }
            None => self.inner.write(bytes),
        }
    }

    fn commit(mut self: Box<Self>, name: &ObjectName, replace: bool) -> Result<bool> {
        let torn = lock(&self.state).mutation()?;
        let held = self.held.take().unwrap_or_default();
        match torn {
            Some(keep) => {
                let keep = usize::try_from(keep)
                    .unwrap_or(usize::MAX)
                    .min(held.len().saturating_sub(1));
                self.inner.write(&held[..keep])?;
                self.inner.commit(name, replace)?;
                Err(crash())
            }
            None => {
                self.inner.write(&held)?;
                self.inner.commit(name, replace)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::conformance::{self, name};
    use crate::backend::MemBackend;
    use FileKind::{Key, Pack};

    /// A faulty in-memory backend with the plan `set` makes.
    fn faulty(set: impl FnOnce(&mut FaultPlan)) -> FaultyBackend<MemBackend> {
        let mut plan = FaultPlan::default();
        set(&mut plan);
        FaultyBackend::new(MemBackend::new(), plan)
    }

    #[test]
    fn passes_the_conformance_suite_without_faults() {
        fn shareable<T: Send + Sync>() {}
        shareable::<FaultyBackend<MemBackend>>();
        conformance::run(&|| Box::new(faulty(|_| ())));
    }

    #[test]
    fn fail_write_at_fails_only_that_operation() {
        let b = faulty(|p| p.fail_write_at = Some(2));
        assert!(b.write(Key, &name(Key, 1), b"one", false).unwrap());
        let e = b.write(Key, &name(Key, 2), b"two", false).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        assert_eq!(b.inner().raw_get(Key, &name(Key, 2)), None);
        assert!(b.write(Key, &name(Key, 3), b"three", false).unwrap());
        assert_eq!(b.writes(), 3);
        // Counts start over with a new plan; deletes count too, and a failed
        // one keeps the object.
        b.set_plan(FaultPlan {
            fail_write_at: Some(1),
            ..FaultPlan::default()
        });
        assert_eq!(b.writes(), 0);
        assert!(b.delete(Key, &name(Key, 1)).is_err());
        assert_eq!(b.read(Key, &name(Key, 1)).unwrap().unwrap(), b"one");
        b.delete(Key, &name(Key, 1)).unwrap();
        assert_eq!(b.read(Key, &name(Key, 1)).unwrap(), None);
    }

    #[test]
    fn crash_at_stops_every_later_mutation() {
        let b = faulty(|p| p.crash_at = Some(2));
        assert!(b.write(Key, &name(Key, 1), b"durable", false).unwrap());
        let mut started = b.upload(Key).unwrap();
        started.write(b"before the crash").unwrap();
        assert!(b.write(Key, &name(Key, 2), b"lost", false).is_err());
        assert!(started.write(b"after").is_err());
        assert!(started.commit(&name(Key, 3), false).is_err());
        assert!(b.delete(Key, &name(Key, 1)).is_err());
        assert!(b.upload(Key).is_err());
        assert!(b.remove_leftovers().is_err());
        assert_eq!(b.writes(), 4);
        // Only what was durable before remains, and reads still work.
        let listed: Vec<_> = b.list(Key).unwrap();
        assert_eq!(listed, vec![(name(Key, 1), 7)]);
        assert_eq!(b.read(Key, &name(Key, 1)).unwrap().unwrap(), b"durable");
    }

    #[test]
    fn torn_write_keeps_a_prefix_then_the_drive_is_gone() {
        let b = faulty(|p| p.torn_write_at = Some((2, 3)));
        assert!(b.write(Key, &name(Key, 1), b"whole", false).unwrap());
        let e = b
            .write(Key, &name(Key, 2), b"cut short", false)
            .unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        assert_eq!(b.inner().raw_get(Key, &name(Key, 2)).unwrap(), b"cut");
        assert!(b.write(Key, &name(Key, 3), b"after", false).is_err());
        assert!(b.delete(Key, &name(Key, 1)).is_err());
        assert!(b.upload(Key).is_err());
        assert_eq!(b.read(Key, &name(Key, 1)).unwrap().unwrap(), b"whole");
        // A keep past the end still cuts the last byte; a torn delete is
        // not applied.
        let b = faulty(|p| p.torn_write_at = Some((1, 99)));
        assert!(b.write(Key, &name(Key, 1), b"four", false).is_err());
        assert_eq!(b.inner().raw_get(Key, &name(Key, 1)).unwrap(), b"fou");
        let b = faulty(|p| p.torn_write_at = Some((2, 0)));
        b.write(Key, &name(Key, 1), b"kept", false).unwrap();
        assert!(b.delete(Key, &name(Key, 1)).is_err());
        assert_eq!(b.inner().raw_get(Key, &name(Key, 1)).unwrap(), b"kept");
    }

    #[test]
    fn space_runs_out_with_drive_full() {
        let b = faulty(|p| p.space = Some(10));
        assert!(b.write(Key, &name(Key, 1), &[1; 6], false).unwrap());
        let mut up = b.upload(Key).unwrap();
        up.write(&[2; 4]).unwrap();
        let e = up.write(&[2; 1]).unwrap_err();
        assert!(e.is_drive_full(), "{e:?}");
        let e = b.write(Key, &name(Key, 2), &[3; 1], false).unwrap_err();
        assert!(e.is_drive_full(), "{e:?}");
        assert_eq!(b.list(Key).unwrap(), vec![(name(Key, 1), 6)]);
    }

    #[test]
    fn flip_on_read_damages_one_bit_of_that_kind() {
        let b = faulty(|p| p.flip_on_read = Some(Pack));
        let data: Vec<u8> = (0..100).collect();
        b.write(Pack, &name(Pack, 1), &data, false).unwrap();
        b.write(Key, &name(Key, 1), &data, false).unwrap();
        let read = b.read(Pack, &name(Pack, 1)).unwrap().unwrap();
        let diff: Vec<_> = (0..100).filter(|&i| read[i] != data[i]).collect();
        assert_eq!(diff, vec![50]);
        assert_eq!((read[50] ^ data[50]).count_ones(), 1);
        let part = b.read_at(Pack, &name(Pack, 1), 10, 10).unwrap();
        assert_ne!(part, data[10..20]);
        assert_eq!(part[..5], data[10..15]);
        assert_eq!(b.read(Key, &name(Key, 1)).unwrap().unwrap(), data);
        assert_eq!(b.inner().raw_get(Pack, &name(Pack, 1)).unwrap(), data);
    }

    #[test]
    fn truncate_on_read_returns_half() {
        let b = faulty(|p| p.truncate_on_read = Some(Pack));
        let data: Vec<u8> = (0..100).collect();
        b.write(Pack, &name(Pack, 1), &data, false).unwrap();
        let read = b.read(Pack, &name(Pack, 1)).unwrap().unwrap();
        assert_eq!(read, data[..50]);
        assert_eq!(
            b.read_at(Pack, &name(Pack, 1), 40, 10).unwrap(),
            data[40..50]
        );
        let e = b.read_at(Pack, &name(Pack, 1), 45, 10).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
        let e = b.read_at(Pack, &name(Pack, 2), 0, 1).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    }

    #[test]
    fn transient_reads_fail_first_then_succeed() {
        let b = faulty(|p| p.transient_reads = 2);
        b.write(Key, &name(Key, 1), b"k", false).unwrap();
        let e = b.read(Key, &name(Key, 1)).unwrap_err();
        assert!(e.is_transient(), "{e:?}");
        let e = b.read_at(Key, &name(Key, 1), 0, 1).unwrap_err();
        assert!(matches!(e, Error::Transient(_)), "{e:?}");
        assert_eq!(b.read(Key, &name(Key, 1)).unwrap().unwrap(), b"k");
        assert_eq!(b.read_at(Key, &name(Key, 1), 0, 1).unwrap(), b"k");
    }
}
