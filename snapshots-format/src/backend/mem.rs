//! A backend that keeps objects in memory: for tests, and as the reference
//! the other backends are held to by [`super::conformance`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Backend, FileKind, ObjectName, Upload};
use crate::error::{Error, Result};

/// What the backend holds. Uploads keep an `Arc` to it, as an upload must
/// outlive the borrow of the backend that started it.
#[derive(Default)]
struct State {
    /// Objects are immutable once committed, so they are shared, not copied,
    /// by [`MemBackend::snapshot`] and by readers.
    objects: BTreeMap<(FileKind, ObjectName), Arc<Vec<u8>>>,
    /// Whether `create` was called, so a second `init` is refused even on an
    /// empty repository.
    created: bool,
}

/// Objects in a map in memory. Each commit and delete is atomic; nothing
/// survives the process.
#[derive(Default)]
pub struct MemBackend {
    state: Arc<Mutex<State>>,
}

impl MemBackend {
    /// An empty backend, not yet created.
    pub fn new() -> Self {
        Self::default()
    }

    /// An independent copy of everything committed so far: what a drive
    /// would hold if the process crashed now. Later changes to either backend
    /// do not show in the other.
    pub fn snapshot(&self) -> MemBackend {
        let state = self.lock();
        MemBackend {
            state: Arc::new(Mutex::new(State {
                objects: state.objects.clone(),
                created: state.created,
            })),
        }
    }

    /// Stores `bytes` under `name`, replacing any object there, bypassing
    /// every check: for tests that plant damaged or hostile objects.
    pub fn raw_put(&self, kind: FileKind, name: &ObjectName, bytes: &[u8]) {
        self.lock()
            .objects
            .insert((kind, name.clone()), Arc::new(bytes.to_vec()));
    }

    /// The object under `name`, bypassing every check (even the size bound).
    pub fn raw_get(&self, kind: FileKind, name: &ObjectName) -> Option<Vec<u8>> {
        self.lock()
            .objects
            .get(&(kind, name.clone()))
            .map(|o| o.to_vec())
    }

    /// Removes the object under `name` and returns it, so a test can hide an
    /// object and put it back later.
    pub fn raw_remove(&self, kind: FileKind, name: &ObjectName) -> Option<Vec<u8>> {
        self.lock()
            .objects
            .remove(&(kind, name.clone()))
            .map(|o| Arc::try_unwrap(o).unwrap_or_else(|shared| shared.to_vec()))
    }

    /// The object, refused when larger than its kind allows, as a drive's
    /// would be.
    fn get(&self, kind: FileKind, name: &ObjectName) -> Result<Option<Arc<Vec<u8>>>> {
        let Some(object) = self.lock().objects.get(&(kind, name.clone())).cloned() else {
            return Ok(None);
        };
        let len = object.len() as u64;
        if len > kind.max_len() {
            return Err(super::too_large(kind, label(kind, name), len));
        }
        Ok(Some(object))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// A panic elsewhere while holding the lock cannot leave the map half
/// changed (every change is one insert or remove), so a poisoned lock is
/// still good to use.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// How an object is named in messages.
fn label(kind: FileKind, name: &ObjectName) -> String {
    format!("memory: {} {}", kind.name(), name.short())
}

// Printing every object's bytes would bury a failing test's message.
impl fmt::Debug for MemBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemBackend")
            .field("objects", &state.objects.len())
            .field(
                "bytes",
                &state.objects.values().map(|o| o.len()).sum::<usize>(),
            )
            .field("created", &state.created)
            .finish()
    }
}

impl Backend for MemBackend {
    fn location(&self) -> String {
        "memory".to_owned()
    }

