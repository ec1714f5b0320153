//! Usage events, and the per-event check that turns one into what aggregation
//! needs (a [`MeteredEvent`]) or into a precise rejection.
//!
//! Pure: "now" and the earliest accepted timestamp come from the caller in a
//! [`ValidationContext`]; nothing here reads a clock. Values are exact decimals
//! parsed strictly (no exponent, no rounding, never a float).
//!
//! Order of the checks, so that one event always gets the same answer:
//! 1. shape: `event_id`, `customer`, `meter`, `value`'s length, `properties`;
//! 2. `timestamp` against the context;
//! 3. the meter's filters: an event they exclude is [`EventOutcome::NotCounted`],
//!    not an error, and its value is not read;
//! 4. group-by properties, then the value (or distinct key).

use rust_decimal::Decimal;
use std::collections::BTreeMap;
use tally_core::calendar::instant_text;
use tally_core::entry::TimestampNs;
use tally_core::meter::{
    is_property_name, quoted, Aggregation, MeterSpec, PROPERTY_NAME_BYTES_MAX,
};
use tally_core::money::{parse_decimal, ParseError};
pub use tally_core::usage::UsageEvent;

/// The longest event id, in bytes (the ledger's id limit).
pub const EVENT_ID_BYTES_MAX: usize = 128;
/// The longest customer id, in bytes.
pub const CUSTOMER_BYTES_MAX: usize = 128;
/// The longest `value` text, in bytes. A plain decimal longer than
/// [`DECIMAL_TEXT_BYTES_MAX`] is out of range; this bound is for storage.
pub const VALUE_TEXT_BYTES_MAX: usize = 256;
/// The longest decimal text that can be a value (`tally_core::money::parse_decimal`'s bound).
pub const DECIMAL_TEXT_BYTES_MAX: usize = 64;
/// The most properties an event may carry.
pub const PROPERTIES_MAX: usize = 32;
/// The longest property value, in bytes.
pub const PROPERTY_VALUE_BYTES_MAX: usize = 256;
/// How far past "now" an event's timestamp may be (clock skew between the
/// sender and the ledger): 5 minutes. A timestamp of exactly `now` plus this is
/// accepted.
pub const FUTURE_SKEW_MAX_NS: i64 = 5 * 60 * 1_000_000_000;

/// What an event contributes to its meter's aggregation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Observation {
    /// A count meter's event: its occurrence alone.
    Occurrence,
    /// A sum, min, max or latest meter's value, normalized (`10.0` is `10`,
    /// `-0` is `0`), so that equal values have one form whatever their order.
    Value(Decimal),
    /// A unique-count meter's distinct key: the property's text.
    Key(String),
}

/// An accepted event reduced to what aggregation needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeteredEvent {
    pub meter: String,
    pub customer: String,
    pub timestamp: TimestampNs,
    pub event_id: String,
    /// The values of the meter's group-by properties, in `group_by` order.
    pub group: Vec<String>,
    pub observation: Observation,
}

/// What the caller knows about time when it checks an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationContext {
    /// The ledger's clock when the event arrived.
    pub now: TimestampNs,
    /// The earliest accepted timestamp (inclusive): the open billing period's
    /// start minus the meter's grace period.
    pub earliest: TimestampNs,
}

impl ValidationContext {
    /// The context for a meter whose customer's open billing period starts at
    /// `period_start`; the earliest accepted timestamp saturates at `i64::MIN`.
    pub fn for_open_period(now: TimestampNs, period_start: TimestampNs, meter: &MeterSpec) -> Self {
        let grace_ns = i64::try_from(meter.grace_period_seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000_000);
        ValidationContext {
            now,
            earliest: period_start.saturating_sub(grace_ns),
        }
    }

    /// The context of an event measured again after it was recorded: it was
    /// checked on arrival, so no time bound applies any more.
    pub fn any_time() -> Self {
        ValidationContext {
            now: TimestampNs::MAX,
            earliest: TimestampNs::MIN,
        }
    }

    /// The latest accepted timestamp (inclusive).
    pub fn latest(&self) -> TimestampNs {
        self.now.saturating_add(FUTURE_SKEW_MAX_NS)
    }
}

