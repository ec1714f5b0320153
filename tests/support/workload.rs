//! The benchmark workload shared by the load generator (`benches/load.rs`,
//! driven by [`crate::loadgen`]) and its PostgreSQL baseline
//! (`benches/pg_baseline.rs`), so both submit exactly the same transfers and
//! report the same figures: the options, the seeded generator, the plan of
//! batches per client, the batches themselves (built one batch ahead on a
//! thread of their own), the generator's own tally of what it sent, and the
//! report.
//!
//! A *transfer* moves 0.01 USD from one account to another. It is either
//! posted at once (one transaction, two postings) or *two-phase*: a pending
//! transaction (two reserved postings) and, in the same client's next batch, a
//! post of it in full (two postings). A two-phase transfer counts as one
//! transfer and two transactions.

use std::fmt::Write as _;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

/// The options of both benches: `--accounts N --transfers M --batch B
/// --clients C --hot-accounts K --hot-share F --two-phase-share F --rate R --json`,
/// plus the one option naming what to drive (`--server URL` or `--dsn DSN`),
/// and `--wire protobuf|packed`, which only the load generator reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Accounts opened (default 10,000).
    pub accounts: usize,
    /// Transfers submitted (default 1,000,000); a two-phase one counts once.
    pub transfers: usize,
    /// Items (transactions) per batch, posts of pending ones included
    /// (default 8,189).
    pub batch: usize,
    /// Concurrent clients (default 1).
    pub clients: usize,
    /// Hot accounts: accounts `0..K` (default 0: every account is drawn
    /// uniformly).
    pub hot_accounts: usize,
    /// Share of transfers with one side on a hot account (default 0).
    pub hot_share: f64,
    /// Share of transfers made pending and posted in a later batch (default 0).
    pub two_phase_share: f64,
    /// Offered load in transfers per second over all clients (`--rate`;
    /// default 0: each client sends its next batch as soon as the last one is
    /// acknowledged). Paced, each client sends a batch when its share of the
    /// rate says it is due, so latency can be read at a chosen fraction of
    /// the peak.
    pub rate: f64,
    /// Also print the report as one JSON line (`--json`).
    pub json: bool,
    /// How the load generator sends its batches (`--wire`; `None`: not given,
    /// which it takes as protobuf). Its report always names the wire; the
    /// PostgreSQL baseline has none.
    pub wire: Option<Wire>,
    /// The value of `target_flag`, or of the environment variable, if given.
    pub target: Option<String>,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            accounts: 10_000,
            transfers: 1_000_000,
            batch: 8_189,
            clients: 1,
            hot_accounts: 0,
            hot_share: 0.0,
            two_phase_share: 0.0,
            rate: 0.0,
            json: false,
            wire: None,
            target: None,
        }
    }
}

/// How the load generator sends a batch to `tallyd`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Wire {
    /// `CreateTransactions` with brief answers (`Client::submit_brief`).
    #[default]
    Protobuf,
    /// `CreateTransactionsPacked` (`Client::create_transactions_packed`,
    /// docs/packed-batch.md), each batch encoded on the builder thread.
    Packed,
}

impl Wire {
    pub fn as_str(self) -> &'static str {
        match self {
            Wire::Protobuf => "protobuf",
            Wire::Packed => "packed",
        }
    }
}

impl std::fmt::Display for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Wire {
    type Err = String;

