//! Database pages: `officine.fdb` (8 KiB pages of text rows behind a header
//! page that changes on every commit), `stock.sqlite` (4 KiB SQLite-like
//! table leaves) and the rollback journal. A page is a function of (seed,
//! database, page number, day written, page count): free space is zeros.

use super::records::{db_row, product_line, Table, CATALOGUE};
use super::sizes::{OFFICINE_PAGE, STOCK_PAGE};
use super::text::Fields;
use crate::Rng;

/// A database file of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Db {
    /// Its path in the tree.
    pub path: &'static str,
    /// Its page size.
    pub page: usize,
}

/// The main database.
pub const OFFICINE: Db = Db {
    path: "db/officine.fdb",
    page: OFFICINE_PAGE,
};

/// The stock database.
pub const STOCK: Db = Db {
    path: "db/stock.sqlite",
    page: STOCK_PAGE,
};

impl Db {
    /// Page `no` as written on `day` when the file has `count` pages, into
    /// `buf` (one page long).
    pub fn page(&self, seed: u64, no: u64, day: i64, count: u64, buf: &mut [u8]) {
        buf.fill(0);
        let mut rng = Rng::derive(seed, self.path, &[no as i64, day]);
        match (*self == OFFICINE, no) {
            (true, 0) => officine_header(buf, day, count),
            (true, _) => officine_rows(buf, &mut rng, no, day),
            (false, 0) => sqlite_header(buf, day, count),
            (false, _) => sqlite_leaf(buf, &mut rng, no),
        }
    }

    /// Pages `from..to` as written on `day` when the file has `count` pages.
    pub fn pages(&self, seed: u64, from: u64, to: u64, day: i64, count: u64) -> Vec<u8> {
        let mut out = vec![0; (to - from) as usize * self.page];
        for (i, buf) in out.chunks_mut(self.page).enumerate() {
            self.page(seed, from + i as u64, day, count, buf);
        }
        out
    }
}

fn officine_header(buf: &mut [u8], day: i64, count: u64) {
    let mut h = b"OFFICINE DATABASE ODS 13.0\0".to_vec();
    h.extend_from_slice(&(OFFICINE_PAGE as u32).to_le_bytes());
    h.extend_from_slice(&count.to_le_bytes());
    h.extend_from_slice(&(day + 100_000).to_le_bytes());
    buf[..h.len()].copy_from_slice(&h);
}

/// A page of one table's rows, filled 70–96 %, after a 16-byte header.
fn officine_rows(buf: &mut [u8], rng: &mut Rng, no: u64, day: i64) {
    let table = Table::of_page(no);
    let fill = buf.len() * rng.range(70, 97) as usize / 100;
    let mut rows = Vec::with_capacity(buf.len() + 256);
    while rows.len() + 16 < fill {
        db_row(&mut rows, rng, table);
    }
    rows.truncate(fill - 16);
    buf[0..4].copy_from_slice(b"OFP1");
    buf[4..8].copy_from_slice(&(no as u32).to_le_bytes());
    buf[8..12].copy_from_slice(&((day + 100_000) as u32).to_le_bytes());
    buf[12] = table as u8;
    buf[14..16].copy_from_slice(&(rows.len() as u16).to_le_bytes());
    buf[16..16 + rows.len()].copy_from_slice(&rows);
}

fn sqlite_header(buf: &mut [u8], day: i64, count: u64) {
    let counter = ((day + 1) as u32).to_be_bytes();
    buf[..16].copy_from_slice(b"SQLite format 3\0");
    buf[16..18].copy_from_slice(&(STOCK_PAGE as u16).to_be_bytes());
    buf[18..24].copy_from_slice(&[1, 1, 0, 64, 32, 32]);
    buf[24..28].copy_from_slice(&counter);
    buf[28..32].copy_from_slice(&(count as u32).to_be_bytes());
    buf[92..96].copy_from_slice(&counter);
    buf[96..100].copy_from_slice(&3_045_000u32.to_be_bytes());
    let schema = b"CREATE TABLE stock(cip13 TEXT PRIMARY KEY, designation TEXT, quantite INTEGER, prix TEXT)";
    buf[100] = 0x0D;
    buf[103..105].copy_from_slice(&1u16.to_be_bytes());
    let at = STOCK_PAGE - schema.len();
    buf[105..107].copy_from_slice(&(at as u16).to_be_bytes());
    buf[108..110].copy_from_slice(&(at as u16).to_be_bytes());
    buf[at..].copy_from_slice(schema);
}

/// A table leaf: header and cell pointers at the start, cells packed at the
/// end, zeros between; filled 50–90 %.
fn sqlite_leaf(buf: &mut [u8], rng: &mut Rng, no: u64) {
    let fill = buf.len() * rng.range(50, 91) as usize / 100;
    let mut end = buf.len();
    let mut cells = 0u16;
    let mut cell = Vec::with_capacity(128);
    loop {
        cell.clear();
        let rowid = no * 64 + u64::from(cells);
        cell.extend_from_slice(&(rowid as u32).to_be_bytes());
        cell.extend_from_slice(&rng.next().to_le_bytes());
        let product = rng.below(CATALOGUE);
        product_line(&mut Fields::new(&mut cell, b'|'), rng, product);
        let pointers = 8 + 2 * (usize::from(cells) + 1);
        let used = buf.len() - end + cell.len() + 1 + pointers;
        if used > fill {
            break;
        }
        end -= cell.len() + 1;
        buf[end] = cell.len() as u8;
        buf[end + 1..end + 1 + cell.len()].copy_from_slice(&cell);
        let p = 8 + 2 * usize::from(cells);
        buf[p..p + 2].copy_from_slice(&(end as u16).to_be_bytes());
        cells += 1;
    }
    buf[0] = 0x0D;
    buf[3..5].copy_from_slice(&cells.to_be_bytes());
    buf[5..7].copy_from_slice(&(end as u16).to_be_bytes());
}

/// The rollback journal of `day`: a header, then each changed page of the
/// main database after its number and a checksum. Returns the journal and
/// its framing (all but the pages, which are already in the database).
pub fn journal(day: i64, pages: &[(u64, Vec<u8>)]) -> (Vec<u8>, Vec<u8>) {
    let mut out = b"OFJ1".to_vec();
    out.extend_from_slice(&((day + 100_000) as u32).to_le_bytes());
    out.extend_from_slice(&(pages.len() as u32).to_le_bytes());
    out.extend_from_slice(&(OFFICINE_PAGE as u32).to_le_bytes());
    let mut framing = out.clone();
    for (no, data) in pages {
        let mut record = (*no as u32).to_le_bytes().to_vec();
        let sum = data.chunks(4).fold(0u32, |a, c| {
            a.rotate_left(5) ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]])
        });
        record.extend_from_slice(&sum.to_le_bytes());
        framing.extend_from_slice(&record);
        out.extend_from_slice(&record);
        out.extend_from_slice(data);
    }
    (out, framing)
}
