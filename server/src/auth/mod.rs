//! Access control: API keys with roles on every call.
//!
//! - `token`: the token format and the stored hash of its secret.
//! - `permissions`: the role table, one rule per RPC (closed by default).
//! - `rate`: per-key request rate limits.
//! - `layer`: the tower layer in front of every gRPC service: it reads the
//!   bearer token, finds the key (as published by the journal: a revocation
//!   holds from the moment it is acknowledged), checks the rule and the rate,
//!   and runs the call with the caller in [`CALLER`].
//!
//! Keys are journal entries (`api_key_created`, `api_key_revoked`), and every
//! entry records the key id of the call that caused it: the engine reads it
//! from [`CALLER`], so writes made in-process (tests, tools) are the ledger's
//! own (empty key id).

pub mod layer;
pub mod permissions;
pub mod rate;
pub mod token;

use tally_core::entry::Role;

/// The key a call is made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub role: Role,
    pub read_only: bool,
}

tokio::task_local! {
    /// The caller of the gRPC call this task serves.
    pub static CALLER: Caller;
}

/// The key id of the current call; empty outside a call (the ledger itself).
pub fn current_key_id() -> String {
    CALLER
        .try_with(|caller| caller.key_id.clone())
        .unwrap_or_default()
}
