//! Fuzzers of the `tally_audit` parsers not fuzzed elsewhere: key rotation notes
//! (`open_rotation`, `KeyRotation::from_note_text`), vkeys (`NoteVerifier::from_vkey`),
//! signed notes (`SignedNote::parse`, `open_note`), the export file (`ExportReader`,
//! `verify_export`) and proof bundles (`bundle::verify_inclusion`,
//! `bundle::verify_consistency`, `bundle::check_extends`).
//!
//! The property everywhere: any input is a value or an error, never a panic (nor a huge
//! allocation). Inputs are arbitrary bytes, and byte-level mutations of valid documents so
//! that parsing gets past the first check.
//!
//! Case counts are small enough for CI; raise them with `PROPTEST_CASES` (see
//! `docs/security.md`, "Fuzzing").

use std::sync::OnceLock;

use proptest::prelude::*;
use tally_audit::bundle;
use tally_audit::checkpoint::{
    open_note, sign_checkpoint, Checkpoint, NoteSigner, NoteVerifier, SignedNote,
};
use tally_audit::entry_leaf_hash;
use tally_audit::export::{verify_export, ExportReader, ExportWriter, EXPORT_HEADER};
use tally_audit::merkle::{self, Blake3, Hash};
use tally_audit::rotation::{open_rotation, sign_rotation, KeyRotation};
use tally_core::chain::{entry_hash, GENESIS_PREV_HASH};
use tally_core::codec::encode;
use tally_core::entry::{Entry, EntryBody};

/// `default` cases, or `PROPTEST_CASES` when set (for long runs).
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

const LEDGER_ID: [u8; 16] = [7; 16];

fn key(n: u8) -> NoteSigner {
    let seed: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(n).wrapping_add(n));
    NoteSigner::from_seed(&format!("tally.example/key-{n}"), &seed).unwrap()
}

fn rotation_note() -> &'static [u8] {
    static NOTE: OnceLock<Vec<u8>> = OnceLock::new();
    NOTE.get_or_init(|| {
        let rotation = KeyRotation {
            log_host: "tally.example".into(),
            ledger_id: LEDGER_ID,
            tree_size: 5,
            old_key: key(1).verifier(),
            new_key: key(2).verifier(),
        };
        sign_rotation(&rotation, &key(1), &key(2))
            .unwrap()
            .into_bytes()
    })
}

/// A valid export (ledger created, key adopted) and its trailer note, with the entries.
struct Valid {
    export: Vec<u8>,
    note: Vec<u8>,
    entries: Vec<Vec<u8>>,
}

fn valid() -> &'static Valid {
    static VALID: OnceLock<Valid> = OnceLock::new();
    VALID.get_or_init(|| {
        let bodies = [
            EntryBody::LedgerCreated {
                ledger_id: LEDGER_ID,
            },
            EntryBody::SigningKeyAdopted {
                vkey: key(1).verifier().to_vkey(),
            },
        ];
        let (mut head, mut leaves, mut entries) = (GENESIS_PREV_HASH, Vec::new(), Vec::new());
        for (seq, body) in bodies.into_iter().enumerate() {
            let bytes = encode(&Entry {
                recorded_at: 1_700_000_000_000_000_000 + seq as i64,
                key_id: String::new(),
                body,
            });
            head = entry_hash(seq as u64, &head, &bytes);
            leaves.push(entry_leaf_hash(&head));
            entries.push(bytes);
        }
        let checkpoint = Checkpoint {
            log_host: "tally.example".into(),
            ledger_id: LEDGER_ID,
            tree_size: entries.len() as u64,
            root: merkle::root(&Blake3, &leaves),
            chain_head: head,
            time_unix_nanos: 1_700_000_001_000_000_000,
        };
        let note = sign_checkpoint(&checkpoint, &key(1)).unwrap();
        let mut writer = ExportWriter::new(Vec::new()).unwrap();
        for entry in &entries {
            writer.entry(entry).unwrap();
        }
        let export = writer.finish(&note).unwrap();
        assert!(verify_export(export.as_slice(), &[key(1).verifier()]).is_ok());
        Valid {
            export,
            note: note.into_bytes(),
            entries,
        }
    })
}

