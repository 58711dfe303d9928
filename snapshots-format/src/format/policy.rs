//! Retention policies: which snapshots `coffre forget` keeps (docs/RETENTION.md).
//!
//! A [`Policy`] holds restic-style rules (`keep-last`, `keep-daily`,
//! `keep-weekly`, `keep-monthly`, `keep-yearly`, `keep-within`). [`apply`]
//! decides, for every snapshot, whether it is kept and which rules keep it;
//! it never deletes anything itself.
//!
//! Semantics (those of restic's `forget`):
//!
//! - snapshots are grouped by (label, source); each group is handled on its
//!   own;
//! - within a group snapshots are walked newest first (ties broken by id);
//! - a counted rule with N keeps the newest snapshot of each of its N most
//!   recent distinct buckets: a snapshot is kept when its bucket differs from
//!   the bucket the rule kept last and the rule has kept fewer than N. The
//!   buckets are the local calendar day (`%Y-%m-%d`), the ISO week
//!   (`%G-W%V`, Monday to Sunday), the month (`%Y-%m`) and the year (`%Y`),
//!   all in the local timezone (`TZ` respected); `keep-last` N keeps the N
//!   newest;
//! - `keep-within D` keeps every snapshot strictly newer than the group's
//!   newest snapshot minus D, counted on the calendar (measured from the
//!   newest snapshot, not from now: backups that stopped running do not make
//!   the rule drop everything);
//! - a snapshot is kept if any rule keeps it, and the newest snapshot of each
//!   group is always kept (its reasons end with `newest`, whether or not
//!   other rules keep it too);
//! - a policy without any rule is refused ([`PolicyError::Empty`]), never
//!   read as "remove everything".
//!
//! Differences with restic: no `keep-hourly` nor `keep-tag`; groups are
//! always (label, source); and recent restic versions also keep the oldest
//! snapshot of a group while a rule still has counts left, which Coffre does
//! not (a rule keeps exactly the newest snapshot of each of its buckets).
//!
//! A policy saved in the repository is encoded with [`Policy::encode`]
//! (version byte 1, then the rules) and sealed by the caller.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Days, Local, LocalResult, Months, NaiveDateTime, TimeDelta, TimeZone,
    Timelike,
};
use serde::{Serialize, Serializer};

use crate::codec::{DecodeError, Reader, Writer};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;

/// Version byte opening an encoded policy.
const POLICY_VERSION: u8 = 1;

/// What can be wrong with a policy or its parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The policy has no rule that could keep anything.
    #[error(
        "the retention policy has no rule (give at least one of --keep-last, --keep-daily, \
         --keep-weekly, --keep-monthly, --keep-yearly, --keep-within); an empty policy is \
         refused, it never means \"remove everything\""
    )]
    Empty,
    /// A `keep-within` duration that does not parse.
    #[error("invalid keep-within duration {input:?}: {reason} (examples: 14d, 2w, 6m, 1y6m)")]
    InvalidWithin {
        /// What the user gave.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A calendar duration for `keep-within`: years, months, days and hours, as
/// restic counts them (`1y5m7d2h`).
///
/// Years, months and days are subtracted on the local calendar (one day
/// before 12:00 is 12:00 the day before, even across a daylight-saving
/// change; one month before 31 March is 28 or 29 February: the day is
/// clamped to the end of the month), then hours as elapsed time. Weeks
/// (`2w`) are read as 7 days each and shown as days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Duration {
    /// Calendar years.
    pub years: u32,
    /// Calendar months.
    pub months: u32,
    /// Calendar days (weeks included).
    pub days: u32,
    /// Hours of elapsed time.
    pub hours: u32,
}

impl Duration {
    /// True when every component is zero (a rule that would keep nothing).
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// The instant `newest` minus this duration, or `None` when it lies
    /// before any representable time (then every snapshot is within).
    ///
    /// A result falling on a local time that happens twice (autumn fold) is
    /// the earlier of the two; one falling into the spring gap is moved back
    /// to the start of the gap. Both choices keep more, never less.
    pub fn cutoff(&self, newest: DateTime<Local>) -> Option<DateTime<Local>> {
        let months = u64::from(self.years) * 12 + u64::from(self.months);
        let months = u32::try_from(months).ok()?;
        let naive = newest
            .naive_local()
            .checked_sub_months(Months::new(months))?
            .checked_sub_days(Days::new(u64::from(self.days)))?;
        let local = resolve_local(naive)?;
        local.checked_sub_signed(TimeDelta::try_hours(i64::from(self.hours))?)
    }
}

/// The instant showing `naive` on the local clock: the earlier one in a
/// fold, the start of the gap (at most a minute before it) in a gap.
fn resolve_local(naive: NaiveDateTime) -> Option<DateTime<Local>> {
    if let Some(found) = earliest_instant(naive) {
        return Some(found);
    }
    // In a gap: walk back whole minutes to the first time the clock shows.
    let mut t = naive.with_second(0)?.with_nanosecond(0)?;
    // Gaps are at most a few hours long; a day of steps is ample.
    for _ in 0..=24 * 60 {
        if let Some(found) = earliest_instant(t) {
            return Some(found);
        }
        t = t.checked_sub_signed(TimeDelta::try_minutes(1)?)?;
    }
    None
}

