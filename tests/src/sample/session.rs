//! One run of the generator (day 0 or one day): the tree being written, its
//! state, the sizes its scale means and the tally of what changed.

use std::path::Path;

use super::calendar::{self, Ns};
use super::files::Fs;
use super::sizes::Sizes;
use super::state::{self, State};
use super::summary::{DaySummary, Tally};
use super::Result;
use crate::Rng;

/// The tree being written and what is known about it.
pub struct Session {
    /// The tree.
    pub fs: Fs,
    /// Its state (saved by [`Session::finish`]).
    pub st: State,
    /// The volumes of its scale.
    pub sizes: Sizes,
    /// What changed so far.
    pub tally: Tally,
}

impl Session {
    /// A run on the tree in `dir` in state `st`, counting into `tally`.
    pub fn new(dir: &Path, st: State, tally: Tally) -> Self {
        Self {
            fs: Fs::new(dir),
            sizes: Sizes::new(st.scale_mb),
            st,
            tally,
        }
    }

    /// The random stream for one purpose and some numbers (a day, an index).
    pub fn rng(&self, purpose: &str, numbers: &[i64]) -> Rng {
        Rng::derive(self.st.seed, purpose, numbers)
    }

    /// Writes the new file `rel` and counts it.
    pub fn new_file(&mut self, rel: impl AsRef<Path>, data: &[u8], mode: u32, t: Ns) -> Result<()> {
        self.fs.write(rel, data, mode, t)?;
        self.tally.new_file(data);
        Ok(())
    }

    /// Saves the state, sets the folders' mtimes, and returns the tally.
    pub fn finish(mut self) -> Result<(State, DaySummary)> {
        state::save(&mut self.fs, &self.st)?;
        self.fs.finish()?;
        Ok((self.st, self.tally.finish()))
    }
}

/// A moment of `day` between `from` and `to` (seconds after midnight,
/// `to` excluded), nanoseconds included.
pub fn moment(rng: &mut Rng, day: i64, from: u32, to: u32) -> Ns {
    let secs = rng.range(u64::from(from), u64::from(to)) as u32;
    calendar::at(day, secs, rng.below(1_000_000_000) as u32)
}

/// `mean` varied by ±`spread` (a share of it), at random.
pub fn around(rng: &mut Rng, mean: f64, spread: f64) -> f64 {
    mean * (1.0 - spread + 2.0 * spread * rng.unit())
}
