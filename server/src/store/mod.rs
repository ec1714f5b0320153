//! Storage: the journal and the account caches in one sled tree, and the
//! per-transaction caches in memory ([`read_model`]).
//!
//! Durability contract: [`Store::write_group`] writes a group of entries and
//! every stored cache row derived from them in ONE atomic batch and returns
//! only after sled has flushed it to disk. Readers see only entries below
//! [`Store::committed`], which is raised after that flush, so nothing
//! unacknowledged is ever shown.
//!
//! Architecture invariant: only `store/` knows about sled.

mod journal;
pub mod keys;
pub mod merkle;
mod read;
pub mod read_model;
pub mod records;
pub mod transaction_view;

use crate::error::StoreError;
use crate::ledger::state::{Journaled, LedgerState};
use read_model::ReadModel;
use records::AccountRecord;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use tally_core::chain::GENESIS_PREV_HASH;
use tally_core::entry::{Digest, EntryBody};

pub use journal::JournalRow;

/// A raw storage row: key and value bytes.
pub type RawRow = (Vec<u8>, Vec<u8>);

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// The data directory (the sled files are in `sled/` below it).
    data_dir: Arc<std::path::PathBuf>,
    /// Journal length that readers may see (flushed entries only).
    committed: Arc<AtomicU64>,
    read_model: Arc<RwLock<ReadModel>>,
    /// The Merkle tree's right edge; advanced by whoever writes the journal
    /// (the writer, or start-up replay).
    frontier: Arc<Mutex<merkle::Frontier>>,
}

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
            data_dir: Arc::new(path.to_path_buf()),
            committed: Arc::new(AtomicU64::new(0)),
            read_model: Arc::new(RwLock::new(ReadModel::default())),
            frontier: Arc::new(Mutex::new(merkle::Frontier::default())),
        })
    }

    /// Journal length and chain head as last written.
    pub fn head(&self) -> Result<(u64, Digest), StoreError> {
        match self.db.get(keys::META_HEAD)? {
            None => Ok((0, GENESIS_PREV_HASH)),
            Some(bytes) if bytes.len() == 40 => {
                let mut head = [0u8; 32];
                head.copy_from_slice(&bytes[8..]);
                Ok((keys::trailing_seq(&bytes[..8]), head))
            }
            Some(_) => Err(StoreError::Corrupt("malformed head record".into())),
        }
    }

    /// Journal length the stored caches reflect.
    pub fn caches_length(&self) -> Result<u64, StoreError> {
        Ok(match self.db.get(keys::META_CACHES)? {
            Some(bytes) if bytes.len() == 8 => keys::trailing_seq(&bytes),
            _ => 0,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub(crate) fn read_model(&self) -> RwLockReadGuard<'_, ReadModel> {
        self.read_model
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Room in the read model for `additional` more transaction ids.
    pub fn reserve_transactions(&self, additional: usize) {
        let mut model = self
            .read_model
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        model.reserve_transactions(additional);
    }

    /// Gives readers the writer's index of recorded event ids (`claims`).
    pub fn share_claims(&self, claims: Arc<crate::metering::claims::EventClaims>) {
        let mut model = self
            .read_model
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        model.usage.claims = claims;
    }

    /// Folds flushed entries into the in-memory caches and makes them visible
    /// to readers, in one critical section.
    pub fn publish(&self, group: &[Journaled]) {
        let Some(last) = group.last() else { return };
        let mut model = self
            .read_model
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for journaled in group {
            model.apply(journaled);
        }
        debug_assert_eq!(
            self.committed(),
            group[0].seq,
            "groups are published in order"
        );
        self.committed.store(last.seq + 1, Ordering::Release);
    }

    /// Writes a group of journaled entries with their stored cache rows in one
    /// atomic batch and flushes it to disk. Readers see it once it is
    /// [`Store::publish`]ed. `state` is the ledger state after the group.
    pub fn write_group(&self, group: &[Journaled], state: &LedgerState) -> Result<(), StoreError> {
        let Some(last) = group.last() else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        journal::insert_chunks(&mut batch, group);
        for journaled in group {
            stored_cache_rows(&mut batch, journaled, state);
        }
        merkle::insert_nodes(&mut batch, &self.advance_frontier(group));
        let length = last.seq + 1;
        let mut head = Vec::with_capacity(40);
        head.extend_from_slice(&length.to_be_bytes());
        head.extend_from_slice(&last.hash);
        batch.insert(keys::META_HEAD, head);
        batch.insert(keys::META_CACHES, &length.to_be_bytes());
        let started = std::time::Instant::now();
        self.db.apply_batch(batch)?;
        let applied = started.elapsed();
        self.db.flush()?;
        tracing::debug!(
            apply_us = applied.as_micros() as u64,
            flush_us = (started.elapsed() - applied).as_micros() as u64,
            "group written"
        );
        Ok(())
    }

    /// Start-up catch-up: stored cache rows only (the journal rows exist).
    pub fn write_caches(&self, group: &[Journaled], state: &LedgerState) -> Result<(), StoreError> {
        let Some(last) = group.last() else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        for journaled in group {
            stored_cache_rows(&mut batch, journaled, state);
        }
        merkle::insert_nodes(&mut batch, &self.advance_frontier(group));
        batch.insert(keys::META_CACHES, &(last.seq + 1).to_be_bytes());
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// Adds a group's entries to the Merkle tree's right edge; returns the
    /// subtree rows to store.
    fn advance_frontier(&self, group: &[Journaled]) -> Vec<(u32, u64, tally_audit::Hash)> {
        let mut frontier = self
            .frontier
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        frontier.push_group(group)
    }

    /// The Merkle root the tree will have once `group` (the entries written
    /// after the last group) is added; reads nothing.
    pub fn root_after(&self, group: &[Journaled]) -> tally_audit::Hash {
        let mut frontier = self
            .frontier
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        frontier.push_group(group);
        frontier.root()
    }

    /// Start-up: adds entries whose stored cache rows exist already to the
    /// Merkle tree's right edge, writing nothing.
    pub fn advance_frontier_replayed(&self, group: &[Journaled]) {
        self.advance_frontier(group);
    }

    /// Drops every stored cache row (for a rebuild).
    ///
    /// The caches' length marker goes first, durably: a crash in the middle
    /// then leaves caches that recovery knows to rebuild, never half-deleted
    /// caches marked current.
    pub fn clear_caches(&self) -> Result<(), StoreError> {
        self.db.remove(keys::META_CACHES)?;
        self.db.flush()?;
        for prefix in keys::CACHE_PREFIXES {
            let mut batch = sled::Batch::default();
            for key in self.db.scan_prefix([prefix]).keys() {
                batch.remove(key?);
            }
            self.db.apply_batch(batch)?;
        }
        Ok(())
    }

    /// Every cache row, stored and in memory, in key order (to compare a
    /// rebuild with the live state).
    pub fn cache_rows(&self) -> Result<Vec<RawRow>, StoreError> {
        let mut rows = self.read_model().rows();
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

/// The stored cache rows derived from one entry: currencies and accounts.
fn stored_cache_rows(batch: &mut sled::Batch, journaled: &Journaled, state: &LedgerState) {
    match &journaled.entry.body {
        EntryBody::CurrencyDefined { code, scale } => {
            batch.insert(keys::prefixed(keys::CURRENCY, code), &[*scale]);
        }
        EntryBody::AccountOpened(opened) => {
            let account = state.account(opened.account_id);
            batch.insert(
                keys::prefixed(keys::NAME, &opened.name),
                &opened.account_id.to_be_bytes(),
            );
            let record = AccountRecord::from_state(account, None);
            batch.insert(&keys::account(opened.account_id), records::encode(&record));
        }
        EntryBody::AccountClosed { account_id } => {
            let record = AccountRecord::from_state(state.account(*account_id), Some(journaled.seq));
            batch.insert(&keys::account(*account_id), records::encode(&record));
        }
        _ => {}
    }
}
