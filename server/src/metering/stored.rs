//! Stored usage: the read model's fold of metering entries, and the queries
//! that read it.
//!
//! Every counted event is folded into a per-minute bucket of its meter,
//! customer and meter version ([`Aggregates`] over that minute). A query over
//! whole minutes merges the buckets inside its window ([`Aggregates::absorb`]),
//! re-keyed by its customer, filters and group-by. The same query can also be
//! answered by a scan of the raw events ([`Scan`]); both go through the same
//! selection and give the same answer (tested below and end to end). Buckets
//! are per meter *version* because a version may change the group-by: a
//! bucket's group values are those of its version's `group_by`.

use super::aggregate::{AggregateError, AggregateResult, Aggregates, GroupKey, Window};
use super::catalog::{version_at, Catalog, MeterVersion};
use super::claims::EventClaims;
use super::event::meter_recorded;
pub use super::series::MINUTE_NS;
use crate::error::LedgerError;
use crate::ledger::state::FastMap;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tally_core::entry::{EntryBody, TimestampNs, UsageRecorded};
use tally_core::error_code::ErrorCode;
use tally_core::meter::{quoted, MeterSpec};

/// A late event's place, and the customer's closed period when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateRef {
    pub seq: u64,
    pub index: u32,
    pub customer: String,
    pub closed_through: TimestampNs,
}

/// One customer's buckets of one meter: (minute start, meter version) → state.
type Buckets = BTreeMap<(TimestampNs, u32), Aggregates>;

#[derive(Debug, Default)]
pub struct UsageModel {
    pub catalog: Catalog,
    /// Meter code → customer → buckets.
    buckets: FastMap<String, FastMap<String, Buckets>>,
    /// Seqs of the `usage_recorded` entries, ascending (what a scan reads).
    pub usage_entries: Vec<u64>,
    /// Late events in journal order.
    pub late: Vec<LateRef>,
    /// The writer's index of recorded ids, shared (see `claims`).
    pub claims: Arc<EventClaims>,
}

/// The start of the minute holding `timestamp`; `None` for the first
/// instants of `i64`, which have no whole minute (ingestion refuses times
/// before the epoch, so a recorded event always has one).
fn minute_of(timestamp: TimestampNs) -> Option<TimestampNs> {
    timestamp.checked_sub(timestamp.rem_euclid(MINUTE_NS))
}

impl UsageModel {
    /// Folds one entry in; entries other than metering ones are ignored.
    pub fn apply(&mut self, seq: u64, recorded_at: TimestampNs, body: &EntryBody) {
        match body {
            EntryBody::CustomerCreated(_)
            | EntryBody::MeterDefined(_)
            | EntryBody::UsagePeriodClosed { .. } => {
                let applied = self.catalog.apply(seq, recorded_at, body);
                debug_assert!(
                    applied.is_ok(),
                    "the writer's state applied it: {applied:?}"
                );
            }
            EntryBody::UsageRecorded(recorded) => self.apply_usage(seq, recorded),
            _ => {}
        }
    }

    fn apply_usage(&mut self, seq: u64, recorded: &UsageRecorded) {
        self.usage_entries.push(seq);
        for &index in &recorded.late {
            let event = &recorded.events[index as usize];
            let closed_through = self
                .catalog
                .customer(&event.customer)
                .and_then(|customer| customer.closed_through)
                .unwrap_or(TimestampNs::MIN);
            self.late.push(LateRef {
                seq,
                index,
                customer: event.customer.clone(),
                closed_through,
            });
        }
        for event in &recorded.events {
            let Some(meter) = self.catalog.meter_at(&event.meter, seq) else {
                debug_assert!(false, "events name defined meters");
                continue;
            };
            let Some(metered) = meter_recorded(&meter.spec, event) else {
                continue;
            };
            let Some(minute) = minute_of(metered.timestamp) else {
                debug_assert!(false, "a recorded event has a whole minute");
                continue;
            };
            // Looked up before inserted: a key is copied once per meter, not per event.
            if !self.buckets.contains_key(&event.meter) {
                self.buckets.insert(event.meter.clone(), FastMap::default());
            }
            let Some(customers) = self.buckets.get_mut(&event.meter) else {
                continue;
            };
            let buckets = match customers.get_mut(&event.customer) {
                Some(buckets) => buckets,
                None => customers.entry(event.customer.clone()).or_default(),
            };
            let bucket = buckets.entry((minute, meter.version)).or_insert_with(|| {
                let window = Window::new(minute, minute.saturating_add(MINUTE_NS))
                    .expect("a minute is a window");
                Aggregates::new(&meter.spec, window)
            });
            let added = bucket.add(&metered);
            debug_assert!(added, "an event counts in its own minute");
        }
    }
}

