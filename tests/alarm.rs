//! The ransomware alarm through the real binary: normal and busy days raise
//! nothing; a simulated attack (most documents rewritten with random bytes
//! and renamed `.locked`) raises it: exit code 4, `status` critical, the
//! journal keeps it, and `forget` keeps every earlier snapshot until
//! `coffre alarm ack`.

use std::path::Path;

use coffre_tests::{describe, json_string_fields, run, sample_day, Coffre, Fixture, Rng};

const MONDAY: i64 = 1_793_577_600;

fn snapshot_at(c: &Coffre, src: &Path, day: i64) -> std::process::Output {
    run(&mut c.cmd_at(
        MONDAY + day * 86_400 + 20 * 3600,
        ["snapshot".as_ref(), src.as_os_str()],
    ))
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir") {
        let e = e.expect("entry");
        let t = e.file_type().expect("type");
        if t.is_dir() {
            files(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}

#[test]
fn an_attack_raises_the_alarm_and_a_busy_day_does_not() {
    let f = Fixture::new(8);
    let c = &f.coffre;
    for day in 0..4i64 {
        if day > 0 {
            sample_day(&f.src, day as u32);
        }
        let out = snapshot_at(c, &f.src, day);
        assert_eq!(
            out.status.code(),
            Some(0),
            "normal day {day}: {}",
            describe(&out)
        );
    }
    // A busy day: the normal changes, and a batch of new scans (which do
    // not compress).
    sample_day(&f.src, 4);
    let mut rng = Rng::derive(7, "alarm test", &[]);
    let scans = f.src.join("scans-du-jour");
    std::fs::create_dir_all(&scans).expect("scans");
    for i in 0..40 {
        let mut bytes = vec![0u8; 30_000];
        rng.fill(&mut bytes);
        std::fs::write(scans.join(format!("ordonnance-{i}.jpg")), bytes).expect("scan");
    }
    let out = snapshot_at(c, &f.src, 4);
    assert_eq!(out.status.code(), Some(0), "busy day: {}", describe(&out));

    // The attack: 80 % of the files rewritten with random bytes, renamed.
    let mut all = Vec::new();
    files(&f.src, &mut all);
    all.sort();
    for (i, p) in all.iter().enumerate() {
        if i % 5 == 0 {
            continue;
        }
        let len = std::fs::metadata(p).expect("size").len() as usize;
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes);
        let mut locked = p.as_os_str().to_owned();
        locked.push(".locked");
        std::fs::write(&locked, bytes).expect("encrypt");
        std::fs::remove_file(p).expect("remove the original");
    }
    let out = snapshot_at(c, &f.src, 5);
    assert_eq!(out.status.code(), Some(4), "the attack: {}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RANSOMWARE ALARM"), "{err}");

    let status = run(&mut c.cmd(["status"]));
    assert_eq!(
        status.status.code(),
        Some(2),
        "status: {}",
        describe(&status)
    );
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("RANSOMWARE ALARM"),
        "{}",
        describe(&status)
    );

    // Forget keeps the earlier snapshots until someone looks.
    let refused = run(&mut c.cmd_at(MONDAY + 6 * 86_400, ["forget", "--keep-last", "1"]));
    assert!(
        !refused.status.success(),
        "forget removed the last good copies"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("alarm ack"),
        "{}",
        describe(&refused)
    );
    assert_eq!(
        json_string_fields(&c.ok(["--json", "snapshots"]), "id").len(),
        6
    );

    let alarms = run(&mut c.cmd(["alarm"]));
    assert_eq!(alarms.status.code(), Some(1), "{}", describe(&alarms));
    let suspect = json_string_fields(&c.ok(["--json", "snapshots"]), "id")[5].clone();
    c.ok([
        "alarm",
        "ack",
        &suspect[..12],
        "--reason",
        "test: restored from the day before",
    ]);
    assert_eq!(run(&mut c.cmd(["alarm"])).status.code(), Some(0));
    let journal = c.ok(["journal", "--kind", "alarm"]);
    assert_eq!(journal.lines().count(), 2, "{journal}");
    let out = run(&mut c.cmd_at(MONDAY + 6 * 86_400, ["forget", "--keep-last", "1"]));
    assert!(out.status.success(), "{}", describe(&out));
}
