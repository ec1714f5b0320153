//! Calendar days and billing intervals.
//!
//! A [`Day`] is a civil date (proleptic Gregorian, no time zone), counted as
//! days since 1970-01-01 in the journal and written `YYYY-MM-DD` in documents.
//! A [`BillingInterval`] cuts time into periods anchored to a day: monthly
//! from the 31st runs Jan 31, Feb 28 (29), Mar 31, ..., always from the
//! anchor's day of month, clamped to the month's last day.

use bincode::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use time::{Date, Month};

/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;
/// Nanoseconds in a day.
pub const DAY_NS: i64 = 86_400_000_000_000;

/// A civil date, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Day(pub i32);

impl Day {
    /// Year 1 to year 9999: every day `time` and a `YYYY-MM-DD` text can name.
    pub fn from_ymd(year: i32, month: u8, day: u8) -> Option<Day> {
        if !(1..=9999).contains(&year) {
            return None;
        }
        let month = Month::try_from(month).ok()?;
        let date = Date::from_calendar_date(year, month, day).ok()?;
        Some(Day(date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY))
    }

    fn date(self) -> Option<Date> {
        Date::from_julian_day(self.0.checked_add(UNIX_EPOCH_JULIAN_DAY)?).ok()
    }

    /// (year, month, day), or None outside the supported years.
    pub fn ymd(self) -> Option<(i32, u8, u8)> {
        let date = self.date()?;
        Some((date.year(), date.month() as u8, date.day()))
    }

    /// The first nanosecond of the day, UTC, or None if out of range.
    pub fn start_ns(self) -> Option<i64> {
        i64::from(self.0).checked_mul(DAY_NS)
    }

    /// Days from `self` to `later` (negative if `later` is earlier).
    pub fn days_until(self, later: Day) -> i64 {
        i64::from(later.0) - i64::from(self.0)
    }

    /// The day `months` calendar months after `anchor`'s month, on the
    /// anchor's day of month clamped to that month's length.
    fn add_months(self, months: i64) -> Option<Day> {
        let (year, month, day) = self.ymd()?;
        let index = i64::from(year) * 12 + i64::from(month - 1) + months;
        let year = i32::try_from(index.div_euclid(12)).ok()?;
        let month = u8::try_from(index.rem_euclid(12) + 1).ok()?;
        let last = time::util::days_in_month(Month::try_from(month).ok()?, year);
        Day::from_ymd(year, month, day.min(last))
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ymd() {
            Some((y, m, d)) => write!(f, "{y:04}-{m:02}-{d:02}"),
            None => write!(f, "day {}", self.0),
        }
    }
}

/// Why a day's text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a date of the form YYYY-MM-DD")]
pub struct DayParseError(pub String);

impl FromStr for Day {
    type Err = DayParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || DayParseError(text.to_string());
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(error());
        }
        let number = |range: std::ops::Range<usize>| -> Result<u32, DayParseError> {
            let part = &text[range];
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(error());
            }
            part.parse().map_err(|_| error())
        };
        let year = i32::try_from(number(0..4)?).map_err(|_| error())?;
        let month = u8::try_from(number(5..7)?).map_err(|_| error())?;
        let day = u8::try_from(number(8..10)?).map_err(|_| error())?;
        Day::from_ymd(year, month, day).ok_or_else(error)
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Day::from_str(&text).map_err(serde::de::Error::custom)
    }
}

/// An instant (nanoseconds since 1970-01-01 UTC) as RFC 3339 text, e.g.
/// `2026-11-01T10:00:00Z`, with the fraction of a second only when there is
/// one; for messages a person reads. Out of range: the nanoseconds.
pub fn instant_text(ns: i64) -> String {
    let day = ns.div_euclid(DAY_NS);
    let within = ns.rem_euclid(DAY_NS);
    let Some((year, month, day_of_month)) = i32::try_from(day).ok().and_then(|d| Day(d).ymd())
    else {
        return format!("{ns} ns");
    };
    let seconds = within / 1_000_000_000;
    let fraction = within % 1_000_000_000;
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut text = format!("{year:04}-{month:02}-{day_of_month:02}T{h:02}:{m:02}:{s:02}");
    if fraction != 0 {
        let digits = format!(".{fraction:09}");
        text.push_str(digits.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// How long a billing period is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum IntervalUnit {
    Weekly,
    Monthly,
    Quarterly,
    Yearly,
}

impl IntervalUnit {
    pub const ALL: [IntervalUnit; 4] = [
        IntervalUnit::Weekly,
        IntervalUnit::Monthly,
        IntervalUnit::Quarterly,
        IntervalUnit::Yearly,
    ];

    pub fn name(self) -> &'static str {
        match self {
            IntervalUnit::Weekly => "weekly",
            IntervalUnit::Monthly => "monthly",
            IntervalUnit::Quarterly => "quarterly",
            IntervalUnit::Yearly => "yearly",
        }
    }

    pub fn from_name(name: &str) -> Option<IntervalUnit> {
        IntervalUnit::ALL.into_iter().find(|u| u.name() == name)
    }

    fn months(self) -> Option<i64> {
        match self {
            IntervalUnit::Weekly => None,
            IntervalUnit::Monthly => Some(1),
            IntervalUnit::Quarterly => Some(3),
            IntervalUnit::Yearly => Some(12),
        }
    }
}

/// A billing interval: periods of `unit`, the first starting on `anchor`
/// (and the ones before it counted backwards from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
pub struct BillingInterval {
    pub unit: IntervalUnit,
    pub anchor: Day,
}

/// A half-open range of days `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Period {
    pub start: Day,
    pub end: Day,
}

