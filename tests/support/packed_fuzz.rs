//! What the packed-batch fuzzers (`tests/packed_batch.rs`,
//! `tests/packed_events.rs`) share: byte mutations of a valid batch (flipped,
//! cut, padded, shortened, or a little-endian count overwritten by an extreme
//! value) and the check of a refused batch. Included with `#[path]` by each
//! (proptest is a dev-dependency, so it cannot live in the harness library).

use proptest::prelude::*;
use tally_core::error_code::ErrorCode;
use tally_server::api::packed::BatchError;

/// A refused batch names where (within the `bytes` sent) and what, under one
/// of the format's `roots` (`header.`, its table, its items), with one of the
/// batch-wide codes, and fails the call as field `batch` with a non-OK status.
pub fn check_refusal(bytes: &[u8], error: &BatchError, roots: &[&str]) {
    assert!(
        error.offset <= bytes.len(),
        "{error} in {} bytes",
        bytes.len()
    );
    assert!(
        roots.iter().any(|root| error.path.starts_with(root)),
        "{error}"
    );
    assert!(!error.problem.is_empty(), "{error}");
    assert!(
        matches!(
            error.code,
            ErrorCode::FieldInvalid | ErrorCode::BatchEmpty | ErrorCode::BatchTooLarge
        ),
        "{error}"
    );
    let ledger_error = error.to_ledger_error();
    assert_eq!(ledger_error.field, "batch");
    assert!(
        ledger_error
            .message
            .contains(&format!("byte {}", error.offset)),
        "{}",
        ledger_error.message
    );
    let status = tally_server::api::status::ledger_status(&ledger_error);
    assert_ne!(status.code(), tonic::Code::Ok);
}

#[derive(Debug, Clone)]
pub enum Mutation {
    Xor(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, Vec<u8>),
    Delete(prop::sample::Index, usize),
    /// A little-endian u16 or u32 overwritten with an extreme value.
    Extreme(prop::sample::Index, u32, bool),
}

/// Mutations, the extreme values among `extremes` (the format's limits and
/// their neighbours).
pub fn mutation(extremes: Vec<u32>) -> BoxedStrategy<Mutation> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, m)| Mutation::Xor(i, m)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        1 => (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<prop::sample::Index>(), 1usize..20).prop_map(|(i, n)| Mutation::Delete(i, n)),
        2 => (
            any::<prop::sample::Index>(),
            prop::sample::select(extremes),
            prop::bool::ANY,
        )
            .prop_map(|(i, v, wide)| Mutation::Extreme(i, v, wide)),
    ]
    .boxed()
}

pub fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let len = bytes.len();
        match mutation {
            Mutation::Xor(at, mask) if len > 0 => bytes[at.index(len)] ^= mask,
            Mutation::Truncate(at) if len > 0 => bytes.truncate(at.index(len)),
            Mutation::Insert(at, extra) => {
                let at = at.index(len + 1);
                bytes.splice(at..at, extra.iter().copied());
            }
            Mutation::Delete(at, n) if len > 0 => {
                let at = at.index(len);
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Extreme(at, value, wide) => {
                let width = if *wide { 4 } else { 2 };
                if len >= width {
                    let at = at.index(len - width + 1);
                    bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
                }
            }
            _ => {}
        }
    }
    bytes
}
