// Goal: the ledger's main flows work end to end — a real `tallyd` process over a
// real data directory, driven through the real `tally-client` — and every answer
// (results, error codes, field paths, balances, history, journal) is exact.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use tally::Tallyd;
use tally_client::{
    AccountSpec, AccountType, AsOf, Balance, BalanceConstraint, Batch, Client, ClientError,
    Decimal, ErrorCode, JournalEntry, PageRequest, PendingState, PostPendingSpec, ReverseSpec,
    Transaction, TransactionFilter, TransactionKind, TrialBalanceQuery, VoidPendingSpec,
};
use tokio_stream::StreamExt;

/// A running server on its own data directory, and a client of it.
struct Ledger {
    server: Tallyd,
    client: Client,
    dir: tempfile::TempDir,
}

async fn start() -> Ledger {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Tallyd::start(dir.path());
    let client = tally::connect(server.url.clone()).await.expect("connect");
    Ledger {
        server,
        client,
        dir,
    }
}

fn d(text: &str) -> Decimal {
    text.parse().expect("decimal literal")
}

/// 2024-01-01T00:00:00Z plus `days`.
fn day(days: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200 + days * 86_400)
}

/// USD (scale 2) and the accounts of a small shop.
async fn shop(client: &Client) {
    client.define_currency("USD", 2).await.unwrap();
    client.define_currency("EUR", 2).await.unwrap();
    let accounts = [
        AccountSpec::new("assets:cash", AccountType::Asset, "USD"),
        AccountSpec::new("assets:bank", AccountType::Asset, "USD"),
        AccountSpec::new("revenue:sales", AccountType::Revenue, "USD"),
        AccountSpec::new("expenses:rent", AccountType::Expense, "USD"),
        AccountSpec::new("assets:eur:cash", AccountType::Asset, "EUR"),
        AccountSpec::new("revenue:eur:sales", AccountType::Revenue, "EUR"),
    ];
    for result in client.create_accounts(accounts).await.unwrap() {
        result.unwrap();
    }
}

fn sale(id: &str, amount: &str) -> tally_client::TransactionSpec {
    Transaction::builder(id)
        .debit("assets:cash", d(amount))
        .credit("revenue:sales", d(amount))
}

async fn balance(client: &Client, account: &str) -> Balance {
    let balances = client.balances([account], AsOf::Now).await.unwrap();
    assert_eq!(balances.balances.len(), 1);
    assert_eq!(balances.balances[0].account, account);
    balances.balances[0].balance
}

async fn journal(client: &Client) -> Vec<JournalEntry> {
    let mut stream = client.follow_journal(0, false).await.unwrap();
    let mut entries = Vec::new();
    while let Some(entry) = stream.next().await {
        entries.push(entry.unwrap());
    }
    entries
}

