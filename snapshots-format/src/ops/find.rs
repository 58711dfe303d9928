//! `find`: which snapshots hold paths matching a pattern. Patterns are
//! the exclude patterns of `snapshot` (one matcher for both, see
//! [`crate::source::exclude`]): without `/` a name at any depth, with `/`
//! a path from the snapshot's root, a trailing `/` for folders only.
//!
//! Only trees are read. A folder already walked at the same path with the
//! same tree id holds the same matches, so its answer is reused: a year of
//! daily snapshots costs the folders that changed, plus one step per match.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, MAX_DEPTH};
use crate::id::{BlobId, SnapshotId};
use crate::limits::{MAX_FIND_MATCHES, MAX_FIND_MEMO};
use crate::ops::compare::{compare, subtree, Change};
use crate::ops::paths::{by_time, join, SnapshotRef};
use crate::repo::browse::Browser;
use crate::source::exclude::Excludes;

/// A search pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    matcher: Excludes,
    ignore_case: bool,
}

impl Pattern {
    /// Parses `text`. A pattern without `*`, `?` or `[` matches the names
    /// (or paths) that contain it; a leading `/` anchors it at the
    /// snapshot's root. With `ignore_case`, letters match either case
    /// (accented ones too: `É` finds `é`).
    ///
    /// # Errors
    /// [`Error::BadPattern`] for an empty or malformed pattern.
    pub fn new(text: &str, ignore_case: bool) -> Result<Self> {
        let bad = |reason: String| Error::BadPattern {
            pattern: text.to_string(),
            reason,
        };
        let folders_only = text.ends_with('/');
        let anchored = text.starts_with('/');
        let mut body = text.trim_matches('/').to_string();
        if body.is_empty() {
            return Err(bad("empty pattern".into()));
        }
        // A name without wildcards is looked for inside names: a
        // pharmacist types part of a patient's name, not a glob.
        if !anchored && !body.contains(['/', '*', '?', '[']) {
            body = format!("*{body}*");
        }
        if ignore_case {
            body = body.to_lowercase();
        }
        // A leading '/' makes the exclude matcher take the pattern for an
        // absolute path: `matches` gives it the path from the root with a
        // leading '/', which is what it means here.
        if anchored {
            body.insert(0, '/');
        }
        if folders_only {
            body.push('/');
        }
        let mut matcher = Excludes::new();
        matcher.add_pattern(&body).map_err(|e| match e {
            Error::BadExclude { reason, .. } => bad(reason),
            other => other,
        })?;
        Ok(Self {
            matcher,
            ignore_case,
        })
    }

    /// Whether an entry matches, by its name and its path from the root.
    pub fn matches(&self, name: &[u8], path: &[u8], is_dir: bool) -> bool {
        let fold = |b: &[u8]| {
            if self.ignore_case {
                String::from_utf8_lossy(b).to_lowercase().into_bytes()
            } else {
                b.to_vec()
            }
        };
        let (name, path) = (fold(name), fold(path));
        let mut absolute = b"/".to_vec();
        absolute.extend_from_slice(&path);
        let absolute = Path::new(OsStr::from_bytes(&absolute));
        self.matcher.excludes(&name, &path, absolute, is_dir, 0)
    }
}

/// A path matching the pattern and the snapshots holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its path from the snapshot's root.
    pub path: Vec<u8>,
    /// The oldest snapshot holding it.
    pub first: SnapshotRef,
    /// The newest snapshot holding it.
    pub last: SnapshotRef,
    /// How many snapshots hold it.
    pub snapshots: usize,
    /// How many different contents it had.
    pub versions: usize,
    /// The entry in the newest snapshot holding it.
    pub node: Node,
    /// Whether the newest of the snapshots searched holds it.
    pub in_newest: bool,
}

/// The matches below one folder, shared between the snapshots whose
/// folder at that path has the same tree id.
#[derive(Default)]
struct Below {
    hits: Vec<(Vec<u8>, Node)>,
    folders: Vec<Arc<Below>>,
}

impl Below {
    fn each(&self, f: &mut impl FnMut(&[u8], &Node)) {
        for (path, node) in &self.hits {
            f(path, node);
        }
        for folder in &self.folders {
            folder.each(f);
        }
    }
}

