//! Every command answers --help. (This test also makes `cargo test` build the
//! `coffre` binary that the end-to-end tests in `tests/` run.)

use std::process::Command;

/// The subcommands `coffre <path> --help` lists.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Every command and subcommand, found from the help itself so that a new
/// one cannot be forgotten here.
#[test]
fn every_command_has_help() {
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen = 0;
    while let Some(cmd) = todo.pop() {
        let out = Command::new(env!("CARGO_BIN_EXE_coffre"))
            .args(&cmd)
            .arg("--help")
            .output()
            .expect("run coffre");
        assert!(out.status.success(), "coffre {cmd:?} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "no usage for {cmd:?}: {text}");
        for sub in subcommands(&text) {
            let mut next = cmd.clone();
            next.push(sub);
            todo.push(next);
        }
        seen += 1;
    }
    // The top level, its commands, and the subcommands of key, policy,
    // config and schedule.
    assert!(seen > 25, "only {seen} commands found");
}

#[test]
fn no_passphrase_and_no_terminal_is_a_clear_error_not_a_hang() {
    let dir = std::env::temp_dir().join(format!("coffre-help-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args(["-r"])
        .arg(&dir)
        .arg("init")
        .env_remove("COFFRE_PASSWORD")
        .env_remove("COFFRE_PASSWORD_FILE")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run coffre");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no passphrase given"));
    assert!(!dir.join("config").exists());
}
