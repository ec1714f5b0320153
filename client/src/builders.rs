//! Requests built by chaining: transactions, posts and voids of pending ones,
//! reversals, batches of them, and the queries of the read calls.
//!
//! Every write carries a client-chosen id, its idempotency key: sending the same
//! request again returns the first answer, which is what makes retries safe.

use std::time::{Duration, SystemTime};

use rust_decimal::Decimal;

use crate::types::{AsOf, Direction, Metadata, Posting, Transaction};

/// A transaction to record, posted or pending. Built with [`Transaction::builder`]:
///
/// ```
/// # use rust_decimal::Decimal;
/// use tally_client::Transaction;
/// let ten = Decimal::new(1000, 2);
/// let spec = Transaction::builder("tx-1")
///     .debit("assets:cash", ten)
///     .credit("revenue:sales", ten)
///     .description("cash sale");
/// assert_eq!(spec.postings.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionSpec {
    /// 1-128 bytes of printable ASCII; the idempotency key.
    pub id: String,
    pub postings: Vec<Posting>,
    /// `None`: the time the ledger records it.
    pub effective_at: Option<SystemTime>,
    pub description: String,
    pub metadata: Metadata,
    /// Reserve the amounts instead of posting them.
    pub pending: bool,
    /// Pending only: expire after this many seconds (0 = never).
    pub timeout_seconds: u64,
}

/// The builder of a transaction is the spec itself; the alias keeps the name
/// people look for.
pub type TransactionBuilder = TransactionSpec;

impl Transaction {
    /// Starts a transaction with the given id and no postings.
    pub fn builder(id: impl Into<String>) -> TransactionBuilder {
        TransactionSpec::new(id)
    }
}

impl TransactionSpec {
    pub fn new(id: impl Into<String>) -> Self {
        TransactionSpec {
            id: id.into(),
            postings: Vec::new(),
            effective_at: None,
            description: String::new(),
            metadata: Metadata::new(),
            pending: false,
            timeout_seconds: 0,
        }
    }

    pub fn debit(self, account: impl Into<String>, amount: Decimal) -> Self {
        self.posting(Posting::new(account, Direction::Debit, amount))
    }

    pub fn credit(self, account: impl Into<String>, amount: Decimal) -> Self {
        self.posting(Posting::new(account, Direction::Credit, amount))
    }

    pub fn posting(mut self, posting: Posting) -> Self {
        self.postings.push(posting);
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    pub fn effective_at(mut self, time: SystemTime) -> Self {
        self.effective_at = Some(time);
        self
    }

    /// Sets the effective time from nanoseconds since the Unix epoch.
    pub fn effective_at_unix_nanos(self, nanos: u64) -> Self {
        self.effective_at(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
    }

    /// Reserves the amounts instead of posting them; the reservation never expires.
    pub fn pending(mut self) -> Self {
        self.pending = true;
        self.timeout_seconds = 0;
        self
    }

    /// Reserves the amounts; the reservation expires after `timeout`, rounded up to
    /// whole seconds (a zero timeout would mean "never", which is not what was asked).
    pub fn pending_with_timeout(mut self, timeout: Duration) -> Self {
        let whole_seconds = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        self.pending = true;
        self.timeout_seconds = whole_seconds.max(1);
        self
    }
}

/// Posts a pending transaction, in full or in part; whatever is not posted is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPendingSpec {
    /// Id of this post (its own idempotency key).
    pub id: String,
    pub pending_id: String,
    /// Empty: post every pending amount in full. Otherwise one amount per pending
    /// posting, in order, each at most the reserved amount.
    pub amounts: Vec<Decimal>,
    pub effective_at: Option<SystemTime>,
    pub description: String,
    pub metadata: Metadata,
}

impl PostPendingSpec {
    pub fn new(id: impl Into<String>, pending_id: impl Into<String>) -> Self {
        PostPendingSpec {
            id: id.into(),
            pending_id: pending_id.into(),
            amounts: Vec::new(),
            effective_at: None,
            description: String::new(),
            metadata: Metadata::new(),
        }
    }

    /// Appends the amount for the next pending posting (partial post).
    pub fn amount(mut self, amount: Decimal) -> Self {
        self.amounts.push(amount);
        self
    }

