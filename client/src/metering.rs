//! The Metering service (`proto/tally/v1/metering.proto`): customers, versioned
//! meters, usage ingestion with one result per event, usage queries, closing
//! usage periods, late events, and the proof of one recorded event.
//!
//! Events and meter definitions are the journal's own types
//! ([`UsageEvent`], [`MeterSpec`]): an event's timestamp is nanoseconds since
//! the epoch ([`TimestampNs`]) and its value the decimal text the sender wrote,
//! sent as is. Every time in this module is a `TimestampNs`, in UTC. Aggregates
//! come back as `Decimal`, parsed strictly: a server answer that is not a plain
//! decimal is an `InvalidResponse`, never a rounded number.

pub(crate) mod convert;
mod packed;

pub use packed::PackedEvents;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use tally_audit::Hash;
use tally_proto::v1 as pb;

use crate::client::{call_with, check_page_count, Client, RawMeteringClient, Retry};
use crate::error::{ClientError, ItemError, Result};
use crate::types::Metadata;

pub use tally_core::entry::TimestampNs;
pub use tally_core::meter::{Aggregation, MeterSpec};
pub use tally_core::usage::UsageEvent;

/// The most events one `ingest_events` call takes (the server's limit).
pub const INGEST_EVENTS_MAX: usize = 10_000;
/// The most customers or late events one page holds (the server's limit).
pub const LIST_PAGE_SIZE_MAX: u32 = 1_000;

/// A customer to create: the party usage is metered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerSpec {
    /// 1 to 128 bytes, no control characters; usage events name it.
    pub id: String,
    pub name: String,
    pub metadata: Metadata,
}

impl CustomerSpec {
    pub fn new(id: impl Into<String>) -> Self {
        CustomerSpec {
            id: id.into(),
            name: String::new(),
            metadata: Metadata::new(),
        }
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// A customer as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub metadata: Metadata,
    /// The `customer_created` journal entry.
    pub created_seq: u64,
    /// The end of the customer's last closed usage period, if one was closed.
    pub closed_through: Option<TimestampNs>,
}

/// One customer of a `create_customers` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerCreated {
    pub customer: Customer,
    /// False when the customer existed already with the same fields.
    pub created: bool,
}

/// One version of a meter's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterVersion {
    pub spec: MeterSpec,
    pub description: String,
    /// 1 for the meter's first definition, then one more per change.
    pub version: u32,
    /// The `meter_defined` journal entry.
    pub seq: u64,
    pub defined_at: TimestampNs,
    /// False when the definition equalled the current version: nothing was
    /// recorded and this is that version.
    pub created: bool,
}

/// Where a recorded event is: its `usage_recorded` entry and its place in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRecorded {
    pub seq: u64,
    pub index: u32,
    /// Timestamped before its customer's closed period: kept and reported.
    pub late: bool,
    /// False when the meter's filters exclude the event (kept, not counted).
    pub counted: bool,
}

/// The outcome of one event of an `ingest_events` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventResult {
    /// Recorded by this call.
    Recorded(EventRecorded),
    /// Recorded before with the same content; nothing new was written. Where
    /// the earlier recording is.
    Duplicate(EventRecorded),
    /// Refused; `field` is the path in the request, e.g. `events[3].value`.
    Rejected(ItemError),
}

impl EventResult {
    /// Recorded now or before: the ledger holds the event.
    pub fn is_held(&self) -> bool {
        !matches!(self, EventResult::Rejected(_))
    }
}

/// The answer to one `ingest_events` call: one result per event, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IngestOutcome {
    pub results: Vec<EventResult>,
    pub recorded: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

/// A usage query: one meter over the window `[from, to)` (whole minutes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub meter: String,
    /// `None`: every customer.
    pub customer: Option<String>,
    pub from: TimestampNs,
    pub to: TimestampNs,
    /// Keep only the groups whose property has one of the values; the
    /// properties must be among the meter's group-by properties.
    pub filters: BTreeMap<String, Vec<String>>,
    /// A subset of the meter's group-by properties; empty: per customer only.
    pub group_by: Vec<String>,
    /// Recompute from the raw events in the journal instead of the stored
    /// aggregates (slower; the same answer).
    pub recompute: bool,
}

