//! Usage for rating: what each charge of a plan reads, per customer, over a
//! period of days.
//!
//! One function, [`Engine::gather_usage`], used by quotes and simulations
//! today and by invoicing next, so that every figure a customer is billed on
//! is gathered the same way:
//!
//! - a charge on meter `m` with group `g` reads `m`'s aggregate for the
//!   customer over `[period.start 00:00 UTC, period.end 00:00 UTC)`, from the
//!   stored aggregates of the read model. The query filters on `g` and does
//!   not split by group, so the answer is one figure over every matching
//!   event: for `sum` and `count` that is the sum of the groups' figures, and
//!   for `max`, `min`, `unique_count` and `latest` it is the figure of the
//!   events together (the largest of all, the distinct values of all) — not a
//!   sum of per-group figures, which would count a user active in two regions
//!   twice. No matching event is a quantity of zero.
//! - a percentage charge reads each matching event's value (one transaction
//!   per event), in journal order, from the journal's raw events, as a
//!   recomputation does (`metering::stored`'s scan): aggregates keep no
//!   single values. Its quantity is their sum.
//!
//! Every figure is read at one journal length (`as_of_seq`): the stored
//! aggregates under one lock of the read model, and the raw events of the
//! entries before that length. Several plans can be gathered together, so
//! that a simulation compares two plans on exactly the same usage.

use super::ChargeUsage;
use crate::engine::Engine;
use crate::error::{LedgerError, Result, StoreError};
use crate::metering::aggregate::{AggregateResult, Window};
use crate::metering::catalog::{version_at, MeterVersion};
use crate::metering::event::{meter_event, Observation, FUTURE_SKEW_MAX_NS};
use crate::metering::stored::UsageQuery;
use crate::metering::{EventOutcome, ValidationContext};
use crate::store::read_model::ReadModel;
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use tally_core::billing::UsageDigest;
use tally_core::calendar::Period;
use tally_core::entry::{EntryBody, TimestampNs, UsageRecorded};
use tally_core::error_code::ErrorCode;
use tally_core::meter::quoted;
use tally_core::plan::{PlanSpec, Pricing};

/// One customer's usage under one plan: charge code → usage. Every metered
/// charge of the plan is present (a flat fee reads no usage).
pub type CustomerUsage = BTreeMap<String, ChargeUsage>;

/// Usage gathered at one journal length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatheredUsage {
    /// The journal length the figures reflect: every entry before it, none
    /// after.
    pub as_of_seq: u64,
    /// Per plan, in the order asked: customer id → its usage. Every customer
    /// asked for is present.
    pub plans: Vec<BTreeMap<String, CustomerUsage>>,
}

/// Up to this many customers, each is queried on its own; beyond, one query
/// over every customer is cheaper than that many.
const CUSTOMER_QUERIES_MAX: usize = 16;

/// The window of timestamps a period of days covers: from the first day's
/// 00:00 UTC to the end day's (exclusive).
pub fn period_window(period: Period) -> std::result::Result<Window, LedgerError> {
    let invalid = || {
        LedgerError::new(
            ErrorCode::PeriodInvalid,
            "period_end",
            format!("period {period} is not a range of days usage can be timestamped in"),
        )
    };
    let from = period.start.start_ns().ok_or_else(invalid)?;
    let to = period.end.start_ns().ok_or_else(invalid)?;
    Window::new(from, to).map_err(|_| invalid())
}

/// A percentage charge whose transactions a journal scan collects.
struct TransactionsJob {
    plan: usize,
    charge: String,
    meter: String,
    group: BTreeMap<String, String>,
    /// Every version of the meter, oldest first (events are measured against
    /// the version of their entry).
    versions: Vec<MeterVersion>,
}

/// Whether a metered event (group values in `spec_group_by` order) is in
/// the charge's group; a property the meter version lacks has the value "",
/// as in the stored queries.
fn in_group(group: &BTreeMap<String, String>, spec_group_by: &[String], values: &[String]) -> bool {
    group.iter().all(|(property, wanted)| {
        let value = spec_group_by
            .iter()
            .position(|p| p == property)
            .and_then(|position| values.get(position))
            .map_or("", String::as_str);
        value == wanted
    })
}

