//! The Billing service (`proto/tally/v1/billing.proto`): billing profiles,
//! subscriptions, coupon grants, tax tables, billing runs, invoices, credit
//! notes, payments, customer credit and receivable ageing.
//!
//! Profiles, coupons and tax rules are the journal's own document types
//! ([`BillingProfile`], [`Coupon`](crate::Coupon), [`TaxRule`](crate::TaxRule)),
//! sent as they are; everything that comes back carries `Decimal` amounts
//! and [`Day`]s parsed strictly, as in rating: an amount that is not a plain
//! decimal, a day that is not `YYYY-MM-DD`, an unknown status or kind, or
//! figures that contradict each other (what an invoice still owes, an ageing
//! row's total, a run's summary) are an `InvalidResponse`, never a guess.
//!
//! Every write but [`Client::issue_credit_note`] is idempotent by its id or
//! its content, so these calls are retried after a lost answer too; a retry
//! answers `created: false`.
//!
//! ```no_run
//! use tally_client::{BillingRunRequest, Client, Day, Decimal, PaymentKind, PaymentRequest, Period};
//!
//! # async fn example(client: Client) -> Result<(), Box<dyn std::error::Error>> {
//! let october = Period { start: "2026-10-01".parse()?, end: "2026-11-01".parse()? };
//! let run = client
//!     .run_billing_with_progress(&BillingRunRequest::new(october), |progress| {
//!         eprint!("\r{}/{}", progress.done, progress.total);
//!     })
//!     .await?;
//! for invoice in &run.invoices {
//!     println!("{:?} {} {}", invoice.number, invoice.customer_id, invoice.total);
//! }
//! let received: Day = "2026-11-10".parse()?;
//! let payment = client
//!     .record_payment(&PaymentRequest::new(
//!         "pay-1", "acme", PaymentKind::Payment, Decimal::new(5000, 2), received,
//!     ))
//!     .await?;
//! println!("kept as credit: {}", payment.to_credit);
//! # Ok(())
//! # }
//! ```

pub(crate) mod convert;

use rust_decimal::Decimal;
use tally_proto::v1 as pb;
use tokio_stream::StreamExt;

use crate::client::{call_with, collect_pages, Client, RawBillingClient, Retry};
use crate::error::{ClientError, Result};
use crate::metering::TimestampNs;
use crate::rating::{Coupon, Day, Period, PlanKey, TaxRule};
use crate::types::Page;
use crate::PageRequest;

pub use tally_core::billing::{BillingProfile, PaymentKind};

/// A profile as set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSet {
    pub profile: BillingProfile,
    /// The `billing_profile_set` entry (the current one's when nothing changed).
    pub seq: u64,
    /// False when the profile was the current one: nothing was recorded.
    pub created: bool,
}

/// How a plan change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeTiming {
    /// An upgrade (the new plan's flat fees at least the old's) on the day
    /// given; a downgrade at the end of the billing period containing it.
    Auto,
    Immediate,
    PeriodEnd,
}

impl ChangeTiming {
    pub const ALL: [ChangeTiming; 3] = [
        ChangeTiming::Auto,
        ChangeTiming::Immediate,
        ChangeTiming::PeriodEnd,
    ];

    /// `auto`, `immediate` or `period_end`.
    pub fn name(self) -> &'static str {
        match self {
            ChangeTiming::Auto => "auto",
            ChangeTiming::Immediate => "immediate",
            ChangeTiming::PeriodEnd => "period_end",
        }
    }

    pub fn from_name(name: &str) -> Option<ChangeTiming> {
        ChangeTiming::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// A subscription started, changed or ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionResult {
    pub subscription_id: String,
    /// The day the change takes effect: the start, the new plan's first day,
    /// or the end.
    pub effective: Day,
    /// The `subscription_changed` entry.
    pub seq: u64,
    /// False for a retry of the subscription's last change.
    pub created: bool,
}

/// A plan version in force from a day on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSegment {
    pub from: Day,
    pub plan_code: String,
    pub plan_version: u32,
}

