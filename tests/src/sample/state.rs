//! The state of a tree, kept in `DIR/.coffre-sample.json`: what the next
//! day needs to know (scale, seed, the last day, counters).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::calendar::{self, EVENING};
use super::files::Fs;
use super::{Context, Error, Result};

/// The state file's name in the tree.
pub const STATE_FILE: &str = ".coffre-sample.json";

/// The state of a sample tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// The scale, in MiB.
    pub scale_mb: u32,
    /// The last day applied (0 after `init`).
    pub last_day: u32,
    /// Pages in `db/officine.fdb`.
    pub officine_pages: u64,
    /// Pages in `db/stock.sqlite`.
    pub stock_pages: u64,
    /// The number of the next scanned prescription.
    pub next_scan: u64,
    /// The number of the next FSE.
    pub next_fse: u64,
    /// The number of the next document.
    pub next_doc: u64,
}

/// The state of the tree in `dir`.
pub fn load(dir: &Path) -> Result<State> {
    let path = dir.join(STATE_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error(format!(
                "{} is not a sample tree (no {STATE_FILE}; make one with `coffre-sample init`)",
                dir.display()
            )))
        }
        Err(e) => return Err(e).doing("read", &path),
    };
    serde_json::from_slice(&text).map_err(|e| Error(format!("{}: {e}", path.display())))
}

/// Writes the state, at the end of its last day.
pub fn save(fs: &mut Fs, st: &State) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(st).map_err(|e| Error(e.to_string()))?;
    json.push(b'\n');
    let t = calendar::at(i64::from(st.last_day), EVENING - 1, 0);
    fs.write(STATE_FILE, &json, 0o644, t)
}
