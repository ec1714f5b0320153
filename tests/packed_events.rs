//! `IngestEventsPacked` (`docs/packed-events.md`): the packed events batch
//! between the client's encoder (`tally_client::PackedEvents`) and the
//! server's decoder (`tally_server::api::packed_events`), then end to end:
//!
//! - random events, packed by the client, decode on the server to exactly the
//!   same `UsageEvent`s, and so the same event hashes;
//! - arbitrary bytes, and valid batches mutated, never panic the decoder: each
//!   is a batch or a refusal naming its byte offset, a path in the batch and
//!   one of the batch-wide codes;
//! - hand-made hostile batches are refused with the expected code, path and
//!   offset;
//! - against real `tallyd`s, the same events sent through protobuf to one
//!   ledger and packed to another get the same answers and the same usage;
//!   each wire answers the other's events as duplicates, and the same id with
//!   other content as a conflict; an unreadable batch fails the call and
//!   records nothing.
//!
//! Case counts are small enough for CI; raise them with `PROPTEST_CASES` (see
//! `docs/security.md`, "Fuzzing").

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use tally::Tallyd;
use tally_client::{
    Aggregation, Client, ClientError, CustomerSpec, Decimal, ErrorCode, EventRecorded, EventResult,
    IngestOutcome, MeterSpec, PackedEvents, UsageEvent, UsageGroup, UsageQuery, INGEST_EVENTS_MAX,
};
use tally_core::error_code::ErrorCode as CoreCode;
use tally_core::usage::event_hash;
use tally_proto::packed::Writer;
use tally_server::api::packed::BatchError;
use tally_server::api::packed_events::{decode_events, STRINGS_MAX};

#[path = "support/packed_fuzz.rs"]
mod packed_fuzz;
use packed_fuzz::{mutate, mutation, Mutation};

/// `default` cases, or `PROPTEST_CASES` when set (for long runs).
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Random events.
// ---------------------------------------------------------------------------

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[ -~]{0,12}",
        2 => "\\PC{0,8}",
        1 => (0usize..300).prop_map(|n| "é".repeat(n)),
    ]
    .boxed()
}

/// A few strings that events share (the table holds each once, and one string
/// may be a customer in one place and a property value in another), or
/// anything.
fn shared_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec!["acme", "globex", "api_calls", "region", "eu", ""])
            .prop_map(String::from),
        2 => text(),
    ]
    .boxed()
}

/// Decimal text, anything else (kept as sent: the engine judges it), or none.
fn value() -> BoxedStrategy<Option<String>> {
    prop::option::of(prop_oneof![
        2 => "-?[0-9]{1,6}(\\.[0-9]{1,4})?",
        1 => text(),
    ])
    .boxed()
}

fn timestamp() -> BoxedStrategy<i64> {
    prop_oneof![
        4 => any::<i64>(),
        4 => -4_000_000_000_000_000_000i64..4_000_000_000_000_000_000,
        1 => prop::sample::select(vec![i64::MIN, -1, 0, 1, i64::MAX]),
    ]
    .boxed()
}

