//! `coffre config check|show`: is the configuration file right, and what
//! would a command use now (which drive, which passphrase file).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use crate::args::Cli;
use crate::config::{self, Invalid, Loaded, Purpose, System};

/// `coffre config`.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

/// `coffre config check|show`.
#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Validate the configuration file: every problem with its line; exit 1 if any.
    Check,
    /// Print the configuration in effect and the repository a command would use now.
    Show,
}

/// Runs `coffre config`.
pub fn run(cli: &Cli, args: &ConfigArgs) -> Result<u8> {
    let Some(path) = config::path(cli)? else {
        bail!(
            "no configuration file: {} does not exist. Give --config PATH, or start from packaging/coffre.toml (see docs/CONFIG.md)",
            config::default_path().display()
        );
    };
    match &args.action {
        ConfigAction::Check => check(cli, &path),
        ConfigAction::Show => show(cli),
    }
}

fn check(cli: &Cli, path: &Path) -> Result<u8> {
    let loaded = match config::read(path) {
        Ok(l) => l,
        Err(e) => {
            let Some(invalid) = e.downcast_ref::<Invalid>() else {
                return Err(e);
            };
            if cli.json {
                let problems: Vec<_> = invalid
                    .problems
                    .iter()
                    .map(|p| serde_json::json!({"line": p.line, "column": p.column, "message": p.message}))
                    .collect();
                super::print_json(&serde_json::json!({
                    "path": invalid.path, "ok": false, "problems": problems,
                }))?;
            }
            eprintln!("{invalid}");
            let n = invalid.problems.len();
            eprintln!(
                "{}: {n} problem{}",
                invalid.path.display(),
                if n == 1 { "" } else { "s" }
            );
            return Ok(crate::EXIT_ERROR);
        }
    };
    let warnings = warnings(&loaded);
    let summary = summary(&loaded);
    if cli.json {
        super::print_json(&serde_json::json!({
            "path": loaded.path, "ok": true, "summary": summary, "warnings": warnings,
        }))?;
    } else {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        println!("{}: OK ({summary})", loaded.path.display());
    }
    Ok(0)
}

/// "2 repositories, 1 source, retention ..., schedule ...".
fn summary(loaded: &Loaded) -> String {
    let c = &loaded.config;
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = vec![
        plural(c.repositories.len(), "repository", "repositories"),
        plural(c.snapshot.sources.len(), "source", "sources"),
    ];
    if let Some(p) = c.retention.policy() {
        parts.push(format!("retention {p}"));
    }
    if let Some(s) = &c.schedule {
        parts.push(format!("schedule {} {}", s.weekdays, s.at));
    }
    if let (Some(cmd), Some(to)) = (c.notify.mail_command(), &c.notify.mail_to) {
        parts.push(format!("mail to {to} through {cmd}"));
    }
    if let Some(url) = &c.notify.webhook {
        parts.push(format!("webhook {}", url.0));
    }
    parts.join(", ")
}

/// What is valid but will not work as it stands: missing files and folders.
fn warnings(loaded: &Loaded) -> Vec<String> {
    let c = &loaded.config;
    let mut w = Vec::new();
    if let Some(p) = &c.password_file {
        if let Err(e) = std::fs::File::open(p) {
            w.push(format!("password_file {}: {e}", p.display()));
        }
    }
    for s in &c.snapshot.sources {
        if !s.is_dir() {
            w.push(format!(
                "source {} is not a folder here (yet?)",
                s.display()
            ));
        }
    }
    if let Some(p) = &c.snapshot.exclude_file {
        if !p.is_file() {
            w.push(format!("exclude_file {} does not exist", p.display()));
        }
    }
    if c.snapshot.sources.is_empty() {
        w.push(
            "[snapshot] has no sources: `coffre snapshot` will need a folder on its command line"
                .to_string(),
        );
    }
    w
}

/// Where the passphrase would come from now.
fn password_source(cli: &Cli, c: &config::Config) -> String {
    if std::env::var_os("COFFRE_PASSWORD").is_some() {
        "COFFRE_PASSWORD".to_string()
    } else if let Some(p) = &cli.password_file {
        format!("{} (--password-file / COFFRE_PASSWORD_FILE)", p.display())
    } else if let Some(p) = &c.password_file {
        format!("{} (password_file)", p.display())
    } else {
        "asked on the terminal".to_string()
    }
}

fn show(cli: &Cli) -> Result<u8> {
    let Some(loaded) = config::load(cli)? else {
        bail!("no configuration file");
    };
    let c = &loaded.config;
    // The repository a command would use, and why; a missing drive is a
    // fact to show, not an error of `show`.
    let (repo_now, from, problem): (Option<(String, PathBuf)>, &str, Option<String>) = match &cli
        .repo
    {
        Some(p) => (Some((String::new(), p.clone())), "-r / COFFRE_REPO", None),
        None => match config::choose(c, cli.drive.as_deref(), Purpose::Use, &System::default()) {
            Ok(ch) => (
                Some((ch.name, ch.path)),
                if cli.drive.is_some() {
                    "--drive"
                } else {
                    "plugged in"
                },
                None,
            ),
            Err(e) => (None, "", Some(format!("{e:#}"))),
        },
    };
    let cache_dir = cli
        .cache_dir
        .clone()
        .or_else(|| c.cache_dir.clone())
        .or_else(|| snapshots_format::repo::repository::default_cache_dir().ok());
    let password = password_source(cli, c);
    if cli.json {
        super::print_json(&serde_json::json!({
            "path": loaded.path,
            "repository_now": repo_now.as_ref().map(|(name, path)| serde_json::json!({
                "name": (!name.is_empty()).then_some(name), "path": path, "from": from,
            })),
            "repository_problem": problem,
            "passphrase_from": password,
            "cache_dir": cache_dir,
            "config": c,
        }))?;
        return Ok(0);
    }
    println!("# Configuration {}", loaded.path.display());
    match (&repo_now, &problem) {
        (Some((name, path)), _) if name.is_empty() => {
            println!("# Repository now: {} ({from})", path.display())
        }
        (Some((name, path)), _) => {
            println!("# Repository now: {name}, {} ({from})", path.display())
        }
        (None, Some(p)) => {
            println!("# Repository now: none.");
            for line in p.lines() {
                println!("#   {}", line.trim());
            }
        }
        (None, None) => {}
    }
    println!("# Passphrase: {password}");
    if let Some(d) = cache_dir {
        println!("# Cache: {}", d.display());
    }
    println!();
    let text = toml::to_string(c)?;
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(0)
}
