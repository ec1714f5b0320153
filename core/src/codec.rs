//! The canonical encoding of journal entries (format version 1).
//!
//! `canonical_bytes = [FORMAT_VERSION] || bincode(entry)` with bincode 2 in big
//! endian, fixed-width integers: u8/u32/u64/u128/i64 take 1/4/8/16/8 bytes, a
//! string or sequence is a u64 length then its items, an enum is a u32 variant
//! index then its fields, an `Option` is a 0/1 byte then the value, a map is a
//! u64 length then its (key, value) pairs in key order. `docs/journal-format.md`
//! spells out each entry; the golden vectors in the tests freeze it.

use crate::entry::Entry;
use bincode::config::{BigEndian, Configuration, Fixint, Limit};

/// The version byte that starts every canonical entry.
pub const FORMAT_VERSION: u8 = 1;

/// The largest canonical entry the ledger writes or reads, in bytes.
pub const ENTRY_BYTES_MAX: usize = 4 * 1024 * 1024;

type Config = Configuration<BigEndian, Fixint, Limit<ENTRY_BYTES_MAX>>;

const CONFIG: Config = bincode::config::standard()
    .with_big_endian()
    .with_fixed_int_encoding()
    .with_limit::<ENTRY_BYTES_MAX>();

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
}

/// Encodes an entry canonically. Equal entries always give equal bytes.
pub fn encode(entry: &Entry) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(128);
    bytes.push(FORMAT_VERSION);
    bincode::encode_into_std_write(entry, &mut bytes, CONFIG)
        .expect("encoding into a Vec cannot fail for entries within ENTRY_BYTES_MAX");
    bytes
}

/// Decodes canonical bytes; any byte that does not belong is an error.
pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
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
