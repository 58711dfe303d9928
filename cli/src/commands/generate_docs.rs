//! `coffre generate-docs`: man pages and shell completions, for packaging.
//!
//! Both are made from the command line's own definition (`crate::args::Cli`),
//! so they can never disagree with `--help`. `scripts/build-deb` runs this
//! command and puts the files where Debian looks for them (docs/PACKAGING.md).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// `coffre generate-docs`.
#[derive(Args, Debug)]
pub struct GenerateDocsArgs {
    /// Folder to write into: man pages go to OUT/man (coffre.1, coffre-snapshot.1,
    /// coffre-key-add.1, ...), completions to OUT/completions (coffre for bash,
    /// _coffre for zsh, coffre.fish). Created if missing; files are replaced.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// The shells completions are written for, and each file's name as the
/// shell looks it up (bash by command name, zsh `_command`, fish `command.fish`).
const COMPLETIONS: [(Shell, &str); 3] = [
    (Shell::Bash, "coffre"),
    (Shell::Zsh, "_coffre"),
    (Shell::Fish, "coffre.fish"),
];

/// What coffre(1) says after the options and subcommands clap lists (roff).
const ROOT_PAGE_END: &str = r#".SH "EXIT STATUS"
.TP
0
Success.
.TP
1
Failure: the message says what to do.
.TP
2
Wrong command line.
.TP
3
\fBcoffre snapshot\fR: the snapshot was recorded, but some files could not be read (the message lists them).
.SH FILES
.TP
/etc/coffre/coffre.toml
The configuration (or \fB\-\-config\fR, \fBCOFFRE_CONFIG\fR): the drives, the passphrase file, what to back up, the retention, the schedule.
Check it with \fBcoffre config check\fR.
A commented example is /usr/share/doc/coffre/examples/coffre.toml.
.TP
~/.cache/coffre, /var/cache/coffre
This machine's index of each repository (the second for root without a home, as the evening timer runs).
Safe to delete: rebuilt from the drive.
.SH "SEE ALSO"
/usr/share/doc/coffre/GUIDE.md (the operator's guide), CONFIG.md (the configuration file), NAS.md (sharing snapshots with Windows), S3.md (off-site copies in a bucket), REPORT.md (the monthly audit report), FORMAT.md (the repository format), PACKAGING.md.
"#;

/// Runs `coffre generate-docs`.
pub fn run(args: &GenerateDocsArgs) -> Result<u8> {
    let man_dir = args.out.join("man");
    let completion_dir = args.out.join("completions");
    for dir in [&man_dir, &completion_dir] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let pages = write_man_pages(&man_dir)?;
    write_completions(&completion_dir)?;
    println!(
        "{} man pages in {}, completions for bash, zsh and fish in {}",
        pages.len(),
        man_dir.display(),
        completion_dir.display()
    );
    Ok(0)
}

/// Writes one page for `coffre` and one per visible subcommand, nested ones
/// included (`coffre-key-add.1`). Returns the files' names, sorted.
fn write_man_pages(dir: &Path) -> Result<Vec<String>> {
    // `help` is clap's own subcommand: `coffre help X` is `coffre X --help`,
    // which the page of X already says. Building the root command first
    // gives every subcommand its full name (`coffre-key-add`) and copies the
    // global options into it, so each page lists them.
    let mut root = crate::args::Cli::command().disable_help_subcommand(true);
    root.build();
    let source = format!("coffre {}", env!("CARGO_PKG_VERSION"));
    let date = page_date(std::env::var("SOURCE_DATE_EPOCH").ok().as_deref())?;
    let mut pages = Vec::new();
    let mut stack = vec![root];
    while let Some(cmd) = stack.pop() {
        stack.extend(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        let man = clap_mangen::Man::new(cmd)
            .date(date.clone())
            .source(source.clone())
            .manual("Coffre manual");
        let name = man.get_filename();
        let mut roff = Vec::new();
        man.render(&mut roff)?;
        if pages.is_empty() {
            // The first page is coffre(1) itself.
            roff.extend_from_slice(ROOT_PAGE_END.as_bytes());
        }
        write_file(&dir.join(&name), &roff)?;
        pages.push(name);
    }
    pages.sort();
    Ok(pages)
}

/// The pages' date: SOURCE_DATE_EPOCH (seconds since 1970, UTC) when set,
/// as package builds do so that the same sources give the same package;
/// otherwise today. (A page needs one: clap_mangen writes an empty date as
/// nothing, and man then takes the next field for it.)
fn page_date(source_date_epoch: Option<&str>) -> Result<String> {
    let date = match source_date_epoch {
        Some(s) => {
            let secs: i64 = s
                .trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds"))?;
            chrono::DateTime::from_timestamp(secs, 0)
                .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is out of range"))?
                .date_naive()
        }
        None => chrono::Local::now().date_naive(),
    };
    Ok(date.format("%Y-%m-%d").to_string())
}

/// The command line as completions show it: hidden subcommands left out.
/// (clap_complete offers them; clap has no way to drop a subcommand, so the
/// root is rebuilt from its options and its visible subcommands.)
fn completion_command() -> clap::Command {
    let full = crate::args::Cli::command();
    clap::Command::new("coffre")
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}

/// Writes the bash, zsh and fish completion scripts.
fn write_completions(dir: &Path) -> Result<()> {
    for (shell, file) in COMPLETIONS {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut completion_command(), "coffre", &mut script);
        write_file(&dir.join(file), &script)?;
    }
    Ok(())
}

/// Writes a whole file, replacing what was there.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f =
        fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.flush())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visible subcommand, nested ones too, has its page; hidden ones
    /// and clap's `help` have none.
    #[test]
    fn a_page_per_visible_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let pages = write_man_pages(dir.path()).unwrap();
        for page in [
            "coffre.1",
            "coffre-snapshot.1",
            "coffre-key.1",
            "coffre-key-add.1",
        ] {
            assert!(
                pages.iter().any(|p| p == page),
                "{page} missing from {pages:?}"
            );
        }
        assert!(!pages
            .iter()
            .any(|p| p.contains("generate-docs") || p.contains("help")));
        let page = fs::read_to_string(dir.path().join("coffre-snapshot.1")).unwrap();
        assert!(page.contains("\\-\\-exclude"), "{page}");
    }

    /// Completions offer the visible subcommands with their options, not the
    /// hidden generate-docs.
    #[test]
    fn completions_leave_out_hidden_commands() {
        let dir = tempfile::tempdir().unwrap();
        write_completions(dir.path()).unwrap();
        for (_, file) in COMPLETIONS {
            let script = fs::read_to_string(dir.path().join(file)).unwrap();
            for word in [
                "snapshot",
                "recovery-sheet",
                "exclude-if-present",
                "password-file",
            ] {
                assert!(script.contains(word), "{file} lacks {word}");
            }
            assert!(
                !script.contains("generate-docs"),
                "{file} offers generate-docs"
            );
        }
    }

    #[test]
    fn page_date_follows_source_date_epoch() {
        assert_eq!(page_date(Some("1790000000")).unwrap(), "2026-09-21");
        assert!(page_date(Some("yesterday")).is_err());
        assert_eq!(page_date(None).unwrap().len(), "2026-09-21".len());
    }
}