struct Search<'a> {
    browser: &'a Browser,
    pattern: &'a Pattern,
    memo: HashMap<(Vec<u8>, BlobId), Arc<Below>>,
    /// Matches collected by the walk of the current snapshot (those
    /// reused from `memo` not counted again).
    matches: usize,
    /// Matches collected by every walk so far: past a bound, folders are
    /// no longer remembered, so that `memo` holds a bounded number of paths.
    all_matches: usize,
}

impl Search<'_> {
    fn folder(&mut self, path: &[u8], id: BlobId, depth: usize) -> Result<Arc<Below>> {
        let key = (path.to_vec(), id);
        if let Some(known) = self.memo.get(&key) {
            return Ok(known.clone());
        }
        if depth > MAX_DEPTH {
            return Err(Error::corrupt(
                "tree",
                id.short(),
                "folders nested too deep",
            ));
        }
        let browser = self.browser;
        let mut entries = browser.entries(Some(&id))?;
        let mut below = Below::default();
        while let Some(node) = entries.peek()? {
            let child = join(path, &node.name);
            if self
                .pattern
                .matches(&node.name, &child, node.kind == NodeKind::Dir)
            {
                self.matches += 1;
                self.all_matches += 1;
                if self.matches > MAX_FIND_MATCHES {
                    return Err(too_many());
                }
                below.hits.push((child.clone(), node.clone()));
            }
            if let Some(sub) = subtree(node) {
                let found = self.folder(&child, sub, depth + 1)?;
                if !found.hits.is_empty() || !found.folders.is_empty() {
                    below.folders.push(found);
                }
            }
            entries.advance();
        }
        let below = Arc::new(below);
        if self.memo.len() < MAX_FIND_MEMO && self.all_matches <= 2 * MAX_FIND_MATCHES {
            self.memo.insert(key, below.clone());
        }
        Ok(below)
    }
}

fn too_many() -> Error {
    Error::Refused(format!(
        "more than {MAX_FIND_MATCHES} paths match: give a narrower pattern (more of the name, or a folder: scans/2026/*.pdf)"
    ))
}

