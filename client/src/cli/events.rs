//! The JSON-lines input of `tally usage send`: one usage event per line.
//!
//! ```json
//! {"event_id": "evt-1", "customer": "acme", "meter": "api_calls",
//!  "timestamp": "2024-05-01T12:00:00Z", "value": "12.50", "properties": {"region": "eu"}}
//! ```
//!
//! - `timestamp` is an RFC 3339 string or an integer number of nanoseconds since the epoch.
//! - `value` is a string, or a JSON number taken as its exact source text (`12.50` stays
//!   `12.50`; it never goes through a float); absent or `null` when the meter reads none.
//!   Whether the text is a decimal the meter accepts is the ledger's to say, per event.
//! - `properties` maps names to string values.
//!
//! Blank lines are skipped. A line that does not parse is an error naming its line number
//! and field; it does not stop the others.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, Read};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use tally_client::{TimestampNs, UsageEvent};

use super::args::parse_time_ns;

/// The longest line read, in bytes: far above any event the ledger accepts, low enough that
/// a file without newlines cannot exhaust memory.
pub const LINE_BYTES_MAX: usize = 1024 * 1024;

/// A line that is not an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    /// The event's field at fault (`timestamp`, `properties.region`), or "" for the line.
    pub field: String,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if !self.field.is_empty() {
            write!(f, ", field {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The fields of a line, as raw JSON text, so that each is checked with its name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineFields<'a> {
    #[serde(borrow)]
    event_id: Option<&'a RawValue>,
    #[serde(borrow)]
    customer: Option<&'a RawValue>,
    #[serde(borrow)]
    meter: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
    #[serde(borrow)]
    properties: Option<&'a RawValue>,
}

/// `(field, message)` of a line that is not an event.
type FieldError = (String, String);

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    (field.to_string(), message.into())
}

/// Parses one line (without its newline) into an event.
pub fn parse_line(text: &str) -> Result<UsageEvent, FieldError> {
    if !text.trim_start().starts_with('{') {
        return Err(field_error("", "a line must be one JSON object"));
    }
    let fields: LineFields =
        serde_json::from_str(text).map_err(|error| field_error("", error.to_string()))?;
    Ok(UsageEvent {
        event_id: required_string("event_id", fields.event_id)?,
        customer: required_string("customer", fields.customer)?,
        meter: required_string("meter", fields.meter)?,
        timestamp: timestamp(fields.timestamp)?,
        value: value(fields.value)?,
        properties: properties(fields.properties)?,
    })
}

fn required_string(field: &str, raw: Option<&RawValue>) -> Result<String, FieldError> {
    let raw = raw.ok_or_else(|| field_error(field, "missing"))?;
    serde_json::from_str(raw.get()).map_err(|_| field_error(field, "must be a string"))
}

fn timestamp(raw: Option<&RawValue>) -> Result<TimestampNs, FieldError> {
    let raw = raw.ok_or_else(|| field_error("timestamp", "missing"))?;
    if raw.get().starts_with('"') {
        let text: String = serde_json::from_str(raw.get())
            .map_err(|error| field_error("timestamp", error.to_string()))?;
        return parse_time_ns(&text).map_err(|error| field_error("timestamp", error));
    }
    serde_json::from_str::<TimestampNs>(raw.get()).map_err(|_| {
        field_error(
            "timestamp",
            format!(
                "{} is neither an RFC 3339 string nor an integer number of nanoseconds since 1970",
                raw.get()
            ),
        )
    })
}

/// A string's content, or a number's exact source text.
fn value(raw: Option<&RawValue>) -> Result<Option<String>, FieldError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let text = raw.get();
    if text.starts_with('"') {
        let value: String =
            serde_json::from_str(text).map_err(|error| field_error("value", error.to_string()))?;
        return Ok(Some(value));
    }
    if text.starts_with('-') || text.starts_with(|c: char| c.is_ascii_digit()) {
        return Ok(Some(text.to_string()));
    }
    Err(field_error(
        "value",
        format!("{text} is neither a decimal string nor a JSON number"),
    ))
}

fn properties(raw: Option<&RawValue>) -> Result<BTreeMap<String, String>, FieldError> {
    let Some(raw) = raw else {
        return Ok(BTreeMap::new());
    };
    let Properties(pairs) = serde_json::from_str(raw.get())
        .map_err(|_| field_error("properties", "must be an object"))?;
    let mut properties = BTreeMap::new();
    for (name, value) in pairs {
        let field = format!("properties.{name}");
        let value: String = serde_json::from_str(value.get())
            .map_err(|_| field_error(&field, "must be a string"))?;
        if properties.insert(name, value).is_some() {
            return Err(field_error(&field, "given twice"));
        }
    }
    Ok(properties)
}

