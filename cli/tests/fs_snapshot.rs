//! `--fs-snapshot btrfs|lvm` on a loop device: the snapshot is read from a
//! read-only filesystem snapshot, recorded under the live path (so the next
//! run is incremental), and the filesystem snapshot is always removed.
//! Skipped, saying why, where the kernel or the tools refuse (no root, no
//! loop devices, no btrfs, no device-mapper).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

const PASS: &str = "fs snapshot passphrase";

fn sh(cmd: &str) -> Result<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Undoes the test's mounts and devices, whatever happened.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        while let Some(cmd) = self.0.pop() {
            let _ = sh(&cmd);
        }
    }
}

fn coffre(tmp: &Path, args: &[&str]) -> std::process::Output {
    common::coffre(tmp, PASS)
        .args(args)
        .output()
        .expect("run coffre")
}

fn ok(tmp: &Path, args: &[&str]) -> String {
    let out = coffre(tmp, args);
    assert!(
        out.status.success(),
        "coffre {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loop device on a fresh image of `mb` MiB, detached on drop.
fn loop_device(tmp: &Path, mb: u32, cleanup: &mut Cleanup) -> Result<String, String> {
    let img = tmp.join("disk.img");
    sh(&format!("truncate -s {mb}M {}", img.display()))?;
    let dev = sh(&format!("losetup -f --show {}", img.display()))?;
    cleanup.0.push(format!("losetup -d {dev}"));
    Ok(dev)
}

/// Snapshots `src` twice through the filesystem snapshot and checks what
/// was read, recorded and left behind.
fn exercise(tmp: &Path, src: &Path, kind: &str, leftovers: &dyn Fn() -> String) {
    fs::create_dir_all(src.join("db")).expect("mkdir");
    fs::write(src.join("db/officine.fdb"), vec![7u8; 300_000]).expect("write");
    fs::write(src.join("notes.txt"), "ordonnance").expect("write");
    let s = src.to_str().expect("utf8");
    ok(tmp, &["init"]);
    ok(tmp, &["snapshot", s, "--fs-snapshot", kind]);
    assert_eq!(leftovers(), "", "the filesystem snapshot was removed");
    let json = ok(tmp, &["--json", "snapshots"]);
    assert!(
        json.contains(&format!("\"source\": \"{s}\"")),
        "recorded under the live path: {json}"
    );
    let listing = ok(tmp, &["ls", "latest", "-R"]);
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        ["db", "db/officine.fdb", "notes.txt"]
    );

    // The second run finds its parent: the unchanged database is not read.
    fs::write(src.join("notes.txt"), "ordonnance renouvelee").expect("write");
    let out = ok(tmp, &["--json", "snapshot", s, "--fs-snapshot", kind]);
    assert!(out.contains("\"files_unchanged\": 1"), "{out}");
    assert_eq!(leftovers(), "");
    let restored = tmp.join("restored");
    ok(
        tmp,
        &["restore", "latest", restored.to_str().expect("utf8")],
    );
    assert_eq!(
        fs::read_to_string(restored.join("notes.txt")).expect("read"),
        "ordonnance renouvelee"
    );

    // A failing run removes it too.
    let failed = coffre(
        tmp,
        &[
            "snapshot",
            s,
            "--fs-snapshot",
            kind,
            "--from-command",
            "x=exit 3",
        ],
    );
    assert!(!failed.status.success());
    assert_eq!(leftovers(), "", "removed after a failure too");
}

#[test]
fn btrfs_snapshot_source_on_a_loop_device() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let mut cleanup = Cleanup(Vec::new());
    let mnt = t.join("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    let setup = (|| {
        let dev = loop_device(t, 160, &mut cleanup)?;
        sh(&format!("mkfs.btrfs -q {dev}"))?;
        sh(&format!("mount {dev} {}", mnt.display()))?;
        cleanup.0.push(format!("umount -l {}", mnt.display()));
        sh(&format!(
            "btrfs subvolume create {}/officine",
            mnt.display()
        ))
    })();
    if let Err(why) = setup {
        eprintln!("SKIPPED btrfs_snapshot_source_on_a_loop_device: the system refuses ({why})");
        return;
    }
    let src: PathBuf = mnt.join("officine");
    let list = format!("btrfs subvolume list -o {}", src.display());
    exercise(t, &src, "btrfs", &|| sh(&list).unwrap_or_else(|e| e));
}

#[test]
fn lvm_snapshot_source_on_a_loop_device() {
    if !Path::new("/dev/mapper/control").exists() {
        eprintln!(
            "SKIPPED lvm_snapshot_source_on_a_loop_device: the kernel has no device-mapper (/dev/mapper/control)"
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let mut cleanup = Cleanup(Vec::new());
    let mnt = t.join("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    let vg = format!("coffretest{}", std::process::id());
    let setup = (|| {
        let dev = loop_device(t, 200, &mut cleanup)?;
        sh(&format!("pvcreate -q {dev}"))?;
        cleanup.0.push(format!("pvremove -q {dev}"));
        sh(&format!("vgcreate -q {vg} {dev}"))?;
        cleanup.0.push(format!("vgremove -q -f {vg}"));
        sh(&format!("lvcreate -q -y -L 80M -n data {vg}"))?;
        sh(&format!("mkfs.ext4 -q /dev/{vg}/data"))?;
        sh(&format!("mount /dev/{vg}/data {}", mnt.display()))?;
        cleanup.0.push(format!("umount -l {}", mnt.display()));
        Ok::<(), String>(())
    })();
    if let Err(why) = setup {
        eprintln!("SKIPPED lvm_snapshot_source_on_a_loop_device: the system refuses ({why})");
        return;
    }
    let src = mnt.join("officine");
    let list = format!("lvs --noheadings -o lv_name {vg} | grep coffre-fs-snapshot || true");
    exercise(t, &src, "lvm", &|| sh(&list).unwrap_or_else(|e| e));
}
