//! Comparing two [`TreeImage`]s and reporting every difference readably.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::tree::{Entry, Kind, TreeImage};

/// How the holes of sparse files are compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HoleCheck {
    /// The hole ranges, rounded inward to the block size, must be identical.
    #[default]
    Exact,
    /// Every hole of the expected file must still be a hole in the actual one; the
    /// actual file may have more (for a restorer that punches holes in zero runs).
    KeepSourceHoles,
    /// Holes are not compared (contents still are).
    Ignore,
}

/// What [`diff_trees_with`] compares. Everything is compared by default except the
/// root directory's own mtime, which the act of restoring into it usually changes.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Compare uid and gid (true by default; restoring as non-root cannot chown).
    pub owner: bool,
    /// Compare the root directory's own mtime (false by default).
    pub root_mtime: bool,
    /// How holes are compared.
    pub holes: HoleCheck,
    /// Relative paths left out of the comparison, each with everything below it.
    pub exclude: Vec<PathBuf>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            owner: true,
            root_mtime: false,
            holes: HoleCheck::Exact,
            exclude: Vec::new(),
        }
    }
}

impl CompareOptions {
    /// These options, also leaving out `rel` (relative to the root) and everything below it.
    pub fn excluding(mut self, rel: impl AsRef<Path>) -> Self {
        self.exclude.push(rel.as_ref().to_path_buf());
        self
    }

    fn is_excluded(&self, path: &[u8]) -> bool {
        self.exclude.iter().any(|e| {
            let e = normalize(e.as_os_str().as_bytes());
            path == e || (path.starts_with(e) && path.get(e.len()) == Some(&b'/'))
        })
    }
}

/// Strips a leading `./` and trailing slashes so `"./tmp/"` excludes `tmp`.
fn normalize(mut p: &[u8]) -> &[u8] {
    while let Some(rest) = p.strip_prefix(b"./") {
        p = rest;
    }
    while p.len() > 1 && p.ends_with(b"/") {
        p = &p[..p.len() - 1];
    }
    if p == b"." {
        b""
    } else {
        p
    }
}

/// Panics with a report of up to 20 differences if the trees differ (default options).
pub fn assert_same_tree(expected: &TreeImage, actual: &TreeImage) {
    assert_same_tree_with(expected, actual, &CompareOptions::default());
}

/// Panics with a report of up to 20 differences if the trees differ.
pub fn assert_same_tree_with(expected: &TreeImage, actual: &TreeImage, opts: &CompareOptions) {
    const SHOWN: usize = 20;
    let diffs = diff_trees_with(expected, actual, opts);
    if diffs.is_empty() {
        return;
    }
    let mut report = format!(
        "trees differ: expected {} vs actual {}: {} difference(s)\n",
        expected.root().display(),
        actual.root().display(),
        diffs.len()
    );
    for d in diffs.iter().take(SHOWN) {
        let _ = writeln!(report, "  - {d}");
    }
    if diffs.len() > SHOWN {
        let _ = writeln!(report, "  ... and {} more", diffs.len() - SHOWN);
    }
    panic!("{report}");
}

/// The differences between two trees under the default options, one line each.
pub fn diff_trees(expected: &TreeImage, actual: &TreeImage) -> Vec<String> {
    diff_trees_with(expected, actual, &CompareOptions::default())
}

/// The differences between two trees, one line each, ordered by path. Each line starts
/// with the relative path (lossily decoded, `.` for the root).
pub fn diff_trees_with(
    expected: &TreeImage,
    actual: &TreeImage,
    opts: &CompareOptions,
) -> Vec<String> {
    let (exp, act) = (expected.entry_map(), actual.entry_map());
    let mut out: Vec<(Vec<u8>, String)> = Vec::new();
    // A missing directory would otherwise bury the report under its descendants, so
    // only its topmost missing ancestor is reported, with a count of what is below.
    let mut below: std::collections::BTreeMap<Vec<u8>, usize> = Default::default();
    for (side, ours, theirs) in [("missing", exp, act), ("extra", act, exp)] {
        let mut tops = Vec::new();
        for (path, entry) in ours {
            if opts.is_excluded(path) || theirs.contains_key(path) {
                continue;
            }
            match ancestors(path).find(|a| !theirs.contains_key(*a)) {
                Some(top) => *below.entry(top.to_vec()).or_default() += 1,
                None => tops.push((path.clone(), entry.kind)),
            }
        }
        for (path, kind) in tops {
            let mut msg = format!("{side} ({})", kind.name());
            if let Some(n) = below.get(&path) {
                let _ = write!(msg, ", with {n} entries below it");
            }
            out.push((path, msg));
        }
    }
    for (path, e) in exp {
        if let (false, Some(a)) = (opts.is_excluded(path), act.get(path)) {
            compare_entry(path, e, a, opts, &mut |m| out.push((path.clone(), m)));
        }
    }
    compare_hardlinks(expected, actual, opts, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0)); // stable: one path's messages keep their order
    out.into_iter()
        .map(|(p, m)| format!("{}: {m}", show(&p)))
        .collect()
}

/// The proper ancestors of a relative path, shortest first (the root excluded).
fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .filter(|(_, &b)| b == b'/')
        .map(move |(i, _)| &path[..i])
}

fn show(path: &[u8]) -> String {
    if path.is_empty() {
        ".".to_string()
    } else {
        String::from_utf8_lossy(path).into_owned()
    }
}