/// Asserts an `Api` error with this ledger code and field path.
fn assert_api_error<T: std::fmt::Debug>(
    result: Result<T, ClientError>,
    code: ErrorCode,
    field: &str,
) {
    match result {
        Err(ClientError::Api {
            code: actual,
            field: actual_field,
            ..
        }) => {
            assert_eq!((actual, actual_field.as_str()), (code, field));
        }
        other => panic!("expected {code:?} at {field:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn currencies_and_accounts_are_idempotent_by_key() {
    // Goal: redefining a currency or reopening an account with the same fields
    // succeeds and says so; other fields fail with *_EXISTS and write nothing.
    let ledger = start().await;
    let client = &ledger.client;
    let first = client.create_currencies([tally_client::Currency::new("USD", 2)]);
    let first = first.await.unwrap().remove(0).unwrap();
    assert!(!first.existed);
    let again = client.create_currencies([tally_client::Currency::new("USD", 2)]);
    assert!(again.await.unwrap().remove(0).unwrap().existed);
    let conflict = client
        .create_currencies([tally_client::Currency::new("USD", 3)])
        .await
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert_eq!(conflict.code, ErrorCode::CurrencyExists);
    assert_eq!(conflict.field, "currencies[0].scale");
    assert_eq!(client.list_currencies().await.unwrap().len(), 1);

    let spec = AccountSpec::new("assets:cash", AccountType::Asset, "USD").metadata("k", "v");
    let opened = client.create_accounts([spec.clone()]).await.unwrap();
    let opened = opened.into_iter().next().unwrap().unwrap();
    assert!(!opened.existed);
    let info = client.ledger_info().await.unwrap();
    let reopened = client.create_accounts([spec.clone()]).await.unwrap();
    let reopened = reopened.into_iter().next().unwrap().unwrap();
    assert!(reopened.existed);
    assert_eq!(reopened.account, opened.account);
    for other in [
        AccountSpec::new("assets:cash", AccountType::Liability, "USD").metadata("k", "v"),
        spec.clone()
            .constraint(BalanceConstraint::CreditsMustNotExceedDebits),
        spec.clone().metadata("k", "other"),
    ] {
        let results = client
            .create_accounts([
                AccountSpec::new("assets:new", AccountType::Asset, "USD"),
                other,
            ])
            .await
            .unwrap();
        assert!(results[0].is_ok(), "{:?}", results[0]);
        let error = results[1].clone().unwrap_err();
        assert_eq!(
            (error.index, error.code, error.field.as_str()),
            (1, ErrorCode::AccountExists, "accounts[1].name")
        );
    }
    // Only `assets:new` was written (once; its repeats were idempotent).
    let after = client.ledger_info().await.unwrap();
    assert_eq!(after.journal_length, info.journal_length + 1);
    let account = client.get_account("assets:cash").await.unwrap();
    assert_eq!(account.account_type, AccountType::Asset);
    assert_eq!(account.metadata.get("k").map(String::as_str), Some("v"));
    assert_eq!(client.list_all_accounts("").await.unwrap().len(), 2);
}

#[tokio::test]
async fn transaction_retries_return_the_first_outcome() {
    // Goal: a retry with the same id and content is replayed with the same seq;
    // the same id with other content is TRANSACTION_EXISTS; an id that failed
    // keeps failing with TRANSACTION_ALREADY_FAILED even once the cause is gone.
    let ledger = start().await;
    let client = &ledger.client;
    shop(client).await;
    let first = client
        .submit(sale("t1", "10.00"))
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert!(!first.replayed);
    assert_eq!(first.transaction.kind, TransactionKind::Standard);
    let length = client.ledger_info().await.unwrap().journal_length;
    assert_eq!(first.transaction.seq, length - 1);

    let retry = client
        .submit(sale("t1", "10.00"))
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.transaction.seq, first.transaction.seq);
    assert_eq!(retry.transaction.entry_hash, first.transaction.entry_hash);
    assert_eq!(client.ledger_info().await.unwrap().journal_length, length);

    let other = client.submit(sale("t1", "11.00")).await.unwrap().remove(0);
    let error = other.unwrap_err();
    assert_eq!(error.code, ErrorCode::TransactionExists);
    assert_eq!(error.field, "items[0].transaction.id");
    assert_eq!(client.ledger_info().await.unwrap().journal_length, length);

    // A state-dependent failure is recorded (one `transaction_rejected` entry) ...
    let to_bank = Transaction::builder("t2")
        .debit("assets:savings", d("5.00"))
        .credit("revenue:sales", d("5.00"));
    let error = client
        .submit(to_bank.clone())
        .await
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::AccountNotFound);
    assert_eq!(error.field, "items[0].transaction.postings[0].account");
    let entries = journal(client).await;
    assert_eq!(entries.len() as u64, length + 1);
    assert_eq!(entries.last().unwrap().kind, "transaction_rejected");
    // ... and stands after the account is created.
    client
        .open_account(AccountSpec::new(
            "assets:savings",
            AccountType::Asset,
            "USD",
        ))
        .await
        .unwrap();
    let error = client.submit(to_bank).await.unwrap().remove(0).unwrap_err();
    assert_eq!(error.code, ErrorCode::TransactionAlreadyFailed);
    assert_eq!(error.field, "items[0].transaction.postings[0].account");
    assert_eq!(balance(client, "assets:savings").await, Balance::default());
    assert_api_error(
        client.get_transaction("t2").await,
        ErrorCode::TransactionNotFound,
        "id",
    );
    assert_eq!(balance(client, "assets:cash").await.balance, d("10.00"));
}

#[tokio::test]
async fn a_bad_item_fails_alone_in_its_batch() {
    // Goal: each item of a batch is judged on its own: the bad ones fail with
    // their own index, field and code, the others are recorded in order.
    let ledger = start().await;
    let client = &ledger.client;
    shop(client).await;
    let batch = Batch::new()
        .with(sale("b0", "1.00"))
        .with(sale("b1", "1.001"))
        .with(sale("b2", "2.00"))
        .with(
            Transaction::builder("b3")
                .debit("assets:cash", d("3.00"))
                .credit("revenue:eur:sales", d("3.00")),
        )
        .with(sale("b4", "0"))
        .with(
            Transaction::builder("b5")
                .debit("assets:cash", d("4.00"))
                .credit("revenue:sales", d("3.00")),
        )
        .with(sale("b6", "4.00"));
    let results = client.submit(batch).await.unwrap();
    let expected: [Option<(ErrorCode, &str)>; 7] = [
        None,
        Some((
            ErrorCode::AmountScaleExceeded,
            "items[1].transaction.postings[0].amount",
        )),
        None,
        Some((
            ErrorCode::TransactionUnbalanced,
            "items[3].transaction.postings",
        )),
        Some((
            ErrorCode::AmountNotPositive,
            "items[4].transaction.postings[0].amount",
        )),
        Some((
            ErrorCode::TransactionUnbalanced,
            "items[5].transaction.postings",
        )),
        None,
    ];
    let mut seqs = Vec::new();
    for (index, (result, expected)) in results.iter().zip(expected).enumerate() {
        match (result, expected) {
            (Ok(recorded), None) => seqs.push(recorded.transaction.seq),
            (Err(error), Some((code, field))) => {
                assert_eq!(
                    (error.index, error.code, error.field.as_str()),
                    (index, code, field)
                );
            }
            (result, expected) => panic!("item {index}: {result:?}, expected {expected:?}"),
        }
    }
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    assert_eq!(balance(client, "assets:cash").await.balance, d("7.00"));
    assert_eq!(balance(client, "revenue:sales").await.balance, d("7.00"));
    assert_eq!(
        balance(client, "revenue:eur:sales").await,
        Balance::default()
    );
}

