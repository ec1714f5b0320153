//! The Merkle tree over the journal, as in RFC 9162 §2.1 (Certificate Transparency v2),
//! generic over the hash function. Tally uses [`Blake3`]; the tests also run the same code
//! with SHA-256 against the public RFC 6962 vectors.
//!
//! - leaf hash: `H(0x00 || leaf)`; for Tally the leaf is an entry hash (32 bytes).
//! - node hash: `H(0x01 || left || right)`.
//! - the root of the empty tree: `H("")` (no prefix).
//! - the root of `n > 1` leaves: `H(0x01 || MTH(D[0:k]) || MTH(D[k:n]))` with `k` the largest
//!   power of two smaller than `n` (RFC 9162 §2.1.1).
//!
//! Proof generation works from a slice of *leaf hashes* (already `H(0x00 || leaf)`): the free
//! functions recompute what they need (O(n) per call); [`MerkleTree`] keeps every complete
//! subtree so that a proof costs O(log² n). Verification follows RFC 9162 §2.1.3.2 and
//! §2.1.4.2 step by step and never panics, whatever its input.

/// A 32-byte hash: leaf hashes, node hashes, roots and proof elements.
pub type Hash = [u8; 32];

/// Domain separation prefix of a leaf hash (RFC 9162 §2.1.1).
pub const LEAF_PREFIX: u8 = 0x00;
/// Domain separation prefix of an interior node hash (RFC 9162 §2.1.1).
pub const NODE_PREFIX: u8 = 0x01;

/// A hash function with a 32-byte output. `digest(parts)` hashes the concatenation of `parts`.
pub trait MerkleHasher {
    fn digest(&self, parts: &[&[u8]]) -> Hash;
}

/// blake3 in its default mode (no key, no derive-key context), 32-byte output: Tally's hash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Blake3;

impl MerkleHasher for Blake3 {
    fn digest(&self, parts: &[&[u8]]) -> Hash {
        let mut hasher = blake3::Hasher::new();
        for part in parts {
            hasher.update(part);
        }
        *hasher.finalize().as_bytes()
    }
}

/// Why a proof could not be generated or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {size} exceeds the {leaf_count} leaves available")]
    SizeExceedsLeaves { size: u64, leaf_count: u64 },
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeExceedsNew { old_size: u64, new_size: u64 },
    #[error("proof has more elements than a tree of this size needs ({proof_len} given)")]
    ProofTooLong { proof_len: usize },
    #[error("proof has fewer elements than a tree of this size needs ({proof_len} given)")]
    ProofTooShort { proof_len: usize },
    #[error(
        "proof must be empty when the old size is 0 or equals the new size ({proof_len} given)"
    )]
    ProofNotEmpty { proof_len: usize },
    #[error("consistency proof is empty")]
    ProofEmpty,
    #[error("computed root does not match the expected root")]
    RootMismatch,
    #[error("computed old root does not match the expected old root")]
    OldRootMismatch,
    #[error("computed new root does not match the expected new root")]
    NewRootMismatch,
}

/// `H(0x00 || leaf)`. For Tally, `leaf` is an entry hash.
pub fn leaf_hash<H: MerkleHasher>(hasher: &H, leaf: &[u8]) -> Hash {
    hasher.digest(&[&[LEAF_PREFIX], leaf])
}

/// `H(0x01 || left || right)`.
pub fn node_hash<H: MerkleHasher>(hasher: &H, left: &Hash, right: &Hash) -> Hash {
    hasher.digest(&[&[NODE_PREFIX], left, right])
}

/// `H("")`, the root of the tree with no leaves.
pub fn empty_root<H: MerkleHasher>(hasher: &H) -> Hash {
    hasher.digest(&[])
}

/// The largest power of two strictly smaller than `n` (for `n >= 2`).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// MTH over `leaf_hashes` (RFC 9162 §2.1.1), O(n).
pub fn root<H: MerkleHasher>(hasher: &H, leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes.len() {
        0 => empty_root(hasher),
        1 => leaf_hashes[0],
        n => {
            let k = split_point(n);
            let left = root(hasher, &leaf_hashes[..k]);
            let right = root(hasher, &leaf_hashes[k..]);
            node_hash(hasher, &left, &right)
        }
    }
}

fn check_size(size: u64, leaf_count: usize) -> Result<usize, ProofError> {
    match usize::try_from(size) {
        Ok(size_usize) if size_usize <= leaf_count => Ok(size_usize),
        _ => Err(ProofError::SizeExceedsLeaves {
            size,
            leaf_count: leaf_count as u64,
        }),
    }
}

