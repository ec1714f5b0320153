//! Usage batches: the Merkle root a `usage_recorded` entry commits to, and the
//! path that proves one event under it.
//!
//! The tree is the journal's (RFC 9162, blake3, [`crate::merkle`]) over the
//! batch's events in entry order; an event's leaf is
//! `blake3(0x00 || event_hash)` with `event_hash` from
//! `tally_core::usage::event_hash`. So one event is proven in two hops: its
//! path to the entry's `events_root`, then the entry's inclusion in a signed
//! checkpoint (`docs/audit-proofs.md`). [`verify_event_proof`] checks both hops
//! offline, with the journal's size and root taken from the signed note only.

use crate::bundle::{self, BundleError, VerifiedEntry};
use crate::checkpoint::NoteVerifier;
use crate::merkle::{self, Blake3, Hash, ProofError};
use tally_core::entry::{Digest, EntryBody};
use tally_core::usage::{event_hash, UsageEvent};

/// The Merkle leaf hash of one event.
pub fn event_leaf_hash(event: &UsageEvent) -> Hash {
    merkle::leaf_hash(&Blake3, &event_hash(event))
}

/// The leaf hashes of a batch, in order.
pub fn event_leaf_hashes(events: &[UsageEvent]) -> Vec<Hash> {
    events.iter().map(event_leaf_hash).collect()
}

/// The `events_root` of a batch.
pub fn events_root(events: &[UsageEvent]) -> Hash {
    merkle::root(&Blake3, &event_leaf_hashes(events))
}

/// The audit path of event `index` to the batch's root.
pub fn event_path(events: &[UsageEvent], index: u64) -> Result<Vec<Hash>, ProofError> {
    let leaves = event_leaf_hashes(events);
    merkle::inclusion_proof(&Blake3, &leaves, index, leaves.len() as u64)
}

/// Checks that `event` is event `index` of a batch of `count` events whose root
/// is `events_root`.
pub fn verify_event_path(
    event: &UsageEvent,
    index: u64,
    count: u64,
    path: &[Hash],
    events_root: &Hash,
) -> Result<(), ProofError> {
    merkle::verify_inclusion(
        &Blake3,
        &event_leaf_hash(event),
        index,
        count,
        path,
        events_root,
    )
}

/// Why the proof of one usage event did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventProofError {
    /// The entry is not proven to be in the signed checkpoint, or does not decode.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("entry {seq} is {kind}, not usage_recorded")]
    NotUsageRecorded { seq: u64, kind: &'static str },
    #[error("entry {seq}: its events_root {stated} is not {recomputed}, the Merkle root of its {event_count} events")]
    EventsRootMismatch {
        seq: u64,
        event_count: u64,
        stated: String,
        recomputed: String,
    },
    #[error("entry {seq} has {entry_event_count} events; the proof says {event_count}")]
    EventCountMismatch {
        seq: u64,
        event_count: u64,
        entry_event_count: u64,
    },
    #[error("event index {index} is not below the entry's {event_count} events")]
    IndexOutOfRange { index: u64, event_count: u64 },
    #[error("entry {seq}: event {index} (id {found_event_id:?}) differs from the proven event (id {event_id:?})")]
    EventMismatch {
        seq: u64,
        index: u64,
        event_id: String,
        found_event_id: String,
    },
    #[error("entry {seq}: the path of event {index} does not verify against the entry's events_root: {error}")]
    EventPath {
        seq: u64,
        index: u64,
        error: ProofError,
    },
}

/// One usage event proven to be in a signed checkpoint, through its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEvent {
    /// The `usage_recorded` entry holding the event, with its checkpoint; its
    /// `entry` shows the whole batch.
    pub entry: VerifiedEntry,
    pub event: UsageEvent,
    /// The event's place among the entry's events.
    pub index: u64,
    /// Whether the entry lists the event as late (`UsageRecorded::late`).
    pub late: bool,
}

