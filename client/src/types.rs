//! Domain types of the ledger as the client sees them: amounts are `Decimal`,
//! times are `SystemTime`, enums have no "unspecified" variant and maps are sorted.
//!
//! These are plain data; conversions from and to the wire live in `convert`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use rust_decimal::Decimal;

/// Key-value annotations on accounts and transactions, sorted for stable output.
pub type Metadata = BTreeMap<String, String>;

/// Identity and size of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerInfo {
    /// Random 16-byte ledger id, hex.
    pub ledger_id: String,
    /// Number of journal entries; the next entry gets this seq.
    pub journal_length: u64,
    /// Hex hash of the last journal entry; 64 zeros for an empty journal.
    pub chain_head: String,
    pub server_version: String,
}

/// A currency (asset) and the number of decimals its amounts may carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency {
    /// 1 to 16 characters of A-Z, 0-9, '_' (e.g. USD, JPY, USDC).
    pub code: String,
    /// Decimal places, 0 to 18 (USD 2, JPY 0).
    pub scale: u32,
}

impl Currency {
    pub fn new(code: impl Into<String>, scale: u32) -> Self {
        Currency {
            code: code.into(),
            scale,
        }
    }
}

/// The answer for one currency of `create_currencies`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyCreated {
    pub currency: Currency,
    /// True when the currency already existed with the same scale.
    pub existed: bool,
}

/// Declares a domain enum with its lowercase CLI/JSON name, so that `Display`,
/// `FromStr` and the list of accepted names cannot drift apart.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every variant, in proto order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The lowercase, dash-separated name used by the CLI and in JSON.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            /// Accepts the CLI name in any case, with `_` or `-` (`debits-must-not-exceed-credits`).
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let wanted = text.to_ascii_lowercase().replace('_', "-");
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str() == wanted)
                    .ok_or_else(|| {
                        let names: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        format!("unknown value {text:?}, expected one of: {}", names.join(", "))
                    })
            }
        }
    };
}

named_enum! {
    /// The five kinds of account of double-entry bookkeeping.
    AccountType {
        Asset => "asset",
        Liability => "liability",
        Equity => "equity",
        Revenue => "revenue",
        Expense => "expense",
    }
}

named_enum! {
    /// A limit the ledger enforces on an account, counting pending amounts.
    #[derive(Default)]
    BalanceConstraint {
        /// No constraint.
        #[default]
        None => "none",
        /// Posted debits + pending debits must never exceed posted credits.
        DebitsMustNotExceedCredits => "debits-must-not-exceed-credits",
        /// Posted credits + pending credits must never exceed posted debits.
        CreditsMustNotExceedDebits => "credits-must-not-exceed-debits",
    }
}

named_enum! {
    /// The side of a posting.
    Direction {
        Debit => "debit",
        Credit => "credit",
    }
}

named_enum! {
    /// What a recorded transaction did.
    TransactionKind {
        Standard => "standard",
        Pending => "pending",
        PostPending => "post-pending",
        VoidPending => "void-pending",
        Reversal => "reversal",
    }
}

named_enum! {
    /// The state of a pending transaction; these words mean nothing else anywhere.
    PendingState {
        Open => "open",
        Posted => "posted",
        Voided => "voided",
        Expired => "expired",
    }
}

/// What is needed to open an account. Opening is idempotent by name: the same
/// fields again return the existing account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSpec {
    /// Hierarchical, ':'-separated: `assets:receivable:acme`.
    pub name: String,
    pub account_type: AccountType,
    pub currency: String,
    pub constraint: BalanceConstraint,
    pub metadata: Metadata,
}

impl AccountSpec {
    pub fn new(
        name: impl Into<String>,
        account_type: AccountType,
        currency: impl Into<String>,
    ) -> Self {
        AccountSpec {
            name: name.into(),
            account_type,
            currency: currency.into(),
            constraint: BalanceConstraint::None,
            metadata: Metadata::new(),
        }
    }

    pub fn constraint(mut self, constraint: BalanceConstraint) -> Self {
        self.constraint = constraint;
        self
    }

    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// The money on an account. `balance` is on the account's normal side (debits -
/// credits for assets and expenses, credits - debits otherwise) and may be negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    pub debits_posted: Decimal,
    pub credits_posted: Decimal,
    pub debits_pending: Decimal,
    pub credits_pending: Decimal,
    pub balance: Decimal,
    /// `balance` after the pending amounts would post.
    pub balance_with_pending: Decimal,
}

/// An account as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: u64,
    pub name: String,
    pub account_type: AccountType,
    pub currency: String,
    pub constraint: BalanceConstraint,
    pub metadata: Metadata,
    pub closed: bool,
    /// The journal seq of the entry that opened it.
    pub opened_seq: u64,
    pub opened_at: Option<SystemTime>,
    /// Zero when the server sent no balance.
    pub balance: Balance,
}

/// The answer for one account of `create_accounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountCreated {
    pub account: Account,
    /// True when an account with the same name and fields already existed.
    pub existed: bool,
}

/// One leg of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub account: String,
    pub direction: Direction,
    /// Positive, with at most as many decimals as the currency's scale.
    pub amount: Decimal,
    /// Optional in requests (checked against the account's currency when given);
    /// always set in responses.
    pub currency: Option<String>,
}

