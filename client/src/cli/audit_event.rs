//! `tally audit prove-event` and `verify-event`: the proof of one usage event, in two hops
//! (the event's path to its `usage_recorded` entry's events root, then the entry's inclusion
//! in a signed checkpoint), written as a JSON bundle and verified offline with
//! `tally_audit::usage::verify_event_proof`.
//!
//! The bundle:
//!
//! ```json
//! {"version": "tally-event-proof v1", "checkpoint": "<signed note>",
//!  "seq": 17, "prev_hash": "<hex>", "entry": "<hex of the canonical bytes>",
//!  "inclusion": ["<hex>", ...],
//!  "event": {"event_id": "evt-1", "customer": "acme", "meter": "api_calls",
//!            "timestamp": 1714564800000000000, "value": "12.50", "properties": {}},
//!  "index": 0, "event_count": 3, "event_path": ["<hex>", ...]}
//! ```
//!
//! The event's timestamp is integer nanoseconds and its value the text as sent (or null):
//! exactly what the event hash commits to. As with the other bundles, the verifier takes the
//! journal's size and root from the signed checkpoint only.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};
use tally_audit::usage::{verify_event_proof, VerifiedEvent};
use tally_audit::{Hash, NoteVerifier};
use tally_client::{Client, EventProof, UsageEvent};
use tally_core::entry::Digest;

use super::args::VerifyArgs;
use super::audit::{
    checkpoint_json, checkpoint_text, failed, fetch_checkpoint, field, hash_field, hashes_field,
    hex_field, hex_list, load_keys, parse_json, read_input, string_field, u64_field, write_bundle,
};
use super::commands::Printer;
use super::render;
use super::CliError;

/// `version` of an event proof bundle.
pub const EVENT_PROOF_VERSION: &str = "tally-event-proof v1";

/// An event proof bundle as read from its file; nothing in it is trusted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBundle {
    pub checkpoint: String,
    pub seq: u64,
    pub prev_hash: Digest,
    pub entry: Vec<u8>,
    pub inclusion: Vec<Hash>,
    pub event: UsageEvent,
    pub index: u64,
    pub event_count: u64,
    pub event_path: Vec<Hash>,
}

impl EventBundle {
    fn from_proof(proof: EventProof) -> Self {
        EventBundle {
            checkpoint: proof.checkpoint,
            seq: proof.seq,
            prev_hash: proof.prev_hash,
            entry: proof.entry,
            inclusion: proof.inclusion,
            event: proof.event,
            index: u64::from(proof.index),
            event_count: u64::from(proof.event_count),
            event_path: proof.event_path,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "version": EVENT_PROOF_VERSION,
            "checkpoint": self.checkpoint,
            "seq": self.seq,
            "prev_hash": hex::encode(self.prev_hash),
            "entry": hex::encode(&self.entry),
            "inclusion": hex_list(&self.inclusion),
            "event": event_json(&self.event),
            "index": self.index,
            "event_count": self.event_count,
            "event_path": hex_list(&self.event_path),
        })
    }

    /// Parses a bundle strictly: every field present, of its type, and no other field.
    pub fn parse(bytes: &[u8]) -> Result<EventBundle, String> {
        const FIELDS: &[&str] = &[
            "version",
            "checkpoint",
            "seq",
            "prev_hash",
            "entry",
            "inclusion",
            "event",
            "index",
            "event_count",
            "event_path",
        ];
        let value = parse_json(bytes)?;
        let fields = object(&value, "a bundle", FIELDS)?;
        let version = string_field(fields, "version")?;
        if version != EVENT_PROOF_VERSION {
            return Err(format!(
                "field \"version\": {version:?} is not {EVENT_PROOF_VERSION:?}"
            ));
        }
        Ok(EventBundle {
            checkpoint: string_field(fields, "checkpoint")?.to_string(),
            seq: u64_field(fields, "seq")?,
            prev_hash: hash_field(fields, "prev_hash")?,
            entry: hex_field(fields, "entry")?,
            inclusion: hashes_field(fields, "inclusion")?,
            event: parse_event(field(fields, "event")?)
                .map_err(|error| format!("event.{error}"))?,
            index: u64_field(fields, "index")?,
            event_count: u64_field(fields, "event_count")?,
            event_path: hashes_field(fields, "event_path")?,
        })
    }
}

/// The event as the bundle holds it: its hashed fields, exactly.
fn event_json(event: &UsageEvent) -> Value {
    json!({
        "event_id": event.event_id,
        "customer": event.customer,
        "meter": event.meter,
        "timestamp": event.timestamp,
        "value": event.value,
        "properties": event.properties,
    })
}