    fn from_str(text: &str) -> Result<Wire, String> {
        match text {
            "protobuf" => Ok(Wire::Protobuf),
            "packed" => Ok(Wire::Packed),
            other => Err(format!("--wire must be protobuf or packed, not {other:?}")),
        }
    }
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
            target: target_env.and_then(|name| std::env::var(name).ok()),
            ..Workload::default()
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
                "--hot-accounts" => {
                    workload.hot_accounts = value().parse().expect("--hot-accounts K")
                }
                "--hot-share" => workload.hot_share = value().parse().expect("--hot-share F"),
                "--two-phase-share" => {
                    workload.two_phase_share = value().parse().expect("--two-phase-share F")
                }
                "--rate" => workload.rate = value().parse().expect("--rate TRANSFERS_PER_S"),
                "--json" => workload.json = true,
                "--wire" => {
                    workload.wire = Some(value().parse().unwrap_or_else(|e: String| panic!("{e}")))
                }
                "--bench" => {} // passed by `cargo bench`
                flag if flag == target_flag => workload.target = Some(value()),
                other => panic!("unknown option {other}"),
            }
        }
        if let Err(problem) = workload.check() {
            panic!("{problem}");
        }
        workload
    }

    /// Checks the options against each other.
    pub fn check(&self) -> Result<(), String> {
        let share = |name: &str, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(format!("{name} must be between 0 and 1, not {value}"))
            }
        };
        share("--hot-share", self.hot_share)?;
        share("--two-phase-share", self.two_phase_share)?;
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err(format!(
                "--rate must be 0 (unpaced) or more, not {}",
                self.rate
            ));
        }
        if self.batch == 0 {
            return Err("--batch must be at least 1".into());
        }
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        if (self.hot_accounts == 0) != (self.hot_share == 0.0) {
            return Err(
                "--hot-accounts K and --hot-share F go together (both 0, or both set)".into(),
            );
        }
        if self.accounts < self.hot_accounts + 2 {
            return Err(format!(
                "--accounts must be at least --hot-accounts + 2 ({})",
                self.hot_accounts + 2
            ));
        }
        Ok(())
    }

    /// True when transfer `n` is two-phase. Two-phase transfers are spread
    /// evenly: `n` is one when `⌊(n+1)·F⌋ > ⌊n·F⌋`, so that any run of
    /// transfers holds its share of them, to within one.
    pub fn is_two_phase(&self, n: usize) -> bool {
        self.two_phase_before(n + 1) > self.two_phase_before(n)
    }

    /// Two-phase transfers among transfers `0..n`.
    pub fn two_phase_before(&self, n: usize) -> usize {
        (n as f64 * self.two_phase_share).floor() as usize
    }

    /// The batches of each client, in the order the client sends them. Batches
    /// are dealt round-robin; a batch holds at most [`Workload::batch`] items:
    /// first the posts of the pending transfers of the same client's previous
    /// batch, then new transfers, numbered on from the previous batch dealt. A
    /// client whose last batch left pending transfers gets one more batch of
    /// posts only.
    pub fn plan(&self) -> Vec<Vec<BatchShape>> {
        let mut per_client: Vec<Vec<BatchShape>> = vec![Vec::new(); self.clients];
        let mut carried = vec![0usize; self.clients];
        let mut next = 0;
        let mut index = 0;
        while next < self.transfers || carried.iter().any(|&posts| posts > 0) {
            let client = index % self.clients;
            index += 1;
            let posts = carried[client];
            let len = (self.batch - posts).min(self.transfers - next);
            if len == 0 && posts == 0 {
                continue;
            }
            per_client[client].push(BatchShape {
                start: next,
                len,
                posts,
            });
            carried[client] = self.two_phase_before(next + len) - self.two_phase_before(next);
            next += len;
        }
        per_client
    }

    /// One generator per client, in client order; each yields that client's
    /// batches of [`Workload::plan`].
    pub fn generators(&self, track_all_accounts: bool) -> Vec<Generator> {
        self.plan()
            .into_iter()
            .enumerate()
            .map(|(client, shapes)| Generator {
                workload: self.clone(),
                shapes: shapes.into_iter(),
                rng: Rng::for_client(client),
                open: Vec::new(),
                tally: Tally::new(self, track_all_accounts),
            })
            .collect()
    }

    /// Draws one transfer's accounts: `(debit, credit, hot)`. With no hot
    /// accounts, two different accounts uniformly (the draws of
    /// [`Rng::transfer`]). Otherwise, with probability `hot_share`, one hot
    /// account (uniform among `0..K`) on a side chosen by a coin and a cold
    /// one (uniform among `K..N`) on the other; else two different cold
    /// accounts.
    pub fn draw(&self, rng: &mut Rng) -> (usize, usize, bool) {
        let hot = self.hot_accounts;
        if hot == 0 {
            let (debit, credit) = rng.transfer(self.accounts);
            return (debit, credit, false);
        }
        let cold = self.accounts - hot;
        if rng.unit() < self.hot_share {
            let hot_account = rng.below(hot);
            let cold_account = hot + rng.below(cold);
            if rng.next_u64() & 1 == 0 {
                (hot_account, cold_account, true)
            } else {
                (cold_account, hot_account, true)
            }
        } else {
            let (debit, credit) = rng.transfer(cold);
            (hot + debit, hot + credit, false)
        }
    }

    pub fn describe(&self) -> String {
        let mut text = format!(
            "accounts={} transfers={} batch={} clients={}",
            self.accounts, self.transfers, self.batch, self.clients
        );
        if self.hot_accounts > 0 {
            let _ = write!(
                text,
                " hot-accounts={} hot-share={}",
                self.hot_accounts, self.hot_share
            );
        }
        if self.two_phase_share > 0.0 {
            let _ = write!(text, " two-phase-share={}", self.two_phase_share);
        }
        if self.rate > 0.0 {
            let _ = write!(text, " rate={}", self.rate);
        }
        if let Some(wire) = self.wire {
            let _ = write!(text, " wire={wire}");
        }
        text
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

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
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

/// Where one batch of a client's plan sits: posts of `posts` pending transfers
/// of the client's previous batch, then transfers `start..start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchShape {
    pub start: usize,
    pub len: usize,
    pub posts: usize,
}