/// A subscription as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub subscription_id: String,
    pub customer_id: String,
    /// In date order; the first starts the subscription.
    pub segments: Vec<SubscriptionSegment>,
    /// The day after the last billed day, once it ends.
    pub end: Option<Day>,
    /// The last billing date with a live invoice.
    pub invoiced_through: Option<Day>,
}

/// A coupon granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponGrantResult {
    pub grant_id: String,
    pub seq: u64,
    pub created: bool,
}

/// A tax table published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxRulesVersion {
    pub version: u32,
    /// The `tax_rules_published` entry; 0 when nothing was recorded.
    pub seq: u64,
    /// False when the table was the current one.
    pub created: bool,
    pub rule_count: u32,
}

/// A billing run: the billing dates (starts, ends of billing periods,
/// mid-period plan changes, ends) in `(period.start, period.end]`, and the
/// starts on `period.start`, for some customers or every one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingRunRequest {
    pub period: Period,
    /// Empty: every customer with a subscription.
    pub customers: Vec<String>,
    /// Rate without recording anything.
    pub draft: bool,
}

impl BillingRunRequest {
    pub fn new(period: Period) -> Self {
        BillingRunRequest {
            period,
            customers: Vec::new(),
            draft: false,
        }
    }

    pub fn customer(mut self, customer: impl Into<String>) -> Self {
        self.customers.push(customer.into());
        self
    }

    pub fn draft(mut self, draft: bool) -> Self {
        self.draft = draft;
        self
    }
}

/// How far a run has got: invoices issued (or found issued) so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunProgress {
    pub done: u64,
    pub total: u64,
}

/// One invoice of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInvoice {
    /// `None` for a draft.
    pub number: Option<String>,
    pub customer_id: String,
    pub subscription_id: String,
    pub currency: String,
    /// As in [`Invoice`]: the start of the period it closes, and its billing
    /// date.
    pub period_start: Day,
    pub period_end: Day,
    pub subtotal: Decimal,
    pub discount: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
    /// The total less the prepaid credit drawn down; 0 for a net credit. A
    /// draft's credit is drawn only when it is issued: its total, or 0.
    pub amount_due: Decimal,
    /// False for an invoice issued before this run, and for a draft.
    pub created: bool,
    pub line_count: u32,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingRun {
    pub invoices: Vec<RunInvoice>,
    /// How many of them this run issued.
    pub created: u64,
    pub draft: bool,
    pub period: Period,
}

/// What became of an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceStatus {
    /// Nothing is owed on it, and something was.
    Paid,
    PartiallyPaid,
    Unpaid,
    Void,
}

impl InvoiceStatus {
    /// `paid`, `partially_paid`, `unpaid` or `void`.
    pub fn name(self) -> &'static str {
        match self {
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::PartiallyPaid => "partially_paid",
            InvoiceStatus::Unpaid => "unpaid",
            InvoiceStatus::Void => "void",
        }
    }
}

/// What an invoice line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceLineKind {
    /// One of the plan's charges.
    Charge,
    /// The true-up that brings the charges up to the plan's minimum.
    MinimumCommitment,
    /// A manual line.
    Adjustment,
    /// In-advance days invoiced before and unused since (a plan change or an
    /// end); its amounts are negative.
    Credit,
}

impl InvoiceLineKind {
    pub const ALL: [InvoiceLineKind; 4] = [
        InvoiceLineKind::Charge,
        InvoiceLineKind::MinimumCommitment,
        InvoiceLineKind::Adjustment,
        InvoiceLineKind::Credit,
    ];

    /// `charge`, `minimum_commitment`, `adjustment` or `credit`.
    pub fn name(self) -> &'static str {
        match self {
            InvoiceLineKind::Charge => "charge",
            InvoiceLineKind::MinimumCommitment => "minimum_commitment",
            InvoiceLineKind::Adjustment => "adjustment",
            InvoiceLineKind::Credit => "credit",
        }
    }

    pub fn from_name(name: &str) -> Option<InvoiceLineKind> {
        InvoiceLineKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

/// One tier of a graduated or volume line, as rated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLineTier {
    pub from: Decimal,
    /// `None`: without end.
    pub up_to: Option<Decimal>,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub flat_fee: Decimal,
    pub amount: Decimal,
}

