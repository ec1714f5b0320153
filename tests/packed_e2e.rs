//! `CreateTransactionsPacked` end to end, against real `tallyd`s: the same
//! batch — standard, pending, post-pending, void-pending and reversal items,
//! one malformed item, one item the ledger refuses on its state, and a linked
//! chain that fails — sent through protobuf to one ledger and packed to
//! another gets the same answers, leaves the same balances and transactions
//! and the same kinds of journal entries; retried on the other wire, every
//! item answers as a replay (or with its first failure), never as a conflict.
//! An unreadable batch fails the call, naming the byte, and records nothing.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use tally::Tallyd;
use tally_client::{
    AccountSpec, AccountType, AsOf, Batch, Client, ClientError, Decimal, ErrorCode, ItemError,
    PackedBatch, PostPendingSpec, ReverseSpec, Transaction, TransactionRecorded, VoidPendingSpec,
};
use tokio_stream::StreamExt;

/// A `tallyd` that signs no checkpoint while the test runs, so that two
/// ledgers given the same calls have the same journal, seq for seq.
fn start(dir: &std::path::Path) -> Tallyd {
    let config = dir.join("tallyd.toml");
    std::fs::write(
        &config,
        "[audit]\ncheckpoint-every-entries = 1000000\ncheckpoint-interval-ms = 3600000\n",
    )
    .expect("write config");
    Tallyd::start_with_args(&dir.join("data"), &["--config", config.to_str().unwrap()])
}

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

const ACCOUNTS: [&str; 3] = ["assets:cash", "revenue:sales", "liabilities:deposits"];

async fn open_accounts(client: &Client) {
    client.define_currency("USD", 2).await.unwrap();
    for (name, account_type) in ACCOUNTS.iter().zip([
        AccountType::Asset,
        AccountType::Revenue,
        AccountType::Liability,
    ]) {
        client
            .open_account(AccountSpec::new(*name, account_type, "USD"))
            .await
            .unwrap();
    }
}

/// A fresh ledger (its directory, its `tallyd`, a client) with USD and the
/// accounts of [`ACCOUNTS`] opened.
async fn ledger_with_accounts() -> (tempfile::TempDir, Tallyd, Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let client = server.client().await.unwrap();
    open_accounts(&client).await;
    (dir, server, client)
}

/// The batch, with the index of each kind of item noted.
fn batch() -> Batch {
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    Batch::new()
        // 0: a standard transfer.
        .with(
            Transaction::builder("t1")
                .debit("assets:cash", d("10.00"))
                .credit("revenue:sales", d("10.00")),
        )
        // 1: a pending transfer, 2: its partial post.
        .with(
            Transaction::builder("p1")
                .debit("assets:cash", d("5.00"))
                .credit("liabilities:deposits", d("5.00"))
                .pending_with_timeout(Duration::from_secs(3_600)),
        )
        .with(PostPendingSpec::new("p1-post", "p1").amounts([d("3"), d("3.00")]))
        // 3: a pending transfer, 4: its void.
        .with(
            Transaction::builder("p2")
                .debit("liabilities:deposits", d("1.25"))
                .credit("assets:cash", d("1.25"))
                .pending(),
        )
        .with(VoidPendingSpec::new("p2-void", "p2").reason("customer cancelled"))
        // 5: malformed on its own: unbalanced.
        .with(
            Transaction::builder("bad")
                .debit("assets:cash", d("10"))
                .credit("revenue:sales", d("9")),
        )
        // 6-7: a linked chain whose second item names no pending transaction.
        .with(
            Transaction::builder("chain-1")
                .debit("assets:cash", d("2"))
                .credit("revenue:sales", d("2")),
        )
        .linked()
        .with(VoidPendingSpec::new("chain-2", "no-such-pending"))
        // 8: refused on the ledger's state: more decimals than USD has.
        .with(
            Transaction::builder("too-precise")
                .debit("assets:cash", d("1.001"))
                .credit("revenue:sales", d("1.001")),
        )
        // 9: everything a transaction carries.
        .with(
            Transaction::builder("t2")
                .posting(tally_client::Posting::debit("assets:cash", d("7.5")).currency("USD"))
                .credit("revenue:sales", d("7.50"))
                .description("lunch")
                .metadata("order", "o-17")
                .metadata("note", "é")
                .effective_at(when),
        )
        // 10: a reversal of the first transfer.
        .with(ReverseSpec::new("r1", "t1").description("refund"))
}