/// A checked aggregation query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub meter: String,
    /// `None`: every customer.
    pub customer: Option<String>,
    pub window: Window,
    /// Group-by property → accepted values.
    pub filters: BTreeMap<String, BTreeSet<String>>,
    /// The result's group-by properties, in this order.
    pub group_by: Vec<String>,
}

/// A query's raw fields, before [`check_query`].
#[derive(Debug, Clone, Default)]
pub struct QueryFields {
    pub meter: String,
    pub customer: String,
    pub from: TimestampNs,
    pub to: TimestampNs,
    pub filters: Vec<(String, Vec<String>)>,
    pub group_by: Vec<String>,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> LedgerError {
    LedgerError::new(ErrorCode::FieldInvalid, field, message)
}

/// Checks a query against the catalog: a known meter, a window of whole
/// minutes, and filters and group-by on the meter's group-by properties.
pub fn check_query(catalog: &Catalog, fields: QueryFields) -> Result<UsageQuery, LedgerError> {
    if fields.meter.is_empty() {
        return Err(LedgerError::new(
            ErrorCode::FieldRequired,
            "meter",
            "meter is required",
        ));
    }
    let Some(meter) = catalog.meter(&fields.meter) else {
        return Err(LedgerError::new(
            ErrorCode::MeterNotFound,
            "meter",
            format!("no meter {}", quoted(&fields.meter)),
        ));
    };
    let window = check_window(fields.from, fields.to)?;
    let known = |field: String, property: &str| {
        if meter.spec.group_by.iter().any(|p| p == property) {
            Ok(())
        } else {
            Err(invalid(
                field,
                format!(
                    "{} is not a group-by property of meter {} ({})",
                    quoted(property),
                    quoted(&meter.spec.code),
                    meter.spec.group_by.join(", ")
                ),
            ))
        }
    };
    let mut group_by = Vec::with_capacity(fields.group_by.len());
    for (i, property) in fields.group_by.into_iter().enumerate() {
        known(format!("group_by[{i}]"), &property)?;
        if group_by.contains(&property) {
            return Err(invalid(
                format!("group_by[{i}]"),
                format!("{} is listed twice", quoted(&property)),
            ));
        }
        group_by.push(property);
    }
    let mut filters = BTreeMap::new();
    for (i, (property, values)) in fields.filters.into_iter().enumerate() {
        known(format!("filters[{i}].property"), &property)?;
        if values.is_empty() {
            return Err(LedgerError::new(
                ErrorCode::FieldRequired,
                format!("filters[{i}].values"),
                "a filter needs at least one value",
            ));
        }
        if filters
            .insert(property.clone(), values.into_iter().collect())
            .is_some()
        {
            return Err(invalid(
                format!("filters[{i}].property"),
                format!("{} is filtered twice", quoted(&property)),
            ));
        }
    }
    Ok(UsageQuery {
        meter: fields.meter,
        customer: (!fields.customer.is_empty()).then_some(fields.customer),
        window,
        filters,
        group_by,
    })
}

/// A window of whole minutes, `from < to`.
pub fn check_window(from: TimestampNs, to: TimestampNs) -> Result<Window, LedgerError> {
    for (field, at) in [("from", from), ("to", to)] {
        if at.rem_euclid(MINUTE_NS) != 0 {
            return Err(LedgerError::new(
                ErrorCode::WindowInvalid,
                field,
                format!("{field} must be a whole minute (usage is stored per minute)"),
            ));
        }
    }
    Window::new(from, to)
        .map_err(|error| LedgerError::new(ErrorCode::WindowInvalid, "to", error.to_string()))
}

/// How a query maps the groups of one meter version.
struct Selection<'a> {
    query: &'a UsageQuery,
    /// Per filter: the position of its property in the version's group_by
    /// (`None`: the version lacks it, so its value is "").
    filters: Vec<(Option<usize>, &'a BTreeSet<String>)>,
    /// Per result group-by property: its position in the version's group_by.
    keep: Vec<Option<usize>>,
}

impl<'a> Selection<'a> {
    fn new(query: &'a UsageQuery, spec: &MeterSpec) -> Selection<'a> {
        let position = |property: &str| spec.group_by.iter().position(|p| p == property);
        Selection {
            query,
            filters: query
                .filters
                .iter()
                .map(|(property, values)| (position(property), values))
                .collect(),
            keep: query.group_by.iter().map(|p| position(p)).collect(),
        }
    }

    fn rekey(&self, key: &GroupKey) -> Option<GroupKey> {
        if self
            .query
            .customer
            .as_ref()
            .is_some_and(|customer| *customer != key.customer)
        {
            return None;
        }
        let value = |position: Option<usize>| {
            position
                .and_then(|p| key.group.get(p))
                .map_or("", String::as_str)
        };
        if !self
            .filters
            .iter()
            .all(|(position, values)| values.contains(value(*position)))
        {
            return None;
        }
        Some(GroupKey {
            customer: key.customer.clone(),
            group: self
                .keep
                .iter()
                .map(|position| value(*position).to_string())
                .collect(),
        })
    }
}

fn overflow(error: AggregateError) -> LedgerError {
    match error {
        AggregateError::Overflow { .. } => {
            LedgerError::new(ErrorCode::AmountOverflow, "", error.to_string())
        }
        other => LedgerError::new(ErrorCode::Internal, "", other.to_string()),
    }
}

impl UsageModel {
    /// The query's answer from the stored minute buckets.
    pub fn query(&self, query: &UsageQuery) -> Result<AggregateResult, LedgerError> {
        let current = self
            .catalog
            .meter(&query.meter)
            .ok_or_else(|| LedgerError::new(ErrorCode::MeterNotFound, "meter", "no such meter"))?;
        let mut result = Aggregates::new(&current.spec, query.window);
        let versions = self.catalog.meter_versions(&query.meter);
        let selections: BTreeMap<u32, Selection> = versions
            .iter()
            .map(|version| (version.version, Selection::new(query, &version.spec)))
            .collect();
        let Some(customers) = self.buckets.get(&query.meter) else {
            return result.result().map_err(overflow);
        };
        let absorb = |into: &mut Aggregates, buckets: &Buckets| -> Result<(), LedgerError> {
            let range = (query.window.from(), 0)..(query.window.to(), 0);
            for ((_, version), bucket) in buckets.range(range) {
                let selection = &selections[version];
                into.absorb(bucket, |key| selection.rekey(key))
                    .map_err(overflow)?;
            }
            Ok(())
        };
        match &query.customer {
            Some(customer) => {
                if let Some(buckets) = customers.get(customer) {
                    absorb(&mut result, buckets)?;
                }
            }
            None => {
                // A customer's buckets are merged on their own first, into a
                // map of that customer's few groups, and then into the result
                // once: not one lookup per bucket in a map of every customer.
                for buckets in customers.values() {
                    let mut customer = Aggregates::new(&current.spec, query.window);
                    absorb(&mut customer, buckets)?;
                    result
                        .absorb(&customer, |key| Some(key.clone()))
                        .map_err(overflow)?;
                }
            }
        }
        result.result().map_err(overflow)
    }
}

/// A scan fed one entry at a time, so that a recomputation holds one entry
/// in memory, not the journal's events.
pub struct Scan<'c> {
    /// Every version of the query's meter, oldest first.
    versions: &'c [MeterVersion],
    query: &'c UsageQuery,
    windows: &'c [Window],
    results: Vec<Aggregates>,
    selections: BTreeMap<u32, Selection<'c>>,
}

impl<'c> Scan<'c> {
    /// A scan for `query` per bucket of `windows` (adjacent, ascending, inside
    /// the query's), given every version of the query's meter, oldest first
    /// (`Catalog::meter_versions`).
    pub fn new(
        versions: &'c [MeterVersion],
        query: &'c UsageQuery,
        windows: &'c [Window],
    ) -> Result<Scan<'c>, LedgerError> {
        let current = versions
            .last()
            .ok_or_else(|| LedgerError::new(ErrorCode::MeterNotFound, "meter", "no such meter"))?;
        debug_assert_eq!(current.spec.code, query.meter);
        Ok(Scan {
            versions,
            query,
            windows,
            results: windows
                .iter()
                .map(|window| Aggregates::new(&current.spec, *window))
                .collect(),
            selections: BTreeMap::new(),
        })
    }