fn usage_event() -> BoxedStrategy<UsageEvent> {
    (
        text(),
        shared_text(),
        shared_text(),
        timestamp(),
        value(),
        prop::collection::btree_map(shared_text(), shared_text(), 0..=5),
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
        .boxed()
}

fn events() -> BoxedStrategy<Vec<UsageEvent>> {
    prop::collection::vec(usage_event(), 1..16).boxed()
}

fn pack(events: &[UsageEvent]) -> Vec<u8> {
    PackedEvents::new(events)
        .expect("every generated batch can be packed")
        .encoded()
        .to_vec()
}

// ---------------------------------------------------------------------------
// Refusals and decoded batches.
// ---------------------------------------------------------------------------

/// A refused events batch, checked as every packed batch's refusal is.
fn check_refusal(bytes: &[u8], error: &BatchError) {
    packed_fuzz::check_refusal(bytes, error, &["header.", "strings[", "events"]);
}

/// A batch that decodes holds 1 to 10,000 events, and packing them again
/// gives a batch that decodes to them.
fn check_decoded(events: &[UsageEvent]) {
    assert!((1..=INGEST_EVENTS_MAX).contains(&events.len()));
    let again = PackedEvents::new(events).expect("decoded events can be packed");
    assert_eq!(decode_events(&again.encoded()).as_deref(), Ok(events));
}

fn decode_never_panics(bytes: &[u8]) {
    match decode_events(bytes) {
        Ok(events) => check_decoded(&events),
        Err(error) => check_refusal(bytes, &error),
    }
}

/// The format's limits and their neighbours, for mutated counts.
fn extremes() -> Vec<u32> {
    vec![
        0,
        1,
        0xff,
        0xffff,
        10_000,
        10_001,
        STRINGS_MAX as u32,
        STRINGS_MAX as u32 + 1,
        0x7fff_ffff,
        u32::MAX,
    ]
}

/// What the fuzz test feeds the decoder.
#[derive(Debug, Clone)]
enum FuzzInput {
    /// Noise alone.
    Bare(Vec<u8>),
    /// Noise after a valid magic, version and reserved bytes.
    AfterMagic(Vec<u8>),
    /// Noise after a whole header with small counts, so that it reaches the
    /// string table and the events.
    AfterHeader {
        event_count: u32,
        string_count: u32,
        noise: Vec<u8>,
    },
    /// A valid batch, flipped, cut, padded or given extreme counts.
    Mutated(Vec<UsageEvent>, Vec<Mutation>),
}

impl FuzzInput {
    fn bytes(&self) -> Vec<u8> {
        let mut framed = b"TLYE\x01\x00\x00\x00".to_vec();
        match self {
            FuzzInput::Bare(noise) => noise.clone(),
            FuzzInput::AfterMagic(noise) => {
                framed.extend_from_slice(noise);
                framed
            }
            FuzzInput::AfterHeader {
                event_count,
                string_count,
                noise,
            } => {
                framed.extend_from_slice(&event_count.to_le_bytes());
                framed.extend_from_slice(&string_count.to_le_bytes());
                framed.extend_from_slice(noise);
                framed
            }
            FuzzInput::Mutated(events, mutations) => mutate(pack(events), mutations),
        }
    }
}

fn fuzz_input() -> BoxedStrategy<FuzzInput> {
    let noise = || prop::collection::vec(any::<u8>(), 0..512);
    prop_oneof![
        1 => noise().prop_map(FuzzInput::Bare),
        1 => noise().prop_map(FuzzInput::AfterMagic),
        2 => (1u32..4, 0u32..6, noise()).prop_map(|(event_count, string_count, noise)| {
            FuzzInput::AfterHeader {
                event_count,
                string_count,
                noise,
            }
        }),
        4 => (events(), prop::collection::vec(mutation(extremes()), 1..5))
            .prop_map(|(events, mutations)| FuzzInput::Mutated(events, mutations)),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// The properties.
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(300))]

    /// Goal: what the client packs is what the server decodes: the same events,
    /// in order, and so the same event hashes (the key of deduplication).
    #[test]
    fn packed_events_decode_to_the_same_events_and_hashes(events in events()) {
        let packed = PackedEvents::new(&events)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(packed.len(), events.len());
        let decoded = decode_events(&packed.encoded())
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(&decoded, &events);
        for (index, (decoded, sent)) in decoded.iter().zip(&events).enumerate() {
            prop_assert_eq!(event_hash(decoded), event_hash(sent), "event {}", index);
        }
    }
}

proptest! {
    #![proptest_config(config(2_000))]

    /// Goal: any bytes at all (bare, behind a valid header, or a valid batch
    /// mutated) are a batch or a precise refusal, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic_the_events_decoder(input in fuzz_input()) {
        decode_never_panics(&input.bytes());
    }
}

// ---------------------------------------------------------------------------
// Hand-made batches.
// ---------------------------------------------------------------------------

const TIMESTAMP: i64 = 1_700_000_000_000_000_000;

/// One event's bytes: its id, customer and meter numbers, [`TIMESTAMP`],
/// `flags` (with 0x01, `value` follows), properties as (name, value) numbers.
fn raw_event(
    id: &str,
    customer: u32,
    meter: u32,
    flags: u8,
    value: &str,
    properties: &[(u32, u32)],
) -> Vec<u8> {
    let mut writer = Writer::new();
    writer.str16(id).unwrap();
    writer.u32(customer);
    writer.u32(meter);
    writer.i64(TIMESTAMP);
    writer.u8(flags);
    if flags & 0x01 != 0 {
        writer.str16(value).unwrap();
    }
    writer.u16(properties.len() as u16);
    for (name, value) in properties {
        writer.u32(*name);
        writer.u32(*value);
    }
    writer.into_vec()
}

/// A batch: the header (stating `event_count`), the string table, the events.
fn raw_batch(event_count: u32, strings: &[&str], events: &[Vec<u8>]) -> Vec<u8> {
    let mut writer = Writer::new();
    writer.bytes(b"TLYE");
    writer.u16(1);
    writer.u16(0);
    writer.u32(event_count);
    writer.u32(strings.len() as u32);
    for text in strings {
        writer.str16(text).unwrap();
    }
    for event in events {
        writer.bytes(event);
    }
    writer.into_vec()
}

const STRINGS: [&str; 5] = ["acme", "api_calls", "region", "eu", "us"];

/// The bytes of the table of [`STRINGS`].
fn table_bytes() -> usize {
    STRINGS.iter().map(|text| 2 + text.len()).sum()
}

/// Two events: `e0` with a value and region eu, `e1` without and region us.
fn base_events() -> Vec<Vec<u8>> {
    vec![
        raw_event("e0", 0, 1, 0x01, "1", &[(2, 3)]),
        raw_event("e1", 0, 1, 0x00, "", &[(2, 4)]),
    ]
}

fn base_batch() -> Vec<u8> {
    raw_batch(2, &STRINGS, &base_events())
}

/// Where the field at `within` bytes into event `index` of [`base_batch`] is.
fn base_offset(index: usize, within: usize) -> usize {
    let events = base_events();
    16 + table_bytes() + events[..index].iter().map(Vec::len).sum::<usize>() + within
}

/// Where an event's customer number, flags and first property are, from its
/// start, for an id of 2 bytes (and, after the flags, a value of 1 byte).
const CUSTOMER_AT: usize = 2 + 2;
const FLAGS_AT: usize = CUSTOMER_AT + 4 + 4 + 8;
const PROPERTIES_AT: usize = FLAGS_AT + 1 + 3 + 2;

