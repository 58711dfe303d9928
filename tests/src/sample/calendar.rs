//! The simulated calendar: day 0 is 2026-09-01, one day per day; everything
//! of a day happens between midnight and 19:30 UTC (the evening backup), so
//! whatever day `d` touches gets an mtime later than all of day `d - 1`.

/// A moment, in nanoseconds since the Unix epoch.
pub type Ns = i64;

/// Days from 1970-01-01 to day 0, 2026-09-01.
pub const DAY0_EPOCH_DAYS: i64 = 20_697;

/// The evening backup, 19:30 UTC, in seconds after midnight: no change of
/// a day happens after it.
pub const EVENING: u32 = 19 * 3600 + 30 * 60;

const NS: i64 = 1_000_000_000;

/// The civil date `(year, month, day)` of a day number (days since 1970-01-01).
fn civil(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's civil_from_days, in 400-year eras starting in March.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The date `(year, month, day)` of simulated day `day` (negative: history).
pub fn date(day: i64) -> (i64, u32, u32) {
    civil(DAY0_EPOCH_DAYS + day)
}

/// `YYYYMMDD` of a simulated day.
pub fn compact(day: i64) -> String {
    let (y, m, d) = date(day);
    format!("{y:04}{m:02}{d:02}")
}

/// `YYYY-MM-DD` of a simulated day.
pub fn iso(day: i64) -> String {
    let (y, m, d) = date(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `DD/MM/YYYY` of a simulated day, as French software writes dates.
pub fn french(day: i64) -> String {
    let (y, m, d) = date(day);
    format!("{d:02}/{m:02}/{y:04}")
}

/// `secs` seconds (before [`EVENING`]) and `nanos` after midnight of `day`.
pub fn at(day: i64, secs: u32, nanos: u32) -> Ns {
    debug_assert!(secs <= EVENING && nanos < 1_000_000_000);
    ((DAY0_EPOCH_DAYS + day) * 86_400 + i64::from(secs)) * NS + i64::from(nanos)
}

/// A time of day given as hours and minutes, in seconds after midnight.
pub const fn hm(h: u32, m: u32) -> u32 {
    h * 3600 + m * 60
}

/// Splits a moment into the (seconds, nanoseconds) of a timespec.
pub fn split(t: Ns) -> (i64, i64) {
    (t.div_euclid(NS), t.rem_euclid(NS))
}
