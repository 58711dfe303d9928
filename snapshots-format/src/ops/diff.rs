//! `diff`: what changed between two snapshots, from their trees alone.
//! Folders with the same tree id hold the same entries and are skipped
//! without being read, so two daily snapshots cost the folders that
//! changed, whatever the size of the rest.

use crate::error::{Error, Result};
use crate::format::tree::{Node, MAX_DEPTH};
use crate::id::BlobId;
use crate::ops::compare::{compare, subtree, Change};
use crate::ops::paths::{join, normalize, Lookup};
use crate::repo::browse::Browser;

/// What happened to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Only in the newer snapshot (`+`).
    Added,
    /// Only in the older snapshot (`-`).
    Removed,
    /// Other contents (`M`).
    Changed,
    /// Same contents, other mode, owner, times or attributes (`m`).
    Metadata,
    /// Another kind of entry, e.g. a file became a folder (`T`).
    Type,
}

impl Kind {
    /// The one-character mark shown before the path.
    pub fn mark(self) -> char {
        match self {
            Kind::Added => '+',
            Kind::Removed => '-',
            Kind::Changed => 'M',
            Kind::Metadata => 'm',
            Kind::Type => 'T',
        }
    }
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What happened.
    pub kind: Kind,
    /// The path from the snapshot's root.
    pub path: Vec<u8>,
    /// The entry in the older snapshot, if there.
    pub old: Option<Node>,
    /// The entry in the newer snapshot, if there.
    pub new: Option<Node>,
}

/// How many paths of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// `+` entries.
    pub added: u64,
    /// `-` entries.
    pub removed: u64,
    /// `M` entries.
    pub changed: u64,
    /// `m` entries.
    pub metadata: u64,
    /// `T` entries.
    pub type_changed: u64,
}

/// The differences, in path order, and their counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Every changed path (a folder added or removed is listed with all it holds).
    pub entries: Vec<Entry>,
    /// The counts.
    pub counts: Counts,
}

impl Diff {
    fn push(&mut self, kind: Kind, path: Vec<u8>, old: Option<&Node>, new: Option<&Node>) {
        let count = match kind {
            Kind::Added => &mut self.counts.added,
            Kind::Removed => &mut self.counts.removed,
            Kind::Changed => &mut self.counts.changed,
            Kind::Metadata => &mut self.counts.metadata,
            Kind::Type => &mut self.counts.type_changed,
        };
        *count += 1;
        self.entries.push(Entry {
            kind,
            path,
            old: old.cloned(),
            new: new.cloned(),
        });
    }
}

/// The differences between the trees `old` and `new` (snapshot roots),
/// restricted to `path` inside them when it is not empty.
///
/// # Errors
/// [`Error::BadPath`] for a path with `.` or `..`,
/// [`Error::PathInNoSnapshot`] when neither snapshot holds `path`, and the
/// errors of reading a tree.
pub fn diff(browser: &Browser, old: &BlobId, new: &BlobId, path: &[u8]) -> Result<Diff> {
    let mut walk = Walk {
        browser,
        out: Diff::default(),
    };
    let path = normalize(path);
    if path.is_empty() {
        walk.folders(&path, Some(*old), Some(*new), 0)?;
        return Ok(walk.out);
    }
    let mut lookup = Lookup::new(&path)?;
    let before = lookup.find(browser, old)?;
    let after = lookup.find(browser, new)?;
    if before.is_none() && after.is_none() {
        return Err(Error::PathInNoSnapshot(
            String::from_utf8_lossy(&path).into_owned(),
        ));
    }
    walk.pair(path, before.as_ref(), after.as_ref(), 0)?;
    Ok(walk.out)
}

struct Walk<'a> {
    browser: &'a Browser,
    out: Diff,
}

