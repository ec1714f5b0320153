// Goal: SIGKILL at random moments under load never loses an acknowledged write,
// never half-applies a batch, never breaks the hash chain or the balances, and
// retrying the batches whose outcome was unknown records each id exactly once.
//
// Writers submit batches of 100 items (transfers among 50 accounts, a third of
// them with a balance constraint, and pending + post pairs) as fast as they can;
// the test kills `tallyd` 20-300 ms after each start, at least 20 times, and
// after every restart checks the journal and the balances against a model built
// from what was sent. The seed is printed; set TALLY_CRASH_SEED to replay it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::prelude::ToPrimitive;
use tally::crash::seeded_rng;
use tally::workload::Rng;
use tally::Tallyd;
use tally_client::{
    AccountSpec, AccountType, AsOf, BalanceConstraint, Batch, Client, Decimal, ErrorCode,
    PostPendingSpec, Transaction, TransactionFilter, TrialBalanceQuery,
};
use tally_core::entry::{Digest, EntryBody};
use tokio_stream::StreamExt;

const ACCOUNT_COUNT: usize = 50;
const BATCH_ITEMS: usize = 100;
const WRITER_COUNT: usize = 3;
const KILLS: usize = 20;
/// 1,000.00 USD.
const FUNDING_CENTS: i64 = 100_000;
const SOURCE: &str = "equity:source";

fn user(index: usize) -> String {
    format!("liabilities:user:{index:02}")
}

#[derive(Clone, Debug)]
enum Op {
    Transfer { from: usize, to: usize, cents: i64 },
    Pending { from: usize, to: usize, cents: i64 },
    Post { pending_id: String },
}

#[derive(Clone, Debug)]
struct Item {
    id: String,
    op: Op,
}

fn to_batch(items: &[Item]) -> Batch {
    let mut batch = Batch::new();
    for item in items {
        match &item.op {
            Op::Transfer { from, to, cents } | Op::Pending { from, to, cents } => {
                let amount = Decimal::new(*cents, 2);
                let spec = Transaction::builder(item.id.clone())
                    .debit(user(*from), amount)
                    .credit(user(*to), amount);
                if matches!(item.op, Op::Pending { .. }) {
                    batch.push(spec.pending());
                } else {
                    batch.push(spec);
                }
            }
            Op::Post { pending_id } => {
                batch.push(PostPendingSpec::new(item.id.clone(), pending_id.clone()))
            }
        }
    }
    batch
}

/// 100 items with fresh ids: transfers, and pending transfers each followed
/// (a few items later) by its post.
fn make_batch(rng: &mut Rng, batch_number: u64) -> Vec<Item> {
    let mut items = Vec::with_capacity(BATCH_ITEMS);
    let mut posts = Vec::new();
    while items.len() + posts.len() < BATCH_ITEMS {
        let id = format!("b{batch_number}-{}", items.len());
        let from = rng.below(ACCOUNT_COUNT);
        let to = (from + 1 + rng.below(ACCOUNT_COUNT - 1)) % ACCOUNT_COUNT;
        let cents = 1 + rng.below(5_000) as i64;
        if rng.below(10) == 0 && items.len() + posts.len() + 2 <= BATCH_ITEMS {
            posts.push(Item {
                id: format!("{id}-post"),
                op: Op::Post {
                    pending_id: id.clone(),
                },
            });
            items.push(Item {
                id,
                op: Op::Pending { from, to, cents },
            });
        } else {
            items.push(Item {
                id,
                op: Op::Transfer { from, to, cents },
            });
        }
        if !posts.is_empty() && rng.below(4) == 0 {
            items.push(posts.remove(0));
        }
    }
    items.append(&mut posts);
    items
}

/// What a writer learnt about one batch.
struct Sent {
    items: Vec<Item>,
    /// `Some`: the call answered (per item: recorded, or the refusal's code).
    /// `None`: no answer (error, timeout, connection lost): outcome unknown.
    answer: Option<Vec<Result<(), ErrorCode>>>,
}

async fn submit(client: &Client, items: &[Item]) -> Option<Vec<Result<(), ErrorCode>>> {
    let results = client.submit(to_batch(items)).await.ok()?;
    Some(
        results
            .into_iter()
            .map(|result| result.map(|_| ()).map_err(|error| error.code))
            .collect(),
    )
}

