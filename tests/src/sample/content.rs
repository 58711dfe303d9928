//! Contents of document-like files: scanned prescriptions (JPEG), PDFs,
//! office files, scratch files. Each maker appends exactly the size asked.

use super::text::{num, padded};
use super::words::{PROSE, SURNAMES};
use crate::Rng;

/// A scanned prescription: a JFIF header and comment, then incompressible
/// image data, `size` bytes in all.
pub fn jpeg(rng: &mut Rng, size: usize, number: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x02\x01\x01\x2C\x01\x2C\x00\x00");
    let mut comment = b"ORDONNANCE ".to_vec();
    padded(&mut comment, number, 6);
    comment.extend_from_slice(b" NUMERISEE 300 DPI");
    out.extend_from_slice(b"\xFF\xFE");
    out.extend_from_slice(&(comment.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(&comment);
    let body = size.saturating_sub(out.len() + 2);
    let start = out.len();
    out.resize(start + body, 0);
    rng.fill(&mut out[start..]);
    out.extend_from_slice(b"\xFF\xD9");
    out.truncate(size);
    out
}

/// Some words of French office prose.
pub fn prose(rng: &mut Rng, out: &mut Vec<u8>, words: usize) {
    for i in 0..words {
        if i > 0 {
            out.push(b' ');
        }
        if rng.chance(0.08) {
            out.extend_from_slice(rng.pick(SURNAMES).as_bytes());
        } else {
            out.extend_from_slice(rng.pick(PROSE).as_bytes());
        }
    }
}

/// A PDF object holding a page of text (uncompressed content stream).
pub fn pdf_text_object(rng: &mut Rng, out: &mut Vec<u8>, id: u64) {
    let mut stream = b"BT /F1 10 Tf 56 780 Td 12 TL\n".to_vec();
    for _ in 0..rng.range(4, 40) {
        stream.push(b'(');
        let words = rng.range(6, 14) as usize;
        prose(rng, &mut stream, words);
        stream.extend_from_slice(b") '\n");
    }
    stream.extend_from_slice(b"ET");
    pdf_object(out, id, b"", &stream);
}

/// A PDF object holding a compressed stream (an image or a font): random bytes.
pub fn pdf_binary_object(rng: &mut Rng, out: &mut Vec<u8>, id: u64, len: usize) {
    let data = rng.bytes(len);
    pdf_object(out, id, b" /Filter /FlateDecode", &data);
}

fn pdf_object(out: &mut Vec<u8>, id: u64, dict: &[u8], stream: &[u8]) {
    num(out, id);
    out.extend_from_slice(b" 0 obj\n<< /Length ");
    num(out, stream.len() as u64);
    out.extend_from_slice(dict);
    out.extend_from_slice(b" >>\nstream\n");
    out.extend_from_slice(stream);
    out.extend_from_slice(b"\nendstream\nendobj\n");
}

/// A PDF of `size` bytes: text pages and compressed streams, and a trailer.
pub fn pdf(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 64 * 1024);
    out.extend_from_slice(b"%PDF-1.6\n%\xE2\xE3\xCF\xD3\n");
    let mut trailer = b"trailer\n<< /Root 1 0 R /Info 2 0 R >>\nstartxref\n".to_vec();
    num(&mut trailer, size as u64 * 9 / 10);
    trailer.extend_from_slice(b"\n%%EOF\n");
    let body = size.saturating_sub(trailer.len());
    let mut id = 1;
    while out.len() < body {
        if rng.chance(0.3) {
            pdf_text_object(rng, &mut out, id);
        } else {
            let len = rng.range(1500, 30_000) as usize;
            pdf_binary_object(rng, &mut out, id, len);
        }
        id += 1;
    }
    out.truncate(body);
    out.extend_from_slice(&trailer);
    out.truncate(size);
    out
}

/// An office file (`docx`, `xlsx`): a zip of deflated parts (random bytes)
/// with its central directory in clear at the end, `size` bytes in all.
pub fn office(rng: &mut Rng, size: usize, ext: &str) -> Vec<u8> {
    let main = if ext == "xlsx" {
        "xl/worksheets/sheet1.xml"
    } else {
        "word/document.xml"
    };
    let parts = [
        "[Content_Types].xml",
        "_rels/.rels",
        "docProps/core.xml",
        main,
    ];
    let mut directory = Vec::new();
    for part in parts {
        directory.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00\x08\x00\x08\x00");
        directory.extend_from_slice(&rng.bytes(16));
        directory.extend_from_slice(&(part.len() as u16).to_le_bytes());
        directory.extend_from_slice(&[0; 16]);
        directory.extend_from_slice(part.as_bytes());
    }
    directory.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00\x04\x00\x04\x00");
    directory.extend_from_slice(&[0; 10]);
    let mut out = b"PK\x03\x04\x14\x00\x06\x00\x08\x00".to_vec();
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&(parts[0].len() as u16).to_le_bytes());
    out.extend_from_slice(b"\x00\x00");
    out.extend_from_slice(parts[0].as_bytes());
    let start = out.len();
    out.resize(size.saturating_sub(directory.len()).max(start), 0);
    rng.fill(&mut out[start..]);
    out.extend_from_slice(&directory);
    out.truncate(size);
    out
}

/// A document of kind `ext` (`pdf`, `docx`, `xlsx`) of `size` bytes.
pub fn document(rng: &mut Rng, size: usize, ext: &str) -> Vec<u8> {
    if ext == "pdf" {
        pdf(rng, size)
    } else {
        office(rng, size, ext)
    }
}

/// What an edit inserts into a document: a new text page in a PDF, new
/// compressed bytes in an office file.
pub fn insertion(rng: &mut Rng, ext: &str, id: u64) -> Vec<u8> {
    let mut out = Vec::new();
    if ext == "pdf" {
        pdf_text_object(rng, &mut out, id);
    } else {
        let len = rng.range(200, 4000) as usize;
        out = rng.bytes(len);
    }
    out
}
