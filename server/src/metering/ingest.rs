//! Metering commands in, journal entries out: customers, meter versions,
//! closed periods and usage batches, checked against the writer's state.
//!
//! Ingestion is split in two so the single writer thread does little per
//! event:
//! - [`prepare_event`] runs on the caller's task (in parallel parts): the
//!   event's hash and its check against the meter version the caller sees;
//! - [`record_usage`] runs in the writer: customer, closed period, meter
//!   version still current (else the check is redone), and deduplication, then
//!   one `usage_recorded` entry for the accepted events. The ids are claimed
//!   when that entry is applied, inside the group whose one write makes it
//!   durable (`claims`).

use super::catalog::{Catalog, MeterVersion};
use super::claims::{content_of, id_key, Claim, IdKey};
use super::event::{event_counts, EventRejection, ValidationContext};
use super::series::MINUTE_NS;
use crate::error::LedgerError;
use crate::ledger::execute::Context;
use crate::ledger::state::{Journaled, LedgerState};
use crate::ledger::validate;
use tally_core::codec::ENTRY_BYTES_MAX;
use tally_core::entry::{
    CustomerCreated, Digest, Entry, EntryBody, Metadata, MeterDefined, TimestampNs, UsageRecorded,
};
use tally_core::error_code::ErrorCode;
use tally_core::meter::{quoted, MeterSpec, MeterSpecRejection};
use tally_core::usage::{event_hash, UsageEvent};

/// The most events one ingestion call may carry.
pub const INGEST_EVENTS_MAX: usize = 10_000;

/// The most bytes of events one `usage_recorded` entry holds; a call whose
/// events need more is recorded as several consecutive entries of one group.
const ENTRY_EVENT_BYTES_MAX: usize = ENTRY_BYTES_MAX - 64 * 1024;

/// The longest customer name and meter description, in bytes.
pub const NAME_BYTES_MAX: usize = 256;

/// What a customer is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerSpec {
    pub customer_id: String,
    pub name: String,
    pub metadata: Metadata,
}

/// An event as the caller's task leaves it for the writer.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub event: UsageEvent,
    pub hash: Digest,
    /// The claims index's key of the event id, and the event's Merkle leaf
    /// hash: computed here, in parallel, not by the writer.
    pub id_key: IdKey,
    pub leaf: tally_audit::Hash,
    /// The meter version the caller checked against (`None`: no such meter),
    /// and the check: whether the event counts, or the refusal.
    pub seen_version: Option<u32>,
    pub checked: Result<(u32, bool), LedgerError>,
}

/// A recorded event's place, and whether this call recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRecorded {
    pub seq: u64,
    pub index: u32,
    pub late: bool,
    pub counted: bool,
    /// Recorded by an earlier call (or earlier in this one) with the same content.
    pub duplicate: bool,
}

/// The context an event is checked in: no period bound (the writer checks the
/// customer's closed period itself).
fn unbounded(now: TimestampNs) -> ValidationContext {
    ValidationContext {
        now,
        earliest: TimestampNs::MIN,
    }
}

fn event_error(index: usize, error: super::EventError) -> LedgerError {
    let code = match error.reason {
        EventRejection::FieldMissing => ErrorCode::FieldRequired,
        EventRejection::FieldInvalid => ErrorCode::FieldInvalid,
        EventRejection::FieldTooLong => ErrorCode::FieldTooLong,
        EventRejection::ValueMissing => ErrorCode::ValueMissing,
        EventRejection::ValueNotNumeric => ErrorCode::ValueNotNumeric,
        EventRejection::ValueOutOfRange => ErrorCode::ValueOutOfRange,
        EventRejection::PropertyMissing => ErrorCode::PropertyMissing,
        EventRejection::TimestampInFuture => ErrorCode::TimestampInFuture,
        EventRejection::TimestampBeforeGrace => ErrorCode::TimestampBeforeGrace,
    };
    LedgerError::new(code, error.field, error.message).within(&format!("events[{index}]"))
}

