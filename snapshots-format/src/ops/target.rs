//! Creating entries inside a restore target, always relative to an open
//! directory descriptor and never following a symlink, so that a hostile
//! repository (or a symlink already in the target) cannot make a restore
//! write outside the target.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::format::tree::Timestamp;

/// An open directory inside the target.
pub struct DirFd(OwnedFd);

fn cstr(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// What is at a name in a directory, without following a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Nothing.
    Nothing,
    /// A directory.
    Dir,
    /// Anything else (file, symlink, fifo...).
    Other,
}

impl DirFd {
    /// Opens a directory by path (the target root, chosen by the user).
    pub fn open_root(path: &std::path::Path) -> io::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let c = cstr(path.as_os_str().as_bytes())?;
        // SAFETY: valid NUL-terminated path; we own the returned descriptor.
        let fd = check(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn fd(&self) -> libc::c_int {
        self.0.as_raw_fd()
    }

    /// What is at `name`.
    pub fn existing(&self, name: &[u8]) -> io::Result<Existing> {
        let c = cstr(name)?;
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, NUL-terminated name, stat buffer we own.
        match check(unsafe {
            libc::fstatat(self.fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW)
        }) {
            Ok(_) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Ok(Existing::Dir),
            Ok(_) => Ok(Existing::Other),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(Existing::Nothing),
            Err(e) => Err(e),
        }
    }

    /// Removes a non-directory entry.
    pub fn unlink(&self, name: &[u8]) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: as above.
        check(unsafe { libc::unlinkat(self.fd(), c.as_ptr(), 0) }).map(drop)
    }

