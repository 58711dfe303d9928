//! `coffre status`: is my data safe?

use anyhow::Result;
use clap::Args;

use crate::args::Cli;

/// `coffre status`.
#[derive(Args, Debug)]
pub struct StatusArgs {}

/// Runs `coffre status`.
pub fn run(_cli: &Cli, _args: &StatusArgs) -> Result<u8> {
    anyhow::bail!("coffre status is not available yet")
}
