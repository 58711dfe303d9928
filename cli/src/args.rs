//! The command line: global options and one struct per subcommand.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Encrypted, deduplicated daily snapshots of a data directory.
#[derive(Parser, Debug)]
#[command(name = "coffre", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Repository: a folder (usually on the backup drive) or an S3 bucket,
    /// s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX] (credentials from
    /// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or the
    /// configuration). Default: the configuration's repository whose drive
    /// is plugged in.
    #[arg(short = 'r', long = "repo", env = "COFFRE_REPO", global = true)]
    pub repo: Option<PathBuf>,

    /// Most bytes per second sent to an S3 store (e.g. 2M), so backups
    /// leave room on the pharmacy's line. Default: no limit.
    #[arg(long, env = "COFFRE_LIMIT_UPLOAD", global = true, value_name = "RATE")]
    pub limit_upload: Option<String>,

    /// Most bytes per second read from an S3 store (e.g. 10M).
    #[arg(
        long,
        env = "COFFRE_LIMIT_DOWNLOAD",
        global = true,
        value_name = "RATE"
    )]
    pub limit_download: Option<String>,

    /// How long a request to an S3 store that cannot be reached (or keeps
    /// failing) is retried before the command gives up (e.g. 30s, 10m).
    #[arg(
        long,
        env = "COFFRE_RETRY_FOR",
        global = true,
        default_value = "2m",
        value_name = "DURATION"
    )]
    pub retry_for: String,

    /// Configuration file. Default: /etc/coffre/coffre.toml when it exists.
    #[arg(long, env = "COFFRE_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Use the configuration's repository of this name (e.g. lundi) rather
    /// than the first one whose drive is plugged in.
    #[arg(long, env = "COFFRE_DRIVE", global = true)]
    pub drive: Option<String>,

    /// File holding the passphrase (first line). Otherwise COFFRE_PASSWORD, or a prompt on a terminal.
    #[arg(long, env = "COFFRE_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,

    /// Print results as JSON on stdout (for scripts); no progress bar.
    #[arg(long, global = true)]
    pub json: bool,

    /// How long to wait for another Coffre process using the repository
    /// (e.g. 30s, 10m) before giving up and naming it.
    #[arg(long, global = true, default_value = "60s")]
    pub lock_wait: String,

    /// Folder of this machine's index caches (one per repository; safe to
    /// delete, rebuilt from the repository). Default: ~/.cache/coffre, or
    /// /var/cache/coffre for root without a home.
    #[arg(long, env = "COFFRE_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new repository (asks for a passphrase twice).
    Init(InitArgs),
    /// Take a snapshot of a directory.
    Snapshot(SnapshotArgs),
    /// List snapshots.
    Snapshots(SnapshotsArgs),
    /// List the files of a snapshot.
    Ls(LsArgs),
    /// Copy files of a snapshot back to disk.
    Restore(RestoreArgs),
    /// Every version of a file or folder: which snapshots hold it, and when it changed.
    History(HistoryArgs),
    /// Which snapshots hold files whose name matches a pattern.
    Find(FindArgs),
    /// What changed between two snapshots: added, removed, changed files.
    Diff(DiffArgs),
    /// Write a file of a snapshot (or a folder, as tar) to standard output.
    Dump(DumpArgs),
    /// Verify the repository; --read-data also reads and verifies every byte.
    Check(CheckArgs),
    /// Copy snapshots to another repository (the other drive of a rotation).
    Copy(CopyArgs),
    /// A restore test: restore a sample of a snapshot's files into a scratch folder, compare them with what was saved, record the result.
    Verify(VerifyArgs),
    /// The month's evidence for the auditor: planning, each day's backup, checks, restore tests, copies, retention (HTML, prints well).
    Report(ReportArgs),
    /// The ransomware alarm: list the alarms raised, or acknowledge one after looking at the files.
    Alarm(AlarmArgs),
    /// Each drive of the rotation: last snapshot, last check, last off-site copy, free space and when it fills up; warns of a drive not seen for too long.
    Drives(DrivesArgs),
    /// Put a legal hold on a snapshot: forget keeps it until the date given (--list: the holds in force).
    Protect(ProtectArgs),
    /// Lift a legal hold (journalled with the reason).
    Unprotect(UnprotectArgs),
    /// The repository's journal: every snapshot, check, restore, copy, forget, prune and key change, with who and when.
    Journal(JournalArgs),
    /// Recreate the index database from the pack files.
    RebuildIndex,
    /// Show every snapshot as a read-only dated folder (FUSE).
    Mount(MountArgs),
    /// Unmount a folder mounted by `coffre mount` (also clears a stale mount).
    Umount(UmountArgs),
    /// Remove snapshots, by retention policy or by name; --prune frees the space.
    Forget(ForgetArgs),
    /// Free the space of data no snapshot uses any more.
    Prune(PruneArgs),
    /// Save or show the retention policy kept in the repository.
    Policy(PolicyArgs),
    /// Remove locks left by crashed processes (or all locks, with --all).
    Unlock(UnlockArgs),
    /// Is my data safe? One line, details, an exit code for monitoring.
    Status(crate::commands::status::StatusArgs),
    /// Passphrases: list, add, remove, change; print a recovery sheet.
    Key(crate::commands::key::KeyArgs),
    /// Check or show the configuration file.
    Config(crate::commands::config::ConfigArgs),
    /// Run the snapshot every evening by itself (systemd timer).
    Schedule(crate::commands::schedule::ScheduleArgs),
    /// Write the man pages and shell completions (for packaging).
    #[command(hide = true)]
    GenerateDocs(crate::commands::generate_docs::GenerateDocsArgs),
}

