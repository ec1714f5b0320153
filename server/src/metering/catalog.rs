//! Customers and meter versions as the journal defines them: the fold of
//! `customer_created`, `meter_defined` and `usage_period_closed` entries.
//!
//! One type for the writer's state and for the read model, so that both
//! answer "which meter version, which customer, closed through when" from the
//! same fold of the same entries.

use crate::ledger::state::FastMap;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use tally_core::entry::{CustomerCreated, EntryBody, MeterDefined, TimestampNs};
use tally_core::meter::MeterSpec;

/// A customer as the journal describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerState {
    pub created: CustomerCreated,
    pub created_seq: u64,
    /// The end of the last closed usage period, and its `usage_period_closed` entry.
    pub closed_through: Option<TimestampNs>,
    pub closed_seq: Option<u64>,
}

/// One version of a meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterVersion {
    pub version: u32,
    pub spec: MeterSpec,
    pub description: String,
    pub seq: u64,
    pub defined_at: TimestampNs,
}

/// Of a meter's versions (oldest first), the one entries at `seq` were
/// measured against: the latest defined before `seq`.
pub fn version_at(versions: &[MeterVersion], seq: u64) -> Option<&MeterVersion> {
    let defined = versions.partition_point(|version| version.seq < seq);
    defined.checked_sub(1).map(|index| &versions[index])
}

#[derive(Debug, Default, Clone)]
pub struct Catalog {
    customers: FastMap<String, CustomerState>,
    /// The customers' ids in order: pages and "every customer" without a
    /// sort of them all each time (the map above serves ingestion's lookups).
    ids: BTreeSet<String>,
    /// Every version of every meter, oldest first, by code.
    meters: BTreeMap<String, Vec<MeterVersion>>,
}

impl Catalog {
    pub fn customer(&self, id: &str) -> Option<&CustomerState> {
        self.customers.get(id)
    }

    pub fn customers(&self) -> impl Iterator<Item = &CustomerState> {
        self.customers.values()
    }

    /// The customers with ids after `after` (exclusive), in id order.
    pub fn customers_after<'a>(&'a self, after: &str) -> impl Iterator<Item = &'a CustomerState> {
        self.ids
            .range::<str, _>((Bound::Excluded(after), Bound::Unbounded))
            .filter_map(|id| self.customers.get(id))
    }

    /// The current version of a meter.
    pub fn meter(&self, code: &str) -> Option<&MeterVersion> {
        self.meters.get(code).and_then(|versions| versions.last())
    }

    /// Every version of a meter, oldest first.
    pub fn meter_versions(&self, code: &str) -> &[MeterVersion] {
        self.meters.get(code).map(Vec::as_slice).unwrap_or_default()
    }

    /// The version of `code` that events recorded at `seq` were measured
    /// against: the latest defined before `seq`.
    pub fn meter_at(&self, code: &str, seq: u64) -> Option<&MeterVersion> {
        version_at(self.meters.get(code)?, seq)
    }

    /// The current version of every meter, by code.
    pub fn meters(&self) -> impl Iterator<Item = &MeterVersion> {
        self.meters.values().filter_map(|versions| versions.last())
    }

    /// Folds a catalog entry; other entries are ignored. `Err` names an entry
    /// that contradicts the catalog (a replayed journal that was not written
    /// by this ledger's rules).
    pub fn apply(
        &mut self,
        seq: u64,
        recorded_at: TimestampNs,
        body: &EntryBody,
    ) -> Result<(), String> {
        match body {
            EntryBody::CustomerCreated(created) => {
                if self.customers.contains_key(&created.customer_id) {
                    return Err(format!("customer {:?} exists", created.customer_id));
                }
                self.ids.insert(created.customer_id.clone());
                self.customers.insert(
                    created.customer_id.clone(),
                    CustomerState {
                        created: created.clone(),
                        created_seq: seq,
                        closed_through: None,
                        closed_seq: None,
                    },
                );
            }
            EntryBody::MeterDefined(MeterDefined {
                version,
                spec,
                description,
            }) => {
                let versions = self.meters.entry(spec.code.clone()).or_default();
                let expected = versions.len() as u32 + 1;
                if *version != expected {
                    return Err(format!(
                        "meter {:?} version {version}, expected {expected}",
                        spec.code
                    ));
                }
                if let Some(first) = versions.first() {
                    if first.spec.aggregation != spec.aggregation {
                        return Err(format!("meter {:?} changes its aggregation", spec.code));
                    }
                }
                versions.push(MeterVersion {
                    version: *version,
                    spec: spec.clone(),
                    description: description.clone(),
                    seq,
                    defined_at: recorded_at,
                });
            }
            EntryBody::UsagePeriodClosed {
                customer_id,
                through,
            } => {
                let customer = self
                    .customers
                    .get_mut(customer_id)
                    .ok_or_else(|| format!("customer {customer_id:?} does not exist"))?;
                if customer
                    .closed_through
                    .is_some_and(|closed| closed >= *through)
                {
                    return Err(format!(
                        "customer {customer_id:?}: period closed through {through} is not after the last"
                    ));
                }
                customer.closed_through = Some(*through);
                customer.closed_seq = Some(seq);
            }
            _ => {}
        }
        Ok(())
    }
}
