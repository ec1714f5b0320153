//! Windowed series for dashboards: a meter's aggregates per bucket of a
//! minute, an hour or a day over a window `[from, to)`.
//!
//! Buckets are aligned to the Unix epoch in UTC (a day is 86,400 s; Unix time
//! has no leap seconds): a bucket is `[k * width, (k + 1) * width)`. The first
//! and last buckets are clipped to the window, so that the buckets partition
//! it exactly and their aggregates merge into the window's.
//!
//! Every bucket of the window is listed (explicit buckets, at most
//! [`SERIES_BUCKETS_MAX`]); within a bucket, only the customers and groups
//! with at least one counted event appear (a dashboard draws the others as
//! zero). The series is built from one [`Aggregates`] partial per bucket, and
//! each bucket equals [`aggregate_scan`](super::aggregate::aggregate_scan) over
//! that bucket's window.

use super::aggregate::{Aggregate, AggregateError, Aggregates, GroupKey, Window};
use super::event::MeteredEvent;
use std::collections::BTreeMap;
use tally_core::entry::TimestampNs;
use tally_core::meter::MeterSpec;

/// The most buckets a series may have (a week of minutes is 10,080).
pub const SERIES_BUCKETS_MAX: u64 = 10_080;

/// One minute in nanoseconds: the grain of stored usage.
pub const MINUTE_NS: i64 = 60 * 1_000_000_000;

/// The width of a series' buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BucketWidth {
    Minute,
    Hour,
    Day,
}

impl BucketWidth {
    pub fn nanos(self) -> i64 {
        match self {
            BucketWidth::Minute => MINUTE_NS,
            BucketWidth::Hour => 60 * MINUTE_NS,
            BucketWidth::Day => 24 * 60 * MINUTE_NS,
        }
    }

    /// The start of the aligned bucket holding `timestamp` (in i128: the
    /// bucket of a timestamp near `i64::MIN` starts before it).
    fn align(self, timestamp: TimestampNs) -> i128 {
        let width = i128::from(self.nanos());
        let timestamp = i128::from(timestamp);
        timestamp - timestamp.rem_euclid(width)
    }
}

/// One bucket of a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// The bucket's span: the aligned bucket clipped to the series' window.
    pub window: Window,
    pub groups: BTreeMap<GroupKey, Aggregate>,
}

/// A meter's aggregates per bucket over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub meter: String,
    pub window: Window,
    pub width: BucketWidth,
    /// Every bucket of the window, in time order.
    pub buckets: Vec<Bucket>,
}

/// The buckets of `window`, in time order: aligned to the epoch, the first
/// and last clipped to the window.
pub fn bucket_windows(window: Window, width: BucketWidth) -> Result<Vec<Window>, AggregateError> {
    let first = width.align(window.from());
    let last = width.align(window.to() - 1);
    let nanos = i128::from(width.nanos());
    let buckets = (last - first) / nanos + 1;
    if buckets > i128::from(SERIES_BUCKETS_MAX) {
        return Err(AggregateError::TooManyBuckets {
            buckets: buckets as u128,
            max: SERIES_BUCKETS_MAX,
        });
    }
    let mut windows = Vec::with_capacity(buckets as usize);
    let mut start = first;
    while start <= last {
        let from = start.max(i128::from(window.from()));
        let to = (start + nanos).min(i128::from(window.to()));
        // Both lie within the window's i64 bounds after clipping.
        windows.push(Window::new(from as TimestampNs, to as TimestampNs)?);
        start += nanos;
    }
    debug_assert_eq!(windows.first().map(Window::from), Some(window.from()));
    debug_assert_eq!(windows.last().map(Window::to), Some(window.to()));
    Ok(windows)
}

/// One partial per bucket of `window`, in time order, each holding the
/// events of its bucket.
pub fn series_partials<'a>(
    meter: &MeterSpec,
    events: impl IntoIterator<Item = &'a MeteredEvent>,
    window: Window,
    width: BucketWidth,
) -> Result<Vec<Aggregates>, AggregateError> {
    let mut partials: Vec<Aggregates> = bucket_windows(window, width)?
        .into_iter()
        .map(|bucket| Aggregates::new(meter, bucket))
        .collect();
    let first = width.align(window.from());
    for event in events {
        if !window.contains(event.timestamp) {
            continue;
        }
        let index = (width.align(event.timestamp) - first) / i128::from(width.nanos());
        let partial = &mut partials[index as usize];
        debug_assert!(partial.window().contains(event.timestamp));
        partial.add(event);
    }
    Ok(partials)
}

/// The series of `meter` over `window`, from its bucket partials.
pub fn series<'a>(
    meter: &MeterSpec,
    events: impl IntoIterator<Item = &'a MeteredEvent>,
    window: Window,
    width: BucketWidth,
) -> Result<Series, AggregateError> {
    let buckets = series_partials(meter, events, window, width)?
        .iter()
        .map(|partial| {
            let result = partial.result()?;
            Ok(Bucket {
                window: result.window,
                groups: result.groups,
            })
        })
        .collect::<Result<Vec<Bucket>, AggregateError>>()?;
    Ok(Series {
        meter: meter.code.clone(),
        window,
        width,
        buckets,
    })
}