/// Why an event is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventRejection {
    /// A required id (`event_id`, `customer`, `meter`) is empty.
    FieldMissing,
    /// A field breaks its syntax, or names another meter.
    FieldInvalid,
    /// A string or map is longer than its named limit.
    FieldTooLong,
    /// A numeric meter reads `value` and the event has none.
    ValueMissing,
    /// The value is not a plain decimal (`1e3`, `+1`, ` 1`, `abc`, ...).
    ValueNotNumeric,
    /// A plain decimal that a `Decimal` cannot hold exactly.
    ValueOutOfRange,
    /// A property the meter reads (value or group-by) is absent.
    PropertyMissing,
    /// The timestamp is later than `now` plus [`FUTURE_SKEW_MAX_NS`].
    TimestampInFuture,
    /// The timestamp is earlier than the context's `earliest`.
    TimestampBeforeGrace,
}

/// A refused event: the field path, the reason, and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EventError {
    pub field: String,
    pub reason: EventRejection,
    pub message: String,
}

impl EventError {
    fn new(field: impl Into<String>, reason: EventRejection, message: String) -> Self {
        EventError {
            field: field.into(),
            reason,
            message,
        }
    }
}

/// What became of a valid event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// The event counts: this is what aggregation takes.
    Counted(MeteredEvent),
    /// The meter's filter on `property` excludes the event (absent, or not one
    /// of the listed values). Not an error: the event is valid, it just does not
    /// count for this meter.
    NotCounted { property: String },
}

/// What [`meter_event`] decides, without building the metered event: `true`
/// when it counts, `false` when a filter excludes it, or the same error. The
/// ingestion path checks every event with it; only the fold that aggregates
/// needs the event itself.
pub fn event_counts(
    meter: &MeterSpec,
    context: &ValidationContext,
    event: &UsageEvent,
) -> Result<bool, EventError> {
    check_shape(meter, event)?;
    check_timestamp(context, event.timestamp)?;
    if excluding_filter(meter, event).is_some() {
        return Ok(false);
    }
    for name in &meter.group_by {
        required_property(event, name)?;
    }
    observed(meter, event)?;
    Ok(true)
}

/// Checks `event` against `meter` and the context: a counted event, a
/// filtered-out one, or the first error in the documented order.
pub fn meter_event(
    meter: &MeterSpec,
    context: &ValidationContext,
    event: &UsageEvent,
) -> Result<EventOutcome, EventError> {
    debug_assert!(
        meter.validate().is_ok(),
        "events are checked against valid meters only"
    );
    check_shape(meter, event)?;
    check_timestamp(context, event.timestamp)?;
    if let Some(property) = excluding_filter(meter, event) {
        return Ok(EventOutcome::NotCounted { property });
    }
    let group = group_values(meter, event)?;
    let observation = observation(meter, event)?;
    debug_assert_eq!(group.len(), meter.group_by.len());
    Ok(EventOutcome::Counted(metered(
        meter,
        event,
        group,
        observation,
    )))
}

fn metered(
    meter: &MeterSpec,
    event: &UsageEvent,
    group: Vec<String>,
    observation: Observation,
) -> MeteredEvent {
    MeteredEvent {
        meter: meter.code.clone(),
        customer: event.customer.clone(),
        timestamp: event.timestamp,
        event_id: event.event_id.clone(),
        group,
        observation,
    }
}

/// [`meter_event`] for an event the journal holds: the metered event, or
/// `None` when the meter does not count it. Such an event was checked against
/// this meter version when it was recorded (`ingest::record_usage`: shape,
/// time, group-by properties, value), so only what the meter takes from it is
/// read here; the fold into the stored aggregates and a recomputation from
/// the journal both meter events this way, once per event of every usage
/// entry, and the checks were a third of the fold's time.
pub fn meter_recorded(meter: &MeterSpec, event: &UsageEvent) -> Option<MeteredEvent> {
    debug_assert!(
        meter_event(meter, &ValidationContext::any_time(), event).is_ok(),
        "a recorded event passed its meter's checks"
    );
    if excluding_filter(meter, event).is_some() {
        return None;
    }
    let group = group_values(meter, event).ok()?;
    let observation = observation(meter, event).ok()?;
    Some(metered(meter, event, group, observation))
}

