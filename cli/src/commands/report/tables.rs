//! The tables of journal events, one per kind of operation.

use chrono::DateTime;
use serde_json::Value;
use snapshots_format::format::journal::{Entry, EntryKind, Outcome};

use super::i18n::Lang;
use super::model::{Attempt, Row, Table};
use super::month::local_date;

fn by(e: &Entry) -> String {
    format!("{}@{}", e.user, e.host)
}

fn short(hex: &str) -> String {
    hex.chars().take(12).collect()
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

pub(super) fn tables(
    lang: Lang,
    month_attempts: &[&Attempt],
    all_attempts: &[Attempt],
    entries: &[&Entry],
    all_entries: &[Entry],
) -> Vec<Table> {
    let of = |k: &[EntryKind]| -> Vec<&Entry> {
        entries
            .iter()
            .copied()
            .filter(|e| k.contains(&e.kind))
            .collect()
    };
    vec![
        snapshots_table(lang, month_attempts),
        incidents_table(lang, entries, all_attempts, all_entries),
        verify_table(lang, &of(&[EntryKind::Verify]), all_attempts),
        restore_table(lang, &of(&[EntryKind::Restore])),
        check_table(lang, &of(&[EntryKind::Check])),
        copy_table(lang, &of(&[EntryKind::CopyOut, EntryKind::CopyIn])),
        retention_table(lang, &of(&[EntryKind::Forget, EntryKind::Prune])),
        simple_table(
            lang,
            "keys",
            lang.t(
                "Changements de clés (phrases secrètes)",
                "Key (passphrase) changes",
            ),
            lang.t(
                "Aucun changement de clé ce mois.",
                "No key change this month.",
            ),
            &of(&[EntryKind::Key]),
        ),
        hold_table(lang, &of(&[EntryKind::Protect])),
        simple_table(
            lang,
            "other",
            lang.t("Alertes et autres événements", "Alarms and other events"),
            lang.t(
                "Aucun autre événement ce mois.",
                "No other event this month.",
            ),
            &of(&[EntryKind::Alarm, EntryKind::Init]),
        ),
    ]
}

fn snapshots_table(lang: Lang, attempts: &[&Attempt]) -> Table {
    let rows = attempts
        .iter()
        .filter(|a| a.outcome != Outcome::Failed)
        .map(|a| Row {
            outcome: a.outcome,
            cells: vec![
                lang.time(a.time),
                a.id.as_deref().map_or_else(|| "—".to_owned(), short),
                a.files.to_string(),
                lang.bytes(a.total),
                format!("+{}", lang.bytes(a.stored)),
                a.unreadable.to_string(),
                match (&a.id, a.kept) {
                    (None, _) => lang
                        .t(
                            "rien de changé, aucune écrite",
                            "nothing changed, none written",
                        )
                        .to_owned(),
                    (Some(_), true) => lang.t("conservée", "kept").to_owned(),
                    (Some(_), false) => lang
                        .t("supprimée depuis (rétention)", "removed since (retention)")
                        .to_owned(),
                },
            ],
        })
        .collect();
    Table {
        id: "snapshots",
        num: &[2, 3, 4, 5],
        nowrap: &[1],
        title: lang.t("Sauvegardes du mois", "Snapshots of the month"),
        intro: Some(
            lang.t(
                "Chaque sauvegarde enregistrée : le nombre de fichiers qu'elle contient, leur taille totale, et ce qu'elle a ajouté sur le support (compressé, chiffré).",
                "Every snapshot recorded: the files it holds, their total size, and what it added on the medium (compressed, encrypted).",
            )
            .to_owned(),
        ),
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Identifiant", "Id"),
            lang.t("Fichiers", "Files"),
            lang.t("Taille totale", "Total size"),
            lang.t("Ajouté", "Added"),
            lang.t("Illisibles", "Unreadable"),
            lang.t("État", "State"),
        ],
        rows,
        none: lang.t("Aucune sauvegarde ce mois.", "No snapshot this month."),
    }
}

fn kind_text(lang: Lang, k: EntryKind) -> &'static str {
    match k {
        EntryKind::Init => lang.t("création du dépôt", "repository created"),
        EntryKind::Snapshot => lang.t("sauvegarde", "snapshot"),
        EntryKind::Check => lang.t("vérification", "check"),
        EntryKind::Restore => lang.t("restauration", "restore"),
        EntryKind::Verify => lang.t("test de restauration", "restore test"),
        EntryKind::CopyOut => lang.t("copie vers", "copy to"),
        EntryKind::CopyIn => lang.t("copie depuis", "copy from"),
        EntryKind::Forget => lang.t("suppression (rétention)", "forget"),
        EntryKind::Prune => lang.t("purge", "prune"),
        EntryKind::Key => lang.t("clé", "key"),
        EntryKind::Protect => lang.t("conservation légale", "legal hold"),
        EntryKind::Alarm => lang.t("alerte rançongiciel", "ransomware alarm"),
    }
}

