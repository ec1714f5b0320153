//! Usage metering bench: durable ingestion throughput through gRPC, then the
//! time of usage queries from the stored aggregates and from a scan of the
//! journal (`recompute`), against a real release `tallyd`.
//!
//! ```text
//! cargo build --release -p tally-server
//! cargo bench --bench usage -- --events 1000000 --batch 10000 --clients 2
//! cargo bench --bench usage -- --events 200000 --json | tail -n 1
//! ```
//!
//! Options: `--events N` (1,000,000), `--batch B` (10,000; at most
//! 10,000), `--clients C` (2), `--customers K` (100), `--span-minutes M`
//! (1,440: events are spread evenly over the M whole minutes before the
//! current one), `--query-runs R` (5: each query is timed R times), `--wire
//! W` (`grpc`: `IngestEvents`; `packed`: `IngestEventsPacked`, each batch
//! encoded by the sending task, inside the clock), `--json` (the report also
//! as one JSON line, last).
//!
//! One sum meter, `bench_usage`, grouped by one property (`region`, 4
//! values). Event `n` belongs to customer `n mod K`, has the value
//! `1.00 + (n mod 900) / 100` and a unique id; all events are built before
//! the clock starts, dealt to the clients batch by batch, and each batch is
//! dropped once acknowledged. Every acknowledged batch is on disk: tallyd
//! answers only after the group write holding it is flushed. At the end, the
//! stored aggregates and the scan must both equal what was sent, per
//! customer: the bench panics otherwise.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use tally::workload::{json_number, json_string, peak_memory_kib, Latency};
use tally_client::{
    Aggregation, Client, CustomerSpec, MeterSpec, PackedEvents, UsageEvent, UsageQuery,
    UsageResult, INGEST_EVENTS_MAX,
};

const METER: &str = "bench_usage";
const REGIONS: [&str; 4] = ["eu", "us", "ap", "sa"];
const MINUTE_NS: i64 = 60_000_000_000;
/// Customers per `create_customers` call.
const CUSTOMER_CHUNK: usize = 1_000;

#[derive(Debug, Clone)]
struct Options {
    events: usize,
    batch: usize,
    clients: usize,
    customers: usize,
    span_minutes: i64,
    query_runs: usize,
    packed: bool,
    json: bool,
}

impl Options {
    fn from_args() -> Options {
        let mut options = Options {
            events: 1_000_000,
            batch: 10_000,
            clients: 2,
            customers: 100,
            span_minutes: 1_440,
            query_runs: 5,
            packed: false,
            json: false,
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
                "--events" => options.events = value().parse().expect("--events N"),
                "--batch" => options.batch = value().parse().expect("--batch B"),
                "--clients" => options.clients = value().parse().expect("--clients C"),
                "--customers" => options.customers = value().parse().expect("--customers K"),
                "--span-minutes" => {
                    options.span_minutes = value().parse().expect("--span-minutes M")
                }
                "--query-runs" => options.query_runs = value().parse().expect("--query-runs R"),
                "--wire" => {
                    options.packed = match value().as_str() {
                        "grpc" => false,
                        "packed" => true,
                        other => panic!("--wire {other}: grpc or packed"),
                    }
                }
                "--json" => options.json = true,
                "--bench" => {} // passed by `cargo bench`
                other => panic!("unknown option {other}"),
            }
        }
        if let Err(problem) = options.check() {
            panic!("{problem}");
        }
        options
    }

    fn check(&self) -> Result<(), String> {
        if self.events == 0 {
            return Err("--events must be at least 1".into());
        }
        if !(1..=INGEST_EVENTS_MAX).contains(&self.batch) {
            return Err(format!("--batch must be 1 to {INGEST_EVENTS_MAX}"));
        }
        if self.clients == 0 || self.customers == 0 || self.query_runs == 0 {
            return Err("--clients, --customers and --query-runs must be at least 1".into());
        }
        if self.span_minutes < 1 {
            return Err("--span-minutes must be at least 1".into());
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "events={} batch={} clients={} customers={} span-minutes={} wire={}",
            self.events,
            self.batch,
            self.clients,
            self.customers,
            self.span_minutes,
            self.wire()
        )
    }

    fn wire(&self) -> &'static str {
        if self.packed {
            "packed"
        } else {
            "grpc"
        }
    }
}

