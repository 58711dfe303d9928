//! A `coffre mount` running for a test, always unmounted when dropped, even
//! when the test fails, so no stale mount is ever left behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::Coffre;

/// A foreground `coffre mount` child and its mountpoint.
pub struct Mounted {
    child: Option<Child>,
    /// Where it is mounted.
    pub path: PathBuf,
}

/// Whether `path` appears in /proc/self/mountinfo.
pub fn is_mounted(path: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(path) else {
        return false;
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = canon.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

impl Mounted {
    /// Mounts `coffre`'s repository on `path` (created if missing) with
    /// extra arguments, and waits until the mount answers.
    pub fn start(coffre: &Coffre, path: &Path, extra: &[&str]) -> Self {
        std::fs::create_dir_all(path).expect("create mountpoint");
        let mut cmd = coffre.cmd(["mount".as_ref(), path.as_os_str()]);
        cmd.args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().expect("start coffre mount");
        let mut m = Mounted {
            child: Some(child),
            path: path.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted(path) {
            if let Some(status) = m.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("coffre mount exited early: {status}");
            }
            assert!(Instant::now() < deadline, "mount did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    /// Stops the mount with SIGTERM, as systemd would, and checks it is gone.
    pub fn stop(mut self) {
        self.shutdown();
        assert!(!is_mounted(&self.path), "still mounted after SIGTERM");
    }

    fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if is_mounted(&self.path) {
            let _ = std::process::Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.path)
                .status();
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.path)
                .status();
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.shutdown();
    }
}
