// Goal: the load generator (`benches/load.rs`, `tally::loadgen`) still works —
// a tiny run against a real `tallyd` sends every transfer, every one is
// acknowledged, its report counts what was sent, and the ledger afterwards holds
// exactly what the generator says it posted — on both wires (`--wire protobuf`,
// the default, and `--wire packed`). Its plan keeps its promises (batch
// sizes, every pending transfer posted once, later, by the same client). No
// timing is asserted.

use std::collections::{BTreeMap, BTreeSet};

use tally::loadgen::{self, RunOptions, Target};
use tally::workload::{account_name, Step, Wire, Workload};
use tally::Tallyd;
use tally_client::{AsOf, Decimal, PendingState, TransactionKind, TrialBalanceQuery};

fn workload(args: &[&str]) -> Workload {
    let args = args.iter().map(|s| s.to_string()).collect();
    Workload::from_arg_list(args, "--server", None)
}

/// The smoke run's workload: 50 accounts, 2,000 transfers in batches of 100
/// from 2 clients, a fifth of them on 3 hot accounts, a fifth two-phase.
fn smoke() -> Workload {
    workload(&[
        "--accounts",
        "50",
        "--transfers",
        "2000",
        "--batch",
        "100",
        "--clients",
        "2",
        "--hot-accounts",
        "3",
        "--hot-share",
        "0.2",
        "--two-phase-share",
        "0.2",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_load_run_is_acknowledged_and_the_ledger_holds_what_was_sent() {
    // The default wire: protobuf, named in the report.
    let workload = smoke();
    assert_eq!(workload.wire, None);
    let text = tiny_run_holds_what_was_sent(workload).await;
    assert!(text.contains("wire=protobuf"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_packed_load_run_is_acknowledged_and_the_ledger_holds_what_was_sent() {
    // `--wire packed`: the same batches through CreateTransactionsPacked, and
    // the same checks.
    let workload = Workload {
        wire: workload(&["--wire", "packed"]).wire,
        ..smoke()
    };
    assert_eq!(workload.wire, Some(Wire::Packed));
    let text = tiny_run_holds_what_was_sent(workload).await;
    assert!(text.contains("wire=packed"), "{text}");
}

/// Runs `workload` (the smoke run's, on either wire) against a fresh `tallyd`
/// and checks the report and the ledger against what the generator sent.
/// Returns the report's text.
async fn tiny_run_holds_what_was_sent(workload: Workload) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Tallyd::start(dir.path());
    let target = Target {
        url: server.url.clone(),
        api_key: Some(tally::ADMIN_TOKEN.to_string()),
    };
    let options = RunOptions {
        track_all_accounts: true,
        ..RunOptions::default()
    };
    let outcome = loadgen::run(&workload, &target, options)
        .await
        .expect("load run");

    print!("{}", outcome.report.text());
    // The report counts what was sent, and everything sent was acknowledged.
    let counts = outcome.report.counts;
    assert_eq!(counts.transfers, 2_000);
    assert_eq!(counts.pending, 400, "every fifth transfer is two-phase");
    assert_eq!(counts.posts, 400, "every pending transfer is posted");
    assert_eq!(counts.transactions, 2_400);
    assert_eq!(counts.postings, 4_800);
    assert!(counts.batches >= 24, "{} batches", counts.batches);
    assert_eq!(outcome.acknowledged, 2_400);
    assert_eq!(outcome.replayed, 0);
    assert!(outcome.report.latency.max >= outcome.report.latency.p50);
    assert_eq!(outcome.tally.transfers, 2_000);
    // About a fifth of the transfers touch a hot account (the draw is random).
    assert!(
        (300..=500).contains(&counts.hot_transfers),
        "{} hot transfers",
        counts.hot_transfers
    );
    assert_eq!(outcome.tally.hot_units(), counts.hot_transfers as u64);
    // Each item is one journal entry (plus any checkpoint the server signed).
    let grown = outcome.journal_after - outcome.journal_before;
    assert!(grown >= 2_400, "journal grew by {grown}");
    assert!(outcome.report.text().contains("transfers/s"));
    let json: serde_json::Value =
        serde_json::from_str(&outcome.report.json()).expect("the report's JSON line parses");
    assert_eq!(json["transactions"], 2_400);
    assert_eq!(json["postings"], 4_800);
    assert_eq!(json["two_phase_transfers"], 400);
    assert_eq!(json["peak_memory_mib"], serde_json::Value::Null);
    let wire = workload.wire.unwrap_or_default();
    assert_eq!(json["wire"], wire.as_str());

    // The ledger holds what the generator sent: every account, posted amounts
    // only, nothing left pending.
    let client = server.client().await.expect("connect");
    let cent = Decimal::new(1, 2);
    let all = outcome.tally.all.as_ref().expect("every account tallied");
    let names: Vec<String> = (0..workload.accounts).map(account_name).collect();
    let balances = client.balances(names.clone(), AsOf::Now).await.unwrap();
    assert_eq!(balances.balances.len(), workload.accounts);
    let by_name: BTreeMap<&str, _> = balances
        .balances
        .iter()
        .map(|line| (line.account.as_str(), line.balance))
        .collect();
    for (index, name) in names.iter().enumerate() {
        let balance = by_name[name.as_str()];
        let (debits, credits) = all[index];
        assert_eq!(
            balance.debits_posted,
            cent * Decimal::from(debits),
            "{name}"
        );
        assert_eq!(
            balance.credits_posted,
            cent * Decimal::from(credits),
            "{name}"
        );
        assert!(balance.debits_pending.is_zero() && balance.credits_pending.is_zero());
    }
    assert_eq!(
        all.iter().map(|(d, c)| d + c).sum::<u64>(),
        2 * 2_000,
        "each transfer debits one account and credits another"
    );
    // The hot accounts: the same check the bench makes, and their sum.
    let hot_units = loadgen::check_hot_balances(&client, &workload, &outcome.tally)
        .await
        .expect("hot balances");
    let hot_sum: Decimal = by_name
        .iter()
        .filter(|(name, _)| names[..3].iter().any(|hot| hot == *name))
        .map(|(_, b)| b.debits_posted + b.credits_posted)
        .sum();
    assert_eq!(hot_sum, cent * Decimal::from(hot_units));

    // The trial balance of the bench accounts: each line is the account's
    // debits minus credits as tallied, and the totals balance.
    let trial = client
        .trial_balance(TrialBalanceQuery::new().prefix("assets:bench:"))
        .await
        .unwrap();
    assert_eq!(trial.lines.len(), workload.accounts);
    for line in &trial.lines {
        let index: usize = line.account["assets:bench:a".len()..].parse().unwrap();
        let (debits, credits) = all[index];
        let net = cent * (Decimal::from(debits) - Decimal::from(credits));
        assert_eq!(line.debit - line.credit, net, "{}", line.account);
    }
    assert_eq!(trial.totals.len(), 1);
    assert_eq!(trial.totals[0].debit, trial.totals[0].credit);

    // A two-phase transfer: pending, posted in full by its post.
    let pending = client.get_transaction("t4").await.unwrap();
    assert_eq!(pending.pending_state, Some(PendingState::Posted));
    assert_eq!(pending.resolved_by.as_deref(), Some("t4-post"));
    let post = client.get_transaction("t4-post").await.unwrap();
    assert_eq!(post.kind, TransactionKind::PostPending);
    assert_eq!(post.pending_id.as_deref(), Some("t4"));
    let posted = client.get_transaction("t0").await.unwrap();
    assert_eq!(posted.pending_state, None);
    drop(client);
    tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    outcome.report.text()
}

/// `--rate` paces the clients (the figures it is for are in docs/benchmarks.md):
/// a paced run still sends and gets acknowledged every transfer, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_run_is_acknowledged_and_reports_its_rate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Tallyd::start(dir.path());
    let workload = workload(&[
        "--accounts",
        "20",
        "--transfers",
        "300",
        "--batch",
        "30",
        "--clients",
        "2",
        "--rate",
        "3000",
    ]);
    let target = Target {
        url: server.url.clone(),
        api_key: Some(tally::ADMIN_TOKEN.to_string()),
    };
    let outcome = loadgen::run(&workload, &target, RunOptions::default())
        .await
        .expect("paced load run");
    assert_eq!(outcome.report.counts.transfers, 300);
    assert_eq!(outcome.acknowledged, 300);
    assert!(workload.describe().contains("rate=3000"));
    let json: serde_json::Value =
        serde_json::from_str(&outcome.report.json()).expect("the report's JSON line parses");
    assert_eq!(json["rate"], 3000);
}

#[test]
fn the_plan_keeps_batches_within_size_and_posts_every_pending_transfer_once_later() {
    for args in [
        smoke(),
        workload(&[
            "--accounts",
            "10",
            "--transfers",
            "37",
            "--batch",
            "1",
            "--clients",
            "3",
            "--two-phase-share",
            "1",
        ]),
        workload(&[
            "--accounts",
            "10",
            "--transfers",
            "1000",
            "--batch",
            "7",
            "--clients",
            "4",
            "--two-phase-share",
            "0.33",
        ]),
        workload(&[
            "--accounts",
            "12",
            "--transfers",
            "500",
            "--batch",
            "64",
            "--hot-accounts",
            "10",
            "--hot-share",
            "1",
        ]),
    ] {
        let mut sent = BTreeSet::new();
        let mut pending_of_client: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        for (client, generator) in args.generators(true).into_iter().enumerate() {
            for (index, batch) in generator.enumerate() {
                assert!(!batch.items.is_empty() && batch.items.len() <= args.batch);
                for item in &batch.items {
                    assert!(item.debit != item.credit && item.debit < args.accounts);
                    assert!(item.credit < args.accounts);
                    match item.step {
                        Step::Posted | Step::Pending => {
                            assert!(sent.insert(item.transfer), "t{} once", item.transfer);
                            assert_eq!(
                                item.step == Step::Pending,
                                args.is_two_phase(item.transfer)
                            );
                            if item.step == Step::Pending {
                                pending_of_client.insert(item.transfer, (client, index));
                            }
                        }
                        Step::Post => {
                            let (owner, at) = pending_of_client
                                .remove(&item.transfer)
                                .expect("a post of an open pending transfer");
                            assert_eq!(
                                (owner, at + 1),
                                (client, index),
                                "posted in the next batch"
                            );
                        }
                    }
                    if args.hot_accounts > 0 && args.hot_share == 1.0 {
                        let hot = (item.debit < args.hot_accounts) as u8
                            + (item.credit < args.hot_accounts) as u8;
                        assert_eq!(hot, 1, "one side hot");
                    }
                }
            }
        }
        assert_eq!(sent.len(), args.transfers);
        assert!(
            pending_of_client.is_empty(),
            "every pending transfer posted"
        );
        assert_eq!(
            sent.iter().filter(|&&n| args.is_two_phase(n)).count(),
            args.two_phase_before(args.transfers)
        );
    }
}

#[test]
fn the_workload_is_the_same_for_every_bench_and_run() {
    // Two generators of the same options give the same batches; with no hot
    // accounts and no two-phase share, the transfers are the uniform draws the
    // benches made before these options existed.
    let options = smoke();
    let first: Vec<_> = options.generators(false).into_iter().flatten().collect();
    let second: Vec<_> = options.generators(false).into_iter().flatten().collect();
    assert_eq!(first, second);

    let uniform = workload(&["--accounts", "100", "--transfers", "250", "--batch", "100"]);
    let mut rng = tally::workload::Rng::for_client(0);
    let items: Vec<_> = uniform
        .generators(false)
        .into_iter()
        .flatten()
        .flat_map(|batch| batch.items)
        .collect();
    assert_eq!(items.len(), 250);
    for (n, item) in items.iter().enumerate() {
        assert_eq!((item.step, item.transfer), (Step::Posted, n));
        assert_eq!((item.debit, item.credit), rng.transfer(100));
        assert_eq!(item.id(), format!("t{n}"));
    }
}
