//! The byte layout of `CreateTransactionsPacked` (`docs/packed-batch.md`): the
//! packed batch a client sends and the results the server answers with.
//!
//! Both are part of the contract, like the `.proto` files, so both sides read
//! them from here: the constants of the format, a bounds-checked [`Reader`] and
//! a [`Writer`] (little-endian throughout), and the results codec, which is
//! plain data on both sides. Turning a batch into the ledger's commands is the
//! server's (`api::packed`), building one from the client's types is the
//! client's (`PackedBatch`).
//!
//! Nothing here panics on any input: every read is checked against what is
//! left, and a count or length is checked before anything is allocated for it.

pub use prost::bytes::Bytes;

/// The first four bytes of a packed batch.
pub const BATCH_MAGIC: [u8; 4] = *b"TLYB";
/// The first four bytes of a results blob.
pub const RESULTS_MAGIC: [u8; 4] = *b"TLYR";
/// The format version this code reads and writes (batch and results).
pub const VERSION: u16 = 1;
/// Magic, version, reserved, item count, name count.
pub const BATCH_HEADER_BYTES: usize = 16;
/// Magic, version, reserved, result count.
pub const RESULTS_HEADER_BYTES: usize = 12;

/// Item kinds (the first byte of an item): the numbers of the
/// `TransactionItem.kind` oneof.
pub mod kind {
    pub const TRANSACTION: u8 = 1;
    pub const POST_PENDING: u8 = 2;
    pub const VOID_PENDING: u8 = 3;
    pub const REVERSE: u8 = 4;
}

/// Bits of an item's flags byte (its second byte). Other bits must be 0.
pub mod flag {
    /// Linked to the next item.
    pub const LINKED: u8 = 0x01;
    /// Transactions only: reserve the amounts.
    pub const PENDING: u8 = 0x02;
    /// An `effective_at` (i64 ns) follows; not for void-pending items.
    pub const EFFECTIVE_AT: u8 = 0x04;
}

/// A posting's side: the numbers of the proto `Direction`.
pub mod side {
    pub const DEBIT: u8 = 1;
    pub const CREDIT: u8 = 2;
}

/// A result's status byte.
pub mod status {
    pub const RECORDED: u8 = 1;
    pub const REPLAYED: u8 = 2;
    pub const ERROR: u8 = 3;
}

/// The largest amount mantissa: what a `rust_decimal::Decimal` holds (96 bits).
pub const AMOUNT_MANTISSA_MAX: u128 = (1 << 96) - 1;
/// The most decimals of an amount (a `Decimal`'s largest scale).
pub const AMOUNT_SCALE_MAX: u8 = 28;
/// The longest string of a batch (u16 length prefix).
pub const STRING_BYTES_MAX: usize = u16::MAX as usize;
/// An encoded amount: mantissa (u128) and scale (u8).
pub const AMOUNT_BYTES: usize = 17;
/// The smallest encoded posting: name index, side, amount, empty currency.
pub const POSTING_BYTES_MIN: usize = 4 + 1 + AMOUNT_BYTES + 2;
/// The smallest encoded metadata entry: two empty strings.
pub const METADATA_ENTRY_BYTES_MIN: usize = 4;
/// The smallest encoded name of the name table: an empty string.
pub const NAME_BYTES_MIN: usize = 2;
/// An encoded recorded (or replayed) result: status, seq, recorded_at, hash.
pub const RECORDED_RESULT_BYTES: usize = 1 + 8 + 8 + 32;

// ---------------------------------------------------------------------------
// Reading.
// ---------------------------------------------------------------------------

/// Why bytes could not be read: where, and what was wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// Offset from the start of the buffer of the value that could not be read.
    pub offset: usize,
    pub problem: String,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.problem)
    }
}

impl std::error::Error for ReadError {}

/// A cursor over a byte buffer; every read is bounds-checked and fails with
/// the offset it started at.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

