//! The report's month, and Unix times as local dates.

use anyhow::Result;
use chrono::{DateTime, Datelike, Local, NaiveDate, TimeZone};

use super::i18n::Lang;

/// Unix seconds in the local timezone (`TZ` respected).
pub(super) fn local(t: i64) -> Option<DateTime<Local>> {
    DateTime::from_timestamp(t, 0).map(|u| u.with_timezone(&Local))
}

pub(super) fn local_date(t: i64) -> Option<NaiveDate> {
    local(t).map(|d| d.date_naive())
}

/// Unix seconds of the local midnight that ends `day`.
pub(super) fn end_of_day(day: NaiveDate) -> i64 {
    let next = day
        .succ_opt()
        .unwrap_or(day)
        .and_time(chrono::NaiveTime::MIN);
    Local
        .from_local_datetime(&next)
        .earliest()
        .map_or_else(|| next.and_utc().timestamp(), |t| t.timestamp())
}

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Month {
    pub(super) year: i32,
    pub(super) month: u32,
}

impl Month {
    /// `YYYY-MM`.
    pub(super) fn parse(s: &str) -> Result<Month> {
        let bad =
            || anyhow::anyhow!("invalid month {s:?}: give it as YYYY-MM (e.g. --month 2026-11)");
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || year < 1970 {
            return Err(bad());
        }
        Ok(Month { year, month })
    }

    /// The month before the one holding `day`.
    pub(super) fn before(day: NaiveDate) -> Month {
        match day.month() {
            1 => Month {
                year: day.year() - 1,
                month: 12,
            },
            m => Month {
                year: day.year(),
                month: m - 1,
            },
        }
    }

    pub(super) fn key(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    pub(super) fn title(self, lang: Lang) -> String {
        format!("{} {}", lang.month_name(self.month), self.year)
    }

    /// Every day of the month, in order.
    pub(super) fn days(self) -> Vec<NaiveDate> {
        let Some(first) = NaiveDate::from_ymd_opt(self.year, self.month, 1) else {
            return Vec::new();
        };
        first
            .iter_days()
            .take_while(|d| d.month() == self.month)
            .collect()
    }

    pub(super) fn contains(self, t: i64) -> bool {
        local_date(t).is_some_and(|d| d.year() == self.year && d.month() == self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_step_back() {
        assert_eq!(
            Month::parse("2026-11").ok(),
            Some(Month {
                year: 2026,
                month: 11
            })
        );
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "novembre"] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        let jan = NaiveDate::from_ymd_opt(2027, 1, 15).expect("date");
        assert_eq!(Month::before(jan).key(), "2026-12");
        let nov = Month {
            year: 2026,
            month: 11,
        };
        assert_eq!(nov.days().len(), 30);
        assert_eq!(
            Month {
                year: 2028,
                month: 2
            }
            .days()
            .len(),
            29
        );
    }
}
