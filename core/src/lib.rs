//! Tally's journal format, shared by the server and by offline tools.
//!
//! - [`money`]: amounts as integer minor units at a currency's scale.
//! - [`entry`]: the journal entries, one per state change.
//! - [`codec`]: their canonical, versioned byte encoding.
//! - [`chain`]: the blake3 hash chain over those bytes.
//! - [`error_code`]: the stable error codes, shared with the gRPC contract.
//! - [`meter`]: meter definitions (recorded as meter versions) and their checks.
//! - [`usage`]: usage events as recorded, and their canonical hash.
//! - [`decimal`]: decimals with a canonical journal form (prices, rates).
//! - [`calendar`]: civil days and billing intervals.
//! - [`plan`]: price plans (recorded as plan versions), coupons, tax rules.
//! - [`billing`]: billing profiles, subscriptions, invoices, credit notes,
//!   payments: the documents of invoicing, each with its transaction.
//!
//! Architecture invariant: this crate does no I/O and reads no clock.

pub mod billing;
pub mod calendar;
pub mod chain;
pub mod codec;
pub mod decimal;
pub mod entry;
pub mod error_code;
pub mod meter;
pub mod money;
pub mod plan;
pub mod usage;