fn expect_refusal(name: &str, bytes: &[u8], code: CoreCode, path: &str, offset: usize) {
    let error = decode_events(bytes).expect_err(name);
    check_refusal(bytes, &error);
    assert_eq!(
        (error.code, error.path.as_str(), error.offset),
        (code, path, offset),
        "{name}: {error}"
    );
    let message = error.to_ledger_error().message;
    assert!(message.contains(path), "{name}: {message}");
}

#[test]
fn the_base_batch_is_what_the_client_writes() {
    // Goal: the layout the hostile batches below start from is the client's.
    let event = |id: &str, value: Option<&str>, region: &str| UsageEvent {
        event_id: id.into(),
        customer: "acme".into(),
        meter: "api_calls".into(),
        timestamp: TIMESTAMP,
        value: value.map(String::from),
        properties: BTreeMap::from([("region".into(), region.into())]),
    };
    let events = vec![event("e0", Some("1"), "eu"), event("e1", None, "us")];
    assert_eq!(pack(&events), base_batch());
    assert_eq!(decode_events(&base_batch()), Ok(events));
    assert_eq!(
        base_offset(1, 0) + base_events()[1].len(),
        base_batch().len()
    );
}

#[test]
fn hostile_headers_are_refused_with_their_code_and_path() {
    // Goal: magic, version, reserved bits and the two counts are checked, each
    // refused at its own bytes with its own code.
    let patched = |at: usize, bytes: &[u8]| {
        let mut batch = base_batch();
        batch[at..at + bytes.len()].copy_from_slice(bytes);
        batch
    };
    let invalid = CoreCode::FieldInvalid;
    let cases = [
        (
            "transaction magic",
            patched(0, b"TLYB"),
            invalid,
            "header.magic",
            0,
        ),
        (
            "version 2",
            patched(4, &2u16.to_le_bytes()),
            invalid,
            "header.version",
            4,
        ),
        (
            "version 0",
            patched(4, &0u16.to_le_bytes()),
            invalid,
            "header.version",
            4,
        ),
        (
            "reserved bit",
            patched(6, &0x8000u16.to_le_bytes()),
            invalid,
            "header.reserved",
            6,
        ),
        (
            "no events",
            patched(8, &0u32.to_le_bytes()),
            CoreCode::BatchEmpty,
            "header.event_count",
            8,
        ),
        (
            "10,001 events",
            patched(8, &10_001u32.to_le_bytes()),
            CoreCode::BatchTooLarge,
            "header.event_count",
            8,
        ),
        (
            "u32::MAX events",
            patched(8, &u32::MAX.to_le_bytes()),
            CoreCode::BatchTooLarge,
            "header.event_count",
            8,
        ),
        // 10,000 is allowed, but 10,000 events of at least 21 bytes do not fit.
        (
            "10,000 events",
            patched(8, &10_000u32.to_le_bytes()),
            invalid,
            "events",
            base_offset(0, 0),
        ),
        (
            "4 events in 2",
            patched(8, &4u32.to_le_bytes()),
            invalid,
            "events",
            base_offset(0, 0),
        ),
        // 3 events of 21 bytes fit in the 2 sent; the third is cut at its id.
        (
            "3 events in 2",
            patched(8, &3u32.to_le_bytes()),
            invalid,
            "events[2].event_id",
            base_batch().len(),
        ),
        (
            "a string count that cannot fit",
            patched(12, &u32::MAX.to_le_bytes()),
            invalid,
            "header.string_count",
            12,
        ),
        (
            "1,000 strings in 100 bytes",
            patched(12, &1_000u32.to_le_bytes()),
            invalid,
            "header.string_count",
            12,
        ),
        (
            "cut in the magic",
            base_batch()[..3].to_vec(),
            invalid,
            "header.magic",
            0,
        ),
        (
            "cut in the counts",
            base_batch()[..14].to_vec(),
            invalid,
            "header.string_count",
            12,
        ),
    ];
    for (name, bytes, code, path, offset) in cases {
        expect_refusal(name, &bytes, code, path, offset);
    }

    // More strings than a full batch may name, each an empty string: too
    // large, whatever the bytes.
    let empty = vec![""; STRINGS_MAX + 1];
    let event = raw_event("e0", 0, 0, 0, "", &[]);
    let bytes = raw_batch(1, &empty, &[event]);
    expect_refusal(
        "too many strings",
        &bytes,
        CoreCode::BatchTooLarge,
        "header.string_count",
        12,
    );
}

