//! Audit benchmark: proof generation latency and full-export verification
//! throughput, in-process (no gRPC), each beside a baseline from the same run.
//!
//! ```text
//! cargo bench -p tally-server --bench audit -- --transfers 1000000
//! ```
//!
//! Options: `--transfers N` (1,000,000), `--accounts A` (1,000), `--batch B`
//! (8,000 items), `--proofs P` (10,000 of each kind), `--seed S` (1).
//!
//! 1. Opens an `Engine` on a temporary directory (checkpoints on request only),
//!    defines USD, opens A accounts, posts N two-posting transfers in batches
//!    of B, then signs a checkpoint of the whole journal.
//! 2. Times P random inclusion proofs (tree size = the checkpoint's) and P
//!    random consistency proofs through the engine (stored subtree nodes in
//!    sled), and the same proofs from the in-memory reference
//!    `tally_audit::MerkleTree` built from the same leaf hashes (its build time
//!    and a full root recomputation are reported too). Every timed proof is
//!    verified, outside the timed region, against the checkpoint's root (or a
//!    root of the reference tree, itself checked against the checkpoint).
//! 3. Writes the journal up to the checkpoint in the export file format
//!    (`ExportWriter` over `Engine::journal` chunks, then the checkpoint note),
//!    then times `tally_audit::verify_export` with the ledger's key pinned,
//!    beside a raw sequential read of the file, blake3 of the whole file, and
//!    the hashing floor of verification (framing + chain hash + Merkle leaf
//!    per entry).
//!
//! Timings are printed, never asserted; correctness is asserted. Run without
//! `--bench` (as `cargo test --all-targets` does), it only smoke-tests: at most
//! 5,000 transfers and 200 proofs of each kind.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_audit::merkle::{self, verify_consistency, verify_inclusion, Blake3};
use tally_audit::{CompactRange, ExportReader, ExportWriter, Hash, MerkleTree, NoteVerifier};
use tally_core::entry::{AccountType, BalanceConstraint, Side};
use tally_server::audit::checkpoints::CheckpointPolicy;
use tally_server::audit::keys;
use tally_server::engine::Answer;
use tally_server::ledger::command::*;
use tally_server::{Engine, EngineConfig};

struct Options {
    transfers: usize,
    accounts: usize,
    batch: usize,
    proofs: usize,
    seed: u64,
}

impl Options {
    fn from_args() -> Options {
        let mut options = Options {
            transfers: 1_000_000,
            accounts: 1_000,
            batch: 8_000,
            proofs: 10_000,
            seed: 1,
        };
        let mut benching = false;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> u64 {
                args.next()
                    .and_then(|v| v.replace('_', "").parse().ok())
                    .unwrap_or_else(|| panic!("{name} needs a number"))
            };
            match arg.as_str() {
                "--transfers" => options.transfers = value("--transfers") as usize,
                "--accounts" => options.accounts = value("--accounts") as usize,
                "--batch" => options.batch = value("--batch") as usize,
                "--proofs" => options.proofs = value("--proofs") as usize,
                "--seed" => options.seed = value("--seed"),
                // `cargo bench` passes `--bench` to harness = false targets.
                "--bench" => benching = true,
                other => panic!(
                    "unknown option {other}; options: --transfers N --accounts A --batch B --proofs P --seed S"
                ),
            }
        }
        if !benching {
            // Not run by `cargo bench` (e.g. `cargo test --all-targets`, which runs
            // harness = false bench targets unoptimised): a quick smoke run.
            options.transfers = options.transfers.min(5_000);
            options.proofs = options.proofs.min(200);
            println!(
                "not run by `cargo bench`: a smoke run of {} transfers",
                options.transfers
            );
        }
        assert!(options.accounts >= 2, "--accounts must be at least 2");
        assert!(
            options.batch >= 1 && options.batch <= 8_190,
            "--batch must be 1..=8190"
        );
        assert!(options.proofs >= 1, "--proofs must be at least 1");
        options
    }
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-enough in `0..n` (n far below 2^64).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn account_name(i: usize) -> String {
    format!("assets:acct{i:05}")
}

