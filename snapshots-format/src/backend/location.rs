//! Where a repository is, as the administrator names it: a folder on a
//! drive, or `s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]`.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::s3::{BadLocation, S3Backend, S3Location, S3Options};
use super::{Backend, LocalBackend};
use crate::error::Result;

/// A repository's place, before it is opened.
#[derive(Debug, Clone)]
pub enum Location {
    /// A folder (on a drive).
    Local(PathBuf),
    /// A prefix of a bucket, with how to talk to the store.
    S3(Box<(S3Location, S3Options)>),
}

impl Location {
    /// Reads what the administrator wrote: an `s3:` address, else a path.
    ///
    /// # Errors
    /// [`BadLocation`] for an `s3:` address that is not well formed.
    pub fn parse(arg: &OsStr) -> Result<Self, BadLocation> {
        match arg.to_str() {
            Some(s) if S3Location::is_s3(s) => Ok(Location::S3(Box::new((
                S3Location::parse(s)?,
                S3Options::default(),
            )))),
            _ => Ok(Location::Local(PathBuf::from(arg))),
        }
    }

    /// The folder, for a local repository.
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::S3(_) => None,
        }
    }

    /// Opens the backend of an existing repository.
    ///
    /// # Errors
    /// [`crate::error::Error::RepositoryMissing`] for a missing folder; missing
    /// S3 credentials.
    pub fn open(&self) -> Result<Arc<dyn Backend>> {
        Ok(match self {
            Location::Local(p) => Arc::new(LocalBackend::open(p)?),
            Location::S3(s3) => Arc::new(S3Backend::open(s3.0.clone(), s3.1.clone())?),
        })
    }

    /// Opens the backend for `init`, making a missing folder.
    ///
    /// # Errors
    /// As [`Location::open`].
    pub fn open_for_init(&self) -> Result<Arc<dyn Backend>> {
        Ok(match self {
            Location::Local(p) => Arc::new(LocalBackend::open_for_init(p)?),
            Location::S3(s3) => Arc::new(S3Backend::open(s3.0.clone(), s3.1.clone())?),
        })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3(s3) => write!(f, "{}", s3.0),
        }
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Self {
        Location::Local(p.to_path_buf())
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Self {
        Location::Local(p)
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Self {
        Location::Local(p.clone())
    }
}

impl From<&Location> for Location {
    fn from(l: &Location) -> Self {
        l.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_addresses_and_paths() {
        let l = Location::parse(OsStr::new("s3:http://127.0.0.1:3900/coffre/p")).unwrap();
        assert!(matches!(&l, Location::S3(s3) if s3.0.bucket == "coffre"));
        assert_eq!(l.to_string(), "s3:http://127.0.0.1:3900/coffre/p");
        let l = Location::parse(OsStr::new("/media/lundi/coffre")).unwrap();
        assert_eq!(l.local_path(), Some(Path::new("/media/lundi/coffre")));
        assert!(Location::parse(OsStr::new("s3:http://h/")).is_err());
    }
}
