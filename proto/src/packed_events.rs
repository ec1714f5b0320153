//! The byte layout of `IngestEventsPacked` (`docs/packed-events.md`): the
//! packed events batch a client sends and the results the server answers with.
//!
//! It shares the conventions of the packed transaction batch ([`crate::packed`]):
//! little-endian, `str16` strings, a table of strings written once per batch,
//! the same [`Reader`] and [`Writer`], and the same error results. Turning a
//! batch into usage events is the server's (`api::packed_events`), building
//! one is the client's (`PackedEvents`).

use crate::packed::{read_error, read_results, status, write_error, ReadError, Writer, VERSION};

/// The first four bytes of a packed events batch.
pub const EVENTS_MAGIC: [u8; 4] = *b"TLYE";
/// The first four bytes of an events results blob.
pub const EVENT_RESULTS_MAGIC: [u8; 4] = *b"TLYU";
/// Magic, version, reserved, event count, string count.
pub const EVENTS_HEADER_BYTES: usize = 16;
/// Magic, version, reserved, result count.
pub const EVENT_RESULTS_HEADER_BYTES: usize = 12;

/// Bits of an event's flags byte. Other bits must be 0.
pub mod event_flag {
    /// A value (`str16`, decimal text) follows.
    pub const VALUE: u8 = 0x01;
}

/// Bits of a recorded (or duplicate) result's flags byte.
pub mod result_flag {
    /// Timestamped before the customer's closed period.
    pub const LATE: u8 = 0x01;
    /// Counted by its meter (its filters keep it).
    pub const COUNTED: u8 = 0x02;
}

/// The smallest encoded event: an empty id, customer and meter numbers,
/// timestamp, flags, no properties.
pub const EVENT_BYTES_MIN: usize = 2 + 4 + 4 + 8 + 1 + 2;
/// An encoded property: name and value numbers in the string table.
pub const PROPERTY_BYTES: usize = 4 + 4;
/// The smallest encoded string of the string table: an empty one.
pub const STRING_BYTES_MIN: usize = 2;
/// An encoded recorded (or duplicate) result: status, flags, seq, index.
pub const EVENT_RECORDED_BYTES: usize = 1 + 1 + 8 + 4;

/// One event's result, as the results blob carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventResultRecord {
    /// Recorded now (`duplicate` false), or before with the same content:
    /// the `usage_recorded` entry holding it and its place there.
    Recorded {
        seq: u64,
        index: u32,
        late: bool,
        counted: bool,
        duplicate: bool,
    },
    /// Refused: the `ErrorCode` number and name, the field path, the message.
    Error {
        code: u32,
        name: String,
        field: String,
        message: String,
    },
}

/// Writes an events results blob: the header, then one result per event.
#[derive(Debug, Clone)]
pub struct EventResultsWriter {
    writer: Writer,
    count: u32,
}

impl EventResultsWriter {
    /// A blob with room for `events` recorded results.
    pub fn new(events: usize) -> Self {
        let mut writer = Writer::with_capacity(
            EVENT_RESULTS_HEADER_BYTES + events.saturating_mul(EVENT_RECORDED_BYTES),
        );
        writer.bytes(&EVENT_RESULTS_MAGIC);
        writer.u16(VERSION);
        writer.u16(0);
        writer.u32(0); // the count, set by `finish`
        EventResultsWriter { writer, count: 0 }
    }

    pub fn recorded(&mut self, seq: u64, index: u32, late: bool, counted: bool, duplicate: bool) {
        self.writer.u8(if duplicate {
            status::REPLAYED
        } else {
            status::RECORDED
        });
        let mut flags = 0;
        if late {
            flags |= result_flag::LATE;
        }
        if counted {
            flags |= result_flag::COUNTED;
        }
        self.writer.u8(flags);
        self.writer.u64(seq);
        self.writer.u32(index);
        self.count = self.count.saturating_add(1);
    }

    /// `name` is the code's name (`CUSTOMER_NOT_FOUND`), at most 64 KiB.
    pub fn error(&mut self, code: u32, name: &str, field: &str, message: &str) {
        write_error(&mut self.writer, code, name, field, message);
        self.count = self.count.saturating_add(1);
    }