/// The aggregates of the whole window, by merging bucket partials in order.
pub fn merge_partials(partials: Vec<Aggregates>) -> Result<Option<Aggregates>, AggregateError> {
    let mut partials = partials.into_iter();
    let Some(mut total) = partials.next() else {
        return Ok(None);
    };
    for partial in partials {
        total.merge(partial)?;
    }
    Ok(Some(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::aggregate::aggregate_scan;
    use crate::metering::reference::{metered, meters, streams, windows};
    use proptest::prelude::*;
    use tally_core::meter::Aggregation;

    const SECOND: i64 = 1_000_000_000;

    fn spans(windows: &[Window]) -> Vec<(i64, i64)> {
        windows
            .iter()
            .map(|window| (window.from(), window.to()))
            .collect()
    }

    #[test]
    fn buckets_align_to_the_epoch_and_clip_to_the_window() {
        // Goal: minute buckets start on whole minutes since the epoch (negative times too),
        // the first and last are clipped, and together they cover the window exactly.
        let window = Window::new(-90 * SECOND, 61 * SECOND).unwrap();
        let buckets = bucket_windows(window, BucketWidth::Minute).unwrap();
        assert_eq!(
            spans(&buckets),
            [
                (-90 * SECOND, -60 * SECOND),
                (-60 * SECOND, 0),
                (0, 60 * SECOND),
                (60 * SECOND, 61 * SECOND)
            ]
        );
        let day = Window::new(0, 86_400 * SECOND).unwrap();
        assert_eq!(
            spans(&bucket_windows(day, BucketWidth::Day).unwrap()),
            [(0, 86_400 * SECOND)]
        );
        assert_eq!(bucket_windows(day, BucketWidth::Hour).unwrap().len(), 24);
        let extreme = Window::new(i64::MIN, i64::MIN + 1).unwrap();
        assert_eq!(
            spans(&bucket_windows(extreme, BucketWidth::Day).unwrap()),
            [(i64::MIN, i64::MIN + 1)]
        );
    }

    #[test]
    fn bucket_count_is_bounded() {
        // Goal: SERIES_BUCKETS_MAX buckets are allowed, one more is refused.
        let minute = BucketWidth::Minute.nanos();
        let limit = SERIES_BUCKETS_MAX as i64;
        assert!(
            bucket_windows(Window::new(0, limit * minute).unwrap(), BucketWidth::Minute).is_ok()
        );
        assert!(matches!(
            bucket_windows(
                Window::new(0, limit * minute + 1).unwrap(),
                BucketWidth::Minute
            ),
            Err(AggregateError::TooManyBuckets { .. })
        ));
        let everything = Window::new(i64::MIN, i64::MAX).unwrap();
        assert!(matches!(
            bucket_windows(everything, BucketWidth::Day),
            Err(AggregateError::TooManyBuckets { .. })
        ));
    }

    #[test]
    fn empty_buckets_are_listed_without_groups() {
        // Goal: every bucket of the window is present; a bucket without events has no groups.
        let meter = MeterSpec {
            code: "usage".into(),
            aggregation: Aggregation::Count,
            value_property: None,
            filters: Default::default(),
            group_by: vec![],
            grace_period_seconds: 0,
        };
        let event = MeteredEvent {
            meter: "usage".into(),
            customer: "c".into(),
            timestamp: 150 * SECOND,
            event_id: "e".into(),
            group: vec![],
            observation: crate::metering::event::Observation::Occurrence,
        };
        let window = Window::new(0, 180 * SECOND).unwrap();
        let series = series(&meter, [&event], window, BucketWidth::Minute).unwrap();
        let counts: Vec<usize> = series
            .buckets
            .iter()
            .map(|bucket| bucket.groups.len())
            .collect();
        assert_eq!(counts, [0, 0, 1]);
    }

    proptest! {
        #[test]
        fn buckets_equal_scans_and_merge_into_the_window(
            meter in meters(),
            events in streams(),
            (from, to) in windows(),
            width in prop_oneof![Just(BucketWidth::Minute), Just(BucketWidth::Hour), Just(BucketWidth::Day)],
        ) {
            // Goal: each bucket equals a scan of its own window, and the bucket partials
            // merged in order equal a scan of the whole window.
            let window = Window::new(from, to).unwrap();
            let metered = metered(&meter, &events);
            let series = series(&meter, &metered, window, width).unwrap();
            prop_assert_eq!(series.buckets.first().unwrap().window.from(), from);
            prop_assert_eq!(series.buckets.last().unwrap().window.to(), to);
            for bucket in &series.buckets {
                let scan = aggregate_scan(&meter, &metered, bucket.window).unwrap();
                prop_assert_eq!(&bucket.groups, &scan.groups);
            }
            let partials = series_partials(&meter, &metered, window, width).unwrap();
            let total = merge_partials(partials).unwrap().unwrap();
            prop_assert_eq!(total.result().unwrap(), aggregate_scan(&meter, &metered, window).unwrap());
        }
    }
}
