//! Packed events: `IngestEventsPacked`, the fixed-layout binary form of an
//! ingestion batch for high-volume senders (`docs/packed-events.md`).
//!
//! [`PackedEvents`] encodes a slice of events once: each customer, meter,
//! property name and property value is written once, in the batch's string
//! table, and events refer to it by number. The server turns the batch into
//! exactly the events the protobuf path makes of the same events, with the
//! same hashes, so the two wires can be mixed freely: an event sent packed and
//! retried with [`Client::ingest_events`] (or the reverse) is a duplicate.
//! The answer is the same [`IngestOutcome`].
//!
//! ```
//! use std::collections::BTreeMap;
//! use tally_client::{PackedEvents, UsageEvent};
//! let event = UsageEvent {
//!     event_id: "evt-1".into(),
//!     customer: "acme".into(),
//!     meter: "api_calls".into(),
//!     timestamp: 1_700_000_000_000_000_000,
//!     value: Some("1".into()),
//!     properties: BTreeMap::from([("region".into(), "eu".into())]),
//! };
//! let packed = PackedEvents::new(&[event])?;
//! assert_eq!(packed.len(), 1);
//! # Ok::<(), tally_client::ClientError>(())
//! ```

use std::collections::HashMap;

use tally_proto::packed::{Bytes, ReadError, Writer, STRING_BYTES_MAX, VERSION};
use tally_proto::packed_events::{
    decode_event_results, event_flag, EventResultRecord, EVENTS_HEADER_BYTES, EVENTS_MAGIC,
};
use tally_proto::v1 as pb;

use super::{EventRecorded, EventResult, IngestOutcome, UsageEvent, INGEST_EVENTS_MAX};
use crate::client::{Client, Retry};
use crate::error::{ClientError, ErrorCode, ItemError, Result};

/// An ingestion batch in the packed binary format, encoded once: a retry
/// resends the same bytes.
///
/// What the format cannot carry is refused when the batch is made, with
/// [`ClientError::InvalidRequest`]: no events or more than
/// [`INGEST_EVENTS_MAX`], a string over 65,535 bytes, more than 65,535
/// properties in one event. Everything else goes to the ledger, which answers
/// each event as it answers the same event sent with [`Client::ingest_events`].
#[derive(Debug, Clone)]
pub struct PackedEvents {
    bytes: Bytes,
    len: usize,
}

impl PackedEvents {
    /// Encodes `events`, in order.
    pub fn new(events: &[UsageEvent]) -> Result<PackedEvents> {
        if events.is_empty() || events.len() > INGEST_EVENTS_MAX {
            return Err(ClientError::InvalidRequest(format!(
                "{} events in one batch; a batch takes 1 to {INGEST_EVENTS_MAX}",
                events.len()
            )));
        }
        let mut table = StringTable::default();
        // Events first, into their own buffer: the table is known only after.
        let mut body = Writer::with_capacity(events.len() * 64);
        for (index, event) in events.iter().enumerate() {
            encode_event(&mut body, &mut table, event).map_err(|problem| {
                ClientError::InvalidRequest(format!("events[{index}]{problem}"))
            })?;
        }
        let mut batch = Writer::with_capacity(EVENTS_HEADER_BYTES + table.bytes.len() + body.len());
        batch.bytes(&EVENTS_MAGIC);
        batch.u16(VERSION);
        batch.u16(0);
        batch.u32(events.len() as u32);
        batch.u32(table.count);
        batch.bytes(table.bytes.as_slice());
        batch.bytes(body.as_slice());
        Ok(PackedEvents {
            bytes: Bytes::from(batch.into_vec()),
            len: events.len(),
        })
    }

    /// The number of events.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The batch's bytes (a reference count, not a copy).
    pub fn encoded(&self) -> Bytes {
        self.bytes.clone()
    }
}

/// The strings of a batch, each written once, and their numbers.
#[derive(Default)]
struct StringTable<'a> {
    numbers: HashMap<&'a str, u32, foldhash::fast::RandomState>,
    bytes: Writer,
    count: u32,
}

impl<'a> StringTable<'a> {
    fn number(&mut self, text: &'a str) -> std::result::Result<u32, String> {
        if let Some(&number) = self.numbers.get(text) {
            return Ok(number);
        }
        self.bytes.str16(text).map_err(|too_long| {
            format!(
                ": a string of {} bytes; the packed format takes at most {}",
                too_long.len, too_long.max
            )
        })?;
        let number = self.count;
        self.count += 1;
        self.numbers.insert(text, number);
        Ok(number)
    }
}

