//! Re-derives every account balance and the trial balance from the journal entries alone.
//!
//! This is the auditor's own reading of `docs/journal-format.md`, written without the
//! server's code, so that a bug in the server's state fold is not repeated here:
//!
//! - `CurrencyDefined` defines a code once, with a scale of at most 18;
//! - `AccountOpened` opens account ids densely from 0, in a defined currency;
//! - `TransactionRecorded` `Standard` and `Reversal` post their postings; `Pending` reserves
//!   them (pending debits and credits) until a `PendingPosted` releases the whole reservation
//!   and posts its own amounts (each at most the reserved leg, same account and side), or a
//!   `PendingVoided` / `PendingExpired` releases it;
//! - every transaction has at least two postings, positive amounts (zero only when posting a
//!   pending transaction) of at most 2^96 − 1 minor units, and balances per currency;
//! - every account total stays at most 2^96 − 1 minor units; arithmetic is checked u128, an
//!   overflow is an error, never a wrap.
//!
//! Transaction ids (`TransactionRecorded`, `PendingPosted`, `PendingVoided`,
//! `TransactionRejected`) share one namespace, the idempotency keys, so each occurs once.
//!
//! Metering entries change no balance, but are checked as the ledger writes them
//! (`docs/journal-format.md` §4.9): customer ids are unique; a meter's versions count from
//! 1, keep its aggregation and are valid definitions; a closed period names a customer and
//! ends later than the one before; a usage batch holds at least one event, commits to its
//! events (`events_root`), names customers and meters defined before it, and lists as late
//! (`late`, ascending) exactly the events timestamped before their customer's closed period,
//! none earlier than the meter's grace allows. Event ids are not checked for uniqueness: that
//! would take memory per event.
//!
//! Plan versions change no balance either, and are checked as the ledger writes them
//! (`docs/journal-format.md` §4.10): the plan is valid (`PlanSpec::validate`), its versions
//! count from 1, keep the currency of version 1, which is defined before it; every metered
//! charge names a meter defined before it, groups by properties of that meter's latest
//! `group_by`, and a percentage charge reads a `sum` meter.
//!
//! Billing documents (`docs/journal-format.md` §4.11) move money only through the
//! transaction each carries, recorded like any other (an invoice of zero and its void carry
//! none: their transactions may have no postings). Their numbering is checked as the ledger
//! writes it: invoice and credit-note sequences are gapless per (series, year), starting at
//! 1; a number's text is `SERIES-YYYY-NNNNNN` of its series, year and sequence, the year that
//! of its issue day; a credit note's series is `CN-` and its invoice's series; the
//! transaction ids are `invoice:NUMBER`, `void:NUMBER` (a reversal of `invoice:NUMBER`),
//! `credit_note:ID` and `payment:PAYMENT_ID`; an invoice number is issued once; a void,
//! a credit note or a payment allocation names an issued invoice that is not void, an
//! allocation one of the paying customer; payment ids are unique. Of the usage an invoice
//! states: it was read at a journal length (`usage_journal_length`) of at most the invoice's
//! own seq, and each usage digest's window `[from, to)` lies within the invoice's
//! `[usage_from, usage_to)` (only a line closing a period reads usage). The digests
//! themselves are not recomputed (that would take memory per event), nor are profiles,
//! subscriptions, coupons and tax tables checked.
//!
//! Memory: the accounts, the currencies and one small record per transaction id; the
//! postings of a pending transaction are kept only while it is open; per customer its closed
//! period, per meter its version count, aggregation, grace and group-by; per plan its version
//! count and currency; per document series and year its last sequence, per invoice whether it
//! is void, its customer and its series, and every payment id.

use std::collections::{BTreeMap, HashMap, HashSet};

use tally_core::billing::{
    CreditNoteIssued, Invoice, InvoiceIssued, InvoiceVoided, PaymentRecorded,
};
use tally_core::calendar::Day;
use tally_core::entry::{
    AccountId, AccountOpened, AccountType, Entry, EntryBody, MeterDefined, PendingPosted,
    PlanPublished, Posting, Side, TimestampNs, TransactionMode, TransactionRecorded, UsageRecorded,
};
use tally_core::meter::{Aggregation, MeterSpecError};
use tally_core::money::{format_minor, AMOUNT_MINOR_MAX, SCALE_MAX};
use tally_core::plan::{PlanError, Pricing};

/// What makes an entry impossible as a ledger state change. The entry's seq is added by
/// the caller (see [`crate::export::ExportError::Ledger`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerFault {
    #[error("the first entry must be ledger_created, not {kind}")]
    FirstEntryNotLedgerCreated { kind: &'static str },
    #[error("ledger_created may only be the first entry")]
    LedgerCreatedAgain,
    #[error("currency {code:?} is already defined")]
    CurrencyRedefined { code: String },
    #[error("currency {code:?}: scale {scale} is above the maximum {SCALE_MAX}")]
    ScaleTooLarge { code: String, scale: u8 },
    #[error("account_id {account_id}: accounts are numbered densely, expected {expected}")]
    AccountIdOutOfOrder {
        account_id: AccountId,
        expected: AccountId,
    },
    #[error("account {account_id}: currency {currency:?} is not defined")]
    UnknownCurrency {
        account_id: AccountId,
        currency: String,
    },
    #[error("{field}: account {account_id} is not open")]
    UnknownAccount {
        field: String,
        account_id: AccountId,
    },
    #[error("account {account_id} is already closed")]
    AccountAlreadyClosed { account_id: AccountId },
    #[error("postings: a transaction needs at least two postings ({count} given)")]
    TooFewPostings { count: usize },
    #[error("postings[{index}].amount_minor: must be positive")]
    ZeroAmount { index: usize },
    #[error("postings[{index}].amount_minor: {amount} is above the maximum {AMOUNT_MINOR_MAX}")]
    AmountTooLarge { index: usize, amount: u128 },
    #[error("postings: {currency} debits {debits} and credits {credits} (minor units) differ")]
    Unbalanced {
        currency: String,
        debits: u128,
        credits: u128,
    },
    #[error("id: transaction id {id:?} is already used")]
    DuplicateTransactionId { id: String },
    #[error("pending_id: {pending_id:?} is not a pending transaction")]
    UnknownPending { pending_id: String },
    #[error("pending_id: pending transaction {pending_id:?} is already posted, voided or expired")]
    PendingAlreadyResolved { pending_id: String },
    #[error("postings: {given} postings for the {expected} of the pending transaction")]
    PostingCountMismatch { given: usize, expected: usize },
    #[error("postings[{index}]: account or side differs from the pending transaction's")]
    PostingLegMismatch { index: usize },
    #[error("postings[{index}].amount_minor: {posted} posted exceeds the {reserved} reserved")]
    PostedExceedsReserved {
        index: usize,
        posted: u128,
        reserved: u128,
    },
    #[error("pending_id: {pending_id:?} has no expiry time and cannot expire")]
    NeverExpires { pending_id: String },
    #[error("recorded_at: {pending_id:?} expires at {expires_at}, after this entry's time")]
    NotYetExpired {
        pending_id: String,
        expires_at: TimestampNs,
    },
    #[error("mode.reverses: {reverses:?} is not an earlier transaction")]
    UnknownReversed { reverses: String },
    #[error("account {account_id}: {total} would exceed {AMOUNT_MINOR_MAX} minor units")]
    TotalOverflow {
        account_id: AccountId,
        total: &'static str,
    },
    #[error("account {account_id}: releasing more {total} than are reserved")]
    ReleaseUnderflow {
        account_id: AccountId,
        total: &'static str,
    },
    #[error("the journal holds no ledger_created entry")]
    NoLedger,
    #[error("trial balance {currency}: {what} debits {debits} and credits {credits} differ")]
    TrialBalanceUnequal {
        currency: String,
        what: &'static str,
        debits: u128,
        credits: u128,
    },
    #[error("trial balance {currency}: total overflows u128")]
    TrialBalanceOverflow { currency: String },
    #[error("customer_id: customer {customer_id:?} already exists")]
    CustomerExists { customer_id: String },
    #[error("{field}: customer {customer_id:?} does not exist")]
    UnknownCustomer { field: String, customer_id: String },
    #[error("version: meter {code:?} version {version}, expected {expected}")]
    MeterVersionOutOfOrder {
        code: String,
        version: u32,
        expected: u32,
    },
    #[error("spec.aggregation: meter {code:?} changes its aggregation from {from} to {to}")]
    MeterAggregationChanged {
        code: String,
        from: &'static str,
        to: &'static str,
    },
    #[error("spec.{0}")]
    MeterSpecInvalid(MeterSpecError),
    #[error("{field}: meter {code:?} is not defined")]
    UnknownMeter { field: String, code: String },
    #[error("through: customer {customer_id:?}'s usage is closed through {closed_through} already; {through} is not later")]
    PeriodNotAfterClosed {
        customer_id: String,
        through: TimestampNs,
        closed_through: TimestampNs,
    },
    #[error("events: a usage batch holds at least one event")]
    NoEvents,
    #[error("events_root: does not match the Merkle root of the entry's {count} events")]
    EventsRootMismatch { count: usize },
    #[error("late[{position}]: {index} is not an event index above the previous one")]
    LateIndexInvalid { position: usize, index: u32 },
    #[error("late: event {index}'s timestamp {timestamp} is before its customer's closed period end {closed_through}, but the event is not listed as late")]
    LateNotListed {
        index: usize,
        timestamp: TimestampNs,
        closed_through: TimestampNs,
    },
    #[error("late: event {index} is listed as late, but its customer's usage is not closed past its timestamp {timestamp}")]
    ListedNotLate {
        index: usize,
        timestamp: TimestampNs,
    },
    #[error("events[{index}].timestamp: {timestamp} is before {earliest}, the earliest its meter's grace period accepts after the closed period")]
    TimestampBeforeGrace {
        index: usize,
        timestamp: TimestampNs,
        earliest: TimestampNs,
    },
    #[error("spec.{0}")]
    PlanSpecInvalid(PlanError),
    #[error("version: plan {code:?} version {version}, expected {expected}")]
    PlanVersionOutOfOrder {
        code: String,
        version: u32,
        expected: u32,
    },
    #[error("spec.currency: plan {code:?} changes its currency from {from} to {to}")]
    PlanCurrencyChanged {
        code: String,
        from: String,
        to: String,
    },
    #[error("spec.currency: plan {code:?}: currency {currency:?} is not defined")]
    PlanCurrencyUnknown { code: String, currency: String },
    #[error("{field}: meter {meter:?} does not group by {property:?}")]
    PlanGroupNotGrouped {
        field: String,
        meter: String,
        property: String,
    },
    #[error(
        "{field}: a percentage charge reads a sum meter; {meter:?} aggregates by {aggregation}"
    )]
    PlanPercentageNotSum {
        field: String,
        meter: String,
        aggregation: &'static str,
    },
    #[error("{field}: {number:?} is number {sequence} of series {series:?} in {year}; {expected} was next")]
    DocumentSequenceOutOfOrder {
        field: String,
        number: String,
        series: String,
        year: i32,
        sequence: u64,
        expected: u64,
    },
    #[error(
        "{field}: {number:?} is not {expected:?}, the number of its series, year and sequence"
    )]
    DocumentNumberMismatch {
        field: String,
        number: String,
        expected: String,
    },
    #[error("{field}: {number:?} is of the year {year}, but issued on {issued_on}")]
    DocumentYearMismatch {
        field: String,
        number: String,
        year: i32,
        issued_on: String,
    },
    #[error("credit_note.series: the series of credit note {number:?} is {series:?}; the series of the invoice it credits makes it {expected:?}")]
    CreditNoteSeriesMismatch {
        number: String,
        series: String,
        expected: String,
    },
    #[error("invoice.number: invoice {number:?} is already issued")]
    InvoiceIssuedTwice { number: String },
    #[error("{field}: invoice {number:?} was not issued")]
    UnknownInvoice { field: String, number: String },
    #[error("{field}: invoice {number:?} is void")]
    InvoiceVoid { field: String, number: String },
    #[error("transaction.id: {id:?}, where the document's transaction is {expected:?}")]
    BillingTransactionIdMismatch { id: String, expected: String },
    #[error(
        "transaction.mode: the void of invoice {number:?} is a reversal of \"invoice:{number}\""
    )]
    VoidNotReversal { number: String },
    #[error("payment.payment_id: payment {payment_id:?} is already recorded")]
    PaymentExists { payment_id: String },
    #[error("payment.allocations[{index}].invoice_number: invoice {number:?} is customer {invoice_customer:?}'s, not the paying customer {customer_id:?}'s")]
    AllocationToOtherCustomer {
        index: usize,
        number: String,
        customer_id: String,
        invoice_customer: String,
    },
    #[error("invoice.usage_journal_length: usage read at journal length {length}, after the invoice itself (seq {seq}) was written")]
    UsageReadAfterInvoice { length: u64, seq: u64 },
    #[error("invoice.lines[{line}].usage: the window [{from}, {to}) is not within the invoice's usage window [{usage_from}, {usage_to})")]
    UsageWindowOutsideInvoice {
        line: usize,
        from: TimestampNs,
        to: TimestampNs,
        usage_from: TimestampNs,
        usage_to: TimestampNs,
    },
}