/// One tax on one line (or credited with a credit note's line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLineTax {
    pub code: String,
    /// Percent: `19` is 19 %.
    pub rate: Decimal,
    pub amount: Decimal,
}

/// The usage a metered line was rated on: its events, in journal order,
/// chained `h_i = blake3(h_{i-1} ‖ event_hash_i)` from 32 zero bytes, over
/// the event timestamps in `[from, to)` (the line's days at the customer's
/// midnight), of the entries before the invoice's `usage_journal_length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageDigest {
    pub events: u64,
    pub digest: [u8; 32],
    pub from: TimestampNs,
    pub to: TimestampNs,
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    pub kind: InvoiceLineKind,
    pub plan_code: String,
    pub plan_version: u32,
    pub charge_code: String,
    pub description: String,
    /// The days the line bills, `[start, end)`.
    pub start: Day,
    pub end: Day,
    pub quantity: Decimal,
    pub free_units: Decimal,
    pub billable_quantity: Decimal,
    pub tiers: Vec<InvoiceLineTier>,
    /// How the amount came about, in words.
    pub explanation: String,
    /// Rounded, before discount.
    pub amount: Decimal,
    pub discount: Decimal,
    pub taxes: Vec<InvoiceLineTax>,
    /// Net revenue: after discount, less any inclusive tax.
    pub net: Decimal,
    /// What the customer pays for the line: net plus tax.
    pub total: Decimal,
    /// Metered lines only.
    pub usage: Option<UsageDigest>,
}

/// A coupon's part in an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponUse {
    pub grant_id: String,
    pub code: String,
    pub amount: Decimal,
}

/// One tax rule's total on an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceTaxTotal {
    pub code: String,
    pub rate: Decimal,
    /// Net revenue the rule taxed.
    pub base: Decimal,
    pub amount: Decimal,
}

/// An issued invoice and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// `SERIES-YYYY-NNNNNN`.
    pub number: String,
    pub series: String,
    pub year: i32,
    pub sequence: u64,
    pub customer_id: String,
    pub subscription_id: String,
    pub currency: String,
    /// The billing date is `period_end`: a subscription has at most one live
    /// invoice per billing date (its start, each end of a billing period, each
    /// mid-period plan change, its end). `period_start` is the start of the
    /// billing period the invoice closes (its usage is billed), or the billing
    /// date itself when it closes none. Each line has its own days.
    pub period_start: Day,
    pub period_end: Day,
    /// The usage window, nanoseconds since the epoch.
    pub usage_from: TimestampNs,
    pub usage_to: TimestampNs,
    /// The journal length the usage was read at: the lines' events are those
    /// of the entries before it, none after.
    pub usage_journal_length: u64,
    pub country: String,
    pub region: Option<String>,
    pub tax_id: String,
    pub issued_on: Day,
    pub due_on: Day,
    pub lines: Vec<InvoiceLine>,
    pub coupons: Vec<CouponUse>,
    pub taxes: Vec<InvoiceTaxTotal>,
    /// The lines' amounts before discount.
    pub subtotal: Decimal,
    pub discount: Decimal,
    pub tax: Decimal,
    /// `subtotal - discount + exclusive tax`.
    pub total: Decimal,
    /// Prepaid credit drawn down; negative when the total is (more was
    /// credited than charged): that much went to the customer's credit.
    pub credit_applied: Decimal,
    /// `total - credit_applied`.
    pub amount_due: Decimal,
    pub status: InvoiceStatus,
    /// Allocated by payments and applied credit.
    pub paid: Decimal,
    /// Credit notes' parts that reduced what is owed.
    pub credited: Decimal,
    /// What the customer still owes: `amount_due - paid - credited`, 0 when void.
    pub outstanding: Decimal,
    pub credit_notes: Vec<String>,
    pub payments: Vec<String>,
    pub void_reason: Option<String>,
    /// The `invoice_issued` entry.
    pub seq: u64,
}

