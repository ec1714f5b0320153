//! Customers' time zones: a billing day starts at the customer's midnight.
//!
//! Billing dates and periods are civil days (`Day`); a zone only maps a day
//! to the instant it starts, for the usage window a period covers and for
//! "has this date begun". The zone database is compiled into `tallyd`, so a
//! zone means the same on every machine. An invoice records the instants it
//! used (`usage_from`, `usage_to`): an auditor needs no zone data.

use crate::metering::aggregate::Window;
use jiff::tz::TimeZone;
use tally_core::calendar::{Day, Period};

/// A minute in nanoseconds: stored usage is kept per minute, so a window
/// must start and end on one.
const MINUTE_NS: i64 = 60_000_000_000;

/// The zone named `name` (an IANA name such as `Europe/Berlin`, or `UTC`).
pub fn zone(name: &str) -> Result<TimeZone, String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("{name:?} is not a time zone name"));
    }
    TimeZone::get(name).map_err(|_| format!("{name:?} is not a known IANA time zone"))
}

/// The instant `day` starts in `zone`, in nanoseconds since the epoch. A
/// midnight that a clock change skips starts at the first instant after it.
pub fn day_start(day: Day, zone: &TimeZone) -> Option<i64> {
    let (year, month, day_of_month) = day.ymd()?;
    let date = jiff::civil::Date::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day_of_month).ok()?,
    )
    .ok()?;
    let zoned = date.to_zoned_datetime(zone.clone()).ok()?;
    i64::try_from(zoned.timestamp().as_nanosecond()).ok()
}

/// The instants `period`'s days cover in `zone`.
pub fn period_window(period: Period, zone: &TimeZone) -> Option<Window> {
    let from = day_start(period.start, zone)?;
    let to = day_start(period.end, zone)?;
    if from % MINUTE_NS != 0 || to % MINUTE_NS != 0 {
        return None;
    }
    Window::new(from, to).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> Day {
        text.parse().unwrap()
    }

    #[test]
    fn a_day_starts_at_local_midnight() {
        // 2026-10-01 00:00 in Berlin (summer time, UTC+2) is Sep 30 22:00 UTC.
        let berlin = zone("Europe/Berlin").unwrap();
        let utc = zone("UTC").unwrap();
        let october = day("2026-10-01");
        assert_eq!(
            day_start(october, &utc).unwrap() - day_start(october, &berlin).unwrap(),
            2 * 3_600_000_000_000
        );
        // October in Berlin has 31 days and one extra hour (Oct 25, back to
        // UTC+1).
        let window = period_window(
            Period {
                start: october,
                end: day("2026-11-01"),
            },
            &berlin,
        )
        .unwrap();
        assert_eq!(
            window.to() - window.from(),
            (31 * 24 + 1) * 3_600_000_000_000
        );
    }

    #[test]
    fn unknown_zones_are_refused() {
        assert!(zone("Mars/Olympus").is_err());
        assert!(zone("").is_err());
        assert!(zone("America/Sao_Paulo").is_ok());
    }
}
