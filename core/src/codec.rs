//! The canonical encoding of journal entries (format version 1).
//!
//! `canonical_bytes = [FORMAT_VERSION] || bincode(entry)` with bincode 2 in big
//! endian, fixed-width integers: u8/u32/u64/u128/i64 take 1/4/8/16/8 bytes, a
//! string or sequence is a u64 length then its items, an enum is a u32 variant
//! index then its fields, an `Option` is a 0/1 byte then the value, a map is a
//! u64 length then its (key, value) pairs in key order. `docs/journal-format.md`
//! spells out each entry; the golden vectors in the tests freeze it.

use crate::entry::{Entry, EntryBody};
use bincode::config::{BigEndian, Configuration, Fixint, Limit};

/// The version byte that starts every canonical entry.
pub const FORMAT_VERSION: u8 = 1;

/// The largest canonical entry the ledger writes or reads, in bytes.
pub const ENTRY_BYTES_MAX: usize = 4 * 1024 * 1024;

/// bincode's limit counts decoded (in-memory) sizes, which exceed the encoded
/// size (a metadata pair takes 48 bytes in memory for 16 encoded); the input's
/// own length is checked against `ENTRY_BYTES_MAX` before decoding.
const DECODE_MEMORY_MAX: usize = 16 * ENTRY_BYTES_MAX;

type Config = Configuration<BigEndian, Fixint, Limit<DECODE_MEMORY_MAX>>;

const CONFIG: Config = bincode::config::standard()
    .with_big_endian()
    .with_fixed_int_encoding()
    .with_limit::<DECODE_MEMORY_MAX>();

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty entry")]
    Empty,
    #[error("unknown journal format version {0}")]
    UnknownVersion(u8),
    #[error("malformed entry: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the entry")]
    TrailingBytes(usize),
    #[error("entry of {0} bytes is over the limit of {ENTRY_BYTES_MAX}")]
    TooLarge(usize),
    #[error("entry bytes are not in canonical form (e.g. map keys out of order or repeated)")]
    NonCanonical,
}

/// Encodes an entry canonically. Equal entries always give equal bytes.
///
/// The ledger's input limits (postings, metadata, string sizes) keep every
/// entry far below `ENTRY_BYTES_MAX`; the debug assertion checks it.
pub fn encode(entry: &Entry) -> Vec<u8> {
    // A two-posting transfer takes about 170 bytes: one allocation, no
    // regrowth. A usage batch takes up to megabytes: its size is measured
    // first, so that it is written once into a buffer of exactly that size
    // instead of being copied through every doubling.
    let capacity = match &entry.body {
        EntryBody::UsageRecorded(_) => {
            let mut size = bincode::enc::write::SizeWriter::default();
            bincode::encode_into_writer(entry, &mut size, CONFIG)
                .expect("measuring an encoding cannot fail");
            1 + size.bytes_written
        }
        _ => 256,
    };
    let mut bytes = Vec::with_capacity(capacity);
    bytes.push(FORMAT_VERSION);
    bincode::encode_into_std_write(entry, &mut bytes, CONFIG)
        .expect("encoding into a Vec cannot fail");
    debug_assert!(bytes.len() <= ENTRY_BYTES_MAX, "entry over ENTRY_BYTES_MAX");
    bytes
}

/// Decodes canonical bytes; any byte that does not belong is an error, and so
/// is any encoding other than the canonical one (one entry, one byte string,
/// one hash).
pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
    let entry = decode_lenient(bytes)?;
    if encode(&entry) != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(entry)
}

fn decode_lenient(bytes: &[u8]) -> Result<Entry, DecodeError> {
    if bytes.len() > ENTRY_BYTES_MAX {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let (entry, read): (Entry, usize) = bincode::decode_from_slice(body, CONFIG)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if read != body.len() {
        return Err(DecodeError::TrailingBytes(body.len() - read));
    }
    Ok(entry)
}
