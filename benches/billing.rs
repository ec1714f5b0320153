//! Billing bench (issue #6): one issuing billing run over a month of usage
//! for every customer against a real release `tallyd`, then the same run
//! again (the idempotent re-run), and (with a PostgreSQL connection string)
//! the same work as one SQL transaction over the same rows.
//!
//! ```text
//! cargo build --release -p tally-server
//! cargo bench --bench billing -- --customers 10000 --events 1000000
//! bash benches/pg-billing.sh --customers 100000 --events 10000000   # with PostgreSQL 15
//! ```
//!
//! Options: `--customers K` (100,000), `--events N` (10,000,000), `--batch B`
//! (10,000), `--clients C` (2: ingestion clients, and connections for the
//! set-up calls), `--setup-concurrency S` (64: profile and subscription calls
//! in flight), `--dsn DSN` (or `PG_BILLING_DSN`: also run the PostgreSQL
//! side), `--skip-tally`, `--perf-out FILE` (`perf record -F 199
//! --call-graph dwarf` on tallyd during the first run, into FILE),
//! `--tallyd-log FILE` (tallyd at `RUST_LOG=tally_server=debug`, its stderr
//! into FILE), `--max-load L` (1.5) and `--max-wait S` (600): before each
//! side's first run the bench waits up to S seconds for a 1-minute load
//! average of at most L (its own ingestion or COPY just before, or someone
//! else's build, off the cores), and prints the load at the start and end of
//! every run. `--print-sql` prints the SQL of a PostgreSQL run.
//!
//! The month is the last whole calendar month before today (UTC). One sum
//! meter, `api_calls`. Event `n` (of N) belongs to customer `c = n mod K`,
//! has the value `(1.00 + (n mod 900) / 100) × (1 + c mod 5)`, a unique id,
//! and the timestamp `n / N` of the way through the month (whole
//! microseconds): the events of rating.rs, all on one meter. Plan `bench` v1:
//! 49.00 a month in arrears, and API calls graduated 0.012 to 500, 0.009 to
//! 1,500, 0.0065 beyond; monthly from the 1st. Tax table: `vat`, 20 %
//! exclusive, rounded half up per line, in `FR`. Customer `c` is in `FR`
//! when `c` is even, `US` otherwise (no tax there), in `UTC`, series `INV`,
//! terms 30 days, and subscribed to v1 from the month's first day. A run
//! over the month then issues one invoice per customer, dated the month's
//! end (its usage and the in-arrears fee; a start on the month's first day
//! bills nothing, since the plan has no in-advance fee).
//!
//! Both sides price from the same `PlanSpec` and tax rule (the SQL is
//! generated from them), and the bench prices what it sent a third time
//! itself: every customer's subtotal, tax and total must agree on all three,
//! to the cent, and the invoice numbers must be 1 to K without a gap, or it
//! panics.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use tally::workload::peak_memory_kib;
use tally_client::{
    Aggregation, BillingInterval, BillingProfile, BillingRunRequest, Charge, Client, CustomerSpec,
    Day, ErrorCode, FlatTiming, IntervalUnit, MeterSpec, Period, PlanKey, PlanSpec, Pricing,
    RoundingMode, RunProgress, TaxMode, TaxRounding, TaxRule, Tier, UsageEvent, INGEST_EVENTS_MAX,
};
use tally_core::decimal::Dec;

const PLAN: &str = "bench";
const API: &str = "api_calls";
const SERIES: &str = "INV";
const TERMS_DAYS: u32 = 30;
const CUSTOMER_CHUNK: usize = 1_000;

#[derive(Debug, Clone)]
struct Options {
    customers: usize,
    events: usize,
    batch: usize,
    clients: usize,
    setup_concurrency: usize,
    dsn: Option<String>,
    skip_tally: bool,
    perf_out: Option<String>,
    tallyd_log: Option<String>,
    max_load: f64,
    max_wait: u64,
    print_sql: bool,
}

impl Options {
    fn from_args() -> Options {
        let mut options = Options {
            customers: 100_000,
            events: 10_000_000,
            batch: 10_000,
            clients: 2,
            setup_concurrency: 64,
            dsn: std::env::var("PG_BILLING_DSN")
                .ok()
                .filter(|s| !s.is_empty()),
            skip_tally: false,
            perf_out: None,
            tallyd_log: None,
            max_load: 1.5,
            max_wait: 600,
            print_sql: false,
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
                "--customers" => options.customers = value().parse().expect("--customers K"),
                "--events" => options.events = value().parse().expect("--events N"),
                "--batch" => options.batch = value().parse().expect("--batch B"),
                "--clients" => options.clients = value().parse().expect("--clients C"),
                "--setup-concurrency" => {
                    options.setup_concurrency = value().parse().expect("--setup-concurrency S")
                }
                "--dsn" => options.dsn = Some(value()),
                "--skip-tally" => options.skip_tally = true,
                "--perf-out" => options.perf_out = Some(value()),
                "--tallyd-log" => options.tallyd_log = Some(value()),
                "--max-load" => options.max_load = value().parse().expect("--max-load L"),
                "--max-wait" => options.max_wait = value().parse().expect("--max-wait S"),
                "--print-sql" => options.print_sql = true,
                "--bench" => {} // passed by `cargo bench`
                other => panic!("unknown option {other}"),
            }
        }
        assert!(options.customers > 0 && options.events > 0, "K and N > 0");
        assert!(
            options.customers < 1_000_000,
            "invoice numbers are checked as INV-YYYY-NNNNNN: K < 10^6"
        );
        assert!(
            (1..=INGEST_EVENTS_MAX).contains(&options.batch),
            "--batch must be 1 to {INGEST_EVENTS_MAX}"
        );
        assert!(options.clients > 0 && options.setup_concurrency > 0);
        options
    }
}

// ---------------------------------------------------------------------------
// The data: customers, events, the plan, the tax table, and the bench's own
// pricing of them.

fn customer(index: usize) -> String {
    format!("cust-{index:06}")
}

fn customer_index(id: &str) -> usize {
    id.strip_prefix("cust-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{id} is not a bench customer"))
}