    pub fn record(&mut self, record: &EventResultRecord) {
        match record {
            EventResultRecord::Recorded {
                seq,
                index,
                late,
                counted,
                duplicate,
            } => self.recorded(*seq, *index, *late, *counted, *duplicate),
            EventResultRecord::Error {
                code,
                name,
                field,
                message,
            } => self.error(*code, name, field, message),
        }
    }

    /// The blob, with its result count.
    pub fn finish(mut self) -> Vec<u8> {
        self.writer.set_u32(8, self.count);
        self.writer.into_vec()
    }
}

/// Reads an events results blob. Any deviation from the layout (magic,
/// version, reserved bits, status, flags, truncation, bytes after the last
/// result) is an error naming its offset.
pub fn decode_event_results(bytes: &[u8]) -> Result<Vec<EventResultRecord>, ReadError> {
    read_results(
        bytes,
        EVENT_RESULTS_MAGIC,
        EVENT_RECORDED_BYTES.min(crate::packed::ERROR_RESULT_BYTES_MIN),
        |reader, status_byte, index| {
            Ok(Some(match status_byte {
                status::RECORDED | status::REPLAYED => {
                    let flags_at = reader.offset();
                    let flags = reader.u8()?;
                    if flags & !(result_flag::LATE | result_flag::COUNTED) != 0 {
                        return Err(ReadError {
                            offset: flags_at,
                            problem: format!("result {index} has unknown flags {flags:#04x}"),
                        });
                    }
                    EventResultRecord::Recorded {
                        seq: reader.u64()?,
                        index: reader.u32()?,
                        late: flags & result_flag::LATE != 0,
                        counted: flags & result_flag::COUNTED != 0,
                        duplicate: status_byte == status::REPLAYED,
                    }
                }
                status::ERROR => {
                    let error = read_error(reader)?;
                    EventResultRecord::Error {
                        code: error.code,
                        name: error.name,
                        field: error.field,
                        message: error.message,
                    }
                }
                _ => return Ok(None),
            }))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<EventResultRecord> {
        vec![
            EventResultRecord::Recorded {
                seq: 7,
                index: 0,
                late: false,
                counted: true,
                duplicate: false,
            },
            EventResultRecord::Error {
                code: 60,
                name: "CUSTOMER_NOT_FOUND".into(),
                field: "events[1].customer".into(),
                message: "no customer \"zoë\"".into(),
            },
            EventResultRecord::Recorded {
                seq: u64::MAX,
                index: u32::MAX,
                late: true,
                counted: false,
                duplicate: true,
            },
        ]
    }

    fn encode(records: &[EventResultRecord]) -> Vec<u8> {
        let mut writer = EventResultsWriter::new(records.len());
        records.iter().for_each(|record| writer.record(record));
        writer.finish()
    }

    #[test]
    fn results_round_trip() {
        // Goal: what the server writes, the client reads back unchanged.
        let records = sample();
        let bytes = encode(&records);
        assert_eq!(&bytes[..4], b"TLYU");
        assert_eq!(bytes[8..12], 3u32.to_le_bytes());
        assert_eq!(decode_event_results(&bytes), Ok(records));
        assert_eq!(decode_event_results(&encode(&[])), Ok(vec![]));
    }

    #[test]
    fn every_truncation_extension_and_bad_byte_is_an_error() {
        // Goal: a cut, padded or altered blob never decodes and never panics.
        let bytes = encode(&sample());
        crate::packed::tests::assert_altered_results_fail(
            &bytes,
            EVENT_RESULTS_HEADER_BYTES,
            decode_event_results,
        );
        let mut bad_flags = bytes.clone();
        bad_flags[EVENT_RESULTS_HEADER_BYTES + 1] = 0x04;
        assert!(decode_event_results(&bad_flags)
            .unwrap_err()
            .problem
            .contains("unknown flags 0x04"));
        let mut transaction_results = bytes;
        transaction_results[..4].copy_from_slice(b"TLYR");
        assert!(decode_event_results(&transaction_results)
            .unwrap_err()
            .problem
            .contains("\"TLYU\""));
    }
}
