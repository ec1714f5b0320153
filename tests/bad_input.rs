// Goal: every kind of bad input gets its precise error (ledger code AND field
// path), never changes a balance, and leaves the journal untouched — except the
// refusals that depend on the ledger's state, which are recorded as exactly one
// `transaction_rejected` entry so that a retry gets the same answer. The server
// survives all of it (each test ends with a successful write).

use std::collections::BTreeMap;

use tally::Tallyd;
use tally_client::proto as pb;
use tally_client::{
    AccountSpec, AccountType, AsOf, Balance, Batch, Client, ClientError, Currency, Decimal,
    ErrorCode, LedgerInfo, Posting, Transaction, TransactionSpec,
};
use tokio_stream::StreamExt;

struct Ledger {
    _server: Tallyd,
    client: Client,
    _dir: tempfile::TempDir,
}

/// A ledger with USD (2), JPY (0) and BTC (8), and a few accounts in each.
async fn start() -> Ledger {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Tallyd::start(dir.path());
    let client = tally::connect(server.url.clone()).await.expect("connect");
    for (code, scale) in [("USD", 2), ("JPY", 0), ("BTC", 8)] {
        client.define_currency(code, scale).await.unwrap();
    }
    let accounts = [
        AccountSpec::new("assets:cash", AccountType::Asset, "USD"),
        AccountSpec::new("revenue:sales", AccountType::Revenue, "USD"),
        AccountSpec::new("assets:yen", AccountType::Asset, "JPY"),
        AccountSpec::new("equity:yen", AccountType::Equity, "JPY"),
        AccountSpec::new("assets:btc", AccountType::Asset, "BTC"),
        AccountSpec::new("equity:btc", AccountType::Equity, "BTC"),
    ];
    for result in client.create_accounts(accounts).await.unwrap() {
        result.unwrap();
    }
    let seed = Transaction::builder("seed")
        .debit("assets:cash", d("10.00"))
        .credit("revenue:sales", d("10.00"));
    client.post_transaction(seed).await.unwrap();
    Ledger {
        _server: server,
        client,
        _dir: dir,
    }
}

fn d(text: &str) -> Decimal {
    text.parse().expect("decimal literal")
}

/// What must not change: the journal's length and head, and every balance.
#[derive(Debug, PartialEq)]
struct Snapshot {
    info: LedgerInfo,
    balances: BTreeMap<String, Balance>,
}

async fn snapshot(client: &Client) -> Snapshot {
    let info = client.ledger_info().await.unwrap();
    let names: Vec<String> = client
        .list_all_accounts("")
        .await
        .unwrap()
        .into_iter()
        .map(|account| account.name)
        .collect();
    let balances = client.balances(names, AsOf::Now).await.unwrap();
    Snapshot {
        info,
        balances: balances
            .balances
            .into_iter()
            .map(|b| (b.account, b.balance))
            .collect(),
    }
}

/// The kinds of the journal entries from `from_seq` on.
async fn journal_kinds(client: &Client, from_seq: u64) -> Vec<String> {
    let mut stream = client.follow_journal(from_seq, false).await.unwrap();
    let mut kinds = Vec::new();
    while let Some(entry) = stream.next().await {
        kinds.push(entry.unwrap().kind);
    }
    kinds
}

/// The single item's error of a one-item batch, or the call's error.
async fn refusal(client: &Client, item: impl Into<Batch>) -> (ErrorCode, String) {
    match client.submit(item).await {
        Ok(mut results) => {
            assert_eq!(results.len(), 1);
            match results.remove(0) {
                Err(error) => (error.code, error.field),
                Ok(recorded) => panic!("accepted: {recorded:?}"),
            }
        }
        Err(ClientError::Api { code, field, .. }) => (code, field),
        Err(other) => panic!("call failed without a ledger code: {other}"),
    }
}

/// Asserts that the request leaves no trace, and that the server still writes.
async fn assert_refused_without_trace(
    client: &Client,
    case: &str,
    item: impl Into<Batch>,
    code: ErrorCode,
    field: &str,
) {
    let before = snapshot(client).await;
    let actual = refusal(client, item).await;
    assert_eq!(actual, (code, field.to_string()), "{case}");
    assert_eq!(snapshot(client).await, before, "{case}: the ledger changed");
}