/// The keep-* rules.
#[derive(Args, Debug, Clone, Default)]
pub struct Rules {
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N days.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks (ISO, Monday to Sunday).
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot newer than this, counted back from the newest (e.g. 14d, 2w, 1y6m).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
}

/// `coffre forget`.
#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Snapshots to remove (id prefix, date, latest); without them, the policy decides.
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub rules: Rules,
    /// Only snapshots with this label.
    #[arg(long)]
    pub label: Option<String>,
    /// Show what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Then prune: free the space of the removed snapshots.
    #[arg(long)]
    pub prune: bool,
    /// With --prune: unused space allowed to remain, as a share of the repository (e.g. 5%).
    #[arg(long, default_value = "5%")]
    pub max_unused: String,
}

/// `coffre prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Show what would be freed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Unused space allowed to remain, as a share of the repository (e.g. 5%);
    /// the emptiest packs are rewritten until the rest fits.
    #[arg(long, default_value = "5%")]
    pub max_unused: String,
}

/// `coffre policy`.
#[derive(Args, Debug)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub action: PolicyAction,
}

/// `coffre policy set|show`.
#[derive(Subcommand, Debug)]
pub enum PolicyAction {
    /// Save the retention policy in the repository (used by `forget` without rules).
    Set(Rules),
    /// Show the saved retention policy.
    Show,
}

/// `coffre unlock`.
#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// Remove every lock, even those of processes that may still run elsewhere.
    #[arg(long)]
    pub all: bool,
}

/// `coffre mount`.
#[derive(Args, Debug)]
pub struct MountArgs {
    /// Empty folder to mount on.
    pub mountpoint: PathBuf,
    /// Let other users see the mount (needed to share it with Samba).
    #[arg(long)]
    pub allow_other: bool,
    /// Return once mounted, leaving the mount running in the background.
    #[arg(long)]
    pub daemon: bool,
    /// Show names that are not UTF-8 as Windows-1252 text, so that a Samba
    /// share can list them (see docs/NAS.md).
    #[arg(long)]
    pub windows_names: bool,
    /// Memory for decoded file chunks (e.g. 256M, 1G). The kernel keeps
    /// what was read (snapshots never change), so this only stages
    /// read-ahead and small random reads: the default holds a dozen
    /// read-ahead windows.
    #[arg(long, default_value = "24M")]
    pub cache_size: String,
    /// Most files and folders the mount keeps in memory for the kernel
    /// (about 0.35 KiB each; twice as many while files are being read);
    /// past it, those looked at longest ago are let go and looked up again
    /// when needed.
    #[arg(long, default_value_t = coffre_fs::DEFAULT_MAX_INODES)]
    pub max_inodes: usize,
}

