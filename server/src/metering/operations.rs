//! The engine's metering calls: writes go through the writer, reads answer
//! from the published read model (or, for a recomputation, the journal).

use super::aggregate::{AggregateResult, Window};
use super::catalog::{CustomerState, MeterVersion};
use super::ingest::{prepare_event, CustomerSpec, EventRecorded, PreparedEvent, INGEST_EVENTS_MAX};
use super::series::{bucket_windows, BucketWidth};
use super::stored::{check_query, QueryFields, Scan, UsageQuery};
use crate::engine::Engine;
use crate::error::{Error, LedgerError, Result, StoreError};
use crate::ledger::limits::PAGE_SIZE_MAX;
use crate::writer::{now_ns, Request};
use tally_core::entry::{Digest, EntryBody, TimestampNs};
use tally_core::error_code::ErrorCode;
use tally_core::meter::MeterSpec;
use tally_core::usage::UsageEvent;

/// A meter version and whether this call recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterDefinedView {
    pub meter: MeterVersion,
    pub created: bool,
}

/// An aggregation's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageAnswer {
    pub query: UsageQuery,
    pub meter: MeterVersion,
    pub buckets: Vec<AggregateResult>,
    /// The journal length the answer reflects.
    pub as_of_seq: u64,
}

/// A late event and where it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateEventView {
    pub event: UsageEvent,
    pub seq: u64,
    pub index: u32,
    pub recorded_at: TimestampNs,
    pub closed_through: TimestampNs,
}

/// A place among late events: an entry's seq, and an event's index in it.
pub type LatePosition = (u64, u32);

/// Everything an auditor needs to prove one event offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventProofView {
    pub event: UsageEvent,
    pub seq: u64,
    pub index: u32,
    pub event_count: u32,
    pub event_path: Vec<tally_audit::Hash>,
    pub entry: Vec<u8>,
    pub prev_hash: Digest,
    pub tree_size: u64,
    pub inclusion: Vec<tally_audit::Hash>,
    pub checkpoint: String,
}

fn batch_size_error(field: &str, len: usize, max: usize) -> Error {
    let code = if len == 0 {
        ErrorCode::BatchEmpty
    } else {
        ErrorCode::BatchTooLarge
    };
    Error::Ledger(LedgerError::new(
        code,
        field,
        format!("{len} items; a call takes 1 to {max}"),
    ))
}

impl Engine {
    /// Creates customers; `true` per customer the call created, `false` for
    /// one that existed with the same fields.
    pub async fn create_customers(
        &self,
        specs: Vec<CustomerSpec>,
    ) -> Result<Vec<std::result::Result<(CustomerState, bool), LedgerError>>> {
        if specs.is_empty() || specs.len() > PAGE_SIZE_MAX {
            return Err(batch_size_error("customers", specs.len(), PAGE_SIZE_MAX));
        }
        let ids: Vec<String> = specs.iter().map(|s| s.customer_id.clone()).collect();
        let results = self
            .call(|reply| Request::Customers { specs, reply })
            .await?;
        let model = self.store.read_model();
        Ok(results
            .into_iter()
            .zip(ids)
            .map(|(result, id)| {
                let created = result?;
                let customer = model.usage.catalog.customer(&id).cloned().ok_or_else(|| {
                    LedgerError::new(ErrorCode::Internal, "", "customer not published")
                })?;
                Ok((customer, created))
            })
            .collect())
    }

    /// Customers in id order after `after`, at most `limit` (0: the most).
    pub fn list_customers(&self, after: &str, limit: usize) -> Vec<CustomerState> {
        let limit = if limit == 0 {
            PAGE_SIZE_MAX
        } else {
            limit.min(PAGE_SIZE_MAX)
        };
        let model = self.store.read_model();
        model
            .usage
            .catalog
            .customers_after(after)
            .take(limit)
            .cloned()
            .collect()
    }

