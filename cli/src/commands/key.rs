//! `coffre key list|add|remove|passwd|recovery-sheet`: several passphrases
//! (pharmacist, IT provider), changed when staff leave, and a printed
//! recovery key. Data is never touched: every key wraps the same master key.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use snapshots_format::format::journal::EntryKind;
use snapshots_format::format::keyfile::{self, KdfParams, KeyKind};
use snapshots_format::repo::keyring::{self, KeyEntry};

use zeroize::Zeroizing;

use crate::args::Cli;
use crate::password::Passphrase;
use crate::recovery_sheet::{self, Sheet};

/// `coffre key`.
#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub action: KeyAction,
}

/// Where a new passphrase comes from.
#[derive(Args, Debug)]
pub struct NewPassphrase {
    /// File holding the new passphrase (first line). Otherwise
    /// COFFRE_NEW_PASSWORD, or a prompt (twice) on a terminal.
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
}

/// The `key` actions.
#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// List the keys: name, kind, when and by whom each was made.
    List,
    /// Add a passphrase (e.g. one for the IT provider).
    Add {
        /// A name for it: who holds it (pharmacien, prestataire...).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        new: NewPassphrase,
    },
    /// Remove a key (by name or id): its passphrase no longer opens the
    /// repository. The last key cannot be removed.
    Remove {
        /// The key's name or id (see `coffre key list`).
        key: String,
    },
    /// Change the passphrase you opened the repository with.
    Passwd {
        #[command(flatten)]
        new: NewPassphrase,
    },
    /// Make a recovery key and print it on a sheet (HTML, PDF or text,
    /// by the file's extension) that opens the repository alone.
    RecoverySheet {
        /// Where to write the sheet: .html, .pdf or .txt.
        #[arg(long)]
        out: PathBuf,
        /// The recovery key's name.
        #[arg(long, default_value = "secours")]
        name: String,
    },
}

/// Runs `coffre key`.
pub fn run(cli: &Cli, args: &KeyArgs) -> Result<u8> {
    let repo = super::open(cli)?;
    if let KeyAction::List = &args.action {
        return list(cli, &repo.list_keys()?);
    }
    crate::journal::journaled(cli, &repo, EntryKind::Key, |note| {
        let what = match &args.action {
            KeyAction::Add { name, .. } => format!("key add {name:?}"),
            KeyAction::Remove { key } => format!("key remove {key}"),
            KeyAction::Passwd { .. } => "key passwd".to_owned(),
            KeyAction::RecoverySheet { name, .. } => format!("key recovery-sheet {name:?}"),
            KeyAction::List => "key list".to_owned(),
        };
        note.summary = what;
        change(cli, args, &repo)
    })
}

/// Adds, removes or changes a key.
fn change(cli: &Cli, args: &KeyArgs, repo: &snapshots_format::Repository) -> Result<u8> {
    match &args.action {
        KeyAction::List => list(cli, &repo.list_keys()?),
        KeyAction::Add { name, new } => {
            check_name(name, &repo.list_keys()?)?;
            let pass = new_passphrase(new)?;
            let label = keyring::new_label(KeyKind::Passphrase, name);
            let id = repo.add_key(&pass, KdfParams::default(), &label)?;
            report(cli, "added", &id, name)
        }
        KeyAction::Remove { key } => {
            let gone = repo.remove_key(key)?;
            let name = gone.label.map(|l| l.name).unwrap_or_default();
            report(cli, "removed", &gone.id, &name)
        }
        KeyAction::Passwd { new } => {
            let pass = new_passphrase(new)?;
            let id = repo.change_passphrase(&pass, KdfParams::default())?;
            if !cli.json {
                println!(
                    "Passphrase changed (key {id}); the old one no longer opens the repository."
                );
                return Ok(0);
            }
            report(cli, "changed", &id, "")
        }
        KeyAction::RecoverySheet { out, name } => {
            check_name(name, &repo.list_keys()?)?;
            // The file first: a key whose sheet could not be written
            // would open the repository and be known to nobody.
            let file = create_sheet(out)?;
            let key = Zeroizing::new(keyfile::new_recovery_key());
            let label = keyring::new_label(KeyKind::Recovery, name);
            let id = repo.add_key(key.as_bytes(), KdfParams::default(), &label)?;
            let sheet = Sheet {
                key: key.to_string(),
                repository: repo.backend().location(),
                repo_id: snapshots_format::id::to_hex(&repo.header().repo_id),
                key_id: id.clone(),
                made: format!(
                    "{} by {} on {}",
                    chrono::Local::now().format("%Y-%m-%d %H:%M"),
                    label.user,
                    label.host
                ),
            };
            if let Err(e) = write_sheet(file, out, &sheet) {
                let _ = std::fs::remove_file(out);
                let _ = repo.remove_key(&id);
                return Err(e.context("the recovery key was not kept"));
            }
            if !cli.json {
                println!(
                    "Recovery key {id} added; its sheet is {}. Print it, keep it locked away from the pharmacy, then delete the file: it opens every backup.",
                    out.display()
                );
                return Ok(0);
            }
            report(cli, "added", &id, name)
        }
    }
}