#[tokio::test]
async fn linked_chains_are_all_or_nothing() {
    // Goal: a failing item of a linked chain fails the whole chain (the others
    // with LINKED_ITEM_FAILED naming no effect), neighbours outside the chain
    // are unaffected, and a chain cannot be left open at the end of a batch.
    let ledger = start().await;
    let client = &ledger.client;
    shop(client).await;
    let batch = Batch::new()
        .with(sale("l0", "1.00"))
        .linked()
        .with(sale("l1", "2.00"))
        .linked()
        .with(
            Transaction::builder("l2")
                .debit("assets:nowhere", d("3.00"))
                .credit("revenue:sales", d("3.00")),
        )
        .with(sale("l3", "4.00"))
        .linked()
        .with(sale("l4", "5.00"));
    let results = client.submit(batch).await.unwrap();
    for index in [0, 1] {
        let error = results[index].clone().unwrap_err();
        assert_eq!(error.index, index);
        assert_eq!(error.code, ErrorCode::LinkedItemFailed);
        assert_eq!(error.field, format!("items[{index}]"));
    }
    let culprit = results[2].clone().unwrap_err();
    assert_eq!(culprit.code, ErrorCode::AccountNotFound);
    assert_eq!(culprit.field, "items[2].transaction.postings[0].account");
    assert!(results[3].is_ok() && results[4].is_ok(), "{results:?}");
    assert_eq!(balance(client, "assets:cash").await.balance, d("9.00"));
    for id in ["l0", "l1", "l2"] {
        assert_api_error(
            client.get_transaction(id).await,
            ErrorCode::TransactionNotFound,
            "id",
        );
    }

    let length = client.ledger_info().await.unwrap().journal_length;
    let open = Batch::new().with(sale("o0", "1.00")).linked();
    let error = client.submit(open).await.unwrap().remove(0).unwrap_err();
    assert_eq!(error.code, ErrorCode::LinkedChainOpen);
    assert_eq!(error.field, "items[0].linked");
    assert_eq!(client.ledger_info().await.unwrap().journal_length, length);
    assert_eq!(balance(client, "assets:cash").await.balance, d("9.00"));
}

/// A customer wallet that can never be overdrawn: a liability whose debits
/// (spending, pending included) must not exceed its credits (deposits).
async fn wallet(client: &Client) {
    shop(client).await;
    client
        .open_account(
            AccountSpec::new("liabilities:wallet:alice", AccountType::Liability, "USD")
                .constraint(BalanceConstraint::DebitsMustNotExceedCredits),
        )
        .await
        .unwrap();
    let deposit = Transaction::builder("deposit")
        .debit("assets:cash", d("100.00"))
        .credit("liabilities:wallet:alice", d("100.00"));
    client.post_transaction(deposit).await.unwrap();
}

fn hold(id: &str, amount: &str) -> tally_client::TransactionSpec {
    Transaction::builder(id)
        .debit("liabilities:wallet:alice", d(amount))
        .credit("revenue:sales", d(amount))
        .pending()
}

