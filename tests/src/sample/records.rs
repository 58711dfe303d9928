//! Text records: database rows, CSV rows, teletransmission files, log lines.

use super::calendar;
use super::text::{clock, euros, hex, num, padded, Fields};
use super::words::{
    DOSAGES, FIRST_NAMES, FORMS, INSURERS, LABS, MEDICINES, MUTUELLES, PACKS, PAYMENTS, SURNAMES,
    TOWNS,
};
use crate::Rng;

/// Products in the catalogue most records draw from.
pub const CATALOGUE: u64 = 2400;

/// The CIP13 code of product `product` (unique below 999 983).
pub fn cip13(out: &mut Vec<u8>, product: u64) {
    padded(
        out,
        3_400_930_000_000 + (product * 7_919 + 13) % 999_983,
        13,
    );
}

/// The designation of product `product`: name, strength and form, pack.
pub fn designation(out: &mut Vec<u8>, product: u64) {
    let (m, f, p) = (
        MEDICINES.len() as u64,
        FORMS.len() as u64,
        PACKS.len() as u64,
    );
    out.extend_from_slice(MEDICINES[(product % m) as usize].as_bytes());
    out.push(b' ');
    out.extend_from_slice(FORMS[(product / m % f) as usize].as_bytes());
    out.push(b' ');
    out.extend_from_slice(PACKS[(product / (m * f) % p) as usize].as_bytes());
}

/// Product `product` as two fields: its CIP13 code and its designation.
pub fn item(f: &mut Fields, product: u64) {
    cip13(f.field(), product);
    designation(f.field(), product);
}

/// A product's stock fields: code, designation, laboratory, stock, minimum
/// stock, price excluding tax; returns the price in cents.
pub fn product_line(f: &mut Fields, rng: &mut Rng, product: u64) -> u64 {
    item(f, product);
    let price = rng.range(100, 20_000);
    f.pick(rng, LABS)
        .num(rng.below(400))
        .num(rng.below(25))
        .euros(price);
    price
}

fn word(out: &mut Vec<u8>, rng: &mut Rng, list: &[&str]) {
    out.extend_from_slice(rng.pick(list).as_bytes());
}

/// A health professional's RPPS number.
fn rpps(out: &mut Vec<u8>, rng: &mut Rng) {
    out.extend_from_slice(b"10");
    padded(out, rng.below(1_000_000_000), 9);
}

/// A prescriber: `DR` and a name.
fn doctor(out: &mut Vec<u8>, rng: &mut Rng) {
    out.extend_from_slice(b"DR ");
    word(out, rng, SURNAMES);
}

/// A social security number: sex, year and month of birth, place, order.
fn nir(out: &mut Vec<u8>, rng: &mut Rng) {
    num(out, rng.range(1, 3));
    padded(out, rng.range(30, 100), 2);
    padded(out, rng.range(1, 13), 2);
    padded(out, rng.range(1, 96), 2);
    padded(out, rng.below(1000), 3);
    padded(out, rng.below(1000), 3);
}

/// A date `DD/MM/YYYY` between `from` and `to - 1` (years).
fn date(out: &mut Vec<u8>, rng: &mut Rng, from: u64, to: u64) {
    padded(out, rng.range(1, 29), 2);
    out.push(b'/');
    padded(out, rng.range(1, 13), 2);
    out.push(b'/');
    num(out, rng.range(from, to));
}

/// The tables of `officine.fdb`: a page holds rows of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Patients.
    Patients,
    /// Prescription lines.
    Prescriptions,
    /// Sales.
    Sales,
    /// Products and stock.
    Products,
}

impl Table {
    /// The table of page `page` (the tables interleave in the file).
    pub fn of_page(page: u64) -> Self {
        [
            Table::Patients,
            Table::Prescriptions,
            Table::Sales,
            Table::Products,
        ][(page % 4) as usize]
    }
}

