//! What the CLI tests share: a `coffre` command kept away from the
//! machine's own settings (configuration file, repository, passphrases),
//! its cache in the test's folder, stdin closed.

use std::path::Path;
use std::process::{Command, Stdio};

/// `coffre -r <tmp>/repo` with `pass`, isolated under `tmp`.
pub fn coffre(tmp: &Path, pass: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffre"));
    cmd.arg("-r")
        .arg(tmp.join("repo"))
        .env("COFFRE_PASSWORD", pass)
        .env("COFFRE_CACHE_DIR", tmp.join("cache"))
        .env("COFFRE_CONFIG_DEFAULT", tmp.join("no-config.toml"))
        .env_remove("COFFRE_REPO")
        .env_remove("COFFRE_CONFIG")
        .env_remove("COFFRE_PASSWORD_FILE")
        .env_remove("COFFRE_NEW_PASSWORD")
        .stdin(Stdio::null());
    cmd
}
