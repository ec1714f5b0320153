//! Storage: the journal in append-only segment files ([`journal`]), the
//! account caches in one sled tree ([`keys`]), and the per-transaction caches
//! in memory ([`read_model`]).
//!
//! Durability contract: [`Store::write_group`] first appends a group's
//! entries to the journal with ONE write and ONE `fdatasync`: that is the
//! durability point, and nothing is acknowledged before it. Only then does it
//! apply the group's stored cache rows to sled, in one atomic batch but
//! without a flush: the caches are rebuildable from the journal, so they may
//! lag it after a crash (the start catches them up, `engine::recover`) but
//! are never ahead of it. Readers see only entries below
//! [`Store::committed`], which is raised after both, so nothing
//! unacknowledged is ever shown.
//!
//! Architecture invariant: only `store/` knows about sled and about the
//! journal's files.

mod history;
mod journal;
pub mod keys;
mod legacy;
pub mod merkle;
mod published;
mod read;
pub mod read_model;
pub mod records;
pub mod transaction_view;

use crate::error::StoreError;
use crate::ledger::state::{Journaled, LedgerState};
use read_model::ReadModel;
use records::AccountRecord;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use tally_core::entry::{Digest, EntryBody};

use journal::Journal;
pub use journal::{group_record_bytes, JournalRow, SEGMENT_BYTES_MAX};

/// The journal's directory under the data directory.
pub const JOURNAL_DIR: &str = "journal";

/// The stored cache rows of a group whose journal record is durable.
pub struct CacheRows(Option<sled::Batch>);

/// A raw storage row: key and value bytes.
pub type RawRow = (Vec<u8>, Vec<u8>);

/// Every meter's current version, by code.
pub type CurrentMeters = std::collections::BTreeMap<String, crate::metering::catalog::MeterVersion>;

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    journal: Arc<Journal>,
    /// The data directory (the sled files are in `sled/` below it, the
    /// journal's in `journal/`).
    data_dir: Arc<std::path::PathBuf>,
    /// Journal length that readers may see (flushed entries only).
    /// The published length readers see (`published.rs`).
    published: Arc<published::Published>,
    read_model: Arc<RwLock<ReadModel>>,
    /// The current version of every meter, as published: ingestion checks
    /// its events against them without taking the read model (see
    /// [`Store::current_meters`]).
    meters: Arc<RwLock<Arc<CurrentMeters>>>,
    /// The Merkle tree's right edge; advanced by whoever writes the journal
    /// (the writer, or start-up replay).
    frontier: Arc<Mutex<merkle::Frontier>>,
}

impl Store {
    pub fn open(path: &Path, cache_capacity_bytes: u64) -> Result<Store, StoreError> {
        Store::open_with(path, cache_capacity_bytes, SEGMENT_BYTES_MAX)
    }