/// The paths matching `pattern` in `snapshots` (any order), sorted by path.
///
/// # Errors
/// Those of reading a tree; [`Error::Refused`] when more than
/// [`MAX_FIND_MATCHES`] paths match (the memory stays bounded on any tree).
pub fn find(
    browser: &Browser,
    snapshots: &[(SnapshotId, Snapshot)],
    pattern: &Pattern,
) -> Result<Vec<Found>> {
    let mut search = Search {
        browser,
        pattern,
        memo: HashMap::new(),
        matches: 0,
        all_matches: 0,
    };
    let ordered = by_time(snapshots);
    let newest = ordered.last().map(|s| s.0);
    let mut found: BTreeMap<Vec<u8>, Found> = BTreeMap::new();
    for entry in ordered {
        let here = SnapshotRef::of(entry);
        search.matches = 0;
        let below = search.folder(b"", entry.1.tree, 0)?;
        if found.len() > MAX_FIND_MATCHES {
            return Err(too_many());
        }
        below.each(&mut |path, node| match found.get_mut(path) {
            Some(f) => {
                if matches!(compare(&f.node, node), Change::Content | Change::Type) {
                    f.versions += 1;
                }
                f.last = here;
                f.snapshots += 1;
                f.in_newest = Some(here.id) == newest;
                f.node = node.clone();
            }
            None => {
                found.insert(
                    path.to_vec(),
                    Found {
                        path: path.to_vec(),
                        first: here,
                        last: here,
                        snapshots: 1,
                        versions: 1,
                        node: node.clone(),
                        in_newest: Some(here.id) == newest,
                    },
                );
            }
        });
    }
    Ok(found.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::compare::testing::*;

    fn p(text: &str) -> Pattern {
        Pattern::new(text, true).unwrap()
    }

    #[test]
    fn patterns_match_names_or_paths() {
        assert!(p("mme-durand*").matches(
            b"Mme-Durand-ordo.pdf",
            b"scans/Mme-Durand-ordo.pdf",
            false
        ));
        assert!(!Pattern::new("mme-durand*", false).unwrap().matches(
            b"Mme-Durand.pdf",
            b"Mme-Durand.pdf",
            false
        ));
        assert!(
            p("durand").matches(b"ordo-DURAND.pdf", b"a/ordo-DURAND.pdf", false),
            "no wildcard: contains"
        );
        assert!(p("élodie*").matches(b"\xc3\x89lodie.txt", b"\xc3\x89lodie.txt", false));
        assert!(
            p("caf*").matches(b"caf\xe9", b"caf\xe9", false),
            "non-UTF-8 names"
        );
        assert!(p("scans/*.pdf").matches(b"a.pdf", b"scans/a.pdf", false));
        assert!(
            !p("scans/*.pdf").matches(b"a.pdf", b"x/scans/a.pdf", false),
            "paths are anchored"
        );
        assert!(p("scans/**/*.pdf").matches(b"a.pdf", b"scans/2026/11/a.pdf", false));
        assert!(p("/db").matches(b"db", b"db", true));
        assert!(
            !p("/db").matches(b"db", b"x/db", true),
            "a leading / anchors a name"
        );
        assert!(
            !p("db/").matches(b"db", b"db", false),
            "a trailing / wants folders"
        );
        assert!(matches!(
            Pattern::new("[abc", false),
            Err(Error::BadPattern { .. })
        ));
        assert!(matches!(
            Pattern::new("/", false),
            Err(Error::BadPattern { .. })
        ));
    }

    /// Day 1 holds the prescription; day 2 renames it (new name found, old
    /// gone); day 3 changes the renamed file; folders left unchanged are
    /// reused from memory, not read again.
    #[test]
    fn find_groups_snapshots_by_path() {
        let cache = tempfile::tempdir().unwrap();
        let repo = repo(cache.path());
        let scans1 = save_tree(
            &repo,
            vec![file(b"mme-durand.pdf", 1, 10), file(b"x.pdf", 4, 1)],
        );
        let scans2 = save_tree(
            &repo,
            vec![file(b"mme-durand-2026.pdf", 1, 10), file(b"x.pdf", 4, 1)],
        );
        let scans3 = save_tree(
            &repo,
            vec![file(b"mme-durand-2026.pdf", 2, 12), file(b"x.pdf", 4, 1)],
        );
        let other = save_tree(&repo, vec![file(b"mme-durand.txt", 5, 3)]);
        let root = |scans| save_tree(&repo, vec![dir(b"scans", scans), dir(b"notes", other)]);
        let snaps = vec![
            snapshot(root(scans1), 0, 1),
            snapshot(root(scans2), 86_400, 2),
            snapshot(root(scans3), 2 * 86_400, 3),
        ];
        let browser = browser(repo);
        let found = find(&browser, &snaps, &p("mme-durand*.pdf")).unwrap();
        let got: Vec<_> = found
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(&f.path).into_owned(),
                    f.first.id.0[0],
                    f.last.id.0[0],
                    f.snapshots,
                    f.versions,
                    f.in_newest,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("scans/mme-durand-2026.pdf".into(), 2, 3, 2, 2, true),
                ("scans/mme-durand.pdf".into(), 1, 1, 1, 1, false),
            ]
        );
        let notes = find(&browser, &snaps, &p("notes/")).unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].snapshots, 3);
    }

    /// A tree listing the same subtree twice at each of 17 levels describes
    /// 131,072 paths from 18 small trees: `find` stops at its bound with a
    /// message instead of holding every path (2^60 would not fit anywhere).
    #[test]
    fn shared_subtrees_stop_at_the_bound() {
        let cache = tempfile::tempdir().unwrap();
        let repo = repo(cache.path());
        let mut id = save_tree(&repo, vec![file(b"f.pdf", 1, 10)]);
        for _ in 0..17 {
            id = save_tree(&repo, vec![dir(b"a", id), dir(b"b", id)]);
        }
        let snaps = vec![snapshot(id, 0, 1)];
        let browser = browser(repo);
        let err = find(&browser, &snaps, &p("f.pdf")).unwrap_err().to_string();
        assert!(err.contains("narrower pattern"), "{err}");
        // A pattern matching only a few of them is answered.
        let few = find(
            &browser,
            &snaps,
            &p("/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/*/f.pdf"),
        )
        .unwrap();
        assert_eq!(few.len(), 2);
    }
}