/// `coffre umount`.
#[derive(Args, Debug)]
pub struct UmountArgs {
    /// The mounted folder.
    pub mountpoint: PathBuf,
}

/// `coffre init`.
#[derive(Args, Debug)]
pub struct InitArgs {}

/// `coffre snapshot`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "\
Patterns (--exclude, --exclude-file):
  *.tmp               a name, at any depth (no '/' in it)
  cache/              a folder name, at any depth (trailing '/')
  logs/*.log.?        a path inside the snapshot ('*' stays in one folder, '**' spans folders)
  /srv/officine/tmp   an absolute path on this machine (leading '/')

Examples:
  coffre snapshot /srv/officine --exclude '*.tmp' --exclude '~$*' --exclude-if-present .nobackup
  coffre snapshot /srv/officine --before '/usr/local/bin/gel-base' --after '/usr/local/bin/degel-base'
  coffre snapshot /srv/officine --from-command 'officine.sql=pg_dump officine'")]
pub struct SnapshotArgs {
    /// Folders to back up (default: the configuration's sources). With
    /// several, each becomes a folder of the snapshot, named like its last
    /// component.
    pub sources: Vec<PathBuf>,
    /// Label grouping the snapshots of this source (default: the host name).
    #[arg(long)]
    pub label: Option<String>,
    /// A tag to attach (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Leave out what matches this pattern (repeatable; see below).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Read exclude patterns from this file, one per line ('#' comments).
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Leave out folders that hold a file of this name (e.g. .nobackup).
    #[arg(long, value_name = "NAME")]
    pub exclude_if_present: Vec<String>,
    /// Leave out files larger than this (e.g. 2G).
    #[arg(long, value_name = "SIZE")]
    pub exclude_larger_than: Option<String>,
    /// Also save other filesystems mounted inside a source (a disk, a
    /// network share). By default their mount points are kept, empty, and
    /// named in a warning.
    #[arg(long, conflicts_with = "one_file_system")]
    pub cross_filesystems: bool,
    /// Stay on each source's filesystem: the default, accepted for scripts
    /// written for other tools.
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Judge files unchanged by size and times only, never by inode number
    /// (automatic on Windows shares mounted with CIFS).
    #[arg(long)]
    pub ignore_inode: bool,
    /// Write no snapshot when nothing changed since the last one.
    #[arg(long)]
    pub skip_if_unchanged: bool,
    /// Run this shell command first; if it fails, no snapshot is taken.
    #[arg(long, value_name = "CMD")]
    pub before: Option<String>,
    /// Run this shell command at the end, whatever happened; it gets
    /// COFFRE_RESULT (ok, partial, unchanged, failed), COFFRE_EXIT_CODE,
    /// COFFRE_SNAPSHOT_ID and COFFRE_ERROR.
    #[arg(long, value_name = "CMD")]
    pub after: Option<String>,
    /// Read the sources from a read-only snapshot of their filesystem
    /// (LVM or btrfs), taken after --before and always removed at the end:
    /// every file as it was at one instant.
    #[arg(long, value_name = "KIND")]
    pub fs_snapshot: Option<crate::fs_snapshot::Kind>,
    /// With --fs-snapshot lvm: room for changes during the snapshot, as a
    /// share of the volume or a size (2G). Default: 20%.
    #[arg(long, value_name = "SIZE")]
    pub fs_snapshot_size: Option<String>,
    /// Store the output of a shell command as the file NAME at the
    /// snapshot's root (e.g. a database dump); if the command fails, no
    /// snapshot is written (repeatable).
    #[arg(long, value_name = "NAME=CMD")]
    pub from_command: Vec<String>,
}

/// `coffre snapshots`.
#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    /// Only snapshots with this label.
    #[arg(long)]
    pub label: Option<String>,
    /// Also list this repository (a folder or an s3: address; may be
    /// repeated) and show which repository holds which snapshot. A
    /// repository the main passphrase does not open takes COFFRE_TO_PASSWORD
    /// or --to-password-file.
    #[arg(long, value_name = "REPO")]
    pub also: Vec<std::path::PathBuf>,
    /// Show every configured drive that is plugged in side by side (with
    /// -r and --also, if given): which drive holds which snapshot.
    #[arg(long)]
    pub all_drives: bool,
    /// File holding the passphrase of the other repositories, when it is
    /// not the main one.
    #[arg(long, env = "COFFRE_TO_PASSWORD_FILE", value_name = "FILE")]
    pub to_password_file: Option<std::path::PathBuf>,
}

/// `coffre ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot: id or unique id prefix, `latest`, or a local date YYYY-MM-DD.
    pub snapshot: String,
    /// Directory (or file) inside the snapshot.
    #[arg(default_value = "")]
    pub path: String,
    /// Show mode, owner, size and modification time.
    #[arg(short, long)]
    pub long: bool,
    /// List subdirectories too.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// `coffre restore`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot: id or unique id prefix, `latest`, or a local date YYYY-MM-DD.
    pub snapshot: String,
    /// Directory to restore into (created if missing).
    pub target: PathBuf,
    /// Restore only this file or directory of the snapshot (kept at its path under TARGET).
    #[arg(long)]
    pub path: Option<String>,
    /// Replace files that already exist in the target.
    #[arg(long)]
    pub overwrite: bool,
}

/// `coffre check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Read, decrypt and verify every byte (slow: reads the whole repository).
    #[arg(long)]
    pub read_data: bool,
    /// Read and verify a share of the packs (1/7, or 15%), a different
    /// share each run, so that T runs read the whole repository once (the
    /// journal remembers where the last run stopped).
    #[arg(long, value_name = "1/T|P%", conflicts_with = "read_data")]
    pub read_data_subset: Option<String>,
}

/// `coffre history`.
#[derive(Args, Debug)]
#[command(after_help = "\
Reads only the snapshots' folder listings, never file contents: fast even over a year of snapshots.
A version counts as changed when its contents (chunk list) differ; a change of mode, owner or date
alone is shown apart. Periods when the path was missing from the snapshots are marked.

Examples:
  coffre history db/officine.fdb
  coffre history 'scans/2026/mme-durand.pdf' --json")]
pub struct HistoryArgs {
    /// File or folder, from the snapshot's root (as `coffre ls` shows it), e.g. db/officine.fdb.
    pub path: OsString,
    /// Only snapshots with this label.
    #[arg(long)]
    pub label: Option<String>,
}

/// `coffre find`.
#[derive(Args, Debug)]
#[command(after_help = "\
Patterns (quote them, so that the shell leaves the * alone):
  durand              names containing 'durand' (no wildcard: part of a name)
  'mme-durand*'       names starting with mme-durand, at any depth
  'scans/*/*.pdf'     a path from the snapshot's root ('*' stays in one folder)
  'scans/**/*.pdf'    '**' spans folders
  /db                 a leading '/' anchors a name at the root
  'archives/'         a trailing '/' finds folders only