/// Hours (or days) between two times, in words.
fn delay(lang: Lang, from: i64, to: i64) -> String {
    let h = (to - from).max(0) / 3600;
    match (lang, h) {
        (Lang::Fr, h) if h < 48 => format!("{h} h après"),
        (Lang::En, h) if h < 48 => format!("{h} h later"),
        (Lang::Fr, h) => format!("{} jours après", h / 24),
        (Lang::En, h) => format!("{} days later", h / 24),
    }
}

/// What came next after an incident: the next success of the same kind.
fn next_success(
    lang: Lang,
    e: &Entry,
    attempts: &[Attempt],
    all_entries: &[Entry],
) -> (Outcome, String) {
    let next = if e.kind == EntryKind::Snapshot {
        attempts
            .iter()
            .find(|a| a.time > e.time && a.outcome == Outcome::Ok)
            .map(|a| a.time)
    } else {
        all_entries
            .iter()
            .find(|n| n.kind == e.kind && n.time > e.time && n.outcome == Outcome::Ok)
            .map(|n| n.time)
    };
    match next {
        Some(t) => (
            Outcome::Ok,
            format!(
                "{} {} ({})",
                lang.t("réussite suivante le", "next success on"),
                lang.time(t),
                delay(lang, e.time, t)
            ),
        ),
        None => (
            Outcome::Failed,
            lang.t(
                "AUCUNE RÉUSSITE DEPUIS : à traiter",
                "NO SUCCESS SINCE: to be dealt with",
            )
            .to_owned(),
        ),
    }
}

fn incidents_table(
    lang: Lang,
    entries: &[&Entry],
    attempts: &[Attempt],
    all_entries: &[Entry],
) -> Table {
    let rows = entries
        .iter()
        .filter(|e| e.outcome != Outcome::Ok && e.kind != EntryKind::Alarm)
        .map(|e| {
            let (next_outcome, next) = next_success(lang, e, attempts, all_entries);
            Row {
                outcome: if next_outcome == Outcome::Failed {
                    Outcome::Failed
                } else {
                    e.outcome
                },
                cells: vec![
                    lang.time(e.time),
                    kind_text(lang, e.kind).to_owned(),
                    lang.outcome(e.outcome).to_owned(),
                    e.summary.clone(),
                    next,
                ],
            }
        })
        .collect();
    Table {
        id: "incidents",
        num: &[],
        nowrap: &[],
        title: lang.t("Incidents et suites données", "Incidents and what followed"),
        intro: Some(
            lang.t(
                "Chaque échec ou avertissement du mois, sa cause telle qu'enregistrée, et la réussite suivante de la même opération.",
                "Every failure or warning of the month, its cause as recorded, and the next success of the same operation.",
            )
            .to_owned(),
        ),
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Opération", "Operation"),
            lang.t("Résultat", "Result"),
            lang.t("Cause", "Cause"),
            lang.t("Suite", "What followed"),
        ],
        rows,
        none: lang.t("Aucun incident ce mois.", "No incident this month."),
    }
}

fn verify_table(lang: Lang, entries: &[&Entry], attempts: &[Attempt]) -> Table {
    let rows = entries
        .iter()
        .map(|e| {
            let d = &e.details;
            let r = &d["report"];
            let snap = d["snapshot"].as_str().unwrap_or("");
            let when = attempts
                .iter()
                .find(|a| a.id.as_deref() == Some(snap))
                .map(|a| format!(" ({})", lang.time(a.time)))
                .unwrap_or_default();
            let failures = r["failures"].as_array().map_or(0, Vec::len);
            Row {
                outcome: e.outcome,
                cells: vec![
                    lang.time(e.time),
                    if snap.is_empty() {
                        "—".to_owned()
                    } else {
                        format!("{}{when}", short(snap))
                    },
                    d["sample"].as_str().unwrap_or("—").to_owned(),
                    format!(
                        "{} / {}",
                        num(&r["files_tested"]),
                        num(&r["files_in_snapshot"])
                    ),
                    lang.bytes(num(&r["bytes_tested"])),
                    failures.to_string(),
                    lang.outcome(e.outcome).to_owned(),
                    by(e),
                ],
            }
        })
        .collect();
    Table {
        id: "verify",
        num: &[2, 3, 4, 5],
        nowrap: &[7],
        title: lang.t("Tests de restauration", "Restore tests"),
        intro: Some(
            lang.t(
                "coffre verify : des fichiers tirés au sort sont réellement restaurés dans un dossier temporaire, relus et comparés à ce qui avait été sauvegardé.",
                "coffre verify: files drawn at random are really restored into a scratch folder, read back and compared with what was saved.",
            )
            .to_owned(),
        ),
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Sauvegarde testée", "Snapshot tested"),
            lang.t("Échantillon", "Sample"),
            lang.t("Fichiers testés", "Files tested"),
            lang.t("Volume", "Bytes"),
            lang.t("Erreurs", "Errors"),
            lang.t("Résultat", "Result"),
            lang.t("Par", "By"),
        ],
        rows,
        none: lang.t(
            "Aucun test de restauration ce mois.",
            "No restore test this month.",
        ),
    }
}

