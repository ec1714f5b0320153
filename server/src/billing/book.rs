//! The billing book: the fold of every billing entry, one type for the
//! writer's `LedgerState` and for the `ReadModel` (like `PlanCatalog`), so
//! that both answer "what is invoiced, paid, owed" from the same fold.
//!
//! It holds the documents and what follows from them: each subscription's
//! plan segments, each invoice's payments and credits (so its outstanding
//! amount and status), each customer's credit balance, the coupons' use, and
//! the last number of every series. `apply` refuses an entry that contradicts
//! the book (a number out of sequence, an invoice issued twice for a period,
//! a payment on a void invoice): a journal not written by these rules.

use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tally_core::billing::{
    BillingProfile, CouponGranted, CreditNote, Invoice, Payment, PaymentKind, SubscriptionChange,
    SubscriptionChanged, TaxRulesPublished,
};
use tally_core::calendar::Day;
use tally_core::entry::{EntryBody, TimestampNs};
use tally_core::plan::TaxRule;

/// A profile as set, with the entry that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileVersion {
    pub seq: u64,
    pub profile: BillingProfile,
}

/// A plan version in force from `from` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub from: Day,
    pub plan_code: String,
    pub plan_version: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub subscription_id: String,
    pub customer_id: String,
    /// In date order, the first at the subscription's start.
    pub segments: Vec<Segment>,
    /// The day after the last billed day.
    pub end: Option<Day>,
    /// The subscription's entries.
    pub seqs: Vec<u64>,
}

impl Subscription {
    pub fn start(&self) -> Day {
        self.segments[0].from
    }

    /// The segment in force on `day` (the first one before the start).
    pub fn segment_at(&self, day: Day) -> Option<&Segment> {
        self.segments
            .iter()
            .rev()
            .find(|s| s.from <= day)
            .or(self.segments.first())
    }

    /// The segments overlapping `[start, end)`, each cut to it: (from, to,
    /// segment).
    pub fn segments_in(&self, start: Day, end: Day) -> Vec<(Day, Day, &Segment)> {
        let end = self.end.map_or(end, |own| own.min(end));
        let mut cut = Vec::new();
        for (index, segment) in self.segments.iter().enumerate() {
            let next = self.segments.get(index + 1).map(|s| s.from);
            let from = segment.from.max(start);
            let to = next.map_or(end, |next| next.min(end));
            if from < to {
                cut.push((from, to, segment));
            }
        }
        cut
    }
}

/// A coupon granted, and how much of it invoices used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponState {
    pub grant: CouponGranted,
    pub seq: u64,
    /// Invoices it applied to.
    pub periods_used: u32,
    /// The discount it gave in all.
    pub used: Decimal,
}

/// What became of an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceStatus {
    /// Nothing is owed on it, and something was: it was paid (or credited).
    Paid,
    PartiallyPaid,
    Unpaid,
    Void,
}

