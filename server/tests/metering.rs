//! Metering through the engine, on real files: customers, meter versions,
//! ingestion with per-event results, exactly-once ids, late events, stored
//! aggregates against a scan of the journal, restart, and event proofs.

use std::collections::BTreeMap;
use tally_core::error_code::ErrorCode;
use tally_core::meter::{Aggregation, MeterSpec};
use tally_core::usage::UsageEvent;
use tally_server::error::Error;
use tally_server::metering::ingest::{CustomerSpec, EventRecorded};
use tally_server::metering::series::BucketWidth;
use tally_server::metering::stored::QueryFields;
use tally_server::writer::now_ns;
use tally_server::{Engine, EngineConfig, LedgerError};

const MINUTE: i64 = 60_000_000_000;

/// The start of the current hour, minus a day: safely in the past, whole minutes.
fn base() -> i64 {
    let now = now_ns();
    now - now.rem_euclid(3600 * 1_000_000_000) - 24 * 3600 * 1_000_000_000
}

fn meter(code: &str, aggregation: Aggregation) -> MeterSpec {
    MeterSpec {
        code: code.into(),
        aggregation,
        value_property: (aggregation == Aggregation::UniqueCount).then(|| "user".to_string()),
        filters: BTreeMap::new(),
        group_by: vec!["region".into()],
        grace_period_seconds: 3600,
    }
}

fn event(id: &str, customer: &str, meter: &str, at: i64, value: Option<&str>) -> UsageEvent {
    UsageEvent {
        event_id: id.into(),
        customer: customer.into(),
        meter: meter.into(),
        timestamp: at,
        value: value.map(str::to_string),
        properties: BTreeMap::from([
            ("region".to_string(), "eu".to_string()),
            ("user".to_string(), "u-1".to_string()),
        ]),
    }
}

async fn customers(engine: &Engine, ids: &[&str]) {
    let specs = ids
        .iter()
        .map(|id| CustomerSpec {
            customer_id: id.to_string(),
            name: format!("Customer {id}"),
            metadata: Default::default(),
        })
        .collect();
    for result in engine.create_customers(specs).await.unwrap() {
        result.unwrap();
    }
}

/// A ledger in `dir` with these customers and a `tokens` meter (sum, by region).
async fn tokens_ledger(dir: &std::path::Path, ids: &[&str]) -> Engine {
    let engine = Engine::open(EngineConfig::new(dir)).unwrap();
    customers(&engine, ids).await;
    engine
        .define_meter(meter("tokens", Aggregation::Sum), String::new())
        .await
        .unwrap();
    engine
}

async fn ingest(
    engine: &Engine,
    events: Vec<UsageEvent>,
) -> Vec<Result<EventRecorded, LedgerError>> {
    engine
        .ingest_events(events.into_iter().map(Ok).collect())
        .await
        .unwrap()
}

fn query(meter: &str, customer: &str, from: i64, to: i64) -> QueryFields {
    QueryFields {
        meter: meter.into(),
        customer: customer.into(),
        from,
        to,
        ..Default::default()
    }
}

/// Value of the single group of a query answer, stored and recomputed alike.
fn value_of(engine: &Engine, fields: QueryFields) -> Option<String> {
    let stored = engine.query_usage(fields.clone(), false).unwrap();
    let scanned = engine.query_usage(fields, true).unwrap();
    assert_eq!(stored.buckets, scanned.buckets, "stored and scanned differ");
    let aggregation = stored.meter.spec.aggregation;
    let groups = &stored.buckets[0].groups;
    assert!(groups.len() <= 1, "one group expected: {groups:?}");
    groups
        .values()
        .next()
        .and_then(|a| a.value(aggregation))
        .map(|v| v.normalize().to_string())
}

