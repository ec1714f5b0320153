//! The test vectors printed in `docs/audit-proofs.md` §8, frozen: if one of these fails, the
//! format changed and the document (and every auditor's verifier) with it.
//!
//! Cross-checks made when the vectors were written: the key id, vkey and ed25519 signature
//! were recomputed independently with Python (`hashlib.sha256`, the `cryptography` package's
//! Ed25519 from the same seed), which produced the same bytes.

use tally_audit::checkpoint::{self, Checkpoint, NoteSigner, NoteVerifier};
use tally_audit::merkle::{self, Blake3, Hash, MerkleTree};

fn h(text: &str) -> Hash {
    hex::decode(text).unwrap().try_into().unwrap()
}

/// Entry hash i of the example: 32 bytes all equal to i.
fn example_tree() -> MerkleTree<Blake3> {
    let mut tree = MerkleTree::new(Blake3);
    for i in 0..5u8 {
        tree.push_leaf(&[i; 32]);
    }
    tree
}

const LEAF_HASHES: [&str; 5] = [
    "232b17a92a13d46fdeeba07519406dcdad6d67b7399159364b5e26af0ab95bcf",
    "a2ddb4931d05ba6281549052c62d2780a2d3ac29514c0a77598283d61e861206",
    "ada21777220442b46d8e0b3fe5a5099502eca1cb91e919758c33a320bc9f2d88",
    "7e14f3d3c9ad356fc347f27541758e9af6fa7b71480d1933065abd0b649f3f8d",
    "ecb2bfa29ca32cd4afafa7021bf444ce0956ad6f04d024d0a4ce5afe6f229d10",
];

/// Roots of the first n leaves, n = 0..5.
const ROOTS: [&str; 6] = [
    "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    "232b17a92a13d46fdeeba07519406dcdad6d67b7399159364b5e26af0ab95bcf",
    "601ae0d333efaf511cc72652be96836dc134955fc1c681ff185f99b5a12b2ae5",
    "3f97043de3a7a8fe71e55454f9f9dead4e44301744481419a20754c5a4f5ee38",
    "0429a1b33a4380638861ac320355688368261d8ed7ff2acb4b9701a8480b9e4b",
    "e6072121201b0f45dece141a4783b36b646b545bdde45368a59f50f52d4ecd55",
];

const INCLUSION_2_IN_5: [&str; 3] = [
    "7e14f3d3c9ad356fc347f27541758e9af6fa7b71480d1933065abd0b649f3f8d",
    "601ae0d333efaf511cc72652be96836dc134955fc1c681ff185f99b5a12b2ae5",
    "ecb2bfa29ca32cd4afafa7021bf444ce0956ad6f04d024d0a4ce5afe6f229d10",
];

const CONSISTENCY_3_TO_5: [&str; 4] = [
    "ada21777220442b46d8e0b3fe5a5099502eca1cb91e919758c33a320bc9f2d88",
    "7e14f3d3c9ad356fc347f27541758e9af6fa7b71480d1933065abd0b649f3f8d",
    "601ae0d333efaf511cc72652be96836dc134955fc1c681ff185f99b5a12b2ae5",
    "ecb2bfa29ca32cd4afafa7021bf444ce0956ad6f04d024d0a4ce5afe6f229d10",
];

const VKEY: &str = "tally.example/key-1+4e513526+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4";

const SIGNED_CHECKPOINT: &str = "tally.example/ledger/00112233445566778899aabbccddeeff/blake3
5
5gchISAbD0XezhQaR4Oza2RrVFvd5FNopZ9Q9S1OzVU=
chain-head 0404040404040404040404040404040404040404040404040404040404040404
time 1700000000000000000

\u{2014} tally.example/key-1 TlE1Ji1jOu9/SpjlAGcfOzedYjpRmX0R4lrWpCNZ5HLbpfZ3IVhbI760EtDJM8Sp2t9dHlu/xai70qbIwvWKPDmT/Qc=
";

#[test]
fn merkle_vectors_of_the_document() {
    // Goal: the leaf hashes, roots and proofs of docs/audit-proofs.md §8.1 are what the code
    // computes, and the proofs verify.
    let tree = example_tree();
    for (i, want) in LEAF_HASHES.iter().enumerate() {
        assert_eq!(
            merkle::leaf_hash(&Blake3, &[i as u8; 32]),
            h(want),
            "leaf {i}"
        );
    }
    for (size, want) in ROOTS.iter().enumerate() {
        assert_eq!(tree.root(size as u64).unwrap(), h(want), "root of {size}");
    }
    let inclusion: Vec<Hash> = INCLUSION_2_IN_5.iter().map(|p| h(p)).collect();
    assert_eq!(tree.inclusion_proof(2, 5).unwrap(), inclusion);
    let root5 = h(ROOTS[5]);
    let leaf2 = h(LEAF_HASHES[2]);
    assert_eq!(
        merkle::verify_inclusion(&Blake3, &leaf2, 2, 5, &inclusion, &root5),
        Ok(())
    );
    let consistency: Vec<Hash> = CONSISTENCY_3_TO_5.iter().map(|p| h(p)).collect();
    assert_eq!(tree.consistency_proof(3, 5).unwrap(), consistency);
    let root3 = h(ROOTS[3]);
    assert_eq!(
        merkle::verify_consistency(&Blake3, 3, 5, &root3, &root5, &consistency),
        Ok(())
    );
}

#[test]
fn checkpoint_vector_of_the_document() {
    // Goal: the test key (seed 00 01 .. 1f) has the documented vkey and signs the documented
    // checkpoint to exactly the documented note (ed25519 signatures are deterministic).
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    let signer = NoteSigner::from_seed("tally.example/key-1", &seed).unwrap();
    assert_eq!(signer.key_id(), 0x4e513526);
    assert_eq!(signer.verifier().to_vkey(), VKEY);
    let checkpoint = Checkpoint {
        log_host: "tally.example".to_string(),
        ledger_id: hex::decode("00112233445566778899aabbccddeeff")
            .unwrap()
            .try_into()
            .unwrap(),
        tree_size: 5,
        root: h(ROOTS[5]),
        chain_head: [4; 32],
        time_unix_nanos: 1_700_000_000_000_000_000,
    };
    assert_eq!(
        checkpoint::sign_checkpoint(&checkpoint, &signer).unwrap(),
        SIGNED_CHECKPOINT
    );
    let verifier = NoteVerifier::from_vkey(VKEY).unwrap();
    let verified = checkpoint::open_checkpoint(SIGNED_CHECKPOINT.as_bytes(), &[verifier]).unwrap();
    assert_eq!(verified.checkpoint, checkpoint);
}
