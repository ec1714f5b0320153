//! PostgreSQL baseline for the load generator (`benches/load.rs`): the same
//! double-entry work — N accounts, M transfers of 0.01 in batches of B items
//! from C clients, the same accounts (uniform, or a share on K hot accounts)
//! and the same two-phase transfers, all from the same seeded generator
//! (`tally::workload`) — done by PostgreSQL, each batch one durable
//! transaction.
//!
//! ```text
//! bash benches/pg-baseline.sh --accounts 10000 --transfers 1000000 --batch 8189 --clients 1
//! ```
//!
//! The script starts a throw-away PostgreSQL 15 cluster and passes its
//! connection string in `PG_BASELINE_DSN` (or give `--dsn "host=... user=..."`).
//! Options: those of `load` — `--accounts N` (10,000), `--transfers M`
//! (1,000,000), `--batch B` (8,189), `--clients C` (1), `--hot-accounts K`,
//! `--hot-share F`, `--two-phase-share F`, `--json` — and `--dsn DSN`.
//!
//! Schema (created afresh by this program; the tables are dropped first):
//!
//! ```sql
//! CREATE TABLE accounts (
//!     id bigint PRIMARY KEY,
//!     name text UNIQUE,
//!     debits_posted numeric(38,2) NOT NULL DEFAULT 0,
//!     credits_posted numeric(38,2) NOT NULL DEFAULT 0,
//!     debits_pending numeric(38,2) NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
//!     credits_pending numeric(38,2) NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
//!     debits_must_not_exceed_credits bool,
//!     CONSTRAINT balance_constraint CHECK (
//!         debits_must_not_exceed_credits IS NOT TRUE
//!         OR debits_posted + debits_pending <= credits_posted)
//! );
//! CREATE TABLE transfers (
//!     id text PRIMARY KEY,
//!     debit_account bigint REFERENCES accounts,
//!     credit_account bigint REFERENCES accounts,
//!     amount numeric(38,2) CHECK (amount > 0),
//!     kind text NOT NULL DEFAULT 'posted' CHECK (kind IN ('posted', 'pending', 'post')),
//!     pending_state text CHECK ((kind = 'pending') = (pending_state IS NOT NULL)
//!                               AND pending_state IN ('open', 'posted')),
//!     pending_id text REFERENCES transfers,
//!     created_at timestamptz DEFAULT now(),
//!     CHECK ((kind = 'post') = (pending_id IS NOT NULL))
//! );
//! CREATE UNIQUE INDEX transfers_one_post ON transfers (pending_id) WHERE pending_id IS NOT NULL;
//! ```
//!
//! One batch is one transaction (see [`submit`]):
//! 1. `SELECT id FROM accounts WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`
//!    locks every account the batch touches in account-id order, so concurrent
//!    clients cannot deadlock (NO KEY UPDATE does not conflict with the KEY
//!    SHARE locks that the foreign-key checks take);
//! 2. posts only: `UPDATE transfers SET pending_state = 'posted' WHERE id =
//!    ANY($1) AND kind = 'pending' AND pending_state = 'open' RETURNING ...`
//!    resolves each pending transfer exactly once and returns its accounts and
//!    amount, which the post moves (the post names only the pending id, as in
//!    Tally);
//! 3. one `INSERT INTO transfers SELECT ... FROM unnest(...)` for all the
//!    batch's rows (primary key = idempotency, foreign keys and the amount
//!    check all enforced; a post's row records its pending id, unique);
//! 4. one `UPDATE accounts ... FROM unnest(...)` with the batch's amounts
//!    summed per account (in account-id order): posted transfers add to the
//!    posted columns, pending ones to the pending columns, posts move their
//!    amount from pending to posted. The balance constraint counts pending
//!    debits, so a reservation is checked when it is made and fails the whole
//!    batch if a constrained account would go over (the bench's accounts are
//!    unconstrained, as Tally's asset accounts in load.rs are, but the check is
//!    evaluated on every updated row and a self-test at start proves it
//!    rejects a batch, a reservation included). A batch with no two-phase item
//!    leaves the pending columns out of steps 3 and 4;
//! 5. `COMMIT`, which returns only once the WAL is flushed (fsync=on,
//!    synchronous_commit=on). The batch's latency is measured from step 1's
//!    preparation (the lock list) to the end of the commit.