    /// Replaces all amounts (partial post), one per pending posting, in order.
    pub fn amounts(mut self, amounts: impl IntoIterator<Item = Decimal>) -> Self {
        self.amounts = amounts.into_iter().collect();
        self
    }

    pub fn effective_at(mut self, time: SystemTime) -> Self {
        self.effective_at = Some(time);
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// Voids a pending transaction: its amounts are released and it can never post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoidPendingSpec {
    /// Id of this void (its own idempotency key).
    pub id: String,
    pub pending_id: String,
    pub reason: String,
}

impl VoidPendingSpec {
    pub fn new(id: impl Into<String>, pending_id: impl Into<String>) -> Self {
        VoidPendingSpec {
            id: id.into(),
            pending_id: pending_id.into(),
            reason: String::new(),
        }
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }
}

/// Reverses a posted transaction with a new one of opposite postings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseSpec {
    /// Id of the reversal (its own idempotency key).
    pub id: String,
    /// The posted transaction to reverse.
    pub transaction_id: String,
    pub effective_at: Option<SystemTime>,
    pub description: String,
    pub metadata: Metadata,
}

impl ReverseSpec {
    pub fn new(id: impl Into<String>, transaction_id: impl Into<String>) -> Self {
        ReverseSpec {
            id: id.into(),
            transaction_id: transaction_id.into(),
            effective_at: None,
            description: String::new(),
            metadata: Metadata::new(),
        }
    }

    pub fn effective_at(mut self, time: SystemTime) -> Self {
        self.effective_at = Some(time);
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// One item of a transaction batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionItem {
    Transaction(TransactionSpec),
    PostPending(PostPendingSpec),
    VoidPending(VoidPendingSpec),
    Reverse(ReverseSpec),
}

impl TransactionItem {
    /// The idempotency key of the item.
    pub fn id(&self) -> &str {
        match self {
            TransactionItem::Transaction(spec) => &spec.id,
            TransactionItem::PostPending(spec) => &spec.id,
            TransactionItem::VoidPending(spec) => &spec.id,
            TransactionItem::Reverse(spec) => &spec.id,
        }
    }
}

impl From<TransactionSpec> for TransactionItem {
    fn from(spec: TransactionSpec) -> Self {
        TransactionItem::Transaction(spec)
    }
}

impl From<PostPendingSpec> for TransactionItem {
    fn from(spec: PostPendingSpec) -> Self {
        TransactionItem::PostPending(spec)
    }
}

impl From<VoidPendingSpec> for TransactionItem {
    fn from(spec: VoidPendingSpec) -> Self {
        TransactionItem::VoidPending(spec)
    }
}

impl From<ReverseSpec> for TransactionItem {
    fn from(spec: ReverseSpec) -> Self {
        TransactionItem::Reverse(spec)
    }
}

/// Items recorded by one `CreateTransactions` call (at most 8,190). Each item gets
/// its own result, unless items are linked: a chain of linked items succeeds or
/// fails as a whole.
///
/// ```
/// # use rust_decimal::Decimal;
/// use tally_client::{Batch, Transaction, VoidPendingSpec};
/// let one = Decimal::ONE;
/// let batch = Batch::new()
///     .with(Transaction::builder("a").debit("assets:cash", one).credit("revenue:sales", one))
///     .linked() // "a" stands or falls with "b"
///     .with(VoidPendingSpec::new("b", "hold-1"));
/// assert_eq!(batch.len(), 2);
/// assert!(batch.is_linked(0) && !batch.is_linked(1));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    entries: Vec<(TransactionItem, bool)>,
}

impl Batch {
    /// The server's limit on items per call.
    pub const ITEMS_MAX: usize = 8_190;

    pub fn new() -> Self {
        Batch::default()
    }

    /// Appends an item.
    pub fn with(mut self, item: impl Into<TransactionItem>) -> Self {
        self.push(item);
        self
    }

    /// Links the last added item to the next one. Does nothing on an empty batch.
    pub fn linked(mut self) -> Self {
        self.link_last();
        self
    }

    pub fn push(&mut self, item: impl Into<TransactionItem>) {
        self.entries.push((item.into(), false));
    }

