//! The printable recovery sheet: the recovery key as text and as a QR
//! code, with what the repository is and how to use the key. Written as
//! HTML (print it from any browser), PDF (one A4 page) or plain text.

use std::fmt::Write as _;

use anyhow::{Context, Result};

/// What the sheet says.
pub struct Sheet {
    /// The recovery key (`XXXXX-XXXXX-...`).
    pub key: String,
    /// The repository's location when the sheet was made.
    pub repository: String,
    /// The repository id (hex), printed to tell drives apart.
    pub repo_id: String,
    /// The key file's id.
    pub key_id: String,
    /// When, by whom, on which host.
    pub made: String,
}

impl Drop for Sheet {
    /// The key opens every backup: it does not outlive the sheet in memory.
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.key.zeroize();
    }
}

/// The sheet's text lines (French first: it goes in the pharmacy's binder).
fn lines(s: &Sheet) -> Vec<String> {
    vec![
        "Coffre - feuille de secours / recovery sheet".into(),
        String::new(),
        "Cette cle ouvre les sauvegardes sans la phrase de passe.".into(),
        "This key opens the backups without the passphrase.".into(),
        "Rangez cette feuille sous cle, hors de la pharmacie.".into(),
        "Keep this sheet locked away, off the premises.".into(),
        String::new(),
        format!("Depot / repository : {}", s.repository),
        format!("Identifiant du depot / repository id : {}", s.repo_id),
        format!("Cle / key id : {}", s.key_id),
        format!("Creee / made : {}", s.made),
        String::new(),
        "CLE DE SECOURS / RECOVERY KEY :".into(),
        s.key.clone(),
        String::new(),
        "Utilisation / use :".into(),
        "  coffre -r <depot> snapshots      (taper la cle comme phrase de passe)".into(),
        "  then: coffre key add --name <nom>   to set a new passphrase".into(),
    ]
}

/// The QR code's modules, row by row (`true` = dark).
fn modules(key: &str) -> Result<(usize, Vec<bool>)> {
    let code = qrcode::QrCode::with_error_correction_level(key, qrcode::EcLevel::Q)
        .context("the recovery key does not fit a QR code")?;
    let dark = code
        .to_colors()
        .into_iter()
        .map(|c| c == qrcode::Color::Dark)
        .collect();
    Ok((code.width(), dark))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The sheet as a standalone HTML page with the QR code in SVG.
///
/// # Errors
/// When the QR code cannot be made.
pub fn html(s: &Sheet) -> Result<String> {
    let (width, dark) = modules(&s.key)?;
    let quiet = 4;
    let size = width + 2 * quiet;
    let mut path = String::new();
    for (i, &d) in dark.iter().enumerate() {
        if d {
            let _ = write!(path, "M{},{}h1v1h-1z", i % width + quiet, i / width + quiet);
        }
    }
    let mut body = String::new();
    for line in lines(s) {
        if line == s.key {
            let _ = writeln!(body, "<p class=\"key\">{}</p>", escape(&line));
        } else if line.is_empty() {
            body.push_str("<br>\n");
        } else {
            let _ = writeln!(body, "<p>{}</p>", escape(&line));
        }
    }
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
         <title>Coffre - feuille de secours</title><style>\
         body{{font-family:sans-serif;margin:2cm}} p{{margin:0.2em 0}}\
         .key{{font-family:monospace;font-size:18pt;font-weight:bold;margin:0.5em 0}}\
         svg{{width:6cm;height:6cm}}</style></head><body>\n{body}\
         <svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" shape-rendering=\"crispEdges\">\
         <rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>\n\
         </body></html>\n"
    ))
}

/// The sheet as plain text, the QR code drawn with block characters.
///
/// # Errors
/// When the QR code cannot be made.
pub fn text(s: &Sheet) -> Result<String> {
    let (width, dark) = modules(&s.key)?;
    let mut out = lines(s).join("\n");
    out.push_str("\n\n");
    // Two rows per character line, so the code stays square.
    let at = |x: usize, y: usize| x < width && y < width && dark[y * width + x];
    for y in (0..width).step_by(2) {
        out.push_str("    ");
        for x in 0..width {
            out.push(match (at(x, y), at(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Ok(out)
}

/// Text for a PDF string literal (ASCII only; the sheet is written so).
fn pdf_string(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '(' | ')' | '\\' => format!("\\{c}"),
            c if c.is_ascii() && !c.is_ascii_control() => c.to_string(),
            _ => "?".into(),
        })
        .collect()
}

/// The sheet as a one-page A4 PDF: Helvetica text and the QR code as
/// filled squares.
///
/// # Errors
/// When the QR code cannot be made.
pub fn pdf(s: &Sheet) -> Result<Vec<u8>> {
    let (width, dark) = modules(&s.key)?;
    let mut content = String::from("BT /F1 11 Tf 56 790 Td 14 TL\n");
    for line in lines(s) {
        if line == s.key {
            let _ = writeln!(content, "/F2 15 Tf ({}) ' /F1 11 Tf", pdf_string(&line));
        } else {
            let _ = writeln!(content, "({}) '", pdf_string(&line));
        }
    }
    content.push_str("ET\n0 g\n");
    // The code: 5 points a module, its top left corner at (56, 480).
    let module = 5.0;
    for (i, &d) in dark.iter().enumerate() {
        if d {
            let x = 56.0 + (i % width) as f64 * module;
            let y = 480.0 - ((i / width) as f64 + 1.0) * module;
            let _ = writeln!(content, "{x:.1} {y:.1} {module:.1} {module:.1} re f");
        }
    }
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Courier-Bold >>".to_string(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (n, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", n + 1).as_bytes());
    }
    let xref = out.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for off in offsets {
        let _ = writeln!(table, "{off:010} 00000 n ");
    }
    let _ = write!(
        table,
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    out.extend_from_slice(table.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet() -> Sheet {
        Sheet {
            key: "ABCDE-FGHJK-MNPQR-STVWX-YZ012-34567-89ABC-DEFGH".into(),
            repository: "/media/lundi/coffre (x)".into(),
            repo_id: "00ff".into(),
            key_id: "0123456789abcdef".into(),
            made: "2026-12-02 by root on officine".into(),
        }
    }

    #[test]
    fn every_form_holds_the_key() {
        let s = sheet();
        assert!(html(&s).unwrap().contains(&s.key));
        assert!(text(&s).unwrap().contains(&s.key));
        let pdf = pdf(&s).unwrap();
        let as_text = String::from_utf8_lossy(&pdf);
        assert!(as_text.starts_with("%PDF-1.4") && as_text.ends_with("%%EOF\n"));
        assert!(as_text.contains(&s.key));
        assert!(as_text.contains("coffre \\(x\\)"), "parentheses escaped");
        // The xref offsets point at the objects.
        let start: usize = as_text
            .rsplit("startxref\n")
            .next()
            .and_then(|t| t.lines().next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(as_text[start..].starts_with("xref"));
        for line in as_text[start..].lines().skip(3).take(6) {
            let off: usize = line[..10].parse().unwrap();
            assert!(
                as_text[off..].split_whitespace().nth(1) == Some("0"),
                "{line}"
            );
        }
    }

    #[test]
    fn the_qr_code_is_square_and_not_empty() {
        let (width, dark) = modules(&sheet().key).unwrap();
        assert_eq!(dark.len(), width * width);
        assert!(dark.iter().filter(|&&d| d).count() > width);
    }
}