/// Asserts that the request is refused and recorded as one
/// `transaction_rejected` entry that changes no balance, and that its retry is
/// refused with TRANSACTION_ALREADY_FAILED without another entry.
async fn assert_refused_and_recorded(
    client: &Client,
    case: &str,
    item: TransactionSpec,
    code: ErrorCode,
    field: &str,
) {
    let before = snapshot(client).await;
    let actual = refusal(client, item.clone()).await;
    assert_eq!(actual, (code, field.to_string()), "{case}");
    let after = snapshot(client).await;
    assert_eq!(after.balances, before.balances, "{case}: a balance changed");
    let length = before.info.journal_length;
    assert_eq!(after.info.journal_length, length + 1, "{case}");
    assert_eq!(
        journal_kinds(client, length).await,
        ["transaction_rejected"],
        "{case}"
    );
    let retry = refusal(client, item).await;
    let expected = (ErrorCode::TransactionAlreadyFailed, field.to_string());
    assert_eq!(retry, expected, "{case}: retry");
    assert_eq!(
        snapshot(client).await,
        after,
        "{case}: the retry changed the ledger"
    );
}

async fn assert_still_serving(client: &Client, id: &str) {
    let tx = Transaction::builder(id)
        .debit("assets:cash", d("0.01"))
        .credit("revenue:sales", d("0.01"));
    client.post_transaction(tx).await.unwrap();
}

fn usd(id: &str, debit: &str, credit: &str) -> TransactionSpec {
    Transaction::builder(id)
        .debit("assets:cash", d(debit))
        .credit("revenue:sales", d(credit))
}

#[tokio::test]
async fn state_dependent_refusals_are_recorded_once() {
    // Goal: refusals that depend on accounts and currencies (unbalanced, wrong
    // currency, too many decimals, unknown account) are recorded once and
    // change no balance; their retries fail the same way.
    let ledger = start().await;
    let client = &ledger.client;
    let cases: Vec<(&str, TransactionSpec, ErrorCode, &str)> = vec![
        (
            "unbalanced",
            usd("unbalanced", "5.00", "4.99"),
            ErrorCode::TransactionUnbalanced,
            "items[0].transaction.postings",
        ),
        (
            "balanced across currencies only",
            Transaction::builder("cross-currency")
                .debit("assets:cash", d("5"))
                .credit("equity:yen", d("5")),
            ErrorCode::TransactionUnbalanced,
            "items[0].transaction.postings",
        ),
        (
            "wrong currency",
            Transaction::builder("wrong-currency")
                .posting(Posting::debit("assets:cash", d("1.00")).currency("JPY"))
                .credit("revenue:sales", d("1.00")),
            ErrorCode::CurrencyMismatch,
            "items[0].transaction.postings[0].currency",
        ),
        (
            "over-precise for USD",
            usd("too-precise", "1.001", "1.001"),
            ErrorCode::AmountScaleExceeded,
            "items[0].transaction.postings[0].amount",
        ),
        (
            "over-precise for JPY",
            Transaction::builder("yen-cents")
                .debit("assets:yen", d("1"))
                .credit("equity:yen", d("1.5")),
            ErrorCode::AmountScaleExceeded,
            "items[0].transaction.postings[1].amount",
        ),
        (
            "unknown account",
            Transaction::builder("unknown-account")
                .debit("assets:cash", d("1.00"))
                .credit("revenue:nothing", d("1.00")),
            ErrorCode::AccountNotFound,
            "items[0].transaction.postings[1].account",
        ),
    ];
    for (case, spec, code, field) in cases {
        assert_refused_and_recorded(client, case, spec, code, field).await;
    }
    // Eight decimals are fine for BTC: the scale is per currency.
    let btc = Transaction::builder("satoshi")
        .debit("assets:btc", d("0.00000001"))
        .credit("equity:btc", d("0.00000001"));
    client.post_transaction(btc).await.unwrap();
    assert_still_serving(client, "still-serving").await;
}

