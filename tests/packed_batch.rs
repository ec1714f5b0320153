//! The packed batch format (`docs/packed-batch.md`) between the client's
//! encoder (`tally_client::PackedBatch`) and the server's decoder
//! (`tally_server::api::packed`), without a server:
//!
//! - random items of every kind, packed by the client, decode on the server to
//!   exactly the `TransactionItem`s (and so the request digests) that the
//!   protobuf path makes of the same items;
//! - arbitrary bytes, and valid batches mutated, never panic the decoder: each
//!   is a batch or a refusal naming its byte offset, a path in the batch and
//!   the stable code, and the same whether decoded in place or in parts.
//!
//! Case counts are small enough for CI; raise them with `PROPTEST_CASES` (see
//! `docs/security.md`, "Fuzzing").

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use rust_decimal::Decimal;
use tally_client::{
    Direction, PackedBatch, PostPendingSpec, Posting, ReverseSpec, TransactionItem,
    TransactionSpec, VoidPendingSpec,
};
use tally_core::error_code::ErrorCode;
use tally_proto::v1 as pb;
use tally_server::api::{convert, packed};
use tally_server::ledger::digest::request_digest;

#[path = "support/packed_fuzz.rs"]
mod packed_fuzz;
use packed_fuzz::{mutate, mutation};

/// `default` cases, or `PROPTEST_CASES` when set (for long runs).
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// The protobuf path's view of a client item (as the client converts it).
// ---------------------------------------------------------------------------

fn pb_metadata(metadata: &BTreeMap<String, String>) -> std::collections::HashMap<String, String> {
    metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn pb_time(time: Option<SystemTime>) -> Option<prost_types::Timestamp> {
    time.map(prost_types::Timestamp::from)
}

fn pb_item(item: &TransactionItem, linked: bool) -> pb::TransactionItem {
    use pb::transaction_item::Kind;
    let kind = match item {
        TransactionItem::Transaction(spec) => Kind::Transaction(pb::TransactionSpec {
            id: spec.id.clone(),
            postings: spec
                .postings
                .iter()
                .map(|posting| pb::Posting {
                    account: posting.account.clone(),
                    direction: match posting.direction {
                        Direction::Debit => pb::Direction::Debit,
                        Direction::Credit => pb::Direction::Credit,
                    } as i32,
                    amount: posting.amount.to_string(),
                    currency: posting.currency.clone().unwrap_or_default(),
                })
                .collect(),
            effective_at: pb_time(spec.effective_at),
            description: spec.description.clone(),
            metadata: pb_metadata(&spec.metadata),
            pending: spec.pending,
            timeout_seconds: spec.timeout_seconds,
        }),
        TransactionItem::PostPending(spec) => Kind::PostPending(pb::PostPendingSpec {
            id: spec.id.clone(),
            pending_id: spec.pending_id.clone(),
            amounts: spec.amounts.iter().map(Decimal::to_string).collect(),
            effective_at: pb_time(spec.effective_at),
            description: spec.description.clone(),
            metadata: pb_metadata(&spec.metadata),
        }),
        TransactionItem::VoidPending(spec) => Kind::VoidPending(pb::VoidPendingSpec {
            id: spec.id.clone(),
            pending_id: spec.pending_id.clone(),
            reason: spec.reason.clone(),
        }),
        TransactionItem::Reverse(spec) => Kind::Reverse(pb::ReverseSpec {
            id: spec.id.clone(),
            transaction_id: spec.transaction_id.clone(),
            effective_at: pb_time(spec.effective_at),
            description: spec.description.clone(),
            metadata: pb_metadata(&spec.metadata),
        }),
    };
    pb::TransactionItem {
        kind: Some(kind),
        linked,
    }
}

// ---------------------------------------------------------------------------
// Random client items.
// ---------------------------------------------------------------------------

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[ -~]{0,12}",
        2 => "\\PC{0,8}",
        1 => (0usize..2_000).prop_map(|n| "é".repeat(n)),
    ]
    .boxed()
}

/// Account names: a few shared ones (the name table is shared by postings),
/// and anything else, valid or not.
fn account() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(vec!["assets:cash", "revenue:sales", "liabilities:x", ""])
            .prop_map(String::from),
        2 => "[a-z0-9_.-]{1,10}(:[a-z0-9_.-]{1,10}){0,3}",
        1 => text(),
        1 => (250usize..400).prop_map(|n| "a".repeat(n)),
    ]
    .boxed()
}

