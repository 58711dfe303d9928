//! The points of principle 42 with their evidence, and the planning.

use snapshots_format::format::journal::{Entry, EntryKind, Outcome};

use crate::config::{Config, ScheduleConfig, Verify};

use super::collect::Facts;
use super::i18n::Lang;
use super::model::{Counts, Mark, Point};

/// The points of principle 42, each with this month's evidence.
pub(super) fn points(
    lang: Lang,
    config: Option<&Config>,
    facts: &Facts,
    c: &Counts,
    entries: &[&Entry],
) -> Vec<Point> {
    let schedule = config.and_then(|c| c.schedule.as_ref());
    let ok_copies: Vec<&str> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::CopyOut && e.outcome == Outcome::Ok)
        .filter_map(|e| e.details["to"].as_str())
        .collect();
    let drives = config.map_or(0, |c| c.repositories.len());
    let mut out = Vec::new();
    out.push(Point {
        mark: if schedule.is_some() {
            Mark::Good
        } else {
            Mark::Watch
        },
        title: lang.t("Planification des sauvegardes", "Backup planning"),
        evidence: match schedule {
            Some(s) => format!(
                "{} {}",
                schedule_text(lang, s),
                lang.t("(voir « Planification »).", "(see \"Planning\").")
            ),
            None => lang
                .t(
                    "aucune planification dans la configuration ([schedule]) : à compléter.",
                    "no schedule in the configuration ([schedule]): to be completed.",
                )
                .to_owned(),
        },
    });
    out.push(Point {
        mark: match (c.days_missing, c.days_failed + c.days_warning) {
            (0, 0) => Mark::Good,
            (0, _) => Mark::Watch,
            _ => Mark::Bad,
        },
        title: lang.t("Sauvegardes réalisées", "Backups done"),
        evidence: backups_done(lang, c, schedule.is_some()),
    });
    out.push(Point {
        mark: if facts.problems.is_empty() { Mark::Good } else { Mark::Bad },
        title: lang.t("Traçabilité (journal)", "Traceability (journal)"),
        evidence: if facts.problems.is_empty() {
            match lang {
                Lang::Fr => format!("journal intact, {} entrée(s) ce mois, chacune datée, avec son auteur.", c.journal_entries),
                Lang::En => format!("journal intact, {} entr(ies) this month, each dated and naming who ran it.", c.journal_entries),
            }
        } else {
            lang.t(
                "LE JOURNAL A ÉTÉ MODIFIÉ OU ENDOMMAGÉ (voir en haut) : comparer avec le journal d'un autre disque.",
                "THE JOURNAL WAS ALTERED OR DAMAGED (see the top): compare with another drive's journal.",
            )
            .to_owned()
        },
    });
    out.push(Point {
        mark: match (
            c.restore_tests - c.restore_tests_failed,
            c.restore_tests_failed,
        ) {
            (_, f) if f > 0 => Mark::Bad,
            (0, _) => Mark::Watch,
            _ => Mark::Good,
        },
        title: lang.t("Tests de restauration", "Restore tests"),
        evidence: match (lang, c.restore_tests) {
            (Lang::Fr, 0) => {
                "aucun test de restauration ce mois : lancer `coffre verify --sample 2%`."
                    .to_owned()
            }
            (Lang::En, 0) => {
                "no restore test this month: run `coffre verify --sample 2%`.".to_owned()
            }
            (Lang::Fr, n) => format!(
                "{n} test(s), {} en échec ; {} restauration(s) de fichiers.",
                c.restore_tests_failed, c.restores
            ),
            (Lang::En, n) => format!(
                "{n} test(s), {} failed; {} file restore(s).",
                c.restore_tests_failed, c.restores
            ),
        },
    });
    out.push(Point {
        mark: match (c.checks, c.checks_failed) {
            (_, f) if f > 0 => Mark::Bad,
            (0, _) => Mark::Watch,
            _ => Mark::Good,
        },
        title: lang.t("Contrôle de l'intégrité", "Integrity checks"),
        evidence: match lang {
            Lang::Fr => format!(
                "{} vérification(s) (coffre check), {} en échec.",
                c.checks, c.checks_failed
            ),
            Lang::En => format!(
                "{} check(s) (coffre check), {} failed.",
                c.checks, c.checks_failed
            ),
        },
    });
    out.push(Point {
        mark: if drives >= 2 || !ok_copies.is_empty() { Mark::Good } else { Mark::Watch },
        title: lang.t("Double support", "Two media"),
        evidence: match lang {
            Lang::Fr => format!("{drives} support(s) configuré(s) en rotation ; {} copie(s) réussie(s) vers un autre dépôt ce mois.", ok_copies.len()),
            Lang::En => format!("{drives} medium(s) configured in rotation; {} successful copy(ies) to another repository this month.", ok_copies.len()),
        },
    });
    let offsite: Vec<&&str> = ok_copies.iter().filter(|t| t.starts_with("s3:")).collect();
    out.push(Point {
        mark: if offsite.is_empty() { Mark::Watch } else { Mark::Good },
        title: lang.t("Copie hors des locaux", "Off-site copy"),
        evidence: if offsite.is_empty() {
            lang.t(
                "aucune copie vers un stockage distant (s3:) ce mois ; si les disques quittent l'officine chaque jour (rotation), l'attester ci-dessous.",
                "no copy to remote storage (s3:) this month; if the drives leave the premises every day (rotation), attest it below.",
            )
            .to_owned()
        } else {
            match lang {
                Lang::Fr => format!("{} copie(s) vers {}.", offsite.len(), offsite.last().map_or("", |s| **s)),
                Lang::En => format!("{} copy(ies) to {}.", offsite.len(), offsite.last().map_or("", |s| **s)),
            }
        },
    });
    out
}

