//! `coffre report` through the real binary: thirty simulated evenings of
//! November 2026 (one failed snapshot, a restore test, a check, a forget
//! with prune, a copy to a second drive), then the month's HTML report is
//! read as an auditor would: every day with its status, the failure, the
//! restore test, the check, the copy, the signature block, and the
//! configuration's names escaped.

use std::path::Path;

use coffre_tests::{describe, run, sample_day, Coffre, Fixture};

/// Midnight UTC, 2026-11-01, a Sunday.
const NOVEMBER_1: i64 = 1_793_491_200;

/// 20:00 in Paris (19:00 UTC in November) on day `day` (0 = 1 November).
fn evening(day: i64) -> i64 {
    NOVEMBER_1 + day * 86_400 + 19 * 3600
}

fn ok_at(c: &Coffre, day: i64, args: &[&str]) -> String {
    c.ok_at(evening(day), args)
}

/// The page's text: tags replaced by spaces, blanks collapsed.
fn text_of(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The HTML of `<section id="ID">`.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id}"));
    let len = html[start..].find("</section>").expect("section end");
    &html[start..start + len]
}

/// Thirty evenings; returns the index of the failed day.
fn a_month_of_evenings(f: &Fixture) -> i64 {
    let c = &f.coffre;
    let src = f.src.to_str().expect("UTF-8").to_owned();
    let failed_day = 9;
    for day in 0..30i64 {
        if day > 0 {
            sample_day(&f.src, day as u32);
        }
        if day == failed_day {
            // The data disk was not mounted that evening.
            let away = f.tmp.path().join("away");
            std::fs::rename(&f.src, &away).expect("hide the source");
            let out = run(&mut c.cmd_at(evening(day), ["snapshot", &src]));
            assert!(!out.status.success(), "a missing folder was backed up");
            std::fs::rename(&away, &f.src).expect("bring it back");
            continue;
        }
        ok_at(c, day, &["snapshot", &src]);
        match day {
            12 => {
                let scratch = f.tmp.path().join("scratch");
                let scratch = scratch.to_str().expect("UTF-8");
                ok_at(c, day, &["verify", "--sample", "10%", "--scratch", scratch]);
            }
            15 => {
                ok_at(c, day, &["check"]);
            }
            25 => {
                ok_at(c, day, &["forget", "--keep-last", "20", "--prune"]);
            }
            27 => {
                let mardi = f.tmp.path().join("mardi");
                let out = run(c
                    .cmd_at(
                        evening(day),
                        ["copy".as_ref(), "--to".as_ref(), mardi.as_os_str()],
                    )
                    .env("COFFRE_TO_PASSWORD", "mardi: its own passphrase"));
                assert!(out.status.success(), "{}", describe(&out));
            }
            _ => {}
        }
    }
    failed_day
}

fn write_config(f: &Fixture) -> std::path::PathBuf {
    let path = f.tmp.path().join("coffre.toml");
    let text = format!(
        "[[repository]]\nname = \"officine\"\npath = \"{}\"\n\n\
         [audit]\npharmacy = \"Pharmacie du Centre & Fils\"\nresponsible = \"Mme Durand\"\n\
         it_provider = \"Officinfo <support@officinfo.example>\"\n\n\
         [schedule]\nat = \"20:00\"\n",
        f.coffre.repo.display()
    );
    std::fs::write(&path, text).expect("write the configuration");
    path
}

