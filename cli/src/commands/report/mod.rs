//! `coffre report`: the month's evidence for the pharmacy's auditor
//! (docs/REPORT.md), as one self-contained HTML file that prints on A4.
//!
//! Everything comes from the repository: the journal (every snapshot,
//! check, restore test, copy, forget, prune, key change and legal hold,
//! with who ran it) and the snapshot records, plus the configuration's
//! `[audit]`, `[schedule]`, `[[repository]]` and `[retention]`. The work is
//! done in three steps: [`collect`](collect::collect) reads the repository,
//! [`build`](build::build) turns it into a [`Report`](model::Report) (plain
//! data, no HTML), [`render`] writes the page. Every text put
//! in the page goes through [`esc`](html::esc).
//!
//! The file is always written; `--json` prints a summary of it on stdout
//! (the path, each day's status, the month's counts) instead of two lines
//! for people. Exit code 1 when the journal was tampered with or cannot be
//! read (the report is written all the same, with the problem at its top).

mod build;
mod calendar;
mod collect;
mod html;
mod i18n;
mod model;
mod month;
mod points;
mod summary;
mod svg;
mod tables;

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::args::{Cli, ReportArgs};

use self::build::build;
use self::collect::collect;
use self::html::render;
use self::i18n::Lang;
use self::month::{local, Month};
use self::summary::{print_summary, summary_json};

/// Writes the month's report (and prints its JSON summary with `--json`).
pub fn run(cli: &Cli, args: &ReportArgs) -> Result<u8> {
    let lang = Lang::parse(&args.lang)?;
    let now = super::now()?.sec;
    let today = local(now)
        .map(|t| t.date_naive())
        .context("the current time is out of range: check the system clock (or COFFRE_FAKE_NOW)")?;
    let month = match &args.month {
        Some(m) => Month::parse(m)?,
        None => Month::before(today),
    };
    let out = match &args.out {
        Some(p) => p.clone(),
        None => PathBuf::from(format!("{}-{}.html", lang.file_stem(), month.key())),
    };
    let config = crate::config::load(cli)?.map(|l| &l.config);
    let repo = super::open(cli)?;
    let facts = collect(&repo, config)?;
    let report = build(lang, month, now, today, config, &facts);
    let html = render(&report);
    std::fs::write(&out, html).with_context(|| {
        format!(
            "cannot write the report to {}: check that the folder exists and is writable, or choose another file with --out",
            out.display()
        )
    })?;
    let shown = std::path::absolute(&out).unwrap_or(out);
    if cli.json {
        super::print_json(&summary_json(&report, &shown))?;
    } else {
        print_summary(&report, &shown);
    }
    for p in &report.problems {
        eprintln!("warning: {p}");
    }
    if report.problems.is_empty() {
        Ok(0)
    } else {
        eprintln!("The journal was tampered with or damaged (see the top of the report): keep this drive aside and compare with another drive's journal.");
        Ok(crate::EXIT_ERROR)
    }
}