fn check_shape(meter: &MeterSpec, event: &UsageEvent) -> Result<(), EventError> {
    check_id("event_id", &event.event_id, EVENT_ID_BYTES_MAX)?;
    check_id("customer", &event.customer, CUSTOMER_BYTES_MAX)?;
    if event.meter.is_empty() {
        return Err(EventError::new(
            "meter",
            EventRejection::FieldMissing,
            "meter is required".into(),
        ));
    }
    if event.meter != meter.code {
        return Err(EventError::new(
            "meter",
            EventRejection::FieldInvalid,
            format!(
                "event is for meter {}, checked against {}",
                quoted(&event.meter),
                quoted(&meter.code)
            ),
        ));
    }
    if let Some(value) = &event.value {
        if value.len() > VALUE_TEXT_BYTES_MAX {
            return Err(EventError::new(
                "value",
                EventRejection::FieldTooLong,
                format!(
                    "value is {} bytes; the limit is {VALUE_TEXT_BYTES_MAX}",
                    value.len()
                ),
            ));
        }
    }
    check_properties(&event.properties)
}

/// Ids are 1..=`bytes_max` bytes of printable ASCII without spaces, as the
/// ledger's transaction ids.
fn check_id(field: &str, value: &str, bytes_max: usize) -> Result<(), EventError> {
    if value.is_empty() {
        return Err(EventError::new(
            field,
            EventRejection::FieldMissing,
            format!("{field} is required"),
        ));
    }
    if value.len() > bytes_max {
        return Err(EventError::new(
            field,
            EventRejection::FieldTooLong,
            format!("{field} is {} bytes; the limit is {bytes_max}", value.len()),
        ));
    }
    if let Some(c) = value.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(EventError::new(
            field,
            EventRejection::FieldInvalid,
            format!("{field} contains {c:?}; ids are printable ASCII without spaces"),
        ));
    }
    Ok(())
}

fn check_properties(properties: &BTreeMap<String, String>) -> Result<(), EventError> {
    if properties.len() > PROPERTIES_MAX {
        return Err(EventError::new(
            "properties",
            EventRejection::FieldTooLong,
            format!(
                "{} properties; the limit is {PROPERTIES_MAX}",
                properties.len()
            ),
        ));
    }
    for (name, value) in properties {
        if name.len() > PROPERTY_NAME_BYTES_MAX {
            return Err(EventError::new(
                "properties",
                EventRejection::FieldTooLong,
                format!(
                    "property name {} is {} bytes; the limit is {PROPERTY_NAME_BYTES_MAX}",
                    quoted(name),
                    name.len()
                ),
            ));
        }
        if !is_property_name(name) {
            return Err(EventError::new(
                "properties",
                EventRejection::FieldInvalid,
                format!(
                    "property name {} is not 1..=64 bytes of [a-z0-9_.-]",
                    quoted(name)
                ),
            ));
        }
        if value.len() > PROPERTY_VALUE_BYTES_MAX {
            return Err(EventError::new(
                format!("properties.{name}"),
                EventRejection::FieldTooLong,
                format!(
                    "value is {} bytes; the limit is {PROPERTY_VALUE_BYTES_MAX}",
                    value.len()
                ),
            ));
        }
    }
    Ok(())
}

/// Both bounds are inclusive: `earliest` itself and `now + FUTURE_SKEW_MAX_NS`
/// itself are accepted.
fn check_timestamp(context: &ValidationContext, timestamp: TimestampNs) -> Result<(), EventError> {
    if timestamp > context.latest() {
        return Err(EventError::new(
            "timestamp",
            EventRejection::TimestampInFuture,
            format!(
                "timestamp {} is more than {} s after now ({})",
                instant_text(timestamp),
                FUTURE_SKEW_MAX_NS / 1_000_000_000,
                instant_text(context.now)
            ),
        ));
    }
    if timestamp < context.earliest {
        return Err(EventError::new(
            "timestamp",
            EventRejection::TimestampBeforeGrace,
            format!(
                "timestamp {} is before {}, the open period's start minus its grace period",
                instant_text(timestamp),
                instant_text(context.earliest)
            ),
        ));
    }
    Ok(())
}

/// The first filtered property (in name order) that excludes the event.
fn excluding_filter(meter: &MeterSpec, event: &UsageEvent) -> Option<String> {
    meter
        .filters
        .iter()
        .find(|(name, accepted)| match event.properties.get(*name) {
            Some(value) => !accepted.contains(value),
            None => true,
        })
        .map(|(name, _)| name.clone())
}