/// The inclusion proof of leaf `index` in the tree of the first `size` leaf hashes
/// (RFC 9162 §2.1.3.1, `PATH(m, D[n])`), O(n).
pub fn inclusion_proof<H: MerkleHasher>(
    hasher: &H,
    leaf_hashes: &[Hash],
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    let size_usize = check_size(size, leaf_hashes.len())?;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::new();
    path(
        &mut |start, len| root(hasher, &leaf_hashes[start..start + len]),
        index as usize,
        0,
        size_usize,
        &mut proof,
    );
    Ok(proof)
}

/// The consistency proof between the trees of the first `old_size` and the first `new_size`
/// leaf hashes (RFC 9162 §2.1.4.1, `PROOF(m, D[n])`), O(n). Empty when `old_size` is 0 or
/// equals `new_size`.
pub fn consistency_proof<H: MerkleHasher>(
    hasher: &H,
    leaf_hashes: &[Hash],
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError> {
    let new_size_usize = check_size(new_size, leaf_hashes.len())?;
    if old_size > new_size {
        return Err(ProofError::OldSizeExceedsNew { old_size, new_size });
    }
    let mut proof = Vec::new();
    if old_size > 0 && old_size < new_size {
        subproof(
            &mut |start, len| root(hasher, &leaf_hashes[start..start + len]),
            old_size as usize,
            0,
            new_size_usize,
            true,
            &mut proof,
        );
    }
    Ok(proof)
}

/// The inclusion proof of leaf `index` in a tree of `size` leaves whose subtree roots
/// come from the caller: `subtree_root(start, len)` must return `MTH(D[start:start+len])`.
/// For trees kept elsewhere (a store of subtree hashes): RFC 9162 asks for O(log n) of them.
pub fn inclusion_proof_from<F: FnMut(usize, usize) -> Hash + ?Sized>(
    mut subtree_root: &mut F,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::new();
    path(
        &mut subtree_root,
        index as usize,
        0,
        size as usize,
        &mut proof,
    );
    Ok(proof)
}

/// The consistency proof between trees of `old_size` and `new_size` leaves whose subtree
/// roots come from the caller (see [`inclusion_proof_from`]).
pub fn consistency_proof_from<F: FnMut(usize, usize) -> Hash + ?Sized>(
    mut subtree_root: &mut F,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeExceedsNew { old_size, new_size });
    }
    let mut proof = Vec::new();
    if old_size > 0 && old_size < new_size {
        subproof(
            &mut subtree_root,
            old_size as usize,
            0,
            new_size as usize,
            true,
            &mut proof,
        );
    }
    Ok(proof)
}

/// The largest power of two below `n` (`n >= 2`): where RFC 9162 splits a tree of `n` leaves.
pub fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    split_point(n as usize) as u64
}

/// `PATH(m, D[start:start+n])`, with subtree roots from `subtree_root(start, len)`.
fn path(
    subtree_root: &mut impl FnMut(usize, usize) -> Hash,
    m: usize,
    start: usize,
    n: usize,
    proof: &mut Vec<Hash>,
) {
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        path(subtree_root, m, start, k, proof);
        proof.push(subtree_root(start + k, n - k));
    } else {
        path(subtree_root, m - k, start + k, n - k, proof);
        proof.push(subtree_root(start, k));
    }
}