fn simple_rows(lang: Lang, entries: &[&Entry], with_kind: bool) -> Vec<Row> {
    entries
        .iter()
        .map(|e| {
            let mut cells = vec![lang.time(e.time)];
            if with_kind {
                cells.push(kind_text(lang, e.kind).to_owned());
            }
            cells.extend([e.summary.clone(), lang.outcome(e.outcome).to_owned(), by(e)]);
            Row {
                outcome: e.outcome,
                cells,
            }
        })
        .collect()
}

fn simple_table(
    lang: Lang,
    id: &'static str,
    title: &'static str,
    none: &'static str,
    entries: &[&Entry],
) -> Table {
    Table {
        id,
        num: &[],
        nowrap: &[4],
        title,
        intro: None,
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Événement", "Event"),
            lang.t("Détail", "Detail"),
            lang.t("Résultat", "Result"),
            lang.t("Par", "By"),
        ],
        rows: simple_rows(lang, entries, true),
        none,
    }
}

fn restore_table(lang: Lang, entries: &[&Entry]) -> Table {
    Table {
        id: "restores",
        num: &[],
        nowrap: &[3],
        title: lang.t("Restaurations de fichiers", "File restores"),
        intro: None,
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Détail", "Detail"),
            lang.t("Résultat", "Result"),
            lang.t("Par", "By"),
        ],
        rows: simple_rows(lang, entries, false),
        none: lang.t("Aucune restauration ce mois.", "No restore this month."),
    }
}

fn check_table(lang: Lang, entries: &[&Entry]) -> Table {
    let rows = entries
        .iter()
        .map(|e| {
            let d = &e.details;
            let what = match (&d["subset"], d["read_data"].as_bool()) {
                (Value::Object(s), _) => format!(
                    "{} {}/{}",
                    lang.t(
                        "relecture d'une partie des données",
                        "part of the data read back"
                    ),
                    num(&s["part"]) + 1,
                    num(&s["of"])
                ),
                (_, Some(true)) => lang
                    .t("relecture de toutes les données", "every byte read back")
                    .to_owned(),
                _ => lang.t("structure", "structure").to_owned(),
            };
            Row {
                outcome: e.outcome,
                cells: vec![
                    lang.time(e.time),
                    what,
                    num(&d["snapshots"]).to_string(),
                    d["errors"].as_array().map_or(0, Vec::len).to_string(),
                    lang.outcome(e.outcome).to_owned(),
                    by(e),
                ],
            }
        })
        .collect();
    Table {
        id: "checks",
        num: &[2, 3],
        nowrap: &[5],
        title: lang.t("Vérifications de l'intégrité", "Integrity checks"),
        intro: None,
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Type", "Kind"),
            lang.t("Sauvegardes", "Snapshots"),
            lang.t("Erreurs", "Errors"),
            lang.t("Résultat", "Result"),
            lang.t("Par", "By"),
        ],
        rows,
        none: lang.t("Aucune vérification ce mois.", "No check this month."),
    }
}

fn copy_table(lang: Lang, entries: &[&Entry]) -> Table {
    let rows = entries
        .iter()
        .map(|e| {
            let d = &e.details;
            let r = &d["report"];
            let other = d["to"].as_str().or(d["from"].as_str()).unwrap_or("—");
            Row {
                outcome: e.outcome,
                cells: vec![
                    lang.time(e.time),
                    kind_text(lang, e.kind).to_owned(),
                    other.to_owned(),
                    r["copied"].as_array().map_or(0, Vec::len).to_string(),
                    lang.bytes(num(&r["bytes_sent"])),
                    lang.outcome(e.outcome).to_owned(),
                    by(e),
                ],
            }
        })
        .collect();
    Table {
        id: "copies",
        num: &[3, 4],
        nowrap: &[6],
        title: lang.t("Copies vers un autre support", "Copies to another medium"),
        intro: None,
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Sens", "Direction"),
            lang.t("Dépôt", "Repository"),
            lang.t("Sauvegardes copiées", "Snapshots copied"),
            lang.t("Volume envoyé", "Bytes sent"),
            lang.t("Résultat", "Result"),
            lang.t("Par", "By"),
        ],
        rows,
        none: lang.t("Aucune copie ce mois.", "No copy this month."),
    }
}

