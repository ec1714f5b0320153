//! The engine end to end in one process: accounts, transactions, two-phase
//! transfers, reversals, linked chains, restart and rebuild.

use rust_decimal::Decimal;
use std::str::FromStr;
use tally_core::entry::{AccountType, BalanceConstraint, Side};
use tally_core::error_code::ErrorCode;
use tally_server::ledger::command::*;
use tally_server::ledger::view::AsOf;
use tally_server::{Engine, EngineConfig};

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn account(name: &str, account_type: AccountType, currency: &str) -> AccountSpec {
    AccountSpec {
        name: name.into(),
        account_type,
        currency: currency.into(),
        constraint: BalanceConstraint::None,
        metadata: Default::default(),
    }
}

fn transfer(id: &str, debit: &str, credit: &str, amount: &str) -> TransactionItem {
    TransactionItem {
        command: TransactionCommand::Transaction(TransactionSpec {
            id: id.into(),
            postings: vec![
                PostingSpec {
                    account: debit.into(),
                    side: Side::Debit,
                    amount: d(amount),
                    currency: None,
                },
                PostingSpec {
                    account: credit.into(),
                    side: Side::Credit,
                    amount: d(amount),
                    currency: None,
                },
            ],
            effective_at: None,
            description: String::new(),
            metadata: Default::default(),
            pending: false,
            timeout_seconds: 0,
        }),
        linked: false,
    }
}

async fn setup(engine: &Engine) {
    let currencies = engine
        .create_currencies(vec![
            CurrencySpec {
                code: "USD".into(),
                scale: 2,
            },
            CurrencySpec {
                code: "JPY".into(),
                scale: 0,
            },
        ])
        .await
        .unwrap();
    assert!(currencies.iter().all(|r| r.is_ok()));
    let mut wallet = account("liabilities:wallet:alice", AccountType::Liability, "USD");
    wallet.constraint = BalanceConstraint::DebitsMustNotExceedCredits;
    let accounts = engine
        .create_accounts(vec![
            account("assets:cash", AccountType::Asset, "USD"),
            account("revenue:sales", AccountType::Revenue, "USD"),
            wallet,
            account("assets:cash-jpy", AccountType::Asset, "JPY"),
        ])
        .await
        .unwrap();
    assert!(accounts.iter().all(|r| r.is_ok()), "{accounts:?}");
}

/// An engine on `dir` after `setup`, with `count` more USD asset accounts
/// named `prefix0`, `prefix1`, ...
async fn engine_with_accounts(
    dir: &std::path::Path,
    prefix: &str,
    count: usize,
) -> (std::sync::Arc<Engine>, Vec<String>) {
    let engine = std::sync::Arc::new(Engine::open(EngineConfig::new(dir)).unwrap());
    setup(&engine).await;
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    let specs = names
        .iter()
        .map(|n| account(n, AccountType::Asset, "USD"))
        .collect();
    assert!(engine
        .create_accounts(specs)
        .await
        .unwrap()
        .iter()
        .all(|r| r.is_ok()));
    (engine, names)
}

