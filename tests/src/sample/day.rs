//! One day of changes: database pages rewritten and added, the journal,
//! new scans and teletransmission, old FSE folders archived, the exports,
//! a few documents edited and one added, the log appended (and rotated
//! every 7 days), scratch files replaced.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::activity::{self, fse_folder};
use super::calendar::{self, hm};
use super::content::{insertion, pdf};
use super::pages::{journal, Db, OFFICINE, STOCK};
use super::records::STOCK_HEADER;
use super::session::{around, moment, Session};
use super::sizes::FSE_LIVE_DAYS;
use super::state::State;
use super::summary::{DaySummary, Tally};
use super::tree::DOC_FOLDERS;
use super::{Context, Result};

/// Share of a database's pages rewritten each day, and of pages added.
const OFFICINE_CHURN: (f64, f64) = (0.010, 0.0015);
const STOCK_CHURN: (f64, f64) = (0.020, 0.0005);
/// Share of the stock export's rows changed each day.
const STOCK_ROWS_CHURN: f64 = 0.05;
/// One document in this many is edited each day (at least one).
const DOCS_EDITED_ONE_IN: usize = 150;

/// Applies the day after `st.last_day` to the tree in `dir`.
pub fn apply(dir: &Path, mut st: State) -> Result<DaySummary> {
    st.last_day += 1;
    let day = st.last_day;
    let mut s = Session::new(dir, st, Tally::new(day, true));
    let d = i64::from(day);
    let changed = database(&mut s, OFFICINE, d, OFFICINE_CHURN)?;
    database(&mut s, STOCK, d, STOCK_CHURN)?;
    let (data, framing) = journal(d, &changed);
    s.fs.write(
        "db/officine.journal",
        &data,
        0o600,
        calendar::at(d, hm(19, 16), 0),
    )?;
    s.tally.changed(&framing);
    s.tally.summary.files_modified += 1;
    activity::scans(&mut s, d)?;
    activity::teletransmission(&mut s, d)?;
    archive_fse(&mut s, d)?;
    activity::sales(&mut s, d)?;
    stock_export(&mut s, d)?;
    documents(&mut s, d)?;
    log(&mut s, d)?;
    scratch(&mut s, d)?;
    Ok(s.finish()?.1)
}

/// Rewrites a share of `db`'s pages (scattered, and the header page, which
/// every commit changes) and appends new ones; returns the rewritten pages.
fn database(s: &mut Session, db: Db, day: i64, churn: (f64, f64)) -> Result<Vec<(u64, Vec<u8>)>> {
    let mut rng = s.rng(db.path, &[day]);
    let count = if db == OFFICINE {
        &mut s.st.officine_pages
    } else {
        &mut s.st.stock_pages
    };
    let old = *count;
    let mean = around(&mut rng, old as f64 * churn.0, 0.3);
    let rewrite = rng.round(mean).max(1);
    let grow = rng
        .round(old as f64 * churn.1)
        .max(u64::from(db == OFFICINE));
    *count += grow;
    let new = *count;
    let mut pages: Vec<u64> = vec![0];
    pages.extend(rng.sample(old - 1, rewrite).into_iter().map(|p| p + 1));
    let file = s.fs.open(db.path)?;
    let path = s.fs.path(db.path);
    let mut rewritten = Vec::with_capacity(pages.len());
    for no in pages {
        let mut buf = vec![0; db.page];
        db.page(s.st.seed, no, day, new, &mut buf);
        file.write_all_at(&buf, no * db.page as u64)
            .doing("write", &path)?;
        s.tally.changed(&buf);
        rewritten.push((no, buf));
    }
    let added = db.pages(s.st.seed, old, new, day, new);
    file.write_all_at(&added, old * db.page as u64)
        .doing("write", &path)?;
    s.tally.changed(&added);
    drop(file);
    s.fs.set_mtime(db.path, moment(&mut rng, day, hm(19, 10), hm(19, 15)))?;
    s.tally.summary.files_modified += 1;
    s.tally.summary.db_pages_changed += rewritten.len() as u64 + grow;
    Ok(rewritten)
}

/// The FSE folder of 30 days ago moves to `teletransmission/archive/YYYY/MM/`.
fn archive_fse(s: &mut Session, day: i64) -> Result<()> {
    let old = day - FSE_LIVE_DAYS;
    let from = fse_folder(old);
    if !s.fs.path(&from).is_dir() {
        return Ok(());
    }
    let (y, m, _) = calendar::date(old);
    let to = PathBuf::from(format!(
        "teletransmission/archive/{y:04}/{m:02}/{}",
        calendar::compact(old)
    ));
    s.fs.rename(&from, &to, calendar::at(day, hm(7, 0), 0))?;
    s.tally.summary.files_renamed += s.fs.list(&to)?.len() as u64;
    Ok(())
}

