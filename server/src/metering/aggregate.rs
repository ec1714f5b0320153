//! Aggregation of one meter's metered events over a window `[from, to)` of
//! event timestamps, per customer and group-by values.
//!
//! Two ways to the same answer, which must always agree (tested against each
//! other and against a plain reference):
//! - [`aggregate_scan`]: one pass over raw events, grouped, then folded;
//! - [`Aggregates`]: an incremental state that takes events one at a time in
//!   any order and merges with other states (one per batch, or per bucket of a
//!   series), for stored aggregates.
//!
//! Every figure is exact and deterministic: decimals are normalized, sums never
//! round (overflow is an error), `latest` breaks timestamp ties by event id,
//! and results are ordered maps, so equal inputs give equal (and equally
//! serialised) results whatever the events' order.
//!
//! Aggregation does not deduplicate: an event id given twice counts twice.
//! Claiming ids exactly once is the ingestion's job, before events get here.

use super::event::{MeteredEvent, Observation};
use super::exact_sum::ExactSum;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use tally_core::entry::TimestampNs;
use tally_core::meter::{Aggregation, MeterSpec};

/// A half-open interval `[from, to)` of event timestamps, never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    from: TimestampNs,
    to: TimestampNs,
}

impl Window {
    /// The window `[from, to)`; `from < to`, or it is refused.
    pub fn new(from: TimestampNs, to: TimestampNs) -> Result<Window, AggregateError> {
        if from >= to {
            return Err(AggregateError::WindowEmpty { from, to });
        }
        Ok(Window { from, to })
    }

    pub fn from(&self) -> TimestampNs {
        self.from
    }

    pub fn to(&self) -> TimestampNs {
        self.to
    }

    pub fn contains(&self, timestamp: TimestampNs) -> bool {
        self.from <= timestamp && timestamp < self.to
    }

    /// The union of two windows that are equal or touch end to start.
    fn join(self, other: Window) -> Option<Window> {
        if self == other {
            Some(self)
        } else if self.to == other.from {
            Some(Window {
                from: self.from,
                to: other.to,
            })
        } else if other.to == self.from {
            Some(Window {
                from: other.from,
                to: self.to,
            })
        } else {
            None
        }
    }
}

/// Whose usage an aggregate is: a customer and the values of the meter's
/// group-by properties, in `group_by` order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub customer: String,
    pub group: Vec<String>,
}

impl GroupKey {
    fn of(event: &MeteredEvent) -> GroupKey {
        GroupKey {
            customer: event.customer.clone(),
            group: event.group.clone(),
        }
    }
}

/// The figures of one customer and group over a window. A group appears only
/// if at least one event counted, so `count >= 1`. The numeric figures are
/// present for sum, min, max and latest meters, `unique_count` for unique-count
/// meters; every decimal is normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    pub count: u64,
    pub sum: Option<Decimal>,
    pub min: Option<Decimal>,
    pub max: Option<Decimal>,
    /// The value of the event with the greatest `(timestamp, event_id)`
    /// (event ids compared as bytes); if that pair repeats (a duplicate the
    /// ingestion should have refused), the greatest of its values.
    pub latest: Option<Decimal>,
    pub unique_count: Option<u64>,
}

impl Aggregate {
    /// The meter's own figure: what a price applies to.
    pub fn value(&self, aggregation: Aggregation) -> Option<Decimal> {
        match aggregation {
            Aggregation::Count => Some(Decimal::from(self.count)),
            Aggregation::Sum => self.sum,
            Aggregation::Min => self.min,
            Aggregation::Max => self.max,
            Aggregation::Latest => self.latest,
            Aggregation::UniqueCount => self.unique_count.map(Decimal::from),
        }
    }
}

/// A meter's aggregates over a window, per customer and group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateResult {
    pub meter: String,
    pub window: Window,
    pub groups: BTreeMap<GroupKey, Aggregate>,
}

/// Why an aggregation has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    #[error("window [{from}, {to}) is empty: from must be before to")]
    WindowEmpty { from: TimestampNs, to: TimestampNs },
    #[error("the {figure} of customer {:?} group {:?} overflows", key.customer, key.group)]
    Overflow { key: GroupKey, figure: &'static str },
    #[error("aggregates of meter {ours:?} cannot merge with those of {theirs:?}")]
    MeterMismatch { ours: String, theirs: String },
    #[error("windows {ours:?} and {theirs:?} are neither equal nor adjacent")]
    WindowsNotAdjacent { ours: Window, theirs: Window },
    #[error("window {theirs:?} is not inside {ours:?}")]
    WindowNotInside { ours: Window, theirs: Window },
    #[error("the series has {buckets} buckets; the limit is {max}")]
    TooManyBuckets { buckets: u128, max: u64 },
}

