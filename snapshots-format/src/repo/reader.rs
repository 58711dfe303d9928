//! [`ReadOnlyRepository`]: what the mount (and any other reader) may do
//! with a repository. It wraps an open [`Repository`] and exposes only its
//! reading methods, so code holding one cannot write, delete or lock by
//! mistake: the type checker refuses, not a review. (It still refreshes
//! this machine's index cache, which lives off the drive.)

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::blob::BlobKind;
use crate::format::content::{Content, Extent};
use crate::format::header::Header;
use crate::format::pack::PackEntry;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, Tree};
use crate::id::{BlobId, PackId, SnapshotId};
use crate::repo::index::Location;
use crate::repo::{Repository, SnapshotList};

/// A repository opened for reading only; cheap to clone.
#[derive(Clone)]
pub struct ReadOnlyRepository {
    repo: Arc<Repository>,
}

impl From<Repository> for ReadOnlyRepository {
    fn from(repo: Repository) -> Self {
        Self {
            repo: Arc::new(repo),
        }
    }
}

impl ReadOnlyRepository {
    /// The repository, for the library's own readers.
    pub(crate) fn inner(&self) -> &Repository {
        &self.repo
    }

    /// Reads the index files written since the last look into this
    /// machine's cache (see [`Repository::refresh_index`]); nothing is
    /// written to the repository.
    ///
    /// # Errors
    /// Listing errors.
    pub fn refresh_index(&self) -> Result<()> {
        self.repo.refresh_index()
    }

    /// The plaintext header.
    pub fn header(&self) -> &Header {
        self.repo.header()
    }

    /// Every snapshot record id; see [`Repository::list_snapshots`].
    ///
    /// # Errors
    /// Listing errors.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotId>> {
        self.repo.list_snapshots()
    }

    /// Every readable snapshot and the errors of the others; see
    /// [`Repository::snapshots`].
    ///
    /// # Errors
    /// Listing errors.
    pub fn snapshots(&self) -> Result<(SnapshotList, Vec<Error>)> {
        self.repo.snapshots()
    }

    /// One snapshot record.
    ///
    /// # Errors
    /// A missing or damaged record.
    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        self.repo.load_snapshot(id)
    }

    /// A tree, its pieces joined.
    ///
    /// # Errors
    /// A missing or damaged tree.
    pub fn load_tree(&self, id: &BlobId) -> Result<Tree> {
        self.repo.load_tree(id)
    }

    /// A file's extent list.
    ///
    /// # Errors
    /// A missing or damaged chunk list.
    pub fn load_extents(&self, content: &Content) -> Result<Vec<Extent>> {
        self.repo.load_extents(content)
    }

    /// One blob, verified.
    ///
    /// # Errors
    /// See [`Repository::load_blob`].
    pub fn load_blob(&self, kind: BlobKind, id: &BlobId) -> Result<Vec<u8>> {
        self.repo.load_blob(kind, id)
    }

    /// Several blobs of one kind, verified; see [`Repository::load_blobs`].
    ///
    /// # Errors
    /// See [`Repository::load_blobs`].
    pub fn load_blobs(
        &self,
        kind: BlobKind,
        ids: &[BlobId],
        each: impl FnMut(usize, Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.repo.load_blobs(kind, ids, each)
    }

    /// Where each of `ids` is, from the index; see
    /// [`Repository::locate_blobs`].
    ///
    /// # Errors
    /// See [`Repository::locate_blobs`].
    pub fn locate_blobs(&self, ids: &[BlobId]) -> Result<Vec<Location>> {
        self.repo.locate_blobs(ids)
    }

    /// Several blobs at locations already known; see
    /// [`Repository::load_located`].
    ///
    /// # Errors
    /// See [`Repository::load_located`].
    pub fn load_located(
        &self,
        kind: BlobKind,
        ids: &[BlobId],
        locs: &[Location],
        each: impl FnMut(usize, Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.repo.load_located(kind, ids, locs, each)
    }

    /// What a pack's trailer lists; see [`Repository::pack_entries`].
    ///
    /// # Errors
    /// See [`Repository::pack_entries`].
    pub fn pack_entries(&self, pack: &PackId) -> Result<Vec<PackEntry>> {
        self.repo.pack_entries(pack)
    }

    /// The node at `path` below `root`; see [`Repository::find_path`].
    ///
    /// # Errors
    /// [`Error::PathNotFound`].
    pub fn find_path(&self, root: &BlobId, path: &[u8]) -> Result<(BlobId, Option<Node>)> {
        self.repo.find_path(root, path)
    }
}