/// What one item of a batch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A transfer posted at once.
    Posted,
    /// The first half of a two-phase transfer: the amount reserved.
    Pending,
    /// The second half: the pending transfer posted in full.
    Post,
}

/// One item of a batch: a transaction of 0.01 USD from `debit` to `credit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub step: Step,
    /// The transfer's number `n`.
    pub transfer: usize,
    pub debit: usize,
    pub credit: usize,
    /// One side is a hot account (and the transfer was drawn as hot).
    pub hot: bool,
}

impl Item {
    /// The item's id: `t<n>` for a posted or pending transfer, `t<n>-post` for
    /// the post of pending `t<n>`.
    pub fn id(&self) -> String {
        match self.step {
            Step::Post => format!("t{}-post", self.transfer),
            Step::Posted | Step::Pending => format!("t{}", self.transfer),
        }
    }

    /// The id of the pending transaction a post posts (`t<n>`).
    pub fn pending_id(&self) -> String {
        format!("t{}", self.transfer)
    }
}

/// What was sent, added up over batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub batches: usize,
    /// Transfers begun (posted at once or pending).
    pub transfers: usize,
    /// Items sent: transactions, pending transactions and posts.
    pub transactions: usize,
    /// Postings the items carry: two per posted and per pending transaction,
    /// two per post (it posts both reserved amounts).
    pub postings: usize,
    /// Transfers with one side on a hot account.
    pub hot_transfers: usize,
    /// Pending transactions sent.
    pub pending: usize,
    /// Posts of pending transactions sent.
    pub posts: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.batches += other.batches;
        self.transfers += other.transfers;
        self.transactions += other.transactions;
        self.postings += other.postings;
        self.hot_transfers += other.hot_transfers;
        self.pending += other.pending;
        self.posts += other.posts;
    }
}

/// One batch as planned, and its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBatch {
    pub items: Vec<Item>,
    pub counts: Counts,
}

/// What the generator sent, per account, in units of 0.01 USD: the balances the
/// ledger must show once every batch is acknowledged (every pending transfer
/// has then been posted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// `(debits, credits)` of each hot account, by index.
    pub hot: Vec<(u64, u64)>,
    /// `(debits, credits)` of every account, when asked for.
    pub all: Option<Vec<(u64, u64)>>,
    /// Transfers tallied (each moves one unit).
    pub transfers: u64,
}