fn country(index: usize) -> &'static str {
    if index % 2 == 1 {
        "US"
    } else {
        "FR"
    }
}

/// Event `n`: (customer index, value in hundredths, offset in µs).
fn event(n: usize, options: &Options, month_us: i64) -> (usize, i64, i64) {
    let c = n % options.customers;
    let cents = (100 + (n % 900) as i64) * (1 + (c % 5) as i64);
    let offset = (n as i128 * month_us as i128 / options.events as i128) as i64;
    (c, cents, offset)
}

fn cents_text(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Per customer: `api_calls` in hundredths.
fn sent_usage(options: &Options, month_us: i64) -> Vec<i64> {
    let mut usage = vec![0; options.customers];
    for n in 0..options.events {
        let (c, cents, _) = event(n, options, month_us);
        usage[c] += cents;
    }
    usage
}

fn d(text: &str) -> Dec {
    Dec(Decimal::from_str(text).expect("decimal"))
}

fn tier(up_to: Option<&str>, unit_price: &str) -> Tier {
    Tier {
        up_to: up_to.map(d),
        unit_price: d(unit_price),
        flat_fee: d("0"),
    }
}

/// v1: 49.00 a month in arrears; API calls graduated 0.012 / 0.009 /
/// 0.0065 at 500 and 1,500.
fn plan_v1() -> PlanSpec {
    let charge = |code: &str, meter: Option<&str>, pricing: Pricing| Charge {
        code: code.to_string(),
        description: String::new(),
        meter: meter.map(str::to_string),
        group: BTreeMap::new(),
        free_units: d("0"),
        pricing,
    };
    PlanSpec {
        code: PLAN.to_string(),
        name: "Billing bench".to_string(),
        currency: "USD".to_string(),
        interval: BillingInterval {
            unit: IntervalUnit::Monthly,
            anchor: Day::from_ymd(2026, 1, 1).expect("anchor"),
        },
        charges: vec![
            charge(
                "base",
                None,
                Pricing::Flat {
                    amount: d("49.00"),
                    timing: FlatTiming::InArrears,
                },
            ),
            charge(
                "api",
                Some(API),
                Pricing::Graduated {
                    tiers: vec![
                        tier(Some("500"), "0.012"),
                        tier(Some("1500"), "0.009"),
                        tier(None, "0.0065"),
                    ],
                },
            ),
        ],
        minimum_commitment: None,
        rounding: RoundingMode::HalfUp,
    }
}

/// The tax table: one exclusive rule, 20 % in FR, rounded half up per line.
fn tax_rules() -> Vec<TaxRule> {
    vec![TaxRule {
        code: "vat".to_string(),
        country: "FR".to_string(),
        region: None,
        rate: d("20"),
        mode: TaxMode::Exclusive,
        rounding: RoundingMode::HalfUp,
        granularity: TaxRounding::PerLine,
    }]
}

fn half_up(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

/// One customer's lines as the bench prices them (the models the plan uses;
/// each line rounded half up to cents, as both sides do).
fn price_lines(spec: &PlanSpec, api: Decimal) -> Vec<Decimal> {
    spec.charges
        .iter()
        .map(|charge| {
            let quantity = match charge.meter.as_deref() {
                Some(API) => api,
                _ => Decimal::ZERO,
            };
            let billable = (quantity - charge.free_units.0).max(Decimal::ZERO);
            let line = match &charge.pricing {
                Pricing::Flat { amount, .. } => amount.0,
                Pricing::Graduated { tiers } => {
                    let mut from = Decimal::ZERO;
                    let mut sum = Decimal::ZERO;
                    for tier in tiers {
                        if billable > from {
                            let top = tier.up_to.map_or(billable, |end| end.0.min(billable));
                            sum += (top - from) * tier.unit_price.0 + tier.flat_fee.0;
                        }
                        if let Some(end) = tier.up_to {
                            from = end.0;
                        }
                    }
                    sum
                }
                other => panic!("the bench does not price {}", other.model()),
            };
            half_up(line)
        })
        .collect()
}

/// An invoice's figures: (subtotal, tax, total).
type Figures = (Decimal, Decimal, Decimal);

/// Per customer (index order): the invoice as the bench prices it.
fn expected_invoices(usage: &[i64]) -> Vec<Figures> {
    let (plan, rules) = (plan_v1(), tax_rules());
    for rule in &rules {
        assert!(
            rule.mode == TaxMode::Exclusive
                && rule.rounding == RoundingMode::HalfUp
                && rule.granularity == TaxRounding::PerLine
                && rule.region.is_none(),
            "the bench prices exclusive, half-up, per-line, country-wide rules only"
        );
    }
    usage
        .iter()
        .enumerate()
        .map(|(c, &api)| {
            let lines = price_lines(&plan, Decimal::new(api, 2));
            let subtotal: Decimal = lines.iter().sum();
            let tax: Decimal = rules
                .iter()
                .filter(|rule| rule.country == country(c))
                .flat_map(|rule| {
                    lines
                        .iter()
                        .map(|line| half_up(line * rule.rate.0 / Decimal::ONE_HUNDRED))
                })
                .sum();
            (subtotal, tax, subtotal + tax)
        })
        .collect()
}

fn grand_total(per_customer: &[Figures]) -> Figures {
    per_customer.iter().fold(
        (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO),
        |(a, b, c), (x, y, z)| (a + x, b + y, c + z),
    )
}

/// What a side's run answered: per customer (index order) the invoice's
/// number and figures, and how many invoices the run itself issued.
struct Answer {
    invoices: Vec<Option<(u64, Figures)>>,
    created: usize,
}

/// Every customer has exactly one invoice, priced as the bench prices it;
/// the numbers are `SERIES-year-000001` to `K` with no gap.
fn check(side: &str, answer: &Answer, expected: &[Figures]) {
    assert_eq!(answer.invoices.len(), expected.len(), "{side}: customers");
    let mut numbers = Vec::with_capacity(expected.len());
    for (index, (got, want)) in answer.invoices.iter().zip(expected).enumerate() {
        let Some((number, figures)) = got else {
            panic!("{side}: customer {} has no invoice", customer(index));
        };
        assert_eq!(
            figures,
            want,
            "{side}: customer {}'s (subtotal, tax, total); the bench prices {want:?}",
            customer(index)
        );
        numbers.push(*number);
    }
    numbers.sort_unstable();
    assert!(
        numbers.iter().enumerate().all(|(i, n)| *n == i as u64 + 1),
        "{side}: invoice numbers are not 1 to {} without a gap",
        expected.len()
    );
}

/// `INV-2026-000042` → 42, checking the series and year.
fn number_sequence(number: &str, year: i32) -> u64 {
    let prefix = format!("{SERIES}-{year}-");
    number
        .strip_prefix(&prefix)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("invoice number {number} is not {prefix}NNNNNN"))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |kib| {
        format!("{:.0} MiB", kib as f64 / 1024.0)
    })
}