/// A JSON object holding only `known` fields (a field this verifier ignored could be one a
/// reader relies on).
fn object<'a>(
    value: &'a Value,
    what: &str,
    known: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    let fields = value
        .as_object()
        .ok_or_else(|| format!("{what} must be a JSON object"))?;
    if let Some(unknown) = fields.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(format!("unknown field {unknown:?}"));
    }
    Ok(fields)
}

fn parse_event(value: &Value) -> Result<UsageEvent, String> {
    const FIELDS: &[&str] = &[
        "event_id",
        "customer",
        "meter",
        "timestamp",
        "value",
        "properties",
    ];
    let fields = object(value, "the event", FIELDS)?;
    let timestamp = field(fields, "timestamp")?
        .as_i64()
        .ok_or("field \"timestamp\": must be an integer number of nanoseconds")?;
    let value = match field(fields, "value")? {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        _ => return Err("field \"value\": must be a string or null".into()),
    };
    let properties = field(fields, "properties")?
        .as_object()
        .ok_or("field \"properties\": must be an object")?
        .iter()
        .map(|(name, value)| match value {
            Value::String(text) => Ok((name.clone(), text.clone())),
            _ => Err(format!("field \"properties\".{name:?}: must be a string")),
        })
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    Ok(UsageEvent {
        event_id: string_field(fields, "event_id")?.to_string(),
        customer: string_field(fields, "customer")?.to_string(),
        meter: string_field(fields, "meter")?.to_string(),
        timestamp,
        value,
        properties,
    })
}

fn verify(bundle: &EventBundle, keys: &[NoteVerifier]) -> Result<VerifiedEvent, String> {
    verify_event_proof(
        bundle.checkpoint.as_bytes(),
        keys,
        bundle.seq,
        &bundle.prev_hash,
        &bundle.entry,
        &bundle.inclusion,
        &bundle.event,
        bundle.index,
        bundle.event_count,
        &bundle.event_path,
    )
    .map_err(|error| error.to_string())
}

// ---------------------------------------------------------------------------------------
// Online

/// Fetches the proof of `event_id` against a checkpoint (of `tree_size` entries, or a new
/// one), checks it, and writes its bundle to `out`.
pub async fn prove_event(
    client: &Client,
    printer: &mut Printer<'_>,
    event_id: &str,
    tree_size: Option<u64>,
    out: &Path,
) -> Result<(), CliError> {
    let checkpoint = fetch_checkpoint(client, tree_size, tree_size.is_none()).await?;
    let proof = client
        .prove_event(event_id, Some(checkpoint.tree_size))
        .await?;
    if proof.event.event_id != event_id {
        return Err(CliError::Verification(format!(
            "asked for event {event_id:?}, the server proved event {:?}",
            proof.event.event_id
        )));
    }
    let bundle = EventBundle::from_proof(proof);
    let verified = self_check(client, &bundle).await?;
    let proven_size = verified.entry.checkpoint.checkpoint.tree_size;
    if proven_size != checkpoint.tree_size {
        return Err(CliError::Verification(format!(
            "asked for a proof in the checkpoint of {} entries, the server's is of {proven_size}",
            checkpoint.tree_size
        )));
    }
    write_bundle(out, &bundle.to_json())?;
    let line = format!(
        "wrote the proof of event {event_id} (event {} of {} in entry {}) in the checkpoint of {proven_size} entries to {}",
        bundle.index,
        bundle.event_count,
        bundle.seq,
        out.display()
    );
    printer.line(&line)
}