Letters match either case (É finds é) unless --case-sensitive.

One entry per path found: the first and last snapshots holding it, how many hold it, how many
different versions it had, and whether the newest snapshot still holds it. Then
`coffre history PATH` lists every version and `coffre dump` or `coffre restore --path` gets one back.
Exit code 1 when nothing matches.

Examples:
  coffre find 'mme-durand*'
  coffre find '*.pdf' --since 30d
  coffre find ordonnance --since 2026-11-01 --until 2026-11-30")]
pub struct FindArgs {
    /// Pattern on the names (or on the path from the root, when it holds '/').
    pub pattern: String,
    /// Only snapshots taken since: a duration back from now (30d, 2w, 12h) or a date YYYY-MM-DD.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only snapshots taken until: a duration back from now or a date YYYY-MM-DD (included).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only snapshots with this label.
    #[arg(long)]
    pub label: Option<String>,
    /// Upper and lower case differ.
    #[arg(long)]
    pub case_sensitive: bool,
}

/// `coffre diff`.
#[derive(Args, Debug)]
#[command(after_help = "\
Marks:
  +  added              -  removed
  M  contents changed   m  same contents, other mode, owner, date or attributes
  T  another type (a file became a folder...)
A renamed file shows as removed (old name) and added (new name). A folder added or removed is
listed with everything in it. Folders left unchanged are skipped without being read.