#[tokio::test]
async fn amounts_and_totals_cannot_overflow() {
    // Goal: amounts up to 2^96-1 minor units are accepted; an amount or a
    // balance total beyond that is AMOUNT_OVERFLOW (recorded, no balance
    // changes); an amount text beyond any representable value changes nothing.
    let ledger = start().await;
    let client = &ledger.client;
    let max = d("79228162514264337593543950335"); // 2^96 - 1
    let big = Transaction::builder("big")
        .debit("assets:yen", max)
        .credit("equity:yen", max);
    client.post_transaction(big).await.unwrap();
    let yen = client.balances(["assets:yen"], AsOf::Now).await.unwrap();
    assert_eq!(yen.balances[0].balance.debits_posted, max);

    let one_more = Transaction::builder("one-more")
        .debit("assets:yen", d("1"))
        .credit("equity:yen", d("1"));
    assert_refused_and_recorded(
        client,
        "total over 2^96-1",
        one_more,
        ErrorCode::AmountOverflow,
        "items[0].transaction.postings",
    )
    .await;
    // Two postings of the maximum to the same side of one account.
    let twice = Transaction::builder("twice")
        .debit("assets:btc", d("700000000000000000000"))
        .debit("assets:btc", d("700000000000000000000"))
        .credit("equity:btc", d("700000000000000000000"))
        .credit("equity:btc", d("700000000000000000000"));
    assert_refused_and_recorded(
        client,
        "total of one transaction over 2^96-1",
        twice,
        ErrorCode::AmountOverflow,
        "items[0].transaction.postings",
    )
    .await;
    // 2^96-1 dollars are 100 * (2^96-1) cents: over the maximum.
    assert_refused_and_recorded(
        client,
        "amount over 2^96-1 minor units",
        usd(
            "dollars",
            "79228162514264337593543950335",
            "79228162514264337593543950335",
        ),
        ErrorCode::AmountOverflow,
        "items[0].transaction.postings[0].amount",
    )
    .await;

    assert_still_serving(client, "still-serving").await;
}

#[tokio::test]
async fn an_amount_over_the_maximum_is_an_overflow() {
    // Goal: an amount written as a plain, well-formed decimal that is larger
    // than any amount the ledger can hold (2^96) is AMOUNT_OVERFLOW, as the
    // contract defines it ("an amount ... would exceed the maximum"), not a
    // malformed field; nothing changes.
    let ledger = start().await;
    let client = &ledger.client;
    let raw = raw_transaction("too-big", "79228162514264337593543950336", "1");
    let before = snapshot(client).await;
    assert_eq!(
        raw_refusal(client, raw).await,
        (
            ErrorCode::AmountOverflow,
            "items[0].transaction.postings[0].amount".to_string()
        )
    );
    assert_eq!(snapshot(client).await, before);
    assert_still_serving(client, "still-serving").await;
}

