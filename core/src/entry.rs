//! Journal entries: every state change of a ledger, as data.
//!
//! An entry is `(recorded_at, key_id, body)`; its `seq` and hash live beside it
//! (see [`crate::chain`]). The body enum is part of the frozen journal format
//! (`docs/journal-format.md`): variants and fields are only ever appended in a new
//! format version, never reordered or changed.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::billing::{
    BillingProfile, CouponGranted, CreditNoteIssued, InvoiceIssued, InvoiceVoided, PaymentRecorded,
    SubscriptionChanged, TaxRulesPublished,
};
use crate::meter::MeterSpec;
use crate::plan::PlanSpec;
use crate::usage::UsageEvent;

/// Free-form key/value pairs attached to accounts and transactions. Sorted, so
/// that equal metadata always encodes to equal bytes.
pub type Metadata = BTreeMap<String, String>;

/// Time as nanoseconds since the Unix epoch (UTC).
pub type TimestampNs = i64;

/// Dense account number, assigned by the ledger in opening order from 0.
pub type AccountId = u64;

/// A 32-byte blake3 digest.
pub type Digest = [u8; 32];

/// One journal entry, without its position (`seq`) and hashes.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Entry {
    /// When the ledger recorded it; strictly increasing along the journal.
    pub recorded_at: TimestampNs,
    /// The API key that caused it; empty for the ledger itself.
    pub key_id: String,
    pub body: EntryBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryBody {
    /// Entry 0 of every journal: names the ledger.
    LedgerCreated {
        ledger_id: [u8; 16],
    },
    CurrencyDefined {
        code: String,
        scale: u8,
    },
    AccountOpened(AccountOpened),
    AccountClosed {
        account_id: AccountId,
    },
    /// A standard, pending or reversing transaction.
    TransactionRecorded(TransactionRecorded),
    /// A pending transaction posted (in whole or in part); the rest is released.
    PendingPosted(PendingPosted),
    /// A pending transaction released by request.
    PendingVoided(PendingVoided),
    /// A pending transaction released because its timeout passed.
    PendingExpired {
        pending_id: String,
    },
    /// A transaction id whose request failed for a reason that depends on the
    /// ledger's state (unknown account, balance constraint, ...). Recorded so that
    /// a retry of the same id gets the same failure, never a later success.
    TransactionRejected(TransactionRejected),
    /// A signed checkpoint of the journal's first `seq` entries (every entry
    /// before this one): a C2SP signed note, verbatim (`docs/audit-proofs.md`).
    CheckpointSigned {
        note: String,
    },
    /// The ledger's first signing key, as a C2SP vkey. Auditors pin a key out
    /// of band; this entry says which key the ledger signs with from here on.
    SigningKeyAdopted {
        vkey: String,
    },
    /// The signing key changed: a key-rotation note naming the old and the
    /// new vkey, signed by both keys (`docs/audit-proofs.md`).
    SigningKeyRotated {
        note: String,
    },
    /// An API key was created. Only a hash of its secret is kept; the token
    /// was shown once, to whoever created it (`docs/security.md`).
    ApiKeyCreated(ApiKeyCreated),
    /// An API key was revoked: no call with it succeeds from this entry on.
    ApiKeyRevoked {
        key_id: String,
    },
    /// A customer: the party usage is metered for and invoices are issued to.
    CustomerCreated(CustomerCreated),
    /// A version of a meter's definition. Version 1 creates the meter; each
    /// later version replaces the definition for events ingested after it.
    MeterDefined(MeterDefined),
    /// One batch of ingested usage events, committing to the Merkle root of
    /// their event hashes (`docs/journal-format.md`).
    UsageRecorded(UsageRecorded),
    /// A customer's usage before `through` has been billed: later events
    /// timestamped before it are late (kept, flagged and reported).
    UsagePeriodClosed {
        customer_id: String,
        through: TimestampNs,
    },
    /// A version of a price plan. Version 1 creates the plan; each later
    /// version replaces its prices from then on (a version never changes).
    PlanPublished(PlanPublished),
    /// A customer's billing profile, replacing the previous one.
    BillingProfileSet(BillingProfile),
    /// A subscription started, changed plan, or ended.
    SubscriptionChanged(SubscriptionChanged),
    /// A coupon granted to a customer.
    CouponGranted(CouponGranted),
    /// A version of the ledger's tax rules (the whole table).
    TaxRulesPublished(TaxRulesPublished),
    /// An invoice and the one transaction that posts it.
    InvoiceIssued(Box<InvoiceIssued>),
    /// An invoice voided, its transaction reversed.
    InvoiceVoided(Box<InvoiceVoided>),
    /// A credit note against an invoice and its reversing postings.
    CreditNoteIssued(Box<CreditNoteIssued>),
    /// A payment, refund, prepaid credit or credit application, and its
    /// postings.
    PaymentRecorded(Box<PaymentRecorded>),
}

