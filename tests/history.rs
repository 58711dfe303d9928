//! `coffre history`, `find`, `diff` and `dump` through the real binary, on
//! real files over four simulated evenings: a database that changes,
//! disappears and comes back, a renamed prescription scan, a chmod'ed file
//! with a name that is not UTF-8, and dumps compared with the originals.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use coffre_tests::{
    assert_same_tree_with, capture, describe, run, run_ok, Coffre, CompareOptions, Rng,
};
use serde_json::Value;

/// 2026-11-23 20:00 in Paris (UTC+1), the first evening.
const FIRST_EVENING: i64 = 1795460400;

fn at_day(coffre: &Coffre, day: i64, args: &[&OsStr]) -> std::process::Command {
    coffre.cmd_at(FIRST_EVENING + day * 86_400, args)
}

fn json(coffre: &Coffre, args: &[&OsStr]) -> Value {
    let mut all = vec![OsStr::new("--json")];
    all.extend_from_slice(args);
    let out = run_ok(&mut at_day(coffre, 10, &all));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
}

fn text(coffre: &Coffre, args: &[&OsStr]) -> String {
    String::from_utf8_lossy(&run_ok(&mut at_day(coffre, 10, args)).stdout).into_owned()
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn random(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rng.fill(&mut bytes);
    bytes
}

/// The four evenings; returns the database as it was on days 0, 1 and 3.
fn four_evenings(coffre: &Coffre, src: &Path) -> Vec<Vec<u8>> {
    let mut rng = Rng::derive(7, "history", &[]);
    let db = src.join("db/officine.fdb");
    let accented = src.join(OsString::from_vec(b"scans/caf\xe9-ordonnance.txt".to_vec()));
    fs::create_dir_all(src.join("db")).unwrap();
    fs::create_dir_all(src.join("scans/2026")).unwrap();
    let mut versions = vec![random(&mut rng, 3 << 20)];
    fs::write(&db, &versions[0]).unwrap();
    fs::write(src.join("scans/mme-durand.pdf"), random(&mut rng, 20_000)).unwrap();
    fs::write(&accented, b"Doliprane 1000").unwrap();
    fs::write(src.join("scans/2026/lisez-moi.txt"), b"scans").unwrap();
    std::os::unix::fs::symlink("../db/officine.fdb", src.join("scans/base")).unwrap();
    let snapshot = |day| run_ok(&mut at_day(coffre, day, &[os("snapshot"), src.as_os_str()]));
    snapshot(0);
    // Day 1: the database changes in its middle, the scan is renamed, the
    // accented file is chmod'ed.
    let mut v1 = versions[0].clone();
    v1[1_500_000..1_500_100].fill(0xab);
    fs::write(&db, &v1).unwrap();
    versions.push(v1);
    fs::rename(
        src.join("scans/mme-durand.pdf"),
        src.join("scans/mme-durand-2026.pdf"),
    )
    .unwrap();
    fs::set_permissions(&accented, fs::Permissions::from_mode(0o600)).unwrap();
    snapshot(1);
    // Day 2: the database is gone; day 3 it is back, different.
    fs::remove_file(&db).unwrap();
    snapshot(2);
    let v3 = random(&mut rng, 1 << 20);
    fs::write(&db, &v3).unwrap();
    versions.push(v3);
    snapshot(3);
    versions
}

#[test]
fn history_find_diff_and_dump_tell_what_the_snapshots_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("officine");
    let coffre = Coffre::new(tmp.path().join("repo"));
    coffre.init();
    let db_versions = four_evenings(&coffre, &src);

    // history: days 0 and 1 (changed), absent on day 2, back on day 3.
    let h = json(&coffre, &[os("history"), os("db/officine.fdb")]);
    assert_eq!(h["snapshots_holding"], 3, "{h:#}");
    assert_eq!(h["versions"], 3, "{h:#}");
    let events = h["events"].as_array().unwrap();
    assert_eq!(events.len(), 4, "{h:#}");
    assert_eq!(events[0]["change"], "first");
    assert_eq!(events[0]["time"], "2026-11-23 20:00:00");
    assert_eq!(events[1]["change"], "content");
    assert_eq!(events[2]["absent"]["snapshots"], 1);
    assert_eq!(events[2]["absent"]["came_back"], true);
    assert_eq!(events[2]["absent"]["from_time"], "2026-11-25 20:00:00");
    assert_eq!(events[3]["change"], "content");
    assert_eq!(events[3]["size"], 1 << 20);
    let shown = text(&coffre, &[os("history"), os("db/officine.fdb")]);
    assert!(shown.contains("absent on 2026-11-25"), "{shown}");
    // An unchanged file is unchanged in every later snapshot.
    let h = json(&coffre, &[os("history"), os("scans/2026/lisez-moi.txt")]);
    let changes: Vec<_> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["change"].clone())
        .collect();
    assert_eq!(changes, ["first", "unchanged", "unchanged", "unchanged"]);

    // find: the renamed scan under both names, the new one still there.
    let f = json(&coffre, &[os("find"), os("MME-DURAND*")]);
    let found = f["found"].as_array().unwrap();
    let paths: Vec<_> = found.iter().map(|x| x["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["scans/mme-durand-2026.pdf", "scans/mme-durand.pdf"],
        "{f:#}"
    );
    assert_eq!(found[0]["snapshots"], 3);
    assert_eq!(found[0]["first_time"], "2026-11-24 20:00:00");
    assert_eq!(found[0]["in_newest"], true);
    assert_eq!(found[1]["snapshots"], 1);
    assert_eq!(found[1]["in_newest"], false);
    // --since leaves out the first evening (10 days later, 8 days back
    // = day 2 on): the old name is then in no snapshot searched, exit 1.
    let missing = run(&mut at_day(
        &coffre,
        10,
        &[
            os("--json"),
            os("find"),
            os("mme-durand.pdf"),
            os("--since"),
            os("8d"),
        ],
    ));
    assert_eq!(missing.status.code(), Some(1), "{}", describe(&missing));
    let f: Value = serde_json::from_slice(&missing.stdout).unwrap();
    assert_eq!(f["snapshots_searched"], 2);
    assert_eq!(f["found"].as_array().map(Vec::len), Some(0));
    // A non-UTF-8 name is found, its bytes kept in path_hex.
    let f = json(&coffre, &[os("find"), os("caf*")]);
    let hex: String = b"scans/caf\xe9-ordonnance.txt"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(f["found"][0]["path_hex"], hex.as_str(), "{f:#}");

    // diff day 0 -> day 1: M database, rename as - and +, chmod as m.
    let d = json(&coffre, &[os("diff"), os("2026-11-23"), os("2026-11-24")]);
    let marks: Vec<(String, String)> = d["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["mark"].as_str().unwrap().into(),
                e["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = |m: &str, p: &str| (m.to_string(), p.to_string());
    assert_eq!(
        marks,
        [
            expect("M", "db/officine.fdb"),
            expect("m", "scans/caf\u{fffd}-ordonnance.txt"),
            expect("+", "scans/mme-durand-2026.pdf"),
            expect("-", "scans/mme-durand.pdf"),
        ],
        "{d:#}"
    );
    assert_eq!(d["entries"][1]["path_hex"], hex.as_str());
    assert_eq!(d["counts"]["added"], 1);
    let shown = text(&coffre, &[os("diff"), os("2026-11-23"), os("2026-11-24")]);
    assert!(shown.contains("mode 0644 -> 0600"), "{shown}");
    let only_db = json(
        &coffre,
        &[
            os("diff"),
            os("2026-11-24"),
            os("latest"),
            os("--path"),
            os("db"),
        ],
    );
    assert_eq!(
        only_db["entries"].as_array().unwrap().len(),
        1,
        "{only_db:#}"
    );
    assert_eq!(only_db["entries"][0]["mark"], "M");

    // dump: each version of the database byte for byte.
    for (day, bytes) in [
        ("2026-11-23", &db_versions[0]),
        ("2026-11-24", &db_versions[1]),
        ("latest", &db_versions[2]),
    ] {
        let out = run_ok(&mut at_day(
            &coffre,
            10,
            &[os("dump"), os(day), os("db/officine.fdb")],
        ));
        assert!(
            out.stdout == **bytes,
            "dump of {day} differs from the original"
        );
    }
    // dump of the whole snapshot as tar extracts to the same tree.
    let out = run_ok(&mut at_day(&coffre, 10, &[os("dump"), os("latest")]));
    // GNU tar, as a pharmacist's IT provider would: it restores folder
    // times after their contents, and the PAX nanosecond times.
    let unpacked = tmp.path().join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    let mut child = Command::new("tar")
        .args(["-x", "--same-owner", "--same-permissions", "-C"])
        .arg(&unpacked)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("GNU tar");
    let mut stdin = child.stdin.take().expect("tar's stdin");
    std::io::Write::write_all(&mut stdin, &out.stdout).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert_same_tree_with(
        &capture(&src),
        &capture(&unpacked),
        &CompareOptions::default(),
    );
    // dump of a folder: names start with the folder's own name.
    let out = run_ok(&mut at_day(
        &coffre,
        10,
        &[os("dump"), os("2026-11-23"), os("scans")],
    ));
    let scans = tmp.path().join("scans-day0");
    tar::Archive::new(&out.stdout[..]).unpack(&scans).unwrap();
    assert!(scans.join("scans/mme-durand.pdf").is_file());
    assert_eq!(
        fs::read(scans.join(OsStr::from_bytes(b"scans/caf\xe9-ordonnance.txt"))).unwrap(),
        b"Doliprane 1000"
    );
}