/// A currency and the number of decimal places of its minor unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency {
    pub code: String,
    pub scale: u8,
}

/// An account and its totals, in minor units of its currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBalance {
    pub account_id: AccountId,
    pub name: String,
    pub account_type: AccountType,
    pub currency: String,
    pub scale: u8,
    pub closed: bool,
    pub debits_posted: u128,
    pub credits_posted: u128,
    pub debits_pending: u128,
    pub credits_pending: u128,
}

impl AccountBalance {
    /// Posted net in the account's normal direction: debits − credits for asset and expense
    /// accounts, credits − debits for the others. Exact: both totals are at most 2^96 − 1.
    pub fn balance(&self) -> i128 {
        let (debits, credits) = (self.debits_posted as i128, self.credits_posted as i128);
        if self.account_type.is_debit_normal() {
            debits - credits
        } else {
            credits - debits
        }
    }

    /// A minor-unit figure of this account as a decimal string, e.g. `"12.50"`.
    pub fn format(&self, minor: i128) -> String {
        format_minor(minor, self.scale)
    }
}

/// Sums over all accounts of one currency; a balanced ledger has equal debits and credits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialBalanceLine {
    pub currency: String,
    pub scale: u8,
    pub debits_posted: u128,
    pub credits_posted: u128,
    pub debits_pending: u128,
    pub credits_pending: u128,
}

/// How many transactions of each kind the journal records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransactionCounts {
    pub standard: u64,
    pub pending: u64,
    pub reversal: u64,
    pub pending_posted: u64,
    pub pending_voided: u64,
    pub pending_expired: u64,
    pub rejected: u64,
}

impl TransactionCounts {
    /// Pending transactions neither posted, voided nor expired.
    pub fn open_pending(&self) -> u64 {
        let resolved = self.pending_posted + self.pending_voided + self.pending_expired;
        self.pending.saturating_sub(resolved)
    }
}

/// The re-derived state of a whole journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balances {
    pub ledger_id: [u8; 16],
    /// In definition order.
    pub currencies: Vec<Currency>,
    /// By account id.
    pub accounts: Vec<AccountBalance>,
    pub transactions: TransactionCounts,
    /// One line per defined currency, in definition order.
    pub trial_balance: Vec<TrialBalanceLine>,
}

/// What the fold remembers of a transaction id.
enum TxState {
    /// A transaction that posted (standard, reversal, pending posted): reversible.
    Posted,
    /// A pending transaction still holding its reservation.
    Open {
        postings: Vec<Posting>,
        expires_at: Option<TimestampNs>,
    },
    /// A pending transaction posted, voided or expired.
    Resolved,
    /// A void request or a rejected id: occupies the id, nothing more.
    Other,
}

/// Folds entries, in journal order, into balances.
#[derive(Default)]
pub struct Rederiver {
    /// The seq of the next entry: entries are applied in journal order from 0.
    next_seq: u64,
    ledger_id: Option<[u8; 16]>,
    currencies: Vec<Currency>,
    /// Code → index in `currencies`.
    currency_index: BTreeMap<String, usize>,
    accounts: Vec<AccountBalance>,
    transactions: HashMap<String, TxState>,
    counts: TransactionCounts,
    /// Customer id → the end of its last closed usage period.
    customers: HashMap<String, Option<TimestampNs>>,
    /// Meter code → its latest version.
    meters: HashMap<String, MeterState>,
    /// Plan code → its latest version.
    plans: HashMap<String, PlanState>,
    billing: BillingState,
}

/// What the fold remembers of billing documents: enough to check their numbers and the
/// invoices the later documents name.
#[derive(Default)]
struct BillingState {
    /// (series, year) → the last sequence, invoices and credit notes alike.
    sequences: HashMap<(String, i32), u64>,
    /// Invoice number → what the later documents naming it are checked against.
    invoices: HashMap<String, IssuedInvoice>,
    payments: HashSet<String>,
}

/// What the fold remembers of an issued invoice.
struct IssuedInvoice {
    void: bool,
    customer_id: String,
    series: String,
}

/// What the fold remembers of a meter: enough to check its next version, its events and
/// the plans that read it.
struct MeterState {
    version: u32,
    aggregation: Aggregation,
    grace_period_seconds: u64,
    group_by: Vec<String>,
}

/// What the fold remembers of a plan: enough to check its next version.
struct PlanState {
    version: u32,
    currency: String,
}