/// Appends one event; on a refusal, the problem (after the event's path).
fn encode_event<'a>(
    body: &mut Writer,
    table: &mut StringTable<'a>,
    event: &'a UsageEvent,
) -> std::result::Result<(), String> {
    let too_long = |field: &str, len: usize| {
        format!(".{field}: {len} bytes; the packed format takes at most {STRING_BYTES_MAX}")
    };
    body.str16(&event.event_id)
        .map_err(|e| too_long("event_id", e.len))?;
    body.u32(table.number(&event.customer)?);
    body.u32(table.number(&event.meter)?);
    body.i64(event.timestamp);
    match &event.value {
        Some(value) => {
            body.u8(event_flag::VALUE);
            body.str16(value).map_err(|e| too_long("value", e.len))?;
        }
        None => body.u8(0),
    }
    let count = u16::try_from(event.properties.len()).map_err(|_| {
        format!(
            ".properties: {} properties; the packed format takes at most {}",
            event.properties.len(),
            u16::MAX
        )
    })?;
    body.u16(count);
    for (name, value) in &event.properties {
        body.u32(table.number(name)?);
        body.u32(table.number(value)?);
    }
    Ok(())
}

/// The client's reading of an events results blob, checked against the
/// batch's length and the response's counts.
fn outcome(response: pb::PackedEventsResponse, expected: usize) -> Result<IngestOutcome> {
    let records = decode_event_results(&response.results).map_err(|error: ReadError| {
        ClientError::invalid_response(format!("packed event results: {error}"))
    })?;
    if records.len() != expected {
        return Err(ClientError::invalid_response(format!(
            "{} results for {expected} events",
            records.len()
        )));
    }
    let mut outcome = IngestOutcome {
        results: Vec::with_capacity(records.len()),
        recorded: 0,
        duplicates: 0,
        rejected: 0,
    };
    for (index, record) in records.into_iter().enumerate() {
        outcome.results.push(match record {
            EventResultRecord::Recorded {
                seq,
                index: place,
                late,
                counted,
                duplicate,
            } => {
                let recorded = EventRecorded {
                    seq,
                    index: place,
                    late,
                    counted,
                };
                if duplicate {
                    outcome.duplicates += 1;
                    EventResult::Duplicate(recorded)
                } else {
                    outcome.recorded += 1;
                    EventResult::Recorded(recorded)
                }
            }
            EventResultRecord::Error {
                code,
                name,
                field,
                message,
            } => {
                outcome.rejected += 1;
                // The number is the contract; a number this client does not
                // know may still come with a name it knows.
                let code = i32::try_from(code)
                    .ok()
                    .and_then(|number| ErrorCode::try_from(number).ok())
                    .or_else(|| ErrorCode::from_str_name(&name))
                    .unwrap_or(ErrorCode::Unspecified);
                EventResult::Rejected(ItemError {
                    index,
                    code,
                    field,
                    message,
                })
            }
        });
    }
    let stated = [
        ("recorded", response.recorded, outcome.recorded),
        ("duplicates", response.duplicates, outcome.duplicates),
        ("rejected", response.rejected, outcome.rejected),
    ];
    for (name, stated, found) in stated {
        if stated != found {
            return Err(ClientError::invalid_response(format!(
                "{name}: {stated}, but {found} results say so"
            )));
        }
    }
    Ok(outcome)
}

