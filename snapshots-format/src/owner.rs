//! Who a process is, well enough to tell from a name it left on a drive
//! whether it is still running: the machine and pid namespace (a pid means
//! nothing on another host or in another container), the boot (pids start
//! again after a reboot), the pid, and the process's start time (pids are
//! reused).

use std::sync::OnceLock;

/// The identity of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Hash of the machine id, the host name and the pid namespace.
    pub host: u64,
    /// Hash of the kernel's boot id.
    pub boot: u64,
    /// Process id in that namespace.
    pub pid: u32,
    /// Start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
    pub start: u64,
}

impl Owner {
    /// This process.
    pub fn current() -> Owner {
        static ME: OnceLock<Owner> = OnceLock::new();
        *ME.get_or_init(|| {
            let pid = std::process::id();
            Owner {
                host: host_hash(),
                boot: hash64(&read_small("/proc/sys/kernel/random/boot_id")),
                pid,
                start: start_time(pid).unwrap_or(0),
            }
        })
    }

    /// True only when `self` surely no longer runs: it ran on this machine
    /// and namespace, and either the machine rebooted since or its pid is
    /// gone or now belongs to a process started at another time. A process
    /// of another host, namespace, or whose state cannot be read counts as
    /// running.
    pub fn is_gone(&self) -> bool {
        let me = Owner::current();
        if self.host != me.host || me.boot == hash64(b"") {
            return false;
        }
        if self.boot != me.boot {
            return true;
        }
        if self.pid == me.pid {
            return self.start != me.start;
        }
        match std::fs::read(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => parse_start(&stat).is_some_and(|s| s != self.start),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Without /proc at all nothing can be known.
                std::path::Path::new("/proc/self/stat").exists()
            }
            Err(_) => false,
        }
    }
}

fn read_small(path: &str) -> Vec<u8> {
    std::fs::read(path)
        .map(|mut v| {
            v.truncate(256);
            v
        })
        .unwrap_or_default()
}

fn hash64(bytes: &[u8]) -> u64 {
    let h = blake3::hash(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

fn host_hash() -> u64 {
    let mut all = read_small("/etc/machine-id");
    all.push(0);
    all.extend_from_slice(&hostname());
    all.push(0);
    // The pid namespace's inode number tells containers apart.
    if let Ok(link) = std::fs::read_link("/proc/self/ns/pid") {
        all.extend_from_slice(link.as_os_str().as_encoded_bytes());
    }
    hash64(&all)
}

fn start_time(pid: u32) -> Option<u64> {
    parse_start(&std::fs::read(format!("/proc/{pid}/stat")).ok()?)
}

/// Field 22 of a `/proc/PID/stat` line; the command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_start(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// This machine's host name.
pub fn hostname() -> Vec<u8> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // when the name fits, and we stop at the first NUL in any case.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return b"unknown".to_vec();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    buf[..end].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_a_dead_one_is_gone() {
        let me = Owner::current();
        assert!(!me.is_gone());
        assert!(me.start > 0);
        // Same pid, other start time: the pid was reused.
        assert!(Owner {
            start: me.start + 1,
            ..me
        }
        .is_gone());
        // Another machine or namespace: never judged.
        assert!(!Owner {
            host: me.host ^ 1,
            pid: 999_999_999,
            ..me
        }
        .is_gone());
        // A pid that does not exist here.
        assert!(Owner {
            pid: 999_999_999,
            ..me
        }
        .is_gone());
        // Rebooted since.
        assert!(Owner {
            boot: me.boot ^ 1,
            ..me
        }
        .is_gone());
    }

    #[test]
    fn start_time_is_read_after_the_command_name() {
        let line = b"42 (a) b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 19\n";
        assert_eq!(parse_start(line), Some(777));
        assert_eq!(parse_start(b"garbage"), None);
    }
}