impl Tally {
    pub fn new(workload: &Workload, track_all_accounts: bool) -> Tally {
        Tally {
            hot: vec![(0, 0); workload.hot_accounts],
            all: track_all_accounts.then(|| vec![(0, 0); workload.accounts]),
            transfers: 0,
        }
    }

    fn record(&mut self, debit: usize, credit: usize) {
        self.transfers += 1;
        if let Some(entry) = self.hot.get_mut(debit) {
            entry.0 += 1;
        }
        if let Some(entry) = self.hot.get_mut(credit) {
            entry.1 += 1;
        }
        if let Some(all) = &mut self.all {
            all[debit].0 += 1;
            all[credit].1 += 1;
        }
    }

    /// Adds another client's tally.
    pub fn merge(&mut self, other: &Tally) {
        self.transfers += other.transfers;
        for (mine, theirs) in self.hot.iter_mut().zip(&other.hot) {
            mine.0 += theirs.0;
            mine.1 += theirs.1;
        }
        if let (Some(mine), Some(theirs)) = (&mut self.all, &other.all) {
            for (mine, theirs) in mine.iter_mut().zip(theirs) {
                mine.0 += theirs.0;
                mine.1 += theirs.1;
            }
        }
    }

    /// Units moved through hot accounts: the sum of their debits and credits.
    pub fn hot_units(&self) -> u64 {
        self.hot.iter().map(|(d, c)| d + c).sum()
    }
}

/// The batches of one client, in order; the items of each are drawn from the
/// client's own seeded stream, so a client's batches are the same in every
/// bench and every run.
pub struct Generator {
    workload: Workload,
    shapes: std::vec::IntoIter<BatchShape>,
    rng: Rng,
    /// Pending transfers of the previous batch, to be posted in the next.
    open: Vec<Item>,
    tally: Tally,
}

impl Generator {
    /// The workload this generator plans for.
    pub fn workload(&self) -> &Workload {
        &self.workload
    }
}

impl Generator {
    /// What the batches generated so far move.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    pub fn into_tally(self) -> Tally {
        self.tally
    }
}

impl Iterator for Generator {
    type Item = PlannedBatch;

    fn next(&mut self) -> Option<PlannedBatch> {
        let shape = self.shapes.next()?;
        assert_eq!(shape.posts, self.open.len(), "plan and generator agree");
        let mut items = Vec::with_capacity(shape.posts + shape.len);
        let mut counts = Counts {
            batches: 1,
            ..Counts::default()
        };
        for pending in self.open.drain(..) {
            items.push(Item {
                step: Step::Post,
                ..pending
            });
            counts.posts += 1;
        }
        for n in shape.start..shape.start + shape.len {
            let (debit, credit, hot) = self.workload.draw(&mut self.rng);
            let step = if self.workload.is_two_phase(n) {
                Step::Pending
            } else {
                Step::Posted
            };
            let item = Item {
                step,
                transfer: n,
                debit,
                credit,
                hot,
            };
            if step == Step::Pending {
                self.open.push(item);
                counts.pending += 1;
            }
            counts.hot_transfers += usize::from(hot);
            self.tally.record(debit, credit);
            items.push(item);
        }
        counts.transfers = shape.len;
        counts.transactions = items.len();
        counts.postings = 2 * items.len();
        Some(PlannedBatch { items, counts })
    }
}

/// What [`prepare_ahead`] hands over: a batch made ready, then, after the last
/// one, the generator's tally.
pub enum Prepared<T> {
    Batch(T, Counts),
    Done(Tally),
}