#[tokio::test]
async fn malformed_transactions_change_nothing() {
    // Goal: a transaction whose shape is wrong (amount not positive, too few
    // postings, bad ids, over-long text, a timeout without pending) is refused
    // with its field and leaves no trace in the journal.
    let ledger = start().await;
    let client = &ledger.client;
    let long_key = "k".repeat(65);
    let many = (0..33).fold(usd("many-metadata", "1.00", "1.00"), |spec, i| {
        spec.metadata(format!("key{i}"), "v")
    });
    let cases: Vec<(&str, TransactionSpec, ErrorCode, String)> = vec![
        (
            "negative amount",
            usd("negative", "-5.00", "-5.00"),
            ErrorCode::AmountNotPositive,
            "items[0].transaction.postings[0].amount".into(),
        ),
        (
            "zero amount",
            usd("zero", "0.00", "0.00"),
            ErrorCode::AmountNotPositive,
            "items[0].transaction.postings[0].amount".into(),
        ),
        (
            "no postings",
            Transaction::builder("no-postings"),
            ErrorCode::PostingsTooFew,
            "items[0].transaction.postings".into(),
        ),
        (
            "one posting",
            Transaction::builder("one-posting").debit("assets:cash", d("1.00")),
            ErrorCode::PostingsTooFew,
            "items[0].transaction.postings".into(),
        ),
        (
            "id with a space",
            usd("tx 1", "1.00", "1.00"),
            ErrorCode::FieldInvalid,
            "items[0].transaction.id".into(),
        ),
        (
            "id with unicode",
            usd("tx-é", "1.00", "1.00"),
            ErrorCode::FieldInvalid,
            "items[0].transaction.id".into(),
        ),
        (
            "id of 129 bytes",
            usd(&"x".repeat(129), "1.00", "1.00"),
            ErrorCode::FieldTooLong,
            "items[0].transaction.id".into(),
        ),
        (
            "empty id",
            usd("", "1.00", "1.00"),
            ErrorCode::FieldRequired,
            "items[0].transaction.id".into(),
        ),
        (
            "account name in capitals",
            Transaction::builder("caps")
                .debit("Assets:Cash", d("1.00"))
                .credit("revenue:sales", d("1.00")),
            ErrorCode::FieldInvalid,
            "items[0].transaction.postings[0].account".into(),
        ),
        (
            "unicode account name",
            Transaction::builder("unicode-account")
                .debit("assets:cash", d("1.00"))
                .credit("revenue:ventes-été", d("1.00")),
            ErrorCode::FieldInvalid,
            "items[0].transaction.postings[1].account".into(),
        ),
        (
            "description over 1,024 bytes",
            usd("long-description", "1.00", "1.00").description("é".repeat(513)),
            ErrorCode::FieldTooLong,
            "items[0].transaction.description".into(),
        ),
        (
            "metadata key over 64 bytes",
            usd("long-key", "1.00", "1.00").metadata(long_key.clone(), "v"),
            ErrorCode::FieldTooLong,
            format!("items[0].transaction.metadata[{long_key:?}]"),
        ),
        (
            "metadata value over 1,024 bytes",
            usd("long-value", "1.00", "1.00").metadata("k", "v".repeat(1025)),
            ErrorCode::FieldTooLong,
            "items[0].transaction.metadata[\"k\"]".into(),
        ),
        (
            "33 metadata entries",
            many,
            ErrorCode::FieldTooLong,
            "items[0].transaction.metadata".into(),
        ),
        (
            "timeout without pending",
            TransactionSpec {
                timeout_seconds: 5,
                ..usd("timeout", "1.00", "1.00")
            },
            ErrorCode::TimeoutInvalid,
            "items[0].transaction.timeout_seconds".into(),
        ),
    ];
    for (case, spec, code, field) in cases {
        assert_refused_without_trace(client, case, spec, code, &field).await;
    }
    // Unicode is fine where text is free: descriptions and metadata values.
    let unicode = usd("unicode-text", "1.00", "1.00")
        .description("café ☕ 領収書")
        .metadata("note", "ünïcødé ✓");
    let recorded = client.post_transaction(unicode).await.unwrap();
    let stored = client.get_transaction("unicode-text").await.unwrap();
    assert_eq!(stored.description, "café ☕ 領収書");
    assert_eq!(stored.metadata["note"], "ünïcødé ✓");
    assert_eq!(stored.seq, recorded.seq);
    assert_still_serving(client, "still-serving").await;
}

