//! What a business day produces: scanned prescriptions, teletransmission,
//! a sales export, stock export rows, log lines, scratch files. Day 0 uses
//! it for its history, each later day for its own.

use std::path::PathBuf;

use super::calendar::{self, hm};
use super::content::{jpeg, prose};
use super::records::{arl, b2, fse, log_day, sales_csv, stock_row};
use super::session::{around, moment, Session};
use super::Result;

/// The folder of day `day`'s FSE.
pub fn fse_folder(day: i64) -> PathBuf {
    PathBuf::from(format!("teletransmission/FSE/{}", calendar::compact(day)))
}

/// Day `day`'s scans in `scans/YYYY/MM/DD/`. History days may have none at
/// small scales; a day applied always has at least one.
pub fn scans(s: &mut Session, day: i64) -> Result<()> {
    let mut rng = s.rng("scans", &[day]);
    let mean = around(&mut rng, s.sizes.scans_per_day(), 0.4);
    let mut n = rng.round(mean);
    if day > 0 {
        n = n.max(1);
    }
    let (y, m, d) = calendar::date(day);
    let folder = format!("scans/{y:04}/{m:02}/{d:02}");
    let step = ((hm(18, 30) - hm(8, 30)) / n.max(1) as u32).max(1);
    for k in 0..n as u32 {
        let number = s.st.next_scan;
        s.st.next_scan += 1;
        let size = rng.range(120_000, 450_001) as usize;
        let data = jpeg(&mut rng, size, number);
        let from = hm(8, 30) + k * step;
        let t = moment(&mut rng, day, from, from + step);
        s.new_file(
            format!("{folder}/ordonnance_{number:06}.jpg"),
            &data,
            0o640,
            t,
        )?;
    }
    Ok(())
}

/// Day `day`'s FSE (in their day's folder), their receipts (ARL) and the
/// day's batch (B2).
pub fn teletransmission(s: &mut Session, day: i64) -> Result<()> {
    let mut rng = s.rng("teletransmission", &[day]);
    let n = (around(&mut rng, s.sizes.fse_per_day() as f64, 0.4).round() as u64).max(1);
    let folder = fse_folder(day);
    let step = ((hm(18, 0) - hm(9, 0)) / n as u32).max(1);
    let mut batch = Vec::new();
    for k in 0..n as u32 {
        let number = s.st.next_fse;
        s.st.next_fse += 1;
        let (data, amount) = fse(&mut rng, day, number);
        let from = hm(9, 0) + k * step;
        let t = moment(&mut rng, day, from, from + step);
        s.new_file(folder.join(format!("fse_{number:09}.fse")), &data, 0o644, t)?;
        let receipt = arl(&mut rng, day, number);
        let t = moment(&mut rng, day, hm(18, 0), hm(18, 30));
        s.new_file(
            format!("teletransmission/ARL/arl_{number:09}.xml"),
            &receipt,
            0o644,
            t,
        )?;
        batch.push((number, amount));
    }
    let t = moment(&mut rng, day, hm(18, 45), hm(18, 46));
    let name = format!("teletransmission/B2/lot_{}.b2", calendar::compact(day));
    s.new_file(name, &b2(day, &batch), 0o644, t)
}

/// Day `day`'s sales export, `exports/ventes_YYYYMMDD.csv`.
pub fn sales(s: &mut Session, day: i64) -> Result<()> {
    let mut rng = s.rng("sales", &[day]);
    let rows = around(&mut rng, s.sizes.sales_rows() as f64, 0.25).round() as u64;
    let data = sales_csv(&mut rng, day, rows.max(1));
    let t = moment(&mut rng, day, hm(19, 5), hm(19, 6));
    let name = format!("exports/ventes_{}.csv", calendar::compact(day));
    s.new_file(name, &data, 0o644, t)
}

/// The stock export's row `i` (for product `i`) as written on `day`.
pub fn stock_line(s: &Session, i: u64, day: i64) -> Vec<u8> {
    let mut line = Vec::with_capacity(96);
    stock_row(&mut line, &mut s.rng("stock-row", &[i as i64, day]), i, day);
    line
}

/// Day `day`'s log lines.
pub fn log_lines(s: &Session, day: i64) -> Vec<u8> {
    let mut rng = s.rng("log", &[day]);
    let lines = around(&mut rng, s.sizes.log_lines() as f64, 0.2).round() as u64;
    log_day(&mut rng, day, lines.max(1))
}

/// Day `day`'s scratch files in `tmp/`: session dumps and a print spool.
pub fn scratch(s: &mut Session, day: i64) -> Result<()> {
    let mut rng = s.rng("scratch", &[day]);
    let date = calendar::compact(day);
    for k in 0..rng.range(2, 5) {
        let len = rng.range(1000, 40_000) as usize;
        let data = rng.bytes(len);
        let t = moment(&mut rng, day, hm(12, 0), hm(19, 20));
        s.new_file(format!("tmp/sess_{date}_{k}.tmp"), &data, 0o600, t)?;
    }
    let mut spool = b"\x1bE\x1b&l26A".to_vec();
    for _ in 0..rng.range(20, 200) {
        let words = rng.range(4, 12) as usize;
        prose(&mut rng, &mut spool, words);
        spool.extend_from_slice(b"\r\n");
    }
    spool.extend_from_slice(b"\x0c\x1bE");
    let t = moment(&mut rng, day, hm(19, 0), hm(19, 20));
    s.new_file(format!("tmp/impression_{date}.spl"), &spool, 0o644, t)
}
