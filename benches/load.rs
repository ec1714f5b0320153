//! Load generator: drives a real `tallyd` through the real client and reports
//! durable throughput, batch latency and the server's peak memory.
//!
//! ```text
//! cargo build --release -p tally-server
//! cargo bench --bench load -- --accounts 10000 --transfers 1000000 --batch 8189 --clients 1
//! cargo bench --bench load -- --hot-accounts 10 --hot-share 0.5 --two-phase-share 0.2 --json
//! cargo bench --bench load -- --accounts 10000 --transfers 1000000 --wire packed
//! ```
//!
//! Options: `--accounts N` (10,000), `--transfers M` (1,000,000), `--batch B`
//! (8,189 items), `--clients C` (1), `--hot-accounts K` and `--hot-share F`
//! (share of transfers with one side on one of K hot accounts; default 0:
//! uniform), `--two-phase-share F` (share of transfers made pending, then
//! posted in the client's next batch), `--wire protobuf|packed` (how batches
//! are sent: `CreateTransactions` with brief answers, the default, or
//! `CreateTransactionsPacked`, docs/packed-batch.md; the report names it),
//! `--json` (the report also as one JSON line, last), `--server URL` (use a running server instead of starting one
//! on a temporary data directory), `--api-key TOKEN` (the key sent to
//! `--server`; default: the environment variable `TALLY_API_KEY`, else none).
//! A server the bench starts itself is given the harness's test-only admin key
//! (`tally::ADMIN_TOKEN`) and is always sent that. Every acknowledged batch is on
//! disk: tallyd acknowledges only after its group commit is flushed. The
//! workload is shared with the PostgreSQL baseline (`tally::workload`); the
//! generator itself is `tally::loadgen`.

use tally::loadgen::{self, RunOptions, Target};
use tally::workload::{peak_memory_kib, take_option, Workload};

/// The bench's allocator is tallyd's (mimalloc): the bench shares the
/// machine's cores with tallyd, and with the system allocator it spent a
/// tenth of them in malloc and free (docs/benchmarks.md, round 7).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let target = match &server {
        None => Target {
            url: workload.target.clone().expect("--server"),
            api_key: api_key_flag.or_else(|| std::env::var(tally::API_KEY_VAR).ok()),
        },
        Some(server) => Target {
            url: server.url.clone(),
            api_key: Some(tally::ADMIN_TOKEN.to_string()),
        },
    };
    let outcome = loadgen::run(&workload, &target, RunOptions::default())
        .await
        .unwrap_or_else(|error| panic!("load run failed: {error}"));
    let mut report = outcome.report;
    // With --server the process is not ours to measure: "n/a".
    report.peak_memory_kib = server.as_ref().and_then(|s| peak_memory_kib(s.pid()));

    // After the timed phase: the hot accounts hold exactly what was sent.
    if workload.hot_accounts > 0 {
        let client = target.connect().await.expect("connect");
        match loadgen::check_hot_balances(&client, &workload, &outcome.tally).await {
            Ok(units) => println!(
                "checked            {} hot accounts hold what was sent ({units} postings of 0.01)",
                workload.hot_accounts
            ),
            Err(error) => panic!("{error}"),
        }
    }
    if outcome.replayed > 0 {
        println!(
            "note               {} items answered as replays (a batch was retried)",
            outcome.replayed
        );
    }
    report.print();
}