impl Client {
    /// Ingests a packed batch ([`PackedEvents`]): one result per event, in
    /// order, as [`Client::ingest_events`] answers for the same events.
    /// Retried on a lost connection like it: a retry of recorded events
    /// answers them as duplicates.
    pub async fn ingest_events_packed(&self, events: &PackedEvents) -> Result<IngestOutcome> {
        let request = pb::PackedEventsRequest {
            batch: events.encoded(),
        };
        let response = self
            .metering_call(
                Retry::Deduplicated,
                request,
                |mut raw, request| async move { raw.ingest_events_packed(request).await },
            )
            .await?;
        outcome(response, events.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tally_proto::packed::Reader;
    use tally_proto::packed_events::EventResultsWriter;

    fn event(id: &str, customer: &str, region: &str) -> UsageEvent {
        UsageEvent {
            event_id: id.into(),
            customer: customer.into(),
            meter: "api_calls".into(),
            timestamp: 1_700_000_000_000_000_000,
            value: Some("2.5".into()),
            properties: BTreeMap::from([("region".into(), region.into())]),
        }
    }

    #[test]
    fn strings_are_written_once_and_events_in_order() {
        // Goal: two events share their meter and property name; the table
        // holds each distinct string once, in the order first used.
        let events = [event("e1", "acme", "eu"), event("e2", "globex", "eu")];
        let packed = PackedEvents::new(&events).unwrap();
        let bytes = packed.encoded();
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.array::<4>().unwrap(), *b"TLYE");
        assert_eq!(reader.u16().unwrap(), 1);
        assert_eq!(reader.u16().unwrap(), 0);
        assert_eq!(reader.u32().unwrap(), 2);
        let count = reader.u32().unwrap();
        let table: Vec<&str> = (0..count).map(|_| reader.str16().unwrap()).collect();
        assert_eq!(table, ["acme", "api_calls", "region", "eu", "globex"]);
        assert_eq!(reader.str16().unwrap(), "e1");
        assert_eq!((reader.u32().unwrap(), reader.u32().unwrap()), (0, 1));
        assert_eq!(reader.i64().unwrap(), 1_700_000_000_000_000_000);
        assert_eq!(reader.u8().unwrap(), event_flag::VALUE);
        assert_eq!(reader.str16().unwrap(), "2.5");
        assert_eq!(reader.u16().unwrap(), 1);
        assert_eq!((reader.u32().unwrap(), reader.u32().unwrap()), (2, 3));
        assert_eq!(reader.str16().unwrap(), "e2");
        assert_eq!(reader.u32().unwrap(), 4);
    }

    #[test]
    fn the_documented_example_is_what_is_written() {
        // Goal: docs/packed-events.md's example is byte for byte this encoder's.
        let event = UsageEvent {
            event_id: "evt-1".into(),
            customer: "acme".into(),
            meter: "api_calls".into(),
            timestamp: 1_700_000_000_000_000_000,
            value: Some("2.5".into()),
            properties: BTreeMap::from([("region".into(), "eu".into())]),
        };
        let documented = "544c5945010000000100000004000000040061636d6509006170695f63616c6c73\
                          0600726567696f6e0200657505006576742d3100000000010000000000\
                          2a36fe9c9717010300322e3501000200000003000000";
        let bytes = PackedEvents::new(&[event]).unwrap().encoded();
        assert_eq!(bytes.len(), 84);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, documented);
    }

    #[test]
    fn what_the_format_cannot_carry_is_refused() {
        // Goal: an empty or oversized batch and an overlong string are refused
        // with the event's path, before anything is sent.
        assert!(PackedEvents::new(&[]).is_err());
        let many = vec![event("e", "acme", "eu"); INGEST_EVENTS_MAX + 1];
        assert!(PackedEvents::new(&many).is_err());
        let mut long = event("e2", "acme", "eu");
        long.customer = "c".repeat(STRING_BYTES_MAX + 1);
        let error = PackedEvents::new(&[event("e1", "acme", "eu"), long]).unwrap_err();
        assert!(error.to_string().contains("events[1]"), "{error}");
    }

    #[test]
    fn results_become_the_outcome_and_counts_are_checked() {
        // Goal: recorded, duplicate and refused results map to the same
        // outcome the protobuf path gives; counts that disagree are refused.
        let mut writer = EventResultsWriter::new(3);
        writer.recorded(5, 0, false, true, false);
        writer.recorded(4, 7, true, false, true);
        writer.error(
            61,
            "CUSTOMER_NOT_FOUND",
            "events[2].customer",
            "no customer",
        );
        let results: Bytes = writer.finish().into();
        let response = |recorded, duplicates, rejected| pb::PackedEventsResponse {
            results: results.clone(),
            recorded,
            duplicates,
            rejected,
        };
        let outcome = outcome(response(1, 1, 1), 3).unwrap();
        assert_eq!(
            (outcome.recorded, outcome.duplicates, outcome.rejected),
            (1, 1, 1)
        );
        assert_eq!(
            outcome.results[1],
            EventResult::Duplicate(EventRecorded {
                seq: 4,
                index: 7,
                late: true,
                counted: false
            })
        );
        match &outcome.results[2] {
            EventResult::Rejected(error) => {
                assert_eq!(
                    (error.index, error.field.as_str()),
                    (2, "events[2].customer")
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(super::outcome(response(2, 1, 1), 3).is_err());
        assert!(super::outcome(response(1, 1, 1), 4).is_err());
    }
}