/// Whether `event` counts for `meter` in `window`: the meter's own event, in
/// the window, with the observation the meter's aggregation reads.
fn counts(meter: &str, aggregation: Aggregation, window: Window, event: &MeteredEvent) -> bool {
    let observation_fits = match &event.observation {
        Observation::Occurrence => aggregation == Aggregation::Count,
        Observation::Value(_) => aggregation.is_numeric(),
        Observation::Key(_) => aggregation == Aggregation::UniqueCount,
    };
    debug_assert!(
        observation_fits || event.meter != meter,
        "a metered event's observation fits its meter"
    );
    event.meter == meter && window.contains(event.timestamp) && observation_fits
}

/// The aggregates of `meter` over `window`, by one pass over raw events (of
/// any meters, in any order; those of other meters or outside the window are
/// skipped).
pub fn aggregate_scan<'a>(
    meter: &MeterSpec,
    events: impl IntoIterator<Item = &'a MeteredEvent>,
    window: Window,
) -> Result<AggregateResult, AggregateError> {
    let mut grouped: BTreeMap<GroupKey, Vec<&MeteredEvent>> = BTreeMap::new();
    for event in events {
        if counts(&meter.code, meter.aggregation, window, event) {
            grouped.entry(GroupKey::of(event)).or_default().push(event);
        }
    }
    let mut groups = BTreeMap::new();
    for (key, events) in grouped {
        let aggregate =
            fold_group(meter.aggregation, &events).map_err(|figure| AggregateError::Overflow {
                key: key.clone(),
                figure,
            })?;
        groups.insert(key, aggregate);
    }
    Ok(AggregateResult {
        meter: meter.code.clone(),
        window,
        groups,
    })
}

fn fold_group(
    aggregation: Aggregation,
    events: &[&MeteredEvent],
) -> Result<Aggregate, &'static str> {
    debug_assert!(!events.is_empty());
    let count = u64::try_from(events.len()).map_err(|_| "count")?;
    let values: Vec<Decimal> = events
        .iter()
        .filter_map(|event| match &event.observation {
            Observation::Value(value) => Some(*value),
            _ => None,
        })
        .collect();
    let mut aggregate = Aggregate {
        count,
        sum: None,
        min: None,
        max: None,
        latest: None,
        unique_count: None,
    };
    if aggregation.is_numeric() {
        let mut sum = ExactSum::default();
        values.iter().for_each(|value| sum.add(*value));
        aggregate.sum = Some(sum.total().ok_or("sum")?);
        aggregate.min = values.iter().min().copied();
        aggregate.max = values.iter().max().copied();
        aggregate.latest = events
            .iter()
            .filter_map(|event| match &event.observation {
                Observation::Value(value) => {
                    Some((event.timestamp, event.event_id.as_str(), *value))
                }
                _ => None,
            })
            .max()
            .map(|(_, _, value)| value);
    }
    if aggregation == Aggregation::UniqueCount {
        let keys: BTreeSet<&str> = events
            .iter()
            .filter_map(|event| match &event.observation {
                Observation::Key(key) => Some(key.as_str()),
                _ => None,
            })
            .collect();
        aggregate.unique_count = Some(keys.len() as u64);
    }
    Ok(aggregate)
}

/// The running state of one customer and group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct GroupState {
    count: u64,
    count_overflowed: bool,
    sum: ExactSum,
    min: Option<Decimal>,
    max: Option<Decimal>,
    latest: Option<(TimestampNs, String, Decimal)>,
    /// Every distinct key seen: exact, and merged by union.
    keys: BTreeSet<String>,
}

impl GroupState {
    fn add(&mut self, event: &MeteredEvent) {
        self.add_count(1);
        match &event.observation {
            Observation::Occurrence => {}
            Observation::Value(value) => {
                self.sum.add(*value);
                self.min = Some(self.min.map_or(*value, |min| min.min(*value)));
                self.max = Some(self.max.map_or(*value, |max| max.max(*value)));
                // Compared borrowed; the id is copied only when it wins.
                let later = self.latest.as_ref().is_none_or(|(at, id, latest)| {
                    (event.timestamp, event.event_id.as_str(), *value) > (*at, id.as_str(), *latest)
                });
                if later {
                    self.latest = Some((event.timestamp, event.event_id.clone(), *value));
                }
            }
            Observation::Key(key) => {
                if !self.keys.contains(key) {
                    self.keys.insert(key.clone());
                }
            }
        }
    }

