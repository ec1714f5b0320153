//! Verification of proof bundles: an inclusion proof or a consistency proof together with
//! the signed checkpoint(s) it is checked against, as an auditor receives them in a file.
//!
//! The functions take fields already parsed from the file (the file format lives in the
//! `tally` CLI; this crate does no I/O and knows no JSON). Whatever the bundle claims about
//! sizes and roots is ignored: the tree size and root always come from a checkpoint whose
//! signature by a trusted key verified (`docs/audit-proofs.md` §1, §7).

use tally_core::chain::entry_hash;
use tally_core::codec::{self, DecodeError};
use tally_core::entry::{Digest, Entry};

use crate::checkpoint::{
    open_checkpoint, Checkpoint, CheckpointError, NoteVerifier, VerifiedCheckpoint,
};
use crate::merkle::{self, Blake3, Hash, ProofError};

/// Why a bundle did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// `which` names the note: `checkpoint`, `old checkpoint` or `new checkpoint`.
    #[error("{which}: {error}")]
    Checkpoint {
        which: &'static str,
        error: CheckpointError,
    },
    #[error("entry {seq} is not covered by the checkpoint, which has {tree_size} entries")]
    SeqOutOfRange { seq: u64, tree_size: u64 },
    #[error("entry {seq}: the inclusion proof does not verify against the checkpoint of {tree_size} entries: {error}")]
    Inclusion {
        seq: u64,
        tree_size: u64,
        error: ProofError,
    },
    #[error(
        "entry {seq}: its hash {entry_hash} differs from the checkpoint's chain head {chain_head}"
    )]
    ChainHead {
        seq: u64,
        entry_hash: String,
        chain_head: String,
    },
    #[error("entry {seq}: {error}")]
    Entry { seq: u64, error: DecodeError },
    #[error(transparent)]
    Extend(#[from] ExtendError),
}

/// Why a newer checkpoint does not extend an older one. The messages speak of an "old" and a
/// "new" checkpoint; a monitor may word them its own way from the fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtendError {
    #[error("the checkpoints are of different logs: {old} and {new}")]
    OriginMismatch { old: String, new: String },
    #[error("rollback: the new checkpoint has {new_size} entries, fewer than the {old_size} of the old checkpoint")]
    Rollback { old_size: u64, new_size: u64 },
    #[error(
        "fork: two checkpoints of {size} entries with different roots ({old_root} and {new_root})"
    )]
    SameSizeFork {
        size: u64,
        old_root: String,
        new_root: String,
    },
    #[error("fork: the checkpoint of {new_size} entries is not consistent with the checkpoint of {old_size} entries: {error}")]
    Inconsistent {
        old_size: u64,
        new_size: u64,
        error: ProofError,
    },
}

/// An entry proven to be in a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEntry {
    pub checkpoint: VerifiedCheckpoint,
    pub seq: u64,
    pub entry_hash: Digest,
    pub entry: Entry,
}

/// Two signed checkpoints, the newer proven to extend the older.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedConsistency {
    pub old: VerifiedCheckpoint,
    pub new: VerifiedCheckpoint,
}

fn open(
    which: &'static str,
    note: &[u8],
    keys: &[NoteVerifier],
) -> Result<VerifiedCheckpoint, BundleError> {
    open_checkpoint(note, keys).map_err(|error| BundleError::Checkpoint { which, error })
}

/// Checks that the entry `seq` with canonical bytes `canonical`, chained to `prev_hash`, is
/// in the tree of the checkpoint `note` (signed by one of `keys`), through `proof`; then
/// decodes the entry strictly.
///
/// The entry hash is recomputed here, never taken from the bundle, so that the proof covers
/// exactly these bytes at exactly this seq.
pub fn verify_inclusion(
    note: &[u8],
    keys: &[NoteVerifier],
    seq: u64,
    prev_hash: &Digest,
    canonical: &[u8],
    proof: &[Hash],
) -> Result<VerifiedEntry, BundleError> {
    let checkpoint = open("checkpoint", note, keys)?;
    let signed = &checkpoint.checkpoint;
    let tree_size = signed.tree_size;
    if seq >= tree_size {
        return Err(BundleError::SeqOutOfRange { seq, tree_size });
    }
    let hash = entry_hash(seq, prev_hash, canonical);
    let leaf = crate::entry_leaf_hash(&hash);
    merkle::verify_inclusion(&Blake3, &leaf, seq, tree_size, proof, &signed.root).map_err(
        |error| BundleError::Inclusion {
            seq,
            tree_size,
            error,
        },
    )?;
    check_chain_head(signed, seq, &hash)?;
    let entry = codec::decode(canonical).map_err(|error| BundleError::Entry { seq, error })?;
    Ok(VerifiedEntry {
        checkpoint,
        seq,
        entry_hash: hash,
        entry,
    })
}

