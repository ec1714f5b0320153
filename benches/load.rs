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
//! starting one on a temporary data directory), `--api-key TOKEN` (the key sent
//! to `--server`; default: the environment variable `TALLY_API_KEY`, else none).
//! A server the bench starts itself is given the harness's test-only admin key
//! (`tally::ADMIN_TOKEN`) and is always sent that. Every acknowledged batch is on
//! disk: tallyd acknowledges only after its group commit is flushed. The
//! workload is shared with the PostgreSQL baseline (`tally::workload`).

use rust_decimal::Decimal;
use std::time::{Duration, Instant};
use tally::workload::{account_name, peak_memory_kib, print_report, take_option, Rng, Workload};
use tally_client::{AccountSpec, AccountType, Batch, Client, ClientBuilder, Transaction};

/// A client builder for `url` that sends `api_key`, if any.
fn builder(url: &str, api_key: Option<&str>) -> ClientBuilder {
    let builder = Client::builder(url);
    match api_key {
        Some(key) => builder.api_key(key),
        None => builder,
    }
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

async fn client_loop(
    url: String,
    api_key: Option<String>,
    client_index: usize,
    batches: Vec<(usize, usize)>,
    accounts: usize,
) -> Vec<Duration> {
    let client = builder(&url, api_key.as_deref())
        .timeout(Duration::from_secs(120))
        .build()
        .await
        .expect("connect");
    let mut rng = Rng::for_client(client_index);
    let amount = Decimal::new(1, 2);
    let mut latencies = Vec::with_capacity(batches.len());
    for (start, len) in batches {
        let mut batch = Batch::new();
        for n in start..start + len {
            let (debit, credit) = rng.transfer(accounts);
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

#[tokio::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let api_key_flag = take_option(&mut args, "--api-key");
    let workload = Workload::from_arg_list(args, "--server", None);
    let data_dir = tempfile::tempdir().expect("temporary data directory");
    let server = match &workload.target {
        Some(_) => None,
        None => {
            assert!(
                api_key_flag.is_none(),
                "--api-key is for --server: the bench's own tallyd uses the test admin key"
            );
            Some(tally::Tallyd::start(data_dir.path()))
        }
    };
    let (url, api_key) = match &server {
        None => (
            workload.target.clone().expect("--server"),
            api_key_flag.or_else(|| std::env::var(tally::API_KEY_VAR).ok()),
        ),
        Some(server) => (server.url.clone(), Some(tally::ADMIN_TOKEN.to_string())),
    };
    let client = builder(&url, api_key.as_deref())
        .build()
        .await
        .expect("connect");
    open_accounts(&client, workload.accounts).await;

    let started = Instant::now();
    let tasks: Vec<_> = workload
        .batches_per_client()
        .into_iter()
        .enumerate()
        .map(|(i, batches)| {
            let task = client_loop(url.clone(), api_key.clone(), i, batches, workload.accounts);
            tokio::spawn(task)
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    print_report(&workload, started.elapsed(), latencies);
    if let Some(server) = &server {
        if let Some(kib) = peak_memory_kib(server.pid()) {
            println!("server peak memory {:.0} MiB", kib as f64 / 1024.0);
        }
    }
}