#[tokio::test]
async fn malformed_currencies_and_accounts_change_nothing() {
    // Goal: bad currency codes and scales, bad account names and unknown
    // currencies are refused per item with their field; nothing is written.
    let ledger = start().await;
    let client = &ledger.client;
    let before = snapshot(client).await;
    let currencies = [
        (
            Currency::new("usd", 2),
            ErrorCode::FieldInvalid,
            "currencies[0].code",
        ),
        (
            Currency::new("", 2),
            ErrorCode::FieldRequired,
            "currencies[0].code",
        ),
        (
            Currency::new("X".repeat(17), 2),
            ErrorCode::FieldTooLong,
            "currencies[0].code",
        ),
        (
            Currency::new("EUR", 19),
            ErrorCode::ScaleOutOfRange,
            "currencies[0].scale",
        ),
        (
            Currency::new("€", 2),
            ErrorCode::FieldInvalid,
            "currencies[0].code",
        ),
    ];
    for (currency, code, field) in currencies {
        let case = format!("{currency:?}");
        let error = client
            .create_currencies([currency])
            .await
            .unwrap()
            .remove(0);
        let error = error.unwrap_err();
        assert_eq!((error.code, error.field.as_str()), (code, field), "{case}");
    }
    let name_of_300 = format!("assets:{}", "a".repeat(293));
    let accounts = [
        (
            "assets:café",
            "USD",
            ErrorCode::FieldInvalid,
            "accounts[0].name",
        ),
        (
            "assets::cash",
            "USD",
            ErrorCode::FieldInvalid,
            "accounts[0].name",
        ),
        (
            "a:b:c:d:e:f:g:h:i",
            "USD",
            ErrorCode::FieldInvalid,
            "accounts[0].name",
        ),
        (
            name_of_300.as_str(),
            "USD",
            ErrorCode::FieldTooLong,
            "accounts[0].name",
        ),
        ("", "USD", ErrorCode::FieldRequired, "accounts[0].name"),
        (
            "assets:eur",
            "EUR",
            ErrorCode::CurrencyUnknown,
            "accounts[0].currency",
        ),
    ];
    for (name, currency, code, field) in accounts {
        let spec = AccountSpec::new(name, AccountType::Asset, currency);
        let error = client.create_accounts([spec]).await.unwrap().remove(0);
        let error = error.unwrap_err();
        assert_eq!(
            (error.code, error.field.as_str()),
            (code, field),
            "{name:?}"
        );
    }
    let spec =
        AccountSpec::new("assets:meta", AccountType::Asset, "USD").metadata("k".repeat(65), "v");
    let error = client
        .create_accounts([spec])
        .await
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::FieldTooLong);
    assert_eq!(
        error.field,
        format!("accounts[0].metadata[{:?}]", "k".repeat(65))
    );
    assert_eq!(snapshot(client).await, before);
    assert_still_serving(client, "still-serving").await;
}

#[tokio::test]
async fn batch_size_limits_refuse_the_call() {
    // Goal: an empty batch and a batch of 8,191 items (one over the limit) fail
    // the call as a whole, with BATCH_EMPTY / BATCH_TOO_LARGE on `items`.
    let ledger = start().await;
    let client = &ledger.client;
    let before = snapshot(client).await;
    match client.submit(Batch::new()).await {
        Err(error @ ClientError::Api { .. }) => {
            assert_eq!(error.code(), Some(ErrorCode::BatchEmpty));
            assert_eq!(error.status(), Some(tonic::Code::InvalidArgument));
            let ClientError::Api { field, .. } = error else {
                unreachable!()
            };
            assert_eq!(field, "items");
        }
        other => panic!("expected BATCH_EMPTY, got {other:?}"),
    }
    let oversized: Batch = (0..Batch::ITEMS_MAX + 1)
        .map(|i| usd(&format!("bulk-{i}"), "0.01", "0.01"))
        .collect();
    assert_eq!(oversized.len(), 8_191);
    match client.submit(oversized).await {
        Err(error @ ClientError::Api { .. }) => {
            assert_eq!(error.code(), Some(ErrorCode::BatchTooLarge));
            assert_eq!(error.status(), Some(tonic::Code::ResourceExhausted));
            let ClientError::Api { field, .. } = error else {
                unreachable!()
            };
            assert_eq!(field, "items");
        }
        other => panic!("expected BATCH_TOO_LARGE, got {other:?}"),
    }
    assert_eq!(snapshot(client).await, before);
    assert_api_call_error(
        client.create_currencies([]).await,
        ErrorCode::BatchEmpty,
        "currencies",
    );
    assert_api_call_error(
        client.create_accounts([]).await,
        ErrorCode::BatchEmpty,
        "accounts",
    );
    assert_eq!(snapshot(client).await, before);
    assert_still_serving(client, "still-serving").await;
}