impl Walk<'_> {
    /// Compares the folders `old` and `new` at `path` (either may be missing).
    fn folders(
        &mut self,
        path: &[u8],
        old: Option<BlobId>,
        new: Option<BlobId>,
        depth: usize,
    ) -> Result<()> {
        if old == new {
            return Ok(());
        }
        if depth > MAX_DEPTH {
            let id = new.or(old).map(|id| id.short()).unwrap_or_default();
            return Err(Error::corrupt("tree", id, "folders nested too deep"));
        }
        let browser = self.browser;
        let (mut old, mut new) = (
            browser.entries(old.as_ref())?,
            browser.entries(new.as_ref())?,
        );
        // Both listings are sorted by name: walk them side by side.
        loop {
            let (a, b) = (old.peek()?, new.peek()?);
            let order = match (a, b) {
                (None, None) => break,
                (Some(a), Some(b)) => a.name.cmp(&b.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
            };
            let (a, b) = match order {
                std::cmp::Ordering::Less => (a, None),
                std::cmp::Ordering::Greater => (None, b),
                std::cmp::Ordering::Equal => (a, b),
            };
            let (took_a, took_b) = (a.is_some(), b.is_some());
            let name = a.or(b).map(|n| n.name.as_slice()).unwrap_or_default();
            self.pair(join(path, name), a, b, depth + 1)?;
            if took_a {
                old.advance();
            }
            if took_b {
                new.advance();
            }
        }
        Ok(())
    }

    /// Compares two versions of one path (either may be missing).
    fn pair(
        &mut self,
        path: Vec<u8>,
        old: Option<&Node>,
        new: Option<&Node>,
        depth: usize,
    ) -> Result<()> {
        let (old_tree, new_tree) = (old.and_then(subtree), new.and_then(subtree));
        match (old, new) {
            (Some(a), Some(b)) => match compare(a, b) {
                Change::Unchanged => {}
                Change::Metadata => self.out.push(Kind::Metadata, path.clone(), old, new),
                Change::Type => self.out.push(Kind::Type, path.clone(), old, new),
                // A folder's contents are the changes listed below it.
                Change::Content if new_tree.is_some() => {}
                Change::Content => self.out.push(Kind::Changed, path.clone(), old, new),
            },
            (Some(_), None) => self.out.push(Kind::Removed, path.clone(), old, None),
            (None, Some(_)) => self.out.push(Kind::Added, path.clone(), None, new),
            (None, None) => {}
        }
        if old_tree.is_some() || new_tree.is_some() {
            self.folders(&path, old_tree, new_tree, depth)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::compare::testing::*;

    /// Two hand-built days: a file changed, one renamed (removed + added),
    /// one chmod'ed, a file that became a folder, a folder added with its
    /// contents, and an unchanged folder (skipped by its tree id).
    #[test]
    fn diff_of_two_hand_built_trees() {
        let cache = tempfile::tempdir().unwrap();
        let repo = repo(cache.path());
        let unchanged = save_tree(&repo, vec![file(b"a", 1, 1)]);
        let mut chmod = file(b"caf\xe9.txt", 3, 3);
        chmod.mode = 0o600;
        let old_db = save_tree(
            &repo,
            vec![file(b"officine.fdb", 1, 10), file(b"caf\xe9.txt", 3, 3)],
        );
        let new_db = save_tree(&repo, vec![file(b"officine.fdb", 2, 10), chmod]);
        let inner = save_tree(&repo, vec![file(b"x", 4, 4)]);
        let old_root = save_tree(
            &repo,
            vec![
                dir(b"db", old_db),
                dir(b"same", unchanged),
                file(b"old-name.pdf", 5, 5),
                file(b"becomes-dir", 6, 6),
            ],
        );
        let new_root = save_tree(
            &repo,
            vec![
                dir(b"db", new_db),
                dir(b"same", unchanged),
                file(b"new-name.pdf", 5, 5),
                dir(b"becomes-dir", inner),
                dir(b"scans", inner),
            ],
        );
        let browser = browser(repo);
        let d = diff(&browser, &old_root, &new_root, b"").unwrap();
        let lines: Vec<String> = d
            .entries
            .iter()
            .map(|e| format!("{} {}", e.kind.mark(), String::from_utf8_lossy(&e.path)))
            .collect();
        assert_eq!(
            lines,
            [
                "T becomes-dir",
                "+ becomes-dir/x",
                "m db/caf\u{fffd}.txt",
                "M db/officine.fdb",
                "+ new-name.pdf",
                "- old-name.pdf",
                "+ scans",
                "+ scans/x",
            ]
        );
        assert_eq!(d.entries[2].path, b"db/caf\xe9.txt", "names stay bytes");
        assert_eq!(
            d.counts,
            Counts {
                added: 4,
                removed: 1,
                changed: 1,
                metadata: 1,
                type_changed: 1
            }
        );
        let only_db = diff(&browser, &old_root, &new_root, b"/db/").unwrap();
        assert_eq!(only_db.entries.len(), 2);
        let one_file = diff(&browser, &old_root, &new_root, b"db/officine.fdb").unwrap();
        assert_eq!(one_file.counts.changed, 1);
        assert!(diff(&browser, &old_root, &old_root, b"")
            .unwrap()
            .entries
            .is_empty());
        assert!(matches!(
            diff(&browser, &old_root, &new_root, b"nowhere"),
            Err(Error::PathInNoSnapshot(_))
        ));
    }
}
