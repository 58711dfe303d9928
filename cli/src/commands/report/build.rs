//! Build: the repository's facts turned into a [`Report`].

use chrono::NaiveDate;
use snapshots_format::format::journal::Entry;

use crate::config::Config;

use super::calendar::{attempts, calendar, count, fill_sizes, size_note};
use super::collect::Facts;
use super::i18n::Lang;
use super::model::{Attempt, Report};
use super::month::Month;
use super::points::{planning, points};
use super::tables::tables;

pub(super) fn build(
    lang: Lang,
    month: Month,
    now: i64,
    today: NaiveDate,
    config: Option<&Config>,
    facts: &Facts,
) -> Report {
    let schedule = config.and_then(|c| c.schedule.as_ref());
    let attempts = attempts(facts);
    let mut days = calendar(month, today, schedule, &attempts);
    fill_sizes(&mut days, facts, now);
    let in_month: Vec<&Entry> = facts
        .entries
        .iter()
        .filter(|e| month.contains(e.time))
        .collect();
    let month_attempts: Vec<&Attempt> =
        attempts.iter().filter(|a| month.contains(a.time)).collect();
    let counts = count(&days, &month_attempts, &in_month);
    let audit = config.and_then(|c| c.audit.clone()).unwrap_or_default();
    Report {
        lang,
        month,
        generated: now,
        header: header(lang, month, now, &audit, facts),
        pharmacy: audit.pharmacy.clone(),
        responsible: audit.responsible.clone(),
        problems: facts.problems.clone(),
        points: points(lang, config, facts, &counts, &in_month),
        planning: planning(lang, schedule, facts),
        drives: drives(config),
        days,
        size_note: size_note(lang, facts),
        tables: tables(lang, &month_attempts, &attempts, &in_month, &facts.entries),
        counts,
    }
}

fn not_given(lang: Lang, v: &Option<String>) -> String {
    v.as_deref().filter(|s| !s.trim().is_empty()).map_or_else(
        || lang.t("non renseigné", "not given").to_owned(),
        str::to_owned,
    )
}

fn header(
    lang: Lang,
    month: Month,
    now: i64,
    audit: &crate::config::AuditConfig,
    facts: &Facts,
) -> Vec<(&'static str, String)> {
    // In pairs: the page shows two a line.
    vec![
        (
            lang.t("Officine", "Pharmacy"),
            not_given(lang, &audit.pharmacy),
        ),
        (lang.t("Période", "Period"), month.title(lang)),
        (
            lang.t("Responsable des sauvegardes", "Responsible for backups"),
            not_given(lang, &audit.responsible),
        ),
        (
            lang.t("Rapport établi le", "Report made on"),
            lang.time(now),
        ),
        (
            lang.t("Prestataire informatique", "IT provider"),
            not_given(lang, &audit.it_provider),
        ),
        (
            lang.t("Établi par", "Made by"),
            format!("Coffre {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            lang.t(
                "Dépôt (support de sauvegarde)",
                "Repository (backup medium)",
            ),
            facts.location.clone(),
        ),
    ]
}
fn drives(config: Option<&Config>) -> Vec<(String, String)> {
    config.map_or_else(Vec::new, |c| {
        c.repositories
            .iter()
            .map(|r| {
                let on = match (&r.fs_label, &r.fs_uuid) {
                    (Some(l), _) => format!(" (LABEL={l})"),
                    (None, Some(u)) => format!(" (UUID={u})"),
                    (None, None) => String::new(),
                };
                (r.name.clone(), format!("{}{on}", r.path.display()))
            })
            .collect()
    })
}
