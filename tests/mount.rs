//! The read-only FUSE mount, through the real binary: every dated folder is
//! the tree as it was that day, random reads match, every write fails with
//! EROFS, inode numbers survive a remount, new snapshots appear, damaged
//! data gives EIO. Every test unmounts, even when it fails (`Mounted`'s Drop).

use std::ffi::OsStr;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, Instant};

use coffre_tests::mount::{is_mounted, Mounted};
use coffre_tests::{assert_same_tree, capture, run, sample_day, Coffre, Fixture, TreeImage};

fn folders(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Three days of snapshots, mounted: each per-snapshot folder, the day's
/// folder and `latest` compare bit-exact (contents, types, modes, owners,
/// mtimes, symlinks, hard links, xattrs, holes) with the tree of that day.
#[test]
fn every_dated_folder_is_that_day() {
    let Fixture { tmp, src, coffre } = Fixture::new(16);
    let mut images: Vec<TreeImage> = Vec::new();
    for day in 0..3 {
        if day > 0 {
            sample_day(&src, day);
        }
        images.push(capture(&src));
        coffre.snapshot(&src);
    }
    let m = Mounted::start(&coffre, &tmp.path().join("mnt"), &[]);
    let names = folders(&m.path);
    // One day folder, one folder per snapshot of that day, and latest.
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.iter().all(|n| !n.contains(':')));
    let timed: Vec<&String> = names.iter().filter(|n| n.contains('_')).collect();
    for (image, name) in images.iter().zip(&timed) {
        assert_same_tree(image, &capture(&m.path.join(name)));
    }
    assert_same_tree(&images[2], &capture(&m.path.join(&names[0])));
    assert_same_tree(&images[2], &capture(&m.path.join("latest")));
    m.stop();
}

/// Reads at many offsets (chunk boundaries, holes, the last bytes) of the
/// database and of a large file match the source.
#[test]
fn random_reads_match_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut data = vec![0u8; 24 << 20];
    let mut x: u64 = 12345;
    for b in data.iter_mut() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *b = (x >> 56) as u8;
    }
    std::fs::write(src.join("big.bin"), &data).unwrap();
    // A sparse file: data, a 16 MiB hole, data.
    let sparse = std::fs::File::create(src.join("sparse.bin")).unwrap();
    sparse.write_all_at(&data[..100_000], 0).unwrap();
    sparse.write_all_at(&data[..100_000], 16 << 20).unwrap();
    drop(sparse);
    let coffre = Coffre::new(tmp.path().join("repo"));
    coffre.init();
    coffre.snapshot(&src);
    let m = Mounted::start(&coffre, &tmp.path().join("mnt"), &["--cache-size", "4M"]);
    for name in ["big.bin", "sparse.bin"] {
        let want = std::fs::read(src.join(name)).unwrap();
        let f = std::fs::File::open(m.path.join("latest").join(name)).unwrap();
        let len = want.len() as u64;
        let mut offsets: Vec<u64> = (0..200).map(|i| (i * 7_919_993u64) % len).collect();
        offsets.extend([0, 1, 65_535, 65_536, len - 1, len - 4096, len / 2]);
        for off in offsets {
            let n = 4096.min(len - off) as usize;
            let mut buf = vec![0u8; n];
            f.read_exact_at(&mut buf, off).unwrap();
            assert!(
                buf == want[off as usize..off as usize + n],
                "{name} differs at {off}"
            );
        }
    }
    m.stop();
}

