//! Fuzzers of everything in `tallyd` that sees a client's bytes before the engine does:
//! protobuf decoding of every request message, the edge's conversions
//! (`api::convert`), the stateless checks (`ledger::validate`) and API key token parsing
//! (`auth::token`).
//!
//! Each request is run through the same steps, in the same order, as its service method:
//! decode, batch size, convert, validate. The property: nothing panics, and every refusal
//! is a `LedgerError` naming a field of the request (its first path segment is one of the
//! message's own fields), which the edge turns into a non-OK gRPC status.
//!
//! Case counts are small enough for CI; raise them with `PROPTEST_CASES` (see
//! `docs/security.md`, "Fuzzing").
//!
//! Not reachable from here (private): `check_batch_size` and `plan_transactions`
//! (`api/ledger_service.rs`, mirrored below), `role_from_proto` (`api/admin_service.rs`,
//! mirrored with `pb::Role::try_from`) and `size_or_latest` (`api/audit_service.rs`; the
//! Audit requests are plain integers, so they are fuzzed through decoding only).

use std::collections::HashMap;

use proptest::prelude::*;
use prost::Message;
use tally_proto::v1 as pb;
use tally_server::api::convert;
use tally_server::api::status::ledger_status;
use tally_server::auth::token::Token;
use tally_server::ledger::command::{TransactionCommand, TransactionItem};
use tally_server::ledger::limits::{ACCOUNTS_BATCH_MAX, BATCH_ITEMS_MAX};
use tally_server::ledger::validate;
use tally_server::LedgerError;

/// `default` cases, or `PROPTEST_CASES` when set (for long runs).
fn config(default: u32) -> ProptestConfig {
    config_capped(default, u32::MAX)
}