    /// [`Store::open`] with another segment size limit (tests roll segments
    /// with a tiny one).
    fn open_with(
        path: &Path,
        cache_capacity_bytes: u64,
        segment_limit: u64,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(path)?;
        // sled first: it locks the data directory, so nothing below (which
        // may truncate a torn record) runs while another process has it open.
        let db = sled::Config::new()
            .path(path.join("sled"))
            .cache_capacity(cache_capacity_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let journal_dir = path.join(JOURNAL_DIR);
        let staging = path.join(legacy::STAGING_DIR);
        if staging.exists() {
            // A move out of sled that did not finish; sled still has it all.
            std::fs::remove_dir_all(&staging)?;
        }
        if journal::segment_files(&journal_dir)?.is_empty() && legacy::has_rows(&db)? {
            legacy::migrate(&db, path, &journal_dir, segment_limit)?;
        } else if !journal_dir.exists() {
            std::fs::create_dir(&journal_dir)?;
            journal::sync_dir(path)?;
        }
        let journal = Journal::open(&journal_dir, segment_limit)?;
        legacy::retire(&db, &journal)?;
        Ok(Store {
            db,
            journal: Arc::new(journal),
            data_dir: Arc::new(path.to_path_buf()),
            published: Arc::new(published::Published::default()),
            read_model: Arc::new(RwLock::new(ReadModel::default())),
            meters: Arc::default(),
            frontier: Arc::new(Mutex::new(merkle::Frontier::default())),
        })
    }

    /// Journal length and chain head (the last entry's hash), from the
    /// journal's files: durable entries only.
    pub fn head(&self) -> Result<(u64, Digest), StoreError> {
        Ok(self.journal.head())
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

    /// The journal length readers see: every published entry, and at least
    /// every entry an answer has been sent for (it waits for that fold).
    pub fn committed(&self) -> u64 {
        self.published.length_for_reads()
    }

    /// The read model, once it reflects every answer sent.
    pub(crate) fn read_model(&self) -> published::ModelGuard<'_> {
        self.published.read(&self.read_model)
    }

    /// Says that answers for the journal up to `length` (durable, perhaps not
    /// published yet) are about to be sent: reads from now on wait for it.
    pub fn announce(&self, length: u64) {
        self.published.announce(length);
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
        let mut meters_changed = false;
        for journaled in group {
            model.apply(journaled);
            meters_changed |= matches!(journaled.entry.body, EntryBody::MeterDefined(_));
        }
        if meters_changed {
            let current: CurrentMeters = model
                .usage
                .catalog
                .meters()
                .map(|meter| (meter.spec.code.clone(), meter.clone()))
                .collect();
            *self.meters.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(current);
        }
        debug_assert_eq!(
            self.published.length_now(),
            group[0].seq,
            "groups are published in order"
        );
        self.published.set(last.seq + 1);
    }

    /// The current version of every meter, by code, as of the last group
    /// published that defined one. It neither waits for an announced fold
    /// nor takes the read model, which a fold holds for milliseconds: an
    /// ingestion call checks its events against it on the caller's task while
    /// the previous group folds, and the writer redoes the check of any event
    /// whose meter changed since.
    pub fn current_meters(&self) -> Arc<CurrentMeters> {
        Arc::clone(&self.meters.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Makes a group of journaled entries durable in the journal, then
    /// applies their stored cache rows to sled in one atomic batch (not
    /// flushed: a crash may lose it, and the next start rewrites it from the
    /// journal). Readers see the group once it is [`Store::publish`]ed.
    /// `state` is the ledger state after the group.
    pub fn write_group(&self, group: &[Journaled], state: &LedgerState) -> Result<(), StoreError> {
        let caches = self.write_journal(group, state)?;
        self.apply_caches(caches)
    }

    /// The first half of [`Store::write_group`]: the group made durable in
    /// the journal, and its cache rows to apply with [`Store::apply_caches`]
    /// before it is published. The writer leaves that second half to the
    /// publisher: sled's batch apply can wait several milliseconds, and the
    /// next group need not wait for it.
    pub fn write_journal(
        &self,
        group: &[Journaled],
        state: &LedgerState,
    ) -> Result<CacheRows, StoreError> {
        let Some(last) = group.last() else {
            return Ok(CacheRows(None));
        };
        let started = std::time::Instant::now();
        // The durability point: journal first, so the caches never get ahead.
        self.journal.append_group(group)?;
        let written = started.elapsed();
        let mut batch = sled::Batch::default();
        for journaled in group {
            stored_cache_rows(&mut batch, journaled, state);
        }
        merkle::insert_nodes(&mut batch, &self.advance_frontier(group));
        batch.insert(keys::META_CACHES, &(last.seq + 1).to_be_bytes());
        tracing::debug!(
            journal_us = written.as_micros() as u64,
            caches_us = (started.elapsed() - written).as_micros() as u64,
            "group written"
        );
        Ok(CacheRows(Some(batch)))
    }

    /// Applies a durable group's cache rows (in group order, before the
    /// group is published).
    pub fn apply_caches(&self, caches: CacheRows) -> Result<(), StoreError> {
        if let Some(batch) = caches.0 {
            self.db.apply_batch(batch)?;
        }
        Ok(())
    }

    /// Start-up catch-up: stored cache rows only (the journal has the entries).
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

    /// Drops every stored cache row (for a rebuild); the journal is not
    /// touched.
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

    /// Flushes the caches to disk (the journal is durable group by group).
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

#[cfg(test)]
mod tests;