/// The evidence of "backups done": days backed up, against the schedule.
fn backups_done(lang: Lang, c: &Counts, scheduled: bool) -> String {
    let done = c.days_ok + c.days_warning;
    let against = match (lang, scheduled) {
        (Lang::Fr, true) => format!(" pour {} jour(s) prévu(s) au planning", c.days_planned),
        (Lang::En, true) => format!(" for {} day(s) planned", c.days_planned),
        (_, false) => String::new(),
    };
    match lang {
        Lang::Fr => format!(
            "{done} jour(s) sauvegardé(s){against} ; {} incomplet(s), {} en échec, {} manquant(s) ; {} sauvegarde(s) enregistrée(s).",
            c.days_warning, c.days_failed, c.days_missing, c.snapshots
        ),
        Lang::En => format!(
            "{done} day(s) backed up{against}; {} incomplete, {} failed, {} missing; {} snapshot(s) recorded.",
            c.days_warning, c.days_failed, c.days_missing, c.snapshots
        ),
    }
}

fn weekdays_text(lang: Lang, s: &ScheduleConfig) -> String {
    let days: Vec<&str> = (0..7)
        .filter(|d| s.weekdays.contains(*d))
        .map(|d| lang.weekday(d))
        .collect();
    if days.len() == 7 {
        lang.t("tous les jours", "every day").to_owned()
    } else {
        days.join(", ")
    }
}

fn schedule_text(lang: Lang, s: &ScheduleConfig) -> String {
    format!("{}, {} {}", weekdays_text(lang, s), lang.t("à", "at"), s.at)
}

fn verify_text(lang: Lang, v: Verify) -> &'static str {
    match v {
        Verify::None => lang.t("aucune", "none"),
        Verify::Check => lang.t(
            "contrôle de la structure (coffre check)",
            "structure check (coffre check)",
        ),
        Verify::ReadData => lang.t(
            "relecture de toutes les données (coffre check --read-data)",
            "every byte read back (coffre check --read-data)",
        ),
    }
}

pub(super) fn planning(
    lang: Lang,
    schedule: Option<&ScheduleConfig>,
    facts: &Facts,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match schedule {
        Some(s) => {
            out.push((lang.t("Jours", "Days"), weekdays_text(lang, s)));
            out.push((lang.t("Heure", "Time"), s.at.to_string()));
            out.push((
                lang.t(
                    "Vérification après chaque sauvegarde",
                    "Check after each backup",
                ),
                verify_text(lang, s.verify).to_owned(),
            ));
        }
        None => out.push((
            lang.t("Planification", "Schedule"),
            lang.t(
                "non renseignée : aucune section [schedule] dans la configuration",
                "not given: no [schedule] section in the configuration",
            )
            .to_owned(),
        )),
    }
    out.push((
        lang.t("Conservation (rétention)", "Retention"),
        match &facts.policy {
            Some((p, true)) => format!("{p} ({})", lang.t("configuration", "configuration")),
            Some((p, false)) => format!(
                "{p} ({})",
                lang.t("enregistrée dans le dépôt", "saved in the repository")
            ),
            None => lang
                .t(
                    "aucune règle : rien n'est supprimé automatiquement",
                    "no rule: nothing is removed automatically",
                )
                .to_owned(),
        },
    ));
    out
}