/// Any non-negative amount a `Decimal` holds, at any scale.
fn amount() -> BoxedStrategy<Decimal> {
    prop_oneof![
        (0u128..(1 << 96), 0u32..=28)
            .prop_map(|(mantissa, scale)| Decimal::from_i128_with_scale(mantissa as i128, scale)),
        (0i64..100_000, 0u32..=4).prop_map(|(m, s)| Decimal::new(m, s)),
        Just(Decimal::MAX),
        Just(Decimal::ZERO),
    ]
    .boxed()
}

fn time() -> BoxedStrategy<Option<SystemTime>> {
    prop::option::of(
        prop_oneof![
            any::<i64>(),
            -4_000_000_000_000_000_000i64..4_000_000_000_000_000_000
        ]
        .prop_map(|nanos| {
            let magnitude = Duration::from_nanos(nanos.unsigned_abs());
            if nanos >= 0 {
                SystemTime::UNIX_EPOCH + magnitude
            } else {
                SystemTime::UNIX_EPOCH - magnitude
            }
        }),
    )
    .boxed()
}

fn metadata() -> BoxedStrategy<BTreeMap<String, String>> {
    prop::collection::btree_map(text(), text(), 0..4).boxed()
}

fn posting() -> BoxedStrategy<Posting> {
    (
        account(),
        prop::bool::ANY,
        amount(),
        prop::option::of(prop_oneof!["[A-Z]{0,5}", Just(String::new())]),
    )
        .prop_map(|(account, debit, amount, currency)| Posting {
            account,
            direction: if debit {
                Direction::Debit
            } else {
                Direction::Credit
            },
            amount,
            currency,
        })
        .boxed()
}

fn item() -> BoxedStrategy<TransactionItem> {
    let transaction = (
        text(),
        prop::collection::vec(posting(), 0..5),
        time(),
        text(),
        metadata(),
        prop::bool::ANY,
        prop_oneof![Just(0u64), any::<u64>()],
    )
        .prop_map(
            |(id, postings, effective_at, description, metadata, pending, timeout_seconds)| {
                TransactionItem::Transaction(TransactionSpec {
                    id,
                    postings,
                    effective_at,
                    description,
                    metadata,
                    pending,
                    timeout_seconds,
                })
            },
        );
    let post = (
        text(),
        text(),
        prop::collection::vec(amount(), 0..4),
        time(),
        text(),
        metadata(),
    )
        .prop_map(
            |(id, pending_id, amounts, effective_at, description, metadata)| {
                TransactionItem::PostPending(PostPendingSpec {
                    id,
                    pending_id,
                    amounts,
                    effective_at,
                    description,
                    metadata,
                })
            },
        );
    let void = (text(), text(), text()).prop_map(|(id, pending_id, reason)| {
        TransactionItem::VoidPending(VoidPendingSpec {
            id,
            pending_id,
            reason,
        })
    });
    let reverse = (text(), text(), time(), text(), metadata()).prop_map(
        |(id, transaction_id, effective_at, description, metadata)| {
            TransactionItem::Reverse(ReverseSpec {
                id,
                transaction_id,
                effective_at,
                description,
                metadata,
            })
        },
    );
    prop_oneof![3 => transaction, 1 => post, 1 => void, 1 => reverse].boxed()
}

fn items() -> BoxedStrategy<Vec<(TransactionItem, bool)>> {
    prop::collection::vec((item(), prop::bool::ANY), 1..12).boxed()
}

fn pack(items: &[(TransactionItem, bool)]) -> PackedBatch {
    let mut batch = PackedBatch::new();
    for (item, linked) in items {
        batch.add(item).expect("every generated item can be packed");
        if *linked {
            batch.link_last();
        }
    }
    batch
}

// ---------------------------------------------------------------------------
// Refusals.
// ---------------------------------------------------------------------------

/// A refused transaction batch, checked as every packed batch's refusal is.
fn check_refusal(bytes: &[u8], error: &packed::BatchError) {
    packed_fuzz::check_refusal(bytes, error, &["header.", "names[", "items"]);
}