/// Every kind of write fails with EROFS; nothing changes.
#[test]
fn every_write_fails_with_erofs() {
    let Fixture { tmp, src, coffre } = Fixture::new(4);
    coffre.snapshot(&src);
    let m = Mounted::start(&coffre, &tmp.path().join("mnt"), &[]);
    let root = m.path.join("latest");
    let file = root.join("config/officine.ini");
    let erofs = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
    };
    erofs(std::fs::write(root.join("new.txt"), b"x"), "create");
    erofs(
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .map(drop),
        "open for writing",
    );
    erofs(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .map(drop),
        "open for append",
    );
    erofs(std::fs::remove_file(&file), "unlink");
    erofs(std::fs::rename(&file, root.join("config/x")), "rename");
    erofs(std::fs::create_dir(root.join("d")), "mkdir");
    erofs(
        std::fs::remove_dir(root.join("divers/dossier_vide")),
        "rmdir",
    );
    erofs(std::os::unix::fs::symlink("x", root.join("l")), "symlink");
    erofs(std::fs::hard_link(&file, root.join("h")), "link");
    erofs(
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o777)),
        "chmod",
    );
    erofs(std::os::unix::fs::chown(&file, Some(1), Some(1)), "chown");
    erofs(
        std::fs::File::open(&file)
            .unwrap()
            .set_modified(std::time::SystemTime::now()),
        "utimes",
    );
    let c = std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path and value buffer.
    let rc = unsafe { libc::setxattr(c.as_ptr(), c"user.x".as_ptr(), b"v".as_ptr().cast(), 1, 0) };
    assert_eq!(
        (rc, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::EROFS)),
        "setxattr"
    );
    // SAFETY: valid NUL-terminated path.
    let rc = unsafe { libc::truncate(c.as_ptr(), 0) };
    assert_eq!(
        (rc, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::EROFS)),
        "truncate"
    );
    erofs(
        std::fs::write(m.path.join("top.txt"), b"x"),
        "create at the top",
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(src.join("config/officine.ini")).unwrap()
    );
    m.stop();
}

/// The same entry of the same snapshot keeps its inode number across a
/// remount; hard links share one; a snapshot taken while mounted appears
/// within seconds.
#[test]
fn inode_numbers_are_stable_and_new_snapshots_appear() {
    let Fixture { tmp, src, coffre } = Fixture::new(4);
    coffre.snapshot(&src);
    let paths = [
        "latest",
        "latest/db",
        "latest/db/officine.fdb",
        "latest/divers/lien_dur.txt",
        "latest/divers/original.txt",
    ];
    let mnt = tmp.path().join("mnt");
    let inos = |root: &Path| -> Vec<u64> {
        paths
            .iter()
            .map(|p| std::fs::symlink_metadata(root.join(p)).unwrap().ino())
            .collect()
    };
    let m = Mounted::start(&coffre, &mnt, &[]);
    let first = inos(&m.path);
    assert_eq!(first[3], first[4], "hard links must share an inode number");
    assert_eq!(std::fs::metadata(m.path.join(paths[3])).unwrap().nlink(), 3);

    let before = folders(&m.path);
    sample_day(&src, 1);
    coffre.snapshot(&src);
    let deadline = Instant::now() + Duration::from_secs(10);
    while folders(&m.path) == before {
        assert!(Instant::now() < deadline, "the new snapshot did not appear");
        std::thread::sleep(Duration::from_millis(200));
    }
    m.stop();

    let m = Mounted::start(&coffre, &mnt, &[]);
    let day0 = folders(&m.path)
        .into_iter()
        .find(|n| n.contains('_'))
        .unwrap();
    let again: Vec<u64> = paths
        .iter()
        .map(|p| {
            std::fs::symlink_metadata(m.path.join(p.replacen("latest", &day0, 1)))
                .unwrap()
                .ino()
        })
        .collect();
    // The first snapshot, now under its timed folder: numbers differ from
    // `latest` (another folder), so compare with a remount of that folder.
    m.stop();
    let m = Mounted::start(&coffre, &mnt, &[]);
    let third: Vec<u64> = paths
        .iter()
        .map(|p| {
            std::fs::symlink_metadata(m.path.join(p.replacen("latest", &day0, 1)))
                .unwrap()
                .ino()
        })
        .collect();
    assert_eq!(again, third);
    m.stop();
}