    fn add_count(&mut self, count: u64) {
        match self.count.checked_add(count) {
            Some(total) => self.count = total,
            None => self.count_overflowed = true,
        }
    }

    fn merge(&mut self, other: GroupState) {
        self.add_count(other.count);
        self.count_overflowed |= other.count_overflowed;
        self.sum.merge(&other.sum);
        self.min = [self.min, other.min].into_iter().flatten().min();
        self.max = [self.max, other.max].into_iter().flatten().max();
        if other.latest > self.latest {
            self.latest = other.latest;
        }
        self.keys.extend(other.keys);
    }

    fn aggregate(&self, aggregation: Aggregation) -> Result<Aggregate, &'static str> {
        debug_assert!(
            self.count >= 1 || self.count_overflowed,
            "a group exists once an event counted"
        );
        if self.count_overflowed {
            return Err("count");
        }
        let numeric = aggregation.is_numeric();
        Ok(Aggregate {
            count: self.count,
            sum: if numeric {
                Some(self.sum.total().ok_or("sum")?)
            } else {
                None
            },
            min: if numeric { self.min } else { None },
            max: if numeric { self.max } else { None },
            latest: if numeric {
                self.latest.as_ref().map(|latest| latest.2)
            } else {
                None
            },
            unique_count: (aggregation == Aggregation::UniqueCount)
                .then_some(self.keys.len() as u64),
        })
    }
}

/// The incremental aggregates of one meter over one window: events are added
/// one at a time in any order, states merge, and [`Aggregates::result`] equals
/// [`aggregate_scan`] over the same events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregates {
    meter: String,
    aggregation: Aggregation,
    window: Window,
    groups: GroupMap,
}

/// Groups by key. A stored minute bucket holds one group or a few, and a
/// B-tree's first node is sized for eleven (about 2.5 KiB here), so a few
/// groups live in a sorted vector; past [`FEW_GROUPS_MAX`] they move to a
/// B-tree, where a query's thousands of groups insert in O(log n).
#[derive(Debug, Clone)]
enum GroupMap {
    Few(Vec<(GroupKey, GroupState)>),
    Many(BTreeMap<GroupKey, GroupState>),
}

const FEW_GROUPS_MAX: usize = 8;

impl Default for GroupMap {
    fn default() -> Self {
        GroupMap::Few(Vec::new())
    }
}

impl PartialEq for GroupMap {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for GroupMap {}

impl GroupMap {
    fn len(&self) -> usize {
        match self {
            GroupMap::Few(groups) => groups.len(),
            GroupMap::Many(groups) => groups.len(),
        }
    }

    /// In key order.
    fn iter(&self) -> Box<dyn Iterator<Item = (&GroupKey, &GroupState)> + '_> {
        match self {
            GroupMap::Few(groups) => Box::new(groups.iter().map(|(k, v)| (k, v))),
            GroupMap::Many(groups) => Box::new(groups.iter()),
        }
    }

    /// The state of the group `customer`/`group`; `make` builds its key when
    /// the group is new (so an existing group costs no allocation).
    fn state_mut(
        &mut self,
        customer: &str,
        group: &[String],
        make: impl FnOnce() -> GroupKey,
    ) -> &mut GroupState {
        let find = |groups: &[(GroupKey, GroupState)]| {
            groups.binary_search_by(|(key, _)| {
                (key.customer.as_str(), key.group.as_slice()).cmp(&(customer, group))
            })
        };
        if let GroupMap::Few(groups) = self {
            if find(groups).is_err() && groups.len() == FEW_GROUPS_MAX {
                *self = GroupMap::Many(std::mem::take(groups).into_iter().collect());
            }
        }
        match self {
            GroupMap::Few(groups) => {
                let at = match find(groups) {
                    Ok(at) => at,
                    Err(at) => {
                        groups.insert(at, (make(), GroupState::default()));
                        at
                    }
                };
                &mut groups[at].1
            }
            GroupMap::Many(groups) => groups.entry(make()).or_default(),
        }
    }

    /// Merges `state` into the group `key`.
    fn merge(&mut self, key: GroupKey, state: GroupState) {
        if let GroupMap::Many(groups) = self {
            match groups.entry(key) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(state);
                }
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    slot.get_mut().merge(state);
                }
            }
            return;
        }
        let ours = self.state_mut(&key.customer, &key.group, || key.clone());
        ours.merge(state);
    }
}

