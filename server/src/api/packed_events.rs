//! The packed events batch of `IngestEventsPacked` (`docs/packed-events.md`).
//!
//! [`decode_events`] reads a batch into the same [`UsageEvent`]s that
//! `metering_service::usage_event` makes from the protobuf events, so both
//! wires feed the engine the same events, with the same hashes: an event sent
//! packed and retried through protobuf is a duplicate. [`encode_results`]
//! writes the answers.
//!
//! A batch that cannot be read (bad magic or version, truncation, a bad flag,
//! string number or UTF-8, a property named twice in one event, bytes after
//! the last event), or that is empty or over a limit, fails the whole call
//! with a [`BatchError`]. Everything else about an event (lengths, names,
//! values, times, customers, meters) is the engine's to judge, per event, as
//! on the protobuf path. Nothing here panics on any input: reads are
//! bounds-checked and every count is checked against the bytes left before
//! anything is allocated for it.

use std::collections::BTreeMap;

use tally_core::error_code::ErrorCode;
use tally_core::usage::UsageEvent;
use tally_proto::packed::Reader;
use tally_proto::packed_events::{
    event_flag, EventResultsWriter, EVENTS_MAGIC, EVENT_BYTES_MIN, PROPERTY_BYTES, STRING_BYTES_MIN,
};

use super::packed::{check_header, malformed, read, BatchError, NAME_COPY_BYTES_PER_BATCH_BYTE};
use crate::error::LedgerError;
use crate::metering::event::{CUSTOMER_BYTES_MAX, PROPERTIES_MAX, PROPERTY_VALUE_BYTES_MAX};
use crate::metering::ingest::{EventRecorded, INGEST_EVENTS_MAX};
use tally_core::meter::{METER_CODE_BYTES_MAX, PROPERTY_NAME_BYTES_MAX};

/// Strings in a batch's string table: a customer, a meter and the most
/// properties an event may have, each a name and a value, for every event of
/// a full batch.
pub const STRINGS_MAX: usize = INGEST_EVENTS_MAX * (2 + 2 * PROPERTIES_MAX);

/// The most bytes of table strings a valid event uses: its customer, its
/// meter and its properties at their longest. A batch may copy this much per
/// event out of its string table whatever its size, and beyond that
/// [`NAME_COPY_BYTES_PER_BATCH_BYTE`] per byte of the batch, as the packed
/// transaction batch: so every batch of valid events decodes, and a long
/// (invalid) string named again and again cannot turn a few MiB of batch
/// into GiBs of copies.
pub const EVENT_COPY_BYTES_MAX: usize = CUSTOMER_BYTES_MAX
    + METER_CODE_BYTES_MAX
    + PROPERTIES_MAX * (PROPERTY_NAME_BYTES_MAX + PROPERTY_VALUE_BYTES_MAX);

/// Reads a packed events batch: its events in order, or the reason the batch
/// as a whole is refused.
pub fn decode_events(bytes: &[u8]) -> Result<Vec<UsageEvent>, BatchError> {
    let mut reader = Reader::new(bytes);
    check_header(&mut reader, EVENTS_MAGIC, "packed events batch")?;
    let at = reader.offset();
    let event_count = read(reader.u32(), || "header.event_count".into())? as usize;
    if event_count == 0 {
        return Err(BatchError {
            code: ErrorCode::BatchEmpty,
            offset: at,
            path: "header.event_count".into(),
            problem: "the batch must hold at least one event".into(),
        });
    }
    if event_count > INGEST_EVENTS_MAX {
        return Err(BatchError {
            code: ErrorCode::BatchTooLarge,
            offset: at,
            path: "header.event_count".into(),
            problem: format!(
                "the batch holds {event_count} events; the maximum is {INGEST_EVENTS_MAX}"
            ),
        });
    }
    let at = reader.offset();
    let string_count = read(reader.count32(STRING_BYTES_MIN), || {
        "header.string_count".into()
    })?;
    if string_count > STRINGS_MAX {
        return Err(BatchError {
            code: ErrorCode::BatchTooLarge,
            offset: at,
            path: "header.string_count".into(),
            problem: format!(
                "the string table holds {string_count} strings; the maximum is {STRINGS_MAX}"
            ),
        });
    }
    let mut strings = Vec::with_capacity(string_count);
    for n in 0..string_count {
        strings.push(read(reader.str16(), || format!("strings[{n}]"))?);
    }
    let at = reader.offset();
    if event_count.saturating_mul(EVENT_BYTES_MIN) > reader.remaining() {
        return Err(malformed(
            at,
            "events".into(),
            format!(
                "{event_count} events (at least {EVENT_BYTES_MIN} bytes each) do not fit in the {} bytes left",
                reader.remaining()
            ),
        ));
    }
    let mut decoder = Decoder {
        reader,
        strings: &strings,
        copied: 0,
        copy_budget: bytes
            .len()
            .saturating_mul(NAME_COPY_BYTES_PER_BATCH_BYTE)
            .saturating_add(event_count.saturating_mul(EVENT_COPY_BYTES_MAX)),
    };
    let mut events = Vec::with_capacity(event_count);
    for index in 0..event_count {
        events.push(decoder.event(index)?);
    }
    if !decoder.reader.is_at_end() {
        return Err(malformed(
            decoder.reader.offset(),
            format!("events[{event_count}]"),
            format!(
                "{} bytes after the last of {event_count} events",
                decoder.reader.remaining()
            ),
        ));
    }
    Ok(events)
}

