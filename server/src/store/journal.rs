//! Journal rows: entries stored in chunks of consecutive seqs, one sled key
//! per chunk, so a group of thousands of entries costs a handful of inserts.
//!
//! Key: `J` ‖ first seq (u64 BE). Value: for each entry, in seq order,
//! `entry_hash (32) ‖ length (u32 BE) ‖ canonical bytes`. A chunk holds at
//! most [`CHUNK_ENTRIES_MAX`] entries and never changes once written.

use super::{keys, Store};
use crate::error::StoreError;
use crate::ledger::state::Journaled;
use tally_core::entry::Digest;

/// Entries per journal chunk: small enough that reading one entry (which
/// reads its chunk) stays cheap.
pub const CHUNK_ENTRIES_MAX: usize = 128;

/// A stored journal entry: seq, stored hash, canonical bytes.
pub type JournalRow = (u64, Digest, Vec<u8>);

pub(super) fn insert_chunks(batch: &mut sled::Batch, group: &[Journaled]) {
    for chunk in group.chunks(CHUNK_ENTRIES_MAX) {
        let size: usize = chunk.iter().map(|j| 36 + j.canonical.len()).sum();
        let mut value = Vec::with_capacity(size);
        for journaled in chunk {
            debug_assert!(journaled.canonical.len() <= u32::MAX as usize);
            value.extend_from_slice(&journaled.hash);
            value.extend_from_slice(&(journaled.canonical.len() as u32).to_be_bytes());
            value.extend_from_slice(&journaled.canonical);
        }
        batch.insert(&keys::journal(chunk[0].seq), value);
    }
}

/// Splits a chunk value into its entries.
fn parse_chunk(first_seq: u64, value: &[u8]) -> Result<Vec<JournalRow>, StoreError> {
    let corrupt =
        |what: &str| StoreError::Corrupt(format!("journal chunk at seq {first_seq}: {what}"));
    let mut rows = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        if rest.len() < 36 {
            return Err(corrupt("truncated entry header"));
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&rest[..32]);
        let mut length = [0u8; 4];
        length.copy_from_slice(&rest[32..36]);
        let length = u32::from_be_bytes(length) as usize;
        let body = rest
            .get(36..36 + length)
            .ok_or_else(|| corrupt("truncated entry"))?;
        rows.push((first_seq + rows.len() as u64, hash, body.to_vec()));
        rest = &rest[36 + length..];
    }
    Ok(rows)
}

impl Store {
    /// The chunk holding `seq`, parsed, and the position of `seq` in it.
    fn chunk_of(&self, seq: u64) -> Result<Option<(Vec<JournalRow>, usize)>, StoreError> {
        let Some(row) = self
            .db
            .range(keys::journal(0)..=keys::journal(seq))
            .next_back()
        else {
            return Ok(None);
        };
        let (key, value) = row?;
        let first_seq = keys::trailing_seq(&key);
        let rows = parse_chunk(first_seq, &value)?;
        let index = (seq - first_seq) as usize;
        Ok((index < rows.len()).then_some((rows, index)))
    }

    /// One stored journal row.
    pub fn journal_row(&self, seq: u64) -> Result<Option<JournalRow>, StoreError> {
        Ok(self
            .chunk_of(seq)?
            .map(|(mut rows, index)| rows.swap_remove(index)))
    }

    /// Every stored journal row from `from_seq`, in order.
    pub fn journal_rows(
        &self,
        from_seq: u64,
    ) -> impl Iterator<Item = Result<JournalRow, StoreError>> + '_ {
        let first_chunk = self
            .db
            .range(keys::journal(0)..=keys::journal(from_seq))
            .next_back();
        let later_chunks = self
            .db
            .range(keys::journal(from_seq.saturating_add(1))..keys::journal(u64::MAX));
        first_chunk
            .into_iter()
            .chain(later_chunks)
            .flat_map(|row| {
                let rows = row
                    .map_err(StoreError::from)
                    .and_then(|(key, value)| parse_chunk(keys::trailing_seq(&key), &value));
                match rows {
                    Ok(rows) => rows.into_iter().map(Ok).collect::<Vec<_>>(),
                    Err(error) => vec![Err(error)],
                }
            })
            .filter(move |row| row.as_ref().map_or(true, |(seq, _, _)| *seq >= from_seq))
    }
}