/// One row of `table`, `|`-separated, ending with a newline.
pub fn db_row(out: &mut Vec<u8>, rng: &mut Rng, table: Table) {
    let mut f = Fields::new(out, b'|');
    match table {
        Table::Patients => {
            f.bytes(b"PAT")
                .padded(rng.below(10_000_000), 7)
                .pick(rng, SURNAMES)
                .pick(rng, FIRST_NAMES);
            nir(f.field(), rng);
            date(f.field(), rng, 1930, 2025);
            f.pick(rng, INSURERS).pick(rng, MUTUELLES).pick(rng, TOWNS);
        }
        Table::Prescriptions => {
            f.bytes(b"ORD")
                .padded(rng.below(100_000_000), 8)
                .padded(rng.below(10_000_000), 7);
            doctor(f.field(), rng);
            item(&mut f, rng.below(CATALOGUE));
            f.num(rng.range(1, 4)).pick(rng, DOSAGES);
        }
        Table::Sales => {
            f.bytes(b"VTE").padded(rng.below(1_000_000_000), 9);
            date(f.field(), rng, 2024, 2027);
            cip13(f.field(), rng.below(CATALOGUE));
            f.num(rng.range(1, 4))
                .euros(rng.range(150, 9000))
                .pick(rng, PAYMENTS);
            let till = f.field();
            till.extend_from_slice(b"POSTE");
            num(till, rng.range(1, 6));
        }
        Table::Products => {
            f.bytes(b"PRD");
            let product = rng.below(CATALOGUE);
            product_line(&mut f, rng, product);
        }
    }
    // The row's version stamp: what keeps real rows from compressing better.
    let stamp = f.field();
    hex(stamp, &rng.next().to_le_bytes());
    hex(stamp, &rng.next().to_le_bytes()[..3]);
    f.end(b"|\n");
}

/// The first line of `exports/stock_complet.csv`.
pub const STOCK_HEADER: &[u8] =
    b"cip13;designation;laboratoire;stock;stock_mini;prix_achat_ht;prix_ttc;derniere_vente\n";

/// Row `product` of the stock export, as it is on `day`.
pub fn stock_row(out: &mut Vec<u8>, rng: &mut Rng, product: u64, day: i64) {
    let mut f = Fields::new(out, b';');
    let price = product_line(&mut f, rng, product);
    let sold = calendar::french(day - rng.below(60) as i64);
    f.euros(price * 13 / 10).bytes(sold.as_bytes()).end(b"\n");
}

/// The sales export of `day`: `rows` sales in time order.
pub fn sales_csv(rng: &mut Rng, day: i64, rows: u64) -> Vec<u8> {
    let mut out = b"heure;ticket;cip13;designation;quantite;prix_ttc;reglement\n".to_vec();
    let first_ticket = (day + 1000) as u64 * 1000;
    for i in 0..rows {
        let mut f = Fields::new(&mut out, b';');
        clock(f.field(), calendar::hm(8, 30) + (i * 37_800 / rows) as u32);
        f.padded(first_ticket + i, 7);
        item(&mut f, rng.below(CATALOGUE));
        f.num(rng.range(1, 4))
            .euros(rng.range(150, 9000))
            .pick(rng, PAYMENTS)
            .end(b"\n");
    }
    out
}

/// An electronic care form (FSE) number `number` of `day`, CRLF lines;
/// returns it and its amount in cents.
pub fn fse(rng: &mut Rng, day: i64, number: u64) -> (Vec<u8>, u64) {
    const CRLF: &[u8] = b"\r\n";
    let mut out = Vec::with_capacity(2048);
    Fields::new(&mut out, b';')
        .bytes(b"FSE")
        .bytes(b"1.40")
        .padded(number, 9)
        .bytes(calendar::compact(day).as_bytes())
        .end(CRLF);
    let mut f = Fields::new(&mut out, b';');
    f.bytes(b"PS").bytes(b"750000000");
    rpps(f.field(), rng);
    f.end(CRLF);
    let mut f = Fields::new(&mut out, b';');
    f.bytes(b"ASSURE");
    nir(f.field(), rng);
    f.pick(rng, SURNAMES)
        .pick(rng, FIRST_NAMES)
        .pick(rng, INSURERS)
        .end(CRLF);
    let mut f = Fields::new(&mut out, b';');
    f.bytes(b"PRESCRIPTEUR");
    rpps(f.field(), rng);
    doctor(f.field(), rng);
    f.end(CRLF);
    let mut total = 0;
    for _ in 0..rng.range(1, 12) {
        let mut f = Fields::new(&mut out, b';');
        f.bytes(b"ACTE").bytes(b"PH7");
        item(&mut f, rng.below(CATALOGUE));
        let (qty, price) = (rng.range(1, 4), rng.range(150, 9000));
        f.num(qty)
            .euros(price)
            .pick(rng, &["65", "100", "30", "15"])
            .end(CRLF);
        total += qty * price;
    }
    Fields::new(&mut out, b';')
        .bytes(b"TOTAL")
        .euros(total)
        .end(CRLF);
    let mut f = Fields::new(&mut out, b';');
    f.bytes(b"SIGNATURE");
    hex(f.field(), &rng.bytes(64));
    f.end(CRLF);
    (out, total)
}

