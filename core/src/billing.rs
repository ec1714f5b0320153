//! Invoicing and payments as journal data.
//!
//! Every billing document is an entry, and every one that moves money
//! carries the one [`TransactionRecorded`] that moves it: an invoice *is* its
//! journal transaction (receivable debited, revenue per charge and tax per
//! rule credited, discounts debited to a contra-revenue account, prepaid
//! credit drawn down), so balances, the trial balance and an auditor's
//! re-derivation see billing exactly as they see any other transfer.
//!
//! The documents:
//! - [`BillingProfile`]: a customer's currency, jurisdiction, tax id,
//!   timezone, invoice series and payment terms (each setting a new version);
//! - [`SubscriptionChanged`]: a subscription started, moved to another plan
//!   version, or ended;
//! - [`CouponGranted`] and the ledger-wide [`TaxRulesPublished`] table;
//! - [`InvoiceIssued`], [`InvoiceVoided`], [`CreditNoteIssued`];
//! - [`PaymentRecorded`]: a payment (allocated to invoices, the rest kept as
//!   customer credit), a refund, a purchase or grant of prepaid credit, or
//!   customer credit applied to invoices.
//!
//! Amounts in documents are [`Dec`] at the currency's scale; the postings
//! carry the same amounts in minor units.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::calendar::Day;
use crate::decimal::Dec;
use crate::entry::{Digest, TransactionRecorded};
use crate::plan::{Coupon, TaxRule};

/// A customer's billing settings. Each `billing_profile_set` entry replaces
/// the customer's previous profile from then on; invoices keep the values
/// they were issued with.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct BillingProfile {
    pub customer_id: String,
    /// Every invoice of the customer is in this currency; it cannot change
    /// once an invoice was issued.
    pub currency: String,
    /// ISO 3166-1 alpha-2 (`DE`); selects the tax rules.
    pub country: String,
    /// A subdivision (`CA-QC`), if the customer's taxes depend on it.
    pub region: Option<String>,
    /// The customer's tax id, printed on invoices; may be empty.
    pub tax_id: String,
    /// An IANA zone (`Europe/Berlin`): the customer's billing days start at
    /// its midnight.
    pub timezone: String,
    /// The invoice series; numbers are `SERIES-YYYY-NNNNNN`, gapless per
    /// series and year.
    pub invoice_series: String,
    /// Days from an invoice's issue to its due date.
    pub payment_terms_days: u32,
}

/// One change of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct SubscriptionChanged {
    pub subscription_id: String,
    pub customer_id: String,
    pub change: SubscriptionChange,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SubscriptionChange {
    /// The subscription starts on `start` (its first billed day) on a plan
    /// version; its billing periods are the plan's interval.
    Started {
        plan_code: String,
        plan_version: u32,
        start: Day,
    },
    /// From `effective` on, the subscription is on another plan version: the
    /// days before it are billed on the old one, the days from it on the new.
    PlanChanged {
        plan_code: String,
        plan_version: u32,
        effective: Day,
    },
    /// The subscription's last billed day is the day before `end`.
    Ended { end: Day },
}

/// A coupon granted to a customer, applying to invoices of periods that end
/// on or after `from`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct CouponGranted {
    pub grant_id: String,
    pub customer_id: String,
    pub coupon: Coupon,
    pub from: Day,
}

/// The ledger's tax rules: each version replaces the whole table.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct TaxRulesPublished {
    pub version: u32,
    pub rules: Vec<TaxRule>,
}

/// What the usage a line was rated on is: the events, in journal order,
/// that the line's charge selected (meter, customer, group, window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct UsageDigest {
    pub events: u64,
    /// `h_0` = 32 zero bytes, `h_i = blake3(h_{i-1} ‖ event_hash_i)`; this
    /// is `h_events`. An auditor recomputes it from the exported journal.
    #[serde(with = "crate::entry::hex_bytes")]
    pub digest: Digest,
    /// The window of event timestamps the line read, `[from, to)` in
    /// nanoseconds: its days at the customer's midnight (no zone data needed
    /// to recompute it).
    pub from: i64,
    pub to: i64,
}

impl UsageDigest {
    /// No events yet over `[from, to)`.
    pub fn empty(from: i64, to: i64) -> UsageDigest {
        UsageDigest {
            events: 0,
            digest: [0; 32],
            from,
            to,
        }
    }