Examples:
  coffre diff 2026-11-23 2026-11-24
  coffre diff 2026-11-01 latest --path db")]
pub struct DiffArgs {
    /// The older snapshot: id or unique id prefix, `latest`, or a local date YYYY-MM-DD.
    pub old: String,
    /// The newer snapshot, named the same way.
    pub new: String,
    /// Compare only this file or folder (from the snapshot's root).
    #[arg(long)]
    pub path: Option<OsString>,
}

/// `coffre dump`.
#[derive(Args, Debug)]
#[command(after_help = "\
A file is written as it was, byte for byte; a folder (or a link) as a tar archive whose names
start with the folder's own name, with modes, owners, dates, links and names exactly as recorded
(extended attributes are not carried). Memory stays small whatever the size.
Standard output must be a file or a pipe: coffre refuses to write to the terminal.

Examples:
  coffre dump latest db/officine.fdb > /tmp/officine.fdb
  coffre dump 2026-11-23 scans/2026-11 | tar -x -C /tmp/copie
  coffre dump latest > /media/usb/tout.tar")]
pub struct DumpArgs {
    /// Snapshot: id or unique id prefix, `latest`, or a local date YYYY-MM-DD.
    pub snapshot: String,
    /// File or folder inside the snapshot (default: the whole snapshot, as tar).
    #[arg(default_value = "")]
    pub path: OsString,
}

/// `coffre copy`.
#[derive(Args, Debug)]
#[command(after_help = "\
The target is created when it is empty or absent, sharing the source's keys \
(so later copies move only new data) under its own passphrase. A snapshot \
already on the target is skipped; a copy stopped half-way resumes where it \
stopped, and the target never shows a half-copied snapshot.

Examples:
  coffre -r /media/lundi copy --to /media/mardi
  coffre -r /media/lundi copy --to /media/mardi latest
  coffre -r /media/lundi copy --to /media/mardi --since 7d --dry-run")]
pub struct CopyArgs {
    /// The repository to copy into: a folder or an s3: address, created
    /// if empty or absent.
    #[arg(long, value_name = "REPO")]
    pub to: PathBuf,
    /// Snapshots to copy (id prefix, date, latest). Default: all.
    pub snapshots: Vec<String>,
    /// Only snapshots taken in this last while (7d, 2w) or since this
    /// local date (YYYY-MM-DD).
    #[arg(long, value_name = "DURATION|DATE")]
    pub since: Option<String>,
    /// Only snapshots with this label.
    #[arg(long)]
    pub label: Option<String>,
    /// File holding the target's passphrase (first line). Otherwise
    /// COFFRE_TO_PASSWORD, or a prompt on a terminal.
    #[arg(long, env = "COFFRE_TO_PASSWORD_FILE", value_name = "FILE")]
    pub to_password_file: Option<PathBuf>,
    /// Show what would be copied and its size; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `coffre journal`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  coffre journal
  coffre journal --since 2026-11-01
  coffre journal --since 30d --kind snapshot --json")]
pub struct JournalArgs {
    /// Only entries since a local date (YYYY-MM-DD) or for a duration back (30d).
    #[arg(long)]
    pub since: Option<String>,
    /// Only entries of this kind (init, snapshot, check, restore, verify,
    /// copy-out, copy-in, forget, prune, key, protect, alarm).
    #[arg(long)]
    pub kind: Option<String>,
}

/// `coffre protect`.
#[derive(Args, Debug)]
#[command(
    after_help = "A hold is written to the repository's journal (who, when, why); \
`forget` never removes a protected snapshot and says which it kept for that reason.

Examples:
  coffre protect 2026-11-30 --until 2036-11-30 --reason \"clôture annuelle\"
  coffre protect latest --reason \"contrôle de l'ARS\"
  coffre protect --list"
)]
pub struct ProtectArgs {
    /// The snapshot: id prefix, `latest`, or a local date YYYY-MM-DD.
    #[arg(required_unless_present = "list")]
    pub snapshot: Option<String>,
    /// Until when (local date YYYY-MM-DD); without it, until lifted with `unprotect`.
    #[arg(long)]
    pub until: Option<String>,
    /// Why (shown in forget's output, the journal and the report).
    #[arg(long, required_unless_present = "list")]
    pub reason: Option<String>,
    /// List the holds in force instead.
    #[arg(long)]
    pub list: bool,
}

