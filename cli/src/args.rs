//! The command line: global options and one struct per subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Encrypted, deduplicated daily snapshots of a data directory.
#[derive(Parser, Debug)]
#[command(name = "coffre", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Repository directory (usually on the backup drive).
    #[arg(short = 'r', long = "repo", env = "COFFRE_REPO", global = true)]
    pub repo: Option<PathBuf>,

    /// File holding the passphrase (first line). Otherwise COFFRE_PASSWORD, or a prompt on a terminal.
    #[arg(long, env = "COFFRE_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,

    /// Print results as JSON on stdout (for scripts); no progress bar.
    #[arg(long, global = true)]
    pub json: bool,

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
    /// Verify the repository; --read-data also reads and verifies every byte.
    Check(CheckArgs),
    /// Recreate the index database from the pack files.
    RebuildIndex,
    /// Show every snapshot as a read-only dated folder (FUSE).
    Mount(MountArgs),
    /// Unmount a folder mounted by `coffre mount` (also clears a stale mount).
    Umount(UmountArgs),
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
    /// Memory for decoded file chunks (e.g. 256M, 1G).
    #[arg(long, default_value = "256M")]
    pub cache_size: String,
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
#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Directory to back up.
    pub source: PathBuf,
    /// Label grouping the snapshots of this source (default: the host name).
    #[arg(long)]
    pub label: Option<String>,
    /// A tag to attach (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
}

/// `coffre snapshots`.
#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    /// Only snapshots with this label.
    #[arg(long)]
    pub label: Option<String>,
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
}
