//! Conversions between the Metering messages and the metering types.
//!
//! As in `crate::convert`: requests convert infallibly, answers are checked,
//! and an answer that breaks the contract (a time out of range, a decimal that
//! is not plain, an unknown enum value, results out of order) is an
//! `InvalidResponse` naming the field.

use std::collections::{BTreeMap, HashMap};

use prost_types::Timestamp;
use rust_decimal::Decimal;
use tally_audit::Hash;
use tally_proto::v1 as pb;

use super::{
    Aggregation, BucketWidth, Customer, CustomerCreated, CustomerSpec, EventProof, EventRecorded,
    EventResult, IngestOutcome, LateEvent, LateEventsPage, MeterSpec, MeterVersion, TimestampNs,
    UsageBucket, UsageEvent, UsageGroup, UsageQuery, UsageResult, UsageSeries,
};
use crate::convert::{check_result_index, item_error, missing_outcome};
use crate::error::{ClientError, ItemError, Result};

const NANOS_PER_SECOND: i64 = 1_000_000_000;

fn invalid(field: &str, message: impl std::fmt::Display) -> ClientError {
    ClientError::invalid_response(format!("{field}: {message}"))
}

// ---------------------------------------------------------------------------
// Times and decimals.

pub(crate) fn timestamp_to_proto(ns: TimestampNs) -> Timestamp {
    Timestamp {
        seconds: ns.div_euclid(NANOS_PER_SECOND),
        // In 0..1e9, so the cast is exact.
        nanos: ns.rem_euclid(NANOS_PER_SECOND) as i32,
    }
}

/// A wire time as nanoseconds since the epoch; `None` when it is outside the
/// range of `TimestampNs` (about 1677 to 2262) or its nanos are not 0..1e9.
pub fn timestamp_ns(timestamp: &Timestamp) -> Option<TimestampNs> {
    if !(0..NANOS_PER_SECOND).contains(&i64::from(timestamp.nanos)) {
        return None;
    }
    // In i128, so that the earliest representable times (whose whole seconds
    // alone are before i64::MIN nanoseconds) convert too.
    let ns =
        i128::from(timestamp.seconds) * i128::from(NANOS_PER_SECOND) + i128::from(timestamp.nanos);
    TimestampNs::try_from(ns).ok()
}

fn time(field: &str, timestamp: Option<Timestamp>) -> Result<TimestampNs> {
    optional_time(field, timestamp)?.ok_or_else(|| invalid(field, "missing"))
}

fn optional_time(field: &str, timestamp: Option<Timestamp>) -> Result<Option<TimestampNs>> {
    timestamp
        .map(|timestamp| {
            timestamp_ns(&timestamp).ok_or_else(|| {
                invalid(
                    field,
                    format!("{timestamp:?} is not a time in nanoseconds since 1970"),
                )
            })
        })
        .transpose()
}

/// Whether `text` is a plain decimal: an optional `-`, digits, and optionally
/// a `.` followed by digits. No `+`, exponent, `_`, or bare `.`.
pub(crate) fn is_plain_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

/// An aggregate from the wire, exactly: a plain decimal that `Decimal` holds
/// without rounding.
pub(crate) fn plain_decimal(field: &str, text: &str) -> Result<Decimal> {
    if !is_plain_decimal(text) {
        return Err(invalid(field, format!("{text:?} is not a plain decimal")));
    }
    Decimal::from_str_exact(text)
        .map_err(|_| invalid(field, format!("{text:?} does not fit a decimal exactly")))
}

fn hash(field: &str, bytes: &[u8]) -> Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| invalid(field, format!("{} bytes, not 32", bytes.len())))
}

fn hashes(field: &str, list: Vec<Vec<u8>>) -> Result<Vec<Hash>> {
    list.iter()
        .enumerate()
        .map(|(position, bytes)| hash(&format!("{field}[{position}]"), bytes))
        .collect()
}

