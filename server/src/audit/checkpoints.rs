//! Signed checkpoints, made by the writer and recorded in the journal.
//!
//! A checkpoint entry at seq `s` signs the tree of the `s` entries before it
//! (`docs/audit-proofs.md`). The writer appends one at the end of a group when
//! one is due: every `every_entries` new entries, every `interval` while new
//! entries keep coming, or on request. All checkpoints are of one append-only
//! tree, so no two of them can ever be inconsistent with each other.
//!
//! The signing key is reconciled with the journal on start: the first key is
//! recorded as adopted; a key that differs from the journal's is accepted only
//! through a rotation note signed by the journal's key (found among the
//! retired keys) and the new one.

use crate::audit::keys::KeyError;
use crate::ledger::state::LedgerState;
use std::time::Duration;
use tally_audit::{Checkpoint, Hash, KeyRotation, NoteSigner};
use tally_core::entry::{Entry, EntryBody, TimestampNs};

/// When and how checkpoints are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Names the log operator in every checkpoint's origin line.
    pub log_host: String,
    /// A checkpoint after this many new entries (default 10,000).
    pub every_entries: u64,
    /// A checkpoint at least this often while entries keep coming (default 10 s).
    pub interval: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            log_host: "tally.local".to_string(),
            every_entries: 10_000,
            interval: Duration::from_secs(10),
        }
    }
}

pub struct Checkpointer {
    signer: NoteSigner,
    policy: CheckpointPolicy,
    /// The interval counts from here when no checkpoint was signed since:
    /// a ledger just opened waits one interval rather than signing at once.
    started_at: TimestampNs,
}

impl Checkpointer {
    /// Refuses a policy whose log host cannot appear in a note, so that
    /// signing in the writer never fails.
    pub fn new(
        signer: NoteSigner,
        policy: CheckpointPolicy,
        now: TimestampNs,
    ) -> Result<Self, KeyError> {
        let probe = Checkpoint {
            log_host: policy.log_host.clone(),
            ledger_id: [0; 16],
            tree_size: 0,
            root: [0; 32],
            chain_head: [0; 32],
            time_unix_nanos: 0,
        };
        tally_audit::sign_checkpoint(&probe, &signer)
            .map_err(|e| KeyError::Signing(format!("log host {:?}: {e}", policy.log_host)))?;
        Ok(Checkpointer {
            signer,
            policy,
            started_at: now,
        })
    }

    /// Whether a checkpoint should close the group that leaves `state` as it
    /// is. Never when nothing happened since the last one (the last entry is
    /// that checkpoint itself): a checkpoint of a checkpoint says nothing new.
    pub fn due(&self, state: &LedgerState, now: TimestampNs, requested: bool) -> bool {
        let length = state.next_seq();
        let (since_seq, last_at) = state
            .audit()
            .last_checkpoint
            .unwrap_or((0, TimestampNs::MIN));
        let since_at = last_at.max(self.started_at);
        let new_entries = length.saturating_sub(since_seq + 1);
        if new_entries == 0 || length == 0 {
            return false;
        }
        let interval_ns = i64::try_from(self.policy.interval.as_nanos()).unwrap_or(i64::MAX);
        requested
            || new_entries >= self.policy.every_entries
            || now.saturating_sub(since_at) >= interval_ns
    }

    /// The checkpoint entry for the tree of `state.next_seq()` entries whose
    /// root is `root`.
    pub fn entry(&self, state: &LedgerState, root: Hash, now: TimestampNs) -> Entry {
        let recorded_at = state.next_recorded_at(now);
        let checkpoint = Checkpoint {
            log_host: self.policy.log_host.clone(),
            ledger_id: state.ledger_id.unwrap_or_default(),
            tree_size: state.next_seq(),
            root,
            chain_head: state.head(),
            time_unix_nanos: recorded_at,
        };
        // `new` signed a note with this log host and key already: signing
        // cannot fail on anything a request carries.
        let note = tally_audit::sign_checkpoint(&checkpoint, &self.signer)
            .expect("checkpoint fields were validated at start");
        Entry {
            recorded_at,
            key_id: String::new(),
            body: EntryBody::CheckpointSigned { note },
        }
    }
}

/// What the journal must record before the ledger signs with `signer`:
/// nothing, the key's adoption, or a rotation from the journal's key (which
/// must be among `retired`).
pub fn key_entry(
    state: &LedgerState,
    signer: &NoteSigner,
    retired: &[NoteSigner],
    log_host: &str,
    now: TimestampNs,
) -> Result<Option<Entry>, KeyError> {
    let current = signer.verifier();
    let body = match state.audit().signing_key() {
        Some(recorded) if *recorded == current => return Ok(None),
        None => EntryBody::SigningKeyAdopted {
            vkey: current.to_vkey(),
        },
        Some(recorded) => {
            let old = retired
                .iter()
                .find(|key| key.verifier() == *recorded)
                .ok_or_else(|| KeyError::NotLedgerKey {
                    journal: recorded.to_vkey(),
                    file: current.to_vkey(),
                })?;
            let rotation = KeyRotation {
                log_host: log_host.to_string(),
                ledger_id: state.ledger_id.unwrap_or_default(),
                tree_size: state.next_seq(),
                old_key: recorded.clone(),
                new_key: current,
            };
            let note = tally_audit::sign_rotation(&rotation, old, signer)
                .map_err(|e| KeyError::Signing(e.to_string()))?;
            EntryBody::SigningKeyRotated { note }
        }
    };
    Ok(Some(Entry {
        recorded_at: state.next_recorded_at(now),
        key_id: String::new(),
        body,
    }))
}
