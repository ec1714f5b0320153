//! The benchmark workload shared by the load generator (`benches/load.rs`) and
//! its PostgreSQL baseline (`benches/pg_baseline.rs`), so both submit exactly
//! the same transfers and report the same figures: options, the seeded
//! generator, the split into batches and clients, and the report.

use std::time::Duration;

/// `--accounts N --transfers M --batch B --clients C`, plus the one option
/// naming what to drive (`--server URL` or `--dsn DSN`).
#[derive(Debug, Clone)]
pub struct Workload {
    /// Accounts opened (default 10,000).
    pub accounts: usize,
    /// Two-posting transfers submitted (default 1,000,000).
    pub transfers: usize,
    /// Transfers per batch (default 8,189).
    pub batch: usize,
    /// Concurrent clients (default 1).
    pub clients: usize,
    /// The value of `target_flag`, or of the environment variable, if given.
    pub target: Option<String>,
}

impl Workload {
    /// Parses the process arguments; `target_flag` (e.g. `--server`) takes a
    /// value, `target_env` is read when the flag is absent.
    pub fn from_args(target_flag: &str, target_env: Option<&str>) -> Workload {
        Self::from_arg_list(std::env::args().skip(1).collect(), target_flag, target_env)
    }

    /// [`Workload::from_args`] over `args` (without the program name), for a
    /// bench that first takes out its own options with [`take_option`].
    pub fn from_arg_list(
        args: Vec<String>,
        target_flag: &str,
        target_env: Option<&str>,
    ) -> Workload {
        let mut workload = Workload {
            accounts: 10_000,
            transfers: 1_000_000,
            batch: 8_189,
            clients: 1,
            target: target_env.and_then(|name| std::env::var(name).ok()),
        };
        let mut iter = args.iter();
        while let Some(flag) = iter.next() {
            let mut value = || {
                iter.next()
                    .cloned()
                    .unwrap_or_else(|| panic!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--accounts" => workload.accounts = value().parse().expect("--accounts N"),
                "--transfers" => workload.transfers = value().parse().expect("--transfers N"),
                "--batch" => workload.batch = value().parse().expect("--batch N"),
                "--clients" => workload.clients = value().parse().expect("--clients N"),
                "--bench" => {} // passed by `cargo bench`
                flag if flag == target_flag => workload.target = Some(value()),
                other => panic!("unknown option {other}"),
            }
        }
        assert!(workload.accounts >= 2, "--accounts must be at least 2");
        assert!(workload.batch >= 1, "--batch must be at least 1");
        assert!(workload.clients >= 1, "--clients must be at least 1");
        workload
    }

    /// Batches as `(first transfer number, length)`, dealt round-robin to the
    /// clients.
    pub fn batches_per_client(&self) -> Vec<Vec<(usize, usize)>> {
        let mut per_client: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.clients];
        let mut start = 0;
        let mut index = 0;
        while start < self.transfers {
            let len = self.batch.min(self.transfers - start);
            per_client[index % self.clients].push((start, len));
            start += len;
            index += 1;
        }
        per_client
    }

    pub fn describe(&self) -> String {
        format!(
            "accounts={} transfers={} batch={} clients={}",
            self.accounts, self.transfers, self.batch, self.clients
        )
    }
}

/// Removes `flag VALUE` from `args` and returns the value (the last one if
/// given twice), so that one bench can take an option the others do not know.
pub fn take_option(args: &mut Vec<String>, flag: &str) -> Option<String> {
    let mut value = None;
    while let Some(at) = args.iter().position(|arg| arg == flag) {
        assert!(at + 1 < args.len(), "{flag} needs a value");
        value = Some(args.remove(at + 1));
        args.remove(at);
    }
    value
}

/// A small deterministic generator (xorshift64*), so runs are reproducible.
pub struct Rng(pub u64);

impl Rng {
    /// The generator of client `index`: each client has its own stream.
    pub fn for_client(index: usize) -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Two different accounts, uniformly: (debit, credit).
    pub fn transfer(&mut self, accounts: usize) -> (usize, usize) {
        let debit = self.below(accounts);
        let mut credit = self.below(accounts);
        if credit == debit {
            credit = (credit + 1) % accounts;
        }
        (debit, credit)
    }
}

/// The name of bench account `index`.
pub fn account_name(index: usize) -> String {
    format!("assets:bench:a{index}")
}

/// Peak resident memory of a process, in KiB (Linux `VmHWM`).
pub fn peak_memory_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

/// Prints throughput and batch latency in the format both benches share.
pub fn print_report(workload: &Workload, elapsed: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    let transfers_per_second = workload.transfers as f64 / elapsed.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("{}", workload.describe());
    println!("elapsed            {:.2} s", elapsed.as_secs_f64());
    println!("transfers/s        {transfers_per_second:.0}");
    println!("postings/s         {:.0}", transfers_per_second * 2.0);
    println!(
        "batch latency      p50 {:.1} ms  p99 {:.1} ms  p99.9 {:.1} ms  max {:.1} ms",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 0.999)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
}
