//! The `Engine`'s billing calls: checks that need no ledger state on the
//! caller's task, then the writer (`record`), then views from the read model.

use super::book::{InvoiceState, InvoiceStatus};
use super::record::{CreditNoteRequest, IssueOutcome, PaymentRequest};
use crate::engine::Engine;
use crate::error::{Error, LedgerError, Result, StoreError};
use crate::writer::{BillingRequest, Request};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use tally_core::billing::{
    BillingProfile, CouponGranted, CreditNote, Invoice, Payment, SubscriptionChange,
    SubscriptionChanged,
};
use tally_core::calendar::Day;
use tally_core::error_code::ErrorCode;
use tally_core::meter::quoted;
use tally_core::plan::{Coupon, Pricing, TaxRule};

/// How a plan change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeTiming {
    /// An upgrade (the new plan's flat fees at least the old's) on the day
    /// given; a downgrade at the end of the billing period containing it.
    Auto,
    Immediate,
    PeriodEnd,
}

/// An invoice and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceView {
    pub invoice: Invoice,
    pub status: InvoiceStatus,
    pub paid: Decimal,
    pub credited: Decimal,
    pub outstanding: Decimal,
    pub credit_notes: Vec<String>,
    pub payments: Vec<String>,
    pub void_reason: Option<String>,
    pub seq: u64,
}

impl InvoiceView {
    fn of(state: &InvoiceState) -> InvoiceView {
        InvoiceView {
            invoice: (*state.invoice).clone(),
            status: state.status(),
            paid: state.paid,
            credited: state.credited,
            outstanding: state.outstanding(),
            credit_notes: state.credit_notes.clone(),
            payments: state.payments.clone(),
            void_reason: state.voided.as_ref().map(|(_, r)| r.clone()),
            seq: state.seq,
        }
    }
}

/// A subscription as read, with the last billing date invoiced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionView {
    pub subscription: super::book::Subscription,
    pub invoiced_through: Option<Day>,
}

/// One invoice of a billing run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInvoice {
    /// Issued (or issued before, `created == false`); a draft has no number.
    pub invoice: Invoice,
    pub created: bool,
}

/// A customer's receivables by how long they are overdue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgeingRow {
    pub customer_id: String,
    pub currency: String,
    /// Not yet due, 1–30, 31–60, 61–90 and over 90 days past due.
    pub buckets: [Decimal; 5],
    pub total: Decimal,
}

pub const AGEING_BUCKETS: [&str; 5] = ["current", "1-30", "31-60", "61-90", "90+"];

/// Drafts issued per writer request: a bounded group, and progress to show.
const ISSUE_CHUNK: usize = 1_000;
/// Re-ratings of customers whose billing changed during a run.
const STALE_RETRIES: usize = 5;

fn field_error(field: &str, message: String) -> Error {
    Error::Ledger(LedgerError::new(ErrorCode::FieldInvalid, field, message))
}

/// Stateless checks of a billing profile.
pub fn check_profile(profile: &BillingProfile) -> Result<()> {
    crate::ledger::validate::id("customer_id", &profile.customer_id).map_err(Error::Ledger)?;
    crate::ledger::validate::id("currency", &profile.currency).map_err(Error::Ledger)?;
    let upper = |text: &str| text.bytes().all(|b| b.is_ascii_uppercase());
    if profile.country.len() != 2 || !upper(&profile.country) {
        return Err(field_error(
            "country",
            format!(
                "{} is not an ISO 3166-1 alpha-2 code such as DE",
                quoted(&profile.country)
            ),
        ));
    }
    if let Some(region) = &profile.region {
        let valid = !region.is_empty()
            && region.len() <= 16
            && region
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(field_error(
                "region",
                format!("{} is not a subdivision code such as CA-QC", quoted(region)),
            ));
        }
    }
    if profile.tax_id.len() > 64 || profile.tax_id.chars().any(|c| c.is_control()) {
        return Err(field_error(
            "tax_id",
            "at most 64 printable characters".into(),
        ));
    }
    super::zone::zone(&profile.timezone).map_err(|message| field_error("timezone", message))?;
    let series = &profile.invoice_series;
    if series.is_empty()
        || series.len() > 16
        || !series
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(field_error(
            "invoice_series",
            format!("{} is not 1 to 16 of A-Z, 0-9", quoted(series)),
        ));
    }
    if profile.payment_terms_days > 366 {
        return Err(field_error(
            "payment_terms_days",
            format!("{} days; at most 366", profile.payment_terms_days),
        ));
    }
    Ok(())
}

