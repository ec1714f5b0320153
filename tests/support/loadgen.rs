//! The load generator (`benches/load.rs`, `benches/scaling.rs` and
//! `tests/load_smoke.rs` run it): opens the workload's accounts in a running
//! `tallyd` through the real client, then sends the workload's batches from
//! C clients, each with one batch in flight, and reports what was sent,
//! throughput and batch latency.
//!
//! Each client's batches are built on a thread of their own, one batch ahead
//! ([`crate::workload::prepare_ahead`]): while a batch waits for its durable
//! answer the next one is made ready, as a bulk writer does, so the
//! generator's own CPU stays out of the measured path. A batch's latency runs
//! from handing it to the client to its answer.
//!
//! Two wires (`Workload::wire`, `--wire`): `protobuf` (the default) sends
//! `CreateTransactions` with brief answers (`submit_brief`, which converts the
//! batch to protobuf inside the measured time); `packed` sends
//! `CreateTransactionsPacked` (`create_transactions_packed`), the batch
//! encoded in full on the builder thread. The report names the wire.
//!
//! [`run`] starts one tokio task per client, so it must run inside a tokio
//! runtime with enough worker threads for the clients to overlap.

use std::time::{Duration, Instant};

use tally_client::{
    AccountSpec, AccountType, AsOf, Batch, Client, ClientBuilder, Decimal, ItemError, PackedBatch,
    PostPendingSpec, Transaction,
};

use crate::workload::{
    account_name, prepare_ahead, Counts, Generator, Latency, PlannedBatch, Prepared, Report, Step,
    Tally, Wire, Workload,
};

/// The server to drive.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://HOST:PORT`
    pub url: String,
    /// The API key sent with every call, if any.
    pub api_key: Option<String>,
}

impl Target {
    /// A client builder for this target (API key included).
    pub fn builder(&self) -> ClientBuilder {
        let builder = Client::builder(self.url.clone());
        match &self.api_key {
            Some(key) => builder.api_key(key.clone()),
            None => builder,
        }
    }

    pub async fn connect(&self) -> Result<Client, String> {
        self.builder()
            .build()
            .await
            .map_err(|error| format!("connect to {}: {error}", self.url))
    }
}

/// Accounts per `create_accounts` call (the server takes up to 8,190).
pub const ACCOUNTS_PER_CALL: usize = 8_000;

/// The amount of every transfer: 0.01 USD.
pub fn amount() -> Decimal {
    Decimal::new(1, 2)
}

/// Defines USD and opens accounts `0..accounts` (asset accounts, no balance
/// constraint), [`ACCOUNTS_PER_CALL`] per call.
pub async fn open_accounts(client: &Client, accounts: usize) -> Result<(), String> {
    client
        .define_currency("USD", 2)
        .await
        .map_err(|error| format!("define USD: {error}"))?;
    let mut start = 0;
    while start < accounts {
        let end = (start + ACCOUNTS_PER_CALL).min(accounts);
        let specs: Vec<AccountSpec> = (start..end)
            .map(|i| AccountSpec::new(account_name(i), AccountType::Asset, "USD"))
            .collect();
        let results = client
            .create_accounts(specs)
            .await
            .map_err(|error| format!("create accounts {start}..{end}: {error}"))?;
        if let Some(failed) = results.iter().find(|r| r.is_err()) {
            return Err(format!("create accounts {start}..{end}: {failed:?}"));
        }
        start = end;
    }
    Ok(())
}

/// The batch a client sends for a planned batch.
pub fn to_batch(planned: &PlannedBatch) -> Batch {
    let amount = amount();
    let mut batch = Batch::new();
    for item in &planned.items {
        match item.step {
            Step::Posted => batch.push(
                Transaction::builder(item.id())
                    .debit(account_name(item.debit), amount)
                    .credit(account_name(item.credit), amount),
            ),
            Step::Pending => batch.push(
                Transaction::builder(item.id())
                    .debit(account_name(item.debit), amount)
                    .credit(account_name(item.credit), amount)
                    .pending(),
            ),
            Step::Post => batch.push(PostPendingSpec::new(item.id(), item.pending_id())),
        }
    }
    batch
}