/// Checks one event against the current version of its meter (`None`: the
/// meter does not exist).
fn check_event(
    meter: Option<&MeterVersion>,
    now: TimestampNs,
    index: usize,
    event: &UsageEvent,
) -> Result<(u32, bool), LedgerError> {
    let Some(meter) = meter else {
        return Err(if event.meter.is_empty() {
            LedgerError::new(
                ErrorCode::FieldRequired,
                format!("events[{index}].meter"),
                "meter is required",
            )
        } else {
            LedgerError::new(
                ErrorCode::MeterNotFound,
                format!("events[{index}].meter"),
                format!("no meter {}", quoted(&event.meter)),
            )
        });
    };
    // Usage is stored per whole minute since the epoch: an earlier time is no
    // usage time (and the first instants of `i64` have no whole minute).
    if event.timestamp < 0 {
        return Err(LedgerError::new(
            ErrorCode::FieldInvalid,
            format!("events[{index}].timestamp"),
            format!(
                "timestamp {} is before 1970-01-01T00:00:00Z",
                event.timestamp
            ),
        ));
    }
    event_counts(&meter.spec, &unbounded(now), event)
        .map(|counted| (meter.version, counted))
        .map_err(|error| event_error(index, error))
}

/// The caller's half of ingestion: hash and check one event against the
/// meter version the caller sees (`meter`; `None`: none of that code).
pub fn prepare_event(
    meter: Option<&MeterVersion>,
    now: TimestampNs,
    index: usize,
    event: UsageEvent,
) -> PreparedEvent {
    let hash = event_hash(&event);
    PreparedEvent {
        hash,
        id_key: id_key(&event.event_id),
        leaf: tally_audit::merkle::leaf_hash(&tally_audit::Blake3, &hash),
        seen_version: meter.map(|m| m.version),
        checked: check_event(meter, now, index, &event),
        event,
    }
}

/// Whether a recorded event counts: measured against the meter version of
/// its entry (`seq`; for an entry being built, the current version).
fn counted_when_recorded(catalog: &Catalog, seq: u64, event: &UsageEvent) -> bool {
    let meter = catalog
        .meter_at(&event.meter, seq)
        .or_else(|| catalog.meter(&event.meter));
    meter.is_some_and(|meter| {
        event_counts(&meter.spec, &ValidationContext::any_time(), event).unwrap_or(false)
    })
}

/// The encoded size of an event inside an entry (bincode, fixed-width).
fn encoded_len(event: &UsageEvent) -> usize {
    let text = |s: &str| 8 + s.len();
    text(&event.event_id)
        + text(&event.customer)
        + text(&event.meter)
        + 8
        + 1
        + event.value.as_deref().map_or(0, text)
        + 8
        + event
            .properties
            .iter()
            .map(|(name, value)| text(name) + text(value))
            .sum::<usize>()
}

/// A usage entry being filled.
#[derive(Default)]
struct Batch {
    events: Vec<UsageEvent>,
    leaves: Vec<tally_audit::Hash>,
    /// The claims made for the entry's events, in event order (see
    /// `LedgerState::prepare_claims`).
    claims: Vec<(IdKey, Claim)>,
    late: Vec<u32>,
    bytes: usize,
}

fn append(state: &mut LedgerState, ctx: &Context, body: EntryBody, out: &mut Vec<Journaled>) {
    let recorded_at = state.next_recorded_at(ctx.now);
    out.push(state.append(Entry {
        recorded_at,
        key_id: ctx.key_id.clone(),
        body,
    }));
}

fn flush(state: &mut LedgerState, ctx: &Context, batch: &mut Batch, out: &mut Vec<Journaled>) {
    if batch.events.is_empty() {
        return;
    }
    let batch = std::mem::take(batch);
    let events_root = tally_audit::merkle::root(&tally_audit::Blake3, &batch.leaves);
    state.prepare_claims(batch.claims);
    debug_assert_eq!(
        events_root,
        tally_audit::usage::events_root(&batch.events),
        "the caller's hashes are the events' hashes"
    );
    append(
        state,
        ctx,
        EntryBody::UsageRecorded(UsageRecorded {
            events_root,
            events: batch.events,
            late: batch.late,
        }),
        out,
    );
}

