//! PostgreSQL baseline for the load generator (`benches/load.rs`): the same
//! double-entry work — N accounts, M two-posting transfers in batches of B from
//! C clients, uniform random accounts from the same xorshift64* generator —
//! done by PostgreSQL, each batch one durable transaction.
//!
//! ```text
//! bash benches/pg-baseline.sh --accounts 10000 --transfers 1000000 --batch 8189 --clients 1
//! ```
//!
//! The script starts a throw-away PostgreSQL 15 cluster and passes its
//! connection string in `PG_BASELINE_DSN` (or give `--dsn "host=... user=..."`).
//! Options: `--accounts N` (10,000), `--transfers M` (1,000,000), `--batch B`
//! (8,189), `--clients C` (1), `--dsn DSN`.
//!
//! Schema (created afresh by this program; the tables are dropped first):
//!
//! ```sql
//! CREATE TABLE accounts (
//!     id bigint PRIMARY KEY,
//!     name text UNIQUE,
//!     debits_posted numeric(38,2) NOT NULL DEFAULT 0,
//!     credits_posted numeric(38,2) NOT NULL DEFAULT 0,
//!     debits_must_not_exceed_credits bool,
//!     CONSTRAINT balance_constraint CHECK (
//!         debits_must_not_exceed_credits IS NOT TRUE OR debits_posted <= credits_posted)
//! );
//! CREATE TABLE transfers (
//!     id text PRIMARY KEY,
//!     debit_account bigint REFERENCES accounts,
//!     credit_account bigint REFERENCES accounts,
//!     amount numeric(38,2) CHECK (amount > 0),
//!     created_at timestamptz DEFAULT now()
//! );
//! ```
//!
//! One batch is one transaction (see [`submit`]):
//! 1. `SELECT id FROM accounts WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`
//!    locks every account the batch touches in account-id order, so concurrent
//!    clients cannot deadlock (NO KEY UPDATE does not conflict with the KEY
//!    SHARE locks that the foreign-key checks take);
//! 2. one `INSERT INTO transfers SELECT ... FROM unnest(ids, debits, credits,
//!    amounts)` for all B transfers (primary key = idempotency, foreign keys and
//!    the amount check all enforced);
//! 3. one `UPDATE accounts ... FROM unnest(ids, debit sums, credit sums)` with
//!    the batch's postings summed per account (in account-id order); the
//!    CHECK constraint fails the whole batch if a constrained account would go
//!    over (the bench's accounts are unconstrained, as Tally's asset accounts
//!    in load.rs are, but the check is evaluated on every updated row and a
//!    self-test at start proves it rejects a batch);
//! 4. `COMMIT`, which returns only once the WAL is flushed (fsync=on,
//!    synchronous_commit=on). The batch's latency is measured from before the
//!    per-account sums to the end of the commit.

use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tally::workload::{account_name, peak_memory_kib, print_report, Rng, Workload};
use tokio_postgres::{Client, NoTls};

/// Id of an extra account with the balance constraint on, used by the self-test.
const GUARDED_ACCOUNT: i64 = -1;

const SCHEMA: &str = "
DROP TABLE IF EXISTS transfers;
DROP TABLE IF EXISTS accounts;
CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    name text UNIQUE,
    debits_posted numeric(38,2) NOT NULL DEFAULT 0,
    credits_posted numeric(38,2) NOT NULL DEFAULT 0,
    debits_must_not_exceed_credits bool,
    CONSTRAINT balance_constraint CHECK (
        debits_must_not_exceed_credits IS NOT TRUE OR debits_posted <= credits_posted)
);
CREATE TABLE transfers (
    id text PRIMARY KEY,
    debit_account bigint REFERENCES accounts,
    credit_account bigint REFERENCES accounts,
    amount numeric(38,2) CHECK (amount > 0),
    created_at timestamptz DEFAULT now()
);
";

const LOCK_ACCOUNTS: &str =
    "SELECT id FROM accounts WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE";