fn open_engine(dir: &Path) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.checkpoints = CheckpointPolicy {
        every_entries: u64::MAX,
        interval: Duration::from_secs(3600),
        ..CheckpointPolicy::default()
    };
    Engine::open(config).expect("open engine")
}

async fn load(engine: &Arc<Engine>, options: &Options) -> Duration {
    let currencies = engine
        .create_currencies(vec![CurrencySpec {
            code: "USD".into(),
            scale: 2,
        }])
        .await
        .expect("define USD");
    assert!(currencies.iter().all(|r| r.is_ok()), "{currencies:?}");
    let names: Vec<usize> = (0..options.accounts).collect();
    for chunk in names.chunks(8_000) {
        let specs = chunk
            .iter()
            .map(|&i| AccountSpec {
                name: account_name(i),
                account_type: AccountType::Asset,
                currency: "USD".into(),
                constraint: BalanceConstraint::None,
                metadata: Default::default(),
            })
            .collect();
        let opened = engine.create_accounts(specs).await.expect("open accounts");
        assert!(opened.iter().all(|r| r.is_ok()), "account creation failed");
    }

    let amount = rust_decimal::Decimal::new(1, 2);
    let mut rng = Rng::new(options.seed);
    let started = Instant::now();
    // A few batches in flight, so that the writer's group commit stays busy.
    let mut in_flight = VecDeque::new();
    let mut next = 0;
    while next < options.transfers {
        let end = (next + options.batch).min(options.transfers);
        let items: Vec<TransactionItem> = (next..end)
            .map(|n| {
                let debit = rng.below(options.accounts as u64) as usize;
                let mut credit = rng.below(options.accounts as u64 - 1) as usize;
                if credit >= debit {
                    credit += 1;
                }
                let posting = |account: usize, side| PostingSpec {
                    account: account_name(account),
                    side,
                    amount,
                    currency: None,
                };
                TransactionItem {
                    command: TransactionCommand::Transaction(TransactionSpec {
                        id: format!("t{n}"),
                        postings: vec![posting(debit, Side::Debit), posting(credit, Side::Credit)],
                        effective_at: None,
                        description: String::new(),
                        metadata: Default::default(),
                        pending: false,
                        timeout_seconds: 0,
                    }),
                    linked: false,
                }
            })
            .collect();
        next = end;
        let engine = Arc::clone(engine);
        in_flight.push_back(tokio::spawn(async move {
            engine
                .create_transactions_answered(items, Answer::Brief)
                .await
        }));
        if in_flight.len() >= 4 {
            check_batch(in_flight.pop_front().expect("a batch").await);
        }
    }
    for task in in_flight {
        check_batch(task.await);
    }
    started.elapsed()
}

fn check_batch<T, E: std::fmt::Debug>(
    joined: Result<tally_server::Result<Vec<Result<T, E>>>, tokio::task::JoinError>,
) {
    let results = joined.expect("batch task").expect("batch");
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(
        failed,
        0,
        "{failed} transfers failed: {:?}",
        results.iter().find_map(|r| r.as_ref().err())
    );
}

/// Latency figures of one timed series.
struct Latencies {
    sorted: Vec<Duration>,
    total: Duration,
}

