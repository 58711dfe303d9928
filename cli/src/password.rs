//! Where the passphrase comes from: COFFRE_PASSWORD, --password-file /
//! COFFRE_PASSWORD_FILE, the configuration's `password_file`, or a prompt
//! when a terminal is attached. Never a hang waiting on a pipe.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use zeroize::Zeroizing;

use crate::args::Cli;

/// A passphrase, wiped from memory when dropped.
pub type Passphrase = Zeroizing<Vec<u8>>;

/// The passphrase for an existing repository.
pub fn get(cli: &Cli) -> Result<Passphrase> {
    if let Some(p) = from_env_or_file(cli)? {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase given. Set COFFRE_PASSWORD_FILE (or --password-file, or password_file in the configuration) to a file holding it, or run in a terminal");
    }
    Ok(Zeroizing::new(
        rpassword::prompt_password("Passphrase: ")
            .context("reading the passphrase")?
            .into_bytes(),
    ))
}

/// A passphrase for a new repository: asked twice on a terminal.
pub fn new(cli: &Cli) -> Result<Passphrase> {
    if let Some(p) = from_env_or_file(cli)? {
        return check_strength(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase given. Set COFFRE_PASSWORD_FILE (or --password-file) to a file holding the new passphrase, or run in a terminal");
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("New passphrase: ").context("reading the passphrase")?,
    );
    let second = Zeroizing::new(
        rpassword::prompt_password("Same passphrase again: ").context("reading the passphrase")?,
    );
    if first != second {
        bail!("the two passphrases differ; nothing was created. Run init again");
    }
    check_strength(Zeroizing::new(first.as_bytes().to_vec()))
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
        let bytes = std::fs::read(path)
            .map(Zeroizing::new)
            .with_context(|| format!("cannot read the passphrase file {}", path.display()))?;
        return Ok(Some(first_line(&bytes)));
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
            let bytes = std::fs::read(path).map(Zeroizing::new).with_context(|| {
                format!(
                    "cannot read the passphrase file {} (password_file in {})",
                    path.display(),
                    loaded.path.display()
                )
            })?;
            return Ok(Some(first_line(&bytes)));
        }
    }
    Ok(None)
}

/// The first line of a passphrase file (the file's bytes are wiped too).
pub fn first_line(bytes: &[u8]) -> Passphrase {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    Zeroizing::new(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}
