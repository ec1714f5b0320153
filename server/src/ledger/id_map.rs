//! A map from client-chosen ids (transaction ids) to what the ledger keeps of
//! each, split into shards that grow at different moments.
//!
//! The writer and the read model each look up every transaction id of every
//! batch, and each holds every id the ledger has seen: millions of them. One
//! hash table of that size doubles by rehashing every id at once, which stalls
//! a whole group commit for tens of milliseconds. Splitting it into shards of
//! equal load does not help: ids spread evenly, so every shard crosses its
//! growth threshold within the same group or two, and the whole map is still
//! rehashed at once. So the shards are given unequal shares of the ids, in a
//! geometric series (shard `i` takes a share proportional to `2^(i/SHARDS)`):
//! as the map doubles, each shard crosses its threshold at its own point of the
//! doubling, and a growth moves at most about 2 % of the ids (the largest
//! share). Keys are `Box<str>` (16 bytes, no spare capacity) because the map
//! holds so many of them.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// The number of shards.
const SHARDS: usize = 64;

/// A shard is chosen by the top `SLOT_BITS` bits of a fixed hash of the id:
/// `SLOTS` slots, each owned by one shard, shard `i` owning a number of slots
/// proportional to its share.
const SLOT_BITS: u32 = 12;
const SLOTS: usize = 1 << SLOT_BITS;

/// Picks the slot: a fixed seed, independent of the per-shard tables'
/// random seeds, so that ids within one shard still spread over its table.
const SHARD_SEED: u64 = 0x7461_6c6c_795f_6964; // "tally_id"

type Shard<V> = HashMap<Box<str>, V, foldhash::fast::RandomState>;

/// Which shard owns each slot, and how many slots each shard owns.
struct Layout {
    shard_of_slot: [u8; SLOTS],
    slots_of_shard: [u16; SHARDS],
}

/// Shard `i`'s share is `2^(i/SHARDS)` over the sum of all: consecutive
/// shards differ by a factor of `2^(1/SHARDS)`, so their growth points are
/// spread evenly over each doubling of the map.
static LAYOUT: std::sync::LazyLock<Layout> = std::sync::LazyLock::new(|| {
    let weights: Vec<f64> = (0..SHARDS)
        .map(|i| (i as f64 / SHARDS as f64).exp2())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut layout = Layout {
        shard_of_slot: [0; SLOTS],
        slots_of_shard: [0; SHARDS],
    };
    let mut cumulative = 0.0;
    let mut start = 0;
    for (shard, weight) in weights.iter().enumerate() {
        cumulative += weight;
        let end = if shard + 1 == SHARDS {
            SLOTS
        } else {
            ((cumulative / total) * SLOTS as f64).round() as usize
        };
        layout.shard_of_slot[start..end].fill(shard as u8);
        layout.slots_of_shard[shard] = (end - start) as u16;
        start = end;
    }
    debug_assert!(layout.slots_of_shard.iter().all(|&n| n > 0));
    layout
});

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
    unequal_shard(hash)
}

/// The shard of [`SHARDS`] with unequal shares that owns a uniformly spread
/// 64-bit `hash` (by its top bits). For other sharded maps of millions of
/// keys, which stall the same way when all their shards grow at once (the
/// claims index of usage event ids).
pub(crate) fn unequal_shard(hash: u64) -> usize {
    LAYOUT.shard_of_slot[(hash >> (64 - SLOT_BITS)) as usize] as usize
}

/// How many shards [`unequal_shard`] chooses from.
pub(crate) const UNEQUAL_SHARDS: usize = SHARDS;

impl<V> IdMap<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room for `additional` more ids, each shard by its share.
    pub fn reserve(&mut self, additional: usize) {
        for (shard, slots) in self.shards.iter_mut().zip(LAYOUT.slots_of_shard) {
            shard.reserve((additional * slots as usize).div_ceil(SLOTS));
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
pub(crate) mod tests {
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
    fn every_shard_takes_its_share() {
        let mut counts = [0usize; SHARDS];
        let ids = 200_000;
        for n in 0..ids {
            counts[shard_of(&format!("t{n}"))] += 1;
        }
        for (shard, count) in counts.into_iter().enumerate() {
            let expected = ids * LAYOUT.slots_of_shard[shard] as usize / SLOTS;
            assert!(
                count > expected * 9 / 10 && count < expected * 11 / 10,
                "shard {shard}: {count} ids, expected about {expected}"
            );
        }
        // The largest share is about twice the smallest.
        let smallest = *LAYOUT.slots_of_shard.iter().min().unwrap() as f64;
        let largest = *LAYOUT.slots_of_shard.iter().max().unwrap() as f64;
        assert!((1.8..2.2).contains(&(largest / smallest)));
    }

    /// What the unequal shares are for: as the map grows, the shards' tables
    /// grow at different moments, never many at once.
    #[test]
    fn shards_grow_at_different_moments() {
        let mut map = IdMap::default();
        let ids = 300_000;
        let mut capacities: Vec<usize> = map.shards.iter().map(|s| s.capacity()).collect();
        // The insert count at which each growth happened.
        let mut growths = Vec::new();
        for n in 0..ids {
            let id = format!("t{n}");
            map.insert(&id, ());
            let shard = shard_of(&id);
            let capacity = map.shards[shard].capacity();
            if capacity != capacities[shard] {
                capacities[shard] = capacity;
                growths.push(n);
            }
        }
        assert_growths_spread(&growths, ids);
    }

    /// Checks what unequal shares are for, given the insert counts at which a
    /// shard's table grew while `ids` keys went in: within any stretch in which
    /// the map grows by 1/32 (two spacings of 64 evenly spread growths per
    /// doubling), few shards grow. With equal shares, dozens grow within such a
    /// stretch. Only the growths of large tables count: small ones are cheap.
    pub(crate) fn assert_growths_spread(growths: &[usize], ids: usize) {
        let most_at_once = growths
            .iter()
            .filter(|&&n| n >= ids / 2)
            .map(|&start| {
                let end = start + start / 32;
                growths.iter().filter(|&&n| n >= start && n < end).count()
            })
            .max()
            .unwrap();
        assert!(most_at_once <= 6, "{most_at_once} growths at once");
    }
}
