//! The Merkle tree over the journal (RFC 9162, blake3; `docs/audit-proofs.md`),
//! stored so that any root or proof for any tree size takes O(log n) reads.
//!
//! Leaf `i` is `blake3(0x00 || entry_hash(i))`. Hashes of complete, aligned
//! subtrees of at least [`STORED_LEVEL_MIN`] levels (128 leaves) are stored —
//! one row per 128 entries, written in the cache batch of the group that
//! completes them, after the group is durable in the journal — and smaller
//! ones are recomputed from the entry hashes of at most two blocks of 128
//! entries. Every other subtree root is composed from those (RFC 9162's split
//! at the largest power of two).
//!
//! Rows: `X` ‖ level (u8) ‖ index at that level (u64 BE) → hash (32). A cache
//! of the journal: `tallyd rebuild` regenerates it.

use super::{keys, Store};
use crate::error::StoreError;
use crate::ledger::state::Journaled;
use tally_audit::merkle::{self, Blake3, Hash};
use tally_core::entry::Digest;

/// The lowest level whose complete subtrees are stored (2^7 = 128 leaves).
pub const STORED_LEVEL_MIN: u32 = 7;

pub fn node_key(level: u32, index: u64) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[0] = keys::MERKLE;
    key[1] = level as u8;
    key[2..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The right edge of the tree: the roots of the complete subtrees that the
/// next leaves will be merged with (a binary counter of at most 64 nodes).
#[derive(Debug, Default, Clone)]
pub struct Frontier {
    /// (level, hash), levels strictly decreasing from bottom to top.
    stack: Vec<(u32, Hash)>,
    size: u64,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next leaf; pushes every newly complete subtree worth storing
    /// to `stored` as `(level, index, hash)`.
    pub fn push(&mut self, entry_hash: &Digest, stored: &mut Vec<(u32, u64, Hash)>) {
        let leaf_index = self.size;
        let mut level = 0;
        let mut hash = tally_audit::entry_leaf_hash(entry_hash);
        while let Some(&(top_level, left)) = self.stack.last() {
            if top_level != level {
                break;
            }
            self.stack.pop();
            hash = merkle::node_hash(&Blake3, &left, &hash);
            level += 1;
            if level >= STORED_LEVEL_MIN {
                stored.push((level, leaf_index >> level, hash));
            }
        }
        self.stack.push((level, hash));
        self.size += 1;
    }

    /// The root of the tree of `size()` leaves: the right edge folded from
    /// the smallest subtree up (RFC 9162's split at the largest power of two).
    pub fn root(&self) -> Hash {
        let mut nodes = self.stack.iter().rev().map(|(_, hash)| *hash);
        let Some(mut hash) = nodes.next() else {
            return merkle::empty_root(&Blake3);
        };
        for left in nodes {
            hash = merkle::node_hash(&Blake3, &left, &hash);
        }
        hash
    }

    /// Pushes the leaves of a group; returns the rows to store.
    pub fn push_group(&mut self, group: &[Journaled]) -> Vec<(u32, u64, Hash)> {
        let mut stored = Vec::new();
        for journaled in group {
            debug_assert_eq!(journaled.seq, self.size, "leaves out of order");
            self.push(&journaled.hash, &mut stored);
        }
        stored
    }
}

pub(super) fn insert_nodes(batch: &mut sled::Batch, nodes: &[(u32, u64, Hash)]) {
    for (level, index, hash) in nodes {
        batch.insert(&node_key(*level, *index), hash);
    }
}

/// The leaf hashes of one block of 128 entries, kept for one proof.
#[derive(Default)]
struct LeafBlock {
    first: u64,
    leaves: Vec<Hash>,
}

impl Store {
    /// A stored subtree hash, if present.
    pub fn merkle_node(&self, level: u32, index: u64) -> Result<Option<Hash>, StoreError> {
        let Some(value) = self.db.get(node_key(level, index))? else {
            return Ok(None);
        };
        let hash = value
            .as_ref()
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("malformed Merkle node at level {level}")))?;
        Ok(Some(hash))
    }

    /// The root of the tree of the first `size` entries (size <= committed).
    pub fn merkle_root(&self, size: u64) -> Result<Hash, StoreError> {
        self.check_tree_size(size)?;
        if size == 0 {
            return Ok(merkle::empty_root(&Blake3));
        }
        self.subtree_root(0, size, &mut LeafBlock::default())
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_tree_size(size)?;
        self.with_subtree_roots(|roots| merkle::inclusion_proof_from(roots, index, size))
    }

    /// The consistency proof between the trees of `old_size` and `new_size` entries.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_tree_size(new_size)?;
        self.with_subtree_roots(|roots| merkle::consistency_proof_from(roots, old_size, new_size))
    }

    fn check_tree_size(&self, size: u64) -> Result<(), StoreError> {
        let committed = self.committed();
        if size > committed {
            return Err(StoreError::OutOfRange(format!(
                "tree size {size} is past the journal's end ({committed} entries)"
            )));
        }
        Ok(())
    }

    /// Runs a proof builder with a subtree-root source backed by the store;
    /// the first read error wins.
    fn with_subtree_roots(
        &self,
        build: impl FnOnce(
            &mut dyn FnMut(usize, usize) -> Hash,
        ) -> Result<Vec<Hash>, merkle::ProofError>,
    ) -> Result<Vec<Hash>, StoreError> {
        let mut failure = None;
        // The small subtrees of one proof lie in one or two blocks of 128
        // leaves: each block is read once, not once per level.
        let mut block = LeafBlock::default();
        let mut roots = |start: usize, len: usize| match self.subtree_root(
            start as u64,
            len as u64,
            &mut block,
        ) {
            Ok(hash) => hash,
            Err(error) => {
                failure.get_or_insert(error);
                [0u8; 32]
            }
        };
        let proof = build(&mut roots).map_err(|e| StoreError::OutOfRange(e.to_string()));
        match failure {
            Some(error) => Err(error),
            None => proof,
        }
    }

    /// `MTH(D[start : start + len])`, `len >= 1`.
    fn subtree_root(
        &self,
        start: u64,
        len: u64,
        block: &mut LeafBlock,
    ) -> Result<Hash, StoreError> {
        debug_assert!(len >= 1);
        if len.is_power_of_two() && start.is_multiple_of(len) {
            let level = len.trailing_zeros();
            if level >= STORED_LEVEL_MIN {
                let key = node_key(level, start >> level);
                let value = self.db.get(key)?.ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "missing Merkle node at level {level} for leaves from {start}"
                    ))
                })?;
                return value.as_ref().try_into().map_err(|_| {
                    StoreError::Corrupt(format!("malformed Merkle node at level {level}"))
                });
            }
            let leaves = self.block_leaves(start, len, block)?;
            return Ok(merkle::root(&Blake3, leaves));
        }
        let k = merkle::split(len);
        let left = self.subtree_root(start, k, block)?;
        let right = self.subtree_root(start + k, len - k, block)?;
        Ok(merkle::node_hash(&Blake3, &left, &right))
    }

    /// Leaves `start .. start + len` (within one block of 128), read through
    /// the block cache.
    fn block_leaves<'a>(
        &self,
        start: u64,
        len: u64,
        block: &'a mut LeafBlock,
    ) -> Result<&'a [Hash], StoreError> {
        let block_size = 1u64 << STORED_LEVEL_MIN;
        let first = start - start % block_size;
        debug_assert!(
            start + len <= first + block_size,
            "a small subtree stays in its block"
        );
        let wanted = start + len - first;
        if block.first != first || (block.leaves.len() as u64) < wanted {
            let available = self.committed().max(start + len).min(first + block_size) - first;
            block.leaves = self.leaf_hashes(first, available)?;
            block.first = first;
        }
        let from = (start - first) as usize;
        Ok(&block.leaves[from..from + len as usize])
    }

    fn leaf_hashes(&self, start: u64, len: u64) -> Result<Vec<Hash>, StoreError> {
        let mut leaves = Vec::with_capacity(len as usize);
        for row in self.journal_rows(start).take(len as usize) {
            let (_, hash, _) = row?;
            leaves.push(tally_audit::entry_leaf_hash(&hash));
        }
        if leaves.len() as u64 != len {
            return Err(StoreError::Corrupt(format!(
                "journal ends before entry {}",
                start + len
            )));
        }
        Ok(leaves)
    }
}
