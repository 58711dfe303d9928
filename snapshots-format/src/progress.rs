//! How long-running engines report what they are doing. The engines never
//! print; the CLI implements this trait with a progress bar, or not at all.

/// Receives progress of a long operation. All methods default to doing nothing.
pub trait Progress: Sync {
    /// The total amount of work, once known (it may arrive after work started).
    fn set_total(&self, _files: u64, _bytes: u64) {}
    /// Some files and bytes were processed.
    fn advance(&self, _files: u64, _bytes: u64) {}
    /// Something worth telling the user that does not stop the operation.
    fn warn(&self, _message: &str) {}
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {}

/// A [`Progress`] that passes everything on and counts the bytes processed,
/// so that an operation that fails can tell how far it went.
pub(crate) struct Counting<'a> {
    inner: &'a dyn Progress,
    bytes: std::sync::atomic::AtomicU64,
}

impl<'a> Counting<'a> {
    pub(crate) fn new(inner: &'a dyn Progress) -> Self {
        Counting {
            inner,
            bytes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Bytes processed so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Progress for Counting<'_> {
    fn set_total(&self, files: u64, bytes: u64) {
        self.inner.set_total(files, bytes);
    }
    fn advance(&self, files: u64, bytes: u64) {
        self.bytes
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        self.inner.advance(files, bytes);
    }
    fn warn(&self, message: &str) {
        self.inner.warn(message);
    }
}