/// An object's members in order, duplicates kept (a map would keep only the last).
struct Properties<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Properties<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Members<'a> {
            type Value = Properties<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'a RawValue>()? {
                    members.push(member);
                }
                Ok(Properties(members))
            }
        }
        deserializer.deserialize_map(Members(std::marker::PhantomData))
    }
}

/// Reads events line by line, numbering lines from 1; blank lines are skipped.
pub struct EventLines<R> {
    reader: R,
    line: usize,
}

impl<R: BufRead> EventLines<R> {
    pub fn new(reader: R) -> Self {
        EventLines { reader, line: 0 }
    }

    /// The next non-blank line's event or error; `None` at the end. An I/O error ends
    /// the reading.
    pub fn next_event(&mut self) -> io::Result<Option<(usize, Result<UsageEvent, LineError>)>> {
        loop {
            let Some(bytes) = self.read_line()? else {
                return Ok(None);
            };
            self.line += 1;
            let line = self.line;
            let parsed = match bytes {
                Err(message) => Err(field_error("", message)),
                Ok(bytes) => match std::str::from_utf8(&bytes) {
                    Err(_) => Err(field_error("", "not UTF-8 text")),
                    Ok(text) if text.trim().is_empty() => continue,
                    Ok(text) => parse_line(text),
                },
            };
            let parsed = parsed.map_err(|(field, message)| LineError {
                line,
                field,
                message,
            });
            return Ok(Some((line, parsed)));
        }
    }

