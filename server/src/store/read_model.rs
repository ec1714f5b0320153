//! The in-memory caches that readers query: each account's balance history,
//! the transaction index, and account names.
//!
//! The read model is a fold of the journal alone, like every cache: it is
//! rebuilt by replaying the journal on start. It lives in memory because it
//! changes with every transaction: kept in sled it cost several random-key
//! inserts per transaction, which dominated the write path (see
//! docs/benchmarks.md). The publisher folds each group in after it is durable,
//! under a short write lock, and publishes the new journal length in the same
//! critical section, so a reader never sees a row of an entry not yet durable.

use super::history::AccountHistory;
use super::records::{self, kind_code, pending_state_code, HistoryRow, TxLinks, TxRef};
use crate::billing::book::BillingBook;
use crate::ledger::id_map::IdMap;
use crate::ledger::state::{ApiKeyState, FastMap, Journaled};
use crate::ledger::view::{Balance, PendingState, TransactionKind};
use crate::metering::stored::UsageModel;
use crate::rating::catalog::PlanCatalog;
use tally_core::entry::{AccountId, Entry, EntryBody, TimestampNs, TransactionMode};

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

/// Name, currency code and scale of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountNaming {
    pub name: String,
    pub currency: String,
    pub scale: u8,
}

static NO_HISTORY: AccountHistory = AccountHistory::EMPTY;

#[derive(Debug, Default)]
pub struct ReadModel {
    /// Recorded transaction ids (refused ids have no row).
    pub transactions: IdMap<TxRef>,
    /// Per account id, in seq order.
    history: Vec<AccountHistory>,
    /// Per account id.
    pub accounts: Vec<AccountNaming>,
    currencies: FastMap<String, u8>,
    /// Seqs of the checkpoint entries (each is also the checkpoint's tree size), ascending.
    pub checkpoints: Vec<u64>,
    /// Seqs of the signing-key entries (adopted, rotated), ascending.
    pub key_entries: Vec<u64>,
    /// API keys by key id, as published: what authentication checks.
    pub api_keys: FastMap<String, ApiKeyState>,
    /// Customers, meters and stored usage.
    pub usage: UsageModel,
    /// Every version of every price plan.
    pub plans: PlanCatalog,
    /// Every billing document and what follows from it.
    pub billing: BillingBook,
}

impl ReadModel {
    /// Room for `additional` more transaction ids without rehashing.
    pub fn reserve_transactions(&mut self, additional: usize) {
        self.transactions.reserve(additional);
    }

    /// Folds one entry in.
    pub fn apply(&mut self, journaled: &Journaled) {
        let entry = &journaled.entry;
        let seq = journaled.seq;
        let (effective_at, kind, resolved) = match &entry.body {
            EntryBody::CurrencyDefined { code, scale } => {
                self.currencies.insert(code.clone(), *scale);
                return;
            }
            EntryBody::AccountOpened(opened) => {
                let scale = self
                    .currencies
                    .get(&opened.currency)
                    .copied()
                    .unwrap_or_default();
                debug_assert_eq!(opened.account_id, self.accounts.len() as u64);
                self.accounts.push(AccountNaming {
                    name: opened.name.clone(),
                    currency: opened.currency.clone(),
                    scale,
                });
                return;
            }
            body @ (EntryBody::TransactionRecorded(_)
            | EntryBody::InvoiceIssued(_)
            | EntryBody::InvoiceVoided(_)
            | EntryBody::CreditNoteIssued(_)
            | EntryBody::PaymentRecorded(_)) => {
                let recorded = body.transaction().expect("a transaction entry");
                if !matches!(body, EntryBody::TransactionRecorded(_)) {
                    let applied = self.billing.apply(seq, entry.recorded_at, body);
                    debug_assert!(
                        applied.is_ok(),
                        "the writer's state applied it: {applied:?}"
                    );
                }
                let effective_at = recorded.effective_at.unwrap_or(entry.recorded_at);
                let (kind, pending_state, expires_at) = match &recorded.mode {
                    TransactionMode::Standard => (kind_code(TransactionKind::Standard), 0, None),
                    TransactionMode::Pending { expires_at } => (
                        kind_code(TransactionKind::Pending),
                        pending_state_code(PendingState::Open),
                        *expires_at,
                    ),
                    TransactionMode::Reversal { reverses } => {
                        if let Some(original) = self.transactions.get_mut(reverses) {
                            let links = original.links_mut();
                            links.reversed_by = Some(recorded.id.clone());
                            links.reversed_seq = Some(seq);
                        }
                        (kind_code(TransactionKind::Reversal), 0, None)
                    }
                };
                self.insert(
                    &recorded.id,
                    seq,
                    kind,
                    effective_at,
                    pending_state,
                    expires_at,
                );
                (effective_at, kind, None)
            }
            EntryBody::PendingPosted(posted) => {
                let effective_at = posted.effective_at.unwrap_or(entry.recorded_at);
                let kind = kind_code(TransactionKind::PostPending);
                self.insert(&posted.id, seq, kind, effective_at, 0, None);
                let resolved = (
                    posted.pending_id.as_str(),
                    PendingState::Posted,
                    Some(&posted.id),
                );
                (effective_at, kind, Some(resolved))
            }
            EntryBody::PendingVoided(voided) => {
                let kind = kind_code(TransactionKind::VoidPending);
                self.insert(&voided.id, seq, kind, entry.recorded_at, 0, None);
                let resolved = (
                    voided.pending_id.as_str(),
                    PendingState::Voided,
                    Some(&voided.id),
                );
                (entry.recorded_at, kind, Some(resolved))
            }
            // An expiry changes the balances of the pending transaction itself.
            EntryBody::PendingExpired { pending_id } => (
                entry.recorded_at,
                kind_code(TransactionKind::Pending),
                Some((pending_id.as_str(), PendingState::Expired, None)),
            ),
            EntryBody::CheckpointSigned { .. } => {
                self.checkpoints.push(seq);
                return;
            }
            EntryBody::ApiKeyCreated(created) => {
                self.api_keys
                    .insert(created.key_id.clone(), ApiKeyState::created(created, seq));
                return;
            }
            EntryBody::ApiKeyRevoked { key_id } => {
                if let Some(key) = self.api_keys.get_mut(key_id) {
                    key.revoked_seq = Some(seq);
                }
                return;
            }
            EntryBody::SigningKeyAdopted { .. } | EntryBody::SigningKeyRotated { .. } => {
                self.key_entries.push(seq);
                return;
            }
            EntryBody::CustomerCreated(_)
            | EntryBody::MeterDefined(_)
            | EntryBody::UsageRecorded(_)
            | EntryBody::UsagePeriodClosed { .. } => {
                self.usage.apply(seq, entry.recorded_at, &entry.body);
                return;
            }
            EntryBody::PlanPublished(published) => {
                let applied = self.plans.apply(seq, entry.recorded_at, published);
                debug_assert!(
                    applied.is_ok(),
                    "the writer's state applied it: {applied:?}"
                );
                return;
            }
            EntryBody::BillingProfileSet(_)
            | EntryBody::SubscriptionChanged(_)
            | EntryBody::CouponGranted(_)
            | EntryBody::TaxRulesPublished(_) => {
                let applied = self.billing.apply(seq, entry.recorded_at, &entry.body);
                debug_assert!(
                    applied.is_ok(),
                    "the writer's state applied it: {applied:?}"
                );
                return;
            }
            EntryBody::LedgerCreated { .. }
            | EntryBody::AccountClosed { .. }
            | EntryBody::TransactionRejected(_) => return,
        };
        let mut pending_effective_at = effective_at;
        if let Some((pending_id, state, resolved_by)) = resolved {
            if let Some(pending) = self.transactions.get_mut(pending_id) {
                pending.pending_state = pending_state_code(state);
                let links = pending.links_mut();
                links.resolved_by = resolved_by.cloned();
                links.resolved_seq = Some(seq);
                pending_effective_at = effective_at.max(pending.effective_at);
            }
        }
        self.push_history(journaled, effective_at, pending_effective_at, kind);
    }