fn customer(index: usize) -> String {
    format!("cust-{index:05}")
}

fn value_cents(number: usize) -> i64 {
    100 + (number % 900) as i64
}

/// What was sent to one customer: events and the sum in hundredths.
type Sent = BTreeMap<String, (u64, i64)>;

/// Every event, in batches dealt round-robin to the clients, and what each
/// customer was sent. Event `n`'s timestamp is `n / N` of the way through the
/// window, so events arrive roughly in time order, customers interleaved.
fn generate(options: &Options, from: i64) -> (Vec<Vec<Vec<UsageEvent>>>, Sent) {
    let span_ns = options.span_minutes * MINUTE_NS;
    let mut sent = Sent::new();
    let mut per_client: Vec<Vec<Vec<UsageEvent>>> = vec![Vec::new(); options.clients];
    let mut number = 0;
    let mut batch_index = 0;
    while number < options.events {
        let end = (number + options.batch).min(options.events);
        let batch = (number..end)
            .map(|n| {
                let cents = value_cents(n);
                let customer = customer(n % options.customers);
                let totals = sent.entry(customer.clone()).or_default();
                totals.0 += 1;
                totals.1 += cents;
                let offset = (n as i128 * span_ns as i128 / options.events as i128) as i64;
                UsageEvent {
                    event_id: format!("ev-{n:09}"),
                    customer,
                    meter: METER.to_string(),
                    timestamp: from + offset,
                    value: Some(format!("{}.{:02}", cents / 100, cents % 100)),
                    properties: BTreeMap::from([(
                        "region".to_string(),
                        REGIONS[n % REGIONS.len()].to_string(),
                    )]),
                }
            })
            .collect();
        per_client[batch_index % options.clients].push(batch);
        batch_index += 1;
        number = end;
    }
    (per_client, sent)
}

async fn connect(url: &str) -> Client {
    tally::client_builder(url.to_string())
        .timeout(Duration::from_secs(300))
        .build()
        .await
        .unwrap_or_else(|error| panic!("connect to {url}: {error}"))
}

async fn set_up(client: &Client, options: &Options) {
    let names: Vec<String> = (0..options.customers).map(customer).collect();
    for chunk in names.chunks(CUSTOMER_CHUNK) {
        let specs = chunk.iter().map(|name| CustomerSpec::new(name.clone()));
        for result in client
            .create_customers(specs)
            .await
            .expect("create customers")
        {
            result.expect("customer created");
        }
    }
    let meter = MeterSpec {
        code: METER.to_string(),
        aggregation: Aggregation::Sum,
        value_property: None,
        filters: BTreeMap::new(),
        group_by: vec!["region".to_string()],
        grace_period_seconds: 0,
    };
    client
        .define_meter(&meter, "usage bench")
        .await
        .expect("define the meter");
}

/// One client: its batches in order, one in flight; each batch's latency,
/// from handing it to the client to its durable answer. Panics unless every
/// event is recorded by this send (ids are unique; a retry after a lost
/// answer would show as duplicates and is counted apart).
async fn send_batches(
    client: Client,
    batches: Vec<Vec<UsageEvent>>,
    packed: bool,
) -> (Vec<Duration>, u64) {
    let mut latencies = Vec::with_capacity(batches.len());
    let mut duplicates = 0;
    for batch in batches {
        let started = Instant::now();
        let outcome = if packed {
            let encoded = PackedEvents::new(&batch)
                .unwrap_or_else(|error| panic!("pack {}: {error}", batch[0].event_id));
            client.ingest_events_packed(&encoded).await
        } else {
            client.ingest_events(&batch).await
        }
        .unwrap_or_else(|error| panic!("ingest {}: {error}", batch[0].event_id));
        latencies.push(started.elapsed());
        if outcome.rejected > 0 {
            let refused = outcome.results.iter().find(|result| !result.is_held());
            panic!("{} events refused, e.g. {refused:?}", outcome.rejected);
        }
        assert_eq!(
            outcome.recorded + outcome.duplicates,
            batch.len() as u64,
            "every event is held"
        );
        duplicates += outcome.duplicates;
    }
    (latencies, duplicates)
}

