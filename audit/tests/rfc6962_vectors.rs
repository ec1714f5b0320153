//! The generic Merkle code run with SHA-256 against public RFC 6962 / RFC 9162 test data.
//!
//! Sources of the vectors (each named again where it is used):
//! - Leaves and the roots of their first n leaves: transparency-dev/merkle `testonly/constants.go`
//!   (`LeafInputs`, `RootHashes`), the Certificate Transparency reference tree of 8 leaves.
//! - Inclusion proofs: transparency-dev/merkle `testdata/inclusion/{0..4}/happy-path.json`.
//! - Consistency proofs: transparency-dev/merkle `testdata/consistency/{0..4}/happy-path.json`.
//! - The mutations applied to them mirror the other files of those directories (`wrong-leaf`,
//!   `leafIdx-+-1`, `treeSize-*-2`, `modified-proof[i]-bit-3`, `trailing-garbage`, ...), which
//!   all expect an error.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256 as Sha256Digest};
use tally_audit::merkle::{self, Hash, MerkleHasher, MerkleTree};

/// SHA-256, for the RFC 6962 vectors only (Tally itself uses blake3).
struct Sha256;

impl MerkleHasher for Sha256 {
    fn digest(&self, parts: &[&[u8]]) -> Hash {
        let mut hasher = Sha256Digest::new();
        for part in parts {
            hasher.update(part);
        }
        hasher.finalize().into()
    }
}

/// transparency-dev/merkle `testonly/constants.go`, `LeafInputs`.
const LEAF_INPUTS_HEX: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// transparency-dev/merkle `testonly/constants.go`, `RootHashes`: MTH of the first n leaves,
/// n = 1..8 (the same values appear in RFC 6962 implementations' tests since Certificate
/// Transparency's reference C++ code).
const ROOTS_HEX: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// SHA-256("") — the root of the empty tree (RFC 9162 §2.1.1; `testonly/constants.go`).
const EMPTY_ROOT_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct InclusionVector {
    source: &'static str,
    index: u64,
    size: u64,
    root: &'static str,
    leaf_hash: &'static str,
    proof: &'static [&'static str],
}