impl Rederiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the next entry (entries come in journal order, from seq 0). After an error
    /// the state is unspecified: stop folding.
    pub fn apply(&mut self, entry: &Entry) -> Result<(), LedgerFault> {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.ledger_id.is_none() {
            return self.create_ledger(&entry.body);
        }
        match &entry.body {
            EntryBody::LedgerCreated { .. } => Err(LedgerFault::LedgerCreatedAgain),
            EntryBody::CurrencyDefined { code, scale } => self.define_currency(code, *scale),
            EntryBody::AccountOpened(opened) => self.open_account(opened),
            EntryBody::AccountClosed { account_id } => self.close_account(*account_id),
            EntryBody::TransactionRecorded(tx) => self.record(tx),
            EntryBody::PendingPosted(posted) => self.post_pending(posted),
            EntryBody::PendingVoided(voided) => {
                self.claim_id(&voided.id, TxState::Other)?;
                self.release_pending(&voided.pending_id, None)?;
                self.counts.pending_voided += 1;
                Ok(())
            }
            EntryBody::PendingExpired { pending_id } => {
                self.release_pending(pending_id, Some(entry.recorded_at))?;
                self.counts.pending_expired += 1;
                Ok(())
            }
            EntryBody::TransactionRejected(rejected) => {
                self.claim_id(&rejected.id, TxState::Other)?;
                self.counts.rejected += 1;
                Ok(())
            }
            // Audit entries change no balance; `export` checks them.
            EntryBody::CheckpointSigned { .. }
            | EntryBody::SigningKeyAdopted { .. }
            | EntryBody::SigningKeyRotated { .. }
            // Access control changes no balance.
            | EntryBody::ApiKeyCreated(_)
            | EntryBody::ApiKeyRevoked { .. } => Ok(()),
            // Metering changes no balance, but is checked as the ledger writes it.
            EntryBody::CustomerCreated(created) => self.create_customer(&created.customer_id),
            EntryBody::MeterDefined(defined) => self.define_meter(defined),
            EntryBody::UsagePeriodClosed {
                customer_id,
                through,
            } => self.close_period(customer_id, *through),
            EntryBody::UsageRecorded(recorded) => self.record_usage(recorded),
            // A price list changes no balance, but is checked as the ledger writes it.
            EntryBody::PlanPublished(published) => self.publish_plan(published),
            // A billing document's money moves in its one transaction, which
            // balances like any other; its number and the invoices it names are checked.
            EntryBody::InvoiceIssued(issued) => self.issue_invoice(issued, seq),
            EntryBody::InvoiceVoided(voided) => self.void_invoice(voided),
            EntryBody::CreditNoteIssued(issued) => self.issue_credit_note(issued),
            EntryBody::PaymentRecorded(recorded) => self.record_payment(recorded),
            // Profiles, subscriptions, coupons and tax tables move no money.
            EntryBody::BillingProfileSet(_)
            | EntryBody::SubscriptionChanged(_)
            | EntryBody::CouponGranted(_)
            | EntryBody::TaxRulesPublished(_) => Ok(()),
        }
    }

    /// The balances and the trial balance; fails if the journal had no entry or if a
    /// currency's debits and credits differ.
    pub fn finish(self) -> Result<Balances, LedgerFault> {
        let ledger_id = self.ledger_id.ok_or(LedgerFault::NoLedger)?;
        let trial_balance = self
            .currencies
            .iter()
            .map(|currency| trial_balance_line(currency, &self.accounts))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Balances {
            ledger_id,
            currencies: self.currencies,
            accounts: self.accounts,
            transactions: self.counts,
            trial_balance,
        })
    }

    fn create_ledger(&mut self, body: &EntryBody) -> Result<(), LedgerFault> {
        let EntryBody::LedgerCreated { ledger_id } = body else {
            return Err(LedgerFault::FirstEntryNotLedgerCreated {
                kind: body.kind_name(),
            });
        };
        self.ledger_id = Some(*ledger_id);
        Ok(())
    }

    fn create_customer(&mut self, customer_id: &str) -> Result<(), LedgerFault> {
        if self.customers.contains_key(customer_id) {
            return Err(LedgerFault::CustomerExists {
                customer_id: customer_id.into(),
            });
        }
        self.customers.insert(customer_id.into(), None);
        Ok(())
    }

    fn define_meter(&mut self, defined: &MeterDefined) -> Result<(), LedgerFault> {
        let spec = &defined.spec;
        spec.validate().map_err(LedgerFault::MeterSpecInvalid)?;
        let previous = self.meters.get(&spec.code);
        let expected = previous.map_or(1, |meter| meter.version.saturating_add(1));
        if defined.version != expected {
            return Err(LedgerFault::MeterVersionOutOfOrder {
                code: spec.code.clone(),
                version: defined.version,
                expected,
            });
        }
        if let Some(previous) = previous.filter(|m| m.aggregation != spec.aggregation) {
            return Err(LedgerFault::MeterAggregationChanged {
                code: spec.code.clone(),
                from: previous.aggregation.name(),
                to: spec.aggregation.name(),
            });
        }
        let meter = MeterState {
            version: defined.version,
            aggregation: spec.aggregation,
            grace_period_seconds: spec.grace_period_seconds,
            group_by: spec.group_by.clone(),
        };
        self.meters.insert(spec.code.clone(), meter);
        Ok(())
    }

    /// A plan version: valid, next in its code's order, in the currency of its first
    /// version (a defined one), reading meters defined before it by their groups.
    fn publish_plan(&mut self, published: &PlanPublished) -> Result<(), LedgerFault> {
        let spec = &published.spec;
        spec.validate().map_err(LedgerFault::PlanSpecInvalid)?;
        let previous = self.plans.get(&spec.code);
        let expected = previous.map_or(1, |plan| plan.version.saturating_add(1));
        if published.version != expected {
            return Err(LedgerFault::PlanVersionOutOfOrder {
                code: spec.code.clone(),
                version: published.version,
                expected,
            });
        }
        if let Some(previous) = previous.filter(|plan| plan.currency != spec.currency) {
            return Err(LedgerFault::PlanCurrencyChanged {
                code: spec.code.clone(),
                from: previous.currency.clone(),
                to: spec.currency.clone(),
            });
        }
        if !self.currency_index.contains_key(&spec.currency) {
            return Err(LedgerFault::PlanCurrencyUnknown {
                code: spec.code.clone(),
                currency: spec.currency.clone(),
            });
        }
        for (index, charge) in spec.charges.iter().enumerate() {
            let Some(code) = &charge.meter else { continue };
            let field = format!("spec.charges[{index}].meter");
            let Some(meter) = self.meters.get(code) else {
                return Err(LedgerFault::UnknownMeter {
                    field,
                    code: code.clone(),
                });
            };
            if let Some(property) = charge.group.keys().find(|p| !meter.group_by.contains(p)) {
                return Err(LedgerFault::PlanGroupNotGrouped {
                    field: format!("spec.charges[{index}].group"),
                    meter: code.clone(),
                    property: property.clone(),
                });
            }
            let percentage = matches!(charge.pricing, Pricing::Percentage { .. });
            if percentage && meter.aggregation != Aggregation::Sum {
                return Err(LedgerFault::PlanPercentageNotSum {
                    field,
                    meter: code.clone(),
                    aggregation: meter.aggregation.name(),
                });
            }
        }
        let plan = PlanState {
            version: published.version,
            currency: spec.currency.clone(),
        };
        self.plans.insert(spec.code.clone(), plan);
        Ok(())
    }

    fn close_period(&mut self, customer_id: &str, through: TimestampNs) -> Result<(), LedgerFault> {
        let Some(closed) = self.customers.get_mut(customer_id) else {
            return Err(LedgerFault::UnknownCustomer {
                field: "customer_id".into(),
                customer_id: customer_id.into(),
            });
        };
        if let Some(closed_through) = closed.filter(|&closed| closed >= through) {
            return Err(LedgerFault::PeriodNotAfterClosed {
                customer_id: customer_id.into(),
                through,
                closed_through,
            });
        }
        *closed = Some(through);
        Ok(())
    }

    /// A batch commits to its events, names known customers and meters, and flags as late
    /// exactly the events before their customer's closed period (within the meter's grace).
    fn record_usage(&self, recorded: &UsageRecorded) -> Result<(), LedgerFault> {
        if recorded.events.is_empty() {
            return Err(LedgerFault::NoEvents);
        }
        if crate::usage::events_root(&recorded.events) != recorded.events_root {
            return Err(LedgerFault::EventsRootMismatch {
                count: recorded.events.len(),
            });
        }
        check_late_indexes(&recorded.late, recorded.events.len())?;
        let mut listed = recorded.late.iter().map(|&index| index as usize).peekable();
        for (index, event) in recorded.events.iter().enumerate() {
            let Some(&closed_through) = self.customers.get(&event.customer) else {
                return Err(LedgerFault::UnknownCustomer {
                    field: format!("events[{index}].customer"),
                    customer_id: event.customer.clone(),
                });
            };
            let Some(meter) = self.meters.get(&event.meter) else {
                return Err(LedgerFault::UnknownMeter {
                    field: format!("events[{index}].meter"),
                    code: event.meter.clone(),
                });
            };
            let timestamp = event.timestamp;
            let is_listed = listed.next_if_eq(&index).is_some();
            match closed_through.filter(|&closed| timestamp < closed) {
                Some(closed_through) if !is_listed => {
                    return Err(LedgerFault::LateNotListed {
                        index,
                        timestamp,
                        closed_through,
                    });
                }
                None if is_listed => {
                    return Err(LedgerFault::ListedNotLate { index, timestamp });
                }
                _ => {}
            }
            if let Some(closed) = closed_through {
                check_grace(index, event.timestamp, closed, meter)?;
            }
        }
        Ok(())
    }

    fn define_currency(&mut self, code: &str, scale: u8) -> Result<(), LedgerFault> {
        if self.currency_index.contains_key(code) {
            return Err(LedgerFault::CurrencyRedefined { code: code.into() });
        }
        if scale > SCALE_MAX {
            let code = code.into();
            return Err(LedgerFault::ScaleTooLarge { code, scale });
        }
        self.currency_index
            .insert(code.to_string(), self.currencies.len());
        self.currencies.push(Currency {
            code: code.to_string(),
            scale,
        });
        Ok(())
    }

    fn open_account(&mut self, opened: &AccountOpened) -> Result<(), LedgerFault> {
        let expected = self.accounts.len() as u64;
        if opened.account_id != expected {
            return Err(LedgerFault::AccountIdOutOfOrder {
                account_id: opened.account_id,
                expected,
            });
        }
        let Some(&currency) = self.currency_index.get(&opened.currency) else {
            return Err(LedgerFault::UnknownCurrency {
                account_id: opened.account_id,
                currency: opened.currency.clone(),
            });
        };
        self.accounts.push(AccountBalance {
            account_id: opened.account_id,
            name: opened.name.clone(),
            account_type: opened.account_type,
            currency: opened.currency.clone(),
            scale: self.currencies[currency].scale,
            closed: false,
            debits_posted: 0,
            credits_posted: 0,
            debits_pending: 0,
            credits_pending: 0,
        });
        Ok(())
    }

    fn close_account(&mut self, account_id: AccountId) -> Result<(), LedgerFault> {
        let account = self.account_mut("account_id", account_id)?;
        if account.closed {
            return Err(LedgerFault::AccountAlreadyClosed { account_id });
        }
        account.closed = true;
        Ok(())
    }

    fn record(&mut self, tx: &TransactionRecorded) -> Result<(), LedgerFault> {
        self.record_with(tx, false)
    }

    /// Records a transaction; with `empty_allowed`, one without postings (an invoice of
    /// zero, or its void) too.
    fn record_with(
        &mut self,
        tx: &TransactionRecorded,
        empty_allowed: bool,
    ) -> Result<(), LedgerFault> {
        if !(empty_allowed && tx.postings.is_empty()) {
            self.check_postings(&tx.postings, false)?;
        }
        if let TransactionMode::Reversal { reverses } = &tx.mode {
            // A reversal undoes an earlier transaction that posted (a standard one, a
            // reversal, a posted pending one); its legs are checked like any transaction's.
            if !matches!(
                self.transactions.get(reverses),
                Some(TxState::Posted | TxState::Resolved)
            ) {
                let reverses = reverses.clone();
                return Err(LedgerFault::UnknownReversed { reverses });
            }
        }
        let state = match &tx.mode {
            TransactionMode::Pending { expires_at } => TxState::Open {
                postings: tx.postings.clone(),
                expires_at: *expires_at,
            },
            TransactionMode::Standard | TransactionMode::Reversal { .. } => TxState::Posted,
        };
        self.claim_id(&tx.id, state)?;
        let pending = matches!(tx.mode, TransactionMode::Pending { .. });
        for posting in &tx.postings {
            self.add(posting, posting.amount_minor, pending)?;
        }
        let counter = match tx.mode {
            TransactionMode::Standard => &mut self.counts.standard,
            TransactionMode::Pending { .. } => &mut self.counts.pending,
            TransactionMode::Reversal { .. } => &mut self.counts.reversal,
        };
        *counter += 1;
        Ok(())
    }

    /// An invoice: next in its series and year, numbered as such, issued once, its usage
    /// read before it and within its usage window, posted by `invoice:NUMBER`.
    fn issue_invoice(&mut self, issued: &InvoiceIssued, seq: u64) -> Result<(), LedgerFault> {
        let invoice = &issued.invoice;
        let number = &invoice.number;
        let document = Document {
            field: "invoice",
            number,
            series: &invoice.series,
            year: invoice.year,
            sequence: invoice.sequence,
            issued_on: invoice.issued_on,
        };
        let key = self.billing.check_number(&document)?;
        if self.billing.invoices.contains_key(number) {
            return Err(LedgerFault::InvoiceIssuedTwice {
                number: number.clone(),
            });
        }
        check_usage(invoice, seq)?;
        check_transaction_id(&issued.transaction, &format!("invoice:{number}"))?;
        self.record_with(&issued.transaction, true)?;
        self.billing.sequences.insert(key, invoice.sequence);
        let record = IssuedInvoice {
            void: false,
            customer_id: invoice.customer_id.clone(),
            series: invoice.series.clone(),
        };
        self.billing.invoices.insert(number.clone(), record);
        Ok(())
    }

    /// A void: of an issued invoice not yet void, by `void:NUMBER`, a reversal of
    /// `invoice:NUMBER`.
    fn void_invoice(&mut self, voided: &InvoiceVoided) -> Result<(), LedgerFault> {
        let number = &voided.number;
        self.billing.open_invoice("number", number)?;
        check_transaction_id(&voided.transaction, &format!("void:{number}"))?;
        let reverses = format!("invoice:{number}");
        if !matches!(&voided.transaction.mode, TransactionMode::Reversal { reverses: r } if *r == reverses)
        {
            return Err(LedgerFault::VoidNotReversal {
                number: number.clone(),
            });
        }
        self.record_with(&voided.transaction, true)?;
        if let Some(invoice) = self.billing.invoices.get_mut(number) {
            invoice.void = true;
        }
        Ok(())
    }

    /// A credit note: on an issued invoice not void, in the series `CN-` and the invoice's
    /// series, next in its series and year, numbered as such, posted by
    /// `credit_note:ID` (the id the caller gave it).
    fn issue_credit_note(&mut self, issued: &CreditNoteIssued) -> Result<(), LedgerFault> {
        let note = &issued.credit_note;
        let number = &note.number;
        let invoice = self
            .billing
            .open_invoice("credit_note.invoice_number", &note.invoice_number)?;
        let expected = format!("CN-{}", invoice.series);
        if note.series != expected {
            return Err(LedgerFault::CreditNoteSeriesMismatch {
                number: number.clone(),
                series: note.series.clone(),
                expected,
            });
        }
        let document = Document {
            field: "credit_note",
            number,
            series: &note.series,
            year: note.year,
            sequence: note.sequence,
            issued_on: note.issued_on,
        };
        let key = self.billing.check_number(&document)?;
        // Its id is the caller's (`credit_note:ID`): a retry under it is the same note.
        let id = &issued.transaction.id;
        if id.strip_prefix("credit_note:").is_none_or(str::is_empty) {
            return Err(LedgerFault::BillingTransactionIdMismatch {
                id: id.clone(),
                expected: "credit_note:ID".into(),
            });
        }
        self.record(&issued.transaction)?;
        self.billing.sequences.insert(key, note.sequence);
        Ok(())
    }

    /// A payment: a new id, allocated to the paying customer's issued invoices not void,
    /// posted by `payment:PAYMENT_ID`.
    fn record_payment(&mut self, recorded: &PaymentRecorded) -> Result<(), LedgerFault> {
        let payment = &recorded.payment;
        if self.billing.payments.contains(&payment.payment_id) {
            return Err(LedgerFault::PaymentExists {
                payment_id: payment.payment_id.clone(),
            });
        }
        for (index, allocation) in payment.allocations.iter().enumerate() {
            let field = format!("payment.allocations[{index}].invoice_number");
            let invoice = self
                .billing
                .open_invoice(&field, &allocation.invoice_number)?;
            if invoice.customer_id != payment.customer_id {
                return Err(LedgerFault::AllocationToOtherCustomer {
                    index,
                    number: allocation.invoice_number.clone(),
                    customer_id: payment.customer_id.clone(),
                    invoice_customer: invoice.customer_id.clone(),
                });
            }
        }
        let expected = format!("payment:{}", payment.payment_id);
        check_transaction_id(&recorded.transaction, &expected)?;
        self.record(&recorded.transaction)?;
        self.billing.payments.insert(payment.payment_id.clone());
        Ok(())
    }

    fn post_pending(&mut self, posted: &PendingPosted) -> Result<(), LedgerFault> {
        self.check_postings(&posted.postings, true)?;
        let reserved = self.open_postings(&posted.pending_id)?;
        check_within_reservation(&posted.postings, reserved)?;
        self.claim_id(&posted.id, TxState::Posted)?;
        self.release_pending(&posted.pending_id, None)?;
        for posting in &posted.postings {
            self.add(posting, posting.amount_minor, false)?;
        }
        self.counts.pending_posted += 1;
        Ok(())
    }

    /// The reserved postings of an open pending transaction.
    fn open_postings(&self, pending_id: &str) -> Result<&[Posting], LedgerFault> {
        match self.transactions.get(pending_id) {
            Some(TxState::Open { postings, .. }) => Ok(postings),
            Some(TxState::Resolved) => Err(LedgerFault::PendingAlreadyResolved {
                pending_id: pending_id.into(),
            }),
            _ => Err(LedgerFault::UnknownPending {
                pending_id: pending_id.into(),
            }),
        }
    }

    /// Releases the whole reservation of `pending_id`; `expired_at` is the expiry entry's
    /// time, which must not be before the pending transaction's `expires_at`.
    fn release_pending(
        &mut self,
        pending_id: &str,
        expired_at: Option<TimestampNs>,
    ) -> Result<(), LedgerFault> {
        self.open_postings(pending_id)?;
        if let (Some(now), Some(TxState::Open { expires_at, .. })) =
            (expired_at, self.transactions.get(pending_id))
        {
            check_expired(pending_id, *expires_at, now)?;
        }
        let postings = match self
            .transactions
            .insert(pending_id.into(), TxState::Resolved)
        {
            Some(TxState::Open { postings, .. }) => postings,
            // `open_postings` found it open just above.
            _ => Vec::new(),
        };
        for posting in &postings {
            self.subtract_pending(posting)?;
        }
        Ok(())
    }

    fn claim_id(&mut self, id: &str, state: TxState) -> Result<(), LedgerFault> {
        if self.transactions.contains_key(id) {
            return Err(LedgerFault::DuplicateTransactionId { id: id.into() });
        }
        self.transactions.insert(id.to_string(), state);
        Ok(())
    }

    /// Count, amounts, accounts and the per-currency balance of a transaction's postings.
    fn check_postings(&self, postings: &[Posting], zero_allowed: bool) -> Result<(), LedgerFault> {
        if postings.len() < 2 {
            return Err(LedgerFault::TooFewPostings {
                count: postings.len(),
            });
        }
        // (currency, debits, credits); a transaction touches few currencies.
        let mut sums: Vec<(&str, u128, u128)> = Vec::new();
        for (index, posting) in postings.iter().enumerate() {
            let amount = posting.amount_minor;
            if amount == 0 && !zero_allowed {
                return Err(LedgerFault::ZeroAmount { index });
            }
            if amount > AMOUNT_MINOR_MAX {
                return Err(LedgerFault::AmountTooLarge { index, amount });
            }
            let field = || format!("postings[{index}].account_id");
            let account = self.account(field, posting.account_id)?;
            add_to_sums(&mut sums, &account.currency, posting.side, amount);
        }
        for (currency, debits, credits) in sums {
            if debits != credits {
                let currency = currency.to_string();
                return Err(LedgerFault::Unbalanced {
                    currency,
                    debits,
                    credits,
                });
            }
        }
        Ok(())
    }

    fn account(
        &self,
        field: impl FnOnce() -> String,
        account_id: AccountId,
    ) -> Result<&AccountBalance, LedgerFault> {
        usize::try_from(account_id)
            .ok()
            .and_then(|i| self.accounts.get(i))
            .ok_or_else(|| LedgerFault::UnknownAccount {
                field: field(),
                account_id,
            })
    }

    fn account_mut(
        &mut self,
        field: &str,
        account_id: AccountId,
    ) -> Result<&mut AccountBalance, LedgerFault> {
        usize::try_from(account_id)
            .ok()
            .and_then(|i| self.accounts.get_mut(i))
            .ok_or_else(|| LedgerFault::UnknownAccount {
                field: field.to_string(),
                account_id,
            })
    }

    /// Adds `amount` to the posted or pending total of the posting's side.
    fn add(&mut self, posting: &Posting, amount: u128, pending: bool) -> Result<(), LedgerFault> {
        let account_id = posting.account_id;
        let account = self.account_mut("account_id", account_id)?;
        let (total, name) = match (posting.side, pending) {
            (Side::Debit, false) => (&mut account.debits_posted, "debits posted"),
            (Side::Credit, false) => (&mut account.credits_posted, "credits posted"),
            (Side::Debit, true) => (&mut account.debits_pending, "debits pending"),
            (Side::Credit, true) => (&mut account.credits_pending, "credits pending"),
        };
        match total.checked_add(amount) {
            Some(sum) if sum <= AMOUNT_MINOR_MAX => {
                *total = sum;
                Ok(())
            }
            _ => Err(LedgerFault::TotalOverflow {
                account_id,
                total: name,
            }),
        }
    }

    fn subtract_pending(&mut self, posting: &Posting) -> Result<(), LedgerFault> {
        let account_id = posting.account_id;
        let account = self.account_mut("account_id", account_id)?;
        let (total, name) = match posting.side {
            Side::Debit => (&mut account.debits_pending, "debits pending"),
            Side::Credit => (&mut account.credits_pending, "credits pending"),
        };
        *total = total
            .checked_sub(posting.amount_minor)
            .ok_or(LedgerFault::ReleaseUnderflow {
                account_id,
                total: name,
            })?;
        Ok(())
    }
}

