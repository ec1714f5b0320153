//! Audit on the server side: the ledger's signing keys and its signed
//! checkpoints. The proofs themselves live in `store/merkle.rs`; verifying
//! them needs only the `tally-audit` crate.

pub mod checkpoints;
pub mod keys;
pub mod mark;