use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tally::workload::{
    peak_memory_kib, prepare_ahead, Counts, Generator, Latency, PlannedBatch, Prepared, Report,
    Step, Tally, Workload,
};
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
    debits_pending numeric(38,2) NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    credits_pending numeric(38,2) NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    debits_must_not_exceed_credits bool,
    CONSTRAINT balance_constraint CHECK (
        debits_must_not_exceed_credits IS NOT TRUE
        OR debits_posted + debits_pending <= credits_posted)
);
CREATE TABLE transfers (
    id text PRIMARY KEY,
    debit_account bigint REFERENCES accounts,
    credit_account bigint REFERENCES accounts,
    amount numeric(38,2) CHECK (amount > 0),
    kind text NOT NULL DEFAULT 'posted' CHECK (kind IN ('posted', 'pending', 'post')),
    pending_state text CHECK ((kind = 'pending') = (pending_state IS NOT NULL)
                              AND pending_state IN ('open', 'posted')),
    pending_id text REFERENCES transfers,
    created_at timestamptz DEFAULT now(),
    CHECK ((kind = 'post') = (pending_id IS NOT NULL))
);
CREATE UNIQUE INDEX transfers_one_post ON transfers (pending_id) WHERE pending_id IS NOT NULL;
";

const LOCK_ACCOUNTS: &str =
    "SELECT id FROM accounts WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE";

const RESOLVE_PENDING: &str = "UPDATE transfers SET pending_state = 'posted'
     WHERE id = ANY($1::text[]) AND kind = 'pending' AND pending_state = 'open'
     RETURNING id, debit_account, credit_account, amount::text";

// Amounts travel as decimal text and are parsed by the server, as Tally's are.
const INSERT_TRANSFERS: &str = "INSERT INTO transfers (id, debit_account, credit_account, amount)
     SELECT t.id, t.debit, t.credit, t.amount::numeric(38,2)
     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS t(id, debit, credit, amount)";

const INSERT_TRANSFERS_TWO_PHASE: &str = "INSERT INTO transfers
         (id, debit_account, credit_account, amount, kind, pending_state, pending_id)
     SELECT t.id, t.debit, t.credit, t.amount::numeric(38,2), t.kind, t.pending_state, t.pending_id
     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
         AS t(id, debit, credit, amount, kind, pending_state, pending_id)";

const UPDATE_BALANCES: &str = "UPDATE accounts AS a
     SET debits_posted = a.debits_posted + v.debits::numeric,
         credits_posted = a.credits_posted + v.credits::numeric
     FROM unnest($1::bigint[], $2::text[], $3::text[]) AS v(id, debits, credits)
     WHERE a.id = v.id";

const UPDATE_BALANCES_TWO_PHASE: &str = "UPDATE accounts AS a
     SET debits_posted = a.debits_posted + v.debits::numeric,
         credits_posted = a.credits_posted + v.credits::numeric,
         debits_pending = a.debits_pending + v.debits_pending::numeric,
         credits_pending = a.credits_pending + v.credits_pending::numeric
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
         AS v(id, debits, credits, debits_pending, credits_pending)
     WHERE a.id = v.id";

/// One batch: new transfers as columns, and posts of pending ones.
#[derive(Default)]
struct Transfers {
    ids: Vec<String>,
    debits: Vec<i64>,
    credits: Vec<i64>,
    amounts: Vec<Decimal>,
    pending: Vec<bool>,
    /// Posts: their ids and the pending transfers they post.
    post_ids: Vec<String>,
    post_pending_ids: Vec<String>,
    /// The accounts the posts touch, as the generator knows them (used to take
    /// the locks up front; the amounts moved come from the stored rows).
    post_accounts: Vec<i64>,
}

impl Transfers {
    fn push(&mut self, id: String, debit: i64, credit: i64, amount: Decimal, pending: bool) {
        self.ids.push(id);
        self.debits.push(debit);
        self.credits.push(credit);
        self.amounts.push(amount);
        self.pending.push(pending);
    }

    fn push_post(&mut self, id: String, pending_id: String, debit: i64, credit: i64) {
        self.post_ids.push(id);
        self.post_pending_ids.push(pending_id);
        self.post_accounts.extend([debit, credit]);
    }