    /// Folds one more event (its canonical hash) into the digest.
    pub fn add(&mut self, event_hash: &Digest) {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.digest);
        hasher.update(event_hash);
        self.digest = *hasher.finalize().as_bytes();
        self.events += 1;
    }
}

/// One tier of a graduated or volume line, as rated.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct LineTier {
    pub from: Dec,
    pub up_to: Option<Dec>,
    pub quantity: Dec,
    pub unit_price: Dec,
    pub flat_fee: Dec,
    pub amount: Dec,
}

/// One tax on a line.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct LineTaxAmount {
    pub code: String,
    pub rate: Dec,
    pub amount: Dec,
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// `charge`, `minimum_commitment`, `adjustment`, or `credit`: in-advance
    /// days invoiced before and unused since (a plan change or an end), its
    /// amounts negative.
    pub kind: String,
    pub plan_code: String,
    pub plan_version: u32,
    pub charge_code: String,
    pub description: String,
    /// The days this line bills: the period, or the part of it the plan
    /// version was in force.
    pub start: Day,
    pub end: Day,
    pub quantity: Dec,
    pub free_units: Dec,
    pub billable_quantity: Dec,
    pub tiers: Vec<LineTier>,
    /// How the amount came about, in words (packages, percentages,
    /// proration, rounding).
    pub explanation: String,
    /// Rounded, before discount.
    pub amount: Dec,
    pub discount: Dec,
    pub taxes: Vec<LineTaxAmount>,
    /// Net revenue of the line: after discount, less any inclusive tax.
    pub net: Dec,
    /// What the customer pays for the line: net plus tax.
    pub total: Dec,
    /// The usage rated, for a metered line.
    pub usage: Option<UsageDigest>,
}

/// A coupon's part in an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct CouponUse {
    pub grant_id: String,
    pub code: String,
    pub amount: Dec,
}

/// One tax rule's total on an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct TaxTotal {
    pub code: String,
    pub rate: Dec,
    /// Net revenue the rule taxed.
    pub base: Dec,
    pub amount: Dec,
}

/// An issued invoice.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Invoice {
    /// `SERIES-YYYY-NNNNNN`.
    pub number: String,
    pub series: String,
    pub year: i32,
    /// 1, 2, ... per series and year, without gaps.
    pub sequence: u64,
    pub customer_id: String,
    pub subscription_id: String,
    pub currency: String,
    /// The billing date is `period_end`: a subscription has at most one
    /// invoice per billing date (its start, each end of a billing period,
    /// each mid-period plan change, its end). `period_start` is the start of
    /// the billing period the invoice closes (its usage is billed), or the
    /// billing date itself if it closes none. Each line has its own days.
    pub period_start: Day,
    pub period_end: Day,
    /// The usage window, in nanoseconds: the period's days at the customer's
    /// midnight.
    pub usage_from: i64,
    pub usage_to: i64,
    /// The journal length the usage was read at: the lines' events are those
    /// of the entries before it (late ones included), none after.
    pub usage_journal_length: u64,
    /// The profile as issued.
    pub country: String,
    pub region: Option<String>,
    pub tax_id: String,
    pub issued_on: Day,
    pub due_on: Day,
    pub lines: Vec<InvoiceLine>,
    pub coupons: Vec<CouponUse>,
    pub taxes: Vec<TaxTotal>,
    /// The lines' amounts before discount.
    pub subtotal: Dec,
    pub discount: Dec,
    pub tax: Dec,
    /// `subtotal - discount + exclusive tax`.
    pub total: Dec,
    /// Prepaid credit drawn down; negative when the invoice's total is (more
    /// was credited than charged): that much is given to the customer's
    /// credit, and nothing is due.
    pub credit_applied: Dec,
    /// `total - credit_applied`: what the receivable is debited.
    pub amount_due: Dec,
}

/// An invoice issued, with its postings.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct InvoiceIssued {
    pub invoice: Invoice,
    /// Id `invoice:NUMBER`; empty postings for an invoice of zero.
    pub transaction: TransactionRecorded,
}