fn group_values(meter: &MeterSpec, event: &UsageEvent) -> Result<Vec<String>, EventError> {
    meter
        .group_by
        .iter()
        .map(|name| required_property(event, name).map(str::to_owned))
        .collect()
}

fn required_property<'a>(event: &'a UsageEvent, name: &str) -> Result<&'a str, EventError> {
    event
        .properties
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| {
            EventError::new(
                format!("properties.{name}"),
                EventRejection::PropertyMissing,
                format!("property {} is required by the meter", quoted(name)),
            )
        })
}

/// An observation borrowed from its event.
enum Observed<'a> {
    Occurrence,
    Value(Decimal),
    Key(&'a str),
}

/// The value comes from `value_property` when the meter sets one (the event's
/// `value` is then ignored), from `value` otherwise.
fn observed<'a>(meter: &MeterSpec, event: &'a UsageEvent) -> Result<Observed<'a>, EventError> {
    match (meter.aggregation, &meter.value_property) {
        (Aggregation::Count, _) => Ok(Observed::Occurrence),
        (Aggregation::UniqueCount, Some(name)) => {
            Ok(Observed::Key(required_property(event, name)?))
        }
        (Aggregation::UniqueCount, None) => {
            unreachable!("a valid unique_count meter has value_property")
        }
        (_, Some(name)) => {
            let text = required_property(event, name)?;
            Ok(Observed::Value(decimal(
                &format!("properties.{name}"),
                text,
            )?))
        }
        (_, None) => match &event.value {
            Some(text) => Ok(Observed::Value(decimal("value", text)?)),
            None => Err(EventError::new(
                "value",
                EventRejection::ValueMissing,
                format!("meter {} needs a value", quoted(&meter.code)),
            )),
        },
    }
}

fn observation(meter: &MeterSpec, event: &UsageEvent) -> Result<Observation, EventError> {
    Ok(match observed(meter, event)? {
        Observed::Occurrence => Observation::Occurrence,
        Observed::Value(value) => Observation::Value(value),
        Observed::Key(key) => Observation::Key(key.to_owned()),
    })
}

/// A plain decimal (`-12.50`), exact. Text in that form that a `Decimal`
/// cannot hold exactly is out of range; any other text is not numeric.
fn decimal(field: &str, text: &str) -> Result<Decimal, EventError> {
    let out_of_range = || {
        EventError::new(
            field,
            EventRejection::ValueOutOfRange,
            format!(
                "value {} cannot be held exactly (28 significant digits at most)",
                quoted(text)
            ),
        )
    };
    if !is_plain_decimal(text) {
        return Err(EventError::new(
            field,
            EventRejection::ValueNotNumeric,
            format!("value {} is not a plain decimal like -12.50", quoted(text)),
        ));
    }
    if text.len() > DECIMAL_TEXT_BYTES_MAX {
        return Err(out_of_range());
    }
    match parse_decimal(text) {
        Ok(value) => Ok(value.normalize()),
        Err(ParseError::TooLarge(_) | ParseError::TooPrecise(_)) => Err(out_of_range()),
        Err(ParseError::Malformed(why)) => {
            debug_assert!(false, "a plain decimal parsed as malformed: {why}");
            Err(EventError::new(field, EventRejection::ValueNotNumeric, why))
        }
    }
}