/// An invoice voided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoidedInvoice {
    pub invoice: Invoice,
    /// The `invoice_voided` entry.
    pub seq: u64,
    /// False when it was void already.
    pub created: bool,
}

/// The form of a rendered invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RenderFormat {
    /// A self-contained HTML page.
    Html,
    /// The invoice as the journal holds it and what became of it.
    Json,
}

impl RenderFormat {
    pub fn name(self) -> &'static str {
        match self {
            RenderFormat::Html => "html",
            RenderFormat::Json => "json",
        }
    }

    pub fn from_name(name: &str) -> Option<RenderFormat> {
        [RenderFormat::Html, RenderFormat::Json]
            .into_iter()
            .find(|format| format.name() == name)
    }
}

/// An invoice as a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedInvoice {
    pub invoice_number: String,
    pub format: RenderFormat,
    pub content_type: String,
    pub content: String,
}

/// A part of one invoice line to credit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditLine {
    /// Index into the invoice's lines (0 is the first).
    pub line: u32,
    /// The total (tax included) to credit.
    pub amount: Decimal,
}

/// A credit note to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditNoteRequest {
    /// The caller's id: a retry with the same request answers the same
    /// credit note (`created: false`).
    pub credit_note_id: String,
    pub invoice_number: String,
    pub reason: String,
    /// Empty: everything left to credit on the invoice.
    pub lines: Vec<CreditLine>,
}

impl CreditNoteRequest {
    pub fn new(
        credit_note_id: impl Into<String>,
        invoice_number: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        CreditNoteRequest {
            credit_note_id: credit_note_id.into(),
            invoice_number: invoice_number.into(),
            reason: reason.into(),
            lines: Vec::new(),
        }
    }

    pub fn line(mut self, line: u32, amount: Decimal) -> Self {
        self.lines.push(CreditLine { line, amount });
        self
    }
}

/// One line of a credit note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditNoteLine {
    pub line: u32,
    /// Net revenue credited, and the tax credited with it per rule.
    pub net: Decimal,
    pub taxes: Vec<InvoiceLineTax>,
    pub total: Decimal,
}

/// A credit note issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditNote {
    /// `CN-SERIES-YYYY-NNNNNN`.
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
    pub total: Decimal,
    /// The part that reduced what is owed on the invoice.
    pub to_invoice: Decimal,
    /// The part already paid, returned as customer credit.
    pub to_credit: Decimal,
    /// False when a retry found it issued under its id.
    pub created: bool,
}

/// A part of a payment settling one invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub invoice_number: String,
    pub amount: Decimal,
}

/// A payment, refund or credit movement to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    /// The caller's id: a retry with the same content is the same payment.
    pub payment_id: String,
    pub customer_id: String,
    pub kind: PaymentKind,
    pub amount: Decimal,
    pub received_on: Day,
    pub reference: String,
    /// `None`: the oldest invoices first. `Some(empty)`: kept whole as
    /// customer credit.
    pub allocations: Option<Vec<Allocation>>,
}

impl PaymentRequest {
    pub fn new(
        payment_id: impl Into<String>,
        customer_id: impl Into<String>,
        kind: PaymentKind,
        amount: Decimal,
        received_on: Day,
    ) -> Self {
        PaymentRequest {
            payment_id: payment_id.into(),
            customer_id: customer_id.into(),
            kind,
            amount,
            received_on,
            reference: String::new(),
            allocations: None,
        }
    }

    pub fn reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = reference.into();
        self
    }

    /// Settles `amount` of an invoice (instead of the oldest first).
    pub fn allocate(mut self, invoice_number: impl Into<String>, amount: Decimal) -> Self {
        self.allocations
            .get_or_insert_with(Vec::new)
            .push(Allocation {
                invoice_number: invoice_number.into(),
                amount,
            });
        self
    }

    /// Keeps the whole payment as customer credit.
    pub fn unallocated(mut self) -> Self {
        self.allocations = Some(Vec::new());
        self
    }
}