struct Decoder<'a> {
    reader: Reader<'a>,
    strings: &'a [&'a str],
    /// Bytes copied out of the string table so far, and the most allowed.
    copied: usize,
    copy_budget: usize,
}

impl Decoder<'_> {
    fn event(&mut self, index: usize) -> Result<UsageEvent, BatchError> {
        let path = |field: &str| format!("events[{index}].{field}");
        let event_id = read(self.reader.str16(), || path("event_id"))?.to_string();
        let customer = self.string(|| path("customer"))?;
        let meter = self.string(|| path("meter"))?;
        let timestamp = read(self.reader.i64(), || path("timestamp"))?;
        let at = self.reader.offset();
        let flags = read(self.reader.u8(), || path("flags"))?;
        if flags & !event_flag::VALUE != 0 {
            return Err(malformed(
                at,
                path("flags"),
                format!("unknown flags {flags:#04x}; only 0x01 (a value follows) is defined"),
            ));
        }
        let value = if flags & event_flag::VALUE != 0 {
            Some(read(self.reader.str16(), || path("value"))?.to_string())
        } else {
            None
        };
        let count = read(self.reader.count16(PROPERTY_BYTES), || {
            path("property_count")
        })?;
        let mut properties = BTreeMap::new();
        for n in 0..count {
            let at = self.reader.offset();
            let name = self.string(|| path(&format!("properties[{n}].name")))?;
            let value = self.string(|| path(&format!("properties[{n}].value")))?;
            if properties.contains_key(&name) {
                return Err(malformed(
                    at,
                    path(&format!("properties[{n}].name")),
                    format!("property {name:?} is named twice in one event"),
                ));
            }
            properties.insert(name, value);
        }
        Ok(UsageEvent {
            event_id,
            customer,
            meter,
            timestamp,
            value,
            properties,
        })
    }

    /// A string named by its number in the table, copied out of it.
    fn string(&mut self, path: impl Fn() -> String) -> Result<String, BatchError> {
        let at = self.reader.offset();
        let number = read(self.reader.u32(), &path)? as usize;
        let Some(text) = self.strings.get(number) else {
            return Err(malformed(
                at,
                path(),
                format!(
                    "string number {number} is past the table of {}",
                    self.strings.len()
                ),
            ));
        };
        self.copied = self.copied.saturating_add(text.len());
        if self.copied > self.copy_budget {
            return Err(BatchError {
                code: ErrorCode::BatchTooLarge,
                offset: at,
                path: path(),
                problem: format!(
                    "the events copy more than {} bytes out of the string table ({EVENT_COPY_BYTES_MAX} per event and {NAME_COPY_BYTES_PER_BATCH_BYTE} per byte of the batch)",
                    self.copy_budget
                ),
            });
        }
        Ok((*text).to_string())
    }
}

/// The results blob of an ingestion: one result per event, in order, and the
/// counts of recorded, duplicate and refused events.
pub fn encode_results(results: &[Result<EventRecorded, LedgerError>]) -> (Vec<u8>, [u64; 3]) {
    let mut writer = EventResultsWriter::new(results.len());
    let mut counts = [0u64; 3];
    for result in results {
        match result {
            Ok(recorded) => {
                counts[usize::from(recorded.duplicate)] += 1;
                writer.recorded(
                    recorded.seq,
                    recorded.index,
                    recorded.late,
                    recorded.counted,
                    recorded.duplicate,
                );
            }
            Err(error) => {
                counts[2] += 1;
                writer.error(
                    error.code.number(),
                    error.code.name(),
                    &error.field,
                    &error.message,
                );
            }
        }
    }
    (writer.finish(), counts)
}