impl Latencies {
    fn new(mut samples: Vec<Duration>) -> Latencies {
        samples.sort_unstable();
        let total = samples.iter().sum();
        Latencies {
            sorted: samples,
            total,
        }
    }
    fn quantile(&self, q: f64) -> Duration {
        let n = self.sorted.len();
        let index = ((n as f64 * q).ceil() as usize).clamp(1, n) - 1;
        self.sorted[index]
    }
    fn per_second(&self) -> f64 {
        self.sorted.len() as f64 / self.total.as_secs_f64()
    }
    fn row(&self, label: &str) -> String {
        format!(
            "{label:<44} p50 {:>8.2} µs  p99 {:>8.2} µs  max {:>9.2} µs  {:>11.0} proofs/s",
            micros(self.quantile(0.50)),
            micros(self.quantile(0.99)),
            micros(*self.sorted.last().expect("samples")),
            self.per_second()
        )
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A `/proc/self/status` field in KiB (Linux only).
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0); false when unsupported.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs `f` over the file in 1 MiB reads; returns (elapsed, bytes read).
fn stream_file(path: &Path, mut f: impl FnMut(&[u8])) -> (Duration, u64) {
    let started = Instant::now();
    let mut file = File::open(path).expect("open export");
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buffer).expect("read export");
        if n == 0 {
            break;
        }
        f(&buffer[..n]);
        total += n as u64;
    }
    (started.elapsed(), total)
}

fn throughput_row(label: &str, elapsed: Duration, bytes: u64, entries: u64) -> String {
    let secs = elapsed.as_secs_f64();
    format!(
        "{label:<44} {:>8.3} s  {:>9.1} MB/s  {:>12.0} entries/s",
        secs,
        bytes as f64 / 1e6 / secs,
        entries as f64 / secs
    )
}