#[tokio::test]
async fn pending_transfers_reserve_post_partially_and_void() {
    // Goal: a pending transfer reserves its amounts and counts against a balance
    // constraint; a partial post posts part and releases the rest; a void
    // releases everything; a resolved pending transaction cannot be resolved again.
    let ledger = start().await;
    let client = &ledger.client;
    wallet(client).await;
    let pending = client.post_transaction(hold("h1", "70.00")).await.unwrap();
    assert_eq!(pending.kind, TransactionKind::Pending);
    assert_eq!(pending.pending_state, Some(PendingState::Open));
    let alice = balance(client, "liabilities:wallet:alice").await;
    assert_eq!(alice.debits_pending, d("70.00"));
    assert_eq!(alice.balance, d("100.00"));
    assert_eq!(alice.balance_with_pending, d("30.00"));

    // 70 reserved + 40 > 100 deposited.
    let over = client.post_transaction(hold("h2", "40.00")).await;
    assert_api_error(
        over,
        ErrorCode::BalanceConstraintViolated,
        "items[0].transaction.postings",
    );

    // More than reserved, then a partial post of 50 of the 70.
    let too_much = PostPendingSpec::new("p1-bad", "h1").amounts([d("80.00"), d("80.00")]);
    assert_api_error(
        client.post_pending(too_much).await,
        ErrorCode::PendingAmountExceeded,
        "amounts[0]",
    );
    let post = PostPendingSpec::new("p1", "h1").amounts([d("50.00"), d("50.00")]);
    let posted = client.post_pending(post.clone()).await.unwrap();
    assert_eq!(posted.kind, TransactionKind::PostPending);
    assert_eq!(posted.pending_id.as_deref(), Some("h1"));
    let alice = balance(client, "liabilities:wallet:alice").await;
    assert_eq!(
        (alice.debits_posted, alice.debits_pending, alice.balance),
        (d("50.00"), d("0"), d("50.00"))
    );
    assert_eq!(balance(client, "revenue:sales").await.balance, d("50.00"));
    let h1 = client.get_transaction("h1").await.unwrap();
    assert_eq!(h1.pending_state, Some(PendingState::Posted));
    assert_eq!(h1.resolved_by.as_deref(), Some("p1"));
    // The same post again is a replay; another post of h1 is refused.
    assert_eq!(client.post_pending(post).await.unwrap().seq, posted.seq);
    assert_api_error(
        client
            .post_pending(PostPendingSpec::new("p1-again", "h1"))
            .await,
        ErrorCode::PendingAlreadyPosted,
        "pending_id",
    );

    // Now 40 fits (50 + 40 <= 100); void it, then it can never post.
    client.post_transaction(hold("h3", "40.00")).await.unwrap();
    let void = client
        .void_pending(VoidPendingSpec::new("v3", "h3").reason("changed mind"))
        .await
        .unwrap();
    assert_eq!(void.kind, TransactionKind::VoidPending);
    let h3 = client.get_transaction("h3").await.unwrap();
    assert_eq!(h3.pending_state, Some(PendingState::Voided));
    assert_eq!(h3.resolved_by.as_deref(), Some("v3"));
    let alice = balance(client, "liabilities:wallet:alice").await;
    assert_eq!((alice.debits_pending, alice.balance), (d("0"), d("50.00")));
    assert_api_error(
        client.post_pending(PostPendingSpec::new("p3", "h3")).await,
        ErrorCode::PendingAlreadyVoided,
        "pending_id",
    );
    assert_api_error(
        client
            .void_pending(VoidPendingSpec::new("v1", "deposit"))
            .await,
        ErrorCode::NotPending,
        "pending_id",
    );
    assert_api_error(
        client
            .void_pending(VoidPendingSpec::new("v9", "missing"))
            .await,
        ErrorCode::TransactionNotFound,
        "pending_id",
    );
}

