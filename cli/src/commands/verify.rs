//! `coffre verify`: a restore test, recorded in the journal.

use std::path::Path;

use anyhow::{bail, Context, Result};
use snapshots_format::format::journal::EntryKind;
use snapshots_format::format::snapshot;
use snapshots_format::ops::verify::{self, VerifyOptions};

use crate::args::{Cli, VerifyArgs};
use crate::format;
use crate::progress::Bar;

/// Tests; exit 1 when a file did not come back as saved.
pub fn run(cli: &Cli, args: &VerifyArgs) -> Result<u8> {
    let repo = super::open(cli)?;
    crate::journal::journaled(cli, &repo, EntryKind::Verify, |note| {
        let all = super::snapshots(&repo)?;
        let (id, snap) = snapshot::resolve(&all, &args.snapshot)?;
        let share = share_of(&args.sample)?;
        let scratch = match &args.scratch {
            Some(p) => p.clone(),
            None => std::env::temp_dir().join(format!("coffre-verify-{}", std::process::id())),
        };
        note.summary = format!("restore test of snapshot {}", id.short());
        let check_cmd = args.check_cmd.clone();
        let run_check = move |file: &Path| -> std::result::Result<(), String> {
            let Some(cmd) = &check_cmd else {
                return Ok(());
            };
            let line = cmd.replace("{}", &shell_quote(&file.display().to_string()));
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&line)
                .output()
                .map_err(|e| format!("{line}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                let said = String::from_utf8_lossy(&out.stderr);
                let said = said.lines().last().unwrap_or("").trim().to_owned();
                Err(format!("`{line}` failed ({}): {said}", out.status))
            }
        };
        let opts = VerifyOptions {
            share,
            include: args.include.iter().map(|p| p.as_bytes().to_vec()).collect(),
            scratch: scratch.clone(),
            seed: super::now()?.sec as u64,
            check: Some(&run_check),
        };
        let bar = Bar::new(cli.json, "verify");
        let report = verify::verify(&repo, snap, &opts, &bar)
            .with_context(|| format!("restore test in {}", scratch.display()))?;
        bar.finish();
        note.summary = format!(
            "restore test of snapshot {} ({}): {} of {} file(s), {}, {} failure(s)",
            id.short(),
            snap.local().format("%Y-%m-%d %H:%M"),
            report.files_tested,
            report.files_in_snapshot,
            format::bytes(report.bytes_tested),
            report.failures.len()
        );
        note.details = serde_json::json!({
            "snapshot": id.to_hex(),
            "sample": args.sample,
            "include": args.include,
            "check_cmd": args.check_cmd,
            "report": report,
        });
        if cli.json {
            super::print_json(&serde_json::json!({"snapshot": id.to_hex(), "report": report}))?;
        } else {
            println!(
                "Restore test of snapshot {} ({}): {} of {} file(s) restored and compared, {}.",
                id.short(),
                snap.local().format("%Y-%m-%d %H:%M"),
                report.files_tested,
                report.files_in_snapshot,
                format::bytes(report.bytes_tested)
            );
        }
        if report.is_ok() {
            if !cli.json {
                println!("Every file came back exactly as it was saved.");
            }
            return Ok(0);
        }
        for f in &report.failures {
            eprintln!("error: {}: {}", f.path, f.reason);
        }
        eprintln!("Some files did not come back as saved: run `coffre check --read-data`, and restore them from another drive.");
        Ok(crate::EXIT_ERROR)
    })
}

/// `2%` → 0.02; `0.5%`; `100%`.
fn share_of(s: &str) -> Result<f64> {
    let p: f64 = s
        .trim()
        .strip_suffix('%')
        .unwrap_or(s)
        .trim()
        .parse()
        .with_context(|| format!("--sample {s:?}: give a percentage, e.g. 2%"))?;
    if !(0.0..=100.0).contains(&p) {
        bail!("--sample {s:?}: between 0% and 100%");
    }
    Ok(p / 100.0)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