/// As [`config`], with `PROPTEST_CASES` capped at `cap` (for cases that cost seconds).
fn config_capped(default: u32, cap: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(default, |n| n.min(cap));
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Checks that a refusal names a field whose first segment is one of `roots`, and that
/// it becomes a non-OK status.
fn check<T>(result: Result<T, LedgerError>, roots: &[&str]) {
    if let Err(error) = result {
        assert!(!error.field.is_empty(), "no field named: {error:?}");
        let root = error
            .field
            .split(['.', '['])
            .next()
            .expect("split yields one item");
        assert!(
            roots.contains(&root),
            "field {:?} is not within {roots:?}: {error:?}",
            error.field
        );
        assert!(!error.message.is_empty(), "no message: {error:?}");
        let status = ledger_status(&error);
        assert_ne!(status.code(), tonic::Code::Ok, "{error:?}");
    }
}

/// `check_batch_size` of the Ledger service: empty or over `max` refuses the call.
fn batch_size(len: usize, max: usize, field: &str) -> Result<(), LedgerError> {
    if len == 0 || len > max {
        return Err(LedgerError::new(
            tally_core::error_code::ErrorCode::BatchTooLarge,
            field,
            format!("{len} items; 1 to {max}"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The edge of each method, as its service runs it.
// ---------------------------------------------------------------------------

fn edge_item(index: usize, item: pb::TransactionItem) -> Result<(), LedgerError> {
    let within = |e: LedgerError| e.within(&format!("items[{index}]"));
    let item: TransactionItem = convert::transaction_item(item).map_err(within)?;
    validate::command(&item.command).map_err(within)
}

fn create_transactions(request: pb::CreateTransactionsRequest) {
    check(
        batch_size(request.items.len(), BATCH_ITEMS_MAX, "items"),
        &["items"],
    );
    for (index, item) in request.items.into_iter().enumerate() {
        check(edge_item(index, item), &["items"]);
    }
}

fn create_accounts(request: pb::CreateAccountsRequest) {
    check(
        batch_size(request.accounts.len(), ACCOUNTS_BATCH_MAX, "accounts"),
        &["accounts"],
    );
    for (index, spec) in request.accounts.into_iter().enumerate() {
        let within = |e: LedgerError| e.within(&format!("accounts[{index}]"));
        let result = convert::account_spec(spec)
            .map_err(within)
            .and_then(|spec| validate::account_spec(&spec).map_err(within));
        check(result, &["accounts"]);
    }
}

fn create_currencies(request: pb::CreateCurrenciesRequest) {
    check(
        batch_size(request.currencies.len(), ACCOUNTS_BATCH_MAX, "currencies"),
        &["currencies"],
    );
    for (index, currency) in request.currencies.into_iter().enumerate() {
        let spec = convert::currency_spec(currency);
        let result =
            validate::currency_spec(&spec).map_err(|e| e.within(&format!("currencies[{index}]")));
        check(result, &["currencies"]);
    }
}

fn post_pending(spec: pb::PostPendingSpec) {
    let result = convert::post_pending_spec(spec)
        .and_then(|spec| validate::command(&TransactionCommand::PostPending(spec)));
    check(
        result,
        &[
            "id",
            "pending_id",
            "amounts",
            "effective_at",
            "description",
            "metadata",
        ],
    );
}

fn void_pending(spec: pb::VoidPendingSpec) {
    let spec = convert::void_pending_spec(spec);
    check(
        validate::command(&TransactionCommand::VoidPending(spec)),
        &["id", "pending_id", "reason"],
    );
}

fn reverse(spec: pb::ReverseSpec) {
    let result = convert::reverse_spec(spec)
        .and_then(|spec| validate::command(&TransactionCommand::Reverse(spec)));
    check(
        result,
        &[
            "id",
            "transaction_id",
            "effective_at",
            "description",
            "metadata",
        ],
    );
}

fn list_transactions(request: pb::ListTransactionsRequest) {
    check(
        convert::optional_timestamp_ns(request.from.as_ref(), "from"),
        &["from"],
    );
    check(
        convert::optional_timestamp_ns(request.to.as_ref(), "to"),
        &["to"],
    );
    check(
        convert::page_size(request.page_size, "page_size"),
        &["page_size"],
    );
    let _ = convert::page_token(request.page_token);
    if !request.account.is_empty() {
        check(
            validate::account_name("account", &request.account),
            &["account"],
        );
    }
}

fn get_balances(request: pb::GetBalancesRequest) {
    check(convert::as_of(request.as_of, "as_of"), &["as_of"]);
    for name in &request.accounts {
        check(validate::account_name("accounts", name), &["accounts"]);
    }
}

fn get_trial_balance(request: pb::GetTrialBalanceRequest) {
    check(convert::as_of(request.as_of, "as_of"), &["as_of"]);
    let _depth = usize::try_from(request.depth).unwrap_or(usize::MAX);
    if !request.currency.is_empty() {
        check(
            validate::currency_code("currency", &request.currency),
            &["currency"],
        );
    }
}

fn list_accounts(request: pb::ListAccountsRequest) {
    check(
        convert::page_size(request.page_size, "page_size"),
        &["page_size"],
    );
    let _ = convert::page_token(request.page_token);
}

fn get_account_history(request: pb::GetAccountHistoryRequest) {
    check(
        convert::page_size(request.page_size, "page_size"),
        &["page_size"],
    );
    let _ = convert::page_token(request.page_token);
    check(
        validate::account_name("account", &request.account),
        &["account"],
    );
}

fn create_api_key(request: pb::CreateApiKeyRequest) {
    // The engine's check of a key's name (`ledger/execute.rs`).
    check(validate::id("name", &request.name), &["name"]);
    // `role_from_proto` is private; it matches on the same conversion.
    let _ = pb::Role::try_from(request.role);
}

/// Decodes `bytes` as each request message of the three services and runs what decodes
/// through its method's edge.
fn every_request(bytes: &[u8]) {
    if let Ok(m) = pb::CreateTransactionsRequest::decode(bytes) {
        create_transactions(m);
    }
    if let Ok(m) = pb::CreateAccountsRequest::decode(bytes) {
        create_accounts(m);
    }
    if let Ok(m) = pb::CreateCurrenciesRequest::decode(bytes) {
        create_currencies(m);
    }
    if let Ok(m) = pb::PostPendingSpec::decode(bytes) {
        post_pending(m);
    }
    if let Ok(m) = pb::VoidPendingSpec::decode(bytes) {
        void_pending(m);
    }
    if let Ok(m) = pb::ReverseSpec::decode(bytes) {
        reverse(m);
    }
    if let Ok(m) = pb::ListTransactionsRequest::decode(bytes) {
        list_transactions(m);
    }
    if let Ok(m) = pb::GetBalancesRequest::decode(bytes) {
        get_balances(m);
    }
    if let Ok(m) = pb::GetTrialBalanceRequest::decode(bytes) {
        get_trial_balance(m);
    }
    if let Ok(m) = pb::ListAccountsRequest::decode(bytes) {
        list_accounts(m);
    }
    if let Ok(m) = pb::GetAccountHistoryRequest::decode(bytes) {
        get_account_history(m);
    }
    if let Ok(m) = pb::CloseAccountRequest::decode(bytes) {
        check(validate::account_name("name", &m.name), &["name"]);
    }
    if let Ok(m) = pb::GetAccountRequest::decode(bytes) {
        check(validate::account_name("name", &m.name), &["name"]);
    }
    if let Ok(m) = pb::GetTransactionRequest::decode(bytes) {
        check(validate::id("id", &m.id), &["id"]);
    }
    if let Ok(m) = pb::CreateApiKeyRequest::decode(bytes) {
        create_api_key(m);
    }
    // Requests the services read as plain fields: decoding is all their edge does.
    let _ = pb::GetLedgerInfoRequest::decode(bytes);
    let _ = pb::ListCurrenciesRequest::decode(bytes);
    let _ = pb::FollowJournalRequest::decode(bytes);
    let _ = pb::GetCheckpointRequest::decode(bytes);
    let _ = pb::CreateCheckpointRequest::decode(bytes);
    let _ = pb::ListSigningKeysRequest::decode(bytes);
    let _ = pb::GetEntryRequest::decode(bytes);
    let _ = pb::GetInclusionProofRequest::decode(bytes);
    let _ = pb::GetConsistencyProofRequest::decode(bytes);
    let _ = pb::ExportJournalRequest::decode(bytes);
    let _ = pb::RevokeApiKeyRequest::decode(bytes);
    let _ = pb::ListApiKeysRequest::decode(bytes);
    let _ = pb::WhoAmIRequest::decode(bytes);
}

// ---------------------------------------------------------------------------
// Structured generators.
// ---------------------------------------------------------------------------

/// Decimal text a client might send: valid, huge, over-precise, NaN-like, exponents,
/// signs, unicode digits, whitespace, arbitrary unicode.
fn decimal_text() -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "0",
            "-0",
            "+0",
            "0.0",
            "-0.000",
            "NaN",
            "nan",
            "-NaN",
            "inf",
            "-inf",
            "Infinity",
            "1e400",
            "1E-400",
            "1e3",
            "0x10",
            ".",
            "-",
            "+",
            "1.",
            ".5",
            "1..2",
            "1.2.3",
            "--1",
            " 1",
            "1 ",
            "\t1",
            "1\n",
            "1_000",
            "1,5",
            "١٢٣",
            "１２３",
            "1\u{0}",
            "½",
            "٫5",
            "79228162514264337593543950335",
            "79228162514264337593543950336",
            "0.000000000000000000000000000001",
            "99999999999999999999999999999999999999999",
        ])
        .prop_map(String::from),
        "-?[0-9]{1,40}(\\.[0-9]{0,40})?",
        "[-+ .0-9eE\u{660}-\u{669}\u{ff10}-\u{ff19}]{0,30}",
        "\\PC{0,20}",
        (1usize..5000).prop_map(|n| "9".repeat(n)),
        (1usize..5000).prop_map(|n| format!("0.{}1", "0".repeat(n))),
    ]
    .boxed()
}

/// Names and ids: unicode, controls, colons, and very long ones.
fn name() -> BoxedStrategy<String> {
    prop_oneof![
        "[a-z0-9_.-]{1,10}(:[a-z0-9_.-]{1,10}){0,3}",
        "([a-z]{0,70}:){0,12}[a-z]{0,70}",
        "\\PC{0,40}",
        ".{0,40}",
        "[A-Z0-9_]{0,20}",
        (0usize..20_000).prop_map(|n| "a".repeat(n)),
        (0usize..2_000).prop_map(|n| "é".repeat(n)),
        (0usize..300).prop_map(|n| "a:".repeat(n)),
    ]
    .boxed()
}

/// Metadata maps: small, wide (far over the entry limit), long keys and values, unicode.
fn metadata_map() -> BoxedStrategy<HashMap<String, String>> {
    prop_oneof![
        4 => prop::collection::hash_map("\\PC{0,12}", "\\PC{0,12}", 0..8),
        1 => prop::collection::hash_map("[a-z]{1,8}(\\.[a-z]{1,8}){0,20}", ".{0,4}", 0..200),
        1 => (0usize..5_000, 0usize..5_000)
            .prop_map(|(k, v)| HashMap::from([("k".repeat(k), "v".repeat(v))])),
    ]
    .boxed()
}

fn timestamp() -> BoxedStrategy<Option<prost_types::Timestamp>> {
    prop::option::of(
        (
            prop_oneof![
                any::<i64>(),
                Just(i64::MIN),
                Just(i64::MAX),
                -10_000_000_000i64..10_000_000_000
            ],
            prop_oneof![
                any::<i32>(),
                Just(-1),
                Just(1_000_000_000),
                0..1_000_000_000
            ],
        )
            .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
    )
    .boxed()
}

fn as_of() -> BoxedStrategy<Option<pb::AsOf>> {
    prop::option::of(prop::option::of(prop_oneof![
        any::<u64>().prop_map(pb::as_of::Point::Seq),
        timestamp().prop_map(|t| pb::as_of::Point::Time(t.unwrap_or_default())),
    ]))
    .prop_map(|point| point.map(|point| pb::AsOf { point }))
    .boxed()
}

fn enum_value() -> BoxedStrategy<i32> {
    prop_oneof![0..8i32, any::<i32>()].boxed()
}

fn posting() -> BoxedStrategy<pb::Posting> {
    (name(), enum_value(), decimal_text(), name())
        .prop_map(|(account, direction, amount, currency)| pb::Posting {
            account,
            direction,
            amount,
            currency,
        })
        .boxed()
}

fn transaction_spec() -> BoxedStrategy<pb::TransactionSpec> {
    (
        name(),
        prop_oneof![
            prop::collection::vec(posting(), 0..6),
            // Over the posting limit (128), cheaply.
            (0usize..300).prop_map(|n| vec![
                pb::Posting {
                    account: "a".into(),
                    direction: 1,
                    amount: "1".into(),
                    currency: String::new(),
                };
                n
            ]),
        ],
        timestamp(),
        name(),
        metadata_map(),
        any::<bool>(),
        prop_oneof![any::<u64>(), 0..1000u64],
    )
        .prop_map(
            |(id, postings, effective_at, description, metadata, pending, timeout_seconds)| {
                pb::TransactionSpec {
                    id,
                    postings,
                    effective_at,
                    description,
                    metadata,
                    pending,
                    timeout_seconds,
                }
            },
        )
        .boxed()
}

fn post_pending_spec() -> BoxedStrategy<pb::PostPendingSpec> {
    (
        name(),
        name(),
        prop::collection::vec(decimal_text(), 0..4),
        timestamp(),
        name(),
        metadata_map(),
    )
        .prop_map(
            |(id, pending_id, amounts, effective_at, description, metadata)| pb::PostPendingSpec {
                id,
                pending_id,
                amounts,
                effective_at,
                description,
                metadata,
            },
        )
        .boxed()
}

fn void_pending_spec() -> BoxedStrategy<pb::VoidPendingSpec> {
    (name(), name(), name())
        .prop_map(|(id, pending_id, reason)| pb::VoidPendingSpec {
            id,
            pending_id,
            reason,
        })
        .boxed()
}

fn reverse_spec() -> BoxedStrategy<pb::ReverseSpec> {
    (name(), name(), timestamp(), name(), metadata_map())
        .prop_map(
            |(id, transaction_id, effective_at, description, metadata)| pb::ReverseSpec {
                id,
                transaction_id,
                effective_at,
                description,
                metadata,
            },
        )
        .boxed()
}

fn transaction_item() -> BoxedStrategy<pb::TransactionItem> {
    use pb::transaction_item::Kind;
    (
        prop::option::of(prop_oneof![
            transaction_spec().prop_map(Kind::Transaction),
            post_pending_spec().prop_map(Kind::PostPending),
            void_pending_spec().prop_map(Kind::VoidPending),
            reverse_spec().prop_map(Kind::Reverse),
        ]),
        any::<bool>(),
    )
        .prop_map(|(kind, linked)| pb::TransactionItem { kind, linked })
        .boxed()
}

fn account_spec() -> BoxedStrategy<pb::AccountSpec> {
    (name(), enum_value(), name(), enum_value(), metadata_map())
        .prop_map(
            |(name, r#type, currency, constraint, metadata)| pb::AccountSpec {
                name,
                r#type,
                currency,
                constraint,
                metadata,
            },
        )
        .boxed()
}

fn currency() -> BoxedStrategy<pb::Currency> {
    (name(), prop_oneof![0..40u32, any::<u32>()])
        .prop_map(|(code, scale)| pb::Currency { code, scale })
        .boxed()
}

/// A byte-level mutation of an encoded message: flip, truncate, insert, duplicate.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, Vec<u8>),
    Repeat,
}

fn mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..12)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        Just(Mutation::Repeat),
    ]
    .boxed()
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        match mutation {
            Mutation::Flip(at, mask) if !bytes.is_empty() => {
                let at = at.index(bytes.len());
                bytes[at] ^= mask;
            }
            Mutation::Truncate(at) if !bytes.is_empty() => {
                let at = at.index(bytes.len());
                bytes.truncate(at);
            }
            Mutation::Insert(at, extra) => {
                let at = at.index(bytes.len() + 1);
                bytes.splice(at..at, extra.iter().copied());
            }
            Mutation::Repeat => bytes.extend_from_slice(&bytes.clone()),
            _ => {}
        }
    }
    bytes
}