/// Submits batches until told to stop or until a call gets no answer.
async fn writer(
    client: Client,
    seed: u64,
    batch_numbers: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Vec<Sent> {
    let mut rng = Rng(seed | 1);
    let mut sent = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let number = batch_numbers.fetch_add(1, Ordering::SeqCst);
        let items = make_batch(&mut rng, number);
        let answer = submit(&client, &items).await;
        let lost = answer.is_none();
        sent.push(Sent { items, answer });
        if lost {
            break;
        }
    }
    sent
}

/// The journal as the test has verified it so far.
#[derive(Default)]
struct Verified {
    length: u64,
    head: Digest,
    /// Every transaction id with an entry: true when recorded, false when rejected.
    ids: HashMap<String, bool>,
}

/// Reads the journal from where the last check ended: each entry links to the
/// previous one and its hash is recomputed from its canonical bytes; ids are
/// collected and must never repeat.
async fn verify_journal(client: &Client, verified: &mut Verified) {
    let info = client.ledger_info().await.unwrap();
    assert!(
        info.journal_length >= verified.length,
        "the journal shrank from {} to {} entries",
        verified.length,
        info.journal_length
    );
    let mut stream = client.follow_journal(verified.length, false).await.unwrap();
    while let Some(entry) = stream.next().await {
        let entry = entry.unwrap();
        assert_eq!(entry.seq, verified.length, "gap in the journal");
        assert_eq!(entry.prev_hash, verified.head, "prev_hash of {}", entry.seq);
        let hash = tally_core::chain::entry_hash(entry.seq, &verified.head, &entry.canonical);
        assert_eq!(entry.entry_hash, hash, "entry_hash of {}", entry.seq);
        let decoded = tally_core::codec::decode(&entry.canonical).expect("canonical entry");
        let id = match decoded.body {
            EntryBody::TransactionRecorded(body) => Some((body.id, true)),
            EntryBody::PendingPosted(body) => Some((body.id, true)),
            EntryBody::PendingVoided(body) => Some((body.id, true)),
            EntryBody::TransactionRejected(body) => Some((body.id, false)),
            _ => None,
        };
        if let Some((id, recorded)) = id {
            let previous = verified.ids.insert(id.clone(), recorded);
            assert!(previous.is_none(), "id {id} has two journal entries");
        }
        verified.head = hash;
        verified.length += 1;
    }
    assert_eq!(verified.length, info.journal_length);
    assert_eq!(hex::encode(verified.head), info.chain_head);
}

/// Posted and pending (debits, credits) in cents per account, from the items
/// the ledger says it recorded.
#[derive(Default, Debug, PartialEq, Clone, Copy)]
struct Model {
    debits_posted: i64,
    credits_posted: i64,
    debits_pending: i64,
    credits_pending: i64,
}

fn model(batches: &[Vec<Item>], ids: &HashMap<String, bool>) -> BTreeMap<String, Model> {
    let recorded = |id: &str| ids.get(id).copied().unwrap_or(false);
    let mut accounts: BTreeMap<String, Model> = BTreeMap::new();
    for index in 0..ACCOUNT_COUNT {
        let funded = accounts.entry(user(index)).or_default();
        funded.credits_posted = FUNDING_CENTS;
    }
    accounts
        .entry(SOURCE.to_string())
        .or_default()
        .debits_posted = FUNDING_CENTS * ACCOUNT_COUNT as i64;
    for item in batches.iter().flatten() {
        if !recorded(&item.id) {
            continue;
        }
        match &item.op {
            Op::Transfer { from, to, cents } => {
                accounts.get_mut(&user(*from)).unwrap().debits_posted += cents;
                accounts.get_mut(&user(*to)).unwrap().credits_posted += cents;
            }
            Op::Pending { from, to, cents } => {
                let posted = recorded(&format!("{}-post", item.id));
                let from = accounts.get_mut(&user(*from)).unwrap();
                if posted {
                    from.debits_posted += cents;
                } else {
                    from.debits_pending += cents;
                }
                let to = accounts.get_mut(&user(*to)).unwrap();
                if posted {
                    to.credits_posted += cents;
                } else {
                    to.credits_pending += cents;
                }
            }
            Op::Post { pending_id } => {
                assert!(recorded(pending_id), "{} posted a missing pending", item.id);
            }
        }
    }
    accounts
}