#[tokio::test]
async fn pending_transfers_expire() {
    // Goal: a pending transfer with a timeout expires by itself (no further
    // request needed), releases its reservation, and can never post afterwards.
    let ledger = start().await;
    let client = &ledger.client;
    wallet(client).await;
    let spec = hold("h-expiring", "60.00").pending_with_timeout(Duration::from_secs(1));
    let pending = client.post_transaction(spec).await.unwrap();
    assert!(pending.expires_at.is_some());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let current = client.get_transaction("h-expiring").await.unwrap();
        if current.pending_state == Some(PendingState::Expired) {
            break;
        }
        assert_eq!(current.pending_state, Some(PendingState::Open));
        assert!(Instant::now() < deadline, "not expired after 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alice = balance(client, "liabilities:wallet:alice").await;
    assert_eq!(
        (alice.debits_pending, alice.balance_with_pending),
        (d("0"), d("100.00"))
    );
    assert_api_error(
        client
            .post_pending(PostPendingSpec::new("p-late", "h-expiring"))
            .await,
        ErrorCode::PendingExpired,
        "pending_id",
    );
    let kinds: Vec<String> = journal(client).await.into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "pending_expired").count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn reversal_restores_balances_once() {
    // Goal: a reversal books the opposite postings (balances return to what they
    // were), links both transactions, and cannot be done twice; pending
    // transactions cannot be reversed.
    let ledger = start().await;
    let client = &ledger.client;
    shop(client).await;
    client.post_transaction(sale("s1", "25.00")).await.unwrap();
    let before_cash = balance(client, "assets:cash").await;
    let rent = Transaction::builder("rent")
        .debit("expenses:rent", d("12.34"))
        .credit("assets:cash", d("12.34"));
    client.post_transaction(rent).await.unwrap();
    assert_eq!(balance(client, "assets:cash").await.balance, d("12.66"));

    let reversal = client
        .reverse(ReverseSpec::new("rent-rev", "rent"))
        .await
        .unwrap();
    assert_eq!(reversal.kind, TransactionKind::Reversal);
    assert_eq!(reversal.reverses_id.as_deref(), Some("rent"));
    let cash = balance(client, "assets:cash").await;
    assert_eq!(cash.balance, before_cash.balance);
    assert_eq!(balance(client, "expenses:rent").await.balance, d("0"));
    let original = client.get_transaction("rent").await.unwrap();
    assert_eq!(original.reversed_by.as_deref(), Some("rent-rev"));

    assert_api_error(
        client.reverse(ReverseSpec::new("rent-rev-2", "rent")).await,
        ErrorCode::AlreadyReversed,
        "items[0].reverse.transaction_id",
    );
    client
        .post_transaction(sale("h", "1.00").pending())
        .await
        .unwrap();
    assert_api_error(
        client.reverse(ReverseSpec::new("h-rev", "h")).await,
        ErrorCode::NotReversible,
        "items[0].reverse.transaction_id",
    );
    assert_api_error(
        client.reverse(ReverseSpec::new("x-rev", "nothing")).await,
        ErrorCode::TransactionNotFound,
        "items[0].reverse.transaction_id",
    );
}

/// Posted (debits, credits) per account from a set of transactions.
fn posted_model<'a>(
    transactions: impl IntoIterator<Item = &'a tally_client::Transaction>,
) -> BTreeMap<String, (Decimal, Decimal)> {
    let mut model: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for transaction in transactions {
        for posting in &transaction.postings {
            let entry = model.entry(posting.account.clone()).or_default();
            match posting.direction {
                tally_client::Direction::Debit => entry.0 += posting.amount,
                tally_client::Direction::Credit => entry.1 += posting.amount,
            }
        }
    }
    model
}

#[tokio::test]
async fn balances_at_every_seq_and_at_a_time() {
    // Goal: AsOf::Seq(s) answers the state after entry s for every seq of the
    // journal, and AsOf::Time answers by effective time, so a backdated
    // transaction counts at its effective time, not at its recording.
    let ledger = start().await;
    let client = &ledger.client;
    shop(client).await;
    let accounts = [
        "assets:cash",
        "assets:bank",
        "revenue:sales",
        "expenses:rent",
    ];
    let opened_length = client.ledger_info().await.unwrap().journal_length;
    client
        .post_transaction(sale("a", "10.00").effective_at(day(10)))
        .await
        .unwrap();
    client
        .post_transaction(sale("b", "20.00").effective_at(day(40)))
        .await
        .unwrap();
    let to_bank = Transaction::builder("c")
        .debit("assets:bank", d("15.00"))
        .credit("assets:cash", d("15.00"));
    client.post_transaction(to_bank).await.unwrap();
    // Recorded last, effective first.
    client
        .post_transaction(sale("backdated", "1.00").effective_at(day(1)))
        .await
        .unwrap();
    let rent = Transaction::builder("rent")
        .debit("expenses:rent", d("3.00"))
        .credit("assets:bank", d("3.00"))
        .effective_at(day(20));
    client.post_transaction(rent).await.unwrap();
    client
        .reverse(ReverseSpec::new("b-rev", "b"))
        .await
        .unwrap();

    let transactions = client
        .list_all_transactions(&TransactionFilter::new())
        .await
        .unwrap();
    assert_eq!(transactions.len(), 6);
    let length = client.ledger_info().await.unwrap().journal_length;
    for seq in opened_length - 1..length {
        let model = posted_model(transactions.iter().filter(|t| t.seq <= seq));
        let balances = client.balances(accounts, AsOf::Seq(seq)).await.unwrap();
        assert_eq!(balances.as_of_seq, seq);
        for entry in balances.balances {
            let expected = model.get(&entry.account).copied().unwrap_or_default();
            let actual = (entry.balance.debits_posted, entry.balance.credits_posted);
            assert_eq!(actual, expected, "{} at seq {seq}", entry.account);
        }
    }
    assert_api_error(
        client.balances(accounts, AsOf::Seq(length)).await,
        ErrorCode::SeqOutOfRange,
        "as_of.seq",
    );

    for (time, cash, sales) in [
        (day(0), "0", "0"),
        (day(1), "1.00", "1.00"),
        (day(15), "11.00", "11.00"),
        (day(45), "31.00", "31.00"),
    ] {
        let at = client
            .balances(["assets:cash", "revenue:sales"], AsOf::Time(time))
            .await
            .unwrap();
        // `c` and `b-rev` are effective when recorded (now), after day 45.
        assert_eq!(at.balances[0].balance.balance, d(cash), "cash at {time:?}");
        assert_eq!(
            at.balances[1].balance.balance,
            d(sales),
            "sales at {time:?}"
        );
    }
    let now = client.balances(["assets:cash"], AsOf::Now).await.unwrap();
    // 10 + 20 - 15 + 1 - 20 (the reversal of b).
    assert_eq!(now.balances[0].balance.balance, d("-4.00"));
}