fn overflow(customer: &str, charge: &str) -> LedgerError {
    LedgerError::new(
        ErrorCode::AmountOverflow,
        "",
        format!(
            "the usage of customer {} for charge {} overflows",
            quoted(customer),
            quoted(charge)
        ),
    )
}

/// What [`Engine::stored_usage`] read under one lock of the read model: the
/// stored aggregates' figures, and what the journal scan of percentage
/// charges still has to read (without the lock).
pub struct StoredUsage {
    window: Window,
    as_of_seq: u64,
    gathered: Vec<BTreeMap<String, CustomerUsage>>,
    jobs: Vec<TransactionsJob>,
    usage_entries: Vec<u64>,
}

impl Engine {
    /// The usage of `customers` for every metered charge of each of `plans`
    /// over `period`, all read at one journal length. The plans' meters must
    /// exist (a published or checked plan's do); customers need not have any
    /// usage.
    pub fn gather_usage(
        &self,
        plans: &[&PlanSpec],
        period: Period,
        customers: &[String],
    ) -> Result<GatheredUsage> {
        let stored = {
            let model = self.store.read_model();
            self.stored_usage(&model, plans, period, customers)?
        };
        self.finish_usage(stored, customers)
    }

    /// The first half of [`Engine::gather_usage`], under the caller's lock of
    /// the read model (`model`), so that a caller that also chose its plans and
    /// customers under that lock reads everything at one journal length.
    pub(crate) fn stored_usage(
        &self,
        model: &ReadModel,
        plans: &[&PlanSpec],
        period: Period,
        customers: &[String],
    ) -> Result<StoredUsage> {
        self.stored_usage_in(model, plans, period_window(period)?, customers)
    }

    /// [`Engine::stored_usage`] over a window of instants (a customer's days
    /// in its own time zone).
    pub(crate) fn stored_usage_in(
        &self,
        model: &ReadModel,
        plans: &[&PlanSpec],
        window: Window,
        customers: &[String],
    ) -> Result<StoredUsage> {
        let wanted: HashSet<&str> = customers.iter().map(String::as_str).collect();
        let empty: CustomerUsage = BTreeMap::new();
        let mut gathered: Vec<BTreeMap<String, CustomerUsage>> = plans
            .iter()
            .map(|_| {
                customers
                    .iter()
                    .map(|customer| (customer.clone(), empty.clone()))
                    .collect()
            })
            .collect();
        let mut jobs = Vec::new();
        let catalog = &model.usage.catalog;
        // Each (meter, group) is read once however many plans and charges
        // use it: a simulation's two plans mostly read the same meters, and
        // reading the buckets is nearly all of its time (docs/benchmarks.md).
        let mut answered: BTreeMap<(&str, &BTreeMap<String, String>), Vec<AggregateResult>> =
            BTreeMap::new();
        for (plan_index, plan) in plans.iter().enumerate() {
            for charge in &plan.charges {
                let Some(meter_code) = &charge.meter else {
                    continue;
                };
                let meter = catalog.meter(meter_code).ok_or_else(|| {
                    LedgerError::new(
                        ErrorCode::MeterNotFound,
                        "",
                        format!("no meter {}", quoted(meter_code)),
                    )
                })?;
                for usage in gathered[plan_index].values_mut() {
                    usage.insert(charge.code.clone(), ChargeUsage::default());
                }
                if matches!(charge.pricing, Pricing::Percentage { .. }) {
                    jobs.push(TransactionsJob {
                        plan: plan_index,
                        charge: charge.code.clone(),
                        meter: meter_code.clone(),
                        group: charge.group.clone(),
                        versions: catalog.meter_versions(meter_code).to_vec(),
                    });
                    continue;
                }
                let aggregation = meter.spec.aggregation;
                let filters = charge
                    .group
                    .iter()
                    .map(|(property, value)| (property.clone(), BTreeSet::from([value.clone()])))
                    .collect();
                let query = |customer: Option<&String>| UsageQuery {
                    meter: meter_code.clone(),
                    customer: customer.cloned(),
                    window,
                    filters: BTreeMap::clone(&filters),
                    group_by: Vec::new(),
                };
                let read = (meter_code.as_str(), &charge.group);
                if let std::collections::btree_map::Entry::Vacant(entry) = answered.entry(read) {
                    let results = if customers.len() <= CUSTOMER_QUERIES_MAX {
                        customers
                            .iter()
                            .map(|customer| model.usage.query(&query(Some(customer))))
                            .collect::<std::result::Result<Vec<_>, _>>()?
                    } else {
                        vec![model.usage.query(&query(None))?]
                    };
                    entry.insert(results);
                }
                let usage = &mut gathered[plan_index];
                for result in &answered[&read] {
                    for (key, aggregate) in &result.groups {
                        if !wanted.contains(key.customer.as_str()) {
                            continue;
                        }
                        let quantity = aggregate.value(aggregation).unwrap_or_default();
                        if let Some(charges) = usage.get_mut(&key.customer) {
                            charges.insert(
                                charge.code.clone(),
                                ChargeUsage {
                                    quantity,
                                    transactions: Vec::new(),
                                },
                            );
                        }
                    }
                }
            }
        }
        // The committed length cannot move while the read model is
        // locked: the publisher raises it under the write lock.
        let as_of_seq = self.store.committed();
        let usage_entries = if jobs.is_empty() {
            Vec::new()
        } else {
            let end = model
                .usage
                .usage_entries
                .partition_point(|&seq| seq < as_of_seq);
            model.usage.usage_entries[..end].to_vec()
        };
        Ok(StoredUsage {
            window,
            as_of_seq,
            gathered,
            jobs,
            usage_entries,
        })
    }

