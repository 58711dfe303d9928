//! One module per subcommand; `run` dispatches.

mod alarm;
mod browse;
mod check;
pub mod config;
mod copy;
mod diff;
mod drives;
mod dump;
mod find;
mod forget;
pub mod generate_docs;
mod history;
mod init;
mod journal;
pub mod key;
mod ls;
mod mount;
mod policy;
mod protect;
mod prune;
mod rebuild_index;
mod report;
mod restore;
pub mod schedule;
mod snapshot;
mod snapshots;
pub mod status;
mod umount;
mod unlock;
mod verify;

use anyhow::{Context, Result};
use snapshots_format::backend::Location;
use snapshots_format::format::tree::Timestamp;
use snapshots_format::repo::lock::{Lock, LockKind};
use snapshots_format::Repository;

use crate::args::{Cli, Command};

/// Runs the command and returns the exit code.
pub fn run(cli: &Cli) -> Result<u8> {
    match &cli.command {
        Command::Init(a) => init::run(cli, a),
        Command::Snapshot(a) => snapshot::run(cli, a),
        Command::Snapshots(a) => snapshots::run(cli, a),
        Command::Ls(a) => ls::run(cli, a),
        Command::Restore(a) => restore::run(cli, a),
        Command::History(a) => history::run(cli, a),
        Command::Find(a) => find::run(cli, a),
        Command::Diff(a) => diff::run(cli, a),
        Command::Dump(a) => dump::run(cli, a),
        Command::Check(a) => {
            let result = check::run(cli, a);
            crate::runlog::after_check(cli, a.read_data, &result);
            result
        }
        Command::Copy(a) => copy::run(cli, a),
        Command::Journal(a) => journal::run(cli, a),
        Command::Protect(a) => protect::run(cli, a),
        Command::Drives(a) => drives::run(cli, a),
        Command::Alarm(a) => alarm::run(cli, a),
        Command::Verify(a) => verify::run(cli, a),
        Command::Report(a) => report::run(cli, a),
        Command::Unprotect(a) => protect::unprotect(cli, a),
        Command::RebuildIndex => rebuild_index::run(cli),
        Command::Mount(a) => mount::run(cli, a),
        Command::Umount(a) => umount::run(a),
        Command::Forget(a) => forget::run(cli, a),
        Command::Prune(a) => prune::run(cli, a),
        Command::Policy(a) => policy::run(cli, a),
        Command::Unlock(a) => unlock::run(cli, a),
        Command::Status(a) => status::run(cli, a),
        Command::Key(a) => key::run(cli, a),
        Command::GenerateDocs(a) => generate_docs::run(a),
        Command::Config(a) => config::run(cli, a),
        Command::Schedule(a) => schedule::run(cli, a),
    }
}

/// The repository: -r / COFFRE_REPO (a folder or an `s3:` address), else
/// the configuration's repository whose drive is plugged in (or the one
/// `--drive` names).
pub fn repo_location(cli: &Cli) -> Result<Location> {
    match cli.repo.as_deref() {
        Some(p) => location_of(cli, p.as_os_str()),
        None => Ok(Location::Local(
            crate::config::repository_now(cli)?.to_path_buf(),
        )),
    }
}

/// Reads a repository named on the command line (`-r`, `copy --to`),
/// giving an S3 one the network options of this run.
pub fn location_of(cli: &Cli, arg: &std::ffi::OsStr) -> Result<Location> {
    let mut location = Location::parse(arg)?;
    if let Location::S3(s3) = &mut location {
        let rate = |v: &Option<String>| -> Result<Option<u64>> {
            v.as_deref()
                .map(|r| crate::parse::size(r).map(|n| n.max(1024)))
                .transpose()
        };
        s3.1.limit_upload = rate(&cli.limit_upload).context("--limit-upload")?;
        s3.1.limit_download = rate(&cli.limit_download).context("--limit-download")?;
        s3.1.retry_for = parse_duration(&cli.retry_for).context("--retry-for")?;
        crate::config::apply_s3(cli, &mut s3.1)?;
        // Whole packs read from the store are kept beside the index
        // caches, one folder per repository address.
        let root = snapshots_format::repo::default_cache_dir()?;
        let dir = snapshots_format::backend::s3::pack_cache_dir(&root, &s3.0);
        let max = crate::config::s3_cache_size(cli)?;
        s3.1.pack_cache = (max > 0).then_some((dir, max));
    }
    Ok(location)
}

/// Opens the repository of [`repo_location`].
pub fn open(cli: &Cli) -> Result<Repository> {
    let location = repo_location(cli)?;
    // Read the header before asking for a passphrase: a missing drive or a
    // wrong path is reported without a useless prompt.
    Repository::read_header(&location)?;
    let pass = crate::password::get(cli)?;
    let repo = Repository::open(&location, &pass)?;
    warn_if_recovery_key(&repo);
    Ok(repo)
}

/// Opening with the printed recovery key is the exception: say so, so that
/// a new passphrase is set and the sheet put back in its safe.
fn warn_if_recovery_key(repo: &Repository) {
    use snapshots_format::format::keyfile::KeyKind;
    let key = repo.current_key();
    if key.label.is_some_and(|l| l.kind == KeyKind::Recovery) {
        eprintln!(
            "warning: opened with the recovery key {}. Set a passphrase with `coffre key add --name <who>` and keep the sheet locked away.",
            key.id
        );
    }
}

/// Every readable snapshot, oldest first; damaged records are reported on
/// stderr and left out, so one bad record does not hide the others.
pub fn snapshots(
    repo: &Repository,
) -> Result<
    Vec<(
        snapshots_format::SnapshotId,
        snapshots_format::format::snapshot::Snapshot,
    )>,