    fn create(&self) -> Result<()> {
        let mut state = self.lock();
        if state.created || !state.objects.is_empty() {
            return Err(Error::AlreadyExists(PathBuf::from("memory")));
        }
        state.created = true;
        Ok(())
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(ObjectName, u64)>> {
        // Keys sort by kind first and the empty name is the least, so the
        // kind's objects are one contiguous run, already in name order.
        let state = self.lock();
        Ok(state
            .objects
            .range((kind, ObjectName::single())..)
            .take_while(|((k, _), _)| *k == kind)
            .map(|((_, name), o)| (name.clone(), o.len() as u64))
            .collect())
    }

    fn size(&self, kind: FileKind, name: &ObjectName) -> Result<Option<u64>> {
        Ok(self
            .lock()
            .objects
            .get(&(kind, name.clone()))
            .map(|o| o.len() as u64))
    }

    fn read(&self, kind: FileKind, name: &ObjectName) -> Result<Option<Vec<u8>>> {
        Ok(self.get(kind, name)?.map(|o| o.to_vec()))
    }

    fn read_at(
        &self,
        kind: FileKind,
        name: &ObjectName,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        let object = self
            .get(kind, name)?
            .ok_or_else(|| super::missing_object(kind, name))?;
        let start = usize::try_from(offset).ok();
        let end = start.and_then(|s| s.checked_add(len));
        match (start, end) {
            (Some(start), Some(end)) if end <= object.len() => Ok(object[start..end].to_vec()),
            _ => Err(super::short_object(kind, name)),
        }
    }

    fn upload(&self, kind: FileKind) -> Result<Box<dyn Upload>> {
        Ok(Box::new(MemUpload {
            state: Arc::clone(&self.state),
            kind,
            buf: Vec::new(),
        }))
    }

    fn delete(&self, kind: FileKind, name: &ObjectName) -> Result<()> {
        self.lock().objects.remove(&(kind, name.clone()));
        Ok(())
    }
}

/// An object being written: buffered whole, so nothing shows before commit
/// and dropping it leaves no trace.
struct MemUpload {
    state: Arc<Mutex<State>>,
    kind: FileKind,
    buf: Vec<u8>,
}

impl Upload for MemUpload {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn commit(self: Box<Self>, name: &ObjectName, replace: bool) -> Result<bool> {
        let mut state = lock(&self.state);
        let key = (self.kind, name.clone());
        if !replace && state.objects.contains_key(&key) {
            return Ok(false);
        }
        state.objects.insert(key, Arc::new(self.buf));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::conformance;

    #[test]
    fn passes_the_conformance_suite() {
        conformance::run(&|| Box::new(MemBackend::new()));
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<MemBackend>();
    }

    #[test]
    fn create_refuses_a_location_with_objects() {
        let b = MemBackend::new();
        b.raw_put(FileKind::Config, &ObjectName::single(), b"x");
        assert!(matches!(b.create(), Err(Error::AlreadyExists(_))));
    }

    #[test]
    fn oversized_objects_are_refused() {
        let b = MemBackend::new();
        let name = ObjectName::single();
        let big = vec![0; FileKind::Config.max_len() as usize + 1];
        b.raw_put(FileKind::Config, &name, &big);
        assert!(matches!(
            b.read(FileKind::Config, &name),
            Err(Error::Tampered { .. })
        ));
        assert!(matches!(
            b.read_at(FileKind::Config, &name, 0, 1),
            Err(Error::Tampered { .. })
        ));
        assert_eq!(
            b.size(FileKind::Config, &name).unwrap(),
            Some(big.len() as u64)
        );
    }

    #[test]
    fn snapshot_is_independent() {
        let b = MemBackend::new();
        let name = ObjectName::key(&[1; 8]);
        b.write(FileKind::Key, &name, b"before", true).unwrap();
        let durable = b.snapshot();
        b.write(FileKind::Key, &name, b"after", true).unwrap();
        b.write(FileKind::Key, &ObjectName::key(&[2; 8]), b"new", true)
            .unwrap();
        assert_eq!(durable.raw_get(FileKind::Key, &name).unwrap(), b"before");
        assert_eq!(durable.list(FileKind::Key).unwrap().len(), 1);
        durable.raw_remove(FileKind::Key, &name);
        assert_eq!(b.raw_get(FileKind::Key, &name).unwrap(), b"after");
    }

    #[test]
    fn raw_remove_returns_the_object() {
        let b = MemBackend::new();
        let name = ObjectName::key(&[3; 8]);
        b.raw_put(FileKind::Key, &name, b"hidden");
        assert_eq!(b.raw_remove(FileKind::Key, &name).unwrap(), b"hidden");
        assert_eq!(b.read(FileKind::Key, &name).unwrap(), None);
        assert_eq!(b.raw_remove(FileKind::Key, &name), None);
    }
}