/// A decoded batch's item errors are the per-item amount errors, with paths
/// relative to the item.
fn check_decoded(decoded: &[packed::DecodedItem]) {
    for item in decoded {
        match &item.item {
            Ok(transaction) => assert_eq!(transaction.linked, item.linked),
            Err(error) => {
                assert!(
                    matches!(
                        error.code,
                        ErrorCode::AmountOverflow | ErrorCode::AmountScaleExceeded
                    ),
                    "{error:?}"
                );
                assert!(
                    error.field.starts_with("transaction.postings[")
                        || error.field.starts_with("post_pending.amounts["),
                    "{error:?}"
                );
            }
        }
    }
}

fn decode_never_panics(bytes: &[u8]) {
    let decoded = packed::decode_batch(bytes);
    match &decoded {
        Ok(decoded) => check_decoded(decoded),
        Err(error) => check_refusal(bytes, error),
    }
    // In parts (as a large batch is decoded), the same answer.
    for parts in [1, 3] {
        assert_eq!(
            packed::decode_batch_in_parts(bytes, parts),
            decoded,
            "{parts} parts"
        );
    }
}

/// The format's limits and their neighbours, for mutated counts.
fn extremes() -> Vec<u32> {
    vec![0, 1, 0xff, 0xffff, 0x7fff_ffff, u32::MAX, 8_190, 8_191]
}

// ---------------------------------------------------------------------------
// The properties.
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(300))]

    /// Goal: what the client packs is what the protobuf path makes of the same
    /// items — the same `TransactionItem`s, links and request digests.
    #[test]
    fn packed_items_decode_to_the_protobuf_paths_items(items in items()) {
        let batch = pack(&items);
        prop_assert_eq!(batch.len(), items.len());
        let decoded = packed::decode_batch_in_parts(&batch.encoded(), 2)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(decoded.len(), items.len());
        for (index, ((item, linked), decoded)) in items.iter().zip(decoded).enumerate() {
            let expected = convert::transaction_item(pb_item(item, *linked));
            prop_assert_eq!(decoded.linked, *linked);
            prop_assert_eq!(&decoded.item, &expected, "item {}", index);
            if let (Ok(packed), Ok(proto)) = (&decoded.item, &expected) {
                prop_assert_eq!(
                    request_digest(&packed.command),
                    request_digest(&proto.command)
                );
                // Decimals compare by value; the digest normalizes them. The
                // scale travels too, as the protobuf text keeps it.
                if let (
                    tally_server::ledger::command::TransactionCommand::Transaction(a),
                    tally_server::ledger::command::TransactionCommand::Transaction(b),
                ) = (&packed.command, &proto.command)
                {
                    for (a, b) in a.postings.iter().zip(&b.postings) {
                        prop_assert_eq!(a.amount.scale(), b.amount.scale());
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(2_000))]

    /// Goal: any bytes at all are a batch or a precise refusal, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        header in prop::bool::ANY,
    ) {
        let bytes = if header {
            // A valid header in front, so that the noise reaches the items.
            let mut framed = b"TLYB\x01\x00\x00\x00".to_vec();
            framed.extend_from_slice(&bytes);
            framed
        } else {
            bytes
        };
        decode_never_panics(&bytes);
    }

    /// Goal: valid batches with bytes flipped, cut, inserted, deleted or
    /// replaced by extreme counts are a batch or a precise refusal.
    #[test]
    fn mutated_batches_never_panic_the_decoder(
        items in items(),
        mutations in prop::collection::vec(mutation(extremes()), 1..5),
    ) {
        let bytes = mutate(pack(&items).encoded().to_vec(), &mutations);
        decode_never_panics(&bytes);
    }
}

#[test]
fn every_truncation_of_a_valid_batch_is_refused_at_its_end() {
    // Goal: a batch cut anywhere is refused, at an offset within what was sent.
    let mut batch = PackedBatch::new();
    batch
        .add_transfer("t1", "assets:a", "assets:b", Decimal::new(1, 2))
        .unwrap();
    batch
        .add_post_pending(&PostPendingSpec::new("p", "t0").amount(Decimal::ONE))
        .unwrap();
    batch.link_last();
    batch
        .add_void_pending(&VoidPendingSpec::new("v", "t0").reason("r"))
        .unwrap();
    let bytes = batch.encoded();
    assert!(packed::decode_batch(&bytes).is_ok());
    for len in 0..bytes.len() {
        let error = packed::decode_batch(&bytes[..len]).unwrap_err();
        check_refusal(&bytes[..len], &error);
    }
}