    /// Adds the events of the `usage_recorded` entry at `seq`.
    pub fn feed(&mut self, seq: u64, recorded: &UsageRecorded) {
        for event in &recorded.events {
            if event.meter != self.query.meter || !self.query.window.contains(event.timestamp) {
                continue;
            }
            let bucket = self
                .windows
                .partition_point(|window| window.to() <= event.timestamp);
            let Some(result) = self.results.get_mut(bucket) else {
                continue;
            };
            let Some(version) = version_at(self.versions, seq) else {
                continue;
            };
            let selection = self
                .selections
                .entry(version.version)
                .or_insert_with(|| Selection::new(self.query, &version.spec));
            let Some(mut metered) = meter_recorded(&version.spec, event) else {
                continue;
            };
            let key = GroupKey {
                customer: std::mem::take(&mut metered.customer),
                group: std::mem::take(&mut metered.group),
            };
            let Some(key) = selection.rekey(&key) else {
                continue;
            };
            metered.customer = key.customer;
            metered.group = key.group;
            // The state is keyed by the current version's code and
            // aggregation, which every version shares.
            let added = result.add(&metered);
            debug_assert!(added, "a selected event is inside its bucket");
        }
    }

    pub fn finish(self) -> Result<Vec<AggregateResult>, LedgerError> {
        self.results
            .iter()
            .map(|result| result.result().map_err(overflow))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tally_core::entry::{CustomerCreated, MeterDefined};
    use tally_core::meter::Aggregation;
    use tally_core::usage::UsageEvent;

    const CUSTOMERS: [&str; 3] = ["acme", "beta", "zeta"];
    const REGIONS: [&str; 3] = ["eu", "us", "ap"];

    fn spec(aggregation: Aggregation, filter_out: bool) -> MeterSpec {
        MeterSpec {
            code: "m".into(),
            aggregation,
            value_property: (aggregation == Aggregation::UniqueCount).then(|| "user".into()),
            filters: if filter_out {
                BTreeMap::from([("region".into(), vec!["eu".into(), "us".into()])])
            } else {
                BTreeMap::new()
            },
            group_by: vec!["region".into(), "tier".into()],
            grace_period_seconds: 0,
        }
    }

    /// (customer, region, tier, minute, seconds, value, user) per event.
    type Raw = (usize, usize, bool, i64, i64, i64, u8);

    fn event(i: usize, raw: &Raw) -> UsageEvent {
        let (customer, region, tier, minute, second, value, user) = *raw;
        UsageEvent {
            event_id: format!("e-{i}"),
            customer: CUSTOMERS[customer].into(),
            meter: "m".into(),
            timestamp: minute * MINUTE_NS + second * 1_000_000_000,
            value: Some(format!("{}.{:02}", value / 100, value.rem_euclid(100))),
            properties: BTreeMap::from([
                ("region".to_string(), REGIONS[region].to_string()),
                (
                    "tier".to_string(),
                    if tier { "gold" } else { "free" }.to_string(),
                ),
                ("user".to_string(), format!("u{user}")),
            ]),
        }
    }

    /// The query's answer from a scan of `entries`.
    fn scan<'e>(
        catalog: &Catalog,
        query: &UsageQuery,
        entries: impl IntoIterator<Item = (u64, &'e UsageRecorded)>,
    ) -> Result<AggregateResult, LedgerError> {
        let windows = [query.window];
        let mut scan = Scan::new(catalog.meter_versions(&query.meter), query, &windows)?;
        for (seq, recorded) in entries {
            scan.feed(seq, recorded);
        }
        Ok(scan.finish()?.remove(0))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn stored_aggregates_answer_what_a_scan_of_the_events_answers(
            aggregation in prop::sample::select(Aggregation::ALL.to_vec()),
            raws in prop::collection::vec(
                (0..3usize, 0..3usize, any::<bool>(), 0..30i64, 0..60i64, 0..100_000i64, 0..5u8),
                1..120,
            ),
            split in 0..120usize,
            from in 0..30i64,
            span in 1..31i64,
            customer in prop::option::of(0..3usize),
            group_by in prop::sample::subsequence(vec!["tier", "region"], 0..=2),
            filter in prop::option::of(prop::sample::subsequence(REGIONS.to_vec(), 1..=2)),
        ) {
            // Goal: for any events (recorded in two batches, the second under a
            // second meter version that filters regions) and any query of whole
            // minutes, customer, filters and group-by, the stored buckets and a
            // scan of the raw events give the same answer.
            let mut model = UsageModel::default();
            let mut seq = 0u64;
            let mut entries = Vec::new();
            let mut apply = |model: &mut UsageModel, body: EntryBody| {
                seq += 1;
                model.apply(seq, seq as i64, &body);
                if let EntryBody::UsageRecorded(recorded) = body {
                    entries.push((seq, recorded));
                }
            };
            for customer in CUSTOMERS {
                apply(&mut model, EntryBody::CustomerCreated(CustomerCreated {
                    customer_id: customer.into(), name: String::new(), metadata: Default::default(),
                }));
            }
            let events: Vec<UsageEvent> = raws.iter().enumerate().map(|(i, raw)| event(i, raw)).collect();
            let split = split.min(events.len());
            for (version, part) in [(1u32, &events[..split]), (2, &events[split..])] {
                apply(&mut model, EntryBody::MeterDefined(MeterDefined {
                    version, spec: spec(aggregation, version == 2), description: String::new(),
                }));
                if !part.is_empty() {
                    apply(&mut model, EntryBody::UsageRecorded(UsageRecorded {
                        events_root: tally_audit::usage::events_root(part),
                        events: part.to_vec(),
                        late: Vec::new(),
                    }));
                }
            }
            let fields = QueryFields {
                meter: "m".into(),
                customer: customer.map(|c| CUSTOMERS[c].to_string()).unwrap_or_default(),
                from: from * MINUTE_NS,
                to: (from + span) * MINUTE_NS,
                filters: filter
                    .map(|regions| vec![("region".to_string(), regions.iter().map(|r| r.to_string()).collect())])
                    .unwrap_or_default(),
                group_by: group_by.iter().map(|p| p.to_string()).collect(),
            };
            let query = check_query(&model.catalog, fields).unwrap();
            let stored = model.query(&query).unwrap();
            let scanned = scan(&model.catalog, &query, entries.iter().map(|(s, r)| (*s, r))).unwrap();
            prop_assert_eq!(&stored, &scanned);
            // The stored answer covers something whenever a matching event exists.
            let any = events.iter().enumerate().any(|(i, e)| {
                query.window.contains(e.timestamp)
                    && query.customer.as_ref().is_none_or(|c| *c == e.customer)
                    && (i < split || e.properties["region"] != "ap")
                    && query.filters.get("region").is_none_or(|v| v.contains(&e.properties["region"]))
            });
            prop_assert_eq!(any, !stored.groups.is_empty());
        }
    }
}