impl InvoiceStatus {
    pub fn name(self) -> &'static str {
        match self {
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::PartiallyPaid => "partially_paid",
            InvoiceStatus::Unpaid => "unpaid",
            InvoiceStatus::Void => "void",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceState {
    pub invoice: Arc<Invoice>,
    pub seq: u64,
    pub issued_at: TimestampNs,
    /// Allocated by payments and applied credit.
    pub paid: Decimal,
    /// Credit notes' parts that reduced what is owed.
    pub credited: Decimal,
    /// Credit notes' totals, per line (for what is left to credit).
    pub credited_lines: BTreeMap<u32, Decimal>,
    pub credited_total: Decimal,
    pub credit_notes: Vec<String>,
    pub payments: Vec<String>,
    pub voided: Option<(u64, String)>,
}

impl InvoiceState {
    /// What the customer still owes on it.
    pub fn outstanding(&self) -> Decimal {
        if self.voided.is_some() {
            return Decimal::ZERO;
        }
        self.invoice.amount_due.0 - self.paid - self.credited
    }

    pub fn status(&self) -> InvoiceStatus {
        if self.voided.is_some() {
            InvoiceStatus::Void
        } else if self.outstanding().is_zero() {
            InvoiceStatus::Paid
        } else if self.paid.is_zero() && self.credited.is_zero() {
            InvoiceStatus::Unpaid
        } else {
            InvoiceStatus::PartiallyPaid
        }
    }

    /// What is left to credit on the invoice: its total less credit notes.
    pub fn creditable(&self) -> Decimal {
        if self.voided.is_some() {
            return Decimal::ZERO;
        }
        self.invoice.total.0 - self.credited_total
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentState {
    pub payment: Arc<Payment>,
    pub seq: u64,
    /// Digest of the request, for retries.
    pub request_digest: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditNoteState {
    pub credit_note: Arc<CreditNote>,
    pub seq: u64,
    /// Digest of the request, for retries under its id.
    pub request_digest: [u8; 32],
}

#[derive(Debug, Default, Clone)]
pub struct BillingBook {
    profiles: BTreeMap<String, Vec<ProfileVersion>>,
    subscriptions: BTreeMap<String, Subscription>,
    customer_subscriptions: BTreeMap<String, Vec<String>>,
    grants: BTreeMap<String, CouponState>,
    customer_grants: BTreeMap<String, Vec<String>>,
    tax_rules: Vec<(u64, TaxRulesPublished)>,
    invoices: BTreeMap<String, InvoiceState>,
    /// (subscription, billing date) → invoice number: a date is invoiced once.
    invoiced_periods: HashMap<(String, Day), String>,
    customer_invoices: BTreeMap<String, Vec<String>>,
    credit_notes: BTreeMap<String, CreditNoteState>,
    /// A credit note's transaction id (`credit_note:ID`) → its number.
    credit_note_ids: HashMap<String, String>,
    payments: BTreeMap<String, PaymentState>,
    customer_payments: BTreeMap<String, Vec<String>>,
    /// Each customer's credit: prepaid, overpaid and credited, not yet used.
    credit: BTreeMap<String, Decimal>,
    /// Last sequence number per (series, year), invoices and credit notes.
    counters: BTreeMap<(String, i32), u64>,
    /// The last billing entry of each customer: a billing run's inputs for
    /// the customer are unchanged while this is below its snapshot.
    customer_seq: HashMap<String, u64>,
}

impl BillingBook {
    pub fn profile(&self, customer: &str) -> Option<&ProfileVersion> {
        self.profiles.get(customer).and_then(|v| v.last())
    }

    pub fn profiles(&self) -> impl Iterator<Item = &ProfileVersion> {
        self.profiles.values().filter_map(|v| v.last())
    }

    pub fn subscription(&self, id: &str) -> Option<&Subscription> {
        self.subscriptions.get(id)
    }

    pub fn subscriptions(&self) -> impl Iterator<Item = &Subscription> {
        self.subscriptions.values()
    }

    pub fn customer_subscriptions(&self, customer: &str) -> impl Iterator<Item = &Subscription> {
        self.customer_subscriptions
            .get(customer)
            .into_iter()
            .flatten()
            .filter_map(|id| self.subscriptions.get(id))
    }

    pub fn grant(&self, grant_id: &str) -> Option<&CouponState> {
        self.grants.get(grant_id)
    }

    pub fn customer_grants(&self, customer: &str) -> impl Iterator<Item = &CouponState> {
        self.customer_grants
            .get(customer)
            .into_iter()
            .flatten()
            .filter_map(|id| self.grants.get(id))
    }

    /// The current tax table (version, rules); version 0 and no rules before
    /// any was published.
    pub fn tax_rules(&self) -> (u32, &[TaxRule]) {
        self.tax_rules
            .last()
            .map_or((0, &[][..]), |(_, t)| (t.version, &t.rules[..]))
    }

    pub fn invoice(&self, number: &str) -> Option<&InvoiceState> {
        self.invoices.get(number)
    }

    pub fn invoices(&self) -> impl Iterator<Item = &InvoiceState> {
        self.invoices.values()
    }

    /// The customer's invoices, in issue order.
    pub fn customer_invoices(&self, customer: &str) -> impl Iterator<Item = &InvoiceState> {
        self.customer_invoices
            .get(customer)
            .into_iter()
            .flatten()
            .filter_map(|n| self.invoices.get(n))
    }

    /// The invoice of a subscription's billing date (an invoice's
    /// `period_end`), unless it was voided.
    pub fn invoiced_on(&self, subscription: &str, date: Day) -> Option<&InvoiceState> {
        self.invoiced_periods
            .get(&(subscription.to_string(), date))
            .and_then(|n| self.invoices.get(n))
    }

    pub fn credit_note(&self, number: &str) -> Option<&CreditNoteState> {
        self.credit_notes.get(number)
    }

    /// The credit note recorded under a transaction id `credit_note:ID`.
    pub fn credit_note_by_id(&self, transaction_id: &str) -> Option<&CreditNoteState> {
        self.credit_note_ids
            .get(transaction_id)
            .and_then(|number| self.credit_notes.get(number))
    }

    pub fn payment(&self, id: &str) -> Option<&PaymentState> {
        self.payments.get(id)
    }

    pub fn customer_payments(&self, customer: &str) -> impl Iterator<Item = &PaymentState> {
        self.customer_payments
            .get(customer)
            .into_iter()
            .flatten()
            .filter_map(|id| self.payments.get(id))
    }

    pub fn credit(&self, customer: &str) -> Decimal {
        self.credit.get(customer).copied().unwrap_or_default()
    }

    /// The next sequence number of a series in a year.
    pub fn next_sequence(&self, series: &str, year: i32) -> u64 {
        self.counters
            .get(&(series.to_string(), year))
            .copied()
            .unwrap_or(0)
            + 1
    }

    /// The last billing entry that concerned the customer (0: none).
    pub fn customer_seq(&self, customer: &str) -> u64 {
        self.customer_seq.get(customer).copied().unwrap_or(0)
    }

    /// Folds a billing entry; other entries are ignored. `Err` names an
    /// entry that contradicts the book.
    pub fn apply(
        &mut self,
        seq: u64,
        recorded_at: TimestampNs,
        body: &EntryBody,
    ) -> Result<(), String> {
        match body {
            EntryBody::BillingProfileSet(profile) => {
                self.touch(&profile.customer_id, seq);
                self.profiles
                    .entry(profile.customer_id.clone())
                    .or_default()
                    .push(ProfileVersion {
                        seq,
                        profile: profile.clone(),
                    });
            }
            EntryBody::SubscriptionChanged(changed) => self.change_subscription(seq, changed)?,
            EntryBody::CouponGranted(granted) => {
                self.touch(&granted.customer_id, seq);
                if self.grants.contains_key(&granted.grant_id) {
                    return Err(format!(
                        "coupon grant {:?} recorded twice",
                        granted.grant_id
                    ));
                }
                self.customer_grants
                    .entry(granted.customer_id.clone())
                    .or_default()
                    .push(granted.grant_id.clone());
                self.grants.insert(
                    granted.grant_id.clone(),
                    CouponState {
                        grant: granted.clone(),
                        seq,
                        periods_used: 0,
                        used: Decimal::ZERO,
                    },
                );
            }
            EntryBody::TaxRulesPublished(published) => {
                let expected = self.tax_rules().0 + 1;
                if published.version != expected {
                    return Err(format!(
                        "tax rules version {} where {expected} was next",
                        published.version
                    ));
                }
                self.tax_rules.push((seq, published.clone()));
            }
            EntryBody::InvoiceIssued(issued) => self.issue(seq, recorded_at, &issued.invoice)?,
            EntryBody::InvoiceVoided(voided) => {
                let state = self
                    .invoices
                    .get_mut(&voided.number)
                    .ok_or_else(|| format!("void of unknown invoice {}", voided.number))?;
                if state.voided.is_some() {
                    return Err(format!("invoice {} voided twice", voided.number));
                }
                state.voided = Some((seq, voided.reason.clone()));
                let invoice = Arc::clone(&state.invoice);
                self.touch(&invoice.customer_id, seq);
                // The coupons it used are given back.
                for used in &invoice.coupons {
                    if let Some(grant) = self.grants.get_mut(&used.grant_id) {
                        grant.periods_used = grant.periods_used.saturating_sub(1);
                        grant.used -= used.amount.0;
                    }
                }
                // The credit drawn down returns to the customer.
                let credit = self.credit.entry(invoice.customer_id.clone()).or_default();
                *credit += invoice.credit_applied.0;
                if credit.is_sign_negative() && !credit.is_zero() {
                    return Err(format!(
                        "the void of invoice {} takes back credit the customer no longer has",
                        voided.number
                    ));
                }
                self.invoiced_periods
                    .remove(&(invoice.subscription_id.clone(), invoice.period_end));
            }
            EntryBody::CreditNoteIssued(issued) => self.credit_note_issued(
                seq,
                &issued.credit_note,
                &issued.transaction.id,
                issued.transaction.request_digest,
            )?,
            EntryBody::PaymentRecorded(recorded) => {
                self.payment_recorded(seq, &recorded.payment, recorded.transaction.request_digest)?
            }
            _ => {}
        }
        Ok(())
    }

    fn touch(&mut self, customer: &str, seq: u64) {
        self.customer_seq.insert(customer.to_string(), seq);
    }

    fn change_subscription(
        &mut self,
        seq: u64,
        changed: &SubscriptionChanged,
    ) -> Result<(), String> {
        self.touch(&changed.customer_id, seq);
        let id = &changed.subscription_id;
        match &changed.change {
            SubscriptionChange::Started {
                plan_code,
                plan_version,
                start,
            } => {
                if self.subscriptions.contains_key(id) {
                    return Err(format!("subscription {id:?} started twice"));
                }
                self.customer_subscriptions
                    .entry(changed.customer_id.clone())
                    .or_default()
                    .push(id.clone());
                self.subscriptions.insert(
                    id.clone(),
                    Subscription {
                        subscription_id: id.clone(),
                        customer_id: changed.customer_id.clone(),
                        segments: vec![Segment {
                            from: *start,
                            plan_code: plan_code.clone(),
                            plan_version: *plan_version,
                        }],
                        end: None,
                        seqs: vec![seq],
                    },
                );
            }
            SubscriptionChange::PlanChanged {
                plan_code,
                plan_version,
                effective,
            } => {
                let subscription = self.subscription_mut(id, &changed.customer_id)?;
                let last = subscription.segments.last().map(|s| s.from);
                if last.is_some_and(|last| *effective <= last)
                    || subscription.end.is_some_and(|end| *effective >= end)
                {
                    return Err(format!("subscription {id:?} changed out of date order"));
                }
                subscription.segments.push(Segment {
                    from: *effective,
                    plan_code: plan_code.clone(),
                    plan_version: *plan_version,
                });
                subscription.seqs.push(seq);
            }
            SubscriptionChange::Ended { end } => {
                let subscription = self.subscription_mut(id, &changed.customer_id)?;
                if subscription.end.is_some() {
                    return Err(format!("subscription {id:?} ended twice"));
                }
                if subscription.segments.last().is_some_and(|s| *end <= s.from) {
                    return Err(format!("subscription {id:?} ends before its last change"));
                }
                subscription.end = Some(*end);
                subscription.seqs.push(seq);
            }
        }
        Ok(())
    }

    fn subscription_mut(&mut self, id: &str, customer: &str) -> Result<&mut Subscription, String> {
        self.subscriptions
            .get_mut(id)
            .filter(|s| s.customer_id == customer)
            .ok_or_else(|| format!("change of unknown subscription {id:?}"))
    }

    fn issue(
        &mut self,
        seq: u64,
        recorded_at: TimestampNs,
        invoice: &Invoice,
    ) -> Result<(), String> {
        let key = (invoice.series.clone(), invoice.year);
        let expected = self.counters.get(&key).copied().unwrap_or(0) + 1;
        if invoice.sequence != expected {
            return Err(format!(
                "invoice {} has sequence {} where {expected} was next",
                invoice.number, invoice.sequence
            ));
        }
        if self.invoices.contains_key(&invoice.number) {
            return Err(format!("invoice {} issued twice", invoice.number));
        }
        let period = (invoice.subscription_id.clone(), invoice.period_end);
        if self.invoiced_periods.contains_key(&period) {
            return Err(format!(
                "subscription {:?} invoiced twice on {}",
                invoice.subscription_id, invoice.period_end
            ));
        }
        self.counters.insert(key, invoice.sequence);
        self.invoiced_periods.insert(period, invoice.number.clone());
        self.touch(&invoice.customer_id, seq);
        let credit = self.credit.entry(invoice.customer_id.clone()).or_default();
        *credit -= invoice.credit_applied.0;
        if credit.is_sign_negative() && !credit.is_zero() {
            return Err(format!(
                "invoice {} draws more credit than the customer has",
                invoice.number
            ));
        }
        for used in &invoice.coupons {
            if let Some(state) = self.grants.get_mut(&used.grant_id) {
                state.periods_used += 1;
                state.used += used.amount.0;
            }
        }
        self.customer_invoices
            .entry(invoice.customer_id.clone())
            .or_default()
            .push(invoice.number.clone());
        self.invoices.insert(
            invoice.number.clone(),
            InvoiceState {
                invoice: Arc::new(invoice.clone()),
                seq,
                issued_at: recorded_at,
                paid: Decimal::ZERO,
                credited: Decimal::ZERO,
                credited_lines: BTreeMap::new(),
                credited_total: Decimal::ZERO,
                credit_notes: Vec::new(),
                payments: Vec::new(),
                voided: None,
            },
        );
        Ok(())
    }

    fn credit_note_issued(
        &mut self,
        seq: u64,
        note: &CreditNote,
        transaction_id: &str,
        request_digest: [u8; 32],
    ) -> Result<(), String> {
        let key = (note.series.clone(), note.year);
        let expected = self.counters.get(&key).copied().unwrap_or(0) + 1;
        if note.sequence != expected {
            return Err(format!(
                "credit note {} has sequence {} where {expected} was next",
                note.number, note.sequence
            ));
        }
        let state = self
            .invoices
            .get_mut(&note.invoice_number)
            .ok_or_else(|| format!("credit note on unknown invoice {}", note.invoice_number))?;
        if state.voided.is_some() {
            return Err(format!(
                "credit note on void invoice {}",
                note.invoice_number
            ));
        }
        state.credited += note.to_invoice.0;
        state.credited_total += note.total.0;
        for line in &note.lines {
            *state.credited_lines.entry(line.line).or_default() += line.total.0;
        }
        state.credit_notes.push(note.number.clone());
        if state.outstanding().is_sign_negative() && !state.outstanding().is_zero() {
            return Err(format!(
                "credit note {} credits more than is owed",
                note.number
            ));
        }
        self.counters.insert(key, note.sequence);
        *self.credit.entry(note.customer_id.clone()).or_default() += note.to_credit.0;
        self.touch(&note.customer_id, seq);
        self.credit_note_ids
            .insert(transaction_id.to_string(), note.number.clone());
        self.credit_notes.insert(
            note.number.clone(),
            CreditNoteState {
                credit_note: Arc::new(note.clone()),
                seq,
                request_digest,
            },
        );
        Ok(())
    }

    fn payment_recorded(
        &mut self,
        seq: u64,
        payment: &Payment,
        digest: [u8; 32],
    ) -> Result<(), String> {
        if self.payments.contains_key(&payment.payment_id) {
            return Err(format!("payment {:?} recorded twice", payment.payment_id));
        }
        for allocation in &payment.allocations {
            let state = self
                .invoices
                .get_mut(&allocation.invoice_number)
                .ok_or_else(|| {
                    format!(
                        "allocation to unknown invoice {}",
                        allocation.invoice_number
                    )
                })?;
            if state.invoice.customer_id != payment.customer_id {
                return Err(format!(
                    "payment {:?} allocates to invoice {} of another customer",
                    payment.payment_id, allocation.invoice_number
                ));
            }
            state.paid += allocation.amount.0;
            state.payments.push(payment.payment_id.clone());
            if state.voided.is_some() || state.outstanding().is_sign_negative() {
                return Err(format!(
                    "payment {:?} allocates more than invoice {} owes",
                    payment.payment_id, allocation.invoice_number
                ));
            }
        }
        let allocated: Decimal = payment.allocations.iter().map(|a| a.amount.0).sum();
        let credit = self.credit.entry(payment.customer_id.clone()).or_default();
        match payment.kind {
            PaymentKind::Payment | PaymentKind::CreditPurchase | PaymentKind::CreditGrant => {
                *credit += payment.to_credit.0
            }
            PaymentKind::Refund => *credit -= payment.amount.0,
            PaymentKind::CreditApplied => *credit -= allocated,
        }
        if credit.is_sign_negative() && !credit.is_zero() {
            return Err(format!(
                "payment {:?} takes more credit than the customer has",
                payment.payment_id
            ));
        }
        self.touch(&payment.customer_id, seq);
        self.customer_payments
            .entry(payment.customer_id.clone())
            .or_default()
            .push(payment.payment_id.clone());
        self.payments.insert(
            payment.payment_id.clone(),
            PaymentState {
                payment: Arc::new(payment.clone()),
                seq,
                request_digest: digest,
            },
        );
        Ok(())
    }
}