#[tokio::main]
async fn main() {
    let options = Options::from_args();
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().join("data");
    let engine = Arc::new(open_engine(&data_dir));

    // 1. The ledger.
    let load_time = load(&engine, &options).await;
    let view = engine.create_checkpoint().await.expect("checkpoint");
    let size = view.tree_size;
    let key: NoteVerifier = keys::load(&data_dir).expect("signing key").verifier();
    let checkpoint = tally_audit::open_checkpoint(view.note.as_bytes(), std::slice::from_ref(&key))
        .expect("the checkpoint verifies with the ledger's key")
        .checkpoint;
    assert_eq!(checkpoint.tree_size, size);
    let root = checkpoint.root;
    assert_eq!(engine.merkle_root(size).expect("root"), root);
    println!(
        "ledger: {} accounts, {} transfers in batches of {} posted in {:.1} s ({:.0} transfers/s, in-process)",
        options.accounts,
        options.transfers,
        options.batch,
        load_time.as_secs_f64(),
        options.transfers as f64 / load_time.as_secs_f64()
    );
    println!("checkpoint: tree size {size} (journal length {})", size + 1);

    // 3a. Export (before the proofs: it also yields the leaf hashes).
    let export_path = dir.path().join("journal.export");
    let started = Instant::now();
    let out = BufWriter::with_capacity(1 << 20, File::create(&export_path).expect("create"));
    let mut writer = ExportWriter::new(out).expect("export header");
    let mut entry_hashes = Vec::with_capacity(size as usize);
    while writer.entries() < size {
        let from = writer.entries();
        let limit = (size - from).min(10_000) as usize;
        let records = engine.journal(from, limit).expect("journal chunk");
        assert!(!records.is_empty(), "journal ends at {from}");
        for record in &records {
            assert_eq!(record.seq, writer.entries());
            writer.entry(&record.canonical).expect("write entry");
            entry_hashes.push(record.entry_hash);
        }
    }
    writer.finish(&view.note).expect("finish export");
    let export_time = started.elapsed();
    let file_bytes = std::fs::metadata(&export_path).expect("export size").len();
    assert_eq!(entry_hashes.last(), Some(&checkpoint.chain_head));

    // 2. Proofs. Baseline: the in-memory reference over the same leaves.
    let started = Instant::now();
    let leaves: Vec<Hash> = entry_hashes
        .iter()
        .map(tally_audit::entry_leaf_hash)
        .collect();
    let leaf_time = started.elapsed();
    let started = Instant::now();
    let reference = MerkleTree::from_leaf_hashes(Blake3, &leaves);
    let build_time = started.elapsed();
    let started = Instant::now();
    let recomputed = merkle::root(&Blake3, &leaves);
    let recompute_time = started.elapsed();
    assert_eq!(recomputed, root, "the root recomputed from every leaf");
    assert_eq!(reference.root(size).expect("reference root"), root);

    let mut rng = Rng::new(options.seed ^ 0xA0D1);
    let seqs: Vec<u64> = (0..options.proofs).map(|_| rng.below(size)).collect();
    let pairs: Vec<(u64, u64)> = (0..options.proofs)
        .map(|_| {
            let a = 1 + rng.below(size);
            let b = 1 + rng.below(size);
            (a.min(b), a.max(b))
        })
        .collect();

    let mut engine_inclusion = Vec::with_capacity(seqs.len());
    let mut reference_inclusion = Vec::with_capacity(seqs.len());
    for &seq in &seqs {
        let t = Instant::now();
        let proof = engine.inclusion_proof(seq, size).expect("inclusion proof");
        engine_inclusion.push(t.elapsed());
        let t = Instant::now();
        let expected = reference
            .inclusion_proof(seq, size)
            .expect("reference proof");
        reference_inclusion.push(t.elapsed());
        verify_inclusion(&Blake3, &leaves[seq as usize], seq, size, &proof, &root)
            .unwrap_or_else(|e| panic!("inclusion proof of {seq} in {size}: {e}"));
        assert_eq!(proof, expected, "inclusion proof of {seq} in {size}");
    }
    let mut engine_consistency = Vec::with_capacity(pairs.len());
    let mut reference_consistency = Vec::with_capacity(pairs.len());
    for &(old, new) in &pairs {
        let t = Instant::now();
        let proof = engine
            .consistency_proof(old, new)
            .expect("consistency proof");
        engine_consistency.push(t.elapsed());
        let t = Instant::now();
        let expected = reference
            .consistency_proof(old, new)
            .expect("reference proof");
        reference_consistency.push(t.elapsed());
        let old_root = reference.root(old).expect("old root");
        let new_root = reference.root(new).expect("new root");
        verify_consistency(&Blake3, old, new, &old_root, &new_root, &proof)
            .unwrap_or_else(|e| panic!("consistency proof {old} -> {new}: {e}"));
        assert_eq!(proof, expected, "consistency proof {old} -> {new}");
        // And every new tree is a prefix of the checkpoint's.
        if new != size {
            let to_checkpoint = reference.consistency_proof(new, size).expect("proof");
            verify_consistency(&Blake3, new, size, &new_root, &root, &to_checkpoint)
                .expect("consistent with the checkpoint");
        }
    }
    let engine_inclusion = Latencies::new(engine_inclusion);
    let reference_inclusion = Latencies::new(reference_inclusion);
    let engine_consistency = Latencies::new(engine_consistency);
    let reference_consistency = Latencies::new(reference_consistency);

    println!();
    println!(
        "proofs ({} inclusion at tree size {size}, {} consistency between random sizes; every one verified)",
        options.proofs, options.proofs
    );
    println!(
        "{}",
        engine_inclusion.row("engine inclusion (stored nodes, sled)")
    );
    println!(
        "{}",
        reference_inclusion.row("reference MerkleTree inclusion (in memory)")
    );
    println!(
        "{}",
        engine_consistency.row("engine consistency (stored nodes, sled)")
    );
    println!(
        "{}",
        reference_consistency.row("reference MerkleTree consistency (in memory)")
    );
    println!(
        "ratio engine / reference: inclusion p50 {:.1}x, p99 {:.1}x; consistency p50 {:.1}x, p99 {:.1}x",
        micros(engine_inclusion.quantile(0.5)) / micros(reference_inclusion.quantile(0.5)),
        micros(engine_inclusion.quantile(0.99)) / micros(reference_inclusion.quantile(0.99)),
        micros(engine_consistency.quantile(0.5)) / micros(reference_consistency.quantile(0.5)),
        micros(engine_consistency.quantile(0.99)) / micros(reference_consistency.quantile(0.99)),
    );
    println!(
        "reference: leaf hashes {:.0} ms, MerkleTree build {:.0} ms, root recomputed from all {size} leaves {:.0} ms \
         (= {:.0}x an engine inclusion proof's p50)",
        leaf_time.as_secs_f64() * 1e3,
        build_time.as_secs_f64() * 1e3,
        recompute_time.as_secs_f64() * 1e3,
        recompute_time.as_secs_f64() / engine_inclusion.quantile(0.5).as_secs_f64()
    );
    drop(reference);
    drop(leaves);
    drop(entry_hashes);

    // 3b. Verification of the export, and its baselines (the file is in the page cache).
    println!();
    println!(
        "export: {size} entries, {:.1} MiB ({:.0} bytes/entry), written in {:.2} s ({:.1} MB/s, {:.0} entries/s)",
        mib(file_bytes),
        file_bytes as f64 / size as f64,
        export_time.as_secs_f64(),
        file_bytes as f64 / 1e6 / export_time.as_secs_f64(),
        size as f64 / export_time.as_secs_f64()
    );
    let (read_time, read_bytes) = stream_file(&export_path, |_| {});
    assert_eq!(read_bytes, file_bytes);
    let mut hasher = blake3::Hasher::new();
    let (hash_time, _) = stream_file(&export_path, |chunk| {
        hasher.update(chunk);
    });
    std::hint::black_box(hasher.finalize());

    let started = Instant::now();
    let mut reader = ExportReader::new(File::open(&export_path).expect("open")).expect("header");
    let mut head = tally_core::chain::GENESIS_PREV_HASH;
    let mut range = CompactRange::new(Blake3);
    let mut seq = 0u64;
    while let Some(bytes) = reader.next_entry().expect("frame") {
        head = tally_core::chain::entry_hash(seq, &head, bytes);
        range.push(tally_audit::entry_leaf_hash(&head));
        seq += 1;
    }
    let floor_time = started.elapsed();
    assert_eq!((seq, range.root()), (size, root), "hashing floor");

    let rss_before = status_kib("VmRSS:");
    let peak_reset = reset_peak_rss();
    let started = Instant::now();
    let report = tally_audit::verify_export(
        File::open(&export_path).expect("open"),
        std::slice::from_ref(&key),
    )
    .expect("the export verifies");
    let verify_time = started.elapsed();
    let rss_peak = status_kib("VmHWM:");
    assert_eq!(report.entry_count, size);
    assert_eq!(report.root, root);
    assert_eq!(report.trailer, checkpoint);
    assert_eq!(report.transactions.standard, options.transfers as u64);

    println!("verification of the export (page cache warm)");
    let bytes = file_bytes;
    println!(
        "{}",
        throughput_row("raw sequential read (1 MiB reads)", read_time, bytes, size)
    );
    println!(
        "{}",
        throughput_row(
            "blake3 of the whole file (read + hash)",
            hash_time,
            bytes,
            size
        )
    );
    println!(
        "{}",
        throughput_row(
            "hashing floor: frames + chain + Merkle leaf",
            floor_time,
            bytes,
            size
        )
    );
    println!(
        "{}",
        throughput_row("verify_export (everything)", verify_time, bytes, size)
    );
    let per_s = |t: Duration| bytes as f64 / t.as_secs_f64();
    println!(
        "verify_export throughput / raw read {:.3}, / blake3 of the file {:.3}, / hashing floor {:.3}",
        per_s(verify_time) / per_s(read_time),
        per_s(verify_time) / per_s(hash_time),
        per_s(verify_time) / per_s(floor_time)
    );
    match (rss_before, rss_peak, peak_reset) {
        (Some(before), Some(peak), true) => println!(
            "memory: RSS {:.0} MiB before verify_export, peak {:.0} MiB during it (+{:.1} MiB; the engine is still open)",
            before as f64 / 1024.0,
            peak as f64 / 1024.0,
            peak.saturating_sub(before) as f64 / 1024.0
        ),
        (_, Some(peak), _) => println!(
            "memory: process peak RSS {:.0} MiB (engine included; VmHWM could not be reset)",
            peak as f64 / 1024.0
        ),
        _ => {}
    }

    engine.shutdown().await;
}