    /// The second half of [`Engine::gather_usage`], without the lock: the
    /// percentage charges' transactions, from the journal before `as_of_seq`.
    pub(crate) fn finish_usage(
        &self,
        stored: StoredUsage,
        customers: &[String],
    ) -> Result<GatheredUsage> {
        let StoredUsage {
            window,
            as_of_seq,
            mut gathered,
            jobs,
            usage_entries,
        } = stored;
        if !jobs.is_empty() {
            let wanted: HashSet<&str> = customers.iter().map(String::as_str).collect();
            self.scan_transactions(&jobs, window, &wanted, &usage_entries, &mut gathered)?;
        }
        Ok(GatheredUsage {
            as_of_seq,
            plans: gathered,
        })
    }

    /// Collects the percentage charges' transactions from the usage entries
    /// `usage_entries` (ascending seqs, all before the gathering's length).
    fn scan_transactions(
        &self,
        jobs: &[TransactionsJob],
        window: Window,
        wanted: &HashSet<&str>,
        usage_entries: &[u64],
        gathered: &mut [BTreeMap<String, CustomerUsage>],
    ) -> Result<()> {
        let context = ValidationContext::any_time();
        each_usage_entry(
            &self.store,
            usage_entries,
            window.from(),
            |seq, recorded| {
                for job in jobs {
                    collect(job, seq, &recorded, window, wanted, &context, gathered)?;
                }
                Ok(())
            },
        )
    }
}

/// Calls `visit` with each usage entry of `usage_entries` (ascending
/// seqs) that may hold events timestamped at or after `from`, in journal
/// order, decoded.
fn each_usage_entry(
    store: &Store,
    usage_entries: &[u64],
    from: TimestampNs,
    mut visit: impl FnMut(u64, UsageRecorded) -> Result<()>,
) -> Result<()> {
    // An entry holds events timestamped at most FUTURE_SKEW_MAX_NS after
    // it was recorded, so entries recorded before `from` less that skew
    // hold none of the events wanted: the scan starts after them
    // (recorded_at increases along the journal).
    let earliest = from.saturating_sub(FUTURE_SKEW_MAX_NS);
    let start = first_recorded_at_or_after(store, usage_entries, earliest)?;
    let entries = &usage_entries[start..];
    let Some(&first) = entries.first() else {
        return Ok(());
    };
    let last = entries[entries.len() - 1];
    for row in store.journal_rows(first) {
        let (seq, _, canonical) = row?;
        if seq > last {
            break;
        }
        if entries.binary_search(&seq).is_err() {
            continue;
        }
        let entry = tally_core::codec::decode(&canonical)
            .map_err(|e| StoreError::Corrupt(format!("entry {seq}: {e}")))?;
        if let EntryBody::UsageRecorded(recorded) = entry.body {
            visit(seq, recorded)?;
        }
    }
    Ok(())
}