/// `-?[0-9]+(\.[0-9]+)?`
fn is_plain_decimal(text: &str) -> bool {
    let body = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match body.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (body, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    const NOW: TimestampNs = 1_700_000_000_000_000_000;
    const PERIOD_START: TimestampNs = 1_699_000_000_000_000_000;

    fn meter(aggregation: Aggregation) -> MeterSpec {
        MeterSpec {
            code: "tokens".into(),
            aggregation,
            value_property: None,
            filters: BTreeMap::new(),
            group_by: Vec::new(),
            grace_period_seconds: 3600,
        }
    }

    fn context(meter: &MeterSpec) -> ValidationContext {
        ValidationContext::for_open_period(NOW, PERIOD_START, meter)
    }

    fn event() -> UsageEvent {
        UsageEvent {
            event_id: "evt-1".into(),
            customer: "acme".into(),
            meter: "tokens".into(),
            timestamp: NOW - 1_000,
            value: Some("12.50".into()),
            properties: BTreeMap::from([("region".to_string(), "eu".to_string())]),
        }
    }

    fn counted(meter: &MeterSpec, event: &UsageEvent) -> MeteredEvent {
        match meter_event(meter, &context(meter), event) {
            Ok(EventOutcome::Counted(metered)) => metered,
            other => panic!("expected a counted event, got {other:?}"),
        }
    }

    fn rejected(meter: &MeterSpec, event: &UsageEvent) -> (String, EventRejection) {
        match meter_event(meter, &context(meter), event) {
            Err(error) => (error.field, error.reason),
            Ok(outcome) => panic!("expected a rejection, got {outcome:?}"),
        }
    }

    #[test]
    fn a_sum_event_becomes_a_normalized_value() {
        // Goal: the value is exact and normalized (12.50 -> 12.5), group values follow group_by order.
        let mut meter = meter(Aggregation::Sum);
        meter.group_by = vec!["region".into()];
        let metered = counted(&meter, &event());
        assert_eq!(
            metered.observation,
            Observation::Value(Decimal::from_str("12.5").unwrap())
        );
        assert_eq!(metered.group, vec!["eu".to_string()]);
        assert_eq!(
            (metered.customer.as_str(), metered.event_id.as_str()),
            ("acme", "evt-1")
        );
        assert_eq!(
            (metered.meter.as_str(), metered.timestamp),
            ("tokens", NOW - 1_000)
        );
    }

    #[test]
    fn each_aggregation_reads_its_observation() {
        // Goal: count reads nothing (even a bad value), unique_count reads the property's text,
        // value_property replaces the event's value for numeric meters.
        let mut bad_value = event();
        bad_value.value = Some("not a number".into());
        assert_eq!(
            counted(&meter(Aggregation::Count), &bad_value).observation,
            Observation::Occurrence
        );
        let mut unique = meter(Aggregation::UniqueCount);
        unique.value_property = Some("region".into());
        assert_eq!(
            counted(&unique, &event()).observation,
            Observation::Key("eu".into())
        );
        let mut from_property = meter(Aggregation::Max);
        from_property.value_property = Some("tokens.in".into());
        bad_value
            .properties
            .insert("tokens.in".into(), "-0.000".into());
        assert_eq!(
            counted(&from_property, &bad_value).observation,
            Observation::Value(Decimal::ZERO)
        );
    }

    #[test]
    fn value_rejections_name_their_field() {
        // Goal: missing, non-numeric and out-of-range values are refused at `value`
        // or at the value property's path.
        use EventRejection::*;
        let sum = meter(Aggregation::Sum);
        let mut e = event();
        e.value = None;
        assert_eq!(rejected(&sum, &e), ("value".into(), ValueMissing));
        for text in [
            "1e3", "+1", " 1", "1.", ".5", "", "abc", "1,5", "NaN", "-", "0x10", "１",
        ] {
            e.value = Some(text.into());
            assert_eq!(
                rejected(&sum, &e),
                ("value".into(), ValueNotNumeric),
                "{text:?}"
            );
        }
        for text in [
            "79228162514264337593543950336",
            "0.11111111111111111111111111111",
            &"9".repeat(65),
        ] {
            e.value = Some(text.to_string());
            assert_eq!(
                rejected(&sum, &e),
                ("value".into(), ValueOutOfRange),
                "{text:?}"
            );
        }
        e.value = Some("1".repeat(VALUE_TEXT_BYTES_MAX + 1));
        assert_eq!(rejected(&sum, &e), ("value".into(), FieldTooLong));
        let mut from_property = meter(Aggregation::Latest);
        from_property.value_property = Some("gb".into());
        let e = event();
        assert_eq!(
            rejected(&from_property, &e),
            ("properties.gb".into(), PropertyMissing)
        );
        let mut e = event();
        e.properties.insert("gb".into(), "1E3".into());
        assert_eq!(
            rejected(&from_property, &e),
            ("properties.gb".into(), ValueNotNumeric)
        );
        e.properties.insert("gb".into(), "1".repeat(30));
        assert_eq!(
            rejected(&from_property, &e),
            ("properties.gb".into(), ValueOutOfRange)
        );
    }

    #[test]
    fn id_and_property_rejections_name_their_field() {
        // Goal: ids and properties break their bounds with FieldMissing/FieldInvalid/FieldTooLong at their path.
        use EventRejection::*;
        let sum = meter(Aggregation::Sum);
        type Change = Box<dyn Fn(&mut UsageEvent)>;
        let cases: Vec<(Change, &str, EventRejection)> = vec![
            (Box::new(|e| e.event_id.clear()), "event_id", FieldMissing),
            (
                Box::new(|e| e.event_id = "a b".into()),
                "event_id",
                FieldInvalid,
            ),
            (
                Box::new(|e| e.event_id = "é".into()),
                "event_id",
                FieldInvalid,
            ),
            (
                Box::new(|e| e.event_id = "e".repeat(EVENT_ID_BYTES_MAX + 1)),
                "event_id",
                FieldTooLong,
            ),
            (Box::new(|e| e.customer.clear()), "customer", FieldMissing),
            (
                Box::new(|e| e.customer = "acme\n".into()),
                "customer",
                FieldInvalid,
            ),
            (
                Box::new(|e| e.customer = "c".repeat(CUSTOMER_BYTES_MAX + 1)),
                "customer",
                FieldTooLong,
            ),
            (Box::new(|e| e.meter.clear()), "meter", FieldMissing),
            (
                Box::new(|e| e.meter = "other".into()),
                "meter",
                FieldInvalid,
            ),
            (
                Box::new(|e| {
                    e.properties.insert("Region".into(), "x".into());
                }),
                "properties",
                FieldInvalid,
            ),
            (
                Box::new(|e| {
                    e.properties
                        .insert("p".repeat(PROPERTY_NAME_BYTES_MAX + 1), "x".into());
                }),
                "properties",
                FieldTooLong,
            ),
            (
                Box::new(|e| {
                    e.properties
                        .insert("region".into(), "v".repeat(PROPERTY_VALUE_BYTES_MAX + 1));
                }),
                "properties.region",
                FieldTooLong,
            ),
            (
                Box::new(|e| {
                    e.properties = (0..=PROPERTIES_MAX)
                        .map(|i| (format!("p{i}"), String::new()))
                        .collect()
                }),
                "properties",
                FieldTooLong,
            ),
        ];
        for (change, field, reason) in cases {
            let mut e = event();
            change(&mut e);
            assert_eq!(rejected(&sum, &e), (field.to_string(), reason), "{e:?}");
        }
        // At the limits, accepted.
        let mut e = event();
        e.event_id = "e".repeat(EVENT_ID_BYTES_MAX);
        e.customer = "c".repeat(CUSTOMER_BYTES_MAX);
        e.properties = (0..PROPERTIES_MAX)
            .map(|i| (format!("p{i}"), "v".repeat(PROPERTY_VALUE_BYTES_MAX)))
            .collect();
        counted(&sum, &e);
    }

    #[test]
    fn group_by_properties_are_required() {
        // Goal: an event lacking a group-by property is refused at its path, not put in a "none" group.
        let mut grouped = meter(Aggregation::Sum);
        grouped.group_by = vec!["region".into(), "plan".into()];
        assert_eq!(
            rejected(&grouped, &event()),
            ("properties.plan".into(), EventRejection::PropertyMissing)
        );
    }

    #[test]
    fn timestamp_boundaries() {
        // Goal: now + FUTURE_SKEW_MAX_NS and the grace start (period start - grace) are accepted;
        // one nanosecond beyond either is refused.
        use EventRejection::*;
        let sum = meter(Aggregation::Sum);
        let grace_start = PERIOD_START - 3600 * 1_000_000_000;
        assert_eq!(context(&sum).earliest, grace_start);
        let mut e = event();
        for (timestamp, outcome) in [
            (NOW + FUTURE_SKEW_MAX_NS, None),
            (NOW + FUTURE_SKEW_MAX_NS + 1, Some(TimestampInFuture)),
            (grace_start, None),
            (grace_start - 1, Some(TimestampBeforeGrace)),
            (i64::MAX, Some(TimestampInFuture)),
            (i64::MIN, Some(TimestampBeforeGrace)),
        ] {
            e.timestamp = timestamp;
            match outcome {
                None => assert_eq!(counted(&sum, &e).timestamp, timestamp),
                Some(reason) => assert_eq!(rejected(&sum, &e), ("timestamp".into(), reason)),
            }
        }
        // The context's arithmetic saturates instead of wrapping.
        let mut long_grace = sum.clone();
        long_grace.grace_period_seconds = u64::MAX;
        let edge = ValidationContext::for_open_period(i64::MAX, i64::MIN + 1, &long_grace);
        assert_eq!((edge.earliest, edge.latest()), (i64::MIN, i64::MAX));
    }

    #[test]
    fn filtered_out_events_are_not_rejections() {
        // Goal: an event the filters exclude is NotCounted (naming the filter), even without a value;
        // an event matching every filter counts.
        let mut filtered = meter(Aggregation::Sum);
        filtered
            .filters
            .insert("region".into(), vec!["us".into(), "ca".into()]);
        let mut e = event();
        e.value = None;
        let outcome = meter_event(&filtered, &context(&filtered), &e);
        assert_eq!(
            outcome,
            Ok(EventOutcome::NotCounted {
                property: "region".into()
            })
        );
        e.properties.remove("region");
        let outcome = meter_event(&filtered, &context(&filtered), &e);
        assert_eq!(
            outcome,
            Ok(EventOutcome::NotCounted {
                property: "region".into()
            })
        );
        let mut e = event();
        e.properties.insert("region".into(), "ca".into());
        counted(&filtered, &e);
        // A malformed event is refused even if the filters would exclude it.
        e.properties.insert("region".into(), "eu".into());
        e.event_id.clear();
        assert_eq!(
            rejected(&filtered, &e),
            ("event_id".into(), EventRejection::FieldMissing)
        );
    }

    proptest! {
        #[test]
        fn validation_never_panics(
            event_id in "\\PC{0,20}",
            customer in "\\PC{0,20}",
            value in proptest::option::of("\\PC{0,40}|-?[0-9]{0,35}(\\.[0-9]{0,35})?"),
            properties in proptest::collection::btree_map("\\PC{0,8}|[a-z]{1,3}", "\\PC{0,12}|-?[0-9]{1,30}", 0..6),
            timestamp in any::<i64>(),
            now in any::<i64>(),
            period_start in any::<i64>(),
            aggregation in prop_oneof![
                Just(Aggregation::Sum), Just(Aggregation::Count), Just(Aggregation::Min),
                Just(Aggregation::Max), Just(Aggregation::UniqueCount), Just(Aggregation::Latest)
            ],
            value_property in proptest::option::of("[a-z]{1,3}"),
            grace_period_seconds in 0..=tally_core::meter::GRACE_PERIOD_SECONDS_MAX,
        ) {
            // Goal: arbitrary text, values and times yield an outcome or an error, never a panic;
            // an accepted numeric value is a normalized Decimal of the text sent.
            let mut meter = meter(aggregation);
            meter.grace_period_seconds = grace_period_seconds;
            meter.value_property = match aggregation {
                Aggregation::Count => None,
                Aggregation::UniqueCount => Some(value_property.unwrap_or_else(|| "a".into())),
                _ => value_property,
            };
            prop_assert!(meter.validate().is_ok());
            let event = UsageEvent { event_id, customer, meter: "tokens".into(), timestamp, value, properties };
            let context = ValidationContext::for_open_period(now, period_start, &meter);
            // The check without the metered event decides the same.
            let decided = meter_event(&meter, &context, &event)
                .map(|outcome| matches!(outcome, EventOutcome::Counted(_)));
            prop_assert_eq!(event_counts(&meter, &context, &event), decided);
            if let Ok(EventOutcome::Counted(metered)) = meter_event(&meter, &context, &event) {
                prop_assert!(context.earliest <= metered.timestamp && metered.timestamp <= context.latest());
                if let Observation::Value(value) = metered.observation {
                    prop_assert_eq!(value, value.normalize());
                    let text = match &meter.value_property {
                        Some(name) => event.properties[name].clone(),
                        None => event.value.clone().unwrap(),
                    };
                    prop_assert_eq!(Decimal::from_str_exact(&text).unwrap().normalize(), value);
                }
            }
        }
    }
}