impl UsageQuery {
    pub fn new(meter: impl Into<String>, from: TimestampNs, to: TimestampNs) -> Self {
        UsageQuery {
            meter: meter.into(),
            customer: None,
            from,
            to,
            filters: BTreeMap::new(),
            group_by: Vec::new(),
            recompute: false,
        }
    }

    pub fn customer(mut self, customer: impl Into<String>) -> Self {
        self.customer = Some(customer.into());
        self
    }

    pub fn group_by(mut self, property: impl Into<String>) -> Self {
        self.group_by.push(property.into());
        self
    }

    pub fn filter<I, S>(mut self, property: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values = values.into_iter().map(Into::into);
        self.filters
            .entry(property.into())
            .or_default()
            .extend(values);
        self
    }

    pub fn recompute(mut self, recompute: bool) -> Self {
        self.recompute = recompute;
        self
    }
}

/// One customer's (and group's) usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageGroup {
    pub customer: String,
    /// The requested group-by properties and their values ("" when absent).
    pub group: BTreeMap<String, String>,
    /// The events counted.
    pub count: u64,
    /// The meter's aggregate (the count for `Count` and `UniqueCount`'s
    /// number of distinct values).
    pub value: Decimal,
}

/// The answer to a usage query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageResult {
    pub meter: String,
    pub aggregation: Aggregation,
    pub from: TimestampNs,
    pub to: TimestampNs,
    pub groups: Vec<UsageGroup>,
    /// The journal length the answer reflects.
    pub as_of_seq: u64,
}

/// The width of the buckets of a usage series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BucketWidth {
    Minute,
    Hour,
    Day,
}

impl BucketWidth {
    pub const ALL: [BucketWidth; 3] = [BucketWidth::Minute, BucketWidth::Hour, BucketWidth::Day];

    /// `minute`, `hour` or `day`.
    pub fn name(self) -> &'static str {
        match self {
            BucketWidth::Minute => "minute",
            BucketWidth::Hour => "hour",
            BucketWidth::Day => "day",
        }
    }
}

impl fmt::Display for BucketWidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BucketWidth {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        BucketWidth::ALL
            .into_iter()
            .find(|width| width.name() == text)
            .ok_or_else(|| format!("{text:?} is not a bucket width (minute, hour or day)"))
    }
}

/// One bucket of a usage series: the usage over `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBucket {
    pub from: TimestampNs,
    pub to: TimestampNs,
    pub groups: Vec<UsageGroup>,
}

/// The answer to a usage series query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSeries {
    pub meter: String,
    pub aggregation: Aggregation,
    pub width: BucketWidth,
    pub buckets: Vec<UsageBucket>,
    pub as_of_seq: u64,
}

/// An event that arrived after its customer's period was closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateEvent {
    pub event: UsageEvent,
    /// The `usage_recorded` entry holding it, and its place there.
    pub seq: u64,
    pub index: u32,
    pub recorded_at: TimestampNs,
    /// The customer's closed period end when the event arrived.
    pub closed_through: TimestampNs,
}

/// One page of late events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateEventsPage {
    pub events: Vec<LateEvent>,
    /// Where the next page starts (`from_seq`, `from_index`); `None` after the last.
    pub next: Option<(u64, u32)>,
}

/// The proof of one recorded event, as the server sent it: nothing here is
/// verified. `tally_audit::usage::verify_event_proof` checks it against keys
/// the auditor holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventProof {
    pub event: UsageEvent,
    /// The `usage_recorded` entry, and the event's place among its events.
    pub seq: u64,
    pub index: u32,
    pub event_count: u32,
    /// RFC 9162 audit path from the event's leaf to the entry's events root.
    pub event_path: Vec<Hash>,
    /// The entry's canonical bytes, and the chain hash before it.
    pub entry: Vec<u8>,
    pub prev_hash: Hash,
    /// The entry's inclusion proof in the checkpoint of `tree_size` entries.
    pub tree_size: u64,
    pub inclusion: Vec<Hash>,
    /// The signed checkpoint note (C2SP) of `tree_size` entries.
    pub checkpoint: String,
}

impl Client {
    /// The generated Metering client on the same connection (api key
    /// included), for requests this façade would not send.
    pub fn raw_metering(&self) -> RawMeteringClient {
        self.metering.clone()
    }