    /// One line without its line ending, or an error message for a line over the limit
    /// (whose rest is skipped).
    fn read_line(&mut self) -> io::Result<Option<Result<Vec<u8>, String>>> {
        let mut bytes = Vec::new();
        let limit = LINE_BYTES_MAX as u64 + 1;
        let read = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut bytes)?;
        if read == 0 {
            return Ok(None);
        }
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        if bytes.len() > LINE_BYTES_MAX {
            self.skip_rest_of_line()?;
            return Ok(Some(Err(format!("longer than {LINE_BYTES_MAX} bytes"))));
        }
        Ok(Some(Ok(bytes)))
    }

    fn skip_rest_of_line(&mut self) -> io::Result<()> {
        loop {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                return Ok(());
            }
            match buffer.iter().position(|&b| b == b'\n') {
                Some(at) => {
                    self.reader.consume(at + 1);
                    return Ok(());
                }
                None => {
                    let length = buffer.len();
                    self.reader.consume(length);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Vec<(usize, Result<UsageEvent, LineError>)> {
        let mut lines = EventLines::new(text.as_bytes());
        let mut found = Vec::new();
        while let Some(item) = lines.next_event().unwrap() {
            found.push(item);
        }
        found
    }

    fn error(text: &str) -> (String, String) {
        parse_line(text).unwrap_err()
    }

    const BASE: &str = r#""event_id":"e1","customer":"acme","meter":"api_calls""#;

    #[test]
    fn values_keep_their_exact_text() {
        // Goal: a JSON number's value is its source text, digit for digit, however many
        // digits; a string's is its content; absent and null are no value.
        let cases = [
            (r#""value":12.50"#, Some("12.50")),
            (r#""value":"12.50""#, Some("12.50")),
            (
                r#""value": -0.000000000000000000000000000001 "#,
                Some("-0.000000000000000000000000000001"),
            ),
            (
                r#""value":123456789012345678901234567890.123456789"#,
                Some("123456789012345678901234567890.123456789"),
            ),
            (r#""value":1e3"#, Some("1e3")),
            (r#""value":null"#, None),
        ];
        for (value, expected) in cases {
            let line = format!(r#"{{{BASE},"timestamp":0,{value}}}"#);
            let event = parse_line(&line).unwrap();
            assert_eq!(event.value.as_deref(), expected, "{line}");
        }
        let line = format!(r#"{{{BASE},"timestamp":0}}"#);
        assert_eq!(parse_line(&line).unwrap().value, None);
        let line = format!(r#"{{{BASE},"timestamp":0,"value":true}}"#);
        assert_eq!(parse_line(&line).unwrap_err().0, "value");
    }

    #[test]
    fn timestamps_are_rfc3339_or_integer_nanoseconds() {
        // Goal: both spellings give the same nanoseconds; fractions and offsets are kept;
        // a float or an out-of-range number is refused naming the field.
        let at = |timestamp: &str| {
            parse_line(&format!(r#"{{{BASE},"timestamp":{timestamp}}}"#)).map(|e| e.timestamp)
        };
        assert_eq!(
            at(r#""2024-05-01T12:00:00Z""#),
            Ok(1_714_564_800_000_000_000)
        );
        assert_eq!(at("1714564800000000000"), Ok(1_714_564_800_000_000_000));
        assert_eq!(
            at(r#""2024-05-01T14:00:00.000000001+02:00""#),
            Ok(1_714_564_800_000_000_001)
        );
        assert_eq!(at("-1"), Ok(-1));
        for bad in [
            "1.5",
            "1e18",
            "9223372036854775808",
            r#""yesterday""#,
            "null",
            "[]",
        ] {
            let (field, message) = at(bad).unwrap_err();
            assert_eq!(field, "timestamp", "{bad}: {message}");
        }
    }

    #[test]
    fn properties_are_strings_named_once() {
        // Goal: properties parse sorted; a number, a repeated name or a non-object is
        // refused naming the property.
        let line = format!(r#"{{{BASE},"timestamp":0,"properties":{{"z":"1","a":"é\n"}}}}"#);
        let event = parse_line(&line).unwrap();
        assert_eq!(
            event.properties.into_iter().collect::<Vec<_>>(),
            [
                ("a".to_string(), "é\n".to_string()),
                ("z".to_string(), "1".to_string())
            ]
        );
        let line = format!(r#"{{{BASE},"timestamp":0,"properties":{{"region":5}}}}"#);
        assert_eq!(error(&line).0, "properties.region");
        let line = format!(r#"{{{BASE},"timestamp":0,"properties":{{"a":"1","a":"2"}}}}"#);
        assert_eq!(error(&line), ("properties.a".into(), "given twice".into()));
        let line = format!(r#"{{{BASE},"timestamp":0,"properties":["a"]}}"#);
        assert_eq!(error(&line).0, "properties");
    }

    #[test]
    fn malformed_lines_name_the_field() {
        // Goal: each broken line says what is wrong and where.
        assert_eq!(
            error(r#"{"customer":"a","meter":"m","timestamp":0}"#),
            ("event_id".into(), "missing".into())
        );
        assert_eq!(
            error(r#"{"event_id":7,"customer":"a","meter":"m","timestamp":0}"#).0,
            "event_id"
        );
        assert_eq!(
            error(&format!(r#"{{{BASE}}}"#)),
            ("timestamp".into(), "missing".into())
        );
        let unknown = error(&format!(r#"{{{BASE},"timestamp":0,"valeu":"1"}}"#));
        assert!(unknown.1.contains("unknown field `valeu`"), "{unknown:?}");
        let twice = error(&format!(r#"{{{BASE},"timestamp":0,"timestamp":1}}"#));
        assert!(twice.1.contains("duplicate field"), "{twice:?}");
        assert_eq!(error("[1]").1, "a line must be one JSON object");
        assert!(!error("{").1.is_empty());
    }

    #[test]
    fn lines_are_numbered_and_bad_ones_do_not_stop_the_rest() {
        // Goal: line numbers count every line, blank ones included; a bad line is reported
        // with its number and the next lines still parse; CRLF endings are fine.
        let good =
            |id: &str| format!(r#"{{"event_id":"{id}","customer":"c","meter":"m","timestamp":0}}"#);
        let text = format!("{}\r\n\n  \nnot json\n{}\n", good("a"), good("b"));
        let mut bytes = text.into_bytes();
        bytes.push(0xff);
        let mut lines = EventLines::new(&bytes[..]);
        let mut found = Vec::new();
        while let Some(item) = lines.next_event().unwrap() {
            found.push(item);
        }
        assert_eq!(found.len(), 4);
        assert_eq!(found[0].0, 1);
        assert_eq!(found[0].1.as_ref().unwrap().event_id, "a");
        let bad = found[1].1.as_ref().unwrap_err();
        assert_eq!((found[1].0, bad.line), (4, 4));
        assert_eq!(found[2].1.as_ref().unwrap().event_id, "b");
        assert_eq!(found[3].1.as_ref().unwrap_err().message, "not UTF-8 text");
        assert_eq!(found[3].0, 6);
        assert!(all("").is_empty());
    }

    #[test]
    fn an_overlong_line_is_one_error() {
        // Goal: a line over the limit is refused whole and the next line still reads.
        let good = r#"{"event_id":"a","customer":"c","meter":"m","timestamp":0}"#;
        let text = format!("{}\n{good}\n", "x".repeat(LINE_BYTES_MAX + 10));
        let found = all(&text);
        assert_eq!(found.len(), 2);
        assert!(found[0]
            .1
            .as_ref()
            .unwrap_err()
            .message
            .contains("longer than"));
        assert_eq!(found[1].0, 2);
        assert!(found[1].1.is_ok());
    }
}
