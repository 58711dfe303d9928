//! What `/proc/self/mountinfo` says: which filesystems are mounted where.
//! Read by the configuration (a drive found by label: where is it
//! mounted?) and by `--fs-snapshot` (which volume holds a source?).

use std::path::PathBuf;

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the device.
    pub major_minor: String,
    /// The folder of the filesystem mounted here (`/` for its top; else a
    /// bind mount of a folder inside it).
    pub root: PathBuf,
    /// Where it is mounted.
    pub point: PathBuf,
    /// Filesystem type (`ext4`, `btrfs`...).
    pub fstype: String,
    /// The mount source (a device path, for disks).
    pub source: String,
}

/// The mounts `mountinfo` lists, in order; malformed lines are skipped.
pub fn parse(mountinfo: &str) -> impl Iterator<Item = Mount> + '_ {
    mountinfo.lines().filter_map(|line| {
        // id parent major:minor root point options [optional...] - fstype source super
        let (left, right) = line.split_once(" - ")?;
        let left: Vec<&str> = left.split(' ').collect();
        let mut right = right.split(' ');
        let (fstype, source) = (right.next()?, right.next()?);
        Some(Mount {
            major_minor: left.get(2)?.to_string(),
            root: PathBuf::from(unescape_octal(left.get(3)?)),
            point: PathBuf::from(unescape_octal(left.get(4)?)),
            fstype: fstype.to_string(),
            source: unescape_octal(source),
        })
    })
}

/// The mounts of this process, read now (none when /proc cannot be read).
pub fn current() -> Vec<Mount> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse(&info).collect()
}

/// Undoes the octal escapes of mountinfo and fstab (`\040` for a space).
pub fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn lines_and_escapes_are_read() {
        assert_eq!(unescape_octal(r"/media/cl\040usb"), "/media/cl usb");
        assert_eq!(unescape_octal("/plain"), "/plain");
        assert_eq!(unescape_octal(r"/trail\04"), r"/trail\04");
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    41 22 8:17 / /media/ma\\040cle rw shared:1 - vfat /dev/sdb1 rw\n\
                    garbage\n";
        let all: Vec<Mount> = parse(info).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].point, PathBuf::from("/media/ma cle"));
        assert_eq!(
            (
                all[1].major_minor.as_str(),
                all[1].fstype.as_str(),
                all[1].source.as_str()
            ),
            ("8:17", "vfat", "/dev/sdb1")
        );
        assert!(current().iter().any(|m| m.point == Path::new("/")));
    }
}
