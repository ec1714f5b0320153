//! The Tally ledger engine, as a library, and the pieces of the `tallyd` server.
//!
//! Bird's-eye view: the journal (in `store`) is the truth. `writer` is the only
//! task that changes it: it takes batches of commands, lets `ledger` validate
//! them against the in-memory state and turn them into journal entries, appends
//! each group of entries to the journal as ONE record with one `fdatasync`, and
//! only then acknowledges (the derived caches follow, and are rebuilt from the
//! journal after a crash). Reads go to `store` and see only durable entries,
//! and every entry already acknowledged. `api` is the gRPC edge.

pub mod api;
pub mod audit;
pub mod auth;
pub mod billing;
pub mod config;
pub mod engine;
pub mod error;
pub mod ledger;
pub mod maintenance;
pub mod metering;
pub mod parallel;
pub mod rating;
pub mod server;
pub mod store;
pub mod writer;

pub use engine::{Engine, EngineConfig};
pub use error::{Error, LedgerError, Result, StoreError};