impl Period {
    pub fn days(self) -> i64 {
        self.start.days_until(self.end)
    }

    pub fn contains(self, other: Period) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

impl BillingInterval {
    /// The start of period number `index` (0 starts at the anchor).
    fn period_start(self, index: i64) -> Option<Day> {
        match self.unit.months() {
            None => {
                let day = i64::from(self.anchor.0).checked_add(index.checked_mul(7)?)?;
                let day = Day(i32::try_from(day).ok()?);
                day.ymd().map(|_| day)
            }
            Some(months) => self.anchor.add_months(index.checked_mul(months)?),
        }
    }

    /// The period containing `day`, or None outside the supported years.
    pub fn period_containing(self, day: Day) -> Option<Period> {
        day.ymd()?;
        // An estimate from the average length, corrected by stepping.
        let average_days = match self.unit {
            IntervalUnit::Weekly => 7,
            IntervalUnit::Monthly => 30,
            IntervalUnit::Quarterly => 91,
            IntervalUnit::Yearly => 365,
        };
        let mut index = self.anchor.days_until(day).div_euclid(average_days);
        loop {
            let start = self.period_start(index)?;
            let end = self.period_start(index + 1)?;
            if day < start {
                index -= 1;
            } else if day >= end {
                index += 1;
            } else {
                return Some(Period { start, end });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(text: &str) -> Day {
        text.parse().unwrap()
    }

    fn period(start: &str, end: &str) -> Period {
        Period {
            start: day(start),
            end: day(end),
        }
    }

    #[test]
    fn days_read_and_print_alike() {
        assert_eq!(day("1970-01-01"), Day(0));
        assert_eq!(day("2026-10-01").to_string(), "2026-10-01");
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "26-10-01",
            "2026-1-01",
            "+026-10-01",
        ] {
            assert!(bad.parse::<Day>().is_err(), "{bad}");
        }
    }

    #[test]
    fn instants_read_as_rfc3339() {
        assert_eq!(instant_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            instant_text(1_793_527_200_000_000_000),
            "2026-11-01T10:00:00Z"
        );
        assert_eq!(instant_text(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(instant_text(1_500_000_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(instant_text(i64::MIN), "1677-09-21T00:12:43.145224192Z");
    }

    #[test]
    fn monthly_periods_clamp_the_anchor_to_short_months() {
        let interval = BillingInterval {
            unit: IntervalUnit::Monthly,
            anchor: day("2026-01-31"),
        };
        assert_eq!(
            interval.period_containing(day("2026-03-01")),
            Some(period("2026-02-28", "2026-03-31"))
        );
        assert_eq!(
            interval.period_containing(day("2025-12-31")),
            Some(period("2025-12-31", "2026-01-31"))
        );
    }

    #[test]
    fn weekly_quarterly_and_yearly_periods() {
        let weekly = BillingInterval {
            unit: IntervalUnit::Weekly,
            anchor: day("2026-11-02"),
        };
        assert_eq!(
            weekly.period_containing(day("2026-10-31")),
            Some(period("2026-10-26", "2026-11-02"))
        );
        let quarterly = BillingInterval {
            unit: IntervalUnit::Quarterly,
            anchor: day("2026-01-01"),
        };
        assert_eq!(
            quarterly.period_containing(day("2026-11-25")),
            Some(period("2026-10-01", "2027-01-01"))
        );
        let yearly = BillingInterval {
            unit: IntervalUnit::Yearly,
            anchor: day("2024-02-29"),
        };
        assert_eq!(
            yearly.period_containing(day("2025-06-01")),
            Some(period("2025-02-28", "2026-02-28"))
        );
    }

    proptest! {
        #[test]
        fn every_day_lies_in_exactly_its_period(
            anchor in -20_000i32..40_000,
            offset in -5_000i32..5_000,
            unit in prop::sample::select(IntervalUnit::ALL.to_vec()),
        ) {
            let interval = BillingInterval { unit, anchor: Day(anchor) };
            let day = Day(anchor + offset);
            let p = interval.period_containing(day).unwrap();
            prop_assert!(p.start <= day && day < p.end);
            let next = interval.period_containing(p.end).unwrap();
            prop_assert_eq!(next.start, p.end);
            prop_assert!((7..=366).contains(&p.days()));
        }
    }
}
