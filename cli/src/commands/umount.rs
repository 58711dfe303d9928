//! `coffre umount MOUNTPOINT`: unmount, including a stale mount left by a
//! crashed `coffre mount` ("Transport endpoint is not connected").

use std::process::Command;

use anyhow::{bail, Result};

use crate::args::UmountArgs;

/// Unmounts, trying gentler means first.
pub fn run(args: &UmountArgs) -> Result<u8> {
    let mp = &args.mountpoint;
    if !coffre_fs::is_mounted(mp) {
        bail!("nothing is mounted on {}", mp.display());
    }
    let mut last = String::new();
    // Plain unmount first; a lazy one detaches a busy or stale mount.
    // fusermount3 (fuse3) or fusermount (fuse 2, which some peers' packages
    // install instead) for users; umount for root.
    for (prog, flags) in [
        ("fusermount3", "-u"),
        ("fusermount", "-u"),
        ("fusermount3", "-uz"),
        ("fusermount", "-uz"),
        ("umount", "-l"),
    ] {
        match Command::new(prog).arg(flags).arg(mp).output() {
            Ok(out) if out.status.success() && !coffre_fs::is_mounted(mp) => {
                println!("Unmounted {}.", mp.display());
                return Ok(0);
            }
            Ok(out) => last = String::from_utf8_lossy(&out.stderr).trim().to_string(),
            Err(e) => last = format!("{prog}: {e}"),
        }
    }
    bail!(
        "could not unmount {}: {last}. Close the windows and programs using it, then try again",
        mp.display()
    )
}
