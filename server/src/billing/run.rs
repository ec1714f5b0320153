//! A billing run's planning and rating: which invoices are due, and each
//! one as rated, with no write.
//!
//! A subscription is invoiced on its **billing dates**: its start, each end
//! of a billing period (the plan's interval), each mid-period plan change,
//! and its end. The invoice of date `D` holds, each part rated by `rate` over
//! its own days (flat fees and commitments prorated by day):
//! - **closing**: the usage, in-arrears fees and minimum commitment of the
//!   billing period ending on `D`, in segments by the plan version in force
//!   (the old plan up to a change, the new one from it);
//! - **opening**: the in-advance fees of the days from `D` to the period's
//!   end (or the next change, or the subscription's end), on the plan in
//!   force on `D`;
//! - **credit**: in-advance fees invoiced earlier for days from `D` on that a
//!   change or an end made unused, as negative lines (Kill Bill's repair: a
//!   $20 plan billed for Apr 11 - May 11 and upgraded on Apr 26 gives a
//!   credit of 10.00 and a charge of 15.00 on Apr 26's invoice).
//!
//! A run over `[from, to]` bills the dates in `(from, to]`, and a start on
//! `from`. Everything is read at one journal length.

use super::book::{BillingBook, Subscription};
use super::record::InvoiceDraft;
use crate::engine::Engine;
use crate::error::{LedgerError, Result, StoreError};
use crate::metering::aggregate::Window;
use crate::rating::catalog::PlanCatalog;
use crate::rating::usage::{CustomerUsage, DigestJob, StoredUsage};
use crate::rating::{rate, AppliedCoupon, Rating, RatingInput};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use tally_core::billing::{
    BillingProfile, CouponUse, Invoice, InvoiceLine, LineTaxAmount, LineTier, TaxTotal, UsageDigest,
};
use tally_core::calendar::{Day, Period};
use tally_core::decimal::Dec;
use tally_core::error_code::ErrorCode;
use tally_core::meter::quoted;
use tally_core::plan::{
    rules_for, CouponDiscount, CouponDuration, FlatTiming, PlanSpec, Pricing, TaxRule,
};

/// One read of stored usage: a plan version's charges over a part's days
/// (plan, version, first day, end day) in a window of instants (from, to).
type UsageRead = (String, u32, Day, Day, i64, i64);

/// Customers' zones, each looked up once per run.
#[derive(Default)]
struct Zones(HashMap<String, jiff::tz::TimeZone>);

impl Zones {
    fn zone(&mut self, name: &str) -> std::result::Result<&jiff::tz::TimeZone, LedgerError> {
        if !self.0.contains_key(name) {
            let zone = super::zone::zone(name).map_err(|message| {
                LedgerError::new(ErrorCode::FieldInvalid, "timezone", message)
            })?;
            self.0.insert(name.to_string(), zone);
        }
        Ok(&self.0[name])
    }

    /// The instants a period's days cover in the zone.
    fn window(&mut self, name: &str, period: Period) -> std::result::Result<Window, LedgerError> {
        let zone = self.zone(name)?;
        super::zone::period_window(period, zone).ok_or_else(|| {
            LedgerError::new(
                ErrorCode::PeriodInvalid,
                "period",
                format!("{period} in {name} is not a range of whole minutes usage can be read in"),
            )
        })
    }

    /// The instant a day starts in the zone.
    fn start(&mut self, name: &str, day: Day) -> std::result::Result<i64, LedgerError> {
        let zone = self.zone(name)?;
        super::zone::day_start(day, zone).ok_or_else(|| {
            LedgerError::new(
                ErrorCode::PeriodInvalid,
                "period",
                format!("{day} is out of range"),
            )
        })
    }
}

/// The customer's zone name, as its profile says.
fn zone_name<'a>(
    book: &'a BillingBook,
    customer: &str,
) -> std::result::Result<&'a str, LedgerError> {
    book.profile(customer)
        .map(|p| p.profile.timezone.as_str())
        .ok_or_else(|| {
            LedgerError::new(
                ErrorCode::BillingProfileMissing,
                "",
                format!("customer {} has no billing profile", quoted(customer)),
            )
        })
}