/// A payment as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub payment_id: String,
    pub customer_id: String,
    pub kind: PaymentKind,
    pub currency: String,
    /// For applied credit: what could be applied.
    pub amount: Decimal,
    pub received_on: Day,
    pub reference: String,
    pub allocations: Vec<Allocation>,
    /// The part kept as customer credit.
    pub to_credit: Decimal,
    /// False for a retry of the same payment.
    pub created: bool,
}

/// A customer's credit: prepaid, overpaid or credited, not yet used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerCredit {
    pub customer_id: String,
    pub currency: String,
    pub amount: Decimal,
}

/// The ageing buckets' names, in the order of [`AgeingRow::buckets`].
pub const AGEING_BUCKETS: [&str; 5] = ["current", "1-30", "31-60", "61-90", "90+"];

/// What one customer owes, by days past the invoices' due dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeingRow {
    pub customer_id: String,
    pub currency: String,
    /// Not yet due, 1–30, 31–60, 61–90 and over 90 days past due.
    pub buckets: [Decimal; 5],
    pub total: Decimal,
}

/// Receivables on a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivableAgeing {
    pub as_of: Day,
    /// Customers who owe something, in id order.
    pub rows: Vec<AgeingRow>,
}

impl Client {
    /// The generated Billing client on the same connection (api key
    /// included), for requests this façade would not send.
    pub fn raw_billing(&self) -> RawBillingClient {
        self.billing.clone()
    }

    /// Sends one unary Billing call with the deadline and retry policy.
    async fn billing_call<Req, Resp, F, Fut>(
        &self,
        retry: Retry,
        request: Req,
        send: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(RawBillingClient, tonic::Request<Req>) -> Fut,
        Fut:
            std::future::Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        call_with(&self.billing, &self.policy, retry, request, send).await
    }

    /// Sets a customer's billing profile. The current profile again records
    /// nothing (`created: false`), so a lost answer is retried too.
    pub async fn set_billing_profile(&self, profile: &BillingProfile) -> Result<ProfileSet> {
        let request = pb::SetBillingProfileRequest {
            profile: Some(convert::profile_to_proto(profile)),
        };
        let answer = self
            .billing_call(
                Retry::Deduplicated,
                request,
                |mut raw, request| async move { raw.set_billing_profile(request).await },
            )
            .await?;
        let set = convert::profile_set(answer)?;
        convert::check_same(
            "profile.customer_id",
            &profile.customer_id,
            &set.profile.customer_id,
        )?;
        Ok(set)
    }

    /// A customer's current billing profile.
    pub async fn billing_profile(&self, customer_id: &str) -> Result<BillingProfile> {
        let request = pb::GetBillingProfileRequest {
            customer_id: customer_id.to_string(),
        };
        let answer = self
            .billing_call(Retry::Safe, request, |mut raw, request| async move {
                raw.get_billing_profile(request).await
            })
            .await?;
        let profile = convert::profile(answer);
        convert::check_same("customer_id", customer_id, &profile.customer_id)?;
        Ok(profile)
    }

    /// A subscription: its plan versions from their days, its end, and the
    /// last billing date invoiced.
    pub async fn subscription(&self, subscription_id: &str) -> Result<Subscription> {
        let request = pb::GetSubscriptionRequest {
            subscription_id: subscription_id.to_string(),
        };
        let answer = self
            .billing_call(Retry::Safe, request, |mut raw, request| async move {
                raw.get_subscription(request).await
            })
            .await?;
        let subscription = convert::subscription(answer)?;
        convert::check_same(
            "subscription_id",
            subscription_id,
            &subscription.subscription_id,
        )?;
        Ok(subscription)
    }

    /// A customer's subscriptions, in id order.
    pub async fn subscriptions(&self, customer_id: &str) -> Result<Vec<Subscription>> {
        let request = pb::ListSubscriptionsRequest {
            customer_id: customer_id.to_string(),
        };
        let answer = self
            .billing_call(Retry::Safe, request, |mut raw, request| async move {
                raw.list_subscriptions(request).await
            })
            .await?;
        answer
            .subscriptions
            .into_iter()
            .map(convert::subscription)
            .collect()
    }