#[tokio::test]
async fn a_day_of_ledger_work_survives_restart_and_rebuild() {
    // Goal: the main flows give the documented answers, and reopening or
    // rebuilding the store gives the same state.
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    setup(&engine).await;

    let results = engine
        .create_transactions(vec![
            transfer("t1", "assets:cash", "revenue:sales", "10.50"),
            transfer("t2", "assets:cash", "nope", "1"),
        ])
        .await
        .unwrap();
    assert!(results[0].is_ok());
    let error = results[1].as_ref().unwrap_err();
    assert_eq!(error.code, ErrorCode::AccountNotFound);
    assert_eq!(error.field, "items[1].transaction.postings[1].account");

    // A retry of t2 gets the same failure; a retry of t1 the same success.
    let again = engine
        .create_transactions(vec![
            transfer("t1", "assets:cash", "revenue:sales", "10.50"),
            transfer("t2", "assets:cash", "nope", "1"),
        ])
        .await
        .unwrap();
    assert!(again[0].as_ref().unwrap().replayed);
    assert_eq!(
        again[1].as_ref().unwrap_err().code,
        ErrorCode::TransactionAlreadyFailed
    );
    // Same id, other content.
    let conflict = engine
        .create_transactions(vec![transfer("t1", "assets:cash", "revenue:sales", "11")])
        .await
        .unwrap();
    assert_eq!(
        conflict[0].as_ref().unwrap_err().code,
        ErrorCode::TransactionExists
    );

    // A brief answer carries identity and position only; the transaction is whole.
    let brief = engine
        .create_transactions_answered(
            vec![transfer("t-brief", "assets:cash", "revenue:sales", "1")],
            tally_server::engine::Answer::Brief,
        )
        .await
        .unwrap();
    let brief = &brief[0].as_ref().unwrap().value;
    assert_eq!(brief.id, "t-brief");
    assert!(brief.postings.is_empty());
    let full = engine.get_transaction("t-brief").unwrap();
    assert_eq!((full.seq, full.entry_hash), (brief.seq, brief.entry_hash));
    assert_eq!(full.postings.len(), 2);
    let reverse_brief = TransactionItem {
        command: TransactionCommand::Reverse(ReverseSpec {
            id: "t-brief-rev".into(),
            transaction_id: "t-brief".into(),
            effective_at: None,
            description: String::new(),
            metadata: Default::default(),
        }),
        linked: false,
    };
    assert!(engine
        .create_transactions(vec![reverse_brief])
        .await
        .unwrap()[0]
        .is_ok());

    // Over-precise and unbalanced.
    let bad = engine
        .create_transactions(vec![transfer(
            "t3",
            "assets:cash",
            "revenue:sales",
            "0.001",
        )])
        .await
        .unwrap();
    assert_eq!(
        bad[0].as_ref().unwrap_err().code,
        ErrorCode::AmountScaleExceeded
    );
    let bad = engine
        .create_transactions(vec![transfer("t4", "assets:cash", "assets:cash-jpy", "5")])
        .await
        .unwrap();
    assert_eq!(
        bad[0].as_ref().unwrap_err().code,
        ErrorCode::TransactionUnbalanced
    );

    // Pending, partial post, void; constraint counts pending.
    let mut pending = transfer("p1", "liabilities:wallet:alice", "revenue:sales", "5");
    if let TransactionCommand::Transaction(spec) = &mut pending.command {
        spec.pending = true;
    }
    let deposit = transfer("dep", "assets:cash", "liabilities:wallet:alice", "6");
    let results = engine
        .create_transactions(vec![deposit, pending])
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let over = engine
        .create_transactions(vec![transfer(
            "spend",
            "liabilities:wallet:alice",
            "revenue:sales",
            "2",
        )])
        .await
        .unwrap();
    assert_eq!(
        over[0].as_ref().unwrap_err().code,
        ErrorCode::BalanceConstraintViolated
    );
    let post = TransactionItem {
        command: TransactionCommand::PostPending(PostPendingSpec {
            id: "p1-post".into(),
            pending_id: "p1".into(),
            amounts: vec![d("3"), d("3")],
            effective_at: None,
            description: String::new(),
            metadata: Default::default(),
        }),
        linked: false,
    };
    let posted = engine.create_transactions(vec![post]).await.unwrap();
    assert!(posted[0].is_ok(), "{posted:?}");
    let void = TransactionItem {
        command: TransactionCommand::VoidPending(VoidPendingSpec {
            id: "p1-void".into(),
            pending_id: "p1".into(),
            reason: String::new(),
        }),
        linked: false,
    };
    let voided = engine.create_transactions(vec![void]).await.unwrap();
    assert_eq!(
        voided[0].as_ref().unwrap_err().code,
        ErrorCode::PendingAlreadyPosted
    );
    let p1 = engine.get_transaction("p1").unwrap();
    assert_eq!(
        p1.pending_state,
        Some(tally_server::ledger::view::PendingState::Posted)
    );

    // Linked chain: second fails, so the first is undone.
    let mut first = transfer("l1", "assets:cash", "revenue:sales", "1");
    first.linked = true;
    let chain = engine
        .create_transactions(vec![first, transfer("l2", "assets:cash", "missing", "1")])
        .await
        .unwrap();
    assert_eq!(
        chain[0].as_ref().unwrap_err().code,
        ErrorCode::LinkedItemFailed
    );
    assert_eq!(
        chain[1].as_ref().unwrap_err().code,
        ErrorCode::AccountNotFound
    );
    assert!(engine.get_transaction("l1").is_err());

    // Reversal.
    let reverse = TransactionItem {
        command: TransactionCommand::Reverse(ReverseSpec {
            id: "t1-rev".into(),
            transaction_id: "t1".into(),
            effective_at: None,
            description: "refund".into(),
            metadata: Default::default(),
        }),
        linked: false,
    };
    let reversed = engine.create_transactions(vec![reverse]).await.unwrap();
    assert!(reversed[0].is_ok(), "{reversed:?}");

    let cash = engine.get_account("assets:cash").unwrap();
    // Debits 10.50 (t1) + 1 (t-brief) + 6 (dep); credits 1 (t-brief reversed)
    // + 10.50 (t1 reversed): 6.00 net debit.
    assert_eq!(cash.balance.debits_posted, 1750);
    assert_eq!(cash.balance.credits_posted, 1150);
    let wallet = engine.get_account("liabilities:wallet:alice").unwrap();
    assert_eq!(wallet.balance.debits_posted, 300);
    assert_eq!(wallet.balance.debits_pending, 0);

    let trial = engine.trial_balance(AsOf::Now, 0, "", None).unwrap();
    for total in &trial.totals {
        assert_eq!(total.debit, total.credit, "{trial:?}");
    }
    let before = engine
        .balances(&["assets:cash".to_string()], AsOf::Seq(8))
        .unwrap();
    let info = engine.ledger_info().unwrap();
    engine.shutdown().await;
    drop(engine);

    let reopened = Engine::open(EngineConfig::new(dir.path())).unwrap();
    assert_eq!(reopened.ledger_info().unwrap(), info);
    assert_eq!(reopened.get_account("assets:cash").unwrap(), cash);
    assert_eq!(
        reopened
            .balances(&["assets:cash".to_string()], AsOf::Seq(8))
            .unwrap(),
        before
    );
    let rows_before = {
        reopened.shutdown().await;
        drop(reopened);
        let store = tally_server::store::Store::open(dir.path(), 1 << 20).unwrap();
        let rows = store.cache_rows().unwrap();
        drop(store);
        rows
    };
    let report = tally_server::maintenance::rebuild(dir.path()).unwrap();
    assert_eq!(report.entries, info.journal_length);
    let store = tally_server::store::Store::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(store.cache_rows().unwrap(), rows_before);
    drop(store);
    tally_server::maintenance::verify(dir.path()).unwrap();
}

