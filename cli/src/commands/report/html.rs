//! Render: the model written as one self-contained HTML page.

use std::fmt::Write as _;

use chrono::Datelike;
use snapshots_format::format::journal::Outcome;

use super::i18n::Lang;
use super::model::{Day, Mark, Report, Status, Table};
use super::month::local;
use super::svg::{added_chart, size_chart};

/// Escapes text for HTML content and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
@page { size: A4; margin: 14mm 13mm 16mm 13mm; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: "Segoe UI", "DejaVu Sans", Arial, Helvetica, sans-serif; font-size: 10pt; color: #1a1a1a; margin: 0 auto; max-width: 190mm; padding: 8mm 0; line-height: 1.35; }
h1 { font-size: 17pt; margin: 0 0 1mm 0; }
h2 { font-size: 12.5pt; margin: 5mm 0 2mm 0; padding-bottom: 1mm; border-bottom: 1.5px solid #1f4e79; color: #1f4e79; break-after: avoid; page-break-after: avoid; }
p.sub { margin: 0 0 4mm 0; color: #555; }
p.intro, p.note { margin: 0 0 2mm 0; color: #444; font-size: 9pt; break-after: avoid; page-break-after: avoid; }
p.none { margin: 0 0 2mm 0; font-style: italic; color: #555; }
table { border-collapse: collapse; width: 100%; }
thead { display: table-header-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
th, td { border: 1px solid #b8c2cc; padding: 1.2mm 1.6mm; text-align: left; vertical-align: top; }
th { background: #e8eef4; font-weight: 600; font-size: 9pt; }
table.events td { font-size: 8.5pt; overflow-wrap: anywhere; }
table.events td.num { text-align: right; white-space: nowrap; }
table.events td.when, table.events td.who { white-space: nowrap; }
table.kv th { width: 38%; background: #f3f6f9; }
table.pairs th { width: 21%; font-size: 8.5pt; }
table.pairs td { width: 29%; }
tr.r-warning td { background: #fff1dc; }
tr.r-failed td { background: #fde0e0; }
.problems { border: 2.5px solid #b00000; background: #fde0e0; color: #8a0000; padding: 3mm 4mm; margin: 0 0 4mm 0; break-inside: avoid; }
.problems h2 { color: #b00000; border-color: #b00000; margin-top: 0; }
.points td, .points th { font-size: 9pt; padding-top: 0.9mm; padding-bottom: 0.9mm; }
.points td.mark { width: 8mm; text-align: center; font-weight: 700; font-size: 12pt; }
.points td.m-good { color: #1b7a34; }
.points td.m-watch { color: #b35c00; }
.points td.m-bad { color: #b00000; }
.points th { width: 30%; background: #f3f6f9; }
table.cal { table-layout: fixed; }
table.cal th { text-align: center; }
table.cal td { height: 11.5mm; padding: 1mm 1.4mm; position: relative; }
table.cal td.blank { background: #fafafa; border-color: #e2e2e2; }
table.cal .n { font-weight: 700; font-size: 11pt; display: block; }
table.cal .s { display: block; font-size: 8pt; }
table.cal .y { position: absolute; top: 0.8mm; right: 1.6mm; font-weight: 700; font-size: 12pt; }
table.cal .t { position: absolute; top: 1.3mm; right: 6.5mm; font-size: 7.5pt; color: #333; }
.ok { background: #c9ecd0; }
.warning { background: #ffd79a; }
.failed { background: #f4a6a6; }
.missing { background: #ffffff; outline: 2px dashed #b00000; outline-offset: -3px; }
.missing .s { color: #b00000; font-weight: 700; }
.not-planned { background: #e3e3e3; color: #555; }
.future { background: #ffffff; color: #888; }
.legend { margin: 1.5mm 0 0 0; padding: 0; list-style: none; font-size: 8pt; columns: 2; column-gap: 6mm; }
.legend li { margin: 0.6mm 0; }
.legend .sw { display: inline-block; width: 9mm; height: 3.6mm; border: 1px solid #999; vertical-align: middle; margin-right: 2mm; text-align: center; font-size: 8pt; line-height: 3.4mm; font-weight: 700; }
.legend .sw.missing { outline-offset: -2px; outline-width: 1.5px; }
.charts svg { width: 100%; height: auto; display: block; margin: 1mm 0 3mm 0; }
.chart-title { font-weight: 600; margin: 2mm 0 0 0; }
section { margin: 0; }
.keep { break-inside: avoid; page-break-inside: avoid; }
.signature { border: 1.5px solid #1f4e79; padding: 4mm 5mm; margin-top: 6mm; break-inside: avoid; page-break-inside: avoid; }
.signature h2 { margin-top: 0; }
.signature .line { margin: 5mm 0 0 0; }
.signature .fill { display: inline-block; border-bottom: 1px solid #333; min-width: 70mm; }
.signature .fill.short { min-width: 35mm; }
.signature .box { border: 1px solid #666; height: 28mm; margin-top: 2mm; }
.signature .obs { border: 1px solid #666; height: 22mm; margin-top: 2mm; }
footer { margin-top: 5mm; font-size: 8pt; color: #666; }
@media print {
  body { padding: 0; max-width: none; }
  a { color: inherit; text-decoration: none; }
}
"#;

/// The whole page.
pub(super) fn render(r: &Report) -> String {
    let lang = r.lang;
    let mut h = String::with_capacity(64 << 10);
    let title = format!(
        "{} — {}",
        lang.t("Rapport mensuel des sauvegardes", "Monthly backup report"),
        r.month.title(lang)
    );
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}{}</style>\n</head>\n<body>\n",
        lang.code(),
        esc(&title),
        page_footer(r, &title)
    );
    let _ = write!(h, "<h1>{}</h1>\n<p class=\"sub\">{}{}</p>\n", esc(&title),
        r.pharmacy.as_deref().map(|p| format!("{} — ", esc(p))).unwrap_or_default(),
        esc(lang.t(
            "Référentiel qualité de l'officine, principe 42 : sauvegarde des données (planification, traçabilité, tests de restauration, double support, copie hors des locaux).",
            "Pharmacy quality reference, principle 42: data backup (planning, traceability, restore tests, two media, off-site copy).",
        )));
    render_problems(&mut h, r);
    render_pairs(
        &mut h,
        "identity",
        lang.t("Identification", "Identification"),
        &r.header,
    );
    render_calendar(&mut h, r);
    render_points(&mut h, r);
    render_charts(&mut h, r);
    render_planning(&mut h, r);
    for t in &r.tables {
        render_table(&mut h, t);
    }
    render_signature(&mut h, r);
    let _ = write!(
        h,
        "<footer>{} {} {}.</footer>\n</body>\n</html>\n",
        esc(lang.t("Rapport établi par Coffre le", "Report made by Coffre on")),
        esc(&lang.time(r.generated)),
        esc(lang.t(
            "à partir du journal du dépôt, dont chaque entrée est chiffrée, chaînée à la précédente et ne peut être ni modifiée ni retirée sans que cela se voie",
            "from the repository's journal, whose entries are encrypted and chained so that none can be changed or removed unnoticed"
        ))
    );
    h
}

/// Each printed page's foot: who and which month, and the page number.
fn page_footer(r: &Report, title: &str) -> String {
    let who = r
        .pharmacy
        .as_deref()
        .map(|p| format!("{p} — "))
        .unwrap_or_default();
    format!(
        "@page {{ @bottom-left {{ content: \"{}\"; font-size: 7.5pt; color: #666; font-family: sans-serif; }} \
         @bottom-right {{ content: \"{} \" counter(page) \" / \" counter(pages); font-size: 7.5pt; color: #666; font-family: sans-serif; }} }}\n",
        css_str(&format!("{who}{title}")),
        r.lang.t("page", "page")
    )
}

/// Text for a CSS string inside a `<style>` element.
fn css_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\3c "),
            '>' => out.push_str("\\3e "),
            '&' => out.push_str("\\26 "),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn render_problems(h: &mut String, r: &Report) {
    if r.problems.is_empty() {
        return;
    }
    let lang = r.lang;
    let _ = write!(
        h,
        "<section id=\"problems\" class=\"problems\">\n<h2>{}</h2>\n<p>{}</p>\n<ul>\n",
        esc(lang.t(
            "⚠ ALERTE : le journal a été modifié ou endommagé",
            "⚠ WARNING: the journal was altered or damaged"
        )),
        esc(lang.t(
            "Des entrées du journal ont été retirées, remplacées ou déplacées sur ce support, ou il est illisible. Ce rapport ne peut pas être tenu pour complet : mettre ce disque de côté et comparer avec le journal d'un autre disque.",
            "Journal entries were removed, replaced or reordered on this medium, or it cannot be read. This report cannot be taken as complete: keep this drive aside and compare with another drive's journal."
        ))
    );
    for p in &r.problems {
        let _ = writeln!(h, "<li>{}</li>", esc(p));
    }
    h.push_str("</ul>\n</section>\n");
}

fn render_kv(h: &mut String, id: &str, title: &str, rows: &[(&str, String)]) {
    let _ = write!(
        h,
        "<section id=\"{}\" class=\"keep\">\n<h2>{}</h2>\n<table class=\"kv\">\n",
        esc(id),
        esc(title)
    );
    for (k, v) in rows {
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    h.push_str("</table>\n</section>\n");
}

/// Label-value pairs, two a line (a last one alone spans the line).
fn render_pairs(h: &mut String, id: &str, title: &str, rows: &[(&str, String)]) {
    let _ = write!(
        h,
        "<section id=\"{}\" class=\"keep\">\n<h2>{}</h2>\n<table class=\"kv pairs\">\n",
        esc(id),
        esc(title)
    );
    for pair in rows.chunks(2) {
        h.push_str("<tr>");
        match pair {
            [(k1, v1), (k2, v2)] => {
                let _ = write!(
                    h,
                    "<th>{}</th><td>{}</td><th>{}</th><td>{}</td>",
                    esc(k1),
                    esc(v1),
                    esc(k2),
                    esc(v2)
                );
            }
            [(k, v)] => {
                let _ = write!(h, "<th>{}</th><td colspan=\"3\">{}</td>", esc(k), esc(v));
            }
            _ => {}
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n</section>\n");
}

fn render_points(h: &mut String, r: &Report) {
    let lang = r.lang;
    let _ = write!(
        h,
        "<section id=\"summary\" class=\"keep\">\n<h2>{}</h2>\n<table class=\"points\">\n",
        esc(lang.t("Synthèse du mois", "Summary of the month"))
    );
    for p in &r.points {
        let (class, sym) = match p.mark {
            Mark::Good => ("m-good", "✓"),
            Mark::Watch => ("m-watch", "!"),
            Mark::Bad => ("m-bad", "✗"),
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"mark {class}\">{sym}</td><th>{}</th><td>{}</td></tr>",
            esc(p.title),
            esc(&p.evidence)
        );
    }
    h.push_str("</table>\n</section>\n");
}

fn render_calendar(h: &mut String, r: &Report) {
    let lang = r.lang;
    let _ = write!(
        h,
        "<section id=\"calendar\" class=\"keep\">\n<h2>{} — {}</h2>\n<table class=\"cal\">\n<thead><tr>",
        esc(lang.t("Calendrier des sauvegardes", "Backup calendar")),
        esc(&r.month.title(lang))
    );
    for d in 0..7 {
        let _ = write!(h, "<th>{}</th>", esc(lang.weekday(d)));
    }
    h.push_str("</tr></thead>\n<tbody>\n<tr>");
    let lead = r
        .days
        .first()
        .map_or(0, |d| d.date.weekday().num_days_from_monday() as usize);
    for _ in 0..lead {
        h.push_str("<td class=\"blank\"></td>");
    }
    let mut col = lead;
    for d in &r.days {
        if col == 7 {
            h.push_str("</tr>\n<tr>");
            col = 0;
        }
        render_day(h, lang, d);
        col += 1;
    }
    while col < 7 {
        h.push_str("<td class=\"blank\"></td>");
        col += 1;
    }
    h.push_str("</tr>\n</tbody>\n</table>\n<ul class=\"legend\">\n");
    for s in [
        Status::Ok,
        Status::Warning,
        Status::Failed,
        Status::Missing,
        Status::NotPlanned,
        Status::Future,
    ] {
        let _ = writeln!(
            h,
            "<li><span class=\"sw {}\">{}</span><b>{}</b>{}{}</li>",
            s.key(),
            s.symbol(),
            esc(s.label(lang)),
            lang.t(" : ", ": "),
            esc(s.meaning(lang))
        );
    }
    h.push_str("</ul>\n</section>\n");
}

fn render_day(h: &mut String, lang: Lang, d: &Day) {
    let mut extra = String::new();
    if let Some(t) = d.time.and_then(local) {
        extra = t.format("%H:%M").to_string();
    }
    if d.attempts > 1 {
        let more = match lang {
            Lang::Fr => format!(" ({} essais)", d.attempts),
            Lang::En => format!(" ({} runs)", d.attempts),
        };
        extra.push_str(&more);
    }
    if d.failures > 0 && d.status == Status::Ok {
        let failed = match lang {
            Lang::Fr => format!(", {} échec(s)", d.failures),
            Lang::En => format!(", {} failure(s)", d.failures),
        };
        extra.push_str(&failed);
    }
    let _ = write!(
        h,
        "<td class=\"day {}\" data-date=\"{}\" data-status=\"{}\"><span class=\"n\">{}</span><span class=\"s\">{}</span><span class=\"y\">{}</span><span class=\"t\">{}</span></td>",
        d.status.key(),
        d.date.format("%Y-%m-%d"),
        d.status.key(),
        d.date.day(),
        esc(d.status.label(lang)),
        d.status.symbol(),
        esc(&extra)
    );
}

fn render_charts(h: &mut String, r: &Report) {
    let lang = r.lang;
    let _ = write!(
        h,
        "<section id=\"charts\" class=\"charts keep\">\n<h2>{}</h2>\n<p class=\"chart-title\">{}</p>\n<p class=\"note\">{}</p>\n{}<p class=\"chart-title\">{}</p>\n<p class=\"note\">{}</p>\n{}</section>\n",
        esc(lang.t("Volumes", "Volumes")),
        esc(lang.t("Taille du dépôt en fin de journée", "Repository size at the end of each day")),
        esc(&r.size_note),
        size_chart(lang, &r.days),
        esc(lang.t("Données ajoutées chaque jour", "Data added each day")),
        esc(lang.t(
            "Ce que les sauvegardes du jour ont ajouté sur le support (seuls les changements sont stockés). ✗ : échec, ? : sauvegarde manquante.",
            "What the day's snapshots added on the medium (only changes are stored). ✗: failed, ?: missing backup."
        )),
        added_chart(lang, &r.days),
    );
}

fn render_planning(h: &mut String, r: &Report) {
    let lang = r.lang;
    render_kv(
        h,
        "planning",
        lang.t("Planification", "Planning"),
        &r.planning,
    );
    let _ = write!(
        h,
        "<section id=\"drives\" class=\"keep\">\n<p class=\"chart-title\">{}</p>\n",
        esc(lang.t(
            "Supports de sauvegarde (disques en rotation, dépôts)",
            "Backup media (drives in rotation, repositories)"
        ))
    );
    if r.drives.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"none\">{}</p>",
            esc(lang.t(
                "Aucun support listé dans la configuration ([[repository]]).",
                "No medium listed in the configuration ([[repository]])."
            ))
        );
    } else {
        let _ = writeln!(
            h,
            "<table class=\"events\"><thead><tr><th>{}</th><th>{}</th></tr></thead><tbody>",
            esc(lang.t("Nom", "Name")),
            esc(lang.t("Emplacement", "Location"))
        );
        for (name, path) in &r.drives {
            let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(name), esc(path));
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("</section>\n");
}

fn render_table(h: &mut String, t: &Table) {
    let _ = write!(
        h,
        "<section id=\"{}\">\n<h2>{}</h2>\n",
        esc(t.id),
        esc(t.title)
    );
    if let Some(intro) = &t.intro {
        let _ = writeln!(h, "<p class=\"intro\">{}</p>", esc(intro));
    }
    if t.rows.is_empty() {
        let _ = writeln!(h, "<p class=\"none\">{}</p>", esc(t.none));
        h.push_str("</section>\n");
        return;
    }
    h.push_str("<table class=\"events\">\n<thead><tr>");
    for head in &t.headers {
        let _ = write!(h, "<th>{}</th>", esc(head));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        let class = match row.outcome {
            Outcome::Ok => "r-ok",
            Outcome::Warning => "r-warning",
            Outcome::Failed => "r-failed",
        };
        let _ = write!(h, "<tr class=\"{class}\">");
        for (i, c) in row.cells.iter().enumerate() {
            let cell_class = if i == 0 {
                " class=\"when\""
            } else if t.num.contains(&i) {
                " class=\"num\""
            } else if t.nowrap.contains(&i) {
                " class=\"who\""
            } else {
                ""
            };
            let _ = write!(h, "<td{cell_class}>{}</td>", esc(c));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

fn render_signature(h: &mut String, r: &Report) {
    let lang = r.lang;
    let responsible = r
        .responsible
        .as_deref()
        .map(|p| {
            format!(
                " ({} : {})",
                lang.t("responsable désigné", "designated person"),
                p
            )
        })
        .unwrap_or_default();
    let _ = write!(
        h,
        "<section id=\"signature\" class=\"signature\">\n<h2>{}</h2>\n<p>{}</p>\n\
         <p class=\"line\">{} <span class=\"fill\"></span>{}</p>\n\
         <p class=\"line\">{} <span class=\"fill short\"></span></p>\n\
         <p class=\"line\">{}</p>\n<div class=\"box\"></div>\n\
         <p class=\"line\">{}</p>\n<div class=\"obs\"></div>\n</section>\n",
        esc(lang.t("Visa du pharmacien", "Pharmacist's approval")),
        esc(&match lang {
            Lang::Fr => format!(
                "J'ai pris connaissance de ce rapport des sauvegardes de {} et des suites données aux incidents.",
                r.month.title(lang)
            ),
            Lang::En => format!(
                "I have read this report of the backups of {} and of what was done after each incident.",
                r.month.title(lang)
            ),
        }),
        esc(lang.t("Vérifié par :", "Checked by:")),
        esc(&responsible),
        esc(lang.t("le :", "on:")),
        esc(lang.t("Signature :", "Signature:")),
        esc(lang.t("Observations :", "Remarks:")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("Centre & Fils <b>\"x\"</b>'"),
            "Centre &amp; Fils &lt;b&gt;&quot;x&quot;&lt;/b&gt;&#39;"
        );
    }
}