    /// Starts a subscription on a plan version from `start` (its first billed
    /// day). The customer needs a profile in the plan's currency.
    pub async fn subscribe(
        &self,
        subscription_id: &str,
        customer_id: &str,
        plan: &PlanKey,
        start: Day,
    ) -> Result<SubscriptionResult> {
        let request = pb::SubscribeRequest {
            subscription_id: subscription_id.to_string(),
            customer_id: customer_id.to_string(),
            plan_code: plan.code.clone(),
            plan_version: plan.version.unwrap_or(0),
            start: start.to_string(),
        };
        let answer = self
            .billing_call(
                Retry::Deduplicated,
                request,
                |mut raw, request| async move { raw.subscribe(request).await },
            )
            .await?;
        convert::subscription_result(subscription_id, answer)
    }

    /// Moves a subscription to another plan version; the answer names the day
    /// the change takes effect (a downgrade waits for the period's end under
    /// [`ChangeTiming::Auto`]).
    pub async fn change_plan(
        &self,
        subscription_id: &str,
        plan: &PlanKey,
        on: Day,
        timing: ChangeTiming,
    ) -> Result<SubscriptionResult> {
        let request = pb::ChangePlanRequest {
            subscription_id: subscription_id.to_string(),
            plan_code: plan.code.clone(),
            plan_version: plan.version.unwrap_or(0),
            on: on.to_string(),
            timing: convert::timing_to_proto(timing) as i32,
        };
        let answer = self
            .billing_call(
                Retry::Deduplicated,
                request,
                |mut raw, request| async move { raw.change_plan(request).await },
            )
            .await?;
        convert::subscription_result(subscription_id, answer)
    }

    /// Ends a subscription: `end` is the first day no longer billed.
    pub async fn end_subscription(
        &self,
        subscription_id: &str,
        end: Day,
    ) -> Result<SubscriptionResult> {
        let request = pb::EndSubscriptionRequest {
            subscription_id: subscription_id.to_string(),
            end: end.to_string(),
        };
        let answer = self
            .billing_call(
                Retry::Deduplicated,
                request,
                |mut raw, request| async move { raw.end_subscription(request).await },
            )
            .await?;
        convert::subscription_result(subscription_id, answer)
    }

    /// Grants a customer a coupon for invoices of periods ending on or after
    /// `from`. A retry with the same grant id and content is the same grant.
    pub async fn grant_coupon(
        &self,
        grant_id: &str,
        customer_id: &str,
        coupon: &Coupon,
        from: Day,
    ) -> Result<CouponGrantResult> {
        let request = pb::GrantCouponRequest {
            grant_id: grant_id.to_string(),
            customer_id: customer_id.to_string(),
            coupon_json: convert::document_json(coupon, "coupon")?,
            from: from.to_string(),
        };
        let answer = self
            .billing_call(
                Retry::Deduplicated,
                request,
                |mut raw, request| async move { raw.grant_coupon(request).await },
            )
            .await?;
        convert::check_same("grant_id", grant_id, &answer.grant_id)?;
        Ok(CouponGrantResult {
            grant_id: answer.grant_id,
            seq: answer.seq,
            created: answer.created,
        })
    }

    /// Publishes the ledger's tax table (each version replaces the whole
    /// table). The current table again records nothing.
    pub async fn publish_tax_rules(&self, rules: &[TaxRule]) -> Result<TaxRulesVersion> {
        let request = pb::PublishTaxRulesRequest {
            rules_json: convert::tax_table_json(rules)?,
        };
        let answer = self
            .billing_call(
                Retry::Deduplicated,
                request,
                |mut raw, request| async move { raw.publish_tax_rules(request).await },
            )
            .await?;
        if answer.version == 0 {
            return Err(ClientError::invalid_response("version: 0 is not a version"));
        }
        Ok(TaxRulesVersion {
            version: answer.version,
            seq: answer.seq,
            created: answer.created,
            rule_count: answer.rule_count,
        })
    }

    /// Runs billing (see [`Client::run_billing_with_progress`]) without
    /// watching its progress.
    pub async fn run_billing(&self, request: &BillingRunRequest) -> Result<BillingRun> {
        self.run_billing_with_progress(request, |_| {}).await
    }