/// Runs `generator` on a thread of its own, turning each planned batch into
/// what the bench sends (`make`), at most one batch ahead of the sender: while
/// the sender waits for a batch's answer, the next one is built. The receiver
/// is awaited from async code; it yields every batch, then the tally, then
/// `None`.
pub fn prepare_ahead<T, F>(generator: Generator, mut make: F) -> Receiver<Prepared<T>>
where
    T: Send + 'static,
    F: FnMut(&PlannedBatch) -> T + Send + 'static,
{
    let (sender, receiver) = handoff();
    std::thread::Builder::new()
        .name("batch-builder".into())
        .spawn(move || {
            let mut generator = generator;
            for planned in generator.by_ref() {
                let made = make(&planned);
                if !sender.send(Prepared::Batch(made, planned.counts)) {
                    return; // the sender gave up
                }
            }
            sender.send(Prepared::Done(generator.into_tally()));
        })
        .expect("spawn the batch builder");
    receiver
}

struct Slot<T> {
    value: Option<T>,
    sender_gone: bool,
    receiver_gone: bool,
    waker: Option<Waker>,
}

struct Shared<T> {
    slot: Mutex<Slot<T>>,
    emptied: Condvar,
}

/// The sending half of a one-slot handoff from a thread to async code.
pub struct Sender<T>(Arc<Shared<T>>);

/// The receiving half of a one-slot handoff (see [`prepare_ahead`]).
pub struct Receiver<T>(Arc<Shared<T>>);

