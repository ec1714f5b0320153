//! Meter definitions: what a meter counts, and the checks a definition passes
//! before any event is measured against it.
//!
//! A [`MeterSpec`] is plain data, recorded in the journal as a meter version
//! (`EntryBody::MeterDefined`), so it lives in the journal-format crate.
//! Validation is a pure function of the definition: every error names the
//! field path and the reason.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest meter code, in bytes.
pub const METER_CODE_BYTES_MAX: usize = 64;
/// The longest property name, in bytes.
pub const PROPERTY_NAME_BYTES_MAX: usize = 64;
/// The most filtered properties a meter may have.
pub const FILTERS_MAX: usize = 16;
/// The most accepted values one filtered property may list.
pub const FILTER_VALUES_MAX: usize = 64;
/// The longest accepted filter value, in bytes (the same bound as an event's
/// property value, so a longer one could never match).
pub const FILTER_VALUE_BYTES_MAX: usize = 256;
/// The most group-by properties a meter may have.
pub const GROUP_BY_MAX: usize = 8;
/// The longest grace period: one year.
pub const GRACE_PERIOD_SECONDS_MAX: u64 = 366 * 24 * 3600;

/// How a meter folds its events into one figure per customer and group.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// The sum of the events' values.
    Sum,
    /// The number of events; no value is read.
    Count,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
    /// The number of distinct values of `value_property`.
    UniqueCount,
    /// The value of the latest event (greatest timestamp, then event id).
    Latest,
}

impl Aggregation {
    pub const ALL: [Aggregation; 6] = [
        Aggregation::Sum,
        Aggregation::Count,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::UniqueCount,
        Aggregation::Latest,
    ];

    /// Stable snake_case name (`unique_count`), as in JSON, TOML and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Sum => "sum",
            Aggregation::Count => "count",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::UniqueCount => "unique_count",
            Aggregation::Latest => "latest",
        }
    }

    pub fn from_name(name: &str) -> Option<Aggregation> {
        Aggregation::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether the aggregation reads a decimal from each event.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Aggregation::Sum | Aggregation::Min | Aggregation::Max | Aggregation::Latest
        )
    }
}

/// A meter's definition.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct MeterSpec {
    /// The meter's code, which events name in their `meter` field.
    pub code: String,
    pub aggregation: Aggregation,
    /// The property carrying the value: a decimal for numeric aggregations
    /// (instead of the event's `value`), the distinct key for `UniqueCount`
    /// (required there). Forbidden for `Count`.
    pub value_property: Option<String>,
    /// An event counts only if, for every filtered property, it has the
    /// property and its value is one of the listed ones.
    pub filters: BTreeMap<String, Vec<String>>,
    /// The properties whose values split a customer's usage into groups.
    pub group_by: Vec<String>,
    /// How long after a billing period starts its predecessor still accepts
    /// events: the earliest accepted timestamp is the open period's start
    /// minus this.
    pub grace_period_seconds: u64,
}

/// Why a meter definition is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterSpecRejection {
    /// A required field is empty.
    FieldMissing,
    /// A field breaks its syntax.
    FieldInvalid,
    /// A string, list or map is longer than its named limit.
    FieldTooLong,
    /// The same property or value appears twice.
    Duplicate,
    /// `value_property` does not fit the aggregation.
    ValuePropertyMismatch,
}

/// A meter definition's error: the field path, the reason, and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct MeterSpecError {
    pub field: String,
    pub reason: MeterSpecRejection,
    pub message: String,
}

impl MeterSpecError {
    fn new(field: impl Into<String>, reason: MeterSpecRejection, message: String) -> Self {
        MeterSpecError {
            field: field.into(),
            reason,
            message,
        }
    }
}

/// Whether `code` is a meter code: 1..=64 bytes of `[a-z0-9_]`.
pub fn is_meter_code(code: &str) -> bool {
    is_name(code, METER_CODE_BYTES_MAX, b"_")
}