/// What a part of an invoice bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartKind {
    Closing,
    Opening,
    Credit,
}

/// One invoice due in a run: a subscription's billing date.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DueInvoice {
    customer_id: String,
    subscription_id: String,
    date: Day,
    /// The billing period the invoice closes, if it closes one.
    closing: Option<Period>,
}

/// Whether a charge is billed at the start of its period.
fn in_advance(charge: &tally_core::plan::Charge) -> bool {
    matches!(
        charge.pricing,
        Pricing::Flat {
            timing: FlatTiming::InAdvance,
            ..
        }
    )
}

/// The plan with only the charges a part bills: the in-advance fees, or
/// everything else (with the minimum commitment). None if nothing is left.
fn restricted(plan: &PlanSpec, advance: bool) -> Option<PlanSpec> {
    let mut plan = plan.clone();
    plan.charges.retain(|c| in_advance(c) == advance);
    if advance {
        plan.minimum_commitment = None;
    }
    (!plan.charges.is_empty()).then_some(plan)
}

/// The billing periods of a subscription from its start: `(start, end)` of
/// each, cut to the subscription's end, up to `to`.
fn periods(subscription: &Subscription, plans: &PlanCatalog, to: Day) -> Vec<Period> {
    let mut found = Vec::new();
    let mut start = subscription.start();
    // Bounded: one period per step, and no period is shorter than a day.
    for _ in 0..100_000 {
        if start > to || subscription.end.is_some_and(|end| start >= end) {
            break;
        }
        let Some(segment) = subscription.segment_at(start) else {
            break;
        };
        let Some(plan) = plans.version(&segment.plan_code, segment.plan_version) else {
            break;
        };
        let Some(whole) = plan.spec.interval.period_containing(start) else {
            break;
        };
        let end = subscription.end.map_or(whole.end, |e| e.min(whole.end));
        found.push(Period { start, end });
        start = end;
    }
    found
}

/// Day ranges, disjoint and sorted.
type Coverage = Vec<(Day, Day)>;