// Amounts travel as decimal text and are parsed by the server, as Tally's are.
const INSERT_TRANSFERS: &str = "INSERT INTO transfers (id, debit_account, credit_account, amount)
     SELECT t.id, t.debit, t.credit, t.amount::numeric(38,2)
     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS t(id, debit, credit, amount)";

const UPDATE_BALANCES: &str = "UPDATE accounts AS a
     SET debits_posted = a.debits_posted + v.debits::numeric,
         credits_posted = a.credits_posted + v.credits::numeric
     FROM unnest($1::bigint[], $2::text[], $3::text[]) AS v(id, debits, credits)
     WHERE a.id = v.id";

/// One batch of transfers, as columns.
#[derive(Default)]
struct Transfers {
    ids: Vec<String>,
    debits: Vec<i64>,
    credits: Vec<i64>,
    amounts: Vec<Decimal>,
}

impl Transfers {
    fn push(&mut self, id: String, debit: i64, credit: i64, amount: Decimal) {
        self.ids.push(id);
        self.debits.push(debit);
        self.credits.push(credit);
        self.amounts.push(amount);
    }
}

/// Writes one batch as one transaction; returns once it is durably committed.
async fn submit(client: &mut Client, batch: &Transfers) -> Result<(), tokio_postgres::Error> {
    // Postings summed per account, in account-id order.
    let mut sums: BTreeMap<i64, (Decimal, Decimal)> = BTreeMap::new();
    for ((debit, credit), amount) in batch.debits.iter().zip(&batch.credits).zip(&batch.amounts) {
        sums.entry(*debit).or_default().0 += *amount;
        sums.entry(*credit).or_default().1 += *amount;
    }
    let ids: Vec<i64> = sums.keys().copied().collect();
    let debit_sums: Vec<String> = sums.values().map(|(d, _)| d.to_string()).collect();
    let credit_sums: Vec<String> = sums.values().map(|(_, c)| c.to_string()).collect();
    let amounts: Vec<String> = batch.amounts.iter().map(Decimal::to_string).collect();

    let tx = client.transaction().await?;
    tx.execute(LOCK_ACCOUNTS, &[&ids]).await?;
    let inserted = tx
        .execute(
            INSERT_TRANSFERS,
            &[&batch.ids, &batch.debits, &batch.credits, &amounts],
        )
        .await?;
    assert_eq!(inserted as usize, batch.ids.len(), "transfers inserted");
    let updated = tx
        .execute(UPDATE_BALANCES, &[&ids, &debit_sums, &credit_sums])
        .await?;
    assert_eq!(updated as usize, ids.len(), "accounts updated");
    tx.commit().await
}

async fn connect(dsn: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(dsn, NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            panic!("PostgreSQL connection: {error}");
        }
    });
    client
}

async fn setup(client: &mut Client, accounts: usize) {
    client.batch_execute(SCHEMA).await.expect("create schema");
    let ids: Vec<i64> = (0..accounts as i64).collect();
    let names: Vec<String> = (0..accounts).map(account_name).collect();
    client
        .execute(
            "INSERT INTO accounts (id, name, debits_must_not_exceed_credits)
             SELECT id, name, false FROM unnest($1::bigint[], $2::text[]) AS t(id, name)",
            &[&ids, &names],
        )
        .await
        .expect("open accounts");
    client
        .execute(
            "INSERT INTO accounts (id, name, debits_must_not_exceed_credits)
             VALUES ($1, 'assets:bench:guarded', true)",
            &[&GUARDED_ACCOUNT],
        )
        .await
        .expect("open guarded account");
}

/// The balance constraint fails a whole batch: a batch whose last transfer
/// overdraws the guarded account leaves no transfer and no balance behind.
async fn self_test(client: &mut Client) {
    let mut batch = Transfers::default();
    batch.push("selftest-1".into(), 0, 1, Decimal::new(1, 2));
    batch.push("selftest-2".into(), GUARDED_ACCOUNT, 0, Decimal::new(1, 2));
    let error = submit(client, &batch)
        .await
        .expect_err("overdrawing a guarded account must fail the batch");
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION),
        "{error}"
    );
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM transfers),
                    (SELECT count(*) FROM accounts WHERE debits_posted <> 0 OR credits_posted <> 0)",
            &[],
        )
        .await
        .expect("self-test check");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (0, 0));
}

