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