/// Now, as `YYYY-MM-DDTHH:MM:SS.mmmZ` (to find a run in tallyd's log).
fn utc_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    let us = now.as_micros() as i64;
    let text = timestamptz(us - us % 1_000);
    // `YYYY-MM-DD HH:MM:SS.ffffff+00` → ISO 8601 with milliseconds.
    format!("{}T{}Z", &text[..10], &text[11..23])
}

fn today() -> Day {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    Day((now / 86_400) as i32)
}

/// The last whole calendar month before today (UTC).
fn last_month() -> Period {
    let interval = plan_v1().interval;
    let this_month = interval.period_containing(today()).expect("this month");
    interval
        .period_containing(Day(this_month.start.0 - 1))
        .expect("last month")
}

/// The load averages (1, 5, 15 minutes), as `/proc/loadavg` has them.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "n/a".into())
}

/// Before a timed run: waits (up to `--max-wait` seconds) until the
/// 1-minute load average is at most `--max-load`, so that neither the
/// bench's own loading just before nor someone else's build is still on the
/// cores; prints the load it starts at.
async fn settle(label: &str, options: &Options) {
    let started = Instant::now();
    loop {
        let now = load();
        let one: f64 = now
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if one <= options.max_load || started.elapsed().as_secs() >= options.max_wait {
            println!(
                "{label:<18} load {now} at the start (waited {:.0} s for a 1-minute load <= {}){}",
                started.elapsed().as_secs_f64(),
                options.max_load,
                if one > options.max_load {
                    ", gave up waiting"
                } else {
                    ""
                }
            );
            return;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

// ---------------------------------------------------------------------------
// Tally: set-up, ingestion, then the runs.

/// A release `tallyd` on a temporary directory, as `tally::Tallyd` starts
/// it, but with its log level and stderr chosen here.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Server {
    fn start(data_dir: &Path, log: Option<&str>) -> Server {
        let mut command = tally::tallyd_command(data_dir);
        command.stdout(std::process::Stdio::piped());
        match log {
            Some(file) => {
                let file = std::fs::File::create(file).expect("tallyd log file");
                command
                    .env("RUST_LOG", "tally_server=debug")
                    .stderr(std::process::Stdio::from(file));
            }
            None => {
                command.stderr(std::process::Stdio::inherit());
            }
        }
        let mut child = command.spawn().expect("spawn tallyd");
        let (addr, _) = tally::await_listening(&mut child, tally::START_TIMEOUT);
        Server {
            child,
            url: format!("http://{addr}"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(url: &str) -> Client {
    tally::client_builder(url.to_string())
        .timeout(Duration::from_secs(600))
        .build()
        .await
        .unwrap_or_else(|error| panic!("connect to {url}: {error}"))
}

/// USD, the customers, the meter, the plan and the tax table.
async fn define(client: &Client, options: &Options) {
    client.define_currency("USD", 2).await.expect("USD");
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
        code: API.to_string(),
        aggregation: Aggregation::Sum,
        value_property: None,
        filters: BTreeMap::new(),
        group_by: Vec::new(),
        grace_period_seconds: 0,
    };
    client
        .define_meter(&meter, "billing bench")
        .await
        .expect("define the meter");
    let v1 = client.publish_plan(&plan_v1()).await.expect("publish v1");
    assert_eq!(v1.version, 1, "a fresh ledger");
    client
        .publish_tax_rules(&tax_rules())
        .await
        .expect("publish the tax table");
}

/// Set-up calls refused with `RATE_LIMITED` (and sent again).
static RATE_LIMITED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Sends a set-up call until it is not refused for the API key's rate
/// (tallyd's default limit is 10,000 requests per second per key; a refused
/// call did nothing, so it is sent again after 20 ms).
async fn within_rate<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = tally_client::Result<T>>,
{
    loop {
        match call().await {
            Ok(value) => return value,
            Err(error) if error.code() == Some(ErrorCode::RateLimited) => {
                RATE_LIMITED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("{what}: {error}"),
        }
    }
}

/// One worker's share of the profiles and subscriptions: customers `index`,
/// `index + workers`, ..., one call after the other.
async fn subscribe_share(client: Client, options: Options, index: usize, start: Day) {
    let plan = PlanKey::version(PLAN, 1);
    for c in (index..options.customers).step_by(options.setup_concurrency) {
        let id = customer(c);
        let profile = BillingProfile {
            customer_id: id.clone(),
            currency: "USD".to_string(),
            country: country(c).to_string(),
            region: None,
            tax_id: String::new(),
            timezone: "UTC".to_string(),
            invoice_series: SERIES.to_string(),
            payment_terms_days: TERMS_DAYS,
        };
        within_rate(&format!("profile of {id}"), || {
            client.set_billing_profile(&profile)
        })
        .await;
        let subscription = format!("sub-{c:06}");
        let subscribed = within_rate(&format!("subscription of {id}"), || {
            client.subscribe(&subscription, &id, &plan, start)
        })
        .await;
        assert_eq!(subscribed.effective, start);
    }
}

/// One client's share: batches `index`, `index + clients`, ..., each built
/// just before it is sent (10^7 events built up front would take ~8 GiB).
async fn send_batches(
    client: Client,
    options: Options,
    index: usize,
    from_us: i64,
    month_us: i64,
) -> Duration {
    let mut building = Duration::ZERO;
    let batches = options.events.div_ceil(options.batch);
    for batch_index in (index..batches).step_by(options.clients) {
        let started = Instant::now();
        let start = batch_index * options.batch;
        let end = (start + options.batch).min(options.events);
        let batch: Vec<UsageEvent> = (start..end)
            .map(|n| {
                let (c, cents, offset) = event(n, &options, month_us);
                UsageEvent {
                    event_id: format!("ev-{n:09}"),
                    customer: customer(c),
                    meter: API.to_string(),
                    timestamp: (from_us + offset) * 1_000,
                    value: Some(cents_text(cents)),
                    properties: BTreeMap::new(),
                }
            })
            .collect();
        building += started.elapsed();
        let outcome = client
            .ingest_events(&batch)
            .await
            .unwrap_or_else(|error| panic!("ingest {}: {error}", batch[0].event_id));
        assert_eq!(outcome.rejected, 0, "events refused: {:?}", outcome.results);
        assert_eq!(outcome.recorded, batch.len() as u64, "every event recorded");
    }
    building
}

/// A run's answer, checked, and how long each part took as the client saw
/// it: the first progress event (usage closed, every invoice rated, the
/// first 1,000 issued), the last (every invoice issued), the end of the
/// stream (every invoice sent).
struct Timed {
    answer: Answer,
    total: Duration,
    first_progress: Option<(Duration, RunProgress)>,
    last_progress: Option<(Duration, RunProgress)>,
}

async fn timed_run(client: &Client, period: Period, year: i32, customers: usize) -> Timed {
    let started = Instant::now();
    let mut first_progress = None;
    let mut last_progress = None;
    let run = client
        .run_billing_with_progress(&BillingRunRequest::new(period), |progress| {
            let at = started.elapsed();
            if first_progress.is_none() {
                first_progress = Some((at, progress));
            }
            last_progress = Some((at, progress));
        })
        .await
        .expect("billing run");
    let total = started.elapsed();
    let mut invoices = vec![None; customers];
    for invoice in &run.invoices {
        assert_eq!(
            (invoice.period_start, invoice.period_end),
            (period.start, period.end),
            "{}'s invoice closes the month",
            invoice.customer_id
        );
        let number = invoice.number.as_deref().expect("an issued invoice");
        let slot = &mut invoices[customer_index(&invoice.customer_id)];
        assert!(
            slot.is_none(),
            "{} has two invoices for the month",
            invoice.customer_id
        );
        *slot = Some((
            number_sequence(number, year),
            (invoice.subtotal, invoice.tax, invoice.total),
        ));
    }
    Timed {
        answer: Answer {
            invoices,
            created: run.created as usize,
        },
        total,
        first_progress,
        last_progress,
    }
}

fn progress_text(progress: &Option<(Duration, RunProgress)>) -> String {
    progress.map_or("none".into(), |(at, p)| {
        format!("{:.2} s ({}/{})", at.as_secs_f64(), p.done, p.total)
    })
}

struct TallyFigures {
    first: Duration,
    rerun: Duration,
}

async fn tally_side(options: &Options, period: Period, expected: &[Figures]) -> TallyFigures {
    let from_us = period.start.start_ns().expect("start") / 1_000;
    let month_us = period.end.start_ns().expect("end") / 1_000 - from_us;
    let year = today().ymd().expect("a year").0;
    let data_dir = tempfile::tempdir().expect("temporary data directory");
    let server = Server::start(data_dir.path(), options.tallyd_log.as_deref());
    println!(
        "tallyd             pid {} on {}, data in {}",
        server.pid(),
        server.url,
        data_dir.path().display()
    );
    let client = connect(&server.url).await;

    let started = Instant::now();
    define(&client, options).await;
    let defined = started.elapsed();
    let mut connections = Vec::new();
    for _ in 0..options.clients {
        connections.push(connect(&server.url).await);
    }
    let mut tasks = Vec::new();
    for index in 0..options.setup_concurrency.min(options.customers) {
        tasks.push(tokio::spawn(subscribe_share(
            connections[index % options.clients].clone(),
            options.clone(),
            index,
            period.start,
        )));
    }
    for task in tasks {
        task.await.expect("set-up task");
    }
    let setup = started.elapsed();
    println!(
        "set-up             {:.2} s: USD, {} customers, 1 meter, plan, tax table in {:.2} s; \
         then {} profiles and {} subscriptions ({} calls in flight) in {:.2} s, {:.0} calls/s \
         ({} calls refused as over the key's rate limit and sent again)",
        setup.as_secs_f64(),
        options.customers,
        defined.as_secs_f64(),
        options.customers,
        options.customers,
        options.setup_concurrency,
        (setup - defined).as_secs_f64(),
        2.0 * options.customers as f64 / (setup - defined).as_secs_f64(),
        RATE_LIMITED.load(std::sync::atomic::Ordering::Relaxed)
    );

    let started = Instant::now();
    let mut tasks = Vec::new();
    for (index, connection) in connections.iter().enumerate() {
        tasks.push(tokio::spawn(send_batches(
            connection.clone(),
            options.clone(),
            index,
            from_us,
            month_us,
        )));
    }
    let mut building = Duration::ZERO;
    for task in tasks {
        building += task.await.expect("client task");
    }
    let ingest = started.elapsed();
    println!(
        "ingestion          {} events in {:.2} s: {:.0} events/s (building the batches: {:.2} s of it, summed over clients); tallyd peak {}",
        options.events,
        ingest.as_secs_f64(),
        options.events as f64 / ingest.as_secs_f64(),
        building.as_secs_f64(),
        mib(peak_memory_kib(server.pid()))
    );

    settle("run 1", options).await;
    let perf = options.perf_out.as_ref().map(|file| {
        let child = std::process::Command::new("perf")
            .args([
                "record",
                "-F",
                "199",
                "--call-graph",
                "dwarf",
                "-o",
                file,
                "-p",
            ])
            .arg(server.pid().to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("perf record");
        std::thread::sleep(Duration::from_millis(500));
        child
    });

    println!("run 1              starts at {}", utc_now());
    let first = timed_run(&client, period, year, options.customers).await;
    println!("run 1              ends at {}, load {}", utc_now(), load());
    if let Some(mut child) = perf {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    assert_eq!(
        first.answer.created, options.customers,
        "the first run issues one invoice per customer"
    );
    check("tally run 1", &first.answer, expected);
    let seconds = first.total.as_secs_f64();
    println!(
        "tally run 1        {:.2} s: {} invoices issued, {:.0} invoices/s, {:.0} events/s; \
         first progress at {}, last at {}; tallyd peak {}",
        seconds,
        first.answer.created,
        options.customers as f64 / seconds,
        options.events as f64 / seconds,
        progress_text(&first.first_progress),
        progress_text(&first.last_progress),
        mib(peak_memory_kib(server.pid()))
    );

    println!("run 2              starts at {}", utc_now());
    let rerun = timed_run(&client, period, year, options.customers).await;
    println!("run 2              ends at {}, load {}", utc_now(), load());
    assert_eq!(rerun.answer.created, 0, "the re-run issues nothing");
    check("tally run 2", &rerun.answer, expected);
    println!(
        "tally run 2        {:.2} s: {} invoices answered, 0 issued (the re-run); tallyd peak {}",
        rerun.total.as_secs_f64(),
        options.customers,
        mib(peak_memory_kib(server.pid()))
    );
    let (subtotal, tax, total) = grand_total(expected);
    println!("tally totals       subtotal {subtotal}  tax {tax}  total {total} (equal to the bench's, per customer)");
    drop(client);
    drop(connections);
    drop(server);
    TallyFigures {
        first: first.total,
        rerun: rerun.total,
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL: the same rows, one transaction per run.

fn sql_number(value: Decimal) -> String {
    value.normalize().to_string()
}

fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Each charge's line as SQL over the quantity `usage` names for its meter,
/// rounded to cents (PostgreSQL's `round` is half away from zero, the plan's
/// `half_up` for these positive amounts): (charge code, expression).
fn sql_lines(spec: &PlanSpec, usage: impl Fn(&str) -> String) -> Vec<(String, String)> {
    assert_eq!(spec.rounding, RoundingMode::HalfUp, "SQL rounds half up");
    let mut lines = Vec::new();
    for charge in &spec.charges {
        let billable = charge.meter.as_deref().map(|meter| {
            let quantity = usage(meter);
            if charge.free_units.0.is_zero() {
                quantity
            } else {
                format!(
                    "GREATEST({quantity} - {}, 0)",
                    sql_number(charge.free_units.0)
                )
            }
        });
        let line = match (&charge.pricing, billable) {
            (Pricing::Flat { amount, .. }, None) => sql_number(amount.0),
            (Pricing::Graduated { tiers }, Some(q)) => {
                let mut from = Decimal::ZERO;
                let mut parts = Vec::new();
                for tier in tiers {
                    let lo = sql_number(from);
                    let units = match tier.up_to {
                        Some(end) => {
                            format!("GREATEST(LEAST({q}, {}) - {lo}, 0)", sql_number(end.0))
                        }
                        None => format!("GREATEST({q} - {lo}, 0)"),
                    };
                    parts.push(format!("{units} * {}", sql_number(tier.unit_price.0)));
                    if !tier.flat_fee.0.is_zero() {
                        parts.push(format!(
                            "CASE WHEN {q} > {lo} THEN {} ELSE 0 END",
                            sql_number(tier.flat_fee.0)
                        ));
                    }
                    if let Some(end) = tier.up_to {
                        from = end.0;
                    }
                }
                parts.join(" + ")
            }
            (other, _) => panic!("no SQL for {}", other.model()),
        };
        lines.push((charge.code.clone(), format!("ROUND({line}, 2)")));
    }
    lines
}

/// The statements of one billing run, in order, each timed on its own;
/// `BEGIN` before them and `COMMIT` after. The last one answers with every
/// invoice of the month (those issued before included, as Tally's run does).
fn billing_sql(period: Period, today: Day, year: i32) -> Vec<(&'static str, String)> {
    let plan = plan_v1();
    let lines = sql_lines(&plan, |meter| format!("COALESCE(u.{meter}, 0)"));
    let meters: Vec<&str> = plan
        .charges
        .iter()
        .filter_map(|c| c.meter.as_deref())
        .collect();
    let usage_columns: Vec<String> = meters
        .iter()
        .map(|m| format!("SUM(value) FILTER (WHERE meter = {}) AS {m}", sql_text(m)))
        .collect();
    let quantity = |charge: &Charge| {
        charge
            .meter
            .as_deref()
            .map_or("1".to_string(), |m| format!("COALESCE(u.{m}, 0)"))
    };
    let mut priced = Vec::new();
    for (i, (charge, (_, expr))) in plan.charges.iter().zip(&lines).enumerate() {
        priced.push(format!("{} AS quantity_{i}", quantity(charge)));
        priced.push(format!("{expr} AS line_{i}"));
    }
    let line_columns: Vec<String> = (0..lines.len()).map(|i| format!("line_{i}")).collect();
    // Tax per line, rounded half up to cents; 0 where no rule applies.
    let taxes: Vec<String> = (0..lines.len())
        .map(|i| format!("ROUND(line_{i} * COALESCE(tax_rate, 0) / 100, 2) AS tax_{i}"))
        .collect();
    let tax_columns: Vec<String> = (0..lines.len()).map(|i| format!("tax_{i}")).collect();
    let (start, end) = (period.start, period.end);
    let counter = format!("series = {} AND year = {year}", sql_text(SERIES));
    let due = format!(
        "CREATE TEMP TABLE due ON COMMIT DROP AS
WITH usage AS (
    SELECT customer, {usage_columns}
    FROM events
    WHERE ts >= '{start} 00:00:00+00' AND ts < '{end} 00:00:00+00'
    GROUP BY customer
), priced AS (
    SELECT c.id AS customer, c.country, t.code AS tax_code, t.rate AS tax_rate,
           {priced}
    FROM customers c
    LEFT JOIN usage u ON u.customer = c.id
    LEFT JOIN tax_rules t ON t.country = c.country
    WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.customer = c.id AND i.period_end = '{end}')
), taxed AS (
    SELECT priced.*, {taxes} FROM priced
)
SELECT taxed.*,
       {subtotal} AS subtotal,
       {tax} AS tax,
       {subtotal} + {tax} AS total,
       {series_text} || '-{year}-' || lpad(((SELECT last FROM invoice_counters WHERE {counter})
           + row_number() OVER (ORDER BY customer))::text, 6, '0') AS number
FROM taxed",
        usage_columns = usage_columns.join(", "),
        priced = priced.join(",\n           "),
        taxes = taxes.join(", "),
        subtotal = line_columns.join(" + "),
        tax = tax_columns.join(" + "),
        series_text = sql_text(SERIES),
    );
    let line_rows: Vec<String> = plan
        .charges
        .iter()
        .enumerate()
        .map(|(i, charge)| {
            format!(
                "SELECT number, {}, {}, quantity_{i}, line_{i}, tax_{i} FROM due",
                i + 1,
                sql_text(&charge.code)
            )
        })
        .collect();
    let mut posting_rows = vec![
        "SELECT 'invoice:' || number, 'assets:receivable:USD', total, 0 FROM due WHERE total <> 0"
            .to_string(),
    ];
    for (i, charge) in plan.charges.iter().enumerate() {
        posting_rows.push(format!(
            "SELECT 'invoice:' || number, {}, 0, line_{i} FROM due WHERE line_{i} <> 0",
            sql_text(&format!("revenue:{}:{}", plan.code, charge.code))
        ));
    }
    posting_rows.push(
        "SELECT 'invoice:' || number, 'liabilities:tax:' || tax_code || ':USD', 0, tax \
         FROM due WHERE tax_code IS NOT NULL AND tax <> 0"
            .to_string(),
    );
    vec![
        (
            "lock the counter",
            format!("SELECT last FROM invoice_counters WHERE {counter} FOR UPDATE"),
        ),
        ("aggregate, price, tax, number", due),
        ("analyze", "ANALYZE due".to_string()),
        (
            "advance the counter",
            format!(
                "UPDATE invoice_counters SET last = last + (SELECT count(*) FROM due) WHERE {counter}"
            ),
        ),
        (
            "close usage",
            format!(
                "UPDATE customers SET usage_closed_through = '{end}' \
                 WHERE id IN (SELECT customer FROM due) \
                 AND (usage_closed_through IS NULL OR usage_closed_through < '{end}')"
            ),
        ),
        (
            "insert invoices",
            format!(
                "INSERT INTO invoices (number, customer, period_start, period_end, issued_on, \
                 due_on, country, subtotal, tax, total) \
                 SELECT number, customer, '{start}', '{end}', '{today}', \
                 DATE '{today}' + {TERMS_DAYS}, country, subtotal, tax, total FROM due"
            ),
        ),
        (
            "insert lines",
            format!(
                "INSERT INTO invoice_lines (invoice, line, charge, quantity, amount, tax) {}",
                line_rows.join(" UNION ALL ")
            ),
        ),
        (
            "insert postings",
            format!(
                "INSERT INTO postings (transaction_id, account, debit, credit) {}",
                posting_rows.join(" UNION ALL ")
            ),
        ),
        (
            "balance check",
            "DO $$ DECLARE unbalanced bigint; missing bigint; BEGIN
    SELECT count(*) INTO unbalanced FROM (
        SELECT p.transaction_id FROM postings p
        WHERE p.transaction_id IN (SELECT 'invoice:' || number FROM due)
        GROUP BY p.transaction_id HAVING SUM(p.debit) <> SUM(p.credit)) bad;
    SELECT count(*) INTO missing FROM due d WHERE d.total <> 0
        AND NOT EXISTS (SELECT 1 FROM postings p WHERE p.transaction_id = 'invoice:' || d.number);
    IF unbalanced > 0 OR missing > 0 THEN
        RAISE EXCEPTION 'billing run: % unbalanced and % missing invoice transactions', unbalanced, missing;
    END IF;
END $$"
                .to_string(),
        ),
        (
            "account totals",
            "UPDATE accounts a SET debits = a.debits + s.debits, credits = a.credits + s.credits
FROM (SELECT p.account, SUM(p.debit) AS debits, SUM(p.credit) AS credits
      FROM postings p WHERE p.transaction_id IN (SELECT 'invoice:' || number FROM due)
      GROUP BY p.account) s
WHERE a.id = s.account"
                .to_string(),
        ),
        (
            "answer",
            format!(
                "SELECT i.number, i.customer, i.subtotal, i.tax, i.total, d.number IS NOT NULL \
                 FROM invoices i LEFT JOIN due d ON d.number = i.number \
                 WHERE i.period_end > '{start}' AND i.period_end <= '{end}' ORDER BY i.customer"
            ),
        ),
    ]
}

/// `YYYY-MM-DD HH:MM:SS.ffffff+00` for microseconds since the epoch.
fn timestamptz(us: i64) -> String {
    let day_us = 86_400_000_000;
    let day = Day(us.div_euclid(day_us) as i32);
    let rest = us.rem_euclid(day_us);
    let (seconds, micros) = (rest / 1_000_000, rest % 1_000_000);
    format!(
        "{day} {:02}:{:02}:{:02}.{micros:06}+00",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

async fn pg_connect(dsn: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(dsn, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            panic!("PostgreSQL connection: {error}");
        }
    });
    client
}

fn write_csv(path: &Path, options: &Options, from_us: i64, month_us: i64) {
    let file = std::fs::File::create(path).expect("events.csv");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    for n in 0..options.events {
        let (c, cents, offset) = event(n, options, month_us);
        writeln!(
            out,
            "ev-{n:09},{},{API},{},{}",
            customer(c),
            timestamptz(from_us + offset),
            cents_text(cents)
        )
        .expect("write events.csv");
    }
    out.flush().expect("flush events.csv");
}

fn first_text(messages: &[tokio_postgres::SimpleQueryMessage]) -> String {
    messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_default()
}

struct PgFigures {
    first: Duration,
    rerun: Duration,
}

/// One run: BEGIN, the statements, COMMIT; the answer and each step's time.
async fn pg_run(
    client: &tokio_postgres::Client,
    statements: &[(&'static str, String)],
    year: i32,
    customers: usize,
) -> (Answer, Duration, Vec<(&'static str, Duration)>) {
    let started = Instant::now();
    let mut steps = Vec::new();
    client.batch_execute("BEGIN").await.expect("BEGIN");
    let mut answer = Answer {
        invoices: vec![None; customers],
        created: 0,
    };
    for (name, sql) in statements {
        let step = Instant::now();
        let messages = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        if *name == "answer" {
            for message in &messages {
                if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                    let text = |i: usize| row.get(i).expect("a value");
                    let number = |i: usize| Decimal::from_str(text(i)).expect("a decimal");
                    let slot = &mut answer.invoices[customer_index(text(1))];
                    assert!(slot.is_none(), "{} has two invoices", text(1));
                    *slot = Some((
                        number_sequence(text(0), year),
                        (number(2), number(3), number(4)),
                    ));
                    if text(5) == "t" {
                        answer.created += 1;
                    }
                }
            }
        }
        steps.push((*name, step.elapsed()));
    }
    let step = Instant::now();
    client.batch_execute("COMMIT").await.expect("COMMIT");
    steps.push(("commit", step.elapsed()));
    (answer, started.elapsed(), steps)
}

async fn pg_side(dsn: &str, options: &Options, period: Period, expected: &[Figures]) -> PgFigures {
    let from_us = period.start.start_ns().expect("start") / 1_000;
    let month_us = period.end.start_ns().expect("end") / 1_000 - from_us;
    let today = today();
    let year = today.ymd().expect("a year").0;
    let client = pg_connect(dsn).await;
    let version = client
        .simple_query("SHOW server_version")
        .await
        .expect("version");
    let settings = client
        .simple_query(
            "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) \
             FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', 'temp_buffers', \
             'max_parallel_workers_per_gather', 'jit', 'fsync', 'synchronous_commit', \
             'full_page_writes')",
        )
        .await
        .expect("settings");
    println!(
        "postgresql         {} ({})",
        first_text(&version),
        first_text(&settings)
    );

    // The rows, as files the server reads (COPY ... FROM 'file').
    let dir = tempfile::tempdir().expect("csv directory");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let started = Instant::now();
    let events_csv = dir.path().join("events.csv");
    write_csv(&events_csv, options, from_us, month_us);
    let customers_csv = dir.path().join("customers.csv");
    let rows: String = (0..options.customers)
        .map(|c| format!("{},{}\n", customer(c), country(c)))
        .collect();
    std::fs::write(&customers_csv, rows).expect("customers.csv");
    println!(
        "pg csv             written in {:.2} s ({} MiB)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&events_csv).expect("size").len() >> 20
    );

    let rules = tax_rules();
    let plan = plan_v1();
    let mut accounts = vec!["assets:receivable:USD".to_string()];
    accounts.extend(
        plan.charges
            .iter()
            .map(|c| format!("revenue:{}:{}", plan.code, c.code)),
    );
    accounts.extend(
        rules
            .iter()
            .map(|r| format!("liabilities:tax:{}:USD", r.code)),
    );
    let account_rows: Vec<String> = accounts
        .iter()
        .map(|a| format!("({})", sql_text(a)))
        .collect();
    let rule_rows: Vec<String> = rules
        .iter()
        .map(|r| {
            format!(
                "({}, {}, {})",
                sql_text(&r.code),
                sql_text(&r.country),
                sql_number(r.rate.0)
            )
        })
        .collect();
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS postings, invoice_lines, invoices, invoice_counters, accounts,
                 tax_rules, events, customers;
             CREATE TABLE customers (
                 id text PRIMARY KEY,
                 country text NOT NULL,
                 usage_closed_through date
             );
             CREATE TABLE events (
                 event_id text PRIMARY KEY,
                 customer text NOT NULL REFERENCES customers,
                 meter text NOT NULL,
                 ts timestamptz NOT NULL,
                 value numeric(20, 2) NOT NULL CHECK (value >= 0)
             );
             CREATE TABLE tax_rules (
                 code text PRIMARY KEY,
                 country text NOT NULL,
                 rate numeric NOT NULL
             );
             CREATE TABLE accounts (
                 id text PRIMARY KEY,
                 debits numeric(38, 2) NOT NULL DEFAULT 0,
                 credits numeric(38, 2) NOT NULL DEFAULT 0
             );
             CREATE TABLE invoice_counters (
                 series text NOT NULL,
                 year int NOT NULL,
                 last bigint NOT NULL,
                 PRIMARY KEY (series, year)
             );
             CREATE TABLE invoices (
                 number text PRIMARY KEY,
                 customer text NOT NULL REFERENCES customers,
                 period_start date NOT NULL,
                 period_end date NOT NULL,
                 issued_on date NOT NULL,
                 due_on date NOT NULL,
                 country text NOT NULL,
                 subtotal numeric(20, 2) NOT NULL,
                 tax numeric(20, 2) NOT NULL,
                 total numeric(20, 2) NOT NULL,
                 UNIQUE (customer, period_end)
             );
             CREATE TABLE invoice_lines (
                 invoice text NOT NULL REFERENCES invoices,
                 line int NOT NULL,
                 charge text NOT NULL,
                 quantity numeric NOT NULL,
                 amount numeric(20, 2) NOT NULL,
                 tax numeric(20, 2) NOT NULL,
                 PRIMARY KEY (invoice, line)
             );
             CREATE TABLE postings (
                 transaction_id text NOT NULL,
                 account text NOT NULL REFERENCES accounts,
                 debit numeric(20, 2) NOT NULL CHECK (debit >= 0),
                 credit numeric(20, 2) NOT NULL CHECK (credit >= 0)
             );
             CREATE INDEX postings_transaction ON postings (transaction_id);
             INSERT INTO accounts (id) VALUES {accounts};
             INSERT INTO tax_rules (code, country, rate) VALUES {rules};
             INSERT INTO invoice_counters VALUES ({series}, {year}, 0);",
            accounts = account_rows.join(", "),
            rules = rule_rows.join(", "),
            series = sql_text(SERIES),
        ))
        .await
        .expect("schema");
    let started = Instant::now();
    client
        .batch_execute(&format!(
            "COPY customers (id, country) FROM '{}' WITH (FORMAT csv);",
            customers_csv.display()
        ))
        .await
        .expect("COPY customers");
    client
        .batch_execute(&format!(
            "COPY events FROM '{}' WITH (FORMAT csv);",
            events_csv.display()
        ))
        .await
        .expect("COPY events");
    let copied = started.elapsed();
    for table in [
        "customers",
        "events",
        "tax_rules",
        "accounts",
        "invoice_counters",
    ] {
        client
            .batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .expect("vacuum analyze");
    }
    println!(
        "pg load            COPY {} events in {:.2} s (with primary and foreign keys); VACUUM ANALYZE after: {:.2} s in all",
        options.events,
        copied.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    drop(dir);

    let statements = billing_sql(period, today, year);
    if options.print_sql {
        println!("pg statements of a run (BEGIN before them, COMMIT after):");
        for (name, sql) in &statements {
            println!("-- {name}\n{sql};");
        }
    }
    let plan = client
        .simple_query(&format!("EXPLAIN {}", statements[1].1))
        .await
        .expect("explain");
    println!("pg plan of '{}':", statements[1].0);
    for message in &plan {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            println!("    {}", row.get(0).unwrap_or_default());
        }
    }
    let backend = first_text(
        &client
            .simple_query("SELECT pg_backend_pid()")
            .await
            .expect("pid"),
    );
    let mut times = Vec::new();
    for run in 1..=2 {
        if run == 1 {
            settle("pg run 1", options).await;
        }
        let (answer, elapsed, steps) = pg_run(&client, &statements, year, options.customers).await;
        let want = if run == 1 { options.customers } else { 0 };
        assert_eq!(answer.created, want, "pg run {run}: invoices issued");
        check(&format!("postgresql run {run}"), &answer, expected);
        let steps: Vec<String> = steps
            .iter()
            .map(|(name, took)| format!("{name} {:.0}", took.as_secs_f64() * 1e3))
            .collect();
        let seconds = elapsed.as_secs_f64();
        println!(
            "pg run {run}           {seconds:.2} s: {} invoices issued{}; load {} at the end; steps in ms: {}",
            answer.created,
            if run == 1 {
                format!(
                    ", {:.0} invoices/s, {:.0} events/s",
                    options.customers as f64 / seconds,
                    options.events as f64 / seconds
                )
            } else {
                " (the re-run)".to_string()
            },
            load(),
            steps.join(", ")
        );
        times.push(elapsed);
    }
    let backend_peak = backend.parse().ok().and_then(peak_memory_kib);
    // What the runs left: every row, and the accounts balanced.
    let counts = client
        .simple_query(
            "SELECT (SELECT count(*) FROM invoices) || ' invoices, ' \
             || (SELECT count(*) FROM invoice_lines) || ' lines, ' \
             || (SELECT count(*) FROM postings) || ' postings; debits ' \
             || (SELECT SUM(debits) FROM accounts) || ', credits ' \
             || (SELECT SUM(credits) FROM accounts) || '; counter at ' \
             || (SELECT last FROM invoice_counters)",
        )
        .await
        .expect("counts");
    let (subtotal, tax, total) = grand_total(expected);
    let balanced = client
        .simple_query(&format!(
            "SELECT (SELECT SUM(debits) FROM accounts) = (SELECT SUM(credits) FROM accounts) \
             AND (SELECT debits FROM accounts WHERE id = 'assets:receivable:USD') = {total} \
             AND (SELECT SUM(credits) FROM accounts WHERE id LIKE 'liabilities:tax:%') = {tax}"
        ))
        .await
        .expect("balanced");
    assert_eq!(first_text(&balanced), "t", "pg: accounts balance");
    println!(
        "pg after the runs  {}; backend peak {}",
        first_text(&counts),
        mib(backend_peak)
    );
    println!("pg totals          subtotal {subtotal}  tax {tax}  total {total} (equal to the bench's, per customer)");
    client
        .batch_execute(
            "DROP TABLE postings, invoice_lines, invoices, invoice_counters, accounts, \
             tax_rules, events, customers;",
        )
        .await
        .expect("drop");
    PgFigures {
        first: times[0],
        rerun: times[1],
    }
}

#[tokio::main]
async fn main() {
    let options = Options::from_args();
    let period = last_month();
    println!(
        "customers={} events={} batch={} clients={} setup-concurrency={} month={}..{} (runs bill dates in ({}, {}]) at {}",
        options.customers,
        options.events,
        options.batch,
        options.clients,
        options.setup_concurrency,
        period.start,
        period.end,
        period.start,
        period.end,
        utc_now()
    );
    if options.skip_tally && options.dsn.is_none() {
        return;
    }

    let started = Instant::now();
    let month_us =
        (period.end.start_ns().expect("end") - period.start.start_ns().expect("start")) / 1_000;
    let expected = expected_invoices(&sent_usage(&options, month_us));
    let (subtotal, tax, total) = grand_total(&expected);
    println!(
        "bench totals       subtotal {subtotal}  tax {tax}  total {total} (priced by the bench in {:.2} s)",
        started.elapsed().as_secs_f64()
    );

    let tally = if options.skip_tally {
        None
    } else {
        Some(tally_side(&options, period, &expected).await)
    };
    let pg = match &options.dsn {
        Some(dsn) => Some(pg_side(dsn, &options, period, &expected).await),
        None => None,
    };
    if let (Some(tally), Some(pg)) = (tally, pg) {
        println!(
            "ratio              Tally ÷ PostgreSQL: run 1 {:.2} ({:.2} s / {:.2} s), re-run {:.2} ({:.3} s / {:.3} s) (above 1: PostgreSQL is faster); every invoice equal to the cent",
            tally.first.as_secs_f64() / pg.first.as_secs_f64(),
            tally.first.as_secs_f64(),
            pg.first.as_secs_f64(),
            tally.rerun.as_secs_f64() / pg.rerun.as_secs_f64(),
            tally.rerun.as_secs_f64(),
            pg.rerun.as_secs_f64()
        );
    }
}
