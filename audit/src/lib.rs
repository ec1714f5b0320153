//! Offline audit proofs for a Tally ledger: what an auditor needs to check a ledger with
//! nothing but files and a public key.
//!
//! - [`merkle`]: the RFC 9162 Merkle tree over entry hashes; inclusion and consistency proofs,
//!   their generation and their verification, generic over the hash function.
//! - [`checkpoint`]: signed checkpoints (ledger id, tree size, root, chain head, time) in the
//!   C2SP `tlog-checkpoint` signed-note shape, ed25519 keys and their text form.
//!
//! `docs/audit-proofs.md` specifies every byte.
//!
//! Architecture invariant: this crate does no I/O, reads no clock and draws no randomness of
//! its own; times and random sources are passed in.

pub mod merkle;

pub use merkle::{Blake3, Hash, MerkleHasher, MerkleTree, ProofError};

/// Every error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Proof(#[from] ProofError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