impl Aggregates {
    /// An empty state for `meter` over `window`.
    pub fn new(meter: &MeterSpec, window: Window) -> Aggregates {
        Aggregates {
            meter: meter.code.clone(),
            aggregation: meter.aggregation,
            window,
            groups: GroupMap::default(),
        }
    }

    pub fn window(&self) -> Window {
        self.window
    }

    /// Adds one event; `false` (and nothing changes) when it is another
    /// meter's or outside the window.
    pub fn add(&mut self, event: &MeteredEvent) -> bool {
        if !counts(&self.meter, self.aggregation, self.window, event) {
            return false;
        }
        self.groups
            .state_mut(&event.customer, &event.group, || GroupKey::of(event))
            .add(event);
        true
    }

    /// Merges `other` into this state. Either both cover the same window
    /// (partials of disjoint sets of events, e.g. one per batch) or the
    /// windows touch (partials of adjacent windows, e.g. series buckets) and
    /// the result covers both. Anything else would leave a gap or count an
    /// event twice, and is refused.
    pub fn merge(&mut self, other: Aggregates) -> Result<(), AggregateError> {
        if other.meter != self.meter || other.aggregation != self.aggregation {
            return Err(AggregateError::MeterMismatch {
                ours: self.meter.clone(),
                theirs: other.meter,
            });
        }
        let window = self
            .window
            .join(other.window)
            .ok_or(AggregateError::WindowsNotAdjacent {
                ours: self.window,
                theirs: other.window,
            })?;
        self.window = window;
        let groups: Vec<(GroupKey, GroupState)> = match other.groups {
            GroupMap::Few(groups) => groups,
            GroupMap::Many(groups) => groups.into_iter().collect(),
        };
        for (key, state) in groups {
            self.groups.merge(key, state);
        }
        Ok(())
    }

    /// Merges the groups of `part`, a state of the same meter over a window
    /// inside this one (a stored minute bucket into a query's window), under
    /// new keys: `rekey` gives a group's key here, or `None` to leave it out
    /// (a query's customer, filters and group-by). Windows that are not
    /// nested are refused: the result would claim events it never saw.
    pub fn absorb(
        &mut self,
        part: &Aggregates,
        mut rekey: impl FnMut(&GroupKey) -> Option<GroupKey>,
    ) -> Result<(), AggregateError> {
        if part.meter != self.meter || part.aggregation != self.aggregation {
            return Err(AggregateError::MeterMismatch {
                ours: self.meter.clone(),
                theirs: part.meter.clone(),
            });
        }
        if part.window.from < self.window.from || part.window.to > self.window.to {
            return Err(AggregateError::WindowNotInside {
                ours: self.window,
                theirs: part.window,
            });
        }
        for (key, state) in part.groups.iter() {
            let Some(key) = rekey(key) else { continue };
            self.groups.merge(key, state.clone());
        }
        Ok(())
    }

