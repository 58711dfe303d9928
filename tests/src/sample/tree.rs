//! Day 0: the databases, the history of scans, teletransmission, sales and
//! logs, the documents, the settings and the awkward cases of `divers/`.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::activity;
use super::calendar::{self, hm};
use super::content::document;
use super::divers;
use super::pages::{Db, OFFICINE, STOCK};
use super::records::STOCK_HEADER;
use super::session::{moment, Session};
use super::sizes::{Sizes, FSE_LIVE_DAYS, SALES_HISTORY_DAYS, SCAN_HISTORY_DAYS};
use super::state::State;
use super::summary::Tally;
use super::{Context, Error, Result, MIN_SCALE_MB};

/// The folders of `documents/` (besides `archives_copies/`).
pub const DOC_FOLDERS: [&str; 5] = ["courriers", "factures", "protocoles", "qualite", "rh"];

/// What `init` made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Made {
    /// Always 0.
    pub day: u32,
    /// The seed.
    pub seed: u64,
    /// The scale, in MiB.
    pub scale_mb: u32,
    /// Files written (hard links once).
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Makes day 0 in `dir`, which must be absent or empty.
pub fn make(dir: &Path, scale_mb: u32, seed: u64) -> Result<Made> {
    if scale_mb < MIN_SCALE_MB {
        return Err(Error(format!(
            "the scale must be at least {MIN_SCALE_MB} MiB, not {scale_mb}"
        )));
    }
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error(format!("{} is not empty", dir.display())));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).doing("create the folder", dir)?;
        }
        Err(e) => return Err(e).doing("list", dir),
    }
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .doing("set the mode of", dir)?;
    let sizes = Sizes::new(scale_mb);
    let st = State {
        seed,
        scale_mb,
        last_day: 0,
        officine_pages: sizes.officine_pages(),
        stock_pages: sizes.stock_pages(),
        next_scan: 1,
        next_fse: 1,
        next_doc: 1,
    };
    let mut s = Session::new(dir, st, Tally::new(0, false));
    databases(&mut s)?;
    for day in 1 - SCAN_HISTORY_DAYS..=0 {
        activity::scans(&mut s, day)?;
    }
    for day in 1 - FSE_LIVE_DAYS..=0 {
        activity::teletransmission(&mut s, day)?;
    }
    for day in 1 - SALES_HISTORY_DAYS..=0 {
        activity::sales(&mut s, day)?;
    }
    documents(&mut s)?;
    stock_export(&mut s)?;
    logs(&mut s)?;
    settings(&mut s)?;
    activity::scratch(&mut s, 0)?;
    divers::make(&mut s)?;
    let (st, summary) = s.finish()?;
    Ok(Made {
        day: 0,
        seed: st.seed,
        scale_mb: st.scale_mb,
        files: summary.files_new,
        bytes: summary.bytes_changed,
    })
}

/// Writes `count` pages of `db` as of day 0, in batches.
fn write_db(s: &mut Session, db: Db, count: u64, mode: u32) -> Result<()> {
    let seed = s.st.seed;
    let mut rng = s.rng("db-time", &[count as i64]);
    let t = moment(&mut rng, 0, hm(19, 10), hm(19, 15));
    let tally = &mut s.tally;
    s.fs.create_with(db.path, mode, t, |f| {
        let batch = (2 << 20) / db.page as u64;
        for from in (0..count).step_by(batch as usize) {
            let pages = db.pages(seed, from, (from + batch).min(count), 0, count);
            tally.changed(&pages);
            f.write_all(&pages)?;
        }
        Ok(())
    })?;
    s.tally.summary.files_new += 1;
    Ok(())
}

fn databases(s: &mut Session) -> Result<()> {
    write_db(s, OFFICINE, s.st.officine_pages, 0o600)?;
    write_db(s, STOCK, s.st.stock_pages, 0o644)?;
    let t = calendar::at(0, hm(19, 16), 0);
    s.new_file("db/officine.journal", b"", 0o600, t)
}

