//! What a snapshot leaves out: name and path patterns, marker files,
//! a size limit, other filesystems (GUIDE.md "Leaving files out").
//!
//! A pattern is matched three ways, by its shape:
//! - no `/` (but a trailing one): the name of a file or folder at any depth
//!   (`*.tmp`, `~$*`, `Thumbs.db`, `cache/`);
//! - starting with `/`: the absolute path on this machine
//!   (`/srv/officine/tmp`);
//! - otherwise: the path inside the snapshot (`logs/*.log.?`, `db/**/*.lck`).
//!
//! `*` and `?` never cross a `/`; `**` spans folders; `[...]` is a class.
//! A trailing `/` limits the pattern to folders. An excluded folder is left
//! out with everything under it.

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::source::walk::Dir;

/// One pattern, parsed.
#[derive(Debug, Clone)]
struct Rule {
    pattern: glob::Pattern,
    shape: Shape,
    folders_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Name,
    Absolute,
    InSnapshot,
}

/// The exclude rules of a snapshot.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    rules: Vec<Rule>,
    /// Folders holding a file of one of these names are left out.
    if_present: Vec<OsString>,
    /// Regular files larger than this are left out.
    larger_than: Option<u64>,
    /// Folders on another filesystem than their source are entered (by
    /// default they are kept empty: a disk or a network share mounted
    /// inside the data folder is not the data folder).
    cross_filesystems: bool,
    /// The rules as given, for the snapshot record.
    described: Vec<String>,
}

fn glob_options() -> glob::MatchOptions {
    glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    }
}

impl Excludes {
    /// No rules: everything is kept.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pattern (see the module doc).
    ///
    /// # Errors
    /// [`Error::BadExclude`] for an empty or malformed pattern.
    pub fn add_pattern(&mut self, text: &str) -> Result<()> {
        self.push_pattern(text)?;
        self.described.push(format!("--exclude {text}"));
        Ok(())
    }

    fn push_pattern(&mut self, text: &str) -> Result<()> {
        let bad = |reason: &str| Error::BadExclude {
            pattern: text.to_string(),
            reason: reason.to_string(),
        };
        let folders_only = text.ends_with('/');
        let body = text.trim_end_matches('/');
        if body.is_empty() {
            return Err(bad("empty pattern"));
        }
        let (shape, body) = if let Some(rest) = body.strip_prefix('/') {
            (
                Shape::Absolute,
                format!("/{}", rest.trim_start_matches('/')),
            )
        } else if body.contains('/') {
            (Shape::InSnapshot, body.to_string())
        } else {
            (Shape::Name, body.to_string())
        };
        let pattern = glob::Pattern::new(&body).map_err(|e| bad(e.msg))?;
        self.rules.push(Rule {
            pattern,
            shape,
            folders_only,
        });
        Ok(())
    }