/// Byte-level mutations: flip, truncate, insert, delete.
fn mutated(base: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (
            0u8..4,
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..8),
        ),
        1..4,
    )
    .prop_map(move |edits| {
        let mut bytes = base.to_vec();
        for (kind, at, extra) in edits {
            let at = at.index(bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => bytes[at] ^= extra[0] | 1,
                1 => bytes.truncate(at),
                2 => {
                    bytes.splice(at..at, extra);
                }
                _ => {
                    let end = (at + extra.len()).min(bytes.len());
                    bytes.drain(at.min(end)..end);
                }
            }
        }
        bytes
    })
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Rotation-note-like text: five lines from field-shaped pieces.
fn rotation_like_text() -> impl Strategy<Value = String> {
    let vkey = prop_oneof![
        Just(key(1).verifier().to_vkey()),
        Just(key(2).verifier().to_vkey()),
        "[a-z./-]{0,12}\\+[0-9a-f]{0,9}\\+[A-Za-z0-9+/=]{0,50}",
        "\\PC{0,20}",
    ];
    (
        prop_oneof![
            Just(format!(
                "tally.example/ledger/{}/blake3",
                hex::encode(LEDGER_ID)
            )),
            "[a-z.]{0,10}/ledger/[0-9a-f]{0,33}/[a-z0-9]{0,7}",
            "\\PC{0,20}",
        ],
        prop_oneof![Just("key-rotation".to_string()), "\\PC{0,14}"],
        vkey.clone(),
        vkey,
        prop_oneof![
            "[0-9]{0,25}",
            Just("18446744073709551616".to_string()),
            "\\PC{0,6}"
        ],
        prop::collection::vec("\\PC{0,10}", 0..2),
        any::<bool>(),
    )
        .prop_map(|(origin, kind, old, new, size, extra, newline)| {
            let mut text = format!("{origin}\n{kind}\nold {old}\nnew {new}\nsize {size}");
            for line in extra {
                text.push('\n');
                text.push_str(&line);
            }
            if newline {
                text.push('\n');
            }
            text
        })
}

/// Runs an export through `ExportReader` by hand, to the end or the first error.
fn read_export(input: &[u8]) {
    let Ok(mut reader) = ExportReader::new(input) else {
        return;
    };
    loop {
        match reader.next_entry() {
            Ok(Some(entry)) => assert!(!entry.is_empty()),
            Ok(None) => break,
            Err(_) => return,
        }
    }
    let _ = reader.read_trailer();
}

fn hashes() -> impl Strategy<Value = Vec<Hash>> {
    prop::collection::vec(any::<[u8; 32]>(), 0..70)
}

