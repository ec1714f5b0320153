//! Property tests of signed checkpoints: they round-trip, any flipped bit fails, and parsing
//! never panics.

use proptest::prelude::*;
use tally_audit::checkpoint::{self, Checkpoint, NoteSigner, NoteVerifier};

fn signer() -> NoteSigner {
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    NoteSigner::from_seed("tally.example/key-1", &seed).unwrap()
}

fn arbitrary_checkpoint() -> impl Strategy<Value = Checkpoint> {
    (
        "[a-z0-9.-]{1,20}(/[a-z0-9._-]{1,10})?",
        any::<[u8; 16]>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<i64>(),
    )
        .prop_map(
            |(log_host, ledger_id, tree_size, root, chain_head, time_unix_nanos)| Checkpoint {
                log_host,
                ledger_id,
                tree_size,
                root,
                chain_head,
                time_unix_nanos,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn signed_checkpoints_round_trip(checkpoint in arbitrary_checkpoint()) {
        // Goal: any checkpoint, signed, opens with the signer's vkey to the same checkpoint.
        let signer = signer();
        let note = checkpoint::sign_checkpoint(&checkpoint, &signer).unwrap();
        let verifier = NoteVerifier::from_vkey(&signer.verifier().to_vkey()).unwrap();
        let verified = checkpoint::open_checkpoint(note.as_bytes(), &[verifier]).unwrap();
        prop_assert_eq!(verified.checkpoint, checkpoint);
    }

    #[test]
    fn a_flipped_bit_anywhere_fails(checkpoint in arbitrary_checkpoint(), position: usize, bit in 0u8..8) {
        // Goal: flipping any one bit of a signed checkpoint note makes opening it fail.
        let signer = signer();
        let mut note = checkpoint::sign_checkpoint(&checkpoint, &signer).unwrap().into_bytes();
        let index = position % note.len();
        note[index] ^= 1 << bit;
        prop_assert!(checkpoint::open_checkpoint(&note, &[signer.verifier()]).is_err());
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        // Goal: any byte string gives a result (almost always an error), never a panic.
        let _ = checkpoint::open_checkpoint(&bytes, &[signer().verifier()]);
        let _ = checkpoint::SignedNote::parse(&bytes);
    }

    #[test]
    fn parsing_note_like_text_never_panics(
        text in "([a-z0-9/ +=.-]{0,12}|\u{2014} |\n|chain-head |time |[0-9A-Za-z+/=]{43,45}){0,24}"
    ) {
        // Goal: text built from the note's own pieces (em dashes, newlines, keywords, base64)
        // never panics the parser or the vkey reader.
        let _ = checkpoint::open_checkpoint(text.as_bytes(), &[signer().verifier()]);
        let _ = Checkpoint::from_note_text(&text);
        let _ = NoteVerifier::from_vkey(&text);
    }

    #[test]
    fn splicing_lines_of_a_valid_note_never_panics(
        checkpoint in arbitrary_checkpoint(),
        order in proptest::collection::vec(0usize..8, 0..10),
    ) {
        // Goal: a note rebuilt from its own lines in another order, with repeats and gaps,
        // is either the original note or rejected.
        let signer = signer();
        let note = checkpoint::sign_checkpoint(&checkpoint, &signer).unwrap();
        let lines: Vec<&str> = note.split_inclusive('\n').collect();
        let spliced: String = order.iter().map(|&i| lines[i % lines.len()]).collect();
        let result = checkpoint::open_checkpoint(spliced.as_bytes(), &[signer.verifier()]);
        prop_assert!(result.is_err() || spliced == note);
    }
}

#[test]
fn every_bit_of_one_signed_checkpoint_matters() {
    // Goal: exhaustively, each of the bits of the documented test checkpoint note is
    // protected: flipping any single one makes opening fail.
    let signer = signer();
    let checkpoint = Checkpoint {
        log_host: "tally.example".to_string(),
        ledger_id: std::array::from_fn(|i| (i as u8) * 0x11),
        tree_size: 5,
        root: [0xab; 32],
        chain_head: [0xcd; 32],
        time_unix_nanos: 1_700_000_000_000_000_000,
    };
    let note = checkpoint::sign_checkpoint(&checkpoint, &signer)
        .unwrap()
        .into_bytes();
    assert!(checkpoint::open_checkpoint(&note, &[signer.verifier()]).is_ok());
    for index in 0..note.len() {
        for bit in 0..8 {
            let mut tampered = note.clone();
            tampered[index] ^= 1 << bit;
            let result = checkpoint::open_checkpoint(&tampered, &[signer.verifier()]);
            assert!(
                result.is_err(),
                "byte {index} bit {bit} flipped still verifies"
            );
        }
    }
}

#[test]
fn generated_keys_sign_and_verify() {
    // Goal: a key drawn from the OS random source (injected by the caller) signs checkpoints
    // that its exported vkey verifies, and two generated keys differ.
    let first = NoteSigner::generate("tally.example/key-2", &mut rand_core::OsRng).unwrap();
    let second = NoteSigner::generate("tally.example/key-2", &mut rand_core::OsRng).unwrap();
    assert_ne!(first.seed(), second.seed());
    let checkpoint = Checkpoint {
        log_host: "tally.example".to_string(),
        ledger_id: [1; 16],
        tree_size: 1,
        root: [2; 32],
        chain_head: [3; 32],
        time_unix_nanos: 0,
    };
    let note = checkpoint::sign_checkpoint(&checkpoint, &first).unwrap();
    let verifier = NoteVerifier::from_vkey(&first.verifier().to_vkey()).unwrap();
    assert!(checkpoint::open_checkpoint(note.as_bytes(), &[verifier]).is_ok());
}