/// The earliest instant showing `naive`, if any. (chrono's
/// `LocalResult::earliest` orders a fold's two results by offset, not by
/// instant, so both are compared here.)
fn earliest_instant(naive: NaiveDateTime) -> Option<DateTime<Local>> {
    match Local.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t),
        LocalResult::Ambiguous(a, b) => Some(a.min(b)),
        LocalResult::None => None,
    }
}

impl fmt::Display for Duration {
    /// The restic form, zero components left out (`1y5m7d2h`, `14d`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0d");
        }
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for Duration {
    type Err = PolicyError;

    /// Same as [`Policy::parse_within`].
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        Policy::parse_within(s)
    }
}

impl Serialize for Duration {
    /// Serialized as its display form (`"1y6m"`).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A retention policy: every `None` (or zero) rule is off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Keep the N newest snapshots.
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent local days.
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent ISO weeks.
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent months.
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent years.
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot newer than the group's newest minus this.
    pub keep_within: Option<Duration>,
}

impl Policy {
    /// True when no rule could keep anything: all counts absent or zero and
    /// no (or a zero) `keep-within`. [`apply`] refuses such a policy.
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(_, n)| n.unwrap_or(0) == 0)
            && self.keep_within.is_none_or(|d| d.is_zero())
    }

    /// Parses a `keep-within` duration: numbers each followed by a unit,
    /// `y` (years), `m` (months), `w` (weeks = 7 days), `d` (days), `h`
    /// (hours), each unit at most once, e.g. `14d`, `2w`, `6m`, `1y5m7d2h`.
    ///
    /// # Errors
    /// [`PolicyError::InvalidWithin`] for anything else, including a zero
    /// duration (it would keep nothing).
    pub fn parse_within(input: &str) -> Result<Duration, PolicyError> {
        let bad = |reason| PolicyError::InvalidWithin {
            input: input.to_string(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(bad("empty"));
        }
        let mut d = Duration::default();
        let mut weeks: Option<u32> = None;
        let mut seen = [false; 5];
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad("expected a number"));
            }
            let n: u32 = rest[..digits]
                .parse()
                .map_err(|_| bad("number too large"))?;
            let mut chars = rest[digits..].chars();
            let slot = match chars.next() {
                Some('y') => 0,
                Some('m') => 1,
                Some('w') => 2,
                Some('d') => 3,
                Some('h') => 4,
                None => return Err(bad("missing unit after a number")),
                Some(_) => return Err(bad("unknown unit (use y, m, w, d or h)")),
            };
            if seen[slot] {
                return Err(bad("a unit is given twice"));
            }
            seen[slot] = true;
            match slot {
                0 => d.years = n,
                1 => d.months = n,
                2 => weeks = Some(n),
                3 => d.days = n,
                _ => d.hours = n,
            }
            rest = chars.as_str();
        }
        if let Some(w) = weeks {
            d.days = w
                .checked_mul(7)
                .and_then(|w| w.checked_add(d.days))
                .ok_or_else(|| bad("number too large"))?;
        }
        if d.is_zero() {
            return Err(bad("a zero duration keeps nothing"));
        }
        Ok(d)
    }

    /// The human form, rules in a fixed order, e.g.
    /// `keep-daily 7, keep-weekly 5`; `no rule` for an empty policy.
    pub fn describe(&self) -> String {
        self.to_string()
    }

    /// Encodes the policy for saving in the repository: version byte 1, then
    /// for each count (last, daily, weekly, monthly, yearly) a flag byte and
    /// a varint, then a flag byte and the four varints of `keep_within`
    /// (years, months, days, hours). Deterministic.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(POLICY_VERSION);
        for (_, n) in self.counts() {
            match n {
                Some(n) => {
                    w.u8(1);
                    w.varint(u64::from(n));
                }
                None => w.u8(0),
            }
        }
        match &self.keep_within {
            Some(d) => {
                w.u8(1);
                for v in [d.years, d.months, d.days, d.hours] {
                    w.varint(u64::from(v));
                }
            }
            None => w.u8(0),
        }
        w.into_bytes()
    }

    /// Decodes an encoded policy.
    ///
    /// # Errors
    /// [`DecodeError`] on a truncated, malformed or newer-version record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version("retention policy", POLICY_VERSION)?;
        let mut counts = [None; 5];
        for c in &mut counts {
            *c = match r.u8()? {
                0 => None,
                1 => Some(r.varint_u32()?),
                _ => return Err(DecodeError::Invalid("bad policy rule flag")),
            };
        }
        let keep_within = match r.u8()? {
            0 => None,
            1 => Some(Duration {
                years: r.varint_u32()?,
                months: r.varint_u32()?,
                days: r.varint_u32()?,
                hours: r.varint_u32()?,
            }),
            _ => return Err(DecodeError::Invalid("bad keep-within flag")),
        };
        r.finish()?;
        let [keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly] = counts;
        Ok(Policy {
            keep_last,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_yearly,
            keep_within,
        })
    }

    /// The counted rules with their option names, in display order.
    fn counts(&self) -> [(&'static str, Option<u32>); 5] {
        [
            ("keep-last", self.keep_last),
            ("keep-daily", self.keep_daily),
            ("keep-weekly", self.keep_weekly),
            ("keep-monthly", self.keep_monthly),
            ("keep-yearly", self.keep_yearly),
        ]
    }
}