/// The acknowledgement (ARL) of FSE `number`, a small XML file.
pub fn arl(rng: &mut Rng, day: i64, number: u64) -> Vec<u8> {
    let mut out = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\r\n<arl fse=\"".to_vec();
    padded(&mut out, number, 9);
    out.extend_from_slice(b"\" date=\"");
    out.extend_from_slice(calendar::compact(day + 1).as_bytes());
    if rng.chance(0.97) {
        out.extend_from_slice(b"\" statut=\"ACCEPTE\"/>\r\n");
    } else {
        out.extend_from_slice(b"\" statut=\"REJET\"><motif code=\"");
        num(&mut out, rng.range(100, 999));
        out.extend_from_slice(b"\"/></arl>\r\n");
    }
    out
}

/// The B2 batch of `day`: one line per FSE (number, amount).
pub fn b2(day: i64, entries: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 32 * entries.len());
    Fields::new(&mut out, b';')
        .bytes(b"B2")
        .bytes(b"LOT")
        .bytes(calendar::compact(day).as_bytes())
        .num(entries.len() as u64)
        .end(b"\r\n");
    for (number, amount) in entries {
        Fields::new(&mut out, b';')
            .bytes(b"B2")
            .bytes(b"FSE")
            .padded(*number, 9)
            .euros(*amount)
            .end(b"\r\n");
    }
    out.extend_from_slice(b"B2;FIN\r\n");
    out
}

/// The log lines of `day`, `lines` of them from 08:00 to 19:00.
pub fn log_day(rng: &mut Rng, day: i64, lines: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines as usize * 90);
    let date = calendar::iso(day);
    let step = 39_600 / lines.max(1);
    for i in 0..lines {
        out.extend_from_slice(date.as_bytes());
        out.push(b' ');
        clock(
            &mut out,
            (calendar::hm(8, 0) as u64 + i * step + rng.below(step.max(1))) as u32,
        );
        out.push(b',');
        padded(&mut out, rng.below(1000), 3);
        let kind = rng.below(100);
        out.extend_from_slice(match kind {
            0..=1 => b" ERROR",
            2..=6 => b" WARN ",
            7..=14 => b" DEBUG",
            _ => b" INFO ",
        });
        out.extend_from_slice(b" [poste");
        num(&mut out, rng.range(1, 6));
        out.extend_from_slice(b"] ");
        log_message(&mut out, rng, kind);
        out.push(b'\n');
    }
    out
}

fn log_message(out: &mut Vec<u8>, rng: &mut Rng, kind: u64) {
    match kind {
        0..=1 => {
            out.extend_from_slice(b"DMP: connexion refusee (code ");
            num(out, rng.range(400, 600));
            out.push(b')');
        }
        2..=6 => out.extend_from_slice(b"Imprimante TICKET hors ligne, nouvelle tentative"),
        7..=14 => {
            out.extend_from_slice(b"Cache produits recharge en ");
            num(out, rng.range(3, 900));
            out.extend_from_slice(b" ms");
        }
        15..=54 => {
            out.extend_from_slice(b"Vente: ticket ");
            padded(out, rng.below(1_000_000), 6);
            out.push(b' ');
            num(out, rng.range(1, 8));
            out.extend_from_slice(b" ligne(s) ");
            euros(out, rng.range(150, 25_000));
            out.extend_from_slice(b" EUR ");
            word(out, rng, PAYMENTS);
        }
        55..=74 => {
            out.extend_from_slice(b"SESAM-Vitale: carte lue ");
            word(out, rng, SURNAMES);
            out.push(b' ');
            word(out, rng, FIRST_NAMES);
        }
        75..=89 => {
            out.extend_from_slice(b"Stock: ");
            designation(out, rng.below(CATALOGUE));
            out.extend_from_slice(b" sous le seuil (");
            num(out, rng.below(5));
            out.push(b')');
        }
        _ => {
            out.extend_from_slice(b"Commande grossiste: ");
            num(out, rng.range(3, 120));
            out.extend_from_slice(b" lignes transmises");
        }
    }
}
