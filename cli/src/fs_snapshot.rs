//! `--fs-snapshot lvm|btrfs`: read the sources from a read-only snapshot
//! of their filesystem, taken in an instant, so that a database and the
//! files around it are backed up as they were at one moment even while
//! the pharmacy software keeps writing. The filesystem snapshot is always
//! removed afterwards (when this value is dropped, failure included), and a
//! leftover of a killed run is removed by the next one.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use snapshots_format::source::fsmeta;

/// The kind of filesystem snapshot.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An LVM snapshot volume, mounted read-only.
    Lvm,
    /// A read-only btrfs snapshot of the subvolume holding the source.
    Btrfs,
}

/// Names of what this module creates start with this, followed by the
/// creating process's pid: a leftover whose process is gone is removed.
const PREFIX: &str = "coffre-fs-snapshot-";

const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;
/// The inode number of every btrfs subvolume's root folder.
const BTRFS_SUBVOLUME_ROOT_INODE: u64 = 256;

/// What to undo, in order.
enum Undo {
    BtrfsDelete(PathBuf),
    Unmount(PathBuf),
    LvRemove(String),
    RemoveDir(PathBuf),
}

/// Filesystem snapshots of the sources, removed when dropped.
pub struct FsSnapshots {
    undo: Vec<Undo>,
    /// Where to read each source from, in the order of the sources.
    pub read_from: Vec<PathBuf>,
}