#[tokio::test]
async fn a_failed_chain_leaves_no_expiry_behind() {
    // Goal: a linked chain that creates a pending transaction with a timeout,
    // voids it, then fails, leaves nothing that could expire later: after the
    // timeout has passed the writer still works, the journal has no
    // `pending_expired` entry, and the ledger reopens.
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    setup(&engine).await;
    let mut pending = transfer("p", "assets:cash", "revenue:sales", "1");
    if let TransactionCommand::Transaction(spec) = &mut pending.command {
        spec.pending = true;
        spec.timeout_seconds = 1;
    }
    pending.linked = true;
    let void = TransactionItem {
        command: TransactionCommand::VoidPending(VoidPendingSpec {
            id: "p-void".into(),
            pending_id: "p".into(),
            reason: String::new(),
        }),
        linked: true,
    };
    let failing = transfer("bad", "assets:cash", "nope", "1");
    let results = engine
        .create_transactions(vec![pending, void, failing])
        .await
        .unwrap();
    assert_eq!(
        results[0].as_ref().unwrap_err().code,
        ErrorCode::LinkedItemFailed
    );
    assert_eq!(
        results[2].as_ref().unwrap_err().code,
        ErrorCode::AccountNotFound
    );

    // Past the timeout and a few expiry ticks.
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let later = engine
        .create_transactions(vec![transfer("later", "assets:cash", "revenue:sales", "1")])
        .await;
    assert!(later.unwrap()[0].is_ok(), "the writer still works");
    let length = engine.ledger_info().unwrap().journal_length;
    let kinds: Vec<&str> = engine
        .journal(0, length as usize)
        .unwrap()
        .iter()
        .map(|r| r.entry.body.kind_name())
        .collect();
    assert!(!kinds.contains(&"pending_expired"), "{kinds:?}");
    engine.shutdown().await;
    drop(engine);
    let reopened = loop {
        match Engine::open(EngineConfig::new(dir.path())) {
            Ok(engine) => break engine,
            Err(tally_server::Error::Store(tally_server::StoreError::Sled(_))) => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Err(other) => panic!("reopen failed: {other}"),
        }
    };
    assert_eq!(reopened.ledger_info().unwrap().journal_length, length);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trial_balances_read_one_point_while_writes_go_on() {
    // Goal: a trial balance (and a multi-account balance read) reflects one
    // point of the journal even while groups are published meanwhile, so its
    // debit and credit totals are always equal.
    let dir = tempfile::tempdir().unwrap();
    let (engine, names) = engine_with_accounts(dir.path(), "assets:spread:a", 40).await;
    let writer = {
        let engine = engine.clone();
        let names = names.clone();
        tokio::spawn(async move {
            for batch in 0..60 {
                let items = (0..20)
                    .map(|i| {
                        let (debit, credit) =
                            (&names[(batch + i) % 40], &names[(batch + 3 * i + 1) % 40]);
                        transfer(&format!("w{batch}-{i}"), debit, credit, "1")
                    })
                    .filter(|item| match &item.command {
                        TransactionCommand::Transaction(spec) => {
                            spec.postings[0].account != spec.postings[1].account
                        }
                        _ => true,
                    })
                    .collect();
                engine.create_transactions(items).await.unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads < 5 {
        let trial = engine
            .trial_balance(AsOf::Now, 0, "assets:spread", None)
            .unwrap();
        for total in &trial.totals {
            assert_eq!(
                total.debit, total.credit,
                "unbalanced at seq {}",
                trial.as_of_seq
            );
        }
        let (balances, _) = engine.balances(&names, AsOf::Now).unwrap();
        let net: i128 = balances
            .iter()
            .map(|b| b.balance.debit_minus_credit())
            .sum();
        assert_eq!(net, 0, "balances read at one point sum to zero");
        reads += 1;
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brief_answer_is_readable_at_once() {
    // Goal: a transaction batch is answered before its group is folded into
    // the read model (`store/published.rs`); any read that starts after the
    // answer must still see it: the transactions, their seqs and the balances.
    // A second writer keeps groups in flight, so folds are often pending.
    let dir = tempfile::tempdir().unwrap();
    let (engine, names) = engine_with_accounts(dir.path(), "assets:ryw:a", 8).await;
    let background = {
        let engine = engine.clone();
        tokio::spawn(async move {
            for batch in 0..150 {
                let items = (0..500)
                    .map(|i| {
                        transfer(
                            &format!("bg{batch}-{i}"),
                            "assets:cash",
                            "revenue:sales",
                            "1",
                        )
                    })
                    .collect();
                engine.create_transactions(items).await.unwrap();
            }
        })
    };
    let mut expected = 0i128;
    for batch in 0..150 {
        let items: Vec<TransactionItem> = (0..50)
            .map(|i| {
                transfer(
                    &format!("ryw{batch}-{i}"),
                    &names[i % 8],
                    &names[(i + 1) % 8],
                    "0.01",
                )
            })
            .collect();
        let results = engine
            .create_transactions_answered(items, tally_server::engine::Answer::Brief)
            .await
            .unwrap();
        let last = results.last().unwrap().as_ref().unwrap();
        let read = engine.get_transaction(&format!("ryw{batch}-49")).unwrap();
        assert_eq!(read.seq, last.value.seq, "batch {batch}");
        let (balances, as_of_seq) = engine.balances(&names[..1], AsOf::Now).unwrap();
        assert!(
            as_of_seq >= last.value.seq,
            "batch {batch}: read at {as_of_seq}"
        );
        // a0 is debited by items 0, 8, ... and credited by items 7, 15, ...
        expected += (0..50).filter(|i| i % 8 == 0).count() as i128
            - (0..50).filter(|i| (i + 1) % 8 == 0).count() as i128;
        assert_eq!(
            balances[0].balance.debit_minus_credit(),
            expected,
            "batch {batch}"
        );
    }
    background.await.unwrap();
}
