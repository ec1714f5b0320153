//! Event ids already recorded, for deduplication and for proofs.
//!
//! An id is claimed by the writer as it accepts the event
//! (`ingest::record_usage`), just before it appends the `usage_recorded`
//! entry holding it, or as such an entry is replayed: either way inside the
//! group whose one storage write makes the event durable, so an id is never
//! claimed without its event (the failure "claimed first, event lost" cannot
//! happen). A failed write stops the writer; the claims of the lost group die
//! with the process.
//!
//! The writer and the readers share one index. Readers only trust a claim
//! whose entry is published (`seq` below the published journal length), so
//! seeing a claim the writer has just made is harmless.
//!
//! Memory: millions of ids are expected, so a claim is keyed by a 16-byte
//! blake3 digest of the id and keeps 16 bytes of the event hash (enough to tell
//! "same content" from "other content": a false "same" needs a 2^-128 chance).

use crate::ledger::id_map::{unequal_shard, UNEQUAL_SHARDS as SHARDS};
use crate::ledger::state::FastMap;
use std::sync::RwLock;

/// Where an event is recorded, and a digest of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The first 16 bytes of the event's hash (`tally_core::usage::event_hash`).
    pub content: [u8; 16],
    /// The `usage_recorded` entry holding the event, and its index there.
    pub seq: u64,
    pub index: u32,
    /// Recorded as late (`UsageRecorded::late`).
    pub late: bool,
}

pub type IdKey = [u8; 16];

pub struct EventClaims {
    shards: Vec<RwLock<FastMap<IdKey, Claim>>>,
}

impl std::fmt::Debug for EventClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventClaims")
            .field("len", &self.len())
            .finish()
    }
}

impl Default for EventClaims {
    fn default() -> Self {
        EventClaims {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }
}

/// The index's key of an event id.
pub fn id_key(event_id: &str) -> IdKey {
    let hash = blake3::hash(event_id.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&hash.as_bytes()[..16]);
    key
}

/// The content digest kept in a claim.
pub fn content_of(event_hash: &[u8; 32]) -> [u8; 16] {
    let mut content = [0u8; 16];
    content.copy_from_slice(&event_hash[..16]);
    content
}

impl EventClaims {
    /// The shards take unequal shares of the keys (as the transaction-id
    /// maps' do, `ledger::id_map`), so that they grow at different moments:
    /// with equal shares, at millions of ids every shard rehashed within the
    /// same group or two, and that group's batches waited hundreds of
    /// milliseconds. The key is a blake3 digest, so its first bytes are
    /// already uniformly spread.
    fn shard(&self, key: &IdKey) -> &RwLock<FastMap<IdKey, Claim>> {
        let top = u64::from_be_bytes(key[..8].try_into().expect("8 bytes"));
        &self.shards[unequal_shard(top)]
    }

    pub fn get(&self, event_id: &str) -> Option<Claim> {
        self.get_by_key(&id_key(event_id))
    }

    /// [`EventClaims::get`] with the id's key already computed.
    pub fn get_by_key(&self, key: &IdKey) -> Option<Claim> {
        let shard = self.shard(key).read().unwrap_or_else(|e| e.into_inner());
        shard.get(key).copied()
    }

    /// Claims `event_id`; `false` (and nothing changes) if it was claimed.
    pub fn claim(&self, event_id: &str, claim: Claim) -> bool {
        self.claim_by_key(id_key(event_id), claim)
    }

    /// [`EventClaims::claim`] with the id's key already computed.
    pub fn claim_by_key(&self, key: IdKey, claim: Claim) -> bool {
        let mut shard = self.shard(&key).write().unwrap_or_else(|e| e.into_inner());
        match shard.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(claim);
                true
            }
        }
    }

    /// Claims `key` unless it was claimed: `None` when this call claimed it,
    /// else the earlier claim (and nothing changes). One probe of the index
    /// for what `get_by_key` then `claim_by_key` would do in two.
    pub fn claim_or_get(&self, key: IdKey, claim: Claim) -> Option<Claim> {
        let mut shard = self.shard(&key).write().unwrap_or_else(|e| e.into_inner());
        match shard.entry(key) {
            std::collections::hash_map::Entry::Occupied(earlier) => Some(*earlier.get()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(claim);
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the unequal shares are for: as the index grows, its shards grow
    /// at different moments, never many at once (the test of
    /// `ledger::id_map`'s shards, on the claims index's own keys).
    #[test]
    fn shards_grow_at_different_moments() {
        let claims = EventClaims::default();
        let ids = 300_000;
        let capacity = |shard: usize| claims.shards[shard].read().unwrap().capacity();
        let mut capacities: Vec<usize> = (0..SHARDS).map(capacity).collect();
        let mut growths = Vec::new();
        let claim = Claim {
            content: [0; 16],
            seq: 1,
            index: 0,
            late: false,
        };
        for n in 0..ids {
            let key = id_key(&format!("evt-{n}"));
            assert_eq!(claims.claim_or_get(key, claim), None);
            let shard = (0..SHARDS)
                .find(|&s| std::ptr::eq(&claims.shards[s], claims.shard(&key)))
                .unwrap();
            let now = capacity(shard);
            if now != capacities[shard] {
                capacities[shard] = now;
                growths.push(n);
            }
        }
        crate::ledger::id_map::tests::assert_growths_spread(&growths, ids);
    }

    #[test]
    fn an_id_is_claimed_once_and_found_again() {
        // Goal: the first claim wins and later ones change nothing.
        let claims = EventClaims::default();
        let first = Claim {
            content: [1; 16],
            seq: 7,
            index: 2,
            late: false,
        };
        assert!(claims.claim("evt-1", first));
        assert!(!claims.claim(
            "evt-1",
            Claim {
                content: [2; 16],
                seq: 9,
                index: 0,
                late: true,
            }
        ));
        assert_eq!(claims.get("evt-1"), Some(first));
        assert_eq!(claims.get("evt-2"), None);
        assert_eq!(claims.len(), 1);
        // The same through the one-probe form.
        let second = Claim { seq: 8, ..first };
        assert_eq!(claims.claim_or_get(id_key("evt-1"), second), Some(first));
        assert_eq!(claims.claim_or_get(id_key("evt-2"), second), None);
        assert_eq!(claims.get("evt-2"), Some(second));
        assert_eq!(claims.len(), 2);
    }
}