#[tokio::test]
async fn account_history_starts_at_zero_and_ends_at_the_balance() {
    // Goal: an account's history begins with its opening (zero) balance and
    // lists every change in order, each with the balance after it.
    let ledger = start().await;
    let client = &ledger.client;
    shop(client).await;
    let history = client.account_history("assets:cash").await.unwrap();
    assert_eq!(history.opening, Balance::default());
    assert!(history.changes.is_empty());
    let mut running = Decimal::ZERO;
    let mut expected = Vec::new();
    for (index, amount) in ["1.00", "2.50", "3.25"].iter().enumerate() {
        let id = format!("s{index}");
        let tx = client.post_transaction(sale(&id, amount)).await.unwrap();
        running += d(amount);
        expected.push((tx.seq, id, running));
    }
    let rent = Transaction::builder("rent")
        .debit("expenses:rent", d("0.75"))
        .credit("assets:cash", d("0.75"));
    let tx = client.post_transaction(rent).await.unwrap();
    running -= d("0.75");
    expected.push((tx.seq, "rent".to_string(), running));

    let history = client.account_history("assets:cash").await.unwrap();
    assert_eq!(history.opening, Balance::default());
    let actual: Vec<(u64, String, Decimal)> = history
        .changes
        .iter()
        .map(|c| (c.seq, c.transaction_id.clone(), c.balance.balance))
        .collect();
    assert_eq!(actual, expected);
    assert_eq!(
        history.changes.last().unwrap().balance,
        balance(client, "assets:cash").await
    );
    // Paged: the second page's opening is the balance after the first page.
    let page = client
        .account_history_page("assets:cash", PageRequest::first(2))
        .await
        .unwrap();
    assert_eq!(page.changes.len(), 2);
    let token = page.next_page_token.expect("a second page");
    let next = client
        .account_history_page("assets:cash", PageRequest::after(2, token))
        .await
        .unwrap();
    assert_eq!(next.opening, page.changes[1].balance);
    assert_eq!(next.changes.len(), 2);
}

#[tokio::test]
async fn trial_balance_nets_to_zero_per_currency() {
    // Goal: the trial balance lists each account's net balance in its debit or
    // credit column, rolls accounts up by name depth, filters by currency, and
    // its totals balance per currency.
    let ledger = start().await;
    let client = &ledger.client;
    shop(client).await;
    client.post_transaction(sale("s1", "100.00")).await.unwrap();
    let to_bank = Transaction::builder("bank")
        .debit("assets:bank", d("60.00"))
        .credit("assets:cash", d("60.00"));
    client.post_transaction(to_bank).await.unwrap();
    let rent = Transaction::builder("rent")
        .debit("expenses:rent", d("30.00"))
        .credit("assets:bank", d("30.00"));
    client.post_transaction(rent).await.unwrap();
    let euro = Transaction::builder("eur")
        .debit("assets:eur:cash", d("7.00"))
        .credit("revenue:eur:sales", d("7.00"));
    client.post_transaction(euro).await.unwrap();

    let trial = client
        .trial_balance(TrialBalanceQuery::new())
        .await
        .unwrap();
    let lines: BTreeMap<(&str, &str), (Decimal, Decimal, u32)> = trial
        .lines
        .iter()
        .map(|l| {
            (
                (l.account.as_str(), l.currency.as_str()),
                (l.debit, l.credit, l.accounts),
            )
        })
        .collect();
    let z = Decimal::ZERO;
    let expected: BTreeMap<(&str, &str), (Decimal, Decimal, u32)> = [
        (("assets:bank", "USD"), (d("30.00"), z, 1)),
        (("assets:cash", "USD"), (d("40.00"), z, 1)),
        (("assets:eur:cash", "EUR"), (d("7.00"), z, 1)),
        (("expenses:rent", "USD"), (d("30.00"), z, 1)),
        (("revenue:eur:sales", "EUR"), (z, d("7.00"), 1)),
        (("revenue:sales", "USD"), (z, d("100.00"), 1)),
    ]
    .into_iter()
    .collect();
    assert_eq!(lines, expected);
    assert_totals_balance(&trial, &[("EUR", "7.00"), ("USD", "100.00")]);

    // Depth 1: assets (USD) rolls up cash and bank; EUR stays apart.
    let rolled = client
        .trial_balance(TrialBalanceQuery::new().depth(1))
        .await
        .unwrap();
    let assets_usd = rolled
        .lines
        .iter()
        .find(|l| l.account == "assets" && l.currency == "USD")
        .expect("assets USD line");
    assert_eq!(
        (assets_usd.debit, assets_usd.credit, assets_usd.accounts),
        (d("70.00"), z, 2)
    );
    assert_eq!(assets_usd.account_type, Some(AccountType::Asset));
    assert_totals_balance(&rolled, &[("EUR", "7.00"), ("USD", "100.00")]);

    let usd = client
        .trial_balance(TrialBalanceQuery::new().currency("USD"))
        .await
        .unwrap();
    assert!(usd.lines.iter().all(|l| l.currency == "USD"));
    assert_eq!(usd.lines.len(), 4);
    assert_totals_balance(&usd, &[("USD", "100.00")]);
    let prefixed = client
        .trial_balance(TrialBalanceQuery::new().prefix("assets:"))
        .await
        .unwrap();
    assert_eq!(prefixed.lines.len(), 3);
}