/// A channel holding at most one value: [`Sender::send`] blocks its thread
/// until the slot is free, [`Receiver::recv`] is awaited.
pub fn handoff<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        slot: Mutex::new(Slot {
            value: None,
            sender_gone: false,
            receiver_gone: false,
            waker: None,
        }),
        emptied: Condvar::new(),
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Waits for the slot to be free and fills it; false if the receiver is
    /// gone.
    pub fn send(&self, value: T) -> bool {
        let mut slot = self.0.slot.lock().expect("handoff lock");
        while slot.value.is_some() && !slot.receiver_gone {
            slot = self.0.emptied.wait(slot).expect("handoff lock");
        }
        if slot.receiver_gone {
            return false;
        }
        slot.value = Some(value);
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
        true
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut slot = self.0.slot.lock().expect("handoff lock");
        slot.sender_gone = true;
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The next value, or `None` once the sender is gone and the slot empty.
    pub async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| {
            let mut slot = self.0.slot.lock().expect("handoff lock");
            if let Some(value) = slot.value.take() {
                self.0.emptied.notify_one();
                Poll::Ready(Some(value))
            } else if slot.sender_gone {
                Poll::Ready(None)
            } else {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut slot = self.0.slot.lock().expect("handoff lock");
        slot.receiver_gone = true;
        slot.value = None;
        self.0.emptied.notify_one();
    }
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

/// Batch latency percentiles, from sending a batch to its durable answer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl Latency {
    pub fn of(mut latencies: Vec<Duration>) -> Latency {
        latencies.sort();
        Latency {
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            p999: percentile(&latencies, 0.999),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }
}

/// The figures of one run, printed the same way by both benches.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `load` or `pg_baseline`.
    pub bench: String,
    pub workload: Workload,
    /// Opening the accounts (not part of the throughput).
    pub open_elapsed: Duration,
    /// The transfer phase.
    pub elapsed: Duration,
    /// What was sent and acknowledged.
    pub counts: Counts,
    pub latency: Latency,
    /// Peak memory of the server (KiB), when known.
    pub peak_memory_kib: Option<u64>,
    /// Whose memory that is, e.g. `server` (tallyd) or `backend` (PostgreSQL).
    pub memory_of: String,
}

impl Report {
    pub fn per_second(&self, count: usize) -> f64 {
        count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn transfers_per_second(&self) -> f64 {
        self.per_second(self.counts.transfers)
    }

    pub fn transactions_per_second(&self) -> f64 {
        self.per_second(self.counts.transactions)
    }

    pub fn postings_per_second(&self) -> f64 {
        self.per_second(self.counts.postings)
    }

    /// The text report; with `--json`, followed by [`Report::json`] on a line of
    /// its own (the last line).
    pub fn print(&self) {
        print!("{}", self.text());
        if self.workload.json {
            println!("{}", self.json());
        }
    }

    pub fn text(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let c = &self.counts;
        let mut text = String::new();
        let _ = writeln!(text, "{}", self.workload.describe());
        let _ = writeln!(
            text,
            "accounts opened in {:.2} s",
            self.open_elapsed.as_secs_f64()
        );
        let _ = writeln!(
            text,
            "sent               {} transfers ({} hot, {} two-phase), {} transactions, {} postings, {} batches",
            c.transfers, c.hot_transfers, c.pending, c.transactions, c.postings, c.batches
        );
        let _ = writeln!(
            text,
            "elapsed            {:.2} s",
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            text,
            "transfers/s        {:.0}",
            self.transfers_per_second()
        );
        let _ = writeln!(
            text,
            "transactions/s     {:.0}",
            self.transactions_per_second()
        );
        let _ = writeln!(text, "postings/s         {:.0}", self.postings_per_second());
        let _ = writeln!(
            text,
            "batch latency      p50 {:.1} ms  p99 {:.1} ms  p99.9 {:.1} ms  max {:.1} ms",
            ms(self.latency.p50),
            ms(self.latency.p99),
            ms(self.latency.p999),
            ms(self.latency.max),
        );
        let memory = match self.peak_memory_kib {
            Some(kib) => format!("{:.0} MiB", kib as f64 / 1024.0),
            None => "n/a".into(),
        };
        let _ = writeln!(text, "{} peak memory {memory}", self.memory_of);
        text
    }

    /// The report as one JSON object (no newline).
    pub fn json(&self) -> String {
        let w = &self.workload;
        let c = &self.counts;
        let ms = |d: Duration| json_number(d.as_secs_f64() * 1e3);
        let mut fields: Vec<(&str, String)> = vec![
            ("bench", json_string(&self.bench)),
            ("accounts", w.accounts.to_string()),
            ("transfers", w.transfers.to_string()),
            ("batch", w.batch.to_string()),
            ("clients", w.clients.to_string()),
            ("hot_accounts", w.hot_accounts.to_string()),
            ("hot_share", json_number(w.hot_share)),
            ("two_phase_share", json_number(w.two_phase_share)),
            ("rate", json_number(w.rate)),
            ("batches", c.batches.to_string()),
            ("transfers_sent", c.transfers.to_string()),
            ("transactions", c.transactions.to_string()),
            ("postings", c.postings.to_string()),
            ("hot_transfers", c.hot_transfers.to_string()),
            ("two_phase_transfers", c.pending.to_string()),
            (
                "open_accounts_s",
                json_number(self.open_elapsed.as_secs_f64()),
            ),
            ("elapsed_s", json_number(self.elapsed.as_secs_f64())),
            ("transfers_per_s", json_number(self.transfers_per_second())),
            (
                "transactions_per_s",
                json_number(self.transactions_per_second()),
            ),
            ("postings_per_s", json_number(self.postings_per_second())),
            ("p50_ms", ms(self.latency.p50)),
            ("p99_ms", ms(self.latency.p99)),
            ("p99_9_ms", ms(self.latency.p999)),
            ("max_ms", ms(self.latency.max)),
            (
                "peak_memory_mib",
                self.peak_memory_kib
                    .map_or("null".into(), |kib| json_number(kib as f64 / 1024.0)),
            ),
            ("memory_of", json_string(&self.memory_of)),
        ];
        if let Some(wire) = w.wire {
            fields.push(("wire", json_string(wire.as_str())));
        }
        let body: Vec<String> = fields
            .into_iter()
            .map(|(key, value)| format!("{}:{value}", json_string(key)))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

/// A JSON number: finite values with up to three decimals, else `null`.
pub fn json_number(value: f64) -> String {
    if !value.is_finite() {
        return "null".into();
    }
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".into()
    } else {
        text.to_string()
    }
}

/// A JSON string literal.
pub fn json_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ch if (ch as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", ch as u32);
            }
            ch => out.push(ch),
        }
    }
    out.push('"');
    out
}
