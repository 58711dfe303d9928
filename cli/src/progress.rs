//! The progress bar: files, bytes, rate and ETA on a terminal; nothing when
//! stderr is not a terminal or with --json. Warnings always go to stderr.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use snapshots_format::progress::Progress;

/// A [`Progress`] drawing on stderr.
pub struct Bar {
    bar: Option<ProgressBar>,
    files: AtomicU64,
    total_files: AtomicU64,
    /// What the count counts ("files", "snapshots").
    unit: &'static str,
}

impl Bar {
    /// A bar, drawn only if stderr is a terminal and `json` is off.
    pub fn new(json: bool, what: &str) -> Self {
        Self::counting(json, what, "files")
    }

    /// As [`Bar::new`], the count being of `unit` ("snapshots") rather
    /// than files.
    pub fn counting(json: bool, what: &str, unit: &'static str) -> Self {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(5));
            let style = ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(what.to_string());
            bar
        });
        Self {
            bar,
            files: AtomicU64::new(0),
            total_files: AtomicU64::new(0),
            unit,
        }
    }

    /// Whether anything is drawn (a total is then worth counting).
    pub fn shown(&self) -> bool {
        self.bar.is_some()
    }

    /// Removes the bar from the screen.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn message(&self) {
        if let Some(bar) = &self.bar {
            let total = self.total_files.load(Ordering::Relaxed);
            let done = self.files.load(Ordering::Relaxed);
            bar.set_message(if total > 0 {
                format!("{done}/{total} {}", self.unit)
            } else {
                format!("{done} {}", self.unit)
            });
        }
    }
}

impl Progress for Bar {
    fn set_total(&self, files: u64, bytes: u64) {
        self.total_files.store(files, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_length(bytes);
        }
        self.message();
    }

    fn advance(&self, files: u64, bytes: u64) {
        self.files.fetch_add(files, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
        if files > 0 {
            self.message();
        }
    }

    fn warn(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
    }
}