proptest! {
    #![proptest_config(config(1_000))]

    #[test]
    fn rotation_notes_from_arbitrary_bytes(input in bytes(600)) {
        // Goal: any bytes are a rotation or an error.
        let _ = open_rotation(&input);
        let _ = SignedNote::parse(&input);
        let _ = open_note(&input, &[key(1).verifier()]);
        if let Ok(text) = std::str::from_utf8(&input) {
            let _ = KeyRotation::from_note_text(text);
        }
    }

    #[test]
    fn rotation_notes_mutated(input in mutated(rotation_note())) {
        // Goal: a valid rotation note, changed anywhere, opens only if unchanged in meaning.
        if let Ok(rotation) = open_rotation(&input) {
            prop_assert_eq!(rotation.old_key, key(1).verifier());
            prop_assert_eq!(rotation.new_key, key(2).verifier());
        }
    }

    #[test]
    fn rotation_note_texts(text in rotation_like_text()) {
        // Goal: line-shaped rotation texts with hostile fields parse or refuse.
        if let Ok(rotation) = KeyRotation::from_note_text(&text) {
            prop_assert_eq!(rotation.to_note_text().unwrap(), text);
        }
    }

    #[test]
    fn vkeys(text in prop_oneof![
        "\\PC{0,80}",
        "[a-z./-]{0,12}\\+[0-9a-fA-F]{0,9}\\+[A-Za-z0-9+/=]{0,50}",
        "[a-z]{0,4}\\+[0-9a-f]{8}\\+A[A-Za-z0-9+/]{42}=",
        (0usize..5000).prop_map(|n| format!("{}+00000000+{}", "n".repeat(n), "A".repeat(n))),
    ]) {
        // Goal: a vkey parses to a verifier whose vkey is the same text, or is refused.
        if let Ok(verifier) = NoteVerifier::from_vkey(&text) {
            prop_assert_eq!(verifier.to_vkey(), text);
        }
    }

    #[test]
    fn vkeys_mutated(input in mutated(b"tally.example/key-1+00000000+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")) {
        // Goal: near-valid vkeys (the key id and the key are wrong) never panic.
        if let Ok(text) = std::str::from_utf8(&input) {
            let _ = NoteVerifier::from_vkey(text);
        }
    }

    #[test]
    fn exports_from_arbitrary_bytes(tail in bytes(400), with_header: bool) {
        // Goal: any file, with or without the header, is read frame by frame and verified
        // to an error, never a panic.
        let mut input = if with_header { EXPORT_HEADER.to_vec() } else { Vec::new() };
        input.extend_from_slice(&tail);
        read_export(&input);
        prop_assert!(verify_export(input.as_slice(), &[key(1).verifier()]).is_err());
    }

    #[test]
    fn exports_mutated(input in mutated(&valid().export)) {
        // Goal: a valid export, changed anywhere, is read and verified without a panic;
        // only the unchanged file verifies.
        read_export(&input);
        let verified = verify_export(input.as_slice(), &[key(1).verifier()]);
        if input != valid().export {
            prop_assert!(verified.is_err());
        }
    }

    #[test]
    fn exports_of_arbitrary_frames(
        frames in prop::collection::vec(bytes(64), 0..6),
        lengths in prop::collection::vec(any::<u32>(), 0..3),
        trailer in prop_oneof![bytes(200), Just(valid().note.clone())],
    ) {
        // Goal: well-framed garbage entries, adversarial lengths and any trailer are
        // refused (lengths are checked before anything is allocated).
        let mut input = EXPORT_HEADER.to_vec();
        for frame in frames.iter().filter(|f| !f.is_empty()) {
            input.extend_from_slice(&(frame.len() as u32).to_be_bytes());
            input.extend_from_slice(frame);
        }
        for len in lengths {
            input.extend_from_slice(&len.to_be_bytes());
        }
        input.extend_from_slice(&0u32.to_be_bytes());
        input.extend_from_slice(&trailer);
        read_export(&input);
        let _ = verify_export(input.as_slice(), &[key(1).verifier()]);
    }

    #[test]
    fn inclusion_bundles(
        note in prop_oneof![bytes(300), mutated(&valid().note), Just(valid().note.clone())],
        seq in prop_oneof![0..4u64, any::<u64>()],
        prev in any::<[u8; 32]>(),
        canonical in prop_oneof![bytes(200), Just(valid().entries[1].clone())],
        proof in hashes(),
    ) {
        // Goal: any bundle piece (note, seq, previous hash, entry bytes, proof) is refused
        // without a panic.
        let keys = [key(1).verifier(), key(2).verifier()];
        let _ = bundle::verify_inclusion(&note, &keys, seq, &prev, &canonical, &proof);
    }

    #[test]
    fn consistency_bundles(
        old in prop_oneof![bytes(300), mutated(&valid().note), Just(valid().note.clone())],
        new in prop_oneof![bytes(300), mutated(&valid().note), Just(valid().note.clone())],
        proof in hashes(),
        sizes in (any::<u64>(), any::<u64>()),
        roots in (any::<[u8; 32]>(), any::<[u8; 32]>()),
    ) {
        // Goal: two notes and a proof, or two stated checkpoints of any sizes, are judged
        // without a panic (sizes at 0 and u64::MAX included by `any`).
        let keys = [key(1).verifier()];
        let _ = bundle::verify_consistency(&old, &new, &keys, &proof);
        let checkpoint = |tree_size, root| Checkpoint {
            log_host: "tally.example".into(),
            ledger_id: LEDGER_ID,
            tree_size,
            root,
            chain_head: [0; 32],
            time_unix_nanos: 0,
        };
        let _ = bundle::check_extends(
            &checkpoint(sizes.0, roots.0),
            &checkpoint(sizes.1, roots.1),
            &proof,
        );
    }
}