    pub fn link_last(&mut self) {
        if let Some((_, linked)) = self.entries.last_mut() {
            *linked = true;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when the item at `index` is linked to the next one.
    pub fn is_linked(&self, index: usize) -> bool {
        self.entries.get(index).is_some_and(|(_, linked)| *linked)
    }

    /// Takes the items with their linked flags, in order.
    pub fn into_entries(self) -> Vec<(TransactionItem, bool)> {
        self.entries
    }

    /// The items with their linked flags, in order.
    pub fn entries(&self) -> impl Iterator<Item = (&TransactionItem, bool)> {
        self.entries.iter().map(|(item, linked)| (item, *linked))
    }
}

impl<T: Into<TransactionItem>> FromIterator<T> for Batch {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        Batch {
            entries: items.into_iter().map(|item| (item.into(), false)).collect(),
        }
    }
}

impl<T: Into<TransactionItem>> From<Vec<T>> for Batch {
    fn from(items: Vec<T>) -> Self {
        items.into_iter().collect()
    }
}

impl From<TransactionSpec> for Batch {
    fn from(spec: TransactionSpec) -> Self {
        Batch::new().with(spec)
    }
}

/// Which page of a listing to fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// At most 1,000; 0 lets the server choose (100).
    pub page_size: u32,
    /// The `next_page_token` of the previous page; `None` for the first page.
    pub page_token: Option<String>,
}

impl PageRequest {
    /// The largest page the server serves.
    pub const SIZE_MAX: u32 = 1_000;

    /// The first page, of `page_size` items.
    pub fn first(page_size: u32) -> Self {
        PageRequest {
            page_size,
            page_token: None,
        }
    }

    /// The page after the one that returned `token`.
    pub fn after(page_size: u32, token: impl Into<String>) -> Self {
        PageRequest {
            page_size,
            page_token: Some(token.into()),
        }
    }
}

/// Which transactions `list_transactions` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionFilter {
    /// Only transactions touching this account; `None`: every transaction.
    pub account: Option<String>,
    /// Effective time at or after this.
    pub from: Option<SystemTime>,
    /// Effective time before this.
    pub to: Option<SystemTime>,
}

impl TransactionFilter {
    pub fn new() -> Self {
        TransactionFilter::default()
    }

    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    pub fn from(mut self, time: SystemTime) -> Self {
        self.from = Some(time);
        self
    }

    pub fn to(mut self, time: SystemTime) -> Self {
        self.to = Some(time);
        self
    }
}

/// What `trial_balance` computes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrialBalanceQuery {
    pub as_of: AsOf,
    /// Roll account names up to this many segments (0 = no roll-up).
    pub depth: u32,
    /// Only accounts whose name starts with this prefix.
    pub prefix: String,
    /// Only this currency; `None`: all.
    pub currency: Option<String>,
}

impl TrialBalanceQuery {
    pub fn new() -> Self {
        TrialBalanceQuery::default()
    }

    pub fn as_of(mut self, as_of: AsOf) -> Self {
        self.as_of = as_of;
        self
    }

    pub fn depth(mut self, depth: u32) -> Self {
        self.depth = depth;
        self
    }

    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    pub fn currency(mut self, currency: impl Into<String>) -> Self {
        self.currency = Some(currency.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn pending_timeout_rounds_up_to_whole_seconds() {
        // Half a second must not become 0, which the ledger reads as "never expires".
        let spec = Transaction::builder("p").pending_with_timeout(Duration::from_millis(500));
        assert!(spec.pending);
        assert_eq!(spec.timeout_seconds, 1);
        let spec = Transaction::builder("p").pending_with_timeout(Duration::from_millis(2_001));
        assert_eq!(spec.timeout_seconds, 3);
    }

    #[test]
    fn linked_marks_only_the_last_item() {
        // `.linked()` chains the previous item to the next; an empty batch ignores it.
        let batch = Batch::new()
            .linked()
            .with(Transaction::builder("a").debit("x", dec!(1)))
            .with(ReverseSpec::new("b", "a"))
            .linked()
            .with(PostPendingSpec::new("c", "p").amount(dec!(2.5)));
        let linked: Vec<bool> = batch.entries().map(|(_, linked)| linked).collect();
        assert_eq!(linked, [false, true, false]);
        let ids: Vec<&str> = batch.entries().map(|(item, _)| item.id()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }
}