/// The stock export, rewritten whole with a share of its rows changed.
fn stock_export(s: &mut Session, day: i64) -> Result<()> {
    const PATH: &str = "exports/stock_complet.csv";
    let old = s.fs.read(PATH)?;
    let mut rows: Vec<&[u8]> = old[STOCK_HEADER.len()..]
        .split_inclusive(|&b| b == b'\n')
        .collect();
    let mut rng = s.rng("stock-export", &[day]);
    let mean = around(&mut rng, rows.len() as f64 * STOCK_ROWS_CHURN, 0.2);
    let n = rng.round(mean);
    let fresh: Vec<(u64, Vec<u8>)> = rng
        .sample(rows.len() as u64, n.max(1))
        .into_iter()
        .map(|i| (i, activity::stock_line(s, i, day)))
        .collect();
    for (i, line) in &fresh {
        rows[*i as usize] = line;
        s.tally.changed(line);
    }
    let data = [STOCK_HEADER, &rows.concat()].concat();
    s.fs.write(PATH, &data, 0o644, calendar::at(day, hm(19, 2), 0))?;
    s.tally.summary.files_modified += 1;
    Ok(())
}

/// Every document outside `archives_copies/`, sorted.
fn documents_list(s: &Session) -> Result<Vec<PathBuf>> {
    let mut all = Vec::new();
    for folder in DOC_FOLDERS {
        let rel = Path::new("documents").join(folder);
        if s.fs.path(&rel).is_dir() {
            all.extend(s.fs.list(&rel)?.into_iter().map(|n| rel.join(n)));
        }
    }
    Ok(all)
}

/// A few documents get bytes inserted in their middle; one courrier is added.
fn documents(s: &mut Session, day: i64) -> Result<()> {
    let mut rng = s.rng("documents-day", &[day]);
    let docs = documents_list(s)?;
    let n = (docs.len() / DOCS_EDITED_ONE_IN).max(1) as u64;
    for i in rng.sample(docs.len() as u64, n) {
        let rel = &docs[i as usize];
        let mut data = s.fs.read(rel)?;
        let ext = rel.extension().map(|e| e.as_bytes()).unwrap_or_default();
        let ext = std::str::from_utf8(ext).unwrap_or_default();
        let at = rng.range(data.len() as u64 / 4, data.len() as u64 * 3 / 4 + 1) as usize;
        let added = insertion(&mut rng, ext, 9000 + day as u64);
        data.splice(at..at, added.iter().copied());
        let t = moment(&mut rng, day, hm(10, 0), hm(17, 0));
        s.fs.write(rel, &data, 0o644, t)?;
        s.tally.changed(&added);
        s.tally.summary.files_modified += 1;
    }
    let number = s.st.next_doc;
    s.st.next_doc += 1;
    let size = rng.range(20_000, 200_000) as usize;
    let data = pdf(&mut rng, size);
    let t = moment(&mut rng, day, hm(11, 0), hm(12, 0));
    s.new_file(
        format!("documents/courriers/doc_{number:05}.pdf"),
        &data,
        0o644,
        t,
    )
}

/// The log gets the day's lines; every 7 days it is first rotated by renames
/// (`.1` to `.3`, the oldest removed).
fn log(s: &mut Session, day: i64) -> Result<()> {
    const LOG: &str = "logs/officine.log";
    let lines = activity::log_lines(s, day);
    let t = calendar::at(day, hm(19, 0), 0);
    if day % 7 != 0 {
        s.fs.append(LOG, &lines, t)?;
        s.tally.changed(&lines);
        s.tally.summary.files_modified += 1;
        return Ok(());
    }
    let morning = calendar::at(day, hm(7, 5), 0);
    s.fs.remove(format!("{LOG}.3"), morning)?;
    s.tally.summary.files_deleted += 1;
    for k in [2, 1] {
        s.fs.rename(format!("{LOG}.{k}"), format!("{LOG}.{}", k + 1), morning)?;
    }
    s.fs.rename(LOG, format!("{LOG}.1"), morning)?;
    s.tally.summary.files_renamed += 3;
    s.new_file(LOG, &lines, 0o644, t)
}

/// Yesterday's scratch files go, today's come.
fn scratch(s: &mut Session, day: i64) -> Result<()> {
    let t = calendar::at(day, hm(7, 30), 0);
    for name in s.fs.list("tmp")? {
        s.fs.remove(Path::new("tmp").join(name), t)?;
        s.tally.summary.files_deleted += 1;
    }
    activity::scratch(s, day)
}