/// Checks that `event` is event `index` of the `usage_recorded` entry `seq`
/// (canonical bytes `canonical`, chained to `prev_hash`), and that the entry is
/// in the tree of the checkpoint `note` signed by one of `keys`
/// (`docs/audit-proofs.md`, "Proving one usage event").
///
/// In order: the entry's inclusion ([`bundle::verify_inclusion`]: the size and
/// root come from the signed note only); its kind; its `events_root` against
/// the root recomputed from its events; `event_count` and `index` against its
/// events; the event at `index` against `event`; then `event_path` from the
/// event's leaf to the entry's `events_root`. Any input gives a result, never
/// a panic.
// The fields of one proof, as the proof file carries them; a struct would only
// rename them.
#[allow(clippy::too_many_arguments)]
pub fn verify_event_proof(
    note: &[u8],
    keys: &[NoteVerifier],
    seq: u64,
    prev_hash: &Digest,
    canonical: &[u8],
    inclusion: &[Hash],
    event: &UsageEvent,
    index: u64,
    event_count: u64,
    event_path: &[Hash],
) -> Result<VerifiedEvent, EventProofError> {
    let verified = bundle::verify_inclusion(note, keys, seq, prev_hash, canonical, inclusion)?;
    let EntryBody::UsageRecorded(recorded) = &verified.entry.body else {
        let kind = verified.entry.body.kind_name();
        return Err(EventProofError::NotUsageRecorded { seq, kind });
    };
    let entry_event_count = recorded.events.len() as u64;
    let recomputed = events_root(&recorded.events);
    if recomputed != recorded.events_root {
        return Err(EventProofError::EventsRootMismatch {
            seq,
            event_count: entry_event_count,
            stated: hex::encode(recorded.events_root),
            recomputed: hex::encode(recomputed),
        });
    }
    if event_count != entry_event_count {
        return Err(EventProofError::EventCountMismatch {
            seq,
            event_count,
            entry_event_count,
        });
    }
    let Some(found) = usize::try_from(index)
        .ok()
        .and_then(|at| recorded.events.get(at))
    else {
        return Err(EventProofError::IndexOutOfRange { index, event_count });
    };
    if found != event {
        return Err(EventProofError::EventMismatch {
            seq,
            index,
            event_id: event.event_id.clone(),
            found_event_id: found.event_id.clone(),
        });
    }
    verify_event_path(event, index, event_count, event_path, &recorded.events_root)
        .map_err(|error| EventProofError::EventPath { seq, index, error })?;
    let late = recorded.late.iter().any(|&late| u64::from(late) == index);
    Ok(VerifiedEvent {
        event: event.clone(),
        index,
        late,
        entry: verified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn events(n: usize) -> Vec<UsageEvent> {
        (0..n)
            .map(|i| UsageEvent {
                event_id: format!("evt-{i}"),
                customer: "acme".into(),
                meter: "api_calls".into(),
                timestamp: 1_700_000_000_000_000_000 + i as i64,
                value: Some(format!("{i}.5")),
                properties: BTreeMap::new(),
            })
            .collect()
    }

    #[test]
    fn every_event_of_every_batch_size_verifies_and_a_changed_one_does_not() {
        // Goal: paths verify for each index of batches of 1..=17 events; an event
        // with one field changed, or at another index, does not.
        for n in 1..=17usize {
            let batch = events(n);
            let root = events_root(&batch);
            for index in 0..n {
                let path = event_path(&batch, index as u64).unwrap();
                verify_event_path(&batch[index], index as u64, n as u64, &path, &root).unwrap();
                let mut changed = batch[index].clone();
                changed.value = Some("999".into());
                assert_eq!(
                    verify_event_path(&changed, index as u64, n as u64, &path, &root),
                    Err(ProofError::RootMismatch)
                );
                if n > 1 {
                    let other = (index + 1) % n;
                    assert!(
                        verify_event_path(&batch[other], index as u64, n as u64, &path, &root)
                            .is_err()
                    );
                }
            }
        }
    }

    /// The batch of seq 19 of the journal golden vectors
    /// (`docs/journal-format.md` §10.3).
    fn golden_batch() -> Vec<UsageEvent> {
        let event =
            |number: u32, timestamp: i64, value: Option<&str>, properties: &[(&str, &str)]| {
                UsageEvent {
                    event_id: format!("evt-7f3a-{number:04}"),
                    customer: "acme".into(),
                    meter: "compute_seconds".into(),
                    timestamp,
                    value: value.map(str::to_string),
                    properties: properties
                        .iter()
                        .map(|(name, value)| (name.to_string(), value.to_string()))
                        .collect(),
                }
            };
        let eu = |region, instance| {
            [
                ("region", region),
                ("instance.type", instance),
                ("tier", "standard"),
            ]
        };
        vec![
            event(
                1,
                1_699_999_925_000_000_000,
                Some("12.5"),
                &eu("eu-west", "c7g.large"),
            ),
            event(
                2,
                1_699_919_910_000_000_000,
                Some("0.750"),
                &eu("eu-central", "m7i.xlarge"),
            ),
            event(
                3,
                1_699_999_990_123_456_789,
                None,
                &[("region", "us-east-1")],
            ),
        ]
    }

    #[test]
    fn golden_batch_paths_match_the_doc() {
        // Goal: the worked example of docs/audit-proofs.md §13: in the golden
        // batch, event 1's path is [leaf 0, leaf 2] and leads to the events root
        // of docs/journal-format.md §10.3.
        let batch = golden_batch();
        let root = events_root(&batch);
        assert_eq!(
            hex::encode(root),
            "27c55f323502ef91c12db2cfc7d8a1ec69a366737159f088b0486865a7452367"
        );
        let path = event_path(&batch, 1).unwrap();
        let path_hex: Vec<String> = path.iter().map(hex::encode).collect();
        assert_eq!(
            path_hex,
            [
                "1a59062ceaea4a1ef901817f4c4e8939be2aa5e66ed3f3eb3848b2f1e3db85d3",
                "f11d740106fd20bda5f87b1d6bf48e622a2d68218d87d9c9942d2e5fe45ac4c1",
            ]
        );
        assert_eq!(
            hex::encode(event_leaf_hash(&batch[1])),
            "c41cd889aa72e78f8f0bb18414c27aabb75814fb729cc41e351d9d6ef9d58483"
        );
        assert_eq!(
            path,
            [event_leaf_hash(&batch[0]), event_leaf_hash(&batch[2])]
        );
        assert_eq!(verify_event_path(&batch[1], 1, 3, &path, &root), Ok(()));
    }

    #[test]
    fn the_root_of_one_event_is_its_leaf() {
        // Goal: the tree is RFC 9162's: one leaf is its own root, and the leaf is
        // blake3(0x00 || event_hash).
        let batch = events(1);
        let mut leaf = vec![0u8];
        leaf.extend_from_slice(&event_hash(&batch[0]));
        assert_eq!(events_root(&batch), *blake3::hash(&leaf).as_bytes());
    }

    // -----------------------------------------------------------------------
    // Proofs of one event against a signed checkpoint
    // -----------------------------------------------------------------------

    use crate::bundle::BundleError;
    use crate::checkpoint::{sign_checkpoint, Checkpoint, CheckpointError, NoteSigner};
    use crate::merkle::MerkleTree;
    use proptest::prelude::*;
    use tally_core::chain::{entry_hash, GENESIS_PREV_HASH};
    use tally_core::codec;
    use tally_core::entry::{CustomerCreated, Entry, UsageRecorded};

    const LEDGER_ID: [u8; 16] = [0x11; 16];
    /// The seq of the proven batch in `journal()`.
    const BATCH_SEQ: u64 = 2;
    /// The seq of a batch whose events_root is not its events' root.
    const LYING_BATCH_SEQ: u64 = 4;

    /// A signed journal of real entries: canonical bytes, entry hashes, tree.
    struct Journal {
        entries: Vec<Vec<u8>>,
        hashes: Vec<Digest>,
        tree: MerkleTree<Blake3>,
    }

    /// The proven batch: three events of acme, the second one late.
    fn batch() -> Vec<UsageEvent> {
        let mut batch = events(3);
        batch[1].timestamp -= 86_400_000_000_000;
        batch[2].value = None;
        batch[2].properties = BTreeMap::from([("region".to_string(), "eu".to_string())]);
        batch
    }

    /// 0 ledger_created, 1 customer_created, 2 usage_recorded (`batch()`),
    /// 3 usage_period_closed, 4 usage_recorded with a wrong events_root.
    fn journal() -> Journal {
        let mut lying = events(2);
        lying[0].event_id = "evt-x".into();
        let bodies = [
            EntryBody::LedgerCreated {
                ledger_id: LEDGER_ID,
            },
            EntryBody::CustomerCreated(CustomerCreated {
                customer_id: "acme".into(),
                name: "Acme".into(),
                metadata: BTreeMap::new(),
            }),
            EntryBody::UsageRecorded(UsageRecorded {
                events_root: events_root(&batch()),
                events: batch(),
                late: vec![1],
            }),
            EntryBody::UsagePeriodClosed {
                customer_id: "acme".into(),
                through: 1_700_000_000_000_000_000,
            },
            EntryBody::UsageRecorded(UsageRecorded {
                events_root: events_root(&events(2)),
                events: lying,
                late: vec![],
            }),
        ];
        let mut journal = Journal {
            entries: Vec::new(),
            hashes: Vec::new(),
            tree: MerkleTree::new(Blake3),
        };
        let mut prev = GENESIS_PREV_HASH;
        for (seq, body) in bodies.into_iter().enumerate() {
            let bytes = codec::encode(&Entry {
                recorded_at: 1_700_000_100_000_000_000 + seq as i64,
                key_id: String::new(),
                body,
            });
            prev = entry_hash(seq as u64, &prev, &bytes);
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

    fn note(journal: &Journal, signer: &NoteSigner) -> String {
        let size = journal.tree.size();
        let checkpoint = Checkpoint {
            log_host: "tally.example".into(),
            ledger_id: LEDGER_ID,
            tree_size: size,
            root: journal.tree.root(size).unwrap(),
            chain_head: journal.hashes[size as usize - 1],
            time_unix_nanos: 1_700_000_200_000_000_000,
        };
        sign_checkpoint(&checkpoint, signer).unwrap()
    }

    /// One event proof's fields, as a prover gives them; each test changes one.
    #[derive(Clone)]
    struct Proof {
        note: String,
        seq: u64,
        prev_hash: Digest,
        entry: Vec<u8>,
        inclusion: Vec<Hash>,
        event: UsageEvent,
        index: u64,
        event_count: u64,
        event_path: Vec<Hash>,
    }

    /// The honest proof of event `index` of the entry `seq` (a batch of
    /// `events`), against the checkpoint of the whole journal.
    fn proof(journal: &Journal, note: &str, seq: u64, events: &[UsageEvent], index: u64) -> Proof {
        let size = journal.tree.size();
        Proof {
            note: note.to_string(),
            seq,
            prev_hash: journal.hashes[seq as usize - 1],
            entry: journal.entries[seq as usize].clone(),
            inclusion: journal.tree.inclusion_proof(seq, size).unwrap(),
            event: events[index as usize].clone(),
            index,
            event_count: events.len() as u64,
            event_path: event_path(events, index).unwrap(),
        }
    }

    fn verify(proof: &Proof, keys: &[NoteVerifier]) -> Result<VerifiedEvent, EventProofError> {
        verify_event_proof(
            proof.note.as_bytes(),
            keys,
            proof.seq,
            &proof.prev_hash,
            &proof.entry,
            &proof.inclusion,
            &proof.event,
            proof.index,
            proof.event_count,
            &proof.event_path,
        )
    }

    #[test]
    fn every_event_of_a_batch_proves_against_the_signed_checkpoint() {
        // Goal: each of the three events of a usage_recorded entry proves in two
        // hops against the checkpoint of the whole journal; the result carries
        // the entry (the whole batch), the event, its index and its late flag.
        let (journal, key) = (journal(), signer("k/1", 0));
        let note = note(&journal, &key);
        for index in 0..3 {
            let honest = proof(&journal, &note, BATCH_SEQ, &batch(), index);
            let verified = verify(&honest, &[key.verifier()]).unwrap();
            assert_eq!(verified.event, batch()[index as usize]);
            assert_eq!(verified.index, index);
            assert_eq!(verified.late, index == 1, "event {index}");
            assert_eq!(verified.entry.seq, BATCH_SEQ);
            assert_eq!(verified.entry.checkpoint.checkpoint.tree_size, 5);
            let EntryBody::UsageRecorded(recorded) = &verified.entry.entry.body else {
                panic!("not usage_recorded");
            };
            assert_eq!(recorded.events, batch());
        }
    }

    #[test]
    fn each_tampering_is_named() {
        // Goal: another event, another index, a changed path element, an entry
        // of another kind, a wrong event count, a note signed by another key, a
        // batch whose root is not its events' and a changed entry each fail with
        // their own error.
        let (journal, key) = (journal(), signer("k/1", 0));
        let keys = [key.verifier()];
        let note = note(&journal, &key);
        let honest = proof(&journal, &note, BATCH_SEQ, &batch(), 0);
        let fails = |change: &dyn Fn(&mut Proof)| {
            let mut tampered = honest.clone();
            change(&mut tampered);
            verify(&tampered, &keys).unwrap_err()
        };

        // Another event at index 0: another event of the batch, or event 0 changed.
        let other = fails(&|p| p.event = batch()[1].clone());
        assert_eq!(
            other,
            EventProofError::EventMismatch {
                seq: BATCH_SEQ,
                index: 0,
                event_id: "evt-1".into(),
                found_event_id: "evt-0".into(),
            }
        );
        let changed = fails(&|p| p.event.value = Some("1000".into()));
        assert!(matches!(
            changed,
            EventProofError::EventMismatch { index: 0, .. }
        ));

        // Event 0 claimed at another index, with or without that index's path.
        let moved = fails(&|p| p.index = 1);
        assert!(matches!(
            moved,
            EventProofError::EventMismatch { index: 1, .. }
        ));
        let moved = fails(&|p| {
            p.index = 2;
            p.event_path = event_path(&batch(), 2).unwrap();
        });
        assert!(matches!(
            moved,
            EventProofError::EventMismatch { index: 2, .. }
        ));
        assert_eq!(
            fails(&|p| p.index = 3),
            EventProofError::IndexOutOfRange {
                index: 3,
                event_count: 3
            }
        );
        assert_eq!(
            fails(&|p| p.index = u64::MAX),
            EventProofError::IndexOutOfRange {
                index: u64::MAX,
                event_count: 3
            }
        );

        // A changed, dropped or extra path element.
        let path_error = |error| EventProofError::EventPath {
            seq: BATCH_SEQ,
            index: 0,
            error,
        };
        assert_eq!(
            fails(&|p| p.event_path[1][31] ^= 1),
            path_error(ProofError::RootMismatch)
        );
        assert_eq!(
            fails(&|p| {
                p.event_path.pop();
            }),
            path_error(ProofError::ProofTooShort { proof_len: 1 })
        );
        assert_eq!(
            fails(&|p| p.event_path.push([0; 32])),
            path_error(ProofError::ProofTooLong { proof_len: 3 })
        );

        // A wrong event count.
        assert_eq!(
            fails(&|p| p.event_count = 4),
            EventProofError::EventCountMismatch {
                seq: BATCH_SEQ,
                event_count: 4,
                entry_event_count: 3
            }
        );

        // An entry of another kind, itself included in the checkpoint.
        let customer = Proof {
            seq: 1,
            prev_hash: journal.hashes[0],
            entry: journal.entries[1].clone(),
            inclusion: journal.tree.inclusion_proof(1, 5).unwrap(),
            ..honest.clone()
        };
        assert_eq!(
            verify(&customer, &keys).unwrap_err(),
            EventProofError::NotUsageRecorded {
                seq: 1,
                kind: "customer_created"
            }
        );

        // A note signed by another key only.
        let foreign = signer("k/1", 50);
        assert_eq!(
            verify(&honest, &[foreign.verifier()]).unwrap_err(),
            EventProofError::Bundle(BundleError::Checkpoint {
                which: "checkpoint",
                error: CheckpointError::NoKnownSignature
            })
        );
        let foreign_note = fails(&|p| p.note = self::note(&journal, &foreign));
        assert!(matches!(
            foreign_note,
            EventProofError::Bundle(BundleError::Checkpoint { .. })
        ));

        // A batch, signed into the journal, whose events_root is not its events'.
        let lying = proof(&journal, &note, LYING_BATCH_SEQ, &events(2), 1);
        assert!(matches!(
            verify(&lying, &keys).unwrap_err(),
            EventProofError::EventsRootMismatch {
                seq: LYING_BATCH_SEQ,
                event_count: 2,
                ..
            }
        ));

        // The entry's bytes changed (one event's value): no longer the included entry.
        let rewritten = fails(&|p| {
            let at = p.entry.windows(3).position(|w| w == b"0.5").unwrap();
            p.entry[at] = b'9';
        });
        assert!(matches!(
            rewritten,
            EventProofError::Bundle(BundleError::Inclusion {
                seq: BATCH_SEQ,
                tree_size: 5,
                ..
            })
        ));
    }

    #[test]
    fn the_size_and_root_come_from_the_signed_note() {
        // Goal: the verifier checks the entry against the note's size: an entry
        // beyond the checkpoint is refused, even with a path for a larger tree.
        let (journal, key) = (journal(), signer("k/1", 0));
        let small = {
            let checkpoint = Checkpoint {
                log_host: "tally.example".into(),
                ledger_id: LEDGER_ID,
                tree_size: 2,
                root: journal.tree.root(2).unwrap(),
                chain_head: journal.hashes[1],
                time_unix_nanos: 1_700_000_200_000_000_000,
            };
            sign_checkpoint(&checkpoint, &key).unwrap()
        };
        let beyond = proof(&journal, &small, BATCH_SEQ, &batch(), 0);
        assert_eq!(
            verify(&beyond, &[key.verifier()]).unwrap_err(),
            EventProofError::Bundle(BundleError::SeqOutOfRange {
                seq: BATCH_SEQ,
                tree_size: 2
            })
        );
    }

    fn hashes() -> impl Strategy<Value = Vec<Hash>> {
        proptest::collection::vec(any::<[u8; 32]>(), 0..6)
    }

    fn any_event() -> impl Strategy<Value = UsageEvent> {
        (
            0..3usize,
            proptest::option::of("\\PC{0,8}"),
            proptest::option::of(any::<i64>()),
        )
            .prop_map(|(index, event_id, timestamp)| {
                let mut event = batch()[index].clone();
                if let Some(event_id) = event_id {
                    event.event_id = event_id;
                }
                if let Some(timestamp) = timestamp {
                    event.timestamp = timestamp;
                }
                event
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn verification_never_panics_on_arbitrary_bytes(
            note in proptest::collection::vec(any::<u8>(), 0..400),
            seq in any::<u64>(),
            prev_hash in any::<[u8; 32]>(),
            entry in proptest::collection::vec(any::<u8>(), 0..400),
            inclusion in hashes(),
            event in any_event(),
            index in any::<u64>(),
            event_count in any::<u64>(),
            event_path in hashes(),
        ) {
            // Goal: arbitrary notes, entries and paths give an error, never a panic.
            let key = signer("k/1", 0);
            let result = verify_event_proof(
                &note, &[key.verifier()], seq, &prev_hash, &entry, &inclusion, &event, index,
                event_count, &event_path,
            );
            prop_assert!(result.is_err());
        }

        #[test]
        fn verification_never_panics_past_the_signed_note(
            seq in 0..5u64,
            event in any_event(),
            index in prop_oneof![0..4u64, any::<u64>()],
            event_count in prop_oneof![0..4u64, any::<u64>()],
            event_path in prop_oneof![hashes(), Just(Vec::new())],
            honest_path in any::<bool>(),
        ) {
            // Goal: with a genuine signed note and a genuinely included entry of
            // any kind, any event, index, count and path give a result, never a
            // panic; only the honest proof of a batch event verifies.
            let (journal, key) = (journal(), signer("k/1", 0));
            let note = note(&journal, &key);
            let size = journal.tree.size();
            let prev_hash = if seq == 0 { GENESIS_PREV_HASH } else { journal.hashes[seq as usize - 1] };
            let event_path = match (honest_path, index < 3) {
                (true, true) => super::event_path(&batch(), index).unwrap(),
                _ => event_path,
            };
            let result = verify_event_proof(
                note.as_bytes(),
                &[key.verifier()],
                seq,
                &prev_hash,
                &journal.entries[seq as usize],
                &journal.tree.inclusion_proof(seq, size).unwrap(),
                &event,
                index,
                event_count,
                &event_path,
            );
            let honest = seq == BATCH_SEQ
                && index < 3
                && event_count == 3
                && event == batch()[index as usize]
                && event_path == super::event_path(&batch(), index).unwrap();
            prop_assert_eq!(result.is_ok(), honest);
        }
    }
}