    fn has_two_phase(&self) -> bool {
        !self.post_ids.is_empty() || self.pending.iter().any(|&p| p)
    }
}

/// The rows of a planned batch.
fn to_transfers(planned: &PlannedBatch) -> Transfers {
    let amount = Decimal::new(1, 2);
    let mut batch = Transfers::default();
    for item in &planned.items {
        let (debit, credit) = (item.debit as i64, item.credit as i64);
        match item.step {
            Step::Posted => batch.push(item.id(), debit, credit, amount, false),
            Step::Pending => batch.push(item.id(), debit, credit, amount, true),
            Step::Post => batch.push_post(item.id(), item.pending_id(), debit, credit),
        }
    }
    batch
}

#[derive(Debug)]
enum SubmitError {
    Sql(tokio_postgres::Error),
    /// Posts whose pending transfer is missing or already resolved.
    NotOpen(usize),
}

impl From<tokio_postgres::Error> for SubmitError {
    fn from(error: tokio_postgres::Error) -> Self {
        SubmitError::Sql(error)
    }
}

/// Amounts summed per account: posted debits, posted credits, pending debits,
/// pending credits.
type Sums = BTreeMap<i64, [Decimal; 4]>;

/// Writes one batch as one transaction; returns once it is durably committed.
async fn submit(client: &mut Client, batch: &Transfers) -> Result<(), SubmitError> {
    let locks: Vec<i64> = batch
        .debits
        .iter()
        .chain(&batch.credits)
        .chain(&batch.post_accounts)
        .copied()
        .collect::<BTreeSet<i64>>()
        .into_iter()
        .collect();
    let two_phase = batch.has_two_phase();

    let tx = client.transaction().await?;
    tx.execute(LOCK_ACCOUNTS, &[&locks]).await?;

    // Posts: resolve each pending transfer once; its stored row says what moves.
    let mut resolved: HashMap<String, (i64, i64, Decimal)> = HashMap::new();
    if !batch.post_pending_ids.is_empty() {
        for row in tx
            .query(RESOLVE_PENDING, &[&batch.post_pending_ids])
            .await?
        {
            let amount: String = row.get(3);
            let amount: Decimal = amount.parse().expect("numeric amount");
            resolved.insert(row.get(0), (row.get(1), row.get(2), amount));
        }
        if resolved.len() != batch.post_pending_ids.len() {
            return Err(SubmitError::NotOpen(
                batch.post_pending_ids.len() - resolved.len(),
            ));
        }
    }

    // Per-account sums, in account-id order.
    let mut sums: Sums = BTreeMap::new();
    for (((debit, credit), amount), pending) in batch
        .debits
        .iter()
        .zip(&batch.credits)
        .zip(&batch.amounts)
        .zip(&batch.pending)
    {
        let (d, c) = if *pending { (2, 3) } else { (0, 1) };
        sums.entry(*debit).or_default()[d] += *amount;
        sums.entry(*credit).or_default()[c] += *amount;
    }
    for (debit, credit, amount) in resolved.values() {
        let debit_sums = sums.entry(*debit).or_default();
        debit_sums[0] += *amount;
        debit_sums[2] -= *amount;
        let credit_sums = sums.entry(*credit).or_default();
        credit_sums[1] += *amount;
        credit_sums[3] -= *amount;
    }
    let ids: Vec<i64> = sums.keys().copied().collect();
    let column = |i: usize| -> Vec<String> { sums.values().map(|s| s[i].to_string()).collect() };

    let rows = batch.ids.len() + batch.post_ids.len();
    let inserted = if two_phase {
        let mut ids_all = batch.ids.clone();
        let mut debits = batch.debits.clone();
        let mut credits = batch.credits.clone();
        let mut amounts: Vec<String> = batch.amounts.iter().map(Decimal::to_string).collect();
        let mut kinds: Vec<&str> = Vec::with_capacity(rows);
        let mut states: Vec<Option<&str>> = Vec::with_capacity(rows);
        let mut pending_ids: Vec<Option<&str>> = Vec::with_capacity(rows);
        for pending in &batch.pending {
            kinds.push(if *pending { "pending" } else { "posted" });
            states.push(pending.then_some("open"));
            pending_ids.push(None);
        }
        for (post_id, pending_id) in batch.post_ids.iter().zip(&batch.post_pending_ids) {
            let (debit, credit, amount) = resolved[pending_id];
            ids_all.push(post_id.clone());
            debits.push(debit);
            credits.push(credit);
            amounts.push(amount.to_string());
            kinds.push("post");
            states.push(None);
            pending_ids.push(Some(pending_id));
        }
        tx.execute(
            INSERT_TRANSFERS_TWO_PHASE,
            &[
                &ids_all,
                &debits,
                &credits,
                &amounts,
                &kinds,
                &states,
                &pending_ids,
            ],
        )
        .await?
    } else {
        let amounts: Vec<String> = batch.amounts.iter().map(Decimal::to_string).collect();
        tx.execute(
            INSERT_TRANSFERS,
            &[&batch.ids, &batch.debits, &batch.credits, &amounts],
        )
        .await?
    };
    assert_eq!(inserted as usize, rows, "transfers inserted");
    let updated = if two_phase {
        tx.execute(
            UPDATE_BALANCES_TWO_PHASE,
            &[&ids, &column(0), &column(1), &column(2), &column(3)],
        )
        .await?
    } else {
        tx.execute(UPDATE_BALANCES, &[&ids, &column(0), &column(1)])
            .await?
    };
    assert_eq!(updated as usize, ids.len(), "accounts updated");
    tx.commit().await?;
    Ok(())
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
    let names: Vec<String> = (0..accounts).map(tally::workload::account_name).collect();
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
/// overdraws the guarded account, or reserves more than it holds, leaves no
/// transfer and no balance behind; a post of a transfer that is not pending
/// fails its batch too.
async fn self_test(client: &mut Client) {
    let cent = Decimal::new(1, 2);
    let mut overdraw = Transfers::default();
    overdraw.push("selftest-1".into(), 0, 1, cent, false);
    overdraw.push("selftest-2".into(), GUARDED_ACCOUNT, 0, cent, false);
    let mut reserve = Transfers::default();
    reserve.push("selftest-3".into(), 0, 1, cent, true);
    reserve.push("selftest-4".into(), GUARDED_ACCOUNT, 0, cent, true);
    for batch in [&overdraw, &reserve] {
        match submit(client, batch).await {
            Err(SubmitError::Sql(error)) => assert_eq!(
                error.code(),
                Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION),
                "{error}"
            ),
            other => panic!("overdrawing a guarded account must fail the batch: {other:?}"),
        }
    }
    let mut post_missing = Transfers::default();
    post_missing.push("selftest-5".into(), 0, 1, cent, false);
    post_missing.push_post("selftest-6".into(), "selftest-1".into(), 0, 1);
    match submit(client, &post_missing).await {
        Err(SubmitError::NotOpen(1)) => {}
        other => panic!("a post of a transfer that is not pending must fail: {other:?}"),
    }
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM transfers),
                    (SELECT count(*) FROM accounts WHERE debits_posted <> 0 OR credits_posted <> 0
                                                      OR debits_pending <> 0 OR credits_pending <> 0)",
            &[],
        )
        .await
        .expect("self-test check");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (0, 0));
}

