//! The report's language: French or English texts, dates and sizes.

use anyhow::{bail, Result};
use chrono::NaiveDate;
use snapshots_format::format::journal::Outcome;

use super::month::local;

/// The report's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    Fr,
    En,
}

const MONTHS_FR: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS_FR: [&str; 7] = ["lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."];
const DAYS_EN: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl Lang {
    pub(super) fn parse(s: &str) -> Result<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fr" => Ok(Lang::Fr),
            "en" => Ok(Lang::En),
            other => {
                bail!("unknown report language {other:?}: use --lang fr (the default) or --lang en")
            }
        }
    }

    /// The French or the English text.
    pub(super) fn t(self, fr: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Fr => fr,
            Lang::En => en,
        }
    }

    pub(super) fn code(self) -> &'static str {
        self.t("fr", "en")
    }

    pub(super) fn file_stem(self) -> &'static str {
        self.t("rapport", "report")
    }

    pub(super) fn month_name(self, month: u32) -> &'static str {
        let names = match self {
            Lang::Fr => &MONTHS_FR,
            Lang::En => &MONTHS_EN,
        };
        names[(month.clamp(1, 12) - 1) as usize]
    }

    pub(super) fn weekday(self, monday_based: usize) -> &'static str {
        match self {
            Lang::Fr => DAYS_FR[monday_based % 7],
            Lang::En => DAYS_EN[monday_based % 7],
        }
    }

    pub(super) fn date(self, d: NaiveDate) -> String {
        match self {
            Lang::Fr => d.format("%d/%m/%Y").to_string(),
            Lang::En => d.format("%Y-%m-%d").to_string(),
        }
    }

    /// A Unix time as a local date and time, to the minute.
    pub(super) fn time(self, t: i64) -> String {
        match local(t) {
            Some(d) => format!("{} {}", self.date(d.date_naive()), d.format("%H:%M")),
            None => t.to_string(),
        }
    }

    /// Sizes: `1.5 MiB`, in French `1,5 Mio`.
    pub(super) fn bytes(self, n: u64) -> String {
        let s = crate::format::bytes(n);
        match self {
            Lang::En => s,
            Lang::Fr => {
                let (num, unit) = s.split_once(' ').unwrap_or((&s, "B"));
                format!("{} {}", num.replace('.', ","), french_unit(unit))
            }
        }
    }

    pub(super) fn outcome(self, o: Outcome) -> &'static str {
        match o {
            Outcome::Ok => self.t("réussi", "ok"),
            Outcome::Warning => self.t("avertissement", "warning"),
            Outcome::Failed => self.t("ÉCHEC", "FAILED"),
        }
    }
}

pub(super) fn french_unit(unit: &str) -> &str {
    match unit {
        "B" => "o",
        "KiB" => "Kio",
        "MiB" => "Mio",
        "GiB" => "Gio",
        "TiB" => "Tio",
        "PiB" => "Pio",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_french() {
        assert_eq!(Lang::Fr.bytes(1536), "1,5 Kio");
        assert_eq!(Lang::Fr.bytes(12), "12 o");
        assert_eq!(Lang::En.bytes(1536), "1.5 KiB");
    }
}