/// The packed batch a client sends for a planned batch (the same items as
/// [`to_batch`]), encoded in full: call it where batches are built ahead.
pub fn to_packed(planned: &PlannedBatch) -> Result<PackedBatch, String> {
    let amount = amount();
    let mut batch = PackedBatch::new();
    for item in &planned.items {
        let added = match item.step {
            Step::Posted => batch.add_transfer(
                &item.id(),
                &account_name(item.debit),
                &account_name(item.credit),
                amount,
            ),
            Step::Pending => batch.add_transaction(
                &Transaction::builder(item.id())
                    .debit(account_name(item.debit), amount)
                    .credit(account_name(item.credit), amount)
                    .pending(),
            ),
            Step::Post => {
                batch.add_post_pending(&PostPendingSpec::new(item.id(), item.pending_id()))
            }
        };
        added.map_err(|error| format!("packing {}: {error}", item.id()))?;
    }
    // The bytes are made here, not when the batch is sent.
    batch.encoded();
    Ok(batch)
}

/// A batch made ready for one wire.
enum Ready {
    Protobuf(Batch),
    Packed(Result<PackedBatch, String>),
}

/// What a batch's answer says: items refused (with one of them), replays.
struct Answered {
    refused: usize,
    example: Option<String>,
    replayed: usize,
}

impl Answered {
    fn of<T: std::fmt::Debug>(
        results: &[Result<T, ItemError>],
        is_replay: impl Fn(&T) -> bool,
    ) -> Answered {
        Answered {
            refused: results.iter().filter(|r| r.is_err()).count(),
            example: results
                .iter()
                .find(|r| r.is_err())
                .map(|r| format!("{r:?}")),
            replayed: results
                .iter()
                .filter(|r| r.as_ref().is_ok_and(&is_replay))
                .count(),
        }
    }
}

/// Sends one batch on its wire, with brief answers.
async fn send(client: &Client, batch: Ready) -> Result<Answered, String> {
    Ok(match batch {
        Ready::Protobuf(batch) => {
            let results = client
                .submit_brief(batch)
                .await
                .map_err(|error| error.to_string())?;
            Answered::of(&results, |recorded| recorded.replayed)
        }
        Ready::Packed(batch) => {
            let results = client
                .create_transactions_packed(&batch?)
                .await
                .map_err(|error| error.to_string())?;
            Answered::of(&results, |recorded| recorded.replayed)
        }
    })
}

/// What one client did.
#[derive(Debug, Clone)]
pub struct ClientResult {
    pub counts: Counts,
    pub latencies: Vec<Duration>,
    /// Items the server answered as already recorded (a retried batch).
    pub replayed: usize,
    pub tally: Tally,
}

/// The outcome of [`run`].
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `peak_memory_kib` is left `None`: only the caller knows the server's
    /// process.
    pub report: Report,
    /// Items acknowledged, replays included.
    pub acknowledged: usize,
    pub replayed: usize,
    /// What every client sent, added up.
    pub tally: Tally,
    /// The journal length before and after the transfer phase.
    pub journal_before: u64,
    pub journal_after: u64,
}

/// Options of [`run`] that are not part of the workload.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Tally every account's debits and credits, not only the hot ones (memory:
    /// 16 bytes per account per client).
    pub track_all_accounts: bool,
    /// Deadline of each call.
    pub call_timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            track_all_accounts: false,
            call_timeout: Duration::from_secs(120),
        }
    }
}