/// The numbering of an invoice or a credit note.
struct Document<'a> {
    /// `invoice` or `credit_note`: the field holding the document.
    field: &'static str,
    number: &'a str,
    series: &'a str,
    year: i32,
    sequence: u64,
    issued_on: Day,
}

impl BillingState {
    /// Checks that a document is the next of its (series, year) and numbered
    /// `SERIES-YYYY-NNNNNN` (the year of its issue day, at least four digits; the sequence at
    /// least six); returns the key to record its sequence under.
    fn check_number(&self, document: &Document) -> Result<(String, i32), LedgerFault> {
        let Document {
            field,
            number,
            series,
            year,
            sequence,
            issued_on,
        } = *document;
        let key = (series.to_string(), year);
        let expected = self
            .sequences
            .get(&key)
            .map_or(1, |last| last.saturating_add(1));
        if sequence != expected {
            return Err(LedgerFault::DocumentSequenceOutOfOrder {
                field: format!("{field}.sequence"),
                number: number.into(),
                series: series.into(),
                year,
                sequence,
                expected,
            });
        }
        let text = format!("{series}-{year:04}-{sequence:06}");
        if number != text {
            return Err(LedgerFault::DocumentNumberMismatch {
                field: format!("{field}.number"),
                number: number.into(),
                expected: text,
            });
        }
        if issued_on.ymd().is_some_and(|(issued, _, _)| issued != year) {
            return Err(LedgerFault::DocumentYearMismatch {
                field: format!("{field}.year"),
                number: number.into(),
                year,
                issued_on: issued_on.to_string(),
            });
        }
        Ok(key)
    }

    /// The issued invoice `number` names, if it is not void.
    fn open_invoice(&self, field: &str, number: &str) -> Result<&IssuedInvoice, LedgerFault> {
        match self.invoices.get(number) {
            None => Err(LedgerFault::UnknownInvoice {
                field: field.into(),
                number: number.into(),
            }),
            Some(invoice) if invoice.void => Err(LedgerFault::InvoiceVoid {
                field: field.into(),
                number: number.into(),
            }),
            Some(invoice) => Ok(invoice),
        }
    }
}

/// The usage an invoice (at `seq`) states: read at a journal length of at most `seq` (the
/// run reads, then writes), and each line's window within the invoice's usage window (only
/// a line closing the period reads usage).
fn check_usage(invoice: &Invoice, seq: u64) -> Result<(), LedgerFault> {
    if invoice.usage_journal_length > seq {
        return Err(LedgerFault::UsageReadAfterInvoice {
            length: invoice.usage_journal_length,
            seq,
        });
    }
    let (usage_from, usage_to) = (invoice.usage_from, invoice.usage_to);
    for (index, line) in invoice.lines.iter().enumerate() {
        let Some(usage) = &line.usage else { continue };
        if !(usage_from <= usage.from && usage.from <= usage.to && usage.to <= usage_to) {
            return Err(LedgerFault::UsageWindowOutsideInvoice {
                line: index,
                from: usage.from,
                to: usage.to,
                usage_from,
                usage_to,
            });
        }
    }
    Ok(())
}

