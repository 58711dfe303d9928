//! A deterministic sample pharmacy data directory, and its daily changes.
//!
//! The tree looks like the data directory of a French pharmacy's software:
//!
//! | path | what |
//! |---|---|
//! | `db/officine.fdb` | the main database: 8 KiB pages of text-like rows, ~38 % of the volume; each day ~1 % of its pages are rewritten, scattered, and it grows ~0.15 % |
//! | `db/officine.journal` | rewritten every day with that day's changed pages |
//! | `db/stock.sqlite` | a smaller database with 4 KiB pages, ~2 % of them rewritten daily |
//! | `scans/YYYY/MM/DD/` | scanned prescriptions (incompressible JPEG, 120–450 KB), 90 days of history, new ones every day |
//! | `teletransmission/` | FSE, ARL and B2 files (small text, many per folder); FSE folders older than 30 days move to `archive/` |
//! | `documents/` | PDF and office files, some copied in `archives_copies/`; a few get bytes inserted each day, and one courrier is added |
//! | `exports/` | a stock CSV rewritten daily with ~5 % of its rows changed, and a sales CSV per day |
//! | `logs/` | a log appended daily and rotated every 7 days by renames |
//! | `config/`, `bin/`, `tmp/` | CRLF ini files, a script, scratch files replaced daily |
//! | `divers/` | the awkward cases: see [`divers`] |
//!
//! Everything is a function of (seed, scale, day): the same calls give the
//! same bytes, names, modes and mtimes on any machine. mtimes follow a
//! simulated calendar (day 0 is 2026-09-01, everything of a day happens
//! before 19:30 UTC that day), so a modified file always gets a later mtime.
//! The state lives in `DIR/.coffre-sample.json`.
//!
//! Modules: [`calendar`] (dates and mtimes), [`sizes`] (volumes from the
//! scale), [`words`] and [`text`] (vocabulary and text building),
//! [`content`] (document contents), [`records`] (rows, teletransmission,
//! logs), [`pages`] (database pages), [`files`] (writing with modes and
//! mtimes), [`state`], [`summary`] (what a day changed), [`session`] (one
//! run), [`activity`] (what a business day produces), [`tree`] (day 0),
//! [`divers`], [`day`] (the daily changes).

pub mod activity;
pub mod calendar;
pub mod content;
pub mod day;
pub mod divers;
pub mod files;
pub mod pages;
pub mod records;
pub mod session;
pub mod sizes;
pub mod state;
pub mod summary;
pub mod text;
pub mod tree;
pub mod words;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

pub use state::State;
pub use summary::DaySummary;
pub use tree::Made;

/// The smallest scale, in MiB.
pub const MIN_SCALE_MB: u32 = 4;

/// What went wrong, in one line for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The result of every fallible step.
pub type Result<T> = std::result::Result<T, Error>;

/// Adds what was being done, and on which path, to an I/O error.
pub(crate) trait Context<T> {
    fn doing(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn doing(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error(format!("{what} {}: {e}", path.display())))
    }
}

/// Makes day 0 in `dir` (absent or empty) at `scale_mb` MiB (at least
/// [`MIN_SCALE_MB`]) from `seed`; says how much it wrote.
pub fn init(dir: &Path, scale_mb: u32, seed: u64) -> Result<Made> {
    tree::make(dir, scale_mb, seed)
}

/// Applies day `day` to the tree in `dir`, which must be at day `day - 1`.
pub fn apply_day(dir: &Path, day: u32) -> Result<DaySummary> {
    let st = state::load(dir)?;
    if u64::from(day) != u64::from(st.last_day) + 1 {
        return Err(Error(format!(
            "{} is at day {}: the next day is {}, not {day}",
            dir.display(),
            st.last_day,
            st.last_day + 1
        )));
    }
    day::apply(dir, st)
}

/// Applies every day after the tree's last one up to `to` (none if it is
/// already there), and returns their summaries.
pub fn apply_days(dir: &Path, to: u32) -> Result<Vec<DaySummary>> {
    let from = state::load(dir)?.last_day + 1;
    (from..=to).map(|d| apply_day(dir, d)).collect()
}

/// The state of the tree in `dir`.
pub fn info(dir: &Path) -> Result<State> {
    state::load(dir)
}