struct ClientResult {
    counts: Counts,
    latencies: Vec<Duration>,
    tally: Tally,
    backend_peak_kib: Option<u64>,
}

async fn client_loop(dsn: String, generator: Generator) -> ClientResult {
    let mut client = connect(&dsn).await;
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("backend pid")
        .get(0);
    let mut batches = prepare_ahead(generator, to_transfers);
    let mut counts = Counts::default();
    let mut latencies = Vec::new();
    while let Some(prepared) = batches.recv().await {
        match prepared {
            Prepared::Batch(batch, batch_counts) => {
                let sent = Instant::now();
                submit(&mut client, &batch)
                    .await
                    .unwrap_or_else(|error| panic!("submit batch: {error:?}"));
                latencies.push(sent.elapsed());
                counts += batch_counts;
            }
            Prepared::Done(tally) => {
                return ClientResult {
                    counts,
                    latencies,
                    tally,
                    backend_peak_kib: peak_memory_kib(backend as u32),
                }
            }
        }
    }
    panic!("the batch builder stopped before the end of the plan");
}

/// After the run: every transfer is there, every pending one posted once, the
/// books balance, nothing is left pending, and the hot accounts hold what the
/// generator sent.
async fn verify(client: &Client, workload: &Workload, counts: &Counts, tally: &Tally) {
    let cent = Decimal::new(1, 2);
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM transfers),
                    (SELECT count(*) FROM transfers WHERE kind = 'pending'
                                                      AND pending_state <> 'posted'),
                    (SELECT coalesce(sum(amount), 0)::text FROM transfers WHERE kind <> 'post'),
                    sum(debits_posted)::text, sum(credits_posted)::text,
                    sum(debits_pending)::text, sum(credits_pending)::text
             FROM accounts",
            &[],
        )
        .await
        .expect("verify");
    let decimal = |i: usize| -> Decimal {
        let text: String = row.get(i);
        text.parse().expect("numeric")
    };
    let stored: i64 = row.get(0);
    let open: i64 = row.get(1);
    assert_eq!(
        stored as usize,
        workload.transfers + counts.posts,
        "rows stored"
    );
    assert_eq!(open, 0, "pending transfers left open");
    let expected = cent * Decimal::from(workload.transfers);
    assert_eq!(decimal(2), expected, "amount of transfers");
    assert_eq!(decimal(3), expected, "debits posted");
    assert_eq!(decimal(4), expected, "credits posted");
    assert!(
        decimal(5).is_zero() && decimal(6).is_zero(),
        "amounts pending"
    );
    let hot = client
        .query(
            "SELECT id, debits_posted::text, credits_posted::text FROM accounts
             WHERE id >= 0 AND id < $1 ORDER BY id",
            &[&(workload.hot_accounts as i64)],
        )
        .await
        .expect("hot accounts");
    assert_eq!(hot.len(), workload.hot_accounts);
    for row in hot {
        let id: i64 = row.get(0);
        let (debits, credits) = tally.hot[id as usize];
        let stored = |i: usize| -> Decimal { row.get::<_, String>(i).parse().expect("numeric") };
        assert_eq!(
            (stored(1), stored(2)),
            (cent * Decimal::from(debits), cent * Decimal::from(credits)),
            "hot account {id}"
        );
    }
}

