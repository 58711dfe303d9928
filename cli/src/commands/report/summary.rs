//! What `coffre report` prints on stdout: two lines, or a JSON summary.

use chrono::DateTime;
use serde_json::{json, Value};

use super::i18n::Lang;
use super::model::Report;
use super::month::local;

pub(super) fn summary_json(r: &Report, path: &std::path::Path) -> Value {
    json!({
        "month": r.month.key(),
        "path": path.display().to_string(),
        "lang": r.lang.code(),
        "generated": DateTime::from_timestamp(r.generated, 0).map(|t| t.to_rfc3339()),
        "days": r.days.iter().map(|d| json!({
            "date": d.date.format("%Y-%m-%d").to_string(),
            "status": d.status.key(),
            "time": d.time.and_then(local).map(|t| t.to_rfc3339()),
            "attempts": d.attempts,
            "failures": d.failures,
            "bytes_added": d.added,
            "size": d.size,
        })).collect::<Vec<_>>(),
        "counts": r.counts,
        "journal_problems": r.problems,
    })
}

pub(super) fn print_summary(r: &Report, path: &std::path::Path) {
    let c = &r.counts;
    match r.lang {
        Lang::Fr => {
            println!("Rapport écrit : {}", path.display());
            println!(
                "{} : {} jour(s) sauvegardé(s), {} incomplet(s), {} en échec, {} manquant(s) ; {} test(s) de restauration, {} vérification(s), {} copie(s).",
                r.month.title(r.lang), c.days_ok, c.days_warning, c.days_failed, c.days_missing, c.restore_tests, c.checks, c.copies
            );
        }
        Lang::En => {
            println!("Report written: {}", path.display());
            println!(
                "{}: {} day(s) backed up, {} incomplete, {} failed, {} missing; {} restore test(s), {} check(s), {} copy(ies).",
                r.month.title(r.lang), c.days_ok, c.days_warning, c.days_failed, c.days_missing, c.restore_tests, c.checks, c.copies
            );
        }
    }
}
