//! A backend wrapper that behaves like a store under an append-only key
//! (S3 Object Lock, or a bucket policy granting the backup host no
//! delete): objects may be added, never deleted or overwritten, except
//! locks, which every command removes when it ends. It proves that
//! `snapshot` and `copy` need nothing more, and that `forget`/`prune`
//! stop cleanly, saying they need a full key.

use std::fmt;
use std::sync::Arc;

use super::{Backend, FileKind, ObjectName, Upload};
use crate::error::{Error, Result, StoreProblem};

/// See the module documentation.
pub struct AppendOnlyBackend {
    inner: Arc<dyn Backend>,
}

impl AppendOnlyBackend {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Self { inner }
    }

    fn denied(&self, doing: String) -> Error {
        Error::Store {
            location: self.inner.location(),
            problem: StoreProblem::Denied {
                doing,
                detail: "append-only key".into(),
            },
        }
    }
}

impl fmt::Debug for AppendOnlyBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppendOnlyBackend({:?})", self.inner)
    }
}

/// Locks come and go; the header may be rewritten once when the format is
/// raised (a new version of it under Object Lock, the old one kept).
fn may_replace(kind: FileKind) -> bool {
    matches!(kind, FileKind::Lock | FileKind::Config)
}

struct Guarded {
    inner: Box<dyn Upload>,
    kind: FileKind,
    backend: Arc<dyn Backend>,
    location: String,
}

impl Upload for Guarded {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner.write(bytes)
    }

    fn commit(self: Box<Self>, name: &ObjectName, replace: bool) -> Result<bool> {
        if replace && !may_replace(self.kind) && self.backend.size(self.kind, name)?.is_some() {
            return Err(Error::Store {
                location: self.location,
                problem: StoreProblem::Denied {
                    doing: format!("overwriting {} {}", self.kind.name(), name.short()),
                    detail: "append-only key".into(),
                },
            });
        }
        self.inner.commit(name, replace)
    }
}

impl Backend for AppendOnlyBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn list(&self, kind: FileKind) -> Result<Vec<(ObjectName, u64)>> {
        self.inner.list(kind)
    }
    fn size(&self, kind: FileKind, name: &ObjectName) -> Result<Option<u64>> {
        self.inner.size(kind, name)
    }
    fn read(&self, kind: FileKind, name: &ObjectName) -> Result<Option<Vec<u8>>> {
        self.inner.read(kind, name)
    }
    fn read_at(
        &self,
        kind: FileKind,
        name: &ObjectName,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        self.inner.read_at(kind, name, offset, len)
    }
    fn upload(&self, kind: FileKind) -> Result<Box<dyn Upload>> {
        Ok(Box::new(Guarded {
            inner: self.inner.upload(kind)?,
            kind,
            backend: self.inner.clone(),
            location: self.inner.location(),
        }))
    }
    fn delete(&self, kind: FileKind, name: &ObjectName) -> Result<()> {
        if kind == FileKind::Lock {
            return self.inner.delete(kind, name);
        }
        Err(self.denied(format!("deleting {} {}", kind.name(), name.short())))
    }
    fn exclusive_create(&self) -> bool {
        self.inner.exclusive_create()
    }
    fn free_space(&self) -> Option<u64> {
        self.inner.free_space()
    }
    fn remove_leftovers(&self) -> Result<usize> {
        self.inner.remove_leftovers()
    }
}