impl fmt::Display for Policy {
    /// Same as [`Policy::describe`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .counts()
            .iter()
            .filter_map(|(name, n)| n.map(|n| format!("{name} {n}")))
            .collect();
        if let Some(d) = &self.keep_within {
            parts.push(format!("keep-within {d}"));
        }
        if parts.is_empty() {
            f.write_str("no rule")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Why a snapshot is kept: the rule and, for calendar rules, the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// One of the `keep-last` newest.
    Last,
    /// Newest of its local day.
    Daily(chrono::NaiveDate),
    /// Newest of its ISO week.
    Weekly {
        /// ISO week-numbering year (2027-01-01 belongs to 2026-W53).
        year: i32,
        /// ISO week, 1 to 53.
        week: u32,
    },
    /// Newest of its month.
    Monthly {
        /// Calendar year.
        year: i32,
        /// Month, 1 to 12.
        month: u32,
    },
    /// Newest of its year.
    Yearly(i32),
    /// Within `keep-within` of the group's newest snapshot.
    Within,
    /// The newest snapshot of its group, always kept.
    Newest,
}

impl fmt::Display for Reason {
    /// `last`, `daily 2026-11-24`, `weekly 2026-W48`, `monthly 2026-11`,
    /// `yearly 2026`, `within`, `newest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Last => f.write_str("last"),
            Reason::Daily(d) => write!(f, "daily {}", d.format("%Y-%m-%d")),
            Reason::Weekly { year, week } => write!(f, "weekly {year:04}-W{week:02}"),
            Reason::Monthly { year, month } => write!(f, "monthly {year:04}-{month:02}"),
            Reason::Yearly(y) => write!(f, "yearly {y:04}"),
            Reason::Within => f.write_str("within"),
            Reason::Newest => f.write_str("newest"),
        }
    }
}

impl Serialize for Reason {
    /// Serialized as its display form (`"weekly 2026-W48"`).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The fate of one snapshot under a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The snapshot (serialized as its full hex id).
    #[serde(serialize_with = "id_hex")]
    pub id: SnapshotId,
    /// True when at least one reason keeps it.
    pub keep: bool,
    /// Every rule that keeps it, in the order last, daily, weekly, monthly,
    /// yearly, within, newest; empty when it is to be forgotten.
    pub reasons: Vec<Reason>,
}

fn id_hex<S: Serializer>(id: &SnapshotId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_hex())
}

/// One counted rule walking a group newest first.
struct Counter<K> {
    left: u32,
    last: Option<K>,
}

impl<K: PartialEq> Counter<K> {
    fn new(n: Option<u32>) -> Self {
        Counter {
            left: n.unwrap_or(0),
            last: None,
        }
    }

    /// Takes `key`'s bucket if it is new to this rule and counts remain.
    fn take(&mut self, key: K) -> bool {
        if self.left == 0 || self.last.as_ref() == Some(&key) {
            return false;
        }
        self.left -= 1;
        self.last = Some(key);
        true
    }
}