fn cents(amount: Decimal) -> i64 {
    let scaled = amount * Decimal::ONE_HUNDRED;
    assert!(scaled.fract().is_zero(), "{amount} is not whole cents");
    scaled.to_i64().expect("cents fit in i64")
}

async fn assert_balances(client: &Client, batches: &[Vec<Item>], verified: &Verified) {
    let expected = model(batches, &verified.ids);
    let names: Vec<String> = expected.keys().cloned().collect();
    let balances = client.balances(names, AsOf::Now).await.unwrap();
    let actual: BTreeMap<String, Model> = balances
        .balances
        .into_iter()
        .map(|entry| {
            let b = entry.balance;
            let model = Model {
                debits_posted: cents(b.debits_posted),
                credits_posted: cents(b.credits_posted),
                debits_pending: cents(b.debits_pending),
                credits_pending: cents(b.credits_pending),
            };
            (entry.account, model)
        })
        .collect();
    assert_eq!(actual, expected, "balances differ from the model");
    let trial = client
        .trial_balance(TrialBalanceQuery::new())
        .await
        .unwrap();
    assert_eq!(trial.totals.len(), 1);
    for total in &trial.totals {
        assert_eq!(
            total.debit, total.credit,
            "trial balance of {}",
            total.currency
        );
    }
    let (debit, credit) = trial
        .lines
        .iter()
        .fold((Decimal::ZERO, Decimal::ZERO), |sum, line| {
            (sum.0 + line.debit, sum.1 + line.credit)
        });
    assert_eq!(debit, credit, "trial balance lines do not net to zero");
}

/// Every answered item has its journal entry (recorded, or rejected for a
/// reason of state); every unanswered batch is in the journal entirely or not
/// at all.
fn assert_outcomes(sent: &[Sent], verified: &Verified) -> Vec<Vec<Item>> {
    let mut unknown = Vec::new();
    for batch in sent {
        match &batch.answer {
            Some(results) => {
                for (item, result) in batch.items.iter().zip(results) {
                    let entry = verified.ids.get(&item.id).copied();
                    match result {
                        Ok(()) => assert_eq!(entry, Some(true), "acknowledged {} is lost", item.id),
                        Err(code) => assert_eq!(
                            entry,
                            Some(false),
                            "refusal {code:?} of {} is not recorded",
                            item.id
                        ),
                    }
                }
            }
            None => {
                let present = batch
                    .items
                    .iter()
                    .filter(|item| verified.ids.contains_key(&item.id))
                    .count();
                assert!(
                    present == 0 || present == batch.items.len(),
                    "batch {} is half applied: {present} of {} items",
                    batch.items[0].id,
                    batch.items.len()
                );
                unknown.push(batch.items.clone());
            }
        }
    }
    unknown
}

async fn start_server(dir: &std::path::Path) -> (Tallyd, Client) {
    let dir = dir.to_path_buf();
    let server = tokio::task::spawn_blocking(move || Tallyd::start(&dir))
        .await
        .unwrap();
    let client = tally::connect(server.url.clone()).await.unwrap();
    (server, client)
}

async fn set_up(client: &Client) {
    client.define_currency("USD", 2).await.unwrap();
    let mut specs = vec![AccountSpec::new(SOURCE, AccountType::Equity, "USD")];
    for index in 0..ACCOUNT_COUNT {
        let mut spec = AccountSpec::new(user(index), AccountType::Liability, "USD");
        if index % 3 == 0 {
            spec = spec.constraint(BalanceConstraint::DebitsMustNotExceedCredits);
        }
        specs.push(spec);
    }
    for result in client.create_accounts(specs).await.unwrap() {
        result.unwrap();
    }
    let mut funding = Batch::new();
    for index in 0..ACCOUNT_COUNT {
        let amount = Decimal::new(FUNDING_CENTS, 2);
        let spec = Transaction::builder(format!("fund-{index}"))
            .debit(SOURCE, amount)
            .credit(user(index), amount);
        funding.push(spec);
    }
    for result in client.submit(funding).await.unwrap() {
        result.unwrap();
    }
}

