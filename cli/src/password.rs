//! Where the passphrase comes from: COFFRE_PASSWORD, --password-file /
//! COFFRE_PASSWORD_FILE, the configuration's `password_file`, or a prompt
//! when a terminal is attached. Never a hang waiting on a pipe. `copy`'s
//! target has its own: COFFRE_TO_PASSWORD, --to-password-file, a prompt.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use zeroize::Zeroizing;

use crate::args::Cli;

/// A passphrase, wiped from memory when dropped.
pub type Passphrase = Zeroizing<Vec<u8>>;

/// The passphrase for an existing repository.
pub fn get(cli: &Cli) -> Result<Passphrase> {
    existing(from_env_or_file(cli)?, "Passphrase: ", "no passphrase given. Set COFFRE_PASSWORD_FILE (or --password-file, or password_file in the configuration) to a file holding it, or run in a terminal")
}

/// A passphrase for a new repository: asked twice on a terminal.
pub fn new(cli: &Cli) -> Result<Passphrase> {
    fresh(from_env_or_file(cli)?, "New passphrase: ", "no passphrase given. Set COFFRE_PASSWORD_FILE (or --password-file) to a file holding the new passphrase, or run in a terminal")
}

/// The passphrase of `copy`'s target: COFFRE_TO_PASSWORD, `file`
/// (--to-password-file / COFFRE_TO_PASSWORD_FILE), or a prompt; asked
/// twice when the target is `created` by the copy.
pub fn target(file: Option<&std::path::Path>, created: bool) -> Result<Passphrase> {
    let given = if let Some(p) = std::env::var_os("COFFRE_TO_PASSWORD") {
        use std::os::unix::ffi::OsStringExt;
        Some(Zeroizing::new(p.into_vec()))
    } else if let Some(path) = file {
        Some(read_file(path, "")?)
    } else {
        None
    };
    let hint = "no passphrase given for the target. Set COFFRE_TO_PASSWORD_FILE (or --to-password-file) to a file holding it, or run in a terminal";
    if created {
        fresh(given, "New passphrase for the target: ", hint)
    } else {
        existing(given, "Passphrase of the target: ", hint)
    }
}

/// `given`, else a prompt (never a hang on a pipe: `hint` then says what
/// to set).
fn existing(given: Option<Passphrase>, prompt: &str, hint: &str) -> Result<Passphrase> {
    if let Some(p) = given {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("{hint}");
    }
    Ok(Zeroizing::new(
        rpassword::prompt_password(prompt)
            .context("reading the passphrase")?
            .into_bytes(),
    ))
}

/// As [`existing`], for a new passphrase: asked twice, checked for length.
fn fresh(given: Option<Passphrase>, prompt: &str, hint: &str) -> Result<Passphrase> {
    if let Some(p) = given {
        return check_strength(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("{hint}");
    }
    let first =
        Zeroizing::new(rpassword::prompt_password(prompt).context("reading the passphrase")?);
    let second = Zeroizing::new(
        rpassword::prompt_password("Same passphrase again: ").context("reading the passphrase")?,
    );
    if first != second {
        bail!("the two passphrases differ; nothing was created. Run the command again");
    }
    check_strength(Zeroizing::new(first.as_bytes().to_vec()))
}

/// The first line of the passphrase file `path`; `whose` names where it
/// was configured, for the message.
fn read_file(path: &std::path::Path, whose: &str) -> Result<Passphrase> {
    let bytes = std::fs::read(path)
        .map(Zeroizing::new)
        .with_context(|| format!("cannot read the passphrase file {}{whose}", path.display()))?;
    Ok(first_line(&bytes))
}

fn check_strength(p: Passphrase) -> Result<Passphrase> {
    if p.len() < 8 {
        bail!("the passphrase is too short (at least 8 characters; a few words are best)");
    }
    Ok(p)
}

fn from_env_or_file(cli: &Cli) -> Result<Option<Passphrase>> {
    if let Some(p) = std::env::var_os("COFFRE_PASSWORD") {
        use std::os::unix::ffi::OsStringExt;
        return Ok(Some(Zeroizing::new(p.into_vec())));
    }
    if let Some(path) = &cli.password_file {
        return read_file(path, "").map(Some);
    }
    if let Some(loaded) = crate::config::load(cli)? {
        if let Some(path) = &loaded.config.password_file {
            // A fresh install names a file nobody wrote yet: on a terminal,
            // ask rather than refuse (a scheduled run still fails, naming it).
            if !path.exists() && std::io::stdin().is_terminal() {
                eprintln!(
                    "note: the passphrase file {} (password_file in {}) does not exist yet; asking instead",
                    path.display(),
                    loaded.path.display()
                );
                return Ok(None);
            }
            let whose = format!(" (password_file in {})", loaded.path.display());
            return read_file(path, &whose).map(Some);
        }
    }
    Ok(None)
}

/// The first line of a passphrase file (the file's bytes are wiped too).
pub fn first_line(bytes: &[u8]) -> Passphrase {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    Zeroizing::new(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}