impl Posting {
    pub fn debit(account: impl Into<String>, amount: Decimal) -> Self {
        Posting::new(account, Direction::Debit, amount)
    }

    pub fn credit(account: impl Into<String>, amount: Decimal) -> Self {
        Posting::new(account, Direction::Credit, amount)
    }

    pub fn new(account: impl Into<String>, direction: Direction, amount: Decimal) -> Self {
        Posting {
            account: account.into(),
            direction,
            amount,
            currency: None,
        }
    }

    /// States the currency, so that the ledger checks it against the account's.
    pub fn currency(mut self, currency: impl Into<String>) -> Self {
        self.currency = Some(currency.into());
        self
    }
}

/// A recorded transaction: a standard one, a pending one, the post or void of a
/// pending one, or a reversal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The client-chosen id (idempotency key).
    pub id: String,
    pub kind: TransactionKind,
    /// The journal seq of its entry.
    pub seq: u64,
    pub postings: Vec<Posting>,
    pub effective_at: SystemTime,
    pub recorded_at: SystemTime,
    pub description: String,
    pub metadata: Metadata,
    /// Post-pending and void-pending: the pending transaction.
    pub pending_id: Option<String>,
    /// Reversal: the reversed transaction.
    pub reverses_id: Option<String>,
    /// Pending: its state.
    pub pending_state: Option<PendingState>,
    /// Pending: when it expires, if it does.
    pub expires_at: Option<SystemTime>,
    /// Pending: the id of the post or void that resolved it.
    pub resolved_by: Option<String>,
    /// Set when a reversal of this transaction exists.
    pub reversed_by: Option<String>,
    /// Hex blake3 hash of its journal entry.
    pub entry_hash: String,
}

/// The answer for one item of a transaction batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecorded {
    pub transaction: Transaction,
    /// True when this id had been recorded before with the same content (a retry).
    pub replayed: bool,
}

/// A point in the ledger's history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AsOf {
    /// The latest committed state.
    #[default]
    Now,
    /// The state after the journal entry with this seq.
    Seq(u64),
    /// Postings whose effective time is at or before this time.
    Time(SystemTime),
}

/// The balance of one account, as answered by `balances`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBalance {
    pub account: String,
    pub account_type: AccountType,
    pub currency: String,
    pub balance: Balance,
}

/// Balances of several accounts at one point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balances {
    /// The last journal seq this answer reflects.
    pub as_of_seq: u64,
    pub balances: Vec<AccountBalance>,
}

/// One change of an account's balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceChange {
    pub seq: u64,
    pub transaction_id: String,
    pub kind: TransactionKind,
    pub effective_at: SystemTime,
    /// The balance after this change.
    pub balance: Balance,
}

/// An account's history: its opening balance and every change after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountHistory {
    /// The balance before the first change (zero for the first page).
    pub opening: Balance,
    pub changes: Vec<BalanceChange>,
    /// Set when more changes follow (only on a single page).
    pub next_page_token: Option<String>,
}

/// One line of a trial balance: an account, or a roll-up of accounts by prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialBalanceLine {
    /// Account name, or name prefix when rolled up.
    pub account: String,
    /// `None` when a roll-up mixes account types.
    pub account_type: Option<AccountType>,
    pub currency: String,
    /// Net posted balance in the debit or the credit column (the other is zero).
    pub debit: Decimal,
    pub credit: Decimal,
    /// Number of accounts in this line.
    pub accounts: u32,
}

/// The sum of one currency's lines; debit always equals credit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyTotal {
    pub currency: String,
    pub debit: Decimal,
    pub credit: Decimal,
}

/// A trial balance at one point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialBalance {
    pub as_of_seq: u64,
    pub lines: Vec<TrialBalanceLine>,
    pub totals: Vec<CurrencyTotal>,
}

/// One journal entry, as streamed by `follow_journal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub seq: u64,
    /// blake3 entry hash (32 bytes).
    pub entry_hash: Vec<u8>,
    /// The previous entry's hash (32 bytes).
    pub prev_hash: Vec<u8>,
    pub recorded_at: SystemTime,
    /// Entry kind, e.g. `transaction_recorded`.
    pub kind: String,
    /// The entry as JSON, for humans and scripts.
    pub json: String,
    /// The canonical bytes that were hashed (docs/journal-format.md).
    pub canonical: Vec<u8>,
}

impl JournalEntry {
    pub fn entry_hash_hex(&self) -> String {
        hex::encode(&self.entry_hash)
    }

    pub fn prev_hash_hex(&self) -> String {
        hex::encode(&self.prev_hash)
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass to the next call to continue; `None` on the last page.
    pub next_page_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_round_trip() {
        // Every variant parses back from its own name, and accepts proto spelling.
        for value in BalanceConstraint::ALL {
            assert_eq!(value.as_str().parse::<BalanceConstraint>(), Ok(*value));
        }
        assert_eq!(
            "DEBITS_MUST_NOT_EXCEED_CREDITS".parse(),
            Ok(BalanceConstraint::DebitsMustNotExceedCredits)
        );
        assert_eq!("Asset".parse(), Ok(AccountType::Asset));
        let error = "cash".parse::<AccountType>().unwrap_err();
        assert!(
            error.contains("asset, liability, equity, revenue, expense"),
            "{error}"
        );
    }
}
