//! Property tests of the blake3 Merkle tree: honest proofs verify for every size and index,
//! tampered ones fail.

use proptest::prelude::*;
use tally_audit::merkle::{self, Blake3, Hash, MerkleTree};

const SIZE_MAX: u64 = 2000;

/// Leaf hashes of `size` distinct entry hashes derived from `seed`.
fn tree_of(seed: u64, size: u64) -> (Vec<Hash>, MerkleTree<Blake3>) {
    let leaf_hashes: Vec<Hash> = (0..size)
        .map(|i| {
            let entry_hash = blake3::hash(&[seed.to_be_bytes(), i.to_be_bytes()].concat());
            merkle::leaf_hash(&Blake3, entry_hash.as_bytes())
        })
        .collect();
    let tree = MerkleTree::from_leaf_hashes(Blake3, &leaf_hashes);
    (leaf_hashes, tree)
}

fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut flipped = *hash;
    flipped[bit / 8] ^= 1 << (bit % 8);
    flipped
}

/// The left/right decisions RFC 9162 §2.1.3.2 takes for (index, size) and a proof of
/// `proof_len` elements, or None when it fails on the shape alone. Two statements with the
/// same shape are indistinguishable to the verifier except through the root, which is why
/// the size must come from a signed checkpoint (see the size-flip property below).
fn inclusion_shape(index: u64, size: u64, proof_len: usize) -> Option<Vec<bool>> {
    if index >= size {
        return None;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut shape = Vec::new();
    for _ in 0..proof_len {
        if s_n == 0 {
            return None;
        }
        let sibling_on_left = f_n & 1 == 1 || f_n == s_n;
        if sibling_on_left && f_n & 1 == 0 {
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        }
        shape.push(sibling_on_left);
        f_n >>= 1;
        s_n >>= 1;
    }
    (s_n == 0).then_some(shape)
}

/// The decisions RFC 9162 §2.1.4.2 takes for (old_size, new_size) with 0 < old < new and a
/// proof of `proof_len` elements (true: the element is a left sibling of both paths), or None
/// when it fails on the shape alone.
fn consistency_shape(old_size: u64, new_size: u64, proof_len: usize) -> Option<Vec<bool>> {
    if old_size == 0 || old_size >= new_size || proof_len == 0 {
        return None;
    }
    let path_len = proof_len + usize::from(old_size.is_power_of_two());
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let mut shape = Vec::new();
    for _ in 1..path_len {
        if s_n == 0 {
            return None;
        }
        let left = f_n & 1 == 1 || f_n == s_n;
        if left && f_n & 1 == 0 {
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        }
        shape.push(left);
        f_n >>= 1;
        s_n >>= 1;
    }
    (s_n == 0).then_some(shape)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_inclusion_proof_verifies(seed: u64, size in 1..=SIZE_MAX) {
        // Goal: for a random size, the inclusion proof of every leaf verifies against the root,
        // and the cached tree's proof equals the reference O(n) generator's for a sample.
        let (leaf_hashes, tree) = tree_of(seed, size);
        let root = tree.root(size).unwrap();
        prop_assert_eq!(root, merkle::root(&Blake3, &leaf_hashes));
        for index in 0..size {
            let proof = tree.inclusion_proof(index, size).unwrap();
            let leaf = &leaf_hashes[index as usize];
            prop_assert_eq!(merkle::verify_inclusion(&Blake3, leaf, index, size, &proof, &root), Ok(()));
        }
        let index = seed % size;
        prop_assert_eq!(
            tree.inclusion_proof(index, size).unwrap(),
            merkle::inclusion_proof(&Blake3, &leaf_hashes, index, size).unwrap()
        );
    }

    #[test]
    fn every_consistency_proof_verifies(seed: u64, new_size in 1..=SIZE_MAX) {
        // Goal: for a random new size, the consistency proof from every old size 0..=new_size
        // verifies between the two roots.
        let (leaf_hashes, tree) = tree_of(seed, new_size);
        let new_root = tree.root(new_size).unwrap();
        for old_size in 0..=new_size {
            let old_root = tree.root(old_size).unwrap();
            let proof = tree.consistency_proof(old_size, new_size).unwrap();
            prop_assert_eq!(
                merkle::verify_consistency(&Blake3, old_size, new_size, &old_root, &new_root, &proof),
                Ok(()),
                "old size {}", old_size
            );
        }
        let old_size = seed % (new_size + 1);
        prop_assert_eq!(
            tree.consistency_proof(old_size, new_size).unwrap(),
            merkle::consistency_proof(&Blake3, &leaf_hashes, old_size, new_size).unwrap()
        );
    }

    #[test]
    fn any_flipped_bit_breaks_an_inclusion_proof(
        seed: u64,
        size in 1..=SIZE_MAX,
        index_pick: u64,
        bit in 0usize..256,
        element_pick: usize,
        number_bit in 0u32..64,
    ) {
        // Goal: a flipped bit in the leaf, any proof element, the root or the index makes
        // verification fail; a flipped size bit fails too, except when the verifier's walk is
        // identical for both sizes (then only the signed root binds the size).
        let (leaf_hashes, tree) = tree_of(seed, size);
        let index = index_pick % size;
        let root = tree.root(size).unwrap();
        let proof = tree.inclusion_proof(index, size).unwrap();
        let leaf = leaf_hashes[index as usize];
        let verify = |leaf: &Hash, index, size, proof: &[Hash], root: &Hash| {
            merkle::verify_inclusion(&Blake3, leaf, index, size, proof, root)
        };
        prop_assert!(verify(&flip(&leaf, bit), index, size, &proof, &root).is_err());
        prop_assert!(verify(&leaf, index, size, &proof, &flip(&root, bit)).is_err());
        if !proof.is_empty() {
            let mut tampered = proof.clone();
            let element = element_pick % proof.len();
            tampered[element] = flip(&tampered[element], bit);
            prop_assert!(verify(&leaf, index, size, &tampered, &root).is_err());
        }
        let flipped_index = index ^ (1 << number_bit);
        prop_assert!(verify(&leaf, flipped_index, size, &proof, &root).is_err());
        let flipped_size = size ^ (1 << number_bit);
        let result = verify(&leaf, index, flipped_size, &proof, &root);
        let same_walk = inclusion_shape(index, flipped_size, proof.len())
            == inclusion_shape(index, size, proof.len());
        prop_assert!(result.is_err() || same_walk, "size {} -> {}", size, flipped_size);
    }

    #[test]
    fn any_flipped_bit_breaks_a_consistency_proof(
        seed: u64,
        new_size in 2..=SIZE_MAX,
        old_pick: u64,
        bit in 0usize..256,
        element_pick: usize,
        number_bit in 0u32..64,
    ) {
        // Goal: a flipped bit in either root, in any proof element or in the old size makes a
        // non-trivial consistency proof fail; a flipped new-size bit fails too, except when the
        // verifier's walk is identical for both sizes (then only the signed root binds it).
        let (_, tree) = tree_of(seed, new_size);
        let old_size = 1 + old_pick % (new_size - 1);
        let old_root = tree.root(old_size).unwrap();
        let new_root = tree.root(new_size).unwrap();
        let proof = tree.consistency_proof(old_size, new_size).unwrap();
        let verify = |old_size, new_size, old_root: &Hash, new_root: &Hash, proof: &[Hash]| {
            merkle::verify_consistency(&Blake3, old_size, new_size, old_root, new_root, proof)
        };
        prop_assert!(verify(old_size, new_size, &flip(&old_root, bit), &new_root, &proof).is_err());
        prop_assert!(verify(old_size, new_size, &old_root, &flip(&new_root, bit), &proof).is_err());
        let mut tampered = proof.clone();
        let element = element_pick % proof.len();
        tampered[element] = flip(&tampered[element], bit);
        prop_assert!(verify(old_size, new_size, &old_root, &new_root, &tampered).is_err());
        let flipped_old = old_size ^ (1 << number_bit);
        prop_assert!(verify(flipped_old, new_size, &old_root, &new_root, &proof).is_err());
        let flipped_new = new_size ^ (1 << number_bit);
        let result = verify(old_size, flipped_new, &old_root, &new_root, &proof);
        let same_walk = consistency_shape(old_size, flipped_new, proof.len())
            == consistency_shape(old_size, new_size, proof.len());
        prop_assert!(result.is_err() || same_walk, "new size {} -> {}", new_size, flipped_new);
    }
}

#[test]
fn every_bit_of_every_element_matters_in_a_small_tree() {
    // Goal: exhaustively, for a 13-leaf tree, each of the 256 bits of every proof element,
    // leaf and root is needed: flipping any one of them fails every inclusion proof.
    let size = 13;
    let (leaf_hashes, tree) = tree_of(7, size);
    let root = tree.root(size).unwrap();
    for index in 0..size {
        let proof = tree.inclusion_proof(index, size).unwrap();
        let leaf = leaf_hashes[index as usize];
        for bit in 0..256 {
            let flipped_leaf = flip(&leaf, bit);
            let flipped_root = flip(&root, bit);
            assert!(
                merkle::verify_inclusion(&Blake3, &flipped_leaf, index, size, &proof, &root)
                    .is_err()
            );
            assert!(
                merkle::verify_inclusion(&Blake3, &leaf, index, size, &proof, &flipped_root)
                    .is_err()
            );
            for element in 0..proof.len() {
                let mut tampered = proof.clone();
                tampered[element] = flip(&tampered[element], bit);
                let result =
                    merkle::verify_inclusion(&Blake3, &leaf, index, size, &tampered, &root);
                assert!(
                    result.is_err(),
                    "index {index}, element {element}, bit {bit}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn verifiers_never_panic(
        a: u64,
        b: u64,
        small_a in 0u64..40,
        small_b in 0u64..40,
        hashes in proptest::collection::vec(any::<[u8; 32]>(), 0..70),
        leaf: [u8; 32],
        root: [u8; 32],
    ) {
        // Goal: arbitrary sizes, indexes, proofs and roots give a result, never a panic
        // (arithmetic edge cases at 0 and u64::MAX included).
        for (x, y) in [(a, b), (small_a, small_b), (small_a, b), (a, small_b)] {
            let _ = merkle::verify_inclusion(&Blake3, &leaf, x, y, &hashes, &root);
            let _ = merkle::verify_consistency(&Blake3, x, y, &leaf, &root, &hashes);
        }
    }
}