/// One item's answer, on either wire, without what differs between two
/// ledgers (times, hashes).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Recorded {
        seq: u64,
        replayed: bool,
    },
    Refused {
        code: ErrorCode,
        field: String,
        message: String,
    },
}

fn refused(error: &ItemError) -> Answer {
    Answer::Refused {
        code: error.code,
        field: error.field.clone(),
        message: error.message.clone(),
    }
}

async fn send_protobuf(client: &Client, batch: Batch) -> Vec<Answer> {
    let results = client.submit_brief(batch).await.unwrap();
    results
        .iter()
        .enumerate()
        .map(|(index, result)| match result {
            Ok(TransactionRecorded {
                transaction,
                replayed,
            }) => Answer::Recorded {
                seq: transaction.seq,
                replayed: *replayed,
            },
            Err(error) => {
                assert_eq!(error.index, index);
                refused(error)
            }
        })
        .collect()
}

async fn send_packed(client: &Client, batch: &Batch) -> Vec<Answer> {
    let packed = PackedBatch::from_batch(batch).unwrap();
    let results = client.create_transactions_packed(&packed).await.unwrap();
    let mut answers = Vec::new();
    for (index, result) in results.iter().enumerate() {
        answers.push(match result {
            Ok(recorded) => {
                // The hash is the journal's, and so is the time.
                let entry = client.audit_entry(recorded.seq).await.unwrap();
                assert_eq!(entry.entry_hash, recorded.entry_hash);
                let decoded = tally_core::codec::decode(&entry.canonical).unwrap();
                let recorded_at = recorded
                    .recorded_at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap();
                assert_eq!(decoded.recorded_at as u128, recorded_at.as_nanos());
                Answer::Recorded {
                    seq: recorded.seq,
                    replayed: recorded.replayed,
                }
            }
            Err(error) => {
                assert_eq!(error.index, index);
                refused(error)
            }
        });
    }
    answers
}

async fn journal_kinds(client: &Client) -> Vec<String> {
    let mut stream = client.follow_journal(0, false).await.unwrap();
    let mut kinds = Vec::new();
    while let Some(entry) = stream.next().await {
        kinds.push(entry.unwrap().kind);
    }
    kinds
}

/// Every account's balance, by name.
async fn balances(client: &Client) -> BTreeMap<String, tally_client::Balance> {
    client
        .balances(ACCOUNTS, AsOf::Now)
        .await
        .unwrap()
        .balances
        .into_iter()
        .map(|line| (line.account, line.balance))
        .collect()
}