    /// The aggregates so far.
    pub fn result(&self) -> Result<AggregateResult, AggregateError> {
        let mut groups = BTreeMap::new();
        for (key, state) in self.groups.iter() {
            let aggregate =
                state
                    .aggregate(self.aggregation)
                    .map_err(|figure| AggregateError::Overflow {
                        key: key.clone(),
                        figure,
                    })?;
            groups.insert(key.clone(), aggregate);
        }
        Ok(AggregateResult {
            meter: self.meter.clone(),
            window: self.window,
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::event::{meter_event, EventOutcome, UsageEvent, ValidationContext};
    use crate::metering::reference::{metered, meters, reference, streams, windows};
    use proptest::prelude::*;

    /// Seconds since the epoch, as event timestamps.
    fn at(seconds: i64) -> TimestampNs {
        seconds * 1_000_000_000
    }

    fn meter(code: &str, aggregation: Aggregation, value_property: Option<&str>) -> MeterSpec {
        MeterSpec {
            code: code.into(),
            aggregation,
            value_property: value_property.map(String::from),
            filters: BTreeMap::new(),
            group_by: Vec::new(),
            grace_period_seconds: 0,
        }
    }

    #[test]
    fn public_billing_docs_example() {
        // Goal: the example of Lago's billable metric docs ("Aggregation examples", tracked pages):
        // two events for customer 1 with pageviews 10 (2022-03-16) and 20 (2022-03-17) and the same
        // tracked_user_id give count 2, sum 30, max 20, unique count 1; and min 10, latest 20.
        let events: Vec<UsageEvent> = [
            ("1111-1111-1111-1111", 1_647_388_800, "10"),
            ("2222-2222-2222-2222", 1_647_475_200, "20"),
        ]
        .into_iter()
        .map(|(id, seconds, pageviews)| UsageEvent {
            event_id: id.into(),
            customer: "1".into(),
            meter: "tracked_pages".into(),
            timestamp: at(seconds),
            value: None,
            properties: BTreeMap::from([
                (
                    "tracked_user_id".to_string(),
                    "1234-5678-9098-7654".to_string(),
                ),
                ("pageviews".to_string(), pageviews.to_string()),
            ]),
        })
        .collect();
        let window = Window::new(at(1_646_092_800), at(1_648_771_200)).unwrap(); // March 2022
        let figure = |meter: MeterSpec| {
            let context = ValidationContext {
                now: at(1_648_771_200),
                earliest: window.from(),
            };
            let metered: Vec<MeteredEvent> = events
                .iter()
                .map(|event| match meter_event(&meter, &context, event) {
                    Ok(EventOutcome::Counted(metered)) => metered,
                    other => panic!("{other:?}"),
                })
                .collect();
            let result = aggregate_scan(&meter, &metered, window).unwrap();
            let key = GroupKey {
                customer: "1".into(),
                group: vec![],
            };
            result.groups[&key].value(meter.aggregation).unwrap()
        };
        let pageviews = Some("pageviews");
        assert_eq!(
            figure(meter("tracked_pages", Aggregation::Count, None)),
            Decimal::from(2)
        );
        assert_eq!(
            figure(meter("tracked_pages", Aggregation::Sum, pageviews)),
            Decimal::from(30)
        );
        assert_eq!(
            figure(meter("tracked_pages", Aggregation::Max, pageviews)),
            Decimal::from(20)
        );
        assert_eq!(
            figure(meter("tracked_pages", Aggregation::Min, pageviews)),
            Decimal::from(10)
        );
        assert_eq!(
            figure(meter("tracked_pages", Aggregation::Latest, pageviews)),
            Decimal::from(20)
        );
        assert_eq!(
            figure(meter(
                "tracked_pages",
                Aggregation::UniqueCount,
                Some("tracked_user_id")
            )),
            Decimal::from(1)
        );
    }

    fn value_event(id: &str, timestamp: TimestampNs, value: &str) -> MeteredEvent {
        MeteredEvent {
            meter: "m".into(),
            customer: "c".into(),
            timestamp,
            event_id: id.into(),
            group: vec![],
            observation: Observation::Value(value.parse::<Decimal>().unwrap().normalize()),
        }
    }

    #[test]
    fn latest_breaks_ties_by_event_id_then_value() {
        // Goal: at one timestamp the greatest event id wins (bytewise), and a repeated
        // (timestamp, id) takes the greatest value: the same answer in every order.
        let sum = meter("m", Aggregation::Latest, None);
        let window = Window::new(0, 100).unwrap();
        let events = [
            value_event("b", 5, "1"),
            value_event("a", 5, "2"),
            value_event("b", 5, "-3"),
            value_event("z", 4, "9"),
        ];
        for rotation in 0..events.len() {
            let mut ordered = events.to_vec();
            ordered.rotate_left(rotation);
            let result = aggregate_scan(&sum, &ordered, window).unwrap();
            let mut incremental = Aggregates::new(&sum, window);
            ordered
                .iter()
                .for_each(|event| assert!(incremental.add(event)));
            assert_eq!(incremental.result().unwrap(), result);
            assert_eq!(
                result.groups.values().next().unwrap().latest,
                Some(Decimal::ONE)
            );
        }
    }

    #[test]
    fn window_is_half_open_and_other_meters_are_skipped() {
        // Goal: `from` is in, `to` is out, another meter's event never counts.
        let count = meter("m", Aggregation::Sum, None);
        let window = Window::new(10, 20).unwrap();
        let mut other = value_event("o", 15, "100");
        other.meter = "other".into();
        let events = [
            value_event("a", 10, "1"),
            value_event("b", 19, "2"),
            value_event("c", 20, "4"),
            value_event("d", 9, "8"),
            other,
        ];
        let result = aggregate_scan(&count, &events, window).unwrap();
        let aggregate = result.groups.values().next().unwrap();
        assert_eq!(
            (aggregate.count, aggregate.sum),
            (2, Some(Decimal::from(3)))
        );
        let mut incremental = Aggregates::new(&count, window);
        let added: Vec<bool> = events.iter().map(|event| incremental.add(event)).collect();
        assert_eq!(added, [true, true, false, false, false]);
        assert_eq!(
            Window::new(5, 5),
            Err(AggregateError::WindowEmpty { from: 5, to: 5 })
        );
    }

    #[test]
    fn sum_overflow_is_an_error_in_both_ways() {
        // Goal: a sum beyond a Decimal is an Overflow naming the group, never wrapped or rounded.
        let sum = meter("m", Aggregation::Sum, None);
        let window = Window::new(0, 100).unwrap();
        let events = [
            value_event("a", 1, "79228162514264337593543950335"),
            value_event("b", 2, "1"),
        ];
        let expected = AggregateError::Overflow {
            key: GroupKey {
                customer: "c".into(),
                group: vec![],
            },
            figure: "sum",
        };
        assert_eq!(aggregate_scan(&sum, &events, window), Err(expected.clone()));
        let mut incremental = Aggregates::new(&sum, window);
        events
            .iter()
            .for_each(|event| assert!(incremental.add(event)));
        assert_eq!(incremental.result(), Err(expected));
    }

    #[test]
    fn merge_refuses_gaps_overlaps_and_other_meters() {
        // Goal: partials merge only over one window (disjoint batches) or touching windows (buckets).
        let sum = meter("m", Aggregation::Sum, None);
        let state = |from, to| Aggregates::new(&sum, Window::new(from, to).unwrap());
        let mut merged = state(0, 10);
        assert_eq!(merged.merge(state(0, 10)), Ok(()));
        assert_eq!(merged.merge(state(10, 20)), Ok(()));
        assert_eq!(merged.merge(state(-5, 0)), Ok(()));
        assert_eq!(merged.window(), Window::new(-5, 20).unwrap());
        assert!(matches!(
            merged.merge(state(21, 30)),
            Err(AggregateError::WindowsNotAdjacent { .. })
        ));
        assert!(matches!(
            merged.merge(state(15, 30)),
            Err(AggregateError::WindowsNotAdjacent { .. })
        ));
        let other = Aggregates::new(
            &meter("n", Aggregation::Sum, None),
            Window::new(20, 30).unwrap(),
        );
        assert!(matches!(
            merged.merge(other),
            Err(AggregateError::MeterMismatch { .. })
        ));
        let count = Aggregates::new(
            &meter("m", Aggregation::Count, None),
            Window::new(20, 30).unwrap(),
        );
        assert!(matches!(
            merged.merge(count),
            Err(AggregateError::MeterMismatch { .. })
        ));
    }

    /// A deterministic shuffle driven by the test's seed.
    fn shuffled<T: Clone>(items: &[T], mut seed: u64) -> Vec<T> {
        let mut items = items.to_vec();
        for index in (1..items.len()).rev() {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            items.swap(index, (seed >> 33) as usize % (index + 1));
        }
        items
    }

    proptest! {
        #[test]
        fn scan_incremental_and_merged_agree_with_the_reference(
            meter in meters(),
            events in streams(),
            (from, to) in windows(),
            seed in any::<u64>(),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
        ) {
            // Goal: scan == naive reference == incremental in a random order == merged partials
            // of random batches, for random meters, streams and windows.
            let window = Window::new(from, to).unwrap();
            let metered = metered(&meter, &events);
            let scan = aggregate_scan(&meter, &metered, window).unwrap();
            prop_assert_eq!(&scan.groups, &reference(&meter, &events, (from, to)));
            prop_assert_eq!(&scan.meter, &meter.code);
            prop_assert_eq!(scan.window, window);

            let arrival = shuffled(&metered, seed);
            let mut incremental = Aggregates::new(&meter, window);
            for event in &arrival {
                prop_assert_eq!(incremental.add(event), window.contains(event.timestamp));
            }
            prop_assert_eq!(incremental.result().unwrap(), scan.clone());

            let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(arrival.len() + 1)).collect();
            cuts.push(0);
            cuts.push(arrival.len());
            cuts.sort();
            let mut merged = Aggregates::new(&meter, window);
            for batch in cuts.windows(2) {
                let mut partial = Aggregates::new(&meter, window);
                arrival[batch[0]..batch[1]].iter().for_each(|event| { partial.add(event); });
                merged.merge(partial).unwrap();
            }
            prop_assert_eq!(merged.result().unwrap(), scan);
        }
    }
}
