//! Storage: the journal and its caches in one sled tree.
//!
//! Durability contract: [`Store::write_group`] writes a group of entries and
//! every cache row derived from them in ONE atomic batch and returns only after
//! sled has flushed it to disk. Readers see only entries below
//! [`Store::committed`], which is raised after that flush, so nothing
//! unacknowledged is ever shown.
//!
//! Architecture invariant: only `store/` knows about sled.

pub mod keys;
mod read;
pub mod records;
pub mod transaction_view;

use crate::error::StoreError;
use crate::ledger::state::{Journaled, LedgerState};
use records::{AccountRecord, HistoryRow, TxRef};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tally_core::chain::GENESIS_PREV_HASH;
use tally_core::entry::{Digest, EntryBody, TransactionMode};

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// Journal length that readers may see (flushed entries only).
    committed: Arc<AtomicU64>,
}

/// A stored journal row: seq, stored hash, canonical bytes.
pub type JournalRow = (u64, Digest, sled::IVec);

/// A raw storage row: key and value bytes.
pub type RawRow = (Vec<u8>, Vec<u8>);

impl Store {
    pub fn open(path: &Path, cache_capacity_bytes: u64) -> Result<Store, StoreError> {
        std::fs::create_dir_all(path)?;
        let db = sled::Config::new()
            .path(path.join("sled"))
            .cache_capacity(cache_capacity_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        Ok(Store {
            db,
            committed: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Journal length and chain head as last written.
    pub fn head(&self) -> Result<(u64, Digest), StoreError> {
        match self.db.get(keys::META_HEAD)? {
            None => Ok((0, GENESIS_PREV_HASH)),
            Some(bytes) if bytes.len() == 40 => {
                let mut length = [0u8; 8];
                length.copy_from_slice(&bytes[..8]);
                let mut head = [0u8; 32];
                head.copy_from_slice(&bytes[8..]);
                Ok((u64::from_be_bytes(length), head))
            }
            Some(_) => Err(StoreError::Corrupt("malformed head record".into())),
        }
    }

    /// Journal length the caches reflect.
    pub fn caches_length(&self) -> Result<u64, StoreError> {
        Ok(match self.db.get(keys::META_CACHES)? {
            Some(bytes) if bytes.len() == 8 => keys::trailing_seq(&bytes),
            _ => 0,
        })
    }

    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub fn set_committed(&self, length: u64) {
        self.committed.store(length, Ordering::Release);
    }

    /// Every stored journal row from `from_seq`, in order.
    pub fn journal_rows(
        &self,
        from_seq: u64,
    ) -> impl Iterator<Item = Result<JournalRow, StoreError>> + '_ {
        self.db
            .range(keys::journal(from_seq)..keys::journal(u64::MAX))
            .map(|row| {
                let (key, value) = row?;
                if value.len() < 32 {
                    return Err(StoreError::Corrupt(format!(
                        "journal row {:?} too short",
                        key
                    )));
                }
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&value[..32]);
                Ok((
                    keys::trailing_seq(&key),
                    hash,
                    value.subslice(32, value.len() - 32),
                ))
            })
    }

    /// Writes a group of journaled entries with their cache rows in one atomic
    /// batch and flushes it to disk. `state` is the ledger state after the
    /// group (cache rows of transactions reflect it).
    pub fn write_group(&self, group: &[Journaled], state: &LedgerState) -> Result<(), StoreError> {
        let Some(last) = group.last() else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        for journaled in group {
            let mut value = Vec::with_capacity(32 + journaled.canonical.len());
            value.extend_from_slice(&journaled.hash);
            value.extend_from_slice(&journaled.canonical);
            batch.insert(&keys::journal(journaled.seq), value);
            cache_rows(&mut batch, journaled, state);
        }
        let length = last.seq + 1;
        let mut head = Vec::with_capacity(40);
        head.extend_from_slice(&length.to_be_bytes());
        head.extend_from_slice(&last.hash);
        batch.insert(keys::META_HEAD, head);
        batch.insert(keys::META_CACHES, &length.to_be_bytes());
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Rebuild support: cache rows only (the journal rows exist already).
    pub fn write_caches(&self, group: &[Journaled], state: &LedgerState) -> Result<(), StoreError> {
        let Some(last) = group.last() else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        for journaled in group {
            cache_rows(&mut batch, journaled, state);
        }
        batch.insert(keys::META_CACHES, &(last.seq + 1).to_be_bytes());
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// Drops every cache row (for a rebuild).
    pub fn clear_caches(&self) -> Result<(), StoreError> {
        for prefix in keys::CACHE_PREFIXES {
            let mut batch = sled::Batch::default();
            for key in self.db.scan_prefix([prefix]).keys() {
                batch.remove(key?);
            }
            self.db.apply_batch(batch)?;
        }
        self.db.remove(keys::META_CACHES)?;
        Ok(())
    }

    /// Every cache row, in key order (to compare a rebuild with the live state).
    pub fn cache_rows(&self) -> Result<Vec<RawRow>, StoreError> {
        let mut rows = Vec::new();
        for prefix in keys::CACHE_PREFIXES {
            for row in self.db.scan_prefix([prefix]) {
                let (key, value) = row?;
                rows.push((key.to_vec(), value.to_vec()));
            }
        }
        rows.sort();
        Ok(rows)
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

/// The cache rows derived from one entry.
fn cache_rows(batch: &mut sled::Batch, journaled: &Journaled, state: &LedgerState) {
    let seq = journaled.seq;
    let entry = &journaled.entry;
    let mut transaction = |id: &str| {
        if let Some(tx_ref) = state.transaction(id).and_then(TxRef::from_record) {
            batch.insert(
                keys::prefixed(keys::TRANSACTION, id),
                records::encode(&tx_ref),
            );
        }
    };
    let (effective_at, kind) = match &entry.body {
        EntryBody::TransactionRecorded(recorded) => {
            transaction(&recorded.id);
            if let TransactionMode::Reversal { reverses } = &recorded.mode {
                transaction(reverses);
            }
            let kind = match recorded.mode {
                TransactionMode::Standard => 1,
                TransactionMode::Pending { .. } => 2,
                TransactionMode::Reversal { .. } => 5,
            };
            (recorded.effective_at, kind)
        }
        EntryBody::PendingPosted(posted) => {
            transaction(&posted.id);
            transaction(&posted.pending_id);
            (posted.effective_at, 3)
        }
        EntryBody::PendingVoided(voided) => {
            transaction(&voided.id);
            transaction(&voided.pending_id);
            (None, 4)
        }
        EntryBody::PendingExpired { pending_id } => {
            // An expiry changes the balances of the pending transaction itself.
            transaction(pending_id);
            (None, 2)
        }
        EntryBody::CurrencyDefined { code, scale } => {
            batch.insert(keys::prefixed(keys::CURRENCY, code), &[*scale]);
            (None, 0)
        }
        EntryBody::AccountOpened(opened) => {
            let account = state.account(opened.account_id);
            batch.insert(
                keys::prefixed(keys::NAME, &opened.name),
                &opened.account_id.to_be_bytes(),
            );
            batch.insert(
                &keys::account(opened.account_id),
                records::encode(&AccountRecord::from_state(account, None)),
            );
            (None, 0)
        }
        EntryBody::AccountClosed { account_id } => {
            let record = AccountRecord::from_state(state.account(*account_id), Some(seq));
            batch.insert(&keys::account(*account_id), records::encode(&record));
            (None, 0)
        }
        EntryBody::LedgerCreated { .. } | EntryBody::TransactionRejected(_) => (None, 0),
    };
    let effective_at = effective_at.unwrap_or(entry.recorded_at);
    for (account_id, balance) in &journaled.touched {
        let row = HistoryRow {
            debits_posted: balance.debits_posted,
            credits_posted: balance.credits_posted,
            debits_pending: balance.debits_pending,
            credits_pending: balance.credits_pending,
            effective_at,
            kind,
        };
        batch.insert(&keys::history(*account_id, seq), records::encode(&row));
    }
}