/// The bench's allocator is tallyd's (mimalloc): the bench shares the
/// machine's cores with tallyd, and with the system allocator it spent a
/// tenth of them in malloc and free (docs/benchmarks.md, round 7).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let workload = Workload::from_args("--dsn", Some("PG_BASELINE_DSN"));
    assert!(
        workload.rate == 0.0,
        "--rate paces the load generator only; the baseline runs unpaced"
    );
    let dsn = workload
        .target
        .clone()
        .expect("set PG_BASELINE_DSN or pass --dsn (benches/pg-baseline.sh does this)");
    let mut client = connect(&dsn).await;
    let opening = Instant::now();
    setup(&mut client, workload.accounts).await;
    let open_elapsed = opening.elapsed();
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

    let started = Instant::now();
    let tasks: Vec<_> = workload
        .generators(false)
        .into_iter()
        .map(|generator| tokio::spawn(client_loop(dsn.clone(), generator)))
        .collect();
    let mut counts = Counts::default();
    let mut latencies = Vec::new();
    let mut tally = Tally::new(&workload, false);
    let mut backend_peak: Option<u64> = None;
    for task in tasks {
        let result = task.await.expect("client task");
        counts += result.counts;
        latencies.extend(result.latencies);
        tally.merge(&result.tally);
        backend_peak = backend_peak.max(result.backend_peak_kib);
    }
    let elapsed = started.elapsed();
    verify(&client, &workload, &counts, &tally).await;
    println!("{version}");
    println!(
        "fsync={fsync} synchronous_commit={synchronous_commit} full_page_writes={full_page_writes} shared_buffers={shared_buffers}"
    );
    if workload.hot_accounts > 0 {
        println!(
            "checked            {} hot accounts hold what was sent ({} postings of 0.01)",
            workload.hot_accounts,
            tally.hot_units()
        );
    }
    // PostgreSQL is many processes sharing shared_buffers; the memory figure is
    // the largest client backend's VmHWM, shared pages it touched included.
    Report {
        bench: "pg_baseline".into(),
        workload,
        open_elapsed,
        elapsed,
        counts,
        latency: Latency::of(latencies),
        peak_memory_kib: backend_peak,
        memory_of: "backend".into(),
    }
    .print();
}