    /// Bills the subscriptions' billing dates in the request's days: the
    /// usage of each period an invoice closes is closed and the invoice issued
    /// (a date invoiced before answers with its invoice, `created: false`;
    /// dates after today are not issued); a draft rates every date and
    /// records nothing. `progress` hears how many
    /// invoices are issued as the run goes.
    ///
    /// The deadline bounds opening the run, not the run. A run whose stream
    /// breaks may have issued some invoices: running it again is safe and
    /// finishes it.
    pub async fn run_billing_with_progress(
        &self,
        request: &BillingRunRequest,
        mut progress: impl FnMut(RunProgress),
    ) -> Result<BillingRun> {
        let wire = pb::RunBillingRequest {
            customers: request.customers.clone(),
            from: request.period.start.to_string(),
            to: request.period.end.to_string(),
            period: String::new(),
            draft: request.draft,
        };
        let mut stream = self
            .billing_call(Retry::Safe, wire, |mut raw, request| async move {
                raw.run_billing(request).await
            })
            .await?;
        let mut invoices = Vec::new();
        while let Some(event) = stream.next().await {
            let event = event?;
            match event.event {
                Some(pb::run_billing_event::Event::Progress(step)) => progress(RunProgress {
                    done: step.done,
                    total: step.total,
                }),
                Some(pb::run_billing_event::Event::Invoice(invoice)) => {
                    let field = format!("invoices[{}]", invoices.len());
                    invoices.push(convert::run_invoice(&field, invoice, request.draft)?);
                }
                Some(pb::run_billing_event::Event::Summary(summary)) => {
                    return convert::billing_run(summary, invoices, request);
                }
                None => {
                    return Err(ClientError::invalid_response(
                        "a billing run event without content",
                    ))
                }
            }
        }
        Err(ClientError::invalid_response(
            "the billing run's stream ended before its summary: run it again to finish",
        ))
    }

    /// One invoice with what became of it.
    pub async fn invoice(&self, number: &str) -> Result<Invoice> {
        let request = pb::GetInvoiceRequest {
            invoice_number: number.to_string(),
        };
        let answer = self
            .billing_call(Retry::Safe, request, |mut raw, request| async move {
                raw.get_invoice(request).await
            })
            .await?;
        let invoice = convert::invoice("invoice", answer)?;
        convert::check_same("invoice.number", number, &invoice.number)?;
        Ok(invoice)
    }