/// An invoice voided: its postings reversed. Only an invoice nothing was
/// paid or credited on can be voided; later corrections are credit notes.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct InvoiceVoided {
    pub number: String,
    pub reason: String,
    /// Id `void:NUMBER`, the invoice's postings with sides swapped.
    pub transaction: TransactionRecorded,
}

/// A part of one invoice line credited.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct CreditNoteLine {
    /// Index into the invoice's lines.
    pub line: u32,
    /// Net revenue credited.
    pub net: Dec,
    /// Tax credited with it, per rule.
    pub taxes: Vec<LineTaxAmount>,
    pub total: Dec,
}

/// A credit note against an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct CreditNote {
    /// `CN-SERIES-YYYY-NNNNNN`, gapless like invoices.
    pub number: String,
    pub series: String,
    pub year: i32,
    pub sequence: u64,
    pub invoice_number: String,
    pub customer_id: String,
    pub currency: String,
    pub issued_on: Day,
    pub reason: String,
    pub lines: Vec<CreditNoteLine>,
    pub total: Dec,
    /// The part that reduces what is owed on the invoice.
    pub to_invoice: Dec,
    /// The part already paid, returned as customer credit.
    pub to_credit: Dec,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct CreditNoteIssued {
    pub credit_note: CreditNote,
    /// Id `credit_note:NUMBER`.
    pub transaction: TransactionRecorded,
}

/// What a customer payment entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    /// Money received: allocated to invoices, the rest kept as credit.
    Payment,
    /// Money returned from the customer's credit.
    Refund,
    /// Prepaid credit bought (money received, all kept as credit).
    CreditPurchase,
    /// Prepaid credit given (a promotional expense, no money received).
    CreditGrant,
    /// The customer's credit applied to invoices.
    CreditApplied,
}

impl PaymentKind {
    pub fn name(self) -> &'static str {
        match self {
            PaymentKind::Payment => "payment",
            PaymentKind::Refund => "refund",
            PaymentKind::CreditPurchase => "credit_purchase",
            PaymentKind::CreditGrant => "credit_grant",
            PaymentKind::CreditApplied => "credit_applied",
        }
    }

    pub fn from_name(name: &str) -> Option<PaymentKind> {
        [
            PaymentKind::Payment,
            PaymentKind::Refund,
            PaymentKind::CreditPurchase,
            PaymentKind::CreditGrant,
            PaymentKind::CreditApplied,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }
}

/// A part of a payment (or of applied credit) settling one invoice.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Allocation {
    pub invoice_number: String,
    pub amount: Dec,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Payment {
    /// The caller's id: a retry with the same content is the same payment.
    pub payment_id: String,
    pub customer_id: String,
    pub kind: PaymentKind,
    pub currency: String,
    pub amount: Dec,
    pub received_on: Day,
    /// The payment's reference (bank transfer id, card charge id, ...).
    pub reference: String,
    pub allocations: Vec<Allocation>,
    /// The part kept as customer credit (a payment's or purchase's
    /// remainder); for a refund or applied credit, zero.
    pub to_credit: Dec,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct PaymentRecorded {
    pub payment: Payment,
    /// Id `payment:PAYMENT_ID`.
    pub transaction: TransactionRecorded,
}

/// `SERIES-YYYY-NNNNNN`.
pub fn document_number(series: &str, year: i32, sequence: u64) -> String {
    format!("{series}-{year:04}-{sequence:06}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_zero_padded() {
        assert_eq!(document_number("INV", 2026, 1), "INV-2026-000001");
        assert_eq!(
            document_number("CN-INV", 2026, 1234567),
            "CN-INV-2026-1234567"
        );
    }

    #[test]
    fn usage_digest_chains_in_order() {
        // Goal: the digest depends on every event and on their order.
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let mut ab = UsageDigest::empty(0, 1);
        ab.add(&a);
        ab.add(&b);
        let mut ba = UsageDigest::empty(0, 1);
        ba.add(&b);
        ba.add(&a);
        assert_eq!(ab.events, 2);
        assert_ne!(ab.digest, ba.digest);
        let mut expected = blake3::Hasher::new();
        expected.update(&[0u8; 32]);
        expected.update(&a);
        let h1 = *expected.finalize().as_bytes();
        let mut expected = blake3::Hasher::new();
        expected.update(&h1);
        expected.update(&b);
        assert_eq!(ab.digest, *expected.finalize().as_bytes());
    }
}