fn assert_api_call_error<T: std::fmt::Debug>(
    result: Result<T, ClientError>,
    code: ErrorCode,
    field: &str,
) {
    match result {
        Err(ClientError::Api {
            code: actual,
            field: actual_field,
            ..
        }) => assert_eq!((actual, actual_field.as_str()), (code, field)),
        other => panic!("expected {code:?} on {field}, got {other:?}"),
    }
}

fn raw_posting(account: &str, direction: pb::Direction, amount: &str) -> pb::Posting {
    pb::Posting {
        account: account.to_string(),
        direction: direction as i32,
        amount: amount.to_string(),
        currency: String::new(),
    }
}

fn raw_item(spec: pb::TransactionSpec) -> pb::TransactionItem {
    pb::TransactionItem {
        kind: Some(pb::transaction_item::Kind::Transaction(spec)),
        linked: false,
    }
}

/// A JPY transfer with the amounts written as given.
fn raw_transaction(id: &str, debit: &str, credit: &str) -> pb::TransactionItem {
    raw_item(pb::TransactionSpec {
        id: id.to_string(),
        postings: vec![
            raw_posting("assets:yen", pb::Direction::Debit, debit),
            raw_posting("equity:yen", pb::Direction::Credit, credit),
        ],
        ..Default::default()
    })
}