#[test]
fn the_monthly_report_shows_every_day_and_every_proof() {
    let f = Fixture::new(4);
    let failed_day = a_month_of_evenings(&f);
    let config = write_config(&f);
    let config = config.to_str().expect("UTF-8");
    let out_path = f.tmp.path().join("novembre.html");
    let out_s = out_path.to_str().expect("UTF-8");
    let c = &f.coffre;
    // On the morning of 1 December, for November.
    let morning = NOVEMBER_1 + 30 * 86_400 + 8 * 3600;
    let out = run(&mut c.cmd_at(
        morning,
        [
            "--config", config, "report", "--month", "2026-11", "--out", out_s,
        ],
    ));
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(out_s),
        "the path written is printed: {}",
        describe(&out)
    );
    let html = std::fs::read_to_string(&out_path).expect("the report is written");
    check_html(&html, failed_day);

    // --json, default month (the previous one) and default file name.
    let out = run(c
        .cmd_at(morning, ["--config", config, "--json", "report"])
        .current_dir(f.tmp.path()));
    assert!(out.status.success(), "{}", describe(&out));
    assert!(f.tmp.path().join("rapport-2026-11.html").is_file());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["month"], "2026-11");
    let days = v["days"].as_array().expect("days");
    assert_eq!(days.len(), 30);
    for (i, d) in days.iter().enumerate() {
        let want = if i as i64 == failed_day {
            "failed"
        } else {
            "ok"
        };
        assert_eq!(d["status"], want, "{d}");
    }
    let counts = &v["counts"];
    assert_eq!(counts["days_ok"], 29, "{counts}");
    assert_eq!(counts["days_failed"], 1, "{counts}");
    assert_eq!(counts["snapshots"], 29, "{counts}");
    assert_eq!(counts["restore_tests"], 1, "{counts}");
    assert_eq!(counts["checks"], 1, "{counts}");
    assert_eq!(counts["copies"], 1, "{counts}");

    // In English too; a wrong month is refused with the expected format.
    let en = f.tmp.path().join("en.html");
    let out = run(&mut c.cmd_at(
        morning,
        [
            "--config",
            config,
            "report",
            "--lang",
            "en",
            "--out",
            en.to_str().expect("UTF-8"),
        ],
    ));
    assert!(out.status.success(), "{}", describe(&out));
    let text = text_of(&std::fs::read_to_string(&en).expect("English report"));
    assert!(text.contains("Backup calendar"), "{text}");
    assert!(
        text.contains(&format!("{} failed", failed_day + 1)),
        "{text}"
    );
    let out = run(&mut c.cmd_at(morning, ["report", "--month", "2026-13"]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("YYYY-MM"),
        "{}",
        describe(&out)
    );
    assert!(Path::new(out_s).exists());
}

fn check_html(html: &str, failed_day: i64) {
    // Names from the configuration, escaped.
    assert!(html.contains("Pharmacie du Centre &amp; Fils"), "{html}");
    assert!(!html.contains("Centre & Fils"), "an unescaped &");
    assert!(html.contains("Officinfo &lt;support@officinfo.example&gt;"));
    assert!(!html.contains("<support@"), "an unescaped <");
    let text = text_of(html);
    assert!(text.contains("Mme Durand"), "{text}");
    assert!(text.contains("novembre 2026"), "{text}");
    assert!(!text.contains("journal a été modifié"), "no tampering here");

    // Every day in the calendar, in order, with its status.
    let grid = section(html, "calendar");
    let grid = &grid[..grid.find("class=\"legend\"").expect("a legend")];
    let calendar = text_of(grid);
    let mut at = 0;
    for day in 1..=30i64 {
        let status = if day - 1 == failed_day {
            "échec"
        } else {
            "sauvegardé"
        };
        let cell = format!(" {day} {status} ");
        let found = calendar[at..]
            .find(&cell)
            .unwrap_or_else(|| panic!("day {day} as {status:?} in {calendar}"));
        at += found + cell.len() - 1;
    }
    assert_eq!(grid.matches("data-status=\"failed\"").count(), 1);
    assert!(!calendar.contains("MANQUANT"), "{calendar}");

    // The failure, its cause and what followed.
    let incidents = text_of(section(html, "incidents"));
    assert!(
        incidents.contains("does not exist or is not a folder"),
        "{incidents}"
    );
    assert!(
        incidents.contains(&format!(
            "réussite suivante le {:02}/11/2026",
            failed_day + 2
        )),
        "{incidents}"
    );
    // Every snapshot of the month, those removed since by forget too.
    let snapshots = section(html, "snapshots");
    assert_eq!(snapshots.matches("<tr class=").count(), 29, "{snapshots}");
    assert_eq!(
        text_of(snapshots)
            .matches("supprimée depuis (rétention)")
            .count(),
        5
    );
    // The restore test, the check, the forget, the copy.
    let verify = text_of(section(html, "verify"));
    assert!(
        verify.contains("13/11/2026") && verify.contains("10%") && verify.contains("réussi"),
        "{verify}"
    );
    let checks = text_of(section(html, "checks"));
    assert!(
        checks.contains("16/11/2026") && checks.contains("structure"),
        "{checks}"
    );
    let retention = text_of(section(html, "retention"));
    assert!(
        retention.contains("5 sauvegarde(s) supprimée(s)"),
        "{retention}"
    );
    let copies = text_of(section(html, "copies"));
    assert!(
        copies.contains("28/11/2026") && copies.contains("mardi"),
        "{copies}"
    );
    // Charts drawn inline, and the pharmacist's signature block.
    assert!(section(html, "charts").matches("<svg").count() == 2);
    let signature = text_of(section(html, "signature"));
    assert!(
        signature.contains("Vérifié par") && signature.contains("Signature"),
        "{signature}"
    );
    assert!(
        !html.contains("<script") && !html.contains("src=\"http"),
        "self-contained"
    );
}