    /// A page of invoices in issue order, a customer's (`Some`) or everyone's.
    pub async fn list_invoices(
        &self,
        customer_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Invoice>> {
        let request = pb::ListInvoicesRequest {
            customer_id: customer_id.unwrap_or_default().to_string(),
            page_size: page.page_size,
            page_token: page.page_token.unwrap_or_default(),
        };
        let answer = self
            .billing_call(Retry::Safe, request, |mut raw, request| async move {
                raw.list_invoices(request).await
            })
            .await?;
        let items = answer
            .invoices
            .into_iter()
            .enumerate()
            .map(|(position, invoice)| convert::invoice(&format!("invoices[{position}]"), invoice))
            .collect::<Result<Vec<_>>>()?;
        if let Some(customer) = customer_id {
            for (position, invoice) in items.iter().enumerate() {
                convert::check_same(
                    &format!("invoices[{position}].customer_id"),
                    customer,
                    &invoice.customer_id,
                )?;
            }
        }
        Ok(Page {
            items,
            next_page_token: (!answer.next_page_token.is_empty()).then_some(answer.next_page_token),
        })
    }

    /// Every invoice in issue order (a customer's, or everyone's), reading all
    /// pages.
    pub async fn list_all_invoices(&self, customer_id: Option<&str>) -> Result<Vec<Invoice>> {
        collect_pages(|page| self.list_invoices(customer_id, page)).await
    }

    /// An invoice as a document: a self-contained HTML page, or JSON.
    pub async fn render_invoice(
        &self,
        number: &str,
        format: RenderFormat,
    ) -> Result<RenderedInvoice> {
        let request = pb::RenderInvoiceRequest {
            invoice_number: number.to_string(),
            format: convert::format_to_proto(format) as i32,
        };
        let answer = self
            .billing_call(Retry::Safe, request, |mut raw, request| async move {
                raw.render_invoice(request).await
            })
            .await?;
        let rendered = convert::rendered(answer)?;
        convert::check_same("invoice_number", number, &rendered.invoice_number)?;
        if rendered.format != format {
            return Err(ClientError::invalid_response(format!(
                "format: {}, but {} was asked for",
                rendered.format.name(),
                format.name()
            )));
        }
        Ok(rendered)
    }

    /// Voids an invoice nothing was paid or credited on; a void invoice again
    /// answers `created: false`.
    pub async fn void_invoice(&self, number: &str, reason: &str) -> Result<VoidedInvoice> {
        let request = pb::VoidInvoiceRequest {
            invoice_number: number.to_string(),
            reason: reason.to_string(),
        };
        let answer = self
            .billing_call(
                Retry::Deduplicated,
                request,
                |mut raw, request| async move { raw.void_invoice(request).await },
            )
            .await?;
        let invoice = answer
            .invoice
            .ok_or_else(|| ClientError::invalid_response("invoice: missing"))?;
        let invoice = convert::invoice("invoice", invoice)?;
        convert::check_same("invoice.number", number, &invoice.number)?;
        Ok(VoidedInvoice {
            invoice,
            seq: answer.seq,
            created: answer.created,
        })
    }

    /// Issues a credit note. Idempotent by its id: a retry with the same
    /// request answers the same credit note with `created: false`, so a lost
    /// answer is retried too.
    pub async fn issue_credit_note(&self, request: &CreditNoteRequest) -> Result<CreditNote> {
        let wire = convert::credit_note_request(request);
        let answer = self
            .billing_call(Retry::Deduplicated, wire, |mut raw, request| async move {
                raw.issue_credit_note(request).await
            })
            .await?;
        let note = convert::credit_note(answer)?;
        convert::check_same(
            "invoice_number",
            &request.invoice_number,
            &note.invoice_number,
        )?;
        Ok(note)
    }

    /// Records a payment, refund, purchase or grant of credit, or applied
    /// credit. A retry with the same id and content answers the same payment
    /// with `created: false`.
    pub async fn record_payment(&self, request: &PaymentRequest) -> Result<Payment> {
        let wire = convert::payment_request(request);
        let answer = self
            .billing_call(Retry::Deduplicated, wire, |mut raw, request| async move {
                raw.record_payment(request).await
            })
            .await?;
        let payment = convert::payment(answer)?;
        convert::check_same("payment_id", &request.payment_id, &payment.payment_id)?;
        Ok(payment)
    }

    /// A customer's unused credit.
    pub async fn customer_credit(&self, customer_id: &str) -> Result<CustomerCredit> {
        let request = pb::GetCustomerCreditRequest {
            customer_id: customer_id.to_string(),
        };
        let answer = self
            .billing_call(Retry::Safe, request, |mut raw, request| async move {
                raw.get_customer_credit(request).await
            })
            .await?;
        convert::check_same("customer_id", customer_id, &answer.customer_id)?;
        Ok(CustomerCredit {
            amount: convert::decimal("amount", &answer.amount)?,
            customer_id: answer.customer_id,
            currency: answer.currency,
        })
    }

    /// What customers still owe on `as_of` (`None`: today, UTC), by days past
    /// due.
    pub async fn receivable_ageing(&self, as_of: Option<Day>) -> Result<ReceivableAgeing> {
        let request = pb::ReceivableAgeingRequest {
            as_of: as_of.map(|day| day.to_string()).unwrap_or_default(),
        };
        let answer = self
            .billing_call(Retry::Safe, request, |mut raw, request| async move {
                raw.receivable_ageing(request).await
            })
            .await?;
        let ageing = convert::ageing(answer)?;
        if let Some(asked) = as_of.filter(|asked| *asked != ageing.as_of) {
            return Err(ClientError::invalid_response(format!(
                "as_of: {}, but {asked} was asked for",
                ageing.as_of
            )));
        }
        Ok(ageing)
    }
}
