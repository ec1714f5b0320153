//! A billing run's planning and rating: which periods are due, and each
//! one's invoice as rated, with no write.
//!
//! A run covers the days `[from, to)`: it bills every subscription's billing
//! periods that end in `(from, to]` (periods of the plan's interval, cut to
//! the subscription's start and end). A period whose subscription changed
//! plan is rated in segments, each over its own days on its own plan version
//! (`rate` prorates flat fees and commitments by day): the old plan up to the
//! change, the new one from it. Everything is read at one journal length.

use super::book::{BillingBook, Subscription};
use super::record::InvoiceDraft;
use crate::engine::Engine;
use crate::error::{LedgerError, Result};
use crate::rating::usage::{period_window, CustomerUsage, DigestJob, StoredUsage};
use crate::rating::{rate, AppliedCoupon, Rating, RatingInput};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap, HashSet};
use tally_core::billing::{
    BillingProfile, CouponUse, Invoice, InvoiceLine, LineTaxAmount, LineTier, TaxTotal, UsageDigest,
};
use tally_core::calendar::{Day, Period};
use tally_core::decimal::Dec;
use tally_core::error_code::ErrorCode;
use tally_core::meter::quoted;
use tally_core::plan::{rules_for, CouponDiscount, CouponDuration, PlanSpec, TaxRule};

/// One billing period of one subscription, due in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuePeriod {
    pub customer_id: String,
    pub subscription_id: String,
    pub period: Period,
}

/// The billing periods of `subscription` that end in `(from, to]`.
pub fn due_periods(
    subscription: &Subscription,
    plans: &crate::rating::catalog::PlanCatalog,
    from: Day,
    to: Day,
) -> Vec<Period> {
    let mut due = Vec::new();
    let mut start = subscription.start();
    // Bounded: one period per step, and no period is shorter than a day.
    for _ in 0..10_000 {
        if start >= to || subscription.end.is_some_and(|end| start >= end) {
            break;
        }
        let Some(segment) = subscription
            .segments
            .iter()
            .rev()
            .find(|s| s.from <= start)
            .or(subscription.segments.first())
        else {
            break;
        };
        let Some(plan) = plans.version(&segment.plan_code, segment.plan_version) else {
            break;
        };
        let Some(whole) = plan.spec.interval.period_containing(start) else {
            break;
        };
        let end = subscription.end.map_or(whole.end, |e| e.min(whole.end));
        if end > from && end <= to {
            due.push(Period { start, end });
        }
        start = end;
    }
    due
}

/// What a run read: the book and plans at one journal length.
pub struct Snapshot<'a> {
    pub book: &'a BillingBook,
    pub plans: &'a crate::rating::catalog::PlanCatalog,
    pub scale: &'a dyn Fn(&str) -> Option<u8>,
}

/// One segment of one due period to rate.
struct SegmentJob {
    due: usize,
    plan: PlanSpec,
    plan_version: u32,
    period: Period,
}

fn coupons_for(book: &BillingBook, customer: &str, period: Period) -> Vec<(String, AppliedCoupon)> {
    book.customer_grants(customer)
        .filter(|state| state.grant.from < period.end)
        .map(|state| {
            let remaining = match (&state.grant.coupon.discount, state.grant.coupon.duration) {
                (CouponDiscount::Fixed { amount }, CouponDuration::Once)
                    if state.periods_used > 0 =>
                {
                    Some((amount.0 - state.used).max(Decimal::ZERO))
                }
                _ => None,
            };
            (
                state.grant.grant_id.clone(),
                AppliedCoupon {
                    coupon: state.grant.coupon.clone(),
                    periods_used: state.periods_used,
                    remaining,
                },
            )
        })
        .collect()
}

