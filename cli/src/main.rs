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

/// The exit code when the output could not be written (see the panic hook
/// in `main`); 0 otherwise.
static OUTPUT_GONE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

fn main() -> ExitCode {
    // A panic is a bug; the user gets one line, not a backtrace. Except
    // one: `println!` panics when stdout is gone, and `coffre find | head`
    // closing the pipe early is no bug. The command then unwinds (its lock
    // released) and ends quietly, as other tools do.
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") {
            // What a shell reports for a command ended by a closed pipe.
            let mut code = 141;
            if !message.contains("Broken pipe") {
                eprintln!(
                    "coffre: cannot write the output ({message}): is the disk it goes to full?"
                );
                code = EXIT_ERROR;
            }
            OUTPUT_GONE.store(code, std::sync::atomic::Ordering::SeqCst);
            return;
        }
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
        Ok(Err(_)) if OUTPUT_GONE.load(std::sync::atomic::Ordering::SeqCst) != 0 => {
            ExitCode::from(OUTPUT_GONE.load(std::sync::atomic::Ordering::SeqCst))
        }
        // The panic hook has already said what happened.
        _ => ExitCode::from(EXIT_ERROR),
    }
}