/// Documents up to their share of the volume, a few copied in
/// `archives_copies/`.
fn documents(s: &mut Session) -> Result<()> {
    let mut rng = s.rng("documents", &[]);
    let mut total = 0;
    while total < s.sizes.documents_bytes() || s.st.next_doc <= 6 {
        let i = s.st.next_doc;
        s.st.next_doc += 1;
        let folder = rng.pick(&DOC_FOLDERS);
        let ext = rng.pick(&["pdf", "pdf", "pdf", "docx", "xlsx"]);
        let size = rng.range(20_000, 340_000) as usize;
        let data = document(&mut s.rng("document", &[i as i64]), size, ext);
        let day = -(rng.range(1, 400) as i64);
        let t = moment(&mut rng, day, hm(8, 30), hm(19, 0));
        let name = format!("doc_{i:05}.{ext}");
        s.new_file(format!("documents/{folder}/{name}"), &data, 0o644, t)?;
        if i % 7 == 3 {
            let copied = (day + rng.range(1, 60) as i64).min(-1);
            let t = moment(&mut rng, copied, hm(8, 30), hm(19, 0));
            s.new_file(format!("documents/archives_copies/{name}"), &data, 0o644, t)?;
        }
        total += size as u64;
    }
    Ok(())
}

fn stock_export(s: &mut Session) -> Result<()> {
    let mut data = STOCK_HEADER.to_vec();
    for i in 0..s.sizes.stock_rows() {
        data.extend_from_slice(&activity::stock_line(s, i, 0));
    }
    let t = calendar::at(0, hm(19, 2), 0);
    s.new_file("exports/stock_complet.csv", &data, 0o644, t)
}

/// Today's log, and three weeks rotated by renames.
fn logs(s: &mut Session) -> Result<()> {
    for week in 1..=3i64 {
        let mut data = Vec::new();
        for day in -7 * week..-7 * (week - 1) {
            data.extend_from_slice(&activity::log_lines(s, day));
        }
        let t = calendar::at(-7 * (week - 1) - 1, hm(19, 0), 0);
        s.new_file(format!("logs/officine.log.{week}"), &data, 0o644, t)?;
    }
    let data = activity::log_lines(s, 0);
    s.new_file(
        "logs/officine.log",
        &data,
        0o644,
        calendar::at(0, hm(19, 0), 0),
    )
}

/// Settings (CRLF ini files, 0640) and the backup script.
fn settings(s: &mut Session) -> Result<()> {
    let t = calendar::at(-200, hm(10, 12), 0);
    let files: [(&str, &[&str]); 3] = [
        (
            "config/officine.ini",
            &[
                "[Officine]",
                "Nom=Pharmacie du Centre",
                "Finess=750000000",
                "Postes=5",
                "Grossiste=OCP",
                "[Base]",
                "Fichier=D:\\Officine\\db\\officine.fdb",
                "Sauvegarde=20:00",
            ],
        ),
        (
            "config/sesam.ini",
            &[
                "[SESAM-Vitale]",
                "Lecteur=COM3",
                "Version=1.40.13",
                "TeleTransmission=Oui",
                "[OCT]",
                "Serveur=teletrans.exemple.fr",
            ],
        ),
        (
            "config/imprimantes.ini",
            &[
                "[Ticket]",
                "Nom=EPSON TM-T88",
                "Port=USB001",
                "[Ordonnancier]",
                "Nom=Brother HL-L2350",
            ],
        ),
    ];
    for (path, lines) in files {
        let data = lines.join("\r\n") + "\r\n";
        s.new_file(path, data.as_bytes(), 0o640, t)?;
    }
    let script = b"#!/bin/sh\n# Sauvegarde du soir de la base officine\nset -e\nexec coffre snapshot /srv/officine --label officine\n";
    s.new_file("bin/sauvegarde.sh", script, 0o755, t)
}
