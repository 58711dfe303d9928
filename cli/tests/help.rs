//! Every command answers --help. (This test also makes `cargo test` build the
//! `coffre` binary that the end-to-end tests in `tests/` run.)

use std::process::Command;

#[test]
fn every_command_has_help() {
    for cmd in [
        &[][..],
        &["init"],
        &["snapshot"],
        &["snapshots"],
        &["ls"],
        &["restore"],
        &["check"],
        &["rebuild-index"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_coffre"))
            .args(cmd)
            .arg("--help")
            .output()
            .expect("run coffre");
        assert!(out.status.success(), "coffre {cmd:?} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "no usage for {cmd:?}: {text}");
    }
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
