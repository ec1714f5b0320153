//! The in-memory caches that readers query: each account's balance history
//! and the transaction index.
//!
//! Both are folds of the journal, rebuilt by replaying it on start. They live in
//! memory because they change with every transaction: kept in sled they cost
//! several random-key inserts per transaction, which dominated the write path
//! (see docs/benchmarks.md). The writer updates them after a group is flushed,
//! under a short write lock, and publishes the new journal length in the same
//! critical section, so a reader never sees a row of an unflushed entry.

use super::records::{self, HistoryRow, TxRef};
use crate::ledger::state::{Journaled, LedgerState};
use crate::ledger::view::Balance;
use std::collections::HashMap;
use tally_core::entry::{AccountId, EntryBody, TimestampNs, TransactionMode};

/// An account's balance after one entry that changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPoint {
    pub seq: u64,
    pub balance: Balance,
    /// When the change of the posted totals takes effect.
    pub effective_at: TimestampNs,
    /// When the change of the pending totals takes effect: a release of
    /// reserved amounts never takes effect before the reservation did (a
    /// back-dated post moves its posted amounts back, not the release).
    pub pending_effective_at: TimestampNs,
    /// `records::kind_code` of the entry's transaction kind.
    pub kind: u8,
}

#[derive(Debug, Default)]
pub struct ReadModel {
    /// Recorded transaction ids (refused ids have no row).
    pub transactions: HashMap<String, TxRef>,
    /// Per account id, in seq order.
    pub history: Vec<Vec<HistoryPoint>>,
}

fn resolved_pending(body: &EntryBody) -> Option<&str> {
    match body {
        EntryBody::PendingPosted(posted) => Some(&posted.pending_id),
        EntryBody::PendingVoided(voided) => Some(&voided.pending_id),
        EntryBody::PendingExpired { pending_id } => Some(pending_id),
        _ => None,
    }
}

impl ReadModel {
    /// Folds one entry in. `state` is the ledger state after the entry (or
    /// after the group that holds it: a transaction's row shows its latest
    /// state either way).
    pub fn apply(&mut self, journaled: &Journaled, state: &LedgerState) {
        let entry = &journaled.entry;
        let mut refresh = |id: &str| {
            if let Some(tx_ref) = state.transaction(id).and_then(TxRef::from_record) {
                self.transactions.insert(id.to_string(), tx_ref);
            }
        };
        let (effective_at, kind) = match &entry.body {
            EntryBody::TransactionRecorded(recorded) => {
                refresh(&recorded.id);
                if let TransactionMode::Reversal { reverses } = &recorded.mode {
                    refresh(reverses);
                }
                let kind = match recorded.mode {
                    TransactionMode::Standard => 1,
                    TransactionMode::Pending { .. } => 2,
                    TransactionMode::Reversal { .. } => 5,
                };
                (recorded.effective_at, kind)
            }
            EntryBody::PendingPosted(posted) => {
                refresh(&posted.id);
                refresh(&posted.pending_id);
                (posted.effective_at, 3)
            }
            EntryBody::PendingVoided(voided) => {
                refresh(&voided.id);
                refresh(&voided.pending_id);
                (None, 4)
            }
            // An expiry changes the balances of the pending transaction itself.
            EntryBody::PendingExpired { pending_id } => {
                refresh(pending_id);
                (None, 2)
            }
            _ => (None, 0),
        };
        let effective_at = effective_at.unwrap_or(entry.recorded_at);
        let reserved_at = resolved_pending(&entry.body)
            .and_then(|pending_id| state.transaction(pending_id))
            .and_then(|record| record.pending.as_ref())
            .map(|pending| pending.effective_at);
        let pending_effective_at = effective_at.max(reserved_at.unwrap_or(TimestampNs::MIN));
        for (account_id, balance) in &journaled.touched {
            let index = *account_id as usize;
            if self.history.len() <= index {
                self.history.resize_with(index + 1, Vec::new);
            }
            let points = &mut self.history[index];
            debug_assert!(
                points.last().is_none_or(|p| p.seq < journaled.seq),
                "history out of order"
            );
            points.push(HistoryPoint {
                seq: journaled.seq,
                balance: *balance,
                effective_at,
                pending_effective_at,
                kind,
            });
        }
    }

    /// The history of an account (empty if it never changed).
    pub fn points(&self, account_id: AccountId) -> &[HistoryPoint] {
        self.history
            .get(account_id as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// Every row in a canonical byte form, sorted: to prove that a rebuild
    /// equals the live state.
    pub fn rows(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut rows = Vec::new();
        for (id, tx_ref) in &self.transactions {
            rows.push((format!("T{id}").into_bytes(), records::encode(tx_ref)));
        }
        for (account_id, points) in self.history.iter().enumerate() {
            for point in points {
                let mut key = format!("H{account_id:020}").into_bytes();
                key.extend_from_slice(&point.seq.to_be_bytes());
                let row = HistoryRow {
                    debits_posted: point.balance.debits_posted,
                    credits_posted: point.balance.credits_posted,
                    debits_pending: point.balance.debits_pending,
                    credits_pending: point.balance.credits_pending,
                    effective_at: point.effective_at,
                    pending_effective_at: point.pending_effective_at,
                    kind: point.kind,
                };
                rows.push((key, records::encode(&row)));
            }
        }
        rows.sort();
        rows
    }
}
