//! Builds the `TransactionView` of a journal entry: one function for the
//! writer's answers and for reads, so both show a transaction alike.

use super::records::{kind_from_code, state_from_code, TxRef};
use crate::ledger::view::{PostingView, TransactionKind, TransactionView};
use tally_core::entry::{AccountId, Digest, Entry, EntryBody, Posting, TransactionMode};

/// Account name, currency code and scale of an account id.
pub type AccountLookup<'a> = dyn Fn(AccountId) -> Option<(String, String, u8)> + 'a;

/// `None` if the entry is not a transaction.
pub fn build(
    seq: u64,
    hash: Digest,
    entry: &Entry,
    tx_ref: Option<&TxRef>,
    account: &AccountLookup,
) -> Option<TransactionView> {
    let postings = |postings: &[Posting]| -> Option<Vec<PostingView>> {
        postings
            .iter()
            .filter(|p| p.amount_minor > 0)
            .map(|p| {
                let (name, currency, scale) = account(p.account_id)?;
                Some(PostingView {
                    account: name,
                    side: p.side,
                    amount_minor: p.amount_minor,
                    currency,
                    scale,
                })
            })
            .collect()
    };
    let mut view = TransactionView {
        id: String::new(),
        kind: TransactionKind::Standard,
        seq,
        postings: Vec::new(),
        effective_at: entry.recorded_at,
        recorded_at: entry.recorded_at,
        description: String::new(),
        metadata: Default::default(),
        pending_id: None,
        reverses_id: None,
        pending_state: None,
        expires_at: None,
        resolved_by: None,
        reversed_by: None,
        entry_hash: hash,
    };
    match &entry.body {
        body if body.transaction().is_some() => {
            let recorded = body.transaction().expect("checked");
            view.id = recorded.id.clone();
            view.postings = postings(&recorded.postings)?;
            view.effective_at = recorded.effective_at.unwrap_or(entry.recorded_at);
            view.description = recorded.description.clone();
            view.metadata = recorded.metadata.clone();
            match &recorded.mode {
                TransactionMode::Standard => {}
                TransactionMode::Pending { expires_at } => {
                    view.kind = TransactionKind::Pending;
                    view.expires_at = *expires_at;
                }
                TransactionMode::Reversal { reverses } => {
                    view.kind = TransactionKind::Reversal;
                    view.reverses_id = Some(reverses.clone());
                }
            }
        }
        EntryBody::PendingPosted(posted) => {
            view.id = posted.id.clone();
            view.kind = TransactionKind::PostPending;
            view.postings = postings(&posted.postings)?;
            view.effective_at = posted.effective_at.unwrap_or(entry.recorded_at);
            view.description = posted.description.clone();
            view.metadata = posted.metadata.clone();
            view.pending_id = Some(posted.pending_id.clone());
        }
        EntryBody::PendingVoided(voided) => {
            view.id = voided.id.clone();
            view.kind = TransactionKind::VoidPending;
            view.description = voided.reason.clone();
            view.pending_id = Some(voided.pending_id.clone());
        }
        _ => return None,
    }
    if let Some(tx_ref) = tx_ref {
        debug_assert_eq!(kind_from_code(tx_ref.kind), Some(view.kind));
        view.pending_state = state_from_code(tx_ref.pending_state);
        view.resolved_by = tx_ref.resolved_by().cloned();
        view.reversed_by = tx_ref.reversed_by().cloned();
    }
    Some(view)
}

/// The brief view of a transaction entry: identity and position only (for
/// `CreateTransactionsRequest.brief`). `None` if the entry is not a transaction.
pub fn brief(seq: u64, hash: Digest, entry: &Entry) -> Option<TransactionView> {
    let (id, kind, effective_at, pending_id, reverses_id) = match &entry.body {
        body if body.transaction().is_some() => {
            let recorded = body.transaction().expect("checked");
            let (kind, reverses) = match &recorded.mode {
                TransactionMode::Standard => (TransactionKind::Standard, None),
                TransactionMode::Pending { .. } => (TransactionKind::Pending, None),
                TransactionMode::Reversal { reverses } => {
                    (TransactionKind::Reversal, Some(reverses.clone()))
                }
            };
            (&recorded.id, kind, recorded.effective_at, None, reverses)
        }
        EntryBody::PendingPosted(posted) => (
            &posted.id,
            TransactionKind::PostPending,
            posted.effective_at,
            Some(posted.pending_id.clone()),
            None,
        ),
        EntryBody::PendingVoided(voided) => (
            &voided.id,
            TransactionKind::VoidPending,
            None,
            Some(voided.pending_id.clone()),
            None,
        ),
        _ => return None,
    };
    Some(TransactionView {
        id: id.clone(),
        kind,
        seq,
        postings: Vec::new(),
        effective_at: effective_at.unwrap_or(entry.recorded_at),
        recorded_at: entry.recorded_at,
        description: String::new(),
        metadata: Default::default(),
        pending_id,
        reverses_id,
        pending_state: None,
        expires_at: None,
        resolved_by: None,
        reversed_by: None,
        entry_hash: hash,
    })
}