/// A billing document's transaction carries the id its document implies.
fn check_transaction_id(tx: &TransactionRecorded, expected: &str) -> Result<(), LedgerFault> {
    if tx.id != expected {
        return Err(LedgerFault::BillingTransactionIdMismatch {
            id: tx.id.clone(),
            expected: expected.into(),
        });
    }
    Ok(())
}

fn add_to_sums<'a>(
    sums: &mut Vec<(&'a str, u128, u128)>,
    currency: &'a str,
    side: Side,
    amount: u128,
) {
    let index = match sums.iter().position(|(c, _, _)| *c == currency) {
        Some(index) => index,
        None => {
            sums.push((currency, 0, 0));
            sums.len() - 1
        }
    };
    let (_, debits, credits) = &mut sums[index];
    // Each amount is at most 2^96 − 1 and a transaction has far fewer than 2^32 postings,
    // so these sums cannot overflow; saturate rather than panic regardless.
    match side {
        Side::Debit => *debits = debits.saturating_add(amount),
        Side::Credit => *credits = credits.saturating_add(amount),
    }
}

/// Each posted leg names the reserved leg's account and side, and posts at most its amount.
/// `late` lists event indexes strictly ascending, each below the event count.
fn check_late_indexes(late: &[u32], event_count: usize) -> Result<(), LedgerFault> {
    let mut floor = 0usize;
    for (position, &index) in late.iter().enumerate() {
        let at = index as usize;
        if at < floor || at >= event_count {
            return Err(LedgerFault::LateIndexInvalid { position, index });
        }
        floor = at + 1;
    }
    Ok(())
}

/// An event after a closed period is at most the meter's grace period before its end.
fn check_grace(
    index: usize,
    timestamp: TimestampNs,
    closed: TimestampNs,
    meter: &MeterState,
) -> Result<(), LedgerFault> {
    let grace_ns = i64::try_from(meter.grace_period_seconds)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000_000);
    let earliest = closed.saturating_sub(grace_ns);
    if timestamp < earliest {
        return Err(LedgerFault::TimestampBeforeGrace {
            index,
            timestamp,
            earliest,
        });
    }
    Ok(())
}

fn check_within_reservation(posted: &[Posting], reserved: &[Posting]) -> Result<(), LedgerFault> {
    if posted.len() != reserved.len() {
        return Err(LedgerFault::PostingCountMismatch {
            given: posted.len(),
            expected: reserved.len(),
        });
    }
    for (index, (p, r)) in posted.iter().zip(reserved).enumerate() {
        if p.account_id != r.account_id || p.side != r.side {
            return Err(LedgerFault::PostingLegMismatch { index });
        }
        if p.amount_minor > r.amount_minor {
            return Err(LedgerFault::PostedExceedsReserved {
                index,
                posted: p.amount_minor,
                reserved: r.amount_minor,
            });
        }
    }
    Ok(())
}

fn check_expired(
    pending_id: &str,
    expires_at: Option<TimestampNs>,
    now: TimestampNs,
) -> Result<(), LedgerFault> {
    match expires_at {
        None => Err(LedgerFault::NeverExpires {
            pending_id: pending_id.into(),
        }),
        Some(expires_at) if expires_at > now => Err(LedgerFault::NotYetExpired {
            pending_id: pending_id.into(),
            expires_at,
        }),
        Some(_) => Ok(()),
    }
}

