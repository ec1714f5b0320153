//! The journal's previous home, sled, and the one-time move out of it.
//!
//! Data directories written before the segment files keep the journal in
//! sled: `J` ‖ first seq (u64 BE) → a chunk of at most 128 entries, each
//! `entry_hash (32) ‖ length (u32 BE) ‖ canonical bytes`, and `Mhead` →
//! journal length (u64 BE) ‖ chain head. On open, such a journal is copied
//! into segment files and then removed from sled, in an order that a crash
//! at any point leaves recoverable:
//!
//! 1. the segments are written in `journal.migrating/` and fsynced, with the
//!    directory (a crash here leaves a staging directory that the next open
//!    deletes and writes again: sled still has every row);
//! 2. `journal.migrating/` is renamed to `journal/` and the data directory
//!    fsynced (atomic: either no segment or all of them);
//! 3. the sled rows are checked against the segments, entry by entry, then
//!    removed in one batch and sled flushed. A crash between 2 and 3 leaves
//!    both; the next open checks and removes the rows again.

use super::journal::{self, Journal, RecordBuilder};
use super::keys;
use crate::error::StoreError;
use std::path::Path;

/// The staging directory of a move out of sled.
pub(super) const STAGING_DIR: &str = "journal.migrating";

/// Entries per group record written by the move (about 2 MiB of transfers).
const RECORD_ENTRIES_MAX: u64 = 8192;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// Whether sled still holds journal chunk rows.
pub(super) fn has_rows(db: &sled::Db) -> Result<bool, StoreError> {
    Ok(db
        .scan_prefix([keys::LEGACY_JOURNAL])
        .next()
        .transpose()?
        .is_some())
}

/// Every legacy journal row in seq order, checking that chunks are gapless.
fn legacy_rows(
    db: &sled::Db,
) -> impl Iterator<Item = Result<journal::JournalRow, StoreError>> + '_ {
    let mut expected = None;
    db.scan_prefix([keys::LEGACY_JOURNAL]).flat_map(move |row| {
        let rows = row.map_err(StoreError::from).and_then(|(key, value)| {
            if key.len() != 9 {
                return Err(corrupt("malformed sled journal chunk key"));
            }
            let first_seq = keys::trailing_seq(&key);
            if let Some(expected) = expected {
                if first_seq != expected {
                    return Err(corrupt(format!(
                        "sled journal chunk at seq {first_seq}, but the chunks before it end at \
                         seq {expected}"
                    )));
                }
            }
            let rows = journal::parse_entries(first_seq, &value)?;
            expected = Some(first_seq + rows.len() as u64);
            Ok(rows)
        });
        match rows {
            Ok(rows) => rows.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(error) => vec![Err(error)],
        }
    })
}

/// The legacy head record (journal length, chain head), if any.
fn legacy_head(db: &sled::Db) -> Result<Option<(u64, [u8; 32])>, StoreError> {
    match db.get(keys::LEGACY_HEAD)? {
        None => Ok(None),
        Some(bytes) if bytes.len() == 40 => {
            let mut head = [0u8; 32];
            head.copy_from_slice(&bytes[8..]);
            Ok(Some((keys::trailing_seq(&bytes[..8]), head)))
        }
        Some(_) => Err(corrupt("malformed sled head record")),
    }
}

/// Steps 1 and 2: copies the sled journal into segment files and puts them
/// in place as `journal_dir` (which holds no segment).
pub(super) fn migrate(
    db: &sled::Db,
    data_dir: &Path,
    journal_dir: &Path,
    segment_limit: u64,
) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    // The caller has removed a staging directory left by an earlier attempt.
    let staging = data_dir.join(STAGING_DIR);
    std::fs::create_dir(&staging)?;
    let staged = Journal::open(&staging, segment_limit)?;
    let mut record = RecordBuilder::new(0, 0);
    let mut next_seq = 0;
    for row in legacy_rows(db) {
        let (seq, hash, canonical) = row?;
        if seq != next_seq {
            return Err(corrupt(format!(
                "the sled journal starts at seq {seq}, not 0"
            )));
        }
        record.push(&hash, &canonical)?;
        next_seq += 1;
        if record.count() >= RECORD_ENTRIES_MAX || record.body_len() >= 8 << 20 {
            let full = std::mem::replace(&mut record, RecordBuilder::new(next_seq, 0));
            staged.append(full.finish()?, false)?;
        }
    }
    if !record.is_empty() {
        staged.append(record.finish()?, false)?;
    }
    let (length, head) = staged.head();
    if let Some((recorded_length, recorded_head)) = legacy_head(db)? {
        if (recorded_length, recorded_head) != (length, head) {
            return Err(corrupt(format!(
                "the sled journal has {length} entries but its head record says \
                 {recorded_length}, or another chain head"
            )));
        }
    }
    staged.sync()?;
    drop(staged);
    if journal_dir.exists() {
        // Empty of segments (the caller checked): `rename` needs it gone.
        std::fs::remove_dir(journal_dir)?;
    }
    std::fs::rename(&staging, journal_dir)?;
    journal::sync_dir(data_dir)?;
    tracing::info!(
        entries = length,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "journal moved out of sled into segment files"
    );
    Ok(())
}

/// Step 3: removes the sled journal rows and head record once every row is
/// found, byte for byte, in the segment files.
pub(super) fn retire(db: &sled::Db, journal: &Journal) -> Result<(), StoreError> {
    if has_rows(db)? {
        let mut segments = journal.rows(0);
        for row in legacy_rows(db) {
            let (seq, hash, canonical) = row?;
            let matching = match segments.next().transpose()? {
                Some((stored_seq, stored_hash, stored)) => {
                    stored_seq == seq && stored_hash == hash && stored == canonical
                }
                None => false,
            };
            if !matching {
                return Err(corrupt(format!(
                    "entry {seq}: sled still holds a journal row that the journal segments do \
                     not have"
                )));
            }
        }
    } else if db.get(keys::LEGACY_HEAD)?.is_none() {
        return Ok(());
    }
    let mut batch = sled::Batch::default();
    for key in db.scan_prefix([keys::LEGACY_JOURNAL]).keys() {
        batch.remove(key?);
    }
    batch.remove(keys::LEGACY_HEAD);
    db.apply_batch(batch)?;
    db.flush()?;
    Ok(())
}