/// Applies `policy` to `snapshots`, returning one [`Decision`] per input
/// snapshot, in input order.
///
/// Groups are (label, source); buckets use the local timezone; the newest
/// snapshot of each group is always kept. `keep_within` is measured from
/// the newest snapshot of each group, so `now` does not change the result:
/// it is taken for callers' convenience and future rules.
///
/// # Errors
/// [`PolicyError::Empty`] when the policy has no rule (see
/// [`Policy::is_empty`]), whatever the snapshots.
pub fn apply(
    policy: &Policy,
    snapshots: &[(SnapshotId, Snapshot)],
    now: DateTime<Local>,
) -> Result<Vec<Decision>, PolicyError> {
    let _ = now;
    if policy.is_empty() {
        return Err(PolicyError::Empty);
    }
    let mut decisions: Vec<Decision> = snapshots
        .iter()
        .map(|(id, _)| Decision {
            id: *id,
            keep: false,
            reasons: Vec::new(),
        })
        .collect();

    let mut groups: BTreeMap<(&str, &[Vec<u8>]), Vec<usize>> = BTreeMap::new();
    for (i, (_, s)) in snapshots.iter().enumerate() {
        groups
            .entry((s.label.as_str(), s.sources.as_slice()))
            .or_default()
            .push(i);
    }

    let within = policy.keep_within.filter(|d| !d.is_zero());
    for members in groups.into_values() {
        let mut members = members;
        members.sort_by(|&a, &b| {
            let (ia, sa) = &snapshots[a];
            let (ib, sb) = &snapshots[b];
            sb.time.cmp(&sa.time).then_with(|| ia.cmp(ib))
        });
        // `None`: no keep-within; `Some(None)`: everything is within.
        let cutoff = match (within, members.first()) {
            (Some(d), Some(&newest)) => Some(d.cutoff(snapshots[newest].1.local())),
            _ => None,
        };
        let mut last = Counter::new(policy.keep_last);
        let mut daily = Counter::new(policy.keep_daily);
        let mut weekly = Counter::new(policy.keep_weekly);
        let mut monthly = Counter::new(policy.keep_monthly);
        let mut yearly = Counter::new(policy.keep_yearly);

        for (nr, &i) in members.iter().enumerate() {
            let t = snapshots[i].1.local();
            let day = t.date_naive();
            let iso = day.iso_week();
            let mut reasons = Vec::new();
            if last.take(nr) {
                reasons.push(Reason::Last);
            }
            if daily.take(day) {
                reasons.push(Reason::Daily(day));
            }
            if weekly.take((iso.year(), iso.week())) {
                reasons.push(Reason::Weekly {
                    year: iso.year(),
                    week: iso.week(),
                });
            }
            if monthly.take((day.year(), day.month())) {
                reasons.push(Reason::Monthly {
                    year: day.year(),
                    month: day.month(),
                });
            }
            if yearly.take(day.year()) {
                reasons.push(Reason::Yearly(day.year()));
            }
            match cutoff {
                Some(None) => reasons.push(Reason::Within),
                Some(Some(c)) if t > c => reasons.push(Reason::Within),
                _ => {}
            }
            if nr == 0 {
                reasons.push(Reason::Newest);
            }
            decisions[i].keep = !reasons.is_empty();
            decisions[i].reasons = reasons;
        }
    }
    Ok(decisions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::Timestamp;
    use crate::id::BlobId;
    use chrono::{NaiveDate, Utc};
    use proptest::prelude::*;
    use std::sync::{Mutex, MutexGuard};

    /// Serialises the tests that depend on `TZ` (tests share one process).
    static TZ_LOCK: Mutex<()> = Mutex::new(());

    /// Sets `TZ=Europe/Paris` for the caller, holding the lock.
    fn paris() -> MutexGuard<'static, ()> {
        let guard = TZ_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        std::env::set_var("TZ", "Europe/Paris");
        guard
    }

    /// Seconds since the epoch of a UTC date-time.
    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .timestamp()
    }

    fn id(n: usize) -> SnapshotId {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&(n as u64).to_be_bytes());
        SnapshotId(b)
    }

    fn snap_in(label: &str, source: &str, sec: i64) -> Snapshot {
        Snapshot {
            time: Timestamp { sec, nsec: 0 },
            hostname: b"officine".to_vec(),
            sources: vec![source.as_bytes().to_vec()],
            label: label.into(),
            tags: vec![],
            parent: None,
            tree: BlobId([7; 32]),
            root: None,
            summary: Default::default(),
            excludes: vec![],
            hooks: vec![],
        }
    }

    /// Snapshots of one group, numbered by position.
    fn group(secs: &[i64]) -> Vec<(SnapshotId, Snapshot)> {
        secs.iter()
            .enumerate()
            .map(|(n, &s)| (id(n), snap_in("officine", "/srv/officine", s)))
            .collect()
    }

    /// The positions of the kept snapshots, ascending.
    fn kept(decisions: &[Decision]) -> Vec<usize> {
        decisions
            .iter()
            .enumerate()
            .filter(|(_, d)| d.keep)
            .map(|(n, _)| n)
            .collect()
    }

    fn reasons(d: &Decision) -> Vec<String> {
        d.reasons.iter().map(ToString::to_string).collect()
    }

    fn run(policy: &Policy, snaps: &[(SnapshotId, Snapshot)]) -> Vec<Decision> {
        let out = apply(policy, snaps, Local::now()).unwrap();
        // One decision per input, in input order; reasons iff kept.
        assert_eq!(out.len(), snaps.len());
        for (d, (i, _)) in out.iter().zip(snaps) {
            assert_eq!(d.id, *i);
            assert_eq!(d.keep, !d.reasons.is_empty());
        }
        out
    }

    fn daily(n: u32) -> Policy {
        Policy {
            keep_daily: Some(n),
            ..Policy::default()
        }
    }

    #[test]
    fn empty_policy_is_refused() {
        let snaps = group(&[utc(2026, 11, 24, 12, 0)]);
        let empty = Policy::default();
        assert!(empty.is_empty());
        assert_eq!(apply(&empty, &snaps, Local::now()), Err(PolicyError::Empty));
        assert_eq!(apply(&empty, &[], Local::now()), Err(PolicyError::Empty));
        let zeros = Policy {
            keep_last: Some(0),
            keep_daily: Some(0),
            keep_weekly: Some(0),
            keep_monthly: Some(0),
            keep_yearly: Some(0),
            keep_within: Some(Duration::default()),
        };
        assert!(zeros.is_empty());
        assert_eq!(apply(&zeros, &snaps, Local::now()), Err(PolicyError::Empty));
        assert!(!daily(1).is_empty());
        assert_eq!(apply(&daily(1), &[], Local::now()), Ok(vec![]));
    }

    #[test]
    fn parse_within_accepts_restic_forms() {
        let p = |s| Policy::parse_within(s).unwrap();
        let d = |years, months, days, hours| Duration {
            years,
            months,
            days,
            hours,
        };
        assert_eq!(p("14d"), d(0, 0, 14, 0));
        assert_eq!(p("2w"), d(0, 0, 14, 0));
        assert_eq!(p("1m"), d(0, 1, 0, 0));
        assert_eq!(p("1y5m7d2h"), d(1, 5, 7, 2));
        assert_eq!(p("2h1y"), d(1, 0, 0, 2));
        assert_eq!(p("1w3d"), d(0, 0, 10, 0));
        assert_eq!(p(" 36h "), d(0, 0, 0, 36));
        assert_eq!("6m".parse::<Duration>().unwrap(), d(0, 6, 0, 0));
        assert_eq!(p("1y5m7d2h").to_string(), "1y5m7d2h");
        assert_eq!(p("2w").to_string(), "14d");
        for bad in [
            "",
            "5",
            "d",
            "3x",
            "1d1d",
            "0d",
            "0y0m",
            "-1d",
            "1.5d",
            "1D",
            "99999999999d",
            "700000000w",
        ] {
            assert!(
                matches!(
                    Policy::parse_within(bad),
                    Err(PolicyError::InvalidWithin { .. })
                ),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn describe_lists_rules_in_order() {
        assert_eq!(Policy::default().describe(), "no rule");
        let p = Policy {
            keep_daily: Some(7),
            keep_weekly: Some(5),
            ..Policy::default()
        };
        assert_eq!(p.describe(), "keep-daily 7, keep-weekly 5");
        let p = Policy {
            keep_last: Some(3),
            keep_daily: Some(7),
            keep_weekly: Some(5),
            keep_monthly: Some(12),
            keep_yearly: Some(5),
            keep_within: Some(Policy::parse_within("1y6m").unwrap()),
        };
        assert_eq!(
            p.to_string(),
            "keep-last 3, keep-daily 7, keep-weekly 5, keep-monthly 12, keep-yearly 5, \
             keep-within 1y6m"
        );
    }

    fn arb_policy() -> impl Strategy<Value = Policy> {
        let dur = (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
            |(years, months, days, hours)| Duration {
                years,
                months,
                days,
                hours,
            },
        );
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(dur),
        )
            .prop_map(|(l, d, w, m, y, within)| Policy {
                keep_last: l,
                keep_daily: d,
                keep_weekly: w,
                keep_monthly: m,
                keep_yearly: y,
                keep_within: within,
            })
    }

    proptest! {
        #[test]
        fn encoding_round_trips(p in arb_policy()) {
            let bytes = p.encode();
            prop_assert_eq!(bytes[0], 1);
            prop_assert_eq!(&p.encode(), &bytes);
            prop_assert_eq!(Policy::decode(&bytes).unwrap(), p);
        }
    }

    #[test]
    fn decoding_refuses_bad_records() {
        let p = Policy {
            keep_daily: Some(7),
            keep_within: Some(Duration {
                days: 14,
                ..Duration::default()
            }),
            ..Policy::default()
        };
        let bytes = p.encode();
        assert_eq!(bytes, [1, 0, 1, 7, 0, 0, 0, 1, 0, 0, 14, 0]);
        let mut newer = bytes.clone();
        newer[0] = 2;
        assert!(matches!(
            Policy::decode(&newer),
            Err(DecodeError::NewerVersion(_, 2))
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Policy::decode(&trailing), Err(DecodeError::Trailing));
        assert_eq!(
            Policy::decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Truncated)
        );
        let mut flag = bytes.clone();
        flag[1] = 2;
        assert!(matches!(
            Policy::decode(&flag),
            Err(DecodeError::Invalid(_))
        ));
        assert!(Policy::decode(&[]).is_err());
    }

    #[test]
    fn dst_spring_forward_keeps_one_day() {
        let _tz = paris();
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST.
        let snaps = group(&[
            utc(2026, 3, 28, 11, 0), // 0: 2026-03-28 12:00 CET
            utc(2026, 3, 29, 0, 30), // 1: 2026-03-29 01:30 CET
            utc(2026, 3, 29, 1, 30), // 2: 2026-03-29 03:30 CEST
        ]);
        let out = run(&daily(1), &snaps);
        assert_eq!(kept(&out), [2]);
        assert_eq!(reasons(&out[2]), ["daily 2026-03-29", "newest"]);
        assert_eq!(kept(&run(&daily(2), &snaps)), [0, 2]);
    }

    #[test]
    fn dst_autumn_fold_keeps_one_day() {
        let _tz = paris();
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let snaps = group(&[
            utc(2026, 10, 24, 22, 30), // 0: 2026-10-25 00:30 CEST
            utc(2026, 10, 25, 0, 30),  // 1: 2026-10-25 02:30 CEST
            utc(2026, 10, 25, 1, 30),  // 2: 2026-10-25 02:30 CET, 1 h later
            utc(2026, 10, 25, 22, 59), // 3: 2026-10-25 23:59 CET
            utc(2026, 10, 25, 23, 1),  // 4: 2026-10-26 00:01 CET
        ]);
        let out = run(&daily(2), &snaps);
        assert_eq!(kept(&out), [3, 4]);
        assert_eq!(reasons(&out[3]), ["daily 2026-10-25"]);
        // Without 3 and 4, the fold's two snapshots still share a day.
        let out = run(&daily(1), &snaps[..3]);
        assert_eq!(kept(&out), [2]);
        assert_eq!(kept(&run(&daily(2), &snaps[..3])), [2]);
    }

    #[test]
    fn midnight_splits_days_in_local_time() {
        let _tz = paris();
        let snaps = group(&[
            utc(2026, 11, 23, 22, 59), // 0: 2026-11-23 23:59 Paris
            utc(2026, 11, 23, 23, 1),  // 1: 2026-11-24 00:01 Paris
            utc(2026, 11, 24, 22, 0),  // 2: 2026-11-24 23:00 Paris
            utc(2026, 11, 24, 23, 30), // 3: 2026-11-25 00:30 Paris (23:30 UTC)
        ]);
        let out = run(&daily(3), &snaps);
        assert_eq!(kept(&out), [0, 2, 3]);
        assert_eq!(reasons(&out[3]), ["daily 2026-11-25", "newest"]);
        assert_eq!(reasons(&out[2]), ["daily 2026-11-24"]);
        assert_eq!(reasons(&out[0]), ["daily 2026-11-23"]);
        assert_eq!(kept(&run(&daily(1), &snaps)), [3]);
        assert_eq!(kept(&run(&daily(4), &snaps)), [0, 2, 3]);
        // 23:59 and 00:01 on consecutive days: two buckets.
        assert_eq!(kept(&run(&daily(2), &snaps[..2])), [0, 1]);
    }

    #[test]
    fn iso_week_53_and_year_boundary() {
        let _tz = paris();
        // Noon in Paris (11:00 UTC in winter).
        let snaps = group(&[
            utc(2026, 12, 27, 11, 0), // 0: Sun, 2026-W52
            utc(2026, 12, 28, 11, 0), // 1: Mon, 2026-W53
            utc(2026, 12, 31, 11, 0), // 2: Thu, 2026-W53
            utc(2027, 1, 1, 11, 0),   // 3: Fri, 2026-W53
            utc(2027, 1, 3, 11, 0),   // 4: Sun, 2026-W53
            utc(2027, 1, 4, 11, 0),   // 5: Mon, 2027-W01
        ]);
        let weekly = Policy {
            keep_weekly: Some(3),
            ..Policy::default()
        };
        let out = run(&weekly, &snaps);
        assert_eq!(kept(&out), [0, 4, 5]);
        assert_eq!(reasons(&out[5]), ["weekly 2027-W01", "newest"]);
        assert_eq!(reasons(&out[4]), ["weekly 2026-W53"]);
        assert_eq!(reasons(&out[0]), ["weekly 2026-W52"]);

        let calendar = Policy {
            keep_monthly: Some(2),
            keep_yearly: Some(2),
            ..Policy::default()
        };
        let out = run(&calendar, &snaps);
        assert_eq!(kept(&out), [2, 5]);
        assert_eq!(reasons(&out[2]), ["monthly 2026-12", "yearly 2026"]);
        assert_eq!(
            reasons(&out[5]),
            ["monthly 2027-01", "yearly 2027", "newest"]
        );

        // New Year's Eve 23:30 UTC is already 2027 in Paris.
        let eve = group(&[utc(2026, 12, 31, 22, 30), utc(2026, 12, 31, 23, 30)]);
        let yearly = Policy {
            keep_yearly: Some(5),
            ..Policy::default()
        };
        let out = run(&yearly, &eve);
        assert_eq!(kept(&out), [0, 1]);
        assert_eq!(reasons(&out[0]), ["yearly 2026"]);
        assert_eq!(reasons(&out[1]), ["yearly 2027", "newest"]);
    }

    #[test]
    fn leap_day_is_its_own_day_in_february() {
        let _tz = paris();
        let snaps = group(&[
            utc(2028, 2, 28, 11, 0), // 0
            utc(2028, 2, 29, 8, 0),  // 1
            utc(2028, 2, 29, 11, 0), // 2
            utc(2028, 3, 1, 11, 0),  // 3
        ]);
        let out = run(&daily(3), &snaps);
        assert_eq!(kept(&out), [0, 2, 3]);
        assert_eq!(reasons(&out[2]), ["daily 2028-02-29"]);
        let monthly = Policy {
            keep_monthly: Some(2),
            ..Policy::default()
        };
        let out = run(&monthly, &snaps);
        assert_eq!(kept(&out), [2, 3]);
        assert_eq!(reasons(&out[2]), ["monthly 2028-02"]);
        assert_eq!(reasons(&out[3]), ["monthly 2028-03", "newest"]);
    }

    #[test]
    fn labels_and_sources_are_independent_groups() {
        let _tz = paris();
        let snaps = vec![
            (
                id(0),
                snap_in("officine", "/srv/officine", utc(2026, 11, 20, 19, 0)),
            ),
            (
                id(1),
                snap_in("officine", "/srv/officine", utc(2026, 11, 24, 19, 0)),
            ),
            (
                id(2),
                snap_in("compta", "/srv/compta", utc(2026, 1, 10, 19, 0)),
            ),
            (
                id(3),
                snap_in("compta", "/srv/compta", utc(2026, 1, 11, 19, 0)),
            ),
            (
                id(4),
                snap_in("officine", "/srv/autre", utc(2026, 11, 1, 19, 0)),
            ),
            (
                id(5),
                snap_in("officine", "/srv/officine", utc(2026, 11, 24, 20, 0)),
            ),
        ];
        let last = Policy {
            keep_last: Some(1),
            ..Policy::default()
        };
        let out = run(&last, &snaps);
        assert_eq!(kept(&out), [3, 4, 5]);
        assert_eq!(reasons(&out[3]), ["last", "newest"]);
        let out = run(&daily(2), &snaps);
        assert_eq!(kept(&out), [0, 2, 3, 4, 5]);
        assert_eq!(reasons(&out[4]), ["daily 2026-11-01", "newest"]);
    }

    #[test]
    fn keep_last_keeps_the_n_newest() {
        let _tz = paris();
        // Five snapshots the same day, given out of order.
        let snaps = group(&[
            utc(2026, 11, 24, 10, 0),
            utc(2026, 11, 24, 14, 0),
            utc(2026, 11, 24, 8, 0),
            utc(2026, 11, 24, 12, 0),
            utc(2026, 11, 24, 9, 0),
        ]);
        let last = Policy {
            keep_last: Some(3),
            ..Policy::default()
        };
        let out = run(&last, &snaps);
        assert_eq!(kept(&out), [0, 1, 3]);
        assert_eq!(reasons(&out[1]), ["last", "newest"]);
        assert_eq!(reasons(&out[0]), ["last"]);
        let many = Policy {
            keep_last: Some(10),
            ..Policy::default()
        };
        assert_eq!(kept(&run(&many, &snaps)), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn keep_within_counts_from_the_newest_on_the_calendar() {
        let _tz = paris();
        // Daily at 20:00 Paris, 2026-11-01..2026-11-20; `now` is months later.
        let snaps = group(
            &(1..=20)
                .map(|d| utc(2026, 11, d, 19, 0))
                .collect::<Vec<_>>(),
        );
        let within = |s| Policy {
            keep_within: Some(Policy::parse_within(s).unwrap()),
            ..Policy::default()
        };
        let later = Utc
            .with_ymd_and_hms(2027, 6, 1, 0, 0, 0)
            .unwrap()
            .with_timezone(&Local);
        let out = apply(&within("7d"), &snaps, later).unwrap();
        // Cutoff 2026-11-13 20:00 exactly: that one is not strictly newer.
        assert_eq!(kept(&out), (13..20).collect::<Vec<_>>());
        assert_eq!(reasons(&out[19]), ["within", "newest"]);
        assert_eq!(reasons(&out[13]), ["within"]);
        assert_eq!(
            kept(&run(&within("1w1h"), &snaps)),
            (12..20).collect::<Vec<_>>()
        );
        assert_eq!(
            kept(&run(&within("1y"), &snaps)),
            (0..20).collect::<Vec<_>>()
        );
        assert_eq!(
            kept(&run(&within("4294967295y"), &snaps)),
            (0..20).collect::<Vec<_>>()
        );

        // Across the spring change one calendar day is 23 hours.
        let spring = group(&[
            utc(2026, 3, 28, 10, 30), // 0: 2026-03-28 11:30 CET
            utc(2026, 3, 28, 11, 30), // 1: 2026-03-28 12:30 CET
            utc(2026, 3, 29, 10, 0),  // 2: 2026-03-29 12:00 CEST
        ]);
        // 1d: cutoff 2026-03-28 12:00 CET (11:00 UTC), 23 hours back.
        assert_eq!(kept(&run(&within("1d"), &spring)), [1, 2]);
        // 24h: cutoff 2026-03-28 11:00 CET (10:00 UTC).
        assert_eq!(kept(&run(&within("24h"), &spring)), [0, 1, 2]);

        // One month before 31 March 2028 is clamped to 29 February 2028.
        let leap = group(&[
            utc(2028, 2, 29, 10, 59), // 0: 2028-02-29 11:59 CET
            utc(2028, 2, 29, 11, 1),  // 1: 2028-02-29 12:01 CET
            utc(2028, 3, 31, 10, 0),  // 2: 2028-03-31 12:00 CEST
        ]);
        assert_eq!(kept(&run(&within("1m"), &leap)), [1, 2]);
    }

    #[test]
    fn cutoff_in_a_dst_gap_or_fold_keeps_more() {
        let _tz = paris();
        // 2026-03-30 02:30 CEST minus one day is 02:30 on 29 March, which
        // does not exist: the cutoff moves back to the change, 2026-03-29
        // 02:00 CET = 03:00 CEST = 01:00 UTC (or the minute before it).
        let newest = Utc
            .with_ymd_and_hms(2026, 3, 30, 0, 30, 0)
            .unwrap()
            .with_timezone(&Local);
        let d = Policy::parse_within("1d").unwrap();
        let c = d.cutoff(newest).unwrap();
        let change = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap();
        let c = c.with_timezone(&Utc);
        assert!(c <= change && c >= change - TimeDelta::try_minutes(1).unwrap());
        // In the autumn fold the earlier of the two instants is taken.
        let newest = Utc
            .with_ymd_and_hms(2026, 10, 26, 1, 30, 0)
            .unwrap()
            .with_timezone(&Local); // 2026-10-26 02:30 CET
        let c = d.cutoff(newest).unwrap();
        assert_eq!(
            c.with_timezone(&Utc),
            Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap()
        );
    }

    #[test]
    fn combined_rules_list_every_reason() {
        let _tz = paris();
        let snaps = group(&[
            utc(2026, 10, 31, 19, 0), // 0: Sat 2026-10-31, W44
            utc(2026, 11, 22, 19, 0), // 1: Sun 2026-11-22, W47
            utc(2026, 11, 24, 7, 0),  // 2: Tue 2026-11-24 08:00, W48
            utc(2026, 11, 24, 19, 0), // 3: Tue 2026-11-24 20:00, W48
        ]);
        let p = Policy {
            keep_last: Some(1),
            keep_daily: Some(2),
            keep_weekly: Some(2),
            keep_monthly: Some(2),
            keep_yearly: Some(1),
            keep_within: Some(Policy::parse_within("1d").unwrap()),
        };
        let out = run(&p, &snaps);
        assert_eq!(kept(&out), [0, 1, 2, 3]);
        assert_eq!(
            reasons(&out[3]),
            [
                "last",
                "daily 2026-11-24",
                "weekly 2026-W48",
                "monthly 2026-11",
                "yearly 2026",
                "within",
                "newest"
            ]
        );
        assert_eq!(reasons(&out[2]), ["within"]);
        assert_eq!(reasons(&out[1]), ["daily 2026-11-22", "weekly 2026-W47"]);
        assert_eq!(reasons(&out[0]), ["monthly 2026-10"]);
    }

    #[test]
    fn thirty_days_daily_7_weekly_4() {
        let _tz = paris();
        // 2026-11-01 (Sun) .. 2026-11-30 (Mon), 20:00 Paris; position = day - 1.
        let snaps = group(
            &(1..=30)
                .map(|d| utc(2026, 11, d, 19, 0))
                .collect::<Vec<_>>(),
        );
        let p = Policy {
            keep_daily: Some(7),
            keep_weekly: Some(4),
            ..Policy::default()
        };
        let out = run(&p, &snaps);
        let days: Vec<usize> = kept(&out).iter().map(|n| n + 1).collect();
        // Daily: 24..30. Weekly: 30 (W49), 29 (W48), 22 (W47), 15 (W46).
        assert_eq!(days, [15, 22, 24, 25, 26, 27, 28, 29, 30]);
        assert_eq!(
            reasons(&out[29]),
            ["daily 2026-11-30", "weekly 2026-W49", "newest"]
        );
        assert_eq!(reasons(&out[28]), ["daily 2026-11-29", "weekly 2026-W48"]);
        assert_eq!(reasons(&out[21]), ["weekly 2026-W47"]);
        assert_eq!(reasons(&out[14]), ["weekly 2026-W46"]);
        assert_eq!(reasons(&out[23]), ["daily 2026-11-24"]);
    }

    /// 20:00 local time on `d`, in seconds.
    fn evening(d: NaiveDate) -> i64 {
        Local
            .from_local_datetime(&d.and_hms_opt(20, 0, 0).unwrap())
            .unwrap()
            .timestamp()
    }

    #[test]
    fn a_year_of_pharmacy_policy() {
        let _tz = paris();
        // One snapshot every evening of 2026 at 20:00 Paris (the example of
        // docs/RETENTION.md).
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let dates: Vec<NaiveDate> = start.iter_days().take(365).collect();
        let snaps = group(&dates.iter().map(|d| evening(*d)).collect::<Vec<_>>());
        let p = Policy {
            keep_daily: Some(7),
            keep_weekly: Some(5),
            keep_monthly: Some(12),
            keep_yearly: Some(5),
            ..Policy::default()
        };
        let out = run(&p, &snaps);
        let left: Vec<String> = kept(&out)
            .iter()
            .map(|&n| dates[n].format("%m-%d").to_string())
            .collect();
        assert_eq!(
            left,
            [
                "01-31", "02-28", "03-31", "04-30", "05-31", "06-30", "07-31", "08-31", "09-30",
                "10-31", "11-30", "12-06", "12-13", "12-20", "12-25", "12-26", "12-27", "12-28",
                "12-29", "12-30", "12-31",
            ]
        );
        assert_eq!(
            reasons(&out[364]),
            [
                "daily 2026-12-31",
                "weekly 2026-W53",
                "monthly 2026-12",
                "yearly 2026",
                "newest"
            ]
        );
        assert_eq!(reasons(&out[333]), ["monthly 2026-11"]); // 30 November
        assert_eq!(reasons(&out[339]), ["weekly 2026-W49"]); // 6 December

        // Five years, 2026-01-01 .. 2030-12-31: 25 snapshots remain, among
        // them the last one of 2026, 2027, 2028 and 2029.
        let dates: Vec<NaiveDate> = start.iter_days().take_while(|d| d.year() <= 2030).collect();
        let snaps = group(&dates.iter().map(|d| evening(*d)).collect::<Vec<_>>());
        let out = run(&p, &snaps);
        let left: Vec<NaiveDate> = kept(&out).iter().map(|&n| dates[n]).collect();
        assert_eq!(left.len(), 25);
        let before_2030: Vec<String> = left
            .iter()
            .filter(|d| d.year() < 2030)
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            before_2030,
            ["2026-12-31", "2027-12-31", "2028-12-31", "2029-12-31"]
        );
    }
}