/// Whether `name` is a property name: 1..=64 bytes of `[a-z0-9_.-]`.
pub fn is_property_name(name: &str) -> bool {
    is_name(name, PROPERTY_NAME_BYTES_MAX, b"_.-")
}

fn is_name(text: &str, bytes_max: usize, extra: &[u8]) -> bool {
    !text.is_empty()
        && text.len() <= bytes_max
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(&b))
}

/// Text for a message, quoted and cut to a readable length (names in error
/// messages come from clients and may be long or odd).
pub fn quoted(text: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 40;
    if text.chars().count() <= SHOWN_CHARS_MAX {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(SHOWN_CHARS_MAX).collect();
        format!("{head:?}...")
    }
}

impl MeterSpec {
    /// Checks the definition; the first error found, in field order.
    pub fn validate(&self) -> Result<(), MeterSpecError> {
        self.validate_code()?;
        self.validate_value_property()?;
        self.validate_filters()?;
        self.validate_group_by()?;
        if self.grace_period_seconds > GRACE_PERIOD_SECONDS_MAX {
            return Err(MeterSpecError::new(
                "grace_period_seconds",
                MeterSpecRejection::FieldTooLong,
                format!(
                    "grace period of {} s exceeds the limit of {GRACE_PERIOD_SECONDS_MAX} s",
                    self.grace_period_seconds
                ),
            ));
        }
        Ok(())
    }

    fn validate_code(&self) -> Result<(), MeterSpecError> {
        use MeterSpecRejection::*;
        if self.code.is_empty() {
            return Err(MeterSpecError::new(
                "code",
                FieldMissing,
                "code is required".into(),
            ));
        }
        if self.code.len() > METER_CODE_BYTES_MAX {
            return Err(MeterSpecError::new(
                "code",
                FieldTooLong,
                format!(
                    "code is {} bytes; the limit is {METER_CODE_BYTES_MAX}",
                    self.code.len()
                ),
            ));
        }
        if !is_meter_code(&self.code) {
            return Err(MeterSpecError::new(
                "code",
                FieldInvalid,
                format!("code {} is not [a-z0-9_]", quoted(&self.code)),
            ));
        }
        Ok(())
    }

    fn validate_value_property(&self) -> Result<(), MeterSpecError> {
        use MeterSpecRejection::*;
        let field = "value_property";
        match (&self.value_property, self.aggregation) {
            (Some(_), Aggregation::Count) => Err(MeterSpecError::new(
                field,
                ValuePropertyMismatch,
                "a count meter reads no value; value_property must be unset".into(),
            )),
            (None, Aggregation::UniqueCount) => Err(MeterSpecError::new(
                field,
                ValuePropertyMismatch,
                "a unique_count meter counts distinct values of value_property; it is required"
                    .into(),
            )),
            (Some(name), _) => property_name(field, name),
            (None, _) => Ok(()),
        }
    }