/// A recorded transaction without what differs between two ledgers.
async fn transaction(client: &Client, id: &str) -> tally_client::Transaction {
    let mut transaction = client.get_transaction(id).await.unwrap();
    transaction.recorded_at = SystemTime::UNIX_EPOCH;
    transaction.entry_hash.clear();
    if id != "t2" {
        transaction.effective_at = SystemTime::UNIX_EPOCH; // the recording time
    }
    transaction.expires_at = transaction.expires_at.map(|_| SystemTime::UNIX_EPOCH);
    transaction
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packed_batch_is_answered_and_recorded_as_the_protobuf_batch() {
    let (_dir_a, server_a, a) = ledger_with_accounts().await;
    let (_dir_b, server_b, b) = ledger_with_accounts().await;
    let start_length = a.ledger_info().await.unwrap().journal_length;
    assert_eq!(b.ledger_info().await.unwrap().journal_length, start_length);

    // The same batch: protobuf to A, packed to B.
    let protobuf = send_protobuf(&a, batch()).await;
    let packed = send_packed(&b, &batch()).await;
    assert_eq!(packed, protobuf, "the two wires answer alike");

    // What the answers say, item by item.
    let code = |answer: &Answer| match answer {
        Answer::Refused { code, .. } => Some(*code),
        Answer::Recorded { replayed, .. } => {
            assert!(!replayed);
            None
        }
    };
    let codes: Vec<Option<ErrorCode>> = packed.iter().map(code).collect();
    assert_eq!(
        codes,
        vec![
            None,
            None,
            None,
            None,
            None,
            Some(ErrorCode::TransactionUnbalanced),
            Some(ErrorCode::LinkedItemFailed),
            Some(ErrorCode::TransactionNotFound),
            Some(ErrorCode::AmountScaleExceeded),
            None,
            None,
        ],
        "{packed:#?}"
    );
    let Answer::Refused { field, message, .. } = &packed[6] else {
        unreachable!()
    };
    assert_eq!(field, "items[6]");
    assert!(message.contains("item 7"), "{message}");
    let Answer::Refused { field, .. } = &packed[5] else {
        unreachable!()
    };
    assert!(field.starts_with("items[5].transaction"), "{field}");

    // The ledgers hold the same: balances, transactions, kinds of entries.
    assert_eq!(balances(&a).await, balances(&b).await);
    let cash = &balances(&b).await["assets:cash"];
    // 10 (t1) + 3 (p1 posted in part) - 1.25 (p2, voided: nothing) + 7.50 (t2) - 10 (r1).
    assert_eq!(cash.debits_posted, d("20.50"));
    assert_eq!(cash.credits_posted, d("10.00"));
    assert_eq!(cash.debits_pending, d("0"));
    for id in ["t1", "p1", "p1-post", "p2", "p2-void", "t2", "r1"] {
        assert_eq!(transaction(&a, id).await, transaction(&b, id).await, "{id}");
    }
    let t2 = b.get_transaction("t2").await.unwrap();
    assert_eq!(t2.metadata["note"], "é");
    assert_eq!(t2.postings[0].amount, d("7.50"));
    let kinds = journal_kinds(&b).await;
    assert_eq!(journal_kinds(&a).await, kinds);
    assert!(
        kinds.iter().any(|kind| kind == "transaction_rejected"),
        "{kinds:?}"
    );

    // Retried on the other wire: replays with the same seqs, and each
    // refusal as it was, or, for a rejection the ledger recorded, that the id
    // already failed; never TRANSACTION_EXISTS (a conflict).
    let length_a = a.ledger_info().await.unwrap().journal_length;
    let retried_on_a = send_packed(&a, &batch()).await;
    let retried_on_b = send_protobuf(&b, batch()).await;
    assert_eq!(retried_on_a, retried_on_b);
    for (index, (first, retry)) in protobuf.iter().zip(&retried_on_a).enumerate() {
        match (first, retry) {
            (Answer::Recorded { seq, .. }, retry) => assert_eq!(
                retry,
                &Answer::Recorded {
                    seq: *seq,
                    replayed: true
                },
                "item {index}"
            ),
            (Answer::Refused { code, .. }, Answer::Refused { code: again, .. }) => assert!(
                again == code || *again == ErrorCode::TransactionAlreadyFailed,
                "item {index}: {code:?}, then {again:?}"
            ),
            other => panic!("item {index}: {other:?}"),
        }
    }
    assert_eq!(a.ledger_info().await.unwrap().journal_length, length_a);
    assert_eq!(balances(&a).await, balances(&b).await);
    assert_eq!(journal_kinds(&a).await, journal_kinds(&b).await);

    // One item of the batch, sent again with other content, is a conflict
    // on either wire.
    let mut other = PackedBatch::new();
    other
        .add_transfer("t1", "assets:cash", "revenue:sales", d("10.01"))
        .unwrap();
    let conflict = a.create_transactions_packed(&other).await.unwrap();
    assert_eq!(
        conflict[0].as_ref().unwrap_err().code,
        ErrorCode::TransactionExists
    );

    drop((a, b));
    tokio::task::spawn_blocking(move || {
        server_a.terminate_and_verify();
        server_b.terminate_and_verify();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_packed_batch_fails_the_call_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let client = server.client().await.unwrap();
    open_accounts(&client).await;
    let length = client.ledger_info().await.unwrap().journal_length;

    let mut batch = PackedBatch::new();
    batch
        .add_transfer("t1", "assets:cash", "revenue:sales", d("1"))
        .unwrap();
    let good = batch.encoded().to_vec();
    let call = |bytes: Vec<u8>| {
        let mut raw = client.raw();
        async move {
            let request = tally_client::proto::PackedTransactionsRequest {
                batch: bytes.into(),
            };
            ClientError::from(raw.create_transactions_packed(request).await.unwrap_err())
        }
    };

    // The first posting's direction (after the header, the two names, and
    // the item up to the posting's name number) set to 9.
    let mut bad_direction = good.clone();
    let header = 16 + 2 + "assets:cash".len() + 2 + "revenue:sales".len();
    let at = header + 2 + 4 + 8 + 2 + 2 + 2 + 4;
    bad_direction[at] = 9;
    let error = call(bad_direction).await;
    let ClientError::Api {
        code,
        field,
        message,
        status,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(*code, ErrorCode::FieldInvalid);
    assert_eq!(*status, tonic::Code::InvalidArgument);
    assert_eq!(field, "batch");
    assert!(
        message.contains(&format!("byte {at}"))
            && message.contains("items[0].transaction.postings[0].direction")
            && message.contains("unknown direction 9"),
        "{message}"
    );

    // Not a batch, a later version, an empty batch, too many items.
    let error = call(b"hello".to_vec()).await;
    assert_eq!(error.code(), Some(ErrorCode::FieldInvalid), "{error}");
    let mut later = good.clone();
    later[4] = 2;
    let error = call(later).await;
    assert!(error.to_string().contains("version 2"), "{error}");
    let error = client
        .create_transactions_packed(&PackedBatch::new())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::BatchEmpty), "{error}");
    let mut too_many = good.clone();
    too_many[8..12].copy_from_slice(&8_191u32.to_le_bytes());
    let error = call(too_many).await;
    assert_eq!(error.code(), Some(ErrorCode::BatchTooLarge), "{error}");
    assert_eq!(error.status(), Some(tonic::Code::ResourceExhausted));

    assert_eq!(client.ledger_info().await.unwrap().journal_length, length);
    // The good batch still goes through.
    let results = client.create_transactions_packed(&batch).await.unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    drop(client);
    tokio::task::spawn_blocking(move || server.terminate_and_verify())
        .await
        .unwrap();
}

/// A packed batch's bytes with every posting amount of `marker` (mantissa,
/// scale 0) replaced by a mantissa of 2^96, one more than a `Decimal` holds.
fn with_overflowing_amounts(batch: &PackedBatch, marker: i64) -> Vec<u8> {
    let mut bytes = batch.encoded().to_vec();
    let pattern = [(marker as u128).to_le_bytes().as_slice(), &[0]].concat();
    let overflow = [(1u128 << 96).to_le_bytes().as_slice(), &[0]].concat();
    let mut at = 0;
    let mut replaced = 0;
    while let Some(found) = bytes[at..]
        .windows(pattern.len())
        .position(|window| window == pattern)
    {
        bytes[at + found..at + found + pattern.len()].copy_from_slice(&overflow);
        at += found + pattern.len();
        replaced += 1;
    }
    assert!(replaced > 0);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amount_refused_at_the_edge_fails_its_chain_on_both_wires() {
    // Goal: an amount over 96 bits is refused by the edge on both wires with
    // the same code and field, and its linked chain with it (LINKED_ITEM_FAILED
    // naming it, or LINKED_CHAIN_OPEN for a chain left open); the other items
    // are recorded, at the same seqs.
    let (_dir_a, server_a, a) = ledger_with_accounts().await;
    let (_dir_b, server_b, b) = ledger_with_accounts().await;
    let transfer = |id: &str, amount: Decimal| {
        Transaction::builder(id)
            .debit("assets:cash", amount)
            .credit("revenue:sales", amount)
    };
    let marker = 0x0102_0304_0506_0708i64;
    let huge = Decimal::new(marker, 0);
    for (closed, batch) in [
        (
            true,
            Batch::new()
                .with(transfer("e1", d("1")))
                .linked()
                .with(transfer("e2", huge))
                .linked()
                .with(transfer("e3", d("1")))
                .with(transfer("e4", d("1"))),
        ),
        (
            false,
            Batch::new()
                .with(transfer("f1", d("1")))
                .with(transfer("f2", d("1")))
                .linked()
                .with(transfer("f3", huge))
                .linked(),
        ),
    ] {
        // Protobuf: the amount as decimal text, 2^96.
        let mut request = tally_client::proto::CreateTransactionsRequest {
            items: Vec::new(),
            brief: true,
        };
        let packed = PackedBatch::from_batch(&batch).unwrap();
        for (item, linked) in batch.entries() {
            let tally_client::TransactionItem::Transaction(spec) = item else {
                unreachable!()
            };
            let amount = if spec.postings[0].amount == huge {
                "79228162514264337593543950336".to_string()
            } else {
                spec.postings[0].amount.to_string()
            };
            let posting = |account: &str, direction: tally_client::proto::Direction| {
                tally_client::proto::Posting {
                    account: account.into(),
                    direction: direction as i32,
                    amount: amount.clone(),
                    currency: String::new(),
                }
            };
            request.items.push(tally_client::proto::TransactionItem {
                kind: Some(tally_client::proto::transaction_item::Kind::Transaction(
                    tally_client::proto::TransactionSpec {
                        id: spec.id.clone(),
                        postings: vec![
                            posting("assets:cash", tally_client::proto::Direction::Debit),
                            posting("revenue:sales", tally_client::proto::Direction::Credit),
                        ],
                        ..Default::default()
                    },
                )),
                linked,
            });
        }
        let protobuf = a
            .raw()
            .create_transactions(request)
            .await
            .unwrap()
            .into_inner()
            .results;
        let bytes = with_overflowing_amounts(&packed, marker);
        let packed_results = b
            .raw()
            .create_transactions_packed(tally_client::proto::PackedTransactionsRequest {
                batch: bytes.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .results;
        let packed_results = tally_proto::packed::decode_results(&packed_results).unwrap();
        assert_eq!(protobuf.len(), packed_results.len());
        for (index, (proto, packed)) in protobuf.iter().zip(&packed_results).enumerate() {
            use tally_client::proto::transaction_result::Outcome;
            use tally_proto::packed::ResultRecord;
            match (proto.outcome.as_ref().unwrap(), packed) {
                (Outcome::Transaction(t), ResultRecord::Recorded { seq, replayed, .. }) => {
                    assert_eq!((t.seq, proto.replayed), (*seq, *replayed), "item {index}")
                }
                (
                    Outcome::Error(e),
                    ResultRecord::Error {
                        code,
                        name,
                        field,
                        message,
                    },
                ) => {
                    assert_eq!((e.code as u32, &e.field), (*code, field), "item {index}");
                    assert_eq!(ErrorCode::try_from(e.code).unwrap().as_str_name(), name);
                    if *code != ErrorCode::AmountOverflow as u32 {
                        assert_eq!(&e.message, message, "item {index}");
                    }
                }
                other => panic!("item {index}: {other:?}"),
            }
        }
        let codes: Vec<Option<u32>> = packed_results
            .iter()
            .map(|record| match record {
                tally_proto::packed::ResultRecord::Error { code, .. } => Some(*code),
                _ => None,
            })
            .collect();
        let overflow = Some(ErrorCode::AmountOverflow as u32);
        if closed {
            let failed = Some(ErrorCode::LinkedItemFailed as u32);
            assert_eq!(codes, vec![failed, overflow, failed, None]);
        } else {
            let open = Some(ErrorCode::LinkedChainOpen as u32);
            assert_eq!(codes, vec![None, open, overflow]);
        }
        if let tally_proto::packed::ResultRecord::Error { field, .. } = &packed_results[1] {
            let expected = if closed {
                "items[1].transaction.postings[0].amount"
            } else {
                "items[1].linked"
            };
            assert_eq!(field, expected);
        }
    }
    assert_eq!(balances(&a).await, balances(&b).await);
    assert_eq!(journal_kinds(&a).await, journal_kinds(&b).await);
    drop((a, b));
    tokio::task::spawn_blocking(move || {
        server_a.terminate_and_verify();
        server_b.terminate_and_verify();
    })
    .await
    .unwrap();
}