macro_rules! read_le {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("A little-endian `", stringify!($ty), "`.")]
            #[inline]
            pub fn $name(&mut self) -> Result<$ty, ReadError> {
                Ok(<$ty>::from_le_bytes(self.array()?))
            }
        )*
    };
}

impl<'a> Reader<'a> {
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    /// A reader of `bytes` from `offset` on (the end, if past it).
    #[inline]
    pub fn at(bytes: &'a [u8], offset: usize) -> Self {
        Reader {
            bytes,
            at: offset.min(bytes.len()),
        }
    }

    /// Where the next read starts.
    #[inline]
    pub fn offset(&self) -> usize {
        self.at
    }

    /// Bytes not read yet.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    #[inline]
    pub fn is_at_end(&self) -> bool {
        self.at == self.bytes.len()
    }

    /// An error at the current offset.
    #[inline]
    pub fn error(&self, problem: impl Into<String>) -> ReadError {
        ReadError {
            offset: self.at,
            problem: problem.into(),
        }
    }

    /// The next `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        if n > self.remaining() {
            return Err(self.short(n));
        }
        let taken = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(taken)
    }

    #[cold]
    #[inline(never)]
    fn short(&self, n: usize) -> ReadError {
        self.error(format!("needs {n} bytes, only {} left", self.remaining()))
    }

    /// The next `N` bytes as an array.
    #[inline]
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    #[inline]
    pub fn u8(&mut self) -> Result<u8, ReadError> {
        Ok(self.take(1)?[0])
    }

    read_le!(u16: u16, u32: u32, u64: u64, i64: i64, u128: u128);

    /// A count (u16) of things each at least `min_bytes` long, checked
    /// against what is left before the caller allocates for it.
    #[inline]
    pub fn count16(&mut self, min_bytes: usize) -> Result<usize, ReadError> {
        let start = self.at;
        let count = usize::from(self.u16()?);
        self.check_fits(start, count, min_bytes)?;
        Ok(count)
    }

    /// A count (u32) of things each at least `min_bytes` long, checked
    /// against what is left.
    #[inline]
    pub fn count32(&mut self, min_bytes: usize) -> Result<usize, ReadError> {
        let start = self.at;
        let count = self.u32()? as usize;
        self.check_fits(start, count, min_bytes)?;
        Ok(count)
    }

    #[inline]
    fn check_fits(&self, start: usize, count: usize, min_bytes: usize) -> Result<(), ReadError> {
        if count.saturating_mul(min_bytes) > self.remaining() {
            return Err(ReadError {
                offset: start,
                problem: format!(
                    "a count of {count} (at least {min_bytes} bytes each) does not fit in the {} bytes left",
                    self.remaining()
                ),
            });
        }
        Ok(())
    }

    /// A string with a u16 length prefix, which must be UTF-8.
    #[inline]
    pub fn str16(&mut self) -> Result<&'a str, ReadError> {
        let len = usize::from(self.u16()?);
        self.utf8(len)
    }

    /// A string with a u32 length prefix, which must be UTF-8.
    #[inline]
    pub fn str32(&mut self) -> Result<&'a str, ReadError> {
        let len = self.u32()? as usize;
        self.utf8(len)
    }

    #[inline]
    fn utf8(&mut self, len: usize) -> Result<&'a str, ReadError> {
        let start = self.at;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|error| ReadError {
            offset: start + error.valid_up_to(),
            problem: format!("a {len}-byte string is not UTF-8"),
        })
    }
}

// ---------------------------------------------------------------------------
// Writing.
// ---------------------------------------------------------------------------

/// A string longer than its length prefix can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong {
    pub len: usize,
    pub max: usize,
}

/// An append-only little-endian buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Writer {
    buf: Vec<u8>,
}

macro_rules! write_le {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("A little-endian `", stringify!($ty), "`.")]
            #[inline]
            pub fn $name(&mut self, value: $ty) {
                self.buf.extend_from_slice(&value.to_le_bytes());
            }
        )*
    };
}

impl Writer {
    #[inline]
    pub fn new() -> Self {
        Writer::default()
    }

