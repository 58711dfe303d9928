//! `coffre-sample`: a deterministic sample pharmacy data directory, and its
//! daily changes, for Coffre's demo, tests and measurements.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use coffre_tests::sample::{self, MIN_SCALE_MB};
use serde::Serialize;

/// A deterministic sample of a French pharmacy's data directory (database,
/// scanned prescriptions, teletransmission, documents, exports, logs, and
/// the awkward cases a backup must keep), and its daily changes.
///
/// Everything is a function of (seed, scale, day): the same commands give
/// the same bytes, names, modes and mtimes on any machine.
#[derive(Parser)]
#[command(name = "coffre-sample", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make day 0 in DIR (absent or empty); print a JSON summary.
    Init {
        /// The folder to fill.
        dir: PathBuf,
        /// Roughly how many MiB to make.
        #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(i64::from(MIN_SCALE_MB)..))]
        scale_mb: u32,
        /// Every random choice derives from it.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Apply day N (DIR must be at day N-1); print what changed as one JSON line.
    Day {
        /// A folder made by `init`.
        dir: PathBuf,
        /// The day to apply.
        #[arg(long)]
        day: u32,
    },
    /// Apply every day up to N; print one JSON line per day.
    Days {
        /// A folder made by `init`.
        dir: PathBuf,
        /// The last day to apply.
        #[arg(long)]
        to: u32,
    },
    /// Print the state of DIR as JSON.
    Info {
        /// A folder made by `init`.
        dir: PathBuf,
    },
}

fn json(value: &impl Serialize) -> Result<(), sample::Error> {
    let line = serde_json::to_string(value).map_err(|e| sample::Error(e.to_string()))?;
    println!("{line}");
    Ok(())
}

fn run(cli: Cli) -> Result<(), sample::Error> {
    match cli.command {
        Command::Init {
            dir,
            scale_mb,
            seed,
        } => json(&sample::init(&dir, scale_mb, seed)?),
        Command::Day { dir, day } => json(&sample::apply_day(&dir, day)?),
        Command::Days { dir, to } => {
            for summary in sample::apply_days(&dir, to)? {
                json(&summary)?;
            }
            Ok(())
        }
        Command::Info { dir } => json(&sample::info(&dir)?),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffre-sample: {e}");
            ExitCode::from(1)
        }
    }
}
