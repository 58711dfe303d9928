//! The README's demo, `scripts/demo`, runs to the end on a small data set
//! with the binaries of this build, and the generator's command line fails
//! cleanly on a wrong day.

use std::path::Path;
use std::process::{Command, Stdio};

use coffre_tests::{coffre_bin, describe, run, sample_bin, text, without_machine_config};

/// `scripts/demo` with `COFFRE_DEMO_PREBUILT` (no build), 8 MiB of data and
/// a temporary work folder: it succeeds and says the restore is identical.
#[test]
fn the_demo_runs_to_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    // Both binaries in one folder, wherever each was found.
    let prebuilt = tmp.path().join("bin");
    std::fs::create_dir(&prebuilt).unwrap();
    std::os::unix::fs::symlink(coffre_bin(), prebuilt.join("coffre")).unwrap();
    std::os::unix::fs::symlink(sample_bin(), prebuilt.join("coffre-sample")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/demo");
    let mut demo = Command::new(script);
    let out = run(without_machine_config(&mut demo)
        .arg(tmp.path().join("work"))
        .env("COFFRE_DEMO_PREBUILT", &prebuilt)
        .env("SCALE_MB", "8")
        .env("COFFRE_CACHE_DIR", tmp.path().join("cache"))
        .env_remove("COFFRE_PASSWORD_FILE")
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null()));
    assert!(out.status.success(), "{}", describe(&out));
    let said = text(&out.stdout);
    assert!(said.contains("Identical"), "{}", describe(&out));
    assert!(!said.contains("cargo build"), "the demo built: {said}");
}

/// `coffre-sample`: a day out of order and a missing folder are one line on
/// stderr and exit code 1; `days` prints one JSON line per day.
#[test]
fn the_generator_command_line_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("officine");
    let sample = |args: &[&str]| {
        let mut c = Command::new(sample_bin());
        c.args(args).stdin(Stdio::null());
        run(&mut c)
    };
    let d = dir.to_str().unwrap();
    let out = sample(&["init", d, "--scale-mb", "4", "--seed", "3"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text(&out.stdout).starts_with("{\"day\":0,\"seed\":3,"),
        "{}",
        describe(&out)
    );

    for (args, says) in [
        (vec!["day", d, "--day", "2"], "the next day is 1, not 2"),
        (vec!["info", "/nonexistent/officine"], "not a sample tree"),
        (vec!["init", d], "is not empty"),
        (vec!["init", "/tmp/x", "--scale-mb", "2"], "--scale-mb"),
    ] {
        let out = sample(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        let err = text(&out.stderr);
        assert!(
            err.contains(says) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }

    let out = sample(&["days", d, "--to", "3"]);
    assert!(out.status.success(), "{}", describe(&out));
    let lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["day"], i + 1);
        assert!(
            v["changed_compressed_bytes"].as_u64().unwrap() > 0,
            "{line}"
        );
    }
    let out = sample(&["info", d]);
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(
        (v["seed"].as_u64(), v["last_day"].as_u64()),
        (Some(3), Some(3))
    );
    assert!(text(&sample(&["--help"]).stdout).contains("Usage"));
}
