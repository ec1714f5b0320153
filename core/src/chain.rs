//! The hash chain: each entry's hash covers its seq, the previous hash and its
//! canonical bytes, so changing, removing or reordering any entry changes every
//! hash after it.
//!
//! `entry_hash = blake3("tally/entry/v1" || seq as u64 big endian || prev_hash || canonical_bytes)`
//! with `prev_hash` = 32 zero bytes for seq 0.

use crate::entry::Digest;

/// Domain separation tag of entry hashes.
pub const ENTRY_HASH_DOMAIN: &[u8] = b"tally/entry/v1";

/// The `prev_hash` of entry 0.
pub const GENESIS_PREV_HASH: Digest = [0u8; 32];

pub fn entry_hash(seq: u64, prev_hash: &Digest, canonical_bytes: &[u8]) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(ENTRY_HASH_DOMAIN);
    hasher.update(&seq.to_be_bytes());
    hasher.update(prev_hash);
    hasher.update(canonical_bytes);
    *hasher.finalize().as_bytes()
}

/// Where a chain check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("entry {seq}: stored hash does not match its content")]
    HashMismatch { seq: u64 },
    #[error("entry {seq}: expected seq {expected} (gap or reorder)")]
    SeqGap { seq: u64, expected: u64 },
    #[error("entry {seq}: {reason}")]
    Undecodable { seq: u64, reason: String },
}

/// Verifies entries in order, carrying the chain head along.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    next_seq: u64,
    head: Digest,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            next_seq: 0,
            head: GENESIS_PREV_HASH,
        }
    }
}

impl ChainVerifier {
    /// Checks the next entry and returns its hash.
    pub fn push(
        &mut self,
        seq: u64,
        canonical_bytes: &[u8],
        stored_hash: &Digest,
    ) -> Result<Digest, ChainError> {
        if seq != self.next_seq {
            return Err(ChainError::SeqGap {
                seq,
                expected: self.next_seq,
            });
        }
        let hash = entry_hash(seq, &self.head, canonical_bytes);
        if &hash != stored_hash {
            return Err(ChainError::HashMismatch { seq });
        }
        self.head = hash;
        self.next_seq += 1;
        Ok(hash)
    }

    pub fn head(&self) -> Digest {
        self.head
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}