#[test]
fn hostile_events_are_refused_with_their_code_and_path() {
    // Goal: a string number past the table, non-UTF-8, an unknown flag, a
    // property named twice and bytes after the last event each refuse the
    // batch at the byte and field they are in.
    let invalid = CoreCode::FieldInvalid;
    let with = |index: usize, event: Vec<u8>| {
        let mut events = base_events();
        events[index] = event;
        raw_batch(2, &STRINGS, &events)
    };
    let after_value = PROPERTIES_AT;
    let cases = [
        (
            "customer past the table",
            with(1, raw_event("e1", 5, 1, 0, "", &[(2, 4)])),
            "events[1].customer",
            base_offset(1, CUSTOMER_AT),
        ),
        (
            "meter at u32::MAX",
            with(1, raw_event("e1", 0, u32::MAX, 0, "", &[(2, 4)])),
            "events[1].meter",
            base_offset(1, CUSTOMER_AT + 4),
        ),
        (
            "property value past the table",
            with(0, raw_event("e0", 0, 1, 0x01, "1", &[(2, 5)])),
            "events[0].properties[0].value",
            base_offset(0, after_value + 4),
        ),
        (
            "unknown flag 0x02",
            with(0, raw_event("e0", 0, 1, 0x02, "1", &[(2, 3)])),
            "events[0].flags",
            base_offset(0, FLAGS_AT),
        ),
        (
            "unknown flag 0x80 beside the value flag",
            with(0, raw_event("e0", 0, 1, 0x81, "1", &[(2, 3)])),
            "events[0].flags",
            base_offset(0, FLAGS_AT),
        ),
        (
            "property named twice",
            with(0, raw_event("e0", 0, 1, 0x01, "1", &[(2, 3), (2, 4)])),
            "events[0].properties[1].name",
            base_offset(0, after_value + 8),
        ),
        (
            "property named twice, with its value again",
            with(
                0,
                raw_event("e0", 0, 1, 0x01, "1", &[(2, 3), (0, 3), (2, 3)]),
            ),
            "events[0].properties[2].name",
            base_offset(0, after_value + 16),
        ),
        (
            "property count past the bytes",
            {
                let mut event = raw_event("e0", 0, 1, 0x01, "1", &[(2, 3)]);
                event[after_value - 2..after_value].copy_from_slice(&u16::MAX.to_le_bytes());
                with(0, event)
            },
            "events[0].property_count",
            base_offset(0, after_value - 2),
        ),
    ];
    for (name, bytes, path, offset) in cases {
        expect_refusal(name, &bytes, invalid, path, offset);
    }

    // The same name under two numbers of the table is still one name.
    let strings = ["acme", "api_calls", "region", "eu", "us", "region"];
    let event = raw_event("e0", 0, 1, 0, "", &[(2, 3), (5, 4)]);
    let bytes = raw_batch(1, &strings, &[event]);
    let at = 16 + strings.iter().map(|s| 2 + s.len()).sum::<usize>() + FLAGS_AT + 1 + 2 + 8;
    expect_refusal(
        "a name written twice",
        &bytes,
        invalid,
        "events[0].properties[1].name",
        at,
    );

    // Bytes after the last event.
    let mut longer = base_batch();
    longer.push(0);
    expect_refusal(
        "a byte after the last event",
        &longer,
        invalid,
        "events[2]",
        base_batch().len(),
    );
    let mut longer = base_batch();
    longer.extend_from_slice(&base_events()[1]);
    expect_refusal(
        "a whole event too many",
        &longer,
        invalid,
        "events[2]",
        base_batch().len(),
    );

    // Not UTF-8: in the table, in an id, in a value.
    let mut bytes = base_batch();
    bytes[16 + 2 + 1] = 0xff; // "a?me"
    expect_refusal("table not UTF-8", &bytes, invalid, "strings[0]", 16 + 2 + 1);
    let mut bytes = base_batch();
    bytes[base_offset(1, 2)] = 0xc3; // "e1" -> a cut two-byte sequence
    expect_refusal(
        "id not UTF-8",
        &bytes,
        invalid,
        "events[1].event_id",
        base_offset(1, 2),
    );
    let mut bytes = base_batch();
    bytes[base_offset(0, FLAGS_AT + 1 + 2)] = 0x80; // "1" -> a continuation byte
    let at = base_offset(0, FLAGS_AT + 3);
    expect_refusal("value not UTF-8", &bytes, invalid, "events[0].value", at);
}

#[test]
fn every_truncation_of_a_valid_batch_is_refused_within_it() {
    // Goal: a batch cut anywhere is refused as unreadable, at an offset within
    // what was sent.
    let bytes = base_batch();
    for len in 0..bytes.len() {
        let error = decode_events(&bytes[..len]).unwrap_err();
        check_refusal(&bytes[..len], &error);
        assert_eq!(error.code, CoreCode::FieldInvalid, "{len}: {error}");
    }
}

#[test]
fn a_long_string_named_by_every_event_is_too_large() {
    // Goal: a small batch cannot make the server copy gigabytes of strings:
    // 10,000 events naming one 60,000-byte customer are refused as too large.
    let long = "c".repeat(60_000);
    let strings = [long.as_str(), "api_calls"];
    let events: Vec<Vec<u8>> = (0..INGEST_EVENTS_MAX)
        .map(|_| raw_event("", 0, 1, 0, "", &[]))
        .collect();
    let bytes = raw_batch(INGEST_EVENTS_MAX as u32, &strings, &events);
    let error = decode_events(&bytes).unwrap_err();
    check_refusal(&bytes, &error);
    assert_eq!(error.code, CoreCode::BatchTooLarge, "{error}");
    assert!(
        error.path.starts_with("events[") && error.path.ends_with("].customer"),
        "{error}"
    );
    // The same events, naming a short customer, decode.
    let strings = ["acme", "api_calls"];
    let bytes = raw_batch(INGEST_EVENTS_MAX as u32, &strings, &events);
    assert_eq!(
        decode_events(&bytes).map(|events| events.len()),
        Ok(INGEST_EVENTS_MAX)
    );
}