// ---------------------------------------------------------------------------
// The fuzzers.
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(2_000))]

    #[test]
    fn arbitrary_bytes_into_every_request(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        // Goal: whatever the bytes, decoding and the edge of every method refuse cleanly.
        every_request(&bytes);
    }

    #[test]
    fn protobuf_shaped_bytes_into_every_request(
        fields in prop::collection::vec(
            (1u32..12, 0u8..6, prop::collection::vec(any::<u8>(), 0..24)),
            0..12,
        )
    ) {
        // Goal: well-framed fields of the requests' own numbers and any wire type (so that
        // decoding gets deeper than random bytes usually do) never panic either.
        let mut bytes = Vec::new();
        for (number, wire_type, payload) in fields {
            prost::encoding::encode_key(number, wire_type_of(wire_type), &mut bytes);
            match wire_type {
                0 => prost::encoding::encode_varint(
                    payload.iter().fold(0u64, |acc, &b| acc.wrapping_mul(257).wrapping_add(u64::from(b))),
                    &mut bytes,
                ),
                2 => {
                    prost::encoding::encode_varint(payload.len() as u64, &mut bytes);
                    bytes.extend_from_slice(&payload);
                }
                _ => bytes.extend_from_slice(&payload),
            }
        }
        every_request(&bytes);
    }
}