/// The proof must verify before it is written, so that a broken server is noticed now
/// rather than by the auditor. The keys are the server's own: this checks that the proof
/// holds together, not who signed it; `verify-event` with pinned keys does that.
async fn self_check(client: &Client, bundle: &EventBundle) -> Result<VerifiedEvent, CliError> {
    let server =
        |message: String| CliError::Verification(format!("the server's event proof: {message}"));
    let keys = client
        .signing_keys()
        .await?
        .iter()
        .map(|key| NoteVerifier::from_vkey(&key.vkey).map_err(|error| server(error.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    verify(bundle, &keys).map_err(server)
}

// ---------------------------------------------------------------------------------------
// Offline

pub fn verify_event_file(args: &VerifyArgs, printer: &mut Printer<'_>) -> Result<(), CliError> {
    let keys = load_keys(&args.keys)?;
    let bytes = read_input(&args.file)?;
    let bundle = EventBundle::parse(&bytes).map_err(|error| failed(&args.file, error))?;
    let verified = verify(&bundle, &keys).map_err(|error| failed(&args.file, error))?;
    printer.show(
        || verified_json(&verified, bundle.event_count),
        || verified_text(&verified, bundle.event_count),
    )
}

fn verified_json(verified: &VerifiedEvent, event_count: u64) -> Value {
    json!({
        "event": super::usage::event_json(&verified.event),
        "seq": verified.entry.seq,
        "index": verified.index,
        "event_count": event_count,
        "late": verified.late,
        "entry_hash": hex::encode(verified.entry.entry_hash),
        "checkpoint": checkpoint_json(&verified.entry.checkpoint),
    })
}

fn verified_text(verified: &VerifiedEvent, event_count: u64) -> String {
    let event = &verified.event;
    let properties: Vec<String> = event
        .properties
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let text = render::fields(&[
        ("event id", event.event_id.clone()),
        ("customer", event.customer.clone()),
        ("meter", event.meter.clone()),
        ("timestamp", render::time_ns(event.timestamp)),
        ("value", event.value.clone().unwrap_or_default()),
        ("properties", properties.join(", ")),
        ("late", if verified.late { "yes" } else { "no" }.to_string()),
        (
            "entry",
            format!(
                "{} (event {} of {event_count}), hash {}",
                verified.entry.seq,
                verified.index,
                hex::encode(verified.entry.entry_hash)
            ),
        ),
    ]);
    format!(
        "event verified\n{text}\ncheckpoint\n{}",
        checkpoint_text(&verified.entry.checkpoint)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> EventBundle {
        EventBundle {
            checkpoint: "note\n\n\u{2014} k sig\n".into(),
            seq: 17,
            prev_hash: [7; 32],
            entry: vec![1, 2, 0xab],
            inclusion: vec![[1; 32]],
            event: UsageEvent {
                event_id: "evt-1".into(),
                customer: "acme".into(),
                meter: "api_calls".into(),
                timestamp: -5,
                value: Some("12.50".into()),
                properties: BTreeMap::from([("region".to_string(), "eu".to_string())]),
            },
            index: 2,
            event_count: 3,
            event_path: vec![[2; 32], [3; 32]],
        }
    }

    fn changed(path: &[&str], new: Value) -> Vec<u8> {
        let mut value = bundle().to_json();
        let (last, parents) = path.split_last().unwrap();
        let mut target = &mut value;
        for key in parents {
            target = &mut target[*key];
        }
        match new {
            Value::Null if *last != "value" => {
                target.as_object_mut().unwrap().remove(*last);
            }
            new => target[*last] = new,
        }
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn bundles_round_trip_through_json() {
        // Goal: what prove-event writes, verify-event reads back field for field, and a
        // value-less event keeps its null.
        let original = bundle();
        let bytes = serde_json::to_vec(&original.to_json()).unwrap();
        assert_eq!(EventBundle::parse(&bytes), Ok(original));
        let mut without_value = bundle();
        without_value.event.value = None;
        let bytes = serde_json::to_vec(&without_value.to_json()).unwrap();
        assert_eq!(EventBundle::parse(&bytes), Ok(without_value));
        assert_eq!(bundle().to_json()["event"]["timestamp"], -5);
    }

    #[test]
    fn malformed_bundles_name_the_field() {
        // Goal: no input panics; each error says which field is wrong.
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"[]".to_vec(), "must be a JSON object"),
            (
                changed(&["version"], json!("tally-inclusion-proof v1")),
                "field \"version\"",
            ),
            (changed(&["seq"], Value::Null), "missing field \"seq\""),
            (changed(&["index"], json!(-1)), "field \"index\""),
            (
                changed(&["inclusion"], json!(["00"])),
                "field \"inclusion\"[0]",
            ),
            (
                changed(&["event_path"], json!("00")),
                "field \"event_path\"",
            ),
            (
                changed(&["event", "timestamp"], json!("2024-05-01T00:00:00Z")),
                "event.field \"timestamp\"",
            ),
            (
                changed(&["event", "timestamp"], json!(1.5)),
                "event.field \"timestamp\"",
            ),
            (
                changed(&["event", "value"], json!(12.5)),
                "event.field \"value\"",
            ),
            (
                changed(&["event", "properties", "region"], json!(1)),
                "\"region\"",
            ),
            (
                changed(&["event", "extra"], json!(1)),
                "event.unknown field \"extra\"",
            ),
            (
                changed(&["event", "meter"], Value::Null),
                "event.missing field \"meter\"",
            ),
            (changed(&["extra"], json!(1)), "unknown field \"extra\""),
        ];
        for (bytes, expected) in cases {
            let error = EventBundle::parse(&bytes).unwrap_err();
            assert!(
                error.contains(expected),
                "{error:?} does not contain {expected:?}"
            );
        }
    }

    #[test]
    fn a_bundle_without_a_valid_signature_does_not_verify() {
        // Goal: the verifier is the audit crate's: an unsigned note is refused.
        let error = verify(&bundle(), &[]).unwrap_err();
        assert!(error.contains("checkpoint"), "{error}");
    }
}