fn sorted(map: HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

// ---------------------------------------------------------------------------
// Customers.

pub(crate) fn customer_to_proto(spec: CustomerSpec) -> pb::Customer {
    pb::Customer {
        id: spec.id,
        name: spec.name,
        metadata: spec.metadata.into_iter().collect(),
        created_seq: 0,
        closed_through: None,
    }
}

pub(crate) fn customer(position: usize, customer: pb::Customer) -> Result<Customer> {
    let field = format!("customers[{position}].closed_through");
    Ok(Customer {
        closed_through: optional_time(&field, customer.closed_through)?,
        id: customer.id,
        name: customer.name,
        metadata: sorted(customer.metadata),
        created_seq: customer.created_seq,
    })
}

pub(crate) fn check_result_count(count: usize, expected: usize) -> Result<()> {
    if count != expected {
        return Err(ClientError::invalid_response(format!(
            "{count} results for {expected} items"
        )));
    }
    Ok(())
}

pub(crate) fn customer_results(
    results: Vec<pb::CustomerResult>,
) -> Result<Vec<Result<CustomerCreated, ItemError>>> {
    use pb::customer_result::Outcome;
    let convert = |(position, result): (usize, pb::CustomerResult)| {
        let index = check_result_index(position, result.index)?;
        Ok(match result.outcome {
            Some(Outcome::Customer(value)) => Ok(CustomerCreated {
                customer: customer(position, value)?,
                created: result.created,
            }),
            Some(Outcome::Error(detail)) => Err(item_error(index, detail)),
            None => return Err(missing_outcome(position)),
        })
    };
    results.into_iter().enumerate().map(convert).collect()
}

/// A page of customers must be in strictly increasing id order, after
/// `after`: otherwise reading every page could loop.
pub(crate) fn check_ids_after(after: &str, customers: &[Customer]) -> Result<()> {
    let mut previous = after;
    for (position, customer) in customers.iter().enumerate() {
        if customer.id.as_str() <= previous && !(position == 0 && after.is_empty()) {
            return Err(invalid(
                &format!("customers[{position}].id"),
                format!("{:?} is not after {previous:?}", customer.id),
            ));
        }
        previous = &customer.id;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Meters.

fn aggregation_to_proto(aggregation: Aggregation) -> pb::Aggregation {
    match aggregation {
        Aggregation::Sum => pb::Aggregation::Sum,
        Aggregation::Count => pb::Aggregation::Count,
        Aggregation::Min => pb::Aggregation::Min,
        Aggregation::Max => pb::Aggregation::Max,
        Aggregation::UniqueCount => pb::Aggregation::UniqueCount,
        Aggregation::Latest => pb::Aggregation::Latest,
    }
}

fn aggregation(field: &str, value: i32) -> Result<Aggregation> {
    match pb::Aggregation::try_from(value) {
        Ok(pb::Aggregation::Sum) => Ok(Aggregation::Sum),
        Ok(pb::Aggregation::Count) => Ok(Aggregation::Count),
        Ok(pb::Aggregation::Min) => Ok(Aggregation::Min),
        Ok(pb::Aggregation::Max) => Ok(Aggregation::Max),
        Ok(pb::Aggregation::UniqueCount) => Ok(Aggregation::UniqueCount),
        Ok(pb::Aggregation::Latest) => Ok(Aggregation::Latest),
        _ => Err(invalid(field, format!("unknown aggregation {value}"))),
    }
}

pub(crate) fn meter_to_proto(spec: &MeterSpec, description: &str) -> pb::Meter {
    pb::Meter {
        code: spec.code.clone(),
        aggregation: aggregation_to_proto(spec.aggregation) as i32,
        value_property: spec.value_property.clone().unwrap_or_default(),
        filters: spec
            .filters
            .iter()
            .map(|(property, values)| {
                let values = pb::FilterValues {
                    values: values.clone(),
                };
                (property.clone(), values)
            })
            .collect(),
        group_by: spec.group_by.clone(),
        grace_period_seconds: spec.grace_period_seconds,
        description: description.to_string(),
    }
}

pub(crate) fn meter_version(field: &str, answer: pb::MeterVersion) -> Result<MeterVersion> {
    let meter = answer
        .meter
        .ok_or_else(|| invalid(&format!("{field}.meter"), "missing"))?;
    let spec = MeterSpec {
        aggregation: aggregation(&format!("{field}.meter.aggregation"), meter.aggregation)?,
        value_property: (!meter.value_property.is_empty()).then_some(meter.value_property),
        filters: meter
            .filters
            .into_iter()
            .map(|(property, values)| (property, values.values))
            .collect(),
        code: meter.code,
        group_by: meter.group_by,
        grace_period_seconds: meter.grace_period_seconds,
    };
    Ok(MeterVersion {
        spec,
        description: meter.description,
        version: answer.version,
        seq: answer.seq,
        defined_at: time(&format!("{field}.defined_at"), answer.defined_at)?,
        created: answer.created,
    })
}

// ---------------------------------------------------------------------------
// Events.

pub(crate) fn event_to_proto(event: &UsageEvent) -> pb::UsageEvent {
    pb::UsageEvent {
        event_id: event.event_id.clone(),
        customer: event.customer.clone(),
        meter: event.meter.clone(),
        timestamp: Some(timestamp_to_proto(event.timestamp)),
        value: event.value.clone(),
        properties: event
            .properties
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
    }
}

fn event(field: &str, event: Option<pb::UsageEvent>) -> Result<UsageEvent> {
    let event = event.ok_or_else(|| invalid(field, "missing"))?;
    Ok(UsageEvent {
        timestamp: time(&format!("{field}.timestamp"), event.timestamp)?,
        event_id: event.event_id,
        customer: event.customer,
        meter: event.meter,
        value: event.value,
        properties: sorted(event.properties),
    })
}

fn recorded(value: pb::EventRecorded) -> EventRecorded {
    EventRecorded {
        seq: value.seq,
        index: value.index,
        late: value.late,
        counted: value.counted,
    }
}

fn event_results(results: Vec<pb::EventResult>) -> Result<Vec<EventResult>> {
    use pb::event_result::Outcome;
    let convert = |(position, result): (usize, pb::EventResult)| {
        let index = check_result_index(position, result.index)?;
        Ok(match result.outcome {
            Some(Outcome::Recorded(value)) => EventResult::Recorded(recorded(value)),
            Some(Outcome::Duplicate(value)) => EventResult::Duplicate(recorded(value)),
            Some(Outcome::Error(detail)) => EventResult::Rejected(item_error(index, detail)),
            None => return Err(missing_outcome(position)),
        })
    };
    results.into_iter().enumerate().map(convert).collect()
}

/// The results, checked: one per event, in order, and the counts the server
/// states are the results' own.
pub(crate) fn ingest_outcome(
    response: pb::IngestEventsResponse,
    expected: usize,
) -> Result<IngestOutcome> {
    check_result_count(response.results.len(), expected)?;
    let results = event_results(response.results)?;
    let count = |wanted: fn(&EventResult) -> bool| results.iter().filter(|r| wanted(r)).count();
    let counted = [
        (
            "recorded",
            response.recorded,
            count(|r| matches!(r, EventResult::Recorded(_))),
        ),
        (
            "duplicates",
            response.duplicates,
            count(|r| matches!(r, EventResult::Duplicate(_))),
        ),
        (
            "rejected",
            response.rejected,
            count(|r| matches!(r, EventResult::Rejected(_))),
        ),
    ];
    for (name, stated, found) in counted {
        if usize::try_from(stated).ok() != Some(found) {
            return Err(invalid(
                name,
                format!("{stated}, but {found} results say so"),
            ));
        }
    }
    Ok(IngestOutcome {
        results,
        recorded: response.recorded,
        duplicates: response.duplicates,
        rejected: response.rejected,
    })
}

// ---------------------------------------------------------------------------
// Queries.

pub(crate) fn query_to_proto(query: &UsageQuery) -> pb::QueryUsageRequest {
    pb::QueryUsageRequest {
        meter: query.meter.clone(),
        customer: query.customer.clone().unwrap_or_default(),
        from: Some(timestamp_to_proto(query.from)),
        to: Some(timestamp_to_proto(query.to)),
        filters: query
            .filters
            .iter()
            .map(|(property, values)| pb::UsageFilter {
                property: property.clone(),
                values: values.clone(),
            })
            .collect(),
        group_by: query.group_by.clone(),
        recompute: query.recompute,
    }
}

pub(crate) fn width_to_proto(width: BucketWidth) -> pb::BucketWidth {
    match width {
        BucketWidth::Minute => pb::BucketWidth::Minute,
        BucketWidth::Hour => pb::BucketWidth::Hour,
        BucketWidth::Day => pb::BucketWidth::Day,
    }
}

fn width(field: &str, value: i32) -> Result<BucketWidth> {
    match pb::BucketWidth::try_from(value) {
        Ok(pb::BucketWidth::Minute) => Ok(BucketWidth::Minute),
        Ok(pb::BucketWidth::Hour) => Ok(BucketWidth::Hour),
        Ok(pb::BucketWidth::Day) => Ok(BucketWidth::Day),
        _ => Err(invalid(field, format!("unknown bucket width {value}"))),
    }
}

fn group(field: &str, group: pb::UsageGroup) -> Result<UsageGroup> {
    Ok(UsageGroup {
        value: plain_decimal(&format!("{field}.value"), &group.value)?,
        customer: group.customer,
        group: sorted(group.group),
        count: group.count,
    })
}

fn groups(field: &str, list: Vec<pb::UsageGroup>) -> Result<Vec<UsageGroup>> {
    list.into_iter()
        .enumerate()
        .map(|(position, value)| group(&format!("{field}[{position}]"), value))
        .collect()
}

pub(crate) fn usage_result(answer: pb::UsageResult) -> Result<UsageResult> {
    Ok(UsageResult {
        aggregation: aggregation("aggregation", answer.aggregation)?,
        from: time("from", answer.from)?,
        to: time("to", answer.to)?,
        groups: groups("groups", answer.groups)?,
        meter: answer.meter,
        as_of_seq: answer.as_of_seq,
    })
}

fn bucket(position: usize, bucket: pb::UsageBucket) -> Result<UsageBucket> {
    let field = format!("buckets[{position}]");
    Ok(UsageBucket {
        from: time(&format!("{field}.from"), bucket.from)?,
        to: time(&format!("{field}.to"), bucket.to)?,
        groups: groups(&format!("{field}.groups"), bucket.groups)?,
    })
}

pub(crate) fn usage_series(answer: pb::UsageSeries) -> Result<UsageSeries> {
    Ok(UsageSeries {
        aggregation: aggregation("aggregation", answer.aggregation)?,
        width: width("width", answer.width)?,
        buckets: answer
            .buckets
            .into_iter()
            .enumerate()
            .map(|(position, value)| bucket(position, value))
            .collect::<Result<_>>()?,
        meter: answer.meter,
        as_of_seq: answer.as_of_seq,
    })
}

// ---------------------------------------------------------------------------
// Late events and proofs.

fn late_event(position: usize, late: pb::LateEvent) -> Result<LateEvent> {
    let field = format!("events[{position}]");
    Ok(LateEvent {
        event: event(&format!("{field}.event"), late.event)?,
        seq: late.seq,
        index: late.index,
        recorded_at: time(&format!("{field}.recorded_at"), late.recorded_at)?,
        closed_through: time(&format!("{field}.closed_through"), late.closed_through)?,
    })
}

/// A page whose next start does not move past its own start would be read
/// again and again.
pub(crate) fn late_events_page(
    response: pb::ListLateEventsResponse,
    from: (u64, u32),
) -> Result<LateEventsPage> {
    let events = response
        .events
        .into_iter()
        .enumerate()
        .map(|(position, value)| late_event(position, value))
        .collect::<Result<Vec<_>>>()?;
    let next = match (response.next_from_seq, response.next_from_index) {
        (0, _) => None,
        next if next > from => Some(next),
        (seq, index) => {
            return Err(invalid(
                "next_from_seq",
                format!(
                    "({seq}, {index}) does not move past ({}, {})",
                    from.0, from.1
                ),
            ))
        }
    };
    Ok(LateEventsPage { events, next })
}

pub(crate) fn event_proof(answer: pb::EventProof) -> Result<EventProof> {
    let inclusion = answer
        .inclusion
        .ok_or_else(|| invalid("inclusion", "missing"))?;
    if inclusion.seq != answer.seq {
        return Err(invalid(
            "inclusion.seq",
            format!("{}, but the event's entry is {}", inclusion.seq, answer.seq),
        ));
    }
    Ok(EventProof {
        event: event("event", answer.event)?,
        seq: answer.seq,
        index: answer.index,
        event_count: answer.event_count,
        event_path: hashes("event_path", answer.event_path)?,
        entry: answer.entry,
        prev_hash: hash("prev_hash", &answer.prev_hash)?,
        tree_size: inclusion.tree_size,
        inclusion: hashes("inclusion.hashes", inclusion.hashes)?,
        checkpoint: answer.checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use rust_decimal_macros::dec;

    fn wire_event() -> pb::UsageEvent {
        pb::UsageEvent {
            event_id: "evt-1".into(),
            customer: "acme".into(),
            meter: "api_calls".into(),
            timestamp: Some(Timestamp {
                seconds: -1,
                nanos: 5,
            }),
            value: Some("12.50".into()),
            properties: HashMap::from([("region".to_string(), "eu".to_string())]),
        }
    }

    #[test]
    fn timestamps_round_trip_in_nanoseconds() {
        // Goal: ns since the epoch and the wire's (seconds, nanos) agree both
        // ways, before 1970 too; times beyond i64 nanoseconds are refused.
        for ns in [0, 1, -1, 1_700_000_000_123_456_789, i64::MIN, i64::MAX] {
            assert_eq!(timestamp_ns(&timestamp_to_proto(ns)), Some(ns), "{ns}");
        }
        assert_eq!(
            timestamp_to_proto(-1),
            Timestamp {
                seconds: -1,
                nanos: 999_999_999
            }
        );
        let too_late = Timestamp {
            seconds: i64::MAX / 1_000,
            nanos: 0,
        };
        assert_eq!(timestamp_ns(&too_late), None);
        let bad_nanos = Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert_eq!(timestamp_ns(&bad_nanos), None);
        assert!(time("t", None)
            .unwrap_err()
            .to_string()
            .contains("t: missing"));
    }

    #[test]
    fn aggregates_parse_strictly() {
        // Goal: only plain decimals are aggregates; what `Decimal` would read
        // loosely (`+5`, `1_000`, `.5`) or round is an invalid response.
        assert_eq!(plain_decimal("v", "12.50").unwrap(), dec!(12.50));
        assert_eq!(plain_decimal("v", "12.50").unwrap().to_string(), "12.50");
        assert_eq!(plain_decimal("v", "-3").unwrap(), dec!(-3));
        for bad in [
            "",
            "+5",
            "1_000",
            ".5",
            "5.",
            "1e3",
            " 1",
            "1.2.3",
            "-",
            "0.00000000000000000000000000001",
        ] {
            let error = plain_decimal("groups[0].value", bad).unwrap_err();
            assert!(
                error.to_string().contains("groups[0].value"),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn event_results_keep_order_counts_and_field_paths() {
        // Goal: one result per event, a refusal keeps its code and field, and
        // counts that disagree with the results are a broken answer.
        use pb::event_result::Outcome;
        let at = |seq| pb::EventRecorded {
            seq,
            index: 0,
            late: false,
            counted: true,
        };
        let response = pb::IngestEventsResponse {
            results: vec![
                pb::EventResult {
                    index: 0,
                    outcome: Some(Outcome::Recorded(at(9))),
                },
                pb::EventResult {
                    index: 1,
                    outcome: Some(Outcome::Duplicate(at(4))),
                },
                pb::EventResult {
                    index: 2,
                    outcome: Some(Outcome::Error(pb::ErrorDetail {
                        code: ErrorCode::ValueNotNumeric as i32,
                        field: "events[2].value".into(),
                        message: "not a decimal".into(),
                    })),
                },
            ],
            recorded: 1,
            duplicates: 1,
            rejected: 1,
        };
        let outcome = ingest_outcome(response.clone(), 3).unwrap();
        assert!(matches!(
            outcome.results[0],
            EventResult::Recorded(EventRecorded { seq: 9, .. })
        ));
        assert!(matches!(
            outcome.results[1],
            EventResult::Duplicate(EventRecorded { seq: 4, .. })
        ));
        let EventResult::Rejected(error) = &outcome.results[2] else {
            panic!("expected a rejection");
        };
        assert_eq!(error.index, 2);
        assert_eq!(error.code, ErrorCode::ValueNotNumeric);
        assert_eq!(error.field, "events[2].value");
        assert!(ingest_outcome(response.clone(), 4).is_err());
        let wrong_count = pb::IngestEventsResponse {
            recorded: 2,
            ..response
        };
        let error = ingest_outcome(wrong_count, 3).unwrap_err();
        assert!(error.to_string().contains("recorded: 2"), "{error}");
    }

    #[test]
    fn events_convert_both_ways() {
        // Goal: an event survives the wire unchanged: value text as sent,
        // properties sorted, time in nanoseconds.
        let converted = event("event", Some(wire_event())).unwrap();
        assert_eq!(converted.timestamp, -999_999_995);
        assert_eq!(converted.value.as_deref(), Some("12.50"));
        assert_eq!(event_to_proto(&converted), wire_event());
        assert!(event("event", None).is_err());
    }

    #[test]
    fn meter_versions_convert_and_unknown_aggregations_are_refused() {
        // Goal: "" value property is None, filters keep their values, and an
        // unspecified aggregation is a broken answer naming the field.
        let spec = MeterSpec {
            code: "api_calls".into(),
            aggregation: Aggregation::UniqueCount,
            value_property: Some("user".into()),
            filters: BTreeMap::from([("region".to_string(), vec!["eu".to_string()])]),
            group_by: vec!["region".into()],
            grace_period_seconds: 60,
        };
        let wire = pb::MeterVersion {
            meter: Some(meter_to_proto(&spec, "calls")),
            version: 2,
            seq: 7,
            defined_at: Some(Timestamp {
                seconds: 60,
                nanos: 0,
            }),
            created: true,
        };
        let version = meter_version("m", wire.clone()).unwrap();
        assert_eq!(version.spec, spec);
        assert_eq!(version.description, "calls");
        assert_eq!(version.defined_at, 60_000_000_000);
        let mut unknown = wire;
        unknown.meter.as_mut().unwrap().aggregation = 0;
        let error = meter_version("m", unknown).unwrap_err();
        assert!(error.to_string().contains("m.meter.aggregation"), "{error}");
    }

    #[test]
    fn customer_pages_must_move_forward() {
        // Goal: a page that repeats or goes back is refused, so that reading
        // all pages cannot loop.
        let customer = |id: &str| Customer {
            id: id.into(),
            name: String::new(),
            metadata: BTreeMap::new(),
            created_seq: 1,
            closed_through: None,
        };
        assert!(check_ids_after("", &[customer("a"), customer("b")]).is_ok());
        assert!(check_ids_after("a", &[customer("b")]).is_ok());
        assert!(check_ids_after("b", &[customer("b")]).is_err());
        assert!(check_ids_after("", &[customer("b"), customer("a")]).is_err());
    }

    #[test]
    fn late_event_pages_must_move_forward() {
        // Goal: 0 ends the listing; a next start at or before this one is
        // refused; a page may end inside an entry (same seq, later index).
        let page = |seq, index| pb::ListLateEventsResponse {
            events: vec![],
            next_from_seq: seq,
            next_from_index: index,
        };
        assert_eq!(late_events_page(page(0, 0), (5, 0)).unwrap().next, None);
        assert_eq!(
            late_events_page(page(9, 0), (5, 0)).unwrap().next,
            Some((9, 0))
        );
        assert_eq!(
            late_events_page(page(5, 3), (5, 1)).unwrap().next,
            Some((5, 3))
        );
        assert!(late_events_page(page(5, 1), (5, 1)).is_err());
        assert!(late_events_page(page(4, 9), (5, 0)).is_err());
    }

    #[test]
    fn event_proofs_need_whole_hashes_and_a_matching_inclusion() {
        // Goal: a 31-byte hash or an inclusion proof of another entry is refused.
        let answer = pb::EventProof {
            event: Some(wire_event()),
            seq: 3,
            index: 0,
            event_count: 1,
            event_path: vec![],
            entry: vec![1],
            prev_hash: vec![0; 32],
            inclusion: Some(pb::InclusionProof {
                seq: 3,
                tree_size: 5,
                hashes: vec![vec![7; 32]],
            }),
            checkpoint: "note".into(),
        };
        let proof = event_proof(answer.clone()).unwrap();
        assert_eq!(proof.tree_size, 5);
        assert_eq!(proof.inclusion, vec![[7; 32]]);
        let mut short = answer.clone();
        short.prev_hash = vec![0; 31];
        assert!(event_proof(short).is_err());
        let mut other = answer;
        other.inclusion.as_mut().unwrap().seq = 4;
        assert!(event_proof(other).is_err());
    }
}