/// `SUBPROOF(m, D[start:start+n], b)`.
fn subproof(
    subtree_root: &mut impl FnMut(usize, usize) -> Hash,
    m: usize,
    start: usize,
    n: usize,
    complete: bool,
    proof: &mut Vec<Hash>,
) {
    if m == n {
        if !complete {
            proof.push(subtree_root(start, n));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(subtree_root, m, start, k, complete, proof);
        proof.push(subtree_root(start + k, n - k));
    } else {
        subproof(subtree_root, m - k, start + k, n - k, false, proof);
        proof.push(subtree_root(start, k));
    }
}

/// Checks that `leaf_hash` is leaf `index` of the tree of `size` leaves whose root is `root`
/// (RFC 9162 §2.1.3.2). `size` and `root` must come from a trusted (signed) checkpoint, never
/// from the proof's provider alone.
pub fn verify_inclusion<H: MerkleHasher>(
    hasher: &H,
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut f_n = index;
    let mut s_n = size - 1;
    let mut r = *leaf_hash;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::ProofTooLong {
                proof_len: proof.len(),
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(hasher, p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(hasher, &r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::ProofTooShort {
            proof_len: proof.len(),
        });
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a prefix of the tree of
/// `new_size` leaves with root `new_root` (RFC 9162 §2.1.4.2).
///
/// RFC 9162 defines the algorithm for `0 < old_size < new_size`. The edge cases, as in
/// transparency-dev/merkle, but checking the roots too: `old_size == new_size` needs an empty
/// proof and equal roots; `old_size == 0` needs an empty proof and `old_root == H("")`.
pub fn verify_consistency<H: MerkleHasher>(
    hasher: &H,
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeExceedsNew { old_size, new_size });
    }
    if old_size == new_size || old_size == 0 {
        return verify_trivial_consistency(hasher, old_size, old_root, new_root, proof);
    }
    // Step 1.
    if proof.is_empty() {
        return Err(ProofError::ProofEmpty);
    }
    // Step 2: when the old tree is a complete subtree, its root is the first path element.
    let old_is_complete = old_size.is_power_of_two();
    let mut path = proof.iter().copied();
    let first = if old_is_complete {
        *old_root
    } else {
        match path.next() {
            Some(first) => first,
            None => return Err(ProofError::ProofEmpty),
        }
    };
    // Steps 3 and 4.
    let mut f_n = old_size - 1;
    let mut s_n = new_size - 1;
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 5.
    let mut f_r = first;
    let mut s_r = first;
    // Step 6.
    for c in path {
        if s_n == 0 {
            return Err(ProofError::ProofTooLong {
                proof_len: proof.len(),
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(hasher, &c, &f_r);
            s_r = node_hash(hasher, &c, &s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = node_hash(hasher, &s_r, &c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 7.
    if s_n != 0 {
        return Err(ProofError::ProofTooShort {
            proof_len: proof.len(),
        });
    }
    if &f_r != old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if &s_r != new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

fn verify_trivial_consistency<H: MerkleHasher>(
    hasher: &H,
    old_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if !proof.is_empty() {
        return Err(ProofError::ProofNotEmpty {
            proof_len: proof.len(),
        });
    }
    if old_size == 0 {
        if old_root != &empty_root(hasher) {
            return Err(ProofError::OldRootMismatch);
        }
        return Ok(());
    }
    if old_root != new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

/// An in-memory tree that keeps the root of every complete (power-of-two, aligned) subtree,
/// so that roots and proofs for any size up to [`MerkleTree::size`] cost O(log² n) hashes.
#[derive(Debug, Clone)]
pub struct MerkleTree<H> {
    hasher: H,
    /// `levels[h][i]` is the root of leaves `i * 2^h .. (i + 1) * 2^h`.
    levels: Vec<Vec<Hash>>,
}

impl<H: MerkleHasher> MerkleTree<H> {
    pub fn new(hasher: H) -> Self {
        MerkleTree {
            hasher,
            levels: vec![Vec::new()],
        }
    }

    /// A tree over `leaf_hashes` (already `H(0x00 || leaf)`).
    pub fn from_leaf_hashes(hasher: H, leaf_hashes: &[Hash]) -> Self {
        let mut tree = MerkleTree::new(hasher);
        for leaf_hash in leaf_hashes {
            tree.push_leaf_hash(*leaf_hash);
        }
        tree
    }

    /// Appends a leaf given by its leaf hash; amortised O(1) hashes.
    pub fn push_leaf_hash(&mut self, leaf_hash: Hash) {
        self.levels[0].push(leaf_hash);
        let mut height = 0;
        while self.levels[height].len() & 1 == 0 {
            let level = &self.levels[height];
            let pair = level.len() - 2;
            let parent = node_hash(&self.hasher, &level[pair], &level[pair + 1]);
            if self.levels.len() == height + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[height + 1].push(parent);
            height += 1;
        }
    }

    /// Appends a leaf given by its content (for Tally, an entry hash).
    pub fn push_leaf(&mut self, leaf: &[u8]) {
        let leaf_hash = leaf_hash(&self.hasher, leaf);
        self.push_leaf_hash(leaf_hash);
    }

    pub fn size(&self) -> u64 {
        self.levels[0].len() as u64
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        let size_usize = check_size(size, self.levels[0].len())?;
        if size_usize == 0 {
            return Ok(empty_root(&self.hasher));
        }
        Ok(self.subtree_root(0, size_usize))
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        let size_usize = check_size(size, self.levels[0].len())?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        let mut proof = Vec::new();
        let mut subtree_root = |start, len| self.subtree_root(start, len);
        path(&mut subtree_root, index as usize, 0, size_usize, &mut proof);
        Ok(proof)
    }

    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ProofError> {
        let new_size_usize = check_size(new_size, self.levels[0].len())?;
        if old_size > new_size {
            return Err(ProofError::OldSizeExceedsNew { old_size, new_size });
        }
        let mut proof = Vec::new();
        if old_size > 0 && old_size < new_size {
            let mut subtree_root = |start, len| self.subtree_root(start, len);
            subproof(
                &mut subtree_root,
                old_size as usize,
                0,
                new_size_usize,
                true,
                &mut proof,
            );
        }
        Ok(proof)
    }

    /// MTH of leaves `start .. start + len`, where (as in every range the RFC's recursion
    /// visits) `start` is a multiple of the smallest power of two `>= len`.
    fn subtree_root(&self, start: usize, len: usize) -> Hash {
        debug_assert!(len >= 1);
        if len.is_power_of_two() {
            let height = len.trailing_zeros() as usize;
            return self.levels[height][start >> height];
        }
        let k = split_point(len);
        let left = self.subtree_root(start, k);
        let right = self.subtree_root(start + k, len - k);
        node_hash(&self.hasher, &left, &right)
    }
}

/// The right edge of a Merkle tree being built leaf by leaf: the roots of its complete
/// subtrees ("peaks"), one per set bit of the size, left to right. O(log n) hashes of memory,
/// so a verifier can fold a journal of any length and still ask for the root at every size
/// (RFC 9162 roots, the same as [`root`] over all leaves pushed so far).
#[derive(Debug, Clone)]
pub struct CompactRange<H> {
    hasher: H,
    size: u64,
    /// Roots of the complete subtrees covering leaves `0 .. size`, largest (leftmost) first.
    peaks: Vec<Hash>,
}

impl<H: MerkleHasher> CompactRange<H> {
    pub fn new(hasher: H) -> Self {
        CompactRange {
            hasher,
            size: 0,
            peaks: Vec::new(),
        }
    }

    /// Appends a leaf given by its leaf hash (`H(0x00 || leaf)`); O(1) amortised hashes.
    pub fn push(&mut self, leaf_hash: Hash) {
        // Each trailing one bit of the old size is a peak of the same height as the new
        // subtree: merge them, as binary addition carries.
        let mut carry = leaf_hash;
        let mut size = self.size;
        while size & 1 == 1 {
            let Some(left) = self.peaks.pop() else { break };
            carry = node_hash(&self.hasher, &left, &carry);
            size >>= 1;
        }
        self.peaks.push(carry);
        self.size += 1;
    }

    /// The number of leaves pushed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `MTH` of every leaf pushed so far: the peaks folded from the right, which is RFC
    /// 9162's recursion (the left subtree of a tree is always its largest peak).
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(&last) = peaks.next() else {
            return empty_root(&self.hasher);
        };
        peaks.fold(last, |right, left| node_hash(&self.hasher, left, &right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u32)
            .map(|i| leaf_hash(&Blake3, &i.to_be_bytes()))
            .collect()
    }

    #[test]
    fn split_point_is_the_largest_power_of_two_below() {
        // Goal: k in RFC 9162's recursion is the largest power of two strictly below n.
        let cases = [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (1000, 512)];
        for (n, k) in cases {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }

    #[test]
    fn tree_and_free_functions_agree() {
        // Goal: the cached tree yields the same roots and proofs as the O(n) reference functions.
        let all = leaves(70);
        let tree = MerkleTree::from_leaf_hashes(Blake3, &all);
        for size in 0..=70u64 {
            let prefix = &all[..size as usize];
            assert_eq!(
                tree.root(size).unwrap(),
                root(&Blake3, prefix),
                "size {size}"
            );
            for index in 0..size {
                assert_eq!(
                    tree.inclusion_proof(index, size).unwrap(),
                    inclusion_proof(&Blake3, &all, index, size).unwrap()
                );
            }
            for old in 0..=size {
                assert_eq!(
                    tree.consistency_proof(old, size).unwrap(),
                    consistency_proof(&Blake3, &all, old, size).unwrap()
                );
            }
        }
    }

    #[test]
    fn generation_rejects_impossible_requests() {
        // Goal: asking for proofs beyond the available leaves is an error, not a panic.
        let all = leaves(5);
        let tree = MerkleTree::from_leaf_hashes(Blake3, &all);
        let too_big = ProofError::SizeExceedsLeaves {
            size: 6,
            leaf_count: 5,
        };
        assert_eq!(inclusion_proof(&Blake3, &all, 0, 6), Err(too_big.clone()));
        assert_eq!(tree.inclusion_proof(0, 6), Err(too_big.clone()));
        assert_eq!(tree.root(6), Err(too_big.clone()));
        assert_eq!(consistency_proof(&Blake3, &all, 1, 6), Err(too_big));
        assert_eq!(
            tree.inclusion_proof(5, 5),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            tree.consistency_proof(4, 3),
            Err(ProofError::OldSizeExceedsNew {
                old_size: 4,
                new_size: 3
            })
        );
        assert_eq!(
            inclusion_proof(&Blake3, &all, u64::MAX, u64::MAX),
            Err(ProofError::SizeExceedsLeaves {
                size: u64::MAX,
                leaf_count: 5
            })
        );
    }

    #[test]
    fn verifiers_reject_edge_inputs_without_panicking() {
        // Goal: sizes 0 and u64::MAX, index >= size and old > new give typed errors.
        let r = [7u8; 32];
        assert_eq!(
            verify_inclusion(&Blake3, &r, 0, 0, &[], &r),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            verify_inclusion(&Blake3, &r, u64::MAX - 1, u64::MAX, &[r; 70], &r),
            Err(ProofError::ProofTooLong { proof_len: 70 })
        );
        assert_eq!(
            verify_inclusion(&Blake3, &r, 0, u64::MAX, &[], &r),
            Err(ProofError::ProofTooShort { proof_len: 0 })
        );
        assert_eq!(
            verify_consistency(&Blake3, 3, 2, &r, &r, &[]),
            Err(ProofError::OldSizeExceedsNew {
                old_size: 3,
                new_size: 2
            })
        );
        assert_eq!(
            verify_consistency(&Blake3, 1, u64::MAX, &r, &r, &[]),
            Err(ProofError::ProofEmpty)
        );
        assert_eq!(
            verify_consistency(&Blake3, u64::MAX - 1, u64::MAX, &r, &r, &[r; 70]),
            Err(ProofError::ProofTooLong { proof_len: 70 })
        );
        assert_eq!(
            verify_consistency(&Blake3, 0, 5, &r, &r, &[]),
            Err(ProofError::OldRootMismatch)
        );
        assert_eq!(
            verify_consistency(&Blake3, 0, 5, &empty_root(&Blake3), &r, &[]),
            Ok(())
        );
        assert_eq!(
            verify_consistency(&Blake3, 0, 5, &empty_root(&Blake3), &r, &[r]),
            Err(ProofError::ProofNotEmpty { proof_len: 1 })
        );
        assert_eq!(
            verify_consistency(&Blake3, 4, 4, &r, &[8u8; 32], &[]),
            Err(ProofError::NewRootMismatch)
        );
    }

    #[test]
    fn empty_tree_root_is_the_hash_of_nothing() {
        // Goal: MTH({}) = H("") for blake3 (RFC 9162 §2.1.1).
        assert_eq!(root(&Blake3, &[]), *blake3::hash(b"").as_bytes());
        assert_eq!(MerkleTree::new(Blake3).root(0).unwrap(), root(&Blake3, &[]));
    }

    #[test]
    fn compact_range_keeps_one_peak_per_set_bit() {
        // Goal: memory stays O(log n): after n leaves, exactly popcount(n) peaks are kept.
        let mut range = CompactRange::new(Blake3);
        for (i, leaf) in leaves(300).into_iter().enumerate() {
            range.push(leaf);
            assert_eq!(range.peaks.len() as u32, (i as u64 + 1).count_ones());
        }
        assert_eq!(range.size(), 300);
    }

    proptest::proptest! {
        #[test]
        fn compact_range_root_equals_the_reference_root(n in 0usize..600, seed in 0u32..1000) {
            // Goal: the streaming right edge yields RFC 9162's root at every size, as the
            // O(n) reference function does over all leaves.
            let all: Vec<Hash> = (0..n as u32)
                .map(|i| leaf_hash(&Blake3, &[seed.to_be_bytes(), i.to_be_bytes()].concat()))
                .collect();
            let mut range = CompactRange::new(Blake3);
            proptest::prop_assert_eq!(range.root(), root(&Blake3, &[]));
            for (i, leaf) in all.iter().enumerate() {
                range.push(*leaf);
                if i % 7 == 0 || i + 1 == n {
                    proptest::prop_assert_eq!(range.root(), root(&Blake3, &all[..=i]));
                }
            }
        }
    }
}
