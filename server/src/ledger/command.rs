//! Requests to change the ledger, as plain data after parsing.
//!
//! These are what the writer validates and turns into journal entries. Amounts
//! are still `Decimal` here: their scale can only be checked against the
//! currency, which is ledger state. The request digest (idempotency) is taken
//! over these types' canonical encoding.

use crate::error::LedgerError;
use rust_decimal::Decimal;
use tally_core::entry::{AccountType, BalanceConstraint, Digest, Metadata, Side, TimestampNs};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencySpec {
    pub code: String,
    pub scale: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSpec {
    pub name: String,
    pub account_type: AccountType,
    pub currency: String,
    pub constraint: BalanceConstraint,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostingSpec {
    pub account: String,
    pub side: Side,
    pub amount: Decimal,
    /// When given, must equal the account's currency.
    pub currency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionSpec {
    pub id: String,
    pub postings: Vec<PostingSpec>,
    pub effective_at: Option<TimestampNs>,
    pub description: String,
    pub metadata: Metadata,
    pub pending: bool,
    /// Pending only; 0 = never expires.
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPendingSpec {
    pub id: String,
    pub pending_id: String,
    /// Empty = everything reserved; else one amount per pending posting.
    pub amounts: Vec<Decimal>,
    pub effective_at: Option<TimestampNs>,
    pub description: String,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoidPendingSpec {
    pub id: String,
    pub pending_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseSpec {
    pub id: String,
    pub transaction_id: String,
    pub effective_at: Option<TimestampNs>,
    pub description: String,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionCommand {
    Transaction(TransactionSpec),
    PostPending(PostPendingSpec),
    VoidPending(VoidPendingSpec),
    Reverse(ReverseSpec),
}

impl TransactionCommand {
    /// The client-chosen id of the item (its idempotency key).
    pub fn id(&self) -> &str {
        match self {
            TransactionCommand::Transaction(spec) => &spec.id,
            TransactionCommand::PostPending(spec) => &spec.id,
            TransactionCommand::VoidPending(spec) => &spec.id,
            TransactionCommand::Reverse(spec) => &spec.id,
        }
    }

    /// Field-path prefix of this item inside a batch request.
    pub fn field_prefix(&self, index: usize) -> String {
        let kind = match self {
            TransactionCommand::Transaction(_) => "transaction",
            TransactionCommand::PostPending(_) => "post_pending",
            TransactionCommand::VoidPending(_) => "void_pending",
            TransactionCommand::Reverse(_) => "reverse",
        };
        format!("items[{index}].{kind}")
    }
}

/// One item of a transaction batch. `linked` chains it to the next item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionItem {
    pub command: TransactionCommand,
    pub linked: bool,
}

/// A transaction item as the writer takes it: checked on its own and digested
/// on the caller's task, before it queues. The writer thread is the ledger's
/// one serial resource, so it spends its time only on what needs the ledger's
/// state; checks that need only the item run beside it, one task per request.
#[derive(Debug, Clone)]
pub struct PreparedItem {
    pub item: TransactionItem,
    /// The request digest, or why the item is malformed on its own.
    pub checked: Result<Digest, LedgerError>,
    /// A transaction's postings with their accounts resolved by the account
    /// directory (`directory.rs`), when every one resolves; `None`: the writer
    /// resolves them by name.
    pub resolved: Option<Vec<tally_core::entry::Posting>>,
}

impl PreparedItem {
    pub fn new(
        item: TransactionItem,
        directory: &super::directory::AccountDirectory,
    ) -> PreparedItem {
        let checked = super::validate::command(&item.command)
            .map(|()| super::digest::request_digest(&item.command));
        let resolved = match (&checked, &item.command) {
            (Ok(_), TransactionCommand::Transaction(spec)) => directory.resolve(&spec.postings),
            _ => None,
        };
        PreparedItem {
            item,
            checked,
            resolved,
        }
    }
}

/// A new API key: the id and secret hash come from a token made by the caller
/// (the engine), so that the writer needs no randomness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeySpec {
    pub key_id: String,
    pub name: String,
    pub role: tally_core::entry::Role,
    pub read_only: bool,
    pub secret_hash: tally_core::entry::Digest,
}
