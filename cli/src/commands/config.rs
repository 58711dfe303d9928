//! `coffre config check|show`.

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::args::Cli;

/// `coffre config`.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

/// `coffre config check|show`.
#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Validate the configuration file.
    Check,
}

/// Runs `coffre config`.
pub fn run(_cli: &Cli, _args: &ConfigArgs) -> Result<u8> {
    anyhow::bail!("coffre config is not available yet")
}