    fn validate_filters(&self) -> Result<(), MeterSpecError> {
        use MeterSpecRejection::*;
        if self.filters.len() > FILTERS_MAX {
            return Err(MeterSpecError::new(
                "filters",
                FieldTooLong,
                format!("{} filters; the limit is {FILTERS_MAX}", self.filters.len()),
            ));
        }
        for (name, values) in &self.filters {
            property_name("filters", name)?;
            let field = format!("filters.{name}");
            if values.is_empty() {
                return Err(MeterSpecError::new(
                    field,
                    FieldMissing,
                    "a filter lists at least one accepted value".into(),
                ));
            }
            if values.len() > FILTER_VALUES_MAX {
                return Err(MeterSpecError::new(
                    field,
                    FieldTooLong,
                    format!("{} values; the limit is {FILTER_VALUES_MAX}", values.len()),
                ));
            }
            for (index, value) in values.iter().enumerate() {
                let value_field = format!("{field}[{index}]");
                if value.len() > FILTER_VALUE_BYTES_MAX {
                    return Err(MeterSpecError::new(
                        value_field,
                        FieldTooLong,
                        format!(
                            "value is {} bytes; the limit is {FILTER_VALUE_BYTES_MAX}",
                            value.len()
                        ),
                    ));
                }
                if values[..index].contains(value) {
                    return Err(MeterSpecError::new(
                        value_field,
                        Duplicate,
                        format!("value {} is listed twice", quoted(value)),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_group_by(&self) -> Result<(), MeterSpecError> {
        use MeterSpecRejection::*;
        if self.group_by.len() > GROUP_BY_MAX {
            return Err(MeterSpecError::new(
                "group_by",
                FieldTooLong,
                format!(
                    "{} group-by properties; the limit is {GROUP_BY_MAX}",
                    self.group_by.len()
                ),
            ));
        }
        for (index, name) in self.group_by.iter().enumerate() {
            let field = format!("group_by[{index}]");
            property_name(&field, name)?;
            if self.group_by[..index].contains(name) {
                return Err(MeterSpecError::new(
                    field,
                    Duplicate,
                    format!("property {} is grouped by twice", quoted(name)),
                ));
            }
        }
        Ok(())
    }
}

fn property_name(field: &str, name: &str) -> Result<(), MeterSpecError> {
    use MeterSpecRejection::*;
    if name.is_empty() {
        return Err(MeterSpecError::new(
            field,
            FieldMissing,
            "property name is empty".into(),
        ));
    }
    if name.len() > PROPERTY_NAME_BYTES_MAX {
        return Err(MeterSpecError::new(
            field,
            FieldTooLong,
            format!(
                "property name is {} bytes; the limit is {PROPERTY_NAME_BYTES_MAX}",
                name.len()
            ),
        ));
    }
    if !is_property_name(name) {
        return Err(MeterSpecError::new(
            field,
            FieldInvalid,
            format!("property name {} is not [a-z0-9_.-]", quoted(name)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(aggregation: Aggregation) -> MeterSpec {
        MeterSpec {
            code: "api_calls".into(),
            aggregation,
            value_property: None,
            filters: BTreeMap::new(),
            group_by: Vec::new(),
            grace_period_seconds: 3600,
        }
    }

    fn rejection(spec: &MeterSpec) -> (String, MeterSpecRejection) {
        let error = spec.validate().expect_err("definition accepted");
        (error.field, error.reason)
    }

    #[test]
    fn a_plain_definition_is_valid() {
        // Goal: every aggregation without optional parts is accepted (unique_count needs its property).
        for aggregation in [
            Aggregation::Sum,
            Aggregation::Count,
            Aggregation::Min,
            Aggregation::Max,
            Aggregation::Latest,
        ] {
            assert_eq!(spec(aggregation).validate(), Ok(()));
        }
        let mut unique = spec(Aggregation::UniqueCount);
        unique.value_property = Some("user.id".into());
        assert_eq!(unique.validate(), Ok(()));
    }

    #[test]
    fn code_syntax_and_length() {
        // Goal: codes are 1..=64 bytes of [a-z0-9_], each breach named.
        use MeterSpecRejection::*;
        let mut meter = spec(Aggregation::Sum);
        for (code, reason) in [
            ("", FieldMissing),
            ("Api", FieldInvalid),
            ("a-b", FieldInvalid),
            ("a.b", FieldInvalid),
            ("é", FieldInvalid),
        ] {
            meter.code = code.into();
            assert_eq!(rejection(&meter), ("code".into(), reason), "{code:?}");
        }
        meter.code = "a".repeat(METER_CODE_BYTES_MAX);
        assert_eq!(meter.validate(), Ok(()));
        meter.code.push('a');
        assert_eq!(rejection(&meter), ("code".into(), FieldTooLong));
    }

    #[test]
    fn value_property_fits_the_aggregation() {
        // Goal: unique_count needs value_property, count forbids it, names are property names.
        use MeterSpecRejection::*;
        assert_eq!(
            rejection(&spec(Aggregation::UniqueCount)),
            ("value_property".into(), ValuePropertyMismatch)
        );
        let mut count = spec(Aggregation::Count);
        count.value_property = Some("tokens".into());
        assert_eq!(
            rejection(&count),
            ("value_property".into(), ValuePropertyMismatch)
        );
        let mut sum = spec(Aggregation::Sum);
        sum.value_property = Some("Tokens".into());
        assert_eq!(rejection(&sum), ("value_property".into(), FieldInvalid));
        sum.value_property = Some("a".repeat(PROPERTY_NAME_BYTES_MAX + 1));
        assert_eq!(rejection(&sum), ("value_property".into(), FieldTooLong));
        sum.value_property = Some("usage.tokens-in_1".into());
        assert_eq!(sum.validate(), Ok(()));
    }

    #[test]
    fn filters_are_bounded_and_named() {
        // Goal: filter counts, value counts, value lengths, emptiness and duplicates are refused with their path.
        use MeterSpecRejection::*;
        let mut meter = spec(Aggregation::Count);
        meter.filters.insert("region".into(), vec![]);
        assert_eq!(rejection(&meter), ("filters.region".into(), FieldMissing));
        meter
            .filters
            .insert("region".into(), vec!["eu".into(), "us".into(), "eu".into()]);
        assert_eq!(rejection(&meter), ("filters.region[2]".into(), Duplicate));
        meter.filters.insert(
            "region".into(),
            vec!["x".repeat(FILTER_VALUE_BYTES_MAX + 1)],
        );
        assert_eq!(
            rejection(&meter),
            ("filters.region[0]".into(), FieldTooLong)
        );
        meter.filters.insert(
            "region".into(),
            (0..=FILTER_VALUES_MAX).map(|i| i.to_string()).collect(),
        );
        assert_eq!(rejection(&meter), ("filters.region".into(), FieldTooLong));
        meter.filters.clear();
        meter.filters.insert("Region".into(), vec!["eu".into()]);
        assert_eq!(rejection(&meter), ("filters".into(), FieldInvalid));
        meter.filters = (0..=FILTERS_MAX)
            .map(|i| (format!("p{i}"), vec!["v".to_string()]))
            .collect();
        assert_eq!(rejection(&meter), ("filters".into(), FieldTooLong));
        meter.filters.pop_last();
        assert_eq!(meter.validate(), Ok(()));
    }

    #[test]
    fn group_by_is_bounded_and_unique() {
        // Goal: group-by properties are property names, at most GROUP_BY_MAX, never twice.
        use MeterSpecRejection::*;
        let mut meter = spec(Aggregation::Max);
        meter.group_by = vec!["region".into(), "".into()];
        assert_eq!(rejection(&meter), ("group_by[1]".into(), FieldMissing));
        meter.group_by = vec!["region".into(), "region".into()];
        assert_eq!(rejection(&meter), ("group_by[1]".into(), Duplicate));
        meter.group_by = (0..=GROUP_BY_MAX).map(|i| format!("p{i}")).collect();
        assert_eq!(rejection(&meter), ("group_by".into(), FieldTooLong));
        meter.group_by.pop();
        assert_eq!(meter.validate(), Ok(()));
    }

    #[test]
    fn grace_period_is_bounded() {
        // Goal: a grace period beyond a year is refused; a year is accepted.
        let mut meter = spec(Aggregation::Sum);
        meter.grace_period_seconds = GRACE_PERIOD_SECONDS_MAX;
        assert_eq!(meter.validate(), Ok(()));
        meter.grace_period_seconds += 1;
        assert_eq!(
            rejection(&meter),
            (
                "grace_period_seconds".into(),
                MeterSpecRejection::FieldTooLong
            )
        );
    }
}