async fn client_loop(
    dsn: String,
    client_index: usize,
    batches: Vec<(usize, usize)>,
    accounts: usize,
) -> (Vec<Duration>, Option<u64>) {
    let mut client = connect(&dsn).await;
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("backend pid")
        .get(0);
    let mut rng = Rng::for_client(client_index);
    let amount = Decimal::new(1, 2);
    let mut latencies = Vec::with_capacity(batches.len());
    for (start, len) in batches {
        let mut batch = Transfers::default();
        for n in start..start + len {
            let (debit, credit) = rng.transfer(accounts);
            batch.push(format!("t{n}"), debit as i64, credit as i64, amount);
        }
        let sent = Instant::now();
        submit(&mut client, &batch).await.expect("submit batch");
        latencies.push(sent.elapsed());
    }
    (latencies, peak_memory_kib(backend as u32))
}

/// After the run: every transfer is there and the books balance.
async fn verify(client: &Client, transfers: usize) {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM transfers),
                    (SELECT sum(amount)::text FROM transfers),
                    sum(debits_posted)::text, sum(credits_posted)::text
             FROM accounts",
            &[],
        )
        .await
        .expect("verify");
    let count: i64 = row.get(0);
    assert_eq!(count as usize, transfers, "transfers stored");
    let total: Option<String> = row.get(1);
    let debits: String = row.get(2);
    let credits: String = row.get(3);
    let expected = (Decimal::new(1, 2) * Decimal::from(transfers)).to_string();
    assert_eq!(total.unwrap_or_else(|| "0.00".into()), expected);
    assert_eq!(debits, expected, "debits posted");
    assert_eq!(credits, expected, "credits posted");
}

#[tokio::main]
async fn main() {
    let options = Workload::from_args("--dsn", Some("PG_BASELINE_DSN"));
    let dsn = options
        .target
        .clone()
        .expect("set PG_BASELINE_DSN or pass --dsn (benches/pg-baseline.sh does this)");
    let mut client = connect(&dsn).await;
    setup(&mut client, options.accounts).await;
    self_test(&mut client).await;
    let settings = client
        .query_one(
            "SELECT version(), current_setting('fsync'), current_setting('synchronous_commit'),
                    current_setting('full_page_writes'), current_setting('shared_buffers')",
            &[],
        )
        .await
        .expect("settings");
    let (version, fsync, synchronous_commit, full_page_writes, shared_buffers): (
        String,
        String,
        String,
        String,
        String,
    ) = (
        settings.get(0),
        settings.get(1),
        settings.get(2),
        settings.get(3),
        settings.get(4),
    );
    if fsync != "on" || synchronous_commit != "on" {
        eprintln!("warning: fsync={fsync} synchronous_commit={synchronous_commit}: commits are not durable");
    }

    let per_client = options.batches_per_client();
    let started = Instant::now();
    let tasks: Vec<_> = per_client
        .into_iter()
        .enumerate()
        .map(|(i, batches)| tokio::spawn(client_loop(dsn.clone(), i, batches, options.accounts)))
        .collect();
    let mut latencies = Vec::new();
    let mut backend_peak: Option<u64> = None;
    for task in tasks {
        let (client_latencies, peak) = task.await.expect("client task");
        latencies.extend(client_latencies);
        backend_peak = backend_peak.max(peak);
    }
    let elapsed = started.elapsed();
    verify(&client, options.transfers).await;
    println!("{version}");
    println!(
        "fsync={fsync} synchronous_commit={synchronous_commit} full_page_writes={full_page_writes} shared_buffers={shared_buffers}"
    );
    print_report(&options, elapsed, latencies);
    if let Some(kib) = backend_peak {
        // PostgreSQL is many processes sharing shared_buffers; this is the
        // largest client backend's VmHWM, shared pages it touched included.
        println!("backend peak memory {:.0} MiB", kib as f64 / 1024.0);
    }
}