fn wire_type_of(n: u8) -> prost::encoding::WireType {
    use prost::encoding::WireType;
    match n {
        0 => WireType::Varint,
        1 => WireType::SixtyFourBit,
        2 => WireType::LengthDelimited,
        3 => WireType::StartGroup,
        4 => WireType::EndGroup,
        _ => WireType::ThirtyTwoBit,
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn structured_transaction_batches(
        items in prop::collection::vec(transaction_item(), 0..6),
        brief: bool,
        mutations in prop::collection::vec(mutation(), 0..4),
    ) {
        // Goal: hostile amounts, names, timestamps and metadata in every kind of item are
        // refused with a field path, both as sent and after byte-level mutation.
        let request = pb::CreateTransactionsRequest { items, brief };
        let bytes = mutate(request.encode_to_vec(), &mutations);
        create_transactions(request);
        every_request(&bytes);
    }

    #[test]
    fn structured_accounts_and_currencies(
        accounts in prop::collection::vec(account_spec(), 0..6),
        currencies in prop::collection::vec(currency(), 0..6),
        mutations in prop::collection::vec(mutation(), 0..4),
    ) {
        // Goal: account and currency batches with hostile names, enums, scales and
        // metadata are refused with a field path, as sent and mutated.
        let accounts = pb::CreateAccountsRequest { accounts };
        let currencies = pb::CreateCurrenciesRequest { currencies };
        let a = mutate(accounts.encode_to_vec(), &mutations);
        let c = mutate(currencies.encode_to_vec(), &mutations);
        create_accounts(accounts);
        create_currencies(currencies);
        every_request(&a);
        every_request(&c);
    }

    #[test]
    fn structured_single_items(
        post in post_pending_spec(),
        void in void_pending_spec(),
        rev in reverse_spec(),
    ) {
        // Goal: PostPending, VoidPending and reversals with hostile fields refuse cleanly.
        post_pending(post);
        void_pending(void);
        reverse(rev);
    }

    #[test]
    fn structured_reads(
        (account, accounts, page_token) in (name(), prop::collection::vec(name(), 0..4), name()),
        (from, to, point) in (timestamp(), timestamp(), as_of()),
        (page_size, depth) in (prop_oneof![0..2_000u32, any::<u32>()], any::<u32>()),
        (key_name, role) in (name(), enum_value()),
    ) {
        // Goal: every read, and CreateApiKey, with hostile fields refuses cleanly.
        list_transactions(pb::ListTransactionsRequest {
            account: account.clone(), from, to, page_size, page_token: page_token.clone(),
        });
        get_balances(pb::GetBalancesRequest { accounts, as_of: point });
        get_trial_balance(pb::GetTrialBalanceRequest {
            as_of: point, depth, prefix: account.clone(), currency: account.clone(),
        });
        list_accounts(pb::ListAccountsRequest {
            prefix: account.clone(), page_size, page_token: page_token.clone(),
        });
        get_account_history(pb::GetAccountHistoryRequest { account, page_size, page_token });
        create_api_key(pb::CreateApiKeyRequest { name: key_name, role, read_only: true });
    }

    #[test]
    fn decimal_strings(text in decimal_text()) {
        // Goal: `convert::amount` never panics; a refusal names the field; an accepted
        // amount is a plain decimal (digits, at most one '.', an optional leading '-').
        match convert::amount(&text, "amount") {
            Ok(_) => prop_assert!(
                text.trim_start_matches('-').chars().all(|c| c.is_ascii_digit() || c == '.'),
                "accepted {:?}", text
            ),
            Err(error) => prop_assert_eq!(error.field, "amount"),
        }
    }

    #[test]
    fn token_parsing(text in prop_oneof![
        "\\PC{0,100}",
        "tly_[0-9a-fA-F_]{0,20}_[0-9a-fA-F_]{0,70}",
        "tly_[0-9a-f]{16}_[0-9a-f]{64}",
        (0usize..10_000).prop_map(|n| format!("tly_{}", "_".repeat(n))),
        "tly_[0-9a-f]{16}_[0-9a-f\u{80}-\u{10ffff}]{64}",
    ]) {
        // Goal: any string is a token or a refusal, never a panic; a token reveals as the
        // exact text it was parsed from (one spelling per token).
        if let Ok(token) = Token::parse(&text) {
            prop_assert_eq!(token.reveal(), text);
        }
    }
}

proptest! {
    #![proptest_config(config_capped(6, 500))]

    #[test]
    fn absurd_batch_sizes(
        n_items in prop_oneof![Just(0usize), Just(BATCH_ITEMS_MAX), Just(BATCH_ITEMS_MAX + 1), 0..20_000usize],
        n_accounts in prop_oneof![Just(ACCOUNTS_BATCH_MAX + 1), 0..20_000usize],
    ) {
        // Goal: empty, at-limit and far-over-limit batches are judged by their size with
        // the batch named, and converting every item of a huge batch stays panic-free.
        let item = pb::TransactionItem {
            kind: Some(pb::transaction_item::Kind::VoidPending(pb::VoidPendingSpec {
                id: "v".into(), pending_id: "p".into(), reason: String::new(),
            })),
            linked: true,
        };
        let request = pb::CreateTransactionsRequest { items: vec![item; n_items], brief: true };
        let size = batch_size(request.items.len(), BATCH_ITEMS_MAX, "items");
        prop_assert_eq!(size.is_ok(), (1..=BATCH_ITEMS_MAX).contains(&n_items));
        let bytes = request.encode_to_vec();
        create_transactions(pb::CreateTransactionsRequest::decode(bytes.as_slice()).unwrap());
        let accounts = pb::CreateAccountsRequest {
            accounts: vec![pb::AccountSpec { name: "a".into(), r#type: 1, ..Default::default() }; n_accounts],
        };
        create_accounts(accounts);
    }
}

#[test]
fn nasty_decimals_are_refused_with_the_field_named() {
    // Goal: the classic bad amounts are refused, each naming the field.
    for text in [
        "", "NaN", "inf", "-inf", "1e400", "1E5", "+1", " 1", "1 ", "١", "１", "0x1", "1_0",
        "1..0", ".", "-",
    ] {
        let error = convert::amount(text, "postings[0].amount").expect_err(text);
        assert_eq!(error.field, "postings[0].amount", "{text:?}");
    }
    // Past 2^96 - 1 minor units, an overflow (not a panic or a wrap).
    assert!(convert::amount("79228162514264337593543950336", "amount").is_err());
    assert!(convert::amount(&"9".repeat(5000), "amount").is_err());
}