fn retention_detail(lang: Lang, e: &Entry) -> String {
    let d = &e.details;
    match e.kind {
        EntryKind::Forget => {
            let removed = d["removed"].as_array().cloned().unwrap_or_default();
            let dates: Vec<String> = removed
                .iter()
                .map(|r| {
                    r["time"]
                        .as_str()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map_or_else(
                            || short(r["id"].as_str().unwrap_or("?")),
                            |t| lang.time(t.timestamp()),
                        )
                })
                .collect();
            let rule = match d["rule"].as_str() {
                Some("named") => lang.t("désignées par leur nom", "named"),
                _ => lang.t("politique de rétention", "retention policy"),
            };
            let list = if dates.is_empty() {
                String::new()
            } else {
                format!(" : {}", dates.join(", "))
            };
            match lang {
                Lang::Fr => format!(
                    "{} sauvegarde(s) supprimée(s) ({rule}){list}",
                    removed.len()
                ),
                Lang::En => format!("{} snapshot(s) removed ({rule}){list}", removed.len()),
            }
        }
        _ if d.is_object() => match lang {
            Lang::Fr => format!(
                "{} libéré(s), {} paquet(s) supprimé(s), {} réécrit(s)",
                lang.bytes(num(&d["bytes_freed"])),
                num(&d["packs_deleted"]),
                num(&d["packs_repacked"])
            ),
            Lang::En => format!(
                "{} freed, {} pack(s) deleted, {} repacked",
                lang.bytes(num(&d["bytes_freed"])),
                num(&d["packs_deleted"]),
                num(&d["packs_repacked"])
            ),
        },
        _ => e.summary.clone(),
    }
}

fn retention_table(lang: Lang, entries: &[&Entry]) -> Table {
    let rows = entries
        .iter()
        .map(|e| Row {
            outcome: e.outcome,
            cells: vec![
                lang.time(e.time),
                kind_text(lang, e.kind).to_owned(),
                retention_detail(lang, e),
                lang.outcome(e.outcome).to_owned(),
                by(e),
            ],
        })
        .collect();
    Table {
        id: "retention",
        num: &[],
        nowrap: &[4],
        title: lang.t(
            "Suppressions et purges (rétention)",
            "Forget and prune (retention)",
        ),
        intro: None,
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Opération", "Operation"),
            lang.t("Détail", "Detail"),
            lang.t("Résultat", "Result"),
            lang.t("Par", "By"),
        ],
        rows,
        none: lang.t("Aucune suppression ce mois.", "Nothing removed this month."),
    }
}

fn hold_table(lang: Lang, entries: &[&Entry]) -> Table {
    let rows = entries
        .iter()
        .map(|e| {
            let d = &e.details;
            let action = match d["action"].as_str() {
                Some("unprotect") => lang.t("levée", "lifted"),
                _ => lang.t("posée", "placed"),
            };
            let until = match d["until"].as_i64() {
                Some(i64::MAX) => lang.t("sans date de fin", "no end date").to_owned(),
                Some(t) => local_date(t).map_or_else(|| t.to_string(), |d| lang.date(d)),
                None => "—".to_owned(),
            };
            Row {
                outcome: e.outcome,
                cells: vec![
                    lang.time(e.time),
                    action.to_owned(),
                    short(d["snapshot"].as_str().unwrap_or("—")),
                    until,
                    d["reason"].as_str().unwrap_or("").to_owned(),
                    by(e),
                ],
            }
        })
        .collect();
    Table {
        id: "holds",
        num: &[],
        nowrap: &[5],
        title: lang.t("Conservations légales", "Legal holds"),
        intro: None,
        headers: vec![
            lang.t("Date", "Date"),
            lang.t("Action", "Action"),
            lang.t("Sauvegarde", "Snapshot"),
            lang.t("Jusqu'au", "Until"),
            lang.t("Motif", "Reason"),
            lang.t("Par", "By"),
        ],
        rows,
        none: lang.t(
            "Aucune conservation légale posée ou levée ce mois.",
            "No legal hold placed or lifted this month.",
        ),
    }
}
