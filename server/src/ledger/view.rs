//! What reads return: accounts, balances and transactions as the API shows them.

use tally_core::entry::{
    AccountId, AccountType, BalanceConstraint, Digest, Metadata, Side, TimestampNs,
};

/// The four running totals of an account, in minor units. Totals only grow
/// (a pending release lowers `*_pending`), which is why overflow is checked on
/// each of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Balance {
    pub debits_posted: u128,
    pub credits_posted: u128,
    pub debits_pending: u128,
    pub credits_pending: u128,
}

impl Balance {
    /// Posted balance on the account's normal side (may be negative).
    pub fn net_posted(&self, account_type: AccountType) -> i128 {
        let (debits, credits) = (self.debits_posted as i128, self.credits_posted as i128);
        if account_type.is_debit_normal() {
            debits - credits
        } else {
            credits - debits
        }
    }

    /// The normal-side balance once pending amounts post.
    pub fn net_with_pending(&self, account_type: AccountType) -> i128 {
        let debits = (self.debits_posted + self.debits_pending) as i128;
        let credits = (self.credits_posted + self.credits_pending) as i128;
        if account_type.is_debit_normal() {
            debits - credits
        } else {
            credits - debits
        }
    }

    /// Posted debits minus posted credits (positive = debit balance).
    pub fn debit_minus_credit(&self) -> i128 {
        self.debits_posted as i128 - self.credits_posted as i128
    }

    pub fn is_zero(&self) -> bool {
        *self == Balance::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyView {
    pub code: String,
    pub scale: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    pub id: AccountId,
    pub name: String,
    pub account_type: AccountType,
    pub currency: String,
    pub scale: u8,
    pub constraint: BalanceConstraint,
    pub metadata: Metadata,
    pub closed: bool,
    pub opened_seq: u64,
    pub opened_at: TimestampNs,
    pub balance: Balance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionKind {
    Standard,
    Pending,
    PostPending,
    VoidPending,
    Reversal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PendingState {
    Open,
    Posted,
    Voided,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostingView {
    pub account: String,
    pub side: Side,
    pub amount_minor: u128,
    pub currency: String,
    pub scale: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionView {
    pub id: String,
    pub kind: TransactionKind,
    pub seq: u64,
    pub postings: Vec<PostingView>,
    pub effective_at: TimestampNs,
    pub recorded_at: TimestampNs,
    pub description: String,
    pub metadata: Metadata,
    pub pending_id: Option<String>,
    pub reverses_id: Option<String>,
    pub pending_state: Option<PendingState>,
    pub expires_at: Option<TimestampNs>,
    pub resolved_by: Option<String>,
    pub reversed_by: Option<String>,
    pub entry_hash: Digest,
}

/// The outcome of one transaction item: the transaction, and whether this was
/// a retry of an id recorded before with the same content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded<T> {
    pub value: T,
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceChange {
    pub seq: u64,
    pub transaction_id: String,
    pub kind: TransactionKind,
    pub effective_at: TimestampNs,
    pub balance: Balance,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBalance {
    pub account: String,
    pub account_type: AccountType,
    pub currency: String,
    pub scale: u8,
    pub balance: Balance,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialBalanceLine {
    pub account: String,
    /// `None` when a roll-up mixes account types.
    pub account_type: Option<AccountType>,
    pub currency: String,
    pub scale: u8,
    /// Posted debits minus posted credits, summed over the accounts.
    pub debit_minus_credit: i128,
    pub accounts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyTotal {
    pub currency: String,
    pub scale: u8,
    pub debit: u128,
    pub credit: u128,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialBalance {
    pub as_of_seq: u64,
    pub lines: Vec<TrialBalanceLine>,
    pub totals: Vec<CurrencyTotal>,
}

/// A point in the ledger's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AsOf {
    #[default]
    Now,
    /// The state after the entry with this seq.
    Seq(u64),
    /// Postings effective at or before this time.
    Time(TimestampNs),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerInfo {
    pub ledger_id: [u8; 16],
    pub journal_length: u64,
    pub chain_head: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRecord {
    pub seq: u64,
    pub entry_hash: Digest,
    pub prev_hash: Digest,
    pub canonical: Vec<u8>,
    pub entry: tally_core::entry::Entry,
}

/// A page of results and the token of the next page, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

/// A signed checkpoint as recorded in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointView {
    /// Entries it covers; also the seq of its own entry.
    pub tree_size: u64,
    /// The whole C2SP signed note.
    pub note: String,
}

/// One of the ledger's signing keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyView {
    pub vkey: String,
    /// The seq of the entry that adopted the key or rotated to it.
    pub since_seq: u64,
}

/// An API key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyView {
    pub key_id: String,
    pub name: String,
    pub role: tally_core::entry::Role,
    pub read_only: bool,
    pub created_seq: u64,
    pub revoked_seq: Option<u64>,
}

impl ApiKeyView {
    pub fn new(key_id: &str, key: &crate::ledger::state::ApiKeyState) -> Self {
        ApiKeyView {
            key_id: key_id.to_string(),
            name: key.name.clone(),
            role: key.role,
            read_only: key.read_only,
            created_seq: key.created_seq,
            revoked_seq: key.revoked_seq,
        }
    }
}