    #[inline]
    pub fn with_capacity(bytes: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(bytes),
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    #[inline]
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// Drops everything written from `len` on (to undo a half-written item).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }

    /// Overwrites the byte at `at`, if there is one.
    #[inline]
    pub fn set_u8(&mut self, at: usize, value: u8) {
        if let Some(byte) = self.buf.get_mut(at) {
            *byte = value;
        }
    }

    /// The byte at `at`, if there is one.
    #[inline]
    pub fn get_u8(&self, at: usize) -> Option<u8> {
        self.buf.get(at).copied()
    }

    /// Overwrites the four bytes at `at` with a little-endian `u32`, if they exist.
    #[inline]
    pub fn set_u32(&mut self, at: usize, value: u32) {
        if let Some(bytes) = self.buf.get_mut(at..at.saturating_add(4)) {
            bytes.copy_from_slice(&value.to_le_bytes());
        }
    }

    #[inline]
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    #[inline]
    pub fn u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    write_le!(u16: u16, u32: u32, u64: u64, i64: i64, u128: u128);

    /// A string with a u16 length prefix; refused (nothing written) over
    /// [`STRING_BYTES_MAX`] bytes.
    #[inline]
    pub fn str16(&mut self, text: &str) -> Result<(), TooLong> {
        let len = u16::try_from(text.len()).map_err(|_| TooLong {
            len: text.len(),
            max: STRING_BYTES_MAX,
        })?;
        self.u16(len);
        self.bytes(text.as_bytes());
        Ok(())
    }

    /// A string with a u32 length prefix; a string over 4 GiB is cut at a
    /// character boundary (results only carry server-made messages).
    #[inline]
    pub fn str32(&mut self, text: &str) {
        let mut len = text.len().min(u32::MAX as usize);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        self.u32(len as u32);
        self.bytes(&text.as_bytes()[..len]);
    }
}

// ---------------------------------------------------------------------------
// Results.
// ---------------------------------------------------------------------------

/// One item's result, as the results blob carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultRecord {
    /// Recorded now (`replayed` false) or before, with the same content.
    Recorded {
        seq: u64,
        /// Nanoseconds since the Unix epoch.
        recorded_at: i64,
        entry_hash: [u8; 32],
        replayed: bool,
    },
    /// Refused: the `ErrorCode` number and name, the field path, the message.
    Error {
        code: u32,
        name: String,
        field: String,
        message: String,
    },
}

/// Writes a results blob: the header, then one result per call, in item order.
#[derive(Debug, Clone)]
pub struct ResultsWriter {
    writer: Writer,
    count: u32,
}

impl ResultsWriter {
    /// A blob with room for `items` recorded results.
    pub fn new(items: usize) -> Self {
        let mut writer = Writer::with_capacity(
            RESULTS_HEADER_BYTES + items.saturating_mul(RECORDED_RESULT_BYTES),
        );
        writer.bytes(&RESULTS_MAGIC);
        writer.u16(VERSION);
        writer.u16(0);
        writer.u32(0); // the count, set by `finish`
        ResultsWriter { writer, count: 0 }
    }

    pub fn recorded(&mut self, seq: u64, recorded_at: i64, entry_hash: &[u8; 32], replayed: bool) {
        self.writer.u8(if replayed {
            status::REPLAYED
        } else {
            status::RECORDED
        });
        self.writer.u64(seq);
        self.writer.i64(recorded_at);
        self.writer.bytes(entry_hash);
        self.count = self.count.saturating_add(1);
    }

    /// `name` is the code's name (`TRANSACTION_UNBALANCED`), at most 64 KiB.
    pub fn error(&mut self, code: u32, name: &str, field: &str, message: &str) {
        write_error(&mut self.writer, code, name, field, message);
        self.count = self.count.saturating_add(1);
    }