#[test]
fn events_at_every_limit_decode_however_many_share_their_strings() {
    // Goal: a batch of valid events is never too large to decode, even when
    // every event names the same longest customer, meter and 32 properties of
    // the longest names and values (each event copies about 38 times its own
    // packed size out of the string table).
    let customer = "c".repeat(128);
    let meter = "m".repeat(64);
    let names: Vec<String> = (0..32).map(|n| format!("{n:0>64}")).collect();
    let values: Vec<String> = (0..32).map(|n| format!("{n:v>256}")).collect();
    let properties: BTreeMap<String, String> = names.into_iter().zip(values).collect();
    let events: Vec<UsageEvent> = (0..INGEST_EVENTS_MAX)
        .map(|n| UsageEvent {
            event_id: format!("e{n}"),
            customer: customer.clone(),
            meter: meter.clone(),
            timestamp: 1_700_000_000_000_000_000,
            value: None,
            properties: properties.clone(),
        })
        .collect();
    let bytes = pack(&events);
    let copied = INGEST_EVENTS_MAX * (128 + 64 + 32 * (64 + 256));
    assert!(
        copied > 16 * bytes.len(),
        "the budget per batch byte alone would refuse it"
    );
    assert_eq!(decode_events(&bytes), Ok(events));
}

// ---------------------------------------------------------------------------
// End to end.
// ---------------------------------------------------------------------------

const MINUTE_NS: i64 = 60_000_000_000;
const HOUR_NS: i64 = 60 * MINUTE_NS;
const DAY_NS: i64 = 24 * HOUR_NS;
/// Summed by region.
const METER: &str = "api_calls";
/// Summed, counting only region eu.
const EU_METER: &str = "eu_calls";
const CUSTOMERS: [&str; 3] = ["acme", "globex", "initech"];
const REGIONS: [&str; 3] = ["eu", "us", "ap"];
/// Recorded events of the e2e batch; the refused ones come after.
const RECORDED_EVENTS: usize = 240;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// The start of the current hour, a day ago: whole minutes, in the past.
fn base() -> i64 {
    let now = now_ns();
    now - now.rem_euclid(HOUR_NS) - DAY_NS
}

/// globex's usage is closed through `base + 6 h`: its events before that are
/// late (within the meters' grace).
fn globex_closed_through(base: i64) -> i64 {
    base + 6 * HOUR_NS
}

/// A `tallyd` that signs no checkpoint while the test runs, so that two
/// ledgers given the same calls have the same journal, seq for seq.
fn start(dir: &std::path::Path) -> Tallyd {
    let config = dir.join("tallyd.toml");
    std::fs::write(
        &config,
        "[audit]\ncheckpoint-every-entries = 1000000\ncheckpoint-interval-ms = 3600000\n",
    )
    .expect("write config");
    Tallyd::start_with_args(&dir.join("data"), &["--config", config.to_str().unwrap()])
}

fn meter(code: &str, filters: BTreeMap<String, Vec<String>>) -> MeterSpec {
    MeterSpec {
        code: code.to_string(),
        aggregation: Aggregation::Sum,
        value_property: None,
        filters,
        group_by: vec!["region".to_string()],
        grace_period_seconds: 2 * 24 * 3600,
    }
}

/// A fresh ledger with [`CUSTOMERS`], [`METER`] and [`EU_METER`], and
/// globex's usage closed through [`globex_closed_through`].
async fn metering_ledger(base: i64) -> (tempfile::TempDir, Tallyd, Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let client = server.client().await.unwrap();
    let customers = CUSTOMERS.iter().map(|id| CustomerSpec::new(*id));
    for result in client.create_customers(customers).await.unwrap() {
        assert!(result.unwrap().created);
    }
    client
        .define_meter(&meter(METER, BTreeMap::new()), "API calls")
        .await
        .unwrap();
    let eu = BTreeMap::from([("region".to_string(), vec!["eu".to_string()])]);
    client
        .define_meter(&meter(EU_METER, eu), "EU calls")
        .await
        .unwrap();
    client
        .close_usage_period("globex", globex_closed_through(base))
        .await
        .unwrap();
    (dir, server, client)
}

/// Event `number`'s value in hundredths: 1.00 plus 0.00 to 9.99.
fn value_cents(number: usize) -> i64 {
    100 + (number * 37 % 1_000) as i64
}

/// Recorded event `number`: every fifth for [`EU_METER`], the rest for
/// [`METER`]; timestamps over the day after `base`.
fn recorded_event(number: usize, base: i64) -> UsageEvent {
    let cents = value_cents(number);
    let mut properties = BTreeMap::from([(
        "region".to_string(),
        REGIONS[number % REGIONS.len()].to_string(),
    )]);
    if number.is_multiple_of(4) {
        properties.insert("note".to_string(), format!("ünïcödé {number}"));
    }
    UsageEvent {
        event_id: format!("evt-{number:04}"),
        customer: CUSTOMERS[number % CUSTOMERS.len()].to_string(),
        meter: if number.is_multiple_of(5) {
            EU_METER
        } else {
            METER
        }
        .to_string(),
        timestamp: base + (number as i64 * 7 % 1_440) * MINUTE_NS,
        value: Some(format!("{}.{:02}", cents / 100, cents % 100)),
        properties,
    }
}

