//! Test support: random usage streams and a naive reference aggregation,
//! written plainly and sharing no logic with the implementation (it reads the
//! raw events, not metered ones, and sums with `Decimal`'s own addition).

use super::aggregate::{Aggregate, GroupKey};
use super::event::{meter_event, EventOutcome, MeteredEvent, UsageEvent, ValidationContext};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use tally_core::meter::{Aggregation, MeterSpec};

/// A random meter over the stream's properties.
pub(crate) fn meters() -> impl Strategy<Value = MeterSpec> {
    let aggregation = prop_oneof![
        Just(Aggregation::Sum),
        Just(Aggregation::Count),
        Just(Aggregation::Min),
        Just(Aggregation::Max),
        Just(Aggregation::UniqueCount),
        Just(Aggregation::Latest),
    ];
    let group_by = prop_oneof![
        Just(vec![]),
        Just(vec!["plan".to_string()]),
        Just(vec!["user".to_string()]),
        Just(vec!["user".to_string(), "plan".to_string()]),
    ];
    let region_filter =
        proptest::option::of(proptest::sample::subsequence(vec!["eu", "us", "ap"], 1..=2));
    (aggregation, any::<bool>(), group_by, region_filter).prop_map(
        |(aggregation, from_property, group_by, region_filter)| MeterSpec {
            code: "usage".into(),
            aggregation,
            value_property: match aggregation {
                Aggregation::Count => None,
                Aggregation::UniqueCount => Some("user".into()),
                _ => from_property.then(|| "amount".to_string()),
            },
            filters: region_filter
                .map(|values| {
                    (
                        "region".to_string(),
                        values.into_iter().map(String::from).collect(),
                    )
                })
                .into_iter()
                .collect(),
            group_by,
            grace_period_seconds: 0,
        },
    )
}

/// A decimal's text with up to 10 places, negatives included.
fn decimal_texts() -> impl Strategy<Value = String> {
    (-1_000_000_000_000i64..=1_000_000_000_000, 0u32..=10)
        .prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale).to_string())
}

/// Random valid events: 3 customers, timestamps on a 30 s grid over four hours
/// around the epoch (so that ties and negative times occur), a value and an
/// `amount` property, `plan` and `user` always present, `region` sometimes.
pub(crate) fn streams() -> impl Strategy<Value = Vec<UsageEvent>> {
    let event = (
        0usize..3,
        -240i64..240,
        decimal_texts(),
        decimal_texts(),
        proptest::option::of(proptest::sample::select(vec!["eu", "us", "ap"])),
        proptest::sample::select(vec!["free", "pro"]),
        proptest::sample::select(vec!["u1", "u2", "u3", "u4"]),
    );
    proptest::collection::vec(event, 0..60).prop_map(|events| {
        events
            .into_iter()
            .enumerate()
            .map(
                |(index, (customer, step, value, amount, region, plan, user))| {
                    let mut properties = BTreeMap::from([
                        ("amount".to_string(), amount),
                        ("plan".to_string(), plan.to_string()),
                        ("user".to_string(), user.to_string()),
                    ]);
                    if let Some(region) = region {
                        properties.insert("region".into(), region.into());
                    }
                    UsageEvent {
                        event_id: format!("e{index}"),
                        customer: format!("c{customer}"),
                        meter: "usage".into(),
                        timestamp: step * 30_000_000_000,
                        value: Some(value),
                        properties,
                    }
                },
            )
            .collect()
    })
}

/// A window within the stream's span: `(from, to)` with `from < to`.
pub(crate) fn windows() -> impl Strategy<Value = (i64, i64)> {
    (-7_300i64..7_300, 1i64..15_000).prop_map(|(from_seconds, length_seconds)| {
        let from = from_seconds * 1_000_000_000 + 7;
        (from, from + length_seconds * 1_000_000_000)
    })
}

/// The events the meter counts, through validation (every stream event is valid).
pub(crate) fn metered(meter: &MeterSpec, events: &[UsageEvent]) -> Vec<MeteredEvent> {
    let context = ValidationContext {
        now: i64::MAX / 2,
        earliest: i64::MIN,
    };
    events
        .iter()
        .filter_map(|event| match meter_event(meter, &context, event) {
            Ok(EventOutcome::Counted(metered)) => Some(metered),
            Ok(EventOutcome::NotCounted { .. }) => None,
            Err(error) => panic!("a generated event was refused: {error}"),
        })
        .collect()
}

fn group_key((customer, group): (String, Vec<String>)) -> GroupKey {
    GroupKey { customer, group }
}

/// The plain reference: filter, group, fold, straight from the raw events. It
/// answers in the implementation's result types (plain data), and shares none
/// of its logic.
pub(crate) fn reference(
    meter: &MeterSpec,
    events: &[UsageEvent],
    (from, to): (i64, i64),
) -> BTreeMap<GroupKey, Aggregate> {
    let mut groups: BTreeMap<(String, Vec<String>), Vec<&UsageEvent>> = BTreeMap::new();
    for event in events {
        if event.timestamp < from || event.timestamp >= to {
            continue;
        }
        let excluded = meter.filters.iter().any(|(name, accepted)| {
            !event
                .properties
                .get(name)
                .is_some_and(|value| accepted.contains(value))
        });
        if excluded {
            continue;
        }
        let group = meter
            .group_by
            .iter()
            .map(|name| event.properties[name].clone())
            .collect();
        groups
            .entry((event.customer.clone(), group))
            .or_default()
            .push(event);
    }
    let numeric = matches!(
        meter.aggregation,
        Aggregation::Sum | Aggregation::Min | Aggregation::Max | Aggregation::Latest
    );
    let mut expected = BTreeMap::new();
    for (key, events) in groups {
        let value_of = |event: &UsageEvent| {
            let text = match &meter.value_property {
                Some(name) => event.properties[name].clone(),
                None => event.value.clone().unwrap(),
            };
            Decimal::from_str(&text).unwrap()
        };
        if !numeric {
            let keys: BTreeSet<&str> = events
                .iter()
                .map(|event| event.properties["user"].as_str())
                .collect();
            let unique_count =
                (meter.aggregation == Aggregation::UniqueCount).then_some(keys.len() as u64);
            let count = events.len() as u64;
            expected.insert(
                group_key(key),
                Aggregate {
                    count,
                    sum: None,
                    min: None,
                    max: None,
                    latest: None,
                    unique_count,
                },
            );
            continue;
        }
        let values: Vec<Decimal> = events.iter().map(|event| value_of(event)).collect();
        let mut sum = Decimal::ZERO;
        for value in &values {
            sum = sum.checked_add(*value).unwrap();
        }
        let mut by_time: Vec<(i64, String, Decimal)> = events
            .iter()
            .map(|event| {
                (
                    event.timestamp,
                    event.event_id.clone(),
                    value_of(event).normalize(),
                )
            })
            .collect();
        by_time.sort();
        expected.insert(
            group_key(key),
            Aggregate {
                count: events.len() as u64,
                sum: Some(sum.normalize()),
                min: values.iter().min().map(|min| min.normalize()),
                max: values.iter().max().map(|max| max.normalize()),
                latest: by_time.last().map(|last| last.2),
                unique_count: None,
            },
        );
    }
    expected
}