/// The error of a one-item batch sent through the generated client.
async fn raw_refusal(client: &Client, item: pb::TransactionItem) -> (ErrorCode, String) {
    let request = pb::CreateTransactionsRequest {
        items: vec![item],
        brief: false,
    };
    let response = client.raw().create_transactions(request).await;
    let mut results = response.expect("the call succeeds").into_inner().results;
    assert_eq!(results.len(), 1);
    let result = results.remove(0);
    assert_eq!(result.index, 0);
    match result.outcome {
        Some(pb::transaction_result::Outcome::Error(detail)) => {
            let code = ErrorCode::try_from(detail.code).expect("a known code");
            (code, detail.field)
        }
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test]
async fn malformed_wire_values_change_nothing() {
    // Goal: what the typed client cannot send — amounts that are not plain
    // decimals, missing or unknown enum values, an empty item, an invalid
    // timestamp — is refused with FIELD_INVALID / FIELD_REQUIRED and its path.
    let ledger = start().await;
    let client = &ledger.client;
    let amount_field = "items[0].transaction.postings[0].amount";
    let mut cases: Vec<(String, pb::TransactionItem, ErrorCode, String)> = Vec::new();
    for bad in [
        "1e5", "NaN", "1.2.3", "+5", " 5", "5 ", "1,5", "0x10", "１", "Infinity", "-", ".5", "5.",
        "1_000",
    ] {
        let item = raw_transaction(&format!("amount-{bad}"), bad, "5");
        cases.push((
            format!("amount {bad:?}"),
            item,
            ErrorCode::FieldInvalid,
            amount_field.into(),
        ));
    }
    let item = raw_transaction("amount-empty", "", "5");
    cases.push((
        "empty amount".into(),
        item,
        ErrorCode::FieldRequired,
        amount_field.into(),
    ));

    let mut no_direction = raw_transaction("no-direction", "5", "5");
    let mut unknown_direction = raw_transaction("unknown-direction", "5", "5");
    let mut bad_time = raw_transaction("bad-time", "5", "5");
    if let (
        Some(pb::transaction_item::Kind::Transaction(a)),
        Some(pb::transaction_item::Kind::Transaction(b)),
        Some(pb::transaction_item::Kind::Transaction(c)),
    ) = (
        &mut no_direction.kind,
        &mut unknown_direction.kind,
        &mut bad_time.kind,
    ) {
        a.postings[1].direction = pb::Direction::Unspecified as i32;
        b.postings[0].direction = 7;
        c.effective_at = Some(prost_types::Timestamp {
            seconds: 1,
            nanos: -1,
        });
    }
    cases.push((
        "missing direction".into(),
        no_direction,
        ErrorCode::FieldRequired,
        "items[0].transaction.postings[1].direction".into(),
    ));
    cases.push((
        "unknown direction".into(),
        unknown_direction,
        ErrorCode::FieldInvalid,
        "items[0].transaction.postings[0].direction".into(),
    ));
    cases.push((
        "negative nanos".into(),
        bad_time,
        ErrorCode::FieldInvalid,
        "items[0].transaction.effective_at".into(),
    ));
    cases.push((
        "empty item".into(),
        pb::TransactionItem {
            kind: None,
            linked: false,
        },
        ErrorCode::FieldRequired,
        "items[0].kind".into(),
    ));
    let post = pb::PostPendingSpec {
        id: "post-bad-amount".into(),
        pending_id: "seed".into(),
        amounts: vec!["ten".into()],
        ..Default::default()
    };
    cases.push((
        "post with a word for an amount".into(),
        pb::TransactionItem {
            kind: Some(pb::transaction_item::Kind::PostPending(post)),
            linked: false,
        },
        ErrorCode::FieldInvalid,
        "items[0].post_pending.amounts[0]".into(),
    ));

    for (case, item, code, field) in cases {
        let before = snapshot(client).await;
        assert_eq!(raw_refusal(client, item).await, (code, field), "{case}");
        assert_eq!(snapshot(client).await, before, "{case}: the ledger changed");
    }

    // Missing enums on accounts: the type is required, the constraint must be known.
    let before = snapshot(client).await;
    let accounts = vec![
        pb::AccountSpec {
            name: "assets:untyped".into(),
            r#type: pb::AccountType::Unspecified as i32,
            currency: "USD".into(),
            ..Default::default()
        },
        pb::AccountSpec {
            name: "assets:strange".into(),
            r#type: pb::AccountType::Asset as i32,
            currency: "USD".into(),
            constraint: 9,
            ..Default::default()
        },
    ];
    let request = pb::CreateAccountsRequest { accounts };
    let results = client.raw().create_accounts(request).await.unwrap();
    let errors: Vec<(ErrorCode, String)> = results
        .into_inner()
        .results
        .into_iter()
        .map(|result| match result.outcome {
            Some(pb::account_result::Outcome::Error(detail)) => {
                (ErrorCode::try_from(detail.code).unwrap(), detail.field)
            }
            other => panic!("not refused: {other:?}"),
        })
        .collect();
    assert_eq!(
        errors,
        [
            (ErrorCode::FieldRequired, "accounts[0].type".to_string()),
            (
                ErrorCode::FieldInvalid,
                "accounts[1].constraint".to_string()
            ),
        ]
    );
    assert_eq!(snapshot(client).await, before);
    assert_still_serving(client, "still-serving").await;
}

#[tokio::test]
async fn a_refusal_has_one_grpc_status_whichever_call_reports_it() {
    // Goal: the gRPC status of a ledger error code does not depend on the call
    // path: AMOUNT_OVERFLOW from the PostPending RPC (status made by the server)
    // and from `post_transaction` (a refused batch item, status derived by the
    // client "the way the server maps them") carry the same status code.
    let ledger = start().await;
    let client = &ledger.client;
    let max = "79228162514264337593543950335";
    let hold = Transaction::builder("hold")
        .debit("assets:cash", d("1.00"))
        .credit("revenue:sales", d("1.00"))
        .pending();
    client.post_transaction(hold).await.unwrap();
    let post = tally_client::PostPendingSpec::new("post", "hold").amounts([d(max), d(max)]);
    let from_server = client.post_pending(post).await.unwrap_err();
    assert_eq!(from_server.code(), Some(ErrorCode::AmountOverflow));
    let from_item = client
        .post_transaction(usd("overflow", max, max))
        .await
        .unwrap_err();
    assert_eq!(from_item.code(), Some(ErrorCode::AmountOverflow));
    assert_eq!(from_server.status(), Some(tonic::Code::InvalidArgument));
    assert_eq!(from_item.status(), from_server.status(), "{from_item}");
}