/// `coffre unprotect`.
#[derive(Args, Debug)]
pub struct UnprotectArgs {
    /// The snapshot: id prefix, `latest`, or a local date YYYY-MM-DD.
    pub snapshot: String,
    /// Why the hold is lifted (kept in the journal).
    #[arg(long)]
    pub reason: String,
}

/// `coffre verify`.
#[derive(Args, Debug)]
#[command(
    after_help = "The files are restored by the real restore, one at a time, read back \
from the disk and compared chunk by chunk with the ids recorded when they were saved; \
the scratch folder is removed afterwards. The result goes to the journal.

Examples:
  coffre verify --sample 2% --include db/
  coffre verify 2026-11-30 --sample 100%
  coffre verify --include db/officine.fdb --check-cmd 'gfix -v -full {}'"
)]
pub struct VerifyArgs {
    /// The snapshot: id prefix, `latest`, or a local date YYYY-MM-DD.
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// Share of the files to test, chosen anew each run (e.g. 2%).
    #[arg(long, default_value = "2%")]
    pub sample: String,
    /// A file or folder always tested (may be repeated): the database.
    #[arg(long, value_name = "PATH")]
    pub include: Vec<String>,
    /// A command run on each restored file of --include, `{}` standing for
    /// its path (e.g. the database's own check); its failure fails the test.
    #[arg(long, value_name = "COMMAND")]
    pub check_cmd: Option<String>,
    /// Scratch folder (empty or absent; removed afterwards). Default: under
    /// the temporary folder.
    #[arg(long)]
    pub scratch: Option<std::path::PathBuf>,
}

/// `coffre report`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  coffre report --month 2026-11 --out rapport-2026-11.html
  coffre report --month 2026-11 --lang en --out report-2026-11.html")]
pub struct ReportArgs {
    /// The month (YYYY-MM); default: the previous month.
    #[arg(long)]
    pub month: Option<String>,
    /// The file to write (.html); default: rapport-YYYY-MM.html in the current folder.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Language of the report: fr (default) or en.
    #[arg(long, default_value = "fr")]
    pub lang: String,
}

/// `coffre alarm`.
#[derive(Args, Debug)]
#[command(
    after_help = "A snapshot where most files changed at once, into data that does not \
compress or under new names, raises the alarm: `status` turns critical, the notification goes \
out, and `forget` keeps every earlier snapshot until the alarm is acknowledged.

Examples:
  coffre alarm
  coffre alarm ack 3f2a9c1d --reason \"reorganisation of the scans folder, checked by Mme Durand\""
)]
pub struct AlarmArgs {
    #[command(subcommand)]
    pub action: Option<AlarmAction>,
}

/// What to do with an alarm.
#[derive(clap::Subcommand, Debug)]
pub enum AlarmAction {
    /// Acknowledge the alarm of a snapshot, after looking at its files.
    Ack {
        /// The suspect snapshot (id prefix, `latest`, or a date).
        snapshot: String,
        /// What was found (kept in the journal).
        #[arg(long)]
        reason: String,
    },
}

/// `coffre drives`.
#[derive(Args, Debug)]
#[command(
    after_help = "The drives are the configuration's [[repository]] entries. A drive plugged \
in is read (its journal and snapshots); one that is not is described from this machine's record \
of past runs.

Examples:
  coffre drives
  coffre drives --stale-after 10d --json"
)]
pub struct DrivesArgs {
    /// Warn about a drive not written for longer than this (a drive per
    /// weekday comes back every week).
    #[arg(long, default_value = "8d")]
    pub stale_after: String,
}