impl EntryBody {
    /// The transaction an entry records: a `transaction_recorded` entry's, or
    /// the one a billing document posts (an invoice, a void, a credit note,
    /// a payment). Balances, the transaction index and an auditor's
    /// re-derivation treat both alike.
    pub fn transaction(&self) -> Option<&TransactionRecorded> {
        match self {
            EntryBody::TransactionRecorded(recorded) => Some(recorded),
            EntryBody::InvoiceIssued(issued) => Some(&issued.transaction),
            EntryBody::InvoiceVoided(voided) => Some(&voided.transaction),
            EntryBody::CreditNoteIssued(issued) => Some(&issued.transaction),
            EntryBody::PaymentRecorded(recorded) => Some(&recorded.transaction),
            _ => None,
        }
    }

    /// Stable snake_case name of the entry kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            EntryBody::LedgerCreated { .. } => "ledger_created",
            EntryBody::CurrencyDefined { .. } => "currency_defined",
            EntryBody::AccountOpened(_) => "account_opened",
            EntryBody::AccountClosed { .. } => "account_closed",
            EntryBody::TransactionRecorded(_) => "transaction_recorded",
            EntryBody::PendingPosted(_) => "pending_posted",
            EntryBody::PendingVoided(_) => "pending_voided",
            EntryBody::PendingExpired { .. } => "pending_expired",
            EntryBody::TransactionRejected(_) => "transaction_rejected",
            EntryBody::CheckpointSigned { .. } => "checkpoint_signed",
            EntryBody::SigningKeyAdopted { .. } => "signing_key_adopted",
            EntryBody::SigningKeyRotated { .. } => "signing_key_rotated",
            EntryBody::ApiKeyCreated(_) => "api_key_created",
            EntryBody::ApiKeyRevoked { .. } => "api_key_revoked",
            EntryBody::CustomerCreated(_) => "customer_created",
            EntryBody::MeterDefined(_) => "meter_defined",
            EntryBody::UsageRecorded(_) => "usage_recorded",
            EntryBody::UsagePeriodClosed { .. } => "usage_period_closed",
            EntryBody::PlanPublished(_) => "plan_published",
            EntryBody::BillingProfileSet(_) => "billing_profile_set",
            EntryBody::SubscriptionChanged(_) => "subscription_changed",
            EntryBody::CouponGranted(_) => "coupon_granted",
            EntryBody::TaxRulesPublished(_) => "tax_rules_published",
            EntryBody::InvoiceIssued(_) => "invoice_issued",
            EntryBody::InvoiceVoided(_) => "invoice_voided",
            EntryBody::CreditNoteIssued(_) => "credit_note_issued",
            EntryBody::PaymentRecorded(_) => "payment_recorded",
        }
    }
}