/// The last entry of a checkpoint's tree is also its chain head; a signer that states a
/// different one signed two contradicting things about the same journal.
fn check_chain_head(checkpoint: &Checkpoint, seq: u64, hash: &Digest) -> Result<(), BundleError> {
    if seq + 1 == checkpoint.tree_size && *hash != checkpoint.chain_head {
        return Err(BundleError::ChainHead {
            seq,
            entry_hash: hex::encode(hash),
            chain_head: hex::encode(checkpoint.chain_head),
        });
    }
    Ok(())
}

/// Checks that the checkpoint `new_note` extends `old_note` (both signed by `keys`) through
/// the consistency proof `proof`.
pub fn verify_consistency(
    old_note: &[u8],
    new_note: &[u8],
    keys: &[NoteVerifier],
    proof: &[Hash],
) -> Result<VerifiedConsistency, BundleError> {
    let old = open("old checkpoint", old_note, keys)?;
    let new = open("new checkpoint", new_note, keys)?;
    check_extends(&old.checkpoint, &new.checkpoint, proof)?;
    Ok(VerifiedConsistency { old, new })
}

/// Checks that `new` extends `old`: same log, no fewer entries, and the consistency proof
/// from the old size to the new verifies against both roots. Both checkpoints must already
/// be trusted (their signatures verified); this looks only at what they state.
pub fn check_extends(
    old: &Checkpoint,
    new: &Checkpoint,
    proof: &[Hash],
) -> Result<(), ExtendError> {
    if old.origin() != new.origin() {
        return Err(ExtendError::OriginMismatch {
            old: old.origin(),
            new: new.origin(),
        });
    }
    let (old_size, new_size) = (old.tree_size, new.tree_size);
    if new_size < old_size {
        return Err(ExtendError::Rollback { old_size, new_size });
    }
    // Named apart from a failed proof: two signed roots for one size is a fork by itself,
    // whatever proof comes with them.
    if new_size == old_size && new.root != old.root {
        return Err(ExtendError::SameSizeFork {
            size: old_size,
            old_root: hex::encode(old.root),
            new_root: hex::encode(new.root),
        });
    }
    merkle::verify_consistency(&Blake3, old_size, new_size, &old.root, &new.root, proof).map_err(
        |error| ExtendError::Inconsistent {
            old_size,
            new_size,
            error,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{sign_checkpoint, NoteSigner};
    use crate::merkle::MerkleTree;
    use tally_core::chain::GENESIS_PREV_HASH;
    use tally_core::entry::EntryBody;

    /// A journal of `n` real entries with its tree and chain hashes.
    struct Journal {
        entries: Vec<Vec<u8>>,
        hashes: Vec<Digest>,
        tree: MerkleTree<Blake3>,
    }

    fn journal(n: u64) -> Journal {
        let mut journal = Journal {
            entries: Vec::new(),
            hashes: Vec::new(),
            tree: MerkleTree::new(Blake3),
        };
        let mut prev = GENESIS_PREV_HASH;
        for seq in 0..n {
            let body = if seq == 0 {
                EntryBody::LedgerCreated {
                    ledger_id: [0x11; 16],
                }
            } else {
                EntryBody::AccountClosed { account_id: seq }
            };
            let bytes = codec::encode(&Entry {
                recorded_at: seq as i64 + 1,
                key_id: String::new(),
                body,
            });
            prev = entry_hash(seq, &prev, &bytes);
            journal.tree.push_leaf(&prev);
            journal.entries.push(bytes);
            journal.hashes.push(prev);
        }
        journal
    }

    fn signer(name: &str, first: u8) -> NoteSigner {
        let seed: [u8; 32] = std::array::from_fn(|i| first.wrapping_add(i as u8));
        NoteSigner::from_seed(name, &seed).unwrap()
    }

    fn note(journal: &Journal, size: u64, signer: &NoteSigner) -> String {
        let checkpoint = Checkpoint {
            log_host: "tally.example".into(),
            ledger_id: [0x11; 16],
            tree_size: size,
            root: journal.tree.root(size).unwrap(),
            chain_head: journal.hashes[size as usize - 1],
            time_unix_nanos: 1_700_000_000_000_000_000,
        };
        sign_checkpoint(&checkpoint, signer).unwrap()
    }

    fn prove(
        journal: &Journal,
        seq: u64,
        size: u64,
        note: &str,
        keys: &[NoteVerifier],
    ) -> Result<VerifiedEntry, BundleError> {
        let prev = if seq == 0 {
            GENESIS_PREV_HASH
        } else {
            journal.hashes[seq as usize - 1]
        };
        let proof = journal.tree.inclusion_proof(seq, size).unwrap();
        verify_inclusion(
            note.as_bytes(),
            keys,
            seq,
            &prev,
            &journal.entries[seq as usize],
            &proof,
        )
    }

    #[test]
    fn an_included_entry_verifies_and_decodes() {
        // Goal: every entry of a 7-entry journal proves against the signed checkpoint.
        let (journal, key) = (journal(7), signer("k/1", 0));
        let note = note(&journal, 7, &key);
        for seq in 0..7 {
            let verified = prove(&journal, seq, 7, &note, &[key.verifier()]).unwrap();
            assert_eq!(verified.entry_hash, journal.hashes[seq as usize]);
            assert_eq!(verified.checkpoint.checkpoint.tree_size, 7);
        }
    }

    #[test]
    fn inclusion_fails_for_a_foreign_key_a_changed_proof_or_a_seq_beyond_the_tree() {
        let (journal, key) = (journal(7), signer("k/1", 0));
        let note = note(&journal, 5, &key);
        let foreign = signer("k/1", 50).verifier();
        assert!(matches!(
            prove(&journal, 2, 5, &note, &[foreign]),
            Err(BundleError::Checkpoint {
                which: "checkpoint",
                error: CheckpointError::NoKnownSignature
            })
        ));
        let keys = [key.verifier()];
        let mut proof = journal.tree.inclusion_proof(2, 5).unwrap();
        proof[1][0] ^= 1;
        let result = verify_inclusion(
            note.as_bytes(),
            &keys,
            2,
            &journal.hashes[1],
            &journal.entries[2],
            &proof,
        );
        assert!(matches!(
            result,
            Err(BundleError::Inclusion {
                seq: 2,
                tree_size: 5,
                ..
            })
        ));
        // A proof of seq 6 in the tree of 7 says nothing about the checkpoint of 5.
        let proof = journal.tree.inclusion_proof(6, 7).unwrap();
        let result = verify_inclusion(
            note.as_bytes(),
            &keys,
            6,
            &journal.hashes[5],
            &journal.entries[6],
            &proof,
        );
        assert_eq!(
            result,
            Err(BundleError::SeqOutOfRange {
                seq: 6,
                tree_size: 5
            })
        );
    }

    #[test]
    fn consistency_verifies_forward_and_names_rollbacks_and_forks() {
        let (log, key) = (journal(9), signer("k/1", 0));
        let keys = [key.verifier()];
        let (old, new) = (note(&log, 3, &key), note(&log, 9, &key));
        let proof = log.tree.consistency_proof(3, 9).unwrap();
        assert!(verify_consistency(old.as_bytes(), new.as_bytes(), &keys, &proof).is_ok());
        assert!(matches!(
            verify_consistency(new.as_bytes(), old.as_bytes(), &keys, &proof),
            Err(BundleError::Extend(ExtendError::Rollback {
                old_size: 9,
                new_size: 3
            }))
        ));
        let mut bad = proof.clone();
        bad[0][5] ^= 0x80;
        assert!(matches!(
            verify_consistency(old.as_bytes(), new.as_bytes(), &keys, &bad),
            Err(BundleError::Extend(ExtendError::Inconsistent {
                old_size: 3,
                new_size: 9,
                ..
            }))
        ));
        // Another journal of the same size signed by the same key: a fork.
        let other = {
            let mut other = journal(9);
            other.tree = MerkleTree::new(Blake3);
            for hash in log.hashes.iter().rev() {
                other.tree.push_leaf(hash);
            }
            other
        };
        let forked = note(&other, 9, &key);
        assert!(matches!(
            verify_consistency(new.as_bytes(), forked.as_bytes(), &keys, &[]),
            Err(BundleError::Extend(ExtendError::SameSizeFork {
                size: 9,
                ..
            }))
        ));
    }
}