/// Per customer: events counted and the sum in hundredths.
fn totals(result: &UsageResult) -> Sent {
    let mut totals = Sent::new();
    for group in &result.groups {
        let cents = group.value * Decimal::ONE_HUNDRED;
        assert!(
            cents.fract().is_zero(),
            "{} is not whole cents",
            group.value
        );
        let cents = cents.to_i64().expect("cents fit in i64");
        let total = totals.entry(group.customer.clone()).or_default();
        total.0 += group.count;
        total.1 += cents;
    }
    totals
}

/// Times of one query kind, in ms: every run's, in order.
struct QueryTiming {
    name: &'static str,
    runs_ms: Vec<f64>,
}

impl QueryTiming {
    fn median(&self) -> f64 {
        let mut sorted = self.runs_ms.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    fn min(&self) -> f64 {
        self.runs_ms.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn max(&self) -> f64 {
        self.runs_ms.iter().copied().fold(0.0, f64::max)
    }
}

/// The four queries over the whole window — one customer and all, stored
/// and recomputed — each timed `runs` times; every answer must equal what
/// was sent.
async fn time_queries(
    client: &Client,
    options: &Options,
    window: (i64, i64),
    sent: &Sent,
) -> Vec<QueryTiming> {
    let first = customer(0);
    let kinds = [
        ("stored, one customer", Some(&first), false),
        ("stored, all customers", None, false),
        ("recompute, one customer", Some(&first), true),
        ("recompute, all customers", None, true),
    ];
    let mut timings = Vec::new();
    for (name, customer, recompute) in kinds {
        let mut query = UsageQuery::new(METER, window.0, window.1).recompute(recompute);
        let mut expected = sent.clone();
        if let Some(customer) = customer {
            query = query.customer(customer.clone());
            expected.retain(|name, _| name == customer);
        }
        let mut runs_ms = Vec::with_capacity(options.query_runs);
        for _ in 0..options.query_runs {
            let started = Instant::now();
            let answer = client
                .query_usage(&query)
                .await
                .unwrap_or_else(|error| panic!("query ({name}): {error}"));
            runs_ms.push(started.elapsed().as_secs_f64() * 1e3);
            let got = totals(&answer);
            assert!(
                got == expected,
                "query ({name}) differs from what was sent: {} customers answered, {} sent; \
                 first difference: {:?}",
                got.len(),
                expected.len(),
                expected
                    .iter()
                    .find(|(name, figures)| got.get(*name) != Some(figures))
            );
        }
        timings.push(QueryTiming { name, runs_ms });
    }
    timings
}

struct Report {
    options: Options,
    setup: Duration,
    generation: Duration,
    elapsed: Duration,
    batches: usize,
    duplicates: u64,
    latency: Latency,
    peak_after_ingest_kib: Option<u64>,
    peak_after_queries_kib: Option<u64>,
    journal_length: u64,
    queries: Vec<QueryTiming>,
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |kib| {
        format!("{:.0} MiB", kib as f64 / 1024.0)
    })
}

impl Report {
    fn events_per_second(&self) -> f64 {
        self.options.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn text(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut text = String::new();
        let _ = writeln!(text, "{}", self.options.describe());
        let _ = writeln!(
            text,
            "events generated in {:.2} s (not timed)",
            self.generation.as_secs_f64()
        );
        let _ = writeln!(
            text,
            "customers and meter in {:.2} s",
            self.setup.as_secs_f64()
        );
        let _ = writeln!(
            text,
            "sent               {} events, {} batches, journal {} entries",
            self.options.events, self.batches, self.journal_length
        );
        let _ = writeln!(
            text,
            "elapsed            {:.2} s",
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(text, "events/s           {:.0}", self.events_per_second());
        let _ = writeln!(
            text,
            "batch latency      p50 {:.1} ms  p99 {:.1} ms  p99.9 {:.1} ms  max {:.1} ms",
            ms(self.latency.p50),
            ms(self.latency.p99),
            ms(self.latency.p999),
            ms(self.latency.max),
        );
        let _ = writeln!(
            text,
            "server peak memory {} after ingestion, {} after the queries",
            mib(self.peak_after_ingest_kib),
            mib(self.peak_after_queries_kib)
        );
        if self.duplicates > 0 {
            let _ = writeln!(
                text,
                "note               {} events answered as duplicates (a batch was retried)",
                self.duplicates
            );
        }
        for query in &self.queries {
            let _ = writeln!(
                text,
                "query {:<26} median {:.1} ms  min {:.1} ms  max {:.1} ms  ({} runs)",
                query.name,
                query.median(),
                query.min(),
                query.max(),
                query.runs_ms.len()
            );
        }
        let _ = writeln!(
            text,
            "checked            stored and recomputed usage equal what was sent"
        );
        text
    }

    fn json(&self) -> String {
        let o = &self.options;
        let ms = |d: Duration| json_number(d.as_secs_f64() * 1e3);
        let memory =
            |kib: Option<u64>| kib.map_or("null".into(), |k| json_number(k as f64 / 1024.0));
        let mut fields: Vec<(String, String)> = vec![
            ("bench".into(), json_string("usage")),
            ("events".into(), o.events.to_string()),
            ("batch".into(), o.batch.to_string()),
            ("clients".into(), o.clients.to_string()),
            ("customers".into(), o.customers.to_string()),
            ("span_minutes".into(), o.span_minutes.to_string()),
            ("wire".into(), json_string(o.wire())),
            ("batches".into(), self.batches.to_string()),
            ("journal_length".into(), self.journal_length.to_string()),
            ("elapsed_s".into(), json_number(self.elapsed.as_secs_f64())),
            ("events_per_s".into(), json_number(self.events_per_second())),
            ("p50_ms".into(), ms(self.latency.p50)),
            ("p99_ms".into(), ms(self.latency.p99)),
            ("p99_9_ms".into(), ms(self.latency.p999)),
            ("max_ms".into(), ms(self.latency.max)),
            ("peak_memory_mib".into(), memory(self.peak_after_ingest_kib)),
            (
                "peak_memory_after_queries_mib".into(),
                memory(self.peak_after_queries_kib),
            ),
            ("duplicates".into(), self.duplicates.to_string()),
        ];
        for query in &self.queries {
            let key = query.name.replace(", ", "_").replace(' ', "_");
            fields.push((format!("{key}_median_ms"), json_number(query.median())));
            fields.push((format!("{key}_min_ms"), json_number(query.min())));
        }
        let body: Vec<String> = fields
            .iter()
            .map(|(name, value)| format!("{}:{value}", json_string(name)))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

/// The bench's allocator is tallyd's (mimalloc): the bench shares the
/// machine's cores with tallyd, and with the system allocator it spent a
/// tenth of them in malloc and free (docs/benchmarks.md, round 7).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let options = Options::from_args();
    // The M whole minutes before the current one: every event is in the past.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64;
    let to = now - now.rem_euclid(MINUTE_NS);
    let from = to - options.span_minutes * MINUTE_NS;

    let generation_started = Instant::now();
    let (per_client, sent) = generate(&options, from);
    let generation = generation_started.elapsed();
    let batches = per_client.iter().map(Vec::len).sum();

    let data_dir = tempfile::tempdir().expect("temporary data directory");
    let server = tally::Tallyd::start(data_dir.path());
    let client = connect(&server.url).await;
    let setup_started = Instant::now();
    set_up(&client, &options).await;
    let setup = setup_started.elapsed();

    let mut clients = Vec::with_capacity(options.clients);
    for _ in 0..options.clients {
        clients.push(connect(&server.url).await);
    }
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .zip(per_client)
        .map(|(client, batches)| tokio::spawn(send_batches(client, batches, options.packed)))
        .collect();
    let mut latencies = Vec::with_capacity(batches);
    let mut duplicates = 0;
    for task in tasks {
        let (client_latencies, client_duplicates) = task.await.expect("client task");
        latencies.extend(client_latencies);
        duplicates += client_duplicates;
    }
    let elapsed = started.elapsed();
    let peak_after_ingest_kib = peak_memory_kib(server.pid());
    let journal_length = client
        .ledger_info()
        .await
        .expect("ledger info")
        .journal_length;

    let queries = time_queries(&client, &options, (from, to), &sent).await;
    let peak_after_queries_kib = peak_memory_kib(server.pid());
    let report = Report {
        options,
        setup,
        generation,
        elapsed,
        batches,
        duplicates,
        latency: Latency::of(latencies),
        peak_after_ingest_kib,
        peak_after_queries_kib,
        journal_length,
        queries,
    };
    print!("{}", report.text());
    if report.options.json {
        println!("{}", report.json());
    }
}