fn check_name(name: &str, keys: &[KeyEntry]) -> Result<()> {
    if name.trim().is_empty() || name.len() > 64 {
        bail!("give the key a short name (1 to 64 characters), e.g. --name prestataire");
    }
    if keys
        .iter()
        .any(|k| k.label.as_ref().is_some_and(|l| l.name == name))
    {
        bail!("a key named {name:?} exists already: pick another name, or `coffre key remove {name}` first");
    }
    Ok(())
}

fn report(cli: &Cli, what: &str, id: &str, name: &str) -> Result<u8> {
    if cli.json {
        super::print_json(&serde_json::json!({ what: { "id": id, "name": name } }))?;
    } else {
        println!("Key {id} ({name}) {what}.");
    }
    Ok(0)
}

fn list(cli: &Cli, keys: &[KeyEntry]) -> Result<u8> {
    if cli.json {
        super::print_json(&keys)?;
        return Ok(0);
    }
    for k in keys {
        let mark = if k.current { "*" } else { " " };
        match (&k.label, &k.problem) {
            (Some(l), _) => {
                let when = chrono::DateTime::from_timestamp(l.created, 0)
                    .map(|t| {
                        t.with_timezone(&chrono::Local)
                            .format("%Y-%m-%d %H:%M")
                            .to_string()
                    })
                    .unwrap_or_default();
                let kind = match l.kind {
                    KeyKind::Passphrase => "passphrase",
                    KeyKind::Recovery => "recovery key",
                };
                println!(
                    "{mark} {}  {:<14} {:<12}  made {when} by {} on {}",
                    k.id, l.name, kind, l.user, l.host
                );
            }
            (None, Some(problem)) => println!("{mark} {}  unreadable: {problem}", k.id),
            (None, None) => println!("{mark} {}  (no name: made before key names)", k.id),
        }
    }
    println!("* = the key used now");
    Ok(0)
}

/// The new passphrase: `--new-password-file`, `COFFRE_NEW_PASSWORD`, or a
/// prompt (twice); wiped from memory when dropped.
fn new_passphrase(src: &NewPassphrase) -> Result<Passphrase> {
    let pass = if let Some(path) = &src.new_password_file {
        let bytes = std::fs::read(path)
            .map(Zeroizing::new)
            .with_context(|| format!("cannot read the new passphrase file {}", path.display()))?;
        crate::password::first_line(&bytes)
    } else if let Some(p) = std::env::var_os("COFFRE_NEW_PASSWORD") {
        use std::os::unix::ffi::OsStringExt;
        Zeroizing::new(p.into_vec())
    } else {
        if !std::io::stdin().is_terminal() {
            bail!("no new passphrase given: use --new-password-file FILE or COFFRE_NEW_PASSWORD, or run in a terminal");
        }
        let first = Zeroizing::new(
            rpassword::prompt_password("New passphrase: ").context("reading the passphrase")?,
        );
        let second = Zeroizing::new(
            rpassword::prompt_password("Same passphrase again: ")
                .context("reading the passphrase")?,
        );
        if first != second {
            bail!("the two passphrases differ; nothing was changed");
        }
        Zeroizing::new(first.as_bytes().to_vec())
    };
    if pass.len() < 8 {
        bail!("the new passphrase is too short (at least 8 characters; a few words are best)");
    }
    Ok(pass)
}

/// Creates the sheet's file, private from the start (it opens every
/// backup), refusing to overwrite anything.
fn create_sheet(out: &std::path::Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if !matches!(
        out.extension().and_then(|e| e.to_str()),
        Some("pdf" | "html" | "htm" | "txt")
    ) {
        bail!("--out must end in .pdf, .html or .txt");
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {} (it must not exist yet)", out.display()))
}

fn write_sheet(mut file: std::fs::File, out: &std::path::Path, sheet: &Sheet) -> Result<()> {
    use std::io::Write;
    let bytes = Zeroizing::new(match out.extension().and_then(|e| e.to_str()) {
        Some("pdf") => recovery_sheet::pdf(sheet)?,
        Some("txt") => recovery_sheet::text(sheet)?.into_bytes(),
        _ => recovery_sheet::html(sheet)?.into_bytes(),
    });
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", out.display()))
}