impl Engine {
    /// The invoices a run over `[from, to)` would issue for `customers`
    /// (none: every customer with a subscription), rated at one journal
    /// length; periods already invoiced are left out.
    pub fn plan_invoices(
        &self,
        customers: Option<&[String]>,
        from: Day,
        to: Day,
    ) -> Result<Vec<InvoiceDraft>> {
        let model = self.store.read_model();
        let book = &model.billing;
        let plans = &model.plans;
        let wanted: Option<HashSet<&str>> =
            customers.map(|c| c.iter().map(String::as_str).collect());
        let mut due: Vec<DuePeriod> = Vec::new();
        for subscription in book.subscriptions() {
            if wanted
                .as_ref()
                .is_some_and(|w| !w.contains(subscription.customer_id.as_str()))
            {
                continue;
            }
            for period in due_periods(subscription, plans, from, to) {
                if book
                    .invoiced_period(&subscription.subscription_id, period.start)
                    .is_none()
                {
                    due.push(DuePeriod {
                        customer_id: subscription.customer_id.clone(),
                        subscription_id: subscription.subscription_id.clone(),
                        period,
                    });
                }
            }
        }
        // Segments grouped by (plan, version, days): one usage read per group.
        let mut jobs: Vec<SegmentJob> = Vec::new();
        for (index, item) in due.iter().enumerate() {
            let subscription = book
                .subscription(&item.subscription_id)
                .expect("a due period's subscription exists");
            for (seg_from, seg_to, segment) in
                subscription.segments_in(item.period.start, item.period.end)
            {
                let plan = plans
                    .version(&segment.plan_code, segment.plan_version)
                    .ok_or_else(|| {
                        LedgerError::new(
                            ErrorCode::PlanNotFound,
                            "",
                            format!(
                                "no version {} of plan {}",
                                segment.plan_version,
                                quoted(&segment.plan_code)
                            ),
                        )
                    })?;
                jobs.push(SegmentJob {
                    due: index,
                    plan: plan.spec.clone(),
                    plan_version: segment.plan_version,
                    period: Period {
                        start: seg_from,
                        end: seg_to,
                    },
                });
            }
        }
        let mut groups: BTreeMap<(String, u32, Day, Day), Vec<usize>> = BTreeMap::new();
        for (index, job) in jobs.iter().enumerate() {
            groups
                .entry((
                    job.plan.code.clone(),
                    job.plan_version,
                    job.period.start,
                    job.period.end,
                ))
                .or_default()
                .push(index);
        }
        let mut stored: Vec<(Vec<usize>, Vec<String>, StoredUsage)> = Vec::new();
        for indexes in groups.into_values() {
            let customers: Vec<String> = indexes
                .iter()
                .map(|&i| due[jobs[i].due].customer_id.clone())
                .collect();
            let plan = &jobs[indexes[0]].plan;
            let usage = self.stored_usage(&model, &[plan], jobs[indexes[0]].period, &customers)?;
            stored.push((indexes, customers, usage));
        }
        let as_of_seq = self.store.committed();
        let tax_version = book.tax_rules().0;
        let tax_rules: Vec<TaxRule> = book.tax_rules().1.to_vec();
        let profiles: HashMap<String, BillingProfile> = due
            .iter()
            .filter_map(|d| {
                book.profile(&d.customer_id)
                    .map(|p| (d.customer_id.clone(), p.profile.clone()))
            })
            .collect();
        let coupons: Vec<Vec<(String, AppliedCoupon)>> = due
            .iter()
            .map(|d| coupons_for(book, &d.customer_id, d.period))
            .collect();
        let scales: HashMap<String, u8> = profiles
            .values()
            .filter_map(|p| {
                model
                    .currency_scale(&p.currency)
                    .map(|s| (p.currency.clone(), s))
            })
            .collect();
        drop(model);

        // Usage per segment, then the digests of every metered line.
        let mut usage: Vec<CustomerUsage> = vec![CustomerUsage::new(); jobs.len()];
        for (indexes, customers, stored) in stored {
            let gathered = self.finish_usage(stored, &customers)?;
            let per_customer = &gathered.plans[0];
            for &index in &indexes {
                let customer = &due[jobs[index].due].customer_id;
                usage[index] = per_customer.get(customer).cloned().unwrap_or_default();
            }
        }
        let mut digest_jobs: Vec<DigestJob> = Vec::new();
        let mut digest_index: HashMap<(String, usize), usize> = HashMap::new();
        let mut job_keys: BTreeMap<(String, BTreeMap<String, String>, i64, i64), usize> =
            BTreeMap::new();
        for (index, job) in jobs.iter().enumerate() {
            let window = period_window(job.period)?;
            for charge in &job.plan.charges {
                let Some(meter) = &charge.meter else { continue };
                let key = (
                    meter.clone(),
                    charge.group.clone(),
                    window.from(),
                    window.to(),
                );
                let at = *job_keys.entry(key).or_insert_with(|| {
                    digest_jobs.push(DigestJob {
                        meter: meter.clone(),
                        group: charge.group.clone(),
                        window,
                        customers: HashSet::new(),
                    });
                    digest_jobs.len() - 1
                });
                digest_jobs[at]
                    .customers
                    .insert(due[job.due].customer_id.clone());
                digest_index.insert((charge.code.clone(), index), at);
            }
        }
        let digests = self.usage_digests(&digest_jobs, as_of_seq)?;

        // Rate each segment, then assemble one invoice per due period.
        let mut ratings: Vec<Vec<(usize, Rating)>> = vec![Vec::new(); due.len()];
        let mut coupon_state = coupons.clone();
        for (index, job) in jobs.iter().enumerate() {
            let item = &due[job.due];
            let profile = profiles.get(&item.customer_id).ok_or_else(|| {
                LedgerError::new(
                    ErrorCode::BillingProfileMissing,
                    "",
                    format!(
                        "customer {} has no billing profile",
                        quoted(&item.customer_id)
                    ),
                )
            })?;
            let scale = *scales.get(&profile.currency).ok_or_else(|| {
                LedgerError::new(
                    ErrorCode::CurrencyUnknown,
                    "",
                    format!("currency {} is not defined", profile.currency),
                )
            })?;
            let taxes: Vec<TaxRule> =
                rules_for(&tax_rules, &profile.country, profile.region.as_deref())
                    .into_iter()
                    .cloned()
                    .collect();
            let applied: Vec<AppliedCoupon> = coupon_state[job.due]
                .iter()
                .map(|(_, c)| c.clone())
                .collect();
            let rating = rate(&RatingInput {
                plan: &job.plan,
                plan_version: job.plan_version,
                currency_scale: scale,
                period: job.period,
                usage: &usage[index],
                coupons: &applied,
                taxes: &taxes,
                adjustments: &[],
            })
            .map_err(|e| {
                LedgerError::new(
                    e.code,
                    e.field.clone(),
                    format!(
                        "rating subscription {} for {}: {}",
                        quoted(&item.subscription_id),
                        job.period,
                        e.message
                    ),
                )
            })?;
            // A fixed coupon's remainder carries to the period's next segment.
            for discount in &rating.discounts {
                if let Some((_, coupon)) = coupon_state[job.due]
                    .iter_mut()
                    .find(|(_, c)| c.coupon.code == discount.coupon)
                {
                    if discount.remaining.is_some() {
                        coupon.remaining = discount.remaining;
                    }
                }
            }
            ratings[job.due].push((index, rating));
        }
        let mut drafts = Vec::with_capacity(due.len());
        for (due_index, item) in due.iter().enumerate() {
            let profile = &profiles[&item.customer_id];
            let scale = scales[&profile.currency];
            let window = period_window(item.period)?;
            let mut invoice = Invoice {
                number: String::new(),
                series: profile.invoice_series.clone(),
                year: 0,
                sequence: 0,
                customer_id: item.customer_id.clone(),
                subscription_id: item.subscription_id.clone(),
                currency: profile.currency.clone(),
                period_start: item.period.start,
                period_end: item.period.end,
                usage_from: window.from(),
                usage_to: window.to(),
                country: profile.country.clone(),
                region: profile.region.clone(),
                tax_id: profile.tax_id.clone(),
                issued_on: Day(0),
                due_on: Day(0),
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
            let mut coupon_uses: BTreeMap<String, CouponUse> = BTreeMap::new();
            let mut taxes: BTreeMap<String, TaxTotal> = BTreeMap::new();
            let (mut subtotal, mut discount, mut tax, mut total, mut net_total) = (
                Decimal::ZERO,
                Decimal::ZERO,
                Decimal::ZERO,
                Decimal::ZERO,
                Decimal::ZERO,
            );
            for (job_index, rating) in &ratings[due_index] {
                let job = &jobs[*job_index];
                subtotal += rating.subtotal;
                discount += rating.discount_total;
                tax += rating.tax_total;
                total += rating.total;
                net_total += rating.net_total;
                for applied in &rating.discounts {
                    let grant = coupons[due_index]
                        .iter()
                        .find(|(_, c)| c.coupon.code == applied.coupon)
                        .map(|(id, _)| id.clone())
                        .unwrap_or_default();
                    let entry = coupon_uses.entry(grant.clone()).or_insert(CouponUse {
                        grant_id: grant,
                        code: applied.coupon.clone(),
                        amount: Dec::ZERO,
                    });
                    entry.amount = Dec(entry.amount.0 + applied.amount);
                }
                for t in &rating.taxes {
                    let entry = taxes.entry(t.code.clone()).or_insert(TaxTotal {
                        code: t.code.clone(),
                        rate: Dec(t.rate),
                        base: Dec::ZERO,
                        amount: Dec::ZERO,
                    });
                    entry.base = Dec(entry.base.0 + t.taxable);
                    entry.amount = Dec(entry.amount.0 + t.amount);
                }
                for line in &rating.lines {
                    let after_discount = line.amount - line.discount;
                    let net = match rating.tax_mode {
                        tally_core::plan::TaxMode::Exclusive => after_discount,
                        tally_core::plan::TaxMode::Inclusive => after_discount - line.tax,
                    };
                    let usage_digest = digest_index
                        .get(&(line.code.clone(), *job_index))
                        .filter(|_| line.meter.is_some())
                        .map(|&at| {
                            digests[at]
                                .get(&item.customer_id)
                                .copied()
                                .unwrap_or(UsageDigest::EMPTY)
                        });
                    invoice.lines.push(InvoiceLine {
                        kind: line.kind.name().to_string(),
                        plan_code: job.plan.code.clone(),
                        plan_version: job.plan_version,
                        charge_code: line.code.clone(),
                        description: line.description.clone(),
                        start: job.period.start,
                        end: job.period.end,
                        quantity: Dec(line.quantity),
                        free_units: Dec(line.free_units),
                        billable_quantity: Dec(line.billable_quantity),
                        tiers: line
                            .tiers
                            .iter()
                            .map(|t| LineTier {
                                from: Dec(t.from),
                                up_to: t.up_to.map(Dec),
                                quantity: Dec(t.quantity),
                                unit_price: Dec(t.unit_price),
                                flat_fee: Dec(t.flat_fee),
                                amount: Dec(t.amount),
                            })
                            .collect(),
                        explanation: explain(line),
                        amount: Dec(line.amount),
                        discount: Dec(line.discount),
                        taxes: line
                            .taxes
                            .iter()
                            .map(|t| LineTaxAmount {
                                code: t.code.clone(),
                                rate: Dec(t.rate),
                                amount: Dec(t.amount),
                            })
                            .collect(),
                        net: Dec(net),
                        total: Dec(line.total),
                        usage: usage_digest,
                    });
                }
            }
            settle_nets(&mut invoice.lines, net_total, scale);
            invoice.coupons = coupon_uses
                .into_values()
                .filter(|c| !c.amount.0.is_zero())
                .collect();
            invoice.taxes = taxes.into_values().collect();
            invoice.subtotal = Dec(subtotal);
            invoice.discount = Dec(discount);
            invoice.tax = Dec(tax);
            invoice.total = Dec(total);
            drafts.push(InvoiceDraft {
                as_of_seq,
                tax_version,
                invoice,
            });
        }
        Ok(drafts)
    }
}

/// Rounds each line's net revenue to the currency's scale (an inclusive tax
/// rounded per invoice leaves lines' nets unrounded) and gives the
/// difference to the largest line, so that the nets add up to the rating's
/// net total exactly: revenue is posted per line, in minor units.
fn settle_nets(lines: &mut [InvoiceLine], net_total: Decimal, scale: u8) {
    let strategy = rust_decimal::RoundingStrategy::MidpointNearestEven;
    for line in lines.iter_mut() {
        line.net = Dec(line
            .net
            .0
            .round_dp_with_strategy(u32::from(scale), strategy));
    }
    let sum: Decimal = lines.iter().map(|l| l.net.0).sum();
    let residual = net_total.round_dp_with_strategy(u32::from(scale), strategy) - sum;
    if !residual.is_zero() {
        if let Some(largest) = lines.iter_mut().max_by_key(|l| l.net.0) {
            largest.net = Dec(largest.net.0 + residual);
        }
    }
}

/// A line's pricing in words, for the invoice.
fn explain(line: &crate::rating::RatedLine) -> String {
    let mut parts = Vec::new();
    if let Some(package) = &line.package {
        parts.push(format!(
            "{} blocks of {} at {}",
            package.blocks, package.size, package.price
        ));
    }
    if let Some(p) = &line.percentage {
        parts.push(format!(
            "{} transactions, volume {}, {}% + {} each",
            p.transactions, p.volume, p.rate, p.fixed_fee
        ));
    }
    if let Some(proration) = &line.proration {
        parts.push(format!(
            "{} of {} days of {}",
            proration.days, proration.period_days, proration.full_amount
        ));
    }
    if !line.rounding.is_zero() {
        parts.push(format!("{} rounded by {}", line.unrounded, line.rounding));
    }
    parts.join("; ")
}
