//! `coffre schedule install|show|remove`.

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::args::Cli;

/// `coffre schedule`.
#[derive(Args, Debug)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub action: ScheduleAction,
}

/// `coffre schedule install|show|remove`.
#[derive(Subcommand, Debug)]
pub enum ScheduleAction {
    /// Show the installed schedule.
    Show,
}

/// Runs `coffre schedule`.
pub fn run(_cli: &Cli, _args: &ScheduleArgs) -> Result<u8> {
    anyhow::bail!("coffre schedule is not available yet")
}
