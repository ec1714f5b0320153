//! Load generator: drives a real `tallyd` through the real client and reports
//! durable throughput and batch latency.
//!
//! ```text
//! cargo build --release -p tally-server
//! cargo bench --bench load -- --accounts 10000 --transfers 1000000 --batch 8189 --clients 1
//! ```
//!
//! Options: `--accounts N` (10,000), `--transfers M` (1,000,000), `--batch B`
//! (8,189), `--clients C` (1), `--server URL` (use a running server instead of
//! starting one on a temporary data directory). Every acknowledged batch is on
//! disk: tallyd acknowledges only after its group commit is flushed.

use rust_decimal::Decimal;
use std::time::{Duration, Instant};
use tally_client::{AccountSpec, AccountType, Batch, Client, Transaction};

struct Options {
    accounts: usize,
    transfers: usize,
    batch: usize,
    clients: usize,
    server: Option<String>,
}

fn options() -> Options {
    let mut options = Options {
        accounts: 10_000,
        transfers: 1_000_000,
        batch: 8_189,
        clients: 1,
        server: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let mut value = || {
            iter.next()
                .cloned()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--accounts" => options.accounts = value().parse().expect("--accounts N"),
            "--transfers" => options.transfers = value().parse().expect("--transfers N"),
            "--batch" => options.batch = value().parse().expect("--batch N"),
            "--clients" => options.clients = value().parse().expect("--clients N"),
            "--server" => options.server = Some(value()),
            "--bench" => {} // passed by `cargo bench`
            other => panic!("unknown option {other}"),
        }
    }
    options
}

/// A small deterministic generator (xorshift64*), so runs are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn account_name(index: usize) -> String {
    format!("assets:bench:a{index}")
}

async fn open_accounts(client: &Client, accounts: usize) {
    client.define_currency("USD", 2).await.expect("define USD");
    let names: Vec<usize> = (0..accounts).collect();
    for chunk in names.chunks(8_000) {
        let specs: Vec<AccountSpec> = chunk
            .iter()
            .map(|i| AccountSpec::new(account_name(*i), AccountType::Asset, "USD"))
            .collect();
        let results = client
            .create_accounts(specs)
            .await
            .expect("create accounts");
        assert!(results.iter().all(|r| r.is_ok()), "account creation failed");
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

async fn client_loop(
    url: String,
    client_index: usize,
    batches: Vec<(usize, usize)>,
    accounts: usize,
) -> Vec<Duration> {
    let client = Client::builder(url)
        .timeout(Duration::from_secs(120))
        .build()
        .await
        .expect("connect");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (client_index as u64 + 1));
    let amount = Decimal::new(1, 2);
    let mut latencies = Vec::with_capacity(batches.len());
    for (start, len) in batches {
        let mut batch = Batch::new();
        for n in start..start + len {
            let debit = rng.below(accounts);
            let mut credit = rng.below(accounts);
            if credit == debit {
                credit = (credit + 1) % accounts;
            }
            batch.push(
                Transaction::builder(format!("t{n}"))
                    .debit(account_name(debit), amount)
                    .credit(account_name(credit), amount),
            );
        }
        let sent = Instant::now();
        // Brief answers: the generator knows what it sent, like any bulk writer.
        let results = client.submit_brief(batch).await.expect("submit batch");
        latencies.push(sent.elapsed());
        let failed = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(
            failed,
            0,
            "{failed} transfers failed: {:?}",
            results.iter().find(|r| r.is_err())
        );
    }
    latencies
}

fn peak_memory_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() {
    let options = options();
    let data_dir = tempfile::tempdir().expect("temporary data directory");
    let server = match &options.server {
        Some(_) => None,
        None => Some(tally::Tallyd::start(data_dir.path())),
    };
    let url = options
        .server
        .clone()
        .unwrap_or_else(|| server.as_ref().expect("server").url.clone());
    let client = Client::connect(url.clone()).await.expect("connect");
    open_accounts(&client, options.accounts).await;

    // Split the transfers into batches, dealt round-robin to the clients.
    let mut per_client: Vec<Vec<(usize, usize)>> = vec![Vec::new(); options.clients];
    let mut start = 0;
    let mut index = 0;
    while start < options.transfers {
        let len = options.batch.min(options.transfers - start);
        per_client[index % options.clients].push((start, len));
        start += len;
        index += 1;
    }
    let started = Instant::now();
    let tasks: Vec<_> = per_client
        .into_iter()
        .enumerate()
        .map(|(i, batches)| tokio::spawn(client_loop(url.clone(), i, batches, options.accounts)))
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let transfers_per_second = options.transfers as f64 / elapsed.as_secs_f64();
    println!(
        "accounts={} transfers={} batch={} clients={}",
        options.accounts, options.transfers, options.batch, options.clients
    );
    println!("elapsed            {:.2} s", elapsed.as_secs_f64());
    println!("transfers/s        {transfers_per_second:.0}");
    println!("postings/s         {:.0}", transfers_per_second * 2.0);
    println!(
        "batch latency      p50 {:.1} ms  p99 {:.1} ms  p99.9 {:.1} ms  max {:.1} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        percentile(&latencies, 0.999).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    if let Some(server) = &server {
        if let Some(kib) = peak_memory_kib(server.pid()) {
            println!("server peak memory {:.0} MiB", kib as f64 / 1024.0);
        }
    }
}