/// An event to refuse, `number` of them: for globex, after its close, for
/// [`METER`] in region eu, until `change` makes it refused.
fn refused_event(number: usize, base: i64, change: impl Fn(&mut UsageEvent)) -> UsageEvent {
    let mut event = UsageEvent {
        event_id: format!("refused-{number}"),
        customer: "globex".into(),
        meter: METER.into(),
        timestamp: base + 12 * HOUR_NS,
        value: Some("1.00".into()),
        properties: BTreeMap::from([("region".to_string(), "eu".to_string())]),
    };
    change(&mut event);
    event
}

/// A way to make [`refused_event`] refused, and the code and field it gets.
type RefusalCase = (fn(&mut UsageEvent), ErrorCode, &'static str);

/// The e2e batch: [`RECORDED_EVENTS`] events to record, an in-call duplicate
/// of event 3, then one of each way to be refused, with the code and field
/// (within the event) each must get.
fn e2e_events(base: i64) -> (Vec<UsageEvent>, Vec<(ErrorCode, &'static str)>) {
    let mut events: Vec<UsageEvent> = (0..RECORDED_EVENTS)
        .map(|number| recorded_event(number, base))
        .collect();
    events.push(events[3].clone());
    // The same id as event 4, another value.
    let mut conflict = events[4].clone();
    conflict.value = Some("99".into());
    let mut refused = vec![(conflict, ErrorCode::EventIdConflict, "event_id")];
    let cases: [RefusalCase; 8] = [
        (
            |e| e.customer = "nobody".into(),
            ErrorCode::CustomerNotFound,
            "customer",
        ),
        (
            |e| e.value = Some("twelve".into()),
            ErrorCode::ValueNotNumeric,
            "value",
        ),
        (
            |e| e.timestamp = now_ns() + HOUR_NS,
            ErrorCode::TimestampInFuture,
            "timestamp",
        ),
        (
            |e| e.meter = "no_such_meter".into(),
            ErrorCode::MeterNotFound,
            "meter",
        ),
        (
            |e| e.timestamp = -MINUTE_NS,
            ErrorCode::FieldInvalid,
            "timestamp",
        ),
        (
            |e| e.event_id = String::new(),
            ErrorCode::FieldRequired,
            "event_id",
        ),
        (
            |e| e.event_id = "x".repeat(129),
            ErrorCode::FieldTooLong,
            "event_id",
        ),
        (
            |e| e.event_id = "évt".into(),
            ErrorCode::FieldInvalid,
            "event_id",
        ),
    ];
    for (number, (change, code, field)) in cases.into_iter().enumerate() {
        refused.push((refused_event(number, base, change), code, field));
    }
    // Before globex's close less the meter's grace.
    let early = refused_event(99, base, |e| e.timestamp = base - 3 * DAY_NS);
    refused.push((early, ErrorCode::TimestampBeforeGrace, "timestamp"));
    let mut expected = Vec::new();
    for (event, code, field) in refused {
        events.push(event);
        expected.push((code, field));
    }
    (events, expected)
}

/// One event's answer without the message, which names the ledger's clock
/// for a timestamp in the future.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Recorded(EventRecorded),
    Duplicate(EventRecorded),
    Refused { code: ErrorCode, field: String },
}

fn answers(outcome: &IngestOutcome) -> Vec<Answer> {
    outcome
        .results
        .iter()
        .enumerate()
        .map(|(index, result)| match result {
            EventResult::Recorded(place) => Answer::Recorded(*place),
            EventResult::Duplicate(place) => Answer::Duplicate(*place),
            EventResult::Rejected(error) => {
                assert_eq!(error.index, index);
                assert!(!error.message.is_empty());
                Answer::Refused {
                    code: error.code,
                    field: error.field.clone(),
                }
            }
        })
        .collect()
}

/// The messages of refused events, but for a timestamp in the future (its
/// message names the ledger's clock).
fn messages(outcome: &IngestOutcome) -> Vec<(usize, String)> {
    outcome
        .results
        .iter()
        .enumerate()
        .filter_map(|(index, result)| match result {
            EventResult::Rejected(error) if error.code != ErrorCode::TimestampInFuture => {
                Some((index, error.message.clone()))
            }
            _ => None,
        })
        .collect()
}

async fn send_packed(client: &Client, events: &[UsageEvent]) -> IngestOutcome {
    let packed = PackedEvents::new(events).unwrap();
    client.ingest_events_packed(&packed).await.unwrap()
}

async fn usage(client: &Client, meter: &str, base: i64) -> Vec<UsageGroup> {
    let query = UsageQuery::new(meter, base - DAY_NS, base + 2 * DAY_NS).group_by("region");
    let mut groups = client.query_usage(&query).await.unwrap().groups;
    groups.sort_by(|a, b| (&a.customer, &a.group).cmp(&(&b.customer, &b.group)));
    groups
}

/// Each (customer, region)'s count and sum of the recorded events of `meter`
/// that count (for [`EU_METER`], region eu only): the plain model.
fn expected_usage(meter: &str, base: i64) -> BTreeMap<(String, String), (u64, Decimal)> {
    let mut model = BTreeMap::new();
    for number in 0..RECORDED_EVENTS {
        let event = recorded_event(number, base);
        let region = event.properties["region"].clone();
        if event.meter != meter || (meter == EU_METER && region != "eu") {
            continue;
        }
        let (count, sum) = model
            .entry((event.customer, region))
            .or_insert((0u64, Decimal::ZERO));
        *count += 1;
        *sum += Decimal::new(value_cents(number), 2);
    }
    model
}

fn observed_usage(groups: &[UsageGroup]) -> BTreeMap<(String, String), (u64, Decimal)> {
    groups
        .iter()
        .map(|group| {
            (
                (group.customer.clone(), group.group["region"].clone()),
                (group.count, group.value),
            )
        })
        .collect()
}

/// What a resend of `first`'s events must answer: each held event as a
/// duplicate at the same place, each refusal as it was.
fn as_resent(first: &[Answer]) -> Vec<Answer> {
    first
        .iter()
        .map(|answer| match answer {
            Answer::Recorded(place) | Answer::Duplicate(place) => Answer::Duplicate(*place),
            refused => refused.clone(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_events_are_answered_and_counted_as_the_protobuf_events() {
    // Goal: the same events through protobuf to one ledger and packed to
    // another get the same answers and usage; resent on the other wire they
    // are duplicates, and their ids with other content conflicts, on both.
    let base = base();
    let (_dir_a, server_a, a) = metering_ledger(base).await;
    let (_dir_b, server_b, b) = metering_ledger(base).await;
    let (events, expected_refusals) = e2e_events(base);

    let protobuf = a.ingest_events(&events).await.unwrap();
    let packed = send_packed(&b, &events).await;
    assert_eq!(
        answers(&packed),
        answers(&protobuf),
        "the two wires answer alike"
    );
    assert_eq!(messages(&packed), messages(&protobuf));
    assert_eq!(
        (packed.recorded, packed.duplicates, packed.rejected),
        (protobuf.recorded, protobuf.duplicates, protobuf.rejected)
    );

    // What the answers say: the first events recorded, late for globex before
    // its close, counted unless filtered out; the in-call duplicate where its
    // twin is; each refusal with its code and field.
    let answers_b = answers(&packed);
    let closed = globex_closed_through(base);
    for (number, answer) in answers_b[..RECORDED_EVENTS].iter().enumerate() {
        let event = &events[number];
        let Answer::Recorded(place) = answer else {
            panic!("event {number}: {answer:?}")
        };
        assert_eq!(
            place.late,
            event.customer == "globex" && event.timestamp < closed
        );
        assert_eq!(
            place.counted,
            event.meter == METER || event.properties["region"] == "eu",
            "event {number}"
        );
    }
    assert!(answers_b
        .iter()
        .any(|a| matches!(a, Answer::Recorded(p) if p.late)));
    assert!(answers_b
        .iter()
        .any(|a| matches!(a, Answer::Recorded(p) if !p.counted)));
    let Answer::Recorded(twin) = answers_b[3] else {
        unreachable!()
    };
    assert_eq!(answers_b[RECORDED_EVENTS], Answer::Duplicate(twin));
    let refusals: Vec<Answer> = expected_refusals
        .iter()
        .enumerate()
        .map(|(n, (code, field))| Answer::Refused {
            code: *code,
            field: format!("events[{}].{field}", RECORDED_EVENTS + 1 + n),
        })
        .collect();
    assert_eq!(answers_b[RECORDED_EVENTS + 1..], refusals[..]);
    assert_eq!(
        (packed.recorded, packed.duplicates, packed.rejected),
        (RECORDED_EVENTS as u64, 1, refusals.len() as u64)
    );

    // The same usage on both ledgers, and the model's.
    for meter in [METER, EU_METER] {
        let usage_b = usage(&b, meter, base).await;
        assert_eq!(usage(&a, meter, base).await, usage_b, "{meter}");
        assert_eq!(
            observed_usage(&usage_b),
            expected_usage(meter, base),
            "{meter}"
        );
    }

    // Resent on the other wire: duplicates at the same places, refusals as
    // they were, nothing recorded.
    let length_a = a.ledger_info().await.unwrap().journal_length;
    let length_b = b.ledger_info().await.unwrap().journal_length;
    let packed_to_a = send_packed(&a, &events).await;
    let protobuf_to_b = b.ingest_events(&events).await.unwrap();
    assert_eq!(answers(&packed_to_a), as_resent(&answers(&protobuf)));
    assert_eq!(answers(&protobuf_to_b), as_resent(&answers(&packed)));
    assert_eq!(messages(&packed_to_a), messages(&protobuf));
    assert_eq!(packed_to_a.recorded + protobuf_to_b.recorded, 0);
    assert_eq!(a.ledger_info().await.unwrap().journal_length, length_a);
    assert_eq!(b.ledger_info().await.unwrap().journal_length, length_b);

    // The same ids with other content: conflicts on both wires, on both.
    let changes: [fn(&mut UsageEvent); 5] = [
        |e| e.value = Some("1000".into()),
        |e| e.value = None,
        |e| e.timestamp += MINUTE_NS,
        |e| {
            e.properties.insert("region".into(), "mars".into());
        },
        |e| {
            e.customer = if e.customer == "acme" {
                "globex"
            } else {
                "acme"
            }
            .into()
        },
    ];
    let others: Vec<UsageEvent> = changes
        .iter()
        .enumerate()
        .map(|(number, change)| {
            let mut event = events[number + 10].clone();
            change(&mut event);
            assert_ne!(event, events[number + 10]);
            event
        })
        .collect();
    for (name, client) in [("a", &a), ("b", &b)] {
        for outcome in [
            send_packed(client, &others).await,
            client.ingest_events(&others).await.unwrap(),
        ] {
            let expected: Vec<Answer> = (0..others.len())
                .map(|index| Answer::Refused {
                    code: ErrorCode::EventIdConflict,
                    field: format!("events[{index}].event_id"),
                })
                .collect();
            assert_eq!(answers(&outcome), expected, "ledger {name}");
        }
    }
    assert_eq!(a.ledger_info().await.unwrap().journal_length, length_a);
    assert_eq!(b.ledger_info().await.unwrap().journal_length, length_b);
    for meter in [METER, EU_METER] {
        assert_eq!(usage(&a, meter, base).await, usage(&b, meter, base).await);
    }

    drop((a, b));
    tokio::task::spawn_blocking(move || {
        server_a.terminate_and_verify();
        server_b.terminate_and_verify();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_packed_events_batch_fails_the_call_and_records_nothing() {
    // Goal: a batch that cannot be read fails the whole call (InvalidArgument,
    // field `batch`, naming the byte and field), records nothing, and the
    // server goes on serving.
    let base = base();
    let (_dir, server, client) = metering_ledger(base).await;
    let length = client.ledger_info().await.unwrap().journal_length;
    let call = |bytes: Vec<u8>| {
        let mut raw = client.raw_metering();
        async move {
            let request = tally_client::proto::PackedEventsRequest {
                batch: bytes.into(),
            };
            ClientError::from(raw.ingest_events_packed(request).await.unwrap_err())
        }
    };
    let events: Vec<UsageEvent> = (0..3).map(|number| recorded_event(number, base)).collect();
    let good = pack(&events);

    // The second event's flags set to 0x02: after its id, customer and meter
    // numbers and timestamp.
    let id_at = good
        .windows(8)
        .position(|window| window == b"evt-0001")
        .unwrap();
    let at = id_at + "evt-0001".len() + 4 + 4 + 8;
    let mut bad_flags = good.clone();
    assert_eq!(bad_flags[at], 0x01);
    bad_flags[at] = 0x02;
    let error = call(bad_flags).await;
    let ClientError::Api {
        code,
        field,
        message,
        status,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(*code, ErrorCode::FieldInvalid);
    assert_eq!(*status, tonic::Code::InvalidArgument);
    assert_eq!(field, "batch");
    assert!(
        message.contains(&format!("byte {at}"))
            && message.contains("events[1].flags")
            && message.contains("unknown flags 0x02"),
        "{message}"
    );

    // Not a batch, a later version, a cut batch, trailing bytes, empty, too
    // many events.
    for (name, bytes, expected, status) in [
        (
            "not a batch",
            b"hello".to_vec(),
            ErrorCode::FieldInvalid,
            tonic::Code::InvalidArgument,
        ),
        (
            "nothing",
            Vec::new(),
            ErrorCode::FieldInvalid,
            tonic::Code::InvalidArgument,
        ),
        (
            "version 2",
            [&good[..4], &[2, 0], &good[6..]].concat(),
            ErrorCode::FieldInvalid,
            tonic::Code::InvalidArgument,
        ),
        (
            "cut",
            good[..good.len() - 1].to_vec(),
            ErrorCode::FieldInvalid,
            tonic::Code::InvalidArgument,
        ),
        (
            "padded",
            [&good[..], &[0]].concat(),
            ErrorCode::FieldInvalid,
            tonic::Code::InvalidArgument,
        ),
        (
            "no events",
            [&good[..8], &0u32.to_le_bytes(), &good[12..]].concat(),
            ErrorCode::BatchEmpty,
            tonic::Code::InvalidArgument,
        ),
        (
            "10,001 events",
            [&good[..8], &10_001u32.to_le_bytes(), &good[12..]].concat(),
            ErrorCode::BatchTooLarge,
            tonic::Code::ResourceExhausted,
        ),
    ] {
        let error = call(bytes).await;
        assert_eq!(error.code(), Some(expected), "{name}: {error}");
        assert_eq!(error.status(), Some(status), "{name}: {error}");
        let ClientError::Api { field, .. } = &error else {
            unreachable!()
        };
        assert_eq!(field, "batch", "{name}");
    }
    assert_eq!(client.ledger_info().await.unwrap().journal_length, length);

    // The good batch still goes through, once.
    let outcome = client
        .ingest_events_packed(&PackedEvents::new(&events).unwrap())
        .await
        .unwrap();
    assert_eq!((outcome.recorded, outcome.rejected), (3, 0), "{outcome:?}");
    assert_eq!(
        client.ledger_info().await.unwrap().journal_length,
        length + 1
    );
    drop(client);
    tokio::task::spawn_blocking(move || server.terminate_and_verify())
        .await
        .unwrap();
}
