//! `history`: every version of one path across the snapshots, and the
//! periods it was absent. Only trees are read (never file contents):
//! whether a version changed is judged from its chunk list and metadata
//! ([`compare`]), and a folder on the path that did not change since an
//! earlier snapshot answers from memory ([`Lookup`]).

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::Node;
use crate::id::SnapshotId;
use crate::ops::compare::{compare, Change};
use crate::ops::paths::{by_time, normalize, Lookup, SnapshotRef};
use crate::repo::browse::Browser;

/// One line of a path's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A snapshot holding the path.
    Present {
        /// The snapshot.
        snapshot: SnapshotRef,
        /// The entry as recorded there.
        node: Node,
        /// How it differs from the previous snapshot holding it; `None`
        /// for the first.
        change: Option<Change>,
    },
    /// A run of snapshots not holding the path, after one that did.
    Absent {
        /// The first snapshot of the run.
        first: SnapshotRef,
        /// The last snapshot of the run.
        last: SnapshotRef,
        /// How many snapshots the run counts.
        count: usize,
        /// Whether a later snapshot holds the path again (false: it is
        /// still missing from the newest snapshot).
        came_back: bool,
    },
}

/// The history of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// The path, normalised (no leading, trailing or doubled `/`).
    pub path: Vec<u8>,
    /// What each snapshot holds, oldest first; snapshots older than the
    /// first one holding the path are left out.
    pub events: Vec<Event>,
    /// How many snapshots hold the path.
    pub present: usize,
    /// How many different contents it had (content or type changes, plus one).
    pub versions: usize,
}

/// The history of `path` over `snapshots` (any order).
///
/// # Errors
/// [`Error::BadPath`] for a path naming no entry,
/// [`Error::PathInNoSnapshot`] when no snapshot holds it, and the errors of
/// reading a tree.
pub fn history(
    browser: &Browser,
    snapshots: &[(SnapshotId, Snapshot)],
    path: &[u8],
) -> Result<History> {
    let mut lookup = Lookup::new(path)?;
    let mut events = Vec::new();
    let mut previous: Option<Node> = None;
    let mut absent: Option<(SnapshotRef, SnapshotRef, usize)> = None;
    let (mut present, mut versions) = (0, 0);
    for entry in by_time(snapshots) {
        let here = SnapshotRef::of(entry);
        match lookup.find(browser, &entry.1.tree)? {
            Some(node) => {
                if let Some((first, last, count)) = absent.take() {
                    events.push(Event::Absent {
                        first,
                        last,
                        count,
                        came_back: true,
                    });
                }
                let change = previous.as_ref().map(|old| compare(old, &node));
                if matches!(change, None | Some(Change::Content | Change::Type)) {
                    versions += 1;
                }
                present += 1;
                previous = Some(node.clone());
                events.push(Event::Present {
                    snapshot: here,
                    node,
                    change,
                });
            }
            None if previous.is_some() => {
                let run = absent.get_or_insert((here, here, 0));
                run.1 = here;
                run.2 += 1;
            }
            None => {}
        }
    }
    if let Some((first, last, count)) = absent {
        events.push(Event::Absent {
            first,
            last,
            count,
            came_back: false,
        });
    }
    if present == 0 {
        return Err(Error::PathInNoSnapshot(
            String::from_utf8_lossy(path).into_owned(),
        ));
    }
    Ok(History {
        path: normalize(path),
        events,
        present,
        versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::compare::testing::*;

    /// Five days: the database appears on day 1, is unchanged on day 2,
    /// missing on days 3 and 4 (its folder too on day 4), back changed on
    /// day 5 and chmod'ed on day 6; day 7 loses it again.
    #[test]
    fn history_with_gaps_and_changes() {
        let cache = tempfile::tempdir().unwrap();
        let repo = repo(cache.path());
        let readme = file(b"lisez-moi.txt", 9, 5);
        let db_v1 = save_tree(&repo, vec![file(b"officine.fdb", 1, 100)]);
        let db_v2 = save_tree(&repo, vec![file(b"officine.fdb", 2, 120)]);
        let mut chmod = file(b"officine.fdb", 2, 120);
        chmod.mode = 0o600;
        let db_v3 = save_tree(&repo, vec![chmod]);
        let db_empty = save_tree(&repo, vec![file(b"autre", 3, 1)]);
        let root = |db: Option<_>| {
            let mut nodes = vec![readme.clone()];
            nodes.extend(db.map(|id| dir(b"db", id)));
            save_tree(&repo, nodes)
        };
        let roots = [
            root(Some(db_empty)),
            root(Some(db_v1)),
            root(Some(db_v1)),
            root(Some(db_empty)),
            root(None),
            root(Some(db_v2)),
            root(Some(db_v3)),
            root(None),
        ];
        let snaps: Vec<_> = roots
            .iter()
            .enumerate()
            .map(|(i, r)| snapshot(*r, 86_400 * i as i64, i as u8))
            .rev() // any order in, oldest first out
            .collect();
        let browser = browser(repo);
        let h = history(&browser, &snaps, b"/db//officine.fdb").unwrap();
        assert_eq!(h.path, b"db/officine.fdb");
        assert_eq!((h.present, h.versions), (4, 2));
        let summary: Vec<String> = h
            .events
            .iter()
            .map(|e| match e {
                Event::Present {
                    snapshot, change, ..
                } => format!("{}:{change:?}", snapshot.id.0[0]),
                Event::Absent {
                    first,
                    last,
                    count,
                    came_back,
                } => {
                    format!(
                        "gap {}-{} x{count} {came_back}",
                        first.id.0[0], last.id.0[0]
                    )
                }
            })
            .collect();
        assert_eq!(
            summary,
            [
                "1:None",
                "2:Some(Unchanged)",
                "gap 3-4 x2 true",
                "5:Some(Content)",
                "6:Some(Metadata)",
                "gap 7-7 x1 false",
            ]
        );
        assert!(matches!(
            history(&browser, &snaps, b"db/absent"),
            Err(Error::PathInNoSnapshot(_))
        ));
    }
}