/// The index in `seqs` of the first entry recorded at or after `at`: a
/// binary search that reads each probed entry's `recorded_at` straight
/// from its canonical bytes (the format version byte, then `recorded_at`
/// as 8 bytes big endian: docs/journal-format.md §2, §4), without
/// decoding its events.
fn first_recorded_at_or_after(store: &Store, seqs: &[u64], at: TimestampNs) -> Result<usize> {
    let (mut low, mut high) = (0, seqs.len());
    while low < high {
        let middle = low + (high - low) / 2;
        let seq = seqs[middle];
        let (_, _, canonical) = store
            .journal_row(seq)?
            .ok_or_else(|| StoreError::Corrupt(format!("usage entry {seq} is missing")))?;
        let recorded_at = canonical
            .get(1..9)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map(i64::from_be_bytes)
            .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} is too short")))?;
        if recorded_at < at {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    Ok(low)
}

/// What one invoice line's usage digest selects: a meter's counted events
/// for some customers in a window, in a group (as a charge reads them).
#[derive(Debug, Clone)]
pub struct DigestJob {
    pub meter: String,
    pub group: BTreeMap<String, String>,
    pub window: Window,
    pub customers: HashSet<String>,
}

/// What a digest scan reads from the read model (under its lock): the
/// usage entries before the journal length, and each meter's versions.
pub struct DigestInputs {
    usage_entries: Vec<u64>,
    versions: BTreeMap<String, Vec<MeterVersion>>,
}

/// Each digest job's [`UsageDigest`] per customer (a customer without
/// events is absent).
pub type Digests = Vec<std::collections::HashMap<String, UsageDigest>>;

impl Engine {
    /// Each job's [`UsageDigest`] per customer, over the usage entries before
    /// `as_of_seq`: the events a charge rates, in journal order, as
    /// `tally_core::billing::UsageDigest` defines. One pass over the journal
    /// for every job.
    pub fn usage_digests(&self, jobs: &[DigestJob], as_of_seq: u64) -> Result<Digests> {
        let inputs = {
            let model = self.store.read_model();
            digest_inputs(&model, jobs, as_of_seq)
        };
        scan_digests(&self.store, jobs, inputs)
    }
}

/// The scan of [`Engine::usage_digests`] over `store`'s journal, without the
/// read model's lock: it can run on a thread of its own beside other reads.
pub(crate) fn scan_digests(
    store: &Store,
    jobs: &[DigestJob],
    inputs: DigestInputs,
) -> Result<Digests> {
    let mut digests: Digests = vec![std::collections::HashMap::new(); jobs.len()];
    let Some(from) = jobs.iter().map(|job| job.window.from()).min() else {
        return Ok(digests);
    };
    let mut by_meter: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, job) in jobs.iter().enumerate() {
        by_meter.entry(job.meter.as_str()).or_default().push(index);
    }
    let context = ValidationContext::any_time();
    each_usage_entry(store, &inputs.usage_entries, from, |seq, recorded| {
        for event in &recorded.events {
            let Some(indexes) = by_meter.get(event.meter.as_str()) else {
                continue;
            };
            let Some(version) = version_at(&inputs.versions[&event.meter], seq) else {
                continue;
            };
            let mut measured = None;
            for &index in indexes {
                let job = &jobs[index];
                if !job.window.contains(event.timestamp)
                    || !job.customers.contains(event.customer.as_str())
                {
                    continue;
                }
                let metered =
                    measured.get_or_insert_with(|| meter_event(&version.spec, &context, event));
                let Ok(EventOutcome::Counted(metered)) = metered else {
                    continue;
                };
                if !in_group(&job.group, &version.spec.group_by, &metered.group) {
                    continue;
                }
                let hash = tally_core::usage::event_hash(event);
                // The customer's key is made once, not per event.
                match digests[index].get_mut(event.customer.as_str()) {
                    Some(digest) => digest.add(&hash),
                    None => {
                        let mut digest = UsageDigest::empty(job.window.from(), job.window.to());
                        digest.add(&hash);
                        digests[index].insert(event.customer.clone(), digest);
                    }
                }
            }
        }
        Ok(())
    })?;
    Ok(digests)
}