    /// Opens a subdirectory, refusing a symlink.
    pub fn open_dir(&self, name: &[u8]) -> io::Result<DirFd> {
        let c = cstr(name)?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: as above; we own the returned descriptor.
        let fd = check(unsafe { libc::openat(self.fd(), c.as_ptr(), flags) })?;
        Ok(DirFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Creates a subdirectory (mode 0700 until its metadata is applied).
    pub fn mkdir(&self, name: &[u8]) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: as above.
        check(unsafe { libc::mkdirat(self.fd(), c.as_ptr(), 0o700) }).map(drop)
    }

    /// Creates a new regular file for writing; fails if the name exists.
    pub fn create_file(&self, name: &[u8]) -> io::Result<File> {
        let c = cstr(name)?;
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: as above; we own the returned descriptor.
        let fd =
            check(unsafe { libc::openat(self.fd(), c.as_ptr(), flags, 0o600 as libc::c_uint) })?;
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Creates a symlink `name` -> `target` (the target is stored, never followed).
    pub fn symlink(&self, target: &[u8], name: &[u8]) -> io::Result<()> {
        let (t, c) = (cstr(target)?, cstr(name)?);
        // SAFETY: as above.
        check(unsafe { libc::symlinkat(t.as_ptr(), self.fd(), c.as_ptr()) }).map(drop)
    }

    /// Creates a fifo, socket or device node.
    pub fn mknod(&self, name: &[u8], kind_bits: libc::mode_t, rdev: u64) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: as above.
        check(unsafe {
            libc::mknodat(
                self.fd(),
                c.as_ptr(),
                kind_bits | 0o600,
                rdev as libc::dev_t,
            )
        })
        .map(drop)
    }

    /// Makes `name` a hard link to `from_name` in `from_dir`.
    pub fn link_from(&self, from_dir: &DirFd, from_name: &[u8], name: &[u8]) -> io::Result<()> {
        let (f, c) = (cstr(from_name)?, cstr(name)?);
        // SAFETY: as above; flags 0: a symlink is linked itself, not followed.
        check(unsafe { libc::linkat(from_dir.fd(), f.as_ptr(), self.fd(), c.as_ptr(), 0) })
            .map(drop)
    }

    /// Sets owner, then mode (chown clears setuid, so mode comes after) of
    /// `name`, not following a symlink. Mode is skipped for symlinks, whose
    /// permissions Linux ignores.
    pub fn set_owner_mode(
        &self,
        name: &[u8],
        owner: Option<(u32, u32)>,
        mode: Option<u32>,
    ) -> io::Result<()> {
        let c = cstr(name)?;
        if let Some((uid, gid)) = owner {
            // SAFETY: as above.
            check(unsafe {
                libc::fchownat(self.fd(), c.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
            })?;
        }
        if let Some(mode) = mode {
            self.chmod_nofollow(&c, mode)?;
        }
        Ok(())
    }

    /// chmod of `name` itself, never of what a symlink swapped in for it
    /// points to (`fchmodat` follows symlinks): the entry is opened as a
    /// path only, checked not to be a symlink, and changed through its
    /// descriptor's /proc link, which names the opened inode itself.
    fn chmod_nofollow(&self, name: &CString, mode: u32) -> io::Result<()> {
        // SAFETY: valid descriptor and NUL-terminated name; O_PATH opens
        // nothing for reading or writing, so a fifo cannot block it.
        let fd = check(unsafe {
            libc::openat(
                self.fd(),
                name.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` was just opened by us and is closed once, here.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: an all-zero stat is valid; `fd` is open.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        check(unsafe { libc::fstat(owned.as_raw_fd(), &mut st) })?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(io::Error::other("replaced by a symlink while restoring"));
        }
        let proc = cstr(format!("/proc/self/fd/{}", owned.as_raw_fd()).as_bytes())?;
        // SAFETY: NUL-terminated path; the magic link resolves to the
        // inode `fd` holds.
        check(unsafe { libc::chmod(proc.as_ptr(), mode as libc::mode_t) }).map(drop)
    }

    /// Sets the modification time of `name` (atime is set to the same value).
    pub fn set_mtime(&self, name: &[u8], mtime: Timestamp) -> io::Result<()> {
        let c = cstr(name)?;
        let ts = libc::timespec {
            tv_sec: mtime.sec as libc::time_t,
            tv_nsec: mtime.nsec as libc::c_long,
        };
        let times = [ts, ts];
        // SAFETY: as above; `times` holds two timespecs.
        check(unsafe {
            libc::utimensat(
                self.fd(),
                c.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
        .map(drop)
    }

    /// Sets an extended attribute on the directory itself.
    pub fn set_xattr_self(&self, name: &[u8], value: &[u8]) -> io::Result<()> {
        set_xattr_fd(self.fd(), name, value)
    }

    /// Sets owner and mode of the directory itself.
    pub fn set_owner_mode_self(&self, owner: Option<(u32, u32)>, mode: u32) -> io::Result<()> {
        set_owner_mode_fd(self.fd(), owner, mode)
    }

    /// Sets the modification time of the directory itself.
    pub fn set_mtime_self(&self, mtime: Timestamp) -> io::Result<()> {
        set_mtime_fd(self.fd(), mtime)
    }
}

/// Sets an extended attribute on an open file.
pub fn set_xattr_fd(fd: libc::c_int, name: &[u8], value: &[u8]) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid descriptor, NUL-terminated name, value slice valid for its length.
    check(unsafe { libc::fsetxattr(fd, c.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
        .map(drop)
}

/// Sets owner then mode of an open file.
pub fn set_owner_mode_fd(fd: libc::c_int, owner: Option<(u32, u32)>, mode: u32) -> io::Result<()> {
    set_owner_fd(fd, owner)?;
    set_mode_fd(fd, mode)
}

/// Sets the owner of an open file. The kernel then drops its setuid and
/// setgid bits and its file capabilities (`security.capability`): set
/// those after.
pub fn set_owner_fd(fd: libc::c_int, owner: Option<(u32, u32)>) -> io::Result<()> {
    if let Some((uid, gid)) = owner {
        // SAFETY: valid descriptor.
        check(unsafe { libc::fchown(fd, uid, gid) })?;
    }
    Ok(())
}

/// Sets the mode of an open file.
pub fn set_mode_fd(fd: libc::c_int, mode: u32) -> io::Result<()> {
    // SAFETY: valid descriptor.
    check(unsafe { libc::fchmod(fd, mode as libc::mode_t) }).map(drop)
}

/// Sets the modification (and access) time of an open file.
pub fn set_mtime_fd(fd: libc::c_int, mtime: Timestamp) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: mtime.sec as libc::time_t,
        tv_nsec: mtime.nsec as libc::c_long,
    };
    let times = [ts, ts];
    // SAFETY: valid descriptor; `times` holds two timespecs.
    check(unsafe { libc::futimens(fd, times.as_ptr()) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fifo swapped for a symlink before its mode is set: the link's
    /// target (say /etc/shadow) must keep its mode.
    #[test]
    fn modes_are_never_set_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"secret").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("canal.fifo")).unwrap();
        let root = DirFd::open_root(dir.path()).unwrap();
        assert!(root
            .set_owner_mode(b"canal.fifo", None, Some(0o666))
            .is_err());
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // A real fifo gets its mode.
        let c = cstr(b"vrai.fifo").unwrap();
        // SAFETY: valid descriptor and name.
        check(unsafe { libc::mkfifoat(root.fd(), c.as_ptr(), 0o600) }).unwrap();
        root.set_owner_mode(b"vrai.fifo", None, Some(0o640))
            .unwrap();
        let meta = std::fs::symlink_metadata(dir.path().join("vrai.fifo")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    }
}
