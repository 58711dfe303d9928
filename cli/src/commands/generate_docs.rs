//! `coffre generate-docs`: man pages and shell completions, for packaging.

use anyhow::Result;
use clap::Args;

/// `coffre generate-docs`.
#[derive(Args, Debug)]
pub struct GenerateDocsArgs {}

/// Runs `coffre generate-docs`.
pub fn run(_args: &GenerateDocsArgs) -> Result<u8> {
    anyhow::bail!("coffre generate-docs is not available yet")
}