/// One life of the server: writers run until the kill; returns what they sent.
async fn run_until_killed(
    server: Tallyd,
    rng: &mut Rng,
    batch_numbers: &Arc<AtomicU64>,
) -> Vec<Sent> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..WRITER_COUNT {
        let client = tally::client_builder(server.url.clone())
            .retries(0)
            .timeout(Duration::from_secs(20))
            .build()
            .await
            .unwrap();
        let task = writer(
            client,
            rng.next_u64(),
            Arc::clone(batch_numbers),
            Arc::clone(&stop),
        );
        writers.push(tokio::spawn(task));
    }
    let delay = Duration::from_millis(20 + rng.below(281) as u64);
    tokio::time::sleep(delay).await;
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    let mut sent = Vec::new();
    for task in writers {
        sent.extend(task.await.unwrap());
    }
    sent
}

/// Resubmits the batches whose outcome was unknown, with the same ids: an
/// applied batch answers entirely from its first outcome (replayed or
/// TRANSACTION_ALREADY_FAILED), a lost one is executed now.
async fn retry_unknown(client: &Client, unknown: Vec<Vec<Item>>) -> Vec<Sent> {
    let mut sent = Vec::new();
    for items in unknown {
        let results = client.submit(to_batch(&items)).await.unwrap();
        let seen: Vec<bool> = results
            .iter()
            .map(|result| match result {
                Ok(recorded) => recorded.replayed,
                Err(error) => error.code == ErrorCode::TransactionAlreadyFailed,
            })
            .collect();
        assert!(
            seen.iter().all(|s| *s) || seen.iter().all(|s| !*s),
            "batch {} was half applied: {seen:?}",
            items[0].id
        );
        let answer = results
            .into_iter()
            .map(|result| result.map(|_| ()).map_err(|error| error.code))
            .collect();
        sent.push(Sent {
            items,
            answer: Some(answer),
        });
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kills_under_load_lose_nothing_acknowledged() {
    let mut rng = seeded_rng("TALLY_CRASH_SEED");
    let dir = tempfile::tempdir().unwrap();
    let batch_numbers = Arc::new(AtomicU64::new(0));
    let mut verified = Verified::default();
    let mut answered: Vec<Sent> = Vec::new();

    let (mut server, client) = start_server(dir.path()).await;
    set_up(&client).await;
    drop(client);
    let (mut unknown_total, mut unknown_applied) = (0, 0);
    for round in 0..KILLS {
        let sent = run_until_killed(server, &mut rng, &batch_numbers).await;
        let (restarted, client) = start_server(dir.path()).await;
        server = restarted;
        verify_journal(&client, &mut verified).await;
        let unknown = assert_outcomes(&sent, &verified);
        unknown_total += unknown.len();
        unknown_applied += unknown
            .iter()
            .filter(|items| verified.ids.contains_key(&items[0].id))
            .count();
        answered.extend(sent.into_iter().filter(|batch| batch.answer.is_some()));
        // Balances over everything sent so far, unknown batches included (the
        // model counts what the journal says was recorded).
        let mut batches: Vec<Vec<Item>> = answered.iter().map(|b| b.items.clone()).collect();
        batches.extend(unknown.iter().cloned());
        assert_balances(&client, &batches, &verified).await;

        let retried = retry_unknown(&client, unknown).await;
        verify_journal(&client, &mut verified).await;
        assert_outcomes(&retried, &verified);
        answered.extend(retried);
        let batches: Vec<Vec<Item>> = answered.iter().map(|b| b.items.clone()).collect();
        assert_balances(&client, &batches, &verified).await;
        println!(
            "round {round}: {} batches answered in all, {} journal entries",
            answered.len(),
            verified.length
        );
    }
    let rejected = verified.ids.values().filter(|recorded| !**recorded).count();
    println!(
        "{unknown_total} batches had an unknown outcome ({unknown_applied} of them had been \
         applied) and were retried; {rejected} items were refused for their balance constraint"
    );

    // Every id sent is in the journal exactly once (verify_journal refuses
    // repeats), and the transactions the ledger lists are the recorded ones.
    let client = tally::connect(server.url.clone()).await.unwrap();
    let sent_ids: HashSet<&str> = answered
        .iter()
        .flat_map(|b| b.items.iter().map(|i| i.id.as_str()))
        .collect();
    for id in &sent_ids {
        assert!(verified.ids.contains_key(*id), "{id} has no journal entry");
    }
    let listed: HashSet<String> = client
        .list_all_transactions(&TransactionFilter::new())
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    let recorded: HashSet<String> = verified
        .ids
        .iter()
        .filter(|(_, recorded)| **recorded)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(listed, recorded);
    drop(client);

    tokio::task::spawn_blocking(move || server.terminate_and_verify())
        .await
        .unwrap();
}