/// A damaged chunk gives EIO for that file (never wrong bytes) and other
/// files still read.
#[test]
fn damaged_data_gives_eio() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let data: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("a.bin"), &data).unwrap();
    std::fs::write(src.join("small.txt"), b"intact").unwrap();
    let coffre = Coffre::new(tmp.path().join("repo"));
    coffre.init();
    coffre.snapshot(&src);
    // Damage the middle of the biggest pack (the data pack).
    let mut biggest = (std::path::PathBuf::new(), 0);
    for sub in std::fs::read_dir(coffre.repo.join("data")).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let f = f.unwrap();
            let len = f.metadata().unwrap().len();
            if len > biggest.1 {
                biggest = (f.path(), len);
            }
        }
    }
    let mut bytes = std::fs::read(&biggest.0).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&biggest.0, bytes).unwrap();
    let m = Mounted::start(&coffre, &tmp.path().join("mnt"), &[]);
    let err =
        std::fs::read(m.path.join("latest/a.bin")).expect_err("damaged file read without error");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    m.stop();
}

/// --daemon returns once mounted; `coffre umount` unmounts; a mount whose
/// process was killed (-9) is a stale mount that `coffre umount` clears;
/// a non-empty or missing mountpoint is a clear error.
#[test]
fn daemon_umount_and_stale_mounts() {
    let Fixture { tmp, src, coffre } = Fixture::new(4);
    coffre.snapshot(&src);
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let started = Instant::now();
    let out = coffre.ok([OsStr::new("mount"), mnt.as_os_str(), "--daemon".as_ref()]);
    assert!(out.contains("Mounted"), "{out}");
    // Guard: whatever happens below, the mount goes away.
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            if is_mounted(self.0) {
                let _ = std::process::Command::new("fusermount3")
                    .arg("-uz")
                    .arg(self.0)
                    .status();
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(self.0)
                    .status();
            }
        }
    }
    let _guard = Unmount(&mnt);
    assert!(is_mounted(&mnt));
    assert!(mnt.join("latest/config/officine.ini").is_file());
    eprintln!("daemon mount ready in {:?}", started.elapsed());

    // Already mounted: a clear error.
    let out = run(&mut coffre.cmd([OsStr::new("mount"), mnt.as_os_str()]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already mounted"));

    coffre.ok([OsStr::new("umount"), mnt.as_os_str()]);
    assert!(!is_mounted(&mnt));

    // kill -9 of the mount process leaves a stale mount; umount clears it.
    let mut child = coffre
        .cmd([OsStr::new("mount"), mnt.as_os_str()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_mounted(&mnt) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(is_mounted(&mnt), "expected a stale mount after kill -9");
    coffre.ok([OsStr::new("umount"), mnt.as_os_str()]);
    assert!(!is_mounted(&mnt));

    std::fs::write(mnt.join("x"), b"x").unwrap();
    let out = run(&mut coffre.cmd([OsStr::new("mount"), mnt.as_os_str()]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    let out = run(&mut coffre.cmd([OsStr::new("mount"), tmp.path().join("nope").as_os_str()]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

/// The repository's data disappearing while mounted (here: its `data`
/// folder moved away; the mount holds the repository folder open, so
/// moving the whole folder would not hide it): reads of data not yet
/// cached fail with EIO, the mount neither hangs nor crashes, and works
/// again when the data is back.
#[test]
fn vanished_drive_gives_eio_not_a_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..4 {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|j| (j.wrapping_mul(2654435761 + i) >> 11) as u8)
            .collect();
        std::fs::write(src.join(format!("f{i}.bin")), data).unwrap();
    }
    let coffre = Coffre::new(tmp.path().join("repo"));
    coffre.init();
    coffre.snapshot(&src);
    let m = Mounted::start(&coffre, &tmp.path().join("mnt"), &[]);
    let names = folders(&m.path.join("latest"));
    assert_eq!(names.len(), 4);
    let gone = tmp.path().join("data-unplugged");
    std::fs::rename(coffre.repo.join("data"), &gone).unwrap();
    let started = Instant::now();
    let err = std::fs::read(m.path.join("latest/f3.bin"))
        .expect_err("read from a vanished drive succeeded");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    assert!(started.elapsed() < Duration::from_secs(10));
    // Still answering.
    assert_eq!(folders(&m.path.join("latest")).len(), 4);
    std::fs::rename(&gone, coffre.repo.join("data")).unwrap();
    assert_eq!(
        std::fs::read(m.path.join("latest/f3.bin")).unwrap(),
        std::fs::read(src.join("f3.bin")).unwrap()
    );
    m.stop();
}

/// Three folders under `tmp/src`, each with `files` files written by
/// `write(folder, n, dir)`, snapshotted into a new repository: the
/// repository, the source and its image.
fn three_folders_snapshotted(
    tmp: &Path,
    files: u32,
    write: impl Fn(u32, u32, &Path),
) -> (Coffre, std::path::PathBuf, TreeImage) {
    let src = tmp.join("src");
    for folder in 0..3 {
        let dir = src.join(format!("folder_{folder}"));
        std::fs::create_dir_all(&dir).unwrap();
        for n in 0..files {
            write(folder, n, &dir);
        }
    }
    let coffre = Coffre::new(tmp.join("repo"));
    coffre.init();
    coffre.snapshot(&src);
    let want = capture(&src);
    (coffre, src, want)
}

/// With room for 50 inodes, a mount walked (`capture` lists, stats and
/// reads every entry) over 18 times as many still shows the tree
/// bit-exact, twice: the entries let go are looked up again.
#[test]
fn a_mount_with_few_inodes_lets_go_and_looks_up_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (coffre, _, want) = three_folders_snapshotted(tmp.path(), 300, |folder, n, dir| {
        std::fs::write(
            dir.join(format!("scan_{n:04}.txt")),
            format!("folder {folder}, scan {n}\n").repeat(n as usize % 7 + 1),
        )
        .unwrap();
    });
    let m = Mounted::start(&coffre, &tmp.path().join("mnt"), &["--max-inodes", "50"]);
    for _ in 0..2 {
        assert_same_tree(&want, &capture(&m.path.join("latest")));
        // Time for the mount to let go of the stalest entries.
        std::thread::sleep(Duration::from_millis(400));
    }
    m.stop();
}

/// An inode inside a snapshot keeps where its entry is, not a copy of its
/// metadata: opening a file, its extended attributes and its attributes
/// fetched again (`statx` with `AT_STATX_FORCE_SYNC`) are read from its
/// folder's listing again, after the other folders, in pieces, pushed it
/// out of a small cache. Every one of them must still be that entry's.
#[test]
fn entries_read_again_after_their_folder_left_the_cache_are_theirs() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let (coffre, src, want) = three_folders_snapshotted(tmp.path(), 2500, |folder, n, dir| {
        let file = dir.join(format!("arl_{n:05}.xml"));
        std::fs::write(
            &file,
            format!("<arl folder={folder} n={n}/>\n").repeat(n as usize % 5 + 1),
        )
        .unwrap();
        let f = std::fs::File::open(&file).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + u64::from(n)))
            .unwrap();
    });
    let m = Mounted::start(&coffre, &tmp.path().join("mnt"), &["--cache-size", "1M"]);
    let latest = m.path.join("latest");
    // The first walk lists and looks up; the second opens files whose
    // inodes the kernel still holds, so the mount reads their entries again.
    for _ in 0..2 {
        assert_same_tree(&want, &capture(&latest));
    }
    for (rel, _) in want.entries() {
        if rel.is_empty() {
            continue;
        }
        let path = latest.join(OsStr::from_bytes(rel));
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        let mut stx: libc::statx = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::statx(
                libc::AT_FDCWD,
                c.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_FORCE_SYNC,
                libc::STATX_BASIC_STATS,
                &mut stx,
            )
        };
        assert_eq!(rc, 0, "statx {}", path.display());
        let meta = std::fs::symlink_metadata(src.join(OsStr::from_bytes(rel))).unwrap();
        if meta.is_file() {
            assert_eq!(stx.stx_size, meta.size(), "size of {}", path.display());
        }
        assert_eq!(
            stx.stx_mtime.tv_sec,
            meta.mtime(),
            "mtime of {}",
            path.display()
        );
        assert_eq!(u32::from(stx.stx_mode) & 0o7777, meta.mode() & 0o7777);
    }
    m.stop();
}