fn assert_totals_balance(trial: &tally_client::TrialBalance, expected: &[(&str, &str)]) {
    let totals: Vec<(String, Decimal, Decimal)> = trial
        .totals
        .iter()
        .map(|t| (t.currency.clone(), t.debit, t.credit))
        .collect();
    let wanted: Vec<(String, Decimal, Decimal)> = expected
        .iter()
        .map(|(currency, sum)| (currency.to_string(), d(sum), d(sum)))
        .collect();
    assert_eq!(totals, wanted);
    for total in &trial.totals {
        let lines = trial.lines.iter().filter(|l| l.currency == total.currency);
        let (debit, credit) = lines.fold((Decimal::ZERO, Decimal::ZERO), |(dr, cr), l| {
            (dr + l.debit, cr + l.credit)
        });
        assert_eq!(
            (debit, credit),
            (total.debit, total.credit),
            "{}",
            total.currency
        );
    }
}

#[tokio::test]
async fn transactions_list_by_account_and_time_with_paging() {
    // Goal: listing by account and effective-time window [from, to) returns
    // exactly the matching transactions, in order, across pages, each once.
    let ledger = start().await;
    let client = &ledger.client;
    shop(client).await;
    for index in 0..25u64 {
        let spec = sale(&format!("s{index:02}"), "1.00").effective_at(day(index));
        client.post_transaction(spec).await.unwrap();
        if index % 5 == 0 {
            let rent = Transaction::builder(format!("r{index:02}"))
                .debit("expenses:rent", d("0.10"))
                .credit("assets:bank", d("0.10"))
                .effective_at(day(index));
            client.post_transaction(rent).await.unwrap();
        }
    }
    let filter = TransactionFilter::new().account("revenue:sales");
    let mut ids = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = PageRequest {
            page_size: 10,
            page_token: token,
        };
        let page = client.list_transactions(&filter, page).await.unwrap();
        assert!(page.items.len() <= 10);
        ids.extend(page.items.into_iter().map(|t| t.id));
        pages += 1;
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    let expected: Vec<String> = (0..25).map(|i| format!("s{i:02}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(pages, 3);

    let window = TransactionFilter::new()
        .account("assets:bank")
        .from(day(5))
        .to(day(20));
    let ids: Vec<String> = client
        .list_all_transactions(&window)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["r05", "r10", "r15"]);
    let all = client
        .list_all_transactions(&TransactionFilter::new())
        .await
        .unwrap();
    assert_eq!(all.len(), 30);
    assert_api_error(
        client
            .list_all_transactions(&TransactionFilter::new().account("assets:none"))
            .await,
        ErrorCode::AccountNotFound,
        "account",
    );
}

/// Checks the hash chain of a whole journal: seqs from 0, each prev_hash is the
/// previous entry_hash, and each entry_hash is recomputed from the canonical bytes.
fn assert_chain(entries: &[JournalEntry]) {
    let mut prev = tally_core::chain::GENESIS_PREV_HASH;
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(entry.seq, index as u64);
        assert_eq!(entry.prev_hash, prev, "prev_hash of {}", entry.seq);
        let recomputed = tally_core::chain::entry_hash(entry.seq, &prev, &entry.canonical);
        assert_eq!(entry.entry_hash, recomputed, "entry_hash of {}", entry.seq);
        prev = recomputed;
    }
}

