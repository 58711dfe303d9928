//! `coffre`: encrypted, deduplicated snapshots of a pharmacy's data.
//!
//! This file only parses the command line, runs one command, and turns
//! errors into a short message and an exit code. Each command lives in
//! `commands/<name>.rs` as a thin function over the `snapshots-format` library.

mod alarm;
mod args;
mod commands;
mod config;
mod errors;
mod format;
mod fs_snapshot;
mod hooks;
mod journal;
mod mounts;
mod notify;
mod parse;
mod password;
mod progress;
mod recovery_sheet;
mod runlog;

use std::process::ExitCode;

use clap::Parser;

/// Exit code: the command failed.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: a snapshot was taken but some files could not be read.
pub const EXIT_PARTIAL: u8 = 3;
/// Exit code: a snapshot was taken and looks like ransomware at work.
pub const EXIT_ALARM: u8 = 4;

/// glibc gives each busy thread its own heap, and each keeps what it freed:
/// with a snapshot's eight threads passing chunk buffers around, memory grew
/// with the run (70 → 88 MiB on 2 GB). Two heaps keep it flat at no
/// measurable cost in time. And buffers of 512 KiB or more (file read
/// buffers, pack buffers) are mapped and unmapped on their own: left to
/// glibc's moving threshold they came from those heaps and left holes worth
/// about 14 MiB at the end of a 2 GB snapshot (85 → 71 MiB peak, same time;
/// a 128 KiB threshold saved as much but cost 0.5 s of page faults).
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 512 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 20);
    }
}

fn main() -> ExitCode {
    // A panic is a bug; the user gets one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("coffre: internal error: {info}. Please report this; your repository is unchanged by it.");
    }));
    tune_malloc();
    let cli = args::Cli::parse();
    // The flag (or COFFRE_CACHE_DIR, which clap reads into it) beats the
    // configuration file. A file that does not load is ignored here: the
    // command that needs it reports why, with its line.
    let cache_dir = cli.cache_dir.clone().or_else(|| {
        config::load(&cli)
            .ok()
            .flatten()
            .and_then(|l| l.config.cache_dir.clone())
    });
    if let Some(dir) = cache_dir {
        // The library finds its cache through this variable; set once,
        // before any other thread exists.
        std::env::set_var("COFFRE_CACHE_DIR", dir);
    }
    // Walks recurse once per folder level; a generous stack (reserved, not
    // used, until needed) keeps the deepest legal tree far from overflowing.
    let worker =
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || match commands::run(&cli) {
                Ok(code) => code,
                Err(err) => {
                    errors::report(&err, &cli);
                    EXIT_ERROR
                }
            });
    match worker.map(|w| w.join()) {
        Ok(Ok(code)) => ExitCode::from(code),
        // The panic hook has already said what happened.
        _ => ExitCode::from(EXIT_ERROR),
    }
}
