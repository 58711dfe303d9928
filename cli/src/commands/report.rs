//! `coffre report`: the month's evidence for the auditor (being written).

use anyhow::{bail, Result};

use crate::args::{Cli, ReportArgs};

/// Writes the report.
pub fn run(_cli: &Cli, _args: &ReportArgs) -> Result<u8> {
    bail!("coffre report is not available in this build yet")
}