/// transparency-dev/merkle `testdata/inclusion/N/happy-path.json`, values copied verbatim
/// (base64, as in the files).
const INCLUSION: [InclusionVector; 5] = [
    InclusionVector {
        source: "testdata/inclusion/0/happy-path.json",
        index: 0,
        size: 1,
        root: "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
        leaf_hash: "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
        proof: &[],
    },
    InclusionVector {
        source: "testdata/inclusion/1/happy-path.json",
        index: 0,
        size: 8,
        root: "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        leaf_hash: "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
        proof: &[
            "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ=",
        ],
    },
    InclusionVector {
        source: "testdata/inclusion/2/happy-path.json",
        index: 5,
        size: 8,
        root: "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        leaf_hash: "QnGia+DYqE8L1UyMMC58s6O10fpngKQLzOKHNHfatlg=",
        proof: &[
            "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
            "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    },
    InclusionVector {
        source: "testdata/inclusion/3/happy-path.json",
        index: 2,
        size: 3,
        root: "rra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=",
        leaf_hash: "ApjRIpBtz8EIkstTpzmS/FufST6kybrbJ7eRtBJ6f+c=",
        proof: &["+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU="],
    },
    InclusionVector {
        source: "testdata/inclusion/4/happy-path.json",
        index: 1,
        size: 5,
        root: "Tju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNQ=",
        leaf_hash: "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
        proof: &[
            "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
        ],
    },
];

struct ConsistencyVector {
    source: &'static str,
    old_size: u64,
    new_size: u64,
    old_root: &'static str,
    new_root: &'static str,
    proof: &'static [&'static str],
}

/// transparency-dev/merkle `testdata/consistency/N/happy-path.json`, values copied verbatim.
const CONSISTENCY: [ConsistencyVector; 5] = [
    ConsistencyVector {
        source: "testdata/consistency/0/happy-path.json",
        old_size: 1,
        new_size: 1,
        old_root: "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
        new_root: "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
        proof: &[],
    },
    ConsistencyVector {
        source: "testdata/consistency/1/happy-path.json",
        old_size: 1,
        new_size: 8,
        old_root: "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=",
        new_root: "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        proof: &[
            "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ=",
        ],
    },
    ConsistencyVector {
        source: "testdata/consistency/2/happy-path.json",
        old_size: 6,
        new_size: 8,
        old_root: "duZ9rbzfHhDht03cYIq9L5jfsW+851J3tSMqEn8gh+8=",
        new_root: "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        proof: &[
            "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
            "yoVOoSjtBQtBs1/8G4e46yveRh6eO1WW7Oa51ZdaCuA=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    },
    ConsistencyVector {
        source: "testdata/consistency/3/happy-path.json",
        old_size: 2,
        new_size: 5,
        old_root: "+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU=",
        new_root: "Tju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNQ=",
        proof: &[
            "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
            "vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms=",
        ],
    },
    ConsistencyVector {
        source: "testdata/consistency/4/happy-path.json",
        old_size: 6,
        new_size: 7,
        old_root: "duZ9rbzfHhDht03cYIq9L5jfsW+851J3tSMqEn8gh+8=",
        new_root: "3bib5AOAnjJXUNPSY814kpwpQreUKjS3fhIslZSnTIw=",
        proof: &[
            "DrxdNDf74tsVi58Sah0RjjCBgQMdCpSfje3t68VY72o=",
            "sIaT7C5yFZcTBkHoIR5+7cy0wmQTlj7ubB4u0W/7Gl8=",
            "037kGJdt2VdTwcc4Yrk5j6Kiz5tP8P3+izDNlSCWFLc=",
        ],
    },
];

fn b64(text: &str) -> Hash {
    STANDARD.decode(text).unwrap().try_into().unwrap()
}

fn b64_all(texts: &[&str]) -> Vec<Hash> {
    texts.iter().map(|t| b64(t)).collect()
}

fn from_hex(text: &str) -> Hash {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn reference_leaf_hashes() -> Vec<Hash> {
    LEAF_INPUTS_HEX
        .iter()
        .map(|leaf| merkle::leaf_hash(&Sha256, &hex::decode(leaf).unwrap()))
        .collect()
}

#[test]
fn roots_of_the_reference_tree_match_the_published_ones() {
    // Goal: MTH over the first n CT reference leaves equals transparency-dev/merkle's
    // RootHashes for n = 0..8, with both the O(n) function and the cached tree.
    let leaf_hashes = reference_leaf_hashes();
    assert_eq!(merkle::root(&Sha256, &[]), from_hex(EMPTY_ROOT_HEX));
    let tree = MerkleTree::from_leaf_hashes(Sha256, &leaf_hashes);
    assert_eq!(tree.root(0).unwrap(), from_hex(EMPTY_ROOT_HEX));
    for (n, want) in ROOTS_HEX.iter().enumerate() {
        let size = n + 1;
        let got = merkle::root(&Sha256, &leaf_hashes[..size]);
        assert_eq!(hex::encode(got), *want, "root of {size} leaves");
        assert_eq!(
            tree.root(size as u64).unwrap(),
            got,
            "cached root of {size} leaves"
        );
    }
}

#[test]
fn published_inclusion_proofs_verify_and_are_regenerated() {
    // Goal: each happy-path inclusion vector verifies, and our generator produces exactly the
    // published proof from the reference leaves.
    let leaf_hashes = reference_leaf_hashes();
    for v in &INCLUSION {
        let proof = b64_all(v.proof);
        let leaf_hash = b64(v.leaf_hash);
        assert_eq!(leaf_hash, leaf_hashes[v.index as usize], "{}", v.source);
        merkle::verify_inclusion(&Sha256, &leaf_hash, v.index, v.size, &proof, &b64(v.root))
            .unwrap_or_else(|e| panic!("{}: {e}", v.source));
        let generated = merkle::inclusion_proof(&Sha256, &leaf_hashes, v.index, v.size).unwrap();
        assert_eq!(generated, proof, "{}", v.source);
    }
}

#[test]
fn published_consistency_proofs_verify_and_are_regenerated() {
    // Goal: each happy-path consistency vector verifies, and our generator produces exactly the
    // published proof from the reference leaves.
    let leaf_hashes = reference_leaf_hashes();
    for v in &CONSISTENCY {
        let proof = b64_all(v.proof);
        let (old_root, new_root) = (b64(v.old_root), b64(v.new_root));
        merkle::verify_consistency(
            &Sha256, v.old_size, v.new_size, &old_root, &new_root, &proof,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", v.source));
        let generated =
            merkle::consistency_proof(&Sha256, &leaf_hashes, v.old_size, v.new_size).unwrap();
        assert_eq!(generated, proof, "{}", v.source);
    }
}

/// The same mutation kinds as the generated negative files of `testdata/inclusion/N/`.
fn inclusion_mutations(v: &InclusionVector) -> Vec<(String, Hash, u64, u64, Vec<Hash>, Hash)> {
    let (leaf, root, proof) = (b64(v.leaf_hash), b64(v.root), b64_all(v.proof));
    let mut cases = vec![
        (
            "wrong-leaf".into(),
            [0xab; 32],
            v.index,
            v.size,
            proof.clone(),
            root,
        ),
        (
            "leafIdx-+-1".into(),
            leaf,
            v.index + 1,
            v.size,
            proof.clone(),
            root,
        ),
        (
            "leafIdx-^-2".into(),
            leaf,
            v.index ^ 2,
            v.size,
            proof.clone(),
            root,
        ),
        (
            "treeSize-*-2".into(),
            leaf,
            v.index,
            v.size * 2,
            proof.clone(),
            root,
        ),
        (
            "treeSize-div-2".into(),
            leaf,
            v.index,
            v.size / 2,
            proof.clone(),
            root,
        ),
        (
            "empty-root".into(),
            leaf,
            v.index,
            v.size,
            proof.clone(),
            merkle::root(&Sha256, &[]),
        ),
        (
            "random-root".into(),
            leaf,
            v.index,
            v.size,
            proof.clone(),
            [0x5a; 32],
        ),
    ];
    if v.index > 0 {
        cases.push((
            "leafIdx---1".into(),
            leaf,
            v.index - 1,
            v.size,
            proof.clone(),
            root,
        ));
    }
    let mut with_garbage = proof.clone();
    with_garbage.push([0x11; 32]);
    cases.push((
        "trailing-garbage".into(),
        leaf,
        v.index,
        v.size,
        with_garbage,
        root,
    ));
    let mut preceding = vec![[0x11; 32]];
    preceding.extend(proof.iter().copied());
    cases.push((
        "preceding-garbage".into(),
        leaf,
        v.index,
        v.size,
        preceding,
        root,
    ));
    let mut trailing_root = proof.clone();
    trailing_root.push(root);
    cases.push((
        "trailing-root".into(),
        leaf,
        v.index,
        v.size,
        trailing_root,
        root,
    ));
    for i in 0..proof.len() {
        let mut modified = proof.clone();
        modified[i][0] ^= 1 << 3;
        cases.push((
            format!("modified-proof[{i}]-bit-3"),
            leaf,
            v.index,
            v.size,
            modified,
            root,
        ));
        let mut removed = proof.clone();
        removed.remove(i);
        cases.push((
            format!("removed-component-{i}"),
            leaf,
            v.index,
            v.size,
            removed,
            root,
        ));
    }
    cases
}

#[test]
fn mutated_inclusion_vectors_fail() {
    // Goal: every mutation of a published inclusion proof (as in transparency-dev/merkle's
    // negative testdata) is rejected with an error, never accepted and never a panic.
    for v in &INCLUSION {
        for (name, leaf, index, size, proof, root) in inclusion_mutations(v) {
            let result = merkle::verify_inclusion(&Sha256, &leaf, index, size, &proof, &root);
            assert!(result.is_err(), "{}: mutation {name} verified", v.source);
        }
    }
}

/// The same mutation kinds as the generated negative files of `testdata/consistency/N/`.
fn consistency_mutations(v: &ConsistencyVector) -> Vec<(String, u64, u64, Hash, Hash, Vec<Hash>)> {
    let (r1, r2, proof) = (b64(v.old_root), b64(v.new_root), b64_all(v.proof));
    let (s1, s2) = (v.old_size, v.new_size);
    let mut cases = vec![
        ("size1-+-1".into(), s1 + 1, s2, r1, r2, proof.clone()),
        ("size1---1".into(), s1 - 1, s2, r1, r2, proof.clone()),
        ("size1-^-2".into(), s1 ^ 2, s2, r1, r2, proof.clone()),
        ("size2-*-2".into(), s1, s2 * 2, r1, r2, proof.clone()),
        ("size2-div-2".into(), s1, s2 / 2, r1, r2, proof.clone()),
        ("wrong-root1".into(), s1, s2, [0x5a; 32], r2, proof.clone()),
        ("wrong-root2".into(), s1, s2, r1, [0x5a; 32], proof.clone()),
    ];
    if r1 != r2 {
        cases.push(("swapped-roots".into(), s1, s2, r2, r1, proof.clone()));
    }
    if !proof.is_empty() {
        cases.push(("empty-proof".into(), s1, s2, r1, r2, Vec::new()));
        let truncated = proof[..proof.len() - 1].to_vec();
        cases.push(("truncated-proof".into(), s1, s2, r1, r2, truncated));
    }
    for (name, extra) in [("garbage", [0x11; 32]), ("root1", r1), ("root2", r2)] {
        let mut trailing = proof.clone();
        trailing.push(extra);
        cases.push((format!("trailing-{name}"), s1, s2, r1, r2, trailing));
        let mut preceding = vec![extra];
        preceding.extend(proof.iter().copied());
        cases.push((format!("preceding-{name}"), s1, s2, r1, r2, preceding));
    }
    for i in 0..proof.len() {
        let mut modified = proof.clone();
        modified[i][0] ^= 1 << 4;
        cases.push((
            format!("modified-proof[{i}]-bit-4"),
            s1,
            s2,
            r1,
            r2,
            modified,
        ));
    }
    cases
}

#[test]
fn mutated_consistency_vectors_fail() {
    // Goal: every mutation of a published consistency proof (as in transparency-dev/merkle's
    // negative testdata) is rejected with an error, never accepted and never a panic.
    for v in &CONSISTENCY {
        for (name, s1, s2, r1, r2, proof) in consistency_mutations(v) {
            let result = merkle::verify_consistency(&Sha256, s1, s2, &r1, &r2, &proof);
            assert!(result.is_err(), "{}: mutation {name} verified", v.source);
        }
    }
}