#[tokio::test]
async fn journal_streams_from_zero_and_follows_new_entries() {
    // Goal: the journal streams every entry in seq order with a verifiable hash
    // chain ending at the ledger's chain head; a follower receives an entry
    // committed after it subscribed.
    let ledger = start().await;
    let client = &ledger.client;
    shop(client).await;
    client.post_transaction(sale("s1", "1.00")).await.unwrap();
    let info = client.ledger_info().await.unwrap();
    let entries = journal(client).await;
    assert_eq!(entries.len() as u64, info.journal_length);
    assert_chain(&entries);
    assert_eq!(entries[0].kind, "ledger_created");
    assert_eq!(entries.last().unwrap().entry_hash_hex(), info.chain_head);
    assert_eq!(entries.last().unwrap().kind, "transaction_recorded");
    let tx = client.get_transaction("s1").await.unwrap();
    assert_eq!(tx.entry_hash, entries.last().unwrap().entry_hash_hex());
    assert!(entries.last().unwrap().json.contains("s1"));

    let mut follower = client
        .follow_journal(info.journal_length, true)
        .await
        .unwrap();
    let posted = client.post_transaction(sale("s2", "2.00")).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(30), follower.next())
        .await
        .expect("the follower got nothing")
        .expect("stream ended")
        .unwrap();
    assert_eq!(next.seq, posted.seq);
    assert_eq!(next.prev_hash_hex(), info.chain_head);
    assert_eq!(next.entry_hash_hex(), posted.entry_hash);
}

#[tokio::test]
async fn journal_read_past_its_end_is_out_of_range() {
    // Goal: reading (without following) from a seq past the journal's end is
    // refused with SEQ_OUT_OF_RANGE, like a balance at such a seq, instead of
    // looking like an empty journal.
    let ledger = start().await;
    let client = &ledger.client;
    let length = client.ledger_info().await.unwrap().journal_length;
    assert_eq!(journal(client).await.len() as u64, length);
    let opened = client.follow_journal(length + 5, false).await;
    let first = match opened {
        Ok(mut stream) => stream.next().await.map(|item| item.map(|entry| entry.seq)),
        Err(error) => Some(Err(error)),
    };
    match first {
        Some(Err(error)) => assert_eq!(error.code(), Some(ErrorCode::SeqOutOfRange), "{error}"),
        other => panic!("expected SEQ_OUT_OF_RANGE, got {other:?} (an empty journal)"),
    }
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    // Goal: standard gRPC tooling works: the health service reports the Ledger
    // as serving and reflection lists `tally.v1.Ledger`.
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let ledger = start().await;
    // Deliberately without an API key: health and reflection need none.
    let channel = tonic::transport::Channel::from_shared(ledger.server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["tally.v1.Ledger", ""] {
        let request = HealthCheckRequest {
            service: service.to_string(),
        };
        let status = health.check(request).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected answer {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == "tally.v1.Ledger"), "{names:?}");
    assert!(
        names.iter().any(|n| n == "grpc.health.v1.Health"),
        "{names:?}"
    );
}

#[tokio::test]
async fn restart_keeps_every_balance_and_the_chain() {
    // Goal: after a clean shutdown (SIGTERM, exit 0) and a restart on the same
    // data directory, the ledger info, every balance, the trial balance and the
    // transactions are identical, and the ledger keeps accepting writes.
    let ledger = start().await;
    let client = &ledger.client;
    wallet(client).await;
    client.post_transaction(sale("s1", "12.34")).await.unwrap();
    client.post_transaction(hold("h1", "10.00")).await.unwrap();
    client.post_transaction(hold("h2", "5.00")).await.unwrap();
    client
        .post_pending(PostPendingSpec::new("p2", "h2"))
        .await
        .unwrap();
    client
        .reverse(ReverseSpec::new("s1-rev", "s1"))
        .await
        .unwrap();
    let snapshot = |client: Client| async move {
        let info = client.ledger_info().await.unwrap();
        let names: Vec<String> = client
            .list_all_accounts("")
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        let balances = client.balances(names, AsOf::Now).await.unwrap();
        let trial = client
            .trial_balance(TrialBalanceQuery::new())
            .await
            .unwrap();
        let transactions = client
            .list_all_transactions(&TransactionFilter::new())
            .await;
        (info, balances, trial, transactions.unwrap())
    };
    let before = snapshot(client.clone()).await;
    let Ledger {
        server,
        client: old_client,
        dir,
    } = ledger;
    drop(old_client);
    // Off the runtime's thread: the dropped client's connection task must keep
    // running to answer the server's graceful GOAWAY.
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "tallyd exited with {status}");

    let server = Tallyd::start(dir.path());
    let client = tally::connect(server.url.clone()).await.unwrap();
    let after = snapshot(client.clone()).await;
    assert_eq!(after.0, before.0);
    assert_eq!(after.1, before.1);
    assert_eq!(after.2, before.2);
    assert_eq!(after.3, before.3);
    // The retry of an old id is still a replay, and new writes chain on.
    let retry = client
        .submit(sale("s1", "12.34"))
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert!(retry.replayed);
    client.post_transaction(sale("s2", "1.00")).await.unwrap();
    assert_chain(&journal(&client).await);
}