/// What an API key may do (the permission table is in `docs/security.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Keys, currencies, configuration, and everything the others may do.
    Admin,
    /// Billing front ends: accounts, transactions, usage events.
    Poster,
    /// Plans, customers, billing runs, invoices, payments, reports.
    Finance,
    /// Read-only: journal, checkpoints, proofs, exports, reports.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Poster, Role::Finance, Role::Auditor];

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Poster => "poster",
            Role::Finance => "finance",
            Role::Auditor => "auditor",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.name() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        Role::from_name(text)
            .ok_or_else(|| format!("unknown role {text:?}: admin, poster, finance or auditor"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct ApiKeyCreated {
    /// Public part of the token, 16 lowercase hex digits; recorded as the
    /// `key_id` of every entry the key causes.
    pub key_id: String,
    /// A label for people (e.g. "billing-frontend").
    pub name: String,
    pub role: Role,
    /// Restricted further to read calls.
    pub read_only: bool,
    /// `blake3("tally/api-key/v1" || key id || secret)` of the token's secret.
    #[serde(with = "hex_bytes")]
    pub secret_hash: Digest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    Asset,
    Liability,
    Equity,
    Revenue,
    Expense,
}

impl AccountType {
    /// Asset and expense balances grow with debits; the others with credits.
    pub fn is_debit_normal(self) -> bool {
        matches!(self, AccountType::Asset | AccountType::Expense)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceConstraint {
    None,
    /// posted debits + pending debits <= posted credits.
    DebitsMustNotExceedCredits,
    /// posted credits + pending credits <= posted debits.
    CreditsMustNotExceedDebits,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct AccountOpened {
    pub account_id: AccountId,
    pub name: String,
    pub account_type: AccountType,
    pub currency: String,
    pub constraint: BalanceConstraint,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Debit,
    Credit,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Debit => Side::Credit,
            Side::Credit => Side::Debit,
        }
    }
}

/// One leg of a transaction. Its currency is its account's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Posting {
    pub account_id: AccountId,
    pub side: Side,
    /// Minor units at the account currency's scale; positive (zero only in a
    /// partial post of a pending transaction).
    pub amount_minor: u128,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TransactionMode {
    /// Posted at once.
    Standard,
    /// Reserves its amounts until posted, voided or expired.
    Pending { expires_at: Option<TimestampNs> },
    /// Posted at once, undoing the transaction `reverses` (sides swapped).
    Reversal { reverses: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct TransactionRecorded {
    pub id: String,
    /// Digest of the request as the client sent it (idempotency comparison).
    #[serde(with = "hex_bytes")]
    pub request_digest: Digest,
    pub mode: TransactionMode,
    pub postings: Vec<Posting>,
    /// The effective time the client gave; `None` means `recorded_at`.
    pub effective_at: Option<TimestampNs>,
    pub description: String,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct PendingPosted {
    pub id: String,
    #[serde(with = "hex_bytes")]
    pub request_digest: Digest,
    pub pending_id: String,
    /// The amounts posted, one per posting of the pending transaction, same order.
    pub postings: Vec<Posting>,
    pub effective_at: Option<TimestampNs>,
    pub description: String,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct PendingVoided {
    pub id: String,
    #[serde(with = "hex_bytes")]
    pub request_digest: Digest,
    pub pending_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct TransactionRejected {
    pub id: String,
    #[serde(with = "hex_bytes")]
    pub request_digest: Digest,
    /// The stable error code (`tally.v1.ErrorCode` number).
    pub error_code: u32,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct CustomerCreated {
    /// The caller's id for the customer, as usage events name it.
    pub customer_id: String,
    pub name: String,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct MeterDefined {
    /// 1 for a new meter, then one more per redefinition.
    pub version: u32,
    pub spec: MeterSpec,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct UsageRecorded {
    /// The RFC 9162 Merkle root over the events' hashes
    /// (`tally_core::usage::event_hash`), in `events` order.
    #[serde(with = "hex_bytes")]
    pub events_root: Digest,
    /// The accepted events of one ingestion call, as sent, in request order.
    pub events: Vec<UsageEvent>,
    /// Indexes into `events` (ascending) of late events: timestamped before
    /// their customer's closed period when they arrived.
    pub late: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct PlanPublished {
    /// 1 for a new plan code, then one more per change.
    pub version: u32,
    /// The plan as recorded: every decimal in its canonical (normalized) form.
    pub spec: PlanSpec,
}

/// Byte arrays (ids, digests) as lowercase hex in JSON, not as number lists.
pub(crate) mod hex_bytes {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = hex::decode(&text).map_err(D::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| D::Error::custom(format!("expected {N} bytes of hex")))
    }
}