    pub async fn define_meter(
        &self,
        spec: MeterSpec,
        description: String,
    ) -> Result<MeterDefinedView> {
        let code = spec.code.clone();
        let (version, _, created) = self
            .call(|reply| Request::DefineMeter {
                spec,
                description,
                reply,
            })
            .await?
            .map_err(Error::Ledger)?;
        let model = self.store.read_model();
        let meter = model
            .usage
            .catalog
            .meter_versions(&code)
            .iter()
            .find(|m| m.version == version)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("meter {code} v{version} unpublished")))?;
        Ok(MeterDefinedView { meter, created })
    }

    /// The current version of every meter (`None`), or every version of one.
    pub fn list_meters(&self, code: Option<&str>) -> Result<Vec<MeterVersion>> {
        let model = self.store.read_model();
        let catalog = &model.usage.catalog;
        match code {
            None => Ok(catalog.meters().cloned().collect()),
            Some(code) => {
                let versions = catalog.meter_versions(code);
                if versions.is_empty() {
                    return Err(Error::Ledger(LedgerError::new(
                        ErrorCode::MeterNotFound,
                        "code",
                        format!("no meter {}", tally_core::meter::quoted(code)),
                    )));
                }
                Ok(versions.to_vec())
            }
        }
    }

    /// Ingests a batch: one result per event, in order. `events` holds the
    /// conversion's refusals in place, so that indexes stay the request's.
    pub async fn ingest_events(
        &self,
        events: Vec<std::result::Result<UsageEvent, LedgerError>>,
    ) -> Result<Vec<std::result::Result<EventRecorded, LedgerError>>> {
        if events.is_empty() || events.len() > INGEST_EVENTS_MAX {
            return Err(batch_size_error("events", events.len(), INGEST_EVENTS_MAX));
        }
        // The meters as published now, without waiting for a fold (the
        // writer redoes the check if a meter changed since).
        let meters = self.store.current_meters();
        let now = now_ns();
        let prepared: Vec<std::result::Result<PreparedEvent, LedgerError>> =
            crate::parallel::map_indexed(events, |index, event| {
                let event = event?;
                Ok(prepare_event(meters.get(&event.meter), now, index, event))
            });
        // Refusals of the conversion stay out of the writer; their places are
        // filled back in afterwards.
        let mut positions = Vec::with_capacity(prepared.len());
        let mut to_writer = Vec::with_capacity(prepared.len());
        let mut results: Vec<Option<std::result::Result<EventRecorded, LedgerError>>> =
            Vec::with_capacity(prepared.len());
        for (index, prepared) in prepared.into_iter().enumerate() {
            match prepared {
                Ok(event) => {
                    positions.push(index);
                    to_writer.push(event);
                    results.push(None);
                }
                Err(error) => results.push(Some(Err(error))),
            }
        }
        if !to_writer.is_empty() {
            let recorded = self
                .call(|reply| Request::Usage {
                    events: to_writer,
                    reply,
                })
                .await?;
            debug_assert_eq!(recorded.len(), positions.len());
            for (position, result) in positions.into_iter().zip(recorded) {
                results[position] = Some(result.map_err(|e| renumber(e, position)));
            }
        }
        Ok(results
            .into_iter()
            .map(|result| result.expect("every place is filled"))
            .collect())
    }

    pub async fn close_usage_period(&self, customer: String, through: TimestampNs) -> Result<u64> {
        self.call(|reply| Request::CloseUsagePeriod {
            customer,
            through,
            reply,
        })
        .await?
        .map_err(Error::Ledger)
    }

    /// A meter's aggregates over the query's window, from the stored
    /// aggregates or (`recompute`) from the raw events in the journal.
    pub fn query_usage(&self, fields: QueryFields, recompute: bool) -> Result<UsageAnswer> {
        self.usage_buckets(fields, None, recompute)
    }

    /// The same per bucket of `width`.
    pub fn query_usage_series(
        &self,
        fields: QueryFields,
        width: BucketWidth,
        recompute: bool,
    ) -> Result<UsageAnswer> {
        self.usage_buckets(fields, Some(width), recompute)
    }

    fn usage_buckets(
        &self,
        fields: QueryFields,
        width: Option<BucketWidth>,
        recompute: bool,
    ) -> Result<UsageAnswer> {
        let (query, meter, windows, as_of_seq) = {
            let model = self.store.read_model();
            let query = check_query(&model.usage.catalog, fields)?;
            let meter = model
                .usage
                .catalog
                .meter(&query.meter)
                .cloned()
                .expect("checked");
            let windows = match width {
                None => vec![query.window],
                Some(width) => bucket_windows(query.window, width).map_err(|error| {
                    LedgerError::new(ErrorCode::WindowInvalid, "width", error.to_string())
                })?,
            };
            if !recompute {
                let buckets = windows
                    .iter()
                    .map(|window| model.usage.query(&within(&query, *window)))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                return Ok(UsageAnswer {
                    query,
                    meter,
                    buckets,
                    as_of_seq: self.store.committed(),
                });
            }
            (query, meter, windows, self.store.committed())
        };
        let buckets = self.scan_usage(&query, &windows, as_of_seq)?;
        Ok(UsageAnswer {
            query,
            meter,
            buckets,
            as_of_seq,
        })
    }

    /// Recomputes from the journal's usage entries before `as_of_seq`.
    fn scan_usage(
        &self,
        query: &UsageQuery,
        windows: &[Window],
        as_of_seq: u64,
    ) -> Result<Vec<AggregateResult>> {
        // Only the meter's versions are copied out of the read model: the
        // scan runs without its lock.
        let (seqs, versions) = {
            let model = self.store.read_model();
            let end = model
                .usage
                .usage_entries
                .partition_point(|&seq| seq < as_of_seq);
            (
                model.usage.usage_entries[..end].to_vec(),
                model.usage.catalog.meter_versions(&query.meter).to_vec(),
            )
        };
        let mut scan = Scan::new(&versions, query, windows)?;
        let Some(&first) = seqs.first() else {
            return Ok(scan.finish()?);
        };
        for row in self.store.journal_rows(first) {
            let (seq, _, canonical) = row?;
            if seq >= as_of_seq {
                break;
            }
            if seqs.binary_search(&seq).is_err() {
                continue;
            }
            let entry = tally_core::codec::decode(&canonical)
                .map_err(|e| StoreError::Corrupt(format!("entry {seq}: {e}")))?;
            if let EntryBody::UsageRecorded(recorded) = entry.body {
                scan.feed(seq, &recorded);
            }
        }
        Ok(scan.finish()?)
    }

    /// Late events from the position `from` (an entry's seq and an event's
    /// index in it, inclusive), of one customer or all, at most `limit` (0:
    /// the most); and where to continue (`None`: nothing more).
    pub fn late_events(
        &self,
        customer: Option<&str>,
        from: LatePosition,
        limit: usize,
    ) -> Result<(Vec<LateEventView>, Option<LatePosition>)> {
        let limit = if limit == 0 {
            PAGE_SIZE_MAX
        } else {
            limit.min(PAGE_SIZE_MAX)
        };
        let refs: Vec<_> = {
            let model = self.store.read_model();
            let start = model
                .usage
                .late
                .partition_point(|late| (late.seq, late.index) < from);
            model.usage.late[start..]
                .iter()
                .filter(|late| customer.is_none_or(|c| late.customer == c))
                .take(limit + 1)
                .cloned()
                .collect()
        };
        let more = refs.len() > limit;
        let mut views = Vec::with_capacity(refs.len().min(limit));
        let mut entry: Option<(u64, TimestampNs, tally_core::entry::UsageRecorded)> = None;
        for late in refs.iter().take(limit) {
            if entry.as_ref().is_none_or(|(seq, _, _)| *seq != late.seq) {
                let Some((_, read)) = self.store.entry(late.seq)? else {
                    return Err(
                        StoreError::Corrupt(format!("late event's entry {}", late.seq)).into(),
                    );
                };
                let EntryBody::UsageRecorded(recorded) = read.body else {
                    return Err(
                        StoreError::Corrupt(format!("entry {} is not usage", late.seq)).into(),
                    );
                };
                entry = Some((late.seq, read.recorded_at, recorded));
            }
            let (_, recorded_at, recorded) = entry.as_ref().expect("read above");
            views.push(LateEventView {
                event: recorded.events[late.index as usize].clone(),
                seq: late.seq,
                index: late.index,
                recorded_at: *recorded_at,
                closed_through: late.closed_through,
            });
        }
        let next = if more {
            refs.get(limit).map(|late| (late.seq, late.index))
        } else {
            None
        };
        Ok((views, next))
    }

    /// The proof of one recorded event against a signed checkpoint (the
    /// latest when `tree_size` is `None`).
    pub fn prove_event(&self, event_id: &str, tree_size: Option<u64>) -> Result<EventProofView> {
        let committed = self.store.committed();
        let claim = self
            .store
            .read_model()
            .usage
            .claims
            .get(event_id)
            .filter(|claim| claim.seq < committed)
            .ok_or_else(|| {
                Error::Ledger(LedgerError::new(
                    ErrorCode::EventNotFound,
                    "event_id",
                    format!("no event {}", tally_core::meter::quoted(event_id)),
                ))
            })?;
        let checkpoint = self.checkpoint(tree_size)?;
        if claim.seq >= checkpoint.tree_size {
            return Err(Error::Ledger(LedgerError::new(
                ErrorCode::CheckpointNotFound,
                "tree_size",
                format!(
                    "the event is in entry {}, after the checkpoint of {} entries; sign a newer checkpoint",
                    claim.seq, checkpoint.tree_size
                ),
            )));
        }
        let corrupt = |what: &str| StoreError::Corrupt(format!("entry {}: {what}", claim.seq));
        let (_, _, canonical) = self
            .store
            .journal_row(claim.seq)?
            .ok_or_else(|| corrupt("missing"))?;
        let (_, prev_hash, _) = self
            .store
            .journal_row(claim.seq - 1)?
            .ok_or_else(|| corrupt("no entry before it"))?;
        let entry = tally_core::codec::decode(&canonical).map_err(|e| corrupt(&e.to_string()))?;
        let EntryBody::UsageRecorded(recorded) = entry.body else {
            return Err(corrupt("not a usage batch").into());
        };
        let event = recorded
            .events
            .get(claim.index as usize)
            .cloned()
            .ok_or_else(|| corrupt("event index out of range"))?;
        let event_path = tally_audit::usage::event_path(&recorded.events, claim.index as u64)
            .map_err(|e| corrupt(&e.to_string()))?;
        let inclusion = self.inclusion_proof(claim.seq, checkpoint.tree_size)?;
        Ok(EventProofView {
            event,
            seq: claim.seq,
            index: claim.index,
            event_count: recorded.events.len() as u32,
            event_path,
            entry: canonical,
            prev_hash,
            tree_size: checkpoint.tree_size,
            inclusion,
            checkpoint: checkpoint.note,
        })
    }
}

/// The query restricted to one bucket.
fn within(query: &UsageQuery, window: Window) -> UsageQuery {
    UsageQuery {
        window,
        ..query.clone()
    }
}

/// The writer numbers its events among those it was given; the request's
/// numbering also counts the events refused before it.
fn renumber(error: LedgerError, position: usize) -> LedgerError {
    let Some(rest) = error.field.strip_prefix("events[") else {
        return error;
    };
    let Some(close) = rest.find(']') else {
        return error;
    };
    LedgerError {
        field: format!("events[{position}]{}", &rest[close + 1..]),
        ..error
    }
}