    /// Sends one unary Metering call with the deadline and retry policy.
    async fn metering_call<Req, Resp, F, Fut>(
        &self,
        retry: Retry,
        request: Req,
        send: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(RawMeteringClient, tonic::Request<Req>) -> Fut,
        Fut:
            std::future::Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        call_with(&self.metering, &self.policy, retry, request, send).await
    }

    /// Creates customers; one result per customer, in order. Idempotent: the
    /// same fields again answer `created: false`; other fields for an existing
    /// id are refused with `CUSTOMER_EXISTS`.
    pub async fn create_customers(
        &self,
        customers: impl IntoIterator<Item = CustomerSpec>,
    ) -> Result<Vec<Result<CustomerCreated, ItemError>>> {
        let request = pb::CreateCustomersRequest {
            customers: customers
                .into_iter()
                .map(convert::customer_to_proto)
                .collect(),
        };
        let expected = request.customers.len();
        let response = self
            .metering_call(Retry::Safe, request, |mut raw, request| async move {
                raw.create_customers(request).await
            })
            .await?;
        convert::check_result_count(response.results.len(), expected)?;
        convert::customer_results(response.results)
    }

    /// Creates one customer (or returns it when it exists with the same fields).
    pub async fn create_customer(&self, spec: CustomerSpec) -> Result<CustomerCreated> {
        let results = self.create_customers([spec]).await?;
        let result = results
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::InvalidResponse("no result for the one customer".into()))?;
        Ok(result?)
    }

    /// One page of customers in id order: those after `after` ("" from the
    /// start), at most `limit` (0 or more than [`LIST_PAGE_SIZE_MAX`] mean the
    /// most).
    pub async fn list_customers(&self, after: &str, limit: u32) -> Result<Vec<Customer>> {
        let request = pb::ListCustomersRequest {
            after: after.to_string(),
            limit: limit.min(LIST_PAGE_SIZE_MAX),
        };
        let response = self
            .metering_call(Retry::Safe, request, |mut raw, request| async move {
                raw.list_customers(request).await
            })
            .await?;
        let customers = response
            .customers
            .into_iter()
            .enumerate()
            .map(|(position, customer)| convert::customer(position, customer))
            .collect::<Result<Vec<_>>>()?;
        convert::check_ids_after(after, &customers)?;
        Ok(customers)
    }

    /// Every customer, reading pages until an empty one (the answer has no
    /// "last page" mark).
    pub async fn list_all_customers(&self) -> Result<Vec<Customer>> {
        let mut customers: Vec<Customer> = Vec::new();
        let mut pages = 0;
        loop {
            check_page_count(&mut pages)?;
            let after = customers.last().map_or("", |last| last.id.as_str());
            let page = self.list_customers(after, LIST_PAGE_SIZE_MAX).await?;
            if page.is_empty() {
                return Ok(customers);
            }
            customers.extend(page);
        }
    }

    /// Defines a meter (version 1) or a new version of it. The same definition
    /// as the current version records nothing and answers that version with
    /// `created: false`, so a retry is safe.
    pub async fn define_meter(&self, spec: &MeterSpec, description: &str) -> Result<MeterVersion> {
        let request = pb::DefineMeterRequest {
            meter: Some(convert::meter_to_proto(spec, description)),
        };
        let answer = self
            .metering_call(Retry::Safe, request, |mut raw, request| async move {
                raw.define_meter(request).await
            })
            .await?;
        convert::meter_version("meter_version", answer)
    }

    /// The current version of every meter (`None`), or every version of one.
    pub async fn list_meters(&self, code: Option<&str>) -> Result<Vec<MeterVersion>> {
        let request = pb::ListMetersRequest {
            code: code.unwrap_or_default().to_string(),
        };
        let response = self
            .metering_call(Retry::Safe, request, |mut raw, request| async move {
                raw.list_meters(request).await
            })
            .await?;
        response
            .meters
            .into_iter()
            .enumerate()
            .map(|(position, meter)| convert::meter_version(&format!("meters[{position}]"), meter))
            .collect()
    }

    /// Ingests a batch of at most [`INGEST_EVENTS_MAX`] usage events, with one
    /// result per event, in order. An empty batch sends nothing.
    ///
    /// Retried (bounded, with backoff) when the server was unavailable and also
    /// when the deadline passed: every event is deduplicated by its id and
    /// content, so a second attempt records only what the first did not. An
    /// event that an attempt with a lost answer recorded comes back as
    /// [`EventResult::Duplicate`]. Other failures are not retried.
    pub async fn ingest_events(&self, events: &[UsageEvent]) -> Result<IngestOutcome> {
        if events.is_empty() {
            return Ok(IngestOutcome::default());
        }
        if events.len() > INGEST_EVENTS_MAX {
            return Err(ClientError::InvalidRequest(format!(
                "{} events in one batch; the most is {INGEST_EVENTS_MAX}",
                events.len()
            )));
        }
        let request = pb::IngestEventsRequest {
            events: events.iter().map(convert::event_to_proto).collect(),
        };
        let response = self
            .metering_call(
                Retry::Deduplicated,
                request,
                |mut raw, request| async move { raw.ingest_events(request).await },
            )
            .await?;
        convert::ingest_outcome(response, events.len())
    }

    /// A meter's usage per customer (and group) over `[from, to)`.
    pub async fn query_usage(&self, query: &UsageQuery) -> Result<UsageResult> {
        let request = convert::query_to_proto(query);
        let answer = self
            .metering_call(Retry::Safe, request, |mut raw, request| async move {
                raw.query_usage(request).await
            })
            .await?;
        convert::usage_result(answer)
    }

    /// The same per minute, hour or day bucket.
    pub async fn query_usage_series(
        &self,
        query: &UsageQuery,
        width: BucketWidth,
    ) -> Result<UsageSeries> {
        let request = pb::QueryUsageSeriesRequest {
            query: Some(convert::query_to_proto(query)),
            width: convert::width_to_proto(width) as i32,
        };
        let answer = self
            .metering_call(Retry::Safe, request, |mut raw, request| async move {
                raw.query_usage_series(request).await
            })
            .await?;
        convert::usage_series(answer)
    }

    /// Closes a customer's usage period through `through_ns` (whole minutes,
    /// later than the period closed before); answers the journal entry's seq.
    ///
    /// Never retried: closing the same period again is refused
    /// (`PERIOD_NOT_AFTER_CLOSED`), so a retry after a lost answer would turn
    /// a success into an error. After a transport error or a timeout, read the
    /// customer's `closed_through` to learn whether the period was closed.
    pub async fn close_usage_period(&self, customer: &str, through_ns: TimestampNs) -> Result<u64> {
        let request = pb::CloseUsagePeriodRequest {
            customer: customer.to_string(),
            through: Some(convert::timestamp_to_proto(through_ns)),
        };
        let answer = self
            .metering_call(Retry::Never, request, |mut raw, request| async move {
                raw.close_usage_period(request).await
            })
            .await?;
        Ok(answer.seq)
    }

    /// One page of late events in journal order, from `from` (an entry's seq
    /// and an event's index in it, inclusive; `(0, 0)` for the first page), of
    /// one customer or of all (`None`); `limit` 0 means the most.
    pub async fn list_late_events(
        &self,
        customer: Option<&str>,
        from: (u64, u32),
        limit: u32,
    ) -> Result<LateEventsPage> {
        let request = pb::ListLateEventsRequest {
            customer: customer.unwrap_or_default().to_string(),
            from_seq: from.0,
            from_index: from.1,
            limit: limit.min(LIST_PAGE_SIZE_MAX),
        };
        let response = self
            .metering_call(Retry::Safe, request, |mut raw, request| async move {
                raw.list_late_events(request).await
            })
            .await?;
        convert::late_events_page(response, from)
    }

    /// The proof of one recorded event against the checkpoint of `tree_size`
    /// entries (`None`: the latest checkpoint), unverified.
    pub async fn prove_event(&self, event_id: &str, tree_size: Option<u64>) -> Result<EventProof> {
        let request = pb::ProveEventRequest {
            event_id: event_id.to_string(),
            tree_size: tree_size.unwrap_or(0),
        };
        let answer = self
            .metering_call(Retry::Safe, request, |mut raw, request| async move {
                raw.prove_event(request).await
            })
            .await?;
        convert::event_proof(answer)
    }
}
