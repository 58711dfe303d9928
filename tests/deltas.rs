//! Delta blobs (format 8) through the real binary: a stock export
//! rewritten every day with one row in twenty changed is stored as deltas
//! against the previous day's chunks, a small fraction of storing it again;
//! every day restores bit-exact, from the drive, through the mount and from
//! a copy on a second drive; the bases stay as long as a kept snapshot needs
//! them (forget and prune of the older days); `check --read-data` passes.

use std::path::Path;

use coffre_tests::mount::Mounted;
use coffre_tests::{assert_same_tree, capture, describe, json_string_fields, run, Coffre};

const ROWS: usize = 40_000;

/// The stock export on `day`: row `i` changes on the days where
/// `(i * 7 + day) % 20 == 0`, so one row in twenty a day, scattered.
fn stock_csv(day: usize) -> Vec<u8> {
    let mut out = b"cip13;libelle;stock;prix_ttc;date_maj\n".to_vec();
    for i in 0..ROWS {
        let last = (0..=day).rev().find(|d| (i * 7 + d) % 20 == 0).unwrap_or(0);
        out.extend_from_slice(
            format!(
                "34009{:08};SPECIALITE {} {} MG CPR;{};{}.{:02};2026-03-{:02}\n",
                i * 37 % 100_000_000,
                i % 997,
                (i % 9 + 1) * 50,
                (i * 13 + last * 5) % 400,
                i % 90 + 1,
                (i + last) % 100,
                last % 28 + 1
            )
            .as_bytes(),
        );
    }
    out
}

fn data_bytes(repo: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        let m = e.metadata().unwrap();
                        if m.is_dir() {
                            walk(&e.path())
                        } else {
                            m.len()
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&repo.join("data"))
}

#[test]
fn a_rewritten_export_is_stored_as_deltas_and_every_day_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("officine");
    std::fs::create_dir_all(src.join("exports")).unwrap();
    let c = Coffre::new(tmp.path().join("lundi"));
    c.init();
    let csv = src.join("exports/stock_complet.csv");
    let mut images = Vec::new();
    let mut ids = Vec::new();
    let mut growth = Vec::new();
    for day in 0..4usize {
        let bytes = stock_csv(day);
        std::fs::write(&csv, &bytes).unwrap();
        // A new mtime every day, whatever the clock's resolution.
        let when = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(1_772_409_600 + day as u64 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&csv)
            .unwrap()
            .set_modified(when)
            .unwrap();
        let before = data_bytes(&c.repo);
        ids.push(c.snapshot(&src));
        growth.push(data_bytes(&c.repo) - before);
        images.push(capture(&src));
    }
    let whole = zstd::bulk::compress(&stock_csv(1), 3).unwrap().len() as u64;
    eprintln!("stored each day: {growth:?}; the export alone compressed: {whole}");
    // One row in twenty changed a day: stored whole it would be `whole`
    // again each day; as deltas against day 0, about 5 % more a day. Where
    // the content-defined cuts fall (they depend on the repository's key)
    // moves these figures by tens of KB, hence the margins.
    assert!(growth[1] * 3 < whole, "day 1: {growth:?}, whole {whole}");
    for (day, g) in growth.iter().enumerate().skip(1) {
        assert!(*g * 2 < whole, "day {day}: {growth:?}, whole {whole}");
    }
    assert!(
        growth[1..].iter().sum::<u64>() < whole,
        "three days cost more than the export once: {growth:?}, whole {whole}"
    );
    let header = std::fs::read(c.repo.join("config")).unwrap();
    assert_eq!(u32::from_le_bytes(header[8..12].try_into().unwrap()), 8);

    // Every day restores bit-exact from the drive.
    for (day, id) in ids.iter().enumerate() {
        let out = tmp.path().join(format!("restored-{day}"));
        c.restore(id, &out);
        assert_same_tree(&images[day], &capture(&out));
    }
    c.ok(["check", "--read-data"]);

    // Through the mount.
    {
        let m = Mounted::start(&c, &tmp.path().join("mnt"), &[]);
        assert_same_tree(&images[3], &capture(&m.path.join("latest")));
        m.stop();
    }

    // A copy to a second drive carries the deltas and their bases.
    let mardi = tmp.path().join("mardi");
    let out = run(c
        .cmd(["copy".as_ref(), "--to".as_ref(), mardi.as_os_str()])
        .env("COFFRE_TO_PASSWORD", "mardi: another passphrase"));
    assert!(out.status.success(), "{}", describe(&out));
    let m = Coffre::new(&mardi);
    let mardi_ok = |args: &[&std::ffi::OsStr]| {
        let out = run(m
            .cmd(args)
            .env("COFFRE_PASSWORD", "mardi: another passphrase"));
        assert!(out.status.success(), "{}", describe(&out));
    };
    mardi_ok(&["check".as_ref(), "--read-data".as_ref()]);
    let restored = tmp.path().join("from-mardi");
    mardi_ok(&["restore".as_ref(), "latest".as_ref(), restored.as_os_str()]);
    assert_same_tree(&images[3], &capture(&restored));

    // Forgetting the days whose chunks are the bases keeps the bases.
    c.ok(["forget", "--keep-last", "1", "--prune"]);
    let left = c.ok(["--json", "snapshots"]);
    assert_eq!(
        json_string_fields(&left, "id"),
        vec![ids[3].clone()],
        "{left}"
    );
    c.ok(["check", "--read-data"]);
    let out = tmp.path().join("after-prune");
    c.restore(&ids[3], &out);
    assert_same_tree(&images[3], &capture(&out));
}