    fn insert(
        &mut self,
        id: &str,
        seq: u64,
        kind: u8,
        effective_at: TimestampNs,
        pending_state: u8,
        expires_at: Option<TimestampNs>,
    ) {
        let links = expires_at.map(|at| {
            Box::new(TxLinks {
                expires_at: Some(at),
                ..TxLinks::default()
            })
        });
        let tx_ref = TxRef {
            seq,
            effective_at,
            kind,
            pending_state,
            links,
        };
        self.transactions.insert(id, tx_ref);
    }

    fn push_history(
        &mut self,
        journaled: &Journaled,
        effective_at: TimestampNs,
        pending_effective_at: TimestampNs,
        kind: u8,
    ) {
        for (account_id, balance) in &journaled.touched {
            let index = *account_id as usize;
            if self.history.len() <= index {
                self.history.resize_with(index + 1, AccountHistory::default);
            }
            self.history[index].push(HistoryPoint {
                seq: journaled.seq,
                balance: *balance,
                effective_at,
                pending_effective_at,
                kind,
            });
        }
    }

    /// The scale of a defined currency.
    pub fn currency_scale(&self, code: &str) -> Option<u8> {
        self.currencies.get(code).copied()
    }

    /// Every defined currency and its scale, in no particular order.
    pub fn currencies(&self) -> impl Iterator<Item = (&String, u8)> {
        self.currencies.iter().map(|(code, scale)| (code, *scale))
    }

    /// The history of an account (empty if it never changed).
    pub fn history(&self, account_id: AccountId) -> &AccountHistory {
        self.history.get(account_id as usize).unwrap_or(&NO_HISTORY)
    }

    pub fn naming(&self, account_id: AccountId) -> Option<&AccountNaming> {
        self.accounts.get(account_id as usize)
    }

    /// The transaction id an entry is about, if any (for an expiry, the
    /// pending transaction's).
    pub fn transaction_id(entry: &Entry) -> Option<&str> {
        if let Some(recorded) = entry.body.transaction() {
            return Some(&recorded.id);
        }
        match &entry.body {
            EntryBody::PendingPosted(posted) => Some(&posted.id),
            EntryBody::PendingVoided(voided) => Some(&voided.id),
            EntryBody::PendingExpired { pending_id } => Some(pending_id),
            _ => None,
        }
    }

    /// Every row in a canonical byte form, sorted: to prove that a rebuild
    /// equals the live state.
    pub fn rows(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut rows = Vec::new();
        for (id, tx_ref) in self.transactions.iter() {
            rows.push((format!("T{id}").into_bytes(), records::encode(tx_ref)));
        }
        for (account_id, history) in self.history.iter().enumerate() {
            for point in history.iter() {
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
        for (account_id, naming) in self.accounts.iter().enumerate() {
            let key = format!("N{account_id:020}").into_bytes();
            let value =
                format!("{}|{}|{}", naming.name, naming.currency, naming.scale).into_bytes();
            rows.push((key, value));
        }
        rows.sort();
        rows
    }
}