/// Runs a tool; its stderr becomes the error.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// Whether the process that made a leftover named `<PREFIX><pid>...` is gone.
fn leftover_of_gone_process(name: &str) -> bool {
    // btrfs snapshots are hidden (a leading dot) in the data folder.
    let Some(rest) = name.trim_start_matches('.').strip_prefix(PREFIX) else {
        return false;
    };
    let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
    match pid.parse::<i32>() {
        Ok(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}

impl FsSnapshots {
    /// Takes one filesystem snapshot per source.
    ///
    /// # Errors
    /// When a source is not on such a filesystem or a tool fails; what was
    /// already created is removed.
    pub fn take(kind: Kind, sources: &[PathBuf], lvm_size: &str) -> Result<Self> {
        let mut snaps = FsSnapshots {
            undo: Vec::new(),
            read_from: Vec::new(),
        };
        for (i, source) in sources.iter().enumerate() {
            let source = source
                .canonicalize()
                .with_context(|| format!("source {}", source.display()))?;
            let read = match kind {
                Kind::Btrfs => snaps.btrfs(&source, i)?,
                Kind::Lvm => snaps.lvm(&source, i, lvm_size)?,
            };
            snaps.read_from.push(read);
        }
        Ok(snaps)
    }

    fn btrfs(&mut self, source: &Path, i: usize) -> Result<PathBuf> {
        if fsmeta::fs_type(source) != Some(BTRFS_SUPER_MAGIC) {
            bail!(
                "--fs-snapshot btrfs: {} is not on a btrfs filesystem",
                source.display()
            );
        }
        // The subvolume holding the source: the nearest folder up whose
        // inode is a subvolume root's.
        let mut subvol = source.to_path_buf();
        loop {
            let meta = std::fs::metadata(&subvol)
                .with_context(|| format!("reading {}", subvol.display()))?;
            if meta.ino() == BTRFS_SUBVOLUME_ROOT_INODE {
                break;
            }
            if !subvol.pop() {
                bail!("no btrfs subvolume holds {}", source.display());
            }
        }
        self.remove_btrfs_leftovers(&subvol);
        let dest = subvol.join(format!(".{PREFIX}{}-{i}", std::process::id()));
        run(
            "btrfs",
            &[
                os("subvolume"),
                os("snapshot"),
                os("-r"),
                subvol.as_os_str(),
                dest.as_os_str(),
            ],
        )?;
        self.undo.push(Undo::BtrfsDelete(dest.clone()));
        let inside = source.strip_prefix(&subvol).unwrap_or(Path::new(""));
        Ok(dest.join(inside))
    }

    fn remove_btrfs_leftovers(&self, subvol: &Path) {
        let Ok(entries) = std::fs::read_dir(subvol) else {
            return;
        };
        for e in entries.flatten() {
            if leftover_of_gone_process(&e.file_name().to_string_lossy()) {
                let _ = run(
                    "btrfs",
                    &[os("subvolume"), os("delete"), e.path().as_os_str()],
                );
            }
        }
    }

    fn lvm(&mut self, source: &Path, i: usize, size: &str) -> Result<PathBuf> {
        let (mount_point, device, fstype) = mount_of(source)?;
        let vg_lv = run(
            "lvs",
            &[
                os("--noheadings"),
                os("-o"),
                os("vg_name,lv_name"),
                os(&device),
            ],
        )
        .with_context(|| {
            format!(
                "--fs-snapshot lvm: {} ({device}) is not an LVM logical volume",
                source.display()
            )
        })?;
        let mut words = vg_lv.split_whitespace();
        let (Some(vg), Some(lv)) = (words.next(), words.next()) else {
            bail!("--fs-snapshot lvm: {device} is not an LVM logical volume");
        };
        self.remove_lvm_leftovers(vg);
        let name = format!("{PREFIX}{}-{i}", std::process::id());
        let size_arg = if size.ends_with('%') {
            format!("-l{size}ORIGIN")
        } else {
            format!("-L{size}")
        };
        run(
            "lvcreate",
            &[
                os("--snapshot"),
                os("--yes"),
                os(&size_arg),
                os("-n"),
                os(&name),
                os(&format!("{vg}/{lv}")),
            ],
        )?;
        self.undo.push(Undo::LvRemove(format!("{vg}/{name}")));
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        self.undo.push(Undo::RemoveDir(dir.clone()));
        // XFS refuses to mount a second filesystem with the same UUID.
        let options = if fstype == "xfs" { "ro,nouuid" } else { "ro" };
        run(
            "mount",
            &[
                os("-o"),
                os(options),
                os(&format!("/dev/{vg}/{name}")),
                dir.as_os_str(),
            ],
        )?;
        self.undo.push(Undo::Unmount(dir.clone()));
        let inside = source.strip_prefix(&mount_point).unwrap_or(Path::new(""));
        Ok(dir.join(inside))
    }

    fn remove_lvm_leftovers(&self, vg: &str) {
        let Ok(names) = run(
            "lvs",
            &[os("--noheadings"), os("-o"), os("lv_name"), os(vg)],
        ) else {
            return;
        };
        for name in names.split_whitespace() {
            if leftover_of_gone_process(name) {
                let dir = std::env::temp_dir().join(name);
                let _ = run("umount", &[dir.as_os_str()]);
                let _ = std::fs::remove_dir(&dir);
                let _ = run("lvremove", &[os("-f"), os(&format!("{vg}/{name}"))]);
            }
        }
    }
}

impl Drop for FsSnapshots {
    fn drop(&mut self) {
        while let Some(step) = self.undo.pop() {
            let done = match &step {
                Undo::BtrfsDelete(p) => {
                    run("btrfs", &[os("subvolume"), os("delete"), p.as_os_str()]).map(drop)
                }
                Undo::Unmount(p) => run("umount", &[p.as_os_str()]).map(drop),
                Undo::LvRemove(lv) => run("lvremove", &[os("-f"), os(lv)]).map(drop),
                Undo::RemoveDir(p) => {
                    std::fs::remove_dir(p).with_context(|| format!("removing {}", p.display()))
                }
            };
            if let Err(e) = done {
                eprintln!("warning: the filesystem snapshot was not fully removed: {e:#}");
            }
        }
    }
}

/// The mount point, device and filesystem type of the mount holding `path`
/// (the longest mount point that is a prefix of it).
fn mount_of(path: &Path) -> Result<(PathBuf, String, String)> {
    crate::mounts::current()
        .into_iter()
        .filter(|m| path.starts_with(&m.point))
        .max_by_key(|m| m.point.as_os_str().len())
        .map(|m| (m.point, m.source, m.fstype))
        .with_context(|| format!("no mount holds {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_those_of_gone_processes_only() {
        let mine = format!("{PREFIX}{}-0", std::process::id());
        assert!(!leftover_of_gone_process(&mine));
        assert!(leftover_of_gone_process(&format!("{PREFIX}999999999-0")));
        assert!(leftover_of_gone_process(&format!(".{PREFIX}999999999-1")));
        assert!(!leftover_of_gone_process("officine"));
    }

    #[test]
    fn the_root_mount_holds_everything() {
        let (point, _, _) = mount_of(Path::new("/")).unwrap();
        assert_eq!(point, PathBuf::from("/"));
    }
}
