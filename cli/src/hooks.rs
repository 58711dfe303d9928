//! Commands run around a snapshot: `--before` (its failure stops the
//! snapshot), `--after` (always runs, told the result) and `--from-command`
//! (its output stored as a file). Run by `sh -c`, like a cron line.

use std::io::Read;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use snapshots_format::format::snapshot::{HookKind, HookRun, MAX_HOOK_OUTPUT};
use snapshots_format::ops::backup::Stream;

/// The end of `bytes`, at most [`MAX_HOOK_OUTPUT`] bytes, as text.
fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(MAX_HOOK_OUTPUT);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Exit code, or `-N` for a command killed by signal N.
fn status_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0))
}

/// What a command said, after `lead`, or nothing when it said nothing.
fn quoted(lead: &str, output: &str) -> String {
    let said = output.trim();
    if said.is_empty() {
        String::new()
    } else {
        format!("{lead}{said}")
    }
}

fn describe(code: i32) -> String {
    if code < 0 {
        format!("killed by signal {}", -code)
    } else {
        format!("exited with code {code}")
    }
}

/// Runs `--before CMD`; its output (stdout and stderr) is recorded.
///
/// # Errors
/// When it cannot start or exits non-zero: the snapshot must not be taken.
pub fn before(command: &str) -> Result<HookRun> {
    let started = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run the --before command {command:?}"))?;
    let code = status_code(out.status);
    let mut output = out.stdout;
    output.extend_from_slice(&out.stderr);
    let run = HookRun {
        kind: HookKind::Before,
        name: "before".into(),
        command: command.to_string(),
        status: code,
        duration_ms: started.elapsed().as_millis() as u64,
        output: tail(&output),
    };
    if code != 0 {
        bail!(
            "the --before command {} ({command:?}); no snapshot taken{}",
            describe(code),
            quoted(". It said:\n", &run.output)
        );
    }
    Ok(run)
}

/// What `--after CMD` is told about the run, in its environment.
pub struct Outcome<'a> {
    /// `ok`, `partial` (some files unreadable), `unchanged` or `failed`.
    pub result: &'a str,
    /// Coffre's exit code.
    pub exit_code: u8,
    /// The snapshot's id, when one was written.
    pub snapshot: Option<String>,
    /// The error message, when it failed.
    pub error: Option<String>,
}

/// Runs `--after CMD` with the result in `COFFRE_RESULT`,
/// `COFFRE_EXIT_CODE`, `COFFRE_SNAPSHOT_ID` and `COFFRE_ERROR`; its own
/// output goes to Coffre's.
///
/// # Errors
/// When it cannot start or exits non-zero.
pub fn after(command: &str, outcome: &Outcome<'_>) -> Result<()> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .env("COFFRE_RESULT", outcome.result)
        .env("COFFRE_EXIT_CODE", outcome.exit_code.to_string())
        .env(
            "COFFRE_SNAPSHOT_ID",
            outcome.snapshot.as_deref().unwrap_or(""),
        )
        .env("COFFRE_ERROR", outcome.error.as_deref().unwrap_or(""))
        .status()
        .with_context(|| format!("cannot run the --after command {command:?}"))?;
    let code = status_code(status);
    if code != 0 {
        bail!("the --after command {} ({command:?})", describe(code));
    }
    Ok(())
}

/// `NAME=CMD` split at the first `=`.
///
/// # Errors
/// When there is no `=` or either side is empty.
pub fn parse_from_command(spec: &str) -> Result<(String, String)> {
    match spec.split_once('=') {
        Some((name, cmd)) if !name.trim().is_empty() && !cmd.trim().is_empty() => {
            Ok((name.trim().to_string(), cmd.to_string()))
        }
        _ => bail!(
            "--from-command {spec:?}: expected NAME=COMMAND, e.g. officine.fbk='nbackup -B 0 /srv/db/officine.fdb stdout'"
        ),
    }
}

/// Starts `--from-command NAME=CMD` and hands its output to the snapshot;
/// once the output ends the command's exit status decides whether the
/// snapshot may be written.
///
/// # Errors
/// When the command cannot be started.
pub fn from_command(name: &str, command: &str) -> Result<Stream> {
    let started = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run the command for {name} ({command:?})"))?;
    let stdout = child
        .stdout
        .take()
        .context("the command's output is not available")?;
    // stderr is drained beside stdout: a chatty command must not block
    // on a full pipe while the snapshot waits for its output.
    let stderr = child.stderr.take();
    let collected = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&collected);
    let drain = std::thread::spawn(move || {
        if let Some(mut err) = stderr {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            if let Ok(mut s) = sink.lock() {
                *s = buf;
            }
        }
    });
    let name_owned = name.to_string();
    let command_owned = command.to_string();
    let finish = move || -> std::result::Result<HookRun, String> {
        finish_command(child, drain, &collected, started, name_owned, command_owned)
    };
    Ok(Stream {
        name: name.to_string(),
        reader: Box::new(Output(stdout)),
        finish: Box::new(finish),
    })
}

/// The command's stdout (a type of our own so that the snapshot holds a
/// plain reader).
struct Output(ChildStdout);

impl Read for Output {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

fn finish_command(
    mut child: Child,
    drain: std::thread::JoinHandle<()>,
    collected: &Mutex<Vec<u8>>,
    started: Instant,
    name: String,
    command: String,
) -> std::result::Result<HookRun, String> {
    let status = child.wait().map_err(|e| e.to_string())?;
    let _ = drain.join();
    let output = collected.lock().map(|s| tail(&s)).unwrap_or_default();
    let code = status_code(status);
    if code != 0 {
        return Err(format!(
            "{} ({command:?}){}",
            describe(code),
            quoted(": ", &output)
        ));
    }
    Ok(HookRun {
        kind: HookKind::FromCommand,
        name,
        command,
        status: code,
        duration_ms: started.elapsed().as_millis() as u64,
        output,
    })
}