fn cover(coverage: &mut Coverage, from: Day, to: Day, add: bool) {
    let mut next = Vec::with_capacity(coverage.len() + 1);
    for &(a, b) in coverage.iter() {
        if b <= from || a >= to {
            next.push((a, b));
            continue;
        }
        if a < from {
            next.push((a, from));
        }
        if b > to {
            next.push((to, b));
        }
    }
    if add {
        next.push((from, to));
    }
    next.sort();
    // Merge what touches.
    let mut merged: Coverage = Vec::with_capacity(next.len());
    for (a, b) in next {
        match merged.last_mut() {
            Some(last) if last.1 >= a => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *coverage = merged;
}

/// The days each plan version's in-advance fees are invoiced for, on the
/// subscription's issued invoices: charged lines less credited ones.
fn advance_coverage(
    book: &BillingBook,
    plans: &PlanCatalog,
    subscription: &str,
    customer: &str,
) -> BTreeMap<(String, u32), Coverage> {
    let mut coverage: BTreeMap<(String, u32), Coverage> = BTreeMap::new();
    for state in book.customer_invoices(customer) {
        if state.voided.is_some() || state.invoice.subscription_id != subscription {
            continue;
        }
        for line in &state.invoice.lines {
            let advance = plans
                .version(&line.plan_code, line.plan_version)
                .and_then(|p| p.spec.charges.iter().find(|c| c.code == line.charge_code))
                .is_some_and(in_advance);
            if !advance {
                continue;
            }
            let key = (line.plan_code.clone(), line.plan_version);
            let ranges = coverage.entry(key).or_default();
            cover(ranges, line.start, line.end, line.kind != CREDIT_KIND);
        }
    }
    coverage
}

/// The kind of a credit line (the others are `rating::LineKind` names).
pub const CREDIT_KIND: &str = "credit";

/// The billing dates of a subscription in `(from, to]` (and its start on
/// `from`), each with the period it closes.
fn billing_dates(
    subscription: &Subscription,
    plans: &PlanCatalog,
    from: Day,
    to: Day,
) -> Vec<(Day, Option<Period>)> {
    let periods = periods(subscription, plans, to);
    let mut dates: BTreeMap<Day, Option<Period>> = BTreeMap::new();
    let start = subscription.start();
    if start >= from && start <= to {
        dates.insert(start, None);
    }
    for period in &periods {
        if period.end > from && period.end <= to {
            dates.insert(period.end, Some(*period));
        }
    }
    for segment in &subscription.segments[1..] {
        if segment.from > from && segment.from <= to {
            dates.entry(segment.from).or_insert(None);
        }
    }
    dates.into_iter().collect()
}

/// What a run read: the book and plans at one journal length.
pub struct Snapshot<'a> {
    pub book: &'a BillingBook,
    pub plans: &'a crate::rating::catalog::PlanCatalog,
    pub scale: &'a dyn Fn(&str) -> Option<u8>,
}

/// One part of one due invoice to rate.
struct SegmentJob {
    due: usize,
    kind: PartKind,
    plan: PlanSpec,
    plan_version: u32,
    period: Period,
}

/// After an invoice's parts are rated: each coupon that gave a discount on
/// it has used one more period (as the book counts when it is issued).
fn use_coupons(
    state: &mut HashMap<&str, Vec<(String, AppliedCoupon)>>,
    customer: &str,
    ratings: &[(usize, Rating)],
    jobs: &[SegmentJob],
) {
    let Some(coupons) = state.get_mut(customer) else {
        return;
    };
    let mut given: BTreeMap<&str, Decimal> = BTreeMap::new();
    for (job, rating) in ratings {
        if jobs[*job].kind == PartKind::Credit {
            continue;
        }
        for discount in &rating.discounts {
            *given.entry(discount.coupon.as_str()).or_default() += discount.amount;
        }
    }
    for (_, coupon) in coupons.iter_mut() {
        if given
            .get(coupon.coupon.code.as_str())
            .is_some_and(|a| !a.is_zero())
        {
            coupon.periods_used += 1;
        }
    }
}

/// The customer's coupons on an invoice of `date`: those granted from that
/// day or earlier.
fn coupons_for(book: &BillingBook, customer: &str, date: Day) -> Vec<(String, AppliedCoupon)> {
    book.customer_grants(customer)
        .filter(|state| state.grant.from <= date)
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

/// The invoices due in `(from, to]` for `customers` (none: all) and the
/// parts each is rated in, from the book and plans as read.
fn due_invoices(
    book: &BillingBook,
    plans: &PlanCatalog,
    customers: Option<&[String]>,
    from: Day,
    to: Day,
) -> Result<(Vec<DueInvoice>, Vec<SegmentJob>)> {
    let wanted: Option<HashSet<&str>> = customers.map(|c| c.iter().map(String::as_str).collect());
    let mut due: Vec<DueInvoice> = Vec::new();
    let mut jobs: Vec<SegmentJob> = Vec::new();
    for subscription in book.subscriptions() {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(subscription.customer_id.as_str()))
        {
            continue;
        }
        let mut coverage: Option<BTreeMap<(String, u32), Coverage>> = None;
        for (date, closing) in billing_dates(subscription, plans, from, to) {
            if book
                .invoiced_on(&subscription.subscription_id, date)
                .is_some()
            {
                continue;
            }
            let index = due.len();
            let first_job = jobs.len();
            let plan_of = |code: &str, version: u32| {
                plans.version(code, version).ok_or_else(|| {
                    LedgerError::new(
                        ErrorCode::PlanNotFound,
                        "",
                        format!("no version {version} of plan {}", quoted(code)),
                    )
                })
            };
            // Closing: the period's usage and in-arrears fees, by segment.
            if let Some(period) = closing {
                for (seg_from, seg_to, segment) in
                    subscription.segments_in(period.start, period.end)
                {
                    let plan = plan_of(&segment.plan_code, segment.plan_version)?;
                    if let Some(spec) = restricted(&plan.spec, false) {
                        jobs.push(SegmentJob {
                            due: index,
                            kind: PartKind::Closing,
                            plan: spec,
                            plan_version: segment.plan_version,
                            period: Period {
                                start: seg_from,
                                end: seg_to,
                            },
                        });
                    }
                }
            }
            // Credit: in-advance days invoiced from `date` on that the
            // subscription no longer has on that plan.
            let coverage = coverage.get_or_insert_with(|| {
                advance_coverage(
                    book,
                    plans,
                    &subscription.subscription_id,
                    &subscription.customer_id,
                )
            });
            let active = subscription
                .segment_at(date)
                .filter(|_| subscription.end.is_none_or(|end| date < end));
            let open_until = active.map(|segment| {
                let period_end = periods(subscription, plans, date)
                    .into_iter()
                    .find(|p| p.start <= date && date < p.end)
                    .map_or(date, |p| p.end);
                let next_change = subscription
                    .segments
                    .iter()
                    .map(|s| s.from)
                    .find(|from| *from > date)
                    .unwrap_or(period_end);
                (segment, period_end.min(next_change))
            });
            for ((code, version), ranges) in coverage.iter_mut() {
                let keep = open_until
                    .filter(|(segment, _)| {
                        segment.plan_code == *code && segment.plan_version == *version
                    })
                    .map(|(_, until)| until);
                for (a, b) in ranges.clone() {
                    // The part still in force on this plan is kept.
                    let from_day = keep.map_or(date, |k| k.max(date)).max(a);
                    if from_day >= b {
                        continue;
                    }
                    let plan = plan_of(code, *version)?;
                    if let Some(spec) = restricted(&plan.spec, true) {
                        jobs.push(SegmentJob {
                            due: index,
                            kind: PartKind::Credit,
                            plan: spec,
                            plan_version: *version,
                            period: Period {
                                start: from_day,
                                end: b,
                            },
                        });
                    }
                    cover(ranges, from_day, b, false);
                }
            }
            // Opening: the in-advance fees from `date` to the period's end
            // (or the next change), unless already invoiced.
            if let Some((segment, until)) = open_until {
                let key = (segment.plan_code.clone(), segment.plan_version);
                let ranges = coverage.entry(key).or_default();
                let covered = ranges.iter().any(|(a, b)| *a <= date && date < *b);
                if !covered && date < until {
                    let plan = plan_of(&segment.plan_code, segment.plan_version)?;
                    if let Some(spec) = restricted(&plan.spec, true) {
                        jobs.push(SegmentJob {
                            due: index,
                            kind: PartKind::Opening,
                            plan: spec,
                            plan_version: segment.plan_version,
                            period: Period {
                                start: date,
                                end: until,
                            },
                        });
                        cover(ranges, date, until, true);
                    }
                }
            }
            if jobs.len() > first_job {
                due.push(DueInvoice {
                    customer_id: subscription.customer_id.clone(),
                    subscription_id: subscription.subscription_id.clone(),
                    date,
                    closing,
                });
            }
        }
    }
    Ok((due, jobs))
}

impl Engine {
    /// Each customer's usage end for the invoices due in `(from, to]` that
    /// close a billing period ended by `now` (in the customer's zone): what
    /// an issuing run closes before it rates.
    pub fn billing_closes(
        &self,
        customers: Option<&[String]>,
        from: Day,
        to: Day,
        now: i64,
    ) -> Result<Vec<(String, i64)>> {
        let model = self.store.read_model();
        let (due, _) = due_invoices(&model.billing, &model.plans, customers, from, to)?;
        let mut closes: BTreeMap<String, i64> = BTreeMap::new();
        let mut zones = Zones::default();
        for item in due {
            let Some(period) = item.closing else { continue };
            let zone = zone_name(&model.billing, &item.customer_id)?;
            let through = zones.window(zone, period)?.to();
            // A period still running where the customer is stays open: its
            // events are not late, and its invoice is not issued yet.
            if through > now {
                continue;
            }
            let at = closes.entry(item.customer_id).or_insert(through);
            *at = (*at).max(through);
        }
        Ok(closes.into_iter().collect())
    }
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
        let (due, jobs) = due_invoices(book, plans, customers, from, to)?;
        // Each closing part's usage window, in its customer's zone.
        let mut zones = Zones::default();
        let mut windows: Vec<Option<Window>> = Vec::with_capacity(jobs.len());
        for job in &jobs {
            windows.push(if job.kind == PartKind::Closing {
                let zone = zone_name(book, &due[job.due].customer_id)?;
                Some(zones.window(zone, job.period)?)
            } else {
                None
            });
        }
        let mut groups: BTreeMap<UsageRead, Vec<usize>> = BTreeMap::new();
        for (index, job) in jobs.iter().enumerate() {
            let Some(window) = windows[index] else {
                continue;
            };
            groups
                .entry((
                    job.plan.code.clone(),
                    job.plan_version,
                    job.period.start,
                    job.period.end,
                    window.from(),
                    window.to(),
                ))
                .or_default()
                .push(index);
        }
        // The committed length cannot move while the read model is locked.
        let as_of_seq = self.store.committed();
        // The lines' usage digests: one journal scan, on a thread of its own
        // beside the stored-usage reads below (together most of a large
        // run's time; they read different things, and the scan takes no lock).
        let mut digest_jobs: Vec<DigestJob> = Vec::new();
        let mut digest_index: HashMap<(String, usize), usize> = HashMap::new();
        let mut job_keys: BTreeMap<(String, BTreeMap<String, String>, i64, i64), usize> =
            BTreeMap::new();
        for (index, job) in jobs.iter().enumerate() {
            let Some(window) = windows[index] else {
                continue;
            };
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
        let inputs = crate::rating::usage::digest_inputs(&model, &digest_jobs, as_of_seq);
        let store = self.store.clone();
        let scan = std::thread::Builder::new()
            .name("tally-digests".into())
            .spawn(move || {
                let digests = crate::rating::usage::scan_digests(&store, &digest_jobs, inputs);
                (digests, digest_jobs)
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start the digest scan: {e}")))?;
        let mut stored: Vec<(Vec<usize>, Vec<String>, StoredUsage)> = Vec::new();
        for indexes in groups.into_values() {
            let customers: Vec<String> = indexes
                .iter()
                .map(|&i| due[jobs[i].due].customer_id.clone())
                .collect();
            let plan = &jobs[indexes[0]].plan;
            let window = windows[indexes[0]].expect("a closing part has a window");
            let usage = self.stored_usage_in(&model, &[plan], window, &customers)?;
            stored.push((indexes, customers, usage));
        }
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
            .map(|d| coupons_for(book, &d.customer_id, d.date))
            .collect();
        let all_coupons: HashMap<&str, Vec<(String, AppliedCoupon)>> = due
            .iter()
            .map(|d| {
                let every = coupons_for(book, &d.customer_id, Day(i32::MAX));
                (d.customer_id.as_str(), every)
            })
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
        let (digests, digest_jobs) = scan
            .join()
            .map_err(|_| StoreError::Corrupt("the usage digest scan stopped".into()))?;
        let digests = digests?;

        // Rate each segment, then assemble one invoice per due period.
        let mut ratings: Vec<Vec<(usize, Rating)>> = vec![Vec::new(); due.len()];
        // Each customer's coupons as its invoices of this run use them, in
        // the order they are issued: a `once` coupon applies to the first
        // only, a fixed amount's remainder carries to the next.
        let mut coupon_state = all_coupons;
        let mut finished_due = None;
        for (index, job) in jobs.iter().enumerate() {
            let item = &due[job.due];
            if finished_due != Some(job.due) {
                if let Some(previous) = finished_due {
                    use_coupons(
                        &mut coupon_state,
                        &due[previous].customer_id,
                        &ratings[previous],
                        &jobs,
                    );
                }
                finished_due = Some(job.due);
            }
            let state = coupon_state
                .get_mut(item.customer_id.as_str())
                .expect("every due customer has a coupon state");
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
            // A credit reverses a percentage discount in proportion; a fixed
            // amount once given stays given.
            let eligible: BTreeSet<&str> =
                coupons[job.due].iter().map(|(id, _)| id.as_str()).collect();
            let applied: Vec<AppliedCoupon> = state
                .iter()
                .filter(|(id, _)| eligible.contains(id.as_str()))
                .map(|(_, c)| c.clone())
                .filter(|c| {
                    job.kind != PartKind::Credit
                        || matches!(c.coupon.discount, CouponDiscount::Percentage { .. })
                })
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
            // A fixed coupon's remainder carries to the invoice's next part.
            for discount in rating
                .discounts
                .iter()
                .filter(|_| job.kind != PartKind::Credit)
            {
                if let Some((_, coupon)) = state
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
        drop(coupon_state);
        let mut drafts = Vec::with_capacity(due.len());
        for (due_index, item) in due.iter().enumerate() {
            let profile = &profiles[&item.customer_id];
            let scale = scales[&profile.currency];
            let starts_at = zones.start(&profile.timezone, item.date)?;
            let (period_start, usage_from, usage_to) = match item.closing {
                Some(period) => {
                    let window = zones.window(&profile.timezone, period)?;
                    (period.start, window.from(), window.to())
                }
                None => (item.date, starts_at, starts_at),
            };
            let mut invoice = Invoice {
                number: String::new(),
                series: profile.invoice_series.clone(),
                year: 0,
                sequence: 0,
                customer_id: item.customer_id.clone(),
                subscription_id: item.subscription_id.clone(),
                currency: profile.currency.clone(),
                period_start,
                period_end: item.date,
                usage_from,
                usage_to,
                usage_journal_length: as_of_seq,
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
                // A credit part's figures count against the invoice.
                let sign = if job.kind == PartKind::Credit {
                    Decimal::NEGATIVE_ONE
                } else {
                    Decimal::ONE
                };
                subtotal += sign * rating.subtotal;
                discount += sign * rating.discount_total;
                tax += sign * rating.tax_total;
                total += sign * rating.total;
                net_total += sign * rating.net_total;
                for applied in rating
                    .discounts
                    .iter()
                    .filter(|_| job.kind != PartKind::Credit)
                {
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
                    entry.base = Dec(entry.base.0 + sign * t.taxable);
                    entry.amount = Dec(entry.amount.0 + sign * t.amount);
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
                                .unwrap_or_else(|| {
                                    let window = &digest_jobs[at].window;
                                    UsageDigest::empty(window.from(), window.to())
                                })
                        });
                    invoice.lines.push(InvoiceLine {
                        kind: if job.kind == PartKind::Credit {
                            CREDIT_KIND.to_string()
                        } else {
                            line.kind.name().to_string()
                        },
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
                                amount: Dec(sign * t.amount),
                            })
                            .collect(),
                        explanation: if job.kind == PartKind::Credit {
                            format!("unused from {}: {}", job.period.start, explain(line))
                        } else {
                            explain(line)
                        },
                        amount: Dec(sign * line.amount),
                        discount: Dec(sign * line.discount),
                        taxes: line
                            .taxes
                            .iter()
                            .map(|t| LineTaxAmount {
                                code: t.code.clone(),
                                rate: Dec(t.rate),
                                amount: Dec(t.amount),
                            })
                            .collect(),
                        net: Dec(sign * net),
                        total: Dec(sign * line.total),
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
                starts_at,
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