fn trial_balance_line(
    currency: &Currency,
    accounts: &[AccountBalance],
) -> Result<TrialBalanceLine, LedgerFault> {
    let overflow = || LedgerFault::TrialBalanceOverflow {
        currency: currency.code.clone(),
    };
    let mut line = TrialBalanceLine {
        currency: currency.code.clone(),
        scale: currency.scale,
        debits_posted: 0,
        credits_posted: 0,
        debits_pending: 0,
        credits_pending: 0,
    };
    for account in accounts.iter().filter(|a| a.currency == currency.code) {
        let sum = |total: u128, add: u128| total.checked_add(add).ok_or_else(overflow);
        line.debits_posted = sum(line.debits_posted, account.debits_posted)?;
        line.credits_posted = sum(line.credits_posted, account.credits_posted)?;
        line.debits_pending = sum(line.debits_pending, account.debits_pending)?;
        line.credits_pending = sum(line.credits_pending, account.credits_pending)?;
    }
    let unequal = |what, debits, credits| LedgerFault::TrialBalanceUnequal {
        currency: currency.code.clone(),
        what,
        debits,
        credits,
    };
    if line.debits_posted != line.credits_posted {
        return Err(unequal("posted", line.debits_posted, line.credits_posted));
    }
    if line.debits_pending != line.credits_pending {
        return Err(unequal(
            "pending",
            line.debits_pending,
            line.credits_pending,
        ));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::entry::{Metadata, PendingVoided};

    fn entry(body: EntryBody) -> Entry {
        Entry {
            recorded_at: 0,
            key_id: String::new(),
            body,
        }
    }

    fn pending(id: &str, amount: u128) -> Entry {
        entry(EntryBody::TransactionRecorded(TransactionRecorded {
            id: id.into(),
            request_digest: [0; 32],
            mode: TransactionMode::Pending { expires_at: None },
            postings: vec![
                Posting {
                    account_id: 0,
                    side: Side::Debit,
                    amount_minor: amount,
                },
                Posting {
                    account_id: 1,
                    side: Side::Credit,
                    amount_minor: amount,
                },
            ],
            effective_at: None,
            description: String::new(),
            metadata: Metadata::new(),
        }))
    }

    fn post(id: &str, pending_id: &str, amounts: [u128; 2]) -> Entry {
        entry(EntryBody::PendingPosted(PendingPosted {
            id: id.into(),
            request_digest: [0; 32],
            pending_id: pending_id.into(),
            postings: vec![
                Posting {
                    account_id: 0,
                    side: Side::Debit,
                    amount_minor: amounts[0],
                },
                Posting {
                    account_id: 1,
                    side: Side::Credit,
                    amount_minor: amounts[1],
                },
            ],
            effective_at: None,
            description: String::new(),
            metadata: Metadata::new(),
        }))
    }

    /// A ledger with USD (scale 2), an asset account 0 and a revenue account 1.
    fn ledger() -> Rederiver {
        let mut ledger = Rederiver::new();
        let opened = |account_id, account_type| {
            entry(EntryBody::AccountOpened(AccountOpened {
                account_id,
                name: format!("a{account_id}"),
                account_type,
                currency: "USD".into(),
                constraint: tally_core::entry::BalanceConstraint::None,
                metadata: Metadata::new(),
            }))
        };
        for e in [
            entry(EntryBody::LedgerCreated { ledger_id: [1; 16] }),
            entry(EntryBody::CurrencyDefined {
                code: "USD".into(),
                scale: 2,
            }),
            opened(0, AccountType::Asset),
            opened(1, AccountType::Revenue),
        ] {
            ledger.apply(&e).unwrap();
        }
        ledger
    }

    #[test]
    fn posting_a_pending_transaction_releases_all_of_it() {
        // Goal: a partial post moves the posted part to posted totals and releases the rest.
        let mut ledger = ledger();
        ledger.apply(&pending("p", 1_000)).unwrap();
        ledger.apply(&post("q", "p", [400, 400])).unwrap();
        let balances = ledger.finish().unwrap();
        let a = &balances.accounts[0];
        assert_eq!(
            (a.debits_posted, a.debits_pending, a.balance()),
            (400, 0, 400)
        );
        assert_eq!(balances.accounts[1].balance(), 400);
        assert_eq!(balances.transactions.open_pending(), 0);
    }

    #[test]
    fn a_pending_transaction_is_resolved_once_within_its_reservation() {
        // Goal: posting more than reserved, or resolving twice, is a named fault.
        let mut ledger = ledger();
        ledger.apply(&pending("p", 1_000)).unwrap();
        assert_eq!(
            ledger.apply(&post("q", "p", [1_001, 1_001])),
            Err(LedgerFault::PostedExceedsReserved {
                index: 0,
                posted: 1_001,
                reserved: 1_000
            })
        );
        let mut ledger = self::ledger();
        ledger.apply(&pending("p", 1_000)).unwrap();
        ledger.apply(&post("q", "p", [1_000, 1_000])).unwrap();
        let void = entry(EntryBody::PendingVoided(PendingVoided {
            id: "v".into(),
            request_digest: [0; 32],
            pending_id: "p".into(),
            reason: String::new(),
        }));
        assert_eq!(
            ledger.apply(&void),
            Err(LedgerFault::PendingAlreadyResolved {
                pending_id: "p".into()
            })
        );
        assert_eq!(
            ledger.apply(&pending("q", 5)),
            Err(LedgerFault::DuplicateTransactionId { id: "q".into() })
        );
    }

    #[test]
    fn structural_faults_are_named() {
        // Goal: the first entry, account numbering, currencies and postings are checked.
        let mut empty = Rederiver::new();
        assert_eq!(
            empty.apply(&pending("p", 1)),
            Err(LedgerFault::FirstEntryNotLedgerCreated {
                kind: "transaction_recorded"
            })
        );
        assert_eq!(Rederiver::new().finish(), Err(LedgerFault::NoLedger));
        let mut ledger = ledger();
        let usd_again = entry(EntryBody::CurrencyDefined {
            code: "USD".into(),
            scale: 2,
        });
        assert_eq!(
            ledger.apply(&usd_again),
            Err(LedgerFault::CurrencyRedefined { code: "USD".into() })
        );
        assert_eq!(
            ledger.apply(&pending("z", 0)),
            Err(LedgerFault::ZeroAmount { index: 0 })
        );
        assert_eq!(
            ledger.apply(&pending("big", AMOUNT_MINOR_MAX + 1)),
            Err(LedgerFault::AmountTooLarge {
                index: 0,
                amount: AMOUNT_MINOR_MAX + 1
            })
        );
        assert_eq!(
            ledger.apply(&post("q", "missing", [1, 1])),
            Err(LedgerFault::UnknownPending {
                pending_id: "missing".into()
            })
        );
        let close_unknown = entry(EntryBody::AccountClosed { account_id: 7 });
        assert!(matches!(
            ledger.apply(&close_unknown),
            Err(LedgerFault::UnknownAccount { account_id: 7, .. })
        ));
    }

    // -----------------------------------------------------------------------
    // Metering entries
    // -----------------------------------------------------------------------

    use tally_core::entry::{CustomerCreated, MeterDefined, UsageRecorded};
    use tally_core::meter::{MeterSpec, MeterSpecRejection};
    use tally_core::usage::UsageEvent;

    /// 2023-11-14T00:00:00Z, where acme's usage is closed in `metered()`.
    const CLOSED: TimestampNs = 1_699_920_000_000_000_000;
    const HOUR_NS: TimestampNs = 3_600_000_000_000;

    fn customer(customer_id: &str) -> Entry {
        entry(EntryBody::CustomerCreated(CustomerCreated {
            customer_id: customer_id.into(),
            name: customer_id.into(),
            metadata: Metadata::new(),
        }))
    }

    /// Version `version` of the meter `api_calls`, with a grace of one day.
    fn meter(version: u32, aggregation: Aggregation) -> Entry {
        entry(EntryBody::MeterDefined(MeterDefined {
            version,
            spec: MeterSpec {
                code: "api_calls".into(),
                aggregation,
                value_property: None,
                filters: BTreeMap::new(),
                group_by: Vec::new(),
                grace_period_seconds: 86_400,
            },
            description: String::new(),
        }))
    }

    fn close(customer_id: &str, through: TimestampNs) -> Entry {
        entry(EntryBody::UsagePeriodClosed {
            customer_id: customer_id.into(),
            through,
        })
    }

    fn event(number: u32, customer: &str, meter: &str, timestamp: TimestampNs) -> UsageEvent {
        UsageEvent {
            event_id: format!("evt-{number}"),
            customer: customer.into(),
            meter: meter.into(),
            timestamp,
            value: Some("1".into()),
            properties: BTreeMap::new(),
        }
    }

    /// A batch with its true events root.
    fn batch(events: Vec<UsageEvent>, late: Vec<u32>) -> UsageRecorded {
        UsageRecorded {
            events_root: crate::usage::events_root(&events),
            events,
            late,
        }
    }

    fn apply_batch(ledger: &mut Rederiver, recorded: UsageRecorded) -> Result<(), LedgerFault> {
        ledger.apply(&entry(EntryBody::UsageRecorded(recorded)))
    }

    /// `ledger()` with the customers acme (closed through `CLOSED`) and beta (never
    /// closed), and the sum meter `api_calls`.
    fn metered() -> Rederiver {
        let mut ledger = ledger();
        for e in [
            customer("acme"),
            customer("beta"),
            meter(1, Aggregation::Sum),
            close("acme", CLOSED),
        ] {
            ledger.apply(&e).unwrap();
        }
        ledger
    }

    #[test]
    fn an_honest_usage_batch_is_accepted_and_changes_no_balance() {
        // Goal: a batch of two customers' events, acme's early one listed as late,
        // folds without a fault and leaves every balance and count as it was.
        let mut ledger = metered();
        let events = vec![
            event(0, "acme", "api_calls", CLOSED + HOUR_NS),
            event(1, "acme", "api_calls", CLOSED - HOUR_NS),
            event(2, "beta", "api_calls", CLOSED - 2 * HOUR_NS),
        ];
        apply_batch(&mut ledger, batch(events, vec![1])).unwrap();
        let balances = ledger.finish().unwrap();
        assert!(balances.accounts.iter().all(|a| a.balance() == 0));
        assert_eq!(balances.transactions, TransactionCounts::default());
    }

    #[test]
    fn a_usage_batch_commits_to_its_events_and_lists_its_late_ones() {
        // Goal: a wrong events_root, an empty batch, a late event not listed, a
        // listed event that is not late, and late indexes out of order, repeated or
        // out of range are each named.
        let late_one = || {
            vec![
                event(0, "acme", "api_calls", CLOSED),
                event(1, "acme", "api_calls", CLOSED - 1),
            ]
        };
        let fault = |recorded: UsageRecorded| apply_batch(&mut metered(), recorded).unwrap_err();
        let mut lying = batch(late_one(), vec![1]);
        lying.events_root[0] ^= 1;
        assert_eq!(fault(lying), LedgerFault::EventsRootMismatch { count: 2 });
        assert_eq!(fault(batch(vec![], vec![])), LedgerFault::NoEvents);
        assert_eq!(
            fault(batch(late_one(), vec![])),
            LedgerFault::LateNotListed {
                index: 1,
                timestamp: CLOSED - 1,
                closed_through: CLOSED
            }
        );
        assert_eq!(
            fault(batch(late_one(), vec![0, 1])),
            LedgerFault::ListedNotLate {
                index: 0,
                timestamp: CLOSED
            }
        );
        for (late, position, index) in [
            (vec![1, 1], 1, 1),
            (vec![2], 0, 2),
            (vec![u32::MAX], 0, u32::MAX),
        ] {
            assert_eq!(
                fault(batch(late_one(), late)),
                LedgerFault::LateIndexInvalid { position, index }
            );
        }
        // Never closed: nothing is late, however old.
        let old = vec![event(0, "beta", "api_calls", i64::MIN)];
        assert_eq!(
            fault(batch(old, vec![0])),
            LedgerFault::ListedNotLate {
                index: 0,
                timestamp: i64::MIN
            }
        );
    }

    #[test]
    fn usage_names_known_customers_and_meters_within_the_grace() {
        // Goal: an event of an unknown customer or meter, or older than the
        // meter's grace before its customer's closed period, is named.
        let fault = |e: UsageEvent, late| apply_batch(&mut metered(), batch(vec![e], late));
        assert_eq!(
            fault(event(0, "gamma", "api_calls", CLOSED), vec![]),
            Err(LedgerFault::UnknownCustomer {
                field: "events[0].customer".into(),
                customer_id: "gamma".into()
            })
        );
        assert_eq!(
            fault(event(0, "acme", "tokens", CLOSED), vec![]),
            Err(LedgerFault::UnknownMeter {
                field: "events[0].meter".into(),
                code: "tokens".into()
            })
        );
        let day_ns = 24 * HOUR_NS;
        assert_eq!(
            fault(event(0, "acme", "api_calls", CLOSED - day_ns), vec![0]),
            Ok(())
        );
        assert_eq!(
            fault(event(0, "acme", "api_calls", CLOSED - day_ns - 1), vec![0]),
            Err(LedgerFault::TimestampBeforeGrace {
                index: 0,
                timestamp: CLOSED - day_ns - 1,
                earliest: CLOSED - day_ns
            })
        );
    }

    #[test]
    fn customers_meters_and_periods_follow_their_rules() {
        // Goal: a customer created twice, a meter version out of order, a changed
        // aggregation, an invalid definition, a period of an unknown customer and a
        // period not after the last are each named; a proper second version passes.
        let mut ledger = metered();
        assert_eq!(
            ledger.apply(&customer("acme")),
            Err(LedgerFault::CustomerExists {
                customer_id: "acme".into()
            })
        );
        assert_eq!(
            ledger.apply(&meter(3, Aggregation::Sum)),
            Err(LedgerFault::MeterVersionOutOfOrder {
                code: "api_calls".into(),
                version: 3,
                expected: 2
            })
        );
        assert_eq!(
            ledger.apply(&meter(2, Aggregation::Max)),
            Err(LedgerFault::MeterAggregationChanged {
                code: "api_calls".into(),
                from: "sum",
                to: "max"
            })
        );
        ledger.apply(&meter(2, Aggregation::Sum)).unwrap();
        let mut invalid = meter(1, Aggregation::Count);
        if let EntryBody::MeterDefined(defined) = &mut invalid.body {
            defined.spec.code = "API".into();
        }
        assert!(matches!(
            ledger.apply(&invalid),
            Err(LedgerFault::MeterSpecInvalid(MeterSpecError {
                reason: MeterSpecRejection::FieldInvalid,
                ..
            }))
        ));
        assert_eq!(
            ledger.apply(&close("gamma", CLOSED)),
            Err(LedgerFault::UnknownCustomer {
                field: "customer_id".into(),
                customer_id: "gamma".into()
            })
        );
        assert_eq!(
            ledger.apply(&close("acme", CLOSED)),
            Err(LedgerFault::PeriodNotAfterClosed {
                customer_id: "acme".into(),
                through: CLOSED,
                closed_through: CLOSED
            })
        );
        ledger.apply(&close("acme", CLOSED + 1)).unwrap();
        ledger.apply(&close("beta", CLOSED - HOUR_NS)).unwrap();
    }

    // -----------------------------------------------------------------------
    // Plan entries
    // -----------------------------------------------------------------------

    use tally_core::calendar::{BillingInterval, Day, IntervalUnit};
    use tally_core::decimal::Dec;
    use tally_core::plan::{Charge, PlanRejection, PlanSpec, RoundingMode};

    /// Version `version` of the plan `pro` in `currency`: 0.01 per call of
    /// the meter `api_calls`, in `group` if given.
    fn plan(version: u32, currency: &str, group: &[(&str, &str)], pricing: Pricing) -> Entry {
        entry(EntryBody::PlanPublished(PlanPublished {
            version,
            spec: PlanSpec {
                code: "pro".into(),
                name: String::new(),
                currency: currency.into(),
                interval: BillingInterval {
                    unit: IntervalUnit::Monthly,
                    anchor: Day(20_000),
                },
                charges: vec![Charge {
                    code: "calls".into(),
                    description: String::new(),
                    meter: Some("api_calls".into()),
                    group: group
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    free_units: Dec::ZERO,
                    pricing,
                }],
                minimum_commitment: None,
                rounding: RoundingMode::HalfUp,
            },
        }))
    }

    fn per_unit() -> Pricing {
        Pricing::PerUnit {
            unit_price: Dec("0.01".parse().unwrap()),
        }
    }

    fn percentage() -> Pricing {
        Pricing::Percentage {
            rate: Dec("2.9".parse().unwrap()),
            fixed_fee: Dec::ZERO,
            min_per_transaction: None,
            max_per_transaction: None,
        }
    }

    #[test]
    fn plan_versions_follow_their_rules() {
        // Goal: an honest plan and its next version pass and change no balance;
        // a version out of order, a changed or undefined currency, an invalid
        // plan, an unknown meter, a group the meter does not split by and a
        // percentage charge on a non-sum meter are each named.
        let mut book = metered();
        book.apply(&plan(1, "USD", &[], per_unit())).unwrap();
        assert_eq!(
            book.apply(&plan(3, "USD", &[], per_unit())),
            Err(LedgerFault::PlanVersionOutOfOrder {
                code: "pro".into(),
                version: 3,
                expected: 2
            })
        );
        book.apply(&entry(EntryBody::CurrencyDefined {
            code: "EUR".into(),
            scale: 2,
        }))
        .unwrap();
        assert_eq!(
            book.apply(&plan(2, "EUR", &[], per_unit())),
            Err(LedgerFault::PlanCurrencyChanged {
                code: "pro".into(),
                from: "USD".into(),
                to: "EUR".into()
            })
        );
        book.apply(&plan(2, "USD", &[], percentage())).unwrap();

        let fault = |e: Entry| metered().apply(&e).unwrap_err();
        assert_eq!(
            fault(plan(1, "JPY", &[], per_unit())),
            LedgerFault::PlanCurrencyUnknown {
                code: "pro".into(),
                currency: "JPY".into()
            }
        );
        let mut invalid = plan(1, "USD", &[], per_unit());
        if let EntryBody::PlanPublished(published) = &mut invalid.body {
            published.spec.charges[0].meter = None;
        }
        assert!(matches!(
            fault(invalid),
            LedgerFault::PlanSpecInvalid(PlanError {
                reason: PlanRejection::FieldMissing,
                ..
            })
        ));
        let mut unknown = plan(1, "USD", &[], per_unit());
        if let EntryBody::PlanPublished(published) = &mut unknown.body {
            published.spec.charges[0].meter = Some("tokens".into());
        }
        assert_eq!(
            fault(unknown),
            LedgerFault::UnknownMeter {
                field: "spec.charges[0].meter".into(),
                code: "tokens".into()
            }
        );
        assert_eq!(
            fault(plan(1, "USD", &[("region", "eu")], per_unit())),
            LedgerFault::PlanGroupNotGrouped {
                field: "spec.charges[0].group".into(),
                meter: "api_calls".into(),
                property: "region".into()
            }
        );
        let mut counted = metered();
        counted.apply(&meter(2, Aggregation::Sum)).unwrap();
        let mut regional = meter(3, Aggregation::Sum);
        if let EntryBody::MeterDefined(defined) = &mut regional.body {
            defined.spec.group_by = vec!["region".into()];
        }
        counted.apply(&regional).unwrap();
        counted
            .apply(&plan(1, "USD", &[("region", "eu")], per_unit()))
            .unwrap();

        let mut logins = ledger();
        logins.apply(&meter(1, Aggregation::Count)).unwrap();
        assert_eq!(
            logins.apply(&plan(1, "USD", &[], percentage())),
            Err(LedgerFault::PlanPercentageNotSum {
                field: "spec.charges[0].meter".into(),
                meter: "api_calls".into(),
                aggregation: "count"
            })
        );
        let balances = book.finish().unwrap();
        assert!(balances.accounts.iter().all(|a| a.balance() == 0));
    }
    // -----------------------------------------------------------------------
    // Billing entries
    // -----------------------------------------------------------------------

    use tally_core::billing::{
        Allocation, CreditNote, CreditNoteIssued, InvoiceIssued, InvoiceLine, InvoiceVoided,
        Payment, PaymentKind, PaymentRecorded, UsageDigest,
    };

    /// A transaction debiting account 0 and crediting account 1 by `amount`; none for 0.
    fn billing_tx(id: &str, mode: TransactionMode, amount: u128) -> TransactionRecorded {
        let leg = |account_id, side| Posting {
            account_id,
            side,
            amount_minor: amount,
        };
        TransactionRecorded {
            id: id.into(),
            request_digest: [0; 32],
            mode,
            postings: if amount == 0 {
                Vec::new()
            } else {
                vec![leg(0, Side::Debit), leg(1, Side::Credit)]
            },
            effective_at: None,
            description: String::new(),
            metadata: Metadata::new(),
        }
    }

    /// An invoice of `series`, issued on 1 December of `year`, and its transaction of
    /// `amount` under `invoice:NUMBER`.
    fn invoice_numbered(
        number: &str,
        series: &str,
        year: i32,
        sequence: u64,
        amount: u128,
    ) -> Entry {
        let issued_on = Day::from_ymd(year, 12, 1).unwrap();
        let invoice = Invoice {
            number: number.into(),
            series: series.into(),
            year,
            sequence,
            customer_id: "acme".into(),
            subscription_id: "sub".into(),
            currency: "USD".into(),
            period_start: Day(issued_on.0 - 30),
            period_end: issued_on,
            usage_from: 0,
            usage_to: 0,
            usage_journal_length: 0,
            country: "DE".into(),
            region: None,
            tax_id: String::new(),
            issued_on,
            due_on: issued_on,
            lines: Vec::new(),
            coupons: Vec::new(),
            taxes: Vec::new(),
            subtotal: Dec::ZERO,
            discount: Dec::ZERO,
            tax: Dec::ZERO,
            total: Dec::ZERO,
            credit_applied: Dec::ZERO,
            amount_due: Dec::ZERO,
        };
        let transaction = billing_tx(
            &format!("invoice:{number}"),
            TransactionMode::Standard,
            amount,
        );
        entry(EntryBody::InvoiceIssued(Box::new(InvoiceIssued {
            invoice,
            transaction,
        })))
    }

    fn invoice(series: &str, year: i32, sequence: u64, amount: u128) -> Entry {
        let number = format!("{series}-{year:04}-{sequence:06}");
        invoice_numbered(&number, series, year, sequence, amount)
    }

    fn void(number: &str, amount: u128) -> Entry {
        let reverses = format!("invoice:{number}");
        let mut transaction = billing_tx(
            &format!("void:{number}"),
            TransactionMode::Reversal { reverses },
            amount,
        );
        for posting in &mut transaction.postings {
            posting.side = posting.side.opposite();
        }
        entry(EntryBody::InvoiceVoided(Box::new(InvoiceVoided {
            number: number.into(),
            reason: String::new(),
            transaction,
        })))
    }

    /// Credit note `sequence` of 2026 in the series `CN-INV` on `invoice_number`.
    fn credit_note(sequence: u64, invoice_number: &str, amount: u128) -> Entry {
        credit_note_in("CN-INV", sequence, invoice_number, amount)
    }

    /// Credit note `sequence` of 2026 in `series` on `invoice_number`.
    fn credit_note_in(series: &str, sequence: u64, invoice_number: &str, amount: u128) -> Entry {
        let number = format!("{series}-2026-{sequence:06}");
        let mut transaction = billing_tx(
            &format!("credit_note:{number}"),
            TransactionMode::Standard,
            amount,
        );
        for posting in &mut transaction.postings {
            posting.side = posting.side.opposite();
        }
        entry(EntryBody::CreditNoteIssued(Box::new(CreditNoteIssued {
            credit_note: CreditNote {
                number,
                series: series.into(),
                year: 2026,
                sequence,
                invoice_number: invoice_number.into(),
                customer_id: "acme".into(),
                currency: "USD".into(),
                issued_on: Day::from_ymd(2026, 12, 5).unwrap(),
                reason: String::new(),
                lines: Vec::new(),
                total: Dec::ZERO,
                to_invoice: Dec::ZERO,
                to_credit: Dec::ZERO,
            },
            transaction,
        })))
    }

    fn payment(payment_id: &str, invoices: &[&str], amount: u128) -> Entry {
        let allocations = invoices
            .iter()
            .map(|number| Allocation {
                invoice_number: number.to_string(),
                amount: Dec::ZERO,
            })
            .collect();
        entry(EntryBody::PaymentRecorded(Box::new(PaymentRecorded {
            payment: Payment {
                payment_id: payment_id.into(),
                customer_id: "acme".into(),
                kind: PaymentKind::Payment,
                currency: "USD".into(),
                amount: Dec::ZERO,
                received_on: Day(0),
                reference: String::new(),
                allocations,
                to_credit: Dec::ZERO,
            },
            transaction: billing_tx(
                &format!("payment:{payment_id}"),
                TransactionMode::Standard,
                amount,
            ),
        })))
    }

    /// The entry's transaction, changed by `change`.
    fn with_transaction(mut e: Entry, change: impl FnOnce(&mut TransactionRecorded)) -> Entry {
        match &mut e.body {
            EntryBody::InvoiceIssued(issued) => change(&mut issued.transaction),
            EntryBody::InvoiceVoided(voided) => change(&mut voided.transaction),
            EntryBody::CreditNoteIssued(issued) => change(&mut issued.transaction),
            EntryBody::PaymentRecorded(recorded) => change(&mut recorded.transaction),
            other => panic!("{} carries no transaction", other.kind_name()),
        }
        e
    }

    /// The entry's invoice, changed by `change`.
    fn with_invoice(mut e: Entry, change: impl FnOnce(&mut Invoice)) -> Entry {
        match &mut e.body {
            EntryBody::InvoiceIssued(issued) => change(&mut issued.invoice),
            other => panic!("{} is not an invoice", other.kind_name()),
        }
        e
    }

    const INV_1: &str = "INV-2026-000001";
    const INV_2: &str = "INV-2026-000002";

    #[test]
    fn honest_billing_documents_are_accepted_and_balance() {
        // Goal: two invoices (the second of zero, without postings, and voided), a
        // credit note and a payment on the first fold without a fault; their
        // transactions move the balances like any other, and the trial balance holds.
        let mut ledger = ledger();
        for e in [
            invoice("INV", 2026, 1, 10_000),
            invoice("INV", 2026, 2, 0),
            void(INV_2, 0),
            credit_note(1, INV_1, 3_000),
            payment("pay-1", &[INV_1], 7_000),
            // Another series, and another year, start again at 1.
            invoice("ACME", 2026, 1, 100),
            invoice("INV", 2027, 1, 100),
        ] {
            ledger.apply(&e).unwrap();
        }
        let balances = ledger.finish().unwrap();
        assert_eq!(balances.accounts[0].balance(), 10_000 - 3_000 + 7_000 + 200);
        assert_eq!(balances.accounts[1].balance(), 10_000 - 3_000 + 7_000 + 200);
        assert_eq!(
            (
                balances.transactions.standard,
                balances.transactions.reversal
            ),
            (6, 1)
        );
    }

    #[test]
    fn document_numbers_are_gapless_per_series_and_year() {
        // Goal: an invoice or credit note that is not the next of its series and year,
        // whose number is not SERIES-YYYY-NNNNNN of its fields, whose year is not that
        // of its issue day, or an invoice number issued twice, is named.
        let mut ledger = ledger();
        assert_eq!(
            ledger.apply(&invoice("INV", 2026, 2, 100)),
            Err(LedgerFault::DocumentSequenceOutOfOrder {
                field: "invoice.sequence".into(),
                number: INV_2.into(),
                series: "INV".into(),
                year: 2026,
                sequence: 2,
                expected: 1
            })
        );
        ledger.apply(&invoice("INV", 2026, 1, 100)).unwrap();
        assert!(matches!(
            ledger.apply(&invoice("INV", 2026, 1, 100)),
            Err(LedgerFault::DocumentSequenceOutOfOrder { expected: 2, .. })
        ));
        assert!(matches!(
            ledger.apply(&invoice("INV", 2026, 3, 100)),
            Err(LedgerFault::DocumentSequenceOutOfOrder { expected: 2, .. })
        ));
        assert_eq!(
            ledger.apply(&invoice_numbered("INV-2026-2", "INV", 2026, 2, 100)),
            Err(LedgerFault::DocumentNumberMismatch {
                field: "invoice.number".into(),
                number: "INV-2026-2".into(),
                expected: INV_2.into()
            })
        );
        // The millionth invoice of a series and year has seven digits.
        let mut big = self::ledger();
        big.billing.sequences.insert(("INV".into(), 2026), 999_999);
        big.apply(&invoice_numbered(
            "INV-2026-1000000",
            "INV",
            2026,
            1_000_000,
            1,
        ))
        .unwrap();
        let mut wrong_year = invoice("INV", 2025, 1, 100);
        if let EntryBody::InvoiceIssued(issued) = &mut wrong_year.body {
            issued.invoice.issued_on = Day::from_ymd(2026, 1, 2).unwrap();
        }
        assert_eq!(
            ledger.apply(&wrong_year),
            Err(LedgerFault::DocumentYearMismatch {
                field: "invoice.year".into(),
                number: "INV-2025-000001".into(),
                year: 2025,
                issued_on: "2026-01-02".into()
            })
        );
        // Issued twice under another series' counter: the number is taken.
        let mut again = self::ledger();
        again.apply(&invoice("INV", 2026, 1, 100)).unwrap();
        again.billing.sequences.clear();
        assert_eq!(
            again.apply(&invoice("INV", 2026, 1, 100)),
            Err(LedgerFault::InvoiceIssuedTwice {
                number: INV_1.into()
            })
        );
        // Credit notes: their own CN- series, gapless too.
        ledger.apply(&credit_note(1, INV_1, 10)).unwrap();
        assert!(matches!(
            ledger.apply(&credit_note(3, INV_1, 10)),
            Err(LedgerFault::DocumentSequenceOutOfOrder { ref field, expected: 2, .. })
                if field == "credit_note.sequence"
        ));
        let mut not_cn = credit_note(2, INV_1, 10);
        if let EntryBody::CreditNoteIssued(issued) = &mut not_cn.body {
            issued.credit_note.series = "INV".into();
        }
        assert_eq!(
            ledger.apply(&not_cn),
            Err(LedgerFault::CreditNoteSeriesMismatch {
                number: "CN-INV-2026-000002".into(),
                series: "INV".into(),
                expected: "CN-INV".into()
            })
        );
        ledger.apply(&credit_note(2, INV_1, 10)).unwrap();
    }

    #[test]
    fn billing_transactions_carry_their_documents_ids() {
        // Goal: an invoice, void, credit note or payment whose transaction id is not
        // invoice:NUMBER, void:NUMBER, credit_note:ID or payment:ID, or a void that
        // is not a reversal of invoice:NUMBER, is named; only an invoice and its void may
        // have no postings.
        let mismatch = |id: &str, expected: &str| LedgerFault::BillingTransactionIdMismatch {
            id: id.into(),
            expected: expected.into(),
        };
        let renamed = |e: Entry, id: &str| {
            let id = id.to_string();
            with_transaction(e, move |t| t.id = id)
        };
        let mut ledger = ledger();
        assert_eq!(
            ledger.apply(&renamed(invoice("INV", 2026, 1, 100), "inv-1")),
            Err(mismatch("inv-1", "invoice:INV-2026-000001"))
        );
        ledger.apply(&invoice("INV", 2026, 1, 100)).unwrap();
        assert_eq!(
            ledger.apply(&renamed(void(INV_1, 100), "void-1")),
            Err(mismatch("void-1", "void:INV-2026-000001"))
        );
        let standard = with_transaction(void(INV_1, 100), |t| t.mode = TransactionMode::Standard);
        assert_eq!(
            ledger.apply(&standard),
            Err(LedgerFault::VoidNotReversal {
                number: INV_1.into()
            })
        );
        let other = with_transaction(void(INV_1, 100), |t| {
            t.mode = TransactionMode::Reversal {
                reverses: "invoice:INV-2026-000009".into(),
            }
        });
        assert!(matches!(
            ledger.apply(&other),
            Err(LedgerFault::VoidNotReversal { .. })
        ));
        assert_eq!(
            ledger.apply(&renamed(credit_note(1, INV_1, 10), "cn-1")),
            Err(mismatch("cn-1", "credit_note:ID"))
        );
        assert_eq!(
            ledger.apply(&renamed(payment("pay-1", &[INV_1], 10), "pay-1")),
            Err(mismatch("pay-1", "payment:pay-1"))
        );
        // No postings: an invoice and its void may; a credit note or payment may not.
        assert_eq!(
            ledger.apply(&credit_note(1, INV_1, 0)),
            Err(LedgerFault::TooFewPostings { count: 0 })
        );
        assert_eq!(
            ledger.apply(&payment("pay-1", &[INV_1], 0)),
            Err(LedgerFault::TooFewPostings { count: 0 })
        );
        let one_leg = with_transaction(invoice("INV", 2026, 2, 100), |t| t.postings.truncate(1));
        assert_eq!(
            ledger.apply(&one_leg),
            Err(LedgerFault::TooFewPostings { count: 1 })
        );
    }

    #[test]
    fn voids_credit_notes_and_payments_name_an_issued_invoice_not_void() {
        // Goal: a void, a credit note or a payment allocation naming an invoice never
        // issued, or one already void, is named; a void happens once.
        let mut ledger = ledger();
        assert_eq!(
            ledger.apply(&void(INV_1, 100)),
            Err(LedgerFault::UnknownInvoice {
                field: "number".into(),
                number: INV_1.into()
            })
        );
        ledger.apply(&invoice("INV", 2026, 1, 100)).unwrap();
        ledger.apply(&void(INV_1, 100)).unwrap();
        assert_eq!(
            ledger.apply(&void(INV_1, 100)),
            Err(LedgerFault::InvoiceVoid {
                field: "number".into(),
                number: INV_1.into()
            })
        );
        assert_eq!(
            ledger.apply(&credit_note(1, INV_1, 10)),
            Err(LedgerFault::InvoiceVoid {
                field: "credit_note.invoice_number".into(),
                number: INV_1.into()
            })
        );
        assert_eq!(
            ledger.apply(&credit_note(1, INV_2, 10)),
            Err(LedgerFault::UnknownInvoice {
                field: "credit_note.invoice_number".into(),
                number: INV_2.into()
            })
        );
        ledger.apply(&invoice("INV", 2026, 2, 100)).unwrap();
        assert_eq!(
            ledger.apply(&payment("pay-1", &[INV_2, INV_1], 10)),
            Err(LedgerFault::InvoiceVoid {
                field: "payment.allocations[1].invoice_number".into(),
                number: INV_1.into()
            })
        );
        assert_eq!(
            ledger.apply(&payment("pay-1", &["INV-2026-000003"], 10)),
            Err(LedgerFault::UnknownInvoice {
                field: "payment.allocations[0].invoice_number".into(),
                number: "INV-2026-000003".into()
            })
        );
        ledger.apply(&payment("pay-1", &[INV_2], 10)).unwrap();
    }

    #[test]
    fn payment_ids_are_unique() {
        // Goal: a payment id recorded twice is named, before its transaction id is.
        let mut ledger = ledger();
        ledger.apply(&invoice("INV", 2026, 1, 100)).unwrap();
        ledger.apply(&payment("pay-1", &[INV_1], 10)).unwrap();
        assert_eq!(
            ledger.apply(&payment("pay-1", &[], 10)),
            Err(LedgerFault::PaymentExists {
                payment_id: "pay-1".into()
            })
        );
        ledger.apply(&payment("pay-2", &[], 10)).unwrap();
    }

    #[test]
    fn credit_notes_follow_their_invoices_series() {
        // Goal: a credit note's series is CN- and the series of the invoice it credits,
        // whatever other series the customer's invoices have; another CN- series is named.
        let mut ledger = ledger();
        ledger.apply(&invoice("INV", 2026, 1, 100)).unwrap();
        ledger.apply(&invoice("ACME", 2026, 1, 100)).unwrap();
        let acme_1 = "ACME-2026-000001";
        assert_eq!(
            ledger.apply(&credit_note_in("CN-INV", 1, acme_1, 10)),
            Err(LedgerFault::CreditNoteSeriesMismatch {
                number: "CN-INV-2026-000001".into(),
                series: "CN-INV".into(),
                expected: "CN-ACME".into()
            })
        );
        ledger
            .apply(&credit_note_in("CN-ACME", 1, acme_1, 10))
            .unwrap();
        ledger
            .apply(&credit_note_in("CN-INV", 1, INV_1, 10))
            .unwrap();
        // Each CN- series counts on its own.
        ledger
            .apply(&credit_note_in("CN-ACME", 2, acme_1, 10))
            .unwrap();
    }

    #[test]
    fn allocations_name_an_invoice_of_the_paying_customer() {
        // Goal: a payment allocated to another customer's invoice is named, at the
        // allocation's place; the customer's own invoices are accepted.
        let mut ledger = ledger();
        ledger.apply(&invoice("INV", 2026, 1, 100)).unwrap();
        let globex = with_invoice(invoice("INV", 2026, 2, 100), |i| {
            i.customer_id = "globex".into();
        });
        ledger.apply(&globex).unwrap();
        // `payment` pays as acme.
        assert_eq!(
            ledger.apply(&payment("pay-1", &[INV_1, INV_2], 10)),
            Err(LedgerFault::AllocationToOtherCustomer {
                index: 1,
                number: INV_2.into(),
                customer_id: "acme".into(),
                invoice_customer: "globex".into()
            })
        );
        ledger.apply(&payment("pay-1", &[INV_1], 10)).unwrap();
    }

    #[test]
    fn usage_is_read_before_the_invoice_within_its_window() {
        // Goal: an invoice whose usage was read at a journal length past its own seq, or
        // a line whose usage window is reversed or leaves the invoice's usage window, is
        // named; a length equal to the seq, windows of part or all of the invoice's, and
        // lines without usage are accepted.
        let (from, to) = (1_000, 2_000);
        let line = |usage: Option<(i64, i64)>| InvoiceLine {
            kind: "charge".into(),
            plan_code: "plan".into(),
            plan_version: 1,
            charge_code: "charge".into(),
            description: String::new(),
            start: Day(0),
            end: Day(1),
            quantity: Dec::ZERO,
            free_units: Dec::ZERO,
            billable_quantity: Dec::ZERO,
            tiers: Vec::new(),
            explanation: String::new(),
            amount: Dec::ZERO,
            discount: Dec::ZERO,
            taxes: Vec::new(),
            net: Dec::ZERO,
            total: Dec::ZERO,
            usage: usage.map(|(a, b)| UsageDigest::empty(a, b)),
        };
        let read = |sequence: u64, length: u64, windows: &[Option<(i64, i64)>]| {
            let lines: Vec<_> = windows.iter().map(|w| line(*w)).collect();
            with_invoice(invoice("INV", 2026, sequence, 100), |i| {
                (i.usage_from, i.usage_to) = (from, to);
                i.usage_journal_length = length;
                i.lines = lines;
            })
        };
        // `ledger()` holds seqs 0 to 3: the first invoice is seq 4.
        let mut ledger = ledger();
        ledger
            .apply(&read(1, 4, &[None, Some((from, to)), Some((1_500, to))]))
            .unwrap();
        ledger
            .apply(&read(2, 0, &[Some((from, 1_200)), Some((1_200, 1_200))]))
            .unwrap();
        assert_eq!(
            ledger.apply(&read(3, 7, &[])),
            Err(LedgerFault::UsageReadAfterInvoice { length: 7, seq: 6 })
        );
        for (window, line) in [
            ((999, to), 1),
            ((from, 2_001), 1),
            ((1_600, 1_500), 1),
            ((500, 800), 1),
        ] {
            let mut fresh = self::ledger();
            assert_eq!(
                fresh.apply(&read(1, 4, &[None, Some(window)])),
                Err(LedgerFault::UsageWindowOutsideInvoice {
                    line,
                    from: window.0,
                    to: window.1,
                    usage_from: from,
                    usage_to: to
                }),
                "{window:?}"
            );
        }
    }
}
