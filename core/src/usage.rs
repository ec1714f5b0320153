//! Usage events as recorded in the journal, and their canonical hash, which a
//! usage batch's journal entry commits to (the leaves of its events root:
//! `tally_audit::usage`).
//!
//! `event_hash = blake3("tally/usage-event/v1" || fields)`, where every field is
//! fed with a length or a tag, so that no two different events feed the same
//! bytes:
//!
//! | field | bytes |
//! |---|---|
//! | `event_id`, `customer`, `meter` | u64 big-endian byte length, then UTF-8 |
//! | `timestamp` | i64 big-endian |
//! | `value` | tag `0` when absent; tag `1`, u64 length, UTF-8 text as sent |
//! | `properties` | u64 count, then per property in name order: length-prefixed name, length-prefixed value |
//!
//! The value is hashed as sent, not normalized: the hash commits to what the
//! client sent (`10.0` and `10` are different events for deduplication's
//! "same id, different content" check). Frozen by a test vector.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::entry::TimestampNs;

/// One usage event, as sent. Recorded verbatim in a `usage_recorded` entry;
/// its value stays the text the client sent (never a float, never rounded).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct UsageEvent {
    /// The sender's id for the event, the key of deduplication.
    pub event_id: String,
    pub customer: String,
    /// The code of the meter the event is for.
    pub meter: String,
    /// When the usage happened, in nanoseconds since the epoch.
    pub timestamp: TimestampNs,
    /// The value as decimal text, as sent.
    pub value: Option<String>,
    pub properties: BTreeMap<String, String>,
}

/// The domain separator of the event hash, version 1.
pub const EVENT_HASH_DOMAIN: &[u8] = b"tally/usage-event/v1";

/// A usage event's canonical hash.
pub fn event_hash(event: &UsageEvent) -> [u8; 32] {
    let mut feed = Vec::with_capacity(256);
    feed.extend_from_slice(EVENT_HASH_DOMAIN);
    text(&mut feed, &event.event_id);
    text(&mut feed, &event.customer);
    text(&mut feed, &event.meter);
    feed.extend_from_slice(&event.timestamp.to_be_bytes());
    match &event.value {
        None => feed.push(0),
        Some(value) => {
            feed.push(1);
            text(&mut feed, value);
        }
    }
    feed.extend_from_slice(&(event.properties.len() as u64).to_be_bytes());
    for (name, value) in &event.properties {
        text(&mut feed, name);
        text(&mut feed, value);
    }
    *blake3::hash(&feed).as_bytes()
}

fn text(feed: &mut Vec<u8>, text: &str) {
    feed.extend_from_slice(&(text.len() as u64).to_be_bytes());
    feed.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> UsageEvent {
        UsageEvent {
            event_id: "evt-1".into(),
            customer: "acme".into(),
            meter: "api_calls".into(),
            timestamp: 1_700_000_000_000_000_000,
            value: Some("10.5".into()),
            properties: BTreeMap::from([
                ("region".to_string(), "eu".to_string()),
                ("user.id".to_string(), "u-1".to_string()),
            ]),
        }
    }

    #[test]
    fn frozen_vector() {
        // Goal: the hash's bytes never change silently; a batch root signed today
        // must verify with tomorrow's code. Changing this vector is a format change (v2).
        // The input, spelled out from the table in the module docs:
        let input = [
            "74616c6c792f75736167652d6576656e742f7631", // "tally/usage-event/v1"
            "0000000000000005",
            "6576742d31", // event_id "evt-1"
            "0000000000000004",
            "61636d65", // customer "acme"
            "0000000000000009",
            "6170695f63616c6c73", // meter "api_calls"
            "17979cfe362a0000",   // timestamp 1.7e18
            "01",
            "0000000000000004",
            "31302e35",         // value Some("10.5")
            "0000000000000002", // two properties, in name order
            "0000000000000006",
            "726567696f6e",
            "0000000000000002",
            "6575", // region = eu
            "0000000000000007",
            "757365722e6964",
            "0000000000000003",
            "752d31", // user.id = u-1
        ]
        .concat();
        let input = hex::decode(input).unwrap();
        assert_eq!(event_hash(&event()), *blake3::hash(&input).as_bytes());
        assert_eq!(
            hex::encode(event_hash(&event())),
            "f8c2a6dd231bfde1d543a24d52c9bc6aa4e94c9808f130d382d7d48d8227413b"
        );
    }

    #[test]
    fn every_field_changes_the_hash() {
        // Goal: changing any one field, or moving bytes between fields, gives another hash.
        let base = event_hash(&event());
        let mut variants: Vec<UsageEvent> = Vec::new();
        let mut push = |change: &dyn Fn(&mut UsageEvent)| {
            let mut changed = event();
            change(&mut changed);
            variants.push(changed);
        };
        push(&|e| e.event_id.push('x'));
        push(&|e| e.customer.push('x'));
        push(&|e| e.meter.push('x'));
        push(&|e| e.timestamp += 1);
        push(&|e| e.value = Some("10.50".into()));
        push(&|e| e.value = None);
        push(&|e| e.value = Some(String::new()));
        push(&|e| {
            e.properties.insert("region".into(), "us".into());
        });
        push(&|e| {
            e.properties.remove("region");
        });
        push(&|e| {
            e.properties.insert("zone".into(), String::new());
        });
        // Bytes moved across a field boundary.
        push(&|e| {
            e.event_id = "evt-1a".into();
            e.customer = "cme".into();
        });
        push(&|e| {
            e.properties = BTreeMap::from([
                ("region".to_string(), "euuser.id".to_string()),
                (String::new(), "u-1".to_string()),
            ]);
        });
        let mut seen = std::collections::BTreeSet::from([base]);
        for variant in &variants {
            assert!(
                seen.insert(event_hash(variant)),
                "collision for {variant:?}"
            );
        }
    }
}