fn flat_fees(plan: &tally_core::plan::PlanSpec) -> Decimal {
    plan.charges
        .iter()
        .filter_map(|c| match &c.pricing {
            Pricing::Flat { amount, .. } => Some(amount.0),
            _ => None,
        })
        .sum()
}

/// Runs `work` (seconds of CPU for a large run) without holding up the
/// other tasks of a multi-threaded runtime; inline on a current-thread one.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

impl Engine {
    async fn billing<T: Send + 'static>(
        &self,
        make: impl FnOnce(crate::writer::Reply<T>) -> BillingRequest,
    ) -> Result<T> {
        self.call(|reply| Request::Billing(make(reply))).await
    }

    pub async fn set_billing_profile(&self, profile: BillingProfile) -> Result<(u64, bool)> {
        check_profile(&profile)?;
        self.billing(|reply| BillingRequest::Profile(profile, reply))
            .await?
            .map_err(Error::Ledger)
    }

    pub fn billing_profile(&self, customer: &str) -> Option<BillingProfile> {
        let model = self.store.read_model();
        model.billing.profile(customer).map(|p| p.profile.clone())
    }

    /// Starts a subscription on a plan version (0: the current one).
    pub async fn subscribe(
        &self,
        subscription_id: &str,
        customer_id: &str,
        plan_code: &str,
        plan_version: u32,
        start: Day,
    ) -> Result<(u64, bool)> {
        crate::ledger::validate::id("subscription_id", subscription_id).map_err(Error::Ledger)?;
        let plan_version = self.resolve_version(plan_code, plan_version)?;
        let changed = SubscriptionChanged {
            subscription_id: subscription_id.to_string(),
            customer_id: customer_id.to_string(),
            change: SubscriptionChange::Started {
                plan_code: plan_code.to_string(),
                plan_version,
                start,
            },
        };
        self.billing(|reply| BillingRequest::Subscription(changed, reply))
            .await?
            .map_err(Error::Ledger)
    }

    fn resolve_version(&self, plan_code: &str, version: u32) -> Result<u32> {
        let model = self.store.read_model();
        model
            .plans
            .version(plan_code, version)
            .map(|p| p.version)
            .ok_or_else(|| {
                Error::Ledger(LedgerError::new(
                    ErrorCode::PlanNotFound,
                    "plan_code",
                    format!("no plan {} version {version}", quoted(plan_code)),
                ))
            })
    }

    /// Moves a subscription to another plan; answers with the day it takes
    /// effect.
    pub async fn change_plan(
        &self,
        subscription_id: &str,
        plan_code: &str,
        plan_version: u32,
        on: Day,
        timing: ChangeTiming,
    ) -> Result<(Day, u64, bool)> {
        let plan_version = self.resolve_version(plan_code, plan_version)?;
        let (customer_id, effective) = {
            let model = self.store.read_model();
            let subscription = model.billing.subscription(subscription_id).ok_or_else(|| {
                Error::Ledger(LedgerError::new(
                    ErrorCode::SubscriptionNotFound,
                    "subscription_id",
                    format!("no subscription {}", quoted(subscription_id)),
                ))
            })?;
            let current = subscription
                .segments
                .iter()
                .rev()
                .find(|s| s.from <= on)
                .unwrap_or(&subscription.segments[0]);
            let old = model
                .plans
                .version(&current.plan_code, current.plan_version)
                .ok_or_else(|| StoreError::Corrupt("a subscription's plan is missing".into()))?;
            let new = model
                .plans
                .version(plan_code, plan_version)
                .ok_or_else(|| StoreError::Corrupt("a resolved plan is missing".into()))?;
            let at_period_end = match timing {
                ChangeTiming::Immediate => false,
                ChangeTiming::PeriodEnd => true,
                ChangeTiming::Auto => flat_fees(&new.spec) < flat_fees(&old.spec),
            };
            let effective = if at_period_end {
                old.spec
                    .interval
                    .period_containing(on)
                    .map(|p| p.end)
                    .ok_or_else(|| field_error("on", format!("{on} is out of range")))?
            } else {
                on
            };
            (subscription.customer_id.clone(), effective)
        };
        let changed = SubscriptionChanged {
            subscription_id: subscription_id.to_string(),
            customer_id,
            change: SubscriptionChange::PlanChanged {
                plan_code: plan_code.to_string(),
                plan_version,
                effective,
            },
        };
        let (seq, created) = self
            .billing(|reply| BillingRequest::Subscription(changed, reply))
            .await?
            .map_err(Error::Ledger)?;
        Ok((effective, seq, created))
    }

    pub async fn end_subscription(&self, subscription_id: &str, end: Day) -> Result<(u64, bool)> {
        let customer_id = {
            let model = self.store.read_model();
            model
                .billing
                .subscription(subscription_id)
                .map(|s| s.customer_id.clone())
                .ok_or_else(|| {
                    Error::Ledger(LedgerError::new(
                        ErrorCode::SubscriptionNotFound,
                        "subscription_id",
                        format!("no subscription {}", quoted(subscription_id)),
                    ))
                })?
        };
        let changed = SubscriptionChanged {
            subscription_id: subscription_id.to_string(),
            customer_id,
            change: SubscriptionChange::Ended { end },
        };
        self.billing(|reply| BillingRequest::Subscription(changed, reply))
            .await?
            .map_err(Error::Ledger)
    }

    pub async fn grant_coupon(
        &self,
        grant_id: &str,
        customer_id: &str,
        coupon: Coupon,
        from: Day,
    ) -> Result<(u64, bool)> {
        crate::ledger::validate::id("grant_id", grant_id).map_err(Error::Ledger)?;
        coupon
            .validate("coupon")
            .map_err(|e| Error::Ledger(crate::rating::plan_error(e)))?;
        let granted = CouponGranted {
            grant_id: grant_id.to_string(),
            customer_id: customer_id.to_string(),
            coupon,
            from,
        };
        self.billing(|reply| BillingRequest::Coupon(granted, reply))
            .await?
            .map_err(Error::Ledger)
    }

    pub async fn publish_tax_rules(&self, rules: Vec<TaxRule>) -> Result<(u32, u64, bool)> {
        let refs: Vec<&TaxRule> = rules.iter().collect();
        tally_core::plan::validate_tax_rules(&refs, "rules")
            .map_err(|e| Error::Ledger(crate::rating::plan_error(e)))?;
        self.billing(|reply| BillingRequest::TaxRules(rules, reply))
            .await?
            .map_err(Error::Ledger)
    }

    /// A billing run over `[from, to)` for `customers` (none: all). With
    /// `issue`, the ended periods' usage is closed, their invoices are issued
    /// (a period already invoiced answers with its invoice, `created ==
    /// false`); without, the invoices are drafts (rated, not posted).
    /// `progress` hears (done, total) as invoices are issued.
    pub async fn run_billing(
        &self,
        customers: Option<Vec<String>>,
        from: Day,
        to: Day,
        issue: bool,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> Result<Vec<RunInvoice>> {
        if from >= to {
            return Err(Error::Ledger(LedgerError::new(
                ErrorCode::PeriodInvalid,
                "period",
                format!("[{from}, {to}) is empty"),
            )));
        }
        if !issue {
            let drafts = blocking(|| self.plan_invoices(customers.as_deref(), from, to))?;
            return Ok(drafts
                .into_iter()
                .map(|d| RunInvoice {
                    invoice: d.invoice,
                    created: false,
                })
                .collect());
        }
        // Fix the usage first: each ended period's events, from here on, are
        // late (kept, flagged, listed), never silently part of an issued
        // invoice or of none.
        // Periods that have not ended are not due: a draft previews them.
        // (A date may have begun in a zone east of UTC a day before it does
        // in UTC; each draft's own start decides.)
        let today = super::record::day_of(crate::writer::now_ns());
        let to = to.min(Day(today.0.saturating_add(1)));
        if to <= from {
            return Ok(Vec::new());
        }
        let closes =
            self.billing_closes(customers.as_deref(), from, to, crate::writer::now_ns())?;
        for chunk in closes.chunks(ISSUE_CHUNK) {
            let results = self
                .billing(|reply| BillingRequest::CloseUsage(chunk.to_vec(), reply))
                .await?;
            for result in results {
                result.map_err(Error::Ledger)?;
            }
        }
        let mut issued: Vec<RunInvoice> = Vec::new();
        // The last invoice this run issued per customer (see `issue_invoice`).
        let mut own: std::collections::HashMap<String, u64> = Default::default();
        let mut pending: Option<Vec<String>> = customers;
        let mut first = true;
        for _ in 0..=STALE_RETRIES {
            let now = crate::writer::now_ns();
            let drafts: Vec<_> = blocking(|| self.plan_invoices(pending.as_deref(), from, to))?
                .into_iter()
                .filter(|d| d.starts_at <= now)
                .collect();
            if first {
                // Periods invoiced before this run are answered as such.
                issued.extend(self.invoiced_in(pending.as_deref(), from, to));
                first = false;
            }
            let total = drafts.len();
            let mut stale = Vec::new();
            let mut done = 0;
            for chunk in drafts.chunks(ISSUE_CHUNK) {
                // Only this chunk's customers: the whole map would make a
                // run quadratic in its customers.
                let seen = chunk
                    .iter()
                    .filter_map(|d| {
                        let customer = &d.invoice.customer_id;
                        own.get(customer).map(|seq| (customer.clone(), *seq))
                    })
                    .collect();
                let outcomes = self
                    .billing(|reply| BillingRequest::Issue(chunk.to_vec(), seen, reply))
                    .await?;
                for (draft, outcome) in chunk.iter().zip(outcomes) {
                    match outcome.map_err(Error::Ledger)? {
                        IssueOutcome::Issued { number, seq } => {
                            own.insert(draft.invoice.customer_id.clone(), seq);
                            issued.push(self.run_invoice(&number, true)?)
                        }
                        IssueOutcome::Existing { number } => {
                            issued.push(self.run_invoice(&number, false)?)
                        }
                        IssueOutcome::Stale => stale.push(draft.invoice.customer_id.clone()),
                    }
                }
                done += chunk.len();
                progress(done, total);
            }
            if stale.is_empty() {
                return Ok(issued);
            }
            stale.sort();
            stale.dedup();
            pending = Some(stale);
        }
        Err(Error::Unavailable(
            "customers' billing kept changing during the run; run it again".into(),
        ))
    }

    fn run_invoice(&self, number: &str, created: bool) -> Result<RunInvoice> {
        let model = self.store.read_model();
        let state = model
            .billing
            .invoice(number)
            .ok_or_else(|| StoreError::Corrupt(format!("issued invoice {number} is unknown")))?;
        Ok(RunInvoice {
            invoice: (*state.invoice).clone(),
            created,
        })
    }

    /// Invoices already issued for periods ending in `(from, to]`.
    fn invoiced_in(&self, customers: Option<&[String]>, from: Day, to: Day) -> Vec<RunInvoice> {
        let model = self.store.read_model();
        model
            .billing
            .invoices()
            .filter(|i| i.voided.is_none())
            .filter(|i| {
                // A run bills the dates in (from, to] and the starts on `from`.
                let date = i.invoice.period_end;
                let start_on_from = date == from
                    && model
                        .billing
                        .subscription(&i.invoice.subscription_id)
                        .is_some_and(|s| s.start() == from);
                (date > from || start_on_from) && date <= to
            })
            .filter(|i| customers.is_none_or(|c| c.contains(&i.invoice.customer_id)))
            .map(|i| RunInvoice {
                invoice: (*i.invoice).clone(),
                created: false,
            })
            .collect()
    }

    pub fn invoice(&self, number: &str) -> Result<InvoiceView> {
        let model = self.store.read_model();
        model
            .billing
            .invoice(number)
            .map(InvoiceView::of)
            .ok_or_else(|| {
                Error::Ledger(LedgerError::new(
                    ErrorCode::InvoiceNotFound,
                    "invoice_number",
                    format!("no invoice {}", quoted(number)),
                ))
            })
    }

    /// A subscription and the last billing date invoiced on it.
    pub fn subscription(&self, id: &str) -> Result<SubscriptionView> {
        let model = self.store.read_model();
        let subscription = model.billing.subscription(id).ok_or_else(|| {
            Error::Ledger(LedgerError::new(
                ErrorCode::SubscriptionNotFound,
                "subscription_id",
                format!("no subscription {}", quoted(id)),
            ))
        })?;
        Ok(subscription_view(&model.billing, subscription))
    }

    /// A customer's subscriptions, in id order.
    pub fn subscriptions(&self, customer: &str) -> Vec<SubscriptionView> {
        let model = self.store.read_model();
        let mut views: Vec<SubscriptionView> = model
            .billing
            .customer_subscriptions(customer)
            .map(|s| subscription_view(&model.billing, s))
            .collect();
        views.sort_by(|a, b| {
            a.subscription
                .subscription_id
                .cmp(&b.subscription.subscription_id)
        });
        views
    }

    /// The invoice as a self-contained HTML page.
    pub fn invoice_html(&self, number: &str) -> Result<String> {
        let view = self.invoice(number)?;
        let scale = self
            .store
            .read_model()
            .currency_scale(&view.invoice.currency)
            .unwrap_or(2);
        Ok(super::render::invoice_html(&view, scale))
    }

    /// A customer's invoices (none: everyone's), in issue order.
    pub fn invoices(&self, customer: Option<&str>) -> Vec<InvoiceView> {
        let model = self.store.read_model();
        let mut views: Vec<InvoiceView> = match customer {
            Some(customer) => model
                .billing
                .customer_invoices(customer)
                .map(InvoiceView::of)
                .collect(),
            None => model.billing.invoices().map(InvoiceView::of).collect(),
        };
        views.sort_by_key(|v| v.seq);
        views
    }

    pub async fn void_invoice(&self, number: &str, reason: &str) -> Result<(u64, bool)> {
        let (number, reason) = (number.to_string(), reason.to_string());
        self.billing(|reply| BillingRequest::Void(number, reason, reply))
            .await?
            .map_err(Error::Ledger)
    }

    /// Issues a credit note; `created == false` for a retry of one issued
    /// under the same id with the same request.
    pub async fn issue_credit_note(
        &self,
        request: CreditNoteRequest,
    ) -> Result<(CreditNote, bool)> {
        crate::ledger::validate::id("credit_note_id", &request.credit_note_id)
            .map_err(Error::Ledger)?;
        let (number, _, created) = self
            .billing(|reply| BillingRequest::CreditNote(request, reply))
            .await?
            .map_err(Error::Ledger)?;
        let model = self.store.read_model();
        model
            .billing
            .credit_note(&number)
            .map(|c| ((*c.credit_note).clone(), created))
            .ok_or_else(|| StoreError::Corrupt(format!("credit note {number} is unknown")).into())
    }

    pub async fn record_payment(&self, request: PaymentRequest) -> Result<(Payment, bool)> {
        crate::ledger::validate::id("payment_id", &request.payment_id).map_err(Error::Ledger)?;
        let (payment, _, created) = self
            .billing(|reply| BillingRequest::Payment(request, reply))
            .await?
            .map_err(Error::Ledger)?;
        Ok((payment, created))
    }

    /// The journal length readers see: every entry before it is durable.
    pub fn journal_length(&self) -> u64 {
        self.store.committed()
    }

    /// The customer's credit: prepaid, overpaid or credited, not yet used.
    pub fn customer_credit(&self, customer: &str) -> Decimal {
        self.store.read_model().billing.credit(customer)
    }

    /// Outstanding receivables per customer on `as_of`, by days past due.
    pub fn ageing(&self, as_of: Day) -> Vec<AgeingRow> {
        let model = self.store.read_model();
        let mut rows: BTreeMap<String, AgeingRow> = BTreeMap::new();
        for state in model.billing.invoices() {
            let outstanding = state.outstanding();
            if outstanding.is_zero() {
                continue;
            }
            let invoice = &state.invoice;
            let overdue = invoice.due_on.days_until(as_of);
            let bucket = match overdue {
                i64::MIN..=0 => 0,
                1..=30 => 1,
                31..=60 => 2,
                61..=90 => 3,
                _ => 4,
            };
            let row = rows
                .entry(invoice.customer_id.clone())
                .or_insert_with(|| AgeingRow {
                    customer_id: invoice.customer_id.clone(),
                    currency: invoice.currency.clone(),
                    ..AgeingRow::default()
                });
            row.buckets[bucket] += outstanding;
            row.total += outstanding;
        }
        rows.into_values().collect()
    }
}

fn subscription_view(
    book: &super::book::BillingBook,
    subscription: &super::book::Subscription,
) -> SubscriptionView {
    let invoiced_through = book
        .customer_invoices(&subscription.customer_id)
        .filter(|i| i.voided.is_none() && i.invoice.subscription_id == subscription.subscription_id)
        .map(|i| i.invoice.period_end)
        .max();
    SubscriptionView {
        subscription: subscription.clone(),
        invoiced_through,
    }
}
