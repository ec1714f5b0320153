//! Usage metering, the pure core: meter definitions, per-event validation,
//! the canonical event hash, exact aggregation and windowed series.
//!
//! Why a pure core: what a customer is billed for must be reproducible from
//! its inputs alone. Nothing here does I/O, reads a clock or draws random
//! numbers: "now" and the open billing period come from the caller, and every
//! function's answer depends only on its arguments. Decimals are exact
//! (`rust_decimal`, parsed strictly, never a float, never rounded; overflow is
//! an error), and results are ordered maps, so equal inputs give equal,
//! equally serialised results in any event order.
//!
//! The pieces, in the order an event meets them:
//! - `tally_core::meter`: a meter's definition ([`MeterSpec`]) and its
//!   validation (in the journal-format crate: meter versions are entries);
//! - [`event`]: a [`UsageEvent`] checked against a meter becomes a
//!   [`MeteredEvent`], is not counted (filtered out), or is refused with a field
//!   path and an [`EventRejection`];
//! - `tally_core::usage`: the event as recorded, and the canonical hash a
//!   usage batch commits to;
//! - [`aggregate`]: per customer and group over `[from, to)`, by a scan of raw
//!   events or by incremental, mergeable [`Aggregates`] (always equal);
//! - [`series`](mod@series): the same per minute, hour or day bucket.
//!
//! Not here (built on top): meters and usage batches as journal entries, the
//! ingestion endpoint, deduplication of event ids, and stored aggregates.

pub mod aggregate;
pub mod catalog;
pub mod claims;
pub mod event;
mod exact_sum;
pub mod ingest;
pub mod operations;
#[cfg(test)]
mod reference;
pub mod series;
pub mod stored;

pub use aggregate::{
    aggregate_scan, Aggregate, AggregateError, AggregateResult, Aggregates, GroupKey, Window,
};
pub use event::{
    meter_event, EventError, EventOutcome, EventRejection, MeteredEvent, Observation, UsageEvent,
    ValidationContext,
};
pub use series::{series, series_partials, Bucket, BucketWidth, Series};
pub use tally_core::meter::{Aggregation, MeterSpec, MeterSpecError, MeterSpecRejection};
pub use tally_core::usage::event_hash;