fn compare_entry(
    path: &[u8],
    e: &Entry,
    a: &Entry,
    opts: &CompareOptions,
    out: &mut dyn FnMut(String),
) {
    if e.kind != a.kind {
        out(format!(
            "type: expected {}, actual {}",
            e.kind.name(),
            a.kind.name()
        ));
        return;
    }
    if e.mode != a.mode {
        out(format!(
            "mode: expected {:04o}, actual {:04o}",
            e.mode, a.mode
        ));
    }
    if opts.owner && (e.uid, e.gid) != (a.uid, a.gid) {
        out(format!(
            "owner: expected {}:{}, actual {}:{}",
            e.uid, e.gid, a.uid, a.gid
        ));
    }
    let is_root = path.is_empty();
    if (!is_root || opts.root_mtime) && (e.mtime_sec, e.mtime_nsec) != (a.mtime_sec, a.mtime_nsec) {
        out(format!(
            "mtime: expected {}.{:09}, actual {}.{:09}",
            e.mtime_sec, e.mtime_nsec, a.mtime_sec, a.mtime_nsec
        ));
    }
    match e.kind {
        Kind::File => {
            if e.size != a.size {
                out(format!("size: expected {}, actual {}", e.size, a.size));
            } else if e.digest != a.digest {
                out(format!("content differs (same size {})", e.size));
            }
            if let Some(m) = compare_holes(e, a, opts.holes) {
                out(m);
            }
        }
        Kind::Symlink if e.target != a.target => {
            let t = |x: &Option<Vec<u8>>| show(x.as_deref().unwrap_or_default());
            out(format!(
                "link target: expected {:?}, actual {:?}",
                t(&e.target),
                t(&a.target)
            ));
        }
        Kind::CharDevice | Kind::BlockDevice if e.rdev != a.rdev => {
            out(format!(
                "device: expected {:#x}, actual {:#x}",
                e.rdev, a.rdev
            ));
        }
        _ => {}
    }
    if e.xattrs != a.xattrs {
        out(describe_xattrs(e, a));
    }
}

/// Hole ranges shrunk inward to multiples of `bs`, dropping those left empty: the
/// filesystem only tracks holes per block, so sub-block detail is noise.
fn rounded(holes: &[(u64, u64)], bs: u64) -> Vec<(u64, u64)> {
    holes
        .iter()
        .map(|&(s, e)| (s.div_ceil(bs) * bs, e / bs * bs))
        .filter(|(s, e)| s < e)
        .collect()
}

fn compare_holes(e: &Entry, a: &Entry, check: HoleCheck) -> Option<String> {
    // Round both sides alike even if the two trees live on filesystems of different block sizes.
    let bs = e.blksize.max(a.blksize).max(1);
    let (eh, ah) = (rounded(&e.holes, bs), rounded(&a.holes, bs));
    let ok = match check {
        HoleCheck::Ignore => true,
        HoleCheck::Exact => eh == ah,
        HoleCheck::KeepSourceHoles => eh.iter().all(|&(s, end)| {
            // Actual holes are disjoint, so their overlaps with [s, end) sum to its
            // length exactly when they cover it.
            let covered: u64 = ah
                .iter()
                .map(|&(x, y)| y.min(end).saturating_sub(x.max(s)))
                .sum();
            covered == end - s
        }),
    };
    (!ok).then(|| {
        format!(
            "holes: expected {}, actual {}",
            show_ranges(&eh),
            show_ranges(&ah)
        )
    })
}

fn show_ranges(r: &[(u64, u64)]) -> String {
    const SHOWN: usize = 6;
    let mut s: Vec<String> = r
        .iter()
        .take(SHOWN)
        .map(|(a, b)| format!("{a}..{b}"))
        .collect();
    if r.len() > SHOWN {
        s.push(format!("... {} more", r.len() - SHOWN));
    }
    format!("[{}]", s.join(", "))
}

fn describe_xattrs(e: &Entry, a: &Entry) -> String {
    let names = |x: &Entry| {
        x.xattrs
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<BTreeSet<_>>()
    };
    let (en, an) = (names(e), names(a));
    let mut parts = Vec::new();
    let list = |s: Vec<&Vec<u8>>| s.iter().map(|n| show(n)).collect::<Vec<_>>().join(", ");
    let missing: Vec<_> = en.difference(&an).collect();
    if !missing.is_empty() {
        parts.push(format!("missing {}", list(missing)));
    }
    let extra: Vec<_> = an.difference(&en).collect();
    if !extra.is_empty() {
        parts.push(format!("extra {}", list(extra)));
    }
    let changed: Vec<_> = e
        .xattrs
        .iter()
        .filter(|x| !a.xattrs.contains(x) && an.contains(&x.0))
        .map(|x| &x.0)
        .collect();
    if !changed.is_empty() {
        parts.push(format!("value of {} differs", list(changed)));
    }
    format!("xattrs: {}", parts.join("; "))
}

fn compare_hardlinks(
    expected: &TreeImage,
    actual: &TreeImage,
    opts: &CompareOptions,
    out: &mut Vec<(Vec<u8>, String)>,
) {
    // Excluded paths are dropped from the groups, so excluding one name of three still
    // compares the link between the other two.
    let groups = |t: &TreeImage| -> BTreeSet<Vec<Vec<u8>>> {
        t.hardlink_groups()
            .iter()
            .map(|g| {
                g.iter()
                    .filter(|p| !opts.is_excluded(p))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .filter(|g| g.len() > 1)
            .collect()
    };
    let (eg, ag) = (groups(expected), groups(actual));
    let fmt = |g: &Vec<Vec<u8>>| {
        format!(
            "{{{}}}",
            g.iter().map(|p| show(p)).collect::<Vec<_>>().join(", ")
        )
    };
    for g in eg.difference(&ag) {
        out.push((
            g[0].clone(),
            format!(
                "hard links: expected {} to be one file, they are not",
                fmt(g)
            ),
        ));
    }
    for g in ag.difference(&eg) {
        out.push((
            g[0].clone(),
            format!("hard links: unexpected group {}", fmt(g)),
        ));
    }
}
