//! A map from client-chosen ids (transaction ids) to what the ledger keeps of
//! each, split into shards.
//!
//! The writer and the read model each look up every transaction id of every
//! batch, and each holds every id the ledger has seen: millions of them. One
//! hash table of that size doubles by rehashing every id at once, which stalled
//! a whole group commit for tens of milliseconds (the p99 spikes in
//! `docs/benchmarks.md`). Split into `SHARDS` tables chosen by a fixed hash of
//! the id, each growth moves 1/`SHARDS` of the ids, so the same amortised work
//! comes in small, even steps. Keys are `Box<str>` (16 bytes, no spare
//! capacity) because the map holds so many of them.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// The number of shards, a power of two.
const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

/// Picks the shard: a fixed seed, independent of the per-shard tables'
/// random seeds, so that ids within one shard still spread over its table.
const SHARD_SEED: u64 = 0x7461_6c6c_795f_6964; // "tally_id"

type Shard<V> = HashMap<Box<str>, V, foldhash::fast::RandomState>;

#[derive(Debug, Clone)]
pub struct IdMap<V> {
    shards: Vec<Shard<V>>,
    len: usize,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            len: 0,
        }
    }
}

fn shard_of(id: &str) -> usize {
    let hash = foldhash::fast::FixedState::with_seed(SHARD_SEED).hash_one(id);
    (hash >> (64 - SHARD_BITS)) as usize
}

impl<V> IdMap<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room for `additional` more ids, spread evenly over the shards.
    pub fn reserve(&mut self, additional: usize) {
        let per_shard = additional.div_ceil(SHARDS);
        for shard in &mut self.shards {
            shard.reserve(per_shard);
        }
    }

    pub fn get(&self, id: &str) -> Option<&V> {
        self.shards[shard_of(id)].get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        self.shards[shard_of(id)].get_mut(id)
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.shards[shard_of(id)].contains_key(id)
    }

    /// Inserts or replaces; returns the value it replaced.
    pub fn insert(&mut self, id: &str, value: V) -> Option<V> {
        let shard = &mut self.shards[shard_of(id)];
        let replaced = match shard.get_mut(id) {
            Some(existing) => Some(std::mem::replace(existing, value)),
            None => {
                shard.insert(id.into(), value);
                None
            }
        };
        if replaced.is_none() {
            self.len += 1;
        }
        replaced
    }

    pub fn remove(&mut self, id: &str) -> Option<V> {
        let removed = self.shards[shard_of(id)].remove(id);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.shards
            .iter()
            .flat_map(|shard| shard.iter().map(|(id, value)| (&**id, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(String, u32),
        Remove(String),
    }

    fn op() -> impl Strategy<Value = Op> {
        let id = "[a-d]{0,3}";
        prop_oneof![
            (id, any::<u32>()).prop_map(|(id, v)| Op::Insert(id, v)),
            id.prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// The sharded map answers exactly as one ordinary map would.
        #[test]
        fn behaves_as_one_map(ops in proptest::collection::vec(op(), 0..200)) {
            let mut map = IdMap::default();
            let mut reference = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(id, v) => {
                        prop_assert_eq!(map.insert(&id, v), reference.insert(id.clone(), v));
                    }
                    Op::Remove(id) => {
                        prop_assert_eq!(map.remove(id.as_str()), reference.remove(&id));
                    }
                }
                prop_assert_eq!(map.len(), reference.len());
            }
            for (id, v) in &reference {
                prop_assert_eq!(map.get(id), Some(v));
                prop_assert!(map.contains_key(id));
            }
            let mut all: Vec<(String, u32)> = map.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            all.sort();
            prop_assert_eq!(all, reference.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn ids_spread_over_every_shard() {
        let mut counts = [0usize; SHARDS];
        for n in 0..100_000 {
            counts[shard_of(&format!("t{n}"))] += 1;
        }
        let expected = 100_000 / SHARDS;
        for count in counts {
            assert!(count > expected / 2 && count < expected * 2, "{counts:?}");
        }
    }
}