/// Opens the workload's accounts, then runs its transfer phase: one tokio
/// task per client, each sending its batches one at a time. Fails on the first
/// error or refused item.
pub async fn run(
    workload: &Workload,
    target: &Target,
    options: RunOptions,
) -> Result<Outcome, String> {
    workload.check()?;
    if workload.batch > Batch::ITEMS_MAX {
        return Err(format!(
            "--batch {} is over the server's {} items per call",
            workload.batch,
            Batch::ITEMS_MAX
        ));
    }
    let client = target.connect().await?;
    let opening = Instant::now();
    open_accounts(&client, workload.accounts).await?;
    let open_elapsed = opening.elapsed();
    let journal_before = journal_length(&client).await?;

    let started = Instant::now();
    let wire = workload.wire.unwrap_or_default();
    let handles: Vec<_> = workload
        .generators(options.track_all_accounts)
        .into_iter()
        .map(|generator| tokio::spawn(client_loop(target.clone(), options, wire, generator)))
        .collect();
    let mut counts = Counts::default();
    let mut latencies = Vec::new();
    let mut replayed = 0;
    let mut tally = Tally::new(workload, options.track_all_accounts);
    let mut first_error = None;
    for handle in handles {
        let result = handle
            .await
            .unwrap_or_else(|error| Err(format!("client task: {error}")));
        match result {
            Ok(result) => {
                counts += result.counts;
                latencies.extend(result.latencies);
                replayed += result.replayed;
                tally.merge(&result.tally);
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    let elapsed = started.elapsed();
    if let Some(error) = first_error {
        return Err(error);
    }
    let journal_after = journal_length(&client).await?;
    Ok(Outcome {
        report: Report {
            bench: "load".into(),
            // The report always names the wire, given or not.
            workload: Workload {
                wire: Some(wire),
                ..workload.clone()
            },
            open_elapsed,
            elapsed,
            counts,
            latency: Latency::of(latencies),
            peak_memory_kib: None,
            memory_of: "server".into(),
        },
        acknowledged: counts.transactions,
        replayed,
        tally,
        journal_before,
        journal_after,
    })
}

async fn journal_length(client: &Client) -> Result<u64, String> {
    client
        .ledger_info()
        .await
        .map(|info| info.journal_length)
        .map_err(|error| format!("ledger info: {error}"))
}

async fn client_loop(
    target: Target,
    options: RunOptions,
    wire: Wire,
    generator: Generator,
) -> Result<ClientResult, String> {
    let client = target
        .builder()
        .timeout(options.call_timeout)
        .build()
        .await
        .map_err(|error| format!("connect to {}: {error}", target.url))?;
    // Paced runs: this client's share of `--rate`, in transfers per second.
    let client_rate = generator.workload().rate / generator.workload().clients as f64;
    let mut batches = prepare_ahead(generator, move |planned| {
        let first_id = planned.items.first().map(|item| item.id());
        let ready = match wire {
            Wire::Protobuf => Ready::Protobuf(to_batch(planned)),
            Wire::Packed => Ready::Packed(to_packed(planned)),
        };
        (first_id, ready)
    });
    let started = tokio::time::Instant::now();
    let mut counts = Counts::default();
    let mut latencies = Vec::new();
    let mut replayed = 0;
    while let Some(prepared) = batches.recv().await {
        let ((first_id, batch), batch_counts) = match prepared {
            Prepared::Batch(batch, batch_counts) => (batch, batch_counts),
            Prepared::Done(tally) => {
                return Ok(ClientResult {
                    counts,
                    latencies,
                    replayed,
                    tally,
                })
            }
        };
        if client_rate > 0.0 {
            // Due when the transfers already sent are owed at this rate: a
            // late batch goes at once (no catching up by bursts beyond that).
            let due = started + Duration::from_secs_f64(counts.transfers as f64 / client_rate);
            tokio::time::sleep_until(due).await;
        }
        let sent = Instant::now();
        // Brief answers: the generator knows what it sent, like any bulk writer.
        let answered = send(&client, batch)
            .await
            .map_err(|error| format!("batch from {first_id:?}: {error}"))?;
        latencies.push(sent.elapsed());
        if answered.refused > 0 {
            return Err(format!(
                "{} items refused in the batch from {first_id:?}: {}",
                answered.refused,
                answered.example.unwrap_or_default()
            ));
        }
        replayed += answered.replayed;
        counts += batch_counts;
    }
    Err("the batch builder stopped before the end of the plan".into())
}

/// Checks the hot accounts' balances against the generator's tally: posted
/// debits and credits equal what was sent, nothing pending. Returns the units
/// moved through hot accounts.
pub async fn check_hot_balances(
    client: &Client,
    workload: &Workload,
    tally: &Tally,
) -> Result<u64, String> {
    let cent = amount();
    let names: Vec<String> = (0..workload.hot_accounts).map(account_name).collect();
    for (chunk_index, chunk) in names.chunks(1_000).enumerate() {
        let chunk_start = chunk_index * 1_000;
        let balances = client
            .balances(chunk.iter().cloned(), AsOf::Now)
            .await
            .map_err(|error| format!("balances of hot accounts: {error}"))?;
        if balances.balances.len() != chunk.len() {
            return Err(format!(
                "{} balances for {} hot accounts",
                balances.balances.len(),
                chunk.len()
            ));
        }
        let mut seen = vec![false; chunk.len()];
        for line in &balances.balances {
            let index = chunk
                .iter()
                .position(|name| *name == line.account)
                .filter(|&at| !std::mem::replace(&mut seen[at], true))
                .map(|at| chunk_start + at)
                .ok_or_else(|| format!("unexpected balance line {}", line.account))?;
            let (debits, credits) = tally.hot[index];
            let expected = (cent * Decimal::from(debits), cent * Decimal::from(credits));
            let balance = &line.balance;
            if (balance.debits_posted, balance.credits_posted) != expected
                || !balance.debits_pending.is_zero()
                || !balance.credits_pending.is_zero()
            {
                return Err(format!(
                    "hot account {}: ledger has {balance:?}, the generator sent debits {} credits {}",
                    line.account, expected.0, expected.1
                ));
            }
        }
    }
    Ok(tally.hot_units())
}