/// The writer's half of ingestion: one result per event, in order; the
/// accepted events become one `usage_recorded` entry (more only past the entry
/// size limit).
///
/// An accepted event's id is claimed here, in the one probe of the claims
/// index that also finds an earlier claim (of an earlier call, or earlier in
/// this one): the index is large and its slots are cold, so a second probe
/// when the entry is applied would cost a second cache miss. The claim is
/// made by the writer just before it appends the entry holding the event, in
/// the same group, and readers trust only claims of published entries (see
/// `claims`), so this changes nothing they can see.
pub fn record_usage(
    state: &mut LedgerState,
    events: Vec<PreparedEvent>,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Vec<Result<EventRecorded, LedgerError>> {
    let mut results = Vec::with_capacity(events.len());
    let mut batch = Batch::default();
    for (index, prepared) in events.into_iter().enumerate() {
        let PreparedEvent {
            event,
            hash,
            id_key: key,
            leaf,
            seen_version,
            checked,
        } = prepared;
        let content = content_of(&hash);
        // The checks read the catalog only, so their order against the
        // deduplication is free; what counts is the answer's: a retry of a
        // recorded event is a duplicate whatever changed since (a new meter
        // version, a closed period), or it would not be exactly once.
        let seen = match accept(state.catalog(), ctx, index, &event, seen_version, checked) {
            Ok((counted, late)) => {
                let size = encoded_len(&event);
                if batch.bytes + size > ENTRY_EVENT_BYTES_MAX {
                    flush(state, ctx, &mut batch, out);
                }
                let claim = Claim {
                    content,
                    seq: state.next_seq(),
                    index: batch.events.len() as u32,
                    late,
                };
                match state.claims().claim_or_get(key, claim) {
                    Some(earlier) => Seen::Earlier(earlier),
                    None => {
                        batch.bytes += size;
                        Seen::Claimed(claim, counted)
                    }
                }
            }
            Err(error) => match state.claims().get_by_key(&key) {
                Some(earlier) => Seen::Earlier(earlier),
                None => Seen::Refused(error),
            },
        };
        results.push(match seen {
            Seen::Earlier(claim) if claim.content == content => Ok(EventRecorded {
                seq: claim.seq,
                index: claim.index,
                late: claim.late,
                counted: counted_when_recorded(state.catalog(), claim.seq, &event),
                duplicate: true,
            }),
            Seen::Earlier(claim) => Err(LedgerError::new(
                ErrorCode::EventIdConflict,
                format!("events[{index}].event_id"),
                format!(
                    "event id {} was recorded (entry {}, event {}) with other content",
                    quoted(&event.event_id),
                    claim.seq,
                    claim.index
                ),
            )),
            Seen::Refused(error) => Err(error),
            Seen::Claimed(claim, counted) => {
                // The event joins the entry.
                if claim.late {
                    batch.late.push(claim.index);
                }
                batch.claims.push((key, claim));
                batch.events.push(event);
                batch.leaves.push(leaf);
                Ok(EventRecorded {
                    seq: claim.seq,
                    index: claim.index,
                    late: claim.late,
                    counted,
                    duplicate: false,
                })
            }
        });
    }
    flush(state, ctx, &mut batch, out);
    results
}

/// What the claims index says of an event: claimed before (by an earlier
/// call or earlier in this one), claimed now (and whether it counts), or
/// neither, and refused.
enum Seen {
    Earlier(Claim),
    Claimed(Claim, bool),
    Refused(LedgerError),
}

/// Whether an event not recorded before is accepted now, and if so whether
/// it counts and whether it is late.
fn accept(
    catalog: &Catalog,
    ctx: &Context,
    index: usize,
    event: &UsageEvent,
    seen_version: Option<u32>,
    checked: Result<(u32, bool), LedgerError>,
) -> Result<(bool, bool), LedgerError> {
    // Redo the check, refusals included, when the meter changed since the
    // caller saw it (or was defined since): an event is measured against the
    // version current when it arrives.
    let current = catalog.meter(&event.meter);
    let checked = if current.map(|m| m.version) == seen_version {
        checked
    } else {
        check_event(current, ctx.now, index, event)
    };
    let (_, counted) = checked?;
    let Some(customer) = catalog.customer(&event.customer) else {
        return Err(LedgerError::new(
            ErrorCode::CustomerNotFound,
            format!("events[{index}].customer"),
            format!("no customer {}", quoted(&event.customer)),
        ));
    };
    let late = customer
        .closed_through
        .is_some_and(|closed| event.timestamp < closed);
    if let Some(closed) = customer.closed_through {
        let spec = &catalog.meter(&event.meter).expect("checked above").spec;
        let earliest = ValidationContext::for_open_period(ctx.now, closed, spec).earliest;
        if event.timestamp < earliest {
            return Err(LedgerError::new(
                ErrorCode::TimestampBeforeGrace,
                format!("events[{index}].timestamp"),
                format!(
                    "timestamp {} is before {earliest}: customer {}'s usage is closed through {closed} and meter {} accepts events {} s before that",
                    event.timestamp,
                    quoted(&event.customer),
                    quoted(&event.meter),
                    spec.grace_period_seconds
                ),
            ));
        }
    }
    Ok((counted, late))
}

fn spec_error(error: tally_core::meter::MeterSpecError) -> LedgerError {
    let code = match error.reason {
        MeterSpecRejection::FieldMissing => ErrorCode::FieldRequired,
        MeterSpecRejection::FieldTooLong => ErrorCode::FieldTooLong,
        MeterSpecRejection::FieldInvalid
        | MeterSpecRejection::Duplicate
        | MeterSpecRejection::ValuePropertyMismatch => ErrorCode::FieldInvalid,
    };
    LedgerError::new(code, error.field, error.message).within("meter")
}

/// Defines a meter, or a new version of it. `Ok((version, seq, false))` when
/// the definition equals the current version (nothing is recorded).
pub fn define_meter(
    state: &mut LedgerState,
    spec: MeterSpec,
    description: String,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<(u32, u64, bool), LedgerError> {
    spec.validate().map_err(spec_error)?;
    validate::max_len("meter.description", &description, NAME_BYTES_MAX)?;
    // A filter's values are a set: one order, so that the same meaning is the
    // same definition (and the same bytes). `group_by` keeps its order: it is
    // the order of the result's group values.
    let mut spec = spec;
    for values in spec.filters.values_mut() {
        values.sort_unstable();
    }
    let version = match state.catalog().meter(&spec.code) {
        Some(current) if current.spec == spec && current.description == description => {
            return Ok((current.version, current.seq, false));
        }
        Some(current) if current.spec.aggregation != spec.aggregation => {
            return Err(LedgerError::new(
                ErrorCode::MeterAggregationChanged,
                "meter.aggregation",
                format!(
                    "meter {} aggregates by {}; a new version cannot change that (define a new meter)",
                    quoted(&spec.code),
                    current.spec.aggregation.name()
                ),
            ));
        }
        Some(current) => current.version + 1,
        None => 1,
    };
    append(
        state,
        ctx,
        EntryBody::MeterDefined(MeterDefined {
            version,
            spec,
            description,
        }),
        out,
    );
    let seq = out
        .last()
        .map(|journaled| journaled.seq)
        .unwrap_or_default();
    Ok((version, seq, true))
}

/// Creates a customer; `Ok(false)` if it exists with the same fields.
pub fn create_customer(
    state: &mut LedgerState,
    spec: &CustomerSpec,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<bool, LedgerError> {
    validate::id("id", &spec.customer_id)?;
    validate::max_len("name", &spec.name, NAME_BYTES_MAX)?;
    validate::metadata("metadata", &spec.metadata)?;
    if let Some(existing) = state.catalog().customer(&spec.customer_id) {
        let created = &existing.created;
        if created.name == spec.name && created.metadata == spec.metadata {
            return Ok(false);
        }
        return Err(LedgerError::new(
            ErrorCode::CustomerExists,
            "id",
            format!(
                "customer {} exists with another name or metadata",
                quoted(&spec.customer_id)
            ),
        ));
    }
    append(
        state,
        ctx,
        EntryBody::CustomerCreated(CustomerCreated {
            customer_id: spec.customer_id.clone(),
            name: spec.name.clone(),
            metadata: spec.metadata.clone(),
        }),
        out,
    );
    Ok(true)
}

/// Closes a customer's usage through `through` (a whole minute, not in the
/// future, later than the period closed before).
pub fn close_usage_period(
    state: &mut LedgerState,
    customer_id: &str,
    through: TimestampNs,
    ctx: &Context,
    out: &mut Vec<Journaled>,
) -> Result<u64, LedgerError> {
    let Some(customer) = state.catalog().customer(customer_id) else {
        return Err(LedgerError::new(
            ErrorCode::CustomerNotFound,
            "customer",
            format!("no customer {}", quoted(customer_id)),
        ));
    };
    if through.rem_euclid(MINUTE_NS) != 0 {
        return Err(LedgerError::new(
            ErrorCode::FieldInvalid,
            "through",
            "through must be a whole minute",
        ));
    }
    if through > ctx.now {
        return Err(LedgerError::new(
            ErrorCode::FieldInvalid,
            "through",
            format!(
                "through {through} is in the future (now {}): only past usage can be closed",
                ctx.now
            ),
        ));
    }
    // The same close again is a retry: its answer is the original entry.
    if customer.closed_through == Some(through) {
        if let Some(seq) = customer.closed_seq {
            return Ok(seq);
        }
    }
    if let Some(closed) = customer.closed_through.filter(|closed| *closed >= through) {
        return Err(LedgerError::new(
            ErrorCode::PeriodNotAfterClosed,
            "through",
            format!(
                "usage is closed through {} already; through must be later",
                tally_core::calendar::instant_text(closed)
            ),
        ));
    }
    append(
        state,
        ctx,
        EntryBody::UsagePeriodClosed {
            customer_id: customer_id.to_string(),
            through,
        },
        out,
    );
    Ok(out
        .last()
        .map(|journaled| journaled.seq)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tally_core::meter::Aggregation;

    const NOW: TimestampNs = 1_800_000_000_000_000_000;

    fn meter(group_by: &[&str]) -> MeterSpec {
        MeterSpec {
            code: "tokens".into(),
            aggregation: Aggregation::Sum,
            value_property: None,
            filters: BTreeMap::new(),
            group_by: group_by.iter().map(|p| p.to_string()).collect(),
            grace_period_seconds: 0,
        }
    }

    #[test]
    fn a_refusal_against_a_replaced_meter_version_is_checked_again() {
        // Goal: an event the caller refused against version 1 (no "region")
        // is measured against version 2, current when it reaches the writer,
        // which does not group by region: it is recorded.
        let ctx = Context {
            now: NOW,
            key_id: String::new(),
        };
        let mut state = LedgerState::new();
        let mut out = Vec::new();
        let customer = CustomerSpec {
            customer_id: "acme".into(),
            name: String::new(),
            metadata: Default::default(),
        };
        assert!(create_customer(&mut state, &customer, &ctx, &mut out).unwrap());
        define_meter(
            &mut state,
            meter(&["region"]),
            String::new(),
            &ctx,
            &mut out,
        )
        .unwrap();
        let version_1 = state.catalog().meter("tokens").unwrap().clone();
        let event = UsageEvent {
            event_id: "e-1".into(),
            customer: "acme".into(),
            meter: "tokens".into(),
            timestamp: NOW - 1,
            value: Some("2".into()),
            properties: BTreeMap::new(),
        };
        let prepared = prepare_event(Some(&version_1), NOW, 0, event);
        assert_eq!(
            prepared.checked.as_ref().unwrap_err().code,
            ErrorCode::PropertyMissing
        );
        define_meter(&mut state, meter(&[]), String::new(), &ctx, &mut out).unwrap();
        let results = record_usage(&mut state, vec![prepared], &ctx, &mut out);
        let recorded = results[0].as_ref().unwrap();
        assert!(recorded.counted && !recorded.duplicate);
    }
}