    /// Adds the patterns of a file: one per line; blank lines and lines
    /// starting with `#` are ignored, trailing spaces and CR trimmed.
    ///
    /// # Errors
    /// [`Error::Source`] when the file cannot be read, [`Error::BadExclude`]
    /// naming the line of a malformed pattern.
    pub fn add_file(&mut self, path: &Path) -> Result<()> {
        let text = fs::read(path).map_err(|e| Error::Source {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let text = String::from_utf8_lossy(&text);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches(['\r', ' ', '\t']);
            if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            self.push_pattern(line).map_err(|e| match e {
                Error::BadExclude { pattern, reason } => Error::BadExclude {
                    pattern: format!("{pattern} ({}, line {})", path.display(), n + 1),
                    reason,
                },
                other => other,
            })?;
        }
        self.described
            .push(format!("--exclude-file {}", path.display()));
        Ok(())
    }

    /// Leaves out folders that hold a file named `marker` (e.g. `.nobackup`).
    ///
    /// # Errors
    /// [`Error::BadExclude`] when `marker` is not a plain file name.
    pub fn add_if_present(&mut self, marker: &str) -> Result<()> {
        if marker.is_empty() || marker.contains('/') || marker == "." || marker == ".." {
            return Err(Error::BadExclude {
                pattern: marker.to_string(),
                reason: "a marker is a file name, without '/'".into(),
            });
        }
        self.if_present.push(OsString::from(marker));
        self.described
            .push(format!("--exclude-if-present {marker}"));
        Ok(())
    }

    /// Leaves out regular files larger than `bytes`.
    pub fn set_larger_than(&mut self, bytes: u64) {
        self.larger_than = Some(bytes);
        self.described
            .push(format!("--exclude-larger-than {bytes}"));
    }

    /// Enters folders on other filesystems than their source, which are
    /// otherwise kept empty.
    pub fn set_cross_filesystems(&mut self) {
        self.cross_filesystems = true;
        self.described.push("--cross-filesystems".into());
    }

    /// Whether folders on other filesystems than their source are entered.
    pub fn crosses_filesystems(&self) -> bool {
        self.cross_filesystems
    }

    /// The rules as given, for the snapshot record.
    pub fn described(&self) -> &[String] {
        &self.described
    }

    /// Whether there is no rule at all.
    pub fn is_empty(&self) -> bool {
        self.described.is_empty()
    }

    /// Whether a rule leaves an entry out, judged by its name, its path
    /// inside the snapshot, its absolute path on disk, whether it is a
    /// folder and its size.
    pub fn excludes(&self, name: &[u8], rel: &[u8], abs: &Path, is_dir: bool, size: u64) -> bool {
        if !is_dir && self.larger_than.is_some_and(|limit| size > limit) {
            return true;
        }
        if self.rules.is_empty() {
            return false;
        }
        let name = String::from_utf8_lossy(name);
        let rel = String::from_utf8_lossy(rel);
        let abs = String::from_utf8_lossy(abs.as_os_str().as_bytes());
        self.rules.iter().any(|rule| {
            if rule.folders_only && !is_dir {
                return false;
            }
            let subject: &str = match rule.shape {
                Shape::Name => &name,
                Shape::InSnapshot => &rel,
                Shape::Absolute => &abs,
            };
            rule.pattern.matches_with(subject, glob_options())
        })
    }

    /// Whether the open folder `dir` holds one of the marker files (a
    /// marker that cannot be checked counts as absent).
    pub fn marked(&self, dir: &Dir) -> bool {
        self.if_present.iter().any(|m| dir.contains(m.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(patterns: &[&str]) -> Excludes {
        let mut e = Excludes::new();
        for p in patterns {
            e.add_pattern(p).unwrap();
        }
        e
    }

    fn out(e: &Excludes, rel: &str, is_dir: bool) -> bool {
        let name = rel.rsplit('/').next().unwrap();
        let abs = Path::new("/srv/officine").join(rel);
        e.excludes(name.as_bytes(), rel.as_bytes(), &abs, is_dir, 10)
    }

    #[test]
    fn name_patterns_match_at_any_depth() {
        let e = ex(&["*.tmp", "~$*", "Thumbs.db"]);
        assert!(out(&e, "a.tmp", false));
        assert!(out(&e, "documents/rh/~$contrat.docx", false));
        assert!(out(&e, "scans/2026/Thumbs.db", false));
        assert!(!out(&e, "db/officine.fdb", false));
        assert!(!out(&e, "tmp.txt", false));
    }

    #[test]
    fn trailing_slash_means_folders_only() {
        let e = ex(&["cache/"]);
        assert!(out(&e, "app/cache", true));
        assert!(!out(&e, "app/cache", false));
    }

    #[test]
    fn paths_inside_the_snapshot_and_absolute_paths() {
        let e = ex(&["logs/*.log.?", "db/**/*.lck", "/srv/officine/tmp"]);
        assert!(out(&e, "logs/officine.log.1", false));
        assert!(
            !out(&e, "logs/old/officine.log.1", false),
            "* stays in one folder"
        );
        assert!(out(&e, "db/a/b/verrou.lck", false));
        assert!(out(&e, "db/verrou.lck", false));
        assert!(out(&e, "tmp", true));
        assert!(!out(&e, "x/tmp", true));
    }

    #[test]
    fn size_limit_applies_to_files_only() {
        let mut e = Excludes::new();
        e.set_larger_than(5);
        let p = Path::new("/x/big");
        assert!(e.excludes(b"big", b"big", p, false, 6));
        assert!(!e.excludes(b"big", b"big", p, false, 5));
        assert!(!e.excludes(b"big", b"big", p, true, 6));
    }

    #[test]
    fn bad_patterns_are_refused_with_their_text() {
        let mut e = Excludes::new();
        assert!(matches!(e.add_pattern("/"), Err(Error::BadExclude { .. })));
        match e.add_pattern("[abc") {
            Err(Error::BadExclude { pattern, .. }) => assert_eq!(pattern, "[abc"),
            other => panic!("{other:?}"),
        }
        assert!(e.add_if_present("a/b").is_err());
    }

    #[test]
    fn exclude_files_skip_comments_and_name_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("exclusions.txt");
        fs::write(&f, "# temp files\r\n*.tmp  \r\n\r\n*.lck\n").unwrap();
        let mut e = Excludes::new();
        e.add_file(&f).unwrap();
        assert!(out(&e, "a.lck", false) && out(&e, "b.tmp", false));
        fs::write(&f, "*.tmp\n[oops\n").unwrap();
        match Excludes::new().add_file(&f) {
            Err(Error::BadExclude { pattern, .. }) => {
                assert!(pattern.contains("line 2"), "{pattern}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn marker_files_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = Excludes::new();
        e.add_if_present(".nobackup").unwrap();
        let open = || Dir::open_root(dir.path()).unwrap().0;
        assert!(!e.marked(&open()));
        fs::write(dir.path().join(".nobackup"), "").unwrap();
        assert!(e.marked(&open()));
        assert_eq!(e.described(), ["--exclude-if-present .nobackup"]);
    }
}