/// The inputs of a digest scan, read under the caller's lock of the read
/// model at the journal length `as_of_seq`.
pub(crate) fn digest_inputs(model: &ReadModel, jobs: &[DigestJob], as_of_seq: u64) -> DigestInputs {
    let end = model
        .usage
        .usage_entries
        .partition_point(|&seq| seq < as_of_seq);
    let mut versions: BTreeMap<String, Vec<MeterVersion>> = BTreeMap::new();
    for job in jobs {
        if !versions.contains_key(&job.meter) {
            let found = model.usage.catalog.meter_versions(&job.meter).to_vec();
            versions.insert(job.meter.clone(), found);
        }
    }
    DigestInputs {
        usage_entries: model.usage.usage_entries[..end].to_vec(),
        versions,
    }
}

/// Adds the transactions one entry holds for one percentage charge.
fn collect(
    job: &TransactionsJob,
    seq: u64,
    recorded: &UsageRecorded,
    window: Window,
    wanted: &HashSet<&str>,
    context: &ValidationContext,
    gathered: &mut [BTreeMap<String, CustomerUsage>],
) -> Result<()> {
    let Some(version) = version_at(&job.versions, seq) else {
        return Ok(());
    };
    for event in &recorded.events {
        if event.meter != job.meter
            || !window.contains(event.timestamp)
            || !wanted.contains(event.customer.as_str())
        {
            continue;
        }
        let Ok(EventOutcome::Counted(metered)) = meter_event(&version.spec, context, event) else {
            continue;
        };
        if !in_group(&job.group, &version.spec.group_by, &metered.group) {
            continue;
        }
        let Observation::Value(value) = metered.observation else {
            continue;
        };
        let Some(usage) = gathered[job.plan]
            .get_mut(&event.customer)
            .and_then(|charges| charges.get_mut(&job.charge))
        else {
            continue;
        };
        usage.quantity = usage
            .quantity
            .checked_add(value)
            .ok_or_else(|| overflow(&event.customer, &job.charge))?;
        usage.transactions.push(value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_matches_by_the_versions_own_positions() {
        // Goal: a charge's group is matched against each meter version's own
        // group_by order; a property the version lacks has the value "".
        let group = BTreeMap::from([("region".to_string(), "eu".to_string())]);
        let by = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let values = |v: &[&str]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(in_group(
            &group,
            &by(&["tier", "region"]),
            &values(&["gold", "eu"])
        ));
        assert!(!in_group(
            &group,
            &by(&["tier", "region"]),
            &values(&["eu", "us"])
        ));
        assert!(!in_group(&group, &by(&["tier"]), &values(&["eu"])));
        assert!(in_group(&BTreeMap::new(), &by(&[]), &values(&[])));
    }

    #[test]
    fn a_period_is_its_days_from_midnight_utc() {
        // Goal: [2026-10-01, 2026-11-01) covers October's instants, UTC.
        let period = Period {
            start: "2026-10-01".parse().unwrap(),
            end: "2026-11-01".parse().unwrap(),
        };
        let window = period_window(period).unwrap();
        assert_eq!(window.from(), 1_790_812_800_000_000_000);
        assert_eq!(
            window.to() - window.from(),
            31 * tally_core::calendar::DAY_NS
        );
    }
}