> {
    let (all, errors) = repo.snapshots()?;
    for e in errors {
        eprintln!("warning: {e}; run `coffre check`");
    }
    Ok(all)
}

/// Reuses what a run killed before (power cut, drive unplugged) left in
/// `repo`, telling the user; `left_by` names that run ("an interrupted
/// run"). Call with the lock held.
pub fn adopt_leftovers(
    cli: &Cli,
    repo: &Repository,
    left_by: &str,
) -> Result<snapshots_format::ops::adopt::AdoptReport> {
    let adopted = snapshots_format::ops::adopt::adopt_leftover_packs(repo)?;
    if adopted.packs > 0 && !cli.json {
        eprintln!(
            "Reusing {} pack(s) ({}) left by {left_by}.",
            adopted.packs,
            crate::format::bytes(adopted.bytes)
        );
    }
    if !adopted.removed_index_files.is_empty() {
        // Also under --json: the operator must see what was deleted.
        eprintln!(
            "warning: removed {} damaged index file(s) ({}); the packs they listed were indexed again from the packs themselves",
            adopted.removed_index_files.len(),
            adopted.removed_index_files.join(", ")
        );
    }
    Ok(adopted)
}

/// Takes a repository lock, telling the user whom it waits for.
pub fn lock(cli: &Cli, repo: &Repository, kind: LockKind, command: &str) -> Result<Lock> {
    let wait = parse_duration(&cli.lock_wait)?;
    let quiet = cli.json;
    Ok(snapshots_format::repo::lock::acquire(
        repo,
        kind,
        command,
        wait,
        &|h| {
            if !quiet {
                eprintln!(
                    "Waiting for {} to finish (up to {})...",
                    h.describe(),
                    cli.lock_wait
                );
            }
        },
    )?)
}

/// "30s", "10m", "2h", "2d", "1w", "45" (seconds).
pub fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("invalid duration {s:?} (examples: 30s, 10m, 2h)"))?;
    let unit_secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => anyhow::bail!("invalid duration {s:?} (examples: 30s, 10m, 2h)"),
    };
    let secs = n
        .checked_mul(unit_secs)
        .with_context(|| format!("duration {s:?} is too long"))?;
    Ok(std::time::Duration::from_secs(secs))
}

/// "5%" or "0.05" -> 0.05.
pub fn parse_share(s: &str) -> Result<f64> {
    let t = s.trim();
    let v: f64 = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .with_context(|| format!("invalid share {s:?} (examples: 5%, 0.1)"))?;
    if !(0.0..=1.0).contains(&v) {
        anyhow::bail!("{s:?} is not between 0% and 100%");
    }
    Ok(v)
}

/// The current time, or `COFFRE_FAKE_NOW` (Unix seconds or RFC 3339) for
/// tests that simulate days; documented as test-only.
pub fn now() -> Result<Timestamp> {
    if let Some(v) = std::env::var_os("COFFRE_FAKE_NOW") {
        let v = v.to_string_lossy();
        if let Ok(sec) = v.parse::<i64>() {
            return Ok(Timestamp { sec, nsec: 0 });
        }
        let t = chrono::DateTime::parse_from_rfc3339(&v)
            .with_context(|| format!("COFFRE_FAKE_NOW={v} is not a time"))?;
        return Ok(Timestamp {
            sec: t.timestamp(),
            nsec: t.timestamp_subsec_nanos(),
        });
    }
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(Timestamp {
        sec: d.as_secs() as i64,
        nsec: d.subsec_nanos(),
    })
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A JSON array printed an element at a time, laid out exactly as
/// `print_json` lays out a whole array: a listing of a million entries is
/// never held, and a script reading it sees the same bytes.
pub struct JsonArrayOut {
    started: bool,
}

impl JsonArrayOut {
    /// Nothing is printed before the first element or `finish`.
    pub fn new() -> Self {
        Self { started: false }
    }

    /// Prints one element.
    pub fn push(&mut self, value: &impl serde::Serialize) -> Result<()> {
        print!("{}", self.element(value)?);
        Ok(())
    }

    /// What `push` prints.
    fn element(&mut self, value: &impl serde::Serialize) -> Result<String> {
        let element = serde_json::to_string_pretty(value)?;
        let mut text = String::with_capacity(element.len() + element.len() / 8 + 4);
        text.push_str(if self.started { ",\n" } else { "[\n" });
        self.started = true;
        // Strings are escaped, so every line break is the layout's own.
        for (i, line) in element.split('\n').enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str("  ");
            text.push_str(line);
        }
        Ok(text)
    }

    /// Closes the array.
    pub fn finish(self) {
        println!("{}", self.end());
    }

    /// What `finish` prints, before its line break.
    fn end(&self) -> &'static str {
        if self.started {
            "\n]"
        } else {
            "[]"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JsonArrayOut;

    #[test]
    fn an_array_printed_element_by_element_reads_as_the_whole_array() {
        let items = [
            serde_json::json!({"path": "a\nb", "size": 1, "nested": {"x": [1, 2]}}),
            serde_json::json!({"path": "c", "target": null}),
            serde_json::json!([]),
        ];
        for n in 0..=items.len() {
            let mut out = JsonArrayOut::new();
            let mut text = String::new();
            for item in &items[..n] {
                text.push_str(&out.element(item).unwrap());
            }
            text.push_str(out.end());
            let whole = serde_json::to_string_pretty(&items[..n].to_vec()).unwrap();
            assert_eq!(text, whole, "{n} elements");
        }
    }
}