#[tokio::test]
async fn the_public_aggregation_example_and_exactly_once_ingestion() {
    // Goal: two events 10 and 20 for one customer give count 2, sum 30, max 20,
    // unique 1 (Lago's documented example), from stored aggregates and from a
    // scan of the journal alike; a retried batch changes nothing; the same id
    // with other content is a conflict.
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    customers(&engine, &["acme"]).await;
    let kinds = [
        ("calls_count", Aggregation::Count),
        ("calls_sum", Aggregation::Sum),
        ("calls_max", Aggregation::Max),
        ("calls_users", Aggregation::UniqueCount),
    ];
    for (code, aggregation) in kinds {
        let defined = engine
            .define_meter(meter(code, aggregation), String::new())
            .await
            .unwrap();
        assert_eq!((defined.meter.version, defined.created), (1, true));
    }
    let at = base();
    let mut batch = Vec::new();
    for (code, aggregation) in kinds {
        let numeric = aggregation.is_numeric();
        batch.push(event(
            &format!("{code}-1"),
            "acme",
            code,
            at,
            numeric.then_some("10"),
        ));
        batch.push(event(
            &format!("{code}-2"),
            "acme",
            code,
            at + MINUTE,
            numeric.then_some("20"),
        ));
    }
    let results = ingest(&engine, batch.clone()).await;
    let first_seq = results[0].as_ref().unwrap().seq;
    for (index, result) in results.iter().enumerate() {
        let recorded = result.as_ref().unwrap();
        assert!(!recorded.duplicate && recorded.counted && !recorded.late);
        assert_eq!((recorded.seq, recorded.index), (first_seq, index as u32));
    }
    let window = (at, at + 10 * MINUTE);
    let expect = [
        ("calls_count", "2"),
        ("calls_sum", "30"),
        ("calls_max", "20"),
        ("calls_users", "1"),
    ];
    for (code, expected) in expect {
        assert_eq!(
            value_of(&engine, query(code, "acme", window.0, window.1)).as_deref(),
            Some(expected),
            "{code}"
        );
    }

    // The retry: every event is a duplicate pointing at its first recording.
    let again = ingest(&engine, batch.clone()).await;
    for (index, result) in again.iter().enumerate() {
        let recorded = result.as_ref().unwrap();
        assert!(recorded.duplicate);
        assert_eq!((recorded.seq, recorded.index), (first_seq, index as u32));
    }
    assert_eq!(
        value_of(&engine, query("calls_sum", "acme", window.0, window.1)).as_deref(),
        Some("30")
    );

    // Same id, other content; and a repeat inside one call.
    let mut changed = batch[2].clone();
    changed.value = Some("99".into());
    let fresh = event("calls_sum-3", "acme", "calls_sum", at, Some("5"));
    let results = ingest(&engine, vec![changed, fresh.clone(), fresh]).await;
    let conflict = results[0].as_ref().unwrap_err();
    assert_eq!(
        (conflict.code, conflict.field.as_str()),
        (ErrorCode::EventIdConflict, "events[0].event_id")
    );
    let (first, repeat) = (results[1].as_ref().unwrap(), results[2].as_ref().unwrap());
    assert!(!first.duplicate && repeat.duplicate);
    assert_eq!((first.seq, first.index), (repeat.seq, repeat.index));
    assert_eq!(
        value_of(&engine, query("calls_sum", "acme", window.0, window.1)).as_deref(),
        Some("35")
    );

    // A restart rebuilds aggregates and claims from the journal alone.
    let length = engine.ledger_info().unwrap().journal_length;
    engine.shutdown().await;
    drop(engine);
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    assert_eq!(
        value_of(&engine, query("calls_sum", "acme", window.0, window.1)).as_deref(),
        Some("35")
    );
    let again = ingest(&engine, batch).await;
    assert!(again.iter().all(|r| r.as_ref().unwrap().duplicate));
    assert_eq!(
        engine.ledger_info().unwrap().journal_length,
        length,
        "duplicates write nothing"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn each_bad_event_gets_its_own_error_and_the_rest_are_recorded() {
    // Goal: per-event errors name the field and a stable code; the good events
    // of the same call are recorded.
    let dir = tempfile::tempdir().unwrap();
    let engine = tokens_ledger(dir.path(), &["acme"]).await;
    let at = base();
    let mut no_region = event("e-5", "acme", "tokens", at, Some("1"));
    no_region.properties.remove("region");
    let batch = vec![
        event("e-0", "acme", "tokens", at, Some("1.5")),
        event("e-1", "acme", "nope", at, Some("1")),
        event("e-2", "nobody", "tokens", at, Some("1")),
        event("e-3", "acme", "tokens", at, None),
        event("e-4", "acme", "tokens", at, Some("1e3")),
        no_region,
        event(
            "e-6",
            "acme",
            "tokens",
            now_ns() + 3600 * 1_000_000_000,
            Some("1"),
        ),
        event("", "acme", "tokens", at, Some("1")),
        event("e-8", "acme", "tokens", at, Some("2.25")),
        // The first instant of i64 has no whole minute to be stored in.
        event("e-9", "acme", "tokens", i64::MIN, Some("1")),
        event("e-10", "acme", "tokens", -1, Some("1")),
    ];
    let results = ingest(&engine, batch).await;
    let expected = [
        None,
        Some((ErrorCode::MeterNotFound, "events[1].meter")),
        Some((ErrorCode::CustomerNotFound, "events[2].customer")),
        Some((ErrorCode::ValueMissing, "events[3].value")),
        Some((ErrorCode::ValueNotNumeric, "events[4].value")),
        Some((ErrorCode::PropertyMissing, "events[5].properties.region")),
        Some((ErrorCode::TimestampInFuture, "events[6].timestamp")),
        Some((ErrorCode::FieldRequired, "events[7].event_id")),
        None,
        Some((ErrorCode::FieldInvalid, "events[9].timestamp")),
        Some((ErrorCode::FieldInvalid, "events[10].timestamp")),
    ];
    for (index, (result, expected)) in results.iter().zip(expected).enumerate() {
        match (result, expected) {
            (Ok(_), None) => {}
            (Err(error), Some((code, field))) => {
                assert_eq!(
                    (error.code, error.field.as_str()),
                    (code, field),
                    "event {index}: {error}"
                )
            }
            (result, expected) => panic!("event {index}: {result:?}, expected {expected:?}"),
        }
    }
    assert_eq!(
        value_of(&engine, query("tokens", "acme", at, at + MINUTE)).as_deref(),
        Some("3.75")
    );
    // A whole call of nothing is refused as a call.
    let empty = engine.ingest_events(Vec::new()).await.unwrap_err();
    assert!(matches!(
        empty,
        Error::Ledger(LedgerError {
            code: ErrorCode::BatchEmpty,
            ..
        })
    ));
    engine.shutdown().await;
}

#[tokio::test]
async fn late_events_are_kept_flagged_and_reported_and_older_ones_refused() {
    // Goal: after a period is closed, an event inside the meter's grace window
    // is recorded, flagged late, listed and counted in its own minute; an event
    // before the grace window is refused.
    let dir = tempfile::tempdir().unwrap();
    let engine = tokens_ledger(dir.path(), &["acme", "zeta"]).await;
    let closed = base();
    // Recorded while the period is open; retried after it closed, long before
    // the grace window: still a duplicate (exactly once), never refused.
    let early = event(
        "early",
        "acme",
        "tokens",
        closed - 5 * 60 * MINUTE,
        Some("3"),
    );
    assert!(
        !ingest(&engine, vec![early.clone()]).await[0]
            .as_ref()
            .unwrap()
            .late
    );
    let closed_seq = engine
        .close_usage_period("acme".into(), closed)
        .await
        .unwrap();
    let repeat = engine.close_usage_period("acme".into(), closed).await;
    assert_eq!(
        repeat.unwrap(),
        closed_seq,
        "the same close again is a retry"
    );
    let retry = ingest(&engine, vec![early]).await;
    let retry = retry[0].as_ref().unwrap();
    assert!(retry.duplicate && retry.counted && !retry.late);
    let again = engine
        .close_usage_period("acme".into(), closed - MINUTE)
        .await
        .unwrap_err();
    assert!(matches!(
        again,
        Error::Ledger(LedgerError {
            code: ErrorCode::PeriodNotAfterClosed,
            ..
        })
    ));
    let results = ingest(
        &engine,
        vec![
            event(
                "in-grace",
                "acme",
                "tokens",
                closed - 30 * MINUTE,
                Some("4"),
            ),
            event("too-old", "acme", "tokens", closed - 61 * MINUTE, Some("4")),
            event("open", "acme", "tokens", closed + MINUTE, Some("1")),
            event("other", "zeta", "tokens", closed - 61 * MINUTE, Some("7")),
        ],
    )
    .await;
    assert!(results[0].as_ref().unwrap().late);
    assert_eq!(
        results[1].as_ref().unwrap_err().code,
        ErrorCode::TimestampBeforeGrace
    );
    assert!(!results[2].as_ref().unwrap().late);
    assert!(
        !results[3].as_ref().unwrap().late,
        "another customer's period is open"
    );
    let (late, next) = engine.late_events(None, (0, 0), 0).unwrap();
    assert_eq!(next, None);
    assert_eq!(late.len(), 1);
    assert_eq!(
        (late[0].event.event_id.as_str(), late[0].closed_through),
        ("in-grace", closed)
    );
    assert_eq!(
        value_of(
            &engine,
            query("tokens", "acme", closed - 60 * MINUTE, closed)
        )
        .as_deref(),
        Some("4")
    );
    assert_eq!(
        value_of(
            &engine,
            query("tokens", "acme", closed - 6 * 60 * MINUTE, closed)
        )
        .as_deref(),
        Some("7")
    );
    // A retry of the late event is a duplicate that says it was late.
    let retry = ingest(
        &engine,
        vec![event(
            "in-grace",
            "acme",
            "tokens",
            closed - 30 * MINUTE,
            Some("4"),
        )],
    )
    .await;
    let retry = retry[0].as_ref().unwrap();
    assert!(retry.duplicate && retry.late);
    engine.shutdown().await;
}

#[tokio::test]
async fn meter_versions_group_by_filters_and_series() {
    // Goal: a new version applies to events after it; the aggregation cannot
    // change; query group-by and filters use group-by properties; a series
    // splits the window into buckets whose sum is the window's.
    let dir = tempfile::tempdir().unwrap();
    let engine = tokens_ledger(dir.path(), &["acme"]).await;
    let same = engine
        .define_meter(meter("tokens", Aggregation::Sum), String::new())
        .await
        .unwrap();
    assert_eq!((same.meter.version, same.created), (1, false));
    let changed = engine
        .define_meter(meter("tokens", Aggregation::Max), String::new())
        .await
        .unwrap_err();
    assert!(matches!(
        changed,
        Error::Ledger(LedgerError {
            code: ErrorCode::MeterAggregationChanged,
            ..
        })
    ));
    let at = base();
    let mut us = event("v1-us", "acme", "tokens", at, Some("2"));
    us.properties.insert("region".into(), "us".into());
    ingest(
        &engine,
        vec![event("v1-eu", "acme", "tokens", at, Some("1")), us],
    )
    .await;
    // Version 2 counts only "eu".
    let mut v2 = meter("tokens", Aggregation::Sum);
    v2.filters.insert("region".into(), vec!["eu".into()]);
    let defined = engine.define_meter(v2, "eu only".into()).await.unwrap();
    assert_eq!(defined.meter.version, 2);
    let mut us = event("v2-us", "acme", "tokens", at + 90 * MINUTE, Some("20"));
    us.properties.insert("region".into(), "us".into());
    let results = ingest(
        &engine,
        vec![
            event("v2-eu", "acme", "tokens", at + 90 * MINUTE, Some("10")),
            us,
        ],
    )
    .await;
    assert!(results[0].as_ref().unwrap().counted);
    assert!(
        !results[1].as_ref().unwrap().counted,
        "filtered out by version 2, still recorded"
    );
    assert_eq!(
        value_of(&engine, query("tokens", "acme", at, at + 3 * 60 * MINUTE)).as_deref(),
        Some("13")
    );
    let by_region = QueryFields {
        group_by: vec!["region".into()],
        ..query("tokens", "", at, at + 3 * 60 * MINUTE)
    };
    let answer = engine.query_usage(by_region.clone(), false).unwrap();
    let values: Vec<(String, String)> = answer.buckets[0]
        .groups
        .iter()
        .map(|(key, aggregate)| (key.group[0].clone(), aggregate.sum.unwrap().to_string()))
        .collect();
    assert_eq!(
        values,
        [
            ("eu".to_string(), "11".to_string()),
            ("us".to_string(), "2".to_string())
        ]
    );
    assert_eq!(
        answer.buckets,
        engine.query_usage(by_region, true).unwrap().buckets
    );
    let only_us = QueryFields {
        filters: vec![("region".into(), vec!["us".into()])],
        ..query("tokens", "acme", at, at + 3 * 60 * MINUTE)
    };
    assert_eq!(value_of(&engine, only_us).as_deref(), Some("2"));
    let bad = engine
        .query_usage(
            QueryFields {
                group_by: vec!["user".into()],
                ..query("tokens", "", at, at + MINUTE)
            },
            false,
        )
        .unwrap_err();
    assert!(
        matches!(bad, Error::Ledger(LedgerError { code: ErrorCode::FieldInvalid, ref field, .. }) if field == "group_by[0]")
    );
    let unaligned = engine
        .query_usage(query("tokens", "", at + 1, at + MINUTE), false)
        .unwrap_err();
    assert!(matches!(
        unaligned,
        Error::Ledger(LedgerError {
            code: ErrorCode::WindowInvalid,
            ..
        })
    ));
    let series = engine
        .query_usage_series(
            query("tokens", "acme", at, at + 3 * 60 * MINUTE),
            BucketWidth::Hour,
            false,
        )
        .unwrap();
    let sums: Vec<Option<String>> = series
        .buckets
        .iter()
        .map(|b| b.groups.values().next().map(|a| a.sum.unwrap().to_string()))
        .collect();
    assert_eq!(sums, [Some("3".to_string()), Some("10".to_string()), None]);
    let scanned = engine
        .query_usage_series(
            query("tokens", "acme", at, at + 3 * 60 * MINUTE),
            BucketWidth::Hour,
            true,
        )
        .unwrap();
    assert_eq!(series.buckets, scanned.buckets);
    engine.shutdown().await;
}

#[tokio::test]
async fn one_event_is_proven_against_a_signed_checkpoint() {
    // Goal: the proof's event path leads to the entry's events_root, and the
    // entry is in the checkpointed journal.
    let dir = tempfile::tempdir().unwrap();
    let engine = tokens_ledger(dir.path(), &["acme"]).await;
    let at = base();
    let batch: Vec<UsageEvent> = (0..5)
        .map(|i| event(&format!("p-{i}"), "acme", "tokens", at, Some("1")))
        .collect();
    ingest(&engine, batch.clone()).await;
    let early = engine.prove_event("p-3", None);
    assert!(early.is_err(), "no checkpoint covers it yet");
    let checkpoint = engine.create_checkpoint().await.unwrap();
    let proof = engine.prove_event("p-3", None).unwrap();
    assert_eq!(
        (proof.index, proof.event_count, proof.event.clone()),
        (3, 5, batch[3].clone())
    );
    let entry = tally_audit::bundle::verify_inclusion(
        checkpoint.note.as_bytes(),
        &engine_keys(&engine),
        proof.seq,
        &proof.prev_hash,
        &proof.entry,
        &proof.inclusion,
    )
    .unwrap();
    let tally_core::entry::EntryBody::UsageRecorded(recorded) = entry.entry.body else {
        panic!("not a usage entry");
    };
    tally_audit::usage::verify_event_path(
        &proof.event,
        3,
        5,
        &proof.event_path,
        &recorded.events_root,
    )
    .unwrap();
    let missing = engine.prove_event("nope", None).unwrap_err();
    assert!(matches!(
        missing,
        Error::Ledger(LedgerError {
            code: ErrorCode::EventNotFound,
            ..
        })
    ));
    engine.shutdown().await;
}

fn engine_keys(engine: &Engine) -> Vec<tally_audit::NoteVerifier> {
    engine
        .signing_keys()
        .unwrap()
        .into_iter()
        .map(|key| tally_audit::NoteVerifier::from_vkey(&key.vkey).unwrap())
        .collect()
}

mod arbitrary_events {
    use super::*;
    use proptest::prelude::*;

    fn text() -> BoxedStrategy<String> {
        prop_oneof![
            Just(String::new()),
            "[a-z0-9_-]{1,12}",
            ".{0,40}",
            "[a-z]{130,140}",
        ]
        .boxed()
    }

    fn value() -> BoxedStrategy<Option<String>> {
        prop_oneof![
            Just(None),
            "-?[0-9]{1,30}(\\.[0-9]{1,30})?".prop_map(Some),
            ".{0,20}".prop_map(Some),
            Just(Some("79228162514264337593543950335".to_string())),
            Just(Some("1e3".to_string())),
        ]
        .boxed()
    }

    fn arbitrary_event() -> impl Strategy<Value = UsageEvent> {
        (
            prop_oneof![text(), "e-[0-9]{1,3}"],
            prop_oneof![Just("acme".to_string()), text()],
            prop_oneof![
                Just("tokens".to_string()),
                Just("seats".to_string()),
                text()
            ],
            prop_oneof![
                Just(0i64),
                any::<i64>(),
                (-100_000i64..100_000).prop_map(|s| now_ns() + s * 1_000_000_000),
            ],
            value(),
            prop::collection::btree_map(
                prop_oneof![Just("region".to_string()), Just("user".to_string()), text()],
                text(),
                0..4,
            ),
        )
            .prop_map(
                |(event_id, customer, meter, timestamp, value, properties)| UsageEvent {
                    event_id,
                    customer,
                    meter,
                    timestamp,
                    value,
                    properties,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn any_batch_gets_one_precise_answer_per_event_and_the_aggregates_stay_consistent(
            batches in prop::collection::vec(prop::collection::vec(arbitrary_event(), 1..40), 1..4),
        ) {
            // Goal: whatever a client sends, the engine does not panic, answers every
            // event with a place or an error naming that event's field, records each id
            // at most once, and its stored aggregates equal a scan of what it recorded.
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
                customers(&engine, &["acme"]).await;
                engine.define_meter(meter("tokens", Aggregation::Sum), String::new()).await.unwrap();
                engine.define_meter(meter("seats", Aggregation::UniqueCount), String::new()).await.unwrap();
                let mut places = std::collections::HashMap::new();
                for batch in batches {
                    let results = ingest(&engine, batch.clone()).await;
                    assert_eq!(results.len(), batch.len());
                    for (index, (event, result)) in batch.iter().zip(&results).enumerate() {
                        match result {
                            Ok(recorded) => {
                                let place = (recorded.seq, recorded.index);
                                match places.get(&event.event_id) {
                                    Some(first) => {
                                        assert!(recorded.duplicate, "a recorded id again is a duplicate");
                                        assert_eq!(*first, place, "an id has one place");
                                    }
                                    None => {
                                        assert!(!recorded.duplicate, "a new id is recorded");
                                        places.insert(event.event_id.clone(), place);
                                    }
                                }
                            }
                            Err(error) => assert!(
                                error.field.starts_with(&format!("events[{index}]")),
                                "{error} does not name event {index}"
                            ),
                        }
                    }
                }
                for code in ["tokens", "seats"] {
                    let all = QueryFields {
                        meter: code.into(),
                        from: -(1i64 << 62) / MINUTE * MINUTE,
                        to: (1i64 << 62) / MINUTE * MINUTE,
                        ..Default::default()
                    };
                    // Values near Decimal's limit may overflow a sum: an error, the
                    // same one both ways, never a rounded figure.
                    let answer = |recompute| match engine.query_usage(all.clone(), recompute) {
                        Ok(answer) => Ok(answer.buckets),
                        Err(Error::Ledger(error)) => Err(error.code),
                        Err(other) => panic!("{other}"),
                    };
                    let stored = answer(false);
                    assert!(matches!(stored, Ok(_) | Err(ErrorCode::AmountOverflow)), "{stored:?}");
                    assert_eq!(stored, answer(true));
                }
                engine.shutdown().await;
            });
        }
    }
}

#[tokio::test]
async fn late_events_page_through_an_entry_without_repeats() {
    // Goal: a page may end inside one entry's late events; the next page goes
    // on from the next event, so every late event is listed exactly once.
    let dir = tempfile::tempdir().unwrap();
    let engine = tokens_ledger(dir.path(), &["acme"]).await;
    let closed = base();
    engine
        .close_usage_period("acme".into(), closed)
        .await
        .unwrap();
    let batch: Vec<UsageEvent> = (0..5)
        .map(|i| {
            event(
                &format!("late-{i}"),
                "acme",
                "tokens",
                closed - MINUTE,
                Some("1"),
            )
        })
        .collect();
    assert!(ingest(&engine, batch)
        .await
        .iter()
        .all(|r| r.as_ref().unwrap().late));
    let mut listed = Vec::new();
    let mut from = Some((0, 0));
    while let Some(position) = from {
        let (page, next) = engine.late_events(Some("acme"), position, 2).unwrap();
        assert!(page.len() <= 2);
        listed.extend(page.into_iter().map(|late| late.event.event_id));
        from = next;
    }
    assert_eq!(listed, ["late-0", "late-1", "late-2", "late-3", "late-4"]);
    engine.shutdown().await;
}

#[tokio::test]
async fn customers_page_in_id_order_from_any_point() {
    // Goal: pages of customers follow id order whatever the creation order,
    // from any `after` (a listed id or one between ids), and every customer
    // appears exactly once across the pages.
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..25).map(|i| format!("c{:02}", (i * 7) % 25)).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let engine = tokens_ledger(dir.path(), &id_refs).await;
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = engine.list_customers(&after, 7);
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        after = page.last().unwrap().created.customer_id.clone();
        seen.extend(page.into_iter().map(|c| c.created.customer_id));
    }
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(seen, expected);
    let between: Vec<String> = engine
        .list_customers("c10x", 3)
        .into_iter()
        .map(|c| c.created.customer_id)
        .collect();
    assert_eq!(between, ["c11", "c12", "c13"]);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_usage_batch_is_seen_by_the_next_read() {
    // Goal: a usage batch is answered before its group is folded into the
    // read model, yet every read that starts after the answer sees all its
    // events. Batches of 2,000 events keep the fold long enough for a read
    // that did not wait for it to see too little.
    let dir = tempfile::tempdir().unwrap();
    let engine = tokens_ledger(dir.path(), &["acme"]).await;
    let at = base();
    let (from, to) = (at, at + 60 * MINUTE);
    for round in 1..=12u32 {
        let batch = (0..2_000)
            .map(|n| event(&format!("r{round}-{n}"), "acme", "tokens", at, Some("1")))
            .collect();
        for result in ingest(&engine, batch).await {
            assert!(!result.unwrap().duplicate);
        }
        let expected = (round * 2_000).to_string();
        let stored = engine
            .query_usage(query("tokens", "acme", from, to), false)
            .unwrap();
        let groups = &stored.buckets[0].groups;
        let value = groups
            .values()
            .next()
            .and_then(|a| a.value(Aggregation::Sum))
            .map(|v| v.normalize().to_string());
        assert_eq!(value.as_deref(), Some(expected.as_str()), "round {round}");
    }
    engine.shutdown().await;
}
