//! Offline audit proofs for a Tally ledger: what an auditor needs to check a ledger with
//! nothing but files and a public key.
//!
//! - [`rotation`]: key rotation notes, signed by the old and the new key.
//! - [`export`]: the journal export file and its full offline verification.
//! - [`rederive`]: account balances and the trial balance re-derived from the entries alone.
//! - [`merkle`]: the RFC 9162 Merkle tree over entry hashes; inclusion and consistency proofs,
//!   their generation and their verification, generic over the hash function.
//! - [`usage`]: the Merkle root of a usage batch's events and the path of one event under it.
//! - [`checkpoint`]: signed checkpoints (ledger id, tree size, root, chain head, time) in the
//!   C2SP `tlog-checkpoint` signed-note shape, ed25519 keys and their text form.
//!
//! `docs/audit-proofs.md` specifies every byte.
//!
//! Architecture invariant: this crate does no I/O, reads no clock and draws no randomness of
//! its own; times and random sources are passed in.

pub mod bundle;
pub mod checkpoint;
pub mod export;
pub mod merkle;
pub mod rederive;
pub mod rotation;
pub mod usage;

pub use checkpoint::{
    open_checkpoint, sign_checkpoint, Checkpoint, CheckpointError, NoteSigner, NoteVerifier,
    VerifiedCheckpoint,
};
pub use export::{verify_export, ExportError, ExportReader, ExportReport, ExportWriter};
pub use merkle::{Blake3, CompactRange, Hash, MerkleHasher, MerkleTree, ProofError};
pub use rotation::{open_rotation, sign_rotation, KeyRotation};

/// The Merkle leaf hash of a journal entry: `blake3(0x00 || entry_hash)`, where `entry_hash`
/// is the entry's chain hash (`tally_core::chain::entry_hash`).
pub fn entry_leaf_hash(entry_hash: &tally_core::entry::Digest) -> Hash {
    merkle::leaf_hash(&Blake3, entry_hash)
}

/// Every error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use tally_core::chain::{entry_hash, GENESIS_PREV_HASH};

    #[test]
    fn journal_entries_become_leaves_through_their_entry_hash() {
        // Goal: the tree over a hash chain uses blake3(0x00 || entry_hash) per entry, and an
        // inclusion proof of entry 2 verifies against a root recomputed from the chain alone.
        let mut prev = GENESIS_PREV_HASH;
        let mut tree = MerkleTree::new(Blake3);
        let mut leaves = Vec::new();
        for seq in 0..4u64 {
            prev = entry_hash(seq, &prev, &[0x01, seq as u8]);
            tree.push_leaf(&prev);
            leaves.push(entry_leaf_hash(&prev));
        }
        let mut expected = vec![merkle::LEAF_PREFIX];
        expected.extend_from_slice(&entry_hash(0, &GENESIS_PREV_HASH, &[0x01, 0]));
        assert_eq!(leaves[0], *blake3::hash(&expected).as_bytes());
        let root = merkle::root(&Blake3, &leaves);
        let proof = tree.inclusion_proof(2, 4).unwrap();
        assert_eq!(
            merkle::verify_inclusion(&Blake3, &leaves[2], 2, 4, &proof, &root),
            Ok(())
        );
    }
}