    pub fn record(&mut self, record: &ResultRecord) {
        match record {
            ResultRecord::Recorded {
                seq,
                recorded_at,
                entry_hash,
                replayed,
            } => self.recorded(*seq, *recorded_at, entry_hash, *replayed),
            ResultRecord::Error {
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

/// An error result: its status byte, the `ErrorCode` number, the code's name
/// (cut at 64 KiB), the field path and the message. Shared by the results of
/// both packed calls.
pub(crate) fn write_error(writer: &mut Writer, code: u32, name: &str, field: &str, message: &str) {
    writer.u8(status::ERROR);
    writer.u32(code);
    let mut short = name.len().min(STRING_BYTES_MAX);
    while !name.is_char_boundary(short) {
        short -= 1;
    }
    // Cannot fail: `short` is at most STRING_BYTES_MAX.
    let _ = writer.str16(&name[..short]);
    writer.str32(field);
    writer.str32(message);
}

/// The smallest error result: status, code and three empty strings.
pub(crate) const ERROR_RESULT_BYTES_MIN: usize = 1 + 4 + 2 + 4 + 4;

/// The fields of an error result after its status byte.
pub(crate) struct ErrorFields {
    pub code: u32,
    pub name: String,
    pub field: String,
    pub message: String,
}

/// Reads the fields of an error result after its status byte: code, name,
/// field, message.
pub(crate) fn read_error(reader: &mut Reader<'_>) -> Result<ErrorFields, ReadError> {
    Ok(ErrorFields {
        code: reader.u32()?,
        name: reader.str16()?.to_string(),
        field: reader.str32()?.to_string(),
        message: reader.str32()?.to_string(),
    })
}

/// Checks a results header (magic, version, reserved bytes) and reads its
/// count of results, each at least `min_result_bytes` long.
fn read_results_header(
    reader: &mut Reader<'_>,
    magic: [u8; 4],
    min_result_bytes: usize,
) -> Result<usize, ReadError> {
    let found: [u8; 4] = reader.array()?;
    if found != magic {
        return Err(ReadError {
            offset: 0,
            problem: format!(
                "not a results blob: magic {found:02x?}, expected {:?}",
                String::from_utf8_lossy(&magic)
            ),
        });
    }
    let at = reader.offset();
    let version = reader.u16()?;
    if version != VERSION {
        return Err(ReadError {
            offset: at,
            problem: format!("results version {version}; this client reads version {VERSION}"),
        });
    }
    let at = reader.offset();
    let reserved = reader.u16()?;
    if reserved != 0 {
        return Err(ReadError {
            offset: at,
            problem: format!("reserved header bytes are {reserved:#06x}, expected 0"),
        });
    }
    reader.count32(min_result_bytes)
}

/// Reads a results blob. Any deviation from the layout (magic, version,
/// reserved bits, status, truncation, bytes after the last result) is an
/// error naming its offset.
pub fn decode_results(bytes: &[u8]) -> Result<Vec<ResultRecord>, ReadError> {
    read_results(
        bytes,
        RESULTS_MAGIC,
        ERROR_RESULT_BYTES_MIN,
        |reader, status_byte, _| {
            Ok(Some(match status_byte {
                status::RECORDED | status::REPLAYED => ResultRecord::Recorded {
                    seq: reader.u64()?,
                    recorded_at: reader.i64()?,
                    entry_hash: reader.array()?,
                    replayed: status_byte == status::REPLAYED,
                },
                status::ERROR => read_error(reader)?.into(),
                _ => return Ok(None),
            }))
        },
    )
}

impl From<ErrorFields> for ResultRecord {
    fn from(error: ErrorFields) -> Self {
        ResultRecord::Error {
            code: error.code,
            name: error.name,
            field: error.field,
            message: error.message,
        }
    }
}

/// Reads a results blob of either packed call: its header (`magic`), then
/// each result, which starts with its status byte and whose rest `result`
/// reads (`None`: a status it does not know, an error here), then nothing.
pub(crate) fn read_results<T>(
    bytes: &[u8],
    magic: [u8; 4],
    min_result_bytes: usize,
    mut result: impl FnMut(&mut Reader<'_>, u8, usize) -> Result<Option<T>, ReadError>,
) -> Result<Vec<T>, ReadError> {
    let mut reader = Reader::new(bytes);
    let count = read_results_header(&mut reader, magic, min_result_bytes)?;
    let mut records = Vec::with_capacity(count);
    for index in 0..count {
        let at = reader.offset();
        let status_byte = reader.u8()?;
        match result(&mut reader, status_byte, index)? {
            Some(record) => records.push(record),
            None => {
                return Err(ReadError {
                    offset: at,
                    problem: format!("result {index} has unknown status {status_byte}"),
                })
            }
        }
    }
    if !reader.is_at_end() {
        return Err(reader.error(format!(
            "{} bytes after the last of {count} results",
            reader.remaining()
        )));
    }
    Ok(records)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn sample() -> Vec<ResultRecord> {
        vec![
            ResultRecord::Recorded {
                seq: 7,
                recorded_at: -5,
                entry_hash: [0xab; 32],
                replayed: false,
            },
            ResultRecord::Error {
                code: 31,
                name: "TRANSACTION_UNBALANCED".into(),
                field: "items[1].transaction.postings".into(),
                message: "débits ≠ credits".into(),
            },
            ResultRecord::Recorded {
                seq: u64::MAX,
                recorded_at: i64::MAX,
                entry_hash: [0; 32],
                replayed: true,
            },
        ]
    }

    fn encode(records: &[ResultRecord]) -> Vec<u8> {
        let mut writer = ResultsWriter::new(records.len());
        records.iter().for_each(|record| writer.record(record));
        writer.finish()
    }

    #[test]
    fn results_round_trip() {
        // Goal: what the server writes, the client reads back unchanged.
        let records = sample();
        let bytes = encode(&records);
        assert_eq!(&bytes[..4], b"TLYR");
        assert_eq!(bytes[8..12], 3u32.to_le_bytes());
        assert_eq!(decode_results(&bytes), Ok(records));
        assert_eq!(decode_results(&encode(&[])), Ok(vec![]));
    }

    /// Every cut of a valid results `blob` fails within it, one byte more
    /// fails at its end, and an unknown status in the first result fails:
    /// none panics. For the results of both packed calls.
    pub(crate) fn assert_altered_results_fail<T: std::fmt::Debug>(
        blob: &[u8],
        header_bytes: usize,
        decode: impl Fn(&[u8]) -> Result<T, ReadError>,
    ) {
        for len in 0..blob.len() {
            let error = decode(&blob[..len]).unwrap_err();
            assert!(error.offset <= len, "{len}: {error}");
        }
        let mut longer = blob.to_vec();
        longer.push(0);
        assert_eq!(decode(&longer).unwrap_err().offset, blob.len());
        let mut bad_status = blob.to_vec();
        bad_status[header_bytes] = 9;
        assert!(decode(&bad_status)
            .unwrap_err()
            .problem
            .contains("unknown status 9"));
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        // Goal: a cut or padded blob never decodes and never panics.
        assert_altered_results_fail(&encode(&sample()), RESULTS_HEADER_BYTES, decode_results);
    }

    #[test]
    fn reader_checks_bounds_counts_and_utf8() {
        // Goal: reads past the end, counts that cannot fit and bad UTF-8 are
        // errors at the right offset.
        let mut reader = Reader::new(&[1, 0, 2]);
        assert_eq!(reader.u16(), Ok(1));
        assert_eq!(reader.u16().unwrap_err().offset, 2);
        let mut reader = Reader::new(&[0xff, 0xff, 0, 0]);
        let error = reader.count16(4).unwrap_err();
        assert_eq!(error.offset, 0);
        let mut reader = Reader::new(&[3, 0, b'a', 0xc3, 0x28]);
        let error = reader.str16().unwrap_err();
        assert_eq!(error.offset, 3);
        let mut writer = Writer::new();
        assert_eq!(
            writer.str16(&"x".repeat(70_000)),
            Err(TooLong {
                len: 70_000,
                max: STRING_BYTES_MAX
            })
        );
        assert!(writer.is_empty());
    }
}
